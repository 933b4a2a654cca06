/*
 * quant_iq.c — scalar reference of the 4-bit codebook formats: IQ4_NL, IQ4_XS, MXFP4.
 *
 * Byte layouts (little-endian; element j):
 *   IQ4_NL (18 B, 32 elements): half d @0, qs[16] @2.
 *     q_j = qs[j] & 15 (j < 16), qs[j-16] >> 4 (j >= 16);  x_j = d * kvalues_iq4nl[q_j]
 *   IQ4_XS (136 B, 256 elements): half d @0, u16 scales_h @2, scales_l[4] @4, qs[128] @8.
 *     sub-block s = j/32 (0..7): ls = ((scales_l[s/2] >> 4*(s%2)) & 15)
 *                                     | ((scales_h >> 2s) & 3) << 4;
 *     within a sub-block, element t (0..31) has q = qs[16s + t] & 15 (t < 16) or
 *     qs[16s + t - 16] >> 4;  x = (d * (ls - 32)) * kvalues_iq4nl[q]
 *   MXFP4 (17 B, 32 elements): u8 e @0 (E8M0), qs[16] @1; nibbles as IQ4_NL;
 *     x_j = e8m0_half(e) * kvalues_mxfp4[q_j], e8m0_half(e) = 2^(e-128) (as f32 bits:
 *     e >= 2: (e - 1) << 23; e < 2: 0x00200000 << e, the two subnormals)
 * The tables are facts of the formats (GGML's kvalues_iq4nl, and the OCP E2M1 values doubled).
 * Each formula is GGML's, evaluated in the same f32 order, so results are bit-identical.
 *
 * Quantization: IQ4_NL / IQ4_XS use lemma's own search (a grid of block scales around the one
 * that maps the extreme value to an end of the codebook, least-squares refined for the chosen
 * codes; IQ4_XS then quantizes the 8 sub-block scales to 6 bits against a half d and tries the
 * neighbouring scale codes). No importance weights, so not bit-identical to llama.cpp. MXFP4
 * follows GGML's reference quantizer (nearest codebook value after a power-of-two scale).
 */
#include "tensor/quant_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

const int8_t lm_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};
const int8_t lm_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

float lm_e8m0_to_f32_half(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void lm_dq_iq4_nl(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_iq4_nl), y += 32) {
        lm_block_iq4_nl b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)lm_kvalues_iq4nl[b.qs[j] & 15];
            y[j + 16] = d * (float)lm_kvalues_iq4nl[b.qs[j] >> 4];
        }
    }
}

void lm_dq_iq4_xs(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_iq4_xs)) {
        lm_block_iq4_xs b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        for (int s = 0; s < 8; s++, y += 32) {
            int ls =
                ((b.scales_l[s / 2] >> (4 * (s % 2))) & 15) | (((b.scales_h >> (2 * s)) & 3) << 4);
            const float dl = d * (float)(ls - 32);
            const uint8_t *q = b.qs + 16 * s;
            for (int t = 0; t < 16; t++) {
                y[t] = dl * (float)lm_kvalues_iq4nl[q[t] & 15];
                y[t + 16] = dl * (float)lm_kvalues_iq4nl[q[t] >> 4];
            }
        }
    }
}

void lm_dq_mxfp4(const uint8_t *src, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_mxfp4), y += 32) {
        lm_block_mxfp4 b;
        memcpy(&b, src, sizeof b);
        const float d = lm_e8m0_to_f32_half(b.e);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)lm_kvalues_mxfp4[b.qs[j] & 15] * d;
            y[j + 16] = (float)lm_kvalues_mxfp4[b.qs[j] >> 4] * d;
        }
    }
}

/* ---- quantization ---------------------------------------------------------------------- */

static inline float clampf(float v, float lo, float hi) {
    if (!(v >= lo)) return lo;
    return v > hi ? hi : v;
}

/* Index of the codebook entry nearest to v (codebook values ascending; ties to the lower). */
static int nearest_iq4nl(float v) {
    if (!(v > (float)lm_kvalues_iq4nl[0])) return 0; /* also NaN */
    if (v >= (float)lm_kvalues_iq4nl[15]) return 15;
    int lo = 0, hi = 15; /* kv[lo] < v <= kv[hi] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (v <= (float)lm_kvalues_iq4nl[mid])
            hi = mid;
        else
            lo = mid;
    }
    return v - (float)lm_kvalues_iq4nl[lo] <= (float)lm_kvalues_iq4nl[hi] - v ? lo : hi;
}

/* Fits x[i] ~ s * kvalues_iq4nl[q[i]] for a block of n: a grid of scales around the one that
 * puts the largest-magnitude value on -127 (or +113), each refined by least squares for its
 * codes. Returns the scale of least squared error (0 for an all-zero block). */
static float fit_iq4(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (!(amax > 0.0f) || !isfinite(amax)) return 0.0f;
    float best_s = max / -127.0f, best_err = FLT_MAX;
    for (int cand = 0; cand < 30; cand++) {
        float t = 2.0f * (float)(cand % 15 - 7); /* +-14 codebook units around the extreme */
        float s = cand < 15 ? max / (-127.0f + t) : max / (113.0f + t);
        for (int iter = 0; iter < 3; iter++) {
            double sxk = 0, sk2 = 0;
            for (int i = 0; i < n; i++) {
                float k = (float)lm_kvalues_iq4nl[nearest_iq4nl(x[i] / s)];
                sxk += (double)x[i] * k;
                sk2 += (double)k * k;
            }
            float ns = sk2 > 0 ? (float)(sxk / sk2) : 0.0f;
            if (ns == 0.0f || !isfinite(ns)) break;
            s = ns;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float dlt = s * (float)lm_kvalues_iq4nl[nearest_iq4nl(x[i] / s)] - x[i];
            err += dlt * dlt;
        }
        if (err < best_err) {
            best_err = err;
            best_s = s;
        }
    }
    return best_s;
}

static lm_half half_sat(float f) {
    return lm_f32_to_half(clampf(f, -65504.0f, 65504.0f));
}

/* Codes of x[0..32) against the effective scale dl, packed as Q4_0's nibbles. */
static void pack_iq4(const float *x, float dl, uint8_t *qs) {
    for (int j = 0; j < 16; j++) {
        int q0 = dl != 0.0f ? nearest_iq4nl(x[j] / dl) : 8; /* 8: the code nearest 0 (+1) */
        int q1 = dl != 0.0f ? nearest_iq4nl(x[j + 16] / dl) : 8;
        qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

void lm_qz_iq4_nl(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_iq4_nl)) {
        lm_block_iq4_nl b;
        b.d = half_sat(fit_iq4(x, 32));
        pack_iq4(x, lm_half_to_f32(b.d), b.qs);
        memcpy(dst, &b, sizeof b);
    }
}

void lm_qz_iq4_xs(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += LM_QK_K, dst += sizeof(lm_block_iq4_xs)) {
        lm_block_iq4_xs b;
        float s[8], amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 8; j++) {
            s[j] = fit_iq4(x + 32 * j, 32);
            if (fabsf(s[j]) > amax) {
                amax = fabsf(s[j]);
                max = s[j];
            }
        }
        /* the signed largest sub-block scale maps to ls - 32 = -32, the extra negative code */
        b.d = half_sat(max / -32.0f);
        const float d = lm_half_to_f32(b.d);
        b.scales_h = 0;
        memset(b.scales_l, 0, sizeof b.scales_l);
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            int l0 = d != 0.0f ? (int)clampf(rintf(s[j] / d), -32.0f, 31.0f) : 0;
            /* try the neighbouring scale codes: keep the one of least error once re-rounded */
            int best = l0;
            float best_err = FLT_MAX;
            for (int l = l0 - 1; l <= l0 + 1; l++) {
                if (l < -32 || l > 31) continue;
                const float dl = d * (float)l;
                float err = 0.0f;
                for (int t = 0; t < 32; t++) {
                    float v =
                        dl != 0.0f ? dl * (float)lm_kvalues_iq4nl[nearest_iq4nl(xs[t] / dl)] : 0.0f;
                    err += (v - xs[t]) * (v - xs[t]);
                }
                if (err < best_err) {
                    best_err = err;
                    best = l;
                }
            }
            const int ls = best + 32;
            b.scales_l[j / 2] |= (uint8_t)((ls & 15) << (4 * (j % 2)));
            b.scales_h |= (uint16_t)((ls >> 4) << (2 * j));
            uint8_t qs[16];
            pack_iq4(xs, d * (float)best, qs);
            memcpy(b.qs + 16 * j, qs, 16);
        }
        memcpy(dst, &b, sizeof b);
    }
}

/* GGML's quantize_row_mxfp4_ref: e = floor(log2(amax)) - 2 + 127 (so amax / 2^(e-127) lands in
 * [4, 8), the top of the doubled E2M1 range up to 12 covering rounding), then each element takes
 * the nearest codebook value (the first on ties). floor(log2) is taken exactly from the float's
 * exponent (frexpf) instead of log2f, and e is clamped to [0, 254]. */
void lm_qz_mxfp4(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_mxfp4)) {
        lm_block_mxfp4 b;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        int e = 0;
        if (amax > 0.0f && isfinite(amax)) {
            int ex;
            frexpf(amax, &ex); /* amax = f * 2^ex, f in [0.5, 1): floor(log2(amax)) = ex - 1 */
            e = ex - 1 - 2 + 127;
            e = e < 0 ? 0 : e > 254 ? 254 : e;
        } else if (isinf(amax)) {
            e = 254;
        }
        b.e = (uint8_t)e;
        const float d = lm_e8m0_to_f32_half(b.e);
        for (int j = 0; j < 32; j++) {
            int best = 0;
            float best_err = fabsf((float)lm_kvalues_mxfp4[0] * d - x[j]);
            for (int k = 1; k < 16; k++) {
                float err = fabsf((float)lm_kvalues_mxfp4[k] * d - x[j]);
                if (err < best_err) {
                    best_err = err;
                    best = k;
                }
            }
            if (j < 16)
                b.qs[j] = (uint8_t)best;
            else
                b.qs[j - 16] |= (uint8_t)(best << 4);
        }
        memcpy(dst, &b, sizeof b);
    }
}
