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

#endif
