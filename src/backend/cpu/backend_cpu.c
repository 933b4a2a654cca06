/*
 * backend_cpu.c — the CPU backend: the lm_backend_ops table over host memory.
 *
 * Weights are used in place from the model file's mmap. Matmuls go to lm_matmul (SIMD kernels,
 * threaded over output rows by the thread pool; weights sharing an input go to lm_matmul_multi,
 * one pool run for all); attention is split over (token block, KV head) units across the same
 * pool (see attn_task); the remaining ops are cheap and run on the calling thread (ops.c:
 * AVX-512 where the CPU has it, scalar references otherwise).
 */
#include "backend/backend.h"

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "core/alloc.h"
#include "core/threadpool.h"
#include "tensor/mlx.h"
#include "tensor/quant.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct cpu_state {
    lm_threadpool *tp;
    int n_threads;
    float *scratch;      /* (n_threads, scratch_per) attention scratch (scores, tiles) */
    size_t scratch_per;  /* floats per thread */
    int no_simd;         /* LM_NO_SIMD set: attention through the reference dispatch only */
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

/* Attention is handed out in units of (token block, KV head, head chunk): at the AVX-512 level
 * one unit is one call of the grouped kernel (each K/V row converted once for the unit's
 * rows), below it the unit's rows go through lm_cpu_attention_rows one token at a time.
 *   - token blocks: n tokens cut into ceil(n / T) near-equal blocks, T = attn_tile_tokens(G),
 *     a function of the model's shape only. Blocks of two or more tokens take the tile kernel,
 *     single tokens the one-token kernel, so which kernel computes a row never depends on the
 *     thread count; and both kernels give each row a result that depends on that row alone.
 *     Output is therefore identical for any number of threads (tests/test_ops.c).
 *   - head chunks: only when there are fewer units than threads (decode: n = 1 gives Hkv
 *     units) are the heads of a KV head split into hc chunks, until every thread has one
 *     (Gemma 3 270M decode at 2 threads: 2 units of 2 heads). Each chunk streams its KV
 *     head's K/V again, which costs more than an uneven split: SmolLM2 decode (3 KV heads)
 *     at 2 threads took 0.053 ms as 3 units against 0.08-0.09 ms as 6 (2047 keys).
 *   - units are taken from an atomic counter, latest tokens (most keys) first: the cores are
 *     shared, so a static split would wait for a descheduled thread. */
typedef struct attn_task {
    float *out;
    const float *q;
    const lm_kv_pool *pool;
    const lm_kv_seq *seq;
    int32_t layer;
    int64_t n, pos0;
    const lm_attn_params *ap;
    float *scratch;
    size_t scratch_per;
    int grouped;      /* lm_cpu_attention_tile_avx512, else lm_cpu_attention_rows */
    int64_t n_blk;    /* token blocks */
    int32_t hc;       /* head chunks per KV head */
    int64_t n_units;  /* n_blk * n_head_kv * hc */
    atomic_llong next;
} attn_task;

/* Tokens per prefill tile for a group of G query heads per KV head: the tile's rows (tokens ×
 * G, at most LM_CPU_ATTN_TILE_ROWS) are SIMD lanes, so the count that fills 16-lane vectors
 * best wins, the larger on a tie. 1 when one token's group alone fills a tile. */
static int64_t attn_tile_tokens(int32_t G) {
    if (G * 2 > LM_CPU_ATTN_TILE_ROWS) return 1;
    int64_t best = 2;
    double best_fill = 0.0;
    for (int64_t t = 2; t * G <= LM_CPU_ATTN_TILE_ROWS; t++) {
        const int64_t rows = t * G, lanes = (rows + 15) / 16 * 16;
        const double fill = (double)rows / (double)lanes;
        if (fill >= best_fill) best = t, best_fill = fill;
    }
    return best;
}

static void attn_worker(void *arg, int ith, int nth) {
    attn_task *t = arg;
    const int32_t H = t->ap->n_head, Hkv = t->ap->n_head_kv, G = H / Hkv;
    float *scratch = t->scratch + (size_t)ith * t->scratch_per;
    for (;;) {
        const int64_t u = atomic_fetch_add(&t->next, 1);
        if (u >= t->n_units) break;
        const int64_t per_blk = (int64_t)Hkv * t->hc;
        const int64_t b = t->n_blk - 1 - u / per_blk;
        const int32_t g = (int32_t)(u % per_blk / t->hc), c = (int32_t)(u % t->hc);
        const int64_t i0 = b * t->n / t->n_blk, i1 = (b + 1) * t->n / t->n_blk;
        const int32_t h0 = g * G + c * G / t->hc, h1 = g * G + (c + 1) * G / t->hc;
        if (t->grouped) {
            lm_cpu_attention_tile_avx512(t->out, t->q, t->pool, t->seq, t->layer, t->pos0, t->ap,
                                         i0, i1, h0, h1, scratch);
        } else {
            for (int64_t i = i0; i < i1; i++)
                lm_cpu_attention_rows(t->out, t->q, t->pool, t->seq, t->layer, t->pos0, t->ap,
                                      i * H + h0, i * H + h1, scratch);
        }
    }
}

static lm_status cpu_attention(lm_backend *be, float *out, const float *q, const lm_kv_pool *pool,
                               const lm_kv_seq *seq, int32_t layer, int64_t n, int64_t pos0,
                               const lm_attn_params *ap, lm_err *err) {
    cpu_state *s = st(be);
    if (n <= 0) return LM_OK;
    const int grouped = !s->no_simd && lm_cpu_level_get() >= LM_CPU_AVX512;
    /* grown a page of keys (256) at a time, not at every decode step */
    const int64_t keys = (pos0 + n + 255) / 256 * 256;
    const size_t need = grouped ? lm_cpu_attention_tile_floats(ap->head_dim, keys) : (size_t)keys;
    if (need > s->scratch_per) {
        float *nb = lm_realloc(s->scratch, need * (size_t)s->n_threads * sizeof(float));
        if (!nb) return lm_err_set(err, LM_ERR_NOMEM, "attention scratch");
        s->scratch = nb;
        s->scratch_per = need;
    }
    const int32_t Hkv = ap->n_head_kv, G = ap->n_head / Hkv;
    const int64_t T = attn_tile_tokens(G);
    attn_task t = {.out = out, .q = q, .pool = pool, .seq = seq, .layer = layer, .n = n,
                   .pos0 = pos0, .ap = ap, .scratch = s->scratch, .scratch_per = s->scratch_per,
                   .grouped = grouped, .n_blk = (n + T - 1) / T, .hc = 1};
    /* chunks never leave a tile above LM_CPU_ATTN_TILE_ROWS (T * G is within it) */
    const int64_t nth = s->n_threads;
    while (t.hc < G && t.n_blk * Hkv * t.hc < nth) t.hc++;
    t.n_units = t.n_blk * Hkv * t.hc;
    atomic_init(&t.next, 0);
    if (t.n_units == 1 || s->n_threads == 1)
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
    s->no_simd = getenv("LM_NO_SIMD") != NULL;
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
