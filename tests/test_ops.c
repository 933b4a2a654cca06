/*
 * test_ops.c — the CPU backend's non-matmul ops (backend/cpu/ops.h) against their scalar
 * references, at every SIMD level the machine has (forced with lm_cpu_set_level), on random
 * data of many shapes; attention also through the backend table at 1 and 2 threads.
 *
 * lm_matmul_multi (several weights, one input, one pool run) must equal separate lm_matmul
 * calls bit for bit, at 1 and 2 threads, for mixed weight types (shared and distinct
 * activation formats), decode and prefill shapes.
 *
 * Tolerances (docs/kernels.md, "Non-matmul ops"):
 *   - f32 -> f16 rows and GELU (f16 table): bit-identical, NaN/inf/subnormal/overflow included;
 *   - RMS norm: |got - want| <= 1e-6 |want| + 1e-30 (double sum in another order, then the
 *     same float scaling: at most an ulp or so of the scale);
 *   - SiLU: |got - want| <= 4e-6 |want| + 1e-30 (polynomial exp within a few ulp of expf);
 *   - RoPE (scalar only): plain RoPE bit-identical to the unscaled formula (angles by
 *     repeated multiplication, as before scaling existed), with freq_factors all 1 and mscale
 *     0 or 1 too; scaled RoPE (freq_scale, freq_factors, mscale) against a double-precision
 *     evaluation of backend.h's formula within mscale (|x_a| + |x_b|) (n_rot 2^-22 |theta| +
 *     1e-6): the float angle, built by n_rot/2 multiplications, is off by a few ulp of theta;
 *   - attention: |got - want| <= 1e-3 · max_j |v_j| + 1e-6 per output element. Scores, exp
 *     and sums differ from the reference only in rounding (~1e-6 relative), but the reference
 *     rounds each probability to f16; a last-bit difference before that rounding can move a
 *     probability by one f16 ulp (2^-11 relative), hence the bound. The largest error seen is
 *     printed; typical errors are ~1e-7.
 *     Grouped attention (test_attention_grouped: GQA groups 1..16, head_dim 64/128/256, windows
 *     below/at/above the sequence, soft-cap, prefill tiles across pages of 256 and 16 tokens,
 *     decode head chunks, inf in K/V beyond a row's keys): the same bound, and the outputs at
 *     1, 2 and 3 threads bit-identical.
 */
#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "core/threadpool.h"
#include "kv/kv.h"
#include "tensor/quant.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const lm_cpu_level k_levels[] = {LM_CPU_AVX2, LM_CPU_AVX512};
#define N_LEVELS (sizeof k_levels / sizeof k_levels[0])

/* Forces a SIMD level; 0 if the hardware lacks it (the test then skips that level). */
static int set_level(lm_cpu_level lv) {
    lm_err e;
    lm_err_clear(&e);
    return lm_cpu_set_level(lv, &e) == LM_OK;
}

static void rand_floats(float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = t_rand_f32(lo, hi);
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f32_to_f16(void) {
    const lm_cpu_level saved = lm_cpu_level_get();
    enum { N = 4096 + 13 };
    static float x[N];
    static lm_half want[N], got[N];
    /* random bit patterns (NaN, inf, subnormals), every f16 boundary region, plain values */
    for (int i = 0; i < N; i++) {
        const int kind = i % 4;
        if (kind == 0) x[i] = bits_f32((uint32_t)t_rand_u64());
        else if (kind == 1) x[i] = t_rand_f32(-70000.0f, 70000.0f);
        else if (kind == 2) x[i] = t_rand_f32(-1e-4f, 1e-4f);
        else x[i] = ldexpf(t_rand_f32(1.0f, 2.0f), (int)(t_rand_u64() % 50) - 30);
    }
    const float special[] = {0.0f,      -0.0f,    INFINITY, -INFINITY,  NAN,
                             65504.0f,  65519.0f, 65520.0f, -65520.0f,  5.96e-8f,
                             2.98e-8f,  2.99e-8f, 6.1035e-5f, 1.0f + 1.0f / 2048};
    memcpy(x, special, sizeof special);
    lm_cpu_f32_to_f16_ref(want, x, N);
    for (size_t l = 0; l < N_LEVELS; l++) {
        if (!set_level(k_levels[l])) continue;
        for (int n = 0; n <= 40; n++) {
            memset(got, 0xee, sizeof got);
            lm_cpu_f32_to_f16(got, x + n, n * 7);
            int bad = -1;
            for (int i = 0; i < n * 7; i++)
                if (got[i] != want[n + i]) bad = i;
            T_CHECK(bad < 0, "%s n %d: element %d: %04x want %04x", lm_cpu_level_name(k_levels[l]),
                    n * 7, bad, bad < 0 ? 0 : got[bad], bad < 0 ? 0 : want[n + bad]);
            T_CHECK(got[n * 7] == 0xeeee, "wrote past the end (n %d)", n * 7);
        }
        memset(got, 0, sizeof got);
        lm_cpu_f32_to_f16(got, x, N);
        T_CHECK(memcmp(got, want, sizeof got) == 0, "%s: full row differs",
                lm_cpu_level_name(k_levels[l]));
    }
    set_level(saved);
}

static void test_rmsnorm(void) {
    const lm_cpu_level saved = lm_cpu_level_get();
    const int64_t dims[] = {1, 2, 4, 15, 16, 17, 64, 100, 256, 576, 640, 2048};
    static float x[4 * 2048], w[2048], want[4 * 2048], got[4 * 2048];
    for (size_t l = 0; l < N_LEVELS; l++) {
        if (!set_level(k_levels[l])) continue;
        double worst = 0;
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
            const int64_t dim = dims[d];
            for (int n = 1; n <= 4; n += 3) {
                const float scale = d % 3 == 0 ? 1e-3f : d % 3 == 1 ? 1.0f : 300.0f;
                rand_floats(x, n * dim, -scale, scale);
                rand_floats(w, dim, -2.0f, 2.0f);
                for (int with_w = 0; with_w < 2; with_w++) {
                    const float *wp = with_w ? w : NULL;
                    lm_cpu_rmsnorm_ref(want, x, wp, n, dim, 1e-6f);
                    lm_cpu_rmsnorm(got, x, wp, n, dim, 1e-6f);
                    for (int64_t i = 0; i < n * dim; i++) {
                        const double err = fabs((double)got[i] - want[i]);
                        if (err > worst) worst = err;
                        T_CHECK(err <= 1e-6 * fabs(want[i]) + 1e-30,
                                "%s dim %lld n %d w %d [%lld]: %.9g want %.9g",
                                lm_cpu_level_name(k_levels[l]), (long long)dim, n, with_w,
                                (long long)i, got[i], want[i]);
                    }
                    /* in place (y == x) gives the same */
                    memcpy(got, x, (size_t)(n * dim) * sizeof *x);
                    lm_cpu_rmsnorm(got, got, wp, n, dim, 1e-6f);
                    lm_cpu_rmsnorm(want, x, wp, n, dim, 1e-6f);
                    T_CHECK(memcmp(got, want, (size_t)(n * dim) * sizeof *x) == 0,
                            "in place differs (dim %lld)", (long long)dim);
                }
            }
        }
        printf("  rmsnorm %s: max abs error %.3g\n", lm_cpu_level_name(k_levels[l]), worst);
    }
    set_level(saved);
}

static void test_glu(void) {
    const lm_cpu_level saved = lm_cpu_level_get();
    const int64_t ns[] = {1, 3, 15, 16, 17, 33, 100, 1536, 2048 + 5};
    static float g[2100], u[2100], want[2100], got[2100];
    for (size_t l = 0; l < N_LEVELS; l++) {
        if (!set_level(k_levels[l])) continue;
        for (int act = 0; act < 2; act++) {
            double worst = 0;
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                const int64_t n = ns[k];
                const float r = k % 2 ? 12.0f : 40.0f;
                rand_floats(g, n, -r, r);
                rand_floats(u, n, -3.0f, 3.0f);
                const float special[] = {0.0f, -0.0f, -10.0f, 10.0f, -9.999f, 9.999f, -87.0f,
                                         -89.0f, 89.0f, -200.0f, 200.0f, 1e-30f, -1e-30f};
                if (n >= 13) memcpy(g, special, sizeof special);
                memcpy(want, g, (size_t)n * sizeof *g);
                memcpy(got, g, (size_t)n * sizeof *g);
                got[n] = want[n] = 12345.0f;
                lm_cpu_glu_ref(want, u, n, (lm_act)act);
                lm_cpu_glu(got, u, n, (lm_act)act);
                T_CHECK(got[n] == 12345.0f, "glu wrote past the end");
                for (int64_t i = 0; i < n; i++) {
                    const double err = fabs((double)got[i] - want[i]);
                    if (err > worst) worst = err;
                    if (act == LM_ACT_GELU_TANH)
                        T_CHECK(memcmp(&got[i], &want[i], 4) == 0,
                                "%s gelu n %lld [%lld] g %g: %.9g want %.9g",
                                lm_cpu_level_name(k_levels[l]), (long long)n, (long long)i, g[i],
                                got[i], want[i]);
                    else
                        T_CHECK(err <= 4e-6 * fabs(want[i]) + 1e-30,
                                "%s silu n %lld [%lld] g %g: %.9g want %.9g",
                                lm_cpu_level_name(k_levels[l]), (long long)n, (long long)i, g[i],
                                got[i], want[i]);
                }
            }
            printf("  %s %s: max abs error %.3g\n", act ? "gelu" : "silu",
                   lm_cpu_level_name(k_levels[l]), worst);
        }
    }
    set_level(saved);
}

/* One attention case: n query tokens at pos0 over a pool with the given geometry. */
typedef struct attn_case {
    int32_t n_head, n_head_kv, head_dim, page_tokens;
    int64_t pos0, n;
    int32_t window;
    float softcap;
} attn_case;

static void run_attn_case(const attn_case *c, lm_backend *const *bes, int n_bes,
                          double *worst) {
    const int32_t kvd = c->n_head_kv * c->head_dim, qd = c->n_head * c->head_dim;
    const int64_t total = c->pos0 + c->n;
    lm_kv_pool pool;
    lm_kv_seq seq;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config cfg = {2, kvd, c->page_tokens,
                        (int32_t)((total + c->page_tokens - 1) / c->page_tokens) + 1};
    T_REQUIRE(lm_kv_pool_init(&pool, &cfg, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq_init(&seq);
    float *k = malloc((size_t)(total * kvd) * sizeof *k);
    float *v = malloc((size_t)(total * kvd) * sizeof *v);
    float *q = malloc((size_t)(c->n * qd) * sizeof *q);
    float *want = malloc((size_t)(c->n * qd) * sizeof *want);
    float *got = malloc((size_t)(c->n * qd) * sizeof *got);
    float *scratch = malloc((size_t)(total + 16) * sizeof *scratch);
    if (!k || !v || !q || !want || !got || !scratch ||
        lm_kv_seq_reserve(&pool, &seq, total, &e) != LM_OK) {
        T_CHECK(0, "setup failed: %s", e.msg);
        goto done;
    }
    rand_floats(k, total * kvd, -1.0f, 1.0f);
    rand_floats(v, total * kvd, -1.0f, 1.0f);
    rand_floats(q, c->n * qd, -2.0f, 2.0f);
    /* layer 1 holds the data, layer 0 garbage: the layer offset must be honoured */
    lm_cpu_kv_write(&pool, &seq, 1, k, v, total, 0);
    lm_cpu_kv_write(&pool, &seq, 0, v, k, total, 0);
    seq.n_tokens = total;
    const lm_attn_params ap = {c->n_head, c->n_head_kv, c->head_dim,
                               1.0f / sqrtf((float)c->head_dim), c->window, c->softcap};
    lm_cpu_attention_rows_ref(want, q, &pool, &seq, 1, c->pos0, &ap, 0, c->n * c->n_head,
                              scratch);
    for (int b = 0; b < n_bes; b++) {
        memset(got, 0, (size_t)(c->n * qd) * sizeof *got);
        lm_status s = bes[b]->ops->attention(bes[b], got, q, &pool, &seq, 1, c->n, c->pos0, &ap,
                                             &e);
        T_REQUIRE(s == LM_OK, "attention: %s", e.msg);
        int reported = 0;
        for (int64_t i = 0; i < c->n * qd; i++) {
            const double err = fabs((double)got[i] - want[i]);
            if (err > *worst) *worst = err;
            if (err > 1e-3 + 1e-6 && !reported++)
                T_CHECK(0, "%s backend %d H %d Hkv %d D %d pt %d pos0 %lld n %lld win %d cap %g "
                        "[%lld]: %.7g want %.7g", lm_cpu_level_name(lm_cpu_level_get()), b,
                        c->n_head, c->n_head_kv, c->head_dim, c->page_tokens,
                        (long long)c->pos0, (long long)c->n, c->window, c->softcap,
                        (long long)i, got[i], want[i]);
        }
    }
done:
    free(k), free(v), free(q), free(want), free(got), free(scratch);
    lm_kv_seq_free(&pool, &seq);
    lm_kv_pool_free(&pool);
}

/* The angles of plain RoPE as computed before scaling existed: theta = pos, multiplied by
 * base^(-2/n_rot) for each pair. */
static void rope_unscaled(float *x, int64_t n, int32_t n_head, int32_t head_dim, int64_t pos0,
                          lm_rope_style style, int32_t nr, float base) {
    const float ts = powf(base, -2.0f / (float)nr);
    for (int64_t i = 0; i < n; i++) {
        float theta = (float)(pos0 + i);
        for (int32_t p = 0; p < nr / 2; p++, theta *= ts) {
            const float c = cosf(theta), sn = sinf(theta);
            for (int32_t h = 0; h < n_head; h++) {
                float *v = x + (i * n_head + h) * head_dim;
                const int32_t a = style == LM_ROPE_NORM ? 2 * p : p;
                const int32_t b = style == LM_ROPE_NORM ? 2 * p + 1 : p + nr / 2;
                const float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * sn;
                v[b] = x0 * sn + x1 * c;
            }
        }
    }
}

static void test_rope(void) {
    enum { MAXN = 5, MAXH = 3, MAXD = 256 };
    static float x[MAXN * MAXH * MAXD], got[MAXN * MAXH * MAXD], want[MAXN * MAXH * MAXD];
    static float ones[MAXD / 2], ff[MAXD / 2];
    for (int i = 0; i < MAXD / 2; i++) ones[i] = 1.0f;
    const int32_t dims[] = {2, 8, 16, 64, 128, 256};
    double worst = 0;
    for (int iter = 0; iter < 60; iter++) {
        const int32_t D = dims[iter % 6];
        const int32_t nr = iter % 4 == 3 && D >= 4 ? D / 2 : D; /* partial rotation too */
        const int64_t n = 1 + iter % MAXN;
        const int32_t H = 1 + iter % MAXH;
        const int64_t pos0 = iter % 3 == 0 ? 0 : (int64_t)(t_rand_u64() % 40000);
        const float base = iter % 2 ? 10000.0f : 1000000.0f;
        const lm_rope_style st = iter % 2 ? LM_ROPE_NORM : LM_ROPE_NEOX;
        const size_t len = (size_t)(n * H * D);
        rand_floats(x, (int64_t)len, -2.0f, 2.0f);

        /* plain: bit-identical to the unscaled formula, with and without all-1 factors */
        memcpy(want, x, len * sizeof(float));
        rope_unscaled(want, n, H, D, pos0, st, nr, base);
        const lm_rope_params plain[3] = {{st, nr, base, 1.0f, NULL, 0.0f},
                                         {st, nr, base, 1.0f, NULL, 1.0f},
                                         {st, nr, base, 1.0f, ones, 1.0f}};
        for (int k = 0; k < 3; k++) {
            memcpy(got, x, len * sizeof(float));
            lm_cpu_rope(got, n, H, D, pos0, &plain[k]);
            T_CHECK(memcmp(got, want, len * sizeof(float)) == 0,
                    "plain rope %d: D %d n_rot %d pos0 %lld not bit-identical", k, D, nr,
                    (long long)pos0);
        }

        /* scaled: against the formula in double */
        for (int32_t p = 0; p < nr / 2; p++) ff[p] = t_rand_f32(0.5f, 40.0f);
        const float fs = iter % 3 == 1 ? 0.25f : 1.0f;
        const float ms = iter % 2 ? 1.2f : 0.9f;
        const lm_rope_params rp = {st, nr, base, fs, iter % 5 == 4 ? NULL : ff, ms};
        memcpy(got, x, len * sizeof(float));
        lm_cpu_rope(got, n, H, D, pos0, &rp);
        for (int64_t i = 0; i < n; i++)
            for (int32_t h = 0; h < H; h++) {
                const float *xi = x + (i * H + h) * D, *gi = got + (i * H + h) * D;
                for (int32_t c = nr; c < D; c++)
                    T_CHECK(gi[c] == xi[c], "pass-through dim %d changed", c);
                for (int32_t p = 0; p < nr / 2; p++) {
                    const int32_t a = st == LM_ROPE_NORM ? 2 * p : p;
                    const int32_t b = st == LM_ROPE_NORM ? 2 * p + 1 : p + nr / 2;
                    const double th = (double)fs * (double)(pos0 + i) *
                                      pow((double)base, -2.0 * p / nr) /
                                      (rp.freq_factors ? (double)ff[p] : 1.0);
                    const double wa = ms * (xi[a] * cos(th) - xi[b] * sin(th));
                    const double wb = ms * (xi[a] * sin(th) + xi[b] * cos(th));
                    const double tol = ms * (fabs(xi[a]) + fabs(xi[b])) *
                                       (nr * 0x1p-22 * fabs(th) + 1e-6);
                    const double err = fmax(fabs(gi[a] - wa), fabs(gi[b] - wb));
                    worst = fmax(worst, err / tol);
                    T_CHECK(err <= tol, "scaled rope D %d pair %d pos %lld: err %.3g > %.3g", D,
                            p, (long long)(pos0 + i), err, tol);
                }
            }
    }
    printf("# rope: worst error / tolerance %.3f\n", worst);
}

static void test_attention(void) {
    const lm_cpu_level saved = lm_cpu_level_get();
    lm_cpu_ops_init();
    lm_backend *bes[2] = {NULL, NULL};
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_backend_cpu_create(1, &bes[0], &e) == LM_OK, "%s", e.msg);
    if (lm_backend_cpu_create(2, &bes[1], &e) != LM_OK) {
        lm_backend_free(bes[0]);
        T_REQUIRE(0, "%s", e.msg);
    }
    const attn_case cases[] = {
        {9, 3, 64, 256, 0, 1, 0, 0.0f},    /* SmolLM2 decode, first token */
        {9, 3, 64, 256, 77, 1, 0, 0.0f},   /* SmolLM2 decode */
        {9, 3, 64, 16, 300, 1, 0, 0.0f},   /* across many pages */
        {4, 1, 256, 256, 130, 1, 0, 0.0f}, /* Gemma-3-270M decode */
        {4, 1, 256, 32, 200, 1, 64, 0.0f}, /* sliding window */
        {4, 1, 256, 32, 200, 3, 50, 0.0f},
        {8, 8, 128, 7, 40, 5, 0, 50.0f},   /* soft-cap, odd page size */
        {2, 1, 40, 5, 33, 9, 0, 0.0f},     /* head_dim with a tail of 8 */
        {3, 3, 2, 4, 5, 1, 0, 0.0f},       /* tiny head */
        {6, 2, 72, 9, 0, 20, 0, 0.0f},     /* prefill from 0 */
        {5, 5, 100, 256, 10, 17, 7, 30.0f},
        {2, 2, 17, 3, 600, 2, 0, 0.0f},    /* long context, odd D */
    };
    for (size_t l = 0; l < N_LEVELS; l++) {
        if (!set_level(k_levels[l])) continue;
        double worst = 0;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_attn_case(&cases[i], bes, 2, &worst);
        for (int r = 0; r < 20; r++) {
            attn_case c;
            c.n_head_kv = 1 + (int32_t)(t_rand_u64() % 4);
            c.n_head = c.n_head_kv * (1 + (int32_t)(t_rand_u64() % 4));
            c.head_dim = 1 + (int32_t)(t_rand_u64() % 160);
            c.page_tokens = 1 + (int32_t)(t_rand_u64() % 40);
            c.pos0 = (int64_t)(t_rand_u64() % 200);
            c.n = 1 + (int64_t)(t_rand_u64() % 6);
            c.window = t_rand_u64() % 3 == 0 ? 1 + (int32_t)(t_rand_u64() % 50) : 0;
            c.softcap = t_rand_u64() % 4 == 0 ? 20.0f : 0.0f;
            run_attn_case(&c, bes, 2, &worst);
        }
        printf("  attention %s: max abs error %.3g\n", lm_cpu_level_name(k_levels[l]), worst);
    }
    set_level(saved);
    lm_backend_free(bes[0]);
    lm_backend_free(bes[1]);
}

/* ---- grouped attention (GQA tiles, decode head chunks, thread split) ------------------- */

/* One grouped-attention case: the backend at 1, 2 and 3 threads against the reference, and
 * the thread counts against each other bit for bit; also lm_cpu_attention_rows. inf_v / inf_k:
 * put +inf into V / K of the batch's last position, which only the last token sees: every
 * other row must still match the reference (keys outside a row's range never reach it). */
typedef struct gattn_case {
    int32_t n_head, n_head_kv, head_dim, page_tokens;
    int64_t pos0, n;
    int32_t window;
    float softcap;
    int inf_v, inf_k;
} gattn_case;

static void run_gattn_case(const gattn_case *c, lm_backend *const *bes, int n_bes,
                           double *worst) {
    const int32_t kvd = c->n_head_kv * c->head_dim, qd = c->n_head * c->head_dim;
    const int64_t total = c->pos0 + c->n;
    const size_t nq = (size_t)(c->n * qd);
    lm_kv_pool pool;
    lm_kv_seq seq;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config cfg = {2, kvd, c->page_tokens,
                        (int32_t)((total + c->page_tokens - 1) / c->page_tokens) + 1};
    T_REQUIRE(lm_kv_pool_init(&pool, &cfg, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq_init(&seq);
    float *k = malloc((size_t)(total * kvd) * sizeof *k);
    float *v = malloc((size_t)(total * kvd) * sizeof *v);
    float *q = malloc(nq * sizeof *q);
    float *want = malloc(nq * sizeof *want);
    float *got = malloc(nq * sizeof *got);
    float *first = malloc(nq * sizeof *first);
    float *scratch = malloc((size_t)(total + 16) * sizeof *scratch);
    if (!k || !v || !q || !want || !got || !first || !scratch ||
        lm_kv_seq_reserve(&pool, &seq, total, &e) != LM_OK) {
        T_CHECK(0, "setup failed: %s", e.msg);
        goto done;
    }
    rand_floats(k, total * kvd, -1.0f, 1.0f);
    rand_floats(v, total * kvd, -1.0f, 1.0f);
    rand_floats(q, c->n * qd, -2.0f, 2.0f);
    lm_cpu_kv_write(&pool, &seq, 1, k, v, total, 0);
    lm_cpu_kv_write(&pool, &seq, 0, v, k, total, 0);
    if (c->inf_v) lm_kv_row(&pool, &seq, 1, 1, total - 1)[kvd / 2] = 0x7c00; /* +inf */
    if (c->inf_k) lm_kv_row(&pool, &seq, 1, 0, total - 1)[0] = 0x7c00;
    seq.n_tokens = total;
    const lm_attn_params ap = {c->n_head, c->n_head_kv, c->head_dim,
                               1.0f / sqrtf((float)c->head_dim), c->window, c->softcap};
    lm_cpu_attention_rows_ref(want, q, &pool, &seq, 1, c->pos0, &ap, 0, c->n * c->n_head,
                              scratch);
    /* rows of the last token may be non-finite when it sees the inf: not compared */
    const size_t checked = c->inf_v || c->inf_k ? nq - (size_t)qd : nq;
    for (int b = 0; b <= n_bes; b++) {
        memset(got, 0xff, nq * sizeof *got); /* NaN: every element must be written */
        if (b < n_bes) {
            lm_status s = bes[b]->ops->attention(bes[b], got, q, &pool, &seq, 1, c->n, c->pos0,
                                                 &ap, &e);
            T_REQUIRE(s == LM_OK, "attention: %s", e.msg);
        } else {
            lm_cpu_attention_rows(got, q, &pool, &seq, 1, c->pos0, &ap, 0, c->n * c->n_head,
                                  scratch);
        }
        int reported = 0;
        for (size_t i = 0; i < checked; i++) {
            const double err = fabs((double)got[i] - want[i]);
            if (err > *worst) *worst = err;
            if (!(err <= 1e-3 + 1e-6) && !reported++)
                T_CHECK(0, "%s %s %d: H %d Hkv %d D %d pt %d pos0 %lld n %lld win %d cap %g "
                        "inf %d%d [%zu]: %.7g want %.7g", lm_cpu_level_name(lm_cpu_level_get()),
                        b < n_bes ? "threads" : "rows", b < n_bes ? b + 1 : 0, c->n_head,
                        c->n_head_kv, c->head_dim, c->page_tokens, (long long)c->pos0,
                        (long long)c->n, c->window, c->softcap, c->inf_v, c->inf_k, i, got[i],
                        want[i]);
        }
        if (b == 0)
            memcpy(first, got, nq * sizeof *got);
        else if (b < n_bes)
            T_CHECK(memcmp(first, got, checked * sizeof *got) == 0,
                    "%s: %d threads differ from 1 (H %d Hkv %d D %d pos0 %lld n %lld)",
                    lm_cpu_level_name(lm_cpu_level_get()), b + 1, c->n_head, c->n_head_kv,
                    c->head_dim, (long long)c->pos0, (long long)c->n);
    }
done:
    free(k), free(v), free(q), free(want), free(got), free(first), free(scratch);
    lm_kv_seq_free(&pool, &seq);
    lm_kv_pool_free(&pool);
}

static void test_attention_grouped(void) {
    const lm_cpu_level saved = lm_cpu_level_get();
    lm_cpu_ops_init();
    lm_backend *bes[3] = {NULL, NULL, NULL};
    lm_err e;
    lm_err_clear(&e);
    for (int b = 0; b < 3; b++)
        if (lm_backend_cpu_create(b + 1, &bes[b], &e) != LM_OK) {
            for (int j = 0; j < b; j++) lm_backend_free(bes[j]);
            T_REQUIRE(0, "%s", e.msg);
        }
    static const int32_t groups[] = {1, 2, 4, 8}, dims[] = {64, 128, 256};
    for (size_t l = 0; l < N_LEVELS; l++) {
        if (!set_level(k_levels[l])) continue;
        double worst = 0;
        int idx = 0;
        /* every group × head_dim: a prefill batch crossing a page boundary (pos0 > 0; page
         * sizes 256 and 16), and decode; windows none / smaller than / equal to / larger
         * than the sequence, soft-cap on and off, in turn */
        for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
            for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++, idx++) {
                const int32_t pt = idx % 2 ? 16 : 256;
                const int64_t pos0 = pt == 256 ? 230 : 45, n = 37;
                const int32_t wins[4] = {0, 20, (int32_t)(pos0 + n), (int32_t)(pos0 + n + 99)};
                gattn_case c = {2 * groups[gi], 2, dims[di], pt, pos0, n, wins[idx % 4],
                                idx % 3 == 1 ? 30.0f : 0.0f, 0, 0};
                run_gattn_case(&c, bes, 3, &worst);
                c.n = 1;
                c.pos0 = pos0 + 20;
                run_gattn_case(&c, bes, 3, &worst);
            }
        static const gattn_case cases[] = {
            {4, 1, 256, 256, 256, 256, 0, 0.0f, 0, 0},   /* Gemma 3 270M, second prefill chunk */
            {4, 1, 256, 256, 256, 256, 512, 0.0f, 0, 0}, /* sliding window 512 */
            {9, 3, 64, 256, 256, 256, 0, 0.0f, 0, 0},    /* SmolLM2, second prefill chunk */
            {9, 3, 64, 256, 0, 256, 0, 0.0f, 0, 0},      /* first chunk */
            {9, 3, 64, 16, 100, 40, 0, 0.0f, 0, 0},      /* small pages */
            {9, 3, 64, 256, 700, 1, 0, 0.0f, 0, 0},      /* decode, 3 KV heads */
            {4, 1, 256, 256, 700, 1, 0, 0.0f, 0, 0},     /* decode, 1 KV head */
            {4, 1, 256, 256, 700, 1, 100, 0.0f, 0, 0},
            {16, 1, 64, 32, 50, 9, 0, 0.0f, 0, 0},       /* 16 heads per KV head */
            {3, 1, 72, 16, 30, 21, 5, 0.0f, 0, 0},       /* window < tile, head_dim tail */
            {2, 2, 40, 7, 20, 3, 0, 50.0f, 0, 0},        /* tiny tiles, odd pages */
            {1, 1, 256, 16, 10, 2, 0, 0.0f, 0, 0},       /* two-row tile */
            {8, 2, 128, 16, 40, 24, 0, 0.0f, 1, 0},      /* inf in V past earlier rows */
            {8, 2, 128, 16, 40, 24, 0, 0.0f, 0, 1},      /* inf in K past earlier rows */
            {9, 3, 64, 256, 0, 33, 0, 0.0f, 1, 1},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_gattn_case(&cases[i], bes, 3, &worst);
        printf("  grouped attention %s: max abs error %.3g\n", lm_cpu_level_name(k_levels[l]),
               worst);
    }
    set_level(saved);
    for (int b = 0; b < 3; b++) lm_backend_free(bes[b]);
}

static void test_matmul_multi(void) {
    const lm_cpu_level saved = lm_cpu_level_get();
    /* Q/K/V-like mixes: same format, shared activation format, distinct formats */
    const lm_dtype mixes[][3] = {
        {LM_DTYPE_Q4_1, LM_DTYPE_Q4_1, LM_DTYPE_Q4_1},
        {LM_DTYPE_Q4_K, LM_DTYPE_Q4_K, LM_DTYPE_Q6_K},
        {LM_DTYPE_Q4_0, LM_DTYPE_Q8_0, LM_DTYPE_F16},
        {LM_DTYPE_Q5_1, LM_DTYPE_Q4_0, LM_DTYPE_Q2_K},
    };
    const int64_t rows[3] = {37, 12, 0 + 5};
    const int64_t K = 512;
    const int64_t ns[] = {1, 2, 7};
    static float x[7 * 512], w32[64 * 512];
    static uint8_t wq[3][64 * 600];
    static float want[3][7 * 64], got[3][7 * 64];
    lm_threadpool *tps[2] = {NULL, NULL};
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_threadpool_create(1, &tps[0], &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_threadpool_create(2, &tps[1], &e) == LM_OK, "%s", e.msg);
    const lm_cpu_level levels[] = {LM_CPU_SCALAR, LM_CPU_AVX2, LM_CPU_AVX512};
    for (size_t l = 0; l < 3; l++) {
        if (!set_level(levels[l])) continue;
        for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
            lm_matmul_item it[3];
            for (int i = 0; i < 3; i++) {
                rand_floats(w32, rows[i] * K, -1.0f, 1.0f);
                for (int64_t r = 0; r < rows[i]; r++)
                    lm_quantize_row(mixes[m][i],
                                    w32 + r * K,
                                    wq[i] + (size_t)r * lm_dtype_row_size(mixes[m][i], K), K);
                it[i] = (lm_matmul_item){mixes[m][i], wq[i], rows[i], got[i]};
            }
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                const int64_t n = ns[k];
                rand_floats(x, n * K, -1.0f, 1.0f);
                for (int t = 0; t < 2; t++) {
                    for (int i = 0; i < 3; i++) {
                        T_REQUIRE(lm_matmul(tps[t], mixes[m][i], wq[i], rows[i], K, x, n, want[i],
                                            &e) == LM_OK, "%s", e.msg);
                        memset(got[i], 0xff, sizeof got[i]);
                    }
                    T_REQUIRE(lm_matmul_multi(tps[t], it, 3, K, x, n, &e) == LM_OK, "%s", e.msg);
                    for (int i = 0; i < 3; i++)
                        T_CHECK(memcmp(got[i], want[i], (size_t)(n * rows[i]) * sizeof(float)) == 0,
                                "%s mix %zu item %d n %lld threads %d: differs from lm_matmul",
                                lm_cpu_level_name(levels[l]), m, i, (long long)n, t + 1);
                }
            }
        }
    }
    lm_matmul_item bad = {LM_DTYPE_Q4_0, wq[0], 3, got[0]};
    T_CHECK(lm_matmul_multi(tps[0], &bad, 0, K, x, 1, &e) == LM_ERR_INVALID_ARG, "count 0");
    T_CHECK(lm_matmul_multi(tps[0], &bad, 5, K, x, 1, &e) == LM_ERR_INVALID_ARG, "count 5");
    T_CHECK(lm_matmul_multi(tps[0], &bad, 1, 33, x, 1, &e) == LM_ERR_INVALID_ARG, "bad K");
    set_level(saved);
    lm_threadpool_free(tps[0]);
    lm_threadpool_free(tps[1]);
}

int main(void) {
    t_srand(4242);
    lm_cpu_ops_init();
    T_RUN(test_f32_to_f16);
    T_RUN(test_rmsnorm);
    T_RUN(test_glu);
    T_RUN(test_rope);
    T_RUN(test_attention);
    T_RUN(test_attention_grouped);
    T_RUN(test_matmul_multi);
    return t_finish();
}
