/* test_inspect.c — lm_model_file (the `lemma inspect` backend) and the CLI command itself, on
 * every vocabulary GGUF of ../shared/testdata/vocab, the real models in models/, the fidelity
 * fixtures (GGUF and HF directory), and on files it must reject. Facts checked come from the
 * files' own documentation (SOURCES.md) or from the independent Python readers that made the
 * fixtures, never from lemma's own output. */
#include "lemma.h"
#include "test.h"

#include <dirent.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Opens PATH, describes it as JSON and returns the parsed description (NULL on failure). */
static json_t *describe(const char *path) {
    char err[512] = "";
    lm_model_file *f = NULL;
    lm_status s = lm_model_file_open(path, &f, err, sizeof err);
    T_CHECK(s == LM_OK, "%s: %s", path, err);
    if (s != LM_OK) return NULL;
    char *txt = lm_model_file_describe(f, 1);
    char *plain = lm_model_file_describe(f, 0);
    T_CHECK(txt && plain && strstr(plain, "tensors:"), "%s: describe failed", path);
    lm_free_string(plain);
    lm_model_file_close(f);
    json_t *j = txt ? json_loads(txt, 0, NULL) : NULL;
    T_CHECK(j != NULL, "%s: describe --json is not valid JSON", path);
    lm_free_string(txt);
    return j;
}

static long long jint(const json_t *root, const char *a, const char *b) {
    const json_t *o = json_object_get(root, a);
    return b ? json_integer_value(json_object_get(o, b)) : json_integer_value(o);
}

static void test_vocab_files(void) {
    const char *dirs[] = {"testdata/vocab", "testdata/vocab/llama.cpp-v0.4.0"};
    int seen = 0;
    for (int d = 0; d < 2; d++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", t_shared_path(dirs[d]));
        DIR *dp = opendir(dir);
        if (!dp) continue;
        struct dirent *de;
        while ((de = readdir(dp))) {
            size_t n = strlen(de->d_name);
            if (n < 8 || strcmp(de->d_name + n - 8, ".gguf.gz") != 0) continue;
            char out[1024], cmd[3072];
            snprintf(out, sizeof out, "%s/%.*s", t_tmpdir(), (int)(n - 3), de->d_name);
            snprintf(cmd, sizeof cmd, "gzip -dc '%s/%s' > '%s'", dir, de->d_name, out);
            T_REQUIRE(system(cmd) == 0, "%s", cmd);
            json_t *j = describe(out);
            if (j) {
                /* vocab-only files: zero tensors, a tokenizer with a token list */
                T_CHECK(jint(j, "summary", "tensors") == 0, "%s has tensors", out);
                T_CHECK(jint(j, "tokenizer", "tokenizer.ggml.tokens (count)") > 1000,
                        "%s: token count %lld", out,
                        jint(j, "tokenizer", "tokenizer.ggml.tokens (count)"));
                json_decref(j);
            }
            seen++;
        }
        closedir(dp);
    }
    T_CHECK(seen >= 15, "only %d vocab files found under %s", seen, t_shared_path("testdata"));
}

static void test_real_models(void) {
    const char *smol = "models/smollm2-135m-instruct-q4_1.gguf";
    const char *gemma = "models/gemma-3-270m-q4_k_m.gguf";
    const char *bert = "models/all-minilm-l6-v2";
    if (!exists(smol) || !exists(gemma) || !exists(bert)) T_SKIP("models/ not installed");
    json_t *j = describe(smol);
    if (j) {
        /* counts as read by the Python gguf package: 272 tensors (210 q4_1, 61 f32, 1 q8_0) */
        T_CHECK(jint(j, "summary", "tensors") == 272, "smollm2 tensors %lld",
                jint(j, "summary", "tensors"));
        T_CHECK(!strcmp(json_string_value(json_object_get(j, "architecture")), "llama"), "arch");
        const json_t *q41 =
            json_object_get(json_object_get(json_object_get(j, "summary"), "by_dtype"), "q4_1");
        T_CHECK(json_integer_value(json_object_get(q41, "tensors")) == 210, "q4_1 count");
        T_CHECK(jint(j, "hyperparameters", "block_count") == 30, "block_count");
        json_decref(j);
    }
    j = describe(gemma);
    if (j) {
        T_CHECK(jint(j, "summary", "tensors") == 236, "gemma tensors %lld",
                jint(j, "summary", "tensors"));
        T_CHECK(!strcmp(json_string_value(json_object_get(j, "architecture")), "gemma3"), "arch");
        T_CHECK(jint(j, "hyperparameters", "attention.sliding_window") == 512, "sliding window");
        json_decref(j);
    }
    j = describe(bert);
    if (j) {
        T_CHECK(!strcmp(json_string_value(json_object_get(j, "architecture")), "BertModel"),
                "bert arch");
        T_CHECK(jint(j, "summary", "tensors") > 50, "bert tensors %lld",
                jint(j, "summary", "tensors"));
        json_decref(j);
    }
}

static void test_fixtures(void) {
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3"};
    const int layers[] = {2, 2, 2, 7};
    for (int a = 0; a < 4; a++) {
        char p[512];
        snprintf(p, sizeof p, "tests/data/fidelity/%s/model-q8_0.gguf", archs[a]);
        json_t *j = describe(p);
        if (j) {
            T_CHECK(jint(j, "hyperparameters", "block_count") == layers[a], "%s layers", p);
            json_decref(j);
        }
        snprintf(p, sizeof p, "tests/data/fidelity/%s", archs[a]);
        j = describe(p);
        if (j) {
            T_CHECK(jint(j, "hyperparameters", "num_hidden_layers") == layers[a], "%s", p);
            json_decref(j);
        }
    }
}

/* Runs the CLI; returns its exit status and the first line of stderr in err. */
static int run_cli(const char *args, char *err, size_t len) {
    char cmd[2048], errpath[600];
    snprintf(errpath, sizeof errpath, "%s/cli.err", t_tmpdir());
    snprintf(cmd, sizeof cmd, "build/lemma %s >/dev/null 2>'%s'", args, errpath);
    const char *bin = getenv("LM_TEST_BUILD");
    if (bin) snprintf(cmd, sizeof cmd, "%s/lemma %s >/dev/null 2>'%s'", bin, args, errpath);
    int rc = system(cmd);
    FILE *f = fopen(errpath, "r");
    err[0] = '\0';
    if (f) {
        if (!fgets(err, (int)len, f)) err[0] = '\0';
        fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_rejects(void) {
    if (!exists("build/lemma") && !getenv("LM_TEST_BUILD")) T_SKIP("build/lemma not built");
    char bad[600], args[800], err[1024];
    snprintf(bad, sizeof bad, "%s/bad.gguf", t_tmpdir());
    FILE *f = fopen(bad, "wb");
    T_REQUIRE(f, "tmp");
    fwrite("GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", 1, 16, f);
    fclose(f);
    snprintf(args, sizeof args, "inspect '%s'", bad);
    int rc = run_cli(args, err, sizeof err);
    T_CHECK(rc == 1, "exit %d for a truncated GGUF", rc);
    T_CHECK(strncmp(err, "lemma inspect: ", 15) == 0 && strlen(err) > 20, "stderr '%s'", err);
    rc = run_cli("inspect /nonexistent.gguf", err, sizeof err);
    T_CHECK(rc == 1 && strstr(err, "nonexistent"), "missing file: %d '%s'", rc, err);
    rc = run_cli("inspect", err, sizeof err);
    T_CHECK(rc == 2, "no argument: exit %d", rc);
    rc = run_cli("inspect tests/data/fidelity/llama/model-f32.gguf --json", err, sizeof err);
    T_CHECK(rc == 0, "valid file: exit %d (%s)", rc, err);
}

int main(void) {
    T_RUN(test_vocab_files);
    T_RUN(test_real_models);
    T_RUN(test_fixtures);
    T_RUN(test_cli_rejects);
    return t_finish();
}
