/*
 * bind.h — what the per-format binders (model.c: GGUF, bind_hf.c: Hugging Face directories)
 * share. A binder only reads its format's hyperparameters into lm_hparams and names the
 * tensors of each role (lm_tensor_names); lm_arch_bind then binds, checks and completes the
 * same lm_arch_model for every format, so families stay data (arch.h) whatever the source.
 */
#ifndef LM_MODEL_BIND_H
#define LM_MODEL_BIND_H

#include "format/tensor_info.h"
#include "model/arch.h"

#include <stddef.h>

/* Looks a tensor up by name in the source; NULL when absent. */
typedef const lm_tensor_info *(*lm_tensor_find_fn)(const void *ctx, const char *name);

/* Tensor names of each role. Global tensors are full names; a layer tensor is
 * "<layer_prefix><N>.<role name>". A NULL role name = the format has no such tensor. */
typedef struct lm_tensor_names {
    const char *tok_embd, *out_norm, *output;
    const char *layer_prefix;
    const char *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *q_norm, *k_norm;
    const char *post_attn_norm, *ffn_norm, *w_gate, *w_up, *w_down, *post_ffn_norm;
} lm_tensor_names;

typedef struct lm_bind_opts {
    int tied;               /* 1: output = tok_embd; 0: output required; -1: absent = tied */
    int float_only;         /* matrices must be F32/F16/BF16 (else any dequantizable type) */
    const unsigned char *swa_layers; /* (n_layer) sliding flags, NULL = the swa_period rule */
    /* Matrices that are MLX affine packs: fills w (dtype LM_DTYPE_MLX_Q*, data, rows, cols,
     * scales, biases, scale_dtype, group_size) for tensor name, or returns LM_ERR_NOT_FOUND
     * when it is not a pack. NULL = the format has no packs. */
    lm_status (*pack)(const void *ctx, const char *name, lm_weight *w, lm_err *err);
} lm_bind_opts;

/* Family switches and defaults for the GGUF architecture name ("llama", "qwen2", "qwen3",
 * "gemma3"); LM_ERR_UNSUPPORTED for others. */
lm_status lm_arch_defaults(const char *name, size_t len, lm_hparams *hp, lm_err *err);
/* Range checks of every number (after the binder filled them; n_vocab may still be 0). */
lm_status lm_hparams_check(const lm_hparams *hp, lm_err *err);
/* Binds every tensor of m->hp's family from find/ctx (shapes checked against m->hp; n_vocab
 * from the embedding's rows, which must equal m->hp.n_vocab when that is set), copies the
 * norm and bias vectors to f32 (with +1 for norm_add_one) and sets the sliding layers. On
 * failure m is freed. */
lm_status lm_arch_bind(lm_arch_model *m, lm_tensor_find_fn find, const void *ctx,
                       const lm_tensor_names *nm, const lm_bind_opts *opts, lm_err *err);

#endif
