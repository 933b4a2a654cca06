/*
 * test_hf_tokenizer.c — tokenizer.json loading and exactness against Hugging Face `tokenizers`.
 *
 * Goldens: tests/data/tokenizer/<model>.expected.jsonl, one {"text", "ids", "ids_special"} per
 * corpus case, written by tools/gen_tokenizer_goldens.py with the `tokenizers` library.
 * Each model x loading path (tokenizer.json, GGUF) is one test that encodes every case with
 * parse_special = 1 (the library splits special-token text by default), add_special = 0 and 1,
 * and reports the first mismatching case and position. Models under models/ that are not
 * installed are skipped. Malformed tokenizer.json documents must fail with clear errors.
 */
#include "lemma.h"

#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"
#include "format/gguf.h"
#include "test.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA "tests/data/tokenizer/"
#define BERT_JSON "models/all-minilm-l6-v2/tokenizer.json"
#define BERT_CFG "models/all-minilm-l6-v2/tokenizer_config.json"
#define SMOL_GGUF "models/smollm2-135m-instruct-q4_1.gguf"
#define GEMMA_GGUF "models/gemma-3-270m-q4_k_m.gguf"

static int exists(const char *p) {
    return access(p, R_OK) == 0;
}

/* Loads a .jsonl file as a JSON array of its lines. */
static json_t *load_jsonl(const char *path) {
    char *buf = NULL;
    size_t len = 0;
    lm_err e = {0};
    if (lm_file_read_all(path, (size_t)64 << 20, &buf, &len, &e)) {
        fprintf(stderr, "  %s: %s\n", path, e.msg);
        return NULL;
    }
    json_t *arr = json_array();
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n) {
            json_error_t je;
            json_t *o = json_loadb(p, n, 0, &je);
            if (!o) {
                fprintf(stderr, "  %s: bad line: %s\n", path, je.text);
                json_decref(arr);
                lm_free(buf);
                return NULL;
            }
            json_array_append_new(arr, o);
        }
        p += n + 1;
    }
    lm_free(buf);
    return arr;
}

/* Bytes of text[0..n) to show in a message: at most max, never cutting a UTF-8 sequence. */
static int show_len(const char *text, size_t n, size_t max) {
    if (n <= max) return (int)n;
    while (max > 0 && ((unsigned char)text[max] & 0xC0) == 0x80)
        max--;
    return (int)max;
}

/* Encodes every case; returns the number of mismatching cases and describes the first. */
static int check_goldens(const lm_tokenizer *tk, const json_t *cases, const char *field,
                         int add_special, char *first, size_t first_len) {
    int bad = 0;
    size_t i;
    json_t *c;
    first[0] = '\0';
    json_array_foreach(cases, i, c) {
        const json_t *jt = json_object_get(c, "text"), *want = json_object_get(c, field);
        const char *text = json_string_value(jt);
        size_t tl = json_string_length(jt);
        int32_t *ids = NULL;
        size_t n = 0;
        lm_err e = {0};
        lm_status st = lm_tokenizer_encode(tk, text, tl, add_special, 1, &ids, &n, &e);
        size_t nw = json_array_size(want), pos = 0;
        int ok = st == LM_OK && n == nw;
        for (pos = 0; st == LM_OK && pos < n && pos < nw; pos++) {
            if ((json_int_t)ids[pos] != json_integer_value(json_array_get(want, pos))) {
                ok = 0;
                break;
            }
        }
        if (!ok) {
            if (!bad) {
                snprintf(first, first_len,
                         "case %zu (%.*s%s): %s at position %zu: want %lld got %lld (lengths "
                         "%zu/%zu) %s",
                         i + 1, show_len(text, tl, 40), text, tl > 40 ? "..." : "", field, pos,
                         pos < nw ? (long long)json_integer_value(json_array_get(want, pos)) : -1,
                         pos < n ? (long long)ids[pos] : -1LL, nw, n, st ? e.msg : "");
            }
            bad++;
        }
        lm_free(ids);
    }
    return bad;
}

static void run_goldens(const lm_tokenizer *tk, const char *golden) {
    json_t *cases = load_jsonl(golden);
    T_REQUIRE(cases != NULL && json_array_size(cases) >= 60, "goldens %s", golden);
    char first[600];
    int bad = check_goldens(tk, cases, "ids", 0, first, sizeof first);
    T_CHECK(bad == 0, "%d of %zu cases differ; first: %s", bad, json_array_size(cases), first);
    bad = check_goldens(tk, cases, "ids_special", 1, first, sizeof first);
    T_CHECK(bad == 0, "add_special: %d of %zu cases differ; first: %s", bad, json_array_size(cases),
            first);
    json_decref(cases);
}

/* Byte-level BPE is lossless: decoding the golden ids gives the text back exactly. */
static void check_roundtrip(const lm_tokenizer *tk, const char *golden) {
    json_t *cases = load_jsonl(golden);
    T_REQUIRE(cases != NULL, "goldens %s", golden);
    size_t i;
    json_t *c;
    int bad = 0;
    json_array_foreach(cases, i, c) {
        const json_t *jt = json_object_get(c, "text"), *want = json_object_get(c, "ids");
        size_t n = json_array_size(want);
        int32_t *ids = lm_calloc(n ? n : 1, sizeof *ids);
        for (size_t k = 0; k < n; k++)
            ids[k] = (int32_t)json_integer_value(json_array_get(want, k));
        char *out = NULL;
        size_t len = 0;
        lm_err e = {0};
        lm_status st = lm_tokenizer_decode(tk, ids, n, LM_DETOK_RENDER_SPECIAL, &out, &len, &e);
        if (st || len != json_string_length(jt) || memcmp(out, json_string_value(jt), len)) {
            if (!bad)
                T_CHECK(0, "decode of case %zu (%.40s) gives '%.40s' (%s)", i + 1,
                        json_string_value(jt), out ? out : "", e.msg);
            bad++;
        }
        lm_free(out);
        lm_free(ids);
    }
    T_CHECK(bad == 0, "%d cases do not round-trip", bad);
    json_decref(cases);
}

static lm_tokenizer *from_gguf(const char *path) {
    lm_gguf *g = NULL;
    lm_tokenizer *tk = NULL;
    lm_err e = {0};
    if (lm_gguf_open_file(path, NULL, &g, &e) || lm_tokenizer_from_gguf(g, &tk, &e))
        T_CHECK(0, "%s: %s", path, e.msg);
    lm_gguf_close(g);
    return tk;
}

static void test_bert_tokenizer_json(void) {
    if (!exists(BERT_JSON)) T_SKIP("%s not installed (make models)", BERT_JSON);
    lm_tokenizer *tk = NULL;
    lm_err e = {0};
    lm_status st = lm_tokenizer_from_hf_json(BERT_JSON, BERT_CFG, &tk, &e);
    T_REQUIRE(st == LM_OK, "load: %s", e.msg);
    T_CHECK(lm_tokenizer_n_vocab(tk) == 30522, "n_vocab %zu", lm_tokenizer_n_vocab(tk));
    T_CHECK(lm_tokenizer_model(tk) == LM_TOK_MODEL_WPM, "model %d", lm_tokenizer_model(tk));
    T_CHECK(lm_tokenizer_special(tk, LM_TOK_BOS) == 101, "cls %d",
            lm_tokenizer_special(tk, LM_TOK_BOS));
    T_CHECK(lm_tokenizer_special(tk, LM_TOK_SEP) == 102, "sep %d",
            lm_tokenizer_special(tk, LM_TOK_SEP));
    T_CHECK(lm_tokenizer_special(tk, LM_TOK_UNK) == 100, "unk %d",
            lm_tokenizer_special(tk, LM_TOK_UNK));
    run_goldens(tk, DATA "bert.expected.jsonl");
    lm_tokenizer_free(tk);
}

static void test_smollm2_tokenizer_json(void) {
    lm_tokenizer *tk = NULL;
    lm_err e = {0};
    lm_status st = lm_tokenizer_from_hf_json(DATA "smollm2/tokenizer.json",
                                             DATA "smollm2/tokenizer_config.json", &tk, &e);
    T_REQUIRE(st == LM_OK, "load: %s", e.msg);
    T_CHECK(lm_tokenizer_n_vocab(tk) == 49152, "n_vocab %zu", lm_tokenizer_n_vocab(tk));
    T_CHECK(lm_tokenizer_special(tk, LM_TOK_BOS) == 1, "bos %d",
            lm_tokenizer_special(tk, LM_TOK_BOS));
    T_CHECK(lm_tokenizer_special(tk, LM_TOK_EOS) == 2, "eos %d",
            lm_tokenizer_special(tk, LM_TOK_EOS));
    T_CHECK(!lm_tokenizer_add_bos(tk) && !lm_tokenizer_add_eos(tk), "adds nothing");
    run_goldens(tk, DATA "smollm2.expected.jsonl");
    check_roundtrip(tk, DATA "smollm2.expected.jsonl");
    lm_tokenizer_free(tk);
}

static void test_smollm2_gguf(void) {
    if (!exists(SMOL_GGUF)) T_SKIP("%s not installed (make models)", SMOL_GGUF);
    lm_tokenizer *tk = from_gguf(SMOL_GGUF);
    T_REQUIRE(tk != NULL, "no tokenizer");
    run_goldens(tk, DATA "smollm2.expected.jsonl");
    check_roundtrip(tk, DATA "smollm2.expected.jsonl");
    lm_tokenizer_free(tk);
}

static void test_gemma3_gguf(void) {
    if (!exists(GEMMA_GGUF)) T_SKIP("%s not installed (make models)", GEMMA_GGUF);
    if (!exists(DATA "gemma3.expected.jsonl")) T_SKIP("no gemma3 goldens");
    lm_tokenizer *tk = from_gguf(GEMMA_GGUF);
    T_REQUIRE(tk != NULL, "no tokenizer");
    run_goldens(tk, DATA "gemma3.expected.jsonl");
    lm_tokenizer_free(tk);
}

/* The tokenizer.json path for Gemma 3: the file (about 16 MB, not committed) is written by
 * tools/gen_tokenizer_goldens.py --gemma --gemma-json PATH; the test runs when
 * LM_GEMMA3_TOKENIZER_JSON names it. */
static void test_gemma3_tokenizer_json(void) {
    const char *p = getenv("LM_GEMMA3_TOKENIZER_JSON");
    if (!p || !*p) T_SKIP("set LM_GEMMA3_TOKENIZER_JSON (see tools/gen_tokenizer_goldens.py)");
    lm_tokenizer *tk = NULL;
    lm_err e = {0};
    lm_status st = lm_tokenizer_from_hf_json(p, NULL, &tk, &e);
    T_REQUIRE(st == LM_OK, "load: %s", e.msg);
    T_CHECK(lm_tokenizer_add_bos(tk) && lm_tokenizer_special(tk, LM_TOK_BOS) == 2, "bos");
    run_goldens(tk, DATA "gemma3.expected.jsonl");
    lm_tokenizer_free(tk);
}

/* ---- the public text API ------------------------------------------------------------------ */

static void test_api_vocab(void) {
    lm_vocab *v = NULL;
    char err[512];
    lm_status st = lm_vocab_load(DATA "smollm2", &v, err, sizeof err);
    T_REQUIRE(st == LM_OK, "%s", err);
    T_CHECK(lm_vocab_n_tokens(v) == 49152, "n %zu", lm_vocab_n_tokens(v));
    T_CHECK(lm_vocab_bos(v) == 1 && lm_vocab_eos(v) == 2, "bos %d eos %d", lm_vocab_bos(v),
            lm_vocab_eos(v));
    T_CHECK(lm_vocab_is_eog(v, 2) && !lm_vocab_is_eog(v, 905), "eog");
    T_CHECK(lm_vocab_chat_template(v) != NULL, "template");
    int32_t *ids = NULL;
    size_t n = 0;
    st = lm_vocab_tokenize(v, "Hello world", 11, 0, 0, &ids, &n, err, sizeof err);
    T_CHECK(st == LM_OK && n == 2 && ids[0] == 19556 && ids[1] == 905, "tokenize: %s", err);
    char *text = NULL;
    size_t len = 0;
    st = lm_vocab_detokenize(v, ids, n, 0, &text, &len, err, sizeof err);
    T_CHECK(st == LM_OK && len == 11 && !strcmp(text, "Hello world"), "detokenize: %s", err);
    lm_free_string(text);
    lm_free_tokens(ids);
    const char *t;
    T_CHECK(lm_vocab_token_text(v, 1, &t, &len) == LM_OK && len == 12 &&
                !memcmp(t, "<|im_start|>", 12),
            "token text");
    T_CHECK(lm_vocab_token_text(v, 49152, &t, &len) == LM_ERR_INVALID_ARG, "out of range");
    int32_t bad = 70000;
    st = lm_vocab_detokenize(v, &bad, 1, 0, &text, &len, err, sizeof err);
    T_CHECK(st == LM_ERR_INVALID_ARG && text == NULL && err[0], "bad id: %d %s", (int)st, err);
    /* templates */
    char *out = NULL;
    st = lm_vocab_apply_template(v, "{\"role\": \"user\"}", NULL, 1, -1, &out, err, sizeof err);
    T_CHECK(st == LM_ERR_INVALID_ARG && !out && strstr(err, "array"), "not array: %s", err);
    st = lm_vocab_apply_template(v, "[{\"role\": \"user\", \"content\": \"hi\"}", NULL, 1, -1, &out,
                                 err, sizeof err);
    T_CHECK(st == LM_ERR_FORMAT && !out, "bad JSON: %s", err);
    st = lm_vocab_apply_template(v, "[{\"role\": \"user\", \"content\": \"hi\"}]", NULL, 1, -1,
                                 &out, err, sizeof err);
    T_CHECK(st == LM_OK && out && strstr(out, "<|im_start|>user\nhi<|im_end|>\n"), "%s", err);
    lm_free_string(out);
    lm_vocab_free(v);
    lm_vocab_free(NULL);

    st = lm_vocab_load("/nonexistent/model.gguf", &v, err, sizeof err);
    T_CHECK(st != LM_OK && v == NULL && err[0], "missing model: %d", (int)st);
}

/* A vocabulary without a template gets the built-in one of its family (here ChatML). */
static void test_api_builtin_template(void) {
    char dir[512], link[600], target[600];
    snprintf(dir, sizeof dir, "%s/notemplate", t_tmpdir());
    T_REQUIRE(mkdir(dir, 0700) == 0 || access(dir, F_OK) == 0, "mkdir %s", dir);
    snprintf(link, sizeof link, "%s/tokenizer.json", dir);
    T_REQUIRE(getcwd(target, 400) != NULL, "cwd");
    strcat(target, "/" DATA "smollm2/tokenizer.json");
    if (access(link, F_OK) != 0) T_REQUIRE(symlink(target, link) == 0, "symlink");
    lm_vocab *v = NULL;
    char err[512];
    T_REQUIRE(lm_vocab_load(dir, &v, err, sizeof err) == LM_OK, "%s", err);
    T_CHECK(lm_vocab_chat_template(v) == NULL, "no template expected");
    char *out = NULL;
    lm_status st = lm_vocab_apply_template(
        v, "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"U\"}]", NULL,
        1, -1, &out, err, sizeof err);
    T_CHECK(st == LM_OK && out &&
                !strcmp(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
                             "<|im_start|>assistant\n"),
            "%s / %s", err, out ? out : "");
    lm_free_string(out);
    lm_vocab_free(v);
    if (access("models/all-minilm-l6-v2/tokenizer.json", R_OK) == 0) {
        T_REQUIRE(lm_vocab_load("models/all-minilm-l6-v2", &v, err, sizeof err) == LM_OK, "%s",
                  err);
        st = lm_vocab_apply_template(v, "[]", NULL, 1, -1, &out, err, sizeof err);
        T_CHECK(st == LM_ERR_NOT_FOUND && !out, "BERT has no template: %d %s", (int)st, err);
        lm_vocab_free(v);
    }
}

static void test_api_gemma3_gguf(void) {
    if (!exists(GEMMA_GGUF)) T_SKIP("%s not installed (make models)", GEMMA_GGUF);
    lm_vocab *v = NULL;
    char err[512];
    T_REQUIRE(lm_vocab_load(GEMMA_GGUF, &v, err, sizeof err) == LM_OK, "%s", err);
    /* this GGUF (the base model) carries no template: the built-in Gemma one applies */
    T_CHECK(lm_vocab_chat_template(v) == NULL, "unexpected template");
    char *out = NULL;
    lm_status st = lm_vocab_apply_template(v, "[{\"role\":\"user\",\"content\":\"Hi\"}]", NULL, 1,
                                           -1, &out, err, sizeof err);
    T_CHECK(st == LM_OK && out &&
                !strcmp(out, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"),
            "%s / %s", err, out ? out : "");
    lm_free_string(out);
    lm_vocab_free(v);
}

/* ---- llama.cpp's test vectors through tokenizer.json ---------------------------------------
 * ../shared/testdata/vocab holds vocab-only GGUFs with .inp/.out vectors that Hugging Face
 * tokenizers produced (add_special_tokens=False). Here each GGUF's vocabulary, merges and
 * control tokens are written back out as a tokenizer.json with that model's own Hugging Face
 * pipeline (facts from each model's tokenizer.json; a normalizer lemma does not support, NFC,
 * is left out and the model noted), then loaded through the tokenizer.json reader and checked
 * against the vectors: this exercises the Split / Digits / ByteLevel / BERT mappings on real
 * vocabularies. */

/* the patterns as JSON string bodies (every regex backslash doubled for JSON) */
#define RE_LLAMA3_HF                                                                               \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?"        \
    "[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define RE_QWEN2_HF                                                                                \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?"             \
    "[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"
#define SPLIT(re)                                                                                  \
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" re "\"},\"behavior\":\"Isolated\","            \
    "\"invert\":false}"
#define BYTELEVEL(r) "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":" r "}"
#define DIGITS "{\"type\":\"Digits\",\"individual_digits\":true}"

#define SEQ(list) "{\"type\":\"Sequence\",\"pretokenizers\":[" list "]}"
#define NFC "{\"type\":\"NFC\"}"

/* clang-format off */
static const struct vec_model {
    const char *name;          /* ggml-vocab-<name>.gguf */
    const char *pre_tokenizer; /* JSON */
    int ignore_merges, wordpiece;
    const char *normalizer;    /* JSON or NULL */
} k_vec_models[] = {
    {"gpt-2", BYTELEVEL("true"), 0, 0, NULL},
    {"llama-bpe", SEQ(SPLIT(RE_LLAMA3_HF) "," BYTELEVEL("false")), 1, 0, NULL},
    /* Qwen2 and Command-R normalize with NFC: loaded with the _ex reader, input normalized */
    {"qwen2", SEQ(SPLIT(RE_QWEN2_HF) "," BYTELEVEL("false")), 0, 0, NFC},
    {"starcoder", SEQ(DIGITS "," BYTELEVEL("true")), 0, 0, NULL},
    {"refact", SEQ(DIGITS "," BYTELEVEL("true")), 0, 0, NULL},
    {"command-r", SEQ(DIGITS "," BYTELEVEL("true")), 0, 0, NFC},
    {"deepseek-coder", SEQ(SPLIT("[\\\\r\\\\n]") "," SPLIT("\\\\s?\\\\p{L}+") ","
                           SPLIT("\\\\s?\\\\p{P}+") "," SPLIT("[一-龥ࠀ-一가-퟿]+") ","
                           DIGITS "," BYTELEVEL("false")), 0, 0, NULL},
    {"bert-bge", "{\"type\":\"BertPreTokenizer\"}", 0, 1, NULL},
};
/* clang-format on */

/* The GGUF vocabulary as a tokenizer.json document (NULL on failure). */
static char *gguf_to_tokenizer_json(const char *gguf_path, const struct vec_model *m) {
    lm_gguf *g = NULL;
    lm_err e = {0};
    if (lm_gguf_open_file(gguf_path, NULL, &g, &e)) return NULL;
    int64_t kt = lm_gguf_find(g, "tokenizer.ggml.tokens");
    int64_t ky = lm_gguf_find(g, "tokenizer.ggml.token_type");
    int64_t km = lm_gguf_find(g, "tokenizer.ggml.merges");
    json_t *root = json_object(), *vocab = json_object(), *added = json_array();
    json_t *merges = json_array(), *model = json_object();
    uint64_t n = kt >= 0 ? lm_gguf_arr_n(g, (uint64_t)kt) : 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *t;
        size_t l;
        if (lm_gguf_arr_str(g, (uint64_t)kt, i, &t, &l)) continue;
        int32_t type = ky >= 0 ? lm_gguf_arr_get_i32(g, (uint64_t)ky, i) : 1;
        char *s = lm_strndup(t, l);
        if (m->wordpiece && type != LM_TOKEN_CONTROL) {
            /* llama.cpp's phantom-space form back to WordPiece's: "▁x" -> "x", "x" -> "##x" */
            char *w = lm_malloc(l + 3);
            if (l >= 3 && !memcmp(s, "\xE2\x96\x81", 3))
                memcpy(w, s + 3, l - 2);
            else
                memcpy(w, "##", 2), memcpy(w + 2, s, l + 1);
            lm_free(s);
            s = w;
        }
        json_object_set_new(vocab, s, json_integer((json_int_t)i));
        if (type == LM_TOKEN_CONTROL || type == LM_TOKEN_USER_DEFINED) {
            json_t *a = json_object();
            json_object_set_new(a, "id", json_integer((json_int_t)i));
            json_object_set_new(a, "content", json_string(s));
            json_object_set_new(a, "special", json_boolean(type == LM_TOKEN_CONTROL));
            json_array_append_new(added, a);
        }
        lm_free(s);
    }
    uint64_t nm = km >= 0 ? lm_gguf_arr_n(g, (uint64_t)km) : 0;
    for (uint64_t i = 0; i < nm; i++) {
        const char *t;
        size_t l;
        if (!lm_gguf_arr_str(g, (uint64_t)km, i, &t, &l))
            json_array_append_new(merges, json_stringn(t, l));
    }
    lm_gguf_close(g);
    json_object_set_new(model, "type", json_string(m->wordpiece ? "WordPiece" : "BPE"));
    json_object_set_new(model, "vocab", vocab);
    if (m->wordpiece) {
        json_object_set_new(model, "unk_token", json_string("[UNK]"));
        json_object_set_new(model, "continuing_subword_prefix", json_string("##"));
        json_decref(merges);
        json_object_set_new(root, "normalizer",
                            json_loads("{\"type\":\"BertNormalizer\",\"clean_text\":true,"
                                       "\"handle_chinese_chars\":true,\"strip_accents\":null,"
                                       "\"lowercase\":true}",
                                       0, NULL));
    } else {
        json_object_set_new(model, "merges", merges);
        json_object_set_new(model, "ignore_merges", json_boolean(m->ignore_merges));
        json_object_set_new(root, "decoder", json_loads("{\"type\":\"ByteLevel\"}", 0, NULL));
        if (m->normalizer)
            json_object_set_new(root, "normalizer", json_loads(m->normalizer, 0, NULL));
    }
    json_object_set_new(root, "model", model);
    json_object_set_new(root, "added_tokens", added);
    json_error_t je;
    json_t *pre = json_loads(m->pre_tokenizer, 0, &je);
    if (!pre) fprintf(stderr, "  %s: pre_tokenizer JSON: %s\n", m->name, je.text);
    json_object_set_new(root, "pre_tokenizer", pre ? pre : json_null());
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

static void test_llamacpp_vectors_via_json(void) {
    int ran = 0;
    for (size_t k = 0; k < sizeof k_vec_models / sizeof k_vec_models[0]; k++) {
        const struct vec_model *m = &k_vec_models[k];
        char rel[256], inp_rel[256], out_rel[256], name[128];
        snprintf(rel, sizeof rel, "testdata/vocab/ggml-vocab-%s.gguf.gz", m->name);
        snprintf(inp_rel, sizeof inp_rel, "testdata/vocab/ggml-vocab-%s.gguf.inp", m->name);
        snprintf(out_rel, sizeof out_rel, "testdata/vocab/ggml-vocab-%s.gguf.out", m->name);
        char gz[1024], inp[1024], outp[1024];
        snprintf(gz, sizeof gz, "%s", t_shared_path(rel));
        snprintf(inp, sizeof inp, "%s", t_shared_path(inp_rel));
        snprintf(outp, sizeof outp, "%s", t_shared_path(out_rel));
        if (!exists(gz) || !exists(inp) || !exists(outp)) continue;
        snprintf(name, sizeof name, "vocab-%s.gguf", m->name);
        const char *gguf = t_gunzip(gz, name);
        T_REQUIRE(gguf != NULL, "gunzip %s", gz);
        char *json = gguf_to_tokenizer_json(gguf, m);
        T_REQUIRE(json != NULL, "%s: could not write tokenizer.json", m->name);
        lm_tokenizer *tk = NULL;
        lm_err e = {0};
        lm_hf_info info;
        lm_status st =
            lm_tokenizer_from_hf_json_text_ex(json, strlen(json), NULL, 0, &tk, &info, &e);
        free(json);
        T_CHECK(st == LM_OK, "%s: %s", m->name, e.msg);
        if (st) continue;
        char *in = NULL, *out = NULL;
        size_t il = 0, ol = 0;
        T_REQUIRE(!lm_file_read_all(inp, (size_t)16 << 20, &in, &il, &e) &&
                      !lm_file_read_all(outp, (size_t)16 << 20, &out, &ol, &e),
                  "%s", e.msg);
        static const char sep[] = "\n__ggml_vocab_test__\n";
        char *p = in, *q = out;
        int bad = 0, cases = 0;
        while (p < in + il) {
            char *end = memmem(p, (size_t)(in + il - p), sep, sizeof sep - 1);
            char *qe = strchr(q, '\n');
            if (!end || !qe) break;
            *qe = '\0';
            int32_t *ids = NULL;
            size_t n = 0;
            char *nt = NULL;
            size_t nl = 0;
            st = lm_hf_normalize(info.norm, p, (size_t)(end - p), &nt, &nl, &e);
            if (!st) st = lm_tokenizer_encode(tk, nt, nl, 0, 0, &ids, &n, &e);
            lm_free(nt);
            /* compare with the expected line */
            char *c = q;
            size_t pos = 0;
            int ok = st == LM_OK;
            while (ok) {
                while (*c == ' ')
                    c++;
                if (!*c) break;
                long want = strtol(c, &c, 10);
                if (pos >= n || ids[pos] != want) ok = 0;
                pos++;
            }
            if (ok && pos != n) ok = 0;
            if (!ok) {
                if (!bad)
                    T_CHECK(0, "%s case %d ('%.*s'): want '%.80s' got %zu ids, first %d", m->name,
                            cases + 1, show_len(p, (size_t)(end - p), 40), p, q, n,
                            n ? ids[0] : -1);
                bad++;
            }
            lm_free(ids);
            cases++;
            p = end + sizeof sep - 1;
            q = qe + 1;
        }
        T_CHECK(bad == 0 && cases > 10, "%s: %d of %d vectors differ", m->name, bad, cases);
        T_CHECK(info.norm == (m->normalizer ? LM_HF_NORM_NFC : LM_HF_NORM_NONE), "%s: norm %d",
                m->name, (int)info.norm);
        if (getenv("LM_TEST_VERBOSE")) fprintf(stderr, "  %s: %d vectors\n", m->name, cases);
        lm_free(in);
        lm_free(out);
        lm_tokenizer_free(tk);
        ran++;
    }
    if (!ran) T_SKIP("no vocab test vectors under %s", t_shared_path("testdata/vocab"));
}

/* A vocabulary-only Llama 3 GGUF without a template gets the built-in Llama 3 one. */
static void test_api_builtin_llama3(void) {
    const char *gz = t_shared_path("testdata/vocab/ggml-vocab-llama-bpe.gguf.gz");
    if (!exists(gz)) T_SKIP("%s missing", gz);
    const char *path = t_gunzip(gz, "api-llama-bpe.gguf");
    T_REQUIRE(path != NULL, "gunzip");
    lm_vocab *v = NULL;
    char err[512];
    T_REQUIRE(lm_vocab_load(path, &v, err, sizeof err) == LM_OK, "%s", err);
    char *out = NULL;
    lm_status st = lm_vocab_apply_template(
        v, "[{\"role\":\"system\",\"content\":\" S \"},{\"role\":\"user\",\"content\":\"Hi\"}]",
        NULL, 1, -1, &out, err, sizeof err);
    T_CHECK(st == LM_OK && out &&
                !strcmp(out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS"
                             "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n"),
            "%s / %s", err, out ? out : "");
    lm_free_string(out);
    int32_t *ids = NULL;
    size_t n = 0;
    st = lm_vocab_tokenize(v, "Hello", 5, 1, 0, &ids, &n, err, sizeof err);
    T_CHECK(st == LM_OK && n == 2 && ids[0] == lm_vocab_bos(v), "bos: %s", err);
    lm_free_tokens(ids);
    lm_vocab_free(v);
}

/* ---- malformed documents ------------------------------------------------------------------ */

/* A small valid byte-level BPE document with a hole for one member. */
static const char *k_min_bpe =
    "{\"added_tokens\":[{\"id\":5,\"content\":\"<|end|>\",\"special\":true}],"
    "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
    "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\xC4\xA0\":3,"
    "\"\xC4\xA0"
    "a\":4},\"merges\":[\"a b\",\"\xC4\xA0 a\"]}}";

typedef struct bad_case {
    const char *json;
    lm_status want;
    const char *needle; /* in the message */
} bad_case;

static void test_valid_minimal(void) {
    lm_tokenizer *tk = NULL;
    lm_err e = {0};
    lm_status st = lm_tokenizer_from_hf_json_text(k_min_bpe, strlen(k_min_bpe), NULL, 0, &tk, &e);
    T_REQUIRE(st == LM_OK, "%s", e.msg);
    int32_t *ids = NULL;
    size_t n = 0;
    st = lm_tokenizer_encode(tk, "ab a<|end|>", 11, 0, 1, &ids, &n, &e);
    T_CHECK(st == LM_OK && n == 3 && ids[0] == 2 && ids[1] == 4 && ids[2] == 5,
            "ids n=%zu %d %d %d", n, n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1, n > 2 ? ids[2] : -1);
    lm_free(ids);
    lm_tokenizer_free(tk);
}

/* A tiny BERT WordPiece document (max_input_chars_per_word = 5). Expected ids below are what
 * Hugging Face `tokenizers` 0.23 gives for it. */
static const char *k_min_wpm =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"[UNK]\",\"special\":true}],"
    "\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":"
    "true,\"strip_accents\":null,\"lowercase\":true},\"pre_tokenizer\":{\"type\":"
    "\"BertPreTokenizer\"},\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\","
    "\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":5,\"vocab\":{"
    "\"[UNK]\":0,\"a\":1,\"##a\":2,\"b\":3,\"##b\":4,\"\xE0\xA4\x95\":5,\"##\xE0\xA4\xBE\":6,"
    "\"!\":7,\"x\":8,\"##\xF0\x9D\x85\xA5\":9,\"##\xF0\x9D\x85\xAD\":10}}}";

/* The BERT normalizer's exact rules: what clean_text deletes (controls, not unassigned code
 * points), which marks strip_accents drops (Mn only), NFD's canonical ordering, and
 * max_input_chars_per_word. */
static void test_wordpiece_rules(void) {
    lm_tokenizer *tk = NULL;
    lm_err e = {0};
    lm_status st = lm_tokenizer_from_hf_json_text(k_min_wpm, strlen(k_min_wpm), NULL, 0, &tk, &e);
    T_REQUIRE(st == LM_OK, "%s", e.msg);
    static const struct {
        const char *text;
        int n;
        int32_t ids[6];
    } cases[] = {
        {"a\xEF\xBF\xBF", 1, {0}},               /* U+FFFF is kept: the word is unk */
        {"a\vb", 2, {1, 4}},                     /* VT is a control: deleted, not a split */
        {"a\302\255b", 2, {1, 4}},               /* soft hyphen U+00AD (Cf): deleted */
        {"\xE0\xA4\x95\xE0\xA4\xBE", 2, {5, 6}}, /* Devanagari vowel sign AA (Mc) stays */
        {"A\xCC\x81", 1, {1}},                   /* A + U+0301 (Mn): dropped, lowercased */
        {"a!b", 3, {1, 7, 3}},
        {"aaaaa", 5, {1, 2, 2, 2, 2}},
        {"aaaaaa", 1, {0}}, /* 6 characters > max_input_chars_per_word */
        /* x U+1D16D (ccc 226) U+0301 U+1D165 (ccc 216): NFD reorders the two Mc marks */
        {"x\xF0\x9D\x85\xAD\xCC\x81\xF0\x9D\x85\xA5", 3, {8, 9, 10}},
        {"\xF0\x9F\x98\x80", 1, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        st = lm_tokenizer_encode(tk, cases[i].text, strlen(cases[i].text), 0, 1, &ids, &n, &e);
        int ok = st == LM_OK && n == (size_t)cases[i].n;
        for (size_t k = 0; ok && k < n; k++)
            ok = ids[k] == cases[i].ids[k];
        T_CHECK(ok, "case %zu: n=%zu first %d", i, n, n ? ids[0] : -1);
        lm_free(ids);
    }
    lm_tokenizer_free(tk);

    /* max_input_chars_per_word: absent = 100; 0 and negative refused */
    static const struct {
        const char *from, *to;
        lm_status want;
        size_t long_ok; /* a word of this many 'a' still tokenizes */
    } vars[] = {
        {"\"max_input_chars_per_word\":5,", "", LM_OK, 100},
        {"\"max_input_chars_per_word\":5,", "\"max_input_chars_per_word\":0,", LM_ERR_UNSUPPORTED,
         0},
        {"\"max_input_chars_per_word\":5,", "\"max_input_chars_per_word\":-1,", LM_ERR_FORMAT, 0},
        {"\"max_input_chars_per_word\":5,", "\"max_input_chars_per_word\":\"9\",", LM_ERR_FORMAT,
         0},
    };
    for (size_t v = 0; v < sizeof vars / sizeof vars[0]; v++) {
        char doc[2048];
        const char *at = strstr(k_min_wpm, vars[v].from);
        T_REQUIRE(at != NULL, "template");
        snprintf(doc, sizeof doc, "%.*s%s%s", (int)(at - k_min_wpm), k_min_wpm, vars[v].to,
                 at + strlen(vars[v].from));
        tk = NULL;
        lm_err_clear(&e);
        st = lm_tokenizer_from_hf_json_text(doc, strlen(doc), NULL, 0, &tk, &e);
        T_CHECK(st == vars[v].want, "variant %zu: status %d (%s)", v, st, e.msg);
        if (st == LM_OK) {
            char word[128];
            for (size_t len = vars[v].long_ok; len <= vars[v].long_ok + 1; len++) {
                memset(word, 'a', len);
                int32_t *ids = NULL;
                size_t n = 0;
                st = lm_tokenizer_encode(tk, word, len, 0, 0, &ids, &n, &e);
                int unk = st == LM_OK && n == 1 && ids[0] == 0;
                T_CHECK(st == LM_OK && (len > vars[v].long_ok ? unk : n == len),
                        "variant %zu: %zu chars give %zu ids", v, len, n);
                lm_free(ids);
            }
        }
        lm_tokenizer_free(tk);
    }
}

/* SentencePiece-style BPE with a Metaspace prefix; "%s" is the prepend_scheme. Expected ids
 * are what Hugging Face `tokenizers` 0.23 gives. */
static const char *k_min_metaspace =
    "{\"added_tokens\":[{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false}],"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
    "\"prepend_scheme\":\"%s\",\"split\":false},\"model\":{\"type\":\"BPE\",\"byte_fallback\":"
    "true,\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,\"<s>\":1,\"\xE2\x96\x81\":2,\"a\":3,"
    "\"b\":4,\"\xE2\x96\x81"
    "a\":5,\"ab\":6,\"\xE2\x96\x81"
    "ab\":7},\"merges\":["
    "\"\xE2\x96\x81 a\",\"a b\",\"\xE2\x96\x81"
    "a b\"]}}";

static void test_metaspace_prefix(void) {
    static const struct {
        const char *text;
        int n_first, n_always;
        int32_t first[3], always[3];
    } cases[] = {
        {"ab", 1, 1, {7}, {7}},
        {"ab ab", 2, 2, {7, 7}, {7, 7}},
        {" ab", 1, 1, {7}, {7}}, /* already starts with a space: no second one */
        {"\xE2\x96\x81"
         "ab",
         1,
         1,
         {7},
         {7}},                           /* or with U+2581 */
        {"<s>ab", 2, 2, {1, 6}, {1, 7}}, /* first: only the fragment at offset 0 */
        {"ab<s>ab", 3, 3, {7, 1, 6}, {7, 1, 7}},
        {"", 0, 0, {0}, {0}},
    };
    for (int sch = 0; sch < 2; sch++) {
        char doc[1024];
        snprintf(doc, sizeof doc, k_min_metaspace, sch ? "always" : "first");
        lm_tokenizer *tk = NULL;
        lm_err e = {0};
        lm_status st = lm_tokenizer_from_hf_json_text(doc, strlen(doc), NULL, 0, &tk, &e);
        T_REQUIRE(st == LM_OK, "%s", e.msg);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int32_t *ids = NULL;
            size_t n = 0;
            int want_n = sch ? cases[i].n_always : cases[i].n_first;
            const int32_t *want = sch ? cases[i].always : cases[i].first;
            st = lm_tokenizer_encode(tk, cases[i].text, strlen(cases[i].text), 0, 1, &ids, &n, &e);
            int ok = st == LM_OK && n == (size_t)want_n;
            for (size_t k = 0; ok && k < n; k++)
                ok = ids[k] == want[k];
            T_CHECK(ok, "scheme %d case %zu: n=%zu first %d", sch, i, n, n ? ids[0] : -1);
            lm_free(ids);
        }
        /* the prefix space is not decoded */
        int32_t two[] = {7, 7};
        char *out = NULL;
        size_t len = 0;
        T_CHECK(lm_tokenizer_decode(tk, two, 2, 0, &out, &len, &e) == LM_OK && len == 5 &&
                    !memcmp(out, "ab ab", 5),
                "decode '%s'", out ? out : "");
        lm_free(out);
        lm_tokenizer_free(tk);
    }
    /* a prefix after another split, or an unknown scheme, is refused */
    static const struct {
        const char *json;
        lm_status want;
    } bad[] = {
        {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\"},"
         "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"first\","
         "\"split\":false}]},\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":"
         "{\"a\":0},\"merges\":[]}}",
         LM_ERR_UNSUPPORTED},
        {"{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
         "\"prepend_scheme\":\"sometimes\",\"split\":false},\"model\":{\"type\":\"BPE\","
         "\"byte_fallback\":true,\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_tokenizer *tk = NULL;
        lm_err e = {0};
        lm_status st =
            lm_tokenizer_from_hf_json_text(bad[i].json, strlen(bad[i].json), NULL, 0, &tk, &e);
        T_CHECK(st == bad[i].want && !tk, "bad %zu: status %d (%s)", i, st, e.msg);
        lm_tokenizer_free(tk);
    }
}

/* NFC/NFKC of the input for tokenizer.json normalizers: valid runs normalized, invalid bytes
 * kept. */
static void test_normalize(void) {
    char *out = NULL;
    size_t n = 0;
    lm_err e = {0};
    const char in[] = "e\xCC\x81\xFF\xEF\xAC\x81x\xC3"; /* e + U+0301, 0xFF, U+FB01 (fi), x, cut */
    T_REQUIRE(lm_hf_normalize(LM_HF_NORM_NFC, in, sizeof in - 1, &out, &n, &e) == LM_OK, "%s",
              e.msg);
    T_CHECK(n == 8 && !memcmp(out, "\xC3\xA9\xFF\xEF\xAC\x81x\xC3", 8), "NFC: %zu bytes", n);
    lm_free(out);
    T_REQUIRE(lm_hf_normalize(LM_HF_NORM_NFKC, in, sizeof in - 1, &out, &n, &e) == LM_OK, "%s",
              e.msg);
    T_CHECK(n == 7 && !memcmp(out,
                              "\xC3\xA9\xFF"
                              "fix\xC3",
                              7),
            "NFKC: %zu bytes", n);
    lm_free(out);
    T_REQUIRE(lm_hf_normalize(LM_HF_NORM_NONE, "", 0, &out, &n, &e) == LM_OK && n == 0 && out,
              "empty");
    lm_free(out);
    /* the bare loader refuses NFC; the _ex one reports it */
    const char *doc =
        "{\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":"
        "\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    lm_tokenizer *tk = NULL;
    T_CHECK(lm_tokenizer_from_hf_json_text(doc, strlen(doc), NULL, 0, &tk, &e) ==
                LM_ERR_UNSUPPORTED,
            "bare NFC: %s", e.msg);
    lm_hf_info info;
    lm_err_clear(&e);
    T_CHECK(lm_tokenizer_from_hf_json_text_ex(doc, strlen(doc), NULL, 0, &tk, &info, &e) == LM_OK &&
                info.norm == LM_HF_NORM_NFC,
            "_ex NFC: %s", e.msg);
    lm_tokenizer_free(tk);
}

static void test_malformed(void) {
    static char deep[4096];
    size_t o = 0;
    o += (size_t)snprintf(deep, sizeof deep, "{\"model\":");
    for (int i = 0; i < 1000; i++)
        deep[o++] = '[';
    for (int i = 0; i < 1000; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    deep[o] = '\0';
    const bad_case cases[] = {
        {"", LM_ERR_FORMAT, "invalid JSON"},
        {"{\"model\":", LM_ERR_FORMAT, "invalid JSON"},
        {"[]", LM_ERR_FORMAT, "top level"},
        {"{}", LM_ERR_FORMAT, "model is missing"},
        {deep, LM_ERR_FORMAT, "nesting"},
        {"{\"model\":{\"type\":\"Magic\",\"vocab\":{}}}", LM_ERR_FORMAT, "unknown model type"},
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", LM_ERR_UNSUPPORTED, "Unigram"},
        {"{\"model\":{\"type\":7}}", LM_ERR_FORMAT, "model.type"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}", LM_ERR_FORMAT, "model.vocab"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", LM_ERR_FORMAT, "empty"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":-1},\"merges\":[]}}",
         LM_ERR_FORMAT, "out of range"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":99999999999999999999},\"merges\":[]}}",
         LM_ERR_FORMAT, ""},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":4000000000},\"merges\":[]}}",
         LM_ERR_FORMAT, "out of range"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":1.5},\"merges\":[]}}",
         LM_ERR_FORMAT, "want integer"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":0},\"merges\":[]}}",
         LM_ERR_FORMAT, "id 0 used by"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":1000000},\"merges\":[]}}",
         LM_ERR_FORMAT, "sparse"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}",
         LM_ERR_FORMAT, "not in the vocabulary"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":1},\"merges\":[\"ab\"]}}",
         LM_ERR_FORMAT, "is not 'a b'"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":1},\"merges\":[7]}}",
         LM_ERR_FORMAT, "merges[0]"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"b\":1},\"merges\":{}}}",
         LM_ERR_FORMAT, "merges is object"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"added_tokens\":[{\"id\":0,\"content\":"
         "\"x\"}],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_FORMAT, "model.vocab"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"added_tokens\":[{\"id\":1,\"content\":"
         "7}],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_FORMAT, "content"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"added_tokens\":{},\"model\":{\"type\":"
         "\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_FORMAT, "added_tokens is object"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"added_tokens\":[{\"id\":1,\"content\":"
         "\"x\",\"special\":\"yes\"}],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
         "\"merges\":[]}}",
         LM_ERR_FORMAT, "want boolean"},
        {"{\"pre_tokenizer\":{\"type\":\"Punctuation\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0},\"merges\":[]}}",
         LM_ERR_UNSUPPORTED, "Punctuation"},
        {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":"
         "\"Removed\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_UNSUPPORTED, "Split"},
        {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":"
         "\"Isolated\"},\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
         "\"content\":\"\xE2\x96\x81\"},\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,"
         "\"vocab\":{\"a\":0},"
         "\"merges\":[]}}",
         LM_ERR_FORMAT, "does not compile"},
        {"{\"normalizer\":{\"type\":\"NFKC\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_UNSUPPORTED, "NFKC"},
        {"{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
         "{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"ids\":"
         "[77]}}},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
         "\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_FORMAT, "out of range"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"CTC\"},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_UNSUPPORTED, "CTC"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", LM_ERR_UNSUPPORTED,
         "BPE without ByteLevel"},
        {"{\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},\"model\":{\"type\":"
         "\"WordPiece\",\"vocab\":{\"a\":0}}}",
         LM_ERR_FORMAT, "unk_token"},
        {"{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"WordPiece\","
         "\"unk_token\":\"a\",\"vocab\":{\"a\":0}}}",
         LM_ERR_UNSUPPORTED, "Whitespace"},
        {"{\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},\"model\":{\"type\":"
         "\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\"a\":0}}}",
         LM_ERR_FORMAT, "[UNK]"},
        {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":7},\"model\":{\"type\":"
         "\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         LM_ERR_FORMAT, "pretokenizers"},
        {"{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":"
         "{\"a\":0,\"a\":1},\"merges\":[]}}",
         LM_ERR_FORMAT, "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_tokenizer *tk = NULL;
        lm_err e = {0};
        lm_status st =
            lm_tokenizer_from_hf_json_text(cases[i].json, strlen(cases[i].json), NULL, 0, &tk, &e);
        T_CHECK(st == cases[i].want && tk == NULL && strstr(e.msg, cases[i].needle),
                "case %zu: status %d (want %d), message '%s' (want '%s')", i, (int)st,
                (int)cases[i].want, e.msg, cases[i].needle);
        lm_tokenizer_free(tk);
    }
    /* bad tokenizer_config.json */
    lm_tokenizer *tk = NULL;
    lm_err e = {0};
    const char *cfg = "{\"bos_token\": \"<nope>\"}";
    lm_status st =
        lm_tokenizer_from_hf_json_text(k_min_bpe, strlen(k_min_bpe), cfg, strlen(cfg), &tk, &e);
    T_CHECK(st == LM_ERR_FORMAT && strstr(e.msg, "bos_token"), "config: %d %s", (int)st, e.msg);
    lm_tokenizer_free(tk);
    tk = NULL;
    lm_err_clear(&e);
    cfg = "{\"add_bos_token\": 1}";
    st = lm_tokenizer_from_hf_json_text(k_min_bpe, strlen(k_min_bpe), cfg, strlen(cfg), &tk, &e);
    T_CHECK(st == LM_ERR_FORMAT && strstr(e.msg, "add_bos_token"), "config: %d %s", (int)st, e.msg);
    lm_tokenizer_free(tk);
    /* missing file */
    tk = NULL;
    lm_err_clear(&e);
    st = lm_tokenizer_from_hf_json("/nonexistent/tokenizer.json", NULL, &tk, &e);
    T_CHECK(st == LM_ERR_IO && tk == NULL, "missing file: %d %s", (int)st, e.msg);
}

/* Allocation failures at every step of a load fail cleanly (ASan checks the leaks). */
static void test_alloc_failures(void) {
    int failures = 0;
    for (unsigned long k = 1; k < 400; k++) {
        lm_tokenizer *tk = NULL;
        lm_err e = {0};
        lm_alloc_fail_after(k, 0);
        lm_status st =
            lm_tokenizer_from_hf_json_text(k_min_bpe, strlen(k_min_bpe), NULL, 0, &tk, &e);
        unsigned long injected = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (injected == 0) {
            T_CHECK(st == LM_OK, "k=%lu: %s", k, e.msg);
            lm_tokenizer_free(tk);
            break;
        }
        if (st != LM_OK) failures++;
        T_CHECK(st == LM_OK || tk == NULL, "k=%lu: failed but returned a tokenizer", k);
        lm_tokenizer_free(tk);
    }
    T_CHECK(failures > 0, "no injected failure was observed");
}

int main(void) {
    T_RUN(test_valid_minimal);
    T_RUN(test_wordpiece_rules);
    T_RUN(test_metaspace_prefix);
    T_RUN(test_malformed);
    T_RUN(test_normalize);
    T_RUN(test_alloc_failures);
    T_RUN(test_bert_tokenizer_json);
    T_RUN(test_smollm2_tokenizer_json);
    T_RUN(test_smollm2_gguf);
    T_RUN(test_gemma3_gguf);
    T_RUN(test_gemma3_tokenizer_json);
    T_RUN(test_llamacpp_vectors_via_json);
    T_RUN(test_api_vocab);
    T_RUN(test_api_builtin_template);
    T_RUN(test_api_gemma3_gguf);
    T_RUN(test_api_builtin_llama3);
    return t_finish();
}
