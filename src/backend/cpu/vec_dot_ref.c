/*
 * vec_dot_ref.c — scalar reference dot products of a weight row with an activation row.
 *
 * This file is the specification every SIMD kernel is tested against. Each quantized weight
 * block is unpacked to its integer quants q and integer sub-block scales exactly as the format
 * defines (see tensor/quant.h and the layouts below); the dot of a block is an exact integer
 * sum Σ q_w·q_x (per sub-block), scaled by the block's fp16/f32 scales in float:
 *   Q4_0·Q8_0  d_w d_x Σ (q-8) q_x               Q4_1·Q8_1  d_w d_x Σ q q_x + m_w s_x
 *   Q5_0·Q8_0  d_w d_x Σ (q-16) q_x              Q5_1·Q8_1  d_w d_x Σ q q_x + m_w s_x
 *   Q8_0·Q8_0  d_w d_x Σ q q_x
 *   Q2_K·Q8_K  d_x (d Σ_16 sc Σ q q_x - dmin Σ_16 m Σ q_x)          (q 0..3, sc/m 4-bit)
 *   Q3_K·Q8_K  d_x d Σ_16 (sc-32) Σ q q_x                           (q -4..3, sc 6-bit)
 *   Q4_K·Q8_K  d_x (d Σ_32 sc Σ q q_x - dmin Σ_32 m Σ q_x)          (q 0..15, sc/m 6-bit)
 *   Q5_K·Q8_K  same with q 0..31
 *   Q6_K·Q8_K  d_x d Σ_16 sc Σ (q-32) q_x                           (sc int8)
 * s_x is the activation block's stored fp16 s = d_x Σ q_x (as GGML defines Q8_1), so the m·s
 * term carries fp16 rounding by design. Σ q_x of the K-quant mins uses the activation quants
 * themselves (equal to Q8_K's bsums for any block lm_quantize_row wrote).
 * F32/F16/BF16 weights take f32 activations and accumulate in double (the exact side).
 *
 * K-quant element order (super-block of 256, QK_K):
 *   Q2_K, Q3_K: element 128h + 32s + l (h half 0..1, s shift 0..3, l 0..31) is bits 2s..2s+1
 *     of qs[32h + l]; Q3_K's high bit is bit (4h + s) of hmask[l], set meaning +0, clear -4;
 *     the scale of that element is index 8h + 2s + (l >= 16).
 *   Q3_K scales: 6-bit, i < 8: low 4 bits scales[i] & 15, else scales[i-8] >> 4; high 2 bits
 *     (scales[8 + i%4] >> 2(i/4)) & 3.
 *   Q4_K, Q5_K: chunk c of 64 elements uses qs[32c .. 32c+31]: low nibbles are elements
 *     64c + l, high nibbles 64c + 32 + l; Q5_K's 5th bit of element 64c + l is bit 2c of qh[l]
 *     and of 64c + 32 + l bit 2c+1. Sub-block j (32 elements) scale/min (6-bit):
 *     j < 4: sc = scales[j] & 63, m = scales[j+4] & 63; else sc = (scales[j+4] & 15) |
 *     (scales[j-4] >> 6) << 4, m = (scales[j+4] >> 4) | (scales[j] >> 6) << 4.
 *   Q6_K: half h (128 elements) uses ql[64h..], qh[32h..], scales[8h..]; for l < 32:
 *     element 128h + l      = (ql[l] & 15)    | ((qh[l] >> 0) & 3) << 4, scale l/16
 *     element 128h + 32 + l = (ql[l+32] & 15) | ((qh[l] >> 2) & 3) << 4, scale l/16 + 2
 *     element 128h + 64 + l = (ql[l] >> 4)    | ((qh[l] >> 4) & 3) << 4, scale l/16 + 4
 *     element 128h + 96 + l = (ql[l+32] >> 4) | ((qh[l] >> 6) & 3) << 4, scale l/16 + 6
 *     minus 32.
 */
#include "backend/cpu/kernels.h"

#include <string.h>

static float h2f(lm_half h) { return lm_half_to_f32(h); }

static float dot_f32(int64_t K, const void *w, const void *x) {
    const float *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < K; i++) s += (double)a[i] * b[i];
    return (float)s;
}

static float dot_f16(int64_t K, const void *w, const void *x) {
    const lm_half *a = w;
    const float *b = x;
    double s = 0;
    for (int64_t i = 0; i < K; i++) s += (double)h2f(a[i]) * b[i];
    return (float)s;
}

static float dot_bf16(int64_t K, const void *w, const void *x) {
    const lm_bf16 *a = w;
    const float *b = x;
    double s = 0;
    for (int64_t i = 0; i < K; i++) s += (double)lm_bf16_to_f32(a[i]) * b[i];
    return (float)s;
}

/* Σ q_w q_x of a 32-element block whose weight quants are unpacked to q[32]. */
static int32_t isum32(const int q[32], const int8_t *x) {
    int32_t s = 0;
    for (int i = 0; i < 32; i++) s += q[i] * x[i];
    return s;
}

static int32_t qsum32(const int8_t *x) {
    int32_t s = 0;
    for (int i = 0; i < 32; i++) s += x[i];
    return s;
}

static float dot_q4_0(int64_t K, const void *w, const void *x) {
    const lm_block_q4_0 *a = w;
    const lm_block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 32; i++) {
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (a[i].qs[j] & 15) - 8;
            q[j + 16] = (a[i].qs[j] >> 4) - 8;
        }
        s += (float)isum32(q, b[i].qs) * (h2f(a[i].d) * h2f(b[i].d));
    }
    return s;
}

static float dot_q4_1(int64_t K, const void *w, const void *x) {
    const lm_block_q4_1 *a = w;
    const lm_block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 32; i++) {
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = a[i].qs[j] & 15;
            q[j + 16] = a[i].qs[j] >> 4;
        }
        s += (float)isum32(q, b[i].qs) * (h2f(a[i].d) * h2f(b[i].d)) + h2f(a[i].m) * h2f(b[i].s);
    }
    return s;
}

static void unpack5(const uint8_t qh4[4], const uint8_t qs[16], int q[32], int off) {
    uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 |
                  (uint32_t)qh4[3] << 24;
    for (int j = 0; j < 16; j++) {
        q[j] = ((qs[j] & 15) | (int)((qh >> j) & 1) << 4) - off;
        q[j + 16] = ((qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - off;
    }
}

static float dot_q5_0(int64_t K, const void *w, const void *x) {
    const lm_block_q5_0 *a = w;
    const lm_block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 32; i++) {
        int q[32];
        unpack5(a[i].qh, a[i].qs, q, 16);
        s += (float)isum32(q, b[i].qs) * (h2f(a[i].d) * h2f(b[i].d));
    }
    return s;
}

static float dot_q5_1(int64_t K, const void *w, const void *x) {
    const lm_block_q5_1 *a = w;
    const lm_block_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 32; i++) {
        int q[32];
        unpack5(a[i].qh, a[i].qs, q, 0);
        s += (float)isum32(q, b[i].qs) * (h2f(a[i].d) * h2f(b[i].d)) + h2f(a[i].m) * h2f(b[i].s);
    }
    return s;
}

static float dot_q8_0(int64_t K, const void *w, const void *x) {
    const lm_block_q8_0 *a = w;
    const lm_block_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 32; i++) {
        int q[32];
        for (int j = 0; j < 32; j++) q[j] = a[i].qs[j];
        s += (float)isum32(q, b[i].qs) * (h2f(a[i].d) * h2f(b[i].d));
    }
    (void)qsum32;
    return s;
}

/* ---- K-quants: unpack a super-block to q[256] and per-sub-block scales/mins ---- */

static void kscale_q4(const uint8_t sc[12], int j, int *scale, int *min) {
    if (j < 4) {
        *scale = sc[j] & 63;
        *min = sc[j + 4] & 63;
    } else {
        *scale = (sc[j + 4] & 15) | (sc[j - 4] >> 6) << 4;
        *min = (sc[j + 4] >> 4) | (sc[j] >> 6) << 4;
    }
}

/* Σ over sub-blocks of `len` elements: sc[j] Σ q q_x and m[j] Σ q_x. */
static void ksums(const int q[256], const int8_t *xq, int len, const int *sc, const int *mn,
                  int64_t *sum_qx, int64_t *sum_mx) {
    int64_t a = 0, b = 0;
    for (int j = 0; j < 256 / len; j++) {
        int32_t d = 0, sx = 0;
        for (int l = 0; l < len; l++) {
            d += q[j * len + l] * xq[j * len + l];
            sx += xq[j * len + l];
        }
        a += (int64_t)sc[j] * d;
        if (mn) b += (int64_t)mn[j] * sx;
    }
    *sum_qx = a;
    *sum_mx = b;
}

static float dot_q2_K(int64_t K, const void *w, const void *x) {
    const lm_block_q2_K *a = w;
    const lm_block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 256; i++) {
        int q[256], sc[16], mn[16];
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < 4; t++)
                for (int l = 0; l < 32; l++)
                    q[128 * h + 32 * t + l] = (a[i].qs[32 * h + l] >> (2 * t)) & 3;
        for (int j = 0; j < 16; j++) {
            sc[j] = a[i].scales[j] & 15;
            mn[j] = a[i].scales[j] >> 4;
        }
        int64_t sqx, smx;
        ksums(q, b[i].qs, 16, sc, mn, &sqx, &smx);
        s += b[i].d * (h2f(a[i].d) * (float)sqx - h2f(a[i].dmin) * (float)smx);
    }
    return s;
}

static float dot_q3_K(int64_t K, const void *w, const void *x) {
    const lm_block_q3_K *a = w;
    const lm_block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 256; i++) {
        int q[256], sc[16];
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < 4; t++)
                for (int l = 0; l < 32; l++) {
                    int lo = (a[i].qs[32 * h + l] >> (2 * t)) & 3;
                    int hi = (a[i].hmask[l] >> (4 * h + t)) & 1;
                    q[128 * h + 32 * t + l] = lo - (hi ? 0 : 4);
                }
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? (a[i].scales[j] & 15) : (a[i].scales[j - 8] >> 4);
            int hi = (a[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3;
            sc[j] = (lo | hi << 4) - 32;
        }
        int64_t sqx, smx;
        ksums(q, b[i].qs, 16, sc, NULL, &sqx, &smx);
        s += b[i].d * h2f(a[i].d) * (float)sqx;
    }
    return s;
}

static float dot_q4_K(int64_t K, const void *w, const void *x) {
    const lm_block_q4_K *a = w;
    const lm_block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 256; i++) {
        int q[256], sc[8], mn[8];
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                q[64 * c + l] = a[i].qs[32 * c + l] & 15;
                q[64 * c + 32 + l] = a[i].qs[32 * c + l] >> 4;
            }
        for (int j = 0; j < 8; j++) kscale_q4(a[i].scales, j, &sc[j], &mn[j]);
        int64_t sqx, smx;
        ksums(q, b[i].qs, 32, sc, mn, &sqx, &smx);
        s += b[i].d * (h2f(a[i].d) * (float)sqx - h2f(a[i].dmin) * (float)smx);
    }
    return s;
}

static float dot_q5_K(int64_t K, const void *w, const void *x) {
    const lm_block_q5_K *a = w;
    const lm_block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 256; i++) {
        int q[256], sc[8], mn[8];
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                q[64 * c + l] = (a[i].qs[32 * c + l] & 15) | ((a[i].qh[l] >> (2 * c)) & 1) << 4;
                q[64 * c + 32 + l] =
                    (a[i].qs[32 * c + l] >> 4) | ((a[i].qh[l] >> (2 * c + 1)) & 1) << 4;
            }
        for (int j = 0; j < 8; j++) kscale_q4(a[i].scales, j, &sc[j], &mn[j]);
        int64_t sqx, smx;
        ksums(q, b[i].qs, 32, sc, mn, &sqx, &smx);
        s += b[i].d * (h2f(a[i].d) * (float)sqx - h2f(a[i].dmin) * (float)smx);
    }
    return s;
}

static float dot_q6_K(int64_t K, const void *w, const void *x) {
    const lm_block_q6_K *a = w;
    const lm_block_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < K / 256; i++) {
        int q[256], sc[16];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = a[i].ql + 64 * h, *qh = a[i].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                q[128 * h + l] = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
                q[128 * h + 32 + l] = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
                q[128 * h + 64 + l] = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                q[128 * h + 96 + l] = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            }
        }
        /* scale index of element 128h + 32t + l is 8h + 2t + l/16: the same as sub-block
         * (element / 16) numbering, since 128h + 32t + 16(l/16) = 16 (8h + 2t + l/16). */
        for (int j = 0; j < 16; j++) sc[j] = a[i].scales[j];
        int64_t sqx, smx;
        ksums(q, b[i].qs, 16, sc, NULL, &sqx, &smx);
        s += b[i].d * h2f(a[i].d) * (float)sqx;
    }
    return s;
}

typedef float (*dot1_fn)(int64_t K, const void *w, const void *x);

static dot1_fn ref_dot(lm_dtype t) {
    switch (t) {
    case LM_DTYPE_F32: return dot_f32;
    case LM_DTYPE_F16: return dot_f16;
    case LM_DTYPE_BF16: return dot_bf16;
    case LM_DTYPE_Q4_0: return dot_q4_0;
    case LM_DTYPE_Q4_1: return dot_q4_1;
    case LM_DTYPE_Q5_0: return dot_q5_0;
    case LM_DTYPE_Q5_1: return dot_q5_1;
    case LM_DTYPE_Q8_0: return dot_q8_0;
    case LM_DTYPE_Q2_K: return dot_q2_K;
    case LM_DTYPE_Q3_K: return dot_q3_K;
    case LM_DTYPE_Q4_K: return dot_q4_K;
    case LM_DTYPE_Q5_K: return dot_q5_K;
    case LM_DTYPE_Q6_K: return dot_q6_K;
    default: return NULL;
    }
}

float lm_vec_dot_ref(lm_dtype wtype, int64_t K, const void *w, const void *x) {
    dot1_fn f = ref_dot(wtype);
    return f ? f(K, w, x) : 0.0f;
}

lm_dtype lm_cpu_act_type(lm_dtype w) {
    switch (w) {
    case LM_DTYPE_F32:
    case LM_DTYPE_F16:
    case LM_DTYPE_BF16: return LM_DTYPE_F32;
    case LM_DTYPE_Q4_0:
    case LM_DTYPE_Q5_0:
    case LM_DTYPE_Q8_0: return LM_DTYPE_Q8_0;
    case LM_DTYPE_Q4_1:
    case LM_DTYPE_Q5_1: return LM_DTYPE_Q8_1;
    case LM_DTYPE_Q2_K:
    case LM_DTYPE_Q3_K:
    case LM_DTYPE_Q4_K:
    case LM_DTYPE_Q5_K:
    case LM_DTYPE_Q6_K: return LM_DTYPE_Q8_K;
    default: return LM_DTYPE_INVALID;
    }
}

/* The reference vdot: one plain dot per activation row. */
#define REF_VDOT(name, fn)                                                                    \
    static void name(int64_t K, const void *w, const void *x, size_t xs, int nx, float *y,    \
                     size_t ys) {                                                             \
        for (int j = 0; j < nx; j++) y[(size_t)j * ys] = fn(K, w, (const char *)x + j * xs);  \
    }
REF_VDOT(vdot_f32, dot_f32)
REF_VDOT(vdot_f16, dot_f16)
REF_VDOT(vdot_bf16, dot_bf16)
REF_VDOT(vdot_q4_0, dot_q4_0)
REF_VDOT(vdot_q4_1, dot_q4_1)
REF_VDOT(vdot_q5_0, dot_q5_0)
REF_VDOT(vdot_q5_1, dot_q5_1)
REF_VDOT(vdot_q8_0, dot_q8_0)
REF_VDOT(vdot_q2_K, dot_q2_K)
REF_VDOT(vdot_q3_K, dot_q3_K)
REF_VDOT(vdot_q4_K, dot_q4_K)
REF_VDOT(vdot_q5_K, dot_q5_K)
REF_VDOT(vdot_q6_K, dot_q6_K)

static void qa_q8_0(const float *x, void *dst, int64_t n) {
    lm_quantize_row(LM_DTYPE_Q8_0, x, dst, n);
}
static void qa_q8_1(const float *x, void *dst, int64_t n) {
    lm_quantize_row(LM_DTYPE_Q8_1, x, dst, n);
}
static void qa_q8_K(const float *x, void *dst, int64_t n) {
    lm_quantize_row(LM_DTYPE_Q8_K, x, dst, n);
}

void lm_cpu_kernels_fill_ref(lm_cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    k->vdot[LM_DTYPE_F32] = vdot_f32;
    k->vdot[LM_DTYPE_F16] = vdot_f16;
    k->vdot[LM_DTYPE_BF16] = vdot_bf16;
    k->vdot[LM_DTYPE_Q4_0] = vdot_q4_0;
    k->vdot[LM_DTYPE_Q4_1] = vdot_q4_1;
    k->vdot[LM_DTYPE_Q5_0] = vdot_q5_0;
    k->vdot[LM_DTYPE_Q5_1] = vdot_q5_1;
    k->vdot[LM_DTYPE_Q8_0] = vdot_q8_0;
    k->vdot[LM_DTYPE_Q2_K] = vdot_q2_K;
    k->vdot[LM_DTYPE_Q3_K] = vdot_q3_K;
    k->vdot[LM_DTYPE_Q4_K] = vdot_q4_K;
    k->vdot[LM_DTYPE_Q5_K] = vdot_q5_K;
    k->vdot[LM_DTYPE_Q6_K] = vdot_q6_K;
    k->quant_q8_0 = qa_q8_0;
    k->quant_q8_1 = qa_q8_1;
    k->quant_q8_K = qa_q8_K;
    for (int i = 0; i < LM_DTYPE_GGML_COUNT; i++) k->level_of[i] = LM_CPU_SCALAR;
}
