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
#include "cli.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPECTED "tests/data/engine/perplexity.expected.json"
#define TOLERANCE 0.01 /* relative */

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
    int rc = t_cli_run(args, NULL, &out, NULL, &err);
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
    if (!t_cli_has("perplexity"))
        T_SKIP("%s not built or without the perplexity command", t_cli_bin());
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
