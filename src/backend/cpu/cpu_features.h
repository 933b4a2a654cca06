/*
 * cpu_features.h — which SIMD level the CPU kernels may use, decided at run time.
 *
 * Levels are ordered: scalar < avx2 (AVX2 + FMA + F16C) < avx512 (F, BW, VL, DQ, VNNI). Each
 * level needs both the instructions (cpuid) and the OS saving their register state (xgetbv:
 * XMM|YMM for avx2, plus opmask|ZMM_Hi256|Hi16_ZMM for avx512). AVX512-BF16 is reported
 * separately; no level requires it.
 *
 * The active level starts as the highest supported one, lowered by the environment variable
 * LM_CPU=scalar|avx2|avx512 (read once, a request above the hardware is capped), and can be
 * set by tests and benchmarks with lm_cpu_set_level.
 */
#ifndef LM_BACKEND_CPU_FEATURES_H
#define LM_BACKEND_CPU_FEATURES_H

#include "core/status.h"

typedef enum lm_cpu_level {
    LM_CPU_SCALAR = 0,
    LM_CPU_AVX2 = 1,
    LM_CPU_AVX512 = 2,
} lm_cpu_level;

typedef struct lm_cpu_features {
    int avx2, fma, f16c, bmi2;                      /* usable (cpuid and OS state) */
    int avx512f, avx512bw, avx512vl, avx512dq, avx512vnni, avx512bf16, avx512vbmi;
    lm_cpu_level max_level;                         /* highest level the hardware allows */
} lm_cpu_features;

/* Hardware features (detected once, thread-safe). */
const lm_cpu_features *lm_cpu_features_get(void);
/* The level kernels use now. */
lm_cpu_level lm_cpu_level_get(void);
/* Forces a level; LM_ERR_UNSUPPORTED if the hardware lacks it (the level is unchanged). */
lm_status lm_cpu_set_level(lm_cpu_level level, lm_err *err);
/* "scalar", "avx2", "avx512". */
const char *lm_cpu_level_name(lm_cpu_level level);

#endif
