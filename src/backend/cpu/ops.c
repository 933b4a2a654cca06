/*
 * ops.c — scalar reference implementations of the CPU backend's non-matmul ops.
 *
 * Numerics follow what the reference runtimes do, so that greedy output matches them:
 *   - GELU goes through an f16 table (f16 in, f16 out), as llama.cpp's CPU backend does;
 *   - RMS norm sums squares in double, then scales by 1/sqrt(mean + eps) in float;
 *   - RoPE angles are theta_i = freq_scale * (pos * base^(-2i/n_rot)) / freq_factors[i], the
 *     product in parentheses built by repeated float multiplication by base^(-2/n_rot), then
 *     divided and scaled in that order (as llama.cpp's rope cache and rope_yarn do); cos/sin
 *     in float, times mscale;
 *   - attention rounds q to f16 before q·k, because K lives in the cache as f16 and the
 *     reference (llama.cpp) converts q to K's type for that dot product; the softmax is f32
 *     (sum in double), and its probabilities are rounded to f16 before they weight V (the
 *     reference multiplies them with the f16 V as an f16 matrix), accumulating in f32.
 */
#include "backend/cpu/ops.h"

#include "backend/cpu/cpu_features.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define LM_HAVE_X86_F16C 1
#endif

float lm_cpu_f16_table[65536];
static float gelu_table[65536]; /* f16(gelu(x)) for every f16 x */
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static float gelu_tanh(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

/* The two inner loops of attention over f16 rows: q·k and o += w * v. The x86 versions use
 * F16C + FMA through a function-level target (this file is built without -m flags) and are
 * only called at the avx2 level or above; the scalar ones are the reference. */
static int no_simd; /* LM_NO_SIMD set: references only */

static lm_cpu_level ops_level(void) {
    return no_simd ? LM_CPU_SCALAR : lm_cpu_level_get();
}

static float dot_f16_ref(const float *q, const lm_half *k, int32_t n) {
    float s = 0.0f;
    for (int32_t c = 0; c < n; c++) s += q[c] * lm_cpu_f16_table[k[c]];
    return s;
}

static void axpy_f16_ref(float *o, float w, const lm_half *v, int32_t n) {
    for (int32_t c = 0; c < n; c++) o[c] += w * lm_cpu_f16_table[v[c]];
}

#ifdef LM_HAVE_X86_F16C
__attribute__((target("avx2,fma,f16c"))) static float dot_f16_x86(const float *q,
                                                                   const lm_half *k,
                                                                   int32_t n) {
    __m256 acc = _mm256_setzero_ps();
    int32_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + c)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), kv, acc);
    }
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; c < n; c++) s += q[c] * lm_cpu_f16_table[k[c]];
    return s;
}

__attribute__((target("avx2,fma,f16c"))) static void axpy_f16_x86(float *o, float w,
                                                                  const lm_half *v, int32_t n) {
    const __m256 wv = _mm256_set1_ps(w);
    int32_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + c)));
        _mm256_storeu_ps(o + c, _mm256_fmadd_ps(wv, vv, _mm256_loadu_ps(o + c)));
    }
    for (; c < n; c++) o[c] += w * lm_cpu_f16_table[v[c]];
}
#endif

typedef float (*dot_f16_fn)(const float *q, const lm_half *k, int32_t n);
typedef void (*axpy_f16_fn)(float *o, float w, const lm_half *v, int32_t n);

static void build_table(void) {
    no_simd = getenv("LM_NO_SIMD") != NULL;
    for (uint32_t i = 0; i < 65536; i++) lm_cpu_f16_table[i] = lm_half_to_f32((lm_half)i);
    for (uint32_t i = 0; i < 65536; i++)
        gelu_table[i] = lm_half_to_f32(lm_f32_to_half(gelu_tanh(lm_cpu_f16_table[i])));
}

void lm_cpu_ops_init(void) { pthread_once(&table_once, build_table); }

void lm_cpu_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t dim,
                    float eps) {
    if (ops_level() >= LM_CPU_AVX512)
        lm_cpu_rmsnorm_avx512(y, x, w, n, dim, eps);
    else
        lm_cpu_rmsnorm_ref(y, x, w, n, dim, eps);
}

void lm_cpu_rmsnorm_ref(float *y, const float *x, const float *w, int64_t n, int64_t dim,
                        float eps) {
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        float *yi = y + i * dim;
        double ss = 0.0;
        for (int64_t j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        const float s = 1.0f / sqrtf((float)(ss / (double)dim) + eps);
        if (w)
            for (int64_t j = 0; j < dim; j++) yi[j] = xi[j] * s * w[j];
        else
            for (int64_t j = 0; j < dim; j++) yi[j] = xi[j] * s;
    }
}

void lm_cpu_rope(float *x, int64_t n, int32_t n_head, int32_t head_dim, int64_t pos0,
                 const lm_rope_params *rp) {
    const int32_t nr = rp->n_rot;
    const float theta_scale = powf(rp->base, -2.0f / (float)nr);
    const float *ff = rp->freq_factors;
    /* multiplying by 1.0f and skipping the division keep plain RoPE bit-identical to the
     * unscaled formula */
    const float ms = rp->mscale > 0.0f ? rp->mscale : 1.0f;
    float cs[2 * 512]; /* (cos, sin) per rotated pair; n_rot <= 1024 is checked at bind time */
    for (int64_t i = 0; i < n; i++) {
        float theta = (float)(pos0 + i); /* pos * base^(-2p/n_rot), p = 0, 1, ... */
        for (int32_t p = 0; p < nr / 2; p++) {
            const float t = rp->freq_scale * (ff ? theta / ff[p] : theta);
            cs[2 * p] = cosf(t) * ms;
            cs[2 * p + 1] = sinf(t) * ms;
            theta *= theta_scale;
        }
        for (int32_t h = 0; h < n_head; h++) {
            float *v = x + (i * n_head + h) * head_dim;
            for (int32_t p = 0; p < nr / 2; p++) {
                /* NORM pairs neighbours, NEOX pairs the two halves of the rotated part */
                const int32_t a = rp->style == LM_ROPE_NORM ? 2 * p : p;
                const int32_t b = rp->style == LM_ROPE_NORM ? 2 * p + 1 : p + nr / 2;
                const float c = cs[2 * p], s = cs[2 * p + 1];
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

void lm_cpu_glu(float *gate, const float *up, int64_t n, lm_act act) {
    if (ops_level() >= LM_CPU_AVX512)
        lm_cpu_glu_avx512(gate, up, n, act, gelu_table);
    else
        lm_cpu_glu_ref(gate, up, n, act);
}

void lm_cpu_glu_ref(float *gate, const float *up, int64_t n, lm_act act) {
    if (act == LM_ACT_SILU) {
        for (int64_t i = 0; i < n; i++) {
            const float g = gate[i];
            gate[i] = g / (1.0f + expf(-g)) * up[i];
        }
    } else {
        /* GELU through an f16 table, as llama.cpp's CPU backend computes it: the input is
         * rounded to f16 and the result is f16; beyond |x| >= 10 GELU is 0 or x. */
        for (int64_t i = 0; i < n; i++) {
            const float g = gate[i];
            float a;
            if (g <= -10.0f)
                a = 0.0f;
            else if (g >= 10.0f)
                a = g;
            else
                a = gelu_table[lm_f32_to_half(g)];
            gate[i] = a * up[i];
        }
    }
}

void lm_cpu_f32_to_f16_ref(lm_half *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = lm_f32_to_half(src[i]);
}

void lm_cpu_f32_to_f16(lm_half *dst, const float *src, int64_t n) {
    if (ops_level() >= LM_CPU_AVX512)
        lm_cpu_f32_to_f16_avx512(dst, src, n);
    else
        lm_cpu_f32_to_f16_ref(dst, src, n);
}

void lm_cpu_kv_write(lm_kv_pool *pool, const lm_kv_seq *seq, int32_t layer, const float *k,
                     const float *v, int64_t n, int64_t pos0) {
    const int32_t d = pool->cfg.kv_dim;
    for (int64_t i = 0; i < n; i++) {
        lm_cpu_f32_to_f16(lm_kv_row(pool, seq, layer, 0, pos0 + i), k + i * d, d);
        lm_cpu_f32_to_f16(lm_kv_row(pool, seq, layer, 1, pos0 + i), v + i * d, d);
    }
}

static void attention_rows(float *out, const float *q, const lm_kv_pool *pool,
                           const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                           const lm_attn_params *ap, int64_t r0, int64_t r1, float *scratch,
                           dot_f16_fn dot_f16, axpy_f16_fn axpy_f16);

void lm_cpu_attention_rows(float *out, const float *q, const lm_kv_pool *pool,
                           const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                           const lm_attn_params *ap, int64_t r0, int64_t r1, float *scratch) {
    const lm_cpu_level lv = ops_level();
    if (lv >= LM_CPU_AVX512) {
        lm_cpu_attention_rows_avx512(out, q, pool, seq, layer, pos0, ap, r0, r1, scratch);
        return;
    }
#ifdef LM_HAVE_X86_F16C
    if (lv >= LM_CPU_AVX2) {
        attention_rows(out, q, pool, seq, layer, pos0, ap, r0, r1, scratch, dot_f16_x86,
                       axpy_f16_x86);
        return;
    }
#endif
    attention_rows(out, q, pool, seq, layer, pos0, ap, r0, r1, scratch, dot_f16_ref,
                   axpy_f16_ref);
}

void lm_cpu_attention_rows_ref(float *out, const float *q, const lm_kv_pool *pool,
                               const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                               const lm_attn_params *ap, int64_t r0, int64_t r1,
                               float *scratch) {
    attention_rows(out, q, pool, seq, layer, pos0, ap, r0, r1, scratch, dot_f16_ref,
                   axpy_f16_ref);
}

static void attention_rows(float *out, const float *q, const lm_kv_pool *pool,
                           const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                           const lm_attn_params *ap, int64_t r0, int64_t r1, float *scratch,
                           dot_f16_fn dot_f16, axpy_f16_fn axpy_f16) {
    const int32_t D = ap->head_dim, H = ap->n_head;
    const int32_t group = ap->n_head / ap->n_head_kv;
    float qh[1024]; /* head_dim <= 1024 is checked at bind time */
    for (int64_t r = r0; r < r1; r++) {
        const int64_t i = r / H;
        const int32_t h = (int32_t)(r % H);
        const int64_t p = pos0 + i;
        const int64_t lo = ap->window > 0 && p - ap->window + 1 > 0 ? p - ap->window + 1 : 0;
        const size_t koff = (size_t)(h / group) * (size_t)D;
        const float *qi = q + (i * H + h) * D;
        for (int32_t c = 0; c < D; c++) qh[c] = lm_cpu_f16_table[lm_f32_to_half(qi[c])];

        float mx = -INFINITY;
        for (int64_t j = lo; j <= p; j++) {
            const lm_half *kr = lm_kv_row(pool, seq, layer, 0, j) + koff;
            float s = dot_f16(qh, kr, D) * ap->scale;
            if (ap->softcap > 0.0f) s = ap->softcap * tanhf(s / ap->softcap);
            scratch[j - lo] = s;
            if (s > mx) mx = s;
        }
        double sum = 0.0;
        for (int64_t j = lo; j <= p; j++) {
            const float e = expf(scratch[j - lo] - mx);
            scratch[j - lo] = e;
            sum += e;
        }
        const float inv = (float)(1.0 / sum);
        float *o = out + (i * H + h) * D;
        memset(o, 0, (size_t)D * sizeof *o);
        for (int64_t j = lo; j <= p; j++) {
            const lm_half *vr = lm_kv_row(pool, seq, layer, 1, j) + koff;
            const float w = lm_cpu_f16_table[lm_f32_to_half(scratch[j - lo] * inv)];
            axpy_f16(o, w, vr, D);
        }
    }
}
