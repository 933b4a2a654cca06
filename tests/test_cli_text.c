/*
 * test_cli_text.c — `lemma tokenize`, `lemma detokenize` and `lemma template`, run as the
 * built binary ($LM_TEST_BUILD/lemma, default build/lemma) and checked against the goldens of
 * tools/gen_tokenizer_goldens.py (tests/data/tokenizer/): the BERT model directory and the
 * SmolLM2 vocabulary directory (tokenizer.json + tokenizer_config.json, no weights).
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include "cli.h"
#include "test.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DATA "tests/data/tokenizer/"
#define BERT "models/all-minilm-l6-v2"
#define SMOL DATA "smollm2"

static json_t *load_jsonl(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    json_t *arr = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o) json_array_append_new(arr, o);
    }
    free(line);
    fclose(f);
    return arr;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

/* "[1,2,3]\n" for ids */
static char *ids_json(const json_t *ids) {
    size_t n = json_array_size(ids), o = 0;
    char *s = malloc(n * 12 + 4);
    s[o++] = '[';
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, i ? ",%lld" : "%lld",
                             (long long)json_integer_value(json_array_get(ids, i)));
    s[o++] = ']';
    s[o++] = '\n';
    s[o] = '\0';
    return s;
}

/* Tokenizes cases [from, to) (every step-th) through --file (exact bytes) and compares with
 * the goldens. */
static void check_cases(const char *model, const char *golden, size_t from, size_t to, size_t step,
                        int bos) {
    json_t *cases = load_jsonl(golden);
    T_REQUIRE(cases && json_array_size(cases) > 0, "goldens %s", golden);
    char path[512];
    snprintf(path, sizeof path, "%s/cli_case.txt", t_tmpdir());
    int bad = 0;
    for (size_t i = from; i < to && i < json_array_size(cases); i += step) {
        const json_t *c = json_array_get(cases, i);
        const json_t *text = json_object_get(c, "text");
        FILE *f = fopen(path, "wb");
        T_REQUIRE(f != NULL, "tmp file");
        fwrite(json_string_value(text), 1, json_string_length(text), f);
        fclose(f);
        const char *args[] = {"tokenize",  "-m",     model, "--json",
                              "--special", "--file", path,  bos ? "--bos" : NULL,
                              NULL};
        char *out;
        size_t len;
        int rc = t_cli_run(args, NULL, &out, &len, NULL);
        char *want = ids_json(json_object_get(c, bos ? "ids_special" : "ids"));
        if (rc != 0 || strcmp(out, want) != 0) {
            if (!bad)
                T_CHECK(0, "%s case %zu: rc %d, got %.80s want %.80s", model, i + 1, rc, out, want);
            bad++;
        }
        free(want);
        free(out);
    }
    T_CHECK(bad == 0, "%s: %d cases differ", model, bad);
    json_decref(cases);
}

static void test_tokenize_bert(void) {
    if (!t_cli_has("tokenize")) T_SKIP("%s not built or without the text commands", t_cli_bin());
    if (access(BERT "/tokenizer.json", R_OK)) T_SKIP("BERT model not installed");
    check_cases(BERT, DATA "bert.expected.jsonl", 0, 13, 2, 0);
    check_cases(BERT, DATA "bert.expected.jsonl", 0, 5, 2, 1);
    /* the special-token line (case 46 of the corpus) */
    check_cases(BERT, DATA "bert.expected.jsonl", 45, 46, 1, 0);
}

static void test_tokenize_smollm2(void) {
    if (!t_cli_has("tokenize")) T_SKIP("%s not built or without the text commands", t_cli_bin());
    /* a third of the corpus, long cases included: each run loads the vocabulary anew */
    check_cases(SMOL, DATA "smollm2.expected.jsonl", 0, 1000, 3, 0);
}

static void test_tokenize_args(void) {
    if (!t_cli_has("tokenize")) T_SKIP("%s not built or without the text commands", t_cli_bin());
    char *out;
    size_t len;
    /* TEXT as an argument, space-separated output */
    const char *a1[] = {"tokenize", "-m", SMOL, "Hello world", NULL};
    int rc = t_cli_run(a1, NULL, &out, &len, NULL);
    T_CHECK(rc == 0 && !strcmp(out, "19556 905\n"), "rc %d out '%s'", rc, out);
    free(out);
    /* special-token text is plain text without --special */
    const char *a2[] = {"tokenize", "-m", SMOL, "--json", "<|im_start|>", NULL};
    rc = t_cli_run(a2, NULL, &out, &len, NULL);
    T_CHECK(rc == 0 && strcmp(out, "[1]\n") != 0 && out[0] == '[', "rc %d out '%s'", rc, out);
    free(out);
    const char *a3[] = {"tokenize", "-m", SMOL, "--json", "--special", "<|im_start|>", NULL};
    rc = t_cli_run(a3, NULL, &out, &len, NULL);
    T_CHECK(rc == 0 && !strcmp(out, "[1]\n"), "rc %d out '%s'", rc, out);
    free(out);
    /* usage errors: 2; failures: 1 */
    const char *u1[] = {"tokenize", "Hello", NULL};
    const char *u2[] = {"tokenize", "-m", SMOL, NULL};
    const char *u3[] = {"tokenize", "-m", SMOL, "--bogus", "x", NULL};
    const char *u4[] = {"tokenize", "-m", SMOL, "a", "b", NULL};
    const char *const *usage[] = {u1, u2, u3, u4};
    for (int i = 0; i < 4; i++) {
        rc = t_cli_run(usage[i], NULL, &out, &len, NULL);
        T_CHECK(rc == 2 && len == 0, "usage case %d: rc %d out '%s'", i, rc, out);
        free(out);
    }
    const char *f1[] = {"tokenize", "-m", "/nonexistent/model.gguf", "x", NULL};
    const char *f2[] = {"tokenize", "-m", SMOL, "--file", "/nonexistent/file", NULL};
    const char *f3[] = {"tokenize", "-m", DATA "corpus.txt", "x", NULL};
    const char *const *fails[] = {f1, f2, f3};
    for (int i = 0; i < 3; i++) {
        rc = t_cli_run(fails[i], NULL, &out, &len, NULL);
        T_CHECK(rc == 1 && len == 0, "failure case %d: rc %d out '%s'", i, rc, out);
        free(out);
    }
}

static void test_detokenize(void) {
    if (!t_cli_has("tokenize")) T_SKIP("%s not built or without the text commands", t_cli_bin());
    json_t *cases = load_jsonl(DATA "smollm2.expected.jsonl");
    T_REQUIRE(cases != NULL, "goldens");
    int bad = 0;
    for (size_t i = 0; i < json_array_size(cases); i += 5) {
        const json_t *c = json_array_get(cases, i);
        const json_t *text = json_object_get(c, "text");
        char *ids = ids_json(json_object_get(c, "ids"));
        const char *args[] = {"detokenize", "-m", SMOL, "--special", ids, NULL};
        char *out;
        size_t len;
        int rc = t_cli_run(args, NULL, &out, &len, NULL);
        if (rc != 0 || len != json_string_length(text) ||
            memcmp(out, json_string_value(text), len) != 0) {
            if (!bad) T_CHECK(0, "case %zu: rc %d got '%.60s'", i + 1, rc, out);
            bad++;
        }
        free(out);
        free(ids);
    }
    T_CHECK(bad == 0, "%d cases do not round-trip", bad);
    json_decref(cases);
    char *out;
    size_t len;
    const char *a1[] = {"detokenize", "-m", SMOL, "19556", "905", NULL};
    int rc = t_cli_run(a1, NULL, &out, &len, NULL);
    T_CHECK(rc == 0 && !strcmp(out, "Hello world"), "rc %d out '%s'", rc, out);
    free(out);
    const char *a2[] = {"detokenize", "-m", SMOL, "49152", NULL};
    rc = t_cli_run(a2, NULL, &out, &len, NULL);
    T_CHECK(rc == 1 && len == 0, "out-of-range id: rc %d", rc);
    free(out);
    const char *a3[] = {"detokenize", "-m", SMOL, "12x", NULL};
    rc = t_cli_run(a3, NULL, &out, &len, NULL);
    T_CHECK(rc == 2 && len == 0, "bad id: rc %d", rc);
    free(out);
    const char *a4[] = {"detokenize", "-m", SMOL, "-1", NULL};
    rc = t_cli_run(a4, NULL, &out, &len, NULL);
    T_CHECK(rc == 1 && len == 0, "negative id: rc %d", rc);
    free(out);
}

static void check_template(const char *messages, const char *expected, int gen) {
    size_t wl;
    char *want = read_file(expected, &wl);
    T_REQUIRE(want != NULL, "%s", expected);
    const char *args[] = {"template",   "-m",     SMOL,
                          "--messages", messages, gen ? "--add-generation-prompt" : NULL,
                          NULL};
    char *out;
    size_t len;
    int rc = t_cli_run(args, NULL, &out, &len, NULL);
    T_CHECK(rc == 0 && len == wl && memcmp(out, want, wl) == 0,
            "%s: rc %d, got (%zu bytes) '%.200s'", expected, rc, len, out);
    free(out);
    free(want);
}

static void test_template(void) {
    if (!t_cli_has("tokenize")) T_SKIP("%s not built or without the text commands", t_cli_bin());
    check_template(DATA "messages.json", DATA "smollm2.template.txt", 0);
    check_template(DATA "messages.json", DATA "smollm2.template_gen.txt", 1);
    check_template(DATA "messages_nosys.json", DATA "smollm2.template_nosys.txt", 1);
    char *out;
    size_t len;
    const char *u1[] = {"template", "-m", SMOL, NULL};
    int rc = t_cli_run(u1, NULL, &out, &len, NULL);
    T_CHECK(rc == 2 && len == 0, "no --messages: rc %d", rc);
    free(out);
    const char *f1[] = {"template", "-m", SMOL, "--messages", DATA "corpus.txt", NULL};
    rc = t_cli_run(f1, NULL, &out, &len, NULL);
    T_CHECK(rc == 1 && len == 0, "bad messages JSON: rc %d", rc);
    free(out);
    const char *f2[] = {"template", "-m", SMOL, "--messages", "/nonexistent.json", NULL};
    rc = t_cli_run(f2, NULL, &out, &len, NULL);
    T_CHECK(rc == 1 && len == 0, "missing messages file: rc %d", rc);
    free(out);
}

int main(void) {
    T_RUN(test_tokenize_bert);
    T_RUN(test_tokenize_smollm2);
    T_RUN(test_tokenize_args);
    T_RUN(test_detokenize);
    T_RUN(test_template);
    return t_finish();
}
