/*
 * mlx.h — MLX affine quantization (mlx-lm's quantized checkpoints): the reference dequant.
 *
 * A quantized linear layer M of logical shape [out, in] is stored as three tensors:
 *     M.weight  U32  [out, in * bits / 32]   packed quants
 *     M.scales  F16/BF16/F32 [out, in / group_size]
 *     M.biases  same dtype and shape as scales
 * and element j of row r dequantizes to
 *     x = scales[r][j / G] * q + biases[r][j / G],   q in [0, 2^bits)
 *
 * Pack layout (verified against ml-explore/mlx: mlx.core.quantize output on every bits value,
 * and the Metal/CUDA kernels' pack factors): each row is one little-endian bit stream; element
 * j occupies bits [j*bits, (j+1)*bits) of it, least significant bit first. For bits 2, 4, 8
 * this is the obvious 16/8/4 quants per uint32 (element j in bits (j % n)*bits of word j / n);
 * for bits 3 and 5 eight quants fill 3 or 5 bytes and for bits 6 four quants fill 3 bytes, so
 * a quant may straddle a byte or a uint32 boundary. Rows start on uint32 boundaries because
 * in * bits is a multiple of 32.
 *
 * Valid parameters: bits in {2,3,4,5,6,8}; group_size in {32, 64, 128}; in % group_size == 0
 * (which makes in * bits a multiple of 32 for every valid bits value).
 */
#ifndef LM_TENSOR_MLX_H
#define LM_TENSOR_MLX_H

#include "tensor/dtype.h"

#include <stddef.h>
#include <stdint.h>

/* 1 when bits / group_size are values MLX affine packs use. */
int lm_mlx_bits_valid(int bits);
int lm_mlx_group_size_valid(int group_size);
/* LM_DTYPE_MLX_Q<bits>, or LM_DTYPE_INVALID. */
lm_dtype lm_mlx_dtype(int bits);
/* Bytes of one packed row of n logical elements (n * bits / 8); 0 when n * bits is not a
 * multiple of 32 or overflows. */
size_t lm_mlx_row_bytes(int bits, int64_t n);

/* Dequantizes one row of n logical elements: packed_row holds n * bits / 8 bytes, scales_row
 * and biases_row n / group_size values of scale_dtype (F16, BF16 or F32; no alignment
 * needed). Returns 0, or -1 when a parameter is invalid (bits, group_size, dtype, n < 0,
 * n % group_size != 0). */
int lm_mlx_dequant_row(int bits, int group_size, const void *packed_row, const void *scales_row,
                       const void *biases_row, lm_dtype scale_dtype, float *dst, int64_t n);

#endif
