/*
 * test_cli_session.c — durable sessions through the `lemma` binary ($LM_TEST_BUILD/lemma,
 * default build/lemma): `run --session`, `chat --session` and `session list|show|rm|fork`,
 * each test with a fresh store under t_tmpdir(). Models: SmolLM2-135M-Instruct Q4_1
 * (models/smollm2-135m-instruct-q4_1.gguf) and Gemma 3 270M Q4_K_M
 * (models/gemma-3-270m-q4_k_m.gguf); a test whose model is absent is skipped.
 *
 * What is checked:
 *   - exactness across processes: greedy `run -p P -n A --session S` then `run --session S
 *     -n B` (no prompt: the woken state goes on) prints exactly what one `run -p P -n A+B`
 *     prints, for SmolLM2 and for Gemma 3 with a prompt longer than its 512-token sliding
 *     window; three `run --chat --session` turns print what one `lemma chat` of the same three
 *     lines prints, and so does a `chat --session` split over two processes;
 *   - the session commands' output and exit codes (0 ok, 1 error, 2 usage), fork with both
 *     branches going on independently, rm, bad names;
 *   - refusals: a session woken by another model (exit 1, stderr names the differing
 *     identity components, the session untouched), a corrupt manifest, a missing session
 *     without a prompt.
 */
#include "cli.h"
#include "test.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMOL "models/smollm2-135m-instruct-q4_1.gguf"
#define GEMMA "models/gemma-3-270m-q4_k_m.gguf"

/* Runs args (stdin: the text in, NULL for none) and keeps only stdout; on a failure stderr is
 * printed and *out is NULL. */
static int run_out(const char *const *args, const char *in, char **out) {
    char *err;
    int rc = t_cli_run(args, in, out, NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "  (%s %s: rc %d, stderr: %s)\n", args[0], args[1], rc, err);
        free(*out);
        *out = NULL;
    }
    free(err);
    return rc;
}

/* A fresh store directory (not created: the CLI creates it). */
static const char *new_store(const char *tag) {
    static char path[4][1024];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, 1024, "%s/store-%s", t_tmpdir(), tag);
    return p;
}

/* 0 ready, 1 binary missing, 2 model missing */
static int skip_reason(const char *model) {
    if (!t_cli_has("session")) return 1;
    return model && access(model, R_OK) != 0 ? 2 : 0;
}
#define SKIP_UNLESS(model)                                                                         \
    do {                                                                                           \
        int why_ = skip_reason(model);                                                             \
        if (why_ == 1) T_SKIP("%s not built or without `lemma session`", t_cli_bin());             \
        if (why_ == 2) T_SKIP("%s not installed", model);                                          \
    } while (0)

/* s without one trailing newline (in place). */
static char *chomp(char *s) {
    size_t n = strlen(s);
    if (n && s[n - 1] == '\n') s[n - 1] = '\0';
    return s;
}

/* The JSON object on the line of text starting with "{", NULL if none. */
static json_t *json_line(const char *text, const char *must_have) {
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && p[0] == '{') {
            json_t *o = json_loadb(p, n, 0, NULL);
            if (o && (!must_have || json_object_get(o, must_have))) return o;
            json_decref(o);
        }
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

static double num(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* n_tokens of session name via `session show --json`, -1 on failure. */
static double show_tokens(const char *store, const char *name) {
    const char *a[] = {"session", "show", name, "--store", store, "--json", NULL};
    char *out;
    double n = -1;
    if (run_out(a, NULL, &out) == 0) {
        json_t *o = json_line(out, "n_tokens");
        if (o) n = num(o, "n_tokens");
        json_decref(o);
    }
    free(out);
    return n;
}

static const char *PARA =
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
    "and the bicycle played a part in changing fashions and social customs.\n";

/* Greedy run -p prompt -n a+b vs. run -p prompt -n a --session then run --session -n b. */
static void check_split(const char *model, const char *prompt, const char *na, const char *nb,
                        const char *nab, const char *threads, double min_restored,
                        const char *tag) {
    const char *store = new_store(tag);
    char *whole, *p1, *p2, *err;
    const char *a0[] = {"run", "-m",     model, "-p", prompt,  "-n",
                        nab,   "--temp", "0",   "-t", threads, NULL};
    const char *a1[] = {"run", "-m", model,   "-p",        prompt, "-n",      na,    "--temp",
                        "0",   "-t", threads, "--session", "s",    "--store", store, NULL};
    const char *a2[] = {"run",   "-m",        model, "-n",      nb,    "--temp",    "0", "-t",
                        threads, "--session", "s",   "--store", store, "--metrics", NULL};
    T_REQUIRE(run_out(a0, NULL, &whole) == 0, "%s: plain run", tag);
    int rc1 = run_out(a1, NULL, &p1);
    int rc2 = t_cli_run(a2, NULL, &p2, NULL, &err);
    T_CHECK(rc1 == 0 && rc2 == 0, "%s: rc %d %d, stderr '%s'", tag, rc1, rc2, err);
    if (rc1 == 0 && rc2 == 0) {
        chomp(whole), chomp(p1), chomp(p2);
        size_t l1 = strlen(p1);
        T_CHECK(l1 > 0 && strlen(p2) > 0, "%s: both parts print text: '%s' | '%s'", tag, p1, p2);
        T_CHECK(strncmp(whole, p1, l1) == 0 &&
                    strcmp(whole + (strncmp(whole, p1, l1) ? 0 : l1), p2) == 0,
                "%s: split run differs:\n    whole '%s'\n    part1 '%s'\n    part2 '%s'", tag,
                whole, p1, p2);
        json_t *m = json_line(err, "restored_tokens");
        T_CHECK(m != NULL, "%s: --metrics line with restored_tokens: '%s'", tag, err);
        if (m) {
            double rt = num(m, "restored_tokens"), st = num(m, "session_tokens");
            T_CHECK(rt >= min_restored && num(m, "prompt_tokens") == 0 && num(m, "wake_ms") >= 0 &&
                        num(m, "reused_tokens") == 0 && st == rt + atof(nb),
                    "%s: metrics restored %g session %g: '%s'", tag, rt, st, err);
            T_CHECK(show_tokens(store, "s") == st, "%s: stored tokens %g, session had %g", tag,
                    show_tokens(store, "s"), st);
        }
        json_decref(m);
    }
    free(whole);
    free(p1);
    free(p2);
    free(err);
}

static void test_run_split_smollm2(void) {
    SKIP_UNLESS(SMOL);
    check_split(SMOL, "The history of the bicycle begins in", "16", "16", "32", "1", 20, "smol");
}

static void test_run_split_gemma_past_window(void) {
    SKIP_UNLESS(GEMMA);
    /* the two paragraphs three times: ~745 Gemma tokens, more than its 512-token sliding
     * window (and three 256-token KV pages, the last partial) */
    size_t n = strlen(PARA);
    char *prompt = malloc(3 * n + 1);
    T_REQUIRE(prompt, "oom");
    for (int k = 0; k < 3; k++)
        memcpy(prompt + k * n, PARA, n + 1);
    check_split(GEMMA, prompt, "4", "4", "8", "2", 600, "gemma");
    /* the woken session's first step attends over the last 512 of ~750 tokens: a sliding
     * window layer restored wrongly would change these tokens */
    free(prompt);
}

/* Three user turns: run --chat --session x3 == one `lemma chat`; chat --session split over
 * two processes == the same. */
static void test_chat_turns(void) {
    SKIP_UNLESS(SMOL);
    const char *store = new_store("chat");
    const char *turns[3] = {"Hi, my name is Ada.", "What is my name?", "Say goodbye."};
    const char *in3 = "Hi, my name is Ada.\nWhat is my name?\nSay goodbye.\n";
    const char *in12 = "Hi, my name is Ada.\nWhat is my name?\n";
    const char *in3b = "Say goodbye.\n";
    const char *ac[] = {"chat", "-m", SMOL, "--temp", "0", "-n", "24", "-t", "1", NULL};
    char *whole;
    T_REQUIRE(run_out(ac, in3, &whole) == 0, "plain chat");

    /* run --chat, one process per turn */
    char buf[8192] = "";
    int ok = 1;
    for (int k = 0; k < 3 && ok; k++) {
        const char *a[] = {"run", "-m", SMOL, "--chat",    "-p", turns[k],  "--temp", "0", "-n",
                           "24",  "-t", "1",  "--session", "r",  "--store", store,    NULL};
        char *out;
        ok = run_out(a, NULL, &out) == 0;
        T_CHECK(ok, "run --chat turn %d", k + 1);
        if (ok) strncat(buf, out, sizeof buf - strlen(buf) - 1);
        free(out);
    }
    if (ok)
        T_CHECK(strcmp(buf, whole) == 0,
                "run --chat turns differ from chat:\n  chat '%s'\n  "
                "runs '%s'",
                whole, buf);

    /* chat --session: two turns, exit, resume for the third */
    const char *as[] = {"chat", "-m", SMOL,        "--temp", "0",       "-n",  "24",
                        "-t",   "1",  "--session", "c",      "--store", store, NULL};
    char *o1, *o2, *err;
    int rc1 = run_out(as, in12, &o1);
    int rc2 = t_cli_run(as, in3b, &o2, NULL, &err);
    T_CHECK(rc1 == 0 && rc2 == 0, "chat --session: rc %d %d, stderr '%s'", rc1, rc2, err);
    if (rc1 == 0 && rc2 == 0) {
        T_CHECK(strstr(err, "resumed c: ") != NULL, "resume message: '%s'", err);
        size_t l1 = strlen(o1);
        T_CHECK(strncmp(whole, o1, l1) == 0 && strcmp(whole + l1, o2) == 0,
                "chat --session split differs:\n  chat '%s'\n  1st '%s'\n  2nd '%s'", whole, o1,
                o2);
    }
    free(o1);
    free(o2);
    free(err);
    free(whole);
}

static void expect_rc(const char *const *a, int want, const char *must_say, const char *what) {
    char *out, *err;
    int rc = t_cli_run(a, NULL, &out, NULL, &err);
    T_CHECK(rc == want, "%s: rc %d (want %d), stderr '%s'", what, rc, want, err);
    if (want == 1) {
        T_CHECK(err[0] != '\0' && strchr(err, '\n') == strrchr(err, '\n'),
                "%s: one line on stderr: '%s'", what, err);
        T_CHECK(out[0] == '\0', "%s: nothing on stdout: '%s'", what, out);
    }
    if (must_say)
        T_CHECK(strcasestr(err, must_say) != NULL, "%s: stderr '%s' lacks '%s'", what, err,
                must_say);
    free(out);
    free(err);
}

static void test_session_commands(void) {
    SKIP_UNLESS(SMOL);
    const char *store = new_store("cmds");
    const char *mk[] = {"run",    "-m", SMOL, "-p", "Once upon a time", "-n", "8",
                        "--temp", "0",  "-t", "1",  "--session",        "a",  "--store",
                        store,    NULL};
    char *out, *err;
    T_REQUIRE(run_out(mk, NULL, &out) == 0, "make session a");
    free(out);

    /* empty list of another store: exit 0, nothing on stdout */
    const char *l0[] = {"session", "list", "--store", new_store("empty"), NULL};
    int rc = t_cli_run(l0, NULL, &out, NULL, &err);
    T_CHECK(rc == 0 && out[0] == '\0', "empty list: rc %d out '%s'", rc, out);
    free(out);
    free(err);

    /* fork, then both branches go on differently */
    const char *fk[] = {"session", "fork", "a", "b", "--store", store, NULL};
    expect_rc(fk, 0, NULL, "fork a b");
    expect_rc(fk, 1, NULL, "fork onto an existing session");
    const char *fk2[] = {"session", "fork", "nope", "c", "--store", store, NULL};
    expect_rc(fk2, 1, NULL, "fork of a missing session");
    double na = show_tokens(store, "a");
    T_CHECK(na > 0 && show_tokens(store, "b") == na, "fork keeps the tokens: %g %g", na,
            show_tokens(store, "b"));
    const char *ga[] = {"run", "-m", SMOL, "-p",        " The dragon", "-n",      "6",   "--temp",
                        "0",   "-t", "1",  "--session", "a",           "--store", store, NULL};
    const char *gb[] = {"run", "-m", SMOL,        "-p", " In the city", "-n",  "4", "--temp", "0",
                        "-t",  "1",  "--session", "b",  "--store",      store, NULL};
    char *oa = NULL, *ob = NULL;
    int ra = run_out(ga, NULL, &oa), rb = run_out(gb, NULL, &ob);
    T_CHECK(ra == 0 && rb == 0, "branches: rc %d %d", ra, rb);
    double ta = show_tokens(store, "a"), tb = show_tokens(store, "b");
    T_CHECK(ta > na + 6 && tb > na + 4 && ta != tb, "branches: a %g b %g (fork point %g)", ta, tb,
            na);
    free(oa);
    free(ob);

    /* show */
    const char *sh[] = {"session", "show", "b", "--store", store, NULL};
    rc = t_cli_run(sh, NULL, &out, NULL, &err);
    T_CHECK(rc == 0 && strstr(out, "name:") && strstr(out, "parent:       a") &&
                strstr(out, "tokens:") && strstr(out, "model:") && strstr(out, "bytes:"),
            "show: rc %d out '%s' err '%s'", rc, out, err);
    free(out);
    free(err);
    const char *shj[] = {"session", "--store", store, "show", "--json", "b", NULL};
    rc = t_cli_run(shj, NULL, &out, NULL, &err);
    json_t *o = json_line(out, "name");
    T_CHECK(rc == 0 && o && !strcmp(json_string_value(json_object_get(o, "name")), "b") &&
                !strcmp(json_string_value(json_object_get(o, "parent")), "a") &&
                num(o, "n_tokens") == tb && num(o, "bytes") > 0 && num(o, "created_at") > 1.6e9 &&
                num(o, "updated_at") >= num(o, "created_at"),
            "show --json: rc %d '%s'", rc, out);
    json_decref(o);
    free(out);
    free(err);

    /* list: a table, and JSON lines; a and b share their first pages */
    const char *ls[] = {"session", "list", "--store", store, NULL};
    rc = t_cli_run(ls, NULL, &out, NULL, &err);
    T_CHECK(rc == 0 && strstr(out, "NAME") && strstr(out, "\na ") && strstr(out, "\nb "),
            "list: rc %d '%s'", rc, out);
    free(out);
    free(err);
    const char *lj[] = {"session", "list", "--json", "--store", store, NULL};
    rc = t_cli_run(lj, NULL, &out, NULL, &err);
    int lines = 0, shared = 0;
    for (const char *p = out; p && *p;) {
        const char *e = strchr(p, '\n');
        json_t *x = json_loadb(p, e ? (size_t)(e - p) : strlen(p), 0, NULL);
        if (x && json_is_string(json_object_get(x, "name")) && num(x, "n_tokens") > 0 &&
            json_is_string(json_object_get(x, "model")) && num(x, "bytes") > 0)
            lines++, shared += num(x, "shared_bytes") > 0;
        json_decref(x);
        p = e ? e + 1 : NULL;
    }
    T_CHECK(rc == 0 && lines == 2, "list --json: rc %d, %d good lines: '%s'", rc, lines, out);
    /* SmolLM2's first page (256 tokens) is not full here: sharing is only reported, not
     * required, unless a page is full */
    (void)shared;
    free(out);
    free(err);

    /* rm */
    const char *rm[] = {"session", "rm", "b", "--store", store, NULL};
    expect_rc(rm, 0, NULL, "rm b");
    expect_rc(rm, 1, NULL, "rm of a missing session");
    expect_rc(sh, 1, NULL, "show of a removed session");
    T_CHECK(show_tokens(store, "a") == ta, "a survives rm b");

    /* bad names: 1 with a message; nothing created */
    const char *bad[] = {"../x", ".hidden", "a/b", "a b", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *a1[] = {"session", "show", bad[i], "--store", store, NULL};
        const char *a2[] = {"session", "rm", bad[i], "--store", store, NULL};
        const char *a3[] = {"session", "fork", "a", bad[i], "--store", store, NULL};
        const char *a4[] = {"run", "-m",        SMOL,   "-p",      "x",   "-n",
                            "1",   "--session", bad[i], "--store", store, NULL};
        char what[64];
        snprintf(what, sizeof what, "bad name '%s'", bad[i]);
        if (bad[i][0]) { /* "" is a usage error for run (--session expects a name) */
            expect_rc(a1, 1, "name", what);
            expect_rc(a2, 1, "name", what);
            expect_rc(a3, 1, "name", what);
            expect_rc(a4, 1, "name", what);
        } else {
            expect_rc(a4, 2, NULL, what);
        }
    }

    /* usage errors: 2 */
    const char *u[][6] = {
        {"session", NULL},
        {"session", "bogus", NULL},
        {"session", "show", NULL},
        {"session", "list", "extra", NULL},
        {"session", "fork", "a", NULL},
        {"session", "rm", NULL},
        {"session", "list", "--bogus", NULL},
        {"session", "list", "--store", NULL},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "usage case %zu", i);
        rc = t_cli_run(u[i], NULL, &out, NULL, &err);
        T_CHECK(rc == 2 && out[0] == '\0' && err[0], "%s: rc %d", what, rc);
        free(out);
        free(err);
    }
    const char *h[] = {"session", "-h", NULL};
    rc = t_cli_run(h, NULL, &out, NULL, &err);
    T_CHECK(rc == 0 && strstr(out, "list") && strstr(out, "fork"), "session -h: %d", rc);
    free(out);
    free(err);
    const char *h2[] = {"--help", NULL};
    rc = t_cli_run(h2, NULL, &out, NULL, &err);
    T_CHECK(rc == 0 && strstr(out, "session list"), "lemma --help names session: %d", rc);
    free(out);
    free(err);
}

static void test_refusals(void) {
    SKIP_UNLESS(SMOL);
    const char *store = new_store("refuse");
    const char *mk[] = {"run",    "-m", SMOL, "-p", "Once upon a time", "-n", "4",
                        "--temp", "0",  "-t", "1",  "--session",        "s",  "--store",
                        store,    NULL};
    char *out;
    T_REQUIRE(run_out(mk, NULL, &out) == 0, "make session s");
    free(out);
    double n0 = show_tokens(store, "s");

    /* a missing session without a prompt */
    const char *np[] = {"run", "-m", SMOL, "-n", "4", "--session", "none", "--store", store, NULL};
    expect_rc(np, 1, "none", "missing session, no prompt");

    /* another model: refused, the saved session untouched */
    if (access(GEMMA, R_OK) == 0) {
        const char *g[] = {"run", "-m",        GEMMA, "-p",      "x",   "-n",
                           "4",   "--session", "s",   "--store", store, NULL};
        expect_rc(g, 1, "weights", "wake with another model");
        const char *gc[] = {"chat", "-m", GEMMA, "--session", "s", "--store", store, NULL};
        expect_rc(gc, 1, "weights", "chat wake with another model");
        T_CHECK(show_tokens(store, "s") == n0, "session unchanged: %g vs %g",
                show_tokens(store, "s"), n0);
    } else {
        fprintf(stderr, "  (%s not installed: identity mismatch not checked)\n", GEMMA);
    }

    /* a corrupt manifest: refused with exit 1, nothing printed on stdout */
    char path[1200];
    snprintf(path, sizeof path, "%s/sessions/s.session", store);
    struct stat sb;
    T_REQUIRE(stat(path, &sb) == 0 && sb.st_size > 64, "manifest %s", path);
    int fd = open(path, O_WRONLY);
    T_REQUIRE(fd >= 0, "open %s", path);
    unsigned char junk = 0x5a;
    T_CHECK(pwrite(fd, &junk, 1, sb.st_size / 2) == 1, "pwrite");
    close(fd);
    const char *w[] = {"run", "-m", SMOL, "-n", "4", "--session", "s", "--store", store, NULL};
    expect_rc(w, 1, NULL, "corrupt manifest");
}

int main(void) {
    T_RUN(test_run_split_smollm2);
    T_RUN(test_run_split_gemma_past_window);
    T_RUN(test_chat_turns);
    T_RUN(test_session_commands);
    T_RUN(test_refusals);
    return t_finish();
}
