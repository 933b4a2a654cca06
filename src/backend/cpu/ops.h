/*
 * ops.h — the CPU backend's non-matmul ops. Shapes and meaning: see backend/backend.h.
 *
 * Each op lm_cpu_X dispatches on the active SIMD level (cpu_features.h; LM_NO_SIMD=1 forces
 * the references) to lm_cpu_X_avx512 (ops_avx512.c) or lm_cpu_X_ref (ops.c): plain scalar C,
 * the spec that any SIMD or CUDA version is tested against (tests/test_ops.c).
 * Matmul is lm_matmul (backend/cpu/matmul.c); threading is done by backend_cpu.c.
 */
#ifndef LM_BACKEND_CPU_OPS_H
#define LM_BACKEND_CPU_OPS_H

#include "backend/backend.h"

/* f16 -> f32 for every bit pattern (and the GELU table), built once by lm_cpu_ops_init
 * (thread-safe, idempotent), which must run before the ops. */
extern float lm_cpu_f16_table[65536];
void lm_cpu_ops_init(void);

void lm_cpu_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t dim, float eps);
/* Scalar only (the reference): x (n, n_head, head_dim) rotated in place as lm_rope_params
 * describes (backend.h), token i at position pos0 + i. */
void lm_cpu_rope(float *x, int64_t n, int32_t n_head, int32_t head_dim, int64_t pos0,
                 const lm_rope_params *rp);
void lm_cpu_glu(float *gate, const float *up, int64_t n, lm_act act);
void lm_cpu_kv_write(lm_kv_pool *pool, const lm_kv_seq *seq, int32_t layer, const float *k,
                     const float *v, int64_t n, int64_t pos0);
/* Attention for query rows [i0, i1) of the (n, n_head) grid flattened as i * n_head + h;
 * scratch holds pos0 + n floats. */
void lm_cpu_attention_rows(float *out, const float *q, const lm_kv_pool *pool,
                           const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                           const lm_attn_params *ap, int64_t r0, int64_t r1, float *scratch);

/* dst (n) = f16 of src, round to nearest even (lm_f32_to_half) */
void lm_cpu_f32_to_f16(lm_half *dst, const float *src, int64_t n);

/* References (the spec) */
void lm_cpu_rmsnorm_ref(float *y, const float *x, const float *w, int64_t n, int64_t dim,
                        float eps);
void lm_cpu_glu_ref(float *gate, const float *up, int64_t n, lm_act act);
void lm_cpu_f32_to_f16_ref(lm_half *dst, const float *src, int64_t n);
void lm_cpu_attention_rows_ref(float *out, const float *q, const lm_kv_pool *pool,
                               const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                               const lm_attn_params *ap, int64_t r0, int64_t r1,
                               float *scratch);

/* AVX-512 versions (ops_avx512.c; only called after the run-time check) */
void lm_cpu_rmsnorm_avx512(float *y, const float *x, const float *w, int64_t n, int64_t dim,
                           float eps);
void lm_cpu_glu_avx512(float *gate, const float *up, int64_t n, lm_act act,
                       const float *gelu_table);
void lm_cpu_f32_to_f16_avx512(lm_half *dst, const float *src, int64_t n);
void lm_cpu_attention_rows_avx512(float *out, const float *q, const lm_kv_pool *pool,
                                  const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                                  const lm_attn_params *ap, int64_t r0, int64_t r1,
                                  float *scratch);
/* Attention for query tokens [i0, i1) × heads [h0, h1), heads that share one KV head, in one
 * pass over their keys (GQA). Two tokens or more form a tile: (i1 - i0) * (h1 - h0) rows, at
 * most LM_CPU_ATTN_TILE_ROWS; one token takes the one-token kernel (any number of heads).
 * Each row's result depends on its own data only (not on the other rows of the call), and
 * equals the reference up to summation order. scratch: lm_cpu_attention_tile_floats floats. */
#define LM_CPU_ATTN_TILE_ROWS 64
void lm_cpu_attention_tile_avx512(float *out, const float *q, const lm_kv_pool *pool,
                                  const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                                  const lm_attn_params *ap, int64_t i0, int64_t i1, int32_t h0,
                                  int32_t h1, float *scratch);
/* Scratch floats of lm_cpu_attention_tile_avx512 for up to n_keys keys (pos0 + n): 64-byte
 * alignment slack, q transposed (Dp × 64), scores (n_keys + 16) × 64, a block of 64 K/V rows
 * converted to f32 (Dp = head_dim rounded up to 16). */
static inline size_t lm_cpu_attention_tile_floats(int32_t head_dim, int64_t n_keys) {
    const size_t dp = ((size_t)head_dim + 15) & ~(size_t)15, rows = LM_CPU_ATTN_TILE_ROWS;
    return 16 + dp * rows + ((size_t)n_keys + 16) * rows + 64 * dp;
}

#endif
