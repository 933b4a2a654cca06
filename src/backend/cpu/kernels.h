/*
 * kernels.h — internal interface between the CPU matmul driver and its kernels.
 *
 * A dot kernel computes, for one weight row w of K elements (in w's block format) and nx
 * activation rows x_0..x_{nx-1} (each in the activation format paired with w's type, see
 * lm_cpu_act_type, rows x_stride bytes apart):
 *     y[j * y_stride] = dot(w, x_j)          j < nx, 1 <= nx <= LM_NX_MAX
 * Reusing the decoded weight block for several activation rows is what makes prefill (n > 1)
 * cheaper than n matvecs. K is a positive multiple of the weight's block size (the driver
 * checks). Loads are unaligned-safe: rows of 18-byte blocks start anywhere.
 *
 * An activation quantizer turns n f32 values (n a multiple of the format's block) into blocks
 * of Q8_0, Q8_1 or Q8_K, bit-identical to lm_quantize_row of that type.
 *
 * Each SIMD level fills a table; entries it does not implement stay at the lower level's.
 */
#ifndef LM_BACKEND_CPU_KERNELS_H
#define LM_BACKEND_CPU_KERNELS_H

#include "backend/cpu/cpu_features.h"
#include "tensor/dtype.h"
#include "tensor/quant.h"

#include <stddef.h>
#include <stdint.h>

#define LM_NX_MAX 4

typedef void (*lm_vdot_fn)(int64_t K, const void *w, const void *x, size_t x_stride, int nx,
                           float *y, size_t y_stride);
typedef void (*lm_quant_act_fn)(const float *x, void *dst, int64_t n);
/* Optional register-tiled form: nw (1..LM_NW_MAX) weight rows w_r = w + r * w_stride bytes times
 * nx activation rows: y[j * y_stride + r] = dot(w_r, x_j). Used instead of vdot when present:
 * the activation block's scale work is shared by nw rows and the weight block's unpacking by
 * nx rows. */
#define LM_NW_MAX 4
typedef void (*lm_gemm_fn)(int64_t K, const void *w, size_t w_stride, int nw, const void *x,
                           size_t x_stride, int nx, float *y, size_t y_stride);

/* MLX affine row (4 or 8 bits, group gs in {32, 64, 128}) against nx f32 activation rows
 * (x_j = x + j * x_stride floats): y[j * y_stride] = Σ_g sc[g] (q_g · x_jg) + bi[g] xsum[j *
 * xsum_stride + g]. sc/bi are the row's K / gs scales and biases of type sdt (F16, BF16, F32;
 * any alignment); tmp holds 2 · K / gs floats of scratch. */
typedef void (*lm_mlx_fn)(int64_t K, int gs, const uint8_t *packed, const void *sc,
                          const void *bi, lm_dtype sdt, float *tmp, const float *x,
                          size_t x_stride, const float *xsum, size_t xsum_stride, int nx,
                          float *y, size_t y_stride);

typedef struct lm_cpu_kernels {
    lm_vdot_fn vdot[LM_DTYPE_GGML_COUNT]; /* by weight type; NULL = unsupported */
    lm_gemm_fn gemm[LM_DTYPE_GGML_COUNT]; /* optional tiled kernel; NULL = use vdot */
    lm_quant_act_fn quant_q8_0, quant_q8_1, quant_q8_K;
    lm_mlx_fn mlx4, mlx8; /* NULL: the generic path (codes to floats, then the f32 kernel) */
    /* 1: this type's vdot wants each Q8_0 activation row followed by its nb block sums Σq as
     * unaligned f32 (the driver appends them: x_stride = nb · 34 + nb · 4), so the weight
     * offset (-8 of Q4_0, -16 of Q5_0) costs no per-row work. gemm gets the same rows. */
    uint8_t act_sums[LM_DTYPE_GGML_COUNT];
    lm_cpu_level level_of[LM_DTYPE_GGML_COUNT]; /* which level supplied each vdot */
} lm_cpu_kernels;

/* Activation type paired with weight type w (F32 for float weights), or LM_DTYPE_INVALID. */
lm_dtype lm_cpu_act_type(lm_dtype w);

/* Scalar reference: the spec. */
void lm_cpu_kernels_fill_ref(lm_cpu_kernels *k);
float lm_vec_dot_ref(lm_dtype wtype, int64_t K, const void *w, const void *x);
/* SIMD levels (compiled with their flags; only called after the run-time check). */
void lm_cpu_kernels_fill_avx2(lm_cpu_kernels *k);
void lm_cpu_kernels_fill_avx512(lm_cpu_kernels *k);

/* The table of a level (built once). */
const lm_cpu_kernels *lm_cpu_kernels_for(lm_cpu_level level);

/* Expands a kernel body NAME##_nx into the lm_vdot_fn vdot_NAME with constant nx (1..4),
 * so each SIMD file instantiates its bodies with the accumulators in registers. */
#define VDOT_ENTRY(NAME, WT, XT)                                                               \
    static void vdot_##NAME(int64_t K, const void *w, const void *x, size_t xs, int nx,        \
                            float *y, size_t ys) {                                             \
        const WT *wp = w;                                                                      \
        const XT *xp = x;                                                                      \
        switch (nx) {                                                                          \
        case 1: NAME##_nx(K, wp, xp, xs, y, ys, 1); break;                                     \
        case 2: NAME##_nx(K, wp, xp, xs, y, ys, 2); break;                                     \
        case 3: NAME##_nx(K, wp, xp, xs, y, ys, 3); break;                                     \
        default: NAME##_nx(K, wp, xp, xs, y, ys, 4); break;                                    \
        }                                                                                      \
    }

#endif
