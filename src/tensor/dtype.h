/*
 * dtype.h — every element type lemma knows, with its block geometry.
 *
 * Values below LM_DTYPE_GGML_COUNT are GGML's type ids exactly, so a GGUF tensor's type field
 * maps to lm_dtype by value (after checking lm_dtype_known_ggml). Values from 100 on are
 * types that only safetensors files carry. A type with block_size B and type_size S stores a
 * row of n elements (n % B == 0) in n / B * S bytes.
 *
 * MLX affine packs (mlx-lm's quantized checkpoints) are not an element type of one tensor:
 * they are a packed uint32 `weight` plus `scales` and `biases` tensors; they are described by
 * LM_DTYPE_MLX_Q{2,3,4,5,6,8} in the bound weight (see src/tensor/mlx.h), never by a file's
 * tensor table.
 */
#ifndef LM_TENSOR_DTYPE_H
#define LM_TENSOR_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum lm_dtype {
    LM_DTYPE_F32 = 0,
    LM_DTYPE_F16 = 1,
    LM_DTYPE_Q4_0 = 2,
    LM_DTYPE_Q4_1 = 3,
    /* 4, 5: removed from GGML (Q4_2, Q4_3) */
    LM_DTYPE_Q5_0 = 6,
    LM_DTYPE_Q5_1 = 7,
    LM_DTYPE_Q8_0 = 8,
    LM_DTYPE_Q8_1 = 9,
    LM_DTYPE_Q2_K = 10,
    LM_DTYPE_Q3_K = 11,
    LM_DTYPE_Q4_K = 12,
    LM_DTYPE_Q5_K = 13,
    LM_DTYPE_Q6_K = 14,
    LM_DTYPE_Q8_K = 15,
    LM_DTYPE_IQ2_XXS = 16,
    LM_DTYPE_IQ2_XS = 17,
    LM_DTYPE_IQ3_XXS = 18,
    LM_DTYPE_IQ1_S = 19,
    LM_DTYPE_IQ4_NL = 20,
    LM_DTYPE_IQ3_S = 21,
    LM_DTYPE_IQ2_S = 22,
    LM_DTYPE_IQ4_XS = 23,
    LM_DTYPE_I8 = 24,
    LM_DTYPE_I16 = 25,
    LM_DTYPE_I32 = 26,
    LM_DTYPE_I64 = 27,
    LM_DTYPE_F64 = 28,
    LM_DTYPE_IQ1_M = 29,
    LM_DTYPE_BF16 = 30,
    /* 31..33: removed (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) */
    LM_DTYPE_TQ1_0 = 34,
    LM_DTYPE_TQ2_0 = 35,
    /* 36..38: removed (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) */
    LM_DTYPE_MXFP4 = 39,
    LM_DTYPE_GGML_COUNT = 40,

    /* safetensors-only element types */
    LM_DTYPE_BOOL = 100,
    LM_DTYPE_U8 = 101,
    LM_DTYPE_U16 = 102,
    LM_DTYPE_U32 = 103,
    LM_DTYPE_U64 = 104,
    LM_DTYPE_F8_E4M3 = 105,
    LM_DTYPE_F8_E5M2 = 106,

    /* MLX affine packs (bits per weight); group size is a property of the bound weight */
    LM_DTYPE_MLX_Q2 = 120,
    LM_DTYPE_MLX_Q3 = 121,
    LM_DTYPE_MLX_Q4 = 122,
    LM_DTYPE_MLX_Q5 = 123,
    LM_DTYPE_MLX_Q6 = 124,
    LM_DTYPE_MLX_Q8 = 125,

    LM_DTYPE_INVALID = -1,
} lm_dtype;

#define LM_QK_K 256 /* super-block size of the K-quants */

typedef struct lm_dtype_traits {
    const char *name;    /* "q4_K", GGML's spelling; NULL for an unknown id */
    uint32_t block_size; /* elements per block */
    uint32_t type_size;  /* bytes per block */
} lm_dtype_traits;

/* Traits of t, or NULL when t is not a known type. */
const lm_dtype_traits *lm_dtype_get(lm_dtype t);
/* 1 if v is a GGML type id lemma knows (the removed ids are not). */
int lm_dtype_known_ggml(uint32_t v);
/* Name, or "?" when unknown. */
const char *lm_dtype_name(lm_dtype t);
/* Parses a name as lm_dtype_name prints it (case-insensitive); LM_DTYPE_INVALID if unknown. */
lm_dtype lm_dtype_from_name(const char *name);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size or t unknown,
 * or when the result overflows. */
size_t lm_dtype_row_size(lm_dtype t, uint64_t n);

#endif
