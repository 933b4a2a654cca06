/*
 * quant_ref.c — the scalar reference of every weight and activation format: dispatch of
 * lm_dequant_row / lm_quantize_row, the float formats (F32, F16, BF16), the 32-element legacy
 * formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1) and Q8_K. The K-quants are in quant_k.c, the
 * codebook formats (IQ4_NL, IQ4_XS, MXFP4) in quant_iq.c. This code is the specification that
 * every SIMD and CUDA kernel is tested against; docs/formats/quant.md has the layouts.
 *
 * Byte layouts (little-endian, packed; "half" = IEEE binary16; element j of a 32-block):
 *   Q4_0 (18 B): half d @0, qs[16] @2.  q_j = qs[j] & 15 (j < 16), qs[j-16] >> 4 (j >= 16);
 *                x_j = (q_j - 8) * d
 *   Q4_1 (20 B): half d @0, half m @2, qs[16] @4; nibbles as Q4_0; x_j = q_j * d + m
 *   Q5_0 (22 B): half d @0, u32 qh @2, qs[16] @6; q_j = nibble_j | (bit j of qh) << 4;
 *                x_j = (q_j - 16) * d
 *   Q5_1 (24 B): half d @0, half m @2, u32 qh @4, qs[16] @8; x_j = q_j * d + m
 *   Q8_0 (34 B): half d @0, int8 qs[32] @2; x_j = qs[j] * d
 *   Q8_1 (36 B): half d @0, half s @2, int8 qs[32] @4; x_j = qs[j] * d; s = d * sum(qs)
 *   Q8_K (292 B, 256 elements): f32 d @0, int8 qs[256] @4, int16 bsums[16] @260 (sum of qs
 *                over each 16 elements); x_j = d * qs[j]
 *
 * Numerics. Dequantization computes exactly GGML's expressions in f32 (same operations, same
 * order), so results are bit-identical to ggml's dequantize_row_* and to gguf-py. The legacy and
 * activation quantizers follow GGML's *_ref quantizers (same scale choice and rounding), so
 * files and activations match llama.cpp's bit for bit on finite, in-range input:
 *   Q8_0/Q8_1: d = amax / 127, q = roundf(x / d) (half away from zero), d stored as half.
 *   Q8_K:      iscale = -127 / (the signed value of largest magnitude), q = min(127,
 *              rint(iscale * x)) (ties to even), d = 1 / iscale kept in f32 (d may be negative).
 *   Q4_0/Q5_0: d = (signed max-magnitude value) / -8 (resp. -16), q = trunc(x / d + 8.5).
 *   Q4_1/Q5_1: d = (max - min) / 15 (31), m = min, q = trunc((x - m) / d + 0.5).
 * Departures, for hostile input only: a scale beyond half's range saturates to +-65504 instead
 * of becoming infinity, and every float is clamped to the code range before its conversion to
 * int, so NaN or infinite input gives some valid block instead of undefined behaviour.
 */
#include "tensor/quant_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* f32 -> half, saturating to the largest finite half: a block scale must never be infinite
 * (inf * 0 in the dot products would make NaN). NaN stays NaN. */
static lm_half half_sat(float f) {
    if (f > 65504.0f) f = 65504.0f;
    if (f < -65504.0f) f = -65504.0f;
    return lm_f32_to_half(f);
}

/* Clamps v into [lo, hi]; NaN goes to lo. */
static inline float clampf(float v, float lo, float hi) {
    if (!(v >= lo)) return lo;
    return v > hi ? hi : v;
}

/* ---- float formats --------------------------------------------------------------------- */

static void dq_f32(const uint8_t *src, float *dst, int64_t n) {
    memmove(dst, src, (size_t)n * sizeof(float)); /* a caller may convert in place */
}
static void dq_f16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        lm_half h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = lm_half_to_f32(h);
    }
}
static void dq_bf16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        lm_bf16 h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = lm_bf16_to_f32(h);
    }
}
static void qz_f32(const float *src, uint8_t *dst, int64_t n) {
    memmove(dst, src, (size_t)n * sizeof(float));
}
static void qz_f16(const float *src, uint8_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        lm_half h = lm_f32_to_half(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}
static void qz_bf16(const float *src, uint8_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        lm_bf16 h = lm_f32_to_bf16(src[i]);
        memcpy(dst + 2 * i, &h, 2);
    }
}

/* ---- legacy 32-element formats: dequantization ----------------------------------------- */

static void dq_q4_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q4_0), dst += 32) {
        lm_block_q4_0 b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)((b.qs[j] & 0x0f) - 8) * d;
            dst[j + 16] = (float)((b.qs[j] >> 4) - 8) * d;
        }
    }
}

static void dq_q4_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q4_1), dst += 32) {
        lm_block_q4_1 b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d), m = lm_half_to_f32(b.m);
        for (int j = 0; j < 16; j++) {
            dst[j] = (float)(b.qs[j] & 0x0f) * d + m;
            dst[j + 16] = (float)(b.qs[j] >> 4) * d + m;
        }
    }
}

static void dq_q5_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q5_0), dst += 32) {
        lm_block_q5_0 b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        uint32_t qh;
        memcpy(&qh, b.qh, 4);
        for (int j = 0; j < 16; j++) {
            int q0 = (b.qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
            int q1 = (b.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = (float)(q0 - 16) * d;
            dst[j + 16] = (float)(q1 - 16) * d;
        }
    }
}

static void dq_q5_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q5_1), dst += 32) {
        lm_block_q5_1 b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d), m = lm_half_to_f32(b.m);
        uint32_t qh;
        memcpy(&qh, b.qh, 4);
        for (int j = 0; j < 16; j++) {
            int q0 = (b.qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
            int q1 = (b.qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            dst[j] = (float)q0 * d + m;
            dst[j + 16] = (float)q1 * d + m;
        }
    }
}

static void dq_q8_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q8_0), dst += 32) {
        lm_block_q8_0 b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        for (int j = 0; j < 32; j++)
            dst[j] = (float)b.qs[j] * d;
    }
}

static void dq_q8_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q8_1), dst += 32) {
        lm_block_q8_1 b;
        memcpy(&b, src, sizeof b);
        const float d = lm_half_to_f32(b.d);
        for (int j = 0; j < 32; j++)
            dst[j] = (float)b.qs[j] * d;
    }
}

static void dq_q8_K(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += sizeof(lm_block_q8_K), dst += LM_QK_K) {
        lm_block_q8_K b;
        memcpy(&b, src, sizeof b);
        for (int j = 0; j < LM_QK_K; j++)
            dst[j] = b.d * (float)b.qs[j];
    }
}

/* ---- legacy 32-element formats: quantization ------------------------------------------- */

/* The value of largest magnitude in x[0..n) (the first one on ties), with its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void qz_q4_0(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_q4_0)) {
        lm_block_q4_0 b;
        /* the extreme value maps to code 0 (q - 8 = -8), the one level the positive side lacks */
        const float d = signed_absmax(x, 32) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b.d = half_sat(d);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)clampf(x[j] * id + 8.5f, 0.0f, 15.0f);
            int q1 = (int)clampf(x[j + 16] * id + 8.5f, 0.0f, 15.0f);
            b.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(dst, &b, sizeof b);
    }
}

static void minmax(const float *x, int n, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

static void qz_q4_1(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_q4_1)) {
        lm_block_q4_1 b;
        float mn, mx;
        minmax(x, 32, &mn, &mx);
        const float d = (mx - mn) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b.d = half_sat(d);
        b.m = half_sat(mn);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)clampf((x[j] - mn) * id + 0.5f, 0.0f, 15.0f);
            int q1 = (int)clampf((x[j + 16] - mn) * id + 0.5f, 0.0f, 15.0f);
            b.qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(dst, &b, sizeof b);
    }
}

static void qz_q5_0(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_q5_0)) {
        lm_block_q5_0 b;
        const float d = signed_absmax(x, 32) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b.d = half_sat(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = (int)clampf(x[j] * id + 16.5f, 0.0f, 31.0f);
            int q1 = (int)clampf(x[j + 16] * id + 16.5f, 0.0f, 31.0f);
            b.qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(b.qh, &qh, 4);
        memcpy(dst, &b, sizeof b);
    }
}

static void qz_q5_1(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_q5_1)) {
        lm_block_q5_1 b;
        float mn, mx;
        minmax(x, 32, &mn, &mx);
        const float d = (mx - mn) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b.d = half_sat(d);
        b.m = half_sat(mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = (int)clampf((x[j] - mn) * id + 0.5f, 0.0f, 31.0f);
            int q1 = (int)clampf((x[j + 16] - mn) * id + 0.5f, 0.0f, 31.0f);
            b.qs[j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(b.qh, &qh, 4);
        memcpy(dst, &b, sizeof b);
    }
}

/* Q8_0 and Q8_1 share the scale and rounding; returns sum(q). roundf (ties away from zero) is
 * GGML's choice in quantize_row_q8_0_ref, kept so activations match llama.cpp's. */
static int q8_block(const float *x, int8_t *qs, float *d_out) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int q = (int)roundf(clampf(x[j] * id, -127.0f, 127.0f));
        qs[j] = (int8_t)q;
        sum += q;
    }
    *d_out = d;
    return sum;
}

static void qz_q8_0(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_q8_0)) {
        lm_block_q8_0 b;
        float d;
        q8_block(x, b.qs, &d);
        b.d = half_sat(d);
        memcpy(dst, &b, sizeof b);
    }
}

static void qz_q8_1(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, dst += sizeof(lm_block_q8_1)) {
        lm_block_q8_1 b;
        float d;
        int sum = q8_block(x, b.qs, &d);
        b.d = half_sat(d);
        /* s uses the unrounded d, as GGML stores it: s = d * sum(q), then rounded to half */
        b.s = half_sat((float)sum * d);
        memcpy(dst, &b, sizeof b);
    }
}

static void qz_q8_K(const float *x, uint8_t *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += LM_QK_K, dst += sizeof(lm_block_q8_K)) {
        lm_block_q8_K b;
        memset(&b, 0, sizeof b); /* an all-zero block: d = 0, qs = 0, bsums = 0 */
        const float max = signed_absmax(x, LM_QK_K);
        if (max != 0.0f && isfinite(max)) {
            /* -127 (not -128) keeps codes symmetric in [-127, 127], as GGML does for its
             * sign-trick SIMD dots; the extreme value maps to -127 exactly. */
            const float iscale = -127.0f / max;
            for (int j = 0; j < LM_QK_K; j++) {
                int q = lm_nearest_int(clampf(iscale * x[j], -128.0f, 127.0f));
                b.qs[j] = (int8_t)q;
            }
            for (int g = 0; g < LM_QK_K / 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++)
                    sum += b.qs[16 * g + j];
                b.bsums[g] = (int16_t)sum;
            }
            b.d = 1.0f / iscale;
        }
        memcpy(dst, &b, sizeof b);
    }
}

/* ---- dispatch -------------------------------------------------------------------------- */

typedef void (*dq_fn)(const uint8_t *src, float *dst, int64_t nb);
typedef void (*qz_fn)(const float *src, uint8_t *dst, int64_t nb);

typedef struct {
    dq_fn dq;
    qz_fn qz;
} fmt_ops;

static const fmt_ops *ops_of(lm_dtype t) {
    /* clang-format off */
    static const fmt_ops ops[LM_DTYPE_GGML_COUNT] = {
        [LM_DTYPE_F32] = {dq_f32, qz_f32},
        [LM_DTYPE_F16] = {dq_f16, qz_f16},
        [LM_DTYPE_BF16] = {dq_bf16, qz_bf16},
        [LM_DTYPE_Q4_0] = {dq_q4_0, qz_q4_0},
        [LM_DTYPE_Q4_1] = {dq_q4_1, qz_q4_1},
        [LM_DTYPE_Q5_0] = {dq_q5_0, qz_q5_0},
        [LM_DTYPE_Q5_1] = {dq_q5_1, qz_q5_1},
        [LM_DTYPE_Q8_0] = {dq_q8_0, qz_q8_0},
        [LM_DTYPE_Q8_1] = {dq_q8_1, qz_q8_1},
        [LM_DTYPE_Q2_K] = {lm_dq_q2_K, lm_qz_q2_K},
        [LM_DTYPE_Q3_K] = {lm_dq_q3_K, lm_qz_q3_K},
        [LM_DTYPE_Q4_K] = {lm_dq_q4_K, lm_qz_q4_K},
        [LM_DTYPE_Q5_K] = {lm_dq_q5_K, lm_qz_q5_K},
        [LM_DTYPE_Q6_K] = {lm_dq_q6_K, lm_qz_q6_K},
        [LM_DTYPE_Q8_K] = {dq_q8_K, qz_q8_K},
        [LM_DTYPE_IQ4_NL] = {lm_dq_iq4_nl, lm_qz_iq4_nl},
        [LM_DTYPE_IQ4_XS] = {lm_dq_iq4_xs, lm_qz_iq4_xs},
        [LM_DTYPE_MXFP4] = {lm_dq_mxfp4, lm_qz_mxfp4},
    };
    /* clang-format on */
    if ((int)t < 0 || t >= LM_DTYPE_GGML_COUNT) return NULL;
    return &ops[t];
}

int lm_can_dequant(lm_dtype t) {
    const fmt_ops *o = ops_of(t);
    return o && o->dq;
}

int lm_can_quantize(lm_dtype t) {
    const fmt_ops *o = ops_of(t);
    return o && o->qz;
}

/* Number of blocks of a row of n elements of t, or -1 when n is negative or not a multiple of
 * the block size, or the row's byte size does not fit size_t. */
static int64_t blocks_of(lm_dtype t, int64_t n) {
    const lm_dtype_traits *tr = lm_dtype_get(t);
    if (!tr || n < 0 || n % tr->block_size) return -1;
    if (n > 0 && lm_dtype_row_size(t, (uint64_t)n) == 0) return -1;
    return n / tr->block_size;
}

int lm_dequant_row(lm_dtype t, const void *src, float *dst, int64_t n) {
    const fmt_ops *o = ops_of(t);
    if (!o || !o->dq) return -1;
    int64_t nb = blocks_of(t, n);
    if (nb < 0 || (nb > 0 && (!src || !dst))) return -1;
    o->dq((const uint8_t *)src, dst, nb);
    return 0;
}

size_t lm_quantize_row(lm_dtype t, const float *src, void *dst, int64_t n) {
    const fmt_ops *o = ops_of(t);
    if (!o || !o->qz) return 0;
    int64_t nb = blocks_of(t, n);
    if (nb <= 0 || !src || !dst) return 0;
    o->qz(src, (uint8_t *)dst, nb);
    return lm_dtype_row_size(t, (uint64_t)n);
}

size_t lm_quantize_row_q8_0(const float *src, void *dst, int64_t n) {
    return lm_quantize_row(LM_DTYPE_Q8_0, src, dst, n);
}
size_t lm_quantize_row_q8_1(const float *src, void *dst, int64_t n) {
    return lm_quantize_row(LM_DTYPE_Q8_1, src, dst, n);
}
size_t lm_quantize_row_q8_K(const float *src, void *dst, int64_t n) {
    return lm_quantize_row(LM_DTYPE_Q8_K, src, dst, n);
}
