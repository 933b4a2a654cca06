/*
 * test_cli_engine.c — `lemma bench`, `lemma perplexity` and `lemma chat`, run as the built
 * binary ($LM_TEST_BUILD/lemma, default build/lemma) on SmolLM2-135M-Instruct Q4_1
 * (models/smollm2-135m-instruct-q4_1.gguf; skipped when absent). Runs are kept small and use
 * one thread: the commands' numbers are checked for sanity, not speed.
 * Exit codes checked: 0 ok, 1 failure, 2 usage.
 */
#include "cli.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SMOL "models/smollm2-135m-instruct-q4_1.gguf"

static int skip_reason(void) {
    if (!t_cli_has("bench")) return 1;
    return access(SMOL, R_OK) != 0 ? 2 : 0;
}

static double num(const json_t *o, const char *k1, const char *k2) {
    const json_t *v = json_object_get(o, k1);
    if (k2) v = json_object_get(v, k2);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void test_bench_json(void) {
    int why = skip_reason();
    if (why == 1) T_SKIP("%s not built or without the engine commands", t_cli_bin());
    if (why == 2) T_SKIP("%s not installed", SMOL);
    const char *args[] = {"bench", "-m", SMOL, "--json", "-p", "32", "-n",
                          "8",     "-r", "1",  "-t",     "1",  NULL};
    char *out, *err;
    int rc = t_cli_run(args, NULL, &out, NULL, &err);
    T_CHECK(rc == 0, "rc %d, stderr '%s'", rc, err);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    T_CHECK(o && json_is_object(o), "not a JSON object: '%s' (%s)", out, je.text);
    if (o) {
        T_CHECK(json_is_string(json_object_get(o, "model")), "model");
        T_CHECK(num(o, "threads", NULL) == 1, "threads %g", num(o, "threads", NULL));
        T_CHECK(num(o, "pp", "n") == 32 && num(o, "tg", "n") == 8, "n: pp %g tg %g",
                num(o, "pp", "n"), num(o, "tg", "n"));
        double pp = num(o, "pp", "tps"), tg = num(o, "tg", "tps");
        T_CHECK(isfinite(pp) && pp > 0 && isfinite(tg) && tg > 0, "rates pp %g tg %g", pp, tg);
        T_CHECK(num(o, "pp", "stddev") >= 0 && num(o, "tg", "stddev") >= 0, "stddev");
    }
    json_decref(o);
    free(out);
    free(err);
}

static const char *TEXT =
    "The history of the bicycle begins in the early nineteenth century, when inventors in "
    "Europe experimented with two-wheeled machines that riders pushed along with their feet. "
    "These early designs, sometimes called running machines or hobby horses, had no pedals and "
    "were heavy and uncomfortable. In the 1860s, French mechanics attached cranks and pedals "
    "directly to the front wheel, creating the velocipede. Because each turn of the pedals "
    "moved the bicycle only as far as the circumference of the front wheel, makers began to "
    "build larger and larger front wheels, which led to the tall high-wheeler of the 1870s. "
    "Riding one required skill and courage, since a sudden stop could throw the rider over the "
    "handlebars.\n"
    "The safety bicycle, introduced in the 1880s, solved many of these problems. It had two "
    "wheels of similar size, a chain that drove the rear wheel, and a frame that kept the rider "
    "closer to the ground. Soon afterwards, the pneumatic tire made the ride much smoother. "
    "Bicycles became affordable for ordinary workers, and cycling clubs appeared in cities "
    "across Europe and North America. Women in particular gained a new kind of independence, "
    "and the bicycle played a part in changing fashions and social customs.\n"
    "In the twentieth century, bicycles remained important for transport in many countries, "
    "even as cars became common. Today, people ride bicycles for commuting, exercise, sport, "
    "and recreation, and many cities are building protected lanes to make cycling safer. "
    "Engineers continue to improve materials, gears, and brakes, but the basic design of the "
    "safety bicycle has changed remarkably little in more than one hundred years.\n";

static void test_perplexity(void) {
    int why = skip_reason();
    if (why == 1) T_SKIP("%s not built or without the engine commands", t_cli_bin());
    if (why == 2) T_SKIP("%s not installed", SMOL);
    const char *path = t_write_tmp("ppl.txt", TEXT); /* ~337 SmolLM2 tokens: 2 chunks of 128 */
    T_REQUIRE(path != NULL, "tmp file");
    const char *args[] = {"perplexity", "-m", SMOL, "-f", path, "-c", "128", "-t", "1", NULL};
    char *out, *err;
    int rc = t_cli_run(args, NULL, &out, NULL, &err);
    T_CHECK(rc == 0, "rc %d, stderr '%s'", rc, err);
    T_CHECK(strstr(out, "[1]") && strstr(out, "[2]"), "per-chunk values: '%s'", out);
    const char *f = strstr(out, "Final estimate: PPL = ");
    double ppl = NAN, se = NAN;
    T_CHECK(f && sscanf(f, "Final estimate: PPL = %lf +/- %lf", &ppl, &se) == 2,
            "no final estimate: '%s'", out);
    T_CHECK(isfinite(ppl) && ppl > 1.0 && ppl < 1000.0, "PPL %g", ppl);
    T_CHECK(isfinite(se) && se > 0.0 && se < ppl, "standard error %g", se);
    free(out);
    free(err);

    /* a text shorter than one chunk is a usage error */
    const char *a2[] = {"perplexity", "-m", SMOL, "-f", path, "-c", "4096", "-t", "1", NULL};
    rc = t_cli_run(a2, NULL, &out, NULL, &err);
    T_CHECK(rc == 2 && out[0] == '\0' && err[0] != '\0', "short text: rc %d", rc);
    free(out);
    free(err);
}

static void test_chat(void) {
    int why = skip_reason();
    if (why == 1) T_SKIP("%s not built or without the engine commands", t_cli_bin());
    if (why == 2) T_SKIP("%s not installed", SMOL);
    const char *in = "Hi, my name is Ada.\nWhat is my name?\n";
    const char *args[] = {"chat", "-m", SMOL, "--temp",    "0", "-n",
                          "24",   "-t", "1",  "--metrics", NULL};
    char *out, *err;
    int rc = t_cli_run(args, in, &out, NULL, &err);
    T_CHECK(rc == 0, "rc %d, stderr '%s'", rc, err);
    size_t lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    T_CHECK(strlen(out) > 2 && lines == 2, "two replies, one a line: '%s'", out);
    T_CHECK(strstr(err, "> ") == NULL, "no prompt marker when stdin is not a terminal");
    /* --metrics: one JSON line per turn; the second turn reuses the whole session of the
     * first (the KV cache is kept: nothing of turn 1 is processed again) */
    json_t *m[2] = {NULL, NULL};
    const char *p = err;
    for (int k = 0; k < 2 && p; k++) {
        p = strstr(p, "{\"turn\":");
        if (!p) break;
        m[k] = json_loadb(p, strcspn(p, "\n"), 0, NULL);
        p = strchr(p, '\n');
    }
    T_CHECK(m[0] && m[1], "metrics lines: '%s'", err);
    if (m[0] && m[1]) {
        double s1 = num(m[0], "session_tokens", NULL), r2 = num(m[1], "reused_tokens", NULL);
        double a2 = num(m[1], "appended_tokens", NULL);
        T_CHECK(num(m[0], "reused_tokens", NULL) == 0 && s1 > 0, "turn 1");
        T_CHECK(r2 == s1 && a2 > 0 && a2 < s1, "turn 2 reused %g of %g, appended %g", r2, s1, a2);
    }
    json_decref(m[0]);
    json_decref(m[1]);
    free(out);
    free(err);

    /* EOF at once: a clean end */
    const char *a2[] = {"chat", "-m", SMOL, "-t", "1", NULL};
    rc = t_cli_run(a2, NULL, &out, NULL, &err);
    T_CHECK(rc == 0 && out[0] == '\0', "empty stdin: rc %d out '%s'", rc, out);
    free(out);
    free(err);
}

static void test_bad_options(void) {
    int why = skip_reason();
    if (why == 1) T_SKIP("%s not built or without the engine commands", t_cli_bin());
    if (why == 2) T_SKIP("%s not installed", SMOL);
    const char *u[][12] = {
        {"chat", NULL},
        {"chat", "-m", SMOL, "--temp", "abc", NULL},
        {"chat", "-m", SMOL, "--top-p", "2", NULL},
        {"chat", "-m", SMOL, "-n", "0", NULL},
        {"chat", "-m", SMOL, "--bogus", NULL},
        {"bench", NULL},
        {"bench", "-m", SMOL, "-p", "x", NULL},
        {"bench", "-m", SMOL, "-r", "0", NULL},
        {"bench", "-m", SMOL, "--bogus", NULL},
        {"perplexity", "-m", SMOL, NULL},
        {"perplexity", "-m", SMOL, "-f", "x.txt", "-c", "-5", NULL},
        {"perplexity", "-f", "x.txt", NULL},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        char *out, *err;
        int rc = t_cli_run(u[i], NULL, &out, NULL, &err);
        T_CHECK(rc == 2 && out[0] == '\0' && err[0] != '\0', "usage case %zu (%s %s): rc %d", i,
                u[i][0], u[i][1] ? u[i][1] : "", rc);
        free(out);
        free(err);
    }
    /* failures: 1 */
    const char *f[][8] = {
        {"chat", "-m", "/nonexistent/model.gguf", NULL},
        {"bench", "-m", "/nonexistent/model.gguf", NULL},
        {"perplexity", "-m", SMOL, "-f", "/nonexistent/text.txt", NULL},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        char *out, *err;
        int rc = t_cli_run(f[i], NULL, &out, NULL, &err);
        T_CHECK(rc == 1 && out[0] == '\0' && err[0] != '\0', "failure case %zu (%s): rc %d", i,
                f[i][0], rc);
        free(out);
        free(err);
    }
}

int main(void) {
    T_RUN(test_bench_json);
    T_RUN(test_perplexity);
    T_RUN(test_chat);
    T_RUN(test_bad_options);
    return t_finish();
}
