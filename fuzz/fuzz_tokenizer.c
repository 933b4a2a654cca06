/*
 * fuzz_tokenizer.c — libFuzzer target for the tokenizer.
 *
 * Input: byte 0 selects what to do, the rest is the payload.
 *   mode (b0 & 3) 0..2: payload is text; encode it with one of the vocabularies (b0 >> 2 picks
 *        add_special / parse_special), check every id is in range, decode it (whole and
 *        streamed: every streamed chunk must be valid UTF-8) — nothing may crash or leak.
 *   mode 3: payload is a GGUF file; open it and build a tokenizer from its tokenizer.* keys
 *        (hostile vocabularies: bad types, lengths, ids, merges), then encode a fixed text.
 * Vocabularies: the GGUF named by $LM_FUZZ_VOCAB (plain or .gz, e.g.
 * ../shared/testdata/vocab/ggml-vocab-gpt-2.gguf.gz) when set, plus two built in code (a tiny
 * byte-level BPE with a control token, and a tiny SPM with byte fallback).
 */
#include "core/alloc.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lm_tokenizer *g_tk[3];

static char *gpt2_char(unsigned b) {
    unsigned cp;
    int pr = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (pr) {
        cp = b;
    } else {
        unsigned k = 0;
        for (unsigned x = 0; x < b; x++)
            if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) k++;
        cp = 256 + k;
    }
    char *s = calloc(1, 4);
    if (cp < 0x80) {
        s[0] = (char)cp;
    } else {
        s[0] = (char)(0xC0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3F));
    }
    return s;
}

static void build_tiny(void) {
    char *tok[300];
    int32_t types[300];
    float scores[300];
    size_t n = 0;
    lm_err e;
    /* byte-level BPE */
    for (unsigned b = 0; b < 256; b++)
        types[n] = LM_TOKEN_NORMAL, tok[n++] = gpt2_char(b);
    static const char *extra[] = {"he", "ll", "hell", "hello", "\xC4\xA0w", "<|end|>", "[U]"};
    for (int i = 0; i < 7; i++) {
        tok[n] = strdup(extra[i]);
        types[n++] = i == 5 ? LM_TOKEN_CONTROL : i == 6 ? LM_TOKEN_USER_DEFINED : LM_TOKEN_NORMAL;
    }
    static const char *merges[] = {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w"};
    lm_vocab_spec s;
    lm_vocab_spec_init(&s, LM_TOK_MODEL_BPE);
    lm_err_clear(&e);
    lm_vocab_spec_set_pre(&s, "llama-bpe", &e);
    s.n_tokens = n;
    s.tokens = (const char *const *)tok;
    s.types = types;
    s.merges = merges;
    s.n_merges = 5;
    s.special[LM_TOK_BOS] = s.special[LM_TOK_EOS] = (int32_t)n - 2;
    if (lm_tokenizer_build(&s, &g_tk[1], &e)) fprintf(stderr, "tiny bpe: %s\n", e.msg);
    for (size_t i = 0; i < n; i++)
        free(tok[i]);

    /* SPM with byte fallback */
    n = 0;
    static const char *spm[] = {"<unk>", "<s>",     "</s>", "\xE2\x96\x81", "a",
                                "b",     "\u2581a", "ab",   "\u2581ab",     "\xC3\xA9"};
    for (int i = 0; i < 10; i++) {
        tok[n] = strdup(spm[i]);
        types[n] = i == 0 ? LM_TOKEN_UNKNOWN : i < 3 ? LM_TOKEN_CONTROL : LM_TOKEN_NORMAL;
        scores[n++] = (float)-i;
    }
    for (unsigned b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        tok[n] = strdup(buf);
        types[n] = LM_TOKEN_BYTE;
        scores[n++] = 0;
    }
    lm_vocab_spec_init(&s, LM_TOK_MODEL_SPM);
    s.n_tokens = n;
    s.tokens = (const char *const *)tok;
    s.types = types;
    s.scores = scores;
    lm_err_clear(&e);
    if (lm_tokenizer_build(&s, &g_tk[2], &e)) fprintf(stderr, "tiny spm: %s\n", e.msg);
    for (size_t i = 0; i < n; i++)
        free(tok[i]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    build_tiny();
    const char *p = getenv("LM_FUZZ_VOCAB");
    if (!p || !*p) return 0;
    size_t pl = strlen(p), cap = 1 << 20, n = 0;
    char *data = malloc(cap);
    FILE *f;
    int gz = pl > 3 && strcmp(p + pl - 3, ".gz") == 0;
    if (gz) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "gzip -dc '%s'", p);
        f = popen(cmd, "r");
    } else {
        f = fopen(p, "rb");
    }
    if (!f) return 0;
    size_t r;
    while ((r = fread(data + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) data = realloc(data, cap *= 2);
    }
    if (gz)
        pclose(f);
    else
        fclose(f);
    lm_err e;
    lm_err_clear(&e);
    lm_gguf *g = NULL;
    if (lm_gguf_open_buffer(data, n, NULL, &g, &e) == LM_OK)
        lm_tokenizer_from_gguf(g, &g_tk[0], &e);
    if (!g_tk[0]) fprintf(stderr, "LM_FUZZ_VOCAB %s: %s\n", p, e.msg);
    lm_gguf_close(g);
    free(data); /* the tokenizer copied what it keeps */
    return 0;
}

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = (unsigned char)s[i];
        size_t k = c < 0x80                   ? 1
                   : (c >= 0xC2 && c <= 0xDF) ? 2
                   : (c >= 0xE0 && c <= 0xEF) ? 3
                   : (c >= 0xF0 && c <= 0xF4) ? 4
                                              : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

static void exercise(const lm_tokenizer *tk, const char *text, size_t len, unsigned opt) {
    lm_err e;
    lm_err_clear(&e);
    int32_t *ids = NULL;
    size_t n = 0;
    if (lm_tokenizer_encode(tk, text, len, opt & 1, (opt >> 1) & 1, &ids, &n, &e) != LM_OK) return;
    size_t nv = lm_tokenizer_n_vocab(tk);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= nv) abort();
    char *out = NULL;
    size_t ol = 0;
    if (lm_tokenizer_decode(tk, ids, n, opt >> 2, &out, &ol, &e) != LM_OK) abort();
    lm_free(out);
    lm_detok_stream *st = NULL;
    if (lm_detok_stream_new(tk, opt >> 2, &st, &e) == LM_OK) {
        const char *o;
        for (size_t i = 0; i < n; i++) {
            if (lm_detok_stream_feed(st, ids[i], &o, &ol, &e) != LM_OK) abort();
            if (!valid_utf8(o, ol)) abort();
        }
        if (lm_detok_stream_flush(st, &o, &ol, &e) != LM_OK || !valid_utf8(o, ol)) abort();
        lm_detok_stream_free(st);
    }
    lm_free(ids);
}

static const char k_probe[] = "Hello world <|end|> \xF0\x9F\x8C\x8D 123 \xff";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    unsigned mode = data[0] & 3, opt = data[0] >> 2;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (mode < 3) {
        const lm_tokenizer *tk = g_tk[mode] ? g_tk[mode] : g_tk[1];
        if (tk) exercise(tk, p, n, opt);
        return 0;
    }
    lm_err e;
    lm_err_clear(&e);
    lm_gguf *g = NULL;
    lm_tokenizer *tk = NULL;
    if (lm_gguf_open_buffer(p, n, NULL, &g, &e) == LM_OK &&
        lm_tokenizer_from_gguf(g, &tk, &e) == LM_OK)
        exercise(tk, k_probe, sizeof k_probe - 1, opt);
    lm_tokenizer_free(tk);
    lm_gguf_close(g);
    return 0;
}
