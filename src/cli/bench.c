/*
 * bench.c — `lemma bench`: prompt processing and generation speed, like llama-bench.
 *
 *   lemma bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r REPS] [-b BATCH] [--json]
 *
 * pp: P random valid token ids appended to an empty session in one call (chunks of n_batch,
 *     default 256), timed around lm_session_append_tokens. The session's prefix cache is off:
 *     every repetition computes the prompt (bench/bench_session.c measures the cache).
 * tg: after one token, N tokens generated greedily (end-of-generation does not stop it), timed
 *     around lm_session_generate: N single-token forward passes plus sampling.
 * Each test runs once as a warm-up, then REPS times (default 3); the rate is the mean of the
 * repetitions' tokens/s with their sample standard deviation (as llama-bench reports). -p 0 or
 * -n 0 skips that test. Output: a small table, or with --json one JSON object
 *   {"model", "arch", "threads", "reps", "pp": {"n", "tps", "stddev"} | null, "tg": {...} | null}
 * Exit codes: 0 ok, 1 runtime error (model file, memory), 2 bad usage.
 * Uses only include/lemma.h.
 */
#include "cli_util.h"
#include "lemma.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void bench_usage(FILE *f) {
    fprintf(f, "usage: lemma bench -m MODEL [options]\n"
               "  -p N        prompt tokens for the prefill test, 0 = skip (default 512)\n"
               "  -n N        tokens for the generation test, 0 = skip (default 128)\n"
               "  -t THREADS  compute threads (default: all CPUs)\n"
               "  -r REPS     timed repetitions after one warm-up (default 3)\n"
               "  -b BATCH    prefill chunk (default 256)\n"
               "  --json      print one JSON object instead of a table\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    int n;
    double tps, stddev;
} bench_result;

static void stats(const double *x, int n, bench_result *r) {
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    r->tps = n > 0 ? sum / n : 0.0;
    for (int i = 0; i < n; i++)
        sq += (x[i] - r->tps) * (x[i] - r->tps);
    r->stddev = n > 1 ? sqrt(sq / (n - 1)) : 0.0;
}

/* splitmix64: the random prompt is the same in every run */
static uint64_t next_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* One prefill of tokens[0..n) into the emptied session: tokens/s, or < 0 on error. */
static double run_pp(lm_session *s, const int32_t *tokens, int n) {
    if (lm_session_truncate(s, 0) != LM_OK) return -1.0;
    double t0 = now_s();
    if (lm_session_append_tokens(s, tokens, (size_t)n) != LM_OK) return -1.0;
    double dt = now_s() - t0;
    return dt > 0 ? n / dt : 0.0;
}

/* One generation of n tokens after token `first`: tokens/s, or < 0 on error. */
static double run_tg(lm_session *s, int32_t first, int n) {
    lm_generate_params gp = lm_generate_default_params();
    gp.max_tokens = n;
    gp.sampling.temperature = 0.0f;
    gp.stop_at_eog = 0;
    if (lm_session_truncate(s, 0) != LM_OK || lm_session_append_tokens(s, &first, 1) != LM_OK)
        return -1.0;
    lm_session_metrics_reset(s);
    double t0 = now_s();
    if (lm_session_generate(s, &gp) != LM_OK) return -1.0;
    double dt = now_s() - t0;
    lm_metrics mt;
    lm_session_metrics(s, &mt);
    return dt > 0 ? (double)mt.generated_tokens / dt : 0.0;
}

static void print_json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_json_result(const char *key, const bench_result *r, int on) {
    printf(",\"%s\":", key);
    if (on)
        printf("{\"n\":%d,\"tps\":%.3f,\"stddev\":%.3f}", r->n, r->tps, r->stddev);
    else
        printf("null");
}

int cmd_bench(int argc, char **argv) {
    const char *model_path = NULL;
    int n_pp = 512, n_tg = 128, reps = 3, json = 0;
    long v;
    lm_model_params mp = lm_model_default_params();
    lm_session_params sp = lm_session_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            bench_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!next) {
                fprintf(stderr, "lemma bench: %s expects a model path\n", a);
                return 2;
            }
            model_path = next, i++;
        } else if (!strcmp(a, "-p")) {
            if (!cli_parse_long("bench", a, next, 0, 1 << 20, &v)) return 2;
            n_pp = (int)v, i++;
        } else if (!strcmp(a, "-n")) {
            if (!cli_parse_long("bench", a, next, 0, 1 << 20, &v)) return 2;
            n_tg = (int)v, i++;
        } else if (!strcmp(a, "-r")) {
            if (!cli_parse_long("bench", a, next, 1, 1000, &v)) return 2;
            reps = (int)v, i++;
        } else if (!strcmp(a, "-b")) {
            if (!cli_parse_long("bench", a, next, 1, 65536, &v)) return 2;
            sp.n_batch = (int32_t)v, i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_parse_long("bench", a, next, 1, 1024, &v)) return 2;
            mp.n_threads = (int32_t)v, i++;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            fprintf(stderr, "lemma bench: unknown option '%s'\n", a);
            bench_usage(stderr);
            return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "lemma bench: -m MODEL is required\n");
        bench_usage(stderr);
        return 2;
    }
    if (n_pp == 0 && n_tg == 0) {
        fprintf(stderr, "lemma bench: nothing to run (-p 0 and -n 0)\n");
        return 2;
    }

    char err[512];
    lm_model *m = NULL;
    lm_session *s = NULL;
    int32_t *prompt = NULL;
    double *samples = calloc((size_t)reps, sizeof *samples);
    bench_result pp = {n_pp, 0, 0}, tg = {n_tg, 0, 0};
    int rc = 1;
    if (!samples) {
        fprintf(stderr, "lemma bench: out of memory\n");
        goto done;
    }
    if (lm_model_load(model_path, &mp, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma bench: %s\n", err);
        goto done;
    }
    int need = (n_pp > n_tg + 1 ? n_pp : n_tg + 1);
    if (need > lm_model_n_ctx_train(m)) {
        fprintf(stderr, "lemma bench: %d tokens exceed the model's context of %d\n", need,
                lm_model_n_ctx_train(m));
        rc = 2;
        goto done;
    }
    sp.n_ctx = need;
    sp.prefix_cache = 0; /* repetitions of one prompt must not attach the warm-up's pages */
    if (lm_session_new(m, &sp, &s, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma bench: %s\n", err);
        goto done;
    }
    int32_t n_vocab = lm_model_n_vocab(m);
    uint64_t rs = 42;
    prompt = malloc((size_t)(n_pp > 0 ? n_pp : 1) * sizeof *prompt);
    if (!prompt) {
        fprintf(stderr, "lemma bench: out of memory\n");
        goto done;
    }
    for (int i = 0; i < n_pp; i++)
        prompt[i] = (int32_t)(next_rand(&rs) % (uint64_t)n_vocab);
    int32_t first = (int32_t)(next_rand(&rs) % (uint64_t)n_vocab);

    if (n_pp > 0) {
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
            double x = run_pp(s, prompt, n_pp);
            if (x < 0) goto fail;
            if (r >= 0) samples[r] = x;
        }
        stats(samples, reps, &pp);
    }
    if (n_tg > 0) {
        for (int r = -1; r < reps; r++) {
            double x = run_tg(s, first, n_tg);
            if (x < 0) goto fail;
            if (r >= 0) samples[r] = x;
        }
        stats(samples, reps, &tg);
    }

    long threads = mp.n_threads > 0 ? mp.n_threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (json) {
        printf("{\"model\":");
        print_json_str(model_path);
        printf(",\"arch\":");
        print_json_str(lm_model_arch(m));
        printf(",\"threads\":%ld,\"reps\":%d", threads, reps);
        print_json_result("pp", &pp, n_pp > 0);
        print_json_result("tg", &tg, n_tg > 0);
        printf("}\n");
    } else {
        struct stat st;
        double mib = stat(model_path, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0.0;
        const char *base = strrchr(model_path, '/');
        base = base && base[1] ? base + 1 : model_path;
        printf("| %-32s | %-8s | %9s | %7s | %8s | %20s |\n", "model", "arch", "size", "threads",
               "test", "t/s");
        printf("| -------------------------------- | -------- | --------: | ------: | -------: "
               "| -------------------: |\n");
        const bench_result *res[2] = {&pp, &tg};
        const char *name[2] = {"pp", "tg"};
        for (int k = 0; k < 2; k++) {
            if (res[k]->n <= 0) continue;
            char test[32], rate[64];
            snprintf(test, sizeof test, "%s%d", name[k], res[k]->n);
            snprintf(rate, sizeof rate, "%.2f ± %.2f", res[k]->tps, res[k]->stddev);
            printf("| %-32.32s | %-8s | %5.1f MiB | %7ld | %8s | %21s |\n", base, lm_model_arch(m),
                   mib, threads, test, rate);
        }
    }
    fflush(stdout);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "lemma bench: %s\n", lm_session_error(s));
done:
    free(prompt);
    free(samples);
    lm_session_free(s);
    lm_model_free(m);
    return rc;
}
