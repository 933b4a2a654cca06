/*
 * test_model_vocab.c — lm_model_vocab: the vocabulary a loaded model carries (its tokenizer,
 * chat template and special tokens, built from the file the model holds open) must be the
 * same as lm_vocab_load gives for the same path: the same token texts, special ids and EOG
 * set, the same ids for any text (add_special / parse_special both ways), the same text back
 * from those ids, the same chat template and rendered prompts. Checked on the real models
 * (models/, skipped when absent), on a tiny HF fixture directory (tests/data/fidelity/llama)
 * and on HF directories assembled from it (a chat template in chat_template.jinja and in
 * tokenizer_config.json; an NFC normalizer; a tokenizer bigger than the embedding). Also: the
 * sessions of a model tokenize through it, it is NULL-safe, it may be used from several
 * threads at once, and the CLI commands that use it report a model without one.
 */
#include "lemma.h"
#include "cli.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMOL "models/smollm2-135m-instruct-q4_1.gguf"
#define GEMMA "models/gemma-3-270m-q4_k_m.gguf"
#define FIX "tests/data/fidelity/llama"
#define CORPUS "tests/data/tokenizer/corpus.txt"
#define MESSAGES "tests/data/tokenizer/messages.json"

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static lm_model *load_model(const char *path) {
    char err[512];
    lm_model *m = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 1;
    mp.kv_cache_mb = 64;
    if (lm_model_load(path, &mp, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "  %s: %s\n", path, err);
        return NULL;
    }
    return m;
}

/* Texts tokenized by the comparisons: the corpus lines, the whole corpus, special-token
 * spellings of the usual families, and edge cases. */
static const char *k_extra[] = {
    "",
    " ",
    "  leading and trailing  ",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<bos><eos><|bos|><|eos|><|endoftext|>",
    "caf\xc3\xa9 cafe\xcc\x81 \xe2\x98\x83 \xf0\x9f\x98\x80",
    "invalid \xff\xfe utf-8 \xc3",
    "tabs\tand\nnew\r\nlines",
    "1234567890 3.14159 -42",
};

/* Compares the ids two vocabularies give for text[0..len) with every flag combination, and
 * the text both give back for those ids. */
static void compare_text(const lm_vocab *a, const lm_vocab *b, const char *what, const char *text,
                         size_t len) {
    char ea[512], eb[512];
    for (int flags = 0; flags < 4; flags++) {
        int add = flags & 1, parse = (flags >> 1) & 1;
        int32_t *ia = NULL, *ib = NULL;
        size_t na = 0, nb = 0;
        lm_status sa = lm_vocab_tokenize(a, text, len, add, parse, &ia, &na, ea, sizeof ea);
        lm_status sb = lm_vocab_tokenize(b, text, len, add, parse, &ib, &nb, eb, sizeof eb);
        T_CHECK(sa == LM_OK && sb == LM_OK, "%s: tokenize %d/%d: %s / %s", what, (int)sa,
                (int)sb, ea, eb);
        T_CHECK(na == nb && (na == 0 || !memcmp(ia, ib, na * sizeof *ia)),
                "%s: '%.40s' add=%d parse=%d: %zu vs %zu ids", what, text, add, parse, na, nb);
        for (int render = 0; render < 2 && sa == LM_OK && sb == LM_OK; render++) {
            char *ta = NULL, *tb = NULL;
            size_t la = 0, lb = 0;
            lm_status da = lm_vocab_detokenize(a, ia, na, render, &ta, &la, ea, sizeof ea);
            lm_status db = lm_vocab_detokenize(b, ia, na, render, &tb, &lb, eb, sizeof eb);
            T_CHECK(da == LM_OK && db == LM_OK, "%s: detokenize: %s / %s", what, ea, eb);
            T_CHECK(la == lb && (la == 0 || !memcmp(ta, tb, la)),
                    "%s: '%.40s' render=%d: texts differ", what, text, render);
            lm_free_string(ta);
            lm_free_string(tb);
        }
        lm_free_tokens(ia);
        lm_free_tokens(ib);
    }
}

/* Renders messages with both vocabularies: same status, same text. */
static void compare_render(const lm_vocab *a, const lm_vocab *b, const char *what,
                           const char *messages, const char *tools) {
    for (int gen = 0; gen < 2; gen++) {
        char ea[512], eb[512], *ra = NULL, *rb = NULL;
        lm_status sa = lm_vocab_apply_template(a, messages, tools, gen, -1, &ra, ea, sizeof ea);
        lm_status sb = lm_vocab_apply_template(b, messages, tools, gen, -1, &rb, eb, sizeof eb);
        T_CHECK(sa == sb, "%s: template status %d vs %d (%s / %s)", what, (int)sa, (int)sb, ea,
                eb);
        T_CHECK((!ra && !rb) || (ra && rb && !strcmp(ra, rb)), "%s: rendered prompts differ",
                what);
        lm_free_string(ra);
        lm_free_string(rb);
    }
}

/* Everything lm_model_vocab(model at path) and lm_vocab_load(path) can be asked. */
static void compare_with_load(const char *path) {
    lm_model *m = load_model(path);
    T_REQUIRE(m, "load %s", path);
    char err[512];
    lm_vocab *lv = NULL;
    T_CHECK(lm_vocab_load(path, &lv, err, sizeof err) == LM_OK, "%s: %s", path, err);
    const lm_vocab *mv = lm_model_vocab(m);
    T_CHECK(mv != NULL, "%s: the model has no vocabulary", path);
    T_CHECK(lm_model_vocab(m) == mv, "%s: not one object", path);
    char *corpus = read_text(CORPUS);
    char *messages = read_text(MESSAGES);
    T_CHECK(corpus && messages, "test data");
    if (!mv || !lv || !corpus || !messages) goto done;

    const size_t n = lm_vocab_n_tokens(mv);
    T_CHECK(n == lm_vocab_n_tokens(lv) && n > 0, "%s: %zu vs %zu tokens", path, n,
            lm_vocab_n_tokens(lv));
    T_CHECK(n <= (size_t)lm_model_n_vocab(m), "%s: %zu tokens > %d logits", path, n,
            lm_model_n_vocab(m));
    T_CHECK(lm_vocab_bos(mv) == lm_vocab_bos(lv) && lm_vocab_eos(mv) == lm_vocab_eos(lv) &&
                lm_vocab_eot(mv) == lm_vocab_eot(lv),
            "%s: special ids differ", path);
    size_t bad_text = 0, bad_eog = 0;
    for (size_t id = 0; id < n; id++) {
        const char *ta, *tb;
        size_t la, lb;
        if (lm_vocab_token_text(mv, (int32_t)id, &ta, &la) != LM_OK ||
            lm_vocab_token_text(lv, (int32_t)id, &tb, &lb) != LM_OK || la != lb ||
            memcmp(ta, tb, la))
            bad_text++;
        int e = lm_vocab_is_eog(mv, (int32_t)id);
        if (e != lm_vocab_is_eog(lv, (int32_t)id) || e != lm_model_token_is_eog(m, (int32_t)id))
            bad_eog++;
    }
    T_CHECK(bad_text == 0 && bad_eog == 0, "%s: %zu token texts and %zu EOG flags differ", path,
            bad_text, bad_eog);
    const char *ca = lm_vocab_chat_template(mv), *cb = lm_vocab_chat_template(lv);
    T_CHECK((!ca && !cb) || (ca && cb && !strcmp(ca, cb)), "%s: chat templates differ", path);

    compare_text(mv, lv, path, corpus, strlen(corpus));
    for (const char *line = corpus; *line;) {
        size_t len = strcspn(line, "\n");
        compare_text(mv, lv, path, line, len);
        line += len + (line[len] == '\n');
    }
    for (size_t i = 0; i < sizeof k_extra / sizeof *k_extra; i++)
        compare_text(mv, lv, path, k_extra[i], strlen(k_extra[i]));
    compare_render(mv, lv, path, messages, NULL);
    compare_render(mv, lv, path, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL);
    compare_render(mv, lv, path, "[{\"role\":\"user\",\"content\":\"Hi\"}]",
                   "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]");

    /* a session of the model tokenizes text as its vocabulary does */
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 64;
    sp.prefix_cache = 0;
    lm_session *s = NULL;
    T_CHECK(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
    const char *t = "Hello, world! <|im_start|>";
    int32_t *ids = NULL;
    size_t n_ids = 0;
    T_CHECK(lm_vocab_tokenize(mv, t, strlen(t), 1, 1, &ids, &n_ids, err, sizeof err) == LM_OK,
            "%s", err);
    if (s) {
        T_CHECK(lm_session_append_text(s, t, strlen(t), 1, 1) == LM_OK, "%s",
                lm_session_error(s));
        T_CHECK(lm_session_n_tokens(s) == n_ids, "%s: session %zu tokens, vocab %zu", path,
                lm_session_n_tokens(s), n_ids);
    }
    lm_free_tokens(ids);
    lm_session_free(s);
done:
    free(corpus);
    free(messages);
    lm_vocab_free(lv);
    lm_model_free(m);
}

static void test_smollm2(void) {
    if (access(SMOL, R_OK)) T_SKIP("%s not installed", SMOL);
    compare_with_load(SMOL);
}

static void test_gemma(void) {
    if (access(GEMMA, R_OK)) T_SKIP("%s not installed", GEMMA);
    compare_with_load(GEMMA);
}

static void test_hf_fixture(void) {
    compare_with_load(FIX);
    compare_with_load(FIX "/model-f32.gguf");
}

/* An HF directory under t_tmpdir(): the fixture's config and weights (linked) plus the given
 * tokenizer.json (linked from tokenizer_src, or written from tokenizer_text), tokenizer
 * config and chat_template.jinja (NULL = none). Returns the directory (static) or NULL. */
static const char *hf_dir(const char *name, const char *tokenizer_src, const char *tokenizer_text,
                          const char *config_text, const char *jinja_text) {
    static char dir[512];
    char p[600], src[600];
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return NULL;
    const char *links[2] = {"config.json", "model.safetensors"};
    char cwd[400];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, links[i]);
        snprintf(src, sizeof src, "%s/" FIX "/%s", cwd, links[i]);
        unlink(p);
        if (symlink(src, p)) return NULL;
    }
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    unlink(p);
    if (tokenizer_src) {
        snprintf(src, sizeof src, "%s/%s", cwd, tokenizer_src);
        if (symlink(src, p)) return NULL;
    } else if (!write_text(p, tokenizer_text)) {
        return NULL;
    }
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    unlink(p);
    if (config_text && !write_text(p, config_text)) return NULL;
    snprintf(p, sizeof p, "%s/chat_template.jinja", dir);
    unlink(p);
    if (jinja_text && !write_text(p, jinja_text)) return NULL;
    return dir;
}

#define TPL_CFG                                                                                 \
    "{\"bos_token\": \"<|bos|>\", \"eos_token\": {\"content\": \"<|eos|>\"},\n"                \
    " \"chat_template\": \"{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] "           \
    "{{ m['content'] }}{{ eos_token }}\\n{% endfor %}{% if add_generation_prompt %}"          \
    "[assistant] {% endif %}\"}\n"
#define TPL_JINJA                                                                               \
    "{{ bos_token }}{%- for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] " \
    "}}>{%- endfor %}{%- if add_generation_prompt %}<assistant>{%- endif %}"

/* The chat template of an HF directory: chat_template.jinja first, else tokenizer_config.json;
 * the model's vocabulary renders what lm_vocab_load's renders, and so does
 * lm_model_chat_prompt for one user message. */
static void test_hf_templates(void) {
    const char *dir = hf_dir("tpl_jinja", FIX "/tokenizer.json", NULL, TPL_CFG, TPL_JINJA);
    T_REQUIRE(dir, "temporary model directory");
    compare_with_load(dir);
    lm_model *m = load_model(dir);
    T_REQUIRE(m, "load %s", dir);
    const char *t = lm_vocab_chat_template(lm_model_vocab(m));
    T_CHECK(t && !strcmp(t, TPL_JINJA), "chat_template.jinja expected: %s", t ? t : "(none)");
    lm_model_free(m);

    dir = hf_dir("tpl_cfg", FIX "/tokenizer.json", NULL, TPL_CFG, NULL);
    T_REQUIRE(dir, "temporary model directory");
    compare_with_load(dir);
    m = load_model(dir);
    T_REQUIRE(m, "load %s", dir);
    const lm_vocab *v = lm_model_vocab(m);
    t = lm_vocab_chat_template(v);
    T_CHECK(t && strstr(t, "[assistant]"), "tokenizer_config template expected");
    char err[512], *a = NULL, *b = NULL;
    T_CHECK(lm_vocab_apply_template(v, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, 1, -1, &a,
                                    err, sizeof err) == LM_OK,
            "%s", err);
    T_CHECK(lm_model_chat_prompt(m, "Hi", &b, err, sizeof err) == LM_OK, "%s", err);
    T_CHECK(a && b && !strcmp(a, b), "chat prompt '%s' vs '%s'", a ? a : "", b ? b : "");
    T_CHECK(a && !strcmp(a, "<|bos|>[user] Hi<|eos|>\n[assistant] "), "rendered '%s'",
            a ? a : "");
    lm_free_string(a);
    lm_free_string(b);
    lm_model_free(m);
}

/* A tokenizer.json with an NFC normalizer: the model's sessions normalize as lm_vocab_load's
 * vocabulary does (a decomposed é tokenizes as the composed one). */
static void test_hf_nfc(void) {
    char *json = read_text(FIX "/tokenizer.json");
    T_REQUIRE(json, "read " FIX "/tokenizer.json");
    const char *key = "\"normalizer\": null";
    char *at = strstr(json, key);
    T_REQUIRE(at, "fixture tokenizer.json has no null normalizer");
    const char *nfc = "\"normalizer\": {\"type\": \"NFC\"}";
    size_t n = strlen(json) + strlen(nfc) + 1;
    char *mod = malloc(n);
    T_REQUIRE(mod, "out of memory");
    snprintf(mod, n, "%.*s%s%s", (int)(at - json), json, nfc, at + strlen(key));
    const char *dir = hf_dir("nfc", NULL, mod, NULL, NULL);
    free(json);
    free(mod);
    T_REQUIRE(dir, "temporary model directory");
    compare_with_load(dir);
    lm_model *m = load_model(dir);
    T_REQUIRE(m, "load %s", dir);
    const lm_vocab *v = lm_model_vocab(m);
    T_REQUIRE(v, "no vocabulary");
    char err[512];
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    T_CHECK(lm_vocab_tokenize(v, "caf\xc3\xa9", 5, 0, 0, &a, &na, err, sizeof err) == LM_OK, "%s",
            err);
    T_CHECK(lm_vocab_tokenize(v, "cafe\xcc\x81", 6, 0, 0, &b, &nb, err, sizeof err) == LM_OK,
            "%s", err);
    T_CHECK(na == nb && na > 0 && !memcmp(a, b, na * sizeof *a), "NFC not applied");
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 32;
    lm_session *s = NULL;
    T_CHECK(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
    if (s) {
        T_CHECK(lm_session_append_text(s, "cafe\xcc\x81", 6, 0, 0) == LM_OK, "%s",
                lm_session_error(s));
        T_CHECK(lm_session_n_tokens(s) == na, "session %zu tokens, composed text %zu",
                lm_session_n_tokens(s), na);
    }
    lm_session_free(s);
    lm_free_tokens(a);
    lm_free_tokens(b);
    lm_model_free(m);
}

/* A tokenizer with more tokens than the model has embedding rows is not the model's: no
 * vocabulary, text calls say why, token-level use goes on; the CLI commands report it. */
static void test_tokenizer_does_not_fit(void) {
    const char *big = "tests/data/tokenizer/smollm2/tokenizer.json";
    if (access(big, R_OK)) T_SKIP("%s missing", big);
    const char *d = hf_dir("nofit", big, NULL, NULL, NULL);
    T_REQUIRE(d, "temporary model directory");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    lm_model *m = load_model(dir);
    T_REQUIRE(m, "load %s", dir);
    T_CHECK(lm_model_vocab(m) == NULL, "a vocabulary bigger than the model");
    T_CHECK(!lm_model_token_is_eog(m, 1), "no EOG without a tokenizer");
    char err[512];
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 32;
    lm_session *s = NULL;
    T_CHECK(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
    if (s) {
        T_CHECK(lm_session_append_text(s, "hi", 2, 0, 0) == LM_ERR_UNSUPPORTED &&
                    strstr(lm_session_error(s), "49152 tokens"),
                "%s", lm_session_error(s));
        int32_t ids[2] = {5, 6};
        T_CHECK(lm_session_append_tokens(s, ids, 2) == LM_OK, "%s", lm_session_error(s));
    }
    lm_session_free(s);
    lm_model_free(m);

    if (!t_cli_has("chat")) T_SKIP("%s not built", t_cli_bin());
    char *out = NULL, *er = NULL;
    const char *chat[] = {"chat", "-m", dir, "-t", "1", NULL};
    int rc = t_cli_run(chat, "hi\n", &out, NULL, &er);
    T_CHECK(rc == 1 && strstr(er, "does not fit the model"), "chat: rc %d, stderr %s", rc, er);
    free(out);
    free(er);
    const char *text = t_write_tmp("ppl.txt", "Hello world, and more words to score.\n");
    const char *ppl[] = {"perplexity", "-m", dir, "-f", text, "-c", "8", "-t", "1", NULL};
    rc = t_cli_run(ppl, NULL, &out, NULL, &er);
    T_CHECK(rc == 1 && strstr(er, "does not fit the model"), "perplexity: rc %d, stderr %s", rc,
            er);
    free(out);
    free(er);
}

/* `lemma chat` (the model's vocabulary renders and tokenizes each turn) and `lemma run --chat`
 * (lm_model_chat_prompt) give the same greedy reply on a model with a template. */
static void test_cli_chat_matches_run(void) {
    if (!t_cli_has("chat")) T_SKIP("%s not built", t_cli_bin());
    const char *d = hf_dir("cli_tpl", FIX "/tokenizer.json", NULL, TPL_CFG, NULL);
    T_REQUIRE(d, "temporary model directory");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    char *o1 = NULL, *o2 = NULL, *e1 = NULL, *e2 = NULL;
    const char *chat[] = {"chat", "-m", dir, "-t", "1", "--temp", "0", "-n", "6", NULL};
    const char *run[] = {"run", "-m", dir, "-t", "1", "--temp", "0", "-n", "6", "--chat", "-p",
                         "Hello there", NULL};
    int r1 = t_cli_run(chat, "Hello there\n", &o1, NULL, &e1);
    int r2 = t_cli_run(run, NULL, &o2, NULL, &e2);
    T_CHECK(r1 == 0 && r2 == 0, "chat rc %d (%s), run rc %d (%s)", r1, e1, r2, e2);
    T_CHECK(!strcmp(o1, o2), "chat '%s' vs run '%s'", o1, o2);
    free(o1);
    free(o2);
    free(e1);
    free(e2);
}

static void test_null_safe(void) {
    char err[64];
    int32_t *ids = NULL, id = 0;
    size_t n = 1;
    char *text = NULL;
    const char *tt = NULL;
    T_CHECK(lm_model_vocab(NULL) == NULL, "NULL model");
    const lm_vocab *v = lm_model_vocab(NULL);
    T_CHECK(lm_vocab_n_tokens(v) == 0 && lm_vocab_bos(v) == -1 && lm_vocab_eos(v) == -1 &&
                lm_vocab_eot(v) == -1 && lm_vocab_is_eog(v, 0) == 0 &&
                lm_vocab_chat_template(v) == NULL,
            "queries on NULL");
    T_CHECK(lm_vocab_token_text(v, 0, &tt, &n) == LM_ERR_INVALID_ARG, "token_text");
    T_CHECK(lm_vocab_tokenize(v, "a", 1, 0, 0, &ids, &n, err, sizeof err) == LM_ERR_INVALID_ARG &&
                !ids && n == 0,
            "tokenize");
    T_CHECK(lm_vocab_detokenize(v, &id, 1, 0, &text, &n, err, sizeof err) ==
                    LM_ERR_INVALID_ARG &&
                !text,
            "detokenize");
    T_CHECK(lm_vocab_apply_template(v, "[]", NULL, 1, -1, &text, err, sizeof err) ==
                    LM_ERR_INVALID_ARG &&
                !text,
            "apply_template");
}

/* Read-only use from several threads at once, while a session of the model runs. */
#define N_THREADS 4
typedef struct worker {
    const lm_vocab *v;
    const char *corpus;
    const int32_t *want;
    size_t n_want;
    const char *want_render;
    int bad;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    char err[256];
    for (int rep = 0; rep < 20; rep++) {
        int32_t *ids = NULL;
        size_t n = 0;
        char *t = NULL, *r = NULL;
        size_t tl = 0;
        if (lm_vocab_tokenize(w->v, w->corpus, strlen(w->corpus), 1, 1, &ids, &n, err,
                              sizeof err) != LM_OK ||
            n != w->n_want || memcmp(ids, w->want, n * sizeof *ids))
            w->bad++;
        if (lm_vocab_detokenize(w->v, ids, n, 0, &t, &tl, err, sizeof err) != LM_OK) w->bad++;
        if (lm_vocab_apply_template(w->v, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, 1, -1,
                                    &r, err, sizeof err) != LM_OK ||
            strcmp(r, w->want_render))
            w->bad++;
        lm_free_tokens(ids);
        lm_free_string(t);
        lm_free_string(r);
    }
    return NULL;
}

static void test_threads(void) {
    const char *path = access(SMOL, R_OK) == 0 ? SMOL : NULL;
    if (!path) T_SKIP("%s not installed", SMOL);
    lm_model *m = load_model(path);
    T_REQUIRE(m, "load %s", path);
    const lm_vocab *v = lm_model_vocab(m);
    char *corpus = read_text(CORPUS);
    char err[512], *render = NULL;
    int32_t *want = NULL;
    size_t n_want = 0;
    lm_session *s = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 64;
    if (!v || !corpus ||
        lm_vocab_tokenize(v, corpus, strlen(corpus), 1, 1, &want, &n_want, err, sizeof err) ||
        lm_vocab_apply_template(v, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, 1, -1,
                                &render, err, sizeof err) ||
        lm_session_new(m, &sp, &s, err, sizeof err)) {
        T_CHECK(0, "setup: %s", err);
        goto done;
    }
    worker w[N_THREADS];
    pthread_t th[N_THREADS];
    int started = 0;
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker){v, corpus, want, n_want, render, 0};
        if (pthread_create(&th[i], NULL, work, &w[i]) == 0) started++;
        else break;
    }
    /* the model's own text path, at the same time */
    lm_generate_params gp = lm_generate_default_params();
    gp.max_tokens = 4;
    gp.sampling.temperature = 0.0f;
    T_CHECK(lm_session_append_text(s, "The capital of France is", 24, 1, 0) == LM_OK &&
                lm_session_generate(s, &gp) == LM_OK,
            "%s", lm_session_error(s));
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        T_CHECK(w[i].bad == 0, "thread %d: %d mismatches", i, w[i].bad);
    }
    T_CHECK(started == N_THREADS, "only %d threads", started);
done:
    lm_session_free(s);
    lm_free_tokens(want);
    lm_free_string(render);
    free(corpus);
    lm_model_free(m);
}

int main(void) {
    T_RUN(test_null_safe);
    T_RUN(test_hf_fixture);
    T_RUN(test_hf_templates);
    T_RUN(test_hf_nfc);
    T_RUN(test_tokenizer_does_not_fit);
    T_RUN(test_cli_chat_matches_run);
    T_RUN(test_smollm2);
    T_RUN(test_gemma);
    T_RUN(test_threads);
    return t_finish();
}
