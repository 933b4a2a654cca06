/*
 * test_generate.c — generation controls of lm_session_generate: logit bias, stop strings, and
 * short model names (lm_model_load / lm_vocab_load), on the tiny fidelity fixture model (no real
 * model needed; its greedy output is deterministic, so the cases are built from it).
 */
#include "lemma.h"
#include "test.h"

#include "core/status.h"
#include "sample/sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIXTURE "tests/data/fidelity/llama/model-f32.gguf"
#define N_GEN 24

/* What the callback saw: the token ids (>= 0), each call's text, and all text joined. */
typedef struct seen {
    int32_t ids[N_GEN + 2];
    size_t n_ids;
    char piece[N_GEN + 2][64]; /* text passed with ids[i] */
    size_t piece_len[N_GEN + 2];
    char text[4096];
    size_t n_text;
    size_t final_len; /* bytes passed by the last call (token -1), 0 if none */
    int calls_after_final;
} seen;

static int on_tok(void *user, int32_t token, const char *text, size_t len) {
    seen *s = user;
    if (s->final_len) s->calls_after_final++;
    if (token >= 0 && s->n_ids < N_GEN + 2) {
        size_t k = len < sizeof s->piece[0] ? len : sizeof s->piece[0] - 1;
        memcpy(s->piece[s->n_ids], text, k);
        s->piece_len[s->n_ids] = k;
        s->ids[s->n_ids++] = token;
    }
    if (token < 0) s->final_len = len;
    if (len && s->n_text + len < sizeof s->text) {
        memcpy(s->text + s->n_text, text, len);
        s->n_text += len;
    }
    return 0;
}

static lm_model *load_fixture(void) {
    char err[512];
    lm_model *m = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 1;
    if (lm_model_load(FIXTURE, &mp, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "  %s: %s\n", FIXTURE, err);
        return NULL;
    }
    return m;
}

/* A fresh session holding the prompt "hello world". */
static lm_session *prompt_session(lm_model *m) {
    char err[512];
    lm_session *s = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 128;
    if (lm_session_new(m, &sp, &s, err, sizeof err) != LM_OK) return NULL;
    if (lm_session_append_text(s, "hello world", 11, 1, 0) != LM_OK) {
        lm_session_free(s);
        return NULL;
    }
    return s;
}

static lm_generate_params greedy(int32_t n, seen *sn) {
    lm_generate_params gp = lm_generate_default_params();
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = n;
    gp.stop_at_eog = 0;
    gp.on_token = on_tok;
    gp.user = sn;
    return gp;
}

/* ---- logit bias ---------------------------------------------------------------------------- */

static void test_logit_bias_greedy(void) {
    lm_model *m = load_fixture();
    T_REQUIRE(m, "fixture model");
    lm_session *s = prompt_session(m);
    T_REQUIRE(s, "session");
    const size_t n0 = lm_session_n_tokens(s);
    const int32_t nv = lm_model_n_vocab(m);

    seen a = {0};
    lm_generate_params gp = greedy(1, &a);
    T_REQUIRE(lm_session_generate(s, &gp) == LM_OK && a.n_ids == 1, "%s", lm_session_error(s));
    const int32_t top = a.ids[0];

    /* ban the greedy choice: another token comes, and never the banned one */
    lm_session_truncate(s, n0);
    seen b = {0};
    lm_logit_bias ban = {top, -INFINITY};
    gp = greedy(8, &b);
    gp.sampling.logit_bias = &ban;
    gp.sampling.n_logit_bias = 1;
    T_REQUIRE(lm_session_generate(s, &gp) == LM_OK, "%s", lm_session_error(s));
    int banned_seen = 0;
    for (size_t i = 0; i < b.n_ids; i++) banned_seen |= b.ids[i] == top;
    T_CHECK(b.n_ids == 8 && !banned_seen, "banned token %d generated", top);

    /* force a token the model would not pick */
    const int32_t want = (top + 7) % nv;
    lm_session_truncate(s, n0);
    seen c = {0};
    lm_logit_bias force = {want, 1e4f};
    gp = greedy(3, &c);
    gp.sampling.logit_bias = &force;
    gp.sampling.n_logit_bias = 1;
    T_REQUIRE(lm_session_generate(s, &gp) == LM_OK, "%s", lm_session_error(s));
    T_CHECK(c.n_ids == 3 && c.ids[0] == want && c.ids[1] == want && c.ids[2] == want,
            "forced token %d, got %d", want, c.ids[0]);

    /* invalid biases: refused before anything is generated, never clamped */
    lm_session_truncate(s, n0);
    lm_logit_bias bad[5] = {{nv, 1.0f}, {-1, 1.0f}, {0, NAN}, {0, INFINITY}, {nv + 1000, -1.0f}};
    for (int i = 0; i < 5; i++) {
        seen d = {0};
        gp = greedy(2, &d);
        gp.sampling.logit_bias = &bad[i];
        gp.sampling.n_logit_bias = 1;
        T_CHECK(lm_session_generate(s, &gp) == LM_ERR_INVALID_ARG && d.n_ids == 0 &&
                    lm_session_n_tokens(s) == n0,
                "bad bias %d accepted (%s)", i, lm_session_error(s));
        T_CHECK(strstr(lm_session_error(s), "logit bias"), "message: %s", lm_session_error(s));
    }
    gp = greedy(2, NULL);
    gp.on_token = NULL;
    gp.sampling.logit_bias = NULL;
    gp.sampling.n_logit_bias = 2;
    T_CHECK(lm_session_generate(s, &gp) == LM_ERR_INVALID_ARG, "count without array accepted");
    lm_session_free(s);
    lm_model_free(m);
}

static void test_logit_bias_sampler(void) {
    lm_sampler smp;
    lm_err e;
    lm_err_clear(&e);
    enum { V = 8 };
    float lg[V] = {3, 2.9f, 2.8f, 0, 0, 0, 0, 0};
    lm_logit_bias bans[V];
    for (int i = 0; i < V; i++) bans[i] = (lm_logit_bias){i, -INFINITY};
    /* with sampling: banned tokens are never drawn, even with top-k wider than what is left */
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = 1.5f;
    p.top_k = 6;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 3;
    p.logit_bias = bans;
    p.n_logit_bias = 6; /* tokens 0..5 banned: only 6 and 7 remain */
    T_REQUIRE(lm_sampler_init(&smp, &p, V, &e) == LM_OK, "%s", e.msg);
    int ok = 1;
    for (int i = 0; i < 2000; i++) {
        int32_t t = -1;
        ok &= lm_sampler_sample(&smp, lg, NULL, 0, &t, &e) == LM_OK && (t == 6 || t == 7);
    }
    T_CHECK(ok, "a banned token was drawn");
    lm_sampler_free(&smp);
    /* every token banned: an error, greedy or not, instead of an arbitrary pick */
    p.n_logit_bias = V;
    for (int greedy_mode = 0; greedy_mode < 2; greedy_mode++) {
        p.temperature = greedy_mode ? 0.0f : 1.0f;
        lm_err_clear(&e);
        T_REQUIRE(lm_sampler_init(&smp, &p, V, &e) == LM_OK, "%s", e.msg);
        int32_t t = -1;
        T_CHECK(lm_sampler_sample(&smp, lg, NULL, 0, &t, &e) == LM_ERR_INVALID_ARG,
                "all banned (greedy %d) gave token %d", greedy_mode, t);
        lm_sampler_free(&smp);
    }
    /* biases apply before penalties: a ban survives a repetition penalty */
    p = lm_sampler_default_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 1.5f;
    p.logit_bias = bans;
    p.n_logit_bias = 1;
    lm_err_clear(&e);
    T_REQUIRE(lm_sampler_init(&smp, &p, V, &e) == LM_OK, "%s", e.msg);
    int32_t hist[1] = {0}, t = -1;
    T_CHECK(lm_sampler_sample(&smp, lg, hist, 1, &t, &e) == LM_OK && t == 1, "got %d", t);
    lm_sampler_free(&smp);
}

/* ---- stop strings ------------------------------------------------------------------------ */

static int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

static void test_stop_strings(void) {
    lm_model *m = load_fixture();
    T_REQUIRE(m, "fixture model");
    lm_session *s = prompt_session(m);
    T_REQUIRE(s, "session");
    const size_t n0 = lm_session_n_tokens(s);

    /* the reference: N_GEN greedy tokens, no stop strings */
    seen ref = {0};
    lm_generate_params gp = greedy(N_GEN, &ref);
    T_REQUIRE(lm_session_generate(s, &gp) == LM_OK && ref.n_ids == N_GEN, "%s",
              lm_session_error(s));

    /* a boundary between two tokens whose texts are non-empty and free of NUL: the stop
     * string is the last character of one and the first character of the next */
    size_t at = 0;
    char stop[16];
    for (size_t i = 1; i + 1 < ref.n_ids && !at; i++) {
        const char *x = ref.piece[i], *y = ref.piece[i + 1];
        size_t xl = ref.piece_len[i], yl = ref.piece_len[i + 1];
        if (!xl || !yl || memchr(x, 0, xl) || memchr(y, 0, yl)) continue;
        size_t xs = xl - 1;
        while (xs > 0 && is_cont((unsigned char)x[xs])) xs--;
        size_t ye = 1;
        while (ye < yl && is_cont((unsigned char)y[ye])) ye++;
        snprintf(stop, sizeof stop, "%.*s%.*s", (int)(xl - xs), x + xs, (int)ye, y);
        at = i + 1; /* the token that completes the stop string, if this is its first place */
    }
    T_REQUIRE(at, "no usable token boundary in the fixture's greedy output");
    char *first = memmem(ref.text, ref.n_text, stop, strlen(stop));
    T_REQUIRE(first, "stop string '%s' not in the reference text", stop);
    const size_t expect_len = (size_t)(first - ref.text);
    /* where the first occurrence ends decides the completing token */
    size_t end = expect_len + strlen(stop), acc = 0, done_at = 0;
    for (size_t i = 0; i < ref.n_ids; i++) {
        acc += ref.piece_len[i];
        if (acc >= end) {
            done_at = i;
            break;
        }
    }
    fprintf(stderr, "  stop string '%s' (%zu bytes), completed by token %zu of %d\n", stop,
            strlen(stop), done_at, N_GEN);

    lm_session_truncate(s, n0);
    seen got = {0};
    const char *stops[2] = {"this will not be generated", stop};
    gp = greedy(N_GEN, &got);
    gp.stop = stops;
    gp.n_stop = 2;
    T_REQUIRE(lm_session_generate(s, &gp) == LM_OK, "%s", lm_session_error(s));
    T_CHECK(got.n_text == expect_len && !memcmp(got.text, ref.text, expect_len),
            "text before the stop string: got %zu bytes, want %zu", got.n_text, expect_len);
    T_CHECK(!memmem(got.text, got.n_text, stop, strlen(stop)), "the stop string leaked");
    T_CHECK(got.final_len == 0, "no flush after a stop string matched");
    T_CHECK(got.n_ids == done_at + 1 && got.ids[done_at] == ref.ids[done_at],
            "the completing token is the last one passed on (%zu calls, want %zu)", got.n_ids,
            done_at + 1);
    T_CHECK(lm_session_n_tokens(s) == n0 + done_at,
            "the session holds the tokens before the completing one: %zu, want %zu",
            lm_session_n_tokens(s), n0 + done_at);

    /* no callback: generation still ends at the stop string */
    lm_session_truncate(s, n0);
    gp.on_token = NULL;
    T_REQUIRE(lm_session_generate(s, &gp) == LM_OK, "%s", lm_session_error(s));
    T_CHECK(lm_session_n_tokens(s) == n0 + done_at, "without a callback: %zu tokens",
            lm_session_n_tokens(s));

    /* a stop string whose beginning ends the text, but which never completes: the held-back
     * beginning is flushed at the end (token -1), and the whole text arrives */
    size_t ls = ref.n_text;
    while (ls > 0 && is_cont((unsigned char)ref.text[ls - 1])) ls--;
    if (ls > 0) ls--;
    T_REQUIRE(ref.text[ls] != 0, "the reference text ends in NUL");
    char tail_stop[32];
    snprintf(tail_stop, sizeof tail_stop, "%.*s never", (int)(ref.n_text - ls), ref.text + ls);
    const char *stops2[1] = {tail_stop};
    lm_session_truncate(s, n0);
    seen tail = {0};
    gp = greedy(N_GEN, &tail);
    gp.stop = stops2;
    gp.n_stop = 1;
    T_REQUIRE(lm_session_generate(s, &gp) == LM_OK, "%s", lm_session_error(s));
    T_CHECK(tail.n_text == ref.n_text && !memcmp(tail.text, ref.text, ref.n_text),
            "unmatched stop: text differs (%zu vs %zu bytes)", tail.n_text, ref.n_text);
    T_CHECK(tail.final_len >= ref.n_text - ls && tail.calls_after_final == 0,
            "the held-back tail comes last with token -1 (%zu bytes)", tail.final_len);
    T_CHECK(tail.n_ids == N_GEN && lm_session_n_tokens(s) == n0 + N_GEN, "all tokens ran");

    /* invalid stop strings: refused, nothing generated */
    lm_session_truncate(s, n0);
    const char *bad_sets[3][1] = {{""}, {NULL}, {"\xff\xfe"}};
    for (int i = 0; i < 3; i++) {
        seen d = {0};
        gp = greedy(4, &d);
        gp.stop = bad_sets[i];
        gp.n_stop = 1;
        T_CHECK(lm_session_generate(s, &gp) == LM_ERR_INVALID_ARG && d.n_ids == 0 &&
                    lm_session_n_tokens(s) == n0,
                "bad stop %d accepted (%s)", i, lm_session_error(s));
        T_CHECK(strstr(lm_session_error(s), "stop string"), "message: %s", lm_session_error(s));
    }
    gp = greedy(4, NULL);
    gp.on_token = NULL;
    gp.stop = NULL;
    gp.n_stop = 1;
    T_CHECK(lm_session_generate(s, &gp) == LM_ERR_INVALID_ARG, "count without array accepted");
    lm_session_free(s);
    lm_model_free(m);
}

/* ---- the CLI options --------------------------------------------------------------------- */

/* Runs LM_TEST_BUILD/lemma (default build/) with args; stdout into out (NUL-terminated, cut at
 * cap), stderr to a file. Exit status, or -1 when it could not run. */
static int run_cli(const char *const *args, char *out, size_t cap) {
    const char *b = getenv("LM_TEST_BUILD");
    char bin[1024], errp[1024];
    snprintf(bin, sizeof bin, "%s/lemma", b && *b ? b : "build");
    snprintf(errp, sizeof errp, "%s/generate_cli_stderr.txt", t_tmpdir());
    if (access(bin, X_OK) != 0) return -1;
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        const char *argv[32];
        int n = 0;
        argv[n++] = bin;
        while (args[n - 1] && n < 31) {
            argv[n] = args[n - 1];
            n++;
        }
        argv[n] = NULL;
        int in = open("/dev/null", O_RDONLY), er = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || er < 0) _exit(126);
        dup2(in, 0);
        dup2(fd[1], 1);
        dup2(er, 2);
        close(fd[0]);
        close(fd[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    char sink[256];
    while ((r = read(fd[0], n + 1 < cap ? out + n : sink,
                     n + 1 < cap ? cap - 1 - n : sizeof sink)) > 0)
        if (n + 1 < cap) n += (size_t)r;
    out[n] = '\0';
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli_stop_and_bias(void) {
    const char *b = getenv("LM_TEST_BUILD");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/lemma", b && *b ? b : "build");
    if (access(bin, X_OK) != 0) T_SKIP("%s not built", bin);
    static char ref[4096], out[4096];
    const char *a0[] = {"run", "-m", FIXTURE, "-p", "hello world", "-n", "24", "--temp", "0",
                        "-t", "1", NULL};
    T_REQUIRE(run_cli(a0, ref, sizeof ref) == 0, "lemma run on the fixture");
    /* two printable ASCII bytes from the middle of the output as the stop string */
    size_t rl = strlen(ref), at = rl / 2;
    while (at + 1 < rl && !(ref[at] > ' ' && ref[at] < 127 && ref[at + 1] > ' ' &&
                            ref[at + 1] < 127))
        at++;
    T_REQUIRE(at + 1 < rl, "no printable pair in '%s'", ref);
    char stop[3] = {ref[at], ref[at + 1], 0};
    const size_t want = (size_t)(strstr(ref, stop) - ref);
    const char *a1[] = {"run", "-m", FIXTURE, "-p", "hello world", "-n", "24", "--temp", "0",
                        "-t", "1", "--stop", "never-in-this-output", "--stop", stop, NULL};
    T_CHECK(run_cli(a1, out, sizeof out) == 0 && strlen(out) == want + 1 &&
                !strncmp(out, ref, want) && out[want] == '\n',
            "--stop '%s': got %zu bytes, want %zu + newline", stop, strlen(out), want);
    /* bad values and a token the model lacks: usage errors, exit 2 */
    const char *bad[][16] = {
        {"run", "-m", FIXTURE, "-p", "x", "--logit-bias", "5=nan", NULL},
        {"run", "-m", FIXTURE, "-p", "x", "--logit-bias", "5", NULL},
        {"run", "-m", FIXTURE, "-p", "x", "--logit-bias", "-3=1", NULL},
        {"run", "-m", FIXTURE, "-p", "x", "--logit-bias", "9999999=1", NULL},
        {"run", "-m", FIXTURE, "-p", "x", "--logit-bias", NULL},
        {"run", "-m", FIXTURE, "-p", "x", "--stop", "", NULL},
        {"run", "-m", FIXTURE, "-p", "x", "--stop", NULL},
        {"chat", "-m", FIXTURE, "--logit-bias", "1=inf", NULL},
        {"chat", "-m", FIXTURE, "--logit-bias", "9999999=-inf", NULL},
        {"chat", "-m", FIXTURE, "--stop", "", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        T_CHECK(run_cli(bad[i], out, sizeof out) == 2, "bad option set %zu: not exit 2", i);
    const char *many[48] = {"run", "-m", FIXTURE, "-p", "x", "-n", "1"};
    int k = 7;
    for (int i = 0; i < 17; i++) many[k++] = "--stop", many[k++] = "zz";
    many[k] = NULL;
    T_CHECK(run_cli(many, out, sizeof out) == 2, "17 --stop accepted");
    const char *ok[] = {"run", "-m", FIXTURE, "-p", "hello world", "-n", "4", "--temp", "0",
                        "-t", "1", "--logit-bias", "3=-inf", "--logit-bias", "4=2.5", NULL};
    T_CHECK(run_cli(ok, out, sizeof out) == 0, "valid --logit-bias refused");
}

/* ---- short model names ------------------------------------------------------------------- */

static void link_fixture(const char *dir, const char *name) {
    char path[512], target[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    T_REQUIRE(getcwd(target, sizeof target - 64), "getcwd");
    strcat(target, "/" FIXTURE);
    unlink(path);
    T_REQUIRE(symlink(target, path) == 0, "symlink %s", path);
}

static void test_short_names(void) {
    char dir[512], err[512];
    snprintf(dir, sizeof dir, "%s/models", t_tmpdir());
    mkdir(dir, 0755);
    link_fixture(dir, "tiny-llama-f32.gguf");
    link_fixture(dir, "tiny-llama-copy.gguf");
    link_fixture(dir, "abc.gguf");
    link_fixture(dir, "abc-def.gguf");
    char sub[600];
    snprintf(sub, sizeof sub, "%s/Other-Dir", dir);
    mkdir(sub, 0755);
    const char *old = getenv("LEMMA_MODELS");
    char *saved = old ? strdup(old) : NULL;
    setenv("LEMMA_MODELS", dir, 1);

    lm_model *m = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 1;
    /* a unique prefix, any case */
    T_CHECK(lm_model_load("TINY-LLAMA-F", &mp, &m, err, sizeof err) == LM_OK && m, "%s", err);
    T_CHECK(m && !strcmp(lm_model_arch(m), "llama"), "loaded the fixture");
    lm_model_free(m);
    m = NULL;
    /* NAME.gguf wins over longer names starting with NAME */
    T_CHECK(lm_model_load("abc", &mp, &m, err, sizeof err) == LM_OK && m, "exact: %s", err);
    lm_model_free(m);
    m = NULL;
    lm_vocab *v = NULL;
    T_CHECK(lm_vocab_load("tiny-llama-copy", &v, err, sizeof err) == LM_OK && v, "vocab: %s",
            err);
    lm_vocab_free(v);
    v = NULL;
    /* ambiguous: both candidates named */
    T_CHECK(lm_model_load("tiny", &mp, &m, err, sizeof err) == LM_ERR_INVALID_ARG && !m &&
                strstr(err, "ambiguous") && strstr(err, "tiny-llama-f32.gguf") &&
                strstr(err, "tiny-llama-copy.gguf"),
            "ambiguous: %s", err);
    /* unknown: the installed models listed */
    T_CHECK(lm_model_load("zzz-model", &mp, &m, err, sizeof err) == LM_ERR_NOT_FOUND && !m &&
                strstr(err, "zzz-model") && strstr(err, "abc-def.gguf") &&
                strstr(err, "Other-Dir"),
            "unknown: %s", err);
    T_CHECK(lm_vocab_load("zzz-model", &v, err, sizeof err) == LM_ERR_NOT_FOUND && !v &&
                strstr(err, "installed"),
            "unknown (vocab): %s", err);
    /* a missing path (with a '/') keeps the loader's own error */
    T_CHECK(lm_model_load("nowhere/abc", &mp, &m, err, sizeof err) != LM_OK && !m &&
                !strstr(err, "installed"),
            "path: %s", err);
    /* no models directory */
    char none[600];
    snprintf(none, sizeof none, "%s/no-such-dir", t_tmpdir());
    setenv("LEMMA_MODELS", none, 1);
    T_CHECK(lm_model_load("abc", &mp, &m, err, sizeof err) == LM_ERR_NOT_FOUND && !m &&
                strstr(err, "no-such-dir"),
            "no models dir: %s", err);

    if (saved) {
        setenv("LEMMA_MODELS", saved, 1);
        free(saved);
    } else {
        unsetenv("LEMMA_MODELS");
    }
}

static void test_short_names_installed(void) {
    const char *env = getenv("LEMMA_MODELS");
    const char *dir = env && *env ? env : "models";
    char p1[512], p2[512], err[512];
    snprintf(p1, sizeof p1, "%s/smollm2-135m-instruct-q4_1.gguf", dir);
    snprintf(p2, sizeof p2, "%s/gemma-3-270m-q4_k_m.gguf", dir);
    if (access(p1, R_OK) != 0 || access(p2, R_OK) != 0) T_SKIP("%s/ lacks the real models", dir);
    lm_vocab *v = NULL;
    T_CHECK(lm_vocab_load("smollm2", &v, err, sizeof err) == LM_OK && v &&
                lm_vocab_n_tokens(v) == 49152,
            "smollm2: %s", err);
    lm_vocab_free(v);
    v = NULL;
    T_CHECK(lm_vocab_load("gemma", &v, err, sizeof err) == LM_OK && v &&
                lm_vocab_n_tokens(v) > 200000,
            "gemma: %s", err);
    lm_vocab_free(v);
}

int main(void) {
    T_RUN(test_logit_bias_sampler);
    T_RUN(test_logit_bias_greedy);
    T_RUN(test_stop_strings);
    T_RUN(test_cli_stop_and_bias);
    T_RUN(test_short_names);
    T_RUN(test_short_names_installed);
    return t_finish();
}
