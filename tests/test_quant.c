/*
 * test_quant.c — the scalar quant reference (src/tensor/quant_ref.c, quant_k.c, quant_iq.c):
 *   - dequantization against gguf-py (tests/data/quant/<type>.bin, made by
 *     tools/gen_quant_fixtures.py), bit-exact: both sides evaluate GGML's f32 expressions in
 *     the same order, so any difference is a bug, not rounding;
 *   - quantization of the legacy and activation formats against gguf-py / GGML's reference
 *     (tests/data/quant/<type>_q.bin), byte-exact;
 *   - quantize -> dequantize round trips on several distributions and row lengths, against
 *     per-element bounds derived from each format (Q8_0, Q8_1, Q8_K, Q4_0, Q4_1, Q5_0, Q5_1) or
 *     relative-RMSE bounds (K-quants), and re-quantization stability;
 *   - binary16 / bfloat16 conversions, exhaustively where possible;
 *   - rejection of unsupported types and bad lengths.
 * Run from the repository root. LM_QUANT_REPORT=1 prints the measured error table
 * (docs/formats/quant.md quotes it).
 */
#include "tensor/quant.h"
#include "test.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define FIXDIR "tests/data/quant/"

static int report(void) {
    const char *e = getenv("LM_QUANT_REPORT");
    return e && *e && *e != '0';
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- fixtures -------------------------------------------------------------------------- */

typedef struct {
    uint32_t kind, type, nb, ts, bs;
    uint8_t *data; /* whole file */
    size_t size;
    const uint8_t *payload;
} fixture;

static int load_fixture(const char *name, fixture *fx) {
    char path[256];
    snprintf(path, sizeof path, FIXDIR "%s", name);
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int rc = -1;
    if (fseek(f, 0, SEEK_END) != 0) goto out;
    long sz = ftell(f);
    if (sz < 28 || fseek(f, 0, SEEK_SET) != 0) goto out;
    fx->data = malloc((size_t)sz);
    if (!fx->data || fread(fx->data, 1, (size_t)sz, f) != (size_t)sz) goto out;
    fx->size = (size_t)sz;
    uint32_t h[6];
    memcpy(h, fx->data + 4, sizeof h);
    if (memcmp(fx->data, "LMQF", 4) != 0 || h[0] != 1) goto out;
    fx->kind = h[1];
    fx->type = h[2];
    fx->nb = h[3];
    fx->ts = h[4];
    fx->bs = h[5];
    if ((uint64_t)fx->nb * (fx->ts + 4ull * fx->bs) + 28 != (uint64_t)sz) goto out;
    fx->payload = fx->data + 28;
    rc = 0;
out:
    fclose(f);
    if (rc) {
        free(fx->data);
        fx->data = NULL;
    }
    return rc;
}

static void check_dequant_fixture(const char *name, lm_dtype t) {
    fixture fx;
    T_REQUIRE(load_fixture(name, &fx) == 0, "cannot load %s (run tools/gen_quant_fixtures.py)",
              name);
    const lm_dtype_traits *tr = lm_dtype_get(t);
    T_REQUIRE(tr && fx.kind == 0 && fx.type == (uint32_t)t && fx.bs == tr->block_size &&
                  fx.ts == tr->type_size,
              "%s: header mismatch", name);
    const int64_t n = (int64_t)fx.nb * fx.bs;
    const uint8_t *blocks = fx.payload;
    const uint8_t *expb = fx.payload + (size_t)fx.nb * fx.ts;
    float *got = malloc((size_t)n * sizeof(float));
    T_REQUIRE(got, "oom");
    T_CHECK(lm_dequant_row(t, blocks, got, n) == 0, "%s: dequant failed", name);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t e;
        memcpy(&e, expb + 4 * i, 4);
        if (f32_bits(got[i]) != e) {
            if (bad < 5)
                fprintf(stderr, "  %s[%lld] (block %lld): got %.9g (0x%08x) want %.9g (0x%08x)\n",
                        name, (long long)i, (long long)(i / fx.bs), got[i], f32_bits(got[i]),
                        bits_f32(e), e);
            bad++;
        }
    }
    T_CHECK(bad == 0, "%s: %lld of %lld values differ from gguf-py", name, (long long)bad,
            (long long)n);
    /* one more time, from an odd address: the reference must not assume alignment */
    uint8_t *odd = malloc((size_t)fx.nb * fx.ts + 1);
    T_REQUIRE(odd, "oom");
    memcpy(odd + 1, blocks, (size_t)fx.nb * fx.ts);
    float *got2 = malloc((size_t)n * sizeof(float));
    T_REQUIRE(got2, "oom");
    T_CHECK(lm_dequant_row(t, odd + 1, got2, n) == 0 && memcmp(got, got2, (size_t)n * 4) == 0,
            "%s: unaligned source decodes differently", name);
    free(got2);
    free(odd);
    free(got);
    free(fx.data);
}

static void test_dequant_vs_gguf_py(void) {
    static const struct {
        const char *file;
        lm_dtype t;
    } cases[] = {
        {"f16.bin", LM_DTYPE_F16},       {"bf16.bin", LM_DTYPE_BF16},
        {"q4_0.bin", LM_DTYPE_Q4_0},     {"q4_1.bin", LM_DTYPE_Q4_1},
        {"q5_0.bin", LM_DTYPE_Q5_0},     {"q5_1.bin", LM_DTYPE_Q5_1},
        {"q8_0.bin", LM_DTYPE_Q8_0},     {"q8_1.bin", LM_DTYPE_Q8_1},
        {"q2_K.bin", LM_DTYPE_Q2_K},     {"q3_K.bin", LM_DTYPE_Q3_K},
        {"q4_K.bin", LM_DTYPE_Q4_K},     {"q5_K.bin", LM_DTYPE_Q5_K},
        {"q6_K.bin", LM_DTYPE_Q6_K},     {"q8_K.bin", LM_DTYPE_Q8_K},
        {"iq4_nl.bin", LM_DTYPE_IQ4_NL}, {"iq4_xs.bin", LM_DTYPE_IQ4_XS},
        {"mxfp4.bin", LM_DTYPE_MXFP4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_dequant_fixture(cases[i].file, cases[i].t);
}

static void check_quant_fixture(const char *name, lm_dtype t) {
    fixture fx;
    T_REQUIRE(load_fixture(name, &fx) == 0, "cannot load %s", name);
    T_REQUIRE(fx.kind == 1 && fx.type == (uint32_t)t, "%s: header mismatch", name);
    const int64_t n = (int64_t)fx.nb * fx.bs;
    float *x = malloc((size_t)n * sizeof(float));
    uint8_t *got = malloc((size_t)fx.nb * fx.ts);
    T_REQUIRE(x && got, "oom");
    memcpy(x, fx.payload, (size_t)n * 4);
    const uint8_t *want = fx.payload + (size_t)n * 4;
    size_t w = lm_quantize_row(t, x, got, n);
    T_CHECK(w == (size_t)fx.nb * fx.ts, "%s: wrote %zu bytes", name, w);
    int bad = 0;
    for (uint32_t b = 0; b < fx.nb; b++) {
        if (memcmp(got + (size_t)b * fx.ts, want + (size_t)b * fx.ts, fx.ts) != 0) {
            if (bad < 3) {
                fprintf(stderr, "  %s block %u differs; first bytes:", name, b);
                for (uint32_t k = 0; k < fx.ts && k < 12; k++)
                    fprintf(stderr, " %02x/%02x", got[(size_t)b * fx.ts + k],
                            want[(size_t)b * fx.ts + k]);
                fputc('\n', stderr);
            }
            bad++;
        }
    }
    T_CHECK(bad == 0, "%s: %d of %u blocks differ from the reference quantizer", name, bad, fx.nb);
    free(x);
    free(got);
    free(fx.data);
}

static void test_quant_vs_reference(void) {
    check_quant_fixture("bf16_q.bin", LM_DTYPE_BF16);
    check_quant_fixture("q4_0_q.bin", LM_DTYPE_Q4_0);
    check_quant_fixture("q4_1_q.bin", LM_DTYPE_Q4_1);
    check_quant_fixture("q5_0_q.bin", LM_DTYPE_Q5_0);
    check_quant_fixture("q5_1_q.bin", LM_DTYPE_Q5_1);
    check_quant_fixture("q8_0_q.bin", LM_DTYPE_Q8_0);
    check_quant_fixture("q8_1_q.bin", LM_DTYPE_Q8_1);
    check_quant_fixture("q8_K_q.bin", LM_DTYPE_Q8_K);
    check_quant_fixture("mxfp4_q.bin", LM_DTYPE_MXFP4);
}

/* ---- round trips ----------------------------------------------------------------------- */

static float gauss(void) {
    /* Box-Muller on the test RNG */
    float u1 = t_rand_f32(1e-7f, 1.0f), u2 = t_rand_f32(0.0f, 1.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

enum dist { D_GAUSS, D_UNIFORM, D_OUTLIER, D_ZERO, D_CONST, D_TINY, D_SHIFTED, D_COUNT };
static const char *dist_name[D_COUNT] = {"gaussian", "uniform", "outliers", "zeros",
                                         "constant", "tiny",    "shifted"};

static void fill(float *x, int64_t n, enum dist d) {
    const float c = t_rand_f32(-2.0f, 2.0f);
    for (int64_t i = 0; i < n; i++) {
        switch (d) {
        case D_GAUSS: x[i] = gauss(); break;
        case D_UNIFORM: x[i] = t_rand_f32(-1.0f, 1.0f); break;
        case D_OUTLIER: x[i] = gauss() * ((t_rand_u64() % 61) == 0 ? 40.0f : 1.0f); break;
        case D_ZERO: x[i] = 0.0f; break;
        case D_CONST: x[i] = c; break;
        case D_TINY: x[i] = gauss() * 1e-3f; break;
        case D_SHIFTED: x[i] = 3.0f + 0.5f * gauss(); break; /* all positive: mins matter */
        default: break;
        }
    }
}

typedef struct {
    lm_dtype t;
    float rel_rmse; /* bound on RMSE / RMS(x) for gaussian and uniform data */
    float rel_rmse_outlier;
    float rel_rmse_shifted;
} rt_bound;

/* Relative-RMSE bounds: 1.25 x the values this quantizer measures on this test's data (fixed
 * seed), which sit where the formats put them: a uniform grid of step D has RMSE ~ D / sqrt(12),
 * with D ~ (block range) / (levels - 1), e.g. Q8_0 on gaussian blocks of 32: D ~ 2 * 2.1 / 254,
 * RMSE ~ 0.005. docs/formats/quant.md has the table. The exact per-element bounds of the simple
 * formats are checked separately in check_elementwise. A quantizer change that makes any format
 * worse than 25% fails here. */
/* clang-format off */
static const rt_bound bounds[] = {
    {LM_DTYPE_F32, 0.0f, 0.0f, 0.0f},
    {LM_DTYPE_F16, 3.0e-4f, 3.0e-4f, 3.0e-4f},
    {LM_DTYPE_BF16, 2.4e-3f, 2.4e-3f, 2.4e-3f},
    {LM_DTYPE_Q8_0, 7.0e-3f, 0.015f, 4.0e-3f},
    {LM_DTYPE_Q8_1, 7.0e-3f, 0.015f, 4.0e-3f},
    {LM_DTYPE_Q8_K, 9.0e-3f, 0.033f, 4.2e-3f},
    {LM_DTYPE_Q5_0, 0.053f, 0.092f, 0.030f},
    {LM_DTYPE_Q5_1, 0.046f, 0.068f, 0.008f},
    {LM_DTYPE_Q4_0, 0.106f, 0.115f, 0.059f},
    {LM_DTYPE_Q4_1, 0.098f, 0.152f, 0.016f},
    {LM_DTYPE_Q6_K, 0.021f, 0.040f, 0.0122f},
    {LM_DTYPE_Q5_K, 0.044f, 0.062f, 0.0141f},
    {LM_DTYPE_Q4_K, 0.088f, 0.101f, 0.0286f},
    {LM_DTYPE_Q3_K, 0.180f, 0.117f, 0.097f},
    {LM_DTYPE_Q2_K, 0.325f, 0.175f, 0.128f},
    {LM_DTYPE_IQ4_NL, 0.092f, 0.118f, 0.069f},
    {LM_DTYPE_IQ4_XS, 0.093f, 0.119f, 0.070f},
    {LM_DTYPE_MXFP4, 0.183f, 0.207f, 0.136f},
};
/* clang-format on */

/* Per-element bounds of the simple formats, from the block's own data:
 *   Q8_0/Q8_1: q = round(x/d), d = amax/127 stored as half h: |x - q h| <= d/2 + 127 |d - h|
 *   Q8_K:      |x - q d| <= |d|/2 (d f32), plus f32 rounding of 1/iscale
 *   Q4_0/Q5_0: d = max/-8 (-16); the code range is one level short on the side opposite the
 *              extreme, so |err| <= |d| there and |d|/2 elsewhere; plus 8 (16) |d - h|
 *   Q4_1/Q5_1: |err| <= d/2 + 15 (31) |d - h_d| + |m - h_m|
 * (a small relative slack covers f32 rounding of the products). Returns violations. */
static int check_elementwise(lm_dtype t, const float *x, const float *y, int64_t n) {
    int viol = 0;
    const int bs = (int)lm_dtype_get(t)->block_size;
    for (int64_t b0 = 0; b0 < n; b0 += bs) {
        const float *xb = x + b0, *yb = y + b0;
        float amax = 0.0f, smax = 0.0f, mn = FLT_MAX, mx = -FLT_MAX;
        for (int j = 0; j < bs; j++) {
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                smax = xb[j];
            }
            mn = fminf(mn, xb[j]);
            mx = fmaxf(mx, xb[j]);
        }
        float bound;
        switch (t) {
        case LM_DTYPE_Q8_0:
        case LM_DTYPE_Q8_1: {
            float d = amax / 127.0f, h = lm_half_to_f32(lm_f32_to_half(d));
            bound = d / 2 + 127 * fabsf(d - h);
            break;
        }
        case LM_DTYPE_Q8_K: bound = amax / 127.0f * 0.5f * (1 + 1e-5f); break;
        case LM_DTYPE_Q4_0:
        case LM_DTYPE_Q5_0: {
            float k = t == LM_DTYPE_Q4_0 ? 8.0f : 16.0f;
            float d = smax / -k, h = lm_half_to_f32(lm_f32_to_half(d));
            bound = fabsf(d) + k * fabsf(d - h);
            break;
        }
        case LM_DTYPE_Q4_1:
        case LM_DTYPE_Q5_1: {
            float k = t == LM_DTYPE_Q4_1 ? 15.0f : 31.0f;
            float d = (mx - mn) / k, h = lm_half_to_f32(lm_f32_to_half(d));
            float hm = lm_half_to_f32(lm_f32_to_half(mn));
            bound = d / 2 + k * fabsf(d - h) + fabsf(mn - hm);
            break;
        }
        default: return 0;
        }
        bound = bound * (1 + 1e-5f) + amax * 1e-6f;
        for (int j = 0; j < bs; j++) {
            if (!(fabsf(xb[j] - yb[j]) <= bound)) {
                if (viol < 3)
                    fprintf(stderr, "  %s: x=%.9g y=%.9g err %.3g > bound %.3g\n", lm_dtype_name(t),
                            xb[j], yb[j], fabsf(xb[j] - yb[j]), bound);
                viol++;
            }
        }
    }
    return viol;
}

static void test_round_trip(void) {
    static const int nblocks[] = {1, 2, 3, 7};
    t_srand(12345);
    if (report()) printf("  %-6s %-9s %11s %11s\n", "type", "data", "rel_rmse", "max_abs");
    for (size_t bi = 0; bi < sizeof bounds / sizeof bounds[0]; bi++) {
        const rt_bound *B = &bounds[bi];
        const lm_dtype t = B->t;
        T_CHECK(lm_can_quantize(t) && lm_can_dequant(t), "%s not supported", lm_dtype_name(t));
        const int64_t bs = lm_dtype_get(t)->block_size;
        const int64_t unit = bs == 1 ? 256 : bs; /* float formats: rows of 256 */
        for (int d = 0; d < D_COUNT; d++) {
            double se_all = 0, sx_all = 0, maxabs_all = 0;
            for (size_t ni = 0; ni < sizeof nblocks / sizeof nblocks[0]; ni++) {
                /* several rows per length for more statistics */
                for (int rep = 0; rep < 8; rep++) {
                    const int64_t n = unit * nblocks[ni];
                    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
                    size_t rs = lm_dtype_row_size(t, (uint64_t)n);
                    uint8_t *q = malloc(rs + 1);
                    T_REQUIRE(x && y && q, "oom");
                    fill(x, n, (enum dist)d);
                    q[rs] = 0xA5; /* guard byte: nothing may be written past the row */
                    T_CHECK(lm_quantize_row(t, x, q, n) == rs, "%s: quantize size",
                            lm_dtype_name(t));
                    T_CHECK(q[rs] == 0xA5, "%s: wrote past the row", lm_dtype_name(t));
                    T_CHECK(lm_dequant_row(t, q, y, n) == 0, "%s: dequant", lm_dtype_name(t));
                    int nonfinite = 0;
                    for (int64_t i = 0; i < n; i++) {
                        double e = (double)y[i] - x[i];
                        nonfinite += !isfinite(y[i]);
                        se_all += e * e;
                        sx_all += (double)x[i] * x[i];
                        if (fabs(e) > maxabs_all) maxabs_all = fabs(e);
                    }
                    T_CHECK(!nonfinite, "%s %s: non-finite output", lm_dtype_name(t), dist_name[d]);
                    int v = check_elementwise(t, x, y, n);
                    T_CHECK(v == 0, "%s %s n=%lld: %d elements over the format bound",
                            lm_dtype_name(t), dist_name[d], (long long)n, v);
                    if (d == D_ZERO)
                        for (int64_t i = 0; i < n; i++)
                            T_CHECK(f32_bits(y[i]) == 0 || f32_bits(y[i]) == 0x80000000u,
                                    "%s: zero row decodes to %g", lm_dtype_name(t), y[i]);
                    free(x);
                    free(y);
                    free(q);
                }
            }
            double rel = sx_all > 0 ? sqrt(se_all / sx_all) : sqrt(se_all);
            if (report())
                printf("  %-6s %-9s %11.3e %11.3e\n", lm_dtype_name(t), dist_name[d], rel,
                       maxabs_all);
            float bound;
            switch (d) {
            case D_GAUSS:
            case D_UNIFORM: bound = B->rel_rmse; break;
            case D_OUTLIER: bound = B->rel_rmse_outlier; break;
            case D_SHIFTED: bound = B->rel_rmse_shifted; break;
            case D_ZERO: bound = 0.0f; break;
            /* a constant block is one value; every format represents it to within the half
             * precision of its scales (2^-11 relative, a few roundings) */
            /* except MXFP4: its scale is a power of two and its codebook {..., 8, 12}, so a
             * constant lands up to 25% off (GGML's exponent choice clips (12, 16) to 12) */
            case D_CONST: bound = t == LM_DTYPE_MXFP4 ? 0.25f : 2.0e-3f; break;
            /* values ~1e-3: the half scales are subnormal (below 2^-14) but still carry ~10
             * bits at this size, so the gaussian bound holds; much smaller data loses relative
             * precision by design (half has nothing below 2^-24) */
            case D_TINY: bound = B->rel_rmse; break;
            default: bound = 0.0f;
            }
            T_CHECK(rel <= bound, "%s %s: relative RMSE %.4g > bound %.4g", lm_dtype_name(t),
                    dist_name[d], rel, bound);
        }
    }
}

/* quantize(dequantize(q)) == q where the format makes that hold: the codes of Q8_0, Q4_0, Q5_0,
 * Q8_K (and Q8_1's d and codes; its s is computed from the unrounded d, so it may move by one
 * half ulp) are reproduced exactly. For the others the second round trip must not add error
 * beyond a small fraction of the first. */
static void test_requant_stability(void) {
    static const lm_dtype exact[] = {LM_DTYPE_Q8_0, LM_DTYPE_Q4_0, LM_DTYPE_Q5_0, LM_DTYPE_Q8_1,
                                     LM_DTYPE_Q8_K, LM_DTYPE_F16,  LM_DTYPE_BF16};
    static const lm_dtype approx[] = {
        LM_DTYPE_Q4_1, LM_DTYPE_Q5_1, LM_DTYPE_Q2_K,   LM_DTYPE_Q3_K,   LM_DTYPE_Q4_K,
        LM_DTYPE_Q5_K, LM_DTYPE_Q6_K, LM_DTYPE_IQ4_NL, LM_DTYPE_IQ4_XS, LM_DTYPE_MXFP4};
    t_srand(777);
    const int64_t n = 7 * 256;
    float *x = malloc(n * 4), *y = malloc(n * 4), *z = malloc(n * 4);
    uint8_t *q1 = malloc(n * 4), *q2 = malloc(n * 4);
    T_REQUIRE(x && y && z && q1 && q2, "oom");
    for (int rep = 0; rep < 4; rep++) {
        fill(x, n, rep & 1 ? D_UNIFORM : D_GAUSS);
        for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
            lm_dtype t = exact[i];
            size_t rs = lm_quantize_row(t, x, q1, n);
            lm_dequant_row(t, q1, y, n);
            T_CHECK(lm_quantize_row(t, y, q2, n) == rs, "size");
            if (t == LM_DTYPE_Q8_1) {
                for (int64_t b = 0; b < n / 32; b++) {
                    const uint8_t *a = q1 + 36 * b, *c = q2 + 36 * b;
                    T_CHECK(memcmp(a, c, 2) == 0 && memcmp(a + 4, c + 4, 32) == 0,
                            "q8_1 block %lld not stable", (long long)b);
                }
            } else if (t == LM_DTYPE_Q8_K) {
                /* values, not bytes: when +127 d and -127 d both occur, the second pass may
                 * pick the other sign for d and negate every code (the same values) */
                lm_dequant_row(t, q2, z, n);
                int moved = 0;
                for (int64_t k = 0; k < n; k++)
                    moved += fabsf(z[k] - y[k]) > 1e-6f * fabsf(y[k]);
                T_CHECK(moved == 0, "q8_K: %d values moved on re-quantization", moved);
            } else {
                T_CHECK(memcmp(q1, q2, rs) == 0, "%s: re-quantization changed the blocks",
                        lm_dtype_name(t));
            }
        }
        for (size_t i = 0; i < sizeof approx / sizeof approx[0]; i++) {
            lm_dtype t = approx[i];
            lm_quantize_row(t, x, q1, n);
            lm_dequant_row(t, q1, y, n);
            lm_quantize_row(t, y, q2, n);
            lm_dequant_row(t, q2, z, n);
            double e1 = 0, e2 = 0;
            for (int64_t k = 0; k < n; k++) {
                e1 += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
                e2 += ((double)z[k] - y[k]) * ((double)z[k] - y[k]);
            }
            if (report() && rep == 0)
                printf("  requant %-6s rmse1 %.3e rmse2 %.3e\n", lm_dtype_name(t), sqrt(e1 / n),
                       sqrt(e2 / n));
            T_CHECK(e2 <= 0.25 * e1, "%s: second round trip error %.3g vs first %.3g",
                    lm_dtype_name(t), sqrt(e2 / n), sqrt(e1 / n));
        }
    }
    free(x);
    free(y);
    free(z);
    free(q1);
    free(q2);
}

/* Hostile values: huge, infinite, NaN. The reference must not crash or hit undefined
 * behaviour (the sanitizer build checks that), and finite input must give finite output. */
static void test_extremes(void) {
    static const lm_dtype types[] = {LM_DTYPE_Q4_0,   LM_DTYPE_Q4_1,   LM_DTYPE_Q5_0, LM_DTYPE_Q5_1,
                                     LM_DTYPE_Q8_0,   LM_DTYPE_Q8_1,   LM_DTYPE_Q8_K, LM_DTYPE_Q2_K,
                                     LM_DTYPE_Q3_K,   LM_DTYPE_Q4_K,   LM_DTYPE_Q5_K, LM_DTYPE_Q6_K,
                                     LM_DTYPE_IQ4_NL, LM_DTYPE_IQ4_XS, LM_DTYPE_MXFP4};
    float x[256], y[256];
    uint8_t q[512];
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        lm_dtype t = types[i];
        int64_t n = 256;
        /* finite but beyond what a half scale can express */
        for (int j = 0; j < n; j++)
            x[j] = (j % 3 ? 1e30f : -3e38f) * (float)((j % 7) + 1) / 7;
        T_CHECK(lm_quantize_row(t, x, q, n) > 0, "huge");
        lm_dequant_row(t, q, y, n);
        int bad = 0;
        for (int j = 0; j < n; j++)
            bad += !isfinite(y[j]);
        T_CHECK(bad == 0, "%s: huge input decodes to %d non-finite values", lm_dtype_name(t), bad);
        /* largest values a half scale can still carry: error must stay relative */
        for (int j = 0; j < n; j++)
            x[j] = 60000.0f * sinf((float)j);
        lm_quantize_row(t, x, q, n);
        lm_dequant_row(t, q, y, n);
        for (int j = 0; j < n; j++)
            bad += !isfinite(y[j]) || fabsf(y[j] - x[j]) > 0.6f * 60000.0f;
        T_CHECK(bad == 0, "%s: large input badly represented", lm_dtype_name(t));
        /* inf and NaN: anything valid, no crash */
        for (int j = 0; j < n; j++)
            x[j] = (float)j;
        x[3] = INFINITY;
        x[40] = -INFINITY;
        x[77] = NAN;
        T_CHECK(lm_quantize_row(t, x, q, n) > 0, "non-finite input must still quantize");
        lm_dequant_row(t, q, y, n);
    }
}

/* ---- binary16 / bfloat16 --------------------------------------------------------------- */

static void test_half_exhaustive(void) {
    int bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        lm_half h = (lm_half)i;
        float f = lm_half_to_f32(h);
        lm_half back = lm_f32_to_half(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan) {
            if (!isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) ||
                (back & 0x8000) != (h & 0x8000))
                bad++;
        } else if (back != h) {
            bad++;
        }
        /* bf16: the same property over all patterns */
        float g = lm_bf16_to_f32((lm_bf16)i);
        lm_bf16 gb = lm_f32_to_bf16(g);
        if ((i & 0x7f80) == 0x7f80 && (i & 0x7f)) {
            if (!isnan(g) || !((gb & 0x7f80) == 0x7f80 && (gb & 0x7f))) bad++;
        } else if (gb != (lm_bf16)i) {
            bad++;
        }
    }
    T_CHECK(bad == 0, "%d half/bf16 patterns do not round-trip", bad);
    /* half -> f32 is exact: compare a few values with known decimal meaning */
    T_CHECK(lm_half_to_f32(0x3c00) == 1.0f && lm_half_to_f32(0xc000) == -2.0f, "1, -2");
    T_CHECK(lm_half_to_f32(0x7bff) == 65504.0f, "max half");
    T_CHECK(lm_half_to_f32(0x0001) == 0x1p-24f && lm_half_to_f32(0x0400) == 0x1p-14f, "subnormal");
    T_CHECK(isinf(lm_half_to_f32(0x7c00)) && lm_half_to_f32(0xfc00) < 0, "inf");
}

static void test_half_rounding(void) {
    static const struct {
        float f;
        lm_half h;
    } cases[] = {
        {1.0f, 0x3c00},
        {1.0f + 0x1p-11f, 0x3c00},            /* halfway, even below: down */
        {1.0f + 3 * 0x1p-11f, 0x3c02},        /* halfway, odd below: up */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above halfway: up */
        {65504.0f, 0x7bff},
        {65519.996f, 0x7bff}, /* below the overflow threshold */
        {65520.0f, 0x7c00},   /* halfway to 2^16: rounds to inf */
        {-65520.0f, 0xfc00},
        {1e10f, 0x7c00},
        {0x1p-24f, 0x0001},            /* smallest subnormal */
        {0x1p-25f, 0x0000},            /* halfway to it: ties to even (0) */
        {0x1.000002p-25f, 0x0001},     /* just above: up */
        {3 * 0x1p-25f, 0x0002},        /* 1.5 ulp: ties to even (2) */
        {0x1p-14f, 0x0400},            /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400}, /* halfway between max subnormal and min normal */
        {0x1p-14f - 0x1p-24f, 0x03ff}, /* max subnormal */
        {-0.0f, 0x8000},
        {1e-30f, 0x0000},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_half h = lm_f32_to_half(cases[i].f);
        T_CHECK(h == cases[i].h, "f32 %a -> half 0x%04x, want 0x%04x", cases[i].f, h, cases[i].h);
    }
    lm_half nh = lm_f32_to_half(NAN);
    T_CHECK((nh & 0x7c00) == 0x7c00 && (nh & 0x3ff), "NaN -> 0x%04x", nh);
    /* bf16 rounding: halfway to even, overflow to inf, NaN stays NaN */
    T_CHECK(lm_f32_to_bf16(bits_f32(0x3f808000u)) == 0x3f80, "bf16 tie down");
    T_CHECK(lm_f32_to_bf16(bits_f32(0x3f818000u)) == 0x3f82, "bf16 tie up");
    T_CHECK(lm_f32_to_bf16(bits_f32(0x3f808001u)) == 0x3f81, "bf16 above tie");
    T_CHECK(lm_f32_to_bf16(bits_f32(0x7f7fffffu)) == 0x7f80, "bf16 overflow to inf");
    lm_bf16 nb = lm_f32_to_bf16(bits_f32(0x7f800001u)); /* signalling NaN, low payload only */
    T_CHECK((nb & 0x7f80) == 0x7f80 && (nb & 0x7f), "bf16 NaN -> 0x%04x", nb);
}

/* ---- rejection ------------------------------------------------------------------------- */

static void test_rejects(void) {
    float x[512] = {0};
    uint8_t q[2048];
    /* unsupported types: never a crash, -1 / 0 */
    static const lm_dtype unsupported[] = {LM_DTYPE_IQ2_XXS, LM_DTYPE_IQ1_S,  LM_DTYPE_I8,
                                           LM_DTYPE_I32,     LM_DTYPE_F64,    LM_DTYPE_TQ1_0,
                                           LM_DTYPE_U8,      LM_DTYPE_MLX_Q4, LM_DTYPE_INVALID,
                                           (lm_dtype)4,      (lm_dtype)99,    (lm_dtype)1000};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        lm_dtype t = unsupported[i];
        T_CHECK(!lm_can_dequant(t) && lm_dequant_row(t, q, x, 256) == -1, "dequant type %d",
                (int)t);
        T_CHECK(!lm_can_quantize(t) && lm_quantize_row(t, x, q, 256) == 0, "quantize type %d",
                (int)t);
    }
    T_CHECK(lm_can_dequant(LM_DTYPE_IQ4_XS) && lm_can_quantize(LM_DTYPE_IQ4_XS), "iq4_xs");
    T_CHECK(lm_quantize_row(LM_DTYPE_MXFP4, x, q, 32) == 17, "mxfp4 quantize");
    /* lengths not a multiple of the block size, negative lengths */
    static const lm_dtype blocky[] = {LM_DTYPE_Q4_0, LM_DTYPE_Q8_0, LM_DTYPE_Q8_1,  LM_DTYPE_Q4_K,
                                      LM_DTYPE_Q6_K, LM_DTYPE_Q8_K, LM_DTYPE_IQ4_NL};
    for (size_t i = 0; i < sizeof blocky / sizeof blocky[0]; i++) {
        lm_dtype t = blocky[i];
        int64_t bs = lm_dtype_get(t)->block_size;
        memset(q, 0x5a, sizeof q);
        T_CHECK(lm_dequant_row(t, q, x, bs + 1) == -1, "%s n=bs+1", lm_dtype_name(t));
        T_CHECK(lm_dequant_row(t, q, x, bs - 1) == -1, "%s n=bs-1", lm_dtype_name(t));
        T_CHECK(lm_dequant_row(t, q, x, -bs) == -1, "%s n<0", lm_dtype_name(t));
        T_CHECK(lm_dequant_row(t, NULL, x, bs) == -1, "%s NULL src", lm_dtype_name(t));
        T_CHECK(lm_dequant_row(t, q, x, 0) == 0, "%s n=0 is an empty row", lm_dtype_name(t));
        if (lm_can_quantize(t)) {
            T_CHECK(lm_quantize_row(t, x, q, bs + 1) == 0, "%s q n=bs+1", lm_dtype_name(t));
            T_CHECK(lm_quantize_row(t, x, q, -bs) == 0, "%s q n<0", lm_dtype_name(t));
            T_CHECK(lm_quantize_row(t, x, NULL, bs) == 0, "%s q NULL dst", lm_dtype_name(t));
            T_CHECK(q[0] == 0x5a, "%s: a rejected call wrote", lm_dtype_name(t));
        }
    }
    T_CHECK(lm_quantize_row_q8_0(x, q, 31) == 0 && lm_quantize_row_q8_K(x, q, 255) == 0 &&
                lm_quantize_row_q8_1(x, q, 33) == 0,
            "activation wrappers accept bad lengths");
    T_CHECK(lm_quantize_row_q8_0(x, q, 64) == 68 && lm_quantize_row_q8_1(x, q, 32) == 36 &&
                lm_quantize_row_q8_K(x, q, 512) == 584,
            "activation wrappers sizes");
}

/* The wrappers are exactly lm_quantize_row, and Q8_1's s is d * sum(q) (GGML's definition),
 * Q8_K's bsums the sums of 16 codes. */
static void test_activation_formats(void) {
    t_srand(99);
    float x[512];
    for (int i = 0; i < 512; i++)
        x[i] = gauss() * (i < 256 ? 1.0f : 7.5f);
    uint8_t a[1024], b[1024];
    T_CHECK(lm_quantize_row_q8_0(x, a, 512) == 544 &&
                lm_quantize_row(LM_DTYPE_Q8_0, x, b, 512) == 544 && memcmp(a, b, 544) == 0,
            "q8_0 wrapper");
    T_CHECK(lm_quantize_row_q8_1(x, a, 512) == 576, "q8_1 size");
    for (int blk = 0; blk < 16; blk++) {
        lm_block_q8_1 q;
        memcpy(&q, a + 36 * blk, sizeof q);
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * blk + j]));
        int sum = 0;
        for (int j = 0; j < 32; j++)
            sum += q.qs[j];
        T_CHECK(q.s == lm_f32_to_half((float)sum * (amax / 127.0f)), "q8_1 s block %d", blk);
        T_CHECK(q.d == lm_f32_to_half(amax / 127.0f), "q8_1 d block %d", blk);
    }
    T_CHECK(lm_quantize_row_q8_K(x, a, 512) == 584, "q8_K size");
    for (int blk = 0; blk < 2; blk++) {
        lm_block_q8_K q;
        memcpy(&q, a + 292 * blk, sizeof q);
        int mx = 0;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += q.qs[16 * g + j];
            T_CHECK(sum == q.bsums[g], "bsums[%d] = %d, want %d", g, q.bsums[g], sum);
        }
        for (int j = 0; j < 256; j++)
            mx = q.qs[j] < 0 ? (-q.qs[j] > mx ? -q.qs[j] : mx) : (q.qs[j] > mx ? q.qs[j] : mx);
        T_CHECK(mx == 127, "q8_K extreme code %d", mx);
    }
    /* an all-zero Q8_K block has d = 0, codes 0 and bsums 0 */
    float z[256] = {0};
    memset(a, 0xff, 292);
    lm_quantize_row_q8_K(z, a, 256);
    int nz = 0;
    for (int i = 0; i < 292; i++)
        nz += a[i] != 0;
    T_CHECK(nz == 0, "zero q8_K block has %d non-zero bytes", nz);
}

int main(void) {
    T_RUN(test_dequant_vs_gguf_py);
    T_RUN(test_quant_vs_reference);
    T_RUN(test_round_trip);
    T_RUN(test_requant_stability);
    T_RUN(test_extremes);
    T_RUN(test_half_exhaustive);
    T_RUN(test_half_rounding);
    T_RUN(test_rejects);
    T_RUN(test_activation_formats);
    return t_finish();
}
