/*
 * quant_k.c — scalar reference of the K-quants (Q2_K .. Q6_K): 256-element super-blocks split
 * into 16- or 32-element sub-blocks, each with its own small integer scale (and min) that
 * multiplies a per-super-block half scale d (and dmin).
 *
 * Byte layouts (little-endian; element e = 0..255 of the super-block; "chunk" c = e / 128,
 * r = e % 128):
 *   Q2_K (84 B): scales[16] @0, qs[64] @16, half d @80, half dmin @82.
 *     q_e = (qs[32c + r%32] >> 2*(r/32)) & 3;  sub-block s = e/16;
 *     x_e = d * (scales[s] & 15) * q_e - dmin * (scales[s] >> 4)
 *   Q3_K (110 B): hmask[32] @0, qs[64] @32, scales[12] @96, half d @108.
 *     low = (qs[32c + r%32] >> 2*(r/32)) & 3, hi = (hmask[r%32] >> (4c + r/32)) & 1,
 *     q_e = low - (hi ? 0 : 4)  (in [-4, 3]);  6-bit scale u_s, s = e/16:
 *       u_s = (s < 8 ? scales[s] & 15 : scales[s-8] >> 4) | ((scales[8 + s%4] >> 2*(s/4)) & 3) << 4
 *     x_e = d * (u_s - 32) * q_e
 *   Q4_K (144 B): half d @0, half dmin @2, scales[12] @4, qs[128] @16.
 *     sub-block s = e/32; q_e = qs[32*(e/64) + e%32] low nibble if s even, high nibble if odd;
 *     6-bit scale sc_s and min m_s (get_scale_min below):
 *       s < 4:  sc = scales[s] & 63,  m = scales[s+4] & 63
 *       s >= 4: sc = (scales[s+4] & 15) | (scales[s-4] >> 6) << 4,
 *               m  = (scales[s+4] >> 4) | (scales[s] >> 6) << 4
 *     x_e = (d * sc_s) * q_e - (dmin * m_s)
 *   Q5_K (176 B): half d @0, half dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
 *     as Q4_K with q_e += 16 * ((qh[e%32] >> s) & 1)
 *   Q6_K (210 B): ql[128] @0, qh[64] @128, int8 scales[16] @192, half d @208.
 *     c = e/128, r = e%128, l = r%32, k = r/32:
 *     low4 = ql[64c + l + 32*(k&1)] >> 4*(k>>1) & 15, hi2 = (qh[32c + l] >> 2k) & 3,
 *     q_e = (low4 | hi2 << 4) - 32;  x_e = (d * scales[e/16]) * q_e
 *
 * Dequantization evaluates GGML's expressions in the same f32 order (bit-identical to ggml and
 * gguf-py). Quantization is lemma's own: per sub-block, a search over candidate scales followed
 * by alternating least-squares refinement (re-round the codes, re-fit scale and min), then the
 * sub-block scales are themselves quantized to the format's 4/6/8 bits and every code is
 * re-rounded against the scale the decoder will really use. It is not bit-identical to
 * llama.cpp's quantizer (which weights errors by x^2) but targets plain squared error; the
 * measured round-trip errors are in docs/formats/quant.md. Non-finite input never causes
 * undefined behaviour (values are clamped before every float -> int conversion).
 */
#include "tensor/quant_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

static inline float clampf(float v, float lo, float hi) {
    if (!(v >= lo)) return lo;
    return v > hi ? hi : v;
}

/* Decodes scale/min pair j (0..7) of the Q4_K/Q5_K 12-byte scale field. */
static void get_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Encodes 8 6-bit scales and mins into the 12-byte field get_scale_min decodes. */
static void put_scale_min(const uint8_t *sc, const uint8_t *m, uint8_t *q) {
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        q[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        q[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

/* The 16 6-bit scales of Q3_K (biased by 32). */
static void q3_scales(const uint8_t *s12, int *u) {
    for (int s = 0; s < 16; s++) {
        int lo = s < 8 ? (s12[s] & 15) : (s12[s - 8] >> 4);
        int hi = (s12[8 + s % 4] >> (2 * (s / 4))) & 3;
        u[s] = lo | (hi << 4);
    }
}

/* ---- dequantization ------------------------------------------------------------------- */

void lm_dq_q2_K(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q2_K)) {
        lm_block_q2_K b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d), dmin = lm_half_to_f32(b.dmin);
        for (int e = 0; e < LM_QK_K; e++) {
            int c = e / 128, r = e % 128, s = e / 16;
            int q = (b.qs[32 * c + r % 32] >> (2 * (r / 32))) & 3;
            float dl = d * (float)(b.scales[s] & 15), ml = dmin * (float)(b.scales[s] >> 4);
            *y++ = dl * (float)q - ml;
        }
    }
}

void lm_dq_q3_K(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q3_K)) {
        lm_block_q3_K b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        int u[16];
        q3_scales(b.scales, u);
        for (int e = 0; e < LM_QK_K; e++) {
            int c = e / 128, r = e % 128, l = r % 32, k = r / 32;
            int lo = (b.qs[32 * c + l] >> (2 * k)) & 3;
            int hi = (b.hmask[l] >> (4 * c + k)) & 1;
            float dl = d * (float)(u[e / 16] - 32);
            *y++ = dl * (float)(lo - (hi ? 0 : 4));
        }
    }
}

void lm_dq_q4_K(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q4_K)) {
        lm_block_q4_K b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d), dmin = lm_half_to_f32(b.dmin);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            get_scale_min(s, b.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = b.qs + 32 * (s / 2);
            const int shift = 4 * (s & 1);
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((q[l] >> shift) & 15) - m1;
        }
    }
}

void lm_dq_q5_K(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q5_K)) {
        lm_block_q5_K b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d), dmin = lm_half_to_f32(b.dmin);
        for (int s = 0; s < 8; s++) {
            uint8_t sc, m;
            get_scale_min(s, b.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            const uint8_t *q = b.qs + 32 * (s / 2);
            const int shift = 4 * (s & 1);
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 15) + (((b.qh[l] >> s) & 1) << 4);
                *y++ = d1 * (float)v - m1;
            }
        }
    }
}

void lm_dq_q6_K(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q6_K)) {
        lm_block_q6_K b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        for (int e = 0; e < LM_QK_K; e++) {
            int c = e / 128, r = e % 128, l = r % 32, k = r / 32;
            int low = (b.ql[64 * c + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 15;
            int hi = (b.qh[32 * c + l] >> (2 * k)) & 3;
            int q = (low | (hi << 4)) - 32;
            *y++ = d * (float)b.scales[e / 16] * (float)q;
        }
    }
}

/* ---- sub-block fits ------------------------------------------------------------------- */

/* Fits x[i] ~ s * q[i] - m with integer q[i] in [0, nmax], s >= 0 and m >= 0 (the formats store
 * the offset as an unsigned min, so a sub-block whose values are all positive gets m = 0).
 * Tries a grid of starting scales, refines each candidate by alternating re-rounding and a
 * least-squares fit of (s, m), and keeps the pair of least squared error. */
static void fit_affine(const float *x, int n, int nmax, float *s_out, float *m_out) {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int i = 0; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    if (mn > 0.0f) mn = 0.0f;
    if (!(mx > mn) || !isfinite(mx - mn)) { /* constant (<= 0), empty range or non-finite */
        *s_out = 0.0f;
        *m_out = isfinite(mn) ? -mn : 0.0f;
        return;
    }
    float best_s = (mx - mn) / (float)nmax, best_m = -mn, best_err = FLT_MAX;
    for (int step = -10; step <= 10; step++) {
        float s = (mx - mn) / ((float)nmax + 0.1f * (float)step);
        float m = -mn;
        for (int iter = 0; iter < 4; iter++) {
            /* codes for the current (s, m), then the least-squares (s, m) for those codes */
            double sq = 0, sq2 = 0, sx = 0, sxq = 0;
            for (int i = 0; i < n; i++) {
                float q = s > 0 ? clampf(rintf((x[i] + m) / s), 0.0f, (float)nmax) : 0.0f;
                sq += q;
                sq2 += (double)q * q;
                sx += x[i];
                sxq += (double)x[i] * q;
            }
            double det = n * sq2 - sq * sq;
            double ns, nm;
            if (det > 0) {
                ns = (n * sxq - sq * sx) / det;
                nm = -(sq2 * sx - sq * sxq) / det; /* x ~ ns*q + b, m = -b */
            } else {
                ns = s;
                nm = m;
            }
            if (nm < 0) { /* positive offset not storable: fit the scale alone with m = 0 */
                nm = 0;
                ns = sq2 > 0 ? sxq / sq2 : s;
            }
            if (!(ns > 0)) break;
            s = (float)ns;
            m = (float)nm;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float q = clampf(rintf((x[i] + m) / s), 0.0f, (float)nmax);
            float dlt = s * q - m - x[i];
            err += dlt * dlt;
        }
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_m = m;
        }
    }
    *s_out = best_s;
    *m_out = best_m;
}

/* Fits x[i] ~ s * q[i] with integer q[i] in [-nneg, npos] (npos = nneg - 1 for the K-quants:
 * the extra negative level is used by letting s take the sign that puts the largest-magnitude
 * value on -nneg). Grid of starting scales, then least-squares refinement. */
static float fit_symmetric(const float *x, int n, int nneg, int npos) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (!(amax > 0.0f) || !isfinite(amax)) return 0.0f;
    float best_s = max / (float)-nneg, best_err = FLT_MAX;
    for (int cand = 0; cand < 42; cand++) {
        /* the extreme value near code -nneg (first 21) or near +npos (last 21) */
        float t = 0.1f * (float)(cand % 21 - 10);
        float s = cand < 21 ? max / -((float)nneg + t) : max / ((float)npos + t);
        for (int iter = 0; iter < 4; iter++) {
            double sxq = 0, sq2 = 0;
            for (int i = 0; i < n; i++) {
                float q = clampf(rintf(x[i] / s), (float)-nneg, (float)npos);
                sxq += (double)x[i] * q;
                sq2 += (double)q * q;
            }
            if (!(sq2 > 0)) break;
            float ns = (float)(sxq / sq2);
            if (ns == 0.0f || !isfinite(ns)) break;
            s = ns;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float q = clampf(rintf(x[i] / s), (float)-nneg, (float)npos);
            float dlt = s * q - x[i];
            err += dlt * dlt;
        }
        if (err < best_err) {
            best_err = err;
            best_s = s;
        }
    }
    return best_s;
}

/* Half scale for a super-block: saturates instead of overflowing, and reads back the value the
 * decoder will see. */
static float half_round(float f, lm_half *out) {
    if (f > 65504.0f) f = 65504.0f;
    if (f < -65504.0f) f = -65504.0f;
    *out = lm_f32_to_half(f);
    return lm_half_to_f32(*out);
}

/* Quantizes the unsigned per-sub-block values v[0..ns) (scales or mins, all >= 0) to integers
 * in [0, qmax] against a shared half scale; returns the decoded shared scale. */
static float quant_shared_unsigned(const float *v, int ns, int qmax, lm_half *h, uint8_t *codes) {
    float vmax = 0.0f;
    for (int s = 0; s < ns; s++)
        vmax = fmaxf(vmax, v[s]);
    float dd = half_round(vmax / (float)qmax, h);
    for (int s = 0; s < ns; s++)
        codes[s] = dd > 0.0f ? (uint8_t)clampf(rintf(v[s] / dd), 0.0f, (float)qmax) : 0;
    return dd;
}

/* Codes of an affine sub-block given the scale and min the decoder will use. */
static void codes_affine(const float *x, int n, float s, float m, int nmax, uint8_t *L) {
    for (int i = 0; i < n; i++)
        L[i] = s > 0.0f ? (uint8_t)clampf(rintf((x[i] + m) / s), 0.0f, (float)nmax) : 0;
}

/* Affine K-quant super-block (Q2_K: 16 x 16, 4-bit scale/min, codes 0..3; Q4_K: 8 x 32, 6-bit,
 * 0..15; Q5_K: 8 x 32, 6-bit, 0..31). Fills codes L[256], scale codes and mins, d and dmin. */
static void quant_affine_superblock(const float *x, int nsub, int nmax, int scale_max, uint8_t *L,
                                    uint8_t *sc, uint8_t *mc, lm_half *d, lm_half *dmin) {
    const int sub = LM_QK_K / nsub;
    float s[16] = {0}, m[16] = {0};
    for (int j = 0; j < nsub; j++)
        fit_affine(x + sub * j, sub, nmax, &s[j], &m[j]);
    const float dd = quant_shared_unsigned(s, nsub, scale_max, d, sc);
    const float dm = quant_shared_unsigned(m, nsub, scale_max, dmin, mc);
    for (int j = 0; j < nsub; j++) {
        /* Rounding each scale and min code on its own is not the best pair: try the codes
         * next to them and keep the pair whose re-rounded block has the least error, using
         * the effective values exactly as the decoder computes them. */
        const float *xs = x + sub * j;
        int best_sc = sc[j], best_mc = mc[j];
        float best_err = FLT_MAX;
        for (int a = -1; a <= 1; a++) {
            for (int c = -1; c <= 1; c++) {
                int tsc = sc[j] + a, tmc = mc[j] + c;
                if (tsc < 0 || tsc > scale_max || tmc < 0 || tmc > scale_max) continue;
                const float se = dd * (float)tsc, me = dm * (float)tmc;
                float err = 0.0f;
                for (int i = 0; i < sub; i++) {
                    float q =
                        se > 0.0f ? clampf(rintf((xs[i] + me) / se), 0.0f, (float)nmax) : 0.0f;
                    float dlt = se * q - me - xs[i];
                    err += dlt * dlt;
                }
                if (err < best_err) {
                    best_err = err;
                    best_sc = tsc;
                    best_mc = tmc;
                }
            }
        }
        sc[j] = (uint8_t)best_sc;
        mc[j] = (uint8_t)best_mc;
        codes_affine(xs, sub, dd * (float)sc[j], dm * (float)mc[j], nmax, L + sub * j);
    }
}

/* ---- quantization --------------------------------------------------------------------- */

void lm_qz_q2_K(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += LM_QK_K, dst += sizeof(lm_block_q2_K)) {
        lm_block_q2_K b;
        uint8_t L[LM_QK_K], sc[16], mc[16];
        quant_affine_superblock(x, 16, 3, 15, L, sc, mc, &b.d, &b.dmin);
        for (int s = 0; s < 16; s++)
            b.scales[s] = (uint8_t)(sc[s] | (mc[s] << 4));
        memset(b.qs, 0, sizeof b.qs);
        for (int e = 0; e < LM_QK_K; e++) {
            int c = e / 128, r = e % 128;
            b.qs[32 * c + r % 32] |= (uint8_t)(L[e] << (2 * (r / 32)));
        }
        memcpy(dst, &b, sizeof b);
    }
}

void lm_qz_q4_K(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += LM_QK_K, dst += sizeof(lm_block_q4_K)) {
        lm_block_q4_K b;
        uint8_t L[LM_QK_K], sc[8], mc[8];
        quant_affine_superblock(x, 8, 15, 63, L, sc, mc, &b.d, &b.dmin);
        put_scale_min(sc, mc, b.scales);
        for (int e = 0; e < LM_QK_K; e++) {
            int s = e / 32, idx = 32 * (s / 2) + e % 32;
            if (s & 1)
                b.qs[idx] |= (uint8_t)(L[e] << 4);
            else
                b.qs[idx] = L[e];
        }
        memcpy(dst, &b, sizeof b);
    }
}

void lm_qz_q5_K(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += LM_QK_K, dst += sizeof(lm_block_q5_K)) {
        lm_block_q5_K b;
        uint8_t L[LM_QK_K], sc[8], mc[8];
        quant_affine_superblock(x, 8, 31, 63, L, sc, mc, &b.d, &b.dmin);
        put_scale_min(sc, mc, b.scales);
        memset(b.qh, 0, sizeof b.qh);
        for (int e = 0; e < LM_QK_K; e++) {
            int s = e / 32, idx = 32 * (s / 2) + e % 32;
            uint8_t lo = L[e] & 15;
            if (s & 1)
                b.qs[idx] |= (uint8_t)(lo << 4);
            else
                b.qs[idx] = lo;
            b.qh[e % 32] |= (uint8_t)((L[e] >> 4) << s);
        }
        memcpy(dst, &b, sizeof b);
    }
}

/* Signed shared scale: the sub-block scale of largest magnitude maps to -qneg (the extra
 * negative code), as GGML does; returns the decoded shared scale. */
static float quant_shared_signed(const float *v, int ns, int qneg, lm_half *h, int *codes) {
    float amax = 0.0f, max = 0.0f;
    for (int s = 0; s < ns; s++) {
        if (fabsf(v[s]) > amax) {
            amax = fabsf(v[s]);
            max = v[s];
        }
    }
    float dd = half_round(max / (float)-qneg, h);
    for (int s = 0; s < ns; s++)
        codes[s] = dd != 0.0f ? (int)clampf(rintf(v[s] / dd), (float)-qneg, (float)(qneg - 1)) : 0;
    return dd;
}

/* As for the affine formats: try the scale codes next to the rounded one and keep the one
 * whose re-rounded sub-block has the least error. */
static void refine_signed(const float *x, int sub, int nsub, float dd, int qneg, int cneg,
                          int *codes) {
    for (int j = 0; j < nsub; j++) {
        const float *xs = x + sub * j;
        int best = codes[j];
        float best_err = FLT_MAX;
        for (int a = -1; a <= 1; a++) {
            int c = codes[j] + a;
            if (c < -cneg || c > cneg - 1) continue;
            const float se = dd * (float)c;
            float err = 0.0f;
            for (int i = 0; i < sub; i++) {
                float q =
                    se != 0.0f ? clampf(rintf(xs[i] / se), (float)-qneg, (float)(qneg - 1)) : 0.0f;
                float dlt = se * q - xs[i];
                err += dlt * dlt;
            }
            if (err < best_err) {
                best_err = err;
                best = c;
            }
        }
        codes[j] = best;
    }
}

void lm_qz_q3_K(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += LM_QK_K, dst += sizeof(lm_block_q3_K)) {
        lm_block_q3_K b;
        float s[16];
        int sc[16];
        for (int j = 0; j < 16; j++)
            s[j] = fit_symmetric(x + 16 * j, 16, 4, 3);
        const float dd = quant_shared_signed(s, 16, 32, &b.d, sc);
        refine_signed(x, 16, 16, dd, 4, 32, sc);
        memset(b.scales, 0, sizeof b.scales);
        for (int j = 0; j < 16; j++) {
            int u = sc[j] + 32; /* 0..63 */
            if (j < 8)
                b.scales[j] |= (uint8_t)(u & 15);
            else
                b.scales[j - 8] |= (uint8_t)((u & 15) << 4);
            b.scales[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
        }
        memset(b.hmask, 0, sizeof b.hmask);
        memset(b.qs, 0, sizeof b.qs);
        for (int e = 0; e < LM_QK_K; e++) {
            const float se = dd * (float)sc[e / 16];
            int q = se != 0.0f ? (int)clampf(rintf(x[e] / se), -4.0f, 3.0f) : 0;
            int u = q + 4, c = e / 128, r = e % 128, l = r % 32, k = r / 32;
            b.qs[32 * c + l] |= (uint8_t)((u & 3) << (2 * k));
            b.hmask[l] |= (uint8_t)((u >> 2) << (4 * c + k));
        }
        memcpy(dst, &b, sizeof b);
    }
}

void lm_qz_q6_K(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += LM_QK_K, dst += sizeof(lm_block_q6_K)) {
        lm_block_q6_K b;
        float s[16];
        int sc[16];
        for (int j = 0; j < 16; j++)
            s[j] = fit_symmetric(x + 16 * j, 16, 32, 31);
        const float dd = quant_shared_signed(s, 16, 128, &b.d, sc);
        refine_signed(x, 16, 16, dd, 32, 128, sc);
        for (int j = 0; j < 16; j++)
            b.scales[j] = (int8_t)sc[j];
        memset(b.ql, 0, sizeof b.ql);
        memset(b.qh, 0, sizeof b.qh);
        for (int e = 0; e < LM_QK_K; e++) {
            const float se = dd * (float)sc[e / 16];
            int q = se != 0.0f ? (int)clampf(rintf(x[e] / se), -32.0f, 31.0f) : 0;
            int u = q + 32, c = e / 128, r = e % 128, l = r % 32, k = r / 32;
            b.ql[64 * c + l + 32 * (k & 1)] |= (uint8_t)((u & 15) << (4 * (k >> 1)));
            b.qh[32 * c + l] |= (uint8_t)((u >> 4) << (2 * k));
        }
        memcpy(dst, &b, sizeof b);
    }
}
