/*
 * bench_session.c — what durable sessions buy: time to first token after waking a slept
 * session versus re-processing its context, at several context lengths; the cost of sleep;
 * bytes on disk per token; and the prefill overhead of the prefix cache when nothing is reused.
 *
 *   bench_session [MODEL] [--ctx 1024,4096,16384] [-t THREADS] [--store DIR] [--reps N]
 *
 * MODEL defaults to the installed default model (short name "smollm2").
 *
 * Prints one JSON object per line. The context is random valid token ids (timing does not
 * depend on the text), fresh for every prefill so nothing is reused. The prefix-cache overhead
 * compares prefills with the cache on and off, alternating which runs first in each repetition
 * (the first prefill of a process pays for faulting in weights and page memory), as means over
 * the repetitions (default 2); ttft_reprefill_ms is that mean with the cache on. Sleep and wake
 * times are the fastest of the repetitions. Wakes run on a second instance of the model (its own, empty page pool),
 * as a new process would; the store's files are in the OS page cache (a warm wake).
 * Contexts longer than the model's trained context are reported as skipped.
 */
#include "lemma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int die(const char *what, const char *err) {
    fprintf(stderr, "bench_session: %s: %s\n", what, err);
    return 1;
}

/* Generates one token (greedy): the "first token" of TTFT. */
static int first_token(lm_session *s) {
    lm_generate_params gp = lm_generate_default_params();
    gp.max_tokens = 1;
    gp.sampling.temperature = 0;
    gp.stop_at_eog = 0;
    return lm_session_generate(s, &gp) == LM_OK ? 0 : -1;
}

static uint64_t dir_bytes(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "du -sb '%s/pages' '%s/sessions' 2>/dev/null | awk '{s+=$1} END "
             "{print s+0}'", dir, dir);
    FILE *p = popen(cmd, "r");
    unsigned long long v = 0;
    if (p) {
        if (fscanf(p, "%llu", &v) != 1) v = 0;
        pclose(p);
    }
    return v;
}

/* Time to first token of a fresh session over fresh random tokens, the prefix cache on or
 * off; -1 on error (reported). */
static double timed_prefill(lm_model *m, lm_session_params sp, int32_t *toks, int n, int32_t nv,
                            int prefix_cache) {
    char err[512];
    for (int i = 0; i < n; i++) toks[i] = 1 + (int32_t)(rnd() % (uint64_t)(nv - 1));
    sp.prefix_cache = prefix_cache;
    lm_session *s = NULL;
    if (lm_session_new(m, &sp, &s, err, sizeof err)) return die("session", err), -1.0;
    double t0 = now_ms();
    if (lm_session_append_tokens(s, toks, (size_t)n) || first_token(s)) {
        die("prefill", lm_session_error(s));
        lm_session_free(s);
        return -1.0;
    }
    double t = now_ms() - t0;
    lm_session_free(s);
    return t;
}

int main(int argc, char **argv) {
    const char *model = NULL, *store_dir = NULL, *ctx_list = "1024,4096,16384";
    int threads = 0, reps = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx_list = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--store") && i + 1 < argc) store_dir = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !model) model = argv[i];
        else {
            fprintf(stderr, "usage: bench_session MODEL [--ctx 1024,4096,16384] [-t THREADS] "
                            "[--store DIR] [--reps N]\n");
            return 2;
        }
    }
    if (!model) model = "smollm2";
    if (reps < 1) return die("usage", "--reps must be >= 1");
    char tmpl[] = "/tmp/lemma-bench-store-XXXXXX";
    if (!store_dir) {
        if (!mkdtemp(tmpl)) return die("mkdtemp", "failed");
        store_dir = tmpl;
    }
    char err[1024];
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = threads;
    lm_model *m = NULL, *m2 = NULL;
    if (lm_model_load(model, &mp, &m, err, sizeof err)) return die(model, err);
    if (lm_model_load(model, &mp, &m2, err, sizeof err)) return die(model, err);
    lm_store *st = NULL;
    if (lm_store_open(store_dir, &st, err, sizeof err)) return die(store_dir, err);
    const int32_t nv = lm_model_n_vocab(m);

    char list[256];
    snprintf(list, sizeof list, "%s", ctx_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        const int n = atoi(tok);
        if (n < 1) continue;
        if (n + 8 > lm_model_n_ctx_train(m)) {
            printf("{\"model\":\"%s\",\"ctx\":%d,\"skipped\":\"trained context is %d\"}\n",
                   model, n, lm_model_n_ctx_train(m));
            fflush(stdout);
            continue;
        }
        int32_t *toks = malloc((size_t)n * sizeof *toks);
        if (!toks) return die("malloc", "out of memory");
        lm_session_params sp = lm_session_default_params();
        sp.n_ctx = n + 8;
        sp.n_batch = 512;
        /* the prefix cache's cost at 0% reuse: prefills with it on and off, alternating which
         * goes first, means over the repetitions */
        double sum_on = 0, sum_off = 0;
        for (int r = 0; r < reps; r++)
            for (int k = 0; k < 2; k++) {
                const int on = (r + k) % 2;
                double t = timed_prefill(m, sp, toks, n, nv, on);
                if (t < 0) return 1;
                if (on) sum_on += t;
                else sum_off += t;
            }
        const double prefill = sum_on / reps, prefill_nc = sum_off / reps;
        /* sleep a session of n tokens, wake it on the other model instance (its own empty
         * pool, as a new process), then the first token; fastest of the repetitions */
        double wake = 1e30, ttft_wake = 1e30, sleep_ms = 1e30;
        uint64_t bytes = 0;
        for (int r = 0; r < reps; r++) {
            for (int i = 0; i < n; i++) toks[i] = 1 + (int32_t)(rnd() % (uint64_t)(nv - 1));
            lm_session *s = NULL;
            if (lm_session_new(m, &sp, &s, err, sizeof err)) return die("session", err);
            if (lm_session_append_tokens(s, toks, (size_t)n) || first_token(s))
                return die("prefill", lm_session_error(s));
            char name[64];
            snprintf(name, sizeof name, "bench-%d-%d", n, r);
            uint64_t before = dir_bytes(store_dir);
            double t0 = now_ms();
            if (lm_session_sleep(s, st, name)) return die("sleep", lm_session_error(s));
            double ts = now_ms() - t0;
            if (ts < sleep_ms) sleep_ms = ts;
            bytes = dir_bytes(store_dir) - before;
            lm_session_free(s);
            lm_session *w = NULL;
            lm_session_params wp = lm_session_default_params();
            wp.n_ctx = 0;
            wp.page_tokens = 0;
            t0 = now_ms();
            if (lm_session_wake(m2, &wp, st, name, &w, err, sizeof err)) return die("wake", err);
            double tw = now_ms();
            if (first_token(w)) return die("first token", lm_session_error(w));
            double t1 = now_ms();
            if (tw - t0 < wake) wake = tw - t0;
            if (t1 - t0 < ttft_wake) ttft_wake = t1 - t0;
            lm_session_free(w);
            char e2[256];
            lm_store_delete(st, name, e2, sizeof e2);
        }
        printf("{\"model\":\"%s\",\"ctx\":%d,\"threads\":%d,\"reps\":%d,"
               "\"ttft_reprefill_ms\":%.1f,\"ttft_reprefill_nocache_ms\":%.1f,"
               "\"prefix_cache_overhead_pct\":%.2f,\"sleep_ms\":%.1f,\"wake_ms\":%.1f,"
               "\"ttft_wake_ms\":%.1f,\"wake_vs_reprefill_pct\":%.2f,\"bytes_on_disk\":%llu,"
               "\"bytes_per_token\":%.0f}\n",
               model, n, threads, reps, prefill, prefill_nc,
               (prefill - prefill_nc) * 100.0 / prefill_nc, sleep_ms, wake, ttft_wake,
               ttft_wake * 100.0 / prefill_nc, (unsigned long long)bytes,
               (double)bytes / (double)n);
        fflush(stdout);
        free(toks);
    }
    lm_store_close(st);
    lm_model_free(m);
    lm_model_free(m2);
    if (store_dir == tmpl) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
        if (system(cmd) != 0) fprintf(stderr, "bench_session: could not remove %s\n", tmpl);
    }
    return 0;
}
