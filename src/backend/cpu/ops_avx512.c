/*
 * ops_avx512.c — AVX-512 (F/BW/VL/DQ) versions of the CPU backend's non-matmul ops.
 *
 * Compiled with -mavx512* (the Makefile's *_avx512.c rule); called by ops.c only when the
 * active level (cpu_features.h) is LM_CPU_AVX512 and LM_NO_SIMD is unset. Each function computes
 * what its scalar reference in ops.c defines; tests/test_ops.c compares them on random data:
 *   - f32 -> f16 rows (KV writes, attention's q rounding, GELU's table index): F16C
 *     round-to-nearest-even, bit-identical to lm_f32_to_half (NaN payloads included);
 *   - GELU: the same f16 table, gathered: bit-identical;
 *   - RMS norm: sum of squares in double (8 lanes, another order), then the same float
 *     scaling: equal up to the double sum's rounding;
 *   - SiLU and the softmax's exp: a polynomial exp (range reduction by ln 2 in two parts,
 *     degree-6 minimax-style polynomial, 2^n by vscalefps) within ~2 ulp of expf;
 *   - attention: the reference's rounding steps (q to f16, probabilities to f16), float dot
 *     products and V sums in another order, the softmax sum in float.
 * The decode step keeps whole 64-column slices of the output in registers across keys, and
 * walks the KV pages run by run (rows of one page are kv_dim halves apart), so there is no
 * per-key page lookup.
 */
#include "backend/cpu/ops.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define RNE (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* exp(x) for 16 lanes. x <= -104 gives 0 (vscalefps underflows), x >= 88.73 gives +inf, NaN
 * stays NaN. */
static inline __m512 exp16(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), RNE);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    /* e^r on |r| <= ln2/2: Cephes expf coefficients */
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

void lm_cpu_f32_to_f16_avx512(lm_half *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), RNE));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), RNE);
        _mm256_mask_storeu_epi16(dst + i, m, h);
    }
}

void lm_cpu_rmsnorm_avx512(float *y, const float *x, const float *w, int64_t n, int64_t dim,
                           float eps) {
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * dim;
        float *yi = y + i * dim;
        __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
        for (int64_t j = 0; j < dim; j += 16) {
            const __m512 v = _mm512_maskz_loadu_ps(tail_mask(dim - j), xi + j);
            const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(
                _mm512_castps_pd(v), 1)));
            a0 = _mm512_fmadd_pd(lo, lo, a0);
            a1 = _mm512_fmadd_pd(hi, hi, a1);
        }
        const double ss = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
        const __m512 s = _mm512_set1_ps(1.0f / sqrtf((float)(ss / (double)dim) + eps));
        for (int64_t j = 0; j < dim; j += 16) {
            const __mmask16 m = tail_mask(dim - j);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xi + j), s);
            if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + j));
            _mm512_mask_storeu_ps(yi + j, m, v);
        }
    }
}

void lm_cpu_glu_avx512(float *gate, const float *up, int64_t n, lm_act act,
                       const float *gelu_table) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
        __m512 a;
        if (act == LM_ACT_SILU) {
            /* g / (1 + e^-g), as the reference: a true division */
            a = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        } else {
            const __m512i idx = _mm512_cvtepu16_epi32(_mm512_cvtps_ph(g, RNE));
            a = _mm512_i32gather_ps(idx, gelu_table, 4);
            const __mmask16 lo = _mm512_cmp_ps_mask(g, _mm512_set1_ps(-10.0f), _CMP_LE_OQ);
            const __mmask16 hi = _mm512_cmp_ps_mask(g, _mm512_set1_ps(10.0f), _CMP_GE_OQ);
            a = _mm512_mask_mov_ps(a, lo, _mm512_setzero_ps());
            a = _mm512_mask_mov_ps(a, hi, g);
        }
        _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(a, u));
    }
}

/* Σ q·k over D columns of one f16 row: q already f16-rounded, as floats. */
static inline float dot_row(const float *q, const lm_half *k, int32_t D) {
    __m512 acc = _mm512_setzero_ps();
    int32_t c = 0;
    for (; c + 16 <= D; c += 16) {
        const __m512 kv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + c)));
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), kv, acc);
    }
    if (c < D) {
        const __mmask16 m = tail_mask(D - c);
        const __m512 kv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, k + c));
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + c), kv, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

void lm_cpu_attention_rows_avx512(float *out, const float *q, const lm_kv_pool *pool,
                                  const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                                  const lm_attn_params *ap, int64_t r0, int64_t r1,
                                  float *scratch) {
    const int32_t D = ap->head_dim, H = ap->n_head;
    const int32_t group = ap->n_head / ap->n_head_kv;
    const int64_t pt = pool->cfg.page_tokens;
    const size_t stride = (size_t)pool->cfg.kv_dim; /* halves between rows of a page */
    float qh[1024] __attribute__((aligned(64))); /* head_dim <= 1024 is checked at bind time */
    lm_half qt[1024];
    for (int64_t r = r0; r < r1; r++) {
        const int64_t i = r / H;
        const int32_t h = (int32_t)(r % H);
        const int64_t p = pos0 + i;
        const int64_t lo = ap->window > 0 && p - ap->window + 1 > 0 ? p - ap->window + 1 : 0;
        const int64_t len = p - lo + 1;
        const size_t koff = (size_t)(h / group) * (size_t)D;
        const float *qi = q + (i * H + h) * D;
        lm_cpu_f32_to_f16_avx512(qt, qi, D);
        for (int32_t c = 0; c < D; c += 16) {
            const __mmask16 m = tail_mask(D - c);
            _mm512_mask_storeu_ps(qh + c, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, qt + c)));
        }

        /* scores, page run by page run */
        for (int64_t j = lo; j <= p;) {
            const lm_half *kr = lm_kv_row(pool, seq, layer, 0, j) + koff;
            int64_t run = pt - j % pt;
            if (run > p + 1 - j) run = p + 1 - j;
            for (int64_t t = 0; t < run; t++)
                scratch[j - lo + t] = dot_row(qh, kr + (size_t)t * stride, D) * ap->scale;
            j += run;
        }
        if (ap->softcap > 0.0f)
            for (int64_t j = 0; j < len; j++)
                scratch[j] = ap->softcap * tanhf(scratch[j] / ap->softcap);

        /* softmax; probabilities rounded to f16 as the reference does */
        __m512 mxv = _mm512_set1_ps(-INFINITY);
        for (int64_t j = 0; j < len; j += 16) {
            const __mmask16 m = tail_mask(len - j);
            mxv = _mm512_mask_max_ps(mxv, m, mxv, _mm512_maskz_loadu_ps(m, scratch + j));
        }
        const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mxv));
        __m512 sv = _mm512_setzero_ps();
        for (int64_t j = 0; j < len; j += 16) {
            const __mmask16 m = tail_mask(len - j);
            const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scratch + j), mx));
            _mm512_mask_storeu_ps(scratch + j, m, e);
            sv = _mm512_add_ps(sv, _mm512_maskz_mov_ps(m, e));
        }
        const __m512 inv = _mm512_set1_ps((float)(1.0 / (double)_mm512_reduce_add_ps(sv)));
        for (int64_t j = 0; j < len; j += 16) {
            const __mmask16 m = tail_mask(len - j);
            const __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, scratch + j), inv);
            _mm512_mask_storeu_ps(scratch + j, m, _mm512_cvtph_ps(_mm512_cvtps_ph(w, RNE)));
        }

        /* out = Σ_j w_j v_j, 64 columns at a time held in registers across the keys */
        float *o = out + (i * H + h) * D;
        for (int32_t c = 0; c < D; c += 64) {
            const __mmask16 m0 = tail_mask(D - c), m1 = tail_mask(D - c - 16 > 0 ? D - c - 16 : 0),
                            m2 = tail_mask(D - c - 32 > 0 ? D - c - 32 : 0),
                            m3 = tail_mask(D - c - 48 > 0 ? D - c - 48 : 0);
            __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
            for (int64_t j = lo; j <= p;) {
                const lm_half *vr = lm_kv_row(pool, seq, layer, 1, j) + koff + c;
                int64_t run = pt - j % pt;
                if (run > p + 1 - j) run = p + 1 - j;
                const float *wj = scratch + (j - lo);
                for (int64_t t = 0; t < run; t++) {
                    const lm_half *v = vr + (size_t)t * stride;
                    const __m512 w = _mm512_set1_ps(wj[t]);
                    o0 = _mm512_fmadd_ps(w, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, v)), o0);
                    if (m1)
                        o1 = _mm512_fmadd_ps(
                            w, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, v + 16)), o1);
                    if (m2)
                        o2 = _mm512_fmadd_ps(
                            w, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m2, v + 32)), o2);
                    if (m3)
                        o3 = _mm512_fmadd_ps(
                            w, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m3, v + 48)), o3);
                }
                j += run;
            }
            _mm512_mask_storeu_ps(o + c, m0, o0);
            if (m1) _mm512_mask_storeu_ps(o + c + 16, m1, o1);
            if (m2) _mm512_mask_storeu_ps(o + c + 32, m2, o2);
            if (m3) _mm512_mask_storeu_ps(o + c + 48, m3, o3);
        }
    }
}
