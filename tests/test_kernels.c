/*
 * test_kernels.c — CPU kernels against their scalar reference.
 *
 *   - activation quantizers of every SIMD level are bit-identical to lm_quantize_row;
 *   - the scalar reference dot (vec_dot_ref.c) equals the double-precision dot of
 *     lm_dequant_row(weights) and lm_dequant_row(quantized activations);
 *   - lm_matmul at every available level, 1 and 2 threads, equals the reference on random data
 *     of many shapes (K = block × {1, 2, 3, 7, 33} and 576 / 640 / 1536 / 2048, rows 1..9 and
 *     37, n in {1, 2, 3, 4, 5, 9, 17}), the two thread counts bit-identically;
 *   - lm_matmul_multi over weights of different formats equals separate lm_matmul calls;
 *   - lm_matmul_mlx equals the dequantized dot;
 *   - bad arguments are errors.
 * Tolerance (docs/kernels.md): |got - want| <= 1e-5 · Σ|w_i||x_i| + 1e-6, where w and x are the
 * dequantized values: block integer sums are exact, only float accumulation order differs.
 */
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/matmul.h"
#include "core/threadpool.h"
#include "tensor/mlx.h"
#include "tensor/quant.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const lm_dtype k_types[] = {LM_DTYPE_F32,  LM_DTYPE_F16,  LM_DTYPE_BF16, LM_DTYPE_Q4_0,
                                   LM_DTYPE_Q4_1, LM_DTYPE_Q5_0, LM_DTYPE_Q5_1, LM_DTYPE_Q8_0,
                                   LM_DTYPE_Q2_K, LM_DTYPE_Q3_K, LM_DTYPE_Q4_K, LM_DTYPE_Q5_K,
                                   LM_DTYPE_Q6_K};
#define N_TYPES (sizeof k_types / sizeof k_types[0])

static void rand_floats(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = t_rand_f32(-1.0f, 1.0f) * scale;
}

static void put_half(uint8_t *p, float f) {
    lm_half h = lm_f32_to_half(f);
    memcpy(p, &h, 2);
}

/* Random valid blocks: random bytes with sane fp16 scales at the format's scale offsets. */
static void rand_blocks(lm_dtype t, uint8_t *dst, int64_t K) {
    const lm_dtype_traits *tr = lm_dtype_get(t);
    size_t bytes = lm_dtype_row_size(t, (uint64_t)K);
    for (size_t i = 0; i < bytes; i++) dst[i] = (uint8_t)t_rand_u64();
    if (t == LM_DTYPE_F32) {
        rand_floats((float *)dst, K, 1.0f);
        return;
    }
    if (t == LM_DTYPE_F16 || t == LM_DTYPE_BF16) {
        for (int64_t i = 0; i < K; i++) {
            float f = t_rand_f32(-1.0f, 1.0f);
            uint16_t h = t == LM_DTYPE_F16 ? lm_f32_to_half(f) : lm_f32_to_bf16(f);
            memcpy(dst + 2 * i, &h, 2);
        }
        return;
    }
    int off_d = -1, off_m = -1;
    switch (t) {
    case LM_DTYPE_Q4_0: case LM_DTYPE_Q5_0: case LM_DTYPE_Q8_0: off_d = 0; break;
    case LM_DTYPE_Q4_1: case LM_DTYPE_Q5_1: case LM_DTYPE_Q4_K: case LM_DTYPE_Q5_K:
        off_d = 0, off_m = 2; break;
    case LM_DTYPE_Q2_K: off_d = 80, off_m = 82; break;
    case LM_DTYPE_Q3_K: off_d = 108; break;
    case LM_DTYPE_Q6_K: off_d = 208; break;
    default: break;
    }
    for (int64_t b = 0; b < K / (int64_t)tr->block_size; b++) {
        uint8_t *p = dst + (size_t)b * tr->type_size;
        if (off_d >= 0) put_half(p + off_d, t_rand_f32(0.001f, 0.05f));
        if (off_m >= 0) put_half(p + off_m, t_rand_f32(-0.05f, 0.05f));
    }
}

/* Weights of type t: quantized random floats when possible (alt = 0), else random blocks. */
static void make_weights(lm_dtype t, uint8_t *dst, int64_t K, int alt) {
    if (!alt && t != LM_DTYPE_F32 && lm_can_quantize(t)) {
        float *f = malloc((size_t)K * sizeof(float));
        rand_floats(f, K, 1.0f);
        size_t got = lm_quantize_row(t, f, dst, K);
        free(f);
        if (got) return;
    }
    rand_blocks(t, dst, K);
}

/* Dequantized activation row as the kernels see it (f32 passes through). */
static void act_of(lm_dtype t, const float *x, int64_t K, uint8_t *q, float *deq) {
    lm_dtype a = lm_cpu_act_type(t);
    if (a == LM_DTYPE_F32) {
        memcpy(q, x, (size_t)K * sizeof(float));
        memcpy(deq, x, (size_t)K * sizeof(float));
        return;
    }
    lm_quantize_row(a, x, q, K);
    lm_dequant_row(a, q, deq, K);
}

static void test_quantizers(void) {
    const lm_dtype acts[] = {LM_DTYPE_Q8_0, LM_DTYPE_Q8_1, LM_DTYPE_Q8_K};
    const lm_cpu_level max = lm_cpu_features_get()->max_level;
    const int64_t K = 256 * 9;
    float *x = malloc(K * sizeof(float));
    uint8_t *a = malloc(K * 2), *b = malloc(K * 2);
    for (int lv = 0; lv <= (int)max; lv++) {
        T_REQUIRE(lm_cpu_set_level((lm_cpu_level)lv, NULL) == LM_OK, "level %d", lv);
        for (int rep = 0; rep < 40; rep++) {
            rand_floats(x, K, rep % 3 == 0 ? 100.0f : 1.0f);
            /* specials: a zero block, exact halves (ties), a NaN, an infinity, a lone max */
            for (int i = 0; i < 256; i++) x[i] = 0.0f;
            for (int i = 256; i < 512; i++) x[i] = (float)((i % 255) - 127) * 0.5f;
            x[600] = NAN;
            if (rep % 2) x[900] = INFINITY;
            x[1100] = 1e6f;
            x[1200] = -1e6f; /* same magnitude as x[1100] later in the block: first one wins */
            for (size_t t = 0; t < 3; t++) {
                size_t sz = lm_dtype_row_size(acts[t], K);
                memset(a, 0xAA, sz);
                memset(b, 0x55, sz);
                T_CHECK(lm_quantize_row(acts[t], x, a, K) == sz, "ref quantize %s",
                        lm_dtype_name(acts[t]));
                T_CHECK(lm_cpu_quantize_act(acts[t], x, b, K, NULL) == LM_OK, "quantize_act");
                if (memcmp(a, b, sz) != 0) {
                    size_t i = 0;
                    while (a[i] == b[i]) i++;
                    T_CHECK(0, "level %s %s rep %d: byte %zu differs (%02x vs %02x)",
                            lm_cpu_level_name((lm_cpu_level)lv), lm_dtype_name(acts[t]), rep, i,
                            a[i], b[i]);
                    break;
                }
            }
        }
    }
    lm_cpu_set_level(max, NULL);
    free(x), free(a), free(b);
}

/* The reference dot equals the dequantized dot in double. */
static void test_ref_vs_dequant(void) {
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        lm_dtype t = k_types[ti];
        const int64_t bs = lm_dtype_get(t)->block_size == 1 ? 32 : lm_dtype_get(t)->block_size;
        for (int alt = 0; alt < 2; alt++)
            for (int m = 1; m <= 7; m += 3) {
                int64_t K = bs * m;
                uint8_t *w = malloc(lm_dtype_row_size(t, K)), *xq = malloc(K * 4 + 64);
                float *x = malloc(K * 4), *wd = malloc(K * 4), *xd = malloc(K * 4);
                make_weights(t, w, K, alt);
                rand_floats(x, K, 1.0f);
                act_of(t, x, K, xq, xd);
                T_REQUIRE(lm_dequant_row(t, w, wd, K) == 0, "dequant %s", lm_dtype_name(t));
                double want = 0, mag = 0, extra = 0;
                for (int64_t i = 0; i < K; i++) {
                    want += (double)wd[i] * xd[i];
                    mag += fabs((double)wd[i] * xd[i]);
                }
                /* Q8_1's s = d Σq is stored as fp16: the m·s term carries that rounding */
                if (lm_cpu_act_type(t) == LM_DTYPE_Q8_1)
                    for (int64_t b = 0; b < K / 32; b++) {
                        const lm_block_q8_1 *xb = (const lm_block_q8_1 *)xq + b;
                        lm_half mh;
                        memcpy(&mh, w + b * lm_dtype_get(t)->type_size + 2, 2);
                        int sq = 0;
                        for (int i = 0; i < 32; i++) sq += xb->qs[i];
                        extra += fabs(lm_half_to_f32(mh)) *
                                 fabs(lm_half_to_f32(xb->s) - lm_half_to_f32(xb->d) * sq);
                        /* and the exact dequant uses the rounded d, s the unrounded one */
                        extra += fabs(lm_half_to_f32(mh) * lm_half_to_f32(xb->s)) * 1e-3;
                    }
                float got = lm_vec_dot_ref(t, K, w, xq);
                double tol = 1e-5 * mag + extra + 1e-6;
                T_CHECK(fabs(got - want) <= tol, "%s K %lld alt %d: ref %.9g dequant %.9g tol %g",
                        lm_dtype_name(t), (long long)K, alt, got, want, tol);
                free(w), free(xq), free(x), free(wd), free(xd);
            }
    }
}

/* lm_matmul at every level and thread count vs the reference, many shapes: K of 1, 2, 3, 7 and
 * 33 blocks and the real models' widths (576, 640, 1536, 2048: block-pair tails, groups of 8
 * blocks, K-quant super-blocks), every row count 1..9 (tails of the 4-row kernels) and 37, n = 1
 * (decode kernels), 2..5, 9 and 17 (packed prefill kernels: activation tiles of 4 and tails). The
 * 1- and 2-thread results must be bit-identical (the tiling never depends on the thread
 * count). */
static void test_matmul_levels(void) {
    const lm_cpu_level max = lm_cpu_features_get()->max_level;
    const int mults[] = {1, 2, 3, 7, 33};
    const int64_t wide[] = {576, 640, 1536, 2048};
    const int64_t rowsv[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 37};
    const int64_t nv[] = {1, 2, 3, 4, 5, 9, 17};
    const size_t n_rows = sizeof rowsv / sizeof rowsv[0], n_n = sizeof nv / sizeof nv[0];
    enum { RMAX = 37, NMAX = 17 };
    lm_threadpool *tp2 = NULL;
    T_REQUIRE(lm_threadpool_create(2, &tp2, NULL) == LM_OK, "pool");
    long checked = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        lm_dtype t = k_types[ti];
        const int64_t bs = lm_dtype_get(t)->block_size;
        const int nk = bs == 1 ? 8 : 9;
        for (int ki = 0; ki < nk; ki++) {
            /* float formats: also lengths that end mid-vector */
            const int64_t fk[] = {1, 2, 3, 7, 33, 64, 100, 257};
            int64_t K = bs == 1 ? fk[ki] : ki < 5 ? bs * mults[ki] : wide[ki - 5];
            if (K % bs) continue; /* 576 and 640 are not K-quant widths */
            /* RMAX weight rows and NMAX activation rows, their reference dots and magnitudes;
             * each shape below uses the first rows / n of them */
            size_t wr = lm_dtype_row_size(t, K);
            size_t ar = lm_cpu_act_type(t) == LM_DTYPE_F32
                            ? (size_t)K * 4
                            : lm_dtype_row_size(lm_cpu_act_type(t), K);
            uint8_t *W = malloc(wr * RMAX), *A = malloc(ar * NMAX);
            float *X = malloc(K * NMAX * 4), *Y = malloc(RMAX * NMAX * 4);
            float *Y1 = malloc(RMAX * NMAX * 4);
            float *want = malloc(RMAX * NMAX * 4), *mag = malloc(RMAX * NMAX * 4);
            float *wd = malloc(K * 4 * RMAX), *xd = malloc(K * 4 * NMAX);
            for (int64_t r = 0; r < RMAX; r++) {
                make_weights(t, W + r * wr, K, (int)((r + ki) & 1));
                lm_dequant_row(t, W + r * wr, wd + r * K, K);
            }
            rand_floats(X, K * NMAX, 1.0f);
            for (int64_t j = 0; j < NMAX; j++) act_of(t, X + j * K, K, A + j * ar, xd + j * K);
            for (int64_t j = 0; j < NMAX; j++)
                for (int64_t r = 0; r < RMAX; r++) {
                    want[j * RMAX + r] = lm_vec_dot_ref(t, K, W + r * wr, A + j * ar);
                    double sm = 0;
                    for (int64_t i = 0; i < K; i++)
                        sm += fabs((double)wd[r * K + i] * xd[j * K + i]);
                    mag[j * RMAX + r] = (float)sm;
                }
            for (size_t ri = 0; ri < n_rows; ri++)
                for (size_t ni = 0; ni < n_n; ni++) {
                    int64_t rows = rowsv[ri], n = nv[ni];
                    /* the wide shapes: fewer combinations (they test the kernels' inner loops,
                     * the narrow ones the tails) */
                    if (ki >= 5 && (rows % 2 == 0 || n == 2 || n == 4) && rows != 4 &&
                        rows != 8)
                        continue;
                    for (int lv = 0; lv <= (int)max; lv++) {
                        lm_cpu_set_level((lm_cpu_level)lv, NULL);
                        for (int th = 1; th <= 2; th++) {
                            for (int64_t i = 0; i < rows * n; i++) Y[i] = NAN;
                            lm_err e;
                            lm_err_clear(&e);
                            lm_status st = lm_matmul(th == 2 ? tp2 : NULL, t, W, rows, K, X, n,
                                                     Y, &e);
                            T_CHECK(st == LM_OK, "%s: %s", lm_dtype_name(t), e.msg);
                            int bad = 0;
                            for (int64_t i = 0; i < rows * n && !bad; i++) {
                                const int64_t ref = (i / rows) * RMAX + i % rows;
                                double tol = 1e-5 * mag[ref] + 1e-6;
                                if (!(fabs((double)Y[i] - want[ref]) <= tol)) {
                                    bad = 1;
                                    T_CHECK(0, "%s level %s th %d K %lld rows %lld n %lld [%lld]:"
                                            " got %.9g want %.9g tol %g", lm_dtype_name(t),
                                            lm_cpu_level_name((lm_cpu_level)lv), th,
                                            (long long)K, (long long)rows, (long long)n,
                                            (long long)i, Y[i], want[ref], tol);
                                }
                            }
                            if (th == 1) memcpy(Y1, Y, (size_t)(rows * n) * 4);
                            else
                                T_CHECK(memcmp(Y1, Y, (size_t)(rows * n) * 4) == 0,
                                        "%s level %s K %lld rows %lld n %lld: 1 and 2 threads "
                                        "differ", lm_dtype_name(t),
                                        lm_cpu_level_name((lm_cpu_level)lv), (long long)K,
                                        (long long)rows, (long long)n);
                            checked++;
                        }
                    }
                }
            free(W), free(A), free(X), free(Y), free(Y1), free(want), free(mag), free(wd), free(xd);
        }
    }
    lm_cpu_set_level(max, NULL);
    lm_threadpool_free(tp2);
    fprintf(stderr, "  %ld matmul configurations checked\n", checked);
}

/* lm_matmul_multi with weights of different formats (sharing some activation layouts: Q5_0
 * and Q8_0 both take Q8_0, Q4_K takes Q8_K) equals separate lm_matmul calls bit for bit, for
 * decode and prefill shapes and 1 and 2 threads. */
static void test_matmul_multi_mixed(void) {
    const lm_dtype ts[] = {LM_DTYPE_Q5_0, LM_DTYPE_Q8_0, LM_DTYPE_Q4_K, LM_DTYPE_Q4_1};
    const int64_t rows[] = {13, 6, 9, 4}, K = 512;
    const int64_t nv[] = {1, 3, 6};
    lm_threadpool *tp2 = NULL;
    T_REQUIRE(lm_threadpool_create(2, &tp2, NULL) == LM_OK, "pool");
    uint8_t *W[4];
    float *Ym[4], *Ys[4];
    float *X = malloc(K * 6 * 4);
    rand_floats(X, K * 6, 1.0f);
    for (int i = 0; i < 4; i++) {
        size_t wr = lm_dtype_row_size(ts[i], K);
        W[i] = malloc(wr * rows[i]);
        for (int64_t r = 0; r < rows[i]; r++) make_weights(ts[i], W[i] + r * wr, K, (int)(r & 1));
        Ym[i] = malloc(rows[i] * 6 * 4);
        Ys[i] = malloc(rows[i] * 6 * 4);
    }
    for (int lv = 0; lv <= (int)lm_cpu_features_get()->max_level; lv++) {
        lm_cpu_set_level((lm_cpu_level)lv, NULL);
        for (int ni = 0; ni < 3; ni++)
            for (int th = 1; th <= 2; th++) {
                lm_threadpool *tp = th == 2 ? tp2 : NULL;
                const int64_t n = nv[ni];
                lm_matmul_item it[4];
                for (int i = 0; i < 4; i++) {
                    it[i] = (lm_matmul_item){ts[i], W[i], rows[i], Ym[i]};
                    T_CHECK(lm_matmul(tp, ts[i], W[i], rows[i], K, X, n, Ys[i], NULL) == LM_OK,
                            "matmul");
                }
                T_CHECK(lm_matmul_multi(tp, it, 4, K, X, n, NULL) == LM_OK, "multi");
                for (int i = 0; i < 4; i++)
                    T_CHECK(memcmp(Ym[i], Ys[i], (size_t)(rows[i] * n) * 4) == 0,
                            "level %s n %lld th %d: %s multi differs from single",
                            lm_cpu_level_name((lm_cpu_level)lv), (long long)n, th,
                            lm_dtype_name(ts[i]));
            }
    }
    lm_cpu_set_level(lm_cpu_features_get()->max_level, NULL);
    for (int i = 0; i < 4; i++) free(W[i]), free(Ym[i]), free(Ys[i]);
    free(X);
    lm_threadpool_free(tp2);
}

static void test_mlx(void) {
    const int bitsv[] = {2, 3, 4, 5, 6, 8};
    const int gsv[] = {32, 64, 128};
    const lm_dtype sdt[] = {LM_DTYPE_F16, LM_DTYPE_BF16, LM_DTYPE_F32};
    lm_threadpool *tp2 = NULL;
    T_REQUIRE(lm_threadpool_create(2, &tp2, NULL) == LM_OK, "pool");
    for (int bi = 0; bi < 6; bi++)
        for (int gi = 0; gi < 3; gi++) {
            int bits = bitsv[bi], gs = gsv[gi];
            lm_dtype sd = sdt[(bi + gi) % 3];
            int64_t K = gs * 3, rows = 5, n = 3 + (bi % 2) * 2, ng = K / gs;
            size_t pr = lm_mlx_row_bytes(bits, K), ssz = sd == LM_DTYPE_F32 ? 4 : 2;
            uint8_t *P = malloc(pr * rows), *S = malloc(ng * ssz * rows);
            uint8_t *B = malloc(ng * ssz * rows);
            for (size_t i = 0; i < pr * rows; i++) P[i] = (uint8_t)t_rand_u64();
            for (int64_t i = 0; i < ng * rows; i++) {
                float s = t_rand_f32(0.001f, 0.1f), b = t_rand_f32(-0.1f, 0.1f);
                if (sd == LM_DTYPE_F32) {
                    memcpy(S + 4 * i, &s, 4);
                    memcpy(B + 4 * i, &b, 4);
                } else {
                    uint16_t hs = sd == LM_DTYPE_F16 ? lm_f32_to_half(s) : lm_f32_to_bf16(s);
                    uint16_t hb = sd == LM_DTYPE_F16 ? lm_f32_to_half(b) : lm_f32_to_bf16(b);
                    memcpy(S + 2 * i, &hs, 2);
                    memcpy(B + 2 * i, &hb, 2);
                }
            }
            float *X = malloc(K * n * 4), *Y = malloc(rows * n * 4), *wd = malloc(K * 4);
            rand_floats(X, K * n, 1.0f);
            for (int lt = 0; lt < 2 * ((int)lm_cpu_features_get()->max_level + 1); lt++) {
                int th = 1 + lt % 2;
                lm_cpu_set_level((lm_cpu_level)(lt / 2), NULL);
                lm_err e;
                lm_err_clear(&e);
                T_CHECK(lm_matmul_mlx(th == 2 ? tp2 : NULL, bits, gs, P, S, B, sd, rows, K, X, n,
                                      Y, &e) == LM_OK, "mlx: %s", e.msg);
                for (int64_t r = 0; r < rows; r++) {
                    T_REQUIRE(lm_mlx_dequant_row(bits, gs, P + r * pr, S + r * ng * ssz,
                                                 B + r * ng * ssz, sd, wd, K) == 0, "mlx dq");
                    for (int64_t j = 0; j < n; j++) {
                        double want = 0, mag = 0;
                        for (int64_t i = 0; i < K; i++) {
                            want += (double)wd[i] * X[j * K + i];
                            mag += fabs((double)wd[i] * X[j * K + i]);
                        }
                        /* the bias·Σx split adds |b||Σx| worth of rounding */
                        double tol = 1e-5 * mag * 4 + 1e-5;
                        T_CHECK(fabs(Y[j * rows + r] - want) <= tol,
                                "mlx bits %d gs %d row %lld n %lld: %.9g vs %.9g", bits, gs,
                                (long long)r, (long long)j, Y[j * rows + r], want);
                    }
                }
            }
            free(P), free(S), free(B), free(X), free(Y), free(wd);
        }
    lm_cpu_set_level(lm_cpu_features_get()->max_level, NULL);
    lm_threadpool_free(tp2);
}

static void test_bad_args(void) {
    float x[64] = {0}, y[64];
    uint8_t w[256] = {0};
    lm_err e;
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, (lm_dtype)4, w, 1, 32, x, 1, y, &e) == LM_ERR_UNSUPPORTED,
            "removed dtype 4");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, (lm_dtype)999, w, 1, 32, x, 1, y, &e) != LM_OK, "dtype 999");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_INVALID, w, 1, 32, x, 1, y, &e) != LM_OK, "dtype -1");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_Q8_K, w, 1, 256, x, 1, y, &e) != LM_OK, "q8_K weights");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_Q4_0, w, 1, 33, x, 1, y, &e) == LM_ERR_INVALID_ARG,
            "K 33 for q4_0");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_Q4_K, w, 1, 32, x, 1, y, &e) == LM_ERR_INVALID_ARG,
            "K 32 for q4_K");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_Q4_0, NULL, 1, 32, x, 1, y, &e) == LM_ERR_INVALID_ARG, "W");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_Q4_0, w, 1, 32, NULL, 1, y, &e) == LM_ERR_INVALID_ARG, "X");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_Q4_0, w, 1, 32, x, 1, NULL, &e) == LM_ERR_INVALID_ARG, "Y");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_F32, w, 1, 0, x, 1, y, &e) == LM_ERR_INVALID_ARG, "K 0");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_F32, w, -1, 4, x, 1, y, &e) == LM_ERR_INVALID_ARG, "rows<0");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_F32, w, INT64_MAX, 4, x, INT64_MAX, y, &e) ==
                LM_ERR_INVALID_ARG, "overflow");
    lm_err_clear(&e);
    T_CHECK(lm_matmul(NULL, LM_DTYPE_F32, w, 0, 4, x, 1, y, &e) == LM_OK, "rows 0 is a no-op");
    lm_err_clear(&e);
    T_CHECK(lm_matmul_mlx(NULL, 7, 32, w, w, w, LM_DTYPE_F16, 1, 32, x, 1, y, &e) ==
                LM_ERR_INVALID_ARG, "mlx bits 7");
    lm_err_clear(&e);
    T_CHECK(lm_matmul_mlx(NULL, 4, 48, w, w, w, LM_DTYPE_F16, 1, 48, x, 1, y, &e) ==
                LM_ERR_INVALID_ARG, "mlx gs 48");
    lm_err_clear(&e);
    T_CHECK(lm_matmul_mlx(NULL, 4, 32, w, w, w, LM_DTYPE_Q4_0, 1, 32, x, 1, y, &e) ==
                LM_ERR_INVALID_ARG, "mlx scale dtype");
    lm_err_clear(&e);
    T_CHECK(lm_cpu_quantize_act(LM_DTYPE_Q4_0, x, w, 32, &e) == LM_ERR_INVALID_ARG, "act q4_0");
    lm_err_clear(&e);
    lm_cpu_level max = lm_cpu_features_get()->max_level;
    if (max < LM_CPU_AVX512)
        T_CHECK(lm_cpu_set_level(LM_CPU_AVX512, &e) == LM_ERR_UNSUPPORTED, "level above hw");
    T_CHECK(lm_cpu_set_level((lm_cpu_level)7, NULL) == LM_ERR_INVALID_ARG, "level 7");
    T_CHECK(lm_cpu_level_get() == max, "level unchanged after a refused set");
}

static void test_features(void) {
    const lm_cpu_features *f = lm_cpu_features_get();
    fprintf(stderr, "  cpu: max level %s (avx2 %d fma %d f16c %d avx512f %d bw %d vl %d vnni %d "
            "bf16 %d), active %s\n", lm_cpu_level_name(f->max_level), f->avx2, f->fma, f->f16c,
            f->avx512f, f->avx512bw, f->avx512vl, f->avx512vnni, f->avx512bf16,
            lm_cpu_level_name(lm_cpu_level_get()));
    const lm_cpu_kernels *k = lm_cpu_kernels_for(f->max_level);
    for (size_t i = 0; i < N_TYPES; i++)
        T_CHECK(k->vdot[k_types[i]] != NULL, "no kernel for %s", lm_dtype_name(k_types[i]));
}

int main(void) {
    t_srand(12345);
    T_RUN(test_features);
    T_RUN(test_quantizers);
    T_RUN(test_ref_vs_dequant);
    T_RUN(test_matmul_levels);
    T_RUN(test_matmul_multi_mixed);
    T_RUN(test_mlx);
    T_RUN(test_bad_args);
    return t_finish();
}
