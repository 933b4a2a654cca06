/*
 * test_gguf.c — the GGUF reader and writer: round trips of every metadata and tensor type,
 * files written by others (the Python `gguf` package, llama.cpp's vocab files, real models),
 * the corruption matrix (one malformed file per rejection rule, built byte by byte here) and
 * allocation-failure loops.
 *
 * Expected values for foreign files come from independent sources: the literals written by
 * tools/gen_gguf_fixture.py, ../shared/testdata/vocab/SOURCES.md, and what the Python `gguf`
 * package's GGUFReader reports for the real models (noted next to each number).
 */
#include "core/alloc.h"
#include "core/checked.h"
#include "format/gguf.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
 * a byte builder for handcrafted files
 * ------------------------------------------------------------------------------------ */

typedef struct bb {
    uint8_t *p;
    size_t len, cap;
} bb;

static void bb_put(bb *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}
static void bb_u8(bb *b, uint8_t v) {
    bb_put(b, &v, 1);
}
static void bb_u32(bb *b, uint32_t v) {
    bb_put(b, &v, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    bb_put(b, &v, 8);
}
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_hdr(bb *b, uint32_t version, uint64_t nt, uint64_t nkv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, nt);
    bb_u64(b, nkv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, LM_GGUF_TYPE_UINT32);
    bb_u32(b, v);
}
static void bb_tinfo(bb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                     uint64_t off) {
    bb_str(b, name);
    bb_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++)
        bb_u64(b, ne[i]);
    bb_u32(b, type);
    bb_u64(b, off);
}
static void bb_pad(bb *b, size_t align) {
    while (b->len % align)
        bb_u8(b, 0);
}
static void bb_zeros(bb *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        bb_u8(b, 0);
}

/* Opens b from an exact-size heap copy (so ASan sees any read past the end). */
static lm_status open_bb(const bb *b, const lm_gguf_limits *lim, lm_gguf **g, lm_err *e) {
    lm_err_clear(e);
    void *copy = malloc(b->len ? b->len : 1);
    memcpy(copy, b->p, b->len);
    lm_status st = lm_gguf_open_buffer(copy, b->len, lim, g, e);
    if (st != LM_OK) free(copy);
    /* on success the copy must outlive g: tests close with close_bb */
    return st;
}
static void close_bb(lm_gguf *g) {
    if (!g) return;
    void *base = (void *)lm_gguf_base(g);
    lm_gguf_close(g);
    free(base);
}

/* Expects the file to be rejected with status st and a message containing every needle. */
#define REJECT(b, lim, st, ...) reject_(__LINE__, b, lim, st, __VA_ARGS__, (const char *)NULL)
static void reject_(int line, bb *b, const lm_gguf_limits *lim, lm_status want, ...) {
    lm_gguf *g = NULL;
    lm_err e;
    lm_status st = open_bb(b, lim, &g, &e);
    T_CHECK(st == want, "line %d: status %d, want %d (%s)", line, st, want, e.msg);
    T_CHECK(g == NULL, "line %d: handle returned on failure", line);
    va_list ap;
    va_start(ap, want);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        T_CHECK(strstr(e.msg, needle) != NULL, "line %d: message '%s' lacks '%s'", line, e.msg,
                needle);
    va_end(ap);
    close_bb(g);
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------------------------
 * round trips
 * ------------------------------------------------------------------------------------ */

static lm_gguf_writer *make_meta_writer(lm_err *e) {
    lm_gguf_writer *w = NULL;
    if (lm_gguf_writer_new(&w, e) != LM_OK) return NULL;
    lm_gguf_set_u8(w, "u8", 250, e);
    lm_gguf_set_i8(w, "i8", -128, e);
    lm_gguf_set_u16(w, "u16", 65535, e);
    lm_gguf_set_i16(w, "i16", -32768, e);
    lm_gguf_set_u32(w, "u32", 4294967295u, e);
    lm_gguf_set_i32(w, "i32", INT32_MIN, e);
    lm_gguf_set_f32(w, "f32", -0.375f, e);
    lm_gguf_set_bool(w, "bool", 1, e);
    lm_gguf_set_bool(w, "bool0", 0, e);
    lm_gguf_set_u64(w, "u64", UINT64_MAX, e);
    lm_gguf_set_i64(w, "i64", INT64_MIN, e);
    lm_gguf_set_f64(w, "f64", 1e300, e);
    lm_gguf_set_str(w, "str", "日本語 ✓ \"quoted\"", e);
    lm_gguf_set_str(w, "empty", "", e);
    lm_gguf_set_strn(w, "binary", "a\0b", 3, e);
    const uint8_t au8[] = {1, 2, 255};
    const int8_t ai8[] = {-1, 2};
    const uint16_t au16[] = {65535};
    const int16_t ai16[] = {-2, 3};
    const uint32_t au32[] = {7, 4000000000u};
    const int32_t ai32[] = {-5, 6, 7};
    const float af32[] = {0.5f, -1.25f};
    const uint8_t abool[] = {1, 0, 1};
    const uint64_t au64[] = {UINT64_MAX, 0};
    const int64_t ai64[] = {INT64_MIN};
    const double af64[] = {2.5, -1e-300};
    lm_gguf_set_arr(w, "a.u8", LM_GGUF_TYPE_UINT8, au8, 3, e);
    lm_gguf_set_arr(w, "a.i8", LM_GGUF_TYPE_INT8, ai8, 2, e);
    lm_gguf_set_arr(w, "a.u16", LM_GGUF_TYPE_UINT16, au16, 1, e);
    lm_gguf_set_arr(w, "a.i16", LM_GGUF_TYPE_INT16, ai16, 2, e);
    lm_gguf_set_arr(w, "a.u32", LM_GGUF_TYPE_UINT32, au32, 2, e);
    lm_gguf_set_arr(w, "a.i32", LM_GGUF_TYPE_INT32, ai32, 3, e);
    lm_gguf_set_arr(w, "a.f32", LM_GGUF_TYPE_FLOAT32, af32, 2, e);
    lm_gguf_set_arr(w, "a.bool", LM_GGUF_TYPE_BOOL, abool, 3, e);
    lm_gguf_set_arr(w, "a.u64", LM_GGUF_TYPE_UINT64, au64, 2, e);
    lm_gguf_set_arr(w, "a.i64", LM_GGUF_TYPE_INT64, ai64, 1, e);
    lm_gguf_set_arr(w, "a.f64", LM_GGUF_TYPE_FLOAT64, af64, 2, e);
    lm_gguf_set_arr(w, "a.empty", LM_GGUF_TYPE_FLOAT32, NULL, 0, e);
    const char *strs[] = {"zero", "", "二", "x\"y"};
    lm_gguf_set_arr_str(w, "a.str", strs, NULL, 4, e);
    lm_gguf_set_arr_str(w, "a.str_empty", NULL, NULL, 0, e);
    /* nested: [[1, 2], [], [3]] of int32, and [["a"], ["b", "c"]] of strings */
    lm_gguf_warr *outer, *in;
    lm_gguf_warr_new(LM_GGUF_TYPE_ARRAY, &outer, e);
    int32_t v1 = 1, v2 = 2, v3 = 3;
    lm_gguf_warr_new(LM_GGUF_TYPE_INT32, &in, e);
    lm_gguf_warr_push(in, &v1, e);
    lm_gguf_warr_push(in, &v2, e);
    lm_gguf_warr_push_arr(outer, in, e);
    lm_gguf_warr_new(LM_GGUF_TYPE_INT32, &in, e);
    lm_gguf_warr_push_arr(outer, in, e);
    lm_gguf_warr_new(LM_GGUF_TYPE_INT32, &in, e);
    lm_gguf_warr_push(in, &v3, e);
    lm_gguf_warr_push_arr(outer, in, e);
    lm_gguf_set_warr(w, "n.int", outer, e);
    lm_gguf_warr_new(LM_GGUF_TYPE_ARRAY, &outer, e);
    lm_gguf_warr_new(LM_GGUF_TYPE_STRING, &in, e);
    lm_gguf_warr_push_str(in, "a", 1, e);
    lm_gguf_warr_push_arr(outer, in, e);
    lm_gguf_warr_new(LM_GGUF_TYPE_STRING, &in, e);
    lm_gguf_warr_push_str(in, "b", 1, e);
    lm_gguf_warr_push_str(in, "c", 1, e);
    lm_gguf_warr_push_arr(outer, in, e);
    lm_gguf_set_warr(w, "n.str", outer, e);
    return w;
}

static void check_meta(const lm_gguf *g) {
    lm_err e;
    lm_err_clear(&e);
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    double d = 0;
    int b = -1;
    const char *s;
    size_t n;
    T_CHECK(lm_gguf_n_kv(g) == 31, "n_kv %llu", (unsigned long long)lm_gguf_n_kv(g));
    T_CHECK(lm_gguf_get_u32(g, "u8", &u32, &e) == LM_OK && u32 == 250, "u8 %u", u32);
    T_CHECK(lm_gguf_kv_type(g, lm_gguf_find(g, "u8")) == LM_GGUF_TYPE_UINT8, "u8 type");
    T_CHECK(lm_gguf_get_i32(g, "i8", &i32, &e) == LM_OK && i32 == -128, "i8 %d", i32);
    T_CHECK(lm_gguf_get_u32(g, "u16", &u32, &e) == LM_OK && u32 == 65535, "u16 %u", u32);
    T_CHECK(lm_gguf_get_i32(g, "i16", &i32, &e) == LM_OK && i32 == -32768, "i16 %d", i32);
    T_CHECK(lm_gguf_get_u32(g, "u32", &u32, &e) == LM_OK && u32 == 4294967295u, "u32 %u", u32);
    T_CHECK(lm_gguf_get_i32(g, "i32", &i32, &e) == LM_OK && i32 == INT32_MIN, "i32 %d", i32);
    T_CHECK(lm_gguf_get_f32(g, "f32", &f, &e) == LM_OK && f == -0.375f, "f32 %g", f);
    T_CHECK(lm_gguf_get_bool(g, "bool", &b, &e) == LM_OK && b == 1, "bool %d", b);
    T_CHECK(lm_gguf_get_bool(g, "bool0", &b, &e) == LM_OK && b == 0, "bool0 %d", b);
    T_CHECK(lm_gguf_get_u64(g, "u64", &u64, &e) == LM_OK && u64 == UINT64_MAX, "u64");
    T_CHECK(lm_gguf_get_i64(g, "i64", &i64, &e) == LM_OK && i64 == INT64_MIN, "i64");
    T_CHECK(lm_gguf_get_f64(g, "f64", &d, &e) == LM_OK && d == 1e300, "f64 %g", d);
    T_CHECK(lm_gguf_get_str(g, "str", &s, &n, &e) == LM_OK && n == strlen("日本語 ✓ \"quoted\"") &&
                memcmp(s, "日本語 ✓ \"quoted\"", n) == 0,
            "str");
    T_CHECK(lm_gguf_get_str(g, "empty", &s, &n, &e) == LM_OK && n == 0, "empty str");
    T_CHECK(lm_gguf_get_str(g, "binary", &s, &n, &e) == LM_OK && n == 3 &&
                memcmp(s, "a\0b", 3) == 0,
            "binary str");
    T_CHECK(e.code == LM_OK, "unexpected error: %s", e.msg);

    const void *data;
    uint64_t cnt;
    int64_t k;
    T_CHECK(lm_gguf_get_arr(g, "a.u8", LM_GGUF_TYPE_UINT8, &data, &cnt, &e) == LM_OK && cnt == 3 &&
                memcmp(data, "\x01\x02\xff", 3) == 0,
            "a.u8");
    T_CHECK(lm_gguf_get_arr(g, "a.i8", LM_GGUF_TYPE_INT8, &data, &cnt, &e) == LM_OK && cnt == 2 &&
                ((const int8_t *)data)[0] == -1,
            "a.i8");
    uint16_t u16;
    T_CHECK(lm_gguf_get_arr(g, "a.u16", LM_GGUF_TYPE_UINT16, &data, &cnt, &e) == LM_OK &&
                cnt == 1 && (memcpy(&u16, data, 2), u16 == 65535),
            "a.u16");
    int16_t i16;
    T_CHECK(lm_gguf_get_arr(g, "a.i16", LM_GGUF_TYPE_INT16, &data, &cnt, &e) == LM_OK && cnt == 2 &&
                (memcpy(&i16, data, 2), i16 == -2),
            "a.i16");
    k = lm_gguf_find(g, "a.u32");
    T_CHECK(lm_gguf_arr_n(g, k) == 2 && lm_gguf_arr_get_u32(g, k, 1) == 4000000000u, "a.u32");
    k = lm_gguf_find(g, "a.i32");
    T_CHECK(lm_gguf_arr_type(g, k) == LM_GGUF_TYPE_INT32 && lm_gguf_arr_get_i32(g, k, 0) == -5 &&
                lm_gguf_arr_get_i32(g, k, 2) == 7,
            "a.i32");
    T_CHECK(lm_gguf_arr_get_i32(g, k, 3) == 0, "out of range accessor must return 0");
    T_CHECK(lm_gguf_arr_get_f32(g, k, 0) == 0.0f, "type-confused accessor must return 0");
    k = lm_gguf_find(g, "a.f32");
    T_CHECK(lm_gguf_arr_get_f32(g, k, 1) == -1.25f, "a.f32");
    T_CHECK(lm_gguf_get_arr(g, "a.bool", LM_GGUF_TYPE_BOOL, &data, &cnt, &e) == LM_OK && cnt == 3 &&
                memcmp(data, "\x01\x00\x01", 3) == 0,
            "a.bool");
    T_CHECK(lm_gguf_get_arr(g, "a.u64", LM_GGUF_TYPE_UINT64, &data, &cnt, &e) == LM_OK &&
                cnt == 2 && (memcpy(&u64, data, 8), u64 == UINT64_MAX),
            "a.u64");
    T_CHECK(lm_gguf_get_arr(g, "a.i64", LM_GGUF_TYPE_INT64, &data, &cnt, &e) == LM_OK && cnt == 1 &&
                (memcpy(&i64, data, 8), i64 == INT64_MIN),
            "a.i64");
    T_CHECK(lm_gguf_get_arr(g, "a.f64", LM_GGUF_TYPE_FLOAT64, &data, &cnt, &e) == LM_OK &&
                cnt == 2 && (memcpy(&d, (const char *)data + 8, 8), d == -1e-300),
            "a.f64");
    T_CHECK(lm_gguf_get_arr(g, "a.empty", LM_GGUF_TYPE_FLOAT32, &data, &cnt, &e) == LM_OK &&
                cnt == 0,
            "a.empty");
    k = lm_gguf_find(g, "a.str");
    T_CHECK(lm_gguf_arr_type(g, k) == LM_GGUF_TYPE_STRING && lm_gguf_arr_n(g, k) == 4, "a.str");
    T_CHECK(lm_gguf_arr_str(g, k, 2, &s, &n) == LM_OK && n == strlen("二") &&
                memcmp(s, "二", n) == 0,
            "a.str[2]");
    T_CHECK(lm_gguf_arr_str(g, k, 1, &s, &n) == LM_OK && n == 0, "a.str[1] empty");
    T_CHECK(lm_gguf_arr_str(g, k, 3, &s, &n) == LM_OK && n == 3 && memcmp(s, "x\"y", 3) == 0,
            "a.str[3]");
    T_CHECK(lm_gguf_arr_str(g, k, 4, &s, &n) == LM_ERR_INVALID_ARG, "a.str[4] out of range");
    T_CHECK(lm_gguf_arr_str(g, lm_gguf_find(g, "a.i32"), 0, &s, &n) == LM_ERR_INVALID_ARG,
            "arr_str on an int array");
    k = lm_gguf_find(g, "a.str_empty");
    T_CHECK(k >= 0 && lm_gguf_arr_n(g, k) == 0, "a.str_empty");
    T_CHECK(e.code == LM_OK, "unexpected error: %s", e.msg);

    /* nested */
    lm_gguf_value v, el, x;
    k = lm_gguf_find(g, "n.int");
    T_REQUIRE(lm_gguf_kv_value(g, (uint64_t)k, &v, &e) == LM_OK, "%s", e.msg);
    T_CHECK(v.type == LM_GGUF_TYPE_ARRAY && v.elem_type == LM_GGUF_TYPE_ARRAY && v.n == 3, "n.int");
    T_REQUIRE(lm_gguf_value_arr_elem(&v, 0, &el, &e) == LM_OK, "%s", e.msg);
    T_CHECK(el.elem_type == LM_GGUF_TYPE_INT32 && el.n == 2, "n.int[0]");
    T_REQUIRE(lm_gguf_value_arr_elem(&el, 1, &x, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_gguf_value_i64(&x, "n.int[0][1]", &i64, &e) == LM_OK && i64 == 2, "n.int[0][1]");
    T_REQUIRE(lm_gguf_value_arr_elem(&v, 1, &el, &e) == LM_OK, "%s", e.msg);
    T_CHECK(el.n == 0, "n.int[1] empty");
    T_REQUIRE(lm_gguf_value_arr_elem(&v, 2, &el, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_value_arr_elem(&el, 0, &x, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_gguf_value_i64(&x, "n.int[2][0]", &i64, &e) == LM_OK && i64 == 3, "n.int[2][0]");
    T_CHECK(lm_gguf_value_arr_elem(&v, 3, &el, &e) == LM_ERR_INVALID_ARG, "index 3 accepted");
    lm_err_clear(&e);
    k = lm_gguf_find(g, "n.str");
    T_REQUIRE(lm_gguf_kv_value(g, (uint64_t)k, &v, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_value_arr_elem(&v, 1, &el, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_value_arr_elem(&el, 1, &x, &e) == LM_OK, "%s", e.msg);
    T_CHECK(x.type == LM_GGUF_TYPE_STRING && x.size == 1 && x.data[0] == 'c', "n.str[1][1]");
    char *j = lm_gguf_value_to_json(g, (uint64_t)k, 10);
    T_CHECK(j && strcmp(j, "[[\"a\"], [\"b\", \"c\"]]") == 0, "json '%s'", j ? j : "(null)");
    lm_free(j);
}

static void test_roundtrip_meta(void) {
    lm_err e;
    lm_err_clear(&e);
    lm_gguf_writer *w = make_meta_writer(&e);
    T_REQUIRE(w && e.code == LM_OK, "writer: %s", e.msg);
    for (uint32_t version = 2; version <= 3; version++) {
        void *buf;
        size_t len;
        T_REQUIRE(lm_gguf_writer_set_version(w, version, &e) == LM_OK, "%s", e.msg);
        T_REQUIRE(lm_gguf_write_buffer(w, &buf, &len, &e) == LM_OK, "%s", e.msg);
        lm_gguf *g;
        T_REQUIRE(lm_gguf_open_buffer(buf, len, NULL, &g, &e) == LM_OK, "v%u: %s", version, e.msg);
        T_CHECK(lm_gguf_version(g) == version, "version %u", lm_gguf_version(g));
        T_CHECK(lm_gguf_n_tensors(g) == 0, "tensors");
        check_meta(g);
        lm_gguf_close(g);
        lm_free(buf);
    }
    /* replacing a key keeps one entry */
    T_CHECK(lm_gguf_set_u32(w, "u8", 7, &e) == LM_OK, "replace");
    void *buf;
    size_t len;
    lm_gguf *g;
    T_REQUIRE(lm_gguf_write_buffer(w, &buf, &len, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_open_buffer(buf, len, NULL, &g, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_gguf_n_kv(g) == 31 && lm_gguf_kv_type(g, 0) == LM_GGUF_TYPE_UINT32, "replaced");
    lm_gguf_close(g);
    lm_free(buf);
    /* writer argument checks */
    T_CHECK(lm_gguf_set_u32(w, "", 1, &e) == LM_ERR_INVALID_ARG, "empty key accepted");
    lm_err_clear(&e);
    T_CHECK(lm_gguf_set_alignment(w, 48, &e) == LM_ERR_INVALID_ARG, "alignment 48 accepted");
    lm_err_clear(&e);
    T_CHECK(lm_gguf_set_u64(w, "general.alignment", 64, &e) == LM_ERR_INVALID_ARG,
            "u64 alignment accepted");
    lm_err_clear(&e);
    T_CHECK(lm_gguf_writer_set_version(w, 1, &e) == LM_ERR_INVALID_ARG, "version 1 accepted");
    lm_gguf_writer_free(w);
}

static void test_roundtrip_tensors(void) {
    lm_err e;
    lm_err_clear(&e);
    lm_gguf_writer *w;
    T_REQUIRE(lm_gguf_writer_new(&w, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_set_alignment(w, 64, &e) == LM_OK, "%s", e.msg);
    lm_gguf_set_str(w, "general.architecture", "test", &e);
    uint8_t *bufs[LM_DTYPE_GGML_COUNT] = {0};
    uint64_t sizes[LM_DTYPE_GGML_COUNT] = {0};
    int n_types = 0;
    t_srand(42);
    for (uint32_t t = 0; t < LM_DTYPE_GGML_COUNT; t++) {
        if (!lm_dtype_known_ggml(t)) continue;
        const lm_dtype_traits *tr = lm_dtype_get((lm_dtype)t);
        uint64_t ne[3] = {tr->block_size * 2ull, 3, 2};
        sizes[t] = (uint64_t)tr->type_size * 2 * 3 * 2;
        bufs[t] = malloc(sizes[t]);
        for (uint64_t i = 0; i < sizes[t]; i++)
            bufs[t][i] = (uint8_t)t_rand_u64();
        char name[64];
        snprintf(name, sizeof name, "tensor.%s", tr->name);
        T_CHECK(lm_gguf_add_tensor(w, name, (lm_dtype)t, 3, ne, bufs[t], sizes[t], &e) == LM_OK,
                "%s: %s", name, e.msg);
        n_types++;
    }
    T_CHECK(n_types >= 30, "only %d GGML types", n_types);
    uint64_t ne1[1] = {5};
    T_CHECK(lm_gguf_add_tensor(w, "bad", LM_DTYPE_Q4_0, 1, ne1, bufs[0], 18, &e) ==
                LM_ERR_INVALID_ARG,
            "q4_0 with ne0 5 accepted");
    lm_err_clear(&e);
    T_CHECK(lm_gguf_add_tensor(w, "tensor.f32", LM_DTYPE_F32, 1, ne1, bufs[0], 20, &e) ==
                LM_ERR_INVALID_ARG,
            "duplicate name accepted");
    lm_err_clear(&e);
    T_CHECK(lm_gguf_add_tensor(w, "x", LM_DTYPE_F32, 1, ne1, bufs[0], 24, &e) == LM_ERR_INVALID_ARG,
            "wrong nbytes accepted");
    lm_err_clear(&e);

    char path[512];
    snprintf(path, sizeof path, "%s/tensors.gguf", t_tmpdir());
    T_REQUIRE(lm_gguf_write_file(w, path, &e) == LM_OK, "%s", e.msg);
    void *mem;
    size_t memlen;
    T_REQUIRE(lm_gguf_write_buffer(w, &mem, &memlen, &e) == LM_OK, "%s", e.msg);
    lm_gguf *g;
    T_REQUIRE(lm_gguf_open_file(path, NULL, &g, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_gguf_size(g) == memlen && memcmp(lm_gguf_base(g), mem, memlen) == 0,
            "file and buffer output differ");
    T_CHECK(lm_gguf_alignment(g) == 64, "alignment %u", lm_gguf_alignment(g));
    T_CHECK(lm_gguf_data_offset(g) % 64 == 0, "data offset");
    T_CHECK(lm_gguf_n_tensors(g) == (uint64_t)n_types, "n_tensors");
    for (uint32_t t = 0; t < LM_DTYPE_GGML_COUNT; t++) {
        if (!bufs[t]) continue;
        char name[64];
        snprintf(name, sizeof name, "tensor.%s", lm_dtype_name((lm_dtype)t));
        int64_t i = lm_gguf_find_tensor(g, name);
        T_CHECK(i >= 0, "%s not found", name);
        if (i < 0) continue;
        const lm_tensor_info *ti = lm_gguf_tensor(g, (uint64_t)i);
        T_CHECK(strcmp(ti->name, name) == 0 && ti->dtype == (lm_dtype)t && ti->n_dims == 3 &&
                    ti->ne[0] == lm_dtype_get((lm_dtype)t)->block_size * 2ull && ti->ne[1] == 3 &&
                    ti->ne[2] == 2 && ti->ne[3] == 1,
                "%s: info", name);
        T_CHECK(ti->nbytes == sizes[t] && ti->offset % 64 == 0 &&
                    ti->offset >= lm_gguf_data_offset(g),
                "%s: nbytes %llu offset %llu", name, (unsigned long long)ti->nbytes,
                (unsigned long long)ti->offset);
        T_CHECK(memcmp(ti->data, bufs[t], sizes[t]) == 0, "%s: data differs", name);
        T_CHECK(ti->data == (const uint8_t *)lm_gguf_base(g) + ti->offset, "%s: data ptr", name);
    }
    T_CHECK(lm_gguf_find_tensor(g, "nope") == -1, "missing tensor found");
    T_CHECK(lm_gguf_tensor(g, lm_gguf_n_tensors(g)) == NULL, "out of range tensor");
    lm_gguf_close(g);
    lm_free(mem);
    lm_gguf_writer_free(w);
    for (int t = 0; t < LM_DTYPE_GGML_COUNT; t++)
        free(bufs[t]);
}

/* ---------------------------------------------------------------------------------------
 * getters: type checks and messages
 * ------------------------------------------------------------------------------------ */

static void test_getters(void) {
    lm_err e;
    lm_err_clear(&e);
    lm_gguf_writer *w;
    T_REQUIRE(lm_gguf_writer_new(&w, &e) == LM_OK, "%s", e.msg);
    lm_gguf_set_i32(w, "neg", -1, &e);
    lm_gguf_set_u64(w, "big", 1ull << 40, &e);
    lm_gguf_set_str(w, "name", "x", &e);
    lm_gguf_set_f64(w, "huge", 1e300, &e);
    const float sc[] = {1, 2};
    lm_gguf_set_arr(w, "scores", LM_GGUF_TYPE_FLOAT32, sc, 2, &e);
    void *buf;
    size_t len;
    lm_gguf *g;
    T_REQUIRE(lm_gguf_write_buffer(w, &buf, &len, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_open_buffer(buf, len, NULL, &g, &e) == LM_OK, "%s", e.msg);
    uint32_t u32 = 99;
    int32_t i32;
    int64_t i64;
    float f;
    int b;
    const char *s;
    size_t n;
    const void *data;
    uint64_t cnt;

    T_CHECK(lm_gguf_get_u32(g, "missing.key", &u32, &e) == LM_ERR_NOT_FOUND &&
                strstr(e.msg, "missing.key"),
            "not found: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_u32(g, "neg", &u32, &e) == LM_ERR_FORMAT && strstr(e.msg, "neg") &&
                strstr(e.msg, "-1") && u32 == 99,
            "negative to u32: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_i64(g, "neg", &i64, &e) == LM_OK && i64 == -1, "neg i64");
    T_CHECK(lm_gguf_get_i32(g, "big", &i32, &e) == LM_ERR_FORMAT && strstr(e.msg, "1099511627776"),
            "big to i32: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_u32(g, "name", &u32, &e) == LM_ERR_FORMAT && strstr(e.msg, "'name'") &&
                strstr(e.msg, "uint32") && strstr(e.msg, "string"),
            "str as u32: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_str(g, "neg", &s, &n, &e) == LM_ERR_FORMAT && strstr(e.msg, "int32") &&
                strstr(e.msg, "expected string"),
            "int as str: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_bool(g, "neg", &b, &e) == LM_ERR_FORMAT, "int as bool");
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_f32(g, "neg", &f, &e) == LM_ERR_FORMAT && strstr(e.msg, "float32"),
            "int as float: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_f32(g, "huge", &f, &e) == LM_ERR_FORMAT && strstr(e.msg, "float32"),
            "1e300 as f32: %s", e.msg);
    lm_err_clear(&e);
    /* element-type confusion: the PR #26690 class */
    T_CHECK(lm_gguf_get_arr(g, "scores", LM_GGUF_TYPE_INT32, &data, &cnt, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "scores") && strstr(e.msg, "array of int32") &&
                strstr(e.msg, "array of float32"),
            "elem confusion: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_arr(g, "name", LM_GGUF_TYPE_FLOAT32, &data, &cnt, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "got string"),
            "string as array: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_gguf_get_arr(g, "scores", LM_GGUF_TYPE_STRING, &data, &cnt, &e) ==
                LM_ERR_INVALID_ARG,
            "get_arr of strings");
    lm_err_clear(&e);
    T_CHECK(lm_gguf_kv_type(g, 1000) == LM_GGUF_TYPE_INVALID && lm_gguf_key(g, 1000) == NULL &&
                lm_gguf_find(g, "nope") == -1,
            "out of range queries");
    T_CHECK(strcmp(lm_gguf_type_name(LM_GGUF_TYPE_FLOAT64), "float64") == 0 &&
                strcmp(lm_gguf_type_name((lm_gguf_type)77), "?") == 0,
            "type names");
    lm_gguf_close(g);
    lm_free(buf);
    lm_gguf_writer_free(w);
}

static void test_json(void) {
    lm_err e;
    lm_err_clear(&e);
    lm_gguf_writer *w;
    T_REQUIRE(lm_gguf_writer_new(&w, &e) == LM_OK, "%s", e.msg);
    lm_gguf_set_strn(w, "s", "q\"\\\n\xff\xc3\xa9", 7, &e); /* quote, backslash, LF, bad, é */
    int32_t xs[10];
    for (int i = 0; i < 10; i++)
        xs[i] = i - 3;
    lm_gguf_set_arr(w, "a", LM_GGUF_TYPE_INT32, xs, 10, &e);
    lm_gguf_set_f32(w, "nan", NAN, &e);
    lm_gguf_set_bool(w, "b", 1, &e);
    const char *strs[] = {"x", "\xe2\x82", "z"}; /* truncated 3-byte sequence */
    lm_gguf_set_arr_str(w, "sa", strs, NULL, 3, &e);
    void *buf;
    size_t len;
    lm_gguf *g;
    T_REQUIRE(lm_gguf_write_buffer(w, &buf, &len, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_open_buffer(buf, len, NULL, &g, &e) == LM_OK, "%s", e.msg);
    const char *want[] = {
        "\"q\\\"\\\\\\u000a\\ufffd\xc3\xa9\"", "[-3, -2, -1, \"... (7 more)\"]", "\"NaN\"", "true",
        "[\"x\", \"\\ufffd\\ufffd\", \"z\"]",
    };
    for (uint64_t i = 0; i < 5; i++) {
        char *j = lm_gguf_value_to_json(g, i, 3);
        T_CHECK(j && strcmp(j, want[i]) == 0, "kv %llu: '%s' want '%s'", (unsigned long long)i,
                j ? j : "(null)", want[i]);
        json_error_t je;
        json_t *parsed = j ? json_loads(j, JSON_DECODE_ANY, &je) : NULL;
        T_CHECK(parsed != NULL, "kv %llu: not valid JSON: %s", (unsigned long long)i, j);
        json_decref(parsed);
        lm_free(j);
    }
    T_CHECK(lm_gguf_value_to_json(g, 99, 3) == NULL, "out of range");
    lm_gguf_close(g);
    lm_free(buf);
    lm_gguf_writer_free(w);
}

/* ---------------------------------------------------------------------------------------
 * files written by others
 * ------------------------------------------------------------------------------------ */

static void test_python_fixture(void) {
    /* values: tools/gen_gguf_fixture.py (written by the Python gguf package) */
    lm_err e;
    lm_err_clear(&e);
    lm_gguf *g;
    T_REQUIRE(lm_gguf_open_file("tests/data/gguf/python_fixture.gguf", NULL, &g, &e) == LM_OK, "%s",
              e.msg);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    int b;
    const char *s;
    size_t n;
    T_CHECK(lm_gguf_version(g) == 3 && lm_gguf_n_kv(g) == 17 && lm_gguf_n_tensors(g) == 3,
            "counts");
    T_CHECK(lm_gguf_get_str(g, "general.architecture", &s, &n, &e) == LM_OK && n == 8 &&
                memcmp(s, "testarch", 8) == 0,
            "arch");
    T_CHECK(lm_gguf_get_u32(g, "t.u8", &u32, &e) == LM_OK && u32 == 200, "u8");
    T_CHECK(lm_gguf_get_i32(g, "t.i8", &i32, &e) == LM_OK && i32 == -100, "i8");
    T_CHECK(lm_gguf_get_u32(g, "t.u16", &u32, &e) == LM_OK && u32 == 60000, "u16");
    T_CHECK(lm_gguf_get_i32(g, "t.i16", &i32, &e) == LM_OK && i32 == -30000, "i16");
    T_CHECK(lm_gguf_get_u32(g, "t.u32", &u32, &e) == LM_OK && u32 == 4000000000u, "u32");
    T_CHECK(lm_gguf_get_i32(g, "t.i32", &i32, &e) == LM_OK && i32 == -2000000000, "i32");
    T_CHECK(lm_gguf_get_f32(g, "t.f32", &f, &e) == LM_OK && f == 1.5f, "f32");
    T_CHECK(lm_gguf_get_bool(g, "t.bool", &b, &e) == LM_OK && b == 1, "bool");
    T_CHECK(lm_gguf_get_str(g, "t.str", &s, &n, &e) == LM_OK && n == strlen("héllo wörld ✓") &&
                memcmp(s, "héllo wörld ✓", n) == 0,
            "str");
    T_CHECK(lm_gguf_get_u64(g, "t.u64", &u64, &e) == LM_OK && u64 == 18000000000000000000ull,
            "u64");
    T_CHECK(lm_gguf_get_i64(g, "t.i64", &i64, &e) == LM_OK && i64 == -9000000000000000000ll, "i64");
    T_CHECK(lm_gguf_get_f64(g, "t.f64", &d, &e) == LM_OK && d == 3.141592653589793, "f64");
    int64_t k = lm_gguf_find(g, "t.arr_i32");
    T_CHECK(lm_gguf_arr_n(g, k) == 3 && lm_gguf_arr_get_i32(g, k, 1) == -2, "arr_i32");
    k = lm_gguf_find(g, "t.arr_f32");
    T_CHECK(lm_gguf_arr_n(g, k) == 3 && lm_gguf_arr_get_f32(g, k, 2) == -2.25f, "arr_f32");
    k = lm_gguf_find(g, "t.arr_str");
    T_CHECK(lm_gguf_arr_str(g, k, 2, &s, &n) == LM_OK && n == strlen("ünï") &&
                memcmp(s, "ünï", n) == 0,
            "arr_str");
    T_CHECK(lm_gguf_arr_str(g, k, 1, &s, &n) == LM_OK && n == 0, "arr_str empty");
    char *j = lm_gguf_value_to_json(g, (uint64_t)lm_gguf_find(g, "t.nested"), 8);
    T_CHECK(j && strcmp(j, "[[1, 2], [3]]") == 0, "nested '%s'", j ? j : "(null)");
    lm_free(j);
    T_CHECK(e.code == LM_OK, "error: %s", e.msg);
    /* tensors: offsets as GGUFReader reports them (data_offset 704) */
    T_CHECK(lm_gguf_data_offset(g) == 704 && lm_gguf_alignment(g) == 32, "data offset %llu",
            (unsigned long long)lm_gguf_data_offset(g));
    const lm_tensor_info *t = lm_gguf_tensor(g, (uint64_t)lm_gguf_find_tensor(g, "t.f32"));
    T_REQUIRE(t, "t.f32 missing");
    T_CHECK(t->dtype == LM_DTYPE_F32 && t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 2 &&
                t->offset == 704 && t->nbytes == 24,
            "t.f32 info");
    float vals[6];
    memcpy(vals, t->data, sizeof vals);
    T_CHECK(vals[0] == 0 && vals[4] == 4 && vals[5] == 5, "t.f32 data");
    t = lm_gguf_tensor(g, (uint64_t)lm_gguf_find_tensor(g, "t.f16"));
    T_REQUIRE(t, "t.f16 missing");
    T_CHECK(t->dtype == LM_DTYPE_F16 && t->ne[0] == 4 && t->offset == 736 && t->nbytes == 8 &&
                memcmp(t->data, "\x00\x3c\x00\xc0\x00\x38\x00\x44", 8) == 0,
            "t.f16");
    t = lm_gguf_tensor(g, (uint64_t)lm_gguf_find_tensor(g, "t.q8"));
    T_REQUIRE(t, "t.q8 missing");
    T_CHECK(t->dtype == LM_DTYPE_Q8_0 && t->ne[0] == 32 && t->offset == 768 && t->nbytes == 34 &&
                ((const uint8_t *)t->data)[33] == 33,
            "t.q8");
    lm_gguf_close(g);
}

/* The writer's output read by an independent reader: the Python gguf package (skipped when
 * python3 or the package is missing). Python prints one line per tensor and a few values. */
static void test_writer_python_reads(void) {
    if (system("python3 -c 'import gguf' >/dev/null 2>&1") != 0)
        T_SKIP("python3 with the gguf package is not installed");
    lm_err e;
    lm_err_clear(&e);
    lm_gguf_writer *w;
    T_REQUIRE(lm_gguf_writer_new(&w, &e) == LM_OK, "%s", e.msg);
    lm_gguf_set_str(w, "general.architecture", "llama", &e);
    lm_gguf_set_u32(w, "llama.block_count", 30, &e);
    lm_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f, &e);
    const char *toks[] = {"<s>", "h\xc3\xa9"};
    lm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 2, &e);
    static uint8_t d[4096];
    for (size_t i = 0; i < sizeof d; i++)
        d[i] = (uint8_t)(i * 7);
    uint64_t ne_q[2] = {256, 2}, ne_f[1] = {5}, ne_8[2] = {64, 3};
    lm_gguf_add_tensor(w, "a.q4k", LM_DTYPE_Q4_K, 2, ne_q, d, 288, &e);
    lm_gguf_add_tensor(w, "b.f32", LM_DTYPE_F32, 1, ne_f, d, 20, &e);
    lm_gguf_add_tensor(w, "c.q8", LM_DTYPE_Q8_0, 2, ne_8, d, 204, &e);
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/for_python.gguf", t_tmpdir());
    T_REQUIRE(lm_gguf_write_file(w, path, &e) == LM_OK, "%s", e.msg);
    lm_gguf_writer_free(w);
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import gguf,sys\n"
             "r=gguf.GGUFReader(sys.argv[1])\n"
             "print(int(r.fields['llama.block_count'].parts[-1][0]), "
             "r.fields['tokenizer.ggml.tokens'].contents()[1])\n"
             "for t in r.tensors: print(t.name, t.tensor_type.name, "
             "'x'.join(str(int(x)) for x in t.shape), t.data_offset, t.n_bytes, "
             "int(t.data.view('uint8').reshape(-1)[-1]))\" '%s'",
             path);
    FILE *p = popen(cmd, "r");
    T_REQUIRE(p, "popen");
    char out[2048] = {0};
    size_t n = fread(out, 1, sizeof out - 1, p);
    int rc = pclose(p);
    out[n] = '\0';
    T_REQUIRE(rc == 0, "python failed on our file (rc %d): %s", rc, out);
    lm_gguf *g;
    T_REQUIRE(lm_gguf_open_file(path, NULL, &g, &e) == LM_OK, "%s", e.msg);
    char want[2048];
    int len = snprintf(want, sizeof want, "30 h\xc3\xa9\n");
    for (uint64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_tensor_info *t = lm_gguf_tensor(g, i);
        char dims[64];
        if (t->n_dims == 2)
            snprintf(dims, sizeof dims, "%llux%llu", (unsigned long long)t->ne[0],
                     (unsigned long long)t->ne[1]);
        else
            snprintf(dims, sizeof dims, "%llu", (unsigned long long)t->ne[0]);
        char upper[16];
        const char *nm = lm_dtype_name(t->dtype);
        size_t k = 0;
        for (; nm[k] && k < sizeof upper - 1; k++)
            upper[k] = (char)(nm[k] >= 'a' && nm[k] <= 'z' ? nm[k] - 32 : nm[k]);
        upper[k] = '\0';
        len += snprintf(want + len, sizeof want - (size_t)len, "%s %s %s %llu %llu %u\n", t->name,
                        upper, dims, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                        d[t->nbytes - 1]);
    }
    lm_gguf_close(g);
    T_CHECK(strcmp(out, want) == 0, "python read:\n%swe expect:\n%s", out, want);
}

static void test_vocab_files(void) {
    /* model and token count: ../shared/testdata/vocab/SOURCES.md (its table, and for the
     * vocabs the table groups together, the Python gguf package's reading); n_kv: GGUFReader's
     * GGUF.kv_count; merges: SOURCES.md */
    static const struct {
        const char *file, *model;
        uint64_t n_tokens, n_kv, n_merges;
    } V[] = {
        {"ggml-vocab-llama-spm.gguf.gz", "llama", 32000, 22, 0},
        {"ggml-vocab-phi-3.gguf.gz", "llama", 32064, 26, 0},
        {"ggml-vocab-llama-bpe.gguf.gz", "gpt2", 128256, 20, 280147},
        {"ggml-vocab-qwen2.gguf.gz", "gpt2", 151936, 20, 151387},
        {"ggml-vocab-gpt-2.gguf.gz", "gpt2", 50257, 16, 50000},
        {"ggml-vocab-gpt-neox.gguf.gz", "gpt2", 50432, 17, 50009},
        {"ggml-vocab-bert-bge.gguf.gz", "bert", 30522, 20, 0},
        {"ggml-vocab-baichuan.gguf.gz", "llama", 64000, 18, 0},
        {"ggml-vocab-falcon.gguf.gz", "gpt2", 65024, 18, 0},
        {"ggml-vocab-mpt.gguf.gz", "gpt2", 50432, 17, 0},
        {"ggml-vocab-refact.gguf.gz", "gpt2", 49216, 18, 0},
        {"ggml-vocab-starcoder.gguf.gz", "gpt2", 49152, 19, 0},
        {"ggml-vocab-deepseek-coder.gguf.gz", "gpt2", 32256, 25, 0},
        {"ggml-vocab-deepseek-llm.gguf.gz", "gpt2", 102400, 23, 0},
        {"ggml-vocab-command-r.gguf.gz", "gpt2", 256000, 27, 0},
        {"llama.cpp-v0.4.0/ggml-vocab-qwen35.gguf.gz", "gpt2", 151936, 20, 151387},
        {"llama.cpp-v0.4.0/ggml-vocab-gemma-4.gguf.gz", "gemma4", 262144, 42, 0},
    };
    int done = 0;
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "testdata/vocab/%s", V[i].file);
        const char *gz = t_shared_path(rel);
        FILE *probe = fopen(gz, "rb");
        if (!probe) {
            fprintf(stderr, "  (missing %s)\n", gz);
            continue;
        }
        fclose(probe);
        const char *path = t_gunzip(gz, "vocab.gguf");
        T_CHECK(path != NULL, "%s: cannot decompress", V[i].file);
        if (!path) continue;
        lm_err e;
        lm_err_clear(&e);
        lm_gguf *g;
        T_CHECK(lm_gguf_open_file(path, NULL, &g, &e) == LM_OK, "%s: %s", V[i].file, e.msg);
        if (e.code != LM_OK) continue;
        const char *s;
        size_t n;
        T_CHECK(lm_gguf_get_str(g, "tokenizer.ggml.model", &s, &n, &e) == LM_OK &&
                    n == strlen(V[i].model) && memcmp(s, V[i].model, n) == 0,
                "%s: model '%.*s' %s", V[i].file, (int)n, s, e.msg);
        int64_t k = lm_gguf_find(g, "tokenizer.ggml.tokens");
        T_CHECK(k >= 0 && lm_gguf_arr_type(g, (uint64_t)k) == LM_GGUF_TYPE_STRING &&
                    lm_gguf_arr_n(g, (uint64_t)k) == V[i].n_tokens,
                "%s: %llu tokens", V[i].file, (unsigned long long)lm_gguf_arr_n(g, (uint64_t)k));
        T_CHECK(lm_gguf_arr_str(g, (uint64_t)k, V[i].n_tokens - 1, &s, &n) == LM_OK && n > 0,
                "%s: last token", V[i].file);
        T_CHECK(lm_gguf_n_kv(g) == V[i].n_kv && lm_gguf_n_tensors(g) == 0 &&
                    lm_gguf_version(g) == 3,
                "%s: n_kv %llu", V[i].file, (unsigned long long)lm_gguf_n_kv(g));
        if (V[i].n_merges) {
            k = lm_gguf_find(g, "tokenizer.ggml.merges");
            T_CHECK(k >= 0 && lm_gguf_arr_n(g, (uint64_t)k) == V[i].n_merges, "%s: merges",
                    V[i].file);
        }
        for (uint64_t j = 0; j < lm_gguf_n_kv(g); j++) {
            char *js = lm_gguf_value_to_json(g, j, 16);
            T_CHECK(js != NULL, "%s: json of kv %llu", V[i].file, (unsigned long long)j);
            lm_free(js);
        }
        lm_gguf_close(g);
        remove(path);
        done++;
    }
    if (!done) T_SKIP("no vocab files under %s", t_shared_path("testdata/vocab"));
}

static void check_model(const char *path, uint64_t n_tensors, uint64_t n_kv, const char *arch,
                        uint64_t data_off, const char *t0, lm_dtype t0_type, uint64_t t0_ne0,
                        uint64_t t0_ne1, uint64_t t0_nbytes, uint64_t n_tokens) {
    lm_err e;
    lm_err_clear(&e);
    lm_gguf *g;
    T_REQUIRE(lm_gguf_open_file(path, NULL, &g, &e) == LM_OK, "%s: %s", path, e.msg);
    T_CHECK(lm_gguf_n_tensors(g) == n_tensors && lm_gguf_n_kv(g) == n_kv,
            "%s: %llu tensors %llu kv", path, (unsigned long long)lm_gguf_n_tensors(g),
            (unsigned long long)lm_gguf_n_kv(g));
    const char *s;
    size_t n;
    T_CHECK(lm_gguf_get_str(g, "general.architecture", &s, &n, &e) == LM_OK && n == strlen(arch) &&
                memcmp(s, arch, n) == 0,
            "%s: arch", path);
    T_CHECK(lm_gguf_data_offset(g) == data_off && lm_gguf_alignment(g) == 32, "%s: data at %llu",
            path, (unsigned long long)lm_gguf_data_offset(g));
    const lm_tensor_info *t = lm_gguf_tensor(g, 0);
    T_CHECK(t && strcmp(t->name, t0) == 0 && t->dtype == t0_type && t->ne[0] == t0_ne0 &&
                t->ne[1] == t0_ne1 && t->offset == data_off && t->nbytes == t0_nbytes,
            "%s: tensor 0", path);
    T_CHECK(lm_gguf_find_tensor(g, t0) == 0, "%s: find", path);
    int64_t k = lm_gguf_find(g, "tokenizer.ggml.tokens");
    T_CHECK(k >= 0 && lm_gguf_arr_n(g, (uint64_t)k) == n_tokens, "%s: tokens", path);
    /* every tensor lies inside the file, aligned */
    for (uint64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        t = lm_gguf_tensor(g, i);
        T_CHECK(t->offset + t->nbytes <= lm_gguf_size(g) && t->offset % 32 == 0, "%s: %s", path,
                t->name);
    }
    lm_gguf_close(g);
}

static void test_real_models(void) {
    /* numbers: the Python gguf package's GGUFReader on the same files */
    FILE *f = fopen("models/smollm2-135m-instruct-q4_1.gguf", "rb");
    FILE *f2 = fopen("models/gemma-3-270m-q4_k_m.gguf", "rb");
    if (f) fclose(f);
    if (f2) fclose(f2);
    if (!f && !f2) T_SKIP("models/ not installed (tools/install_models.sh)");
    if (f)
        check_model("models/smollm2-135m-instruct-q4_1.gguf", 272, 33, "llama", 1785664,
                    "token_embd.weight", LM_DTYPE_Q8_0, 576, 49152, 30081024, 49152);
    if (f2)
        check_model("models/gemma-3-270m-q4_k_m.gguf", 236, 33, "gemma3", 6525120,
                    "output_norm.weight", LM_DTYPE_F32, 640, 1, 2560, 262144);
}

/* ---------------------------------------------------------------------------------------
 * corruption matrix
 * ------------------------------------------------------------------------------------ */

/* A small valid file: kv (string array, nested array), two tensors. */
static void *small_valid(size_t *len) {
    lm_err e;
    lm_err_clear(&e);
    lm_gguf_writer *w;
    void *buf = NULL;
    if (lm_gguf_writer_new(&w, &e) != LM_OK) return NULL;
    lm_gguf_set_str(w, "general.architecture", "llama", &e);
    const char *toks[] = {"a", "bc", ""};
    lm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 3, &e);
    lm_gguf_warr *o, *in;
    lm_gguf_warr_new(LM_GGUF_TYPE_ARRAY, &o, &e);
    lm_gguf_warr_new(LM_GGUF_TYPE_STRING, &in, &e);
    lm_gguf_warr_push_str(in, "x", 1, &e);
    lm_gguf_warr_push_arr(o, in, &e);
    lm_gguf_set_warr(w, "nested", o, &e);
    lm_gguf_set_u32(w, "n", 7, &e);
    static float d1[8];
    static uint8_t d2[18];
    uint64_t ne1[2] = {4, 2}, ne2[1] = {32};
    lm_gguf_add_tensor(w, "w1", LM_DTYPE_F32, 2, ne1, d1, sizeof d1, &e);
    lm_gguf_add_tensor(w, "w2", LM_DTYPE_Q4_0, 1, ne2, d2, sizeof d2, &e);
    if (e.code == LM_OK) lm_gguf_write_buffer(w, &buf, len, &e);
    lm_gguf_writer_free(w);
    return buf;
}

static void test_truncation(void) {
    size_t len;
    uint8_t *full = small_valid(&len);
    T_REQUIRE(full, "cannot build the file");
    lm_err e;
    lm_gguf *g;
    lm_err_clear(&e);
    T_REQUIRE(lm_gguf_open_buffer(full, len, NULL, &g, &e) == LM_OK, "%s", e.msg);
    uint64_t end = 0; /* end of the last tensor's data: bytes after it are only padding */
    for (uint64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_tensor_info *t = lm_gguf_tensor(g, i);
        if (t->offset + t->nbytes > end) end = t->offset + t->nbytes;
    }
    lm_gguf_close(g);
    int bad = 0;
    for (size_t n = 0; n <= len; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, full, n);
        lm_err_clear(&e);
        lm_status st = lm_gguf_open_buffer(cut, n, NULL, &g, &e);
        if (n < end) {
            if (st != LM_ERR_FORMAT || g || !strstr(e.msg, "gguf:")) {
                if (bad++ < 5) T_CHECK(0, "prefix %zu: status %d '%s'", n, st, e.msg);
            }
        } else if (st != LM_OK) {
            T_CHECK(0, "prefix %zu (>= data end %llu): %s", n, (unsigned long long)end, e.msg);
        }
        lm_gguf_close(g);
        free(cut);
    }
    T_CHECK(bad == 0, "%d prefixes misbehaved", bad);
    lm_free(full);
}

static void test_corrupt_header(void) {
    bb b = {0};
    /* the builder itself makes a valid file */
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, "k", 1);
    lm_gguf *g;
    lm_err e;
    T_CHECK(open_bb(&b, NULL, &g, &e) == LM_OK, "baseline: %s", e.msg);
    close_bb(g);
    free(b.p);
    memset(&b, 0, sizeof b);

    bb_put(&b, "GGUX", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    REJECT(&b, NULL, LM_ERR_FORMAT, "magic");
    bb_put(&b, "GG", 2);
    REJECT(&b, NULL, LM_ERR_FORMAT, "truncated", "magic");
    bb_hdr(&b, 0, 0, 0);
    REJECT(&b, NULL, LM_ERR_FORMAT, "version 0");
    bb_hdr(&b, 1, 0, 0);
    REJECT(&b, NULL, LM_ERR_UNSUPPORTED, "version 1");
    bb_hdr(&b, 4, 0, 0);
    REJECT(&b, NULL, LM_ERR_UNSUPPORTED, "version 4");
    bb_hdr(&b, 0x03000000u, 0, 0);
    REJECT(&b, NULL, LM_ERR_UNSUPPORTED, "big-endian GGUF is not supported");
    bb_put(&b, "GGUF\x03\x00", 6);
    REJECT(&b, NULL, LM_ERR_FORMAT, "version", "truncated");
    bb_hdr(&b, 3, 1ull << 40, 0);
    REJECT(&b, NULL, LM_ERR_FORMAT, "n_tensors", "limit");
    bb_hdr(&b, 3, 0, UINT64_MAX);
    REJECT(&b, NULL, LM_ERR_FORMAT, "n_kv", "limit");
    bb_hdr(&b, 3, 1000, 0); /* within the limit, but 1000 infos need > 25000 bytes */
    REJECT(&b, NULL, LM_ERR_FORMAT, "n_tensors 1000", "cannot fit");
    bb_hdr(&b, 3, 0, 60000);
    bb_kv_u32(&b, "k", 1);
    REJECT(&b, NULL, LM_ERR_FORMAT, "n_kv 60000", "cannot fit");
    lm_gguf_limits lim = lm_gguf_default_limits();
    lim.max_kv = 1;
    bb_hdr(&b, 3, 0, 2);
    bb_kv_u32(&b, "a", 1);
    bb_kv_u32(&b, "b", 1);
    REJECT(&b, &lim, LM_ERR_FORMAT, "n_kv 2", "limit of 1");
}

static void test_corrupt_kv(void) {
    bb b = {0};
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, 1ull << 60);
    bb_put(&b, "key", 3);
    bb_zeros(&b, 16);
    REJECT(&b, NULL, LM_ERR_FORMAT, "kv 0", "key length");
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, 100);
    bb_put(&b, "keyxxxxxxxxxxxx", 15);
    REJECT(&b, NULL, LM_ERR_FORMAT, "kv 0", "truncated", "key");
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, "", 1);
    REJECT(&b, NULL, LM_ERR_FORMAT, "kv 0", "empty key");
    bb_hdr(&b, 3, 0, 1);
    bb_u64(&b, 3);
    bb_put(&b, "a\0b", 3);
    bb_u32(&b, LM_GGUF_TYPE_UINT32);
    bb_u32(&b, 1);
    REJECT(&b, NULL, LM_ERR_FORMAT, "NUL");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "weird");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    REJECT(&b, NULL, LM_ERR_FORMAT, "'weird'", "unknown value type 13");
    bb_hdr(&b, 3, 0, 3);
    bb_kv_u32(&b, "dup", 1);
    bb_kv_u32(&b, "other", 1);
    bb_kv_u32(&b, "dup", 2);
    REJECT(&b, NULL, LM_ERR_FORMAT, "duplicate key 'dup'", "kv 0 and kv 2");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "s");
    bb_u32(&b, LM_GGUF_TYPE_STRING);
    bb_u64(&b, 50);
    bb_put(&b, "short", 5);
    REJECT(&b, NULL, LM_ERR_FORMAT, "'s'", "truncated", "string value");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "s");
    bb_u32(&b, LM_GGUF_TYPE_UINT64);
    bb_u32(&b, 5);
    REJECT(&b, NULL, LM_ERR_FORMAT, "'s'", "truncated", "uint64");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, LM_GGUF_TYPE_ARRAY);
    bb_u32(&b, LM_GGUF_TYPE_UINT32);
    bb_u64(&b, 1ull << 62);
    bb_u32(&b, 1);
    REJECT(&b, NULL, LM_ERR_FORMAT, "'arr'", "array count");
    bb_hdr(&b, 3, 0, 1); /* count under the limit but more than the bytes left */
    bb_str(&b, "arr");
    bb_u32(&b, LM_GGUF_TYPE_ARRAY);
    bb_u32(&b, LM_GGUF_TYPE_STRING);
    bb_u64(&b, 1000);
    bb_str(&b, "x");
    REJECT(&b, NULL, LM_ERR_FORMAT, "'arr'", "array count 1000", "bytes left");
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, LM_GGUF_TYPE_ARRAY);
    bb_u32(&b, 42);
    bb_u64(&b, 1);
    bb_u32(&b, 0);
    REJECT(&b, NULL, LM_ERR_FORMAT, "'arr'", "unknown array element type 42");
    bb_hdr(&b, 3, 0, 1); /* arrays nested 5 deep: limit 4 */
    bb_str(&b, "deep");
    bb_u32(&b, LM_GGUF_TYPE_ARRAY);
    for (int i = 0; i < 4; i++) {
        bb_u32(&b, LM_GGUF_TYPE_ARRAY);
        bb_u64(&b, 1);
    }
    bb_u32(&b, LM_GGUF_TYPE_UINT8);
    bb_u64(&b, 1);
    bb_u8(&b, 1);
    REJECT(&b, NULL, LM_ERR_FORMAT, "'deep'", "nested deeper", "4");
    bb_hdr(&b, 3, 0, 1); /* a string inside an array runs past the end */
    bb_str(&b, "toks");
    bb_u32(&b, LM_GGUF_TYPE_ARRAY);
    bb_u32(&b, LM_GGUF_TYPE_STRING);
    bb_u64(&b, 2);
    bb_str(&b, "ok");
    bb_u64(&b, 9);
    bb_put(&b, "abc", 3);
    REJECT(&b, NULL, LM_ERR_FORMAT, "'toks'", "truncated", "string");
    lm_gguf_limits lim = lm_gguf_default_limits();
    lim.max_string_len = 4;
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "s");
    bb_u32(&b, LM_GGUF_TYPE_STRING);
    bb_str(&b, "longer");
    REJECT(&b, &lim, LM_ERR_FORMAT, "'s'", "length 6", "limit of 4");
}

static void test_corrupt_alignment(void) {
    bb b = {0};
    bb_hdr(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, LM_GGUF_TYPE_UINT64);
    bb_u64(&b, 32);
    REJECT(&b, NULL, LM_ERR_FORMAT, "general.alignment must be uint32", "uint64");
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 0);
    REJECT(&b, NULL, LM_ERR_FORMAT, "general.alignment 0");
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 48);
    REJECT(&b, NULL, LM_ERR_FORMAT, "general.alignment 48", "power of two");
    bb_hdr(&b, 3, 0, 1);
    bb_kv_u32(&b, "general.alignment", 1u << 17);
    REJECT(&b, NULL, LM_ERR_FORMAT, "general.alignment 131072");
    /* a valid non-default alignment is honoured */
    bb_hdr(&b, 3, 1, 1);
    bb_kv_u32(&b, "general.alignment", 64);
    uint64_t ne[1] = {8};
    bb_tinfo(&b, "t", 1, ne, LM_DTYPE_F32, 32); /* multiple of 32, not of 64 */
    bb_pad(&b, 64);
    bb_zeros(&b, 128);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 't'", "offset 32 is not a multiple of alignment 64");
}

/* Builds: header with n tensors, no kv, the given infos, padding, data_bytes of data. */
static void one_tensor(bb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                       uint64_t off, size_t data_bytes) {
    bb_hdr(b, 3, 1, 0);
    bb_tinfo(b, name, nd, ne, type, off);
    bb_pad(b, 32);
    bb_zeros(b, data_bytes);
}

static void test_corrupt_tensors(void) {
    bb b = {0};
    uint64_t ne[5] = {32, 2, 1, 1, 1};
    lm_gguf *g;
    lm_err e;
    one_tensor(&b, "ok", 2, ne, LM_DTYPE_F32, 0, 256);
    T_CHECK(open_bb(&b, NULL, &g, &e) == LM_OK, "baseline: %s", e.msg);
    close_bb(g);
    free(b.p);
    memset(&b, 0, sizeof b);

    char longname[301];
    memset(longname, 'n', 300);
    longname[300] = '\0';
    one_tensor(&b, longname, 2, ne, LM_DTYPE_F32, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 0", "name length 300", "limit of 256");
    one_tensor(&b, "", 2, ne, LM_DTYPE_F32, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 0", "empty name");
    one_tensor(&b, "t5", 5, ne, LM_DTYPE_F32, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 't5'", "n_dims 5");
    uint64_t ne0[2] = {32, 0};
    one_tensor(&b, "z", 2, ne0, LM_DTYPE_F32, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'z'", "ne[1] = 0");
    uint64_t neh[1] = {1ull << 63};
    one_tensor(&b, "h", 1, neh, LM_DTYPE_F32, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'h'", "ne[0]");
    uint64_t neo[3] = {1ull << 32, 1ull << 32, 1};
    one_tensor(&b, "big", 3, neo, LM_DTYPE_F32, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'big'", "element count overflows", "ne[1]");
    uint64_t neb[2] = {1ull << 31, 1ull << 31}; /* 2^62 elements fit, 2^64 bytes do not */
    one_tensor(&b, "bytes", 2, neb, LM_DTYPE_F32, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'bytes'", "byte size");
    one_tensor(&b, "ty", 2, ne, 99, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'ty'", "tensor type 99");
    one_tensor(&b, "q4_2", 2, ne, 4, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'q4_2'", "removed tensor type 4");
    one_tensor(&b, "q31", 2, ne, 31, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'q31'", "tensor type 31");
    uint64_t ne33[1] = {33};
    one_tensor(&b, "blk", 1, ne33, LM_DTYPE_Q4_0, 0, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'blk'", "ne[0] = 33", "block size 32");
    one_tensor(&b, "blk.0.attn_q.weight", 2, ne, LM_DTYPE_F32, 1234, 2048);
    REJECT(&b, NULL, LM_ERR_FORMAT,
           "tensor 'blk.0.attn_q.weight': offset 1234 is not a multiple of alignment 32");
    one_tensor(&b, "far", 2, ne, LM_DTYPE_F32, 1024, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'far'", "past the end");
    one_tensor(&b, "short", 2, ne, LM_DTYPE_F32, 0, 255); /* 256 bytes needed */
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'short'", "past the end");
    one_tensor(&b, "wrap", 2, ne, LM_DTYPE_F32, UINT64_MAX - 31, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'wrap'", "overflows");
    /* header ends, data section never starts */
    bb_hdr(&b, 3, 1, 0);
    bb_tinfo(&b, "t", 2, ne, LM_DTYPE_F32, 0);
    REJECT(&b, NULL, LM_ERR_FORMAT, "data section");
    /* truncated inside a tensor info */
    bb_hdr(&b, 3, 1, 0);
    bb_str(&b, "tt");
    bb_u32(&b, 2);
    bb_u64(&b, 32);
    bb_u64(&b, 2);
    bb_zeros(&b, 3);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensor 'tt'", "truncated");
    /* duplicates and overlaps */
    uint64_t ne16[1] = {16}; /* 64 bytes of f32 */
    bb_hdr(&b, 3, 2, 0);
    bb_tinfo(&b, "same", 1, ne16, LM_DTYPE_F32, 0);
    bb_tinfo(&b, "same", 1, ne16, LM_DTYPE_F32, 64);
    bb_pad(&b, 32);
    bb_zeros(&b, 128);
    REJECT(&b, NULL, LM_ERR_FORMAT, "duplicate tensor name 'same'");
    bb_hdr(&b, 3, 3, 0);
    bb_tinfo(&b, "c", 1, ne16, LM_DTYPE_F32, 128);
    bb_tinfo(&b, "a", 1, ne16, LM_DTYPE_F32, 0);
    bb_tinfo(&b, "b", 1, ne16, LM_DTYPE_F32, 32);
    bb_pad(&b, 32);
    bb_zeros(&b, 256);
    REJECT(&b, NULL, LM_ERR_FORMAT, "tensors 'a' and 'b' overlap", "offset 32");
    /* n_dims 0 is a scalar: one element */
    one_tensor(&b, "scalar", 0, ne, LM_DTYPE_F32, 0, 32);
    T_CHECK(open_bb(&b, NULL, &g, &e) == LM_OK && lm_gguf_tensor(g, 0)->n_elements == 1 &&
                lm_gguf_tensor(g, 0)->nbytes == 4,
            "scalar: %s", e.msg);
    close_bb(g);
    free(b.p);
    memset(&b, 0, sizeof b);
    /* a gap between tensors is accepted (documented difference from ggml) */
    bb_hdr(&b, 3, 2, 0);
    bb_tinfo(&b, "a", 1, ne16, LM_DTYPE_F32, 0);
    bb_tinfo(&b, "b", 1, ne16, LM_DTYPE_F32, 256);
    bb_pad(&b, 32);
    bb_zeros(&b, 320);
    T_CHECK(open_bb(&b, NULL, &g, &e) == LM_OK, "gap rejected: %s", e.msg);
    close_bb(g);
    free(b.p);
}

/* ---------------------------------------------------------------------------------------
 * allocation failures
 * ------------------------------------------------------------------------------------ */

static void test_alloc_failures(void) {
    size_t len;
    uint8_t *buf = small_valid(&len);
    T_REQUIRE(buf, "cannot build the file");
    lm_err e;
    lm_gguf *g = NULL;
    unsigned long n;
    for (n = 1; n < 1000; n++) {
        lm_err_clear(&e);
        lm_alloc_fail_after(n, 0);
        lm_status st = lm_gguf_open_buffer(buf, len, NULL, &g, &e);
        unsigned long injected = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (st == LM_OK && injected == 0) break;
        T_CHECK(st == LM_ERR_NOMEM && g == NULL, "n=%lu: status %d '%s'", n, st, e.msg);
        lm_gguf_close(g);
        g = NULL;
    }
    T_CHECK(n > 3 && n < 1000, "open never succeeded / too few allocations (%lu)", n);
    T_CHECK(g && lm_gguf_n_tensors(g) == 2, "final open");
    lm_gguf_close(g);
    g = NULL;
    unsigned long transient_n = n;
    /* persistent: every allocation from the n-th on fails */
    for (n = 1; n < 1000; n++) {
        lm_err_clear(&e);
        lm_alloc_fail_after(n, 1);
        lm_status st = lm_gguf_open_buffer(buf, len, NULL, &g, &e);
        unsigned long injected = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (st == LM_OK && injected == 0) break;
        T_CHECK(st == LM_ERR_NOMEM && g == NULL, "persistent n=%lu: status %d '%s'", n, st, e.msg);
        lm_gguf_close(g);
        g = NULL;
    }
    T_CHECK(n == transient_n, "persistent loop ended at %lu, transient at %lu", n, transient_n);
    lm_gguf_close(g);
    /* files that cannot be opened at all */
    lm_err_clear(&e);
    T_CHECK(lm_gguf_open_file("/nonexistent/x.gguf", NULL, &g, &e) == LM_ERR_IO && g == NULL &&
                strstr(e.msg, "/nonexistent/x.gguf"),
            "missing file: %s", e.msg);
    lm_gguf_close(NULL);
    lm_gguf_writer_free(NULL);
    lm_gguf_warr_free(NULL);
    /* the writer too */
    for (n = 1; n < 1000; n++) {
        lm_alloc_fail_after(n, 0);
        size_t l2;
        void *b2 = small_valid(&l2);
        unsigned long injected = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (injected == 0) {
            T_CHECK(b2 && l2 == len && memcmp(b2, buf, len) == 0, "writer output differs");
            lm_free(b2);
            break;
        }
        /* a failed set_* leaves the writer consistent: either NULL or a file that opens */
        if (b2) {
            lm_err_clear(&e);
            T_CHECK(lm_gguf_open_buffer(b2, l2, NULL, &g, &e) == LM_OK, "n=%lu: %s", n, e.msg);
            lm_gguf_close(g);
            g = NULL;
            lm_free(b2);
        }
    }
    T_CHECK(n < 1000, "writer never succeeded");
    lm_free(buf);
}

int main(void) {
    T_RUN(test_roundtrip_meta);
    T_RUN(test_roundtrip_tensors);
    T_RUN(test_getters);
    T_RUN(test_json);
    T_RUN(test_python_fixture);
    T_RUN(test_writer_python_reads);
    T_RUN(test_truncation);
    T_RUN(test_corrupt_header);
    T_RUN(test_corrupt_kv);
    T_RUN(test_corrupt_alignment);
    T_RUN(test_corrupt_tensors);
    T_RUN(test_alloc_failures);
    T_RUN(test_real_models);
    T_RUN(test_vocab_files);
    return t_finish();
}
