/*
 * vec_dot_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) dot kernels and activation quantizers.
 *
 * Compiled with -mavx512* (the Makefile's *_avx512.c rule); called only when cpu_features
 * reports LM_CPU_AVX512. Every function here computes what vec_dot_ref.c / lm_quantize_row
 * define (quantizers bit-identically; dots with integer block sums exact and the float
 * accumulation in a different order).
 *
 * Kernel shapes: vdot = one weight row against nx <= LM_NX_MAX activation rows (decode and the
 * K-quants' prefill); gemm = LM_NW_MAX weight rows x nx activation rows (prefill of the
 * 32-element formats). Each weight block is unpacked once and used by every activation row;
 * the bodies are always_inline functions instantiated with constant nx (and nw), so their
 * accumulators live in registers.
 *
 * Tricks (measurements in bench/RESULTS.md, reasons in docs/kernels.md):
 *   - u8 x s8 products: VNNI vpdpbusd (4 products summed per int32 lane). Unsigned codes
 *     (Q4_x, Q5_x) go in the u8 operand. Offsets (-8 of Q4_0, -16 of Q5_0) are off * Σq_x:
 *     from sums the driver appends to the activation rows (vdot), or from one vpdpbusd per
 *     activation row shared by the tile's weight rows (gemm). Signed Q8_0 weights use |w| and
 *     x with w's sign applied (vdot) or enter as w ^ 0x80 with offset 128 (gemm).
 *   - Two 32-element blocks fill one 512-bit vector; their scale products d_w d_x form one
 *     float vector (lanes 0-7 block 0, 8-15 block 1). The four fp16 scales of a pair are
 *     converted by two vcvtph2ps (pair_h / pair_dm) and spread with one vpermps; Q4_1/Q5_1's
 *     m·s products ride in the spare lanes of the same xmm product.
 *   - K-quants: vpmaddubsw (u8 q x s8 x -> s16 pairs, no saturation for these ranges) then
 *     vpdpwssd with the sub-block scales spread to their lanes (vpermw), two independent
 *     accumulators per super-block; one int->float conversion per super-block and row.
 *   - Zen 4 executes 512-bit instructions as two 256-bit halves: vector uops per weight byte,
 *     not loads, bound the 32-element formats; scalar fp16 conversions per block were the
 *     largest avoidable cost. Of the vector uops, the shuffle-unit ones (inserts, permutes,
 *     vpinsrw: two pipes of four) are the scarce ones: the decode kernels build codes with
 *     broadcast loads, unpack nibbles with GFNI vgf2p8affineqb when present (run-time check,
 *     else a masked shift + AND), add Q5's 5th bit with one masked vpaddb, and Q4_0/Q5_0 handle
 *     the scales of 8 blocks at once (d_x merged in general registers).
 */
#include "backend/cpu/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

static inline float f16(lm_half h) { return _cvtsh_ss(h); }

/* ---------------------------------------------------------------- activation quantizers */

/* roundf (ties away from zero) of v, exactly: t = trunc(v); |v - t| >= 0.5 moves away. */
AI __m512 round_away(__m512 v) {
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 diff = _mm512_sub_ps(v, t);
    __mmask16 up = _mm512_cmp_ps_mask(diff, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __mmask16 dn = _mm512_cmp_ps_mask(diff, _mm512_set1_ps(-0.5f), _CMP_LE_OQ);
    t = _mm512_mask_add_ps(t, up, t, _mm512_set1_ps(1.0f));
    return _mm512_mask_sub_ps(t, dn, t, _mm512_set1_ps(1.0f));
}

static lm_half half_sat(float f) {
    if (f > 65504.0f) f = 65504.0f;
    return lm_f32_to_half(f);
}

/* One Q8_0/Q8_1 block: writes 32 codes, returns Σq, stores d (unrounded). */
AI int q8_block(const float *x, int8_t *qs, float *d_out) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    /* max_ps(a, b) returns b when a is NaN: NaN inputs are skipped as fmaxf does */
    __m512 am = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps());
    am = _mm512_max_ps(_mm512_abs_ps(v1), am);
    float amax = _mm512_reduce_max_ps(am);
    float d = amax / 127.0f;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    __m512 vid = _mm512_set1_ps(id);
    __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    /* max_ps(v, lo) maps NaN to lo, like the reference clampf */
    __m512 s0 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v0, vid), lo), hi);
    __m512 s1 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v1, vid), lo), hi);
    __m512i i0 = _mm512_cvttps_epi32(round_away(s0));
    __m512i i1 = _mm512_cvttps_epi32(round_away(s1));
    _mm_storeu_si128((__m128i *)qs, _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128((__m128i *)(qs + 16), _mm512_cvtepi32_epi8(i1));
    *d_out = d;
    return _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
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
        float s = (float)sum * d;
        if (s < -65504.0f) s = -65504.0f;
        b[i].s = half_sat(s);
    }
}

static void quant_q8_K(const float *x, void *dst, int64_t n) {
    lm_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / 256; i++, x += 256) {
        __m512 am = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++)
            am = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), am);
        float amax = _mm512_reduce_max_ps(am);
        /* the reference keeps the first element of largest magnitude (its sign matters) */
        float max = 0.0f;
        if (amax > 0.0f) {
            __m512 va = _mm512_set1_ps(amax);
            for (int k = 0; k < 16; k++) {
                __m512 v = _mm512_loadu_ps(x + 16 * k);
                __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(v), va, _CMP_EQ_OQ);
                if (m) {
                    max = x[16 * k + __builtin_ctz(m)];
                    break;
                }
            }
        }
        if (max == 0.0f || !isfinite(max)) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        __m512 vs = _mm512_set1_ps(iscale);
        __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
        for (int k = 0; k < 16; k++) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), vs);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            __m512i q = _mm512_cvtps_epi32(v); /* MXCSR default: nearest even, as rintf */
            _mm_storeu_si128((__m128i *)(b[i].qs + 16 * k), _mm512_cvtepi32_epi8(q));
            b[i].bsums[k] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        b[i].d = 1.0f / iscale;
    }
}

/* ---------------------------------------------------------------- float weights */

/* y_j = Σ w[i] x_j[i], w converted by LOADW (16 lanes at a time; masked tail). */
#define FLOAT_KERNEL(NAME, WT, LOADW, LOADW_MASK)                                             \
    AI void NAME##_nx(int64_t K, const WT *w, const float *x, size_t xs, float *y, size_t ys,  \
                      const int nx) {                                                         \
        __m512 acc[LM_NX_MAX][2];                                                             \
        for (int j = 0; j < nx; j++) acc[j][0] = acc[j][1] = _mm512_setzero_ps();            \
        const float *xr[LM_NX_MAX];                                                           \
        for (int j = 0; j < nx; j++) xr[j] = (const float *)((const char *)x + j * xs);       \
        int64_t i = 0;                                                                        \
        for (; i + 32 <= K; i += 32) {                                                        \
            __m512 w0 = LOADW(w + i), w1 = LOADW(w + i + 16);                                 \
            for (int j = 0; j < nx; j++) {                                                    \
                acc[j][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr[j] + i), acc[j][0]);       \
                acc[j][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr[j] + i + 16), acc[j][1]);  \
            }                                                                                 \
        }                                                                                     \
        for (; i < K; i += 16) {                                                              \
            __mmask16 m = K - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - i)) - 1); \
            __m512 w0 = LOADW_MASK(m, w + i);                                                 \
            for (int j = 0; j < nx; j++)                                                      \
                acc[j][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, xr[j] + i), acc[j][0]); \
        }                                                                                     \
        for (int j = 0; j < nx; j++)                                                          \
            y[j * ys] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]));            \
    }

#define LD_F32(p) _mm512_loadu_ps(p)
#define LDM_F32(m, p) _mm512_maskz_loadu_ps(m, p)
#define LD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define LDM_F16(m, p) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p))
#define LD_BF16(p)                                                                             \
    _mm512_castsi512_ps(                                                                       \
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define LDM_BF16(m, p)                                                                         \
    _mm512_castsi512_ps(                                                                       \
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16))

FLOAT_KERNEL(f32, float, LD_F32, LDM_F32)
FLOAT_KERNEL(f16, lm_half, LD_F16, LDM_F16)
FLOAT_KERNEL(bf16, lm_bf16, LD_BF16, LDM_BF16)

VDOT_ENTRY(f32, float, float)
VDOT_ENTRY(f16, lm_half, float)
VDOT_ENTRY(bf16, lm_bf16, float)

/* ---------------------------------------------------------------- 32-element block formats */

/* Nibbles of two blocks' qs[16] as 64 bytes in element order:
 * [b0 low (elements 0-15), b0 high (16-31), b1 low, b1 high]. */
AI __m512i nib2(const uint8_t *qs0, const uint8_t *qs1) {
    __m256i t = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs0)),
        _mm_loadu_si128((const __m128i *)qs1), 1);
    __m256i m = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(t, m);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m);
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); /* lo0 lo1 hi0 hi1 */
    return _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
}

/* Nibbles of one block's qs[16] as 32 bytes in element order. */
AI __m256i nib1(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(t, m)),
                                   _mm_and_si128(_mm_srli_epi16(t, 4), m), 1);
}

AI __m512i load2x32(const int8_t *a, const int8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* Two fp16 values (at p0, p1) as floats [f0, f1, 0, 0]: one vcvtph2ps for both. */
AI __m128 pair_h(const void *p0, const void *p1) {
    /* merged in a general register then one vmovd: measured 5-10% faster than vpinsrw from
     * memory (a load plus a shuffle uop each on Zen 4) */
    uint16_t a, b;
    memcpy(&a, p0, 2);
    memcpy(&b, p1, 2);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)a | (uint32_t)b << 16)));
}
/* Two adjacent fp16 pairs (d, m) or (d, s) at p0 and p1 as floats [d0, m0, d1, m1]. */
AI __m128 pair_dm(const void *p0, const void *p1) {
    uint32_t a, b;
    memcpy(&a, p0, 4);
    memcpy(&b, p1, 4);
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)((uint64_t)a | (uint64_t)b << 32)));
}
/* [v[i] x8, v[k] x8] */
#define SPREAD(v, i, k)                                                                         \
    _mm512_permutexvar_ps(_mm512_set_epi32(k, k, k, k, k, k, k, k, i, i, i, i, i, i, i, i),     \
                          _mm512_castps128_ps512(v))

AI uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Nibbles of two blocks like nib2, cheaper on Zen 4 (two shuffle pipes of four): two 128-bit
 * broadcast loads (no shuffle uop) and one vinserti64x4 give [qs0 qs0 qs1 qs1]; the high
 * nibbles are shifted down in lanes 1 and 3 (masked vpsrlw). Same byte order as nib2.
 * (Merge-masked broadcast loads, tried first, were slower.) */
AI __m512i nib2b(const uint8_t *qs0, const uint8_t *qs1) {
    __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs0));
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs1));
    __m512i t = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1); /* qs0 qs0 qs1 qs1 */
    t = _mm512_mask_srli_epi16(t, (__mmask32)0xFF00FF00u, t, 4);
    return _mm512_and_si512(t, _mm512_set1_epi8(0x0f));
}
/* The same with GFNI (Zen 4, Ice Lake and later; checked at run time): one vgf2p8affineqb
 * takes each byte's low nibble in 128-bit lanes 0 and 2 and its high nibble in lanes 1 and 3
 * (a per-qword 8x8 bit matrix: row 7 - i selects the input bit of output bit i), replacing the
 * masked shift and the AND. */
/* GFNI code is compiled for GFNI only inside these brackets (the rest of the file must run on
 * AVX-512 CPUs without it); gcc and clang spell that differently. */
#if defined(__clang__)
#define LM_GFNI_BEGIN                                                                          \
    _Pragma("clang attribute push (__attribute__((target(\"gfni\"))), apply_to = function)")
#define LM_GFNI_END _Pragma("clang attribute pop")
#else
#define LM_GFNI_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"gfni\")")
#define LM_GFNI_END _Pragma("GCC pop_options")
#endif

LM_GFNI_BEGIN
AI __m512i nib2g(const uint8_t *qs0, const uint8_t *qs1) {
    __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs0));
    __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs1));
    __m512i t = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    const long long lo = 0x0102040800000000LL, hi = 0x1020408000000000LL;
    return _mm512_gf2p8affine_epi64_epi8(t, _mm512_set_epi64(hi, hi, lo, lo, hi, hi, lo, lo), 0);
}
LM_GFNI_END

/* 8 fp16 values at p + s i (i < 8) as an xmm, merged in two general registers (two vmovq, one
 * vpunpcklqdq). For the activation scales this beat vpinsrw (7 shuffle uops), two vpermt2w
 * windows (h8: ~25% slower kernel) and vpgatherdd. */
AI __m128i ins8(const uint8_t *p, const int s) {
    uint64_t a = 0, b = 0;
    for (int i = 0; i < 4; i++) {
        uint16_t h0, h1;
        memcpy(&h0, p + s * i, 2);
        memcpy(&h1, p + s * (i + 4), 2);
        a |= (uint64_t)h0 << (16 * i);
        b |= (uint64_t)h1 << (16 * i);
    }
    return _mm_unpacklo_epi64(_mm_cvtsi64_si128((long long)a), _mm_cvtsi64_si128((long long)b));
}
AI __m256i h8i(const uint8_t *p, const int s, const int nm) {
    __m128i d = ins8(p, s);
    if (nm == 1) return _mm256_castsi128_si256(d);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(d), ins8(p + 2, s), 1);
}

/* fp16 scales of a group of 8 blocks of s bytes at p: word i (i < 8) is the half at byte s i
 * (d), word 8 + i the half at s i + 2 (m of the _1 weights, s of Q8_1) when nm == 2. Two 64-word
 * windows and one vpermt2w each (one when the group's d's fit in the first 128 bytes); every
 * load stays inside [p, p + 8 s) (s >= 16). */
#define WIDX(i, o, base) ((s * (i) + (o) - (base)) / 2)
AI __m256i h8(const uint8_t *p, const int s, const int nm) {
    const int one = 7 * s + 2 * nm <= 128;
    const int o2 = s >= 32 ? 4 * s : 8 * s - 128;
    const int m = nm == 2 ? 2 : 0;
    const __m512i idx1 = _mm512_set_epi16(
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        WIDX(7, m, 0) & 63, WIDX(6, m, 0) & 63, WIDX(5, m, 0) & 63, WIDX(4, m, 0) & 63,
        WIDX(3, m, 0), WIDX(2, m, 0), WIDX(1, m, 0), WIDX(0, m, 0),
        WIDX(7, 0, 0) & 63, WIDX(6, 0, 0) & 63, WIDX(5, 0, 0) & 63, WIDX(4, 0, 0) & 63,
        WIDX(3, 0, 0), WIDX(2, 0, 0), WIDX(1, 0, 0), WIDX(0, 0, 0));
    __m512i t = _mm512_permutex2var_epi16(_mm512_loadu_si512(p), idx1,
                                          _mm512_loadu_si512(p + 64));
    if (!one) {
        const __m512i idx2 = _mm512_set_epi16(
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            WIDX(7, m, o2), WIDX(6, m, o2), WIDX(5, m, o2), WIDX(4, m, o2), 0, 0, 0, 0,
            WIDX(7, 0, o2), WIDX(6, 0, o2), WIDX(5, 0, o2), WIDX(4, 0, o2), 0, 0, 0, 0);
        __m512i t2 = _mm512_permutex2var_epi16(_mm512_loadu_si512(p + o2), idx2,
                                               _mm512_loadu_si512(p + o2 + 64));
        t = _mm512_mask_blend_epi16(0xF0F0, t, t2);
    }
    return _mm512_castsi512_si256(t);
}
#undef WIDX

/* Q4_0 / Q5_0 x Q8_0: unsigned codes u (0..15 / 0..31), result d_w d_x (Σ u x - off Σ x).
 * Q4_1 / Q5_1 x Q8_1: d_w d_x Σ u x + m_w s_x.
 * Two blocks per 512-bit step; their scale products d_w d_x form one vector (lanes 0-7 and
 * 8-15). (Gathering both d's with one masked load + vpermw was tried: more 512-bit uops, which
 * Zen 4 executes as two halves, and 15% slower.)
 * GROUP (Q4_0, Q5_0; needs SUMS) first runs groups of 8 blocks: the 8 d_w (h8) and 8 d_x
 * (h8i) are converted by one vcvtph2ps each and multiplied once, the offset term is one ymm
 * FMA with the 8 appended Σq, and each block pair takes its two products with one vpermps
 * (a store + broadcast reload instead was slower; so was packing two pairs' sums to int16 and
 * pair-summing them with vpmaddwd). For the _1 formats the same grouping was slower (two
 * windows and 16 halves per side): they keep the pair loop.
 * CODES2 unpacks a block pair's nibbles (nib2b, or nib2g with GFNI).
 * H2/H1 add the 5th bit (Q5_x), OFF is the code offset, MS the tail's m·s term. */
/* two unaligned floats [p[0], p[1], 0, 0] (movq); lane 0 + lane 1 */
#define LOAD2F(p) _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(p)))
#define LANES01(v) (_mm_cvtss_f32(v) + _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)))
/* group scales: weights by vpermt2w windows (h8; one window for Q4_0, two for Q5_0: measured
 * faster than h8i there), activations in general registers (h8i) */
#define HW h8
#define HX h8i
#define QBLK_KERNEL(NAME, WB, XB, H2, H1, OFF, MS, PAIRF, DI1, MSL, SUMS, GROUP, CODES2)      \
    AI void NAME##_nx(int64_t K, const WB *w, const XB *x, size_t xs, float *y, size_t ys,     \
                      const int nx) {                                                          \
        const int64_t nb = K / 32;                                                             \
        __m512 acc[LM_NX_MAX];                                                                 \
        __m128 accm[LM_NX_MAX]; /* lanes 1 and 3: Σ m s of the _1 formats */                   \
        __m128 accs[LM_NX_MAX]; /* lanes 0 and 1: Σ d_w d_x Σq_x (SUMS) */                     \
        const XB *xr[LM_NX_MAX];                                                               \
        const uint8_t *xsum[LM_NX_MAX];                                                        \
        for (int j = 0; j < nx; j++) {                                                         \
            acc[j] = _mm512_setzero_ps();                                                      \
            accm[j] = accs[j] = _mm_setzero_ps();                                              \
            xr[j] = (const XB *)((const char *)x + j * xs);                                    \
            xsum[j] = (const uint8_t *)(xr[j] + nb);                                           \
        }                                                                                      \
        const __m512i voff = _mm512_set1_epi8(OFF);                                            \
        int64_t ib = 0;                                                                        \
        __m512 acc2[LM_NX_MAX];                                                                \
        __m256 acco[LM_NX_MAX]; /* the groups' Σ d_w d_x Σq_x */                               \
        for (int j = 0; j < nx; j++) {                                                         \
            acc2[j] = _mm512_setzero_ps();                                                     \
            acco[j] = _mm256_setzero_ps();                                                     \
        }                                                                                      \
        for (; GROUP && SUMS && ib + 8 <= nb; ib += 8) {                                       \
            const WB *wg = w + ib;                                                             \
            const __m128i hw =                                                                 \
                _mm256_castsi256_si128(HW((const uint8_t *)wg, (int)sizeof(WB), 1));           \
            __m512 pr[LM_NX_MAX];                                                              \
            for (int j = 0; j < nx; j++) {                                                     \
                const __m128i hx =                                                             \
                    _mm256_castsi256_si128(HX((const uint8_t *)(xr[j] + ib), (int)sizeof(XB),   \
                                              1));                                             \
                const __m256 p8 = _mm256_mul_ps(_mm256_cvtph_ps(hw), _mm256_cvtph_ps(hx));     \
                pr[j] = _mm512_castps256_ps512(p8);                                            \
                const __m256 s8 = _mm256_loadu_ps((const float *)(xsum[j] + 4 * ib));          \
                acco[j] = _mm256_fmadd_ps(p8, s8, acco[j]);                                    \
            }                                                                                  \
            _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {                              \
                const WB *b0 = wg + 2 * g, *b1 = b0 + 1;                                       \
                __m512i q = CODES2(b0->qs, b1->qs);                                            \
                q = H2(q, b0, b1);                                                             \
                const __m512i sidx = _mm512_set_epi32(                                         \
                    2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1,          \
                    2 * g + 1, 2 * g + 1, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g, 2 * g,     \
                    2 * g);                                                                    \
                for (int j = 0; j < nx; j++) {                                                 \
                    const XB *a0 = xr[j] + ib + 2 * g, *a1 = a0 + 1;                           \
                    __m512i xv = load2x32(a0->qs, a1->qs);                                     \
                    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, xv);            \
                    __m512 sc = _mm512_permutexvar_ps(sidx, pr[j]);                            \
                    if (g & 1)                                                                 \
                        acc2[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc2[j]);         \
                    else                                                                       \
                        acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc[j]);           \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        float gx[LM_NX_MAX]; /* the groups' -off Σ d_w d_x Σq_x */                              \
        for (int j = 0; j < nx; j++) {                                                         \
            acc[j] = _mm512_add_ps(acc[j], acc2[j]);                                           \
            __m128 v = _mm_add_ps(_mm256_castps256_ps128(acco[j]),                             \
                                  _mm256_extractf128_ps(acco[j], 1));                          \
            v = _mm_add_ps(v, _mm_movehl_ps(v, v));                                            \
            v = _mm_add_ss(v, _mm_movehdup_ps(v));                                             \
            gx[j] = -(float)(OFF) * _mm_cvtss_f32(v);                                          \
        }                                                                                      \
        for (; ib + 2 <= nb; ib += 2) {                                                        \
            const WB *b0 = w + ib, *b1 = w + ib + 1;                                           \
            __m512i q = CODES2(b0->qs, b1->qs);                                                \
            q = H2(q, b0, b1);                                                                 \
            const __m128 fw = PAIRF(&b0->d, &b1->d);                                           \
            for (int j = 0; j < nx; j++) {                                                     \
                const XB *a0 = xr[j] + ib, *a1 = a0 + 1;                                       \
                __m512i xv = load2x32(a0->qs, a1->qs);                                         \
                __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, xv);                \
                if (OFF && !SUMS)                                                              \
                    p = _mm512_sub_epi32(p, _mm512_dpbusd_epi32(_mm512_setzero_si512(), voff,  \
                                                                xv));                          \
                /* [dw0 dx0, m0 s0, dw1 dx1, m1 s1] (_1) or [dw0 dx0, dw1 dx1, 0, 0] (_0) */     \
                const __m128 pr = _mm_mul_ps(fw, PAIRF(&a0->d, &a1->d));                       \
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), SPREAD(pr, 0, DI1), acc[j]);   \
                accm[j] = _mm_add_ps(accm[j], pr);                                             \
                if (SUMS) /* the offset: off Σ_b d_w d_x Σq_x, from the appended sums */       \
                    accs[j] = _mm_fmadd_ps(pr, LOAD2F(xsum[j] + 4 * ib), accs[j]);             \
            }                                                                                  \
        }                                                                                      \
        float tail[LM_NX_MAX] = {0};                                                           \
        if (ib < nb) {                                                                         \
            const WB *b0 = w + ib;                                                             \
            __m256i q = nib1(b0->qs);                                                          \
            q = H1(q, b0);                                                                     \
            const float dw0 = f16(b0->d);                                                      \
            for (int j = 0; j < nx; j++) {                                                     \
                const XB *a0 = xr[j] + ib;                                                     \
                __m256i xv = _mm256_loadu_si256((const __m256i *)a0->qs);                      \
                __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, xv);                \
                if (OFF) /* the tail block always removes its offset itself */                 \
                    p = _mm256_sub_epi32(p, _mm256_dpbusd_epi32(_mm256_setzero_si256(),        \
                                                                _mm256_set1_epi8(OFF), xv));   \
                __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p),                          \
                                           _mm256_extracti128_si256(p, 1));                    \
                s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));        \
                s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));        \
                tail[j] = (float)_mm_cvtsi128_si32(s4) * (dw0 * f16(a0->d)) + MS(b0, a0);      \
            }                                                                                  \
        }                                                                                      \
        for (int j = 0; j < nx; j++)                                                           \
            y[j * ys] = _mm512_reduce_add_ps(acc[j]) + MSL(accm[j]) + tail[j] + gx[j] -       \
                        (SUMS ? (float)(OFF) * LANES01(accs[j]) : 0.0f);                       \
    }

/* 5th bit of two blocks (64 bytes; byte k is element k % 32 of block k / 32) / one block; the
 * pair form is one masked vpaddb (+16 where the qh bit is set; the nibble is < 16, so + is |) */
#define HI5_2(q, b0, b1)                                                                       \
    _mm512_mask_add_epi8(q, (__mmask64)rd32((b0)->qh) | (__mmask64)rd32((b1)->qh) << 32, q,     \
                         _mm512_set1_epi8(0x10))
#define HI5_1(q, b0)                                                                           \
    _mm256_or_si256(q, _mm256_maskz_mov_epi8(rd32((b0)->qh), _mm256_set1_epi8(0x10)))
#define NO_HI(q, ...) ((void)0, q)
#define MS_TERM(b, a) (f16((b)->m) * f16((a)->s))
#define NO_MS(b, a) 0.0f
/* PAIRF loads both blocks' d (pair_h: products [p0, p1, 0, 0]) or (d, m) / (d, s) (pair_dm,
 * m and s follow d in the _1 blocks: products [p0, m0 s0, p1, m1 s1]); DI1 is the lane of
 * block 1's product, MSL adds the m·s lanes. */
#define MS_LANES(v)                                                                             \
    (_mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)) + _mm_cvtss_f32(_mm_shuffle_ps(v, v, 3)))
#define NO_LANES(v) 0.0f
#define QBLK_ALL(SFX, CODES2)                                                                   \
    QBLK_KERNEL(q4_0##SFX, lm_block_q4_0, lm_block_q8_0, NO_HI, NO_HI, 8, NO_MS, pair_h, 1,      \
                NO_LANES, 1, 1, CODES2)                                                         \
    QBLK_KERNEL(q5_0##SFX, lm_block_q5_0, lm_block_q8_0, HI5_2, HI5_1, 16, NO_MS, pair_h, 1,     \
                NO_LANES, 1, 1, CODES2)                                                         \
    QBLK_KERNEL(q4_1##SFX, lm_block_q4_1, lm_block_q8_1, NO_HI, NO_HI, 0, MS_TERM, pair_dm, 2,   \
                MS_LANES, 0, 0, CODES2)                                                         \
    QBLK_KERNEL(q5_1##SFX, lm_block_q5_1, lm_block_q8_1, HI5_2, HI5_1, 0, MS_TERM, pair_dm, 2,   \
                MS_LANES, 0, 0, CODES2)                                                         \
    VDOT_ENTRY(q4_0##SFX, lm_block_q4_0, lm_block_q8_0)                                         \
    VDOT_ENTRY(q5_0##SFX, lm_block_q5_0, lm_block_q8_0)                                         \
    VDOT_ENTRY(q4_1##SFX, lm_block_q4_1, lm_block_q8_1)                                         \
    VDOT_ENTRY(q5_1##SFX, lm_block_q5_1, lm_block_q8_1)
QBLK_ALL(, nib2b)
LM_GFNI_BEGIN
QBLK_ALL(_gf, nib2g)
LM_GFNI_END

AI void q8_0_nx(int64_t K, const lm_block_q8_0 *w, const lm_block_q8_0 *x, size_t xs, float *y,
                size_t ys, const int nx) {
    const int64_t nb = K / 32;
    __m512 acc[LM_NX_MAX];
    float tail[LM_NX_MAX];
    const lm_block_q8_0 *xr[LM_NX_MAX];
    for (int j = 0; j < nx; j++) {
        acc[j] = _mm512_setzero_ps();
        tail[j] = 0.0f;
        xr[j] = (const lm_block_q8_0 *)((const char *)x + j * xs);
    }
    int64_t ib = 0;
    for (; ib + 2 <= nb; ib += 2) {
        const lm_block_q8_0 *b0 = w + ib, *b1 = b0 + 1;
        __m512i wv = load2x32(b0->qs, b1->qs);
        __m512i aw = _mm512_abs_epi8(wv);
        __mmask64 neg = _mm512_movepi8_mask(wv);
        const __m128 fw = pair_h(&b0->d, &b1->d);
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_0 *a0 = xr[j] + ib, *a1 = a0 + 1;
            __m512i xv = load2x32(a0->qs, a1->qs);
            xv = _mm512_mask_sub_epi8(xv, neg, _mm512_setzero_si512(), xv);
            __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aw, xv);
            const __m128 pr = _mm_mul_ps(fw, pair_h(&a0->d, &a1->d));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), SPREAD(pr, 0, 1), acc[j]);
        }
    }
    if (ib < nb) {
        const lm_block_q8_0 *b0 = w + ib;
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_0 *a0 = xr[j] + ib;
            __m256i p = _mm256_madd_epi16(
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b0->qs)),
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a0->qs)));
            p = _mm256_add_epi32(p, _mm256_madd_epi16(
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b0->qs + 16))),
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a0->qs + 16)))));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
            tail[j] = (float)_mm_cvtsi128_si32(s4) * (f16(b0->d) * f16(a0->d));
        }
    }
    for (int j = 0; j < nx; j++) y[j * ys] = _mm512_reduce_add_ps(acc[j]) + tail[j];
}
VDOT_ENTRY(q8_0, lm_block_q8_0, lm_block_q8_0)

/* ---------------------------------------------------------------- tiled 32-block kernels */

/* nw weight rows × nx activation rows per step, for the 32-element formats. Per block pair:
 * each weight row's codes (u8) and d-vector are built once, each activation row's qs and
 * d-vector once; the inner (r, j) step is one vpdpbusd, one int->float, one scale product and
 * one FMA. Offsets are removed per activation row: Σ (u - off) x = Σ u x - off Σ x, and
 * off Σ x (one vpdpbusd against a constant) is shared by the nw rows. Q8_0 weights enter as
 * u = w + 128 (xor 0x80) with off = 128. The _1 formats add (m/8)·s on each of a block's 8
 * lanes (exact scaling by a power of two), so the final lane sum gives m·s.
 * CODES2(b0, b1): 64 u8 codes of two blocks; CODES1(b0): 32 codes of one (tail). */
#define GEMM_KERNEL(NAME, WB, XB, CODES2, CODES1, OFF, HASM, MS, WSC, XSC)                     \
    AI void NAME##_g(int64_t K, const WB *w, size_t wst, const XB *x, size_t xs, float *y,      \
                     size_t ys, const int nw, const int nx) {                                   \
        const int64_t nb = K / 32;                                                              \
        __m512 acc[LM_NW_MAX][LM_NX_MAX];                                                       \
        const WB *wr[LM_NW_MAX];                                                                \
        const XB *xr[LM_NX_MAX];                                                                \
        for (int r = 0; r < nw; r++) {                                                          \
            wr[r] = (const WB *)((const char *)w + r * wst);                                    \
            for (int j = 0; j < nx; j++) acc[r][j] = _mm512_setzero_ps();                       \
        }                                                                                       \
        for (int j = 0; j < nx; j++) xr[j] = (const XB *)((const char *)x + j * xs);            \
        const __m512i voff = _mm512_set1_epi8((char)(OFF));                                     \
        int64_t ib = 0;                                                                         \
        for (; ib + 2 <= nb; ib += 2) {                                                         \
            __m512i q[LM_NW_MAX];                                                               \
            __m512 dw[LM_NW_MAX], mw[LM_NW_MAX];                                                \
            for (int r = 0; r < nw; r++) {                                                      \
                const WB *b0 = wr[r] + ib;                                                      \
                q[r] = CODES2(b0, b0 + 1);                                                      \
                WSC(b0, dw[r], mw[r]);                                                          \
            }                                                                                   \
            for (int j = 0; j < nx; j++) {                                                      \
                const XB *a0 = xr[j] + ib;                                                      \
                __m512i xv = load2x32(a0[0].qs, a0[1].qs);                                      \
                __m512 dx, sv;                                                                  \
                XSC(a0, dx, sv);                                                                \
                __m512i so = (OFF) ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), voff, xv)      \
                                   : _mm512_setzero_si512();                                    \
                for (int r = 0; r < nw; r++) {                                                  \
                    __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[r], xv);          \
                    if (OFF) p = _mm512_sub_epi32(p, so);                                       \
                    acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[r], dx), \
                                                acc[r][j]);                                     \
                    if (HASM) acc[r][j] = _mm512_fmadd_ps(mw[r], sv, acc[r][j]);                \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        for (int r = 0; r < nw; r++)                                                            \
            for (int j = 0; j < nx; j++) {                                                      \
                float t = _mm512_reduce_add_ps(acc[r][j]);                                      \
                if (ib < nb) {                                                                  \
                    const WB *b0 = wr[r] + ib;                                                  \
                    const XB *a0 = xr[j] + ib;                                                  \
                    __m256i xv = _mm256_loadu_si256((const __m256i *)a0->qs);                   \
                    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), CODES1(b0), xv);    \
                    if (OFF)                                                                    \
                        p = _mm256_sub_epi32(p, _mm256_dpbusd_epi32(_mm256_setzero_si256(),     \
                                                                    _mm256_set1_epi8((char)(OFF)), \
                                                                    xv));                       \
                    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p),                       \
                                               _mm256_extracti128_si256(p, 1));                 \
                    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));     \
                    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));     \
                    t += (float)_mm_cvtsi128_si32(s4) * (f16(b0->d) * f16(a0->d)) + MS(b0, a0); \
                }                                                                               \
                y[j * ys + r] = t;                                                              \
            }                                                                                   \
    }

/* scale vectors of a block pair: d (and m / 8, or s) each over its block's 8 lanes */
#define WSC0(b0, dwv, mwv)                                                                      \
    do {                                                                                        \
        __m128 f_ = pair_h(&(b0)[0].d, &(b0)[1].d);                                             \
        dwv = SPREAD(f_, 0, 1);                                                                 \
        mwv = _mm512_setzero_ps();                                                              \
    } while (0)
#define WSC1(b0, dwv, mwv)                                                                      \
    do {                                                                                        \
        __m128 f_ = pair_dm(&(b0)[0].d, &(b0)[1].d);                                            \
        dwv = SPREAD(f_, 0, 2);                                                                 \
        f_ = _mm_mul_ps(f_, _mm_set1_ps(0.125f));                                               \
        mwv = SPREAD(f_, 1, 3);                                                                 \
    } while (0)
#define XSC0(a0, dxv, sxv)                                                                      \
    do {                                                                                        \
        __m128 f_ = pair_h(&(a0)[0].d, &(a0)[1].d);                                             \
        dxv = SPREAD(f_, 0, 1);                                                                 \
        sxv = _mm512_setzero_ps();                                                              \
    } while (0)
#define XSC1(a0, dxv, sxv)                                                                      \
    do {                                                                                        \
        __m128 f_ = pair_dm(&(a0)[0].d, &(a0)[1].d);                                            \
        dxv = SPREAD(f_, 0, 2);                                                                 \
        sxv = SPREAD(f_, 1, 3);                                                                 \
    } while (0)

#define CD2_Q4(b0, b1) nib2((b0)->qs, (b1)->qs)
#define CD1_Q4(b0) nib1((b0)->qs)
#define CD2_Q5(b0, b1) HI5_2(nib2((b0)->qs, (b1)->qs), b0, b1)
#define CD1_Q5(b0) HI5_1(nib1((b0)->qs), b0)
#define CD2_Q8(b0, b1) _mm512_xor_si512(load2x32((b0)->qs, (b1)->qs), _mm512_set1_epi8((char)0x80))
#define CD1_Q8(b0)                                                                              \
    _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b0)->qs), _mm256_set1_epi8((char)0x80))

GEMM_KERNEL(q4_0, lm_block_q4_0, lm_block_q8_0, CD2_Q4, CD1_Q4, 8, 0, NO_MS, WSC0, XSC0)
GEMM_KERNEL(q5_0, lm_block_q5_0, lm_block_q8_0, CD2_Q5, CD1_Q5, 16, 0, NO_MS, WSC0, XSC0)
GEMM_KERNEL(q8_0, lm_block_q8_0, lm_block_q8_0, CD2_Q8, CD1_Q8, 128, 0, NO_MS, WSC0, XSC0)
GEMM_KERNEL(q4_1, lm_block_q4_1, lm_block_q8_1, CD2_Q4, CD1_Q4, 0, 1, MS_TERM, WSC1, XSC1)
GEMM_KERNEL(q5_1, lm_block_q5_1, lm_block_q8_1, CD2_Q5, CD1_Q5, 0, 1, MS_TERM, WSC1, XSC1)

/* Instantiates NAME##_g for every (nw, nx) as constants. */
#define GEMM_NX(NAME, wp, wst, NW, xp, xs, nx, y, ys)                                           \
    switch (nx) {                                                                               \
    case 1: NAME##_g(K, wp, wst, xp, xs, y, ys, NW, 1); break;                                  \
    case 2: NAME##_g(K, wp, wst, xp, xs, y, ys, NW, 2); break;                                  \
    case 3: NAME##_g(K, wp, wst, xp, xs, y, ys, NW, 3); break;                                  \
    default: NAME##_g(K, wp, wst, xp, xs, y, ys, NW, 4); break;                                 \
    }
#define GEMM_ENTRY(NAME, WB, XB)                                                                \
    static void gemm_##NAME(int64_t K, const void *w, size_t wst, int nw, const void *x,        \
                            size_t xs, int nx, float *y, size_t ys) {                           \
        const WB *wp = w;                                                                       \
        const XB *xp = x;                                                                       \
        switch (nw) {                                                                           \
        case 1: GEMM_NX(NAME, wp, wst, 1, xp, xs, nx, y, ys) break;                             \
        case 2: GEMM_NX(NAME, wp, wst, 2, xp, xs, nx, y, ys) break;                             \
        case 3: GEMM_NX(NAME, wp, wst, 3, xp, xs, nx, y, ys) break;                             \
        default: GEMM_NX(NAME, wp, wst, 4, xp, xs, nx, y, ys) break;                            \
        }                                                                                       \
    }
GEMM_ENTRY(q4_0, lm_block_q4_0, lm_block_q8_0)
GEMM_ENTRY(q5_0, lm_block_q5_0, lm_block_q8_0)
GEMM_ENTRY(q8_0, lm_block_q8_0, lm_block_q8_0)
GEMM_ENTRY(q4_1, lm_block_q4_1, lm_block_q8_1)
GEMM_ENTRY(q5_1, lm_block_q5_1, lm_block_q8_1)

/* ---------------------------------------------------------------- K-quants */

/* 16 int16 scales s[0..15] -> 32 int16 lanes, lane i = s[base + i / step] (step 2, 8, 16). */
AI __m512i spread16(__m256i s16, int base, int step) {
    static const int16_t iota[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                     11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                     22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    __m512i idx = _mm512_loadu_si512(iota);
    idx = step == 16 ? _mm512_srli_epi16(idx, 4)
        : step == 8  ? _mm512_srli_epi16(idx, 3)
                     : _mm512_srli_epi16(idx, 1);
    idx = _mm512_add_epi16(idx, _mm512_set1_epi16((short)base));
    return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(s16));
}

/* Q4_K/Q5_K 6-bit scales and mins, decoded in general registers (a store of 16 int16 then a
 * vector load would stall on store forwarding): returns the 8 scales as int16 lanes 0-7 of sc
 * and the 8 mins, each twice (lane g = min of sub-block g / 2, matching the 16 bsums), in mn. */
AI void kscales(const uint8_t s[12], __m256i *sc, __m256i *mn) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    const uint32_t sc_lo = u0 & 0x3f3f3f3fu, mn_lo = u1 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
    const uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
    __m128i s8 = _mm_cvtsi64_si128((long long)((uint64_t)sc_hi << 32 | sc_lo));
    __m128i m8 = _mm_cvtsi64_si128((long long)((uint64_t)mn_hi << 32 | mn_lo));
    *sc = _mm256_castsi128_si256(_mm_cvtepu8_epi16(s8));
    /* bytes m0 m0 m1 m1 ... m7 m7 -> 16 int16 */
    __m128i m16 = _mm_unpacklo_epi8(m8, m8);
    *mn = _mm256_cvtepu8_epi16(m16);
}

/* Σ over the 4 64-element vectors of a super-block of sc · (q · x): vpmaddubsw then vpdpwssd
 * (madd + add in one). Written out with two independent accumulators: as a loop GCC kept q and
 * the scales on the stack and chained four vpdpwssd latencies per super-block (Q4_K decode
 * was latency-bound at ~15 GB/s). */
#define KQ_DOT4(q, scv, a)                                                                      \
    _mm512_add_epi32(                                                                           \
        _mm512_dpwssd_epi32(                                                                    \
            _mm512_dpwssd_epi32(_mm512_setzero_si512(),                                         \
                                _mm512_maddubs_epi16(q[0], _mm512_loadu_si512((a)->qs)), scv[0]), \
            _mm512_maddubs_epi16(q[2], _mm512_loadu_si512((a)->qs + 128)), scv[2]),             \
        _mm512_dpwssd_epi32(                                                                    \
            _mm512_dpwssd_epi32(_mm512_setzero_si512(),                                         \
                                _mm512_maddubs_epi16(q[1], _mm512_loadu_si512((a)->qs + 64)),   \
                                scv[1]),                                                        \
            _mm512_maddubs_epi16(q[3], _mm512_loadu_si512((a)->qs + 192)), scv[3]))

/* Q4_K (HAS5 = 0) and Q5_K (HAS5 = 1) x Q8_K. */
#define QK45_KERNEL(NAME, WB, HAS5, LOADQH)                                                    \
    AI void NAME##_nx(int64_t K, const WB *w, const lm_block_q8_K *x, size_t xs, float *y,     \
                      size_t ys, const int nx) {                                               \
        __m512 acc[LM_NX_MAX];                                                                 \
        __m256 accm[LM_NX_MAX];                                                                \
        const lm_block_q8_K *xr[LM_NX_MAX];                                                    \
        for (int j = 0; j < nx; j++) {                                                         \
            acc[j] = _mm512_setzero_ps();                                                      \
            accm[j] = _mm256_setzero_ps();                                                     \
            xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);                         \
        }                                                                                      \
        const __m256i m4 = _mm256_set1_epi8(0x0f);                                             \
        for (int64_t ib = 0; ib < K / 256; ib++) {                                             \
            const WB *b = w + ib;                                                              \
            __m256i sc16, mn16;                                                                \
            kscales(b->scales, &sc16, &mn16);                                                  \
            __m512i q[4], scv[4];                                                              \
            __m256i qh = LOADQH(b);                                                            \
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {                              \
                __m256i t = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));             \
                __m256i lo = _mm256_and_si256(t, m4);                                          \
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m4);                    \
                if (HAS5) {                                                                    \
                    const __m256i one = _mm256_set1_epi8(1);                                   \
                    __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);          \
                    __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);      \
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));                        \
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));                        \
                }                                                                              \
                q[c] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);                  \
                scv[c] = spread16(sc16, 2 * c, 16);                                            \
            }                                                                                  \
            const float d = f16(b->d), dmin = f16(b->dmin);                                    \
            for (int j = 0; j < nx; j++) {                                                     \
                const lm_block_q8_K *a = xr[j] + ib;                                           \
                __m512i s = KQ_DOT4(q, scv, a);                                                \
                acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * a->d),     \
                                         acc[j]);                                              \
                /* Σ min · bsum as 8 int32 lanes, accumulated in float without a reduction */  \
                __m256i mm =                                                                   \
                    _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)a->bsums));    \
                accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(dmin * a->d),  \
                                          accm[j]);                                            \
            }                                                                                  \
        }                                                                                      \
        for (int j = 0; j < nx; j++)                                                           \
            y[j * ys] = _mm512_reduce_add_ps(                                                  \
                _mm512_sub_ps(acc[j], _mm512_zextps256_ps512(accm[j])));                       \
    }

#define QH_LOAD(b) _mm256_loadu_si256((const __m256i *)(b)->qh)
#define QH_NONE(b) _mm256_setzero_si256()
QK45_KERNEL(q4_K, lm_block_q4_K, 0, QH_NONE)
QK45_KERNEL(q5_K, lm_block_q5_K, 1, QH_LOAD)
VDOT_ENTRY(q4_K, lm_block_q4_K, lm_block_q8_K)
VDOT_ENTRY(q5_K, lm_block_q5_K, lm_block_q8_K)

AI void q6_K_nx(int64_t K, const lm_block_q6_K *w, const lm_block_q8_K *x, size_t xs, float *y,
                size_t ys, const int nx) {
    __m512 acc[LM_NX_MAX];
    const lm_block_q8_K *xr[LM_NX_MAX];
    for (int j = 0; j < nx; j++) {
        acc[j] = _mm512_setzero_ps();
        xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    /* per-16-bit-lane shift counts: lanes 0-15 (bytes 0-31) by a, lanes 16-31 by b */
    const __m512i sh_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i sh_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    for (int64_t ib = 0; ib < K / 256; ib++) {
        const lm_block_q6_K *b = w + ib;
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
        __m512i q[4], scv[4];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
            __m256i qh256 = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
            __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(qh256), qh256, 1);
            __m512i hl = _mm512_and_si512(_mm512_srlv_epi16(qh, sh_lo), m2);
            __m512i hh = _mm512_and_si512(_mm512_srlv_epi16(qh, sh_hi), m2);
            q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(hl, 4));
            q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                           _mm512_slli_epi16(hh, 4));
            scv[2 * h] = spread16(sc16, 8 * h, 8);
            scv[2 * h + 1] = spread16(sc16, 8 * h + 4, 8);
        }
        const float d = f16(b->d);
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_K *a = xr[j] + ib;
            __m512i s = KQ_DOT4(q, scv, a);
            /* codes are q - 32: subtract 32 Σ_16 sc bsum, still in int32 lanes */
            __m256i corr =
                _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)a->bsums));
            s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * a->d), acc[j]);
        }
    }
    for (int j = 0; j < nx; j++) y[j * ys] = _mm512_reduce_add_ps(acc[j]);
}
VDOT_ENTRY(q6_K, lm_block_q6_K, lm_block_q8_K)

/* Q2_K / Q3_K: element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]; two consecutive shifts
 * s, s + 1 give 64 consecutive elements, so one 512-bit vector holds [shift s | shift s + 1]
 * of the 32 qs bytes broadcast to both halves, shifted per 16-bit lane (vpsrlvw). */
AI __m512i k2codes(__m512i t2, int s) {
    const __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * s)),
                                          _mm256_set1_epi16((short)(2 * s + 2)), 1);
    return _mm512_and_si512(_mm512_srlv_epi16(t2, sh), _mm512_set1_epi8(3));
}

AI void q2_K_nx(int64_t K, const lm_block_q2_K *w, const lm_block_q8_K *x, size_t xs, float *y,
                size_t ys, const int nx) {
    __m512 acc[LM_NX_MAX];
    __m256 accm[LM_NX_MAX];
    const lm_block_q8_K *xr[LM_NX_MAX];
    for (int j = 0; j < nx; j++) {
        acc[j] = _mm512_setzero_ps();
        accm[j] = _mm256_setzero_ps();
        xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);
    }
    for (int64_t ib = 0; ib < K / 256; ib++) {
        const lm_block_q2_K *b = w + ib;
        const __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0f)));
        const __m256i mn16 =
            _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0f)));
        __m512i q[4], scv[4];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512i t2 =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * h)));
            q[2 * h] = k2codes(t2, 0);
            q[2 * h + 1] = k2codes(t2, 2);
            scv[2 * h] = spread16(sc16, 8 * h, 8);
            scv[2 * h + 1] = spread16(sc16, 8 * h + 4, 8);
        }
        const float d = f16(b->d), dmin = f16(b->dmin);
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_K *a = xr[j] + ib;
            __m512i sum = KQ_DOT4(q, scv, a);
            __m256i mm = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)a->bsums));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(d * a->d), acc[j]);
            accm[j] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(mm), _mm256_set1_ps(dmin * a->d), accm[j]);
        }
    }
    for (int j = 0; j < nx; j++)
        y[j * ys] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[j], _mm512_zextps256_ps512(accm[j])));
}
VDOT_ENTRY(q2_K, lm_block_q2_K, lm_block_q8_K)

/* Q3_K: code u = 2 low bits + 4 · hmask bit (bit 4h + s of hmask[l]), value (u - 4); the -4 is
 * removed as 4 Σ_16 sc · bsum. The 16 6-bit scales are decoded in general registers. */
AI void q3_K_nx(int64_t K, const lm_block_q3_K *w, const lm_block_q8_K *x, size_t xs, float *y,
                size_t ys, const int nx) {
    __m512 acc[LM_NX_MAX];
    const lm_block_q8_K *xr[LM_NX_MAX];
    for (int j = 0; j < nx; j++) {
        acc[j] = _mm512_setzero_ps();
        xr[j] = (const lm_block_q8_K *)((const char *)x + j * xs);
    }
    for (int64_t ib = 0; ib < K / 256; ib++) {
        const lm_block_q3_K *b = w + ib;
        uint64_t lo8;
        uint32_t u;
        memcpy(&lo8, b->scales, 8);
        memcpy(&u, b->scales + 8, 4);
        /* scale i: low 4 bits = scales[i] & 15 (i < 8) or scales[i - 8] >> 4; high 2 bits =
         * (scales[8 + i % 4] >> 2 (i / 4)) & 3 */
        const uint64_t lo_a = lo8 & 0x0f0f0f0f0f0f0f0fULL;
        const uint64_t lo_b = (lo8 >> 4) & 0x0f0f0f0f0f0f0f0fULL;
        const uint64_t hi_a =
            (uint64_t)(u & 0x03030303u) | (uint64_t)((u >> 2) & 0x03030303u) << 32;
        const uint64_t hi_b =
            (uint64_t)((u >> 4) & 0x03030303u) | (uint64_t)((u >> 6) & 0x03030303u) << 32;
        const __m128i sc8 = _mm_sub_epi8(
            _mm_set_epi64x((long long)(lo_b | hi_b << 4), (long long)(lo_a | hi_a << 4)),
            _mm_set1_epi8(32));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b->hmask));
        __m512i q[4], scv[4];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512i t2 =
                _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * h)));
#pragma GCC unroll 2
            for (int s2 = 0; s2 < 2; s2++) {
                const int s = 2 * s2;
                const __m512i hsh =
                    _mm512_inserti64x4(_mm512_set1_epi16((short)(4 * h + s)),
                                       _mm256_set1_epi16((short)(4 * h + s + 1)), 1);
                __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(hm, hsh), _mm512_set1_epi8(1));
                q[2 * h + s2] = _mm512_or_si512(k2codes(t2, s), _mm512_slli_epi16(hb, 2));
                scv[2 * h + s2] = spread16(sc16, 8 * h + 4 * s2, 8);
            }
        }
        const float d = f16(b->d);
        for (int j = 0; j < nx; j++) {
            const lm_block_q8_K *a = xr[j] + ib;
            __m512i sum = KQ_DOT4(q, scv, a);
            __m256i corr =
                _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)a->bsums));
            sum = _mm512_sub_epi32(sum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 2)));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(d * a->d), acc[j]);
        }
    }
    for (int j = 0; j < nx; j++) y[j * ys] = _mm512_reduce_add_ps(acc[j]);
}
VDOT_ENTRY(q3_K, lm_block_q3_K, lm_block_q8_K)

/* ---------------------------------------------------------------- MLX affine, 4 and 8 bits */

/* n scales of type dt (F16, BF16, F32) to f32; masked tail (n = K / gs is any count). */
static void mlx_scales(lm_dtype dt, const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v;
        if (dt == LM_DTYPE_F32) {
            v = _mm512_maskz_loadu_ps(m, (const float *)src + i);
        } else {
            __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)src + i);
            v = dt == LM_DTYPE_F16
                    ? _mm512_cvtph_ps(h)
                    : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
        }
        _mm512_mask_storeu_ps(dst + i, m, v);
    }
}

/* Σ_g sc_g (q_g · x_g) + bi_g xsum_g for one (TWO = 0) or two activation rows. */
AI void mlx_rows(int64_t K, int gs, const uint8_t *packed, int bits, const float *sc,
                 const float *bi, const float *x0, const float *x1, const float *xs0,
                 const float *xs1, float *y0, float *y1, const int TWO) {
    const int64_t ng = K / gs;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    float b0 = 0.0f, b1 = 0.0f;
    for (int64_t g = 0; g < ng; g++) {
        __m512 d0 = _mm512_setzero_ps(), d1 = _mm512_setzero_ps();
        for (int i = 0; i < gs; i += 32) {
            const int64_t e = g * gs + i;
            __m512 qa, qb;
            if (bits == 4) { /* 16 bytes = 32 codes; element 2i = low nibble of byte i */
                __m128i v = _mm_loadu_si128((const __m128i *)(packed + e / 2));
                __m128i m = _mm_set1_epi8(0x0f);
                __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
                qa = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
                qb = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(lo, hi)));
            } else {
                qa = _mm512_cvtepi32_ps(
                    _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(packed + e))));
                qb = _mm512_cvtepi32_ps(
                    _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(packed + e + 16))));
            }
            d0 = _mm512_fmadd_ps(qa, _mm512_loadu_ps(x0 + e), d0);
            d0 = _mm512_fmadd_ps(qb, _mm512_loadu_ps(x0 + e + 16), d0);
            if (TWO) {
                d1 = _mm512_fmadd_ps(qa, _mm512_loadu_ps(x1 + e), d1);
                d1 = _mm512_fmadd_ps(qb, _mm512_loadu_ps(x1 + e + 16), d1);
            }
        }
        const __m512 s = _mm512_set1_ps(sc[g]);
        acc0 = _mm512_fmadd_ps(d0, s, acc0);
        b0 += bi[g] * xs0[g];
        if (TWO) {
            acc1 = _mm512_fmadd_ps(d1, s, acc1);
            b1 += bi[g] * xs1[g];
        }
    }
    *y0 = _mm512_reduce_add_ps(acc0) + b0;
    if (TWO) *y1 = _mm512_reduce_add_ps(acc1) + b1;
}

#define MLX_KERNEL(NAME, BITS)                                                                  \
    static void NAME(int64_t K, int gs, const uint8_t *packed, const void *scr, const void *bir, \
                     lm_dtype sdt, float *tmp, const float *x, size_t xs, const float *xsum,    \
                     size_t xsum_s, int nx, float *y, size_t ys) {                              \
        const int64_t ng = K / gs;                                                              \
        float *sc = tmp, *bi = tmp + ng;                                                        \
        mlx_scales(sdt, scr, sc, ng);                                                           \
        mlx_scales(sdt, bir, bi, ng);                                                           \
        int j = 0;                                                                              \
        for (; j + 2 <= nx; j += 2)                                                             \
            mlx_rows(K, gs, packed, BITS, sc, bi, x + j * xs, x + (j + 1) * xs,                 \
                     xsum + j * xsum_s, xsum + (j + 1) * xsum_s, y + j * ys, y + (j + 1) * ys,  \
                     1);                                                                        \
        if (j < nx)                                                                             \
            mlx_rows(K, gs, packed, BITS, sc, bi, x + j * xs, NULL, xsum + j * xsum_s, NULL,    \
                     y + j * ys, NULL, 0);                                                      \
    }
MLX_KERNEL(mlx_dot4, 4)
MLX_KERNEL(mlx_dot8, 8)

void lm_cpu_kernels_fill_avx512(lm_cpu_kernels *k) {
    k->mlx4 = mlx_dot4;
    k->mlx8 = mlx_dot8;
    k->quant_q8_0 = quant_q8_0;
    k->quant_q8_1 = quant_q8_1;
    k->quant_q8_K = quant_q8_K;
#define SET(T, F)                                                                              \
    do {                                                                                       \
        k->vdot[T] = F;                                                                        \
        k->level_of[T] = LM_CPU_AVX512;                                                        \
    } while (0)
    SET(LM_DTYPE_F32, vdot_f32);
    SET(LM_DTYPE_F16, vdot_f16);
    SET(LM_DTYPE_BF16, vdot_bf16);
    SET(LM_DTYPE_Q4_0, vdot_q4_0);
    SET(LM_DTYPE_Q4_1, vdot_q4_1);
    SET(LM_DTYPE_Q5_0, vdot_q5_0);
    SET(LM_DTYPE_Q5_1, vdot_q5_1);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("gfni")) { /* the nibble unpack in one instruction */
        SET(LM_DTYPE_Q4_0, vdot_q4_0_gf);
        SET(LM_DTYPE_Q4_1, vdot_q4_1_gf);
        SET(LM_DTYPE_Q5_0, vdot_q5_0_gf);
        SET(LM_DTYPE_Q5_1, vdot_q5_1_gf);
    }
    SET(LM_DTYPE_Q8_0, vdot_q8_0);
    SET(LM_DTYPE_Q2_K, vdot_q2_K);
    SET(LM_DTYPE_Q3_K, vdot_q3_K);
    SET(LM_DTYPE_Q4_K, vdot_q4_K);
    SET(LM_DTYPE_Q5_K, vdot_q5_K);
    SET(LM_DTYPE_Q6_K, vdot_q6_K);
#undef SET
    k->act_sums[LM_DTYPE_Q4_0] = 1; /* the q4_0 / q5_0 vdot kernels read the appended Σq */
    k->act_sums[LM_DTYPE_Q5_0] = 1;
    k->gemm[LM_DTYPE_Q4_0] = gemm_q4_0;
    k->gemm[LM_DTYPE_Q5_0] = gemm_q5_0;
    k->gemm[LM_DTYPE_Q8_0] = gemm_q8_0;
    k->gemm[LM_DTYPE_Q4_1] = gemm_q4_1;
    k->gemm[LM_DTYPE_Q5_1] = gemm_q5_1;
}
