/* test_safetensors.c — the safetensors reader: the dtype fixture against values written by the
 * Python safetensors package (tests/data/safetensors/dtypes.{safetensors,json}), the corruption
 * matrix (one malformed file per rule), truncation at every byte, allocation failure, limits. */
#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"
#include "format/safetensors.h"
#include "tensor/quant.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FIX "tests/data/safetensors/"

/* A file image: u64 N = strlen(hdr), hdr, data_len zero bytes. Caller frees with free(). */
static uint8_t *mk(const char *hdr, size_t data_len, size_t *len) {
    size_t n = strlen(hdr);
    *len = 8 + n + data_len;
    uint8_t *b = calloc(1, *len ? *len : 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, hdr, n);
    return b;
}

/* Opens the image of (hdr, data_len); returns the status, message in e. */
static lm_status open_img(const char *hdr, size_t data_len, lm_err *e) {
    size_t len;
    uint8_t *b = mk(hdr, data_len, &len);
    lm_st *st = NULL;
    lm_err_clear(e);
    lm_status rc = lm_st_open_buffer(b, len, NULL, &st, e);
    lm_st_close(st);
    free(b);
    return rc;
}

static lm_dtype dtype_of(const char *s) {
    static const struct { const char *n; lm_dtype t; } m[] = {
        {"F64", LM_DTYPE_F64}, {"F32", LM_DTYPE_F32}, {"F16", LM_DTYPE_F16},
        {"BF16", LM_DTYPE_BF16}, {"I64", LM_DTYPE_I64}, {"I32", LM_DTYPE_I32},
        {"I16", LM_DTYPE_I16}, {"I8", LM_DTYPE_I8}, {"U8", LM_DTYPE_U8},
        {"U16", LM_DTYPE_U16}, {"U32", LM_DTYPE_U32}, {"U64", LM_DTYPE_U64},
        {"BOOL", LM_DTYPE_BOOL}, {"F8_E4M3", LM_DTYPE_F8_E4M3}, {"F8_E5M2", LM_DTYPE_F8_E5M2},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(m[i].n, s) == 0) return m[i].t;
    return LM_DTYPE_INVALID;
}

/* Element i of t as a double (integers up to 2^53 exactly; u64/i64 compared separately). */
static double elem(const lm_tensor_info *t, uint64_t i) {
    const uint8_t *p = t->data;
    union { uint64_t u; int64_t s; double d; } v8;
    uint32_t u32;
    uint16_t u16;
    float f;
    switch (t->dtype) {
    case LM_DTYPE_F64: memcpy(&v8.d, p + 8 * i, 8); return v8.d;
    case LM_DTYPE_F32: memcpy(&f, p + 4 * i, 4); return f;
    case LM_DTYPE_F16: memcpy(&u16, p + 2 * i, 2); return lm_half_to_f32(u16);
    case LM_DTYPE_BF16: memcpy(&u16, p + 2 * i, 2); return lm_bf16_to_f32(u16);
    case LM_DTYPE_I32: memcpy(&u32, p + 4 * i, 4); return (int32_t)u32;
    case LM_DTYPE_U32: memcpy(&u32, p + 4 * i, 4); return u32;
    case LM_DTYPE_I16: memcpy(&u16, p + 2 * i, 2); return (int16_t)u16;
    case LM_DTYPE_U16: memcpy(&u16, p + 2 * i, 2); return u16;
    case LM_DTYPE_I8: return (int8_t)p[i];
    case LM_DTYPE_U8: case LM_DTYPE_BOOL: return p[i];
    default: return NAN;
    }
}

static json_t *load_json(const char *path) {
    char *text;
    size_t len;
    lm_err e;
    lm_err_clear(&e);
    json_t *j = NULL;
    if (lm_file_read_all(path, 1 << 24, &text, &len, &e) != LM_OK) return NULL;
    lm_json_parse(text, len, 64, path, &j, &e);
    lm_free(text);
    return j;
}

static void test_dtypes_fixture(void) {
    lm_err e;
    lm_err_clear(&e);
    json_t *exp = load_json(FIX "dtypes.json");
    T_REQUIRE(exp, "dtypes.json missing (run tools/gen_safetensors_fixtures.py)");
    lm_st *st = NULL;
    T_REQUIRE(lm_st_open_file(FIX "dtypes.safetensors", NULL, &st, &e) == LM_OK, "%s", e.msg);
    json_t *tensors = json_object_get(exp, "tensors");
    uint64_t n_hdr = (uint64_t)json_integer_value(json_object_get(exp, "header_bytes"));
    T_CHECK(lm_st_header_bytes(st) == n_hdr, "N %llu",
            (unsigned long long)lm_st_header_bytes(st));
    T_CHECK(lm_st_file_bytes(st) ==
                (uint64_t)json_integer_value(json_object_get(exp, "file_bytes")), "size");
    T_CHECK(lm_st_n_tensors(st) == json_object_size(tensors), "n_tensors %u",
            lm_st_n_tensors(st));
    const char *name;
    json_t *x;
    json_object_foreach(tensors, name, x) {
        const lm_tensor_info *t = lm_st_find(st, name);
        T_CHECK(t != NULL, "tensor %s not found", name);
        if (!t) continue;
        T_CHECK(strcmp(t->name, name) == 0, "name %s", t->name);
        T_CHECK(t->dtype == dtype_of(json_string_value(json_object_get(x, "dtype"))),
                "%s: dtype %d", name, t->dtype);
        json_t *shape = json_object_get(x, "shape");
        size_t rank = json_array_size(shape);
        T_CHECK(t->n_dims == rank, "%s: rank %u", name, t->n_dims);
        uint64_t count = 1;
        for (size_t d = 0; d < rank; d++) {
            uint64_t dim = (uint64_t)json_integer_value(json_array_get(shape, d));
            T_CHECK(t->ne[rank - 1 - d] == dim, "%s: ne[%zu] %llu != %llu", name, rank - 1 - d,
                    (unsigned long long)t->ne[rank - 1 - d], (unsigned long long)dim);
            count *= dim;
        }
        for (size_t d = rank; d < LM_MAX_DIMS; d++) T_CHECK(t->ne[d] == 1, "%s unused dim", name);
        T_CHECK(t->n_elements == count, "%s: count", name);
        json_t *off = json_object_get(x, "data_offsets");
        uint64_t b = (uint64_t)json_integer_value(json_array_get(off, 0));
        uint64_t en = (uint64_t)json_integer_value(json_array_get(off, 1));
        T_CHECK(t->offset == 8 + n_hdr + b, "%s: offset %llu", name,
                (unsigned long long)t->offset);
        T_CHECK(t->nbytes == en - b, "%s: nbytes %llu", name, (unsigned long long)t->nbytes);
        T_CHECK(t->file_index == 0, "file_index");
        if (t->nbytes == 0) {
            T_CHECK(t->data == NULL, "%s: empty tensor has data", name);
            continue;
        }
        json_t *hex = json_object_get(x, "hex");
        if (hex) { /* F8: raw bytes, as ml_dtypes encoded them */
            const char *h = json_string_value(hex);
            for (uint64_t i = 0; i < t->nbytes; i++) {
                unsigned byte;
                sscanf(h + 2 * i, "%2x", &byte);
                T_CHECK(((const uint8_t *)t->data)[i] == byte, "%s byte %llu", name,
                        (unsigned long long)i);
            }
            continue;
        }
        json_t *vals = json_object_get(x, "values");
        T_CHECK(json_array_size(vals) == count, "%s: %zu values", name, json_array_size(vals));
        for (size_t i = 0; i < json_array_size(vals) && i < count; i++) {
            json_t *v = json_array_get(vals, i);
            if (t->dtype == LM_DTYPE_U64 || t->dtype == LM_DTYPE_I64) {
                /* 64-bit values are decimal strings in the sidecar (exact) */
                uint64_t u;
                memcpy(&u, (const uint8_t *)t->data + 8 * i, 8);
                const char *sv = json_string_value(v);
                uint64_t want = !sv ? 0 : sv[0] == '-' ? (uint64_t)strtoll(sv, NULL, 10)
                                                       : strtoull(sv, NULL, 10);
                T_CHECK(sv && u == want, "%s[%zu] %llu != %s", name, i, (unsigned long long)u,
                        sv ? sv : "?");
            } else if (json_is_boolean(v)) {
                T_CHECK(elem(t, i) == (json_is_true(v) ? 1.0 : 0.0), "%s[%zu]", name, i);
            } else {
                T_CHECK(elem(t, i) == json_number_value(v), "%s[%zu]: %.9g != %.9g", name, i,
                        elem(t, i), json_number_value(v));
            }
        }
    }
    /* file order: offsets ascend */
    for (uint32_t i = 1; i < lm_st_n_tensors(st); i++)
        T_CHECK(lm_st_tensor(st, i)->offset >= lm_st_tensor(st, i - 1)->offset, "order at %u",
                i);
    T_CHECK(lm_st_tensor(st, lm_st_n_tensors(st)) == NULL, "out of range index");
    T_CHECK(lm_st_find(st, "nope") == NULL && lm_st_find(st, "") == NULL, "find absent");
    T_CHECK(lm_st_n_metadata(st) == 2, "n_metadata %u", lm_st_n_metadata(st));
    const char *fmt = lm_st_metadata_get(st, "format");
    T_CHECK(fmt && strcmp(fmt, "pt") == 0, "metadata format");
    const char *note = lm_st_metadata_get(st, "note");
    T_CHECK(note && strcmp(note, "lemma fixture") == 0, "metadata note");
    T_CHECK(lm_st_metadata_get(st, "missing") == NULL, "absent metadata");
    T_CHECK(strcmp(lm_st_metadata_key(st, 0), "format") == 0 &&
                strcmp(lm_st_metadata_value(st, 1), "lemma fixture") == 0, "metadata order");
    lm_st_close(st);
    json_decref(exp);
}

static void test_valid_edge_cases(void) {
    lm_err e;
    T_CHECK(open_img("{}", 0, &e) == LM_OK, "empty header: %s", e.msg);
    T_CHECK(open_img("{}      ", 0, &e) == LM_OK, "space padding: %s", e.msg);
    T_CHECK(open_img("{\"__metadata__\":{}}", 0, &e) == LM_OK, "empty metadata: %s", e.msg);
    /* scalar (rank 0, 1 element), empty tensor (no bytes) at the same offset as another */
    const char *h = "{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"e\":{\"dtype\":\"F16\",\"shape\":[0,7],\"data_offsets\":[4,4]},"
                    "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[4,6]}}";
    size_t len;
    uint8_t *b = mk(h, 6, &len);
    float three = 3.0f;
    memcpy(b + 8 + strlen(h), &three, 4);
    lm_st *st = NULL;
    lm_err_clear(&e);
    T_REQUIRE(lm_st_open_buffer(b, len, NULL, &st, &e) == LM_OK, "%s", e.msg);
    const lm_tensor_info *s = lm_st_find(st, "s"), *em = lm_st_find(st, "e");
    T_CHECK(s && s->n_dims == 0 && s->n_elements == 1 && s->nbytes == 4, "scalar");
    T_CHECK(s && s->data && memcmp(s->data, &three, 4) == 0, "scalar value");
    T_CHECK(em && em->n_elements == 0 && em->data == NULL && em->ne[0] == 7 && em->ne[1] == 0,
            "empty tensor");
    T_CHECK(lm_st_tensor(st, 0) == s, "scalar first in file order");
    lm_st_close(st);
    lm_st_close(NULL);
    free(b);
}

/* One malformed header per rule; each must fail with LM_ERR_FORMAT and a message naming the
 * offending field or tensor. */
static void test_corruption_matrix(void) {
    static const struct {
        const char *what, *hdr;
        size_t data_len;
        const char *needle;
    } cases[] = {
        {"not json", "{\"a\":", 0, "invalid JSON"},
        {"trailing garbage", "{} x", 0, "invalid JSON"},
        {"not an object", "[1,2]", 0, "start with '{'"},
        {"leading space", " {}", 0, "start with '{'"},
        {"empty header", "", 0, "start with '{'"},
        {"object then array", "{\"a\":[]}", 0, "'a'"},
        {"duplicate key",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
         2, "duplicate"},
        {"unknown dtype", "{\"t\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "unknown dtype 'Q4'"},
        {"lower-case dtype", "{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
         4, "unknown dtype 'f32'"},
        {"dtype not string", "{\"t\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         "'t': dtype"},
        {"missing dtype", "{\"t\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "'t': dtype"},
        {"shape not array", "{\"t\":{\"dtype\":\"U8\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
         "'t': shape"},
        {"shape negative", "{\"t\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}",
         1, "'t': shape[0]"},
        {"shape float", "{\"t\":{\"dtype\":\"U8\",\"shape\":[2.0],\"data_offsets\":[0,2]}}", 2,
         "'t': shape[0]"},
        {"shape string", "{\"t\":{\"dtype\":\"U8\",\"shape\":[\"2\"],\"data_offsets\":[0,2]}}",
         2, "'t': shape[0]"},
        /* beyond int64: the JSON layer reads the document's numbers as reals, and the shape
         * check refuses the non-integer */
        {"shape huge", "{\"t\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],"
                       "\"data_offsets\":[0,1]}}", 1, "'t': shape[0]"},
        {"shape product overflow",
         "{\"t\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]}}",
         1, "'t': shape element count overflows"},
        {"byte size overflow",
         "{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,1]}}",
         1, "'t': byte size overflows"},
        {"rank 5",
         "{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
         "'t': shape rank 5"},
        {"offsets length 1", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1,
         "'t': data_offsets"},
        {"offsets length 3",
         "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1,
         "'t': data_offsets"},
        {"offsets not array", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":1}}", 1,
         "'t': data_offsets"},
        {"offsets negative", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
         1, "'t': data_offsets"},
        {"offsets float", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.0]}}",
         1, "'t': data_offsets"},
        {"end < begin", "{\"t\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,1]}}", 2,
         "'t': data_offsets END 1 < BEGIN 2"},
        {"first not 0", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2,
         "'t': data_offsets BEGIN 1, expected 0"},
        {"hole",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}",
         3, "'b': data_offsets BEGIN 2, expected 1 (hole"},
        {"overlap",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
         3, "'b': data_offsets BEGIN 1, expected 2 (overlaps"},
        {"same range twice",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
         2, "BEGIN 0, expected 2"},
        {"size != dtype x shape",
         "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
         "'t': data_offsets span 4 bytes, dtype x shape needs 8"},
        {"past end of file", "{\"t\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
         4, "'t': data_offsets END 8 past the end"},
        {"trailing bytes", "{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 3,
         "1 trailing bytes"},
        {"trailing bytes, no tensors", "{}", 1, "1 trailing bytes"},
        {"metadata non-string", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ 'k'"},
        {"metadata nested", "{\"__metadata__\":{\"k\":{}}}", 0, "__metadata__ 'k'"},
        {"metadata not object", "{\"__metadata__\":\"x\"}", 0, "__metadata__ is not"},
        {"unknown field",
         "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":1}}", 1,
         "'t': unknown field 'extra'"},
        {"entry not object", "{\"t\":[1]}", 0, "'t': entry is not an object"},
        {"NUL escape in name", "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],"
                               "\"data_offsets\":[0,1]}}", 1, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_err e;
        lm_status rc = open_img(cases[i].hdr, cases[i].data_len, &e);
        T_CHECK(rc == LM_ERR_FORMAT, "%s: status %d", cases[i].what, rc);
        T_CHECK(strstr(e.msg, cases[i].needle) != NULL, "%s: message '%s' lacks '%s'",
                cases[i].what, e.msg, cases[i].needle);
        T_CHECK(strncmp(e.msg, "safetensors: ", 13) == 0, "%s: prefix '%s'", cases[i].what,
                e.msg);
    }
}

/* The length prefix and byte-level rules, on hand-made images. */
static void test_header_length_rules(void) {
    lm_err e;
    lm_st *st = NULL;
    uint8_t small[7] = {0};
    for (size_t n = 0; n < 8; n++) {
        lm_err_clear(&e);
        T_CHECK(lm_st_open_buffer(n ? small : NULL, n, NULL, &st, &e) == LM_ERR_FORMAT &&
                    strstr(e.msg, "shorter than the 8-byte"), "%zu bytes: %s", n, e.msg);
        T_CHECK(st == NULL, "handle set on failure");
    }
    uint8_t b[16] = {0};
    /* N > cap */
    uint64_t n = LM_ST_MAX_HEADER_BYTES + 1;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(b, sizeof b, NULL, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "header length N 100000001 > limit"), "cap: %s", e.msg);
    /* N past the end */
    memset(b, 0, 8);
    b[0] = 9;
    b[8] = '{';
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(b, sizeof b, NULL, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "N 9 runs past the end"), "past end: %s", e.msg);
    /* N + 8 overflows (needs a cap above it to get that far) */
    lm_st_limits lim;
    lm_st_default_limits(&lim);
    lim.max_header_bytes = UINT64_MAX;
    memset(b, 0xff, 8);
    b[0] = 0xfc;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(b, sizeof b, &lim, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "N 18446744073709551612 runs past"), "overflow: %s", e.msg);
    /* not UTF-8: a lone continuation byte, an overlong '/', a surrogate, a truncated sequence */
    static const char *bad_utf8[] = {"{\"\x80\":1}", "{\"\xc0\xaf\":1}", "{\"\xed\xa0\x80\":1}",
                                     "{\"a\":\"\xe2\x82\"}", "{\"\xf5\x80\x80\x80\":1}"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        T_CHECK(open_img(bad_utf8[i], 0, &e) == LM_ERR_FORMAT && strstr(e.msg, "UTF-8 at byte"),
                "bad utf8 %zu: %s", i, e.msg);
    }
    /* valid multi-byte UTF-8 names are fine */
    T_CHECK(open_img("{\"__metadata__\":{\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\":\"v\"}}", 0,
                     &e) == LM_OK, "utf8 name: %s", e.msg);
    /* absurd nesting: rejected by the depth pre-scan, without recursion */
    size_t deep = 100000;
    char *h = malloc(2 * deep + 8);
    strcpy(h, "{\"a\":");
    size_t p = 5;
    for (size_t i = 0; i < deep; i++) h[p++] = '[';
    for (size_t i = 0; i < deep; i++) h[p++] = ']';
    h[p++] = '}';
    h[p] = 0;
    T_CHECK(open_img(h, 0, &e) == LM_ERR_FORMAT && strstr(e.msg, "nesting deeper"), "deep: %s",
            e.msg);
    free(h);
    /* moderate nesting inside __metadata__ values is refused too (not a string) */
    T_CHECK(open_img("{\"__metadata__\":{\"k\":[[[]]]}}", 0, &e) == LM_ERR_FORMAT, "nested");
}

static void test_limits(void) {
    size_t len;
    uint8_t *img = NULL;
    lm_err e;
    lm_st *st = NULL;
    const char *h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
                    "\"__metadata__\":{\"x\":\"y\",\"z\":\"w\"}}";
    img = mk(h, 2, &len);
    lm_st_limits lim;
    lm_st_default_limits(&lim);
    lim.max_tensors = 1;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(img, len, &lim, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "2 tensors > limit 1"), "max_tensors: %s", e.msg);
    lm_st_default_limits(&lim);
    lim.max_meta_entries = 1;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(img, len, &lim, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "__metadata__ has 2 entries"), "max_meta: %s", e.msg);
    lm_st_default_limits(&lim);
    lim.max_header_bytes = strlen(h) - 1;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(img, len, &lim, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "> limit"), "max_header: %s", e.msg);
    lm_st_default_limits(&lim);
    lim.max_json_depth = 2;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(img, len, &lim, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "nesting deeper than 2"), "depth: %s", e.msg);
    lm_st_default_limits(&lim);
    lim.max_name_bytes = 0;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(img, len, &lim, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "name of 1 bytes > limit 0"), "name: %s", e.msg);
    lm_st_default_limits(&lim);
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(img, len, &lim, &st, &e) == LM_OK, "defaults: %s", e.msg);
    lm_st_close(st);
    free(img);
}

/* Every proper prefix of a valid file, and the file plus one byte, must be refused. */
static void test_truncation_every_byte(void) {
    char *data;
    size_t len;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_file_read_all(FIX "dtypes.safetensors", 1 << 20, &data, &len, &e) == LM_OK,
              "%s", e.msg);
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan catches any read past n */
        memcpy(copy, data, n);
        lm_st *st = NULL;
        lm_err_clear(&e);
        lm_status rc = lm_st_open_buffer(n ? copy : NULL, n, NULL, &st, &e);
        if (rc != LM_ERR_FORMAT || st != NULL) {
            if (bad++ < 5) T_CHECK(0, "prefix of %zu bytes: status %d (%s)", n, rc, e.msg);
            lm_st_close(st);
        }
        free(copy);
    }
    T_CHECK(bad == 0, "%d prefixes accepted", bad);
    uint8_t *plus = malloc(len + 1);
    memcpy(plus, data, len);
    plus[len] = 0;
    lm_st *st = NULL;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(plus, len + 1, NULL, &st, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "trailing"), "one extra byte: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_st_open_buffer(plus, len, NULL, &st, &e) == LM_OK, "exact: %s", e.msg);
    lm_st_close(st);
    free(plus);
    lm_free(data);
}

/* Allocation n fails, n = 1, 2, ... until open succeeds: each failure is clean (LM_ERR_NOMEM,
 * no handle, and ASan reports no leak at exit). */
static void test_alloc_failures(void) {
    int succeeded = 0;
    unsigned long n;
    for (n = 1; n < 10000 && !succeeded; n++) {
        lm_err e;
        lm_err_clear(&e);
        lm_st *st = NULL;
        lm_alloc_fail_after(n, 0);
        lm_status rc = lm_st_open_file(FIX "dtypes.safetensors", NULL, &st, &e);
        unsigned long injected = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (rc == LM_OK) {
            T_CHECK(injected == 0, "success despite an injected failure at %lu", n);
            T_CHECK(lm_st_n_tensors(st) == 18, "n_tensors after OOM loop");
            succeeded = 1;
        } else {
            T_CHECK(rc == LM_ERR_NOMEM, "alloc %lu: status %d (%s)", n, rc, e.msg);
            T_CHECK(st == NULL, "alloc %lu: handle on failure", n);
        }
        lm_st_close(st);
    }
    T_CHECK(succeeded && n > 3, "never succeeded or too few allocations (%lu)", n);
}

static void test_open_file_errors(void) {
    lm_err e;
    lm_st *st = NULL;
    lm_err_clear(&e);
    T_CHECK(lm_st_open_file("/nonexistent/x.safetensors", NULL, &st, &e) == LM_ERR_IO &&
                strstr(e.msg, "/nonexistent/x.safetensors"), "missing: %s", e.msg);
    char path[600];
    snprintf(path, sizeof path, "%s/bad.safetensors", t_tmpdir());
    size_t len;
    uint8_t *img = mk("{\"t\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, &len);
    T_REQUIRE(lm_file_write_atomic(path, img, len, &e) == LM_OK, "%s", e.msg);
    free(img);
    lm_err_clear(&e);
    T_CHECK(lm_st_open_file(path, NULL, &st, &e) == LM_ERR_FORMAT && strstr(e.msg, path) &&
                strstr(e.msg, "unknown dtype 'Q4'"), "file error names path: %s", e.msg);
    /* an empty file maps to no data at all */
    snprintf(path, sizeof path, "%s/empty.safetensors", t_tmpdir());
    T_REQUIRE(lm_file_write_atomic(path, "", 0, &e) == LM_OK, "%s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_st_open_file(path, NULL, &st, &e) == LM_ERR_FORMAT, "empty file: %s", e.msg);
}

int main(void) {
    T_RUN(test_dtypes_fixture);
    T_RUN(test_valid_edge_cases);
    T_RUN(test_corruption_matrix);
    T_RUN(test_header_length_rules);
    T_RUN(test_limits);
    T_RUN(test_truncation_every_byte);
    T_RUN(test_alloc_failures);
    T_RUN(test_open_file_errors);
    return t_finish();
}
