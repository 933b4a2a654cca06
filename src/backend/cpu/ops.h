/*
 * ops.h — the CPU backend's non-matmul ops (ops.c): plain scalar C, the reference that any
 * SIMD or CUDA version is tested against. Shapes and meaning: see backend/backend.h.
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

#endif
