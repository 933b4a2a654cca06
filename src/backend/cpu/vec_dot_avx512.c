/*
 * vec_dot_avx512.c — AVX-512 (F/BW/VL/DQ + VNNI) dot kernels and activation quantizers.
 *
 * Compiled with -mavx512* (the Makefile's *_avx512.c rule); called only when cpu_features
 * reports LM_CPU_AVX512. Every function here computes what vec_dot_ref.c / lm_quantize_row
 * define (quantizers bit-identically; dots with integer block sums exact and the float
 * accumulation in a different order).
 *
 * Kernel shapes (kernels.h has the interfaces and the packed layouts):
 *   - gemv (decode, n = 1; Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): up to LM_NW_MAX raw weight rows, one
 *     after the other, against one activation row pre-arranged by dpack; the rows' sums are
 *     reduced together.
 *   - pgemm (prefill, n >= LM_PGEMM_MIN_N; those formats and Q4_K, Q5_K, Q6_K): packed weight
 *     rows (pack_w, once per chunk) × packed activation rows (pack_x, once per call), tiles of
 *     4 × 4 (32-element formats) or 2 × 4 (K-quants) with every accumulator in registers.
 *   - vdot: one weight row against nx <= LM_NX_MAX activation rows (the float formats, Q2_K,
 *     Q3_K, and the K-quants' decode and small n).
 * The bodies are always_inline functions instantiated with constant tile sizes.
 *
 * Tricks (measurements in bench/RESULTS.md, reasons in docs/kernels.md):
 *   - u8 x s8 products: VNNI vpdpbusd (4 products summed per int32 lane). Unsigned codes
 *     (Q4_x, Q5_x) go in the u8 operand. The weight offsets (-8 of Q4_0, -16 of Q5_0) are
 *     off · Σq_x: in gemv a float term per block (d_w d_x Σq_x, from the activation's
 *     pre-computed d_x Σq_x), in pgemm the integer start value of vpdpbusd (-Σq_x · off / 8 in
 *     each of the block's 8 lanes). Signed Q8_0 weights use |w| and x with w's sign applied
 *     (gemv) or enter as w ^ 0x80 with offset 128 (pgemm).
 *   - Two 32-element blocks fill one 512-bit vector. gemv keeps them in element order and
 *     spreads each pair's scale products d_w d_x (computed for 8 blocks at once) with one
 *     vpermps; pgemm interleaves the two blocks by dwords in both packed operands, so a
 *     broadcast 64-bit pair of floats is already the right scale vector.
 *   - K-quants: vpmaddubsw (u8 q x s8 x -> s16 pairs, no saturation for these ranges) then
 *     vpdpwssd with the sub-block scales spread to their lanes (vpermw); one int->float
 *     conversion per super-block and row.
 *   - Zen 4 executes 512-bit instructions as two 256-bit halves: vector uops per weight byte,
 *     not loads, bound the 32-element formats; scalar fp16 conversions per block were the
 *     largest avoidable cost. Of the vector uops, the shuffle-unit ones (inserts, permutes,
 *     vpinsrw: two pipes of four) are the scarce ones: gemv builds codes with broadcast loads,
 *     unpacks nibbles with GFNI vgf2p8affineqb when present (run-time check, else a masked
 *     shift + AND) and adds Q5's 5th bit with one masked vpaddb.
 *   - Decode streams the weights from memory: the gemv kernels read them strictly in address
 *     order (see GEMV_KERNEL).
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

/* Nibbles of two blocks' qs[16] as 64 bytes in element order: [b0 low (elements 0-15), b0 high
 * (16-31), b1 low, b1 high]. Two 128-bit broadcast loads (no shuffle uop on Zen 4, which has two
 * shuffle pipes of four) and one vinserti64x4 give [qs0 qs0 qs1 qs1]; the high nibbles are
 * shifted down in lanes 1 and 3 (masked vpsrlw). (Merge-masked broadcast loads were slower.) */
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

/* 5th bit of two blocks (64 bytes; byte k is element k % 32 of block k / 32) / one block; the
 * pair form is one masked vpaddb (+16 where the qh bit is set; the nibble is < 16, so + is |) */
#define HI5_2(q, b0, b1)                                                                       \
    _mm512_mask_add_epi8(q, (__mmask64)rd32((b0)->qh) | (__mmask64)rd32((b1)->qh) << 32, q,     \
                         _mm512_set1_epi8(0x10))
#define HI5_1(q, b0)                                                                           \
    _mm256_or_si256(q, _mm256_maskz_mov_epi8(rd32((b0)->qh), _mm256_set1_epi8(0x10)))

/* u8 codes of a block pair (for the packed GEMM): nibbles (+ 5th bit), Q8_0 as w ^ 0x80 */
#define CD2_Q4(b0, b1) nib2b((b0)->qs, (b1)->qs)
#define CD2_Q5(b0, b1) HI5_2(nib2b((b0)->qs, (b1)->qs), b0, b1)
#define CD2_Q8(b0, b1) _mm512_xor_si512(load2x32((b0)->qs, (b1)->qs), _mm512_set1_epi8((char)0x80))

/* ---------------------------------------------------------------- packed GEMM (prefill) */

/* Prefill with n activation rows multiplies each weight block n times, so its unpacking, its
 * scale conversion and the activation's scale work are worth doing once per call instead of
 * once per tile: the driver packs (kernels.h: lm_pk_layout_of) the activation rows once and the
 * weight rows once per chunk, and the inner (r, j) step of a block pair is four instructions on
 * whole aligned vectors: vpdpbusd (started from the offset term), int->float, the scale
 * product d_w d_x (both broadcast as float pairs: the dword interleave makes lane i belong to
 * block i % 2) and an FMA. */

/* [block 0 (32 bytes) | block 1] -> dwords interleaved: dword 2i = block 0's i, 2i+1 = 1's */
AI __m512i pk_ilv(__m512i v) {
    return _mm512_permutexvar_epi32(
        _mm512_set_epi32(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0), v);
}
AI uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
/* 64-bit value at p in every qword: a float pair (d0, d1) or an int32 pair */
AI __m512 pk_bc2f(const uint8_t *p) {
    return _mm512_castsi512_ps(_mm512_set1_epi64((long long)rd64(p)));
}
AI __m512i pk_bc2i(const uint8_t *p) { return _mm512_set1_epi64((long long)rd64(p)); }

#define PK_M(b) f16((b)->m)
#define PK_NOM(b) 0.0f
#define PACK_W(NAME, WB, CODES2, MV)                                                            \
    static void pack_w_##NAME(int64_t K, const void *w, size_t wst, int nw, uint8_t *dst,       \
                              size_t dst_st) {                                                  \
        const lm_pk_layout L = lm_pk_layout_of(K);                                              \
        const int64_t nb = K / 32;                                                              \
        WB z;                                                                                   \
        memset(&z, 0, sizeof z);                                                                \
        for (int r = 0; r < nw; r++) {                                                          \
            const WB *wr = (const WB *)((const char *)w + (size_t)r * wst);                     \
            uint8_t *o = dst + (size_t)r * dst_st;                                              \
            float *od = (float *)(o + L.off_d), *oe = (float *)(o + L.off_e);                   \
            for (int64_t p = 0; p < L.npair; p++) {                                             \
                const WB *b0 = wr + 2 * p, *b1 = 2 * p + 1 < nb ? b0 + 1 : &z;                  \
                _mm512_store_si512(o + 64 * p, pk_ilv(CODES2(b0, b1)));                         \
                od[2 * p] = f16(b0->d);                                                         \
                od[2 * p + 1] = f16(b1->d);                                                     \
                oe[2 * p] = MV(b0);                                                             \
                oe[2 * p + 1] = MV(b1);                                                         \
            }                                                                                   \
            for (int64_t i = 2 * L.npair; i < L.nbp; i++) oe[i] = 0.0f;                         \
        }                                                                                       \
    }
PACK_W(q4_0, lm_block_q4_0, CD2_Q4, PK_NOM)
PACK_W(q5_0, lm_block_q5_0, CD2_Q5, PK_NOM)
PACK_W(q8_0, lm_block_q8_0, CD2_Q8, PK_NOM)
PACK_W(q4_1, lm_block_q4_1, CD2_Q4, PK_M)
PACK_W(q5_1, lm_block_q5_1, CD2_Q5, PK_M)

AI int sum_qs32(const int8_t *qs) {
    __m256i v = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1),
                                    _mm256_loadu_si256((const __m256i *)qs));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s4);
}
/* Q8_0 (aux = -Σq, e = 0) or Q8_1 (aux = 0, e = s) activation row -> packed */
#define PACK_X(NAME, XB, IS1)                                                                   \
    static void pack_x_##NAME(int64_t K, const void *xq, uint8_t *o) {                          \
        const lm_pk_layout L = lm_pk_layout_of(K);                                              \
        const int64_t nb = K / 32;                                                              \
        const XB *x = xq;                                                                       \
        XB z;                                                                                   \
        memset(&z, 0, sizeof z);                                                                \
        float *od = (float *)(o + L.off_d), *oe = (float *)(o + L.off_e);                       \
        int32_t *oa = (int32_t *)(o + L.off_aux);                                               \
        for (int64_t p = 0; p < L.npair; p++) {                                                 \
            const XB *a0 = x + 2 * p, *a1 = 2 * p + 1 < nb ? a0 + 1 : &z;                       \
            _mm512_store_si512(o + 64 * p, pk_ilv(load2x32(a0->qs, a1->qs)));                   \
            od[2 * p] = f16(a0->d);                                                             \
            od[2 * p + 1] = f16(a1->d);                                                         \
            oa[2 * p] = IS1 ? 0 : -sum_qs32(a0->qs);                                            \
            oa[2 * p + 1] = IS1 ? 0 : -sum_qs32(a1->qs);                                        \
            oe[2 * p] = IS1 ? PK_XS(a0) : 0.0f;                                                 \
            oe[2 * p + 1] = IS1 ? PK_XS(a1) : 0.0f;                                             \
        }                                                                                       \
        for (int64_t i = 2 * L.npair; i < L.nbp; i++) oe[i] = 0.0f;                             \
    }
#define PK_XS(a) pk_xs(a)
static inline float pk_xs(const void *a) {
    lm_half s;
    memcpy(&s, (const char *)a + 2, 2); /* Q8_1: d, s, qs */
    return f16(s);
}
PACK_X(q8_0, lm_block_q8_0, 0)
PACK_X(q8_1, lm_block_q8_1, 1)

/* Horizontal sums of 4 vectors as one xmm [Σa, Σb, Σc, Σd]. */
AI __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm512_extractf32x8_ps(u, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* OSH: the offset term's lanes are -Σq << OSH (each of a block's 8 lanes carries 1/8 of
 * off · Σq: off = 8, 16, 128 -> OSH 0, 1, 4); OSH < 0: no offset. HASE: add Σ e_w e_x. */
#define PGEMM_KERNEL(NAME, OSH, HASE)                                                           \
    AI void NAME##_pg(int64_t K, const uint8_t *pw, size_t pws, const uint8_t *px, size_t pxs,  \
                      float *y, size_t ys, const int nw, const int nx) {                        \
        const lm_pk_layout L = lm_pk_layout_of(K);                                              \
        __m512 acc[LM_NW_MAX][LM_NX_MAX];                                                       \
        _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++)                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) acc[r][j] =                    \
                _mm512_setzero_ps();                                                            \
        for (int64_t p = 0; p < L.npair; p++) {                                                 \
            __m512i q[LM_NW_MAX];                                                               \
            __m512 dw[LM_NW_MAX];                                                               \
            _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) {                              \
                const uint8_t *wr = pw + (size_t)r * pws;                                       \
                q[r] = _mm512_load_si512(wr + 64 * p);                                          \
                dw[r] = pk_bc2f(wr + L.off_d + 8 * p);                                          \
            }                                                                                   \
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                              \
                const uint8_t *xr = px + (size_t)j * pxs;                                       \
                const __m512i xv = _mm512_load_si512(xr + 64 * p);                              \
                const __m512 dx = pk_bc2f(xr + L.off_d + 8 * p);                                \
                const __m512i so = OSH >= 0 ? _mm512_slli_epi32(pk_bc2i(xr + L.off_aux + 8 * p), \
                                                                OSH >= 0 ? OSH : 0)             \
                                            : _mm512_setzero_si512();                           \
                _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) {                          \
                    const __m512i t = _mm512_dpbusd_epi32(so, q[r], xv);                        \
                    acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dw[r], dx), \
                                                acc[r][j]);                                     \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        if (HASE)                                                                               \
            _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++)                                \
                _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                          \
                    const float *ew = (const float *)(pw + (size_t)r * pws + L.off_e);          \
                    const float *ex = (const float *)(px + (size_t)j * pxs + L.off_e);          \
                    for (int64_t i = 0; i < L.nbp; i += 16)                                     \
                        acc[r][j] = _mm512_fmadd_ps(_mm512_load_ps(ew + i),                     \
                                                    _mm512_load_ps(ex + i), acc[r][j]);         \
                }                                                                               \
        _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                                  \
            if (nw == 4)                                                                        \
                _mm_storeu_ps(y + j * ys,                                                       \
                              hsum4(acc[0][j], acc[1][j], acc[2][j], acc[3][j]));               \
            else                                                                                \
                _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) y[j * ys + r] =            \
                    _mm512_reduce_add_ps(acc[r][j]);                                            \
        }                                                                                       \
    }
PGEMM_KERNEL(q4_0, 0, 0)
PGEMM_KERNEL(q5_0, 1, 0)
PGEMM_KERNEL(q8_0, 4, 0)
PGEMM_KERNEL(q4_1, -1, 1)

#define PGEMM_NX(NAME, NW)                                                                      \
    switch (nx) {                                                                               \
    case 1: NAME##_pg(K, pw, pws, px, pxs, y, ys, NW, 1); break;                                \
    case 2: NAME##_pg(K, pw, pws, px, pxs, y, ys, NW, 2); break;                                \
    case 3: NAME##_pg(K, pw, pws, px, pxs, y, ys, NW, 3); break;                                \
    default: NAME##_pg(K, pw, pws, px, pxs, y, ys, NW, 4); break;                               \
    }
#define PGEMM_ENTRY(NAME)                                                                       \
    static void pgemm_##NAME(int64_t K, const uint8_t *pw, size_t pws, int nw, const uint8_t *px, \
                             size_t pxs, int nx, float *y, size_t ys) {                         \
        switch (nw) {                                                                           \
        case 1: PGEMM_NX(NAME, 1) break;                                                        \
        case 2: PGEMM_NX(NAME, 2) break;                                                        \
        case 3: PGEMM_NX(NAME, 3) break;                                                        \
        default: PGEMM_NX(NAME, 4) break;                                                       \
        }                                                                                       \
    }
PGEMM_ENTRY(q4_0)
PGEMM_ENTRY(q5_0)
PGEMM_ENTRY(q8_0)
PGEMM_ENTRY(q4_1) /* also Q5_1: the packed codes carry the 5th bit */

/* ---------------------------------------------------------------- multi-row decode */

/* Decode (n = 1) streams every weight byte once; with rows of 576-2048 elements (18-64 blocks)
 * the one-row kernel spent as much on per-row and activation-side work as on the weights. Here
 * the activation side is prepared once per call (dpack, kernels.h: quants 64-byte aligned so a
 * block pair is one memory operand of vpdpbusd, scales as floats), and per block pair the
 * weight's fp16 scales (pair_h / pair_dm) multiply the pre-converted [d_x0, e0, d_x1, e1]: lanes
 * 0 and 2 scale the pair's 16 sums (one vpermps), lanes 1 and 3 are m_w s_x (_1 formats) or
 * d_w d_x Σq_x (the -off term of Q4_0 / Q5_0), summed in an xmm and folded in once per row. A
 * call covers up to 4 rows, processed one after the other and reduced together (hsum4).
 * What did not pay (bench/RESULTS.md): interleaving the 4 rows block by block (sharing each
 * activation load; faster in cache, but from memory the interleaved streams defeated the
 * hardware prefetcher: Q8_0 49152 × 576 21 GB/s one row at a time, 15 with 2 rows, 6 with 4);
 * converting the scales of 8 weight blocks at once (vpermt2w windows, one vcvtph2ps) and
 * spreading per pair from that vector (slower in cache, and 64-byte window loads over the
 * coming blocks halved the streaming rate of long rows); one block per 256-bit vector;
 * software prefetch.
 * KIND 0: Q4_0 / Q5_0 (offset OFF); 1: Q4_1 / Q5_1; 2: Q8_0 (|w| and x with w's sign). */
static inline float lanes13(__m128 v) {
    return _mm_cvtss_f32(_mm_shuffle_ps(v, v, 1)) + _mm_cvtss_f32(_mm_shuffle_ps(v, v, 3));
}
AI int hsum8i(__m256i p) {
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s4);
}
/* integer dot of a block pair (KIND 0/1: u8 codes; 2: signed Q8_0 weights) with xv */
#define GV_DOT2(KIND, CODES2, b0, xv)                                                           \
    ((KIND) == 2 ? gv_dot2_q8((const lm_block_q8_0 *)(const void *)(b0), xv)                    \
                 : _mm512_dpbusd_epi32(_mm512_setzero_si512(), CODES2(b0, (b0) + 1), xv))
AI __m512i gv_dot2_q8(const lm_block_q8_0 *b0, __m512i xv) {
    const __m512i wv = load2x32(b0[0].qs, b0[1].qs);
    const __mmask64 neg = _mm512_movepi8_mask(wv);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wv),
                               _mm512_mask_sub_epi8(xv, neg, _mm512_setzero_si512(), xv));
}
AI int gv_dot1_q8(const lm_block_q8_0 *b0, __m256i xv) {
    const __m256i wv = _mm256_loadu_si256((const __m256i *)b0->qs);
    const __mmask32 neg = _mm256_movepi8_mask(wv);
    return hsum8i(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(wv),
                                      _mm256_mask_sub_epi8(xv, neg, _mm256_setzero_si256(), xv)));
}
#define GV_DOT1(KIND, CODES1, b0, xv)                                                           \
    ((KIND) == 2 ? gv_dot1_q8((const lm_block_q8_0 *)(const void *)(b0), xv)                    \
                 : hsum8i(_mm256_dpbusd_epi32(_mm256_setzero_si256(), CODES1(b0), xv)))
#define GV_M(b) f16((b)->m)

/* pair ib of row wr into (A, AM): [p0, e0, p1, e1] = [d_w0, m_0 | d_w0, d_w1, m_1 | d_w1] ×
 * [d_x0, e_x0, d_x1, e_x1]; lanes 0 / 2 scale the pair's 16 sums, lanes 1 / 3 are the e terms */
#define GV_PAIR(KIND, CODES2, WB, wr, ib, xp, xpr, A, AM)                                       \
    do {                                                                                        \
        const WB *b0_ = (wr) + (ib);                                                            \
        __m128 fw_;                                                                             \
        if ((KIND) == 1) {                                                                      \
            fw_ = pair_dm(&b0_->d, &b0_[1].d);                                                  \
        } else {                                                                                \
            fw_ = pair_h(&b0_->d, &b0_[1].d);                                                   \
            fw_ = _mm_unpacklo_ps(fw_, fw_);                                                    \
        }                                                                                       \
        const __m128 pr_ = _mm_mul_ps(fw_, _mm_load_ps((xpr) + 2 * (ib)));                      \
        const __m512i p_ = GV_DOT2(KIND, CODES2, b0_, _mm512_load_si512((xp) + 32 * (ib)));     \
        A = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p_), SPREAD(pr_, 0, 2), A);                      \
        AM = _mm_add_ps(AM, pr_);                                                               \
    } while (0)

#define GEMV_KERNEL(NAME, WB, CODES2, CODES1, KIND, OFF, MF)                                    \
    /* one row: its lane sums in *accp (to be reduced), the rest in *tailp */                  \
    AI void NAME##_gv1(const lm_dp_layout *L, const WB *wr, const uint8_t *xp, __m512 *accp,   \
                       float *tailp) {                                                          \
        const float *xpr = (const float *)(xp + L->off_pr);                                     \
        __m512 acc = _mm512_setzero_ps();                                                       \
        __m128 accm = _mm_setzero_ps();                                                         \
        float tail = 0.0f;                                                                      \
        int64_t ib = 0;                                                                         \
        for (; ib + 2 <= L->nb; ib += 2) GV_PAIR(KIND, CODES2, WB, wr, ib, xp, xpr, acc, accm); \
        if (ib < L->nb) {                                                                       \
            const __m256i xv = _mm256_load_si256((const __m256i *)(xp + 32 * ib));              \
            const float dx = xpr[2 * ib], ex = xpr[2 * ib + 1];                                 \
            const WB *b0 = wr + ib;                                                             \
            const float dw = f16(b0->d);                                                        \
            tail = (float)GV_DOT1(KIND, CODES1, b0, xv) * (dw * dx) +                           \
                   ((KIND) == 1 ? MF(b0) * ex : (KIND) == 0 ? -(float)(OFF) * dw * ex : 0.0f);  \
        }                                                                                       \
        if ((KIND) == 1) tail += lanes13(accm);                                                 \
        if ((KIND) == 0) tail -= (float)(OFF) * lanes13(accm);                                  \
        *accp = acc;                                                                            \
        *tailp = tail;                                                                          \
    }                                                                                           \
    /* rows one after the other (the weights stream in address order), reduced together */     \
    AI void NAME##_gv(int64_t K, const WB *w, size_t wst, const uint8_t *xp, float *y,          \
                      const int nw) {                                                           \
        const lm_dp_layout L = lm_dp_layout_of(K);                                              \
        __m512 acc[LM_NW_MAX];                                                                  \
        float tail[LM_NW_MAX];                                                                  \
        _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++)                                    \
            NAME##_gv1(&L, (const WB *)((const char *)w + (size_t)r * wst), xp, &acc[r],        \
                       &tail[r]);                                                               \
        if (nw == 4) {                                                                          \
            _mm_storeu_ps(y, _mm_add_ps(hsum4(acc[0], acc[1], acc[2], acc[3]),                  \
                                        _mm_loadu_ps(tail)));                                   \
        } else {                                                                                \
            _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) y[r] =                         \
                _mm512_reduce_add_ps(acc[r]) + tail[r];                                         \
        }                                                                                       \
    }
#define GEMV_ENTRY(NAME, WB)                                                                    \
    static void gemv_##NAME(int64_t K, const void *w, size_t wst, int nw, const uint8_t *x,     \
                            float *y) {                                                         \
        const WB *wp = w;                                                                       \
        switch (nw) {                                                                           \
        case 1: NAME##_gv(K, wp, wst, x, y, 1); break;                                          \
        case 2: NAME##_gv(K, wp, wst, x, y, 2); break;                                          \
        case 3: NAME##_gv(K, wp, wst, x, y, 3); break;                                          \
        default: NAME##_gv(K, wp, wst, x, y, 4); break;                                         \
        }                                                                                       \
    }
#define GV_NOM(b) 0.0f
#define GV_C2_Q4(b0, b1) CODES2X((b0)->qs, (b1)->qs)
#define GV_C2_Q5(b0, b1) HI5_2(CODES2X((b0)->qs, (b1)->qs), b0, b1)
#define GV_C1_Q4(b0) nib1((b0)->qs)
#define GV_C1_Q5(b0) HI5_1(nib1((b0)->qs), b0)
#define GV_NONE(...) _mm512_setzero_si512()
#define GV_NONE1(...) _mm256_setzero_si256()
#define GEMV_ALL(SFX)                                                                           \
    GEMV_KERNEL(q4_0##SFX, lm_block_q4_0, GV_C2_Q4, GV_C1_Q4, 0, 8, GV_NOM)                     \
    GEMV_KERNEL(q5_0##SFX, lm_block_q5_0, GV_C2_Q5, GV_C1_Q5, 0, 16, GV_NOM)                    \
    GEMV_KERNEL(q4_1##SFX, lm_block_q4_1, GV_C2_Q4, GV_C1_Q4, 1, 0, GV_M)                       \
    GEMV_KERNEL(q5_1##SFX, lm_block_q5_1, GV_C2_Q5, GV_C1_Q5, 1, 0, GV_M)                       \
    GEMV_ENTRY(q4_0##SFX, lm_block_q4_0)                                                        \
    GEMV_ENTRY(q5_0##SFX, lm_block_q5_0)                                                        \
    GEMV_ENTRY(q4_1##SFX, lm_block_q4_1)                                                        \
    GEMV_ENTRY(q5_1##SFX, lm_block_q5_1)
#define CODES2X nib2b
GEMV_ALL()
GEMV_KERNEL(q8_0, lm_block_q8_0, GV_NONE, GV_NONE1, 2, 0, GV_NOM)
GEMV_ENTRY(q8_0, lm_block_q8_0)
#undef CODES2X
#define CODES2X nib2g
LM_GFNI_BEGIN
GEMV_ALL(_gf)
LM_GFNI_END
#undef CODES2X

/* the decode layout of one Q8_0 (e = d Σq) or Q8_1 (e = s) row */
#define DPACK(NAME, XB, IS1)                                                                    \
    static void dpack_##NAME(int64_t K, const void *xq, uint8_t *o) {                           \
        const lm_dp_layout L = lm_dp_layout_of(K);                                              \
        const XB *x = xq;                                                                       \
        float *pr = (float *)(o + L.off_pr);                                                    \
        for (int64_t b = 0; b < 2 * L.npair; b++) {                                             \
            float d = 0.0f, e = 0.0f;                                                           \
            if (b < L.nb) {                                                                     \
                memcpy(o + 32 * b, x[b].qs, 32);                                                \
                d = f16(x[b].d);                                                                \
                e = IS1 ? pk_xs(x + b) : d * (float)sum_qs32(x[b].qs);                          \
            } else {                                                                            \
                memset(o + 32 * b, 0, 32);                                                      \
            }                                                                                   \
            pr[2 * b] = d;                                                                      \
            pr[2 * b + 1] = e;                                                                  \
        }                                                                                       \
    }
DPACK(q8_0, lm_block_q8_0, 0)
DPACK(q8_1, lm_block_q8_1, 1)

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

/* ---------------------------------------------------------------- K-quant packed GEMM */

/* Prefill of the K-quants (kernels.h: lm_pkk_layout_of): the weight chunk's codes and spread
 * sub-block scales are built once per call (the one-row kernel rebuilt them for every tile of
 * four activation rows: about a third of its work), the activations' qs are copied to aligned
 * rows, and the min terms of Q4_K / Q5_K become one float dot per (row, activation row) over
 * the sub-blocks (-dmin·min against d_x·Σq). The inner step of a 64-element chunk is
 * vpmaddubsw + vpdpwssd into an int32 accumulator per (row, activation row); one int->float,
 * one scale product and one FMA per super-block. Q6_K's -32 is one more vpdpwssd of -32·scale
 * against the bsums, in the same integer sum. Tiles of 4 weight rows × 2 activation rows keep
 * the 8 integer and 8 float accumulators, the rows' codes and scales in registers. */
#define PKK_W_SB 576
#define PKK_X_SB 320
#define PACKW_K45(NAME, WB, HAS5, LOADQH)                                                       \
    static void pack_w_##NAME(int64_t K, const void *w, size_t wst, int nw, uint8_t *dst,       \
                              size_t dst_st) {                                                  \
        const lm_pkk_layout L = lm_pkk_layout_of(K);                                            \
        const __m256i m4 = _mm256_set1_epi8(0x0f);                                              \
        for (int r = 0; r < nw; r++) {                                                          \
            const WB *wr = (const WB *)((const char *)w + (size_t)r * wst);                     \
            uint8_t *o = dst + (size_t)r * dst_st;                                              \
            float *od = (float *)(o + L.w_off_d), *oe = (float *)(o + L.w_off_e);               \
            for (int64_t sb = 0; sb < L.nsb; sb++) {                                            \
                const WB *b = wr + sb;                                                          \
                uint8_t *ob = o + (size_t)sb * PKK_W_SB;                                        \
                __m256i sc16, mn16;                                                             \
                kscales(b->scales, &sc16, &mn16);                                               \
                const __m256i qh = LOADQH(b);                                                   \
                for (int c = 0; c < 4; c++) {                                                   \
                    __m256i t = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));          \
                    __m256i lo = _mm256_and_si256(t, m4);                                       \
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m4);                 \
                    if (HAS5) {                                                                 \
                        const __m256i one = _mm256_set1_epi8(1);                                \
                        __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);       \
                        __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);   \
                        lo = _mm256_or_si256(lo, _mm256_slli_epi16(h0, 4));                     \
                        hi = _mm256_or_si256(hi, _mm256_slli_epi16(h1, 4));                     \
                    }                                                                           \
                    _mm512_store_si512(ob + 64 * c,                                             \
                                       _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));  \
                    _mm512_store_si512(ob + 256 + 64 * c, spread16(sc16, 2 * c, 16));           \
                }                                                                               \
                _mm512_store_si512(ob + 512, _mm512_setzero_si512());                           \
                od[sb] = f16(b->d);                                                             \
                int16_t mn[16];                                                                 \
                _mm256_storeu_si256((__m256i *)mn, mn16);                                       \
                const float dmin = f16(b->dmin);                                                \
                for (int s = 0; s < 8; s++) oe[8 * sb + s] = -dmin * (float)mn[2 * s];          \
            }                                                                                   \
            for (int64_t i = 8 * L.nsb; i < L.ne; i++) oe[i] = 0.0f;                            \
        }                                                                                       \
    }
PACKW_K45(q4_K, lm_block_q4_K, 0, QH_NONE)
PACKW_K45(q5_K, lm_block_q5_K, 1, QH_LOAD)

static void pack_w_q6_K(int64_t K, const void *w, size_t wst, int nw, uint8_t *dst,
                        size_t dst_st) {
    const lm_pkk_layout L = lm_pkk_layout_of(K);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(3);
    const __m512i sh_lo = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
    const __m512i sh_hi = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    for (int r = 0; r < nw; r++) {
        const lm_block_q6_K *wr = (const lm_block_q6_K *)((const char *)w + (size_t)r * wst);
        uint8_t *o = dst + (size_t)r * dst_st;
        float *od = (float *)(o + L.w_off_d), *oe = (float *)(o + L.w_off_e);
        for (int64_t sb = 0; sb < L.nsb; sb++) {
            const lm_block_q6_K *b = wr + sb;
            uint8_t *ob = o + (size_t)sb * PKK_W_SB;
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
            for (int h = 0; h < 2; h++) {
                __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
                __m256i qh256 = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
                __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(qh256), qh256, 1);
                __m512i hl = _mm512_and_si512(_mm512_srlv_epi16(qh, sh_lo), m2);
                __m512i hh = _mm512_and_si512(_mm512_srlv_epi16(qh, sh_hi), m2);
                _mm512_store_si512(ob + 128 * h, _mm512_or_si512(_mm512_and_si512(ql, m4),
                                                                 _mm512_slli_epi16(hl, 4)));
                _mm512_store_si512(ob + 128 * h + 64,
                                   _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                                   _mm512_slli_epi16(hh, 4)));
                _mm512_store_si512(ob + 256 + 128 * h, spread16(sc16, 8 * h, 8));
                _mm512_store_si512(ob + 256 + 128 * h + 64, spread16(sc16, 8 * h + 4, 8));
            }
            const __m256i off =
                _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(sc16, 5));
            _mm512_store_si512(ob + 512, _mm512_zextsi256_si512(off));
            od[sb] = f16(b->d);
        }
        for (int64_t i = 0; i < L.ne; i++) oe[i] = 0.0f;
    }
}

static void pack_x_q8_K(int64_t K, const void *xq, uint8_t *o) {
    const lm_pkk_layout L = lm_pkk_layout_of(K);
    const lm_block_q8_K *x = xq;
    float *od = (float *)(o + L.x_off_d), *oe = (float *)(o + L.x_off_e);
    for (int64_t sb = 0; sb < L.nsb; sb++) {
        uint8_t *ob = o + (size_t)sb * PKK_X_SB;
        memcpy(ob, x[sb].qs, 256);
        memcpy(ob + 256, x[sb].bsums, 32);
        memset(ob + 288, 0, 32);
        od[sb] = x[sb].d;
        for (int s = 0; s < 8; s++)
            oe[8 * sb + s] = x[sb].d * (float)(x[sb].bsums[2 * s] + x[sb].bsums[2 * s + 1]);
    }
    for (int64_t i = 8 * L.nsb; i < L.ne; i++) oe[i] = 0.0f;
}

#define KPG_NW 2 /* weight rows per sub-tile */
#define KPGEMM_KERNEL(NAME, HASOFF, HASE)                                                       \
    AI void NAME##_kpg(int64_t K, const uint8_t *pw, size_t pws, const uint8_t *px, size_t pxs, \
                       float *y, size_t ys, const int nw, const int nx) {                       \
        const lm_pkk_layout L = lm_pkk_layout_of(K);                                            \
        __m512 acc[KPG_NW][LM_NX_MAX];                                                          \
        _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++)                                    \
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) acc[r][j] =                    \
                _mm512_setzero_ps();                                                            \
        for (int64_t sb = 0; sb < L.nsb; sb++) {                                                \
            __m512i ai[KPG_NW][LM_NX_MAX];                                                      \
            _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++)                                \
                _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) ai[r][j] =                 \
                    _mm512_setzero_si512();                                                     \
            _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {                               \
                __m512i q[KPG_NW], sv[KPG_NW];                                            \
                _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) {                          \
                    const uint8_t *wb = pw + (size_t)r * pws + (size_t)sb * PKK_W_SB;           \
                    q[r] = _mm512_load_si512(wb + 64 * c);                                      \
                    sv[r] = _mm512_load_si512(wb + 256 + 64 * c);                               \
                }                                                                               \
                _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                          \
                    const __m512i xq =                                                          \
                        _mm512_load_si512(px + (size_t)j * pxs + (size_t)sb * PKK_X_SB + 64 * c); \
                    _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) ai[r][j] =             \
                        _mm512_dpwssd_epi32(ai[r][j], _mm512_maddubs_epi16(q[r], xq), sv[r]);   \
                }                                                                               \
            }                                                                                   \
            if (HASOFF)                                                                         \
                _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                          \
                    const __m512i bs =                                                          \
                        _mm512_load_si512(px + (size_t)j * pxs + (size_t)sb * PKK_X_SB + 256);  \
                    _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) ai[r][j] =             \
                        _mm512_dpwssd_epi32(ai[r][j], bs,                                       \
                                            _mm512_load_si512(pw + (size_t)r * pws +            \
                                                              (size_t)sb * PKK_W_SB + 512));    \
                }                                                                               \
            _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) {                              \
                const __m512 dw =                                                               \
                    _mm512_set1_ps(((const float *)(pw + (size_t)r * pws + L.w_off_d))[sb]);    \
                _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                          \
                    const __m512 dx =                                                           \
                        _mm512_set1_ps(((const float *)(px + (size_t)j * pxs + L.x_off_d))[sb]); \
                    acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[r][j]),                   \
                                                _mm512_mul_ps(dw, dx), acc[r][j]);              \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        if (HASE)                                                                               \
            _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++)                                \
                _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++) {                          \
                    const float *ew = (const float *)(pw + (size_t)r * pws + L.w_off_e);        \
                    const float *ex = (const float *)(px + (size_t)j * pxs + L.x_off_e);        \
                    for (int64_t i = 0; i < L.ne; i += 16)                                      \
                        acc[r][j] = _mm512_fmadd_ps(_mm512_load_ps(ew + i),                     \
                                                    _mm512_load_ps(ex + i), acc[r][j]);         \
                }                                                                               \
        if (nw == 2 && nx == 4) {                                                               \
            const __m128 s01 = hsum4(acc[0][0], acc[1][0], acc[0][1], acc[1][1]);               \
            const __m128 s23 = hsum4(acc[0][2], acc[1][2], acc[0][3], acc[1][3]);               \
            _mm_storel_pi((__m64 *)y, s01);                                                     \
            _mm_storeh_pi((__m64 *)(y + ys), s01);                                              \
            _mm_storel_pi((__m64 *)(y + 2 * ys), s23);                                          \
            _mm_storeh_pi((__m64 *)(y + 3 * ys), s23);                                          \
        } else {                                                                                \
            _Pragma("GCC unroll 4") for (int j = 0; j < nx; j++)                                \
                _Pragma("GCC unroll 4") for (int r = 0; r < nw; r++) y[j * ys + r] =            \
                    _mm512_reduce_add_ps(acc[r][j]);                                            \
        }                                                                                       \
    }
KPGEMM_KERNEL(k45, 0, 1)
KPGEMM_KERNEL(k6, 1, 0)

#define KPGEMM_NX(NAME, NW)                                                                     \
    switch (nx) {                                                                               \
    case 1: NAME##_kpg(K, pw, pws, px, pxs, y, ys, NW, 1); break;                               \
    case 2: NAME##_kpg(K, pw, pws, px, pxs, y, ys, NW, 2); break;                               \
    case 3: NAME##_kpg(K, pw, pws, px, pxs, y, ys, NW, 3); break;                               \
    default: NAME##_kpg(K, pw, pws, px, pxs, y, ys, NW, 4); break;                              \
    }
#define KPGEMM_ENTRY(NAME)                                                                      \
    static void kpgemm_##NAME(int64_t K, const uint8_t *pw, size_t pws, int nw,                 \
                              const uint8_t *px, size_t pxs, int nx, float *y, size_t ys) {     \
        for (int r = 0; r < nw; r += KPG_NW) {                                                  \
            if (nw - r >= 2) KPGEMM_NX(NAME, 2)                                                 \
            else KPGEMM_NX(NAME, 1)                                                             \
            pw += KPG_NW * pws;                                                                 \
            y += KPG_NW;                                                                        \
        }                                                                                       \
    }
KPGEMM_ENTRY(k45)
KPGEMM_ENTRY(k6)

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
    SET(LM_DTYPE_Q2_K, vdot_q2_K);
    SET(LM_DTYPE_Q3_K, vdot_q3_K);
    SET(LM_DTYPE_Q4_K, vdot_q4_K);
    SET(LM_DTYPE_Q5_K, vdot_q5_K);
    SET(LM_DTYPE_Q6_K, vdot_q6_K);
#undef SET
    /* The 32-element formats have no AVX-512 vdot: decode (n = 1) always takes gemv and
     * prefill the packed GEMM (their vdot entries stay the AVX2 kernels, never called here). */
    k->level_of[LM_DTYPE_Q4_0] = k->level_of[LM_DTYPE_Q4_1] = LM_CPU_AVX512;
    k->level_of[LM_DTYPE_Q5_0] = k->level_of[LM_DTYPE_Q5_1] = LM_CPU_AVX512;
    k->level_of[LM_DTYPE_Q8_0] = LM_CPU_AVX512;
    k->pack_x[LM_DTYPE_Q8_0] = pack_x_q8_0;
    k->pack_x[LM_DTYPE_Q8_1] = pack_x_q8_1;
    k->pack_w[LM_DTYPE_Q4_0] = pack_w_q4_0;
    k->pack_w[LM_DTYPE_Q5_0] = pack_w_q5_0;
    k->pack_w[LM_DTYPE_Q8_0] = pack_w_q8_0;
    k->pack_w[LM_DTYPE_Q4_1] = pack_w_q4_1;
    k->pack_w[LM_DTYPE_Q5_1] = pack_w_q5_1;
    k->pgemm[LM_DTYPE_Q4_0] = pgemm_q4_0;
    k->pgemm[LM_DTYPE_Q5_0] = pgemm_q5_0;
    k->pgemm[LM_DTYPE_Q8_0] = pgemm_q8_0;
    k->pgemm[LM_DTYPE_Q4_1] = pgemm_q4_1;
    k->pgemm[LM_DTYPE_Q5_1] = pgemm_q4_1;
    k->pack_x[LM_DTYPE_Q8_K] = pack_x_q8_K;
    k->pack_w[LM_DTYPE_Q4_K] = pack_w_q4_K;
    k->pack_w[LM_DTYPE_Q5_K] = pack_w_q5_K;
    k->pack_w[LM_DTYPE_Q6_K] = pack_w_q6_K;
    k->pgemm[LM_DTYPE_Q4_K] = kpgemm_k45;
    k->pgemm[LM_DTYPE_Q5_K] = kpgemm_k45;
    k->pgemm[LM_DTYPE_Q6_K] = kpgemm_k6;
    k->dpack[LM_DTYPE_Q8_0] = dpack_q8_0;
    k->dpack[LM_DTYPE_Q8_1] = dpack_q8_1;
    k->gemv[LM_DTYPE_Q8_0] = gemv_q8_0;
    k->gemv[LM_DTYPE_Q4_0] = gemv_q4_0;
    k->gemv[LM_DTYPE_Q5_0] = gemv_q5_0;
    k->gemv[LM_DTYPE_Q4_1] = gemv_q4_1;
    k->gemv[LM_DTYPE_Q5_1] = gemv_q5_1;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("gfni")) { /* the nibble unpack in one instruction */
        k->gemv[LM_DTYPE_Q4_0] = gemv_q4_0_gf;
        k->gemv[LM_DTYPE_Q5_0] = gemv_q5_0_gf;
        k->gemv[LM_DTYPE_Q4_1] = gemv_q4_1_gf;
        k->gemv[LM_DTYPE_Q5_1] = gemv_q5_1_gf;
    }
}
