/*
 * bench_matvec.c — CPU matmul throughput per weight format, beside the machine's bandwidth.
 *
 * Prints one JSON document:
 *   machine:   memcpy of a 256 MiB buffer (GB/s of bytes copied) and a read-only SIMD sum over
 *              a 256 MiB array at 1 and 2 threads (GB/s read): the read-only number is the
 *              roofline of matvec, which streams each weight byte once.
 *   matvec:    n = 1, a ~96 MiB weight matrix (K = 4096, more than the L3), GB/s of weight bytes
 *              streamed per second and the share of the read roofline, 1 and 2 threads.
 *   matvec_hot_1t: the same kernels on a 1 MiB matrix that stays in L2 (one thread): the
 *              compute ceiling, which shows whether a format can keep up with memory at all.
 *   prefill:   n = 64 activation rows against a 1024 × 4096 matrix, GFLOP/s (2·rows·K·n / s).
 *   models:    the weight shapes of the two real models (SmolLM2-135M Q4_1, Gemma-3-270M Q4_K_M):
 *              decode = one token's matmuls over every layer's own weights (streamed from
 *              memory, the shared-input projections through lm_matmul_multi, as the engine
 *              calls them) plus the output head, ms per token and GB/s per weight format (a
 *              multi call of mixed formats counts under its first: Gemma's Q/K/V as q5_0);
 *              prefill = n = 512 through two layers, GFLOP/s per weight format. 1 and 2
 *              threads. --no-models skips it; --models-only runs only it.
 * Each figure is the best of several timed repetitions after a warm-up (the spread is given as
 * the median next to it). The SIMD level is the active one (LM_CPU=scalar|avx2|avx512 lowers it;
 * --level X sets it). --quick shrinks the matrices for a smoke run.
 */
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/matmul.h"
#include "core/threadpool.h"
#include "tensor/quant.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static float rndf(void) { return (float)(rnd() >> 40) / (float)(1 << 24) * 2.0f - 1.0f; }

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------- machine bandwidth */

__attribute__((target("avx512f"))) static double sum512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) static double sum256(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

typedef struct {
    const float *p;
    size_t n;
    int use512;
    double part[8];
} sum_ctx;

static void sum_worker(void *arg, int ith, int nth) {
    sum_ctx *c = arg;
    size_t per = (c->n / (size_t)nth) & ~(size_t)63;
    size_t b = per * (size_t)ith, e = ith == nth - 1 ? c->n : b + per;
    c->part[ith] = c->use512 ? sum512(c->p + b, e - b) : sum256(c->p + b, e - b);
}

/* Best-of-reps GB/s of a read-only sum over buf (n floats). */
static double read_bw(lm_threadpool *tp, const float *buf, size_t n, int reps, double *median) {
    const lm_cpu_features *f = lm_cpu_features_get();
    sum_ctx c = {buf, n, f->avx512f, {0}};
    double t[32];
    volatile double sink = 0;
    lm_threadpool_run(tp, sum_worker, &c); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        lm_threadpool_run(tp, sum_worker, &c);
        t[r] = now_s() - t0;
        sink += c.part[0];
    }
    (void)sink;
    qsort(t, (size_t)reps, sizeof t[0], cmp_d);
    *median = (double)n * 4 / t[reps / 2] / 1e9;
    return (double)n * 4 / t[0] / 1e9;
}

/* ---------------------------------------------------------------- weights */

static void put_half(uint8_t *p, float f) {
    lm_half h = lm_f32_to_half(f);
    memcpy(p, &h, 2);
}

/* Random valid weights (speed does not depend on values; scales kept sane, floats finite). */
static void fill_weights(lm_dtype t, uint8_t *w, size_t bytes, int64_t elems) {
    uint64_t *w64 = (uint64_t *)w;
    for (size_t i = 0; i < bytes / 8; i++) w64[i] = rnd();
    for (size_t i = bytes / 8 * 8; i < bytes; i++) w[i] = (uint8_t)rnd();
    if (t == LM_DTYPE_F32) {
        for (int64_t i = 0; i < elems; i++) ((float *)w)[i] = rndf();
        return;
    }
    if (t == LM_DTYPE_F16 || t == LM_DTYPE_BF16) {
        for (int64_t i = 0; i < elems; i++) {
            uint16_t h = t == LM_DTYPE_F16 ? lm_f32_to_half(rndf()) : lm_f32_to_bf16(rndf());
            memcpy(w + 2 * i, &h, 2);
        }
        return;
    }
    int od = -1, om = -1;
    switch (t) {
    case LM_DTYPE_Q4_0: case LM_DTYPE_Q5_0: case LM_DTYPE_Q8_0: od = 0; break;
    case LM_DTYPE_Q4_1: case LM_DTYPE_Q5_1: case LM_DTYPE_Q4_K: case LM_DTYPE_Q5_K:
        od = 0, om = 2; break;
    case LM_DTYPE_Q2_K: od = 80, om = 82; break;
    case LM_DTYPE_Q3_K: od = 108; break;
    case LM_DTYPE_Q6_K: od = 208; break;
    default: break;
    }
    const lm_dtype_traits *tr = lm_dtype_get(t);
    for (size_t b = 0; b < bytes / tr->type_size; b++) {
        if (od >= 0) put_half(w + b * tr->type_size + od, 0.01f);
        if (om >= 0) put_half(w + b * tr->type_size + om, -0.005f);
    }
}

/* ---------------------------------------------------------------- model-shaped runs */

typedef struct {
    lm_dtype t;
    int64_t rows, K;
    int grp; /* consecutive matrices with the same grp > 0 share one lm_matmul_multi call */
} shape;

typedef struct {
    const char *name;
    int layers;
    shape L[7];
    lm_dtype alt6; /* ffn_down alternates with this type in odd layers (Gemma: q4_K / q6_K) */
    shape head;
} model_shapes;

static const model_shapes k_models[2] = {
    {"smollm2-135m-q4_1", 30,
     {{LM_DTYPE_Q4_1, 576, 576, 1}, {LM_DTYPE_Q4_1, 192, 576, 1}, {LM_DTYPE_Q4_1, 192, 576, 1},
      {LM_DTYPE_Q4_1, 576, 576, 0}, {LM_DTYPE_Q4_1, 1536, 576, 2},
      {LM_DTYPE_Q4_1, 1536, 576, 2}, {LM_DTYPE_Q4_1, 576, 1536, 0}},
     LM_DTYPE_Q4_1, {LM_DTYPE_Q8_0, 49152, 576, 0}},
    {"gemma-3-270m-q4_k_m", 18,
     {{LM_DTYPE_Q5_0, 1024, 640, 1}, {LM_DTYPE_Q5_0, 256, 640, 1}, {LM_DTYPE_Q8_0, 256, 640, 1},
      {LM_DTYPE_Q4_K, 640, 1024, 0}, {LM_DTYPE_Q5_0, 2048, 640, 2},
      {LM_DTYPE_Q5_0, 2048, 640, 2}, {LM_DTYPE_Q6_K, 640, 2048, 0}},
     LM_DTYPE_Q4_K, {LM_DTYPE_Q8_0, 262144, 640, 0}},
};

static void fill_weights(lm_dtype t, uint8_t *w, size_t bytes, int64_t elems);

/* One pass over nl layers (+ the head when head != NULL): per-type seconds in secs[type]. */
static void model_pass(lm_threadpool *tp, const model_shapes *ms, int nl, uint8_t *const *W,
                       const uint8_t *head, const float *X, int64_t n, float *const *Y,
                       float *yh, double *secs) {
    for (int l = 0; l < nl; l++) {
        int m = 0;
        while (m < 7) {
            lm_matmul_item it[4];
            int c = 0;
            do {
                const shape *b = &ms->L[m + c];
                lm_dtype t = m + c == 6 && (l & 1) ? ms->alt6 : b->t;
                it[c] = (lm_matmul_item){t, W[l * 7 + m + c], b->rows, Y[m + c]};
                c++;
            } while (ms->L[m].grp && m + c < 7 && ms->L[m + c].grp == ms->L[m].grp);
            double t0 = now_s();
            lm_matmul_multi(tp, it, c, ms->L[m].K, X, n, NULL);
            double dt = now_s() - t0;
            /* a multi call of mixed types is charged to its first item's type */
            secs[it[0].wtype] += dt;
            m += c;
        }
    }
    if (head) {
        double t0 = now_s();
        lm_matmul(tp, ms->head.t, head, ms->head.rows, ms->head.K, X, 1, yh, NULL);
        secs[ms->head.t + LM_DTYPE_GGML_COUNT] += now_s() - t0;
    }
}

/* Decode (n = 1, all layers and the head) and prefill (n = 512, two layers) of one model. */
static int bench_model(const model_shapes *ms, lm_threadpool *tp2, int quick, int last) {
    const int nl = quick ? 4 : ms->layers;
    uint8_t **W = calloc((size_t)nl * 7, sizeof *W);
    double bytes[2 * LM_DTYPE_GGML_COUNT] = {0}, flop[LM_DTYPE_GGML_COUNT] = {0};
    const int64_t np = 512;
    for (int l = 0; l < nl; l++)
        for (int m = 0; m < 7; m++) {
            const shape *a = &ms->L[m];
            lm_dtype t = m == 6 && (l & 1) ? ms->alt6 : a->t;
            size_t sz = lm_dtype_row_size(t, a->K) * (size_t)a->rows;
            W[l * 7 + m] = malloc(sz);
            if (!W[l * 7 + m]) return -1;
            fill_weights(t, W[l * 7 + m], sz, a->rows * a->K);
            /* counted where model_pass charges the time: the first format of a multi call */
            int g0 = m;
            while (a->grp && g0 > 0 && ms->L[g0 - 1].grp == a->grp) g0--;
            const lm_dtype tc = g0 == 6 && (l & 1) ? ms->alt6 : ms->L[g0].t;
            bytes[tc] += (double)sz;
            if (l < 2) flop[tc] += 2.0 * (double)a->rows * (double)a->K * (double)np;
        }
    size_t hsz = lm_dtype_row_size(ms->head.t, ms->head.K) * (size_t)ms->head.rows;
    uint8_t *head = malloc(hsz);
    float *X = malloc((size_t)(2048 * np) * sizeof(float)), *Y[7];
    float *yh = malloc((size_t)ms->head.rows * sizeof(float));
    if (!head || !X || !yh) return -1;
    fill_weights(ms->head.t, head, hsz, ms->head.rows * ms->head.K);
    bytes[ms->head.t + LM_DTYPE_GGML_COUNT] = (double)hsz;
    for (int64_t i = 0; i < 2048 * np; i++) X[i] = rndf();
    for (int m = 0; m < 7; m++) Y[m] = malloc((size_t)(ms->L[m].rows * np) * sizeof(float));
    printf("    {\"model\": \"%s\", \"layers\": %d", ms->name, nl);
    for (int th = 1; th <= 2; th++) {
        lm_threadpool *tp = th == 2 ? tp2 : NULL;
        /* decode: best pass of reps (each pass streams all the weights once) */
        double best[2 * LM_DTYPE_GGML_COUNT], tot = 1e30;
        for (int i = 0; i < 2 * LM_DTYPE_GGML_COUNT; i++) best[i] = 1e30;
        for (int r = 0; r < (quick ? 3 : 20) + 1; r++) {
            double secs[2 * LM_DTYPE_GGML_COUNT] = {0}, sum = 0;
            model_pass(tp, ms, nl, W, head, X, 1, Y, yh, secs);
            if (r == 0) continue;
            for (int i = 0; i < 2 * LM_DTYPE_GGML_COUNT; i++) {
                sum += secs[i];
                if (secs[i] > 0 && secs[i] < best[i]) best[i] = secs[i];
            }
            if (sum < tot) tot = sum;
        }
        printf(",\n     \"decode_%dt\": {\"ms_per_token\": %.3f", th, tot * 1e3);
        for (int i = 0; i < 2 * LM_DTYPE_GGML_COUNT; i++)
            if (bytes[i] > 0 && best[i] < 1e29)
                printf(", \"%s%s_GBps\": %.2f", lm_dtype_name((lm_dtype)(i % LM_DTYPE_GGML_COUNT)),
                       i >= LM_DTYPE_GGML_COUNT ? "_head" : "", bytes[i] / best[i] / 1e9);
        printf("}");
        /* prefill: two layers, n = 512 */
        double pb[LM_DTYPE_GGML_COUNT], ptot = 1e30;
        for (int i = 0; i < LM_DTYPE_GGML_COUNT; i++) pb[i] = 1e30;
        for (int r = 0; r < (quick ? 1 : 3) + 1; r++) {
            double secs[2 * LM_DTYPE_GGML_COUNT] = {0}, sum = 0;
            model_pass(tp, ms, 2, W, NULL, X, np, Y, yh, secs);
            if (r == 0) continue;
            for (int i = 0; i < LM_DTYPE_GGML_COUNT; i++) {
                sum += secs[i];
                if (secs[i] > 0 && secs[i] < pb[i]) pb[i] = secs[i];
            }
            if (sum < ptot) ptot = sum;
        }
        printf(",\n     \"prefill512_2layers_%dt\": {\"ms\": %.2f", th, ptot * 1e3);
        for (int i = 0; i < LM_DTYPE_GGML_COUNT; i++)
            if (flop[i] > 0 && pb[i] < 1e29)
                printf(", \"%s_GFLOPs\": %.1f", lm_dtype_name((lm_dtype)i), flop[i] / pb[i] / 1e9);
        printf("}");
        fflush(stdout);
    }
    printf("}%s\n", last ? "" : ",");
    for (int i = 0; i < nl * 7; i++) free(W[i]);
    free(W), free(head), free(X), free(yh);
    for (int m = 0; m < 7; m++) free(Y[m]);
    return 0;
}

/* Best and median seconds of lm_matmul over reps runs. */
static int time_matmul(lm_threadpool *tp, lm_dtype t, const void *W, int64_t rows, int64_t K,
                       const float *X, int64_t n, float *Y, int reps, double *best,
                       double *med) {
    double ts[64];
    lm_err e;
    lm_err_clear(&e);
    if (lm_matmul(tp, t, W, rows, K, X, n, Y, &e) != LM_OK) {
        fprintf(stderr, "matmul %s: %s\n", lm_dtype_name(t), e.msg);
        return -1;
    }
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        lm_matmul(tp, t, W, rows, K, X, n, Y, NULL);
        ts[r] = now_s() - t0;
    }
    qsort(ts, (size_t)reps, sizeof ts[0], cmp_d);
    *best = ts[0];
    *med = ts[reps / 2];
    return 0;
}

int main(int argc, char **argv) {
    int quick = 0, models = 1, only_models = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--no-models") == 0) models = 0;
        else if (strcmp(argv[i], "--models-only") == 0) only_models = 1;
        else if (strcmp(argv[i], "--level") == 0 && i + 1 < argc) {
            const char *l = argv[++i];
            lm_cpu_level lv = strcmp(l, "scalar") == 0 ? LM_CPU_SCALAR
                              : strcmp(l, "avx2") == 0 ? LM_CPU_AVX2 : LM_CPU_AVX512;
            lm_err e;
            lm_err_clear(&e);
            if (lm_cpu_set_level(lv, &e) != LM_OK) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
        }
    }
    const lm_dtype types[] = {LM_DTYPE_Q4_0, LM_DTYPE_Q4_1, LM_DTYPE_Q5_0, LM_DTYPE_Q5_1,
                              LM_DTYPE_Q8_0, LM_DTYPE_Q2_K, LM_DTYPE_Q3_K, LM_DTYPE_Q4_K,
                              LM_DTYPE_Q5_K, LM_DTYPE_Q6_K, LM_DTYPE_F16,  LM_DTYPE_BF16,
                              LM_DTYPE_F32};
    const int ntypes = (int)(sizeof types / sizeof types[0]);
    const size_t big = quick ? ((size_t)32 << 20) : ((size_t)256 << 20);
    const size_t wtarget = quick ? ((size_t)16 << 20) : ((size_t)96 << 20);
    const int64_t K = 4096;
    const int reps = quick ? 3 : 9;

    lm_threadpool *tp2 = NULL;
    if (lm_threadpool_create(2, &tp2, NULL) != LM_OK) return 1;
    if (only_models) {
        printf("{\n  \"bench\": \"matvec\",\n  \"level\": \"%s\",\n  \"models\": [\n",
               lm_cpu_level_name(lm_cpu_level_get()));
        for (int i = 0; i < 2; i++)
            if (bench_model(&k_models[i], tp2, quick, i == 1)) return 1;
        printf("  ]\n}\n");
        lm_threadpool_free(tp2);
        return 0;
    }

    /* machine bandwidth */
    float *a = malloc(big), *b = malloc(big);
    if (!a || !b) return 1;
    for (size_t i = 0; i < big / 4; i++) a[i] = 1.0f, b[i] = 0.0f;
    double cp[16];
    memcpy(b, a, big);
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
        memcpy(b, a, big);
        cp[r] = now_s() - t0;
    }
    qsort(cp, 5, sizeof cp[0], cmp_d);
    double memcpy_gbs = (double)big / cp[0] / 1e9;
    double rd1_med, rd2_med;
    double rd1 = read_bw(NULL, a, big / 4, reps, &rd1_med);
    double rd2 = read_bw(tp2, a, big / 4, reps, &rd2_med);
    free(b);
    free(a);

    const lm_cpu_features *f = lm_cpu_features_get();
    printf("{\n  \"bench\": \"matvec\",\n  \"level\": \"%s\",\n  \"avx512_bf16\": %d,\n",
           lm_cpu_level_name(lm_cpu_level_get()), f->avx512bf16);
    printf("  \"machine\": {\"memcpy_GBps\": %.2f, \"memcpy_rw_GBps\": %.2f, "
           "\"read_GBps_1t\": %.2f, \"read_GBps_1t_median\": %.2f, \"read_GBps_2t\": %.2f, "
           "\"read_GBps_2t_median\": %.2f, \"buffer_MiB\": %zu},\n",
           memcpy_gbs, 2 * memcpy_gbs, rd1, rd1_med, rd2, rd2_med, big >> 20);

    printf("  \"matvec\": [\n");
    for (int ti = 0; ti < ntypes; ti++) {
        lm_dtype t = types[ti];
        size_t rb = lm_dtype_row_size(t, K);
        int64_t rows = (int64_t)(wtarget / rb);
        size_t bytes = rb * (size_t)rows;
        uint8_t *W = malloc(bytes);
        float *X = malloc(K * sizeof(float)), *Y = malloc((size_t)rows * sizeof(float));
        if (!W || !X || !Y) return 1;
        fill_weights(t, W, bytes, rows * K);
        for (int64_t i = 0; i < K; i++) X[i] = rndf();
        double b1, m1, b2, m2;
        if (time_matmul(NULL, t, W, rows, K, X, 1, Y, reps, &b1, &m1) ||
            time_matmul(tp2, t, W, rows, K, X, 1, Y, reps, &b2, &m2))
            return 1;
        double g1 = (double)bytes / b1 / 1e9, g2 = (double)bytes / b2 / 1e9;
        printf("    {\"type\": \"%s\", \"MiB\": %.1f, \"rows\": %lld, \"K\": %lld, "
               "\"GBps_1t\": %.2f, \"GBps_1t_median\": %.2f, \"roofline_1t\": %.3f, "
               "\"GBps_2t\": %.2f, \"GBps_2t_median\": %.2f, \"roofline_2t\": %.3f}%s\n",
               lm_dtype_name(t), (double)bytes / (1 << 20), (long long)rows, (long long)K, g1,
               (double)bytes / m1 / 1e9, g1 / rd1, g2, (double)bytes / m2 / 1e9, g2 / rd2,
               ti + 1 < ntypes ? "," : "");
        fflush(stdout);
        free(W), free(X), free(Y);
    }
    /* MLX affine (bits 4 and 8, group 64, f16 scales and biases): weight bytes include the
     * scales and biases */
    for (int bits = 4; bits <= 8; bits += 4) {
        const int gs = 64;
        size_t prb = (size_t)K * (size_t)bits / 8, srb = (size_t)(K / gs) * 2;
        int64_t rows = (int64_t)(wtarget / (prb + 2 * srb));
        size_t bytes = (prb + 2 * srb) * (size_t)rows;
        uint8_t *P = malloc(prb * (size_t)rows);
        uint16_t *S = malloc(srb * (size_t)rows), *B = malloc(srb * (size_t)rows);
        float *X = malloc(K * sizeof(float)), *Y = malloc((size_t)rows * sizeof(float));
        if (!P || !S || !B || !X || !Y) return 1;
        for (size_t i = 0; i < prb * (size_t)rows; i++) P[i] = (uint8_t)rnd();
        for (size_t i = 0; i < srb / 2 * (size_t)rows; i++) {
            S[i] = lm_f32_to_half(0.01f);
            B[i] = lm_f32_to_half(-0.05f);
        }
        for (int64_t i = 0; i < K; i++) X[i] = rndf();
        double best[2], med[2];
        for (int th = 0; th < 2; th++) {
            lm_threadpool *tp = th ? tp2 : NULL;
            double ts[64];
            lm_matmul_mlx(tp, bits, gs, P, S, B, LM_DTYPE_F16, rows, K, X, 1, Y, NULL);
            for (int r = 0; r < reps; r++) {
                double t0 = now_s();
                lm_matmul_mlx(tp, bits, gs, P, S, B, LM_DTYPE_F16, rows, K, X, 1, Y, NULL);
                ts[r] = now_s() - t0;
            }
            qsort(ts, (size_t)reps, sizeof ts[0], cmp_d);
            best[th] = ts[0];
            med[th] = ts[reps / 2];
        }
        printf("  ,{\"type\": \"mlx_q%d_g64\", \"MiB\": %.1f, \"rows\": %lld, \"K\": %lld, "
               "\"GBps_1t\": %.2f, \"GBps_1t_median\": %.2f, \"roofline_1t\": %.3f, "
               "\"GBps_2t\": %.2f, \"GBps_2t_median\": %.2f, \"roofline_2t\": %.3f}\n",
               bits, (double)bytes / (1 << 20), (long long)rows, (long long)K,
               (double)bytes / best[0] / 1e9, (double)bytes / med[0] / 1e9,
               (double)bytes / best[0] / 1e9 / rd1, (double)bytes / best[1] / 1e9,
               (double)bytes / med[1] / 1e9, (double)bytes / best[1] / 1e9 / rd2);
        free(P), free(S), free(B), free(X), free(Y);
    }
    /* the kernels' compute ceiling: a 1 MiB matrix that stays in L2, one thread */
    printf("  ],\n  \"matvec_hot_1t\": [\n");
    for (int ti = 0; ti < ntypes; ti++) {
        lm_dtype t = types[ti];
        size_t rb = lm_dtype_row_size(t, K);
        int64_t rows = (int64_t)(((size_t)1 << 20) / rb);
        size_t bytes = rb * (size_t)rows;
        uint8_t *W = malloc(bytes);
        float *X = malloc(K * sizeof(float)), *Y = malloc((size_t)rows * sizeof(float));
        if (!W || !X || !Y) return 1;
        fill_weights(t, W, bytes, rows * K);
        for (int64_t i = 0; i < K; i++) X[i] = rndf();
        double b1, m1;
        if (time_matmul(NULL, t, W, rows, K, X, 1, Y, quick ? 5 : 31, &b1, &m1)) return 1;
        printf("    {\"type\": \"%s\", \"KiB\": %.0f, \"GBps\": %.2f, \"GBps_median\": %.2f}%s\n",
               lm_dtype_name(t), (double)bytes / 1024, (double)bytes / b1 / 1e9,
               (double)bytes / m1 / 1e9, ti + 1 < ntypes ? "," : "");
        free(W), free(X), free(Y);
    }
    printf("  ],\n  \"prefill\": [\n");
    const int64_t prow = quick ? 256 : 1024, n = 64;
    for (int ti = 0; ti < ntypes; ti++) {
        lm_dtype t = types[ti];
        size_t rb = lm_dtype_row_size(t, K), bytes = rb * (size_t)prow;
        uint8_t *W = malloc(bytes);
        float *X = malloc((size_t)(K * n) * sizeof(float)), *Y = malloc((size_t)(prow * n) * 4);
        if (!W || !X || !Y) return 1;
        fill_weights(t, W, bytes, prow * K);
        for (int64_t i = 0; i < K * n; i++) X[i] = rndf();
        double b1, m1, b2, m2;
        int pr = reps < 5 ? reps : 5;
        if (time_matmul(NULL, t, W, prow, K, X, n, Y, pr, &b1, &m1) ||
            time_matmul(tp2, t, W, prow, K, X, n, Y, pr, &b2, &m2))
            return 1;
        double flop = 2.0 * (double)prow * (double)K * (double)n;
        printf("    {\"type\": \"%s\", \"rows\": %lld, \"K\": %lld, \"n\": %lld, "
               "\"GFLOPs_1t\": %.1f, \"GFLOPs_1t_median\": %.1f, \"GFLOPs_2t\": %.1f, "
               "\"GFLOPs_2t_median\": %.1f}%s\n",
               lm_dtype_name(t), (long long)prow, (long long)K, (long long)n, flop / b1 / 1e9,
               flop / m1 / 1e9, flop / b2 / 1e9, flop / m2 / 1e9, ti + 1 < ntypes ? "," : "");
        fflush(stdout);
        free(W), free(X), free(Y);
    }
    printf("  ]");
    if (models) {
        printf(",\n  \"models\": [\n");
        for (int i = 0; i < 2; i++)
            if (bench_model(&k_models[i], tp2, quick, i == 1)) return 1;
        printf("  ]");
    }
    printf("\n}\n");
    lm_threadpool_free(tp2);
    return 0;
}
