/*
 * backend.h — the compute backend interface (DESIGN.md §6).
 *
 * A backend is a table of function pointers over coarse ops that a transformer forward pass is
 * made of: quantized matmul, RMS norm, RoPE, KV writes and attention over the paged KV cache,
 * gated activations, embedding lookup, add/scale. Model code (src/model/) calls only these; it
 * never touches a kernel or dereferences an activation buffer, so a CUDA backend can implement
 * the same table with device memory and run the same model code.
 *
 * Buffers: activation buffers are float arrays obtained from ops->alloc and returned with
 * ops->release. On the CPU they are host memory; on a GPU they would be device memory. The
 * only way model/engine code reads one is ops->download. Weights (lm_weight) are bound by
 * model code from the model file; on the CPU they are used in place from the mmap, a GPU
 * backend uploads them once in ops->prepare_weight.
 *
 * Shapes: an activation of n tokens and width d is row-major (n, d): token i's vector starts
 * at i * d. A weight is (rows, cols) = (out features, in features), rows stored contiguously,
 * each of lm_dtype_row_size(dtype, cols) bytes — GGUF's layout (ne[0] = cols).
 *
 * Errors: ops that can fail (an unsupported weight type, out of memory, a bad token id) return
 * lm_status with the reason in err; the others cannot fail on validated input.
 */
#ifndef LM_BACKEND_BACKEND_H
#define LM_BACKEND_BACKEND_H

#include "core/status.h"
#include "kv/kv.h"
#include "tensor/dtype.h"

#include <stddef.h>
#include <stdint.h>

/* A weight matrix or vector bound to a role. A vector (norm weight, bias) has rows == 1. */
typedef struct lm_weight {
    lm_dtype dtype;
    const void *data; /* (rows, cols) in dtype's row layout; NULL = absent */
    int64_t rows;     /* output features (ne[1]) */
    int64_t cols;     /* input features (ne[0]) */
    /* MLX affine packs only (dtype LM_DTYPE_MLX_Q*, tensor/mlx.h; group_size 0 otherwise):
     * data is the packed quants, scales/biases (rows, cols / group_size) of scale_dtype */
    const void *scales, *biases;
    lm_dtype scale_dtype;
    int32_t group_size;
} lm_weight;

typedef enum lm_rope_style {
    LM_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): Llama in GGUF layout */
    LM_ROPE_NEOX = 1, /* rotate halves (x[i], x[i + n_rot/2]): Qwen, Gemma, HF layout */
} lm_rope_style;

/* RoPE of one layer. Pair p (0 <= p < n_rot/2) of a token at position pos turns by
 *     theta_p = freq_scale * (pos * base^(-2p/n_rot)) / freq_factors[p]
 * (freq_factors NULL: / 1), and the rotated pair is multiplied by mscale:
 *     x_a' = mscale (x_a cos theta_p - x_b sin theta_p)
 *     x_b' = mscale (x_a sin theta_p + x_b cos theta_p).
 * Every RoPE scaling the models use reduces to these fields, resolved once when the model is
 * bound (model/arch.h, "RoPE scaling"): linear scaling is freq_scale; Llama 3's per-pair
 * divisors and YaRN's ramp between interpolated and extrapolated frequencies are
 * freq_factors; YaRN's magnitude correction is mscale. A zero-initialised tail (freq_factors
 * NULL, mscale 0) is plain RoPE. */
typedef struct lm_rope_params {
    lm_rope_style style;
    int32_t n_rot;      /* rotated dims per head (<= head_dim, even); the rest pass through */
    float base;         /* theta base */
    float freq_scale;   /* linear scaling: angles are multiplied by this (1 = none) */
    const float *freq_factors; /* (n_rot/2) per-pair divisors of the angle (> 0), or NULL = all
                                  1. Host memory owned by the model, constant while it is
                                  loaded: a device backend copies it once (n_rot/2 floats). */
    float mscale;       /* cos and sin are multiplied by this; 0 (or 1) = none */
} lm_rope_params;

typedef enum lm_act {
    LM_ACT_SILU = 0,      /* SwiGLU: silu(gate) * up */
    LM_ACT_GELU_TANH = 1, /* GeGLU with the tanh approximation of GELU (Gemma) */
} lm_act;

typedef struct lm_attn_params {
    int32_t n_head;     /* query heads */
    int32_t n_head_kv;  /* key/value heads; n_head % n_head_kv == 0 (GQA) */
    int32_t head_dim;   /* per head, for Q, K and V */
    float scale;        /* multiplies q·k */
    int32_t window;     /* sliding window in tokens (key visible iff qpos - kpos < window);
                           0 = full causal attention */
    float softcap;      /* 0 = none; else scores become softcap * tanh(score / softcap) */
} lm_attn_params;

typedef struct lm_backend lm_backend;

typedef struct lm_backend_ops {
    const char *name;
    void (*destroy)(lm_backend *be);

    /* Buffers: n floats of backend memory (NULL when out of memory); release accepts NULL. */
    float *(*alloc)(lm_backend *be, size_t n);
    void (*release)(lm_backend *be, float *buf);
    lm_status (*download)(lm_backend *be, float *host, const float *buf, size_t n, lm_err *err);

    /* y (n, w->rows) = x (n, w->cols) · wᵀ */
    lm_status (*matmul)(lm_backend *be, const lm_weight *w, const float *x, int64_t n, float *y,
                        lm_err *err);
    /* y (n, b->cols) += b, broadcast over rows (b is an f32 vector) */
    lm_status (*add_bias)(lm_backend *be, float *y, const lm_weight *b, int64_t n, lm_err *err);
    /* y (n, dim) = x / rms(x) * (w or 1); w may be NULL; y may equal x */
    lm_status (*rmsnorm)(lm_backend *be, float *y, const float *x, const lm_weight *w, int64_t n,
                         int64_t dim, float eps, lm_err *err);
    /* x (n, n_head, head_dim) rotated in place; token i is at position pos0 + i */
    lm_status (*rope)(lm_backend *be, float *x, int64_t n, int32_t n_head, int32_t head_dim,
                      int64_t pos0, const lm_rope_params *rp, lm_err *err);
    /* Stores k, v (n, kv_dim) of layer `layer` at positions pos0 .. pos0+n-1 of seq (the pages
     * must already be reserved). */
    lm_status (*kv_write)(lm_backend *be, lm_kv_pool *pool, const lm_kv_seq *seq, int32_t layer,
                          const float *k, const float *v, int64_t n, int64_t pos0, lm_err *err);
    /* out (n, n_head*head_dim) = causal attention of q (n, n_head*head_dim) at positions
     * pos0.. over the keys/values of positions 0 .. pos0+n-1 of seq in layer `layer`. */
    lm_status (*attention)(lm_backend *be, float *out, const float *q, const lm_kv_pool *pool,
                           const lm_kv_seq *seq, int32_t layer, int64_t n, int64_t pos0,
                           const lm_attn_params *ap, lm_err *err);
    /* gate (n) = act(gate) * up */
    lm_status (*glu)(lm_backend *be, float *gate, const float *up, int64_t n, lm_act act,
                     lm_err *err);
    /* out (n, table->cols) = rows ids[i] of table, times scale; ids are checked */
    lm_status (*embed)(lm_backend *be, const lm_weight *table, const int32_t *ids, int64_t n,
                       float scale, float *out, lm_err *err);
    /* y (n) += x */
    lm_status (*add)(lm_backend *be, float *y, const float *x, int64_t n, lm_err *err);
    /* y (n) *= s */
    lm_status (*scale)(lm_backend *be, float *y, float s, int64_t n, lm_err *err);
    /* dst (n) = src */
    lm_status (*copy)(lm_backend *be, float *dst, const float *src, int64_t n, lm_err *err);
    /* y (n) = cap * tanh(y / cap) */
    lm_status (*softcap)(lm_backend *be, float *y, float cap, int64_t n, lm_err *err);
    /* ys[i] (n, ws[i]->rows) = x (n, cols) · ws[i]ᵀ for i < count (1..4), every ws[i] with the
     * same cols: weights that share an input (Q/K/V, gate/up) in one op, so the backend can
     * prepare the input once and synchronise once. Optional: NULL = one matmul per weight. */
    lm_status (*matmul_multi)(lm_backend *be, int count, const lm_weight *const *ws,
                              const float *x, int64_t n, float *const *ys, lm_err *err);
} lm_backend_ops;

struct lm_backend {
    const lm_backend_ops *ops;
    void *impl; /* the backend's own state */
};

/* The CPU backend with n_threads worker threads (>= 1). */
lm_status lm_backend_cpu_create(int n_threads, lm_backend **out, lm_err *err);

/* Frees a backend made by any *_create (NULL is fine). */
void lm_backend_free(lm_backend *be);

#endif
