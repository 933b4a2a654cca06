/*
 * test_tokenizer.c — tokenizer exactness against llama.cpp's vocabulary test vectors, decode
 * round trips, the streaming detokenizer, and malformed vocabularies.
 *
 * Vectors: ../shared/testdata/vocab/{,llama.cpp-v0.4.0/}ggml-vocab-NAME.gguf.{inp,out}, GGUFs
 * gzip-compressed beside them (decompressed once into t_tmpdir()). As llama.cpp's
 * test-tokenizer-0 does, every input is encoded with add_special = 0 and parse_special = 0 and
 * must give exactly the expected ids. One T_RUN per vocabulary and set; a vocabulary whose file
 * is not in the test data is skipped with the reason.
 */
#include "core/alloc.h"
#include "core/file.h"
#include "core/status.h"
#include "format/gguf.h"
#include "test.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

/* ---- vocabulary cache --------------------------------------------------------------------- */

typedef struct cached {
    char name[64];
    lm_tokenizer *tk;
    int failed;
} cached;
static cached g_cache[32];
static int g_ncache;

static lm_tokenizer *load_vocab(const char *name, char *why, size_t why_len) {
    for (int i = 0; i < g_ncache; i++)
        if (strcmp(g_cache[i].name, name) == 0) {
            if (g_cache[i].failed) snprintf(why, why_len, "%s failed to load earlier", name);
            return g_cache[i].tk;
        }
    cached *c = &g_cache[g_ncache++];
    snprintf(c->name, sizeof c->name, "%s", name);
    const char *p = t_vocab_gguf(name);
    if (!p) {
        snprintf(why, why_len, "no GGUF for '%s' in the test data", name);
        c->failed = 1;
        return NULL;
    }
    lm_err e;
    lm_err_clear(&e);
    lm_gguf *g = NULL;
    if (lm_gguf_open_file(p, NULL, &g, &e) == LM_OK) lm_tokenizer_from_gguf(g, &c->tk, &e);
    lm_gguf_close(g);
    if (!c->tk) {
        snprintf(why, why_len, "%s", e.msg);
        c->failed = 1;
    }
    return c->tk;
}

/* ---- test files --------------------------------------------------------------------------- */

typedef struct vecs {
    char *inp, *out; /* file contents */
    char **text;     /* [n] pointers into inp (NUL-terminated in place) */
    size_t *text_len;
    char **expect; /* [n] lines of out */
    size_t n, n_out;
} vecs;

static char *read_file(const char *path, size_t *len) {
    char *buf = NULL;
    lm_err e;
    lm_err_clear(&e);
    if (lm_file_read_all(path, 1 << 24, &buf, len, &e) != LM_OK) return NULL;
    return buf;
}

static int load_vecs(const char *set, const char *name, vecs *v) {
    char p[512];
    size_t il, ol;
    memset(v, 0, sizeof *v);
    snprintf(p, sizeof p, "%s", t_shared_path(set));
    size_t l = strlen(p);
    snprintf(p + l, sizeof p - l, "ggml-vocab-%s.gguf.inp", name);
    v->inp = read_file(p, &il);
    snprintf(p + l, sizeof p - l, "ggml-vocab-%s.gguf.out", name);
    v->out = read_file(p, &ol);
    if (!v->inp || !v->out) return 0;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t cap = 16;
    v->text = malloc(cap * sizeof *v->text);
    v->text_len = malloc(cap * sizeof *v->text_len);
    char *s = v->inp, *end = v->inp + il;
    for (;;) {
        char *m = memmem(s, (size_t)(end - s), sep, sizeof sep - 1);
        if (!m) break;
        if (v->n == cap) {
            cap *= 2;
            v->text = realloc(v->text, cap * sizeof *v->text);
            v->text_len = realloc(v->text_len, cap * sizeof *v->text_len);
        }
        *m = 0;
        v->text[v->n] = s;
        v->text_len[v->n++] = (size_t)(m - s);
        s = m + sizeof sep - 1;
    }
    /* the v0.4.0 gemma-4 file lacks the separator after its last test */
    if (s < end) {
        if (v->n == cap) {
            cap++;
            v->text = realloc(v->text, cap * sizeof *v->text);
            v->text_len = realloc(v->text_len, cap * sizeof *v->text_len);
        }
        v->text[v->n] = s;
        v->text_len[v->n++] = (size_t)(end - s);
    }
    v->expect = malloc((v->n + 1) * sizeof *v->expect);
    char *o = v->out;
    while (*o && v->n_out < v->n + 1) {
        char *nl = strchr(o, '\n');
        if (nl) *nl = 0;
        v->expect[v->n_out++] = o;
        if (!nl) break;
        o = nl + 1;
    }
    return 1;
}

static void free_vecs(vecs *v) {
    lm_free(v->inp);
    lm_free(v->out);
    free(v->text);
    free(v->text_len);
    free(v->expect);
}

static size_t parse_ids(const char *line, int32_t *ids, size_t cap) {
    size_t n = 0;
    const char *p = line;
    for (;;) {
        while (*p == ' ')
            p++;
        if (!*p) break;
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) break;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
        p = e;
    }
    return n;
}

static int g_total_pass, g_total;

static void run_vectors(const char *set, const char *name, const char *gguf_name) {
    char why[600];
    vecs v;
    if (!load_vecs(set, name, &v)) {
        free_vecs(&v);
        T_SKIP("no .inp/.out for %s in %s", name, set);
    }
    lm_tokenizer *tk = load_vocab(gguf_name, why, sizeof why);
    if (!tk) {
        free_vecs(&v);
        T_SKIP("%s", why);
    }
    T_CHECK(v.n == v.n_out, "%s: %zu inputs, %zu outputs", name, v.n, v.n_out);
    size_t pass = 0, shown = 0;
    static int32_t want[65536];
    for (size_t i = 0; i < v.n && i < v.n_out; i++) {
        lm_err e;
        lm_err_clear(&e);
        int32_t *ids = NULL;
        size_t n = 0;
        lm_status st = lm_tokenizer_encode(tk, v.text[i], v.text_len[i], 0, 0, &ids, &n, &e);
        size_t nw = parse_ids(v.expect[i], want, 65536);
        int ok = st == LM_OK && n == nw && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        if (ok) {
            pass++;
        } else if (shown++ < 3) {
            fprintf(stderr, "  %s[%zu] '%.60s'\n    want:%s\n    got: ", name, i, v.text[i],
                    v.expect[i]);
            for (size_t k = 0; k < n && k < 40; k++)
                fprintf(stderr, " %d", (int)ids[k]);
            fprintf(stderr, "%s\n", st ? e.msg : "");
        }
        lm_free(ids);
    }
    printf("# vectors %-22s %-18s %3zu/%zu\n",
           strstr(set, "v0.4.0") ? "llama.cpp-v0.4.0" : "c392e50", name, pass, v.n);
    g_total_pass += (int)pass;
    g_total += (int)v.n;
    T_CHECK(pass == v.n, "%s: %zu of %zu vectors differ", name, v.n - pass, v.n);
    free_vecs(&v);
}

#define OLD ""
#define NEW "llama.cpp-v0.4.0/"
#define VEC(fn, set, name, gguf)                                                                   \
    static void fn(void) {                                                                         \
        char s[64];                                                                                \
        snprintf(s, sizeof s, "testdata/vocab/%s", set);                                           \
        run_vectors(s, name, gguf);                                                                \
    }
VEC(vec_gpt2, OLD, "gpt-2", "gpt-2")
VEC(vec_llama_bpe, OLD, "llama-bpe", "llama-bpe")
VEC(vec_qwen2, OLD, "qwen2", "qwen2")
VEC(vec_deepseek_r1_qwen, OLD, "deepseek-r1-qwen", "qwen2")
VEC(vec_llama_spm, OLD, "llama-spm", "llama-spm")
VEC(vec_phi3, OLD, "phi-3", "phi-3")
VEC(vec_bert_bge, OLD, "bert-bge", "bert-bge")
VEC(vec_falcon, OLD, "falcon", "falcon")
VEC(vec_mpt, OLD, "mpt", "mpt")
VEC(vec_starcoder, OLD, "starcoder", "starcoder")
VEC(vec_refact, OLD, "refact", "refact")
VEC(vec_deepseek_llm, OLD, "deepseek-llm", "deepseek-llm")
VEC(vec_deepseek_coder, OLD, "deepseek-coder", "deepseek-coder")
VEC(vec_command_r, OLD, "command-r", "command-r")
VEC(vec_chameleon, OLD, "chameleon", "chameleon")
VEC(vec_roberta_bpe, OLD, "roberta-bpe", "roberta-bpe")
VEC(vec4_gpt2, NEW, "gpt-2", "gpt-2")
VEC(vec4_llama_bpe, NEW, "llama-bpe", "llama-bpe")
VEC(vec4_qwen2, NEW, "qwen2", "qwen2")
VEC(vec4_qwen35, NEW, "qwen35", "qwen35")
VEC(vec4_llama_spm, NEW, "llama-spm", "llama-spm")
VEC(vec4_phi3, NEW, "phi-3", "phi-3")
VEC(vec4_bert_bge, NEW, "bert-bge", "bert-bge")
VEC(vec4_falcon, NEW, "falcon", "falcon")
VEC(vec4_mpt, NEW, "mpt", "mpt")
VEC(vec4_starcoder, NEW, "starcoder", "starcoder")
VEC(vec4_refact, NEW, "refact", "refact")
VEC(vec4_deepseek_llm, NEW, "deepseek-llm", "deepseek-llm")
VEC(vec4_deepseek_coder, NEW, "deepseek-coder", "deepseek-coder")
VEC(vec4_command_r, NEW, "command-r", "command-r")
VEC(vec4_gemma4, NEW, "gemma-4", "gemma-4")

/* ---- round trips ------------------------------------------------------------------------- */

static const char *k_extra[] = {
    "",
    " ",
    "Hello, world!",
    "naïve café — 日本語 🌍🌍 ÅÄÖ",
    "\xff\xfe invalid \xc3 utf8 \xe2\x82",
    "line1\nline2\r\n\ttabbed   spaces    ",
    "<|endoftext|> not special here",
};

/* bytes_lossless: the vocabulary has a token for each of the 256 bytes (starcoder lacks some;
 * deepseek-coder spells some bytes with user-defined tokens that decode as text), so even
 * invalid UTF-8 comes back unchanged. */
static void roundtrip_vocab(const char *name, int bytes_lossless) {
    char why[600];
    lm_tokenizer *tk = load_vocab(name, why, sizeof why);
    if (!tk) {
        fprintf(stderr, "  skip round trip %s: %s\n", name, why);
        return;
    }
    vecs v;
    load_vecs("testdata/vocab/llama.cpp-v0.4.0/", "gpt-2", &v);
    size_t n_in = v.n + sizeof k_extra / sizeof k_extra[0], bad = 0;
    for (size_t i = 0; i < n_in; i++) {
        const char *t = i < v.n ? v.text[i] : k_extra[i - v.n];
        if (!bytes_lossless && strchr(t, '\xff')) continue;
        size_t tl = i < v.n ? v.text_len[i] : strlen(t);
        lm_err e;
        lm_err_clear(&e);
        int32_t *ids = NULL;
        size_t n = 0;
        char *out = NULL;
        size_t ol = 0;
        T_CHECK(lm_tokenizer_encode(tk, t, tl, 1, 0, &ids, &n, &e) == LM_OK, "%s", e.msg);
        for (size_t k = 0; k < n; k++)
            T_CHECK(ids[k] >= 0 && (size_t)ids[k] < lm_tokenizer_n_vocab(tk), "id %d", ids[k]);
        T_CHECK(lm_tokenizer_decode(tk, ids, n, LM_DETOK_NO_CLEAN | LM_DETOK_REMOVE_BOS_EOS, &out,
                                    &ol, &e) == LM_OK,
                "%s", e.msg);
        if (!(ol == tl && memcmp(out, t, tl) == 0) && bad++ < 3)
            fprintf(stderr, "  %s: '%s' -> '%s'\n", name, t, out ? out : "(null)");
        lm_free(ids);
        lm_free(out);
    }
    T_CHECK(bad == 0, "%s: %zu of %zu texts do not round-trip", name, bad, n_in);
    free_vecs(&v);
}

static void test_roundtrip(void) {
    static const char *names[] = {"gpt-2",   "llama-bpe", "qwen2",         "llama-spm",
                                  "gemma-4", "starcoder", "deepseek-coder"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        roundtrip_vocab(names[i], i < 5);
}

/* ---- streaming detokenizer ---------------------------------------------------------------- */

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = (unsigned char)s[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static void test_stream(void) {
    char why[600];
    lm_tokenizer *tk = load_vocab("llama-spm", why, sizeof why);
    if (!tk) T_SKIP("%s", why);
    /* SPM byte fallback: characters missing from the vocabulary arrive one byte per token */
    const char *text = "héllo 🌍🌍 мир 𝄞 ok";
    lm_err e;
    lm_err_clear(&e);
    int32_t *ids;
    size_t n;
    T_REQUIRE(lm_tokenizer_encode(tk, text, strlen(text), 0, 0, &ids, &n, &e) == LM_OK, "%s",
              e.msg);
    int n_byte = 0;
    for (size_t i = 0; i < n; i++)
        n_byte += lm_tokenizer_token_type(tk, ids[i]) == LM_TOKEN_BYTE;
    T_CHECK(n_byte >= 4, "expected byte-fallback tokens, got %d", n_byte);
    lm_detok_stream *st;
    T_REQUIRE(lm_detok_stream_new(tk, 0, &st, &e) == LM_OK, "%s", e.msg);
    char acc[256] = {0};
    size_t al = 0, empty = 0;
    for (size_t i = 0; i < n; i++) {
        const char *o;
        size_t ol;
        T_REQUIRE(lm_detok_stream_feed(st, ids[i], &o, &ol, &e) == LM_OK, "%s", e.msg);
        T_CHECK(valid_utf8(o, ol), "chunk %zu not valid UTF-8", i);
        if (ol == 0) empty++;
        T_REQUIRE(al + ol < sizeof acc, "overflow");
        memcpy(acc + al, o, ol);
        al += ol;
    }
    const char *o;
    size_t ol;
    T_CHECK(lm_detok_stream_flush(st, &o, &ol, &e) == LM_OK && ol == 0, "flush gave %zu", ol);
    T_CHECK(al == strlen(text) && memcmp(acc, text, al) == 0, "stream gave '%s'", acc);
    T_CHECK(empty >= 3, "incomplete characters were not held back (%zu empty chunks)", empty);
    lm_detok_stream_free(st);
    lm_free(ids);

    /* invalid and truncated sequences */
    int32_t b_e2 = lm_tokenizer_find(tk, "<0xE2>", 6), b_82 = lm_tokenizer_find(tk, "<0x82>", 6);
    int32_t b_ff = lm_tokenizer_find(tk, "<0xFF>", 6), b_ac = lm_tokenizer_find(tk, "<0xAC>", 6);
    int32_t a = lm_tokenizer_find(tk, "a", 1);
    T_REQUIRE(b_e2 >= 0 && b_82 >= 0 && b_ff >= 0 && b_ac >= 0 && a >= 0, "byte tokens");
    T_REQUIRE(lm_detok_stream_new(tk, LM_DETOK_KEEP_SPACE, &st, &e) == LM_OK, "%s", e.msg);
    lm_detok_stream_feed(st, b_e2, &o, &ol, &e);
    T_CHECK(ol == 0, "E2 alone emitted %zu bytes", ol);
    lm_detok_stream_feed(st, b_82, &o, &ol, &e);
    T_CHECK(ol == 0, "E2 82 emitted %zu bytes", ol);
    lm_detok_stream_feed(st, b_ac, &o, &ol, &e);
    T_CHECK(ol == 3 && memcmp(o, "\xE2\x82\xAC", 3) == 0, "euro sign not completed");
    lm_detok_stream_feed(st, b_ff, &o, &ol, &e);
    T_CHECK(ol == 3 && memcmp(o, "\xEF\xBF\xBD", 3) == 0, "0xFF must become U+FFFD at once");
    lm_detok_stream_feed(st, b_e2, &o, &ol, &e);
    lm_detok_stream_feed(st, a, &o, &ol, &e);
    T_CHECK(ol == 4 && memcmp(o,
                              "\xEF\xBF\xBD"
                              "a",
                              4) == 0,
            "E2 'a' -> U+FFFD a (%zu)", ol);
    lm_detok_stream_feed(st, b_e2, &o, &ol, &e);
    lm_detok_stream_feed(st, b_82, &o, &ol, &e);
    T_CHECK(ol == 0, "held");
    T_CHECK(lm_detok_stream_flush(st, &o, &ol, &e) == LM_OK && ol == 3 &&
                memcmp(o, "\xEF\xBF\xBD", 3) == 0,
            "flush of incomplete tail must give one U+FFFD (%zu)", ol);
    T_CHECK(lm_detok_stream_feed(st, -1, &o, &ol, &e) == LM_ERR_INVALID_ARG, "bad id accepted");
    lm_detok_stream_free(st);

    /* byte-level BPE: an emoji split over two tokens */
    tk = load_vocab("gpt-2", why, sizeof why);
    if (!tk) return;
    const char *emo = "🌍 ok";
    T_REQUIRE(lm_tokenizer_encode(tk, emo, strlen(emo), 0, 0, &ids, &n, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_detok_stream_new(tk, 0, &st, &e) == LM_OK, "%s", e.msg);
    al = 0;
    for (size_t i = 0; i < n; i++) {
        T_REQUIRE(lm_detok_stream_feed(st, ids[i], &o, &ol, &e) == LM_OK, "%s", e.msg);
        T_CHECK(valid_utf8(o, ol), "chunk not valid");
        memcpy(acc + al, o, ol);
        al += ol;
    }
    lm_detok_stream_flush(st, &o, &ol, &e);
    T_CHECK(al == strlen(emo) && memcmp(acc, emo, al) == 0, "gpt-2 stream");
    lm_detok_stream_free(st);
    lm_free(ids);
}

/* ---- API details on real vocabularies ----------------------------------------------------- */

static void test_api(void) {
    char why[600];
    lm_err e;
    lm_err_clear(&e);
    lm_tokenizer *tk = load_vocab("llama-bpe", why, sizeof why);
    if (!tk) T_SKIP("%s", why);
    T_CHECK(lm_tokenizer_n_vocab(tk) == 128256, "n_vocab");
    T_CHECK(lm_tokenizer_special(tk, LM_TOK_BOS) == 128000, "bos");
    T_CHECK(lm_tokenizer_special(tk, LM_TOK_EOS) == 128001, "eos");
    T_CHECK(lm_tokenizer_token_type(tk, 128000) == LM_TOKEN_CONTROL, "type");
    T_CHECK(lm_tokenizer_token_type(tk, -5) == LM_TOKEN_UNDEFINED, "type of bad id");
    T_CHECK(lm_tokenizer_is_eog(tk, 128001), "eog");
    const char *s = "<|begin_of_text|>Hi<|eot_id|>";
    int32_t *ids;
    size_t n;
    T_REQUIRE(lm_tokenizer_encode(tk, s, strlen(s), 1, 1, &ids, &n, &e) == LM_OK, "%s", e.msg);
    T_CHECK(n == 4 && ids[0] == 128000 && ids[1] == 128000 && ids[3] == 128009,
            "parse_special: n=%zu", n);
    lm_free(ids);
    T_REQUIRE(lm_tokenizer_encode(tk, s, strlen(s), 0, 0, &ids, &n, &e) == LM_OK, "%s", e.msg);
    int has_special = 0;
    for (size_t i = 0; i < n; i++)
        has_special |= ids[i] >= 128000;
    T_CHECK(n > 4 && !has_special, "special text must stay text without parse_special");
    char *out;
    size_t ol;
    T_CHECK(lm_tokenizer_decode(tk, ids, n, 0, &out, &ol, &e) == LM_OK && ol == strlen(s) &&
                memcmp(out, s, ol) == 0,
            "decode");
    lm_free(out);
    lm_free(ids);
    int32_t two[2] = {128000, 9906};
    T_CHECK(lm_tokenizer_decode(tk, two, 2, 0, &out, &ol, &e) == LM_OK && strcmp(out, "Hello") == 0,
            "control token rendered by default: '%s'", out);
    lm_free(out);
    T_CHECK(lm_tokenizer_decode(tk, two, 2, LM_DETOK_RENDER_SPECIAL, &out, &ol, &e) == LM_OK &&
                strcmp(out, "<|begin_of_text|>Hello") == 0,
            "render special: '%s'", out);
    lm_free(out);
    int32_t bad[1] = {128256};
    lm_err_clear(&e);
    T_CHECK(lm_tokenizer_decode(tk, bad, 1, 0, &out, &ol, &e) == LM_ERR_INVALID_ARG &&
                strstr(e.msg, "128256"),
            "out-of-range id: %s", e.msg);
    const char *txt;
    size_t tl;
    T_CHECK(lm_tokenizer_token_text(tk, 9906, &txt, &tl) && tl == 5 && !memcmp(txt, "Hello", 5),
            "token text");
    T_CHECK(!lm_tokenizer_token_text(tk, 1 << 30, &txt, &tl), "token text of bad id");

    /* SPM: BOS added, dummy prefix removed on decode */
    tk = load_vocab("llama-spm", why, sizeof why);
    if (!tk) return;
    T_REQUIRE(lm_tokenizer_encode(tk, "Hello world", 11, 1, 0, &ids, &n, &e) == LM_OK, "%s", e.msg);
    T_CHECK(n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186, "spm add_special");
    T_CHECK(lm_tokenizer_decode(tk, ids, n, 0, &out, &ol, &e) == LM_OK &&
                strcmp(out, "Hello world") == 0,
            "spm decode '%s'", out);
    lm_free(out);
    lm_free(ids);
    /* WPM: [CLS] .. [SEP] */
    tk = load_vocab("bert-bge", why, sizeof why);
    if (!tk) return;
    T_REQUIRE(lm_tokenizer_encode(tk, "Hello", 5, 1, 0, &ids, &n, &e) == LM_OK, "%s", e.msg);
    T_CHECK(n == 3 && ids[0] == 101 && ids[2] == 102, "bert add_special n=%zu", n);
    lm_free(ids);
}

/* ---- malformed vocabularies --------------------------------------------------------------- */

/* A tiny byte-level BPE vocabulary: the 256 byte tokens, "he", "ll", "hell", "hello" and
 * merges h e / l l / he ll / hell o. */
typedef struct tiny {
    char *tok[300];
    size_t n;
    const char *merges[8];
    size_t n_merges;
    int32_t types[300];
    float scores[300];
} tiny;

static void tiny_init(tiny *t) {
    memset(t, 0, sizeof *t);
    for (unsigned b = 0; b < 256; b++) {
        /* GPT-2 alphabet, as vocab.c computes it (checked independently below) */
        unsigned cp;
        if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))
            cp = b;
        else {
            unsigned k = 0;
            for (unsigned x = 0; x < b; x++)
                if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) k++;
            cp = 256 + k;
        }
        char *s = malloc(4);
        if (cp < 0x80) {
            s[0] = (char)cp;
            s[1] = 0;
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            s[2] = 0;
        }
        t->tok[t->n] = s;
        t->types[t->n++] = LM_TOKEN_NORMAL;
    }
    static const char *extra[] = {"he", "ll", "hell", "hello", "<|end|>"};
    for (int i = 0; i < 5; i++) {
        t->tok[t->n] = strdup(extra[i]);
        t->types[t->n++] = i == 4 ? LM_TOKEN_CONTROL : LM_TOKEN_NORMAL;
    }
    t->merges[0] = "h e";
    t->merges[1] = "l l";
    t->merges[2] = "he ll";
    t->merges[3] = "hell o";
    t->n_merges = 4;
}

static void tiny_free(tiny *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->tok[i]);
}

static void tiny_spec(tiny *t, lm_vocab_spec *s) {
    lm_vocab_spec_init(s, LM_TOK_MODEL_BPE);
    lm_err e;
    lm_err_clear(&e);
    lm_vocab_spec_set_pre(s, "gpt-2", &e);
    s->n_tokens = t->n;
    s->tokens = (const char *const *)t->tok;
    s->types = t->types;
    s->n_merges = t->n_merges;
    s->merges = t->merges;
    s->special[LM_TOK_BOS] = s->special[LM_TOK_EOS] = (int32_t)t->n - 1;
}

static void expect_build_error(lm_vocab_spec *s, lm_status want, const char *needle,
                               const char *what) {
    lm_err e;
    lm_err_clear(&e);
    lm_tokenizer *tk = NULL;
    lm_status st = lm_tokenizer_build(s, &tk, &e);
    T_CHECK(st == want && tk == NULL && strstr(e.msg, needle), "%s: status %d msg '%s'", what,
            (int)st, e.msg);
    lm_tokenizer_free(tk);
}

static void test_tiny_bpe(void) {
    tiny t;
    tiny_init(&t);
    lm_vocab_spec s;
    tiny_spec(&t, &s);
    lm_err e;
    lm_err_clear(&e);
    lm_tokenizer *tk;
    T_REQUIRE(lm_tokenizer_build(&s, &tk, &e) == LM_OK, "%s", e.msg);
    int32_t *ids;
    size_t n;
    T_REQUIRE(lm_tokenizer_encode(tk, "hello hell", 10, 0, 0, &ids, &n, &e) == LM_OK, "%s", e.msg);
    /* "hello" " hell" -> [hello] [Ġ][hell] */
    /* "hello" " hell" -> [hello] [\u0120 = byte 0x20, id 32] [hell] */
    T_CHECK(n == 3 && ids[0] == 259 && ids[1] == 32 && ids[2] == 258, "tiny encode n=%zu", n);
    lm_free(ids);
    lm_tokenizer_free(tk);

    /* every malformed-vocabulary rule gives a clear error */
    tiny_spec(&t, &s);
    const char *bad_merge[] = {"h e", "x zz"};
    s.merges = bad_merge;
    s.n_merges = 2;
    expect_build_error(&s, LM_ERR_FORMAT, "merge 1 'x zz'", "merge with unknown token");
    const char *nosp[] = {"he"};
    s.merges = nosp;
    s.n_merges = 1;
    expect_build_error(&s, LM_ERR_FORMAT, "is not 'a b'", "merge without space");

    tiny_spec(&t, &s);
    s.special[LM_TOK_EOS] = 100000;
    expect_build_error(&s, LM_ERR_FORMAT, "eos token id 100000 out of range", "special id");
    tiny_spec(&t, &s);
    s.special[LM_TOK_UNK] = -7;
    expect_build_error(&s, LM_ERR_FORMAT, "unk token id -7", "negative special id");

    tiny_spec(&t, &s);
    s.n_tokens = 0;
    expect_build_error(&s, LM_ERR_FORMAT, "empty vocabulary", "empty vocab");

    tiny_spec(&t, &s);
    t.types[3] = 9;
    expect_build_error(&s, LM_ERR_FORMAT, "token 3 has type 9", "bad type value");
    t.types[3] = LM_TOKEN_NORMAL;

    tiny_spec(&t, &s);
    char *keep = t.tok[260];
    t.tok[260] = strdup("<0xZZ>");
    t.types[260] = LM_TOKEN_BYTE;
    expect_build_error(&s, LM_ERR_FORMAT, "byte token 260 has text '<0xZZ>'", "byte token");
    free(t.tok[260]);
    t.tok[260] = keep;
    t.types[260] = LM_TOKEN_CONTROL;

    tiny_spec(&t, &s);
    keep = t.tok[257];
    t.tok[257] = strdup("he");
    expect_build_error(&s, LM_ERR_FORMAT, "duplicate token text 'he'", "duplicate");
    free(t.tok[257]);
    t.tok[257] = keep;

    tiny_spec(&t, &s);
    lm_vocab_spec_init(&s, LM_TOK_MODEL_BPE);
    lm_err_clear(&e);
    T_CHECK(lm_vocab_spec_set_pre(&s, "no-such-pre", &e) == LM_ERR_UNSUPPORTED &&
                strstr(e.msg, "no-such-pre"),
            "unknown pre: %s", e.msg);
    tiny_spec(&t, &s);
    const char *bad_re[] = {"(unclosed"};
    s.regex = bad_re;
    s.n_regex = 1;
    expect_build_error(&s, LM_ERR_FORMAT, "does not compile", "bad regex");
    tiny_free(&t);
}

/* GGUF-level rules, with files made by the GGUF writer. */
typedef struct gopts {
    const char *model;
    int types_i8;     /* token_type written as int8 */
    int types_short;  /* token_type one entry short */
    int scores_short; /* scores one entry short */
    int64_t bos;      /* written when != -2 */
    int no_tokens;
} gopts;

/* A minimal GGUF v3 writer for these cases (metadata only, no tensors), so the malformed-file
 * tests do not depend on the library's writer. Layout: "GGUF" u32 version, u64 n_tensors,
 * u64 n_kv, then per kv: u64 key length, key, u32 type, value (strings: u64 length + bytes;
 * arrays: u32 element type, u64 count, elements). */
typedef struct gbuf {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
} gbuf;

static void gb_put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(gbuf *b, uint32_t v) {
    gb_put(b, &v, 4);
}
static void gb_u64(gbuf *b, uint64_t v) {
    gb_put(b, &v, 8);
}
static void gb_str(gbuf *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_put(b, s, strlen(s));
}
static void gb_key(gbuf *b, const char *k, uint32_t type) {
    gb_str(b, k);
    gb_u32(b, type);
    b->n_kv++;
}
static void gb_arr_str(gbuf *b, const char *k, char *const *s, size_t n) {
    gb_key(b, k, LM_GGUF_TYPE_ARRAY);
    gb_u32(b, LM_GGUF_TYPE_STRING);
    gb_u64(b, n);
    for (size_t i = 0; i < n; i++)
        gb_str(b, s[i]);
}
static void gb_arr(gbuf *b, const char *k, uint32_t et, const void *d, size_t esz, size_t n) {
    gb_key(b, k, LM_GGUF_TYPE_ARRAY);
    gb_u32(b, et);
    gb_u64(b, n);
    gb_put(b, d, esz * n);
}

static lm_status gguf_vocab(const gopts *o, lm_err *e) {
    tiny t;
    tiny_init(&t);
    gbuf b = {0};
    gb_put(&b, "GGUF", 4);
    gb_u32(&b, 3);
    gb_u64(&b, 0);
    gb_u64(&b, 0); /* n_kv, patched below */
    gb_key(&b, "tokenizer.ggml.model", LM_GGUF_TYPE_STRING);
    gb_str(&b, o->model);
    gb_key(&b, "tokenizer.ggml.pre", LM_GGUF_TYPE_STRING);
    gb_str(&b, "gpt-2");
    gb_arr_str(&b, "tokenizer.ggml.tokens", t.tok, o->no_tokens ? 0 : t.n);
    if (o->types_i8) {
        int8_t ty[300];
        for (size_t i = 0; i < t.n; i++)
            ty[i] = (int8_t)t.types[i];
        gb_arr(&b, "tokenizer.ggml.token_type", LM_GGUF_TYPE_INT8, ty, 1, t.n);
    } else {
        gb_arr(&b, "tokenizer.ggml.token_type", LM_GGUF_TYPE_INT32, t.types, 4,
               t.n - (o->types_short ? 1 : 0));
    }
    gb_arr(&b, "tokenizer.ggml.scores", LM_GGUF_TYPE_FLOAT32, t.scores, 4,
           t.n - (o->scores_short ? 1 : 0));
    gb_arr_str(&b, "tokenizer.ggml.merges", (char *const *)t.merges, t.n_merges);
    if (o->bos != -2) {
        gb_key(&b, "tokenizer.ggml.bos_token_id", LM_GGUF_TYPE_INT64);
        int64_t v = o->bos;
        gb_put(&b, &v, 8);
    }
    memcpy(b.p + 16, &b.n_kv, 8);
    lm_gguf *g = NULL;
    lm_tokenizer *tk = NULL;
    lm_status st = lm_gguf_open_buffer(b.p, b.n, NULL, &g, e);
    if (!st) st = lm_tokenizer_from_gguf(g, &tk, e);
    lm_tokenizer_free(tk);
    lm_gguf_close(g);
    free(b.p);
    tiny_free(&t);
    return st;
}

/* Every pre-tokenizer name compiles and tokenizes losslessly (tiny byte-level vocabulary). */
static void test_all_pretokenizers(void) {
    static const char *names[] = {
        "default",   "llama3",     "llama-bpe",   "dbrx",       "deepseek-llm", "deepseek-coder",
        "falcon",    "starcoder",  "refact",      "command-r",  "smollm",       "gpt-2",
        "mpt",       "olmo",       "qwen2",       "stablelm2",  "qwen35",       "poro-chat",
        "bloom",     "viking",     "chatglm-bpe", "seed-coder", "bailingmoe",   "grok-2",
        "gpt-4o",    "llama4",     "tekken",      "tiny_aya",   "superbpe",     "deepseek-v3",
        "chameleon", "exaone-moe", "minicpm5",    "laguna",     "ufakzeka"};
    const char *text = "Hello, y'all! 1234567 \xe6\x88\x91\xe6\x83\xb3 caf\xc3\xa9 \t\n  "
                       "IMGIMGABZ <sentinel:12> I'VE \xff end";
    tiny t;
    tiny_init(&t);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        lm_vocab_spec s;
        tiny_spec(&t, &s);
        lm_err e;
        lm_err_clear(&e);
        T_CHECK(lm_vocab_spec_set_pre(&s, names[i], &e) == LM_OK, "%s: %s", names[i], e.msg);
        s.add_bos = 0;
        lm_tokenizer *tk = NULL;
        if (lm_tokenizer_build(&s, &tk, &e) != LM_OK) {
            T_CHECK(0, "%s: %s", names[i], e.msg);
            continue;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        char *out = NULL;
        size_t ol = 0;
        T_CHECK(lm_tokenizer_encode(tk, text, strlen(text), 0, 0, &ids, &n, &e) == LM_OK, "%s: %s",
                names[i], e.msg);
        T_CHECK(lm_tokenizer_decode(tk, ids, n, LM_DETOK_NO_CLEAN, &out, &ol, &e) == LM_OK &&
                    ol == strlen(text) && memcmp(out, text, ol) == 0,
                "%s: round trip gave '%s'", names[i], out ? out : "");
        lm_free(out);
        lm_free(ids);
        lm_tokenizer_free(tk);
    }
    tiny_free(&t);
}

/* A tiny SentencePiece vocabulary: dummy prefix on (Llama 2) and off (Gemma 3), highest score
 * merges first, <0xNN> byte fallback, a user-defined token split out of plain text. */
static void test_tiny_spm(void) {
    const char *tok[300];
    char bytes[256][8];
    int32_t types[300];
    float scores[300];
    size_t n = 0;
    static const char *base[] = {"<unk>",   "<s>", "</s>",     "\u2581", "H", "i",
                                 "\u2581H", "Hi",  "\u2581Hi", "<turn>", "x", "\u2581\u2581"};
    static const float sc[] = {0, 0, 0, -1, -2, -2, -3, -1, -0.5f, 0, -2, -4};
    for (int i = 0; i < 12; i++) {
        tok[n] = base[i];
        types[n] = i == 0   ? LM_TOKEN_UNKNOWN
                   : i < 3  ? LM_TOKEN_CONTROL
                   : i == 9 ? LM_TOKEN_USER_DEFINED
                            : LM_TOKEN_NORMAL;
        scores[n++] = sc[i];
    }
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[n] = bytes[b];
        types[n] = LM_TOKEN_BYTE;
        scores[n++] = 0;
    }
    lm_vocab_spec s;
    lm_vocab_spec_init(&s, LM_TOK_MODEL_SPM);
    s.n_tokens = n;
    s.tokens = tok;
    s.types = types;
    s.scores = scores;
    lm_err e;
    lm_err_clear(&e);
    lm_tokenizer *tk;
    T_REQUIRE(lm_tokenizer_build(&s, &tk, &e) == LM_OK, "%s", e.msg);
    int32_t *ids;
    size_t k;
    /* "Hi<turn>Hi é": ▁Hi, <turn> (user-defined: split without parse_special), ▁Hi (dummy
     * prefix again after a special), ▁, then é as two byte tokens */
    const char *t = "Hi<turn>Hi \xC3\xA9";
    T_REQUIRE(lm_tokenizer_encode(tk, t, strlen(t), 1, 0, &ids, &k, &e) == LM_OK, "%s", e.msg);
    int32_t want[] = {1, 8, 9, 8, 3, 12 + 0xC3, 12 + 0xA9};
    T_CHECK(k == 7 && memcmp(ids, want, sizeof want) == 0, "spm: n=%zu", k);
    char *out;
    size_t ol;
    /* the dummy space re-added after the special token stays (as Hugging Face decodes it) */
    const char *back = "Hi<turn> Hi \xC3\xA9";
    T_CHECK(lm_tokenizer_decode(tk, ids, k, 0, &out, &ol, &e) == LM_OK && ol == strlen(back) &&
                memcmp(out, back, ol) == 0,
            "spm decode '%s'", out);
    lm_free(out);
    lm_free(ids);
    lm_tokenizer_free(tk);
    /* Gemma 3 style: no dummy prefix */
    s.add_space_prefix = 0;
    T_REQUIRE(lm_tokenizer_build(&s, &tk, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_tokenizer_encode(tk, "Hi  Hi", 6, 0, 0, &ids, &k, &e) == LM_OK, "%s", e.msg);
    int32_t want2[] = {7, 3, 8};
    /* both "Hi" merge first (-1), then "\u2581Hi" (-0.5) beats the stale "\u2581\u2581" */
    T_CHECK(k == 3 && memcmp(ids, want2, sizeof want2) == 0, "no prefix: n=%zu %d %d", k,
            k ? ids[0] : -1, k > 1 ? ids[1] : -1);
    lm_free(ids);
    lm_tokenizer_free(tk);
}

/* WordPiece built from a spec: max_input_chars_per_word 0 (the GGUF / llama.cpp default) is
 * unlimited; a limit makes a longer word one unk. */
static void test_tiny_wpm(void) {
    static const char *tok[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u2581a", "a", "\u2581!"};
    int32_t types[] = {LM_TOKEN_CONTROL, LM_TOKEN_UNKNOWN, LM_TOKEN_CONTROL, LM_TOKEN_CONTROL,
                       LM_TOKEN_NORMAL,  LM_TOKEN_NORMAL,  LM_TOKEN_NORMAL};
    lm_vocab_spec s;
    lm_vocab_spec_init(&s, LM_TOK_MODEL_WPM);
    T_CHECK(s.max_input_chars_per_word == 0, "default %zu", s.max_input_chars_per_word);
    s.n_tokens = 7;
    s.tokens = tok;
    s.types = types;
    s.special[LM_TOK_PAD] = 0;
    s.special[LM_TOK_UNK] = 1;
    s.special[LM_TOK_BOS] = 2;
    s.special[LM_TOK_SEP] = 3;
    s.special[LM_TOK_MASK] = -1;
    char word[300];
    memset(word, 'A', sizeof word);
    word[3] = '!';
    for (int lim = 0; lim <= 1; lim++) {
        s.max_input_chars_per_word = lim ? 3 : 0;
        lm_err e;
        lm_err_clear(&e);
        lm_tokenizer *tk;
        T_REQUIRE(lm_tokenizer_build(&s, &tk, &e) == LM_OK, "%s", e.msg);
        int32_t *ids;
        size_t k;
        /* "AAA!" + 296 x "A": words "aaa", "!", "aaa...a" (296) */
        T_REQUIRE(lm_tokenizer_encode(tk, word, sizeof word, 0, 0, &ids, &k, &e) == LM_OK, "%s",
                  e.msg);
        size_t want_n = lim ? 5 : 3 + 1 + 296;
        T_CHECK(k == want_n && ids[0] == 4 && ids[1] == 5 && ids[2] == 5 && ids[3] == 6 &&
                    ids[4] == (lim ? 1 : 4),
                "limit %d: n=%zu", lim ? 3 : 0, k);
        lm_free(ids);
        lm_tokenizer_free(tk);
    }
}

static void test_malformed_gguf(void) {
    lm_err e;
    gopts base = {.model = "gpt2", .bos = -2};
    lm_err_clear(&e);
    T_REQUIRE(gguf_vocab(&base, &e) == LM_OK, "well-formed tiny GGUF vocab: %s", e.msg);
    struct {
        gopts o;
        lm_status want;
        const char *needle;
    } cases[] = {
        {{.model = "t5", .bos = -2}, LM_ERR_UNSUPPORTED, "'t5' is not supported"},
        {{.model = "wordsoup", .bos = -2}, LM_ERR_UNSUPPORTED, "'wordsoup' is unknown"},
        {{.model = "gpt2", .types_i8 = 1, .bos = -2}, LM_ERR_FORMAT, "token_type"},
        {{.model = "gpt2", .types_short = 1, .bos = -2}, LM_ERR_FORMAT, "token_type has 260"},
        {{.model = "gpt2", .scores_short = 1, .bos = -2}, LM_ERR_FORMAT, "scores has 260"},
        {{.model = "gpt2", .bos = 5000}, LM_ERR_FORMAT, "bos_token_id = 5000 out of range"},
        {{.model = "gpt2", .bos = -3}, LM_ERR_FORMAT, "bos_token_id = -3"},
        {{.model = "gpt2", .no_tokens = 1, .bos = -2}, LM_ERR_FORMAT, "empty vocabulary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_err_clear(&e);
        lm_status st = gguf_vocab(&cases[i].o, &e);
        T_CHECK(st == cases[i].want && strstr(e.msg, cases[i].needle),
                "case %zu: status %d, msg '%s' (want '%s')", i, (int)st, e.msg, cases[i].needle);
    }
}

/* Allocation failures anywhere in build/encode/decode are reported, never crash or leak. */
static void test_alloc_failures(void) {
    tiny t;
    tiny_init(&t);
    lm_vocab_spec s;
    tiny_spec(&t, &s);
    for (unsigned long k = 1; k < 200; k++) {
        lm_err e;
        lm_err_clear(&e);
        lm_tokenizer *tk = NULL;
        lm_alloc_fail_after(k, 0);
        lm_status st = lm_tokenizer_build(&s, &tk, &e);
        if (st == LM_OK) {
            int32_t *ids = NULL;
            size_t n = 0;
            lm_status s2 = lm_tokenizer_encode(tk, "hello world <|end|>", 19, 1, 1, &ids, &n, &e);
            T_CHECK(s2 == LM_OK || s2 == LM_ERR_NOMEM, "encode status %d", (int)s2);
            char *out = NULL;
            size_t ol;
            if (s2 == LM_OK) {
                s2 = lm_tokenizer_decode(tk, ids, n, 0, &out, &ol, &e);
                T_CHECK(s2 == LM_OK || s2 == LM_ERR_NOMEM, "decode status %d", (int)s2);
            }
            lm_free(out);
            lm_free(ids);
        } else {
            T_CHECK(st == LM_ERR_NOMEM && tk == NULL, "k=%lu: status %d %s", k, (int)st, e.msg);
        }
        lm_alloc_fail_after(0, 0);
        lm_tokenizer_free(tk);
    }
    tiny_free(&t);
}

/* ---- concurrency: one tokenizer, several threads (as llama.cpp's test-tokenizer-0 does) ---- */

typedef struct thr_arg {
    const lm_tokenizer *tk;
    const vecs *v;
    int mismatches;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    int32_t *want = malloc(4096 * sizeof *want);
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < a->v->n; i++) {
            lm_err e;
            lm_err_clear(&e);
            int32_t *ids = NULL;
            size_t n = 0;
            size_t nw = parse_ids(a->v->expect[i], want, 4096);
            if (lm_tokenizer_encode(a->tk, a->v->text[i], a->v->text_len[i], 0, 0, &ids, &n, &e) ||
                n != nw || (n && memcmp(ids, want, n * sizeof *ids)))
                a->mismatches++;
            lm_free(ids);
        }
    free(want);
    return NULL;
}

static void test_threads(void) {
    static const char *names[] = {"qwen2", "llama-spm"};
    for (int k = 0; k < 2; k++) {
        char why[600];
        lm_tokenizer *tk = load_vocab(names[k], why, sizeof why);
        if (!tk) T_SKIP("%s", why);
        vecs v;
        T_REQUIRE(load_vecs("testdata/vocab/llama.cpp-v0.4.0/", names[k], &v), "vectors");
        pthread_t th[4];
        thr_arg args[4];
        for (int i = 0; i < 4; i++) {
            args[i] = (thr_arg){tk, &v, 0};
            T_REQUIRE(pthread_create(&th[i], NULL, thr_main, &args[i]) == 0, "pthread_create");
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            T_CHECK(args[i].mismatches == 0, "%s thread %d: %d mismatches", names[k], i,
                    args[i].mismatches);
        }
        free_vecs(&v);
    }
}

static void test_summary(void) {
    printf("# vectors total: %d/%d\n", g_total_pass, g_total);
    for (int i = 0; i < g_ncache; i++)
        lm_tokenizer_free(g_cache[i].tk);
    g_ncache = 0;
}

int main(void) {
    T_RUN(test_tiny_bpe);
    T_RUN(test_tiny_spm);
    T_RUN(test_tiny_wpm);
    T_RUN(test_malformed_gguf);
    T_RUN(test_all_pretokenizers);
    T_RUN(test_alloc_failures);
    T_RUN(vec_gpt2);
    T_RUN(vec_llama_bpe);
    T_RUN(vec_qwen2);
    T_RUN(vec_deepseek_r1_qwen);
    T_RUN(vec_llama_spm);
    T_RUN(vec_phi3);
    T_RUN(vec_bert_bge);
    T_RUN(vec_falcon);
    T_RUN(vec_mpt);
    T_RUN(vec_starcoder);
    T_RUN(vec_refact);
    T_RUN(vec_deepseek_llm);
    T_RUN(vec_deepseek_coder);
    T_RUN(vec_command_r);
    T_RUN(vec_chameleon);
    T_RUN(vec_roberta_bpe);
    T_RUN(vec4_gpt2);
    T_RUN(vec4_llama_bpe);
    T_RUN(vec4_qwen2);
    T_RUN(vec4_qwen35);
    T_RUN(vec4_llama_spm);
    T_RUN(vec4_phi3);
    T_RUN(vec4_bert_bge);
    T_RUN(vec4_falcon);
    T_RUN(vec4_mpt);
    T_RUN(vec4_starcoder);
    T_RUN(vec4_refact);
    T_RUN(vec4_deepseek_llm);
    T_RUN(vec4_deepseek_coder);
    T_RUN(vec4_command_r);
    T_RUN(vec4_gemma4);
    T_RUN(test_roundtrip);
    T_RUN(test_stream);
    T_RUN(test_api);
    T_RUN(test_threads);
    T_RUN(test_summary);
    return t_finish();
}
