/*
 * gguf_convert.c — GGUF -> GGUF type conversion (`lemma quantize`); the rules are in
 * gguf_convert.h and docs/formats/gguf.md ("Converting").
 *
 * How it runs: open and validate IN (the reader checks every byte any step below touches);
 * decide every tensor's output type and size and refuse what cannot be done, all before the
 * output file is created; copy the metadata into a writer; register every tensor with a
 * producer (lm_gguf_add_tensor_fn); then lm_gguf_write_file streams the file, calling each
 * producer in tensor order. A producer converts its tensor a chunk of whole rows at a time
 * (at most CHUNK_BYTES of output, at least one row) into one reused buffer and pushes it to
 * the writer, so memory is bounded by the metadata, the chunk and one f32 row per thread.
 *
 * Determinism: every output row is a pure function of its input row and the output type;
 * threads only split a chunk's rows between them, and chunks are written in order, so the
 * bytes never depend on the thread count. No time, path or environment goes into the file.
 */
#include "format/gguf_convert.h"

#include "core/alloc.h"
#include "core/checked.h"
#include "core/threadpool.h"
#include "tensor/quant.h"

#include <inttypes.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CHUNK_BYTES ((uint64_t)4 << 20) /* output bytes converted per threadpool run */
#define COPY_SLICE ((uint64_t)64 << 20) /* bytes pushed per write when copying */

/* Targets, in the order lm_gguf_convert_target lists them, with llama.cpp's file type. */
static const struct {
    lm_dtype t;
    int ftype;
} k_targets[] = {
    {LM_DTYPE_F32, 0},   {LM_DTYPE_F16, 1},     {LM_DTYPE_BF16, 32},   {LM_DTYPE_Q8_0, 7},
    {LM_DTYPE_Q4_0, 2},  {LM_DTYPE_Q4_1, 3},    {LM_DTYPE_Q5_0, 8},    {LM_DTYPE_Q5_1, 9},
    {LM_DTYPE_Q2_K, 10}, {LM_DTYPE_Q3_K, 11},   {LM_DTYPE_Q4_K, 14},   {LM_DTYPE_Q5_K, 16},
    {LM_DTYPE_Q6_K, 18}, {LM_DTYPE_IQ4_NL, 25}, {LM_DTYPE_IQ4_XS, 30}, {LM_DTYPE_MXFP4, 38},
};
#define N_TARGETS (sizeof k_targets / sizeof k_targets[0])

lm_dtype lm_gguf_convert_target(size_t i) {
    return i < N_TARGETS ? k_targets[i].t : LM_DTYPE_INVALID;
}

int lm_gguf_convert_ftype(lm_dtype t) {
    for (size_t i = 0; i < N_TARGETS; i++)
        if (k_targets[i].t == t) return k_targets[i].ftype;
    return -1;
}

int lm_gguf_convert_can_target(lm_dtype t) {
    return lm_gguf_convert_ftype(t) >= 0;
}

lm_dtype lm_gguf_convert_parse_type(const char *name) {
    if (!name) return LM_DTYPE_INVALID;
    for (size_t i = 0; i < N_TARGETS; i++)
        if (strcasecmp(lm_dtype_name(k_targets[i].t), name) == 0) return k_targets[i].t;
    return LM_DTYPE_INVALID;
}

lm_gguf_convert_opts lm_gguf_convert_default_opts(void) {
    lm_gguf_convert_opts o;
    memset(&o, 0, sizeof o);
    o.target = LM_DTYPE_F32;
    o.n_threads = 1;
    return o;
}

static int is_integer(lm_dtype t) {
    return t == LM_DTYPE_I8 || t == LM_DTYPE_I16 || t == LM_DTYPE_I32 || t == LM_DTYPE_I64;
}

/* Types stored as plain floats (converting between them loses nothing but range/precision). */
static int is_float(lm_dtype t) {
    return t == LM_DTYPE_F32 || t == LM_DTYPE_F16 || t == LM_DTYPE_BF16 || t == LM_DTYPE_F64;
}

static int fits(lm_dtype t, uint64_t ne0) {
    const lm_dtype_traits *tr = lm_dtype_get(t);
    return tr && ne0 % tr->block_size == 0;
}

/* llama.cpp's fallback for a row length the type's block does not divide. */
static lm_dtype fallback_of(lm_dtype t) {
    switch (t) {
    case LM_DTYPE_Q2_K:
    case LM_DTYPE_Q3_K: return LM_DTYPE_Q4_0;
    case LM_DTYPE_Q4_K: return LM_DTYPE_Q5_0;
    case LM_DTYPE_Q5_K: return LM_DTYPE_Q5_1;
    case LM_DTYPE_Q6_K: return LM_DTYPE_Q8_0;
    case LM_DTYPE_IQ4_XS: return LM_DTYPE_IQ4_NL;
    default: return LM_DTYPE_F16;
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

lm_dtype lm_gguf_convert_tensor_type(const char *name, uint32_t n_dims, const uint64_t *ne,
                                     lm_dtype src, lm_dtype target, int *fallback) {
    if (fallback) *fallback = 0;
    if (is_integer(src)) return src;
    if (n_dims < 2 || !name || !ends_with(name, ".weight")) return LM_DTYPE_F32;
    uint64_t ne0 = ne[0];
    if (fits(target, ne0)) return target;
    if (fallback) *fallback = 1;
    lm_dtype t = fallback_of(target);
    return fits(t, ne0) ? t : LM_DTYPE_F16;
}

/* ---------------------------------------------------------------------------------------
 * metadata
 * ------------------------------------------------------------------------------------ */

/* Pushes the elements of array value v into a (whose element type is v's). */
static lm_status push_elems(lm_gguf_warr *a, const lm_gguf_value *v, lm_err *err) {
    lm_status st = LM_OK;
    size_t sz = lm_gguf_type_size(v->elem_type);
    for (uint64_t j = 0; j < v->n && st == LM_OK; j++) {
        lm_gguf_value e;
        if (sz) {
            st = lm_gguf_warr_push(a, v->data + j * sz, err);
            continue;
        }
        if ((st = lm_gguf_value_arr_elem(v, j, &e, err)) != LM_OK) break;
        if (e.type == LM_GGUF_TYPE_STRING) {
            st = lm_gguf_warr_push_str(a, (const char *)e.data, (size_t)e.size, err);
        } else {
            lm_gguf_warr *child = NULL;
            if ((st = lm_gguf_warr_new(e.elem_type, &child, err)) != LM_OK) break;
            if ((st = push_elems(child, &e, err)) != LM_OK) {
                lm_gguf_warr_free(child);
                break;
            }
            st = lm_gguf_warr_push_arr(a, child, err); /* takes child */
        }
    }
    return st;
}

/* Copies kv i of g into w under the same key, type and bytes. */
static lm_status copy_kv(lm_gguf_writer *w, const lm_gguf *g, uint64_t i, lm_err *err) {
    const char *key = lm_gguf_key(g, i);
    lm_gguf_value v;
    lm_status st = lm_gguf_kv_value(g, i, &v, err);
    if (st != LM_OK) return st;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        uint64_t u64;
        int64_t i64;
        double f64;
    } x;
    size_t sz = lm_gguf_type_size(v.type);
    if (sz) memcpy(&x, v.data, sz);
    switch (v.type) {
    case LM_GGUF_TYPE_UINT8: return lm_gguf_set_u8(w, key, x.u8, err);
    case LM_GGUF_TYPE_INT8: return lm_gguf_set_i8(w, key, x.i8, err);
    case LM_GGUF_TYPE_UINT16: return lm_gguf_set_u16(w, key, x.u16, err);
    case LM_GGUF_TYPE_INT16: return lm_gguf_set_i16(w, key, x.i16, err);
    case LM_GGUF_TYPE_UINT32: return lm_gguf_set_u32(w, key, x.u32, err);
    case LM_GGUF_TYPE_INT32: return lm_gguf_set_i32(w, key, x.i32, err);
    case LM_GGUF_TYPE_FLOAT32: return lm_gguf_set_f32(w, key, x.f32, err);
    case LM_GGUF_TYPE_UINT64: return lm_gguf_set_u64(w, key, x.u64, err);
    case LM_GGUF_TYPE_INT64: return lm_gguf_set_i64(w, key, x.i64, err);
    case LM_GGUF_TYPE_FLOAT64: return lm_gguf_set_f64(w, key, x.f64, err);
    case LM_GGUF_TYPE_BOOL: return lm_gguf_set_bool(w, key, x.u8 != 0, err);
    case LM_GGUF_TYPE_STRING:
        return lm_gguf_set_strn(w, key, (const char *)v.data, (size_t)v.size, err);
    case LM_GGUF_TYPE_ARRAY: {
        if (lm_gguf_type_size(v.elem_type))
            return lm_gguf_set_arr(w, key, v.elem_type, v.data, v.n, err);
        lm_gguf_warr *a = NULL;
        if ((st = lm_gguf_warr_new(v.elem_type, &a, err)) != LM_OK) return st;
        if ((st = push_elems(a, &v, err)) != LM_OK) {
            lm_gguf_warr_free(a);
            return st;
        }
        return lm_gguf_set_warr(w, key, a, err); /* takes a */
    }
    default:
        return lm_err_set(err, LM_ERR_INTERNAL, "convert: kv '%s' has type %d", key, (int)v.type);
    }
}

/* ---------------------------------------------------------------------------------------
 * tensors
 * ------------------------------------------------------------------------------------ */

typedef struct conv conv;

typedef struct conv_tensor {
    conv *c;
    const lm_tensor_info *src;
    lm_dtype dst;
    uint64_t nbytes; /* output bytes */
    uint64_t rows;   /* n_elements / ne[0] */
    size_t src_row;  /* bytes of an input row */
    size_t dst_row;  /* bytes of an output row */
    int copy;        /* 1: bytes copied unchanged */
} conv_tensor;

struct conv {
    const lm_gguf_convert_opts *o;
    lm_threadpool *tp;
    int nth;
    conv_tensor *t;
    uint64_t n_t;
    uint64_t tensors_done, bytes_done, bytes_total;
    uint8_t *chunk; /* output of one chunk */
    float *scratch; /* nth rows of max_ne0 floats */
    size_t max_ne0;
    /* the chunk being converted (read by the workers) */
    const conv_tensor *cur;
    uint64_t row0, nrows;
    int fail[LM_THREADPOOL_MAX];
};

static void convert_rows(void *ctx, int ith, int nth) {
    conv *c = ctx;
    const conv_tensor *t = c->cur;
    const int64_t ne0 = (int64_t)t->src->ne[0];
    uint64_t a = c->nrows * (uint64_t)ith / (uint64_t)nth;
    uint64_t b = c->nrows * (uint64_t)(ith + 1) / (uint64_t)nth;
    float *row = c->scratch + (size_t)ith * c->max_ne0;
    c->fail[ith] = 0;
    for (uint64_t r = a; r < b; r++) {
        const uint8_t *src = (const uint8_t *)t->src->data + (c->row0 + r) * t->src_row;
        uint8_t *dst = c->chunk + r * t->dst_row;
        if (t->dst == LM_DTYPE_F32) {
            if (lm_dequant_row(t->src->dtype, src, (float *)(void *)dst, ne0) != 0)
                c->fail[ith] = 1;
        } else if (lm_dequant_row(t->src->dtype, src, row, ne0) != 0 ||
                   lm_quantize_row(t->dst, row, dst, ne0) != t->dst_row) {
            c->fail[ith] = 1;
        }
    }
}

static lm_status report(conv *c, lm_err *err) {
    if (c->o->progress &&
        c->o->progress(c->o->progress_user, c->tensors_done, c->n_t, c->bytes_done, c->bytes_total))
        return lm_err_set(err, LM_ERR_ABORTED, "convert: stopped by the progress callback");
    return LM_OK;
}

/* The producer of one output tensor (called by the writer, in tensor order). */
static lm_status produce(void *user, lm_gguf_stream *out, lm_err *err) {
    conv_tensor *t = user;
    conv *c = t->c;
    lm_status st;
    if (t->copy) {
        const uint8_t *p = t->src->data;
        for (uint64_t off = 0; off < t->nbytes;) {
            uint64_t k = t->nbytes - off < COPY_SLICE ? t->nbytes - off : COPY_SLICE;
            if ((st = lm_gguf_stream_write(out, p + off, k, err)) != LM_OK) return st;
            off += k;
            c->bytes_done += k;
            if ((st = report(c, err)) != LM_OK) return st;
        }
    } else {
        uint64_t per = CHUNK_BYTES / t->dst_row;
        if (per == 0) per = 1;
        for (uint64_t r0 = 0; r0 < t->rows; r0 += per) {
            c->cur = t;
            c->row0 = r0;
            c->nrows = t->rows - r0 < per ? t->rows - r0 : per;
            int nth = c->tp && c->nrows > 1 ? c->nth : 1;
            if (nth > 1)
                lm_threadpool_run(c->tp, convert_rows, c);
            else
                convert_rows(c, 0, 1);
            for (int i = 0; i < nth; i++)
                if (c->fail[i])
                    return lm_err_set(
                        err, LM_ERR_INTERNAL, "convert: tensor '%s': %s -> %s failed on a row",
                        t->src->name, lm_dtype_name(t->src->dtype), lm_dtype_name(t->dst));
            uint64_t bytes = c->nrows * t->dst_row;
            if ((st = lm_gguf_stream_write(out, c->chunk, bytes, err)) != LM_OK) return st;
            c->bytes_done += bytes;
            if ((st = report(c, err)) != LM_OK) return st;
        }
    }
    c->tensors_done++;
    return report(c, err);
}

/* Decides tensor i's output and checks it can be made; fills *t. */
static lm_status plan_tensor(const lm_gguf_convert_opts *o, const lm_tensor_info *ti,
                             conv_tensor *t, int *fallback, lm_err *err) {
    memset(t, 0, sizeof *t);
    t->src = ti;
    uint64_t ne0 = ti->n_dims ? ti->ne[0] : 1;
    t->dst =
        lm_gguf_convert_tensor_type(ti->name, ti->n_dims, ti->ne, ti->dtype, o->target, fallback);
    t->rows = ti->n_elements / ne0;
    t->copy = t->dst == ti->dtype;
    if (t->copy) {
        t->nbytes = ti->nbytes;
        return LM_OK;
    }
    if (!lm_can_dequant(ti->dtype))
        return lm_err_set(err, LM_ERR_UNSUPPORTED,
                          "convert: tensor '%s': cannot convert from %s (lemma cannot "
                          "dequantize it)",
                          ti->name, lm_dtype_name(ti->dtype));
    if (!is_float(ti->dtype) && !is_float(t->dst) && !(o->flags & LM_GGUF_CONVERT_ALLOW_REQUANTIZE))
        return lm_err_set(err, LM_ERR_UNSUPPORTED,
                          "convert: tensor '%s' is %s: requantizing it to %s loses accuracy; "
                          "allow it explicitly (--allow-requantize) or convert from an "
                          "f32/f16/bf16 model",
                          ti->name, lm_dtype_name(ti->dtype), lm_dtype_name(t->dst));
    t->src_row = lm_dtype_row_size(ti->dtype, ne0);
    t->dst_row = lm_dtype_row_size(t->dst, ne0);
    if (!t->src_row || !t->dst_row || ne0 > (uint64_t)INT64_MAX ||
        !lm_mul_u64(t->rows, t->dst_row, &t->nbytes))
        return lm_err_set(err, LM_ERR_UNSUPPORTED,
                          "convert: tensor '%s': %" PRIu64 " x %" PRIu64 " %s is too large",
                          ti->name, ne0, t->rows, lm_dtype_name(t->dst));
    return LM_OK;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (strcmp(a, b) == 0) return 1;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

lm_status lm_gguf_convert(const char *in_path, const char *out_path, const lm_gguf_convert_opts *o,
                          lm_gguf_convert_stats *stats, lm_err *err) {
    lm_gguf_convert_opts def = lm_gguf_convert_default_opts();
    lm_gguf *g = NULL;
    lm_gguf_writer *w = NULL;
    conv c;
    lm_gguf_convert_stats s;
    lm_status st = LM_OK;
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    if (!o) o = &def;
    c.o = o;
    if (!in_path || !out_path || !in_path[0] || !out_path[0])
        return lm_err_set(err, LM_ERR_INVALID_ARG, "convert: empty input or output path");
    if (!lm_gguf_convert_can_target(o->target))
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "convert: cannot convert to %s",
                          lm_dtype_name(o->target));
    if (same_file(in_path, out_path))
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "convert: %s: the output would overwrite the input", out_path);
    if ((st = lm_gguf_open_file(in_path, NULL, &g, err)) != LM_OK) goto done;

    /* plan every tensor before anything is written */
    c.n_t = lm_gguf_n_tensors(g);
    c.t = lm_calloc(c.n_t ? (size_t)c.n_t : 1, sizeof *c.t);
    if (!c.t) {
        st = lm_err_set(err, LM_ERR_NOMEM, "convert: cannot allocate %" PRIu64 " tensors", c.n_t);
        goto done;
    }
    for (uint64_t i = 0; i < c.n_t; i++) {
        int fb = 0;
        conv_tensor *t = &c.t[i];
        if ((st = plan_tensor(o, lm_gguf_tensor(g, i), t, &fb, err)) != LM_OK) goto done;
        t->c = &c;
        s.n_fallback += (uint64_t)fb;
        if (t->copy) {
            s.n_copied++;
        } else {
            s.n_converted++;
            if (t->dst != LM_DTYPE_F32 && t->src->ne[0] > c.max_ne0)
                c.max_ne0 = (size_t)t->src->ne[0];
        }
        if (!lm_add_u64(c.bytes_total, t->nbytes, &c.bytes_total)) {
            st = lm_err_set(err, LM_ERR_UNSUPPORTED, "convert: output size overflows");
            goto done;
        }
    }

    /* metadata, in order; general.file_type gets the target's */
    const char *ft_key = "general.file_type";
    uint32_t ftype = (uint32_t)lm_gguf_convert_ftype(o->target);
    if ((st = lm_gguf_writer_new(&w, err)) != LM_OK ||
        (st = lm_gguf_writer_set_version(w, lm_gguf_version(g), err)) != LM_OK)
        goto done;
    for (uint64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        if (strcmp(lm_gguf_key(g, i), ft_key) == 0)
            st = lm_gguf_set_u32(w, ft_key, ftype, err);
        else
            st = copy_kv(w, g, i, err);
        if (st != LM_OK) goto done;
    }
    if (lm_gguf_find(g, ft_key) < 0 && (st = lm_gguf_set_u32(w, ft_key, ftype, err)) != LM_OK)
        goto done;

    for (uint64_t i = 0; i < c.n_t; i++) {
        const lm_tensor_info *ti = c.t[i].src;
        st = lm_gguf_add_tensor_fn(w, ti->name, c.t[i].dst, ti->n_dims, ti->ne, c.t[i].nbytes,
                                   produce, &c.t[i], err);
        if (st != LM_OK) goto done;
    }

    /* working memory: one chunk of output, one f32 row per thread */
    c.nth = o->n_threads > 1 ? o->n_threads : 1;
    if (c.nth > LM_THREADPOOL_MAX) c.nth = LM_THREADPOOL_MAX;
    size_t chunk = 0, scratch = 0;
    for (uint64_t i = 0; i < c.n_t; i++) {
        if (c.t[i].copy) continue;
        uint64_t b = c.t[i].dst_row > CHUNK_BYTES ? c.t[i].dst_row : CHUNK_BYTES;
        if (b > c.t[i].nbytes) b = c.t[i].nbytes;
        if (b > chunk) chunk = (size_t)b;
    }
    if (!lm_mul_size(c.max_ne0, (size_t)c.nth, &scratch) ||
        !lm_mul_size(scratch, sizeof(float), &scratch)) {
        st = lm_err_set(err, LM_ERR_NOMEM, "convert: rows of %zu elements are too long", c.max_ne0);
        goto done;
    }
    c.chunk = lm_malloc(chunk ? chunk : 1);
    c.scratch = lm_malloc(scratch ? scratch : 1);
    if (!c.chunk || !c.scratch) {
        st = lm_err_set(err, LM_ERR_NOMEM, "convert: cannot allocate %zu + %zu bytes of buffers",
                        chunk, scratch);
        goto done;
    }
    if (c.nth > 1 && (st = lm_threadpool_create(c.nth, &c.tp, err)) != LM_OK) goto done;

    if ((st = report(&c, err)) != LM_OK) goto done;
    if ((st = lm_gguf_write_file(w, out_path, err)) != LM_OK) goto done;

    struct stat so;
    s.n_tensors = c.n_t;
    s.in_bytes = lm_gguf_size(g);
    s.out_bytes = stat(out_path, &so) == 0 ? (uint64_t)so.st_size : 0;
    if (stats) *stats = s;
done:
    lm_threadpool_free(c.tp);
    lm_free(c.chunk);
    lm_free(c.scratch);
    lm_free(c.t);
    lm_gguf_writer_free(w);
    lm_gguf_close(g);
    return st;
}
