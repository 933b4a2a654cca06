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
 *   - attention: the reference's rounding steps (q to f16, probabilities to f16, the softmax
 *     sum in double), float dot products and V sums in another order; the heads of a KV head
 *     and, in prefill, several tokens share each K/V row's conversion (see "attention" below).
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

/* ---- attention ------------------------------------------------------------------------
 *
 * Every (token, head) row goes through the reference's steps (ops.c): q rounded to f16, scores
 * q·k · scale (then the soft-cap), max, exp, the sum in double, probabilities rounded to f16,
 * then Σ p·v accumulated in f32. Only the order of the float additions differs, and for each
 * row it is fixed by the kernel alone, never by which other rows share a tile or a thread.
 * The heads of a KV head (GQA) are computed together so each K and V row is converted from f16
 * once for all of them; in prefill several tokens share those conversions too.
 *
 * One-token kernel (attend_token; decode, and the row interface): 1..8 heads of one token.
 *   q·k: 16 column lanes per (head, key) slot, up to 16 slots (Rb heads × Kn keys) summed by
 *   one transposing add tree (hsum16) whose order is the same for every slot. Softmax along
 *   each row; Σ p·v with 1..8 rows × 32 or 64 output columns in registers, V converted once
 *   per key for all rows.
 * Tile kernel (attend_tile; prefill): up to LM_CPU_ATTN_TILE_ROWS rows (tokens × heads of one
 *   KV head), the rows being SIMD lanes. q is stored transposed (Qt: d-major, one vector = one
 *   column of 16 rows); K rows are converted to f32 a block at a time and broadcast element by
 *   element, so each score is one FMA chain over d = 0..D-1, without horizontal sums. Scores
 *   are key-major (S[key][row]), so max, exp and the double sum of every row run in its lane,
 *   in key order (the reference's order for the sum). Keys outside a row's causal/window
 *   range are masked out (probability 0, and skipped by masked FMAs in Σ p·v, so a non-finite
 *   V row outside the range cannot leak in). Σ p·v: 4 rows × 64 columns per register tile,
 *   V rows converted to f32 once per block for all rows.
 */

#define ATT_INLINE static inline __attribute__((always_inline))
#define ATT_KBLK 48 /* keys per f32 block in the tile kernel: a multiple of every Kn below */

/* Walks the K or V rows of one KV head in position order: rows of a page are kv_dim halves
 * apart, so the page table is read once per page, not per key. Each step also prefetches the
 * columns [pf_off, pf_off + pf_len) of the row ATT_PF positions ahead (in the next page when
 * it is there): in decode the K/V of all layers come from L3 or memory (the weights stream
 * through the caches between two layers), and a head's slice of each row is a short strided
 * piece. Measured on 30 (18) layers of SmolLM2 (Gemma 3) decode K/V with other processes
 * loading L3: 1.3-2× faster; about 7% slower only when everything is hot and contiguous. */
#ifndef ATT_PF
#define ATT_PF 16
#endif
typedef struct kv_walk {
    const lm_kv_pool *pool;
    const lm_kv_seq *seq;
    int32_t layer, kind;
    size_t koff, stride;
    int64_t pos, left; /* next position; rows left in its page (0: look the page up) */
    const lm_half *p;
    const lm_half *next; /* row 0 of the next page (this layer, kind, head), NULL = none */
    size_t pf_off;       /* halves from the head's row start */
    size_t pf_bytes;     /* bytes to prefetch per row */
} kv_walk;

static inline kv_walk walk_at(const lm_kv_pool *pool, const lm_kv_seq *seq, int32_t layer,
                              int kind, size_t koff, int64_t pos, size_t pf_off, size_t pf_len) {
    kv_walk w = {pool, seq, layer, kind, koff, (size_t)pool->cfg.kv_dim, pos, 0, NULL, NULL,
                 pf_off, pf_len * sizeof(lm_half)};
    return w;
}

static inline const lm_half *walk_next(kv_walk *w) {
    if (w->left == 0) {
        const int64_t pt = w->pool->cfg.page_tokens, pg = w->pos / pt;
        w->p = lm_kv_row(w->pool, w->seq, w->layer, w->kind, w->pos) + w->koff;
        w->left = pt - w->pos % pt;
        w->next = pg + 1 < w->seq->n_pages
                      ? w->pool->pages[w->seq->table[pg + 1]] +
                            ((size_t)w->layer * 2 + (size_t)w->kind) * (size_t)pt * w->stride +
                            w->koff
                      : NULL;
    }
    const lm_half *r = w->p;
    const char *a = NULL;
    if (__builtin_expect(w->left > ATT_PF, 1))
        a = (const char *)(r + ATT_PF * w->stride + w->pf_off);
    else if (w->next && ATT_PF - w->left < w->pool->cfg.page_tokens)
        a = (const char *)(w->next + (ATT_PF - w->left) * w->stride + w->pf_off);
    if (a) {
        /* the first and last line of the span, and those between (at most 2 for D = 64) */
        const uintptr_t first = (uintptr_t)a & ~(uintptr_t)63;
        const uintptr_t last = ((uintptr_t)a + w->pf_bytes - 1) & ~(uintptr_t)63;
        for (uintptr_t l = first; l <= last; l += 64) _mm_prefetch((const char *)l, _MM_HINT_T0);
    }
    w->left--;
    w->pos++;
    if (w->left) w->p += w->stride;
    return r;
}

static inline int64_t window_lo(const lm_attn_params *ap, int64_t p) {
    return ap->window > 0 && p - ap->window + 1 > 0 ? p - ap->window + 1 : 0;
}

/* x, kept in a register: stops the compiler from folding a load that several FMAs share into
 * each of them (one load per FMA instead of one per vector). */
static inline __m512 in_reg(__m512 x) {
    __asm__("" : "+v"(x));
    return x;
}

static inline float *align64(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* dst (Dp floats, Dp = D rounded up to 16) = src (D floats) rounded to f16, zeros beyond D */
static inline void q_round(float *dst, const float *src, int32_t D, int32_t Dp) {
    for (int32_t c = 0; c < Dp; c += 16) {
        const __m512 x = _mm512_maskz_loadu_ps(tail_mask(D - c), src + c);
        _mm512_storeu_ps(dst + c, _mm512_cvtph_ps(_mm512_cvtps_ph(x, RNE)));
    }
}

/* Lane s of the result = the sum of the 16 lanes of a[s], for all 16 s in 45 vector ops.
 * Every lane is summed in the same order, ((x0+x2)+(x1+x3)) + ((x4+x6)+(x5+x7)) + ... (one
 * level per shuffle width), so a sum does not depend on its slot. */
static inline __m512 hsum16(const __m512 *a) {
    __m512 t[8], u[4], v[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* lanes l + (l+2) within 128-bit chunks */
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) { /* then the two pairs of each chunk */
        const __m512d x = _mm512_castps_pd(t[2 * i]), y = _mm512_castps_pd(t[2 * i + 1]);
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* chunks (0+1), (2+3) */
        v[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], 0xdd));
    /* (0+1) + (2+3) */
    return _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x88),
                         _mm512_shuffle_f32x4(v[0], v[1], 0xdd));
}

/* Scores of Rb rows (qf: Rb rows of Dp f16-rounded floats) against L keys read through kw:
 * S[r * ls + j] = scale · q_r·k_j. Slot r·Kn + kk of the add tree is (row r, key j + kk). */
ATT_INLINE void scores_1tok(const int Rb, const int Kn, const float *qf, int32_t Dp, int32_t D,
                            kv_walk *kw, int64_t L, float *S, int64_t ls, float scale) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 sc = _mm512_set1_ps(scale);
    const int32_t Dm = D & ~15;
    const __mmask16 mt = tail_mask(D - Dm);
    for (int64_t j = 0; j < L; j += Kn) {
        const int nk = L - j < Kn ? (int)(L - j) : Kn;
        const lm_half *kp[16];
        kp[0] = walk_next(kw);
#pragma GCC unroll 16
        for (int kk = 1; kk < Kn; kk++) kp[kk] = kk < nk ? walk_next(kw) : kp[0];
        __m512 acc[16];
#pragma GCC unroll 16
        for (int s = 0; s < 16; s++) acc[s] = _mm512_setzero_ps();
        for (int32_t c = 0; c < Dm; c += 16) {
            __m512 qv[8];
#pragma GCC unroll 8
            for (int r = 0; r < Rb; r++) qv[r] = _mm512_loadu_ps(qf + r * Dp + c);
#pragma GCC unroll 16
            for (int kk = 0; kk < Kn; kk++) {
                const __m512 kv =
                    _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kp[kk] + c)));
#pragma GCC unroll 8
                for (int r = 0; r < Rb; r++)
                    acc[r * Kn + kk] = _mm512_fmadd_ps(qv[r], kv, acc[r * Kn + kk]);
            }
        }
        if (Dm < D) {
            __m512 qv[8];
#pragma GCC unroll 8
            for (int r = 0; r < Rb; r++) qv[r] = _mm512_loadu_ps(qf + r * Dp + Dm);
#pragma GCC unroll 16
            for (int kk = 0; kk < Kn; kk++) {
                const __m512 kv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mt, kp[kk] + Dm));
#pragma GCC unroll 8
                for (int r = 0; r < Rb; r++)
                    acc[r * Kn + kk] = _mm512_fmadd_ps(qv[r], kv, acc[r * Kn + kk]);
            }
        }
        const __m512 w = _mm512_mul_ps(hsum16(acc), sc);
        const __mmask16 ms = tail_mask(nk);
#pragma GCC unroll 8
        for (int r = 0; r < Rb; r++) {
            const __m512 x =
                r ? _mm512_permutexvar_ps(_mm512_add_epi32(iota, _mm512_set1_epi32(r * Kn)), w)
                  : w;
            _mm512_mask_storeu_ps(S + r * ls + j, ms, x);
        }
    }
}

/* s[0..L) = f16(exp(s - max) · (1 / Σ exp)), the sum in double. */
static void softmax_row(float *s, int64_t L) {
    __m512 mxv = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < L; j += 16) {
        const __mmask16 m = tail_mask(L - j);
        /* max(s, mx): a NaN score is skipped, as the reference's `s > mx` does */
        mxv = _mm512_mask_max_ps(mxv, m, _mm512_maskz_loadu_ps(m, s + j), mxv);
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mxv));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t j = 0; j < L; j += 16) {
        const __mmask16 m = tail_mask(L - j);
        const __m512 e =
            _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), mx)));
        _mm512_mask_storeu_ps(s + j, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
    for (int64_t j = 0; j < L; j += 16) {
        const __mmask16 m = tail_mask(L - j);
        const __m512 w = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), inv);
        _mm512_mask_storeu_ps(s + j, m, _mm512_cvtph_ps(_mm512_cvtps_ph(w, RNE)));
    }
}

/* orow[r][0..D) = Σ_j S[r * ls + j] · v_j for Rb rows; V rows read through a copy of *vw,
 * 16·Cv output columns in registers per pass over the keys. */
ATT_INLINE void pv_1tok(const int Rb, const int Cv, const float *S, int64_t ls, const kv_walk *vw,
                        int64_t L, float *const *orow, int32_t D) {
    for (int32_t c0 = 0; c0 < D; c0 += 16 * Cv) {
        __m512 acc[8][4];
#pragma GCC unroll 8
        for (int r = 0; r < Rb; r++)
#pragma GCC unroll 4
            for (int cv = 0; cv < Cv; cv++) acc[r][cv] = _mm512_setzero_ps();
        kv_walk w = *vw;
        w.pf_off = (size_t)c0;
        w.pf_bytes = (size_t)(16 * Cv) * sizeof(lm_half);
        if (c0 + 16 * Cv <= D) {
            for (int64_t j = 0; j < L; j++) {
                const lm_half *v = walk_next(&w) + c0;
                __m512 vv[4];
#pragma GCC unroll 4
                for (int cv = 0; cv < Cv; cv++)
                    vv[cv] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * cv)));
#pragma GCC unroll 8
                for (int r = 0; r < Rb; r++) {
                    const __m512 p = _mm512_set1_ps(S[r * ls + j]);
#pragma GCC unroll 4
                    for (int cv = 0; cv < Cv; cv++)
                        acc[r][cv] = _mm512_fmadd_ps(p, vv[cv], acc[r][cv]);
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < Rb; r++)
#pragma GCC unroll 4
                for (int cv = 0; cv < Cv; cv++)
                    _mm512_storeu_ps(orow[r] + c0 + 16 * cv, acc[r][cv]);
        } else {
            __mmask16 m[4];
#pragma GCC unroll 4
            for (int cv = 0; cv < Cv; cv++)
                m[cv] = tail_mask(D - c0 - 16 * cv > 0 ? D - c0 - 16 * cv : 0);
            for (int64_t j = 0; j < L; j++) {
                const lm_half *v = walk_next(&w) + c0;
                __m512 vv[4];
#pragma GCC unroll 4
                for (int cv = 0; cv < Cv; cv++)
                    vv[cv] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m[cv], v + 16 * cv));
#pragma GCC unroll 8
                for (int r = 0; r < Rb; r++) {
                    const __m512 p = _mm512_set1_ps(S[r * ls + j]);
#pragma GCC unroll 4
                    for (int cv = 0; cv < Cv; cv++)
                        acc[r][cv] = _mm512_fmadd_ps(p, vv[cv], acc[r][cv]);
                }
            }
#pragma GCC unroll 8
            for (int r = 0; r < Rb; r++)
#pragma GCC unroll 4
                for (int cv = 0; cv < Cv; cv++)
                    _mm512_mask_storeu_ps(orow[r] + c0 + 16 * cv, m[cv], acc[r][cv]);
        }
    }
}

/* Heads [h0, h1) (one KV head's) of token i. S: 8 rows of ls >= L floats; qf: 8 × Dp. */
static void attend_token(float *out, const float *q, const lm_kv_pool *pool,
                         const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                         const lm_attn_params *ap, int64_t i, int32_t h0, int32_t h1, float *S,
                         int64_t ls, float *qf) {
    const int32_t D = ap->head_dim, H = ap->n_head, G = ap->n_head / ap->n_head_kv;
    const int32_t Dp = (D + 15) & ~15;
    const int64_t p = pos0 + i, lo = window_lo(ap, p), L = p - lo + 1;
    const size_t koff = (size_t)(h0 / G) * (size_t)D;
    for (int32_t hb = h0; hb < h1; hb += 8) {
        const int Rb = h1 - hb < 8 ? h1 - hb : 8;
        float *orow[8];
        for (int r = 0; r < Rb; r++) {
            q_round(qf + r * Dp, q + (i * H + hb + r) * D, D, Dp);
            orow[r] = out + (i * H + hb + r) * D;
        }
        kv_walk kw = walk_at(pool, seq, layer, 0, koff, lo, 0, (size_t)D);
        switch (Rb) {
        case 1: scores_1tok(1, 16, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        case 2: scores_1tok(2, 8, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        case 3: scores_1tok(3, 5, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        case 4: scores_1tok(4, 4, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        case 5: scores_1tok(5, 3, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        case 6: scores_1tok(6, 2, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        case 7: scores_1tok(7, 2, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        default: scores_1tok(8, 2, qf, Dp, D, &kw, L, S, ls, ap->scale); break;
        }
        for (int r = 0; r < Rb; r++) {
            float *s = S + r * ls;
            if (ap->softcap > 0.0f)
                for (int64_t j = 0; j < L; j++) s[j] = ap->softcap * tanhf(s[j] / ap->softcap);
            softmax_row(s, L);
        }
        const kv_walk vw = walk_at(pool, seq, layer, 1, koff, lo, 0, (size_t)D);
        switch (Rb) {
        case 1: pv_1tok(1, 4, S, ls, &vw, L, orow, D); break;
        case 2: pv_1tok(2, 4, S, ls, &vw, L, orow, D); break;
        case 3: pv_1tok(3, 4, S, ls, &vw, L, orow, D); break;
        case 4: pv_1tok(4, 4, S, ls, &vw, L, orow, D); break;
        case 5: pv_1tok(5, 2, S, ls, &vw, L, orow, D); break;
        case 6: pv_1tok(6, 2, S, ls, &vw, L, orow, D); break;
        case 7: pv_1tok(7, 2, S, ls, &vw, L, orow, D); break;
        default: pv_1tok(8, 2, S, ls, &vw, L, orow, D); break;
        }
    }
}

/* S[(kk + kn) * Rp + lane] = scale · Σ_d Qt[d][lane] · Kf[kk + kn][d] for the keys of one f32
 * block (nb keys, rows of D floats; Kn-1 spare rows after them), Rv vectors of 16 rows. */
ATT_INLINE void scores_tile(const int Rv, const int Kn, const float *Qt, int32_t Rp,
                            const float *Kf, int32_t D, int64_t nb, float *S, float scale) {
    const __m512 sc = _mm512_set1_ps(scale);
    for (int64_t kk = 0; kk < nb; kk += Kn) {
        __m512 acc[16];
#pragma GCC unroll 16
        for (int s = 0; s < Kn * Rv; s++) acc[s] = _mm512_setzero_ps();
        const float *kr = Kf + kk * D;
        for (int32_t d = 0; d < D; d++) {
            __m512 qv[4];
#pragma GCC unroll 4
            for (int rv = 0; rv < Rv; rv++)
                qv[rv] = in_reg(_mm512_load_ps(Qt + (size_t)d * Rp + 16 * rv));
#pragma GCC unroll 16
            for (int kn = 0; kn < Kn; kn++) {
                const __m512 b = _mm512_set1_ps(kr[kn * D + d]);
#pragma GCC unroll 4
                for (int rv = 0; rv < Rv; rv++)
                    acc[kn * Rv + rv] = _mm512_fmadd_ps(qv[rv], b, acc[kn * Rv + rv]);
            }
        }
#pragma GCC unroll 16
        for (int kn = 0; kn < Kn; kn++)
#pragma GCC unroll 4
            for (int rv = 0; rv < Rv; rv++)
                _mm512_store_ps(S + (kk + kn) * Rp + 16 * rv,
                                _mm512_mul_ps(acc[kn * Rv + rv], sc));
    }
}

/* One V block (keys kb .. kb+nb-1 as f32 rows of Dp in Vf) into the output rows r0..r0+3 of a
 * tile: keys [a, b] (absolute indices), all four rows valid on [f0, f1]; elsewhere each row
 * takes only the keys of its own range [lo[r], hi[r]]. orow[r] NULL = a padding row. */
static void pv_tile_rows(const float *S, int32_t Rp, int32_t r0, const int32_t *lo,
                         const int32_t *hi, const float *Vf, int32_t Dp, int64_t kb, int64_t a,
                         int64_t b, int64_t f0, int64_t f1, float *const *orow, int32_t D,
                         int32_t c0) {
    __mmask16 m[4];
    for (int cv = 0; cv < 4; cv++) m[cv] = tail_mask(D - c0 - 16 * cv > 0 ? D - c0 - 16 * cv : 0);
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int cv = 0; cv < 4; cv++)
            acc[r][cv] = orow[r] ? _mm512_maskz_loadu_ps(m[cv], orow[r] + c0 + 16 * cv)
                                 : _mm512_setzero_ps();
    const float *vf = Vf + c0;
    const float *sp = S + r0;
    for (int seg = 0; seg < 3; seg++) {
        /* segments: [a, f0), [f0, f1] (all rows valid, f0 > f1 when none), (f1, b] */
        int64_t j0, j1;
        const int full = seg == 1 && f0 <= f1;
        if (f0 > f1) {
            if (seg != 0) break;
            j0 = a, j1 = b;
        } else if (seg == 0) {
            j0 = a, j1 = f0 - 1;
        } else if (seg == 1) {
            j0 = f0, j1 = f1;
        } else {
            j0 = f1 + 1, j1 = b;
        }
        if (full) {
            for (int64_t j = j0; j <= j1; j++) {
                const float *v = vf + (j - kb) * Dp;
                const float *pj = sp + j * Rp;
                __m512 vv[4];
#pragma GCC unroll 4
                for (int cv = 0; cv < 4; cv++) vv[cv] = in_reg(_mm512_load_ps(v + 16 * cv));
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    const __m512 p = _mm512_set1_ps(pj[r]);
#pragma GCC unroll 4
                    for (int cv = 0; cv < 4; cv++)
                        acc[r][cv] = _mm512_fmadd_ps(p, vv[cv], acc[r][cv]);
                }
            }
        } else {
            for (int64_t j = j0; j <= j1; j++) {
                const float *v = vf + (j - kb) * Dp;
                const float *pj = sp + j * Rp;
                __m512 vv[4];
#pragma GCC unroll 4
                for (int cv = 0; cv < 4; cv++) vv[cv] = in_reg(_mm512_load_ps(v + 16 * cv));
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    const __mmask16 mr = j >= lo[r0 + r] && j <= hi[r0 + r] ? 0xffff : 0;
                    const __m512 p = _mm512_set1_ps(pj[r]);
#pragma GCC unroll 4
                    for (int cv = 0; cv < 4; cv++)
                        acc[r][cv] = _mm512_mask3_fmadd_ps(p, vv[cv], acc[r][cv], mr);
                }
            }
        }
    }
    for (int r = 0; r < 4; r++)
        if (orow[r])
            for (int cv = 0; cv < 4; cv++)
                _mm512_mask_storeu_ps(orow[r] + c0 + 16 * cv, m[cv], acc[r][cv]);
}

/* Tokens [i0, i1) (at least 2) × heads [h0, h1) of one KV head, at most
 * LM_CPU_ATTN_TILE_ROWS rows; row r = token i0 + r / Gu, head h0 + r % Gu. */
static void attend_tile(float *out, const float *q, const lm_kv_pool *pool, const lm_kv_seq *seq,
                        int32_t layer, int64_t pos0, const lm_attn_params *ap, int64_t i0,
                        int64_t i1, int32_t h0, int32_t h1, float *scratch) {
    const int32_t D = ap->head_dim, H = ap->n_head, G = ap->n_head / ap->n_head_kv;
    const int32_t Dp = (D + 15) & ~15, Gu = h1 - h0;
    const int32_t R = (int32_t)(i1 - i0) * Gu, Rv = (R + 15) / 16, Rp = Rv * 16;
    const size_t koff = (size_t)(h0 / G) * (size_t)D;
    const int64_t klo = window_lo(ap, pos0 + i0), khi = pos0 + i1 - 1, L = khi - klo + 1;
    int32_t lo[LM_CPU_ATTN_TILE_ROWS], hi[LM_CPU_ATTN_TILE_ROWS]; /* key ranges, from klo */
    float *orow[LM_CPU_ATTN_TILE_ROWS + 3];
    float *Qt = align64(scratch);                     /* (D, Rp) */
    float *S = Qt + (size_t)Dp * Rp;                  /* (L + 16, Rp) */
    float *buf = S + (size_t)(L + 16) * Rp;           /* (ATT_KBLK + 16, Dp): K, then V rows */
    float qr[1024] __attribute__((aligned(64)));      /* head_dim <= 1024 (checked at bind) */

    for (int32_t r = 0; r < Rp + 3; r++) {
        if (r < R) {
            const int64_t i = i0 + r / Gu, p = pos0 + i;
            const int32_t h = h0 + r % Gu;
            lo[r] = (int32_t)(window_lo(ap, p) - klo);
            hi[r] = (int32_t)(p - klo);
            orow[r] = out + (i * H + h) * D;
            q_round(qr, q + (i * H + h) * D, D, Dp);
            for (int32_t d = 0; d < D; d++) Qt[(size_t)d * Rp + r] = qr[d];
            memset(orow[r], 0, (size_t)D * sizeof(float));
        } else {
            if (r < Rp) {
                lo[r] = (int32_t)L, hi[r] = -1; /* padding lanes: no key */
                for (int32_t d = 0; d < D; d++) Qt[(size_t)d * Rp + r] = 0.0f;
            }
            orow[r] = NULL;
        }
    }

    /* scores, one f32 block of K rows at a time */
    kv_walk kw = walk_at(pool, seq, layer, 0, koff, klo, 0, (size_t)D);
    for (int64_t kb = 0; kb < L; kb += ATT_KBLK) {
        const int64_t nb = L - kb < ATT_KBLK ? L - kb : ATT_KBLK;
        for (int64_t t = 0; t < nb; t++) {
            const lm_half *k = walk_next(&kw);
            float *dst = buf + t * D;
            for (int32_t c = 0; c < D; c += 16) {
                const __mmask16 m = tail_mask(D - c);
                const __m512 x = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, k + c));
                _mm512_mask_storeu_ps(dst + c, m, x);
            }
        }
        if (nb < ATT_KBLK) memset(buf + nb * D, 0, (size_t)16 * D * sizeof(float));
        float *Sb = S + kb * Rp;
        switch (Rv) {
        case 1: scores_tile(1, 12, Qt, Rp, buf, D, nb, Sb, ap->scale); break;
        case 2: scores_tile(2, 6, Qt, Rp, buf, D, nb, Sb, ap->scale); break;
        case 3: scores_tile(3, 4, Qt, Rp, buf, D, nb, Sb, ap->scale); break;
        default: scores_tile(4, 3, Qt, Rp, buf, D, nb, Sb, ap->scale); break;
        }
    }
    if (ap->softcap > 0.0f)
        for (size_t e = 0; e < (size_t)L * Rp; e++) S[e] = ap->softcap * tanhf(S[e] / ap->softcap);

    /* softmax down each lane (row) over its own keys: keys outside a row's range become -inf
     * (exp gives exactly 0, adding nothing to the sum); that takes compares only on the edge
     * keys [j0, f0) and (f1, j1] where some lane of the vector is out of range. Entries of a
     * row outside its range are never read again (Σ p·v masks them), nor are padding lanes. */
    for (int32_t rv = 0; rv < Rv; rv++) {
        const __m512i lov = _mm512_loadu_si512(lo + 16 * rv);
        const __m512i hiv = _mm512_loadu_si512(hi + 16 * rv);
        int64_t j0 = L, j1 = -1, f0 = -1, f1 = L;
        for (int32_t r = 16 * rv; r < 16 * rv + 16 && r < R; r++) {
            if (lo[r] < j0) j0 = lo[r];
            if (hi[r] > j1) j1 = hi[r];
            if (lo[r] > f0) f0 = lo[r];
            if (hi[r] < f1) f1 = hi[r];
        }
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int64_t j = j0; j <= j1; j++) {
            float *sj = S + j * Rp + 16 * rv;
            __m512 x = _mm512_load_ps(sj);
            if (j < f0 || j > f1) {
                const __m512i jv = _mm512_set1_epi32((int32_t)j);
                const __mmask16 m =
                    _mm512_cmple_epi32_mask(lov, jv) & _mm512_cmple_epi32_mask(jv, hiv);
                x = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), m, x);
                _mm512_store_ps(sj, x);
            }
            mx = _mm512_max_ps(x, mx); /* max(s, mx): a NaN score is skipped, as in the reference */
        }
        __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
        for (int64_t j = j0; j <= j1; j++) {
            float *sj = S + j * Rp + 16 * rv;
            const __m512 e = exp16(_mm512_sub_ps(_mm512_load_ps(sj), mx));
            _mm512_store_ps(sj, e);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
        }
        const __m512d one = _mm512_set1_pd(1.0);
        const __m512 inv = _mm512_insertf32x8(
            _mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_div_pd(one, s0))),
            _mm512_cvtpd_ps(_mm512_div_pd(one, s1)), 1);
        for (int64_t j = j0; j <= j1; j++) {
            float *sj = S + j * Rp + 16 * rv;
            const __m512 w = _mm512_mul_ps(_mm512_load_ps(sj), inv);
            _mm512_store_ps(sj, _mm512_cvtph_ps(_mm512_cvtps_ph(w, RNE)));
        }
    }

    /* Σ p·v, one f32 block of V rows at a time */
    kv_walk vw = walk_at(pool, seq, layer, 1, koff, klo, 0, (size_t)D);
    for (int64_t kb = 0; kb < L; kb += ATT_KBLK) {
        const int64_t nb = L - kb < ATT_KBLK ? L - kb : ATT_KBLK;
        for (int64_t t = 0; t < nb; t++) {
            const lm_half *v = walk_next(&vw);
            float *dst = buf + t * Dp;
            for (int32_t c = 0; c < Dp; c += 16) {
                const __m256i h = _mm256_maskz_loadu_epi16(tail_mask(D - c), v + c);
                _mm512_store_ps(dst + c, _mm512_cvtph_ps(h));
            }
        }
        for (int32_t c0 = 0; c0 < D; c0 += 64)
            for (int32_t r0 = 0; r0 < R; r0 += 4) {
                const int32_t nr = R - r0 < 4 ? R - r0 : 4;
                int64_t ulo = INT64_MAX, uhi = -1, flo = -1, fhi = INT64_MAX;
                for (int32_t r = r0; r < r0 + nr; r++) {
                    if (lo[r] < ulo) ulo = lo[r];
                    if (hi[r] > uhi) uhi = hi[r];
                    if (lo[r] > flo) flo = lo[r];
                    if (hi[r] < fhi) fhi = hi[r];
                }
                const int64_t a = ulo > kb ? ulo : kb, b = uhi < kb + nb - 1 ? uhi : kb + nb - 1;
                if (a > b) continue;
                const int64_t f0 = flo > a ? flo : a, f1 = fhi < b ? fhi : b;
                pv_tile_rows(S, Rp, r0, lo, hi, buf, Dp, kb, a, b, f0, f1, orow + r0, D, c0);
            }
    }
}

void lm_cpu_attention_tile_avx512(float *out, const float *q, const lm_kv_pool *pool,
                                  const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                                  const lm_attn_params *ap, int64_t i0, int64_t i1, int32_t h0,
                                  int32_t h1, float *scratch) {
    if (i1 - i0 >= 2) {
        attend_tile(out, q, pool, seq, layer, pos0, ap, i0, i1, h0, h1, scratch);
        return;
    }
    const int64_t ls = (pos0 + i0 + 1 + 15) & ~(int64_t)15; /* >= the token's key count */
    float *S = align64(scratch);
    attend_token(out, q, pool, seq, layer, pos0, ap, i0, h0, h1, S, ls, S + 8 * ls);
}

void lm_cpu_attention_rows_avx512(float *out, const float *q, const lm_kv_pool *pool,
                                  const lm_kv_seq *seq, int32_t layer, int64_t pos0,
                                  const lm_attn_params *ap, int64_t r0, int64_t r1,
                                  float *scratch) {
    float qf[1024] __attribute__((aligned(64))); /* head_dim <= 1024 is checked at bind time */
    for (int64_t r = r0; r < r1; r++) {
        const int64_t i = r / ap->n_head;
        const int32_t h = (int32_t)(r % ap->n_head);
        attend_token(out, q, pool, seq, layer, pos0, ap, i, h, h + 1, scratch,
                     pos0 + i + 1, qf);
    }
}
