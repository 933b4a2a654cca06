/*
 * test_session.c — durable sessions through the public API (include/lemma.h): sleep in this
 * process, wake in a new process (fork() + a fresh model load: nothing is shared but the store
 * directory), and the continuation must be token-identical to the one of the session that never
 * slept — for every fidelity fixture architecture (Gemma 3's sliding window of 8 is passed
 * many times), over several turns, greedy and sampled (LM_SEED_CONTINUE), and for both real
 * models (Gemma 3 past its 512-token window). Also: identity refusals (model, tokenizer, chat
 * template, page size), automatic prefix reuse (pool and store), in-memory fork with
 * copy-on-write, and errors.
 */
#include "lemma.h"
#include "test.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

#define MAX_GEN 64

static const char *const FIXTURES[] = {"llama", "qwen2", "qwen3", "gemma3"};
#define SMOLLM2 "models/smollm2-135m-instruct-q4_1.gguf"
#define GEMMA3 "models/gemma-3-270m-q4_k_m.gguf"

typedef struct toks {
    int32_t ids[MAX_GEN];
    int n;
} toks;

static int collect(void *user, int32_t token, const char *text, size_t len) {
    toks *t = user;
    if (token >= 0 && t->n < MAX_GEN) t->ids[t->n++] = token;
    return 0;
}

static lm_model *load(const char *path) {
    char err[512];
    lm_model *m = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    if (lm_model_load(path, &mp, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "  %s: %s\n", path, err);
        return NULL;
    }
    return m;
}

static lm_store *open_store(const char *dir) {
    char err[512];
    lm_store *st = NULL;
    if (lm_store_open(dir, &st, err, sizeof err) != LM_OK) {
        fprintf(stderr, "  store %s: %s\n", dir, err);
        return NULL;
    }
    return st;
}

/* Generates n tokens (temperature 0 = greedy; EOG does not stop, so n are always made). */
static lm_status gen(lm_session *s, int n, float temp, uint64_t seed, toks *out) {
    lm_generate_params gp = lm_generate_default_params();
    gp.max_tokens = n;
    gp.sampling.temperature = temp;
    gp.sampling.seed = seed;
    gp.stop_at_eog = 0;
    gp.on_token = collect;
    gp.user = out;
    out->n = 0;
    return lm_session_generate(s, &gp);
}

static uint64_t logits_hash(lm_session *s) {
    const float *lg;
    size_t n;
    if (lm_session_logits(s, &lg, &n) != LM_OK) return 0;
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)lg;
    for (size_t i = 0; i < n * sizeof *lg; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* What a child process reports back. */
typedef struct child_report {
    int status;           /* lm_status of the first failing call, 0 = all ok */
    char err[256];
    uint64_t logits_hash; /* of the woken session, before generating */
    uint64_t n_tokens, restored, reused;
    toks out;
} child_report;

typedef struct wake_job {
    const char *model, *store, *name;
    int n_gen;
    float temp;
    uint64_t seed;
    int32_t page_tokens;  /* 0 = saved */
    const int32_t *append; /* tokens to append to a new session instead of waking (prefix) */
    size_t n_append;
} wake_job;

/* Runs job in a new process: load the model afresh, open the store, wake (or, with append, a
 * new session that appends those tokens with the store as prefix source), report. */
static int run_child(const wake_job *job, child_report *rep) {
    int fd[2];
    memset(rep, 0, sizeof *rep);
    if (pipe(fd) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fd[0]);
        child_report r;
        memset(&r, 0, sizeof r);
        lm_model *m = load(job->model);
        lm_store *st = m ? open_store(job->store) : NULL;
        lm_session *s = NULL;
        lm_session_params sp = lm_session_default_params();
        sp.page_tokens = job->page_tokens;
        if (!m || !st) {
            r.status = -1;
        } else if (job->append) {
            sp.n_ctx = 512;
            sp.page_tokens = job->page_tokens ? job->page_tokens : 256;
            sp.store = st;
            if ((r.status = lm_session_new(m, &sp, &s, r.err, sizeof r.err)) == LM_OK &&
                (r.status = lm_session_append_tokens(s, job->append, job->n_append)) != LM_OK)
                snprintf(r.err, sizeof r.err, "%s", lm_session_error(s));
        } else {
            sp.n_ctx = 0;
            r.status = lm_session_wake(m, &sp, st, job->name, &s, r.err, sizeof r.err);
        }
        if (s && r.status == LM_OK) {
            lm_metrics mt;
            lm_session_metrics(s, &mt);
            r.restored = mt.restored_tokens;
            r.reused = mt.reused_tokens;
            r.n_tokens = lm_session_n_tokens(s);
            r.logits_hash = logits_hash(s);
            if (job->n_gen > 0 &&
                (r.status = gen(s, job->n_gen, job->temp, job->seed, &r.out)) != LM_OK)
                snprintf(r.err, sizeof r.err, "%s", lm_session_error(s));
        }
        if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(3);
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < sizeof *rep) {
        ssize_t k = read(fd[0], (char *)rep + got, sizeof *rep - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd[0]);
    int ws;
    waitpid(pid, &ws, 0);
    return got == sizeof *rep && WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? 0 : -1;
}

static int same_toks(const toks *a, const toks *b) {
    return a->n == b->n && !memcmp(a->ids, b->ids, (size_t)a->n * sizeof *a->ids);
}

static void fixture_path(char *buf, size_t len, const char *arch, const char *file) {
    snprintf(buf, len, "tests/data/fidelity/%s/%s", arch, file);
}

/* One conversation of three turns on a model: after each turn the session sleeps (replacing
 * the stored state), a child wakes it and continues n_cont tokens; the parent continues
 * without sleeping; both continuations must be identical, and the woken logits bit-equal. */
static void exact_conversation(const char *model_path, const int32_t *const turns[3],
                               const size_t turn_len[3], int32_t page_tokens, int n_gen,
                               int n_cont, const char *label) {
    lm_model *m = load(model_path);
    T_REQUIRE(m, "%s loads", model_path);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/store-%s", t_tmpdir(), label);
    lm_store *st = open_store(dir);
    T_REQUIRE(st, "store opens");
    char err[512];
    lm_session *s = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = lm_model_n_ctx_train(m) < 2048 ? lm_model_n_ctx_train(m) : 2048;
    sp.page_tokens = page_tokens;
    T_REQUIRE(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
    for (int turn = 0; turn < 3; turn++) {
        T_REQUIRE(lm_session_append_tokens(s, turns[turn], turn_len[turn]) == LM_OK, "%s",
                  lm_session_error(s));
        toks answer;
        T_REQUIRE(gen(s, n_gen, 0.0f, 1, &answer) == LM_OK, "%s", lm_session_error(s));
        T_REQUIRE(lm_session_sleep(s, st, "conv") == LM_OK, "sleep: %s", lm_session_error(s));
        uint64_t want_hash = logits_hash(s);
        size_t want_n = lm_session_n_tokens(s);

        wake_job job = {model_path, dir, "conv", n_cont, 0.0f, 1, 0, NULL, 0};
        child_report rep;
        T_REQUIRE(run_child(&job, &rep) == 0, "%s turn %d: child ran", label, turn);
        T_CHECK(rep.status == 0, "%s turn %d: child woke and generated: %s", label, turn,
                rep.err);
        T_CHECK(rep.n_tokens == want_n && rep.restored == want_n,
                "%s turn %d: %llu tokens restored of %zu", label, turn,
                (unsigned long long)rep.restored, want_n);
        T_CHECK(rep.logits_hash == want_hash, "%s turn %d: woken logits bit-identical", label,
                turn);
        toks cont;
        T_REQUIRE(gen(s, n_cont, 0.0f, 1, &cont) == LM_OK, "%s", lm_session_error(s));
        T_CHECK(same_toks(&cont, &rep.out),
                "%s turn %d: greedy continuation after sleep/wake in another process is "
                "token-identical (%d vs %d tokens)", label, turn, cont.n, rep.out.n);
    }
    /* sampled: the RNG stream continues across the sleep */
    toks a;
    T_REQUIRE(gen(s, 4, 0.9f, 1234, &a) == LM_OK, "%s", lm_session_error(s));
    T_REQUIRE(lm_session_sleep(s, st, "sampled") == LM_OK, "%s", lm_session_error(s));
    wake_job job = {model_path, dir, "sampled", n_cont, 0.9f, LM_SEED_CONTINUE, 0, NULL, 0};
    child_report rep;
    T_REQUIRE(run_child(&job, &rep) == 0 && rep.status == 0, "%s: sampled child: %s", label,
              rep.err);
    toks b;
    T_REQUIRE(gen(s, n_cont, 0.9f, LM_SEED_CONTINUE, &b) == LM_OK, "%s", lm_session_error(s));
    T_CHECK(same_toks(&b, &rep.out), "%s: sampled continuation (LM_SEED_CONTINUE) identical "
            "after sleep/wake", label);
    lm_session_free(s);
    lm_store_close(st);
    lm_model_free(m);
}

static void fill_tokens(int32_t *t, size_t n, int32_t lo, int32_t hi, unsigned long long seed) {
    t_srand(seed);
    for (size_t i = 0; i < n; i++) t[i] = lo + (int32_t)(t_rand_u64() % (uint64_t)(hi - lo));
}

static void test_exact_fixtures(void) {
    for (size_t a = 0; a < sizeof FIXTURES / sizeof *FIXTURES; a++) {
        char path[256];
        fixture_path(path, sizeof path, FIXTURES[a], "model-f32.gguf");
        lm_model *m = load(path);
        T_REQUIRE(m, "%s", path);
        int32_t nv = lm_model_n_vocab(m);
        lm_model_free(m);
        int32_t t1[13], t2[9], t3[21];
        fill_tokens(t1, 13, 3, nv, 100 + a);
        fill_tokens(t2, 9, 3, nv, 200 + a);
        fill_tokens(t3, 21, 3, nv, 300 + a);
        const int32_t *turns[3] = {t1, t2, t3};
        const size_t lens[3] = {13, 9, 21};
        /* page size 8: several full pages and a partial tail at every sleep */
        exact_conversation(path, turns, lens, 8, 5, 20, FIXTURES[a]);
    }
}

static size_t tokenize(const char *model_path, const char *text, int32_t *out, size_t cap) {
    char err[256];
    lm_vocab *v = NULL;
    if (lm_vocab_load(model_path, &v, err, sizeof err) != LM_OK) return 0;
    int32_t *ids = NULL;
    size_t n = 0;
    if (lm_vocab_tokenize(v, text, strlen(text), 1, 0, &ids, &n, err, sizeof err) != LM_OK)
        n = 0;
    if (n > cap) n = cap;
    if (n) memcpy(out, ids, n * sizeof *ids);
    lm_free_tokens(ids);
    lm_vocab_free(v);
    return n;
}

static void test_exact_real_models(void) {
    static const char *para =
        "The lighthouse keeper wrote down the weather every morning: the wind, the height of "
        "the waves, the colour of the sky over the northern cliffs, and the ships that passed. "
        "Years of notebooks filled the shelves of the small stone room below the lamp. ";
    const char *models[2] = {SMOLLM2, GEMMA3};
    for (int k = 0; k < 2; k++) {
        if (access(models[k], R_OK) != 0) {
            T_SKIP("%s not installed (make models)", models[k]);
            continue;
        }
        /* Gemma 3's window is 512 tokens: the first turn alone goes past it (plain build) */
        const int reps = SLOW_BUILD ? 2 : (k == 1 ? 14 : 4);
        char text[8192] = "";
        for (int r = 0; r < reps; r++) strncat(text, para, sizeof text - strlen(text) - 1);
        static int32_t t1[2048], t2[256], t3[256];
        size_t n1 = tokenize(models[k], text, t1, 2048);
        size_t n2 = tokenize(models[k], " And then the storm came.", t2, 256);
        size_t n3 = tokenize(models[k], " The keeper lit the lamp and waited.", t3, 256);
        T_REQUIRE(n1 > 10 && n2 > 1 && n3 > 1, "tokenized");
        if (k == 1 && !SLOW_BUILD) T_CHECK(n1 > 560, "gemma prompt %zu tokens > window", n1);
        /* later turns without the BOS the tokenizer added */
        const int32_t *turns[3] = {t1, t2 + 1, t3 + 1};
        const size_t lens[3] = {n1, n2 - 1, n3 - 1};
        exact_conversation(models[k], turns, lens, 256, 6, SLOW_BUILD ? 6 : 16,
                           k ? "gemma3-real" : "smollm2-real");
    }
}

/* Wake refuses state made by another model, tokenizer, chat template or page size, and says
 * which component differs. */
static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ok = a && b;
    char buf[65536];
    size_t k;
    while (ok && (k = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, k, b) == k;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok;
}

static int make_hf_copy(const char *dir, const char *tok_from, const char *tok_to,
                        const char *cfg_extra) {
    static const char *files[] = {"config.json", "model.safetensors", "tokenizer.json",
                                  "tokenizer_config.json"};
    mkdir(dir, 0700);
    for (int i = 0; i < 4; i++) {
        char src[512], dst[512];
        snprintf(src, sizeof src, "tests/data/fidelity/llama/%s", files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        if (!copy_file(src, dst)) return 0;
    }
    if (tok_from) { /* rename one vocabulary entry */
        char p[512];
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        FILE *f = fopen(p, "rb");
        if (!f) return 0;
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *at = strstr(buf, tok_from);
        if (!at) return 0;
        memcpy(at, tok_to, strlen(tok_to)); /* same length */
        f = fopen(p, "wb");
        if (!f) return 0;
        fwrite(buf, 1, n, f);
        fclose(f);
    }
    if (cfg_extra) {
        char p[512];
        snprintf(p, sizeof p, "%s/chat_template.jinja", dir);
        FILE *f = fopen(p, "wb");
        if (!f) return 0;
        fputs(cfg_extra, f);
        fclose(f);
    }
    return 1;
}

static lm_status wake_err(const char *model_path, lm_store *st, const char *name,
                          int32_t page_tokens, char *err, size_t len) {
    lm_model *m = load(model_path);
    if (!m) return LM_ERR_IO;
    lm_session *s = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 0;
    sp.page_tokens = page_tokens;
    lm_status r = lm_session_wake(m, &sp, st, name, &s, err, len);
    lm_session_free(s);
    lm_model_free(m);
    return r;
}

static void test_identity_refusals(void) {
    char base[512], tokv[512], tplv[512], store[512], err[1024];
    snprintf(base, sizeof base, "%s/hf-base", t_tmpdir());
    snprintf(tokv, sizeof tokv, "%s/hf-tok", t_tmpdir());
    snprintf(tplv, sizeof tplv, "%s/hf-tpl", t_tmpdir());
    snprintf(store, sizeof store, "%s/store-identity", t_tmpdir());
    T_REQUIRE(make_hf_copy(base, NULL, NULL, NULL), "hf copy");
    /* the same vocabulary with its end-of-sequence token spelled differently */
    T_REQUIRE(make_hf_copy(tokv, "\"<|eos|>\"", "\"<|EOS|>\"", NULL),
              "hf copy with another tokenizer");
    T_REQUIRE(make_hf_copy(tplv, NULL, NULL, "{{ messages[0]['content'] }}"),
              "hf copy with a chat template");
    lm_store *st = open_store(store);
    T_REQUIRE(st, "store");
    lm_model *m = load(base);
    T_REQUIRE(m, "base loads");
    lm_session *s = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 64;
    sp.page_tokens = 8;
    T_REQUIRE(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
    int32_t t[20];
    fill_tokens(t, 20, 3, lm_model_n_vocab(m), 7);
    T_REQUIRE(lm_session_append_tokens(s, t, 20) == LM_OK, "%s", lm_session_error(s));
    T_REQUIRE(lm_session_sleep(s, st, "ident") == LM_OK, "%s", lm_session_error(s));
    lm_session_free(s);
    lm_model_free(m);

    T_CHECK(wake_err(base, st, "ident", 0, err, sizeof err) == LM_OK, "same model wakes: %s",
            err);
    lm_status r = wake_err(base, st, "ident", 16, err, sizeof err);
    T_CHECK(r == LM_ERR_MISMATCH && strstr(err, "page size"), "page size refused: %s", err);
    r = wake_err(tokv, st, "ident", 0, err, sizeof err);
    T_CHECK(r == LM_ERR_MISMATCH && strstr(err, "tokenizer") && !strstr(err, "weights"),
            "another tokenizer refused, named: %s", err);
    r = wake_err(tplv, st, "ident", 0, err, sizeof err);
    T_CHECK(r == LM_ERR_MISMATCH && strstr(err, "chat template") && !strstr(err, "tokenizer"),
            "another chat template refused, named: %s", err);
    char other[256];
    fixture_path(other, sizeof other, "qwen2", "model-f32.gguf");
    r = wake_err(other, st, "ident", 0, err, sizeof err);
    T_CHECK(r == LM_ERR_MISMATCH && strstr(err, "weights"), "another model refused: %s", err);
    fixture_path(other, sizeof other, "llama", "model-f16.gguf");
    r = wake_err(other, st, "ident", 0, err, sizeof err);
    T_CHECK(r == LM_ERR_MISMATCH && strstr(err, "weights"),
            "same architecture, other weights (f16) refused: %s", err);
    lm_store_close(st);
}

static float max_diff(const float *a, const float *b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* Prefix reuse: a second session whose tokens begin with published pages attaches them. */
static void test_prefix_reuse(void) {
    char path[256], err[512];
    fixture_path(path, sizeof path, "llama", "model-f32.gguf");
    lm_model *m = load(path);
    T_REQUIRE(m, "fixture");
    const int32_t nv = lm_model_n_vocab(m);
    int32_t t[30];
    fill_tokens(t, 30, 3, nv, 11);
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 64;
    sp.page_tokens = 8;
    lm_session *a = NULL, *b = NULL, *c = NULL, *ref = NULL, *off = NULL;
    T_REQUIRE(lm_session_new(m, &sp, &a, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_append_tokens(a, t, 30) == LM_OK, "%s", lm_session_error(a));
    lm_metrics mt;
    lm_session_metrics(a, &mt);
    T_CHECK(mt.reused_tokens == 0, "first session reuses nothing");
    const float *la, *lb;
    size_t n;
    T_REQUIRE(lm_session_logits(a, &la, &n) == LM_OK, "logits");
    float *keep = malloc(n * sizeof *keep);
    memcpy(keep, la, n * sizeof *keep);

    T_REQUIRE(lm_session_new(m, &sp, &b, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_append_tokens(b, t, 30) == LM_OK, "%s", lm_session_error(b));
    lm_session_metrics(b, &mt);
    T_CHECK(mt.reused_tokens == 24 && mt.prompt_tokens == 30,
            "second session attached 3 pages: reused %llu", (unsigned long long)mt.reused_tokens);
    T_REQUIRE(lm_session_logits(b, &lb, &n) == LM_OK, "logits");
    T_CHECK(max_diff(keep, lb, n) <= 1e-4f, "logits with reused pages match (max diff %g)",
            (double)max_diff(keep, lb, n));

    /* every appended token cached: the last one is recomputed for the logits */
    T_REQUIRE(lm_session_new(m, &sp, &c, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_append_tokens(c, t, 16) == LM_OK, "%s", lm_session_error(c));
    lm_session_metrics(c, &mt);
    T_CHECK(mt.reused_tokens == 15, "16 cached tokens: 15 reused, 1 recomputed (%llu)",
            (unsigned long long)mt.reused_tokens);
    sp.prefix_cache = 0;
    T_REQUIRE(lm_session_new(m, &sp, &ref, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_append_tokens(ref, t, 16) == LM_OK, "%s", lm_session_error(ref));
    lm_session_metrics(ref, &mt);
    T_CHECK(mt.reused_tokens == 0, "prefix_cache 0 reuses nothing");
    T_REQUIRE(lm_session_logits(ref, &la, &n) == LM_OK && lm_session_logits(c, &lb, &n) == LM_OK,
              "logits");
    T_CHECK(max_diff(la, lb, n) <= 1e-4f, "fully cached prefix: logits match (max diff %g)",
            (double)max_diff(la, lb, n));
    /* continuing c writes into a copy of the cached page, not into it */
    toks g1, g2;
    T_REQUIRE(gen(c, 10, 0.0f, 1, &g1) == LM_OK && gen(ref, 10, 0.0f, 1, &g2) == LM_OK, "gen");
    T_CHECK(same_toks(&g1, &g2), "continuation after full reuse equals the uncached one");
    /* a differing token in page 2 stops the reuse there */
    sp.prefix_cache = 1;
    t[12] = t[12] == 3 ? 4 : 3;
    T_REQUIRE(lm_session_new(m, &sp, &off, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_append_tokens(off, t, 30) == LM_OK, "%s", lm_session_error(off));
    lm_session_metrics(off, &mt);
    T_CHECK(mt.reused_tokens == 8, "divergence in page 2: 8 reused (%llu)",
            (unsigned long long)mt.reused_tokens);
    /* a's state is intact after all this sharing */
    T_REQUIRE(lm_session_logits(a, &la, &n) == LM_OK, "logits");
    T_CHECK(max_diff(keep, la, n) == 0.0f, "the first session's logits unchanged");
    free(keep);
    lm_session_free(a);
    lm_session_free(b);
    lm_session_free(c);
    lm_session_free(ref);
    lm_session_free(off);

    /* across processes through a store: a new process attaches the stored pages */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/store-prefix", t_tmpdir());
    lm_store *st = open_store(dir);
    T_REQUIRE(st, "store");
    fill_tokens(t, 30, 3, nv, 11);
    sp.prefix_cache = 1;
    T_REQUIRE(lm_session_new(m, &sp, &a, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_append_tokens(a, t, 30) == LM_OK, "%s", lm_session_error(a));
    T_REQUIRE(lm_session_sleep(a, st, "prefix-src") == LM_OK, "%s", lm_session_error(a));
    lm_session_free(a);
    lm_store_close(st);
    wake_job job = {path, dir, NULL, 0, 0.0f, 1, 8, t, 30};
    child_report rep;
    T_REQUIRE(run_child(&job, &rep) == 0 && rep.status == 0, "child: %s", rep.err);
    T_CHECK(rep.reused == 24, "a new process attached 24 tokens from the store (%llu)",
            (unsigned long long)rep.reused);
    lm_model_free(m);
}

/* In-memory fork: both branches continue independently (copy-on-write of the shared tail). */
static void test_fork(void) {
    char path[256], err[512];
    fixture_path(path, sizeof path, "gemma3", "model-f32.gguf");
    lm_model *m = load(path);
    T_REQUIRE(m, "fixture");
    int32_t t[20];
    fill_tokens(t, 20, 3, lm_model_n_vocab(m), 5);
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 128;
    sp.page_tokens = 8;
    lm_session *s = NULL, *f = NULL, *ref = NULL;
    T_REQUIRE(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_new(m, &sp, &ref, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_append_tokens(s, t, 20) == LM_OK, "%s", lm_session_error(s));
    T_REQUIRE(lm_session_append_tokens(ref, t, 20) == LM_OK, "%s", lm_session_error(ref));
    T_REQUIRE(lm_session_fork(s, &f) == LM_OK, "fork: %s", lm_session_error(s));
    T_CHECK(lm_session_n_tokens(f) == 20, "fork holds the tokens");
    int32_t other[3] = {5, 6, 7};
    toks gf, gs, gr;
    T_REQUIRE(lm_session_append_tokens(f, other, 3) == LM_OK, "%s", lm_session_error(f));
    T_REQUIRE(gen(f, 12, 0.0f, 1, &gf) == LM_OK, "%s", lm_session_error(f));
    T_REQUIRE(gen(s, 12, 0.0f, 1, &gs) == LM_OK, "%s", lm_session_error(s));
    T_REQUIRE(gen(ref, 12, 0.0f, 1, &gr) == LM_OK, "%s", lm_session_error(ref));
    T_CHECK(same_toks(&gs, &gr), "the original continues as if never forked");
    lm_session_free(f);
    T_REQUIRE(gen(s, 4, 0.0f, 1, &gs) == LM_OK && gen(ref, 4, 0.0f, 1, &gr) == LM_OK, "gen");
    T_CHECK(same_toks(&gs, &gr), "and after the fork is freed");
    lm_session_free(s);
    lm_session_free(ref);
    lm_model_free(m);
}

/* lm_session_append_scored: the logits after every scored position equal those of appending
 * the tokens one at a time (to kernel rounding), and a callback that stops leaves the session
 * as it was. */
typedef struct scored {
    float *rows;  /* (n, n_vocab) */
    size_t n_vocab, first, calls, stop_at;
} scored;

static int on_scored(void *user, size_t i, const float *logits, size_t n_vocab) {
    scored *c = user;
    if (c->stop_at && c->calls == c->stop_at) return 1;
    c->n_vocab = n_vocab;
    memcpy(c->rows + (i - c->first) * n_vocab, logits, n_vocab * sizeof *logits);
    c->calls++;
    return 0;
}

static void test_append_scored(void) {
    char path[256], err[512];
    fixture_path(path, sizeof path, "qwen2", "model-f32.gguf");
    lm_model *m = load(path);
    T_REQUIRE(m, "fixture");
    const size_t nv = (size_t)lm_model_n_vocab(m), n = 21, from = 5;
    int32_t t[21];
    fill_tokens(t, n, 3, (int32_t)nv, 17);
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 64;
    sp.n_batch = 8; /* several batches, the scored range starting inside the first */
    lm_session *a = NULL, *b = NULL;
    T_REQUIRE(lm_session_new(m, &sp, &a, err, sizeof err) == LM_OK, "%s", err);
    T_REQUIRE(lm_session_new(m, &sp, &b, err, sizeof err) == LM_OK, "%s", err);
    scored c = {calloc((n - from) * nv, sizeof(float)), 0, from, 0, 0};
    T_REQUIRE(c.rows, "memory");
    T_REQUIRE(lm_session_append_scored(a, t, n, from, on_scored, &c) == LM_OK, "%s",
              lm_session_error(a));
    T_CHECK(c.calls == n - from && lm_session_n_tokens(a) == n, "one call per scored position");
    float worst = 0, range = 0;
    for (size_t i = 0; i < n; i++) {
        T_REQUIRE(lm_session_append_tokens(b, &t[i], 1) == LM_OK, "%s", lm_session_error(b));
        if (i < from) continue;
        const float *lg;
        size_t k;
        T_REQUIRE(lm_session_logits(b, &lg, &k) == LM_OK && k == nv, "logits");
        for (size_t j = 0; j < nv; j++) range = fmaxf(range, fabsf(lg[j]));
        worst = fmaxf(worst, max_diff(c.rows + (i - from) * nv, lg, nv));
    }
    T_CHECK(worst <= 1e-3f * fmaxf(range, 1.0f), "scored rows equal one-at-a-time logits "
            "(max diff %g, |logit| up to %g)", (double)worst, (double)range);
    /* the last scored row is the session's logits */
    const float *la;
    size_t k;
    T_REQUIRE(lm_session_logits(a, &la, &k) == LM_OK, "logits");
    T_CHECK(max_diff(la, c.rows + (n - 1 - from) * nv, nv) == 0.0f, "last row = session logits");
    /* a callback that stops: LM_ERR_ABORTED, nothing appended */
    scored stop = {c.rows, 0, 0, 0, 3};
    T_CHECK(lm_session_append_scored(a, t, 10, 0, on_scored, &stop) == LM_ERR_ABORTED,
            "stopping callback aborts");
    T_CHECK(lm_session_n_tokens(a) == n, "session unchanged after the abort");
    T_REQUIRE(lm_session_logits(a, &la, &k) == LM_OK, "logits kept after a failed append: %s",
              lm_session_error(a));
    T_CHECK(max_diff(la, c.rows + (n - 1 - from) * nv, nv) == 0.0f,
            "the logits are those from before the failed append");
    T_CHECK(lm_session_append_scored(a, t, 1, 0, NULL, NULL) == LM_ERR_INVALID_ARG,
            "no callback refused");
    free(c.rows);
    lm_session_free(a);
    lm_session_free(b);
    lm_model_free(m);
}

/* Errors: bad names, missing sessions, too small a context, corrupted files. */
static void test_errors(void) {
    char path[256], err[512], dir[512];
    fixture_path(path, sizeof path, "qwen3", "model-f32.gguf");
    snprintf(dir, sizeof dir, "%s/store-errors", t_tmpdir());
    lm_model *m = load(path);
    lm_store *st = open_store(dir);
    T_REQUIRE(m && st, "model and store");
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 64;
    sp.page_tokens = 8;
    lm_session *s = NULL, *w = NULL;
    T_REQUIRE(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
    int32_t t[19];
    fill_tokens(t, 19, 3, lm_model_n_vocab(m), 9);
    T_REQUIRE(lm_session_append_tokens(s, t, 19) == LM_OK, "%s", lm_session_error(s));
    const char *bad[] = {"", "../x", ".hidden", "a/b", "a b", "tab\t", "x\\y"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        T_CHECK(lm_session_sleep(s, st, bad[i]) == LM_ERR_INVALID_ARG,
                "name '%s' refused: %s", bad[i], lm_session_error(s));
    T_REQUIRE(lm_session_sleep(s, st, "good-1") == LM_OK, "%s", lm_session_error(s));
    lm_session_params wp = lm_session_default_params();
    wp.n_ctx = 0;
    wp.page_tokens = 0;
    T_CHECK(lm_session_wake(m, &wp, st, "missing", &w, err, sizeof err) == LM_ERR_NOT_FOUND,
            "missing session: %s", err);
    wp.n_ctx = 10;
    T_CHECK(lm_session_wake(m, &wp, st, "good-1", &w, err, sizeof err) == LM_ERR_INVALID_ARG,
            "n_ctx below the saved tokens refused: %s", err);
    T_CHECK(!w, "no session on failure");
    wp.n_ctx = 0;
    /* flip a byte in one page blob: the wake is refused */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "f=$(ls %s/pages/*/*.page | head -n 1); printf '\\x55' | dd of=\"$f\" bs=1 "
             "seek=300 conv=notrunc status=none", dir);
    T_REQUIRE(system(cmd) == 0, "corrupt a page");
    lm_status r = lm_session_wake(m, &wp, st, "good-1", &w, err, sizeof err);
    T_CHECK(r == LM_ERR_CORRUPT || r == LM_ERR_FORMAT, "corrupted page refused: %s", err);
    T_CHECK(!w, "no session on failure");
    /* the damaged blob was moved aside: sleeping the same state again rewrites it */
    T_REQUIRE(lm_session_sleep(s, st, "good-1") == LM_OK, "%s", lm_session_error(s));
    r = lm_session_wake(m, &wp, st, "good-1", &w, err, sizeof err);
    T_CHECK(r == LM_OK, "after a re-sleep the session wakes: %s", err);
    lm_session_free(w);
    w = NULL;
    /* a truncated manifest is refused */
    snprintf(cmd, sizeof cmd, "truncate -s 100 %s/sessions/good-1.session", dir);
    T_REQUIRE(system(cmd) == 0, "truncate the manifest");
    r = lm_session_wake(m, &wp, st, "good-1", &w, err, sizeof err);
    T_CHECK((r == LM_ERR_CORRUPT || r == LM_ERR_FORMAT) && !w, "truncated manifest refused: %s",
            err);
    toks g;
    T_CHECK(gen(s, 3, 0.0f, 1, &g) == LM_OK && g.n == 3, "the in-memory session still works");
    lm_session_free(s);
    lm_store_close(st);
    lm_model_free(m);
}

int main(void) {
    T_RUN(test_exact_fixtures);
    T_RUN(test_exact_real_models);
    T_RUN(test_identity_refusals);
    T_RUN(test_prefix_reuse);
    T_RUN(test_fork);
    T_RUN(test_append_scored);
    T_RUN(test_errors);
    return t_finish();
}
