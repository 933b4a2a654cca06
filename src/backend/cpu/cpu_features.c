/*
 * cpu_features.c — cpuid/xgetbv detection and the active SIMD level (see cpu_features.h).
 */
#include "backend/cpu/cpu_features.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LM_X86 1
#endif

static lm_cpu_features g_feat;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static atomic_int g_level;

#ifdef LM_X86
static uint64_t lm_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void detect(void) {
    lm_cpu_features f;
    memset(&f, 0, sizeof f);
#ifdef LM_X86
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
        int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
        uint64_t xcr0 = osxsave ? lm_xgetbv0() : 0;
        int ymm_ok = avx && (xcr0 & 0x6) == 0x6;           /* XMM and YMM state */
        int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;      /* opmask, ZMM_Hi256, Hi16_ZMM */
        unsigned max_leaf = __get_cpuid_max(0, NULL);
        if (max_leaf >= 7 && ymm_ok) {
            unsigned a7, b7, c7, d7;
            __cpuid_count(7, 0, a7, b7, c7, d7);
            f.avx2 = (b7 >> 5) & 1;
            f.bmi2 = (b7 >> 8) & 1;
            f.fma = fma;
            f.f16c = f16c;
            if (zmm_ok) {
                f.avx512f = (b7 >> 16) & 1;
                f.avx512dq = (b7 >> 17) & 1;
                f.avx512bw = (b7 >> 30) & 1;
                f.avx512vl = (b7 >> 31) & 1;
                f.avx512vbmi = (c7 >> 1) & 1;
                f.avx512vnni = (c7 >> 11) & 1;
                unsigned a71, b71, c71, d71;
                __cpuid_count(7, 1, a71, b71, c71, d71);
                f.avx512bf16 = (a71 >> 5) & 1;
                (void)b71, (void)c71, (void)d71;
            }
            (void)d7;
        }
        (void)b;
    }
#endif
    f.max_level = LM_CPU_SCALAR;
    if (f.avx2 && f.fma && f.f16c && f.bmi2) f.max_level = LM_CPU_AVX2;
    if (f.max_level == LM_CPU_AVX2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq &&
        f.avx512vnni)
        f.max_level = LM_CPU_AVX512;
    g_feat = f;
    lm_cpu_level lv = f.max_level;
    const char *env = getenv("LM_CPU");
    if (env) {
        lm_cpu_level want = lv;
        if (strcasecmp(env, "scalar") == 0) want = LM_CPU_SCALAR;
        else if (strcasecmp(env, "avx2") == 0) want = LM_CPU_AVX2;
        else if (strcasecmp(env, "avx512") == 0) want = LM_CPU_AVX512;
        if (want < lv) lv = want;
    }
    atomic_store(&g_level, (int)lv);
}

const lm_cpu_features *lm_cpu_features_get(void) {
    pthread_once(&g_once, detect);
    return &g_feat;
}

lm_cpu_level lm_cpu_level_get(void) {
    pthread_once(&g_once, detect);
    return (lm_cpu_level)atomic_load(&g_level);
}

lm_status lm_cpu_set_level(lm_cpu_level level, lm_err *err) {
    pthread_once(&g_once, detect);
    if (level < LM_CPU_SCALAR || level > LM_CPU_AVX512)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "cpu: level %d unknown", (int)level);
    if (level > g_feat.max_level)
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "cpu: level %s not supported here (max %s)",
                          lm_cpu_level_name(level), lm_cpu_level_name(g_feat.max_level));
    atomic_store(&g_level, (int)level);
    return LM_OK;
}

const char *lm_cpu_level_name(lm_cpu_level level) {
    switch (level) {
    case LM_CPU_SCALAR: return "scalar";
    case LM_CPU_AVX2: return "avx2";
    case LM_CPU_AVX512: return "avx512";
    }
    return "?";
}
