/*
 * matmul.h — CPU matrix multiplication of a weight matrix (any supported format) with f32
 * activations: Y = X · Wᵀ.
 *
 *   W  rows × K, row-major; row r is lm_dtype_row_size(wtype, K) bytes at W + r * that size
 *      (GGUF's layout: the weight's "ne0" is K)
 *   X  n × K f32, row-major (n = 1: decode / matvec; n > 1: prefill)
 *   Y  n × rows f32, row-major: Y[i * rows + r] = dot(W row r, X row i)
 *
 * Quantized weights multiply activations quantized once per call to the format GGML pairs
 * with them (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for Q2_K..Q6_K); F32, F16 and
 * BF16 weights use the f32 activations directly. Results equal the scalar reference
 * (vec_dot_ref.c) up to float summation order: see docs/kernels.md for the tolerance.
 *
 * tp may be NULL (single thread). Y must not overlap W or X. Arguments are checked: an
 * unsupported dtype, K not a positive multiple of the block size, negative sizes or NULL
 * pointers return LM_ERR_INVALID_ARG / LM_ERR_UNSUPPORTED, never crash.
 */
#ifndef LM_BACKEND_CPU_MATMUL_H
#define LM_BACKEND_CPU_MATMUL_H

#include "core/status.h"
#include "core/threadpool.h"
#include "tensor/dtype.h"

#include <stdint.h>

lm_status lm_matmul(lm_threadpool *tp, lm_dtype wtype, const void *W, int64_t rows, int64_t K,
                    const float *X, int64_t n, float *Y, lm_err *err);

/* Several weights with one input: items[i].Y (n × items[i].rows) = X · items[i].Wᵀ for
 * i < count (1..LM_MATMUL_MULTI_MAX), every W with K columns. X is quantized once per
 * activation format and all products run in one pool run (one barrier instead of count:
 * decode's Q/K/V and gate/up). Results are bit-identical to count lm_matmul calls. The Ys must
 * not overlap each other, any W or X. */
#define LM_MATMUL_MULTI_MAX 4
typedef struct lm_matmul_item {
    lm_dtype wtype;
    const void *W; /* rows × K */
    int64_t rows;
    float *Y;      /* n × rows */
} lm_matmul_item;
lm_status lm_matmul_multi(lm_threadpool *tp, const lm_matmul_item *items, int count, int64_t K,
                          const float *X, int64_t n, lm_err *err);

/* 1 if lm_matmul accepts weights of type t. */
int lm_matmul_supports(lm_dtype t);

/* MLX affine weights (see tensor/mlx.h): packed is rows × (K * bits / 8) bytes, scales and
 * biases rows × (K / group_size) values of scale_dtype (F16, BF16 or F32). Element k of row r
 * is scale * q + bias, so y = Σ_g scale_g (q_g · x_g) + bias_g Σ x_g. */
lm_status lm_matmul_mlx(lm_threadpool *tp, int bits, int group_size, const void *packed,
                        const void *scales, const void *biases, lm_dtype scale_dtype,
                        int64_t rows, int64_t K, const float *X, int64_t n, float *Y,
                        lm_err *err);

/* Quantizes n f32 values (a multiple of act's block) into act (Q8_0, Q8_1 or Q8_K) with the
 * active SIMD level's quantizer (bit-identical to lm_quantize_row). Single-threaded; exposed
 * for tests and benchmarks. */
lm_status lm_cpu_quantize_act(lm_dtype act, const float *x, void *dst, int64_t n, lm_err *err);

#endif
