/*
 * arch.h — a decoder-only transformer described by data: hyperparameters, per-family switches
 * and weights bound to roles. One forward pass (transformer.c) runs every family; a family is
 * only a different setting of these fields (model.c fills them from a GGUF file, bind_hf.c
 * from a Hugging Face directory, both through lm_arch_bind: bind.h).
 *
 * The families and what sets them apart (numerics learned from the reference implementations):
 *   llama   RMSNorm, RoPE on adjacent pairs (GGUF's Q/K rows are permuted for it), SwiGLU.
 *   qwen2   as llama + biases on Q, K, V; RoPE on halves (NEOX).
 *   qwen3   as llama + per-head RMSNorm of Q and K before RoPE; NEOX RoPE; no biases.
 *   gemma3  embeddings scaled by sqrt(n_embd); GeGLU (tanh GELU); Q/K norms; norms after the
 *           attention and FFN blocks too; sliding-window layers (5 of every 6) with their own
 *           RoPE base (10000), global layers with the file's base; NEOX RoPE; q scaled by
 *           1/sqrt(head_dim); tied output embedding. GGUF stores Gemma's norm weights with
 *           the +1 already added; HF checkpoints store w and the model computes x*(1+w):
 *           norm_add_one says which.
 *
 * RoPE scaling (of the global layers; Gemma's sliding-window layers are never scaled). Each
 * kind is resolved at bind time into the lm_rope_params fields (backend.h) freq_scale,
 * freq_factors (lm_arch_model.rope_freq_factors, n_rot/2 divisors of the angle of each pair)
 * and mscale (rope_mscale). With inv_p = base^(-2p/n_rot), the unscaled frequency of pair p:
 *   linear  every frequency divided by factor: freq_scale = 1 / factor.
 *   llama3  (transformers _compute_llama3_parameters; llama.cpp's converter writes the same
 *           divisors as the GGUF tensor rope_freqs.weight) with wavelen = 2 pi / inv_p,
 *           orig = original context, lo/hi = low/high_freq_factor:
 *             wavelen < orig/hi: divisor 1;  wavelen > orig/lo: divisor factor;
 *             else s = (orig/wavelen - lo) / (hi - lo), divisor 1 / ((1 - s)/factor + s).
 *   yarn    (transformers _compute_yarn_parameters; llama.cpp ggml_rope_yarn_corr_dims,
 *           rope_yarn) correction dims d(r) = n_rot ln(orig / (2 pi r)) / (2 ln base),
 *           low = max(floor d(beta_fast), 0), high = min(ceil d(beta_slow), n_rot - 1)
 *           (no floor/ceil when transformers' "truncate" is false); the weight of
 *           extrapolation e_p = ext_factor (1 - clamp((p - low) / (high - low), 0, 1))
 *           (high - low = 0.001 when they are equal); the frequency is
 *           inv_p ((1 - e_p)/factor + e_p), i.e. the divisor 1 / ((1 - e_p)/factor + e_p);
 *           cos and sin are multiplied by the attention factor: the configured one, else
 *           0.1 ln(factor) + 1 (1 for factor <= 1), or with transformers' mscale and
 *           mscale_all_dim (both non-zero) the ratio of (0.1 m ln(factor) + 1) for the two.
 *   file    a GGUF tensor rope_freqs.weight (f32, n_rot/2): divisors used as stored (on top
 *           of yarn or linear if the file also sets those, as llama.cpp does).
 */
#ifndef LM_MODEL_ARCH_H
#define LM_MODEL_ARCH_H

#include "backend/backend.h"

#include <stddef.h>
#include <stdint.h>

typedef enum lm_arch_id {
    LM_ARCH_LLAMA = 0,
    LM_ARCH_QWEN2,
    LM_ARCH_QWEN3,
    LM_ARCH_GEMMA3,
} lm_arch_id;

#define LM_MAX_LAYERS 512

typedef enum lm_rope_scaling {
    LM_ROPE_SCALING_NONE = 0,
    LM_ROPE_SCALING_LINEAR = 1,
    LM_ROPE_SCALING_YARN = 2,
    LM_ROPE_SCALING_LLAMA3 = 3,
} lm_rope_scaling;

typedef struct lm_hparams {
    lm_arch_id arch;
    int32_t n_vocab;
    int32_t n_ctx_train;   /* context length the model was trained for */
    int32_t n_embd;        /* residual width */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;      /* per-head width of Q, K and V (key_length) */
    int32_t n_ff;          /* FFN hidden width */
    float norm_eps;

    /* positions */
    lm_rope_style rope_style;
    int32_t n_rot;           /* rotated dims per head */
    float rope_base;         /* global (or only) layers */
    float rope_base_swa;     /* sliding-window layers */
    float rope_freq_scale;   /* 1 / linear scaling factor */
    /* RoPE scaling of the global layers (see "RoPE scaling" above); unused fields 0 */
    lm_rope_scaling rope_scaling;
    float rope_scale_factor;     /* yarn / llama3 "factor" (>= 1); 1 for none / linear */
    int32_t rope_orig_ctx;       /* yarn / llama3: original (pre-scaling) context, tokens */
    float rope_yarn_beta_fast;   /* yarn: rotations where the ramp starts (32) */
    float rope_yarn_beta_slow;   /* yarn: rotations where it ends (1) */
    float rope_yarn_ext_factor;  /* yarn: weight of extrapolation in the ramp (1) */
    int32_t rope_yarn_truncate;  /* yarn: correction dims floored / ceiled (1) */
    float rope_llama3_low_freq;  /* llama3 low_freq_factor */
    float rope_llama3_high_freq; /* llama3 high_freq_factor */
    float rope_mscale;           /* cos and sin of global layers multiplied by this (1 = none) */
    int32_t rope_freqs_in_file;  /* per-pair divisors from the file's rope_freqs.weight */

    /* attention */
    float attn_scale;        /* multiplies q·k */
    int32_t sliding_window;  /* tokens; 0 = no sliding-window layers */
    int32_t swa_period;      /* layer l is sliding iff swa_period > 0 && (l+1) % swa_period != 0 */
    float attn_softcap;      /* 0 = none */
    float final_softcap;     /* on the logits; 0 = none */

    /* switches */
    lm_act act;
    int norm_add_one;        /* norms compute x * (1 + w) (HF Gemma weights) */
    float embd_scale;        /* embeddings are multiplied by this (1, or sqrt(n_embd)) */
    int has_qk_norm;
    int has_qkv_bias;
    int has_post_norms;      /* norms after attention and FFN blocks (Gemma 2/3) */
} lm_hparams;

typedef struct lm_layer {
    lm_weight attn_norm;        /* (n_embd) */
    lm_weight wq;               /* (n_head*head_dim, n_embd) */
    lm_weight wk, wv;           /* (n_head_kv*head_dim, n_embd) */
    lm_weight bq, bk, bv;       /* biases, optional */
    lm_weight q_norm, k_norm;   /* (head_dim), optional */
    lm_weight wo;               /* (n_embd, n_head*head_dim) */
    lm_weight post_attn_norm;   /* (n_embd), optional */
    lm_weight ffn_norm;         /* (n_embd) */
    lm_weight w_gate, w_up;     /* (n_ff, n_embd) */
    lm_weight w_down;           /* (n_embd, n_ff) */
    lm_weight post_ffn_norm;    /* (n_embd), optional */
    int is_swa;                 /* sliding-window layer */
} lm_layer;

typedef struct lm_arch_model {
    lm_hparams hp;
    lm_weight tok_embd;         /* (n_vocab, n_embd) */
    lm_weight out_norm;         /* (n_embd) */
    lm_weight output;           /* (n_vocab, n_embd); = tok_embd when tied */
    lm_layer *layers;           /* (n_layer) */
    /* norm weights with +1 folded in (norm_add_one models), owned: one block per model */
    float *owned;
    /* (n_rot/2) per-pair divisors of the global layers' RoPE angles (lm_rope_params
     * freq_factors), owned; NULL = none (no llama3, yarn or rope_freqs scaling) */
    float *rope_freq_factors;
} lm_arch_model;

struct lm_gguf;
struct lm_hf;

/* Binds hyperparameters and weights of a GGUF model. Everything is validated (shapes against
 * hyperparameters, types the backend can run, ranges of every number); an unknown
 * architecture is LM_ERR_UNSUPPORTED. */
lm_status lm_arch_from_gguf(const struct lm_gguf *g, lm_arch_model *m, lm_err *err);
/* The same from a Hugging Face directory (bind_hf.c): config.json for the hyperparameters,
 * F32/F16/BF16 safetensors weights. Unsupported settings are LM_ERR_UNSUPPORTED naming the
 * config field; missing or mistyped fields LM_ERR_FORMAT naming it. arch_name (>= 16 bytes)
 * receives the family's GGUF name ("llama", "qwen2", "qwen3", "gemma3"). */
lm_status lm_arch_from_hf(const struct lm_hf *hf, lm_arch_model *m, char *arch_name,
                          size_t arch_name_len, lm_err *err);
void lm_arch_free(lm_arch_model *m);

/* Per-forward working buffers, allocated from the backend for up to n_batch tokens. */
typedef struct lm_forward_bufs {
    int64_t n_batch;
    float *x;      /* (n_batch, n_embd) residual stream */
    float *h;      /* (n_batch, n_embd) normed input / block output */
    float *q;      /* (n_batch, n_head*head_dim) */
    float *k, *v;  /* (n_batch, n_head_kv*head_dim) */
    float *att;    /* (n_batch, n_head*head_dim) */
    float *gate;   /* (n_batch, n_ff) */
    float *up;     /* (n_batch, n_ff) */
    float *logits; /* (1, n_vocab): the last token's */
    float *logits_rows; /* (LM_LOGITS_ROWS, n_vocab), allocated on first use by
                           lm_forward_logits_rows */
} lm_forward_bufs;

#define LM_LOGITS_ROWS 16

lm_status lm_forward_bufs_init(lm_backend *be, const lm_hparams *hp, int64_t n_batch,
                               lm_forward_bufs *b, lm_err *err);
void lm_forward_bufs_free(lm_backend *be, lm_forward_bufs *b);

/* Runs tokens[0..n) at positions seq->n_tokens.. through the model, writes their K/V into the
 * pool (pages must be reserved for seq->n_tokens + n), advances seq->n_tokens, and leaves the
 * last token's logits in b->logits (a backend buffer) when want_logits. n <= b->n_batch. */
lm_status lm_forward(lm_backend *be, const lm_arch_model *m, lm_kv_pool *pool, lm_kv_seq *seq,
                     const int32_t *tokens, int64_t n, int want_logits, lm_forward_bufs *b,
                     lm_err *err);

/* After lm_forward of n tokens: the logits after each token row in [from, n), computed
 * LM_LOGITS_ROWS rows at a time (final norm, output matmul, soft-cap as for the last token) and
 * passed to cb with a host copy of that row (n_vocab floats, valid during the call). Used to
 * score text (perplexity). A non-OK status from cb stops and is returned. */
typedef lm_status (*lm_row_logits_fn)(void *user, int64_t row, const float *logits, lm_err *err);
lm_status lm_forward_logits_rows(lm_backend *be, const lm_arch_model *m, lm_forward_bufs *b,
                                 int64_t n, int64_t from, float *host, lm_row_logits_fn cb,
                                 void *user, lm_err *err);

#endif
