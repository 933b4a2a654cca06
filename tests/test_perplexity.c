/*
 * test_perplexity.c — `lemma perplexity` on a fixed text against llama.cpp's perplexity of the
 * same models on the same text (issue "CPU inference engine": within 1% of llama.cpp's).
 *
 * tests/data/engine/perplexity.expected.json holds llama.cpp's values, made by
 * tools/llamacpp_perplexity.py (llama-cpp-python from PyPI; how is written there and in the
 * file's "source"/"command"): for each model, the perplexity of tests/data/engine/
 * perplexity.txt with chunks of "ctx" tokens, llama-perplexity's method, which `lemma
 * perplexity` follows, and the running perplexity after each chunk. The script also checked
 * that lemma's tokenization of the text equals llama.cpp's, so both score the same tokens.
 *
 * The built binary ($LM_TEST_BUILD/lemma, default build/lemma) is run on each model listed
 * there (skipped when the model file is absent) on the whole text (6 chunks of 512), and the
 * final estimates are compared. The whole text is needed: on Gemma 3 the per-token NLLs of
 * lemma and llama.cpp differ by float noise of ~0.12 nats (sd; mean ~0), which over the 1530
 * scored tokens leaves ~0.3% (1 sd) of noise in the PPL, but ~0.5% over the first 2 chunks,
 * where 1% is only 2 sd. `lemma perplexity` runs each chunk in one batched pass
 * (lm_session_append_scored): ~10-15 s per model on the 2-core dev machine.
 * LM_TEST_PPL_CHUNKS=N scores only the first N chunks (against llama.cpp's running value).
 * Skipped under ASan/UBSan (10x slower; `lemma perplexity` itself runs under ASan in
 * test_cli_engine.c).
 */
#include "test.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXPECTED "tests/data/engine/perplexity.expected.json"
#define TOLERANCE 0.01 /* relative */

static char g_bin[1024];

static int run(const char *const *args, char **out, char **err);

/* 1 when the binary exists and has the perplexity command. */
static int have_bin(void) {
    static int known = -1;
    if (known >= 0) return known;
    const char *b = getenv("LM_TEST_BUILD");
    snprintf(g_bin, sizeof g_bin, "%s/lemma", b && *b ? b : "build");
    known = 0;
    if (access(g_bin, X_OK) == 0) {
        const char *args[] = {"perplexity", "--help", NULL};
        char *out, *err;
        known = run(args, &out, &err) == 0;
        free(out);
        free(err);
    }
    return known;
}

static char *slurp(int fd) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return buf;
}

/* Runs the binary with args (NULL-terminated, argv[0] excluded), stdin /dev/null; *out and
 * *err get stdout and stderr (malloc'd). Returns the exit status, -1 when it could not run or
 * died of a signal. */
static int run(const char *const *args, char **out, char **err) {
    char err_path[1024];
    snprintf(err_path, sizeof err_path, "%s/perplexity_stderr.txt", t_tmpdir());
    int fd[2];
    *out = *err = NULL;
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        const char *argv[64];
        int n = 0;
        argv[n++] = g_bin;
        for (; args[n - 1] && n < 63; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        int ifd = open("/dev/null", O_RDONLY);
        int efd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (ifd < 0 || efd < 0) _exit(126);
        dup2(ifd, 0);
        dup2(fd[1], 1);
        dup2(efd, 2);
        close(fd[0]);
        close(fd[1]);
        execv(g_bin, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    *out = slurp(fd[0]);
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    int efd = open(err_path, O_RDONLY);
    *err = efd >= 0 ? slurp(efd) : NULL;
    if (efd >= 0) close(efd);
    if (!*out) *out = calloc(1, 1);
    if (!*err) *err = calloc(1, 1);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Last "[k]value," of lemma's running output; *k gets k. NAN when none. */
static double last_running(const char *out, long *k) {
    double v = NAN;
    *k = 0;
    for (const char *p = strchr(out, '['); p; p = strchr(p + 1, '[')) {
        long kk;
        double vv;
        if (sscanf(p, "[%ld]%lf", &kk, &vv) == 2) *k = kk, v = vv;
    }
    return v;
}

static void check_model(const json_t *doc, const json_t *m) {
    const char *model = json_string_value(json_object_get(m, "model"));
    const char *text = json_string_value(json_object_get(doc, "text"));
    json_int_t ctx = json_integer_value(json_object_get(doc, "ctx"));
    const json_t *running = json_object_get(m, "running_ppl");
    json_int_t n_chunks = json_integer_value(json_object_get(m, "n_chunks"));
    T_REQUIRE(model && text && ctx > 0 && n_chunks > 0 && json_is_array(running) &&
                  json_array_size(running) == (size_t)n_chunks,
              "malformed entry in %s", EXPECTED);
    if (access(model, R_OK) != 0) {
        fprintf(stderr, "  skip %s: not installed\n", model);
        return;
    }
    const char *env = getenv("LM_TEST_PPL_CHUNKS");
    long chunks = env && atol(env) > 0 && atol(env) < n_chunks ? atol(env) : (long)n_chunks;
    double want = chunks == n_chunks ? json_number_value(json_object_get(m, "ppl"))
                                     : json_number_value(json_array_get(running, chunks - 1));
    char c_arg[32], n_arg[32];
    snprintf(c_arg, sizeof c_arg, "%lld", (long long)ctx);
    snprintf(n_arg, sizeof n_arg, "%ld", chunks);
    const char *args[] = {"perplexity", "-m",  model,      "-f",  text,
                          "-c",         c_arg, "--chunks", n_arg, NULL};
    char *out, *err;
    int rc = run(args, &out, &err);
    T_CHECK(rc == 0, "%s: rc %d, stderr '%s'", model, rc, err);
    long k;
    double got = last_running(out, &k);
    if (chunks == n_chunks) {
        const char *f = strstr(out, "Final estimate: PPL = ");
        double se = NAN;
        T_CHECK(f && sscanf(f, "Final estimate: PPL = %lf +/- %lf", &got, &se) == 2,
                "%s: no final estimate: '%s'", model, out);
    }
    T_CHECK(k == chunks, "%s: %ld chunk(s) scored, %ld expected: '%s'", model, k, chunks, out);
    double rel = fabs(got - want) / want;
    T_CHECK(isfinite(got) && rel <= TOLERANCE,
            "%s: PPL %.4f after %ld chunk(s), llama.cpp %.4f: %.2f%% apart (limit %.0f%%)", model,
            got, chunks, want, 100.0 * rel, 100.0 * TOLERANCE);
    if (getenv("LM_TEST_VERBOSE"))
        fprintf(stderr, "  %s: PPL %.4f, llama.cpp %.4f (%+.3f%%), %ld chunk(s)\n", model, got,
                want, 100.0 * (got - want) / want, chunks);
    free(out);
    free(err);
}

static void test_perplexity_vs_llamacpp(void) {
#if defined(__SANITIZE_ADDRESS__)
    T_SKIP("too slow under ASan (lemma perplexity runs under ASan in test_cli_engine)");
#endif
    if (!have_bin()) T_SKIP("%s not built or without the perplexity command", g_bin);
    json_error_t je;
    json_t *doc = json_load_file(EXPECTED, 0, &je);
    T_REQUIRE(doc, "%s: %s", EXPECTED, je.text);
    const json_t *models = json_object_get(doc, "models");
    T_CHECK(json_is_array(models) && json_array_size(models) >= 2, "%s: models", EXPECTED);
    int any = 0;
    for (size_t i = 0; i < json_array_size(models); i++) {
        const json_t *m = json_array_get(models, i);
        const char *model = json_string_value(json_object_get(m, "model"));
        if (model && access(model, R_OK) == 0) any = 1;
        check_model(doc, m);
    }
    json_decref(doc);
    if (!any) T_SKIP("none of the models of %s installed", EXPECTED);
}

int main(void) {
    T_RUN(test_perplexity_vs_llamacpp);
    return t_finish();
}
