/*
 * gguf.c — the GGUF reader: one validating pass over a mapped file, then read-only queries.
 *
 * Byte layout (all integers little-endian, no alignment inside the header):
 *
 *   header   magic     4 bytes "GGUF"
 *            version   u32   2 or 3 (1 had 32-bit counts: refused; a byte-swapped 2/3 means
 *                            a big-endian file: refused)
 *            n_tensors u64
 *            n_kv      u64
 *   kv       n_kv times: key (string) | value type u32 | value
 *   tensors  n_tensors times: name (string) | n_dims u32 | ne u64 * n_dims | type u32 |
 *            offset u64 (relative to the data section, multiple of the alignment)
 *   padding  zeros up to a multiple of the alignment (general.alignment, default 32)
 *   data     the data section: tensor bytes at their offsets
 *
 *   string   = len u64 | len bytes (no terminator)
 *   value    = u8 | i8 | u16 | i16 | u32 | i32 | f32 | bool (1 byte) | string | array |
 *              u64 | i64 | f64            (type ids 0..12, in this order)
 *   array    = elem type u32 | n u64 | n values of elem type (arrays may nest)
 *
 * Validation (every rule, with its limit, is listed in docs/formats/gguf.md):
 *   - every read goes through a bounded cursor; running out of bytes anywhere is an error
 *     naming the field being read;
 *   - n_kv and n_tensors are checked against the limits AND against the bytes left (a kv needs
 *     at least 14 bytes, a tensor info 25) before anything is allocated from them; each array
 *     count is checked against its limit and the bytes left before it is walked;
 *   - all offset/size arithmetic goes through checked.h;
 *   - duplicate keys / tensor names are found with hash sets (O(n)), and overlapping tensors
 *     by sorting on offset (O(n log n)). Unlike ggml, gaps between tensors are accepted: they
 *     are harmless (no byte is read twice or outside the file) and some writers leave them.
 *   - every ne[i] must be >= 1: a zero-sized tensor carries no weight any architecture uses,
 *     and refusing it keeps every tensor's data pointer non-NULL and inside the file.
 *
 * Representation: the handle keeps pointers into the mapping for values (never copied) and
 * copies keys and tensor names into NUL-terminated arenas (one allocation each). Top-level
 * arrays of variable-size elements (strings, arrays) get one precomputed offset table each so
 * element j is found in O(1) (tokenizer vocabularies hold 256k strings).
 *
 * The host must be little-endian (checked at compile time): values are read with memcpy.
 */
#include "format/gguf.h"

#include "core/alloc.h"
#include "core/checked.h"
#include "core/file.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian values with memcpy: a big-endian host needs byte swaps"
#endif

#define MIN_KV_BYTES 14u     /* key len 8 + key >= 1 + type 4 + value >= 1 */
#define MIN_TENSOR_BYTES 25u /* name len 8 + name >= 1 + n_dims 4 + type 4 + offset 8 */
#define NAME_SHOW 80         /* bytes of a key/name quoted in a message */

typedef struct kv_ent {
    const char *key; /* NUL-terminated, in key_arena (into the file while parsing) */
    uint64_t key_len;
    lm_gguf_value v;
} kv_ent;

struct lm_gguf {
    lm_mapped_file mf; /* when opened from a file */
    const uint8_t *base;
    size_t size;
    lm_gguf_limits lim;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;

    uint64_t n_kv;
    kv_ent *kv;
    char *key_arena;
    uint64_t *kv_hash; /* slots hold index + 1, 0 = empty; size kv_hash_mask + 1 */
    uint64_t kv_hash_mask;

    uint64_t n_tensors;
    lm_tensor_info *tensors;
    char *name_arena;
    uint64_t *t_hash;
    uint64_t t_hash_mask;
};

/* ---------------------------------------------------------------------------------------
 * small helpers
 * ------------------------------------------------------------------------------------ */

lm_gguf_limits lm_gguf_default_limits(void) {
    lm_gguf_limits l;
    l.max_string_len = 256u << 20;
    l.max_array_elems = 1u << 28;
    l.max_kv = 65536;
    l.max_tensors = 1u << 20;
    l.max_array_depth = 4;
    l.max_name_len = 256;
    return l;
}

static const char *const type_names[LM_GGUF_TYPE_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};
static const uint8_t type_sizes[LM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *lm_gguf_type_name(lm_gguf_type t) {
    return (int)t >= 0 && t < LM_GGUF_TYPE_COUNT ? type_names[t] : "?";
}

size_t lm_gguf_type_size(lm_gguf_type t) {
    return (int)t >= 0 && t < LM_GGUF_TYPE_COUNT ? type_sizes[t] : 0;
}

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int show_len(uint64_t n) {
    return n > NAME_SHOW ? NAME_SHOW : (int)n;
}

/* ---------------------------------------------------------------------------------------
 * bounded cursor
 * ------------------------------------------------------------------------------------ */

typedef struct rd {
    const uint8_t *p;
    size_t n;   /* total bytes */
    size_t pos; /* next byte */
    const lm_gguf_limits *lim;
    char ctx[192]; /* what is being read, for messages: "kv 3 'general.name'" */
} rd;

static size_t rd_left(const rd *r) {
    return r->n - r->pos;
}

static lm_status rd_short(rd *r, uint64_t need, const char *field, lm_err *err) {
    return lm_err_set(err, LM_ERR_FORMAT,
                      "gguf: %s: truncated: %s needs %" PRIu64 " bytes at offset %zu, "
                      "only %zu left",
                      r->ctx, field, need, r->pos, rd_left(r));
}

static lm_status rd_u32(rd *r, uint32_t *v, const char *field, lm_err *err) {
    *v = 0;
    if (rd_left(r) < 4) return rd_short(r, 4, field, err);
    *v = rd32(r->p + r->pos);
    r->pos += 4;
    return LM_OK;
}

static lm_status rd_u64(rd *r, uint64_t *v, const char *field, lm_err *err) {
    *v = 0;
    if (rd_left(r) < 8) return rd_short(r, 8, field, err);
    *v = rd64(r->p + r->pos);
    r->pos += 8;
    return LM_OK;
}

/* A string: length (checked against max and the bytes left), then its bytes. */
static lm_status rd_str(rd *r, uint64_t max, const uint8_t **s, uint64_t *len, const char *field,
                        lm_err *err) {
    uint64_t n;
    *s = NULL;
    *len = 0;
    lm_status st = rd_u64(r, &n, field, err);
    if (st != LM_OK) return st;
    if (n > max)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: %s: %s length %" PRIu64 " exceeds the limit of %" PRIu64, r->ctx,
                          field, n, max);
    if (n > rd_left(r)) return rd_short(r, n, field, err);
    *s = r->p + r->pos;
    *len = n;
    r->pos += (size_t)n;
    return LM_OK;
}

/* ---------------------------------------------------------------------------------------
 * values
 * ------------------------------------------------------------------------------------ */

static lm_status parse_array(rd *r, uint32_t depth, lm_gguf_value *out, uint64_t **offs_out,
                             lm_err *err);

/* Validates and skips one value of type t (t already known valid). */
static lm_status skip_value(rd *r, lm_gguf_type t, uint32_t depth, lm_err *err) {
    if (t == LM_GGUF_TYPE_STRING) {
        const uint8_t *s;
        uint64_t n;
        return rd_str(r, r->lim->max_string_len, &s, &n, "string", err);
    }
    if (t == LM_GGUF_TYPE_ARRAY) {
        lm_gguf_value v;
        return parse_array(r, depth + 1, &v, NULL, err);
    }
    size_t sz = type_sizes[t];
    if (rd_left(r) < sz) return rd_short(r, sz, type_names[t], err);
    r->pos += sz;
    return LM_OK;
}

/* Parses an array (elem type, count, elements) at nesting depth `depth` (1 = a kv's value).
 * With offs_out and variable-size elements, fills an lm_malloc'd table of element offsets
 * relative to out->data. */
static lm_status parse_array(rd *r, uint32_t depth, lm_gguf_value *out, uint64_t **offs_out,
                             lm_err *err) {
    uint32_t et;
    uint64_t n, *offs = NULL;
    lm_status st;
    if (depth > r->lim->max_array_depth)
        return lm_err_set(err, LM_ERR_FORMAT, "gguf: %s: arrays nested deeper than the limit of %u",
                          r->ctx, r->lim->max_array_depth);
    if ((st = rd_u32(r, &et, "array element type", err)) != LM_OK) return st;
    if (et >= LM_GGUF_TYPE_COUNT)
        return lm_err_set(err, LM_ERR_FORMAT, "gguf: %s: unknown array element type %" PRIu32,
                          r->ctx, et);
    if ((st = rd_u64(r, &n, "array count", err)) != LM_OK) return st;
    if (n > r->lim->max_array_elems)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: %s: array count %" PRIu64 " exceeds the limit of %" PRIu64, r->ctx,
                          n, r->lim->max_array_elems);
    /* Every element needs at least min bytes: refuse counts the file cannot hold before
     * walking or allocating anything for them. */
    uint64_t min = et == LM_GGUF_TYPE_STRING ? 8 : et == LM_GGUF_TYPE_ARRAY ? 12 : type_sizes[et];
    uint64_t need;
    if (!lm_mul_u64(n, min, &need) || need > rd_left(r))
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: %s: array count %" PRIu64 " of %s needs at least %" PRIu64
                          "-byte elements, only %zu bytes left",
                          r->ctx, n, type_names[et], min, rd_left(r));
    out->type = LM_GGUF_TYPE_ARRAY;
    out->elem_type = (lm_gguf_type)et;
    out->n = n;
    out->data = r->p + r->pos;
    out->offs = NULL;
    size_t start = r->pos;
    if (et != LM_GGUF_TYPE_STRING && et != LM_GGUF_TYPE_ARRAY) {
        r->pos += (size_t)need;
    } else {
        if (offs_out && n > 0) {
            offs = lm_malloc((size_t)n * sizeof *offs); /* n * 8 <= bytes left: no overflow */
            if (!offs)
                return lm_err_set(err, LM_ERR_NOMEM,
                                  "gguf: %s: cannot allocate %" PRIu64 " array offsets", r->ctx, n);
        }
        for (uint64_t j = 0; j < n; j++) {
            if (offs) offs[j] = r->pos - start;
            if ((st = skip_value(r, (lm_gguf_type)et, depth, err)) != LM_OK) {
                lm_free(offs);
                return st;
            }
        }
    }
    out->size = r->pos - start;
    if (offs_out) *offs_out = offs;
    out->offs = offs;
    return LM_OK;
}

/* ---------------------------------------------------------------------------------------
 * open
 * ------------------------------------------------------------------------------------ */

static uint64_t *hash_new(uint64_t n, uint64_t *mask) {
    uint64_t cap = 16;
    while (cap < n * 2)
        cap <<= 1; /* n is bounded by file size / 13: no overflow */
    *mask = cap - 1;
    return lm_calloc((size_t)cap, sizeof(uint64_t));
}

/* Inserts index i (key s[0..n)) unless an equal key is present; returns that index + 1 then. */
static uint64_t hash_insert(uint64_t *tab, uint64_t mask, const void *keys_of, size_t stride,
                            const char *s, size_t n, uint64_t i) {
    uint64_t h = hash_bytes(s, n) & mask;
    for (;;) {
        uint64_t slot = tab[h];
        if (slot == 0) {
            tab[h] = i + 1;
            return 0;
        }
        const char *other = *(const char *const *)((const char *)keys_of + (slot - 1) * stride);
        if (strncmp(other, s, n) == 0 && other[n] == '\0') return slot;
        h = (h + 1) & mask;
    }
}

static int64_t hash_find(const uint64_t *tab, uint64_t mask, const void *keys_of, size_t stride,
                         const char *s) {
    if (!tab || !s) return -1;
    size_t n = strlen(s);
    uint64_t h = hash_bytes(s, n) & mask;
    for (;;) {
        uint64_t slot = tab[h];
        if (slot == 0) return -1;
        const char *other = *(const char *const *)((const char *)keys_of + (slot - 1) * stride);
        if (strcmp(other, s) == 0) return (int64_t)(slot - 1);
        h = (h + 1) & mask;
    }
}

static lm_status parse_header(lm_gguf *g, rd *r, uint64_t *n_tensors, lm_err *err) {
    lm_status st;
    snprintf(r->ctx, sizeof r->ctx, "header");
    if (r->n < 4)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: header: truncated: file is %zu bytes, too short for the magic",
                          r->n);
    if (memcmp(r->p, LM_GGUF_MAGIC, 4) != 0)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: header: bad magic %02x %02x %02x %02x (expected 'GGUF')", r->p[0],
                          r->p[1], r->p[2], r->p[3]);
    r->pos = 4;
    uint32_t v;
    if ((st = rd_u32(r, &v, "version", err)) != LM_OK) return st;
    if (v == 0x02000000u || v == 0x03000000u || v == 0x01000000u)
        return lm_err_set(err, LM_ERR_UNSUPPORTED,
                          "gguf: header: version field 0x%08" PRIx32
                          " is byte-swapped: big-endian GGUF is not supported",
                          v);
    if (v == 1)
        return lm_err_set(err, LM_ERR_UNSUPPORTED,
                          "gguf: header: version 1 (32-bit counts) is not supported; "
                          "re-convert the model");
    if (v == 0) return lm_err_set(err, LM_ERR_FORMAT, "gguf: header: version 0 is invalid");
    if (v > 3)
        return lm_err_set(err, LM_ERR_UNSUPPORTED,
                          "gguf: header: version %" PRIu32 " is newer than supported (3)", v);
    g->version = v;
    uint64_t nt, nkv;
    if ((st = rd_u64(r, &nt, "n_tensors", err)) != LM_OK) return st;
    if ((st = rd_u64(r, &nkv, "n_kv", err)) != LM_OK) return st;
    if (nt > g->lim.max_tensors)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: header: n_tensors %" PRIu64 " exceeds the limit of %" PRIu64, nt,
                          g->lim.max_tensors);
    if (nkv > g->lim.max_kv)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: header: n_kv %" PRIu64 " exceeds the limit of %" PRIu64, nkv,
                          g->lim.max_kv);
    uint64_t a, b, need;
    if (!lm_mul_u64(nt, MIN_TENSOR_BYTES, &a) || a > rd_left(r))
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: header: n_tensors %" PRIu64 " cannot fit in the %zu bytes left",
                          nt, rd_left(r));
    if (!lm_mul_u64(nkv, MIN_KV_BYTES, &b) || !lm_add_u64(a, b, &need) || need > rd_left(r))
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: header: n_kv %" PRIu64 " cannot fit in the %zu bytes left", nkv,
                          rd_left(r));
    *n_tensors = nt;
    g->n_kv = nkv;
    return LM_OK;
}

static lm_status parse_kvs(lm_gguf *g, rd *r, lm_err *err) {
    lm_status st;
    uint64_t arena = 0;
    if (g->n_kv) {
        g->kv = lm_calloc((size_t)g->n_kv, sizeof *g->kv);
        if (!g->kv)
            return lm_err_set(err, LM_ERR_NOMEM, "gguf: cannot allocate %" PRIu64 " kv entries",
                              g->n_kv);
    }
    for (uint64_t i = 0; i < g->n_kv; i++) {
        kv_ent *e = &g->kv[i];
        const uint8_t *k;
        uint64_t klen;
        snprintf(r->ctx, sizeof r->ctx, "kv %" PRIu64, i);
        if ((st = rd_str(r, g->lim.max_string_len, &k, &klen, "key", err)) != LM_OK) return st;
        if (klen == 0) return lm_err_set(err, LM_ERR_FORMAT, "gguf: kv %" PRIu64 ": empty key", i);
        if (memchr(k, 0, (size_t)klen))
            return lm_err_set(err, LM_ERR_FORMAT, "gguf: kv %" PRIu64 ": key '%.*s' has a NUL byte",
                              i, show_len(klen), (const char *)k);
        e->key = (const char *)k;
        e->key_len = klen;
        arena += klen + 1; /* the sum is at most the file size plus n_kv */
        snprintf(r->ctx, sizeof r->ctx, "kv %" PRIu64 " '%.*s'", i, show_len(klen),
                 (const char *)k);
        uint32_t t;
        if ((st = rd_u32(r, &t, "value type", err)) != LM_OK) return st;
        if (t >= LM_GGUF_TYPE_COUNT)
            return lm_err_set(err, LM_ERR_FORMAT, "gguf: %s: unknown value type %" PRIu32, r->ctx,
                              t);
        e->v.type = (lm_gguf_type)t;
        e->v.elem_type = LM_GGUF_TYPE_INVALID;
        e->v.n = 1;
        e->v.offs = NULL;
        if (t == LM_GGUF_TYPE_ARRAY) {
            uint64_t *offs = NULL;
            if ((st = parse_array(r, 1, &e->v, &offs, err)) != LM_OK) return st;
        } else if (t == LM_GGUF_TYPE_STRING) {
            const uint8_t *s;
            uint64_t n;
            if ((st = rd_str(r, g->lim.max_string_len, &s, &n, "string value", err)) != LM_OK)
                return st;
            e->v.data = s;
            e->v.size = n;
        } else {
            size_t sz = type_sizes[t];
            if (rd_left(r) < sz) return rd_short(r, sz, type_names[t], err);
            e->v.data = r->p + r->pos;
            e->v.size = sz;
            r->pos += sz;
        }
    }
    /* keys into one NUL-terminated arena, then the duplicate check */
    if (g->n_kv) {
        g->key_arena = lm_malloc((size_t)arena);
        g->kv_hash = hash_new(g->n_kv, &g->kv_hash_mask);
        if (!g->key_arena || !g->kv_hash)
            return lm_err_set(err, LM_ERR_NOMEM, "gguf: cannot allocate the key table");
    }
    char *p = g->key_arena;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        kv_ent *e = &g->kv[i];
        memcpy(p, e->key, (size_t)e->key_len);
        p[e->key_len] = '\0';
        e->key = p;
        p += e->key_len + 1;
        uint64_t dup = hash_insert(g->kv_hash, g->kv_hash_mask, &g->kv[0].key, sizeof(kv_ent),
                                   e->key, (size_t)e->key_len, i);
        if (dup)
            return lm_err_set(err, LM_ERR_FORMAT,
                              "gguf: duplicate key '%.*s' (kv %" PRIu64 " and kv %" PRIu64 ")",
                              show_len(e->key_len), e->key, dup - 1, i);
    }
    /* general.alignment */
    g->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = lm_gguf_find(g, "general.alignment");
    if (ai >= 0) {
        const kv_ent *e = &g->kv[ai];
        if (e->v.type != LM_GGUF_TYPE_UINT32)
            return lm_err_set(err, LM_ERR_FORMAT, "gguf: general.alignment must be uint32, got %s",
                              type_names[e->v.type]);
        uint32_t a = rd32(e->v.data);
        if (!lm_is_pow2_u64(a) || a > LM_GGUF_MAX_ALIGNMENT)
            return lm_err_set(err, LM_ERR_FORMAT,
                              "gguf: general.alignment %" PRIu32
                              " is not a power of two in [1, %u]",
                              a, LM_GGUF_MAX_ALIGNMENT);
        g->alignment = a;
    }
    return LM_OK;
}

typedef struct span_ent {
    uint64_t begin, end, idx;
} span_ent;

static int cmp_span(const void *a, const void *b) {
    const span_ent *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static lm_status parse_tensors(lm_gguf *g, rd *r, uint64_t nt, lm_err *err) {
    lm_status st = LM_OK;
    uint64_t *name_len = NULL, arena = 0;
    span_ent *spans = NULL;
    g->n_tensors = nt;
    if (nt) {
        g->tensors = lm_calloc((size_t)nt, sizeof *g->tensors);
        name_len = lm_calloc((size_t)nt, sizeof *name_len);
        if (!g->tensors || !name_len) {
            st =
                lm_err_set(err, LM_ERR_NOMEM, "gguf: cannot allocate %" PRIu64 " tensor infos", nt);
            goto done;
        }
    }
    for (uint64_t i = 0; i < nt; i++) {
        lm_tensor_info *t = &g->tensors[i];
        const uint8_t *nm;
        uint64_t nlen;
        snprintf(r->ctx, sizeof r->ctx, "tensor %" PRIu64, i);
        if ((st = rd_str(r, g->lim.max_name_len, &nm, &nlen, "name", err)) != LM_OK) goto done;
        if (nlen == 0) {
            st = lm_err_set(err, LM_ERR_FORMAT, "gguf: tensor %" PRIu64 ": empty name", i);
            goto done;
        }
        if (memchr(nm, 0, (size_t)nlen)) {
            st = lm_err_set(err, LM_ERR_FORMAT, "gguf: tensor %" PRIu64 ": name has a NUL byte", i);
            goto done;
        }
        t->name = (const char *)nm;
        name_len[i] = nlen;
        arena += nlen + 1;
        snprintf(r->ctx, sizeof r->ctx, "tensor '%.*s'", show_len(nlen), (const char *)nm);
        uint32_t nd, type;
        if ((st = rd_u32(r, &nd, "n_dims", err)) != LM_OK) goto done;
        if (nd > LM_MAX_DIMS) {
            st = lm_err_set(err, LM_ERR_FORMAT, "gguf: %s: n_dims %" PRIu32 " > %d", r->ctx, nd,
                            LM_MAX_DIMS);
            goto done;
        }
        t->n_dims = nd;
        uint64_t count = 1;
        for (uint32_t d = 0; d < LM_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if ((st = rd_u64(r, &ne, "ne", err)) != LM_OK) goto done;
            if (ne == 0 || ne > (uint64_t)INT64_MAX) {
                st = lm_err_set(err, LM_ERR_FORMAT,
                                "gguf: %s: ne[%" PRIu32 "] = %" PRIu64 " is not in [1, 2^63)",
                                r->ctx, d, ne);
                goto done;
            }
            if (!lm_mul_u64(count, ne, &count) || count > (uint64_t)INT64_MAX) {
                st = lm_err_set(err, LM_ERR_FORMAT,
                                "gguf: %s: element count overflows at ne[%" PRIu32 "] = %" PRIu64,
                                r->ctx, d, ne);
                goto done;
            }
            t->ne[d] = ne;
        }
        t->n_elements = count;
        if ((st = rd_u32(r, &type, "type", err)) != LM_OK) goto done;
        if (!lm_dtype_known_ggml(type)) {
            st = lm_err_set(err, LM_ERR_FORMAT, "gguf: %s: unknown or removed tensor type %" PRIu32,
                            r->ctx, type);
            goto done;
        }
        t->dtype = (lm_dtype)type;
        const lm_dtype_traits *tr = lm_dtype_get(t->dtype);
        if (t->ne[0] % tr->block_size) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "gguf: %s: ne[0] = %" PRIu64
                            " is not a multiple of the %s block size %" PRIu32,
                            r->ctx, t->ne[0], tr->name, tr->block_size);
            goto done;
        }
        uint64_t nb;
        if (!lm_mul_u64(t->ne[0] / tr->block_size, tr->type_size, &nb) ||
            !lm_mul_u64(nb, count / t->ne[0], &nb) || nb > SIZE_MAX) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "gguf: %s: byte size of %" PRIu64 " %s elements overflows", r->ctx,
                            count, tr->name);
            goto done;
        }
        t->nbytes = nb;
        if ((st = rd_u64(r, &t->offset, "offset", err)) != LM_OK) goto done;
        if (t->offset % g->alignment) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "gguf: %s: offset %" PRIu64 " is not a multiple of alignment %" PRIu32,
                            r->ctx, t->offset, g->alignment);
            goto done;
        }
    }
    /* the data section starts at the padded end of the header */
    uint64_t ds;
    if (!lm_pad_u64(r->pos, g->alignment, &ds)) {
        st = lm_err_set(err, LM_ERR_FORMAT, "gguf: data section offset overflows");
        goto done;
    }
    g->data_offset = ds;
    if (nt && ds > g->size) {
        st = lm_err_set(err, LM_ERR_FORMAT,
                        "gguf: truncated: data section starts at %" PRIu64
                        " past the end of the file (%zu bytes)",
                        ds, g->size);
        goto done;
    }
    /* names into the arena; duplicates; data ranges; overlaps */
    if (nt) {
        g->name_arena = lm_malloc((size_t)arena);
        g->t_hash = hash_new(nt, &g->t_hash_mask);
        spans = lm_malloc((size_t)nt * sizeof *spans); /* nt <= size / 25 */
        if (!g->name_arena || !g->t_hash || !spans) {
            st = lm_err_set(err, LM_ERR_NOMEM, "gguf: cannot allocate the tensor name table");
            goto done;
        }
    }
    char *p = g->name_arena;
    for (uint64_t i = 0; i < nt; i++) {
        lm_tensor_info *t = &g->tensors[i];
        memcpy(p, t->name, (size_t)name_len[i]);
        p[name_len[i]] = '\0';
        t->name = p;
        p += name_len[i] + 1;
        uint64_t dup = hash_insert(g->t_hash, g->t_hash_mask, &g->tensors[0].name,
                                   sizeof(lm_tensor_info), t->name, (size_t)name_len[i], i);
        if (dup) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "gguf: duplicate tensor name '%s' (tensor %" PRIu64 " and %" PRIu64 ")",
                            t->name, dup - 1, i);
            goto done;
        }
        uint64_t rel = t->offset, abs, end;
        if (!lm_add_u64(ds, rel, &abs) || !lm_add_u64(abs, t->nbytes, &end)) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "gguf: tensor '%s': offset %" PRIu64 " + %" PRIu64 " bytes overflows",
                            t->name, rel, t->nbytes);
            goto done;
        }
        if (end > g->size) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "gguf: tensor '%s': offset %" PRIu64 " + %" PRIu64
                            " bytes ends at %" PRIu64 ", past the end of the file (%zu bytes)",
                            t->name, rel, t->nbytes, end, g->size);
            goto done;
        }
        t->offset = abs;
        t->data = g->base + abs;
        t->file_index = 0;
        spans[i].begin = abs;
        spans[i].end = end;
        spans[i].idx = i;
    }
    if (nt > 1) {
        qsort(spans, (size_t)nt, sizeof *spans, cmp_span);
        for (uint64_t k = 1; k < nt; k++) {
            if (spans[k].begin < spans[k - 1].end) {
                const lm_tensor_info *a = &g->tensors[spans[k - 1].idx];
                const lm_tensor_info *b = &g->tensors[spans[k].idx];
                st = lm_err_set(err, LM_ERR_FORMAT,
                                "gguf: tensors '%s' and '%s' overlap: offset %" PRIu64
                                " is inside [%" PRIu64 ", %" PRIu64 ")",
                                a->name, b->name, b->offset - ds, a->offset - ds,
                                a->offset - ds + a->nbytes);
                goto done;
            }
        }
    }
done:
    lm_free(name_len);
    lm_free(spans);
    return st;
}

static lm_status open_common(lm_gguf *g, const lm_gguf_limits *lim, lm_err *err) {
    g->lim = lim ? *lim : lm_gguf_default_limits();
    if (g->lim.max_array_depth > LM_GGUF_HARD_MAX_DEPTH)
        g->lim.max_array_depth = LM_GGUF_HARD_MAX_DEPTH;
    rd r;
    memset(&r, 0, sizeof r);
    r.p = g->base;
    r.n = g->size;
    r.lim = &g->lim;
    uint64_t nt = 0;
    lm_status st = parse_header(g, &r, &nt, err);
    if (st == LM_OK) st = parse_kvs(g, &r, err);
    if (st == LM_OK) st = parse_tensors(g, &r, nt, err);
    return st;
}

lm_status lm_gguf_open_buffer(const void *data, size_t len, const lm_gguf_limits *lim,
                              lm_gguf **out, lm_err *err) {
    *out = NULL;
    if (!data && len)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf: NULL buffer of %zu bytes", len);
    lm_gguf *g = lm_calloc(1, sizeof *g);
    if (!g) return lm_err_set(err, LM_ERR_NOMEM, "gguf: cannot allocate the handle");
    g->base = data;
    g->size = len;
    lm_status st = open_common(g, lim, err);
    if (st != LM_OK) {
        lm_gguf_close(g);
        return st;
    }
    *out = g;
    return LM_OK;
}

lm_status lm_gguf_open_file(const char *path, const lm_gguf_limits *lim, lm_gguf **out,
                            lm_err *err) {
    *out = NULL;
    lm_gguf *g = lm_calloc(1, sizeof *g);
    if (!g) return lm_err_set(err, LM_ERR_NOMEM, "gguf: cannot allocate the handle");
    lm_status st = lm_file_map(path, &g->mf, err);
    if (st != LM_OK) goto fail;
    g->base = g->mf.data;
    g->size = g->mf.size;
    st = open_common(g, lim, err);
    if (st != LM_OK) {
        lm_err_prefix(err, "%s", path);
        goto fail;
    }
    *out = g;
    return LM_OK;
fail:
    lm_gguf_close(g);
    return st;
}

void lm_gguf_close(lm_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++)
        lm_free((void *)g->kv[i].v.offs);
    lm_free(g->kv);
    lm_free(g->key_arena);
    lm_free(g->kv_hash);
    lm_free(g->tensors);
    lm_free(g->name_arena);
    lm_free(g->t_hash);
    lm_file_unmap(&g->mf);
    lm_free(g);
}

/* ---------------------------------------------------------------------------------------
 * queries
 * ------------------------------------------------------------------------------------ */

uint32_t lm_gguf_version(const lm_gguf *g) {
    return g->version;
}
uint32_t lm_gguf_alignment(const lm_gguf *g) {
    return g->alignment;
}
uint64_t lm_gguf_data_offset(const lm_gguf *g) {
    return g->data_offset;
}
size_t lm_gguf_size(const lm_gguf *g) {
    return g->size;
}
const void *lm_gguf_base(const lm_gguf *g) {
    return g->base;
}
uint64_t lm_gguf_n_kv(const lm_gguf *g) {
    return g->n_kv;
}
uint64_t lm_gguf_n_tensors(const lm_gguf *g) {
    return g->n_tensors;
}

const char *lm_gguf_key(const lm_gguf *g, uint64_t i) {
    return i < g->n_kv ? g->kv[i].key : NULL;
}

int64_t lm_gguf_find(const lm_gguf *g, const char *key) {
    if (!g->kv) return -1;
    return hash_find(g->kv_hash, g->kv_hash_mask, &g->kv[0].key, sizeof(kv_ent), key);
}

lm_gguf_type lm_gguf_kv_type(const lm_gguf *g, uint64_t i) {
    return i < g->n_kv ? g->kv[i].v.type : LM_GGUF_TYPE_INVALID;
}

lm_gguf_type lm_gguf_arr_type(const lm_gguf *g, uint64_t i) {
    return i < g->n_kv && g->kv[i].v.type == LM_GGUF_TYPE_ARRAY ? g->kv[i].v.elem_type
                                                                : LM_GGUF_TYPE_INVALID;
}

uint64_t lm_gguf_arr_n(const lm_gguf *g, uint64_t i) {
    return i < g->n_kv && g->kv[i].v.type == LM_GGUF_TYPE_ARRAY ? g->kv[i].v.n : 0;
}

const lm_tensor_info *lm_gguf_tensor(const lm_gguf *g, uint64_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t lm_gguf_find_tensor(const lm_gguf *g, const char *name) {
    if (!g->tensors) return -1;
    return hash_find(g->t_hash, g->t_hash_mask, &g->tensors[0].name, sizeof(lm_tensor_info), name);
}

lm_status lm_gguf_kv_value(const lm_gguf *g, uint64_t i, lm_gguf_value *out, lm_err *err) {
    if (i >= g->n_kv)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf: kv index %" PRIu64 " >= n_kv %" PRIu64, i,
                          g->n_kv);
    *out = g->kv[i].v;
    return LM_OK;
}

/* ---- scalar conversion ---- */

/* Reads an integer value as (negative?, magnitude-or-value). Returns 0 if v is not an int. */
static int int_of(const lm_gguf_value *v, int *neg, uint64_t *u, int64_t *s) {
    const uint8_t *p = v->data;
    int64_t sv = 0;
    uint64_t uv = 0;
    int is_signed = 0;
    switch (v->type) {
    case LM_GGUF_TYPE_UINT8: uv = p[0]; break;
    case LM_GGUF_TYPE_INT8:
        sv = (int8_t)p[0];
        is_signed = 1;
        break;
    case LM_GGUF_TYPE_UINT16: uv = rd16(p); break;
    case LM_GGUF_TYPE_INT16:
        sv = (int16_t)rd16(p);
        is_signed = 1;
        break;
    case LM_GGUF_TYPE_UINT32: uv = rd32(p); break;
    case LM_GGUF_TYPE_INT32:
        sv = (int32_t)rd32(p);
        is_signed = 1;
        break;
    case LM_GGUF_TYPE_UINT64: uv = rd64(p); break;
    case LM_GGUF_TYPE_INT64:
        sv = (int64_t)rd64(p);
        is_signed = 1;
        break;
    default: return 0;
    }
    if (is_signed) {
        *neg = sv < 0;
        *s = sv;
        *u = sv < 0 ? 0 : (uint64_t)sv;
    } else {
        *neg = 0;
        *u = uv;
        *s = uv > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)uv;
    }
    return 1;
}

static lm_status int_range(const lm_gguf_value *v, const char *what, int is_signed_target,
                           uint64_t umax, int64_t smin, int64_t smax, uint64_t *u, int64_t *s,
                           const char *target, lm_err *err) {
    int neg;
    if (!int_of(v, &neg, u, s))
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: key '%s': expected %s (or another integer "
                          "type), got %s",
                          what, target, lm_gguf_type_name(v->type));
    int ok;
    if (is_signed_target)
        ok = neg ? *s >= smin : (*u <= (uint64_t)smax);
    else
        ok = !neg && *u <= umax;
    if (!ok) {
        if (neg)
            return lm_err_set(err, LM_ERR_FORMAT,
                              "gguf: key '%s': value %" PRId64 " (%s) does "
                              "not fit %s",
                              what, *s, lm_gguf_type_name(v->type), target);
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: key '%s': value %" PRIu64 " (%s) does not "
                          "fit %s",
                          what, *u, lm_gguf_type_name(v->type), target);
    }
    return LM_OK;
}

lm_status lm_gguf_value_u64(const lm_gguf_value *v, const char *what, uint64_t *out, lm_err *err) {
    uint64_t u = 0;
    int64_t s = 0;
    lm_status st = int_range(v, what, 0, UINT64_MAX, 0, 0, &u, &s, "uint64", err);
    if (st == LM_OK) *out = u;
    return st;
}

lm_status lm_gguf_value_i64(const lm_gguf_value *v, const char *what, int64_t *out, lm_err *err) {
    uint64_t u = 0;
    int64_t s = 0;
    lm_status st = int_range(v, what, 1, 0, INT64_MIN, INT64_MAX, &u, &s, "int64", err);
    if (st == LM_OK) *out = s;
    return st;
}

lm_status lm_gguf_value_f64(const lm_gguf_value *v, const char *what, double *out, lm_err *err) {
    if (v->type == LM_GGUF_TYPE_FLOAT32) {
        float f;
        memcpy(&f, v->data, 4);
        *out = f;
        return LM_OK;
    }
    if (v->type == LM_GGUF_TYPE_FLOAT64) {
        memcpy(out, v->data, 8);
        return LM_OK;
    }
    return lm_err_set(err, LM_ERR_FORMAT, "gguf: key '%s': expected float32 or float64, got %s",
                      what, lm_gguf_type_name(v->type));
}

/* ---- getters by key ---- */

static lm_status lookup(const lm_gguf *g, const char *key, const lm_gguf_value **v, lm_err *err) {
    int64_t i = lm_gguf_find(g, key);
    if (i < 0) return lm_err_set(err, LM_ERR_NOT_FOUND, "gguf: key '%s' not found", key);
    *v = &g->kv[i].v;
    return LM_OK;
}

lm_status lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out, lm_err *err) {
    const lm_gguf_value *v = NULL;
    lm_status st = lookup(g, key, &v, err);
    return st == LM_OK ? lm_gguf_value_u64(v, key, out, err) : st;
}

lm_status lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out, lm_err *err) {
    const lm_gguf_value *v = NULL;
    lm_status st = lookup(g, key, &v, err);
    return st == LM_OK ? lm_gguf_value_i64(v, key, out, err) : st;
}

lm_status lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out, lm_err *err) {
    const lm_gguf_value *v = NULL;
    uint64_t u = 0;
    int64_t s = 0;
    lm_status st = lookup(g, key, &v, err);
    if (st == LM_OK) st = int_range(v, key, 0, UINT32_MAX, 0, 0, &u, &s, "uint32", err);
    if (st == LM_OK) *out = (uint32_t)u;
    return st;
}

lm_status lm_gguf_get_i32(const lm_gguf *g, const char *key, int32_t *out, lm_err *err) {
    const lm_gguf_value *v = NULL;
    uint64_t u = 0;
    int64_t s = 0;
    lm_status st = lookup(g, key, &v, err);
    if (st == LM_OK) st = int_range(v, key, 1, 0, INT32_MIN, INT32_MAX, &u, &s, "int32", err);
    if (st == LM_OK) *out = (int32_t)s;
    return st;
}

lm_status lm_gguf_get_f64(const lm_gguf *g, const char *key, double *out, lm_err *err) {
    const lm_gguf_value *v = NULL;
    lm_status st = lookup(g, key, &v, err);
    return st == LM_OK ? lm_gguf_value_f64(v, key, out, err) : st;
}

lm_status lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out, lm_err *err) {
    double d;
    lm_status st = lm_gguf_get_f64(g, key, &d, err);
    if (st != LM_OK) return st;
    if (isfinite(d) && (d > FLT_MAX || d < -FLT_MAX))
        return lm_err_set(err, LM_ERR_FORMAT, "gguf: key '%s': value %g does not fit float32", key,
                          d);
    *out = (float)d;
    return LM_OK;
}

lm_status lm_gguf_get_bool(const lm_gguf *g, const char *key, int *out, lm_err *err) {
    const lm_gguf_value *v = NULL;
    lm_status st = lookup(g, key, &v, err);
    if (st != LM_OK) return st;
    if (v->type != LM_GGUF_TYPE_BOOL)
        return lm_err_set(err, LM_ERR_FORMAT, "gguf: key '%s': expected bool, got %s", key,
                          lm_gguf_type_name(v->type));
    *out = v->data[0] != 0;
    return LM_OK;
}

lm_status lm_gguf_get_str(const lm_gguf *g, const char *key, const char **ptr, size_t *len,
                          lm_err *err) {
    const lm_gguf_value *v = NULL;
    lm_status st = lookup(g, key, &v, err);
    if (st != LM_OK) return st;
    if (v->type != LM_GGUF_TYPE_STRING)
        return lm_err_set(err, LM_ERR_FORMAT, "gguf: key '%s': expected string, got %s", key,
                          lm_gguf_type_name(v->type));
    *ptr = (const char *)v->data;
    *len = (size_t)v->size;
    return LM_OK;
}

lm_status lm_gguf_get_arr(const lm_gguf *g, const char *key, lm_gguf_type expected_elem_type,
                          const void **data, uint64_t *n, lm_err *err) {
    const lm_gguf_value *v = NULL;
    lm_status st = lookup(g, key, &v, err);
    if (st != LM_OK) return st;
    if (lm_gguf_type_size(expected_elem_type) == 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf: key '%s': get_arr needs a fixed-size element type, not %s", key,
                          lm_gguf_type_name(expected_elem_type));
    if (v->type != LM_GGUF_TYPE_ARRAY)
        return lm_err_set(err, LM_ERR_FORMAT, "gguf: key '%s': expected array of %s, got %s", key,
                          lm_gguf_type_name(expected_elem_type), lm_gguf_type_name(v->type));
    if (v->elem_type != expected_elem_type)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "gguf: key '%s': expected array of %s, got array of %s", key,
                          lm_gguf_type_name(expected_elem_type), lm_gguf_type_name(v->elem_type));
    *data = v->data;
    *n = v->n;
    return LM_OK;
}

static const uint8_t *arr_elem4(const lm_gguf *g, uint64_t i, uint64_t j, lm_gguf_type t) {
    if (i >= g->n_kv) return NULL;
    const lm_gguf_value *v = &g->kv[i].v;
    if (v->type != LM_GGUF_TYPE_ARRAY || v->elem_type != t || j >= v->n) return NULL;
    return v->data + j * 4;
}

float lm_gguf_arr_get_f32(const lm_gguf *g, uint64_t i, uint64_t j) {
    const uint8_t *p = arr_elem4(g, i, j, LM_GGUF_TYPE_FLOAT32);
    return p ? lm_gguf_load_f32(p, 0) : 0.0f;
}

int32_t lm_gguf_arr_get_i32(const lm_gguf *g, uint64_t i, uint64_t j) {
    const uint8_t *p = arr_elem4(g, i, j, LM_GGUF_TYPE_INT32);
    return p ? lm_gguf_load_i32(p, 0) : 0;
}

uint32_t lm_gguf_arr_get_u32(const lm_gguf *g, uint64_t i, uint64_t j) {
    const uint8_t *p = arr_elem4(g, i, j, LM_GGUF_TYPE_UINT32);
    return p ? lm_gguf_load_u32(p, 0) : 0;
}

lm_status lm_gguf_arr_str(const lm_gguf *g, uint64_t i, uint64_t j, const char **ptr, size_t *len) {
    if (i >= g->n_kv) return LM_ERR_INVALID_ARG;
    const lm_gguf_value *v = &g->kv[i].v;
    if (v->type != LM_GGUF_TYPE_ARRAY || v->elem_type != LM_GGUF_TYPE_STRING || j >= v->n ||
        !v->offs)
        return LM_ERR_INVALID_ARG;
    const uint8_t *p = v->data + v->offs[j];
    *len = (size_t)rd64(p);
    *ptr = (const char *)p + 8;
    return LM_OK;
}

/* ---- nested values ---- */

/* Bytes taken by one already-validated element of type t starting at p (end bounds it);
 * 0 on inconsistency (cannot happen after validation, kept as a guard). */
static uint64_t elem_span(const uint8_t *p, const uint8_t *end, lm_gguf_type t, uint32_t depth) {
    uint64_t left = (uint64_t)(end - p);
    if (t == LM_GGUF_TYPE_STRING) {
        if (left < 8) return 0;
        uint64_t n = rd64(p);
        return n <= left - 8 ? n + 8 : 0;
    }
    if (t == LM_GGUF_TYPE_ARRAY) {
        if (left < 12 || depth > LM_GGUF_HARD_MAX_DEPTH) return 0;
        uint32_t et = rd32(p);
        uint64_t n = rd64(p + 4), pos = 12;
        if (et >= LM_GGUF_TYPE_COUNT) return 0;
        if (type_sizes[et]) {
            uint64_t b;
            if (!lm_mul_u64(n, type_sizes[et], &b) || b > left - 12) return 0;
            return b + 12;
        }
        for (uint64_t j = 0; j < n; j++) {
            uint64_t s = elem_span(p + pos, end, (lm_gguf_type)et, depth + 1);
            if (s == 0) return 0;
            pos += s;
        }
        return pos;
    }
    size_t sz = lm_gguf_type_size(t);
    return sz && sz <= left ? sz : 0;
}

lm_status lm_gguf_value_arr_elem(const lm_gguf_value *arr, uint64_t j, lm_gguf_value *out,
                                 lm_err *err) {
    if (arr->type != LM_GGUF_TYPE_ARRAY)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf: value is %s, not an array",
                          lm_gguf_type_name(arr->type));
    if (j >= arr->n)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf: array index %" PRIu64 " >= length %" PRIu64, j, arr->n);
    lm_gguf_type et = arr->elem_type;
    const uint8_t *end = arr->data + arr->size, *p;
    size_t sz = lm_gguf_type_size(et);
    memset(out, 0, sizeof *out);
    out->type = et;
    out->elem_type = LM_GGUF_TYPE_INVALID;
    out->n = 1;
    if (sz) {
        out->data = arr->data + j * sz;
        out->size = sz;
        return LM_OK;
    }
    if (arr->offs) {
        p = arr->data + arr->offs[j];
    } else {
        p = arr->data;
        for (uint64_t k = 0; k < j; k++) {
            uint64_t s = elem_span(p, end, et, 0);
            if (s == 0) goto bad;
            p += s;
        }
    }
    uint64_t s = elem_span(p, end, et, 0);
    if (s == 0) goto bad;
    if (et == LM_GGUF_TYPE_STRING) {
        out->data = p + 8;
        out->size = s - 8;
    } else {
        out->elem_type = (lm_gguf_type)rd32(p);
        out->n = rd64(p + 4);
        out->data = p + 12;
        out->size = s - 12;
    }
    return LM_OK;
bad:
    return lm_err_set(err, LM_ERR_INTERNAL, "gguf: array element %" PRIu64 " is inconsistent", j);
}

/* ---------------------------------------------------------------------------------------
 * JSON rendering for `lemma inspect`
 * ------------------------------------------------------------------------------------ */

typedef struct sb {
    char *p;
    size_t len, cap;
    int oom;
} sb;

static void sb_put(sb *b, const char *s, size_t n) {
    if (b->oom) return;
    size_t need;
    if (!lm_add_size(b->len, n + 1, &need)) {
        b->oom = 1;
        return;
    }
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *q = lm_realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sb *b, const char *s) {
    sb_put(b, s, strlen(s));
}

static void sb_printf(sb *b, const char *fmt, ...) LM_PRINTF(2, 3);
static void sb_printf(sb *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if the bytes there are not one. */
static size_t utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void json_str(sb *b, const uint8_t *s, uint64_t n) {
    sb_put(b, "\"", 1);
    uint64_t i = 0;
    while (i < n && !b->oom) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
            i++;
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t l = utf8_seq(s + i, (size_t)(n - i));
            if (l == 0) {
                sb_puts(b, "\\ufffd");
                i++;
            } else {
                sb_put(b, (const char *)s + i, l);
                i += l;
            }
        }
    }
    sb_put(b, "\"", 1);
}

static void json_float(sb *b, double d, int is32) {
    if (isnan(d))
        sb_puts(b, "\"NaN\"");
    else if (isinf(d))
        sb_puts(b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else
        sb_printf(b, is32 ? "%.9g" : "%.17g", d);
}

static void json_value(sb *b, const lm_gguf_value *v, size_t max_items) {
    const uint8_t *p = v->data;
    switch (v->type) {
    case LM_GGUF_TYPE_UINT8: sb_printf(b, "%u", p[0]); break;
    case LM_GGUF_TYPE_INT8: sb_printf(b, "%d", (int8_t)p[0]); break;
    case LM_GGUF_TYPE_UINT16: sb_printf(b, "%u", rd16(p)); break;
    case LM_GGUF_TYPE_INT16: sb_printf(b, "%d", (int16_t)rd16(p)); break;
    case LM_GGUF_TYPE_UINT32: sb_printf(b, "%" PRIu32, rd32(p)); break;
    case LM_GGUF_TYPE_INT32: sb_printf(b, "%" PRId32, (int32_t)rd32(p)); break;
    case LM_GGUF_TYPE_UINT64: sb_printf(b, "%" PRIu64, rd64(p)); break;
    case LM_GGUF_TYPE_INT64: sb_printf(b, "%" PRId64, (int64_t)rd64(p)); break;
    case LM_GGUF_TYPE_FLOAT32: {
        float f;
        memcpy(&f, p, 4);
        json_float(b, f, 1);
        break;
    }
    case LM_GGUF_TYPE_FLOAT64: {
        double d;
        memcpy(&d, p, 8);
        json_float(b, d, 0);
        break;
    }
    case LM_GGUF_TYPE_BOOL: sb_puts(b, p[0] ? "true" : "false"); break;
    case LM_GGUF_TYPE_STRING: json_str(b, p, v->size); break;
    case LM_GGUF_TYPE_ARRAY: {
        sb_put(b, "[", 1);
        uint64_t shown = v->n < max_items ? v->n : max_items;
        /* walk sequentially: O(total) even for nested variable-size elements */
        const uint8_t *q = v->data, *end = v->data + v->size;
        for (uint64_t j = 0; j < shown && !b->oom; j++) {
            lm_gguf_value e;
            memset(&e, 0, sizeof e);
            e.type = v->elem_type;
            e.elem_type = LM_GGUF_TYPE_INVALID;
            e.n = 1;
            uint64_t s = elem_span(q, end, v->elem_type, 0);
            if (s == 0) {
                b->oom = 1; /* inconsistent: cannot happen after validation */
                break;
            }
            if (e.type == LM_GGUF_TYPE_STRING) {
                e.data = q + 8;
                e.size = s - 8;
            } else if (e.type == LM_GGUF_TYPE_ARRAY) {
                e.elem_type = (lm_gguf_type)rd32(q);
                e.n = rd64(q + 4);
                e.data = q + 12;
                e.size = s - 12;
            } else {
                e.data = q;
                e.size = s;
            }
            if (j) sb_put(b, ", ", 2);
            json_value(b, &e, max_items);
            q += s;
        }
        if (shown < v->n) {
            if (shown) sb_put(b, ", ", 2);
            sb_printf(b, "\"... (%" PRIu64 " more)\"", v->n - shown);
        }
        sb_put(b, "]", 1);
        break;
    }
    default: sb_puts(b, "null"); break;
    }
}

char *lm_gguf_value_to_json(const lm_gguf *g, uint64_t i, size_t max_array_items) {
    if (!g || i >= g->n_kv) return NULL;
    sb b = {NULL, 0, 0, 0};
    json_value(&b, &g->kv[i].v, max_array_items);
    if (b.oom) {
        lm_free(b.p);
        return NULL;
    }
    return b.p;
}
