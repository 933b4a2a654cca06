/* dtype.c — the type table (see dtype.h). Block geometry is GGML's, a fact of the format. */
#include "tensor/dtype.h"

#include "core/checked.h"

#include <strings.h>

static const lm_dtype_traits ggml_traits[LM_DTYPE_GGML_COUNT] = {
    [LM_DTYPE_F32] = {"f32", 1, 4},
    [LM_DTYPE_F16] = {"f16", 1, 2},
    [LM_DTYPE_Q4_0] = {"q4_0", 32, 18},
    [LM_DTYPE_Q4_1] = {"q4_1", 32, 20},
    [LM_DTYPE_Q5_0] = {"q5_0", 32, 22},
    [LM_DTYPE_Q5_1] = {"q5_1", 32, 24},
    [LM_DTYPE_Q8_0] = {"q8_0", 32, 34},
    [LM_DTYPE_Q8_1] = {"q8_1", 32, 36},
    [LM_DTYPE_Q2_K] = {"q2_K", 256, 84},
    [LM_DTYPE_Q3_K] = {"q3_K", 256, 110},
    [LM_DTYPE_Q4_K] = {"q4_K", 256, 144},
    [LM_DTYPE_Q5_K] = {"q5_K", 256, 176},
    [LM_DTYPE_Q6_K] = {"q6_K", 256, 210},
    [LM_DTYPE_Q8_K] = {"q8_K", 256, 292},
    [LM_DTYPE_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [LM_DTYPE_IQ2_XS] = {"iq2_xs", 256, 74},
    [LM_DTYPE_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [LM_DTYPE_IQ1_S] = {"iq1_s", 256, 50},
    [LM_DTYPE_IQ4_NL] = {"iq4_nl", 32, 18},
    [LM_DTYPE_IQ3_S] = {"iq3_s", 256, 110},
    [LM_DTYPE_IQ2_S] = {"iq2_s", 256, 82},
    [LM_DTYPE_IQ4_XS] = {"iq4_xs", 256, 136},
    [LM_DTYPE_I8] = {"i8", 1, 1},
    [LM_DTYPE_I16] = {"i16", 1, 2},
    [LM_DTYPE_I32] = {"i32", 1, 4},
    [LM_DTYPE_I64] = {"i64", 1, 8},
    [LM_DTYPE_F64] = {"f64", 1, 8},
    [LM_DTYPE_IQ1_M] = {"iq1_m", 256, 56},
    [LM_DTYPE_BF16] = {"bf16", 1, 2},
    [LM_DTYPE_TQ1_0] = {"tq1_0", 256, 54},
    [LM_DTYPE_TQ2_0] = {"tq2_0", 256, 66},
    [LM_DTYPE_MXFP4] = {"mxfp4", 32, 17},
};

static const lm_dtype_traits st_traits[] = {
    [LM_DTYPE_BOOL - 100] = {"bool", 1, 1},   [LM_DTYPE_U8 - 100] = {"u8", 1, 1},
    [LM_DTYPE_U16 - 100] = {"u16", 1, 2},     [LM_DTYPE_U32 - 100] = {"u32", 1, 4},
    [LM_DTYPE_U64 - 100] = {"u64", 1, 8},     [LM_DTYPE_F8_E4M3 - 100] = {"f8_e4m3", 1, 1},
    [LM_DTYPE_F8_E5M2 - 100] = {"f8_e5m2", 1, 1},
};

/* MLX packs: a block is one group of 32 weights here only for sizing purposes (32 * bits / 8
 * bytes of packed weight); scales and biases live in their own tensors. */
static const lm_dtype_traits mlx_traits[] = {
    [LM_DTYPE_MLX_Q2 - 120] = {"mlx_q2", 32, 8},  [LM_DTYPE_MLX_Q3 - 120] = {"mlx_q3", 32, 12},
    [LM_DTYPE_MLX_Q4 - 120] = {"mlx_q4", 32, 16}, [LM_DTYPE_MLX_Q5 - 120] = {"mlx_q5", 32, 20},
    [LM_DTYPE_MLX_Q6 - 120] = {"mlx_q6", 32, 24}, [LM_DTYPE_MLX_Q8 - 120] = {"mlx_q8", 32, 32},
};

const lm_dtype_traits *lm_dtype_get(lm_dtype t) {
    const lm_dtype_traits *tr = NULL;
    if ((int)t >= 0 && t < LM_DTYPE_GGML_COUNT) tr = &ggml_traits[t];
    else if (t >= 100 && t <= LM_DTYPE_F8_E5M2) tr = &st_traits[t - 100];
    else if (t >= 120 && t <= LM_DTYPE_MLX_Q8) tr = &mlx_traits[t - 120];
    return tr && tr->name ? tr : NULL;
}

int lm_dtype_known_ggml(uint32_t v) {
    return v < LM_DTYPE_GGML_COUNT && ggml_traits[v].name != NULL;
}

const char *lm_dtype_name(lm_dtype t) {
    const lm_dtype_traits *tr = lm_dtype_get(t);
    return tr ? tr->name : "?";
}

lm_dtype lm_dtype_from_name(const char *name) {
    for (int i = 0; i < 130; i++) {
        const lm_dtype_traits *tr = lm_dtype_get((lm_dtype)i);
        if (tr && strcasecmp(tr->name, name) == 0) return (lm_dtype)i;
    }
    return LM_DTYPE_INVALID;
}

size_t lm_dtype_row_size(lm_dtype t, uint64_t n) {
    const lm_dtype_traits *tr = lm_dtype_get(t);
    if (!tr || n % tr->block_size) return 0;
    uint64_t r;
    if (!lm_mul_u64(n / tr->block_size, tr->type_size, &r) || r > SIZE_MAX) return 0;
    return (size_t)r;
}
