/*
 * gguf_write.c — the GGUF writer (see gguf.h for the API and gguf.c for the byte layout).
 *
 * What it writes, in order:
 *   "GGUF" | version u32 (3, or 2 on request) | n_tensors u64 | n_kv u64
 *   n_kv times:      key len u64 | key | type u32 | value (encoded when it was set)
 *   n_tensors times: name len u64 | name | n_dims u32 | ne u64 * n_dims | type u32 | offset u64
 *   zeros up to a multiple of the alignment
 *   each tensor's bytes, followed by zeros up to a multiple of the alignment
 * so tensor offsets are the running, padded sum: the contiguous layout ggml requires, which
 * our reader also accepts (it accepts gaps too).
 *
 * Invariants: every stored key is non-empty and unique (setting a key again replaces its
 * value in place); general.alignment, if stored, is a UINT32 power of two <= 65536 and equals
 * the alignment used for padding; every tensor has a unique non-empty name, a known GGML
 * type, dims >= 1 and nbytes equal to its dtype size. Values are encoded at set time (so the
 * writer owns no caller memory for metadata); tensor data is referenced, not copied, and
 * streamed to the file at write time, so writing a large model needs no second copy of it.
 * A tensor added with lm_gguf_add_tensor_fn has no data at all until the write: its producer
 * pushes exactly nbytes through lm_gguf_stream_write then (how lm_gguf_convert streams a
 * converted model without holding it in memory).
 */
#include "format/gguf.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf;

struct lm_gguf_warr {
    lm_gguf_type elem_type;
    uint64_t n;
    wbuf b; /* encoded elements */
};

typedef struct wkv {
    char *key;
    uint32_t type;
    wbuf val; /* encoded value (for arrays: elem type, count, elements) */
} wkv;

typedef struct wtensor {
    char *name;
    lm_dtype dtype;
    uint32_t n_dims;
    uint64_t ne[LM_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
    lm_gguf_tensor_fn fn; /* non-NULL: data is produced at write time by fn(fn_user, ...) */
    void *fn_user;
} wtensor;

struct lm_gguf_writer {
    uint32_t version;
    uint32_t alignment;
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

static lm_status wb_put(wbuf *b, const void *p, size_t n, lm_err *err) {
    size_t need;
    if (!lm_add_size(b->len, n, &need))
        return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: value too large");
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < need) {
            if (cap > SIZE_MAX / 2)
                return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: value too large");
            cap *= 2;
        }
        uint8_t *q = lm_realloc(b->p, cap);
        if (!q) return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot grow to %zu bytes", cap);
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len = need;
    return LM_OK;
}

static lm_status wb_u32(wbuf *b, uint32_t v, lm_err *err) {
    return wb_put(b, &v, 4, err);
}
static lm_status wb_u64(wbuf *b, uint64_t v, lm_err *err) {
    return wb_put(b, &v, 8, err);
}

static lm_status wb_str(wbuf *b, const char *s, size_t n, lm_err *err) {
    lm_status st = wb_u64(b, n, err);
    return st == LM_OK ? wb_put(b, s, n, err) : st;
}

/* ---------------------------------------------------------------------------------------
 * building
 * ------------------------------------------------------------------------------------ */

lm_status lm_gguf_writer_new(lm_gguf_writer **out, lm_err *err) {
    *out = lm_calloc(1, sizeof **out);
    if (!*out) return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot allocate");
    (*out)->version = 3;
    (*out)->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    return LM_OK;
}

void lm_gguf_writer_free(lm_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        lm_free(w->kv[i].key);
        lm_free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++)
        lm_free(w->t[i].name);
    lm_free(w->kv);
    lm_free(w->t);
    lm_free(w);
}

lm_status lm_gguf_writer_set_version(lm_gguf_writer *w, uint32_t version, lm_err *err) {
    if (version != 2 && version != 3)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: version %" PRIu32 " (only 2 and 3 can be written)",
                          version);
    w->version = version;
    return LM_OK;
}

/* Stores key -> (type, val), taking ownership of val's buffer in every case. */
static lm_status set_kv(lm_gguf_writer *w, const char *key, lm_gguf_type type, wbuf *val,
                        lm_err *err) {
    lm_status st = LM_OK;
    char *k = NULL;
    uint32_t align = w->alignment;
    if (!key || !key[0]) {
        st = lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: empty key");
        goto fail;
    }
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (type == LM_GGUF_TYPE_UINT32) memcpy(&a, val->p, 4);
        if (type != LM_GGUF_TYPE_UINT32 || !lm_is_pow2_u64(a) || a > LM_GGUF_MAX_ALIGNMENT) {
            st = lm_err_set(err, LM_ERR_INVALID_ARG,
                            "gguf writer: general.alignment must be a uint32 power of two "
                            "<= %u",
                            LM_GGUF_MAX_ALIGNMENT);
            goto fail;
        }
        align = a;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) {
            lm_free(w->kv[i].val.p);
            w->kv[i].type = (uint32_t)type;
            w->kv[i].val = *val;
            w->alignment = align;
            return LM_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *q = lm_realloc(w->kv, cap * sizeof *q);
        if (!q) {
            st = lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot grow the kv table");
            goto fail;
        }
        w->kv = q;
        w->cap_kv = cap;
    }
    k = lm_strdup(key);
    if (!k) {
        st = lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot copy key '%s'", key);
        goto fail;
    }
    w->kv[w->n_kv].key = k;
    w->kv[w->n_kv].type = (uint32_t)type;
    w->kv[w->n_kv].val = *val;
    w->n_kv++;
    w->alignment = align;
    return LM_OK;
fail:
    lm_free(val->p);
    val->p = NULL;
    return st;
}

static lm_status set_scalar(lm_gguf_writer *w, const char *key, lm_gguf_type t, const void *v,
                            lm_err *err) {
    wbuf b = {NULL, 0, 0};
    lm_status st = wb_put(&b, v, lm_gguf_type_size(t), err);
    if (st != LM_OK) {
        lm_free(b.p);
        return st;
    }
    return set_kv(w, key, t, &b, err);
}

lm_status lm_gguf_set_u8(lm_gguf_writer *w, const char *key, uint8_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_UINT8, &v, err);
}
lm_status lm_gguf_set_i8(lm_gguf_writer *w, const char *key, int8_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_INT8, &v, err);
}
lm_status lm_gguf_set_u16(lm_gguf_writer *w, const char *key, uint16_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_UINT16, &v, err);
}
lm_status lm_gguf_set_i16(lm_gguf_writer *w, const char *key, int16_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_INT16, &v, err);
}
lm_status lm_gguf_set_u32(lm_gguf_writer *w, const char *key, uint32_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_UINT32, &v, err);
}
lm_status lm_gguf_set_i32(lm_gguf_writer *w, const char *key, int32_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_INT32, &v, err);
}
lm_status lm_gguf_set_f32(lm_gguf_writer *w, const char *key, float v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_FLOAT32, &v, err);
}
lm_status lm_gguf_set_bool(lm_gguf_writer *w, const char *key, int v, lm_err *err) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, LM_GGUF_TYPE_BOOL, &b, err);
}
lm_status lm_gguf_set_u64(lm_gguf_writer *w, const char *key, uint64_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_UINT64, &v, err);
}
lm_status lm_gguf_set_i64(lm_gguf_writer *w, const char *key, int64_t v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_INT64, &v, err);
}
lm_status lm_gguf_set_f64(lm_gguf_writer *w, const char *key, double v, lm_err *err) {
    return set_scalar(w, key, LM_GGUF_TYPE_FLOAT64, &v, err);
}

lm_status lm_gguf_set_strn(lm_gguf_writer *w, const char *key, const char *s, size_t len,
                           lm_err *err) {
    wbuf b = {NULL, 0, 0};
    lm_status st = wb_str(&b, s, len, err);
    if (st != LM_OK) {
        lm_free(b.p);
        return st;
    }
    return set_kv(w, key, LM_GGUF_TYPE_STRING, &b, err);
}

lm_status lm_gguf_set_str(lm_gguf_writer *w, const char *key, const char *s, lm_err *err) {
    return lm_gguf_set_strn(w, key, s, strlen(s), err);
}

lm_status lm_gguf_set_arr(lm_gguf_writer *w, const char *key, lm_gguf_type elem_type,
                          const void *data, uint64_t n, lm_err *err) {
    size_t sz = lm_gguf_type_size(elem_type);
    uint64_t bytes;
    wbuf b = {NULL, 0, 0};
    lm_status st;
    if (sz == 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: key '%s': set_arr needs a fixed-size element type, not %s",
                          key, lm_gguf_type_name(elem_type));
    if (!lm_mul_u64(n, sz, &bytes) || bytes > SIZE_MAX)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: key '%s': %" PRIu64 " elements overflow", key, n);
    if ((st = wb_u32(&b, (uint32_t)elem_type, err)) != LM_OK ||
        (st = wb_u64(&b, n, err)) != LM_OK ||
        (st = wb_put(&b, data, (size_t)bytes, err)) != LM_OK) {
        lm_free(b.p);
        return st;
    }
    return set_kv(w, key, LM_GGUF_TYPE_ARRAY, &b, err);
}

lm_status lm_gguf_set_arr_str(lm_gguf_writer *w, const char *key, const char *const *strs,
                              const size_t *lens, uint64_t n, lm_err *err) {
    wbuf b = {NULL, 0, 0};
    lm_status st;
    if ((st = wb_u32(&b, LM_GGUF_TYPE_STRING, err)) != LM_OK || (st = wb_u64(&b, n, err)) != LM_OK)
        goto fail;
    for (uint64_t j = 0; j < n; j++) {
        size_t l = lens ? lens[j] : strlen(strs[j]);
        if ((st = wb_str(&b, strs[j], l, err)) != LM_OK) goto fail;
    }
    return set_kv(w, key, LM_GGUF_TYPE_ARRAY, &b, err);
fail:
    lm_free(b.p);
    return st;
}

lm_status lm_gguf_warr_new(lm_gguf_type elem_type, lm_gguf_warr **out, lm_err *err) {
    *out = NULL;
    if ((int)elem_type < 0 || elem_type >= LM_GGUF_TYPE_COUNT)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: array element type %d",
                          (int)elem_type);
    lm_gguf_warr *a = lm_calloc(1, sizeof *a);
    if (!a) return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot allocate an array");
    a->elem_type = elem_type;
    *out = a;
    return LM_OK;
}

void lm_gguf_warr_free(lm_gguf_warr *a) {
    if (!a) return;
    lm_free(a->b.p);
    lm_free(a);
}

lm_status lm_gguf_warr_push(lm_gguf_warr *a, const void *elem, lm_err *err) {
    if (!a) return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: NULL array");
    size_t sz = lm_gguf_type_size(a->elem_type);
    if (sz == 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: push of a fixed-size value "
                          "into an array of %s",
                          lm_gguf_type_name(a->elem_type));
    lm_status st = wb_put(&a->b, elem, sz, err);
    if (st == LM_OK) a->n++;
    return st;
}

lm_status lm_gguf_warr_push_str(lm_gguf_warr *a, const char *s, size_t len, lm_err *err) {
    if (!a) return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: NULL array");
    if (a->elem_type != LM_GGUF_TYPE_STRING)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: push of a string into an "
                          "array of %s",
                          lm_gguf_type_name(a->elem_type));
    size_t mark = a->b.len;
    lm_status st = wb_str(&a->b, s, len, err);
    if (st == LM_OK)
        a->n++;
    else
        a->b.len = mark;
    return st;
}

lm_status lm_gguf_warr_push_arr(lm_gguf_warr *a, lm_gguf_warr *child, lm_err *err) {
    lm_status st = LM_OK;
    size_t mark = a ? a->b.len : 0;
    if (!a || !child) {
        st = lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: NULL array");
        goto done;
    }
    if (a->elem_type != LM_GGUF_TYPE_ARRAY) {
        st = lm_err_set(err, LM_ERR_INVALID_ARG,
                        "gguf writer: push of an array into an array "
                        "of %s",
                        lm_gguf_type_name(a->elem_type));
        goto done;
    }
    if ((st = wb_u32(&a->b, (uint32_t)child->elem_type, err)) != LM_OK ||
        (st = wb_u64(&a->b, child->n, err)) != LM_OK ||
        (st = wb_put(&a->b, child->b.p, child->b.len, err)) != LM_OK) {
        a->b.len = mark;
        goto done;
    }
    a->n++;
done:
    lm_gguf_warr_free(child);
    return st;
}

lm_status lm_gguf_set_warr(lm_gguf_writer *w, const char *key, lm_gguf_warr *a, lm_err *err) {
    wbuf b = {NULL, 0, 0};
    lm_status st;
    if (!a) return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: NULL array");
    if ((st = wb_u32(&b, (uint32_t)a->elem_type, err)) != LM_OK ||
        (st = wb_u64(&b, a->n, err)) != LM_OK ||
        (st = wb_put(&b, a->b.p, a->b.len, err)) != LM_OK) {
        lm_free(b.p);
        lm_gguf_warr_free(a);
        return st;
    }
    lm_gguf_warr_free(a);
    return set_kv(w, key, LM_GGUF_TYPE_ARRAY, &b, err);
}

lm_status lm_gguf_set_alignment(lm_gguf_writer *w, uint32_t alignment, lm_err *err) {
    if (!lm_is_pow2_u64(alignment) || alignment > LM_GGUF_MAX_ALIGNMENT)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: alignment %" PRIu32 " is not a power of two <= %u",
                          alignment, LM_GGUF_MAX_ALIGNMENT);
    return lm_gguf_set_u32(w, "general.alignment", alignment, err);
}

lm_status lm_gguf_add_tensor(lm_gguf_writer *w, const char *name, lm_dtype dtype, uint32_t n_dims,
                             const uint64_t *ne, const void *data, uint64_t nbytes, lm_err *err) {
    if (!name || !name[0]) return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: empty name");
    if (n_dims > LM_MAX_DIMS)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: tensor '%s': n_dims %" PRIu32 " > %d", name, n_dims,
                          LM_MAX_DIMS);
    if ((int)dtype < 0 || !lm_dtype_known_ggml((uint32_t)dtype))
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: tensor '%s': dtype %d is not a "
                          "GGML type",
                          name, (int)dtype);
    const lm_dtype_traits *tr = lm_dtype_get(dtype);
    uint64_t count = 1, want;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX || !lm_mul_u64(count, ne[d], &count) ||
            count > (uint64_t)INT64_MAX)
            return lm_err_set(err, LM_ERR_INVALID_ARG,
                              "gguf writer: tensor '%s': ne[%" PRIu32 "] = %" PRIu64 " is invalid",
                              name, d, ne[d]);
    }
    uint64_t ne0 = n_dims ? ne[0] : 1;
    if (ne0 % tr->block_size || !lm_mul_u64(ne0 / tr->block_size, tr->type_size, &want) ||
        !lm_mul_u64(want, count / ne0, &want))
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: tensor '%s': ne[0] = %" PRIu64
                          " does not fit %s blocks of %" PRIu32,
                          name, ne0, tr->name, tr->block_size);
    if (want != nbytes)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "gguf writer: tensor '%s': nbytes %" PRIu64
                          " but its shape needs %" PRIu64,
                          name, nbytes, want);
    if (!data && nbytes)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: tensor '%s': NULL data", name);
    for (size_t i = 0; i < w->n_t; i++) /* O(n^2), fine for the thousands of a model */
        if (strcmp(w->t[i].name, name) == 0)
            return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: duplicate tensor '%s'", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *q = lm_realloc(w->t, cap * sizeof *q);
        if (!q) return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot grow the tensor table");
        w->t = q;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = lm_strdup(name);
    if (!t->name) return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot copy '%s'", name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < LM_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = nbytes;
    w->n_t++;
    return LM_OK;
}

lm_status lm_gguf_add_tensor_fn(lm_gguf_writer *w, const char *name, lm_dtype dtype,
                                uint32_t n_dims, const uint64_t *ne, uint64_t nbytes,
                                lm_gguf_tensor_fn fn, void *user, lm_err *err) {
    static const uint8_t placeholder; /* passes add_tensor's data check; never read */
    if (!fn)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: tensor '%s': NULL producer",
                          name ? name : "");
    lm_status st = lm_gguf_add_tensor(w, name, dtype, n_dims, ne, &placeholder, nbytes, err);
    if (st != LM_OK) return st;
    w->t[w->n_t - 1].data = NULL;
    w->t[w->n_t - 1].fn = fn;
    w->t[w->n_t - 1].fn_user = user;
    return LM_OK;
}

/* ---------------------------------------------------------------------------------------
 * output: a sink is either a fixed memory buffer or a file descriptor with a write buffer
 * ------------------------------------------------------------------------------------ */

typedef struct sink {
    int fd;            /* -1: memory */
    uint8_t *mem;      /* memory: destination of exactly cap bytes */
    uint64_t pos, cap; /* bytes written so far / expected in total */
    uint8_t buf[1 << 16];
    size_t blen;
    const char *path; /* for messages */
} sink;

static lm_status sink_flush(sink *s, lm_err *err) {
    size_t off = 0;
    while (off < s->blen) {
        ssize_t n = write(s->fd, s->buf + off, s->blen - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return lm_err_set(err, LM_ERR_IO, "%s: write: %s", s->path, strerror(errno));
        off += (size_t)n;
    }
    s->blen = 0;
    return LM_OK;
}

static lm_status sink_put(sink *s, const void *p, uint64_t n, lm_err *err) {
    if (n > s->cap - s->pos)
        return lm_err_set(err, LM_ERR_INTERNAL, "gguf writer: output larger than computed");
    if (s->fd < 0) {
        if (n) memcpy(s->mem + s->pos, p, (size_t)n);
        s->pos += n;
        return LM_OK;
    }
    const uint8_t *q = p;
    while (n) {
        if (s->blen == sizeof s->buf) {
            lm_status st = sink_flush(s, err);
            if (st != LM_OK) return st;
        }
        size_t k = sizeof s->buf - s->blen;
        if (k > n) k = (size_t)n;
        memcpy(s->buf + s->blen, q, k);
        s->blen += k;
        q += k;
        n -= k;
        s->pos += k;
    }
    return LM_OK;
}

static lm_status sink_zeros(sink *s, uint64_t n, lm_err *err) {
    static const uint8_t z[256];
    while (n) {
        uint64_t k = n < sizeof z ? n : sizeof z;
        lm_status st = sink_put(s, z, k, err);
        if (st != LM_OK) return st;
        n -= k;
    }
    return LM_OK;
}

/* Puts n bytes, writing large runs straight from p to the file (no copy through buf). */
static lm_status sink_put_large(sink *s, const void *p, uint64_t n, lm_err *err) {
    if (s->fd < 0 || n < sizeof s->buf) return sink_put(s, p, n, err);
    if (n > s->cap - s->pos)
        return lm_err_set(err, LM_ERR_INTERNAL, "gguf writer: output larger than computed");
    lm_status st = sink_flush(s, err);
    if (st != LM_OK) return st;
    const uint8_t *q = p;
    while (n) {
        size_t k = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t m = write(s->fd, q, k);
        if (m < 0 && errno == EINTR) continue;
        if (m <= 0) return lm_err_set(err, LM_ERR_IO, "%s: write: %s", s->path, strerror(errno));
        q += m;
        n -= (uint64_t)m;
        s->pos += (uint64_t)m;
    }
    return LM_OK;
}

/* What a tensor producer writes through: the sink and what is left of its tensor's bytes. */
struct lm_gguf_stream {
    sink *s;
    uint64_t left;
    const char *name;
};

lm_status lm_gguf_stream_write(lm_gguf_stream *out, const void *p, uint64_t n, lm_err *err) {
    if (n > out->left)
        return lm_err_set(err, LM_ERR_INTERNAL,
                          "gguf writer: tensor '%s': producer wrote %" PRIu64
                          " bytes past its size",
                          out->name, n - out->left);
    lm_status st = sink_put_large(out->s, p, n, err);
    if (st == LM_OK) out->left -= n;
    return st;
}

/* Header bytes (before padding) and total file size. */
static lm_status layout(const lm_gguf_writer *w, uint64_t *header, uint64_t *total, lm_err *err) {
    uint64_t h = 24, d = 0;
    int ok = 1;
    for (size_t i = 0; i < w->n_kv; i++)
        ok &= lm_add_u64(h, 12 + (uint64_t)strlen(w->kv[i].key), &h) &&
              lm_add_u64(h, w->kv[i].val.len, &h);
    for (size_t i = 0; i < w->n_t; i++) {
        ok &=
            lm_add_u64(h, 8 + (uint64_t)strlen(w->t[i].name) + 4 + 8ull * w->t[i].n_dims + 12, &h);
        ok &= lm_add_u64(d, w->t[i].nbytes, &d) && lm_pad_u64(d, w->alignment, &d);
    }
    uint64_t hp;
    ok &= lm_pad_u64(h, w->alignment, &hp) && lm_add_u64(hp, d, total);
    if (!ok) return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: file size overflows");
    *header = h;
    return LM_OK;
}

static lm_status emit(const lm_gguf_writer *w, sink *s, uint64_t header, lm_err *err) {
    lm_status st;
    uint32_t u32;
    uint64_t u64;
#define PUT(p, n)                                                                                  \
    do {                                                                                           \
        if ((st = sink_put(s, (p), (n), err)) != LM_OK) return st;                                 \
    } while (0)
    PUT(LM_GGUF_MAGIC, 4);
    u32 = w->version;
    PUT(&u32, 4);
    u64 = w->n_t;
    PUT(&u64, 8);
    u64 = w->n_kv;
    PUT(&u64, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        u64 = strlen(w->kv[i].key);
        PUT(&u64, 8);
        PUT(w->kv[i].key, u64);
        PUT(&w->kv[i].type, 4);
        PUT(w->kv[i].val.p, w->kv[i].val.len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        u64 = strlen(t->name);
        PUT(&u64, 8);
        PUT(t->name, u64);
        PUT(&t->n_dims, 4);
        PUT(t->ne, 8ull * t->n_dims);
        u32 = (uint32_t)t->dtype;
        PUT(&u32, 4);
        PUT(&off, 8);
        off += t->nbytes; /* checked in layout() */
        lm_pad_u64(off, w->alignment, &off);
    }
    uint64_t hp = header;
    lm_pad_u64(header, w->alignment, &hp);
    if ((st = sink_zeros(s, hp - header, err)) != LM_OK) return st;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t padded = t->nbytes;
        lm_pad_u64(t->nbytes, w->alignment, &padded);
        if (t->fn) {
            lm_gguf_stream out = {s, t->nbytes, t->name};
            if ((st = t->fn(t->fn_user, &out, err)) != LM_OK) return st;
            if (out.left)
                return lm_err_set(err, LM_ERR_INTERNAL,
                                  "gguf writer: tensor '%s': producer wrote %" PRIu64 " of %" PRIu64
                                  " bytes",
                                  t->name, t->nbytes - out.left, t->nbytes);
        } else if ((st = sink_put_large(s, t->data, t->nbytes, err)) != LM_OK) {
            return st; /* (big tensors go straight from the caller's memory to the file) */
        }
        if ((st = sink_zeros(s, padded - t->nbytes, err)) != LM_OK) return st;
    }
#undef PUT
    if (s->fd >= 0 && (st = sink_flush(s, err)) != LM_OK) return st;
    if (s->pos != s->cap)
        return lm_err_set(err, LM_ERR_INTERNAL,
                          "gguf writer: wrote %" PRIu64 " of %" PRIu64 " bytes", s->pos, s->cap);
    return LM_OK;
}

lm_status lm_gguf_write_buffer(const lm_gguf_writer *w, void **out, size_t *len, lm_err *err) {
    *out = NULL;
    *len = 0;
    uint64_t header, total;
    lm_status st = layout(w, &header, &total, err);
    if (st != LM_OK) return st;
    if (total > SIZE_MAX)
        return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: %" PRIu64 " bytes do not fit memory",
                          total);
    sink *s = lm_calloc(1, sizeof *s);
    uint8_t *mem = lm_malloc(total ? (size_t)total : 1);
    if (!s || !mem) {
        st = lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot allocate %" PRIu64 " bytes", total);
        goto fail;
    }
    s->fd = -1;
    s->mem = mem;
    s->cap = total;
    s->path = "(buffer)";
    if ((st = emit(w, s, header, err)) != LM_OK) goto fail;
    lm_free(s);
    *out = mem;
    *len = (size_t)total;
    return LM_OK;
fail:
    lm_free(s);
    lm_free(mem);
    return st;
}

lm_status lm_gguf_write_file(const lm_gguf_writer *w, const char *path, lm_err *err) {
    char tmp[4096], dir[4096];
    uint64_t header, total;
    sink *s = NULL;
    int fd = -1;
    lm_status st = layout(w, &header, &total, err);
    if (st != LM_OK) return st;
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "gguf writer: path too long: %s", path);
    s = lm_calloc(1, sizeof *s);
    if (!s) return lm_err_set(err, LM_ERR_NOMEM, "gguf writer: cannot allocate a write buffer");
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = lm_err_set(err, LM_ERR_IO, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    s->fd = fd;
    s->cap = total;
    s->path = tmp;
    if ((st = emit(w, s, header, err)) != LM_OK) goto fail;
    if (fsync(fd) != 0) {
        st = lm_err_set(err, LM_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
        goto fail;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0 || rename(tmp, path) != 0) {
        st = lm_err_set(err, LM_ERR_IO, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    lm_free(s);
    s = NULL;
    /* make the rename itself durable */
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        rc = fsync(dfd);
        close(dfd);
        if (rc != 0) return lm_err_set(err, LM_ERR_IO, "%s: fsync dir: %s", dir, strerror(errno));
    }
    return LM_OK;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    lm_free(s);
    return st;
}
