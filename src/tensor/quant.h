/*
 * quant.h — block layouts of the quantized weight formats, and the scalar reference routines
 * that define them: dequantize a row, quantize a row.
 *
 * The layouts are GGML's (the GGUF on-disk format), little-endian, packed with no padding.
 * A row of n elements (n a multiple of the block size) is n / block_size consecutive blocks.
 * The scalar routines in quant_ref.c are the specification: every SIMD and CUDA kernel is
 * tested against them.
 *
 * Notation: d, m = fp16 scale and min; x = dequantized value.
 *   Q4_0  x = (q - 8) * d,  q in [0,15]; qs[j] low nibble = element j, high nibble = j + 16
 *   Q4_1  x = q * d + m
 *   Q5_0  x = (q - 16) * d, 5th bit of element j in bit j of qh (little-endian uint32)
 *   Q5_1  x = q * d + m,    same bit placement
 *   Q8_0  x = q * d,        q int8
 *   Q8_1  as Q8_0, plus s = d * sum(q) (an activation format)
 *   Q2_K .. Q6_K: 256-element super-blocks with 6- or 8-bit sub-block scales (see quant_k.c)
 *   Q8_K  x = q * d with an f32 d and per-16 sums (an activation format for K-quant dots)
 *   IQ4_NL x = d * kvalues_iq4nl[q], same nibble order as Q4_0
 *   IQ4_XS x = d * (ls - 32) * kvalues_iq4nl[q], ls a 6-bit scale per 32 elements
 *   MXFP4 x = e8m0_half(e) * kvalues_mxfp4[q], same nibble order as Q4_0
 * Full byte layouts and formulas: docs/formats/quant.md.
 */
#ifndef LM_TENSOR_QUANT_H
#define LM_TENSOR_QUANT_H

#include "tensor/dtype.h"

#include <stddef.h>
#include <stdint.h>

typedef uint16_t lm_half; /* IEEE binary16 bits */
typedef uint16_t lm_bf16; /* bfloat16 bits */

#define LM_QK4_0 32
#define LM_QK4_1 32
#define LM_QK5_0 32
#define LM_QK5_1 32
#define LM_QK8_0 32
#define LM_QK8_1 32

typedef struct { lm_half d; uint8_t qs[16]; } lm_block_q4_0;
typedef struct { lm_half d, m; uint8_t qs[16]; } lm_block_q4_1;
typedef struct { lm_half d; uint8_t qh[4]; uint8_t qs[16]; } lm_block_q5_0;
typedef struct { lm_half d, m; uint8_t qh[4]; uint8_t qs[16]; } lm_block_q5_1;
typedef struct { lm_half d; int8_t qs[32]; } lm_block_q8_0;
typedef struct { lm_half d, s; int8_t qs[32]; } lm_block_q8_1;

typedef struct {
    uint8_t scales[16]; /* low 4 bits scale, high 4 bits min, per 16 elements */
    uint8_t qs[64];     /* 2-bit quants */
    lm_half d, dmin;
} lm_block_q2_K;
typedef struct {
    uint8_t hmask[32];  /* high bit of each 3-bit quant */
    uint8_t qs[64];     /* low 2 bits */
    uint8_t scales[12]; /* 16 6-bit scales */
    lm_half d;
} lm_block_q3_K;
typedef struct {
    lm_half d, dmin;
    uint8_t scales[12]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[128];    /* 4-bit quants */
} lm_block_q4_K;
typedef struct {
    lm_half d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];     /* high bit */
    uint8_t qs[128];    /* low 4 bits */
} lm_block_q5_K;
typedef struct {
    uint8_t ql[128];    /* low 4 bits */
    uint8_t qh[64];     /* high 2 bits */
    int8_t scales[16];  /* 8-bit scales, per 16 elements */
    lm_half d;
} lm_block_q6_K;
typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16];  /* sum of qs per 16 elements */
} lm_block_q8_K;

/* Non-linear 4-bit formats: 16-entry codebooks (IQ4_NL, IQ4_XS) and OCP MX FP4. */
#define LM_QK4_NL 32
#define LM_QK_MXFP4 32
typedef struct { lm_half d; uint8_t qs[16]; } lm_block_iq4_nl; /* x = d * kvalues[nibble] */
typedef struct {
    lm_half d;
    uint16_t scales_h;  /* high 2 bits of the 8 6-bit sub-block scales */
    uint8_t scales_l[4]; /* low 4 bits, two per byte */
    uint8_t qs[128];    /* codebook indices, 32 per sub-block */
} lm_block_iq4_xs;
typedef struct { uint8_t e; uint8_t qs[16]; } lm_block_mxfp4; /* e: E8M0 shared exponent */

_Static_assert(sizeof(lm_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(lm_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(lm_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(lm_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(lm_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(lm_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(lm_block_q2_K) == 84, "q2_K layout");
_Static_assert(sizeof(lm_block_q3_K) == 110, "q3_K layout");
_Static_assert(sizeof(lm_block_q4_K) == 144, "q4_K layout");
_Static_assert(sizeof(lm_block_q5_K) == 176, "q5_K layout");
_Static_assert(sizeof(lm_block_q6_K) == 210, "q6_K layout");
_Static_assert(sizeof(lm_block_q8_K) == 292, "q8_K layout");
_Static_assert(sizeof(lm_block_iq4_nl) == 18, "iq4_nl layout");
_Static_assert(sizeof(lm_block_iq4_xs) == 136, "iq4_xs layout");
_Static_assert(sizeof(lm_block_mxfp4) == 17, "mxfp4 layout");

/* The codebooks (format facts, GGML's kvalues_iq4nl and kvalues_mxfp4; the MXFP4 values are
 * the E2M1 values doubled, which is why its scale is E8M0 / 2). */
extern const int8_t lm_kvalues_iq4nl[16];
extern const int8_t lm_kvalues_mxfp4[16];
/* E8M0 exponent byte -> 2^(e - 127) / 2 as f32 (exact; e = 0 and 1 give subnormals). */
float lm_e8m0_to_f32_half(uint8_t e);

/* binary16 / bfloat16 <-> f32, exact (round to nearest even on the way down). */
float lm_half_to_f32(lm_half h);
lm_half lm_f32_to_half(float f);
float lm_bf16_to_f32(lm_bf16 h);
lm_bf16 lm_f32_to_bf16(float f);

/* 1 if lm_dequant_row supports t. */
int lm_can_dequant(lm_dtype t);
/* 1 if lm_quantize_row supports t. */
int lm_can_quantize(lm_dtype t);

/* Dequantizes n elements (a multiple of t's block size) of a row of type t into f32. Returns 0
 * on success, -1 when t is unsupported or n is not a multiple of the block size. */
int lm_dequant_row(lm_dtype t, const void *src, float *dst, int64_t n);

/* Quantizes n f32 elements into blocks of type t (dst must hold lm_dtype_row_size(t, n)
 * bytes). Returns the bytes written, or 0 when t is unsupported or n is not a multiple of the
 * block size. */
size_t lm_quantize_row(lm_dtype t, const float *src, void *dst, int64_t n);

/* Activation quantizers for the matmul kernels: the same as lm_quantize_row with that type.
 * They return 0 (and write nothing) when n is not a multiple of the block size. */
size_t lm_quantize_row_q8_0(const float *src, void *dst, int64_t n);
size_t lm_quantize_row_q8_1(const float *src, void *dst, int64_t n);
size_t lm_quantize_row_q8_K(const float *src, void *dst, int64_t n);

#endif
