/*
 * vec_dot_avx2.c — AVX2/FMA/F16C dot kernels and activation quantizers.
 *
 * Compiled with -mavx2 -mfma -mf16c -mbmi2 (the Makefile's *_avx2.c rule); called only when
 * cpu_features reports at least LM_CPU_AVX2. Same contract and kernel shape as
 * vec_dot_avx512.c (one weight row × nx activation rows, constant-nx instantiations); without
 * VNNI the byte products use vpmaddubsw (u8 × s8 → s16 pairs) then vpmaddwd (→ s32):
 *   - signed weights (Q4_0 / Q5_0 after removing the offset, Q8_0): the sign trick, |w| as the
 *     unsigned operand and x with w's sign (vpsignb); |w| <= 128 and |x| <= 127 keep the
 *     pair sums inside int16;
 *   - K-quants: codes are unsigned (Q6_K's -32 is removed with the activation's bsums).
 * (Q2_K/Q3_K here build each pair of scales with scalar code: fine as a fallback; the AVX-512
 * versions spread them with vpermw.)
 */
#include "backend/cpu/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

static inline float f16(lm_half h) { return _cvtsh_ss(h); }

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

AI float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

/* ---------------------------------------------------------------- activation quantizers */

AI __m256 round_away(__m256 v) {
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 diff = _mm256_sub_ps(v, t);
    __m256 up = _mm256_and_ps(_mm256_cmp_ps(diff, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                              _mm256_set1_ps(1.0f));
    __m256 dn = _mm256_and_ps(_mm256_cmp_ps(diff, _mm256_set1_ps(-0.5f), _CMP_LE_OQ),
                              _mm256_set1_ps(1.0f));
    return _mm256_sub_ps(_mm256_add_ps(t, up), dn);
}

/* 32 int32 in [-128, 127] (four vectors, element order) -> 32 int8. */
AI void pack32(__m256i a, __m256i b, __m256i c, __m256i d, int8_t *out) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i v = _mm256_packs_epi16(ab, cd);
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, v);
}

static lm_half half_sat(float f) {
    if (f > 65504.0f) f = 65504.0f;
    if (f < -65504.0f) f = -65504.0f;
    return lm_f32_to_half(f);
}

AI int q8_block(const float *x, int8_t *qs, float *d_out) {
    __m256 v[4], am = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        am = _mm256_max_ps(abs8(v[k]), am); /* NaN lanes keep am, as fmaxf */
    }
    float amax = hmax8(am);
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    __m256 vid = _mm256_set1_ps(id), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    __m256i q[4], sum = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        __m256 s = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[k], vid), lo), hi);
        q[k] = _mm256_cvttps_epi32(round_away(s));
        sum = _mm256_add_epi32(sum, q[k]);
    }
    pack32(q[0], q[1], q[2], q[3], qs);
    *d_out = d;
    return hsum8i(sum);
}

static void quant_q8_0(const float *x, void *dst, int64_t n) {
    lm_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        float d;
        q8_block(x + 32 * i, b[i].qs, &d);
        b[i].d = half_sat(d);
    }
}

static void quant_q8_1(const float *x, void *dst, int64_t n) {
    lm_block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / 32; i++) {
        float d;
        int sum = q8_block(x + 32 * i, b[i].qs, &d);
        b[i].d = half_sat(d);
        b[i].s = half_sat((float)sum * d);
    }
}

static void quant_q8_K(const float *x, void *dst, int64_t n) {
    lm_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / 256; i++, x += 256) {
        __m256 am = _mm256_setzero_ps();
        for (int k = 0; k < 32; k++) am = _mm256_max_ps(abs8(_mm256_loadu_ps(x + 8 * k)), am);
        float amax = hmax8(am);
        float max = 0.0f;
        if (amax > 0.0f) { /* first element of largest magnitude: its sign matters */
            __m256 va = _mm256_set1_ps(amax);
            for (int k = 0; k < 32; k++) {
                int m = _mm256_movemask_ps(
                    _mm256_cmp_ps(abs8(_mm256_loadu_ps(x + 8 * k)), va, _CMP_EQ_OQ));
                if (m) {
                    max = x[8 * k + __builtin_ctz((unsigned)m)];
                    break;
                }
            }
        }
        if (max == 0.0f || !isfinite(max)) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        __m256 vs = _mm256_set1_ps(iscale), lo = _mm256_set1_ps(-128.0f),
               hi = _mm256_set1_ps(127.0f);
        for (int k = 0; k < 8; k++) {
            __m256i q[4];
            for (int u = 0; u < 4; u++) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * k + 8 * u), vs);
                q[u] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
            }
            pack32(q[0], q[1], q[2], q[3], b[i].qs + 32 * k);
            b[i].bsums[2 * k] = (int16_t)hsum8i(_mm256_add_epi32(q[0], q[1]));
            b[i].bsums[2 * k + 1] = (int16_t)hsum8i(_mm256_add_epi32(q[2], q[3]));
        }
        b[i].d = 1.0f / iscale;
    }
}

/* ---------------------------------------------------------------- float weights */

#define FLOAT_KERNEL(NAME, WT, LOADW, WSCALAR)                                                \
    AI void NAME##_nx(int64_t K, const WT *w, const float *x, size_t xs, float *y, size_t ys,  \
                      const int nx) {                                                         \
        __m256 acc[LM_NX_MAX][2];                                                             \
        const float *xr[LM_NX_MAX];                                                           \
        for (int j = 0; j < nx; j++) {                                                        \
            acc[j][0] = acc[j][1] = _mm256_setzero_ps();                                      \
            xr[j] = (const float *)((const char *)x + j * xs);                                \
        }                                                                                     \
        int64_t i = 0;                                                                        \
        for (; i + 16 <= K; i += 16) {                                                        \
            __m256 w0 = LOADW(w + i), w1 = LOADW(w + i + 8);                                  \
            for (int j = 0; j < nx; j++) {                                                    \
                acc[j][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr[j] + i), acc[j][0]);       \
                acc[j][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr[j] + i + 8), acc[j][1]);   \
            }                                                                                 \
        }                                                                                     \
        for (int j = 0; j < nx; j++) {                                                        \
            float s = hsum8(_mm256_add_ps(acc[j][0], acc[j][1]));                             \
            for (int64_t t = i; t < K; t++) s += WSCALAR(w[t]) * xr[j][t];                    \
            y[j * ys] = s;                                                                    \
        }                                                                                     \
    }

#define LD_F32(p) _mm256_loadu_ps(p)
#define LD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LD_BF16(p)                                                                             \
    _mm256_castsi256_ps(                                                                       \
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define S_F32(v) (v)
#define S_F16(v) f16(v)
#define S_BF16(v) lm_bf16_to_f32(v)

FLOAT_KERNEL(f32, float, LD_F32, S_F32)
FLOAT_KERNEL(f16, lm_half, LD_F16, S_F16)
FLOAT_KERNEL(bf16, lm_bf16, LD_BF16, S_BF16)

VDOT_ENTRY(f32, float, float)
VDOT_ENTRY(f16, lm_half, float)
VDOT_ENTRY(bf16, lm_bf16, float)

/* ---------------------------------------------------------------- 32-element block formats */

AI __m256i nib1(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(t, m)),
                                   _mm_and_si128(_mm_srli_epi16(t, 4), m), 1);
}

/* Byte i = 0x10 if bit i of the little-endian qh[4] is set, else 0. */
AI __m256i hibits(const uint8_t *qh4) {
    uint32_t v;
    memcpy(&v, qh4, 4);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v),
                                    _mm256_setr_epi64x(0, 0x0101010101010101LL,
                                                       0x0202020202020202LL,
                                                       0x0303030303030303LL));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}

/* Σ over 32 bytes of u8 a × s8 b as 8 int32 lanes. */
AI __m256i dot_us(__m256i a, __m256i b) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
}

/* Signed w × signed x via the sign trick. */
AI __m256i dot_ss(__m256i w, __m256i x) {
    return dot_us(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

/* WCODES(b) -> __m256i codes; SIGNED selects dot_ss; MS adds m·s for the _1 formats. */
#define QBLK_KERNEL(NAME, WB, XB, WCODES, DOT, MS)                                            \
    AI void NAME##_nx(int64_t K, const WB *w, const XB *x, size_t xs, float *y, size_t ys,     \
                      const int nx) {                                                          \
        __m256 acc[LM_NX_MAX];                                                                 \
        float accm[LM_NX_MAX];                                                                 \
        const XB *xr[LM_NX_MAX];                                                               \
        for (int j = 0; j < nx; j++) {                                                         \
            acc[j] = _mm256_setzero_ps();                                                      \
            accm[j] = 0.0f;                                                                    \
            xr[j] = (const XB *)((const char *)x + j * xs);                                    \
        }                                                                                      \
        for (int64_t ib = 0; ib < K / 32; ib++) {                                              \
            const WB *b = w + ib;                                                              \
            __m256i q = WCODES(b);                                                             \
            const float dw = f16(b->d);                                                        \
            for (int j = 0; j < nx; j++) {                                                     \
                const XB *a = xr[j] + ib;                                                      \
                __m256i p = DOT(q, _mm256_loadu_si256((const __m256i *)a->qs));                \
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * f16(a->d)), \
                                         acc[j]);                                              \
                accm[j] += MS(b, a);                                                           \
            }                                                                                  \
        }                                                                                      \
        for (int j = 0; j < nx; j++) y[j * ys] = hsum8(acc[j]) + accm[j];                      \
    }

#define C_Q4_0(b) _mm256_sub_epi8(nib1((b)->qs), _mm256_set1_epi8(8))
#define C_Q4_1(b) nib1((b)->qs)
#define C_Q5_0(b)                                                                              \
    _mm256_sub_epi8(_mm256_or_si256(nib1((b)->qs), hibits((b)->qh)), _mm256_set1_epi8(16))
#define C_Q5_1(b) _mm256_or_si256(nib1((b)->qs), hibits((b)->qh))
#define C_Q8_0(b) _mm256_loadu_si256((const __m256i *)(b)->qs)
#define MS_TERM(b, a) (f16((b)->m) * f16((a)->s))
#define NO_MS(b, a) 0.0f

QBLK_KERNEL(q4_0, lm_block_q4_0, lm_block_q8_0, C_Q4_0, dot_ss, NO_MS)
QBLK_KERNEL(q4_1, lm_block_q4_1, lm_block_q8_1, C_Q4_1, dot_us, MS_TERM)
QBLK_KERNEL(q5_0, lm_block_q5_0, lm_block_q8_0, C_Q5_0, dot_ss, NO_MS)
QBLK_KERNEL(q5_1, lm_block_q5_1, lm_block_q8_1, C_Q5_1, dot_us, MS_TERM)
QBLK_KERNEL(q8_0, lm_block_q8_0, lm_block_q8_0, C_Q8_0, dot_ss, NO_MS)

VDOT_ENTRY(q4_0, lm_block_q4_0, lm_block_q8_0)
VDOT_ENTRY(q4_1, lm_block_q4_1, lm_block_q8_1)
VDOT_ENTRY(q5_0, lm_block_q5_0, lm_block_q8_0)
VDOT_ENTRY(q5_1, lm_block_q5_1, lm_block_q8_1)
VDOT_ENTRY(q8_0, lm_block_q8_0, lm_block_q8_0)

/* ---------------------------------------------------------------- K-quants */

AI int32_t hdot16(__m256i a, __m256i b) { return hsum8i(_mm256_madd_epi16(a, b)); }

/* Two int16 scales as a 16-lane vector: lanes 0-7 a, 8-15 b. */
AI __m256i sc2(int a, int b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)a)),
                                   _mm_set1_epi16((short)b), 1);
}

#define QK45_KERNEL(NAME, WB, LOADQH)                                                          \
    AI void NAME##_nx(int64_t K, const WB *w, const lm_block_q8_K *x, size_t xs, float *y,     \
                      size_t ys, const int nx) {                                               \
        __m256 acc[LM_NX_MAX];                                                                 \
        float accm[LM_NX_MAX];                                                                 \
        const lm_block_q8_K *xr[LM_NX_MAX];                                                    \
        for (int j = 0; j < nx; j++) {                                                         \
            acc[j] = _mm256_setzero_ps();                                                      \
            accm[j] = 0.0f;                                                                    \
            xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);                         \
        }                                                                                      \
        const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);                  \
        for (int64_t ib = 0; ib < K / 256; ib++) {                                             \
            const WB *b = w + ib;                                                              \
            uint32_t u0, u1, u2;                                                               \
            memcpy(&u0, b->scales, 4);                                                         \
            memcpy(&u1, b->scales + 4, 4);                                                     \
            memcpy(&u2, b->scales + 8, 4);                                                     \
            /* 6-bit scales/mins decoded in general registers (no store-forwarding stall) */  \
            const uint64_t sc8 = (uint64_t)((u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4) \
                                     << 32 | (u0 & 0x3f3f3f3fu);                               \
            const uint64_t mn8 =                                                               \
                (uint64_t)(((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4) << 32 | \
                (u1 & 0x3f3f3f3fu);                                                            \
            __m128i m8 = _mm_cvtsi64_si128((long long)mn8);                                    \
            const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));              \
            __m256i qh = LOADQH(b);                                                            \
            __m256i q[8];                                                                      \
            for (int c = 0; c < 4; c++) {                                                      \
                __m256i t = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));             \
                q[2 * c] = _mm256_and_si256(t, m4);                                            \
                q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(t, 4), m4);                  \
                (void)one;                                                                     \
                QH_APPLY(q, qh, c, one);                                                       \
            }                                                                                  \
            const float d = f16(b->d), dmin = f16(b->dmin);                                    \
            for (int j = 0; j < nx; j++) {                                                     \
                const lm_block_q8_K *a = xr[j] + ib;                                           \
                __m256i sum = _mm256_setzero_si256();                                          \
                for (int u = 0; u < 8; u++) {                                                  \
                    __m256i p = _mm256_maddubs_epi16(                                          \
                        q[u], _mm256_loadu_si256((const __m256i *)(a->qs + 32 * u)));          \
                    const short scu = (short)((sc8 >> (8 * u)) & 0xff);                        \
                    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_set1_epi16(scu))); \
                }                                                                              \
                acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(d * a->d),   \
                                         acc[j]);                                              \
                int32_t summ = hdot16(mn16, _mm256_loadu_si256((const __m256i *)a->bsums));    \
                accm[j] += dmin * a->d * (float)summ;                                          \
            }                                                                                  \
        }                                                                                      \
        for (int j = 0; j < nx; j++) y[j * ys] = hsum8(acc[j]) - accm[j];                      \
    }

#define QH_LOAD(b) _mm256_loadu_si256((const __m256i *)(b)->qh)
#define QH_NONE(b) _mm256_setzero_si256()
#define QH_APPLY(q, qh, c, one)                                                                \
    do {                                                                                       \
        q[2 * c] = _mm256_or_si256(                                                            \
            q[2 * c], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4)); \
        q[2 * c + 1] = _mm256_or_si256(                                                        \
            q[2 * c + 1],                                                                      \
            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));    \
    } while (0)
QK45_KERNEL(q4_K, lm_block_q4_K, QH_NONE) /* qh = 0: the OR adds nothing */
QK45_KERNEL(q5_K, lm_block_q5_K, QH_LOAD)
VDOT_ENTRY(q4_K, lm_block_q4_K, lm_block_q8_K)
VDOT_ENTRY(q5_K, lm_block_q5_K, lm_block_q8_K)

AI void q6_K_nx(int64_t K, const lm_block_q6_K *w, const lm_block_q8_K *x, size_t xs, float *y,
                size_t ys, const int nx) {
    __m256 acc[LM_NX_MAX];
    const lm_block_q8_K *xr[LM_NX_MAX];
    for (int j = 0; j < nx; j++) {
        acc[j] = _mm256_setzero_ps();
        xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int64_t ib = 0; ib < K / 256; ib++) {
        const lm_block_q6_K *b = w + ib;
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        __m256i q[8], scv[8];
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                           _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4));
            q[4 * h + 1] = _mm256_or_si256(
                _mm256_and_si256(l1, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4));
            q[4 * h + 2] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4));
            q[4 * h + 3] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4));
            for (int t = 0; t < 4; t++)
                scv[4 * h + t] = sc2(b->scales[8 * h + 2 * t], b->scales[8 * h + 2 * t + 1]);
        }
        const float d = f16(b->d);
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_K *a = xr[j] + ib;
            __m256i sum = _mm256_setzero_si256();
            for (int u = 0; u < 8; u++) {
                __m256i p = _mm256_maddubs_epi16(
                    q[u], _mm256_loadu_si256((const __m256i *)(a->qs + 32 * u)));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, scv[u]));
            }
            int32_t corr = 32 * hdot16(sc16, _mm256_loadu_si256((const __m256i *)a->bsums));
            sum = _mm256_sub_epi32(sum, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(d * a->d), acc[j]);
        }
    }
    for (int j = 0; j < nx; j++) y[j * ys] = hsum8(acc[j]);
}
VDOT_ENTRY(q6_K, lm_block_q6_K, lm_block_q8_K)

/* Q2_K x Q8_K: codes 0..3, value d·sc·q − dmin·m (sc, m 4-bit per 16 elements). */
AI void q2_K_nx(int64_t K, const lm_block_q2_K *w, const lm_block_q8_K *x, size_t xs, float *y,
                size_t ys, const int nx) {
    __m256 acc[LM_NX_MAX], accm[LM_NX_MAX];
    const lm_block_q8_K *xr[LM_NX_MAX];
    for (int j = 0; j < nx; j++) {
        acc[j] = accm[j] = _mm256_setzero_ps();
        xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);
    }
    const __m256i m2 = _mm256_set1_epi8(3);
    for (int64_t ib = 0; ib < K / 256; ib++) {
        const lm_block_q2_K *b = w + ib;
        const __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
        const __m256i mn16 =
            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0f)));
        __m256i q[8], scv[8];
        for (int h = 0; h < 2; h++) {
            __m256i t = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
            for (int s = 0; s < 4; s++) {
                q[4 * h + s] = _mm256_and_si256(_mm256_srli_epi16(t, 2 * s), m2);
                scv[4 * h + s] =
                    sc2(b->scales[8 * h + 2 * s] & 15, b->scales[8 * h + 2 * s + 1] & 15);
            }
        }
        const float d = f16(b->d), dmin = f16(b->dmin);
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_K *a = xr[j] + ib;
            __m256i sum = _mm256_setzero_si256();
            for (int u = 0; u < 8; u++) {
                __m256i p = _mm256_maddubs_epi16(
                    q[u], _mm256_loadu_si256((const __m256i *)(a->qs + 32 * u)));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, scv[u]));
            }
            __m256i mm = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)a->bsums));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(d * a->d), acc[j]);
            accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(dmin * a->d), accm[j]);
        }
    }
    for (int j = 0; j < nx; j++) y[j * ys] = hsum8(_mm256_sub_ps(acc[j], accm[j]));
}
VDOT_ENTRY(q2_K, lm_block_q2_K, lm_block_q8_K)

/* Q3_K x Q8_K: unsigned code u = low 2 bits + 4·hmask bit (0..7), value d·(sc−32)·(u − 4);
 * the −4 is removed as 4 Σ_16 sc·bsum. */
AI void q3_K_nx(int64_t K, const lm_block_q3_K *w, const lm_block_q8_K *x, size_t xs, float *y,
                size_t ys, const int nx) {
    __m256 acc[LM_NX_MAX];
    const lm_block_q8_K *xr[LM_NX_MAX];
    for (int j = 0; j < nx; j++) {
        acc[j] = _mm256_setzero_ps();
        xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);
    }
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int64_t ib = 0; ib < K / 256; ib++) {
        const lm_block_q3_K *b = w + ib;
        int sc[16];
        for (int i = 0; i < 16; i++) {
            int lo = i < 8 ? (b->scales[i] & 15) : (b->scales[i - 8] >> 4);
            int hi = (b->scales[8 + i % 4] >> (2 * (i / 4))) & 3;
            sc[i] = (lo | hi << 4) - 32;
        }
        const __m256i sc16 = _mm256_setr_epi16(
            (short)sc[0], (short)sc[1], (short)sc[2], (short)sc[3], (short)sc[4], (short)sc[5],
            (short)sc[6], (short)sc[7], (short)sc[8], (short)sc[9], (short)sc[10], (short)sc[11],
            (short)sc[12], (short)sc[13], (short)sc[14], (short)sc[15]);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
        __m256i q[8], scv[8];
        for (int h = 0; h < 2; h++) {
            __m256i t = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
            for (int s = 0; s < 4; s++) {
                __m256i lo = _mm256_and_si256(_mm256_srli_epi16(t, 2 * s), m2);
                __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + s), one);
                q[4 * h + s] = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                scv[4 * h + s] = sc2(sc[8 * h + 2 * s], sc[8 * h + 2 * s + 1]);
            }
        }
        const float d = f16(b->d);
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_K *a = xr[j] + ib;
            __m256i sum = _mm256_setzero_si256();
            for (int u = 0; u < 8; u++) {
                __m256i p = _mm256_maddubs_epi16(
                    q[u], _mm256_loadu_si256((const __m256i *)(a->qs + 32 * u)));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, scv[u]));
            }
            __m256i corr = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)a->bsums));
            sum = _mm256_sub_epi32(sum, _mm256_slli_epi32(corr, 2));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(d * a->d), acc[j]);
        }
    }
    for (int j = 0; j < nx; j++) y[j * ys] = hsum8(acc[j]);
}
VDOT_ENTRY(q3_K, lm_block_q3_K, lm_block_q8_K)

void lm_cpu_kernels_fill_avx2(lm_cpu_kernels *k) {
    k->quant_q8_0 = quant_q8_0;
    k->quant_q8_1 = quant_q8_1;
    k->quant_q8_K = quant_q8_K;
#define SET(T, F)                                                                              \
    do {                                                                                       \
        k->vdot[T] = F;                                                                        \
        k->level_of[T] = LM_CPU_AVX2;                                                          \
    } while (0)
    SET(LM_DTYPE_F32, vdot_f32);
    SET(LM_DTYPE_F16, vdot_f16);
    SET(LM_DTYPE_BF16, vdot_bf16);
    SET(LM_DTYPE_Q4_0, vdot_q4_0);
    SET(LM_DTYPE_Q4_1, vdot_q4_1);
    SET(LM_DTYPE_Q5_0, vdot_q5_0);
    SET(LM_DTYPE_Q5_1, vdot_q5_1);
    SET(LM_DTYPE_Q8_0, vdot_q8_0);
    SET(LM_DTYPE_Q2_K, vdot_q2_K);
    SET(LM_DTYPE_Q3_K, vdot_q3_K);
    SET(LM_DTYPE_Q4_K, vdot_q4_K);
    SET(LM_DTYPE_Q5_K, vdot_q5_K);
    SET(LM_DTYPE_Q6_K, vdot_q6_K);
#undef SET
}
