/*
 * backend_cpu.c — the CPU backend: the lm_backend_ops table over host memory.
 *
 * Weights are used in place from the model file's mmap. Matmuls go to lm_matmul (SIMD kernels,
 * threaded over output rows by the thread pool; weights sharing an input go to lm_matmul_multi,
 * one pool run for all); attention is split over (token, head) rows across the same pool; the
 * remaining ops are cheap and run on the calling thread (ops.c: AVX-512 where the CPU has it,
 * scalar references otherwise).
 */
#include "backend/backend.h"

#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "core/alloc.h"
#include "core/threadpool.h"
#include "tensor/mlx.h"
#include "tensor/quant.h"

#include <math.h>
#include <string.h>

typedef struct cpu_state {
    lm_threadpool *tp;
    int n_threads;
    float *scratch;      /* (n_threads, scratch_per) attention score rows */
    size_t scratch_per;  /* floats per thread */
} cpu_state;

static cpu_state *st(lm_backend *be) { return (cpu_state *)be->impl; }

static float *cpu_alloc(lm_backend *be, size_t n) {
    return lm_calloc(n ? n : 1, sizeof(float));
}
static void cpu_release(lm_backend *be, float *buf) { lm_free(buf); }
static lm_status cpu_download(lm_backend *be, float *host, const float *buf, size_t n,
                              lm_err *err) {
    memcpy(host, buf, n * sizeof(float));
    return LM_OK;
}

/* Bits of an MLX pack type, 0 for other types. */
static int mlx_bits(lm_dtype t) {
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (lm_mlx_dtype(bits[i]) == t) return bits[i];
    return 0;
}

static lm_status cpu_matmul(lm_backend *be, const lm_weight *w, const float *x, int64_t n,
                            float *y, lm_err *err) {
    const int bits = w->group_size > 0 ? mlx_bits(w->dtype) : 0;
    if (bits)
        return lm_matmul_mlx(st(be)->tp, bits, w->group_size, w->data, w->scales, w->biases,
                             w->scale_dtype, w->rows, w->cols, x, n, y, err);
    return lm_matmul(st(be)->tp, w->dtype, w->data, w->rows, w->cols, x, n, y, err);
}

static lm_status cpu_matmul_multi(lm_backend *be, int count, const lm_weight *const *ws,
                                  const float *x, int64_t n, float *const *ys, lm_err *err) {
    lm_matmul_item it[LM_MATMUL_MULTI_MAX];
    int fused = count >= 1 && count <= LM_MATMUL_MULTI_MAX;
    for (int i = 0; fused && i < count; i++) {
        /* MLX packs and mismatched widths take the one-weight path */
        fused = ws[i]->group_size <= 0 && ws[i]->cols == ws[0]->cols;
        if (fused) it[i] = (lm_matmul_item){ws[i]->dtype, ws[i]->data, ws[i]->rows, ys[i]};
    }
    if (fused) return lm_matmul_multi(st(be)->tp, it, count, ws[0]->cols, x, n, err);
    for (int i = 0; i < count; i++) {
        lm_status s = cpu_matmul(be, ws[i], x, n, ys[i], err);
        if (s != LM_OK) return s;
    }
    return LM_OK;
}

static lm_status cpu_add_bias(lm_backend *be, float *y, const lm_weight *b, int64_t n,
                              lm_err *err) {
    if (b->dtype != LM_DTYPE_F32) return lm_err_set(err, LM_ERR_UNSUPPORTED, "bias not f32");
    const float *bv = b->data;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < b->cols; j++) y[i * b->cols + j] += bv[j];
    return LM_OK;
}

static lm_status cpu_rmsnorm(lm_backend *be, float *y, const float *x, const lm_weight *w,
                             int64_t n, int64_t dim, float eps, lm_err *err) {
    if (w && w->dtype != LM_DTYPE_F32)
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "norm weight is %s, not f32",
                          lm_dtype_name(w->dtype));
    lm_cpu_rmsnorm(y, x, w ? (const float *)w->data : NULL, n, dim, eps);
    return LM_OK;
}

static lm_status cpu_rope(lm_backend *be, float *x, int64_t n, int32_t n_head, int32_t head_dim,
                          int64_t pos0, const lm_rope_params *rp, lm_err *err) {
    lm_cpu_rope(x, n, n_head, head_dim, pos0, rp);
    return LM_OK;
}

static lm_status cpu_kv_write(lm_backend *be, lm_kv_pool *pool, const lm_kv_seq *seq,
                              int32_t layer, const float *k, const float *v, int64_t n,
                              int64_t pos0, lm_err *err) {
    lm_cpu_kv_write(pool, seq, layer, k, v, n, pos0);
    return LM_OK;
}

typedef struct attn_task {
    float *out;
    const float *q;
    const lm_kv_pool *pool;
    const lm_kv_seq *seq;
    int32_t layer;
    int64_t pos0, rows;
    const lm_attn_params *ap;
    float *scratch;
    size_t scratch_per;
} attn_task;

static void attn_worker(void *arg, int ith, int nth) {
    attn_task *t = arg;
    const int64_t per = (t->rows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < t->rows ? r0 + per : t->rows;
    if (r0 >= r1) return;
    lm_cpu_attention_rows(t->out, t->q, t->pool, t->seq, t->layer, t->pos0, t->ap, r0, r1,
                          t->scratch + (size_t)ith * t->scratch_per);
}

static lm_status cpu_attention(lm_backend *be, float *out, const float *q, const lm_kv_pool *pool,
                               const lm_kv_seq *seq, int32_t layer, int64_t n, int64_t pos0,
                               const lm_attn_params *ap, lm_err *err) {
    cpu_state *s = st(be);
    const size_t need = (size_t)(pos0 + n);
    if (need > s->scratch_per) {
        float *nb = lm_realloc(s->scratch, need * (size_t)s->n_threads * sizeof(float));
        if (!nb) return lm_err_set(err, LM_ERR_NOMEM, "attention scratch");
        s->scratch = nb;
        s->scratch_per = need;
    }
    attn_task t = {out, q, pool, seq, layer, pos0, n * ap->n_head, ap, s->scratch, s->scratch_per};
    if (t.rows == 1 || s->n_threads == 1)
        attn_worker(&t, 0, 1);
    else
        lm_threadpool_run(s->tp, attn_worker, &t);
    return LM_OK;
}

static lm_status cpu_glu(lm_backend *be, float *gate, const float *up, int64_t n, lm_act act,
                         lm_err *err) {
    lm_cpu_glu(gate, up, n, act);
    return LM_OK;
}

static lm_status cpu_embed(lm_backend *be, const lm_weight *table, const int32_t *ids, int64_t n,
                           float scale, float *out, lm_err *err) {
    const int bits = table->group_size > 0 ? mlx_bits(table->dtype) : 0;
    const size_t rs = bits ? lm_mlx_row_bytes(bits, table->cols)
                           : lm_dtype_row_size(table->dtype, (uint64_t)table->cols);
    const size_t srs = bits ? lm_dtype_row_size(table->scale_dtype,
                                                (uint64_t)(table->cols / table->group_size))
                            : 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= table->rows)
            return lm_err_set(err, LM_ERR_INVALID_ARG, "token id %d out of range [0, %lld)",
                              ids[i], (long long)table->rows);
        float *o = out + i * table->cols;
        const uint8_t *row = (const uint8_t *)table->data + (size_t)ids[i] * rs;
        int bad = bits ? lm_mlx_dequant_row(bits, table->group_size, row,
                                            (const uint8_t *)table->scales + (size_t)ids[i] * srs,
                                            (const uint8_t *)table->biases + (size_t)ids[i] * srs,
                                            table->scale_dtype, o, table->cols)
                       : lm_dequant_row(table->dtype, row, o, table->cols);
        if (bad != 0)
            return lm_err_set(err, LM_ERR_UNSUPPORTED, "embedding type %s",
                              lm_dtype_name(table->dtype));
        if (scale != 1.0f)
            for (int64_t j = 0; j < table->cols; j++) o[j] *= scale;
    }
    return LM_OK;
}

static lm_status cpu_add(lm_backend *be, float *y, const float *x, int64_t n, lm_err *err) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return LM_OK;
}
static lm_status cpu_scale(lm_backend *be, float *y, float s, int64_t n, lm_err *err) {
    for (int64_t i = 0; i < n; i++) y[i] *= s;
    return LM_OK;
}
static lm_status cpu_copy(lm_backend *be, float *dst, const float *src, int64_t n, lm_err *err) {
    memmove(dst, src, (size_t)n * sizeof(float));
    return LM_OK;
}
static lm_status cpu_softcap(lm_backend *be, float *y, float cap, int64_t n, lm_err *err) {
    for (int64_t i = 0; i < n; i++) y[i] = cap * tanhf(y[i] / cap);
    return LM_OK;
}

static void cpu_destroy(lm_backend *be) {
    cpu_state *s = st(be);
    if (s) {
        lm_threadpool_free(s->tp);
        lm_free(s->scratch);
        lm_free(s);
    }
    lm_free(be);
}

static const lm_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .download = cpu_download,
    .matmul = cpu_matmul,
    .add_bias = cpu_add_bias,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .kv_write = cpu_kv_write,
    .attention = cpu_attention,
    .glu = cpu_glu,
    .embed = cpu_embed,
    .add = cpu_add,
    .scale = cpu_scale,
    .copy = cpu_copy,
    .softcap = cpu_softcap,
    .matmul_multi = cpu_matmul_multi,
};

lm_status lm_backend_cpu_create(int n_threads, lm_backend **out, lm_err *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "threads %d not in [1, 1024]", n_threads);
    lm_cpu_ops_init();
    lm_backend *be = lm_calloc(1, sizeof *be);
    cpu_state *s = lm_calloc(1, sizeof *s);
    if (!be || !s) {
        lm_free(be);
        lm_free(s);
        return lm_err_set(err, LM_ERR_NOMEM, "cpu backend");
    }
    be->ops = &cpu_ops;
    be->impl = s;
    s->n_threads = n_threads;
    lm_status rc = lm_threadpool_create(n_threads, &s->tp, err);
    if (rc != LM_OK) {
        cpu_destroy(be);
        return rc;
    }
    *out = be;
    return LM_OK;
}

void lm_backend_free(lm_backend *be) {
    if (be) be->ops->destroy(be);
}
