/*
 * matmul.c — the CPU matmul driver: argument checks, kernel dispatch, activation
 * quantization, and the split of work over the thread pool.
 *
 * Dispatch: one kernel table per SIMD level (scalar, avx2, avx512), each built once from the
 * lower level's table plus what that level implements; a call reads the active level
 * (cpu_features.h) and uses its table.
 *
 * Three kernel paths (kernels.h), chosen per weight by what the level's table has:
 *   - decode (n = 1) with a gemv kernel: the activation row is quantized, then rewritten once
 *     into the decode layout (dpack); the kernel runs up to LM_NW_MAX weight rows per call;
 *   - prefill (n >= LM_PGEMM_MIN_N) with a packed GEMM: the activation rows are quantized and
 *     packed once; each chunk's weight rows are packed into per-thread scratch, then every
 *     tile of LM_NW_MAX weight rows × LM_NX_MAX activation rows runs pgemm;
 *   - otherwise one vdot per weight row and tile of up to LM_NX_MAX activation rows (the
 *     scalar and AVX2 levels, and the formats without the two above).
 * Tiles start at multiples of LM_NW_MAX / LM_NX_MAX (chunks are whole tiles), so which kernel
 * shape computes a given output, and so its float summation order, never depends on the
 * thread count.
 *
 * Threading, per call (two pool runs; lm_matmul_multi shares both among several weights with
 * the same input, e.g. Q, K and V):
 *   1. Activations → Q8_x: the n × (K / block) activation blocks are cut into nth contiguous
 *      ranges, so decode (n = 1) also quantizes in parallel (the packed path splits by rows).
 *   2. Products: weight rows are handed out in chunks by an atomic counter (dynamic, because
 *      the cores are shared and a statically split thread can be descheduled). Inside a chunk,
 *      the chunk's weights stay in L1/L2 while the activation tiles stream past.
 */
#include "backend/cpu/matmul.h"

#include "backend/cpu/kernels.h"
#include "core/alloc.h"
#include "core/checked.h"
#include "tensor/mlx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---------------------------------------------------------------- dispatch tables */

static lm_cpu_kernels g_tables[3];
static pthread_once_t g_tables_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    const lm_cpu_features *f = lm_cpu_features_get();
    lm_cpu_kernels_fill_ref(&g_tables[LM_CPU_SCALAR]);
    g_tables[LM_CPU_AVX2] = g_tables[LM_CPU_SCALAR];
    if (f->max_level >= LM_CPU_AVX2) lm_cpu_kernels_fill_avx2(&g_tables[LM_CPU_AVX2]);
    g_tables[LM_CPU_AVX512] = g_tables[LM_CPU_AVX2];
    if (f->max_level >= LM_CPU_AVX512) lm_cpu_kernels_fill_avx512(&g_tables[LM_CPU_AVX512]);
}

const lm_cpu_kernels *lm_cpu_kernels_for(lm_cpu_level level) {
    pthread_once(&g_tables_once, build_tables);
    lm_cpu_level max = lm_cpu_features_get()->max_level;
    if (level > max) level = max;
    if (level < LM_CPU_SCALAR) level = LM_CPU_SCALAR;
    return &g_tables[level];
}

int lm_matmul_supports(lm_dtype t) {
    return t >= 0 && t < LM_DTYPE_GGML_COUNT && lm_cpu_kernels_for(LM_CPU_SCALAR)->vdot[t];
}

static lm_quant_act_fn quant_fn(const lm_cpu_kernels *k, lm_dtype act) {
    switch (act) {
    case LM_DTYPE_Q8_0: return k->quant_q8_0;
    case LM_DTYPE_Q8_1: return k->quant_q8_1;
    case LM_DTYPE_Q8_K: return k->quant_q8_K;
    default: return NULL;
    }
}

lm_status lm_cpu_quantize_act(lm_dtype act, const float *x, void *dst, int64_t n, lm_err *err) {
    const lm_cpu_kernels *k = lm_cpu_kernels_for(lm_cpu_level_get());
    lm_quant_act_fn q = quant_fn(k, act);
    if (!q) return lm_err_set(err, LM_ERR_INVALID_ARG, "quantize_act: %s is not an activation "
                              "format", lm_dtype_name(act));
    const lm_dtype_traits *tr = lm_dtype_get(act);
    if (!x || !dst || n < 0 || n % tr->block_size != 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "quantize_act: bad arguments (n %lld)",
                          (long long)n);
    q(x, dst, n);
    return LM_OK;
}

/* ---------------------------------------------------------------- activation quantization */

typedef struct qact_ctx {
    lm_quant_act_fn fn;
    const float *X;
    int64_t K, n;
    int64_t blk;      /* elements per activation block */
    size_t row_bytes; /* bytes of one quantized row */
    size_t blk_bytes;
    uint8_t *dst;
} qact_ctx;

static void qact_worker(void *arg, int ith, int nth) {
    const qact_ctx *c = arg;
    const int64_t per_row = c->K / c->blk, total = per_row * c->n;
    int64_t u0 = total * ith / nth, u1 = total * (ith + 1) / nth;
    while (u0 < u1) {
        int64_t r = u0 / per_row, b = u0 % per_row;
        int64_t cnt = per_row - b;
        if (cnt > u1 - u0) cnt = u1 - u0;
        uint8_t *row = c->dst + (size_t)r * c->row_bytes;
        c->fn(c->X + r * c->K + b * c->blk, row + b * c->blk_bytes, cnt * c->blk);
        u0 += cnt;
    }
}

/* Packed activations (prefill with a pgemm kernel, see kernels.h): rows split over threads,
 * each quantized into the thread's Q8 row (tmp) and packed from there. */
typedef struct pact_ctx {
    lm_quant_act_fn fn;
    lm_pack_x_fn pack;
    const float *X;
    int64_t K, n;
    uint8_t *tmp;     /* nth × tmp_bytes */
    size_t tmp_bytes;
    uint8_t *dst;     /* n × row_bytes, 64-byte aligned */
    size_t row_bytes;
} pact_ctx;

static void pact_worker(void *arg, int ith, int nth) {
    const pact_ctx *c = arg;
    uint8_t *t = c->tmp + (size_t)ith * c->tmp_bytes;
    for (int64_t r = c->n * ith / nth; r < c->n * (ith + 1) / nth; r++) {
        c->fn(c->X + r * c->K, t, c->K);
        c->pack(c->K, t, c->dst + (size_t)r * c->row_bytes);
    }
}

static uint8_t *align64(uint8_t *p) {
    return (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* ---------------------------------------------------------------- products */

/* One weight matrix of a call, and where its chunks start in the call's chunk numbering. */
typedef struct mm_item {
    lm_vdot_fn vdot;
    lm_pgemm_fn pgemm; /* packed prefill path (then pack_w too), or NULL */
    lm_pack_w_fn pack_w;
    size_t pw_row;    /* bytes per packed weight row */
    lm_gemv_fn gemv;  /* multi-row decode (n = 1) against the decode layout, or NULL */
    const uint8_t *W;
    size_t w_row;     /* bytes per weight row */
    const uint8_t *A; /* activations in the kernel's format */
    size_t a_row;     /* bytes per activation row */
    int64_t rows;
    float *Y;
    int64_t chunk;    /* rows per chunk */
    int64_t first;    /* number of the item's first chunk */
} mm_item;

typedef struct mm_ctx {
    mm_item it[LM_MATMUL_MULTI_MAX];
    int count;
    int64_t K, n;
    int64_t n_chunks; /* over all items */
    uint8_t *scratch; /* packed weight rows of a chunk, scratch_stride bytes per thread */
    size_t scratch_stride;
    atomic_llong next;
} mm_ctx;

static void mm_worker(void *arg, int ith, int nth) {
    mm_ctx *c = arg;
    (void)nth;
    for (;;) {
        const int64_t ci = atomic_fetch_add(&c->next, 1);
        if (ci >= c->n_chunks) break;
        int i = 0;
        while (i + 1 < c->count && ci >= c->it[i + 1].first) i++;
        const mm_item *m = &c->it[i];
        const int64_t r0 = (ci - m->first) * m->chunk;
        const int64_t r1 = r0 + m->chunk < m->rows ? r0 + m->chunk : m->rows;
        if (m->pgemm) {
            /* the chunk's weights packed once, then every activation tile against them */
            uint8_t *pw = c->scratch + (size_t)ith * c->scratch_stride;
            m->pack_w(c->K, m->W + (size_t)r0 * m->w_row, m->w_row, (int)(r1 - r0), pw,
                      m->pw_row);
            /* blocks of activation rows that stay in L2; within one, each group of weight
             * rows (in L1) meets every activation tile */
            int64_t xb = (int64_t)(((size_t)256 << 10) / m->a_row) / LM_NX_MAX * LM_NX_MAX;
            if (xb < LM_NX_MAX) xb = LM_NX_MAX;
            for (int64_t jb = 0; jb < c->n; jb += xb) {
                const int64_t je = jb + xb < c->n ? jb + xb : c->n;
                for (int64_t r = r0; r < r1; r += LM_NW_MAX) {
                    int nw = r1 - r < LM_NW_MAX ? (int)(r1 - r) : LM_NW_MAX;
                    for (int64_t j = jb; j < je; j += LM_NX_MAX) {
                        int nx = je - j < LM_NX_MAX ? (int)(je - j) : LM_NX_MAX;
                        m->pgemm(c->K, pw + (size_t)(r - r0) * m->pw_row, m->pw_row, nw,
                                 m->A + (size_t)j * m->a_row, m->a_row, nx,
                                 m->Y + j * m->rows + r, (size_t)m->rows);
                    }
                }
            }
            continue;
        }
        if (m->gemv) {
            for (int64_t r = r0; r < r1; r += LM_NW_MAX) {
                int nw = r1 - r < LM_NW_MAX ? (int)(r1 - r) : LM_NW_MAX;
                m->gemv(c->K, m->W + (size_t)r * m->w_row, m->w_row, nw, m->A, m->Y + r);
            }
            continue;
        }
        for (int64_t j = 0; j < c->n; j += LM_NX_MAX) {
            int nx = c->n - j < LM_NX_MAX ? (int)(c->n - j) : LM_NX_MAX;
            const uint8_t *a = m->A + (size_t)j * m->a_row;
            float *y = m->Y + j * m->rows;
            for (int64_t r = r0; r < r1; r++)
                m->vdot(c->K, m->W + (size_t)r * m->w_row, a, m->a_row, nx, y + r,
                        (size_t)m->rows);
        }
    }
}

static int64_t pick_chunk(int64_t rows, int64_t n, int nth) {
    /* Enough chunks per thread (8) to balance shared cores, few enough to keep the counter
     * cheap; prefill chunks stay small so a chunk's weights fit in L1/L2 across tiles. */
    int64_t c = rows / ((int64_t)nth * 8);
    if (n > 1 && c > 16) c = 16;
    if (c < 4) c = 4;
    return (c + LM_NW_MAX - 1) / LM_NW_MAX * LM_NW_MAX; /* whole tiles of the kernels */
}

static lm_status check_common(const void *W, int64_t rows, int64_t K, const float *X, int64_t n,
                              float *Y, lm_err *err) {
    if (!W || !X || !Y)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul: NULL %s",
                          !W ? "W" : !X ? "X" : "Y");
    if (rows < 0 || n < 0 || K <= 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul: bad shape rows %lld K %lld n %lld",
                          (long long)rows, (long long)K, (long long)n);
    uint64_t t;
    if (!lm_mul_u64((uint64_t)rows, (uint64_t)n, &t) || t > (uint64_t)INT64_MAX / 4 ||
        !lm_mul_u64((uint64_t)K, (uint64_t)n, &t) || t > (uint64_t)INT64_MAX / 4)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul: shape overflows");
    return LM_OK;
}

lm_status lm_matmul(lm_threadpool *tp, lm_dtype wtype, const void *W, int64_t rows, int64_t K,
                    const float *X, int64_t n, float *Y, lm_err *err) {
    const lm_matmul_item it = {wtype, W, rows, Y};
    return lm_matmul_multi(tp, &it, 1, K, X, n, err);
}

lm_status lm_matmul_multi(lm_threadpool *tp, const lm_matmul_item *items, int count, int64_t K,
                          const float *X, int64_t n, lm_err *err) {
    if (!items || count < 1 || count > LM_MATMUL_MULTI_MAX)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul: %d weights (1..%d)", count,
                          LM_MATMUL_MULTI_MAX);
    const lm_cpu_kernels *k = lm_cpu_kernels_for(lm_cpu_level_get());
    const int nth = lm_threadpool_n_threads(tp);
    mm_ctx mc;
    memset(&mc, 0, sizeof mc);
    mc.count = count;
    mc.K = K;
    mc.n = n;
    /* activation buffers, one per distinct (format, layout) among the items */
    uint8_t *abuf[LM_MATMUL_MULTI_MAX] = {NULL};
    uint8_t *aptr[LM_MATMUL_MULTI_MAX]; /* abuf, 64-byte aligned */
    lm_dtype akey[LM_MATMUL_MULTI_MAX];
    int alay[LM_MATMUL_MULTI_MAX];
    size_t arow[LM_MATMUL_MULTI_MAX];
    int n_act = 0;
    size_t scratch_need = 0;
    lm_status st = LM_OK;
    for (int i = 0; i < count; i++) {
        const lm_matmul_item *w = &items[i];
        st = check_common(w->W, w->rows, K, X, n, w->Y, err);
        if (st != LM_OK) goto done;
        if (!lm_matmul_supports(w->wtype)) {
            st = lm_err_set(err, LM_ERR_UNSUPPORTED, "matmul: weight type %s (%d) not supported",
                            lm_dtype_name(w->wtype), (int)w->wtype);
            goto done;
        }
        const lm_dtype_traits *tr = lm_dtype_get(w->wtype);
        const size_t w_row = lm_dtype_row_size(w->wtype, (uint64_t)K);
        if (K % tr->block_size != 0 || w_row == 0) {
            st = lm_err_set(err, LM_ERR_INVALID_ARG, "matmul: K %lld not a multiple of %s's "
                            "block size %u", (long long)K, tr->name, tr->block_size);
            goto done;
        }
        mm_item *m = &mc.it[i];
        m->vdot = k->vdot[w->wtype];
        const lm_dtype act = lm_cpu_act_type(w->wtype);
        const int q8 = act == LM_DTYPE_Q8_0 || act == LM_DTYPE_Q8_1 || act == LM_DTYPE_Q8_K;
        /* prefill: the packed path where the level has it */
        if (n >= LM_PGEMM_MIN_N(act) && q8 && k->pgemm[w->wtype] && k->pack_w[w->wtype] &&
            k->pack_x[act]) {
            m->pgemm = k->pgemm[w->wtype];
            m->pack_w = k->pack_w[w->wtype];
            m->pw_row = lm_pk_row_bytes(act, K, 1);
        }
        /* decode: the multi-row kernels where the level has them */
        if (n == 1 && q8 && k->gemv[w->wtype] && k->dpack[act]) m->gemv = k->gemv[w->wtype];
        m->W = w->W;
        m->w_row = w_row;
        m->rows = w->rows;
        m->Y = w->Y;
        m->chunk = pick_chunk(w->rows, n, nth);
        m->first = mc.n_chunks;
        mc.n_chunks += (w->rows + m->chunk - 1) / m->chunk;
        if (m->pgemm && (size_t)m->chunk * m->pw_row > scratch_need)
            scratch_need = (size_t)m->chunk * m->pw_row;
        if (w->rows == 0 || n == 0) continue;

        if (act == LM_DTYPE_F32) {
            m->A = (const uint8_t *)X;
            m->a_row = (size_t)K * sizeof(float);
            continue;
        }
        /* 0: Q8 rows, 1: packed rows, 2: the decode layout (kernels.h) */
        const int lay = m->pgemm ? 1 : m->gemv ? 2 : 0;
        int a = 0;
        while (a < n_act && !(akey[a] == act && alay[a] == lay)) a++;
        if (a == n_act) {
            const lm_dtype_traits *at = lm_dtype_get(act);
            size_t a_row = lm_dtype_row_size(act, (uint64_t)K), total;
            if (a_row == 0 || K % at->block_size != 0) {
                st = lm_err_set(err, LM_ERR_INVALID_ARG, "matmul: K %lld not a multiple of %s's "
                                "block size %u", (long long)K, at->name, at->block_size);
                goto done;
            }
            const size_t q_row = a_row;
            if (lay == 1) a_row = lm_pk_row_bytes(act, K, 0);
            if (lay == 2) a_row = lm_dp_layout_of(K).bytes;
            if (!lm_mul_size(a_row, (size_t)n, &total) || total > SIZE_MAX - 64) {
                st = lm_err_set(err, LM_ERR_INVALID_ARG, "matmul: activation size overflows");
                goto done;
            }
            abuf[a] = lm_malloc(total + 64);
            if (!abuf[a]) {
                st = lm_err_set(err, LM_ERR_NOMEM, "matmul: %zu bytes for activations", total);
                goto done;
            }
            aptr[a] = align64(abuf[a]);
            akey[a] = act;
            alay[a] = lay;
            arow[a] = a_row;
            n_act++;
            if (lay) {
                /* Q8 rows go to scratch first, then are rewritten into the buffer */
                uint8_t *tq = lm_malloc((size_t)nth * (q_row + 64));
                if (!tq) {
                    st = lm_err_set(err, LM_ERR_NOMEM, "matmul: activation scratch");
                    goto done;
                }
                if (lay == 1) {
                    pact_ctx pc = {quant_fn(k, act), k->pack_x[act], X, K, n, tq, q_row + 64,
                                   aptr[a], a_row};
                    lm_threadpool_run(tp, pact_worker, &pc);
                } else {
                    qact_ctx qc = {quant_fn(k, act), X, K, 1, at->block_size, q_row,
                                   at->type_size, tq};
                    if (K < 4096) qact_worker(&qc, 0, 1);
                    else lm_threadpool_run(tp, qact_worker, &qc);
                    k->dpack[act](K, tq, aptr[a]);
                }
                lm_free(tq);
            } else {
                qact_ctx qc = {quant_fn(k, act), X,      K,   n, at->block_size, a_row,
                               at->type_size,    aptr[a]};
                /* a tiny activation is quantized faster than a pool wake-up */
                if (n * K < 4096) qact_worker(&qc, 0, 1);
                else lm_threadpool_run(tp, qact_worker, &qc);
            }
        }
        m->A = aptr[a];
        m->a_row = arow[a];
    }
    if (n > 0 && mc.n_chunks > 0) {
        if (scratch_need) {
            mc.scratch_stride = (scratch_need + 63) / 64 * 64;
            mc.scratch = lm_malloc((size_t)nth * mc.scratch_stride + 64);
            if (!mc.scratch) {
                st = lm_err_set(err, LM_ERR_NOMEM, "matmul: %zu bytes of weight scratch",
                                (size_t)nth * mc.scratch_stride);
                goto done;
            }
        }
        uint8_t *scratch = mc.scratch;
        mc.scratch = scratch ? align64(scratch) : NULL;
        atomic_init(&mc.next, 0);
        lm_threadpool_run(tp, mm_worker, &mc);
        mc.scratch = scratch;
    }
done:
    for (int a = 0; a < LM_MATMUL_MULTI_MAX; a++) lm_free(abuf[a]);
    lm_free(mc.scratch);
    return st;
}

/* ---------------------------------------------------------------- MLX affine */

typedef struct mlx_ctx {
    int bits, gs;
    const uint8_t *P, *S, *B;
    size_t p_row, s_row; /* bytes per row of packed / of scales (= biases) */
    lm_dtype sdt;
    int64_t rows, K, n;
    const float *X;
    const float *xsum; /* n × (K / gs): Σ x over each group */
    float *Y;
    float *scratch;    /* nth × K codes as floats */
    lm_vdot_fn fdot;   /* f32 kernel of the active level */
    lm_mlx_fn fast;    /* 4/8-bit kernel of the active level, or NULL */
    float *sbuf;       /* nth × 2 × (K / gs): scratch of the fast kernels */
    int64_t chunk;
    atomic_llong next;
} mlx_ctx;

static float scale_at(lm_dtype dt, const uint8_t *p, int64_t i) {
    if (dt == LM_DTYPE_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return dt == LM_DTYPE_F16 ? lm_half_to_f32(h) : lm_bf16_to_f32(h);
}

/* Codes of a packed row as floats: element i at bits [i*bits, (i+1)*bits). */
static void mlx_codes(int bits, const uint8_t *p, float *q, int64_t K) {
    if (bits == 8) {
        for (int64_t i = 0; i < K; i++) q[i] = p[i];
    } else if (bits == 4) {
        for (int64_t i = 0; i < K / 2; i++) {
            q[2 * i] = (float)(p[i] & 15);
            q[2 * i + 1] = (float)(p[i] >> 4);
        }
    } else {
        const uint32_t mask = (1u << bits) - 1;
        for (int64_t i = 0; i < K; i++) {
            uint64_t bit = (uint64_t)i * (uint64_t)bits;
            uint32_t v = p[bit >> 3];
            if ((bit & 7) + (uint64_t)bits > 8) v |= (uint32_t)p[(bit >> 3) + 1] << 8;
            q[i] = (float)((v >> (bit & 7)) & mask);
        }
    }
}

static void mlx_worker(void *arg, int ith, int nth) {
    mlx_ctx *c = arg;
    (void)nth;
    float *q = c->scratch + (size_t)ith * (size_t)c->K;
    const int64_t ng = c->K / c->gs;
    float *sf = c->sbuf + (size_t)ith * 2 * (size_t)ng;
    for (;;) {
        int64_t r0 = atomic_fetch_add(&c->next, c->chunk);
        if (r0 >= c->rows) break;
        int64_t r1 = r0 + c->chunk < c->rows ? r0 + c->chunk : c->rows;
        for (int64_t r = r0; r < r1; r++) {
            if (c->fast) {
                c->fast(c->K, c->gs, c->P + (size_t)r * c->p_row, c->S + (size_t)r * c->s_row,
                        c->B + (size_t)r * c->s_row, c->sdt, sf, c->X, (size_t)c->K, c->xsum,
                        (size_t)ng, (int)c->n, c->Y + r, (size_t)c->rows);
                continue;
            }
            mlx_codes(c->bits, c->P + (size_t)r * c->p_row, q, c->K);
            const uint8_t *sr = c->S + (size_t)r * c->s_row, *br = c->B + (size_t)r * c->s_row;
            for (int64_t j = 0; j < c->n; j++) {
                const float *x = c->X + j * c->K;
                const float *xs = c->xsum + j * ng;
                float acc = 0.0f;
                for (int64_t g = 0; g < ng; g++) {
                    float d;
                    c->fdot(c->gs, q + g * c->gs, x + g * c->gs, 0, 1, &d, 0);
                    acc += scale_at(c->sdt, sr, g) * d + scale_at(c->sdt, br, g) * xs[g];
                }
                c->Y[j * c->rows + r] = acc;
            }
        }
    }
}

lm_status lm_matmul_mlx(lm_threadpool *tp, int bits, int group_size, const void *packed,
                        const void *scales, const void *biases, lm_dtype scale_dtype,
                        int64_t rows, int64_t K, const float *X, int64_t n, float *Y,
                        lm_err *err) {
    lm_status st = check_common(packed, rows, K, X, n, Y, err);
    if (st != LM_OK) return st;
    if (!scales || !biases) return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul_mlx: NULL scales"
                                              " or biases");
    if (!lm_mlx_bits_valid(bits) || !lm_mlx_group_size_valid(group_size) || K % group_size)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul_mlx: bits %d group_size %d K %lld",
                          bits, group_size, (long long)K);
    if (scale_dtype != LM_DTYPE_F16 && scale_dtype != LM_DTYPE_BF16 &&
        scale_dtype != LM_DTYPE_F32)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul_mlx: scale dtype %s",
                          lm_dtype_name(scale_dtype));
    if (rows == 0 || n == 0) return LM_OK;
    const int nth = lm_threadpool_n_threads(tp);
    const int64_t ng = K / group_size;
    size_t xs_bytes, sc_bytes;
    if (!lm_mul_size((size_t)n * (size_t)ng, sizeof(float), &xs_bytes) ||
        !lm_mul_size((size_t)nth * (size_t)K, sizeof(float), &sc_bytes))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "matmul_mlx: size overflows");
    float *xsum = lm_malloc(xs_bytes), *scratch = lm_malloc(sc_bytes);
    float *sbuf = lm_malloc((size_t)nth * 2 * (size_t)ng * sizeof(float));
    if (!xsum || !scratch || !sbuf) {
        lm_free(xsum);
        lm_free(scratch);
        lm_free(sbuf);
        return lm_err_set(err, LM_ERR_NOMEM, "matmul_mlx: out of memory");
    }
    for (int64_t j = 0; j < n; j++)
        for (int64_t g = 0; g < ng; g++) {
            float s = 0.0f;
            for (int64_t i = 0; i < group_size; i++) s += X[j * K + g * group_size + i];
            xsum[j * ng + g] = s;
        }
    mlx_ctx c;
    memset(&c, 0, sizeof c);
    c.bits = bits;
    c.gs = group_size;
    c.P = packed;
    c.S = scales;
    c.B = biases;
    c.p_row = lm_mlx_row_bytes(bits, K);
    c.s_row = (size_t)ng * (scale_dtype == LM_DTYPE_F32 ? 4 : 2);
    c.sdt = scale_dtype;
    c.rows = rows;
    c.K = K;
    c.n = n;
    c.X = X;
    c.xsum = xsum;
    c.Y = Y;
    c.scratch = scratch;
    const lm_cpu_kernels *k = lm_cpu_kernels_for(lm_cpu_level_get());
    c.fdot = k->vdot[LM_DTYPE_F32];
    c.fast = bits == 4 ? k->mlx4 : bits == 8 ? k->mlx8 : NULL;
    c.sbuf = sbuf;
    c.chunk = pick_chunk(rows, n, nth);
    atomic_init(&c.next, 0);
    lm_threadpool_run(tp, mlx_worker, &c);
    lm_free(xsum);
    lm_free(scratch);
    lm_free(sbuf);
    return LM_OK;
}
