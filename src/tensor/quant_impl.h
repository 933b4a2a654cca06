/*
 * quant_impl.h — internal: the per-format block routines behind lm_dequant_row and
 * lm_quantize_row (quant_ref.c dispatches, quant_k.c holds the K-quants, quant_iq.c the
 * codebook formats). Each takes a whole number of blocks nb >= 0; src and dst may have any
 * alignment (blocks are copied through a local struct), and the caller has checked the length.
 * Hosts are little-endian, as GGUF is.
 */
#ifndef LM_TENSOR_QUANT_IMPL_H
#define LM_TENSOR_QUANT_IMPL_H

#include "tensor/quant.h"

#include <math.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the quant reference reads GGUF's little-endian blocks through native integer loads"
#endif

/* Round to nearest, ties to even, for |v| < 2^22 (the range every caller clamps to first).
 * This is GGML's nearest_int, which the K-quant and Q8_K references use. */
static inline int lm_nearest_int(float v) {
    return (int)rintf(v); /* default rounding mode: nearest even */
}

void lm_dq_q2_K(const uint8_t *src, float *dst, int64_t nb);
void lm_dq_q3_K(const uint8_t *src, float *dst, int64_t nb);
void lm_dq_q4_K(const uint8_t *src, float *dst, int64_t nb);
void lm_dq_q5_K(const uint8_t *src, float *dst, int64_t nb);
void lm_dq_q6_K(const uint8_t *src, float *dst, int64_t nb);

void lm_qz_q2_K(const float *src, uint8_t *dst, int64_t nb);
void lm_qz_q3_K(const float *src, uint8_t *dst, int64_t nb);
void lm_qz_q4_K(const float *src, uint8_t *dst, int64_t nb);
void lm_qz_q5_K(const float *src, uint8_t *dst, int64_t nb);
void lm_qz_q6_K(const float *src, uint8_t *dst, int64_t nb);

void lm_dq_iq4_nl(const uint8_t *src, float *dst, int64_t nb);
void lm_dq_iq4_xs(const uint8_t *src, float *dst, int64_t nb);
void lm_dq_mxfp4(const uint8_t *src, float *dst, int64_t nb);
void lm_qz_iq4_nl(const float *src, uint8_t *dst, int64_t nb);
void lm_qz_iq4_xs(const float *src, uint8_t *dst, int64_t nb);
void lm_qz_mxfp4(const float *src, uint8_t *dst, int64_t nb);

#endif
