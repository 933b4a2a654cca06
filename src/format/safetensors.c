/*
 * safetensors.c — the safetensors reader (see safetensors.h for the byte layout and the
 * invariants of an open handle, docs/formats/safetensors.md for every rule and limit).
 *
 * Validation follows the reference implementation's read_metadata + Metadata::validate
 * (rules 1-8 of shared/reference/security-reliability.md §a.3) and is stricter where the
 * spec is loose: duplicate keys, unknown fields, unknown dtypes, float or negative dims, rank
 * above LM_MAX_DIMS and deep nesting are all refused. Every size derived from the file goes
 * through checked.h before it is compared or used. The whole header is validated before the
 * handle is returned; the table is never partially valid.
 *
 * Memory: one lm_st, one tensor array, one name index, one string block (all names and
 * metadata, NUL-terminated) and one metadata pointer array; jansson's tree is freed before
 * open returns.
 */
#include "format/safetensors.h"

#include "core/alloc.h"
#include "core/checked.h"
#include "core/file.h"
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

struct lm_st {
    lm_mapped_file map;  /* set when opened from a file */
    int mapped;
    const uint8_t *data; /* whole file */
    uint64_t size;       /* bytes */
    uint64_t n_header;   /* N */
    uint32_t n_tensors;
    lm_tensor_info *tensors;        /* [n_tensors], file order */
    const lm_tensor_info **by_name; /* [n_tensors], sorted by name */
    uint32_t n_meta;
    const char **meta; /* [2 * n_meta]: key, value, sorted by key */
    char *strings;     /* backing store of every name, key and value */
};

void lm_st_default_limits(lm_st_limits *lim) {
    lim->max_header_bytes = LM_ST_MAX_HEADER_BYTES;
    lim->max_tensors = 1000000;
    lim->max_name_bytes = 4096;
    lim->max_meta_entries = 65536;
    lim->max_json_depth = 8;
}

/* The element types safetensors names, and what they are in lemma. Anything else is refused:
 * a type we cannot size is a type we cannot bounds-check. */
static const struct {
    const char *name;
    lm_dtype dtype;
} st_dtypes[] = {
    {"F64", LM_DTYPE_F64},   {"F32", LM_DTYPE_F32},         {"F16", LM_DTYPE_F16},
    {"BF16", LM_DTYPE_BF16}, {"I64", LM_DTYPE_I64},         {"I32", LM_DTYPE_I32},
    {"I16", LM_DTYPE_I16},   {"I8", LM_DTYPE_I8},           {"U8", LM_DTYPE_U8},
    {"U16", LM_DTYPE_U16},   {"U32", LM_DTYPE_U32},         {"U64", LM_DTYPE_U64},
    {"BOOL", LM_DTYPE_BOOL}, {"F8_E4M3", LM_DTYPE_F8_E4M3}, {"F8_E5M2", LM_DTYPE_F8_E5M2},
};

static lm_dtype st_dtype(const char *s) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) return st_dtypes[i].dtype;
    return LM_DTYPE_INVALID;
}

static uint64_t rd_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Returns the offset of the first byte that is not part of valid UTF-8 (overlong forms,
 * surrogates and code points above U+10FFFF are invalid), or len when all is valid. */
static size_t utf8_invalid_at(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i <= n) return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += n + 1;
    }
    return len;
}

/* Reads a JSON integer that must be >= 0 (a float such as 2.0 is not an integer). */
static int json_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0) return 0;
    *out = (uint64_t)x;
    return 1;
}

/* Validates one tensor entry and fills t (offset = BEGIN relative to the byte buffer). */
static lm_status parse_tensor(const char *name, const json_t *v, lm_tensor_info *t,
                              lm_err *err) {
    if (!json_is_object(v))
        return lm_err_set(err, LM_ERR_FORMAT, "tensor '%.200s': entry is not an object", name);
    const char *key;
    const json_t *f;
    json_object_foreach((json_t *)v, key, f) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return lm_err_set(err, LM_ERR_FORMAT, "tensor '%.200s': unknown field '%.100s'",
                              name, key);
    }

    const json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return lm_err_set(err, LM_ERR_FORMAT, "tensor '%.200s': dtype missing or not a string",
                          name);
    t->dtype = st_dtype(json_string_value(jd));
    if (t->dtype == LM_DTYPE_INVALID)
        return lm_err_set(err, LM_ERR_FORMAT, "tensor '%.200s': unknown dtype '%.64s'", name,
                          json_string_value(jd));

    const json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return lm_err_set(err, LM_ERR_FORMAT, "tensor '%.200s': shape missing or not an array",
                          name);
    size_t rank = json_array_size(js);
    if (rank > LM_MAX_DIMS)
        return lm_err_set(err, LM_ERR_FORMAT, "tensor '%.200s': shape rank %zu > %d", name,
                          rank, LM_MAX_DIMS);
    t->n_dims = (uint32_t)rank;
    uint64_t count = 1;
    for (size_t d = 0; d < LM_MAX_DIMS; d++) t->ne[d] = 1;
    for (size_t d = 0; d < rank; d++) {
        uint64_t dim;
        if (!json_u64(json_array_get(js, d), &dim))
            return lm_err_set(err, LM_ERR_FORMAT,
                              "tensor '%.200s': shape[%zu] is not a non-negative integer", name,
                              d);
        t->ne[rank - 1 - d] = dim; /* innermost first */
        if (!lm_mul_u64(count, dim, &count))
            return lm_err_set(err, LM_ERR_FORMAT,
                              "tensor '%.200s': shape element count overflows", name);
    }
    t->n_elements = count;
    const lm_dtype_traits *tr = lm_dtype_get(t->dtype);
    /* every safetensors type lemma knows is a whole number of bytes per element, so the
     * reference's "bits not a multiple of 8" rule cannot trigger here */
    if (!tr || !lm_mul_u64(count, tr->type_size, &t->nbytes))
        return lm_err_set(err, LM_ERR_FORMAT, "tensor '%.200s': byte size overflows", name);

    const json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "tensor '%.200s': data_offsets missing or not [BEGIN, END]", name);
    uint64_t begin, end;
    if (!json_u64(json_array_get(jo, 0), &begin) || !json_u64(json_array_get(jo, 1), &end))
        return lm_err_set(err, LM_ERR_FORMAT,
                          "tensor '%.200s': data_offsets entries must be non-negative integers",
                          name);
    if (end < begin)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "tensor '%.200s': data_offsets END %llu < BEGIN %llu", name,
                          (unsigned long long)end, (unsigned long long)begin);
    if (end - begin != t->nbytes)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "tensor '%.200s': data_offsets span %llu bytes, dtype x shape needs "
                          "%llu",
                          name, (unsigned long long)(end - begin),
                          (unsigned long long)t->nbytes);
    t->offset = begin;
    return LM_OK;
}

static int cmp_offset(const void *a, const void *b) {
    const lm_tensor_info *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b) {
    const lm_tensor_info *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_meta(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    return strcmp(x[0], y[0]);
}

/* Copies s into the string block at *pos; returns the copy. */
static const char *put_str(char *block, size_t *pos, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = block + *pos;
    memcpy(d, s, n);
    *pos += n;
    return d;
}

/* Validates data[0..len) and fills st (whose data/size are set). */
static lm_status st_parse(lm_st *st, const lm_st_limits *lim, lm_err *err) {
    lm_status rc = LM_OK;
    json_t *root = NULL;
    const uint8_t *data = st->data;
    uint64_t len = st->size;

    /* rules 1-3: the length prefix and the header slice */
    if (len < 8)
        return lm_err_set(err, LM_ERR_FORMAT, "file is %llu bytes, shorter than the 8-byte "
                          "header length", (unsigned long long)len);
    uint64_t n = rd_le64(data), hdr_end;
    if (n > lim->max_header_bytes)
        return lm_err_set(err, LM_ERR_FORMAT, "header length N %llu > limit %llu",
                          (unsigned long long)n, (unsigned long long)lim->max_header_bytes);
    if (!lm_add_u64(n, 8, &hdr_end) || hdr_end > len)
        return lm_err_set(err, LM_ERR_FORMAT, "header length N %llu runs past the end of the "
                          "file (%llu bytes)", (unsigned long long)n, (unsigned long long)len);
    st->n_header = n;
    const uint8_t *hdr = data + 8;
    if (n == 0 || hdr[0] != '{')
        return lm_err_set(err, LM_ERR_FORMAT, "header does not start with '{'");

    /* rule 4: UTF-8, then strict JSON */
    size_t bad = utf8_invalid_at(hdr, (size_t)n);
    if (bad != n)
        return lm_err_set(err, LM_ERR_FORMAT, "header is not valid UTF-8 at byte %zu (0x%02x)",
                          bad, hdr[bad]);
    rc = lm_json_parse((const char *)hdr, (size_t)n, lim->max_json_depth, "header", &root, err);
    if (rc != LM_OK) goto done;
    if (!json_is_object(root)) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "header is not a JSON object");
        goto done;
    }

    /* sizes of the tables, and of the string block, before anything is allocated */
    const json_t *meta = json_object_get(root, "__metadata__");
    if (meta && !json_is_object(meta)) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "__metadata__ is not an object");
        goto done;
    }
    size_t n_tensors = json_object_size(root) - (meta ? 1 : 0);
    size_t n_meta = meta ? json_object_size(meta) : 0;
    if (n_tensors > lim->max_tensors) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "%zu tensors > limit %u", n_tensors,
                        lim->max_tensors);
        goto done;
    }
    if (n_meta > lim->max_meta_entries) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "__metadata__ has %zu entries > limit %u", n_meta,
                        lim->max_meta_entries);
        goto done;
    }
    /* strings are shorter than the header, so these sums cannot overflow a size_t that holds
     * the header; checked anyway for the 32-bit case */
    size_t str_bytes = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t kl = strlen(key);
        if (kl > lim->max_name_bytes) {
            rc = lm_err_set(err, LM_ERR_FORMAT, "tensor name of %zu bytes > limit %u ('%.64s')",
                            kl, lim->max_name_bytes, key);
            goto done;
        }
        if (v != meta && !lm_add_size(str_bytes, kl + 1, &str_bytes)) {
            rc = lm_err_set(err, LM_ERR_FORMAT, "header string sizes overflow");
            goto done;
        }
    }
    if (meta) {
        json_object_foreach((json_t *)meta, key, v) {
            if (!json_is_string(v)) {
                rc = lm_err_set(err, LM_ERR_FORMAT,
                                "__metadata__ '%.200s': value is not a string", key);
                goto done;
            }
            size_t kl = strlen(key);
            if (kl > lim->max_name_bytes) {
                rc = lm_err_set(err, LM_ERR_FORMAT,
                                "__metadata__ key of %zu bytes > limit %u ('%.64s')", kl,
                                lim->max_name_bytes, key);
                goto done;
            }
            if (!lm_add_size(str_bytes, kl + 1, &str_bytes) ||
                !lm_add_size(str_bytes, json_string_length(v) + 1, &str_bytes)) {
                rc = lm_err_set(err, LM_ERR_FORMAT, "header string sizes overflow");
                goto done;
            }
            if (strlen(json_string_value(v)) != json_string_length(v)) {
                rc = lm_err_set(err, LM_ERR_FORMAT, "__metadata__ '%.200s': NUL in value", key);
                goto done;
            }
        }
    }

    st->strings = lm_malloc(str_bytes ? str_bytes : 1);
    st->tensors = lm_calloc(n_tensors ? n_tensors : 1, sizeof *st->tensors);
    st->by_name = lm_calloc(n_tensors ? n_tensors : 1, sizeof *st->by_name);
    st->meta = lm_calloc(n_meta ? 2 * n_meta : 1, sizeof *st->meta);
    if (!st->strings || !st->tensors || !st->by_name || !st->meta) {
        rc = lm_err_set(err, LM_ERR_NOMEM, "out of memory for a table of %zu tensors",
                        n_tensors);
        goto done;
    }

    size_t pos = 0, i = 0;
    json_object_foreach(root, key, v) {
        if (v == meta) continue;
        lm_tensor_info *t = &st->tensors[i++];
        t->name = put_str(st->strings, &pos, key);
        rc = parse_tensor(t->name, v, t, err);
        if (rc != LM_OK) goto done;
    }
    st->n_tensors = (uint32_t)n_tensors;
    if (meta) {
        i = 0;
        json_object_foreach((json_t *)meta, key, v) {
            st->meta[2 * i] = put_str(st->strings, &pos, key);
            st->meta[2 * i + 1] = put_str(st->strings, &pos, json_string_value(v));
            i++;
        }
        st->n_meta = (uint32_t)n_meta;
        qsort(st->meta, n_meta, 2 * sizeof *st->meta, cmp_meta);
    }

    /* rules 5, 7, 8: sorted by offset, the tensors tile the byte buffer exactly */
    qsort(st->tensors, n_tensors, sizeof *st->tensors, cmp_offset);
    uint64_t expect = 0, buf_bytes = len - hdr_end;
    for (i = 0; i < n_tensors; i++) {
        lm_tensor_info *t = &st->tensors[i];
        if (t->offset != expect) {
            rc = lm_err_set(err, LM_ERR_FORMAT,
                            "tensor '%.200s': data_offsets BEGIN %llu, expected %llu (%s)",
                            t->name, (unsigned long long)t->offset, (unsigned long long)expect,
                            t->offset > expect ? "hole before it" : "overlaps the previous");
            goto done;
        }
        expect = t->offset + t->nbytes; /* end >= begin and end fits a u64: no overflow */
        if (expect > buf_bytes) {
            rc = lm_err_set(err, LM_ERR_FORMAT,
                            "tensor '%.200s': data_offsets END %llu past the end of the "
                            "%llu-byte buffer",
                            t->name, (unsigned long long)expect,
                            (unsigned long long)buf_bytes);
            goto done;
        }
        t->offset += hdr_end; /* now an absolute file offset; <= len */
        t->data = t->nbytes ? data + t->offset : NULL;
        t->file_index = 0;
        st->by_name[i] = t;
    }
    if (expect != buf_bytes) {
        rc = lm_err_set(err, LM_ERR_FORMAT,
                        "%llu trailing bytes after the last tensor (buffer %llu, indexed %llu)",
                        (unsigned long long)(buf_bytes - expect),
                        (unsigned long long)buf_bytes, (unsigned long long)expect);
        goto done;
    }
    qsort(st->by_name, n_tensors, sizeof *st->by_name, cmp_name);
    for (i = 1; i < n_tensors; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0) {
            rc = lm_err_set(err, LM_ERR_FORMAT, "duplicate tensor '%.200s'",
                            st->by_name[i]->name);
            goto done;
        }
done:
    json_decref(root);
    return rc;
}

static lm_status st_open(lm_st *st, const lm_st_limits *lim, lm_st **out, lm_err *err) {
    lm_st_limits def;
    if (!lim) {
        lm_st_default_limits(&def);
        lim = &def;
    }
    lm_status rc = st_parse(st, lim, err);
    if (rc != LM_OK) {
        lm_err_prefix(err, "safetensors");
        lm_st_close(st);
        return rc;
    }
    *out = st;
    return LM_OK;
}

lm_status lm_st_open_buffer(const void *data, size_t len, const lm_st_limits *lim, lm_st **out,
                            lm_err *err) {
    *out = NULL;
    if (!data && len)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "safetensors: NULL buffer of %zu bytes", len);
    lm_st *st = lm_calloc(1, sizeof *st);
    if (!st) return lm_err_set(err, LM_ERR_NOMEM, "safetensors: out of memory");
    st->data = data;
    st->size = len;
    return st_open(st, lim, out, err);
}

lm_status lm_st_open_file(const char *path, const lm_st_limits *lim, lm_st **out, lm_err *err) {
    *out = NULL;
    lm_st *st = lm_calloc(1, sizeof *st);
    if (!st) return lm_err_set(err, LM_ERR_NOMEM, "safetensors: out of memory");
    lm_status rc = lm_file_map(path, &st->map, err);
    if (rc != LM_OK) {
        lm_free(st);
        return rc;
    }
    st->mapped = 1;
    st->data = st->map.data;
    st->size = st->map.size;
    rc = st_open(st, lim, out, err);
    if (rc != LM_OK) lm_err_prefix(err, "%s", path);
    return rc;
}

void lm_st_close(lm_st *st) {
    if (!st) return;
    if (st->mapped) lm_file_unmap(&st->map);
    lm_free(st->tensors);
    lm_free(st->by_name);
    lm_free(st->meta);
    lm_free(st->strings);
    lm_free(st);
}

uint32_t lm_st_n_tensors(const lm_st *st) { return st->n_tensors; }

const lm_tensor_info *lm_st_tensor(const lm_st *st, uint32_t i) {
    return i < st->n_tensors ? &st->tensors[i] : NULL;
}

const lm_tensor_info *lm_st_find(const lm_st *st, const char *name) {
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

uint32_t lm_st_n_metadata(const lm_st *st) { return st->n_meta; }

const char *lm_st_metadata_key(const lm_st *st, uint32_t i) {
    return i < st->n_meta ? st->meta[2 * i] : NULL;
}

const char *lm_st_metadata_value(const lm_st *st, uint32_t i) {
    return i < st->n_meta ? st->meta[2 * i + 1] : NULL;
}

const char *lm_st_metadata_get(const lm_st *st, const char *key) {
    size_t lo = 0, hi = st->n_meta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->meta[2 * mid], key);
        if (c == 0) return st->meta[2 * mid + 1];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

uint64_t lm_st_header_bytes(const lm_st *st) { return st->n_header; }
uint64_t lm_st_file_bytes(const lm_st *st) { return st->size; }
