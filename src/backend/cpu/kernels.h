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
 * The AVX-512 level adds two faster shapes for the quantized formats, declared below: multi-row
 * decode kernels (gemv) and a packed prefill GEMM (pgemm); the driver prefers them to vdot.
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
/* the packed GEMM and gemv kernels take up to this many weight rows per call */
#define LM_NW_MAX 4

/* Packed prefill GEMM. Before the products, the driver rewrites each activation row (quantized
 * to Q8_0 / Q8_1 / Q8_K) once per call (pack_x) and, per chunk of weight rows, each weight row
 * once (pack_w) into a packed layout whose inner step reads whole aligned vectors. pgemm then
 * computes y[j * y_stride + r] = dot(w_r, x_j) for nw (1..LM_NW_MAX) packed weight rows
 * w_r = pw + r * pw_stride and nx (1..LM_NX_MAX) packed activation rows x_j = px + j *
 * px_stride. Every row is a multiple of 64 bytes and the buffers are 64-byte aligned.
 * The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; activations Q8_0 / Q8_1) share one
 * layout, lm_pk_layout_of(K), for weights and activations:
 *   codes  npair × 64 bytes: the 64 values of blocks 2p and 2p+1, interleaved by dwords (dword
 *          2i = block 2p's dword i, dword 2i+1 = block 2p+1's), u8 codes for weights (Q8_0 as
 *          w ^ 0x80), s8 quants for activations; an odd last block is paired with zeros
 *   d      npair × 2 f32: the two blocks' scales d
 *   aux    npair × 2 int32: activations only, -Σq of each block (the weight offset term)
 *   e      (64-byte aligned) nbp f32 (nbp = 2·npair rounded up to 16, zero-padded): the _1
 *          formats' m (weights) and s (activations); zero otherwise */
typedef struct lm_pk_layout {
    int64_t npair; /* block pairs */
    int64_t nbp;   /* entries of e */
    size_t off_d, off_aux, off_e, bytes;
} lm_pk_layout;
static inline lm_pk_layout lm_pk_layout_of(int64_t K) {
    lm_pk_layout L;
    L.npair = (K / 32 + 1) / 2;
    L.nbp = (2 * L.npair + 15) / 16 * 16;
    L.off_d = (size_t)L.npair * 64;
    L.off_aux = L.off_d + (size_t)L.npair * 8;
    L.off_e = (L.off_aux + (size_t)L.npair * 8 + 63) / 64 * 64;
    L.bytes = L.off_e + (size_t)L.nbp * 4; /* nbp * 4 is a multiple of 64 */
    return L;
}
/* The K-quants' packed layout (Q4_K, Q5_K, Q6_K weights; Q8_K activations), per super-block sb
 * of 256 elements (nsb = K / 256), every part 64-byte aligned:
 *   weights   nsb × 576 bytes: codes[256] (u8, element order), scales[256] (4 × 32 int16: lane
 *             i of vector c is the scale of elements 64c + 2i and 64c + 2i + 1), off[64] (16
 *             int16 -32·scale per 16 elements then zeros: Q6_K's -32; zero otherwise)
 *             then d[nsb] f32, then e[ne] f32 (ne = 8·nsb rounded up to 16): -dmin·min of each
 *             32-element sub-block (Q4_K, Q5_K), zero for Q6_K and the pad
 *   activations nsb × 320 bytes: qs[256], bsums[64] (the 16 int16 sums of 16 quants, zeros)
 *             then d[nsb] f32, then e[ne] f32: d · (sum of the sub-block's 32 quants)
 * so that y = Σ_sb d_w d_x (Σ scales·codes·qs + off·bsums) + Σ e_w e_x. */
typedef struct lm_pkk_layout {
    int64_t nsb, ne;
    size_t w_off_d, w_off_e, w_bytes, x_off_d, x_off_e, x_bytes;
} lm_pkk_layout;
static inline lm_pkk_layout lm_pkk_layout_of(int64_t K) {
    lm_pkk_layout L;
    L.nsb = K / 256;
    L.ne = (8 * L.nsb + 15) / 16 * 16;
    L.w_off_d = (size_t)L.nsb * 576;
    L.w_off_e = L.w_off_d + ((size_t)L.nsb * 4 + 63) / 64 * 64;
    L.w_bytes = L.w_off_e + (size_t)L.ne * 4;
    L.x_off_d = (size_t)L.nsb * 320;
    L.x_off_e = L.x_off_d + ((size_t)L.nsb * 4 + 63) / 64 * 64;
    L.x_bytes = L.x_off_e + (size_t)L.ne * 4;
    return L;
}
/* bytes of a packed weight (w = 1) or activation (w = 0) row for activation type act */
static inline size_t lm_pk_row_bytes(lm_dtype act, int64_t K, int w) {
    if (act != LM_DTYPE_Q8_K) return lm_pk_layout_of(K).bytes;
    return w ? lm_pkk_layout_of(K).w_bytes : lm_pkk_layout_of(K).x_bytes;
}
/* the driver uses the packed path from this many activation rows on (below, packing the
 * weights costs more than it saves: measured break-even n = 2 for the 32-element formats, 4
 * for the K-quants, whose packing spreads sub-block scales) */
#define LM_PGEMM_MIN_N(act) ((act) == LM_DTYPE_Q8_K ? 4 : 2)
/* nw weight rows (w_r = w + r * w_stride bytes, K elements) -> packed rows dst + r * dst_stride */
typedef void (*lm_pack_w_fn)(int64_t K, const void *w, size_t w_stride, int nw, uint8_t *dst,
                             size_t dst_stride);
/* one quantized activation row (Q8_0, Q8_1 or Q8_K, K elements) -> one packed row (pack_x), or
 * into the decode layout (dpack) */
typedef void (*lm_pack_x_fn)(int64_t K, const void *xq, uint8_t *dst);
typedef void (*lm_pgemm_fn)(int64_t K, const uint8_t *pw, size_t pw_stride, int nw,
                            const uint8_t *px, size_t px_stride, int nx, float *y,
                            size_t y_stride);

/* Multi-row decode (n = 1), 32-element formats: gemv computes y[r] = dot(w_r, x) for nw
 * (1..LM_NW_MAX) raw weight rows w_r = w + r * w_stride against one activation row x in the
 * decode layout below, built once per call by dpack (by activation type) from the quantized
 * row. It holds what every weight row would otherwise recompute:
 *   qs   nbe × 32 bytes (nbe = nb rounded up to even, the pad zero): the quants in order
 *   pr   nbe / 2 pairs × 4 f32: [d_x0, e0, d_x1, e1] of blocks 2p, 2p + 1
 * e = s (Q8_1) or d_x Σq (Q8_0: the weight offset's term). Both parts 64-byte aligned. */
typedef void (*lm_gemv_fn)(int64_t K, const void *w, size_t w_stride, int nw, const uint8_t *x,
                           float *y);
typedef struct lm_dp_layout {
    int64_t nb, npair;
    size_t off_pr, bytes;
} lm_dp_layout;
static inline lm_dp_layout lm_dp_layout_of(int64_t K) {
    lm_dp_layout L;
    L.nb = K / 32;
    L.npair = (L.nb + 1) / 2;
    L.off_pr = (size_t)L.npair * 64;
    L.bytes = (L.off_pr + (size_t)L.npair * 16 + 63) / 64 * 64;
    return L;
}

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
    /* optional packed prefill path (all three set, or none): pack_w and pgemm by weight type,
     * pack_x by activation type */
    lm_pack_w_fn pack_w[LM_DTYPE_GGML_COUNT];
    lm_pgemm_fn pgemm[LM_DTYPE_GGML_COUNT];
    lm_pack_x_fn pack_x[LM_DTYPE_GGML_COUNT];
    /* optional multi-row decode path (both set, or none): gemv by weight type, dpack by
     * activation type */
    lm_gemv_fn gemv[LM_DTYPE_GGML_COUNT];
    lm_pack_x_fn dpack[LM_DTYPE_GGML_COUNT];
    lm_quant_act_fn quant_q8_0, quant_q8_1, quant_q8_K;
    lm_mlx_fn mlx4, mlx8; /* NULL: the generic path (codes to floats, then the f32 kernel) */
    lm_cpu_level level_of[LM_DTYPE_GGML_COUNT]; /* which level supplied each type's kernels */
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
