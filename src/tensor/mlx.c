/*
 * mlx.c — scalar reference dequantization of MLX affine packs (layout in mlx.h). This is the
 * specification the SIMD and CUDA kernels are checked against: plain, one element at a time.
 */
#include "tensor/mlx.h"

#include "tensor/quant.h"

#include <string.h>

int lm_mlx_bits_valid(int bits) {
    return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
}

int lm_mlx_group_size_valid(int group_size) {
    return group_size == 32 || group_size == 64 || group_size == 128;
}

lm_dtype lm_mlx_dtype(int bits) {
    switch (bits) {
    case 2: return LM_DTYPE_MLX_Q2;
    case 3: return LM_DTYPE_MLX_Q3;
    case 4: return LM_DTYPE_MLX_Q4;
    case 5: return LM_DTYPE_MLX_Q5;
    case 6: return LM_DTYPE_MLX_Q6;
    case 8: return LM_DTYPE_MLX_Q8;
    default: return LM_DTYPE_INVALID;
    }
}

size_t lm_mlx_row_bytes(int bits, int64_t n) {
    if (!lm_mlx_bits_valid(bits) || n < 0) return 0;
    uint64_t b;
    if (__builtin_mul_overflow((uint64_t)n, (uint64_t)bits, &b) || b % 32 != 0) return 0;
    if (b / 8 > SIZE_MAX) return 0;
    return (size_t)(b / 8);
}

/* Scale or bias i of a row, whatever its storage type (memcpy: rows need not be aligned). */
static float load_param(const uint8_t *p, lm_dtype t, int64_t i) {
    if (t == LM_DTYPE_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)); /* little-endian on disk */
    return t == LM_DTYPE_F16 ? lm_half_to_f32(h) : lm_bf16_to_f32(h);
}

int lm_mlx_dequant_row(int bits, int group_size, const void *packed_row, const void *scales_row,
                       const void *biases_row, lm_dtype scale_dtype, float *dst, int64_t n) {
    if (!lm_mlx_bits_valid(bits) || !lm_mlx_group_size_valid(group_size) || n < 0 ||
        n % group_size != 0)
        return -1;
    if (scale_dtype != LM_DTYPE_F32 && scale_dtype != LM_DTYPE_F16 &&
        scale_dtype != LM_DTYPE_BF16)
        return -1;
    const uint8_t *q = packed_row, *s = scales_row, *b = biases_row;
    const unsigned mask = (1u << bits) - 1;
    for (int64_t g = 0; g < n / group_size; g++) {
        float scale = load_param(s, scale_dtype, g), bias = load_param(b, scale_dtype, g);
        for (int64_t j = g * group_size; j < (g + 1) * group_size; j++) {
            /* element j: bits [j*bits, (j+1)*bits) of the row's little-endian bit stream.
             * bits <= 8, so it spans at most two bytes; the second is read only when the
             * quant actually reaches into it (the last quant of a row may end on the row's
             * last byte). */
            uint64_t bit = (uint64_t)j * (uint64_t)bits;
            uint64_t byte = bit >> 3;
            unsigned sh = (unsigned)(bit & 7), v = q[byte];
            if (sh + (unsigned)bits > 8) v |= (unsigned)q[byte + 1] << 8;
            dst[j] = scale * (float)((v >> sh) & mask) + bias;
        }
    }
    return 0;
}
