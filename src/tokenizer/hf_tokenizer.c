/*
 * hf_tokenizer.c — Hugging Face tokenizer.json (+ tokenizer_config.json) -> lm_vocab_spec.
 *
 * Input layout read (the `tokenizers` library's serialization, version "1.0"):
 *   {
 *     "added_tokens": [{"id": int, "content": str, "special": bool, "lstrip": bool,
 *                       "rstrip": bool, "single_word": bool, "normalized": bool}, ...],
 *     "normalizer":     null | {"type": ...},
 *     "pre_tokenizer":  null | {"type": ...},
 *     "post_processor": null | {"type": ...},
 *     "decoder":        null | {"type": ...},
 *     "model": {"type": "BPE" | "WordPiece" | "Unigram" | "WordLevel",
 *               "vocab": {"text": id, ...}          (BPE, WordPiece)
 *               "merges": ["a b", ...] | [["a", "b"], ...]   (BPE)
 *               "unk_token", "byte_fallback", "ignore_merges", "continuing_subword_prefix", ...}
 *   }
 * tokenizer_config.json (optional): bos_token / eos_token / unk_token / sep_token / cls_token /
 * pad_token / mask_token (a string or {"content": str}), add_bos_token, add_eos_token,
 * clean_up_tokenization_spaces.
 *
 * Mapping onto the tokenizer core (tokenizer.h):
 *   BPE + ByteLevel pre-tokenizer     -> BPE, byte_encode = 1; Split/Digits/ByteLevel(use_regex)
 *                                        become the spec's regex list, in order (Split:
 *                                        Isolated; MergedWithPrevious/Next on a one-character
 *                                        string as the equivalent Isolated [^D]*D / D[^D]*).
 *   BPE + byte_fallback, Replace(' ' -> U+2581) / Metaspace(split = false)
 *                                     -> BPE, byte_encode = 0, escape_whitespace = 1 (the
 *                                        SentencePiece-style BPE of Gemma exports); Metaspace
 *                                        prepend_scheme first/always -> spec.prefix_scheme
 *                                        (when no split precedes it). The Prepend(U+2581)
 *                                        normalizer (Llama 2 "legacy" exports) is refused:
 *                                        HF applies it between non-normalized added tokens
 *                                        only, which the core does not distinguish.
 *   WordPiece (+ BertNormalizer, BertPreTokenizer)
 *                                     -> WPM; the vocabulary is rewritten into the form the
 *                                        core uses (llama.cpp's): "##x" -> "x", a word-initial
 *                                        "x" -> U+2581 "x", special added tokens unchanged.
 *   added_tokens: special -> CONTROL, others -> USER_DEFINED; lstrip/rstrip -> attrs.
 *   post_processor TemplateProcessing / BertProcessing / RobertaProcessing -> add_bos / add_eos
 *                                        / add_sep and the special ids they name.
 *   normalizer NFC / NFKC (first in the chain): only through the _ex loaders, which report it
 *                                        so that the caller normalizes the input text
 *                                        (lm_hf_normalize; the public lm_vocab API does).
 *   No pre-tokenizer                  -> one match-everything regex (the whole text is a word).
 * Anything else (Whitespace splitting, Lowercase on BPE, Unigram, WordLevel, Split behaviours
 * Removed/Contiguous, a BPE space prefix, ...) is refused with LM_ERR_UNSUPPORTED naming the
 * component: lemma never tokenizes a model approximately. Decoders are only validated (the
 * core decodes per model type). tokenizer_config.json's add_bos_token / add_eos_token
 * override the post-processor (as transformers' Llama/Gemma tokenizers do); its token names
 * give the special ids the post-processor does not set.
 *
 * Invariants: all input is hostile; sizes are capped (hf_tokenizer.h), every id is checked
 * against the vocabulary size before use, every JSON value's type is checked before use.
 * The parsed JSON tree stays alive until lm_tokenizer_build has copied what it keeps.
 */
#include "tokenizer/hf_tokenizer.h"

#include "core/alloc.h"
#include "core/checked.h"
#include "core/file.h"
#include "core/json.h"
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define HF_JSON_MAX_DEPTH 48
#define WPM_SPACE "\xE2\x96\x81" /* U+2581 */

/* The ByteLevel pre-tokenizer's regex (use_regex = true): GPT-2's word split. */
static const char k_re_bytelevel[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct hf_ctx {
    lm_err *err;
    json_t *root, *config;
    lm_vocab_spec spec;
    size_t n;            /* vocabulary size: max id + 1 */
    const char **tokens; /* [n] borrowed from the JSON tree or from owned */
    size_t *lens;        /* [n] */
    int32_t *types;      /* [n] */
    uint8_t *attrs;      /* [n] */
    uint8_t *is_added;   /* [n] 1 = from added_tokens */
    char **owned;        /* strings allocated here */
    size_t n_owned, cap_owned;
    const char **merges;
    size_t *merge_lens;
    size_t n_merges;
    const char *regex[LM_TOK_MAX_REGEX];
    size_t n_regex;
    int byte_level;    /* a ByteLevel pre-tokenizer was seen */
    int byte_fallback; /* BPE model byte_fallback */
    int wpm;           /* model is WordPiece */
    int metaspace;     /* a Metaspace / Replace(' ' -> U+2581) was seen */
    int bert_norm;     /* BertNormalizer / BertPreTokenizer seen */
    int pp_set;        /* a post-processor decided add_bos/add_eos/add_sep */
    int clean_spaces;  /* decoder WordPiece cleanup */
    int n_norm;        /* normalizer steps seen so far */
    lm_hf_info *info;  /* non-NULL: NFC/NFKC accepted and reported here */
} hf_ctx;

/* ---- small helpers --------------------------------------------------------------------- */

static char *own(hf_ctx *c, char *s) {
    if (!s) return NULL;
    if (c->n_owned == c->cap_owned) {
        size_t nc = c->cap_owned ? c->cap_owned * 2 : 64;
        char **nv = lm_realloc(c->owned, nc * sizeof *nv);
        if (!nv) {
            lm_free(s);
            return NULL;
        }
        c->owned = nv;
        c->cap_owned = nc;
    }
    c->owned[c->n_owned++] = s;
    return s;
}

static lm_status nomem(hf_ctx *c) {
    return lm_err_set(c->err, LM_ERR_NOMEM, "tokenizer.json: out of memory");
}

/* A printable, bounded rendering of a JSON value's type for messages. */
static const char *jtype(const json_t *v) {
    if (!v) return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Optional boolean member: absent or null -> def; wrong type -> error. */
static lm_status get_bool(hf_ctx *c, const json_t *obj, const char *what, const char *key, int def,
                          int *out) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return LM_OK;
    }
    if (!json_is_boolean(v))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: %s.%s is %s (want boolean)", what,
                          key, jtype(v));
    *out = json_is_true(v);
    return LM_OK;
}

/* Optional string member: absent or null -> NULL; wrong type -> error. */
static lm_status get_str(hf_ctx *c, const json_t *obj, const char *what, const char *key,
                         const char **out, size_t *len) {
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (len) *len = 0;
    if (!v || json_is_null(v)) return LM_OK;
    if (!json_is_string(v))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: %s.%s is %s (want string)", what,
                          key, jtype(v));
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return LM_OK;
}

/* A token id from JSON: an integer in [0, LM_HF_MAX_VOCAB). */
static lm_status get_id(hf_ctx *c, const json_t *v, const char *what, const char *name,
                        size_t *out) {
    if (!json_is_integer(v))
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer.json: %s '%.40s': id is %s (want "
                          "integer)",
                          what, name, jtype(v));
    json_int_t id = json_integer_value(v);
    if (id < 0 || (uint64_t)id >= LM_HF_MAX_VOCAB)
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer.json: %s '%.40s': id %lld out of range [0, %zu)", what, name,
                          (long long)id, LM_HF_MAX_VOCAB);
    *out = (size_t)id;
    return LM_OK;
}

static const char *type_of(hf_ctx *c, const json_t *obj, const char *what, lm_status *st) {
    const json_t *t = json_object_get(obj, "type");
    *st = LM_OK;
    if (!json_is_string(t)) {
        *st = lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: %s.type is %s (want string)", what,
                         jtype(t));
        return NULL;
    }
    return json_string_value(t);
}

static int32_t find_text(const hf_ctx *c, const char *s, size_t n) {
    /* linear, used only for a handful of special-token names */
    for (size_t i = 0; i < c->n; i++)
        if (c->tokens[i] && c->lens[i] == n && memcmp(c->tokens[i], s, n) == 0) return (int32_t)i;
    return -1;
}

/* Looks a token name up as stored in tokenizer.json (before the WPM rewrite). */
static int32_t find_name(const hf_ctx *c, const char *s) {
    size_t n = strlen(s);
    if (c->wpm) {
        /* added tokens keep their text; plain vocabulary words gained the U+2581 prefix */
        int32_t id = find_text(c, s, n);
        if (id >= 0 && c->is_added[id]) return id;
        char buf[LM_TOK_MAX_TOKEN_LEN + 8];
        if (n + 3 > sizeof buf) return -1;
        memcpy(buf, WPM_SPACE, 3);
        memcpy(buf + 3, s, n);
        int32_t w = find_text(c, buf, n + 3);
        return w >= 0 ? w : id;
    }
    return find_text(c, s, n);
}

/* ---- model ----------------------------------------------------------------------------- */

/* Size of the vocabulary: 1 + the largest id of model.vocab and added_tokens. */
static lm_status scan_ids(hf_ctx *c, const json_t *vocab, const json_t *added) {
    size_t max = 0, count = 0;
    int any = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        size_t id;
        lm_status st = get_id(c, v, "model.vocab", key, &id);
        if (st) return st;
        if (!any || id > max) max = id;
        any = 1;
        count++;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        if (!json_is_object(v))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: added_tokens[%zu] is %s (want object)", i, jtype(v));
        size_t id;
        lm_status st = get_id(c, json_object_get(v, "id"), "added_tokens", "id", &id);
        if (st) return st;
        if (!any || id > max) max = id;
        any = 1;
        count++;
    }
    if (!any) return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: empty vocabulary");
    /* holes are allowed (they become empty UNUSED tokens) but not a mostly-empty id space */
    if (max + 1 > 2 * count + 1024)
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer.json: largest id %zu but only %zu tokens (sparse ids)", max,
                          count);
    c->n = max + 1;
    return LM_OK;
}

static lm_status alloc_tables(hf_ctx *c) {
    c->tokens = lm_calloc(c->n, sizeof *c->tokens);
    c->lens = lm_calloc(c->n, sizeof *c->lens);
    c->types = lm_calloc(c->n, sizeof *c->types);
    c->attrs = lm_calloc(c->n, 1);
    c->is_added = lm_calloc(c->n, 1);
    if (!c->tokens || !c->lens || !c->types || !c->attrs || !c->is_added) return nomem(c);
    return LM_OK;
}

static int is_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return 0;
    for (int i = 3; i < 5; i++) {
        char h = s[i];
        if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F') || (h >= 'a' && h <= 'f'))) return 0;
    }
    return 1;
}

static lm_status fill_vocab(hf_ctx *c, const json_t *vocab) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        size_t id = (size_t)json_integer_value(v); /* checked by scan_ids */
        if (c->tokens[id])
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: model.vocab: id %zu used by '%.40s' and '%.40s'", id,
                              c->tokens[id], key);
        size_t len = strlen(key);
        if (len > LM_TOK_MAX_TOKEN_LEN)
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: model.vocab: token %zu is %zu bytes (max %d)", id,
                              len, LM_TOK_MAX_TOKEN_LEN);
        c->tokens[id] = key;
        c->lens[id] = len;
        c->types[id] = LM_TOKEN_NORMAL;
        if (c->byte_fallback && is_byte_token(key, len)) c->types[id] = LM_TOKEN_BYTE;
    }
    return LM_OK;
}

static lm_status fill_added(hf_ctx *c, const json_t *added) {
    size_t i;
    json_t *v;
    json_array_foreach(added, i, v) {
        char what[48];
        snprintf(what, sizeof what, "added_tokens[%zu]", i);
        const json_t *jc = json_object_get(v, "content");
        if (!json_is_string(jc))
            return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: %s.content is %s", what,
                              jtype(jc));
        const char *s = json_string_value(jc);
        size_t len = json_string_length(jc);
        if (len == 0 || len > LM_TOK_MAX_TOKEN_LEN || memchr(s, '\0', len))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: %s.content has length %zu (want 1..%d, no NUL)",
                              what, len, LM_TOK_MAX_TOKEN_LEN);
        size_t id = (size_t)json_integer_value(json_object_get(v, "id"));
        int special, lstrip, rstrip, single;
        lm_status st;
        if ((st = get_bool(c, v, what, "special", 0, &special)) ||
            (st = get_bool(c, v, what, "lstrip", 0, &lstrip)) ||
            (st = get_bool(c, v, what, "rstrip", 0, &rstrip)) ||
            (st = get_bool(c, v, what, "single_word", 0, &single)))
            return st;
        if (single)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: %s '%.40s': single_word added tokens are not "
                              "supported",
                              what, s);
        if (c->is_added[id])
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: %s: id %zu is already an added token", what, id);
        if (c->tokens[id]) {
            /* an added token re-declaring its vocabulary entry must spell the same text */
            if (c->lens[id] != len || memcmp(c->tokens[id], s, len) != 0)
                return lm_err_set(c->err, LM_ERR_FORMAT,
                                  "tokenizer.json: %s: id %zu is '%.40s' here but '%.40s' in "
                                  "model.vocab",
                                  what, id, s, c->tokens[id]);
        }
        c->tokens[id] = s;
        c->lens[id] = len;
        c->is_added[id] = 1;
        c->types[id] = special ? LM_TOKEN_CONTROL : LM_TOKEN_USER_DEFINED;
        c->attrs[id] =
            (uint8_t)((lstrip ? LM_TOK_ATTR_LSTRIP : 0) | (rstrip ? LM_TOK_ATTR_RSTRIP : 0));
    }
    return LM_OK;
}

/* Holes in the id space: empty, UNUSED (never produced by encoding). */
static void fill_holes(hf_ctx *c) {
    for (size_t i = 0; i < c->n; i++) {
        if (!c->tokens[i]) {
            c->tokens[i] = "";
            c->lens[i] = 0;
            c->types[i] = LM_TOKEN_UNUSED;
        }
    }
}

/* WordPiece vocabulary -> the core's form: "##x" -> "x", word-initial "x" -> U+2581 "x". */
static lm_status wpm_rewrite(hf_ctx *c, const char *prefix) {
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < c->n; i++) {
        if (c->is_added[i] || c->lens[i] == 0) continue;
        const char *t = c->tokens[i];
        size_t l = c->lens[i];
        if (pl && l >= pl && memcmp(t, prefix, pl) == 0) {
            c->tokens[i] = t + pl;
            c->lens[i] = l - pl;
            continue;
        }
        if (l + 3 > LM_TOK_MAX_TOKEN_LEN)
            return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: token %zu too long", i);
        char *s = own(c, lm_malloc(l + 4));
        if (!s) return nomem(c);
        memcpy(s, WPM_SPACE, 3);
        memcpy(s + 3, t, l);
        s[l + 3] = '\0';
        c->tokens[i] = s;
        c->lens[i] = l + 3;
    }
    return LM_OK;
}

static lm_status read_merges(hf_ctx *c, const json_t *merges) {
    if (!merges || json_is_null(merges)) return LM_OK;
    if (!json_is_array(merges))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: model.merges is %s",
                          jtype(merges));
    size_t n = json_array_size(merges);
    if (n > LM_HF_MAX_MERGES)
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: %zu merges (max %zu)", n,
                          LM_HF_MAX_MERGES);
    if (n == 0) return LM_OK;
    c->merges = lm_calloc(n, sizeof *c->merges);
    c->merge_lens = lm_calloc(n, sizeof *c->merge_lens);
    if (!c->merges || !c->merge_lens) return nomem(c);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) {
            /* "left right": the core splits at the first space after the first byte */
            c->merges[i] = json_string_value(m);
            c->merge_lens[i] = json_string_length(m);
            continue;
        }
        const json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
        if (!json_is_array(m) || json_array_size(m) != 2 || !json_is_string(a) ||
            !json_is_string(b))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: model.merges[%zu] is %s (want \"a b\" or "
                              "[\"a\", \"b\"])",
                              i, jtype(m));
        size_t la = json_string_length(a), lb = json_string_length(b);
        const char *sa = json_string_value(a);
        if (la == 0 || lb == 0 || la > LM_TOK_MAX_TOKEN_LEN || lb > LM_TOK_MAX_TOKEN_LEN)
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: model.merges[%zu]: part lengths %zu, %zu", i, la,
                              lb);
        if (la > 1 && memchr(sa + 1, ' ', la - 1))
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: model.merges[%zu]: left part '%.40s' contains a "
                              "space",
                              i, sa);
        char *s = own(c, lm_malloc(la + lb + 2));
        if (!s) return nomem(c);
        memcpy(s, sa, la);
        s[la] = ' ';
        memcpy(s + la + 1, json_string_value(b), lb);
        s[la + 1 + lb] = '\0';
        c->merges[i] = s;
        c->merge_lens[i] = la + 1 + lb;
    }
    c->n_merges = n;
    return LM_OK;
}

/* ---- normalizer -------------------------------------------------------------------------- */

static lm_status pattern_string(hf_ctx *c, const json_t *obj, const char *what, const char **s,
                                int *is_regex) {
    const json_t *p = json_object_get(obj, "pattern");
    const json_t *str = json_object_get(p, "String"), *re = json_object_get(p, "Regex");
    if (!json_is_object(p) || (json_is_string(str) == json_is_string(re)))
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer.json: %s.pattern is not {\"String\": ..} or {\"Regex\": ..}",
                          what);
    *is_regex = json_is_string(re);
    *s = json_string_value(*is_regex ? re : str);
    return LM_OK;
}

static lm_status normalizer(hf_ctx *c, const json_t *n, int depth) {
    if (!n || json_is_null(n)) return LM_OK;
    if (!json_is_object(n))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: normalizer is %s", jtype(n));
    if (depth > 8)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: normalizer nested too "
                          "deep");
    lm_status st;
    const char *t = type_of(c, n, "normalizer", &st);
    if (!t) return st;
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: normalizer Sequence.normalizers is %s", jtype(list));
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            st = normalizer(c, v, depth + 1);
            if (st) return st;
        }
        return LM_OK;
    }
    if (!strcmp(t, "NFC") || !strcmp(t, "NFKC")) {
        /* the caller normalizes the text before encoding (lm_hf_normalize): exact only when
         * nothing else comes before it */
        if (!c->info || c->n_norm > 0)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: normalizer %s is not supported%s", t,
                              c->info ? " after another normalizer"
                                      : " by the bare loader (use the public lm_vocab API)");
        c->info->norm = t[2] == 'C' ? LM_HF_NORM_NFC : LM_HF_NORM_NFKC;
        c->n_norm++;
        return LM_OK;
    }
    c->n_norm++;
    if (!strcmp(t, "BertNormalizer")) {
        int clean, chinese, lower, strip;
        if ((st = get_bool(c, n, "BertNormalizer", "clean_text", 1, &clean)) ||
            (st = get_bool(c, n, "BertNormalizer", "handle_chinese_chars", 1, &chinese)) ||
            (st = get_bool(c, n, "BertNormalizer", "lowercase", 1, &lower)))
            return st;
        /* strip_accents: null = follow lowercase (BERT's rule) */
        if ((st = get_bool(c, n, "BertNormalizer", "strip_accents", lower, &strip))) return st;
        if (!c->wpm || !clean || !chinese || lower != strip)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: normalizer BertNormalizer(clean_text=%d, "
                              "handle_chinese_chars=%d, lowercase=%d, strip_accents=%d) on a "
                              "%s model is not supported",
                              clean, chinese, lower, strip, c->wpm ? "WordPiece" : "non-WordPiece");
        c->spec.lowercase = lower;
        c->spec.strip_accents = strip;
        c->bert_norm = 1;
        return LM_OK;
    }
    if (!strcmp(t, "Lowercase") && c->wpm) {
        c->spec.lowercase = 1;
        return LM_OK;
    }
    if (!strcmp(t, "StripAccents") && c->wpm) {
        c->spec.strip_accents = 1;
        return LM_OK;
    }
    if (!strcmp(t, "Replace")) {
        const char *pat, *content;
        int is_re;
        if ((st = pattern_string(c, n, "normalizer Replace", &pat, &is_re))) return st;
        if ((st = get_str(c, n, "normalizer Replace", "content", &content, NULL))) return st;
        if (!is_re && !strcmp(pat, " ") && content && !strcmp(content, WPM_SPACE) && !c->wpm) {
            c->spec.escape_whitespace = 1;
            c->metaspace = 1;
            return LM_OK;
        }
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: normalizer Replace('%.40s' -> '%.40s') is not "
                          "supported",
                          pat, content ? content : "");
    }
    if (!strcmp(t, "Prepend")) {
        const char *p;
        if ((st = get_str(c, n, "normalizer Prepend", "prepend", &p, NULL))) return st;
        /* the core prepends U+2581 for SPM models only; HF applies Prepend to every
         * fragment between added tokens, which a BPE build here cannot reproduce */
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: normalizer Prepend('%.40s') is not supported (the "
                          "tokenizer core has no BPE space prefix)",
                          p ? p : "");
    }
    if (!strcmp(t, "NFD") && c->wpm && c->bert_norm) return LM_OK; /* BERT decomposes anyway */
    return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                      "tokenizer.json: normalizer '%.40s' is not supported%s", t,
                      c->wpm ? "" : " for this model type");
}

/* ---- pre-tokenizer ----------------------------------------------------------------------- */

static lm_status add_regex(hf_ctx *c, const char *re) {
    if (c->n_regex >= LM_TOK_MAX_REGEX)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: more than %d pre-tokenizer splits", LM_TOK_MAX_REGEX);
    c->regex[c->n_regex++] = re;
    return LM_OK;
}

/* A literal string as a PCRE2 pattern: every ASCII non-alphanumeric byte escaped. */
static lm_status literal_regex(hf_ctx *c, const char *s, const char **out) {
    size_t n = strlen(s);
    if (n == 0 || n > LM_HF_MAX_PATTERN)
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: Split pattern of %zu bytes", n);
    char *r = own(c, lm_malloc(2 * n + 1));
    if (!r) return nomem(c);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80 && !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                           (ch >= 'A' && ch <= 'Z') || ch < 0x20))
            r[o++] = '\\';
        r[o++] = (char)ch;
    }
    r[o] = '\0';
    *out = r;
    return LM_OK;
}

static lm_status pre_tokenizer(hf_ctx *c, const json_t *p, int depth) {
    if (!p || json_is_null(p)) return LM_OK;
    if (!json_is_object(p))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: pre_tokenizer is %s", jtype(p));
    if (depth > 8)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: pre_tokenizer nested too deep");
    lm_status st;
    const char *t = type_of(c, p, "pre_tokenizer", &st);
    if (!t) return st;
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: pre_tokenizer Sequence.pretokenizers is %s",
                              jtype(list));
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            st = pre_tokenizer(c, v, depth + 1);
            if (st) return st;
        }
        return LM_OK;
    }
    if (c->wpm) {
        if (!strcmp(t, "BertPreTokenizer")) {
            c->bert_norm = 1;
            return LM_OK;
        }
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: pre_tokenizer '%.40s' with a WordPiece model is not "
                          "supported (only BertPreTokenizer)",
                          t);
    }
    if (!strcmp(t, "ByteLevel")) {
        int prefix, use_regex;
        if ((st = get_bool(c, p, "ByteLevel", "add_prefix_space", 0, &prefix)) ||
            (st = get_bool(c, p, "ByteLevel", "use_regex", 1, &use_regex)))
            return st;
        if (prefix)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: pre_tokenizer ByteLevel(add_prefix_space=true) "
                              "is not supported");
        if (c->byte_level)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: two ByteLevel pre-tokenizers");
        c->byte_level = 1;
        return use_regex ? add_regex(c, k_re_bytelevel) : LM_OK;
    }
    if (!strcmp(t, "Digits")) {
        int individual;
        if ((st = get_bool(c, p, "Digits", "individual_digits", 0, &individual))) return st;
        return add_regex(c, individual ? "\\p{N}" : "\\p{N}+");
    }
    if (!strcmp(t, "Split")) {
        const char *pat, *behavior, *re = NULL;
        int is_re, invert;
        if ((st = pattern_string(c, p, "pre_tokenizer Split", &pat, &is_re)) ||
            (st = get_str(c, p, "pre_tokenizer Split", "behavior", &behavior, NULL)) ||
            (st = get_bool(c, p, "pre_tokenizer Split", "invert", 0, &invert)))
            return st;
        int merged = behavior && (!strcmp(behavior, "MergedWithPrevious") ||
                                  !strcmp(behavior, "MergedWithNext"));
        size_t pl = strlen(pat);
        if (merged && !is_re && !invert && pl > 0 &&
            lm_utf8_unit((const unsigned char *)pat, pl) == pl) {
            /* one delimiter character D: MergedWithPrevious cuts after each D, which is what
             * Isolated matches of [^D]*D do (MergedWithNext: D[^D]*) */
            char *r = own(c, lm_malloc(2 * pl + 16));
            if (!r) return nomem(c);
            char d[12];
            unsigned char ch = (unsigned char)pat[0];
            int esc = ch < 0x80 && !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                                     (ch >= 'A' && ch <= 'Z'));
            snprintf(d, sizeof d, "%s%s", esc ? "\\" : "", pat);
            if (behavior[10] == 'P')
                snprintf(r, 2 * pl + 16, "[^%s]*%s", d, d);
            else
                snprintf(r, 2 * pl + 16, "%s[^%s]*", d, d);
            return add_regex(c, r);
        }
        if (!behavior || strcmp(behavior, "Isolated") != 0 || invert)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: pre_tokenizer Split(behavior=%.20s, invert=%d) "
                              "is not supported (only Isolated, or Merged* on one character)",
                              behavior ? behavior : "null", invert);
        if (is_re) {
            if (pl == 0 || pl > LM_HF_MAX_PATTERN)
                return lm_err_set(c->err, LM_ERR_FORMAT,
                                  "tokenizer.json: Split regex of %zu bytes (want 1..%d)", pl,
                                  LM_HF_MAX_PATTERN);
            re = pat;
        } else if ((st = literal_regex(c, pat, &re))) {
            return st;
        }
        return add_regex(c, re);
    }
    if (!strcmp(t, "Metaspace")) {
        const char *rep, *scheme;
        int split, prefix;
        if ((st = get_str(c, p, "Metaspace", "replacement", &rep, NULL)) ||
            (st = get_str(c, p, "Metaspace", "prepend_scheme", &scheme, NULL)) ||
            (st = get_bool(c, p, "Metaspace", "split", 1, &split)) ||
            (st = get_bool(c, p, "Metaspace", "add_prefix_space", 1, &prefix)))
            return st;
        if (!rep || strcmp(rep, WPM_SPACE) != 0 || split)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: pre_tokenizer Metaspace(replacement='%.10s', "
                              "split=%d) is not supported",
                              rep ? rep : "", split);
        /* prepend_scheme (older files: add_prefix_space = always or never) */
        int scheme_id = prefix ? LM_TOK_PREFIX_ALWAYS : LM_TOK_PREFIX_NEVER;
        if (scheme) {
            if (!strcmp(scheme, "first"))
                scheme_id = LM_TOK_PREFIX_FIRST;
            else if (!strcmp(scheme, "always"))
                scheme_id = LM_TOK_PREFIX_ALWAYS;
            else if (!strcmp(scheme, "never"))
                scheme_id = LM_TOK_PREFIX_NEVER;
            else
                return lm_err_set(c->err, LM_ERR_FORMAT,
                                  "tokenizer.json: pre_tokenizer Metaspace.prepend_scheme "
                                  "'%.10s' is unknown",
                                  scheme);
        }
        /* the core prefixes whole fragments (the text between added tokens): exact only when
         * no split came before */
        if (scheme_id != LM_TOK_PREFIX_NEVER && (c->n_regex > 0 || c->byte_level))
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: pre_tokenizer Metaspace with a prefix after "
                              "another pre-tokenizer is not supported");
        c->spec.prefix_scheme = scheme_id;
        c->spec.escape_whitespace = 1;
        c->metaspace = 1;
        return LM_OK;
    }
    return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                      "tokenizer.json: pre_tokenizer '%.40s' is not supported", t);
}

/* ---- post-processor ---------------------------------------------------------------------- */

/* The id of special-token name `name` in TemplateProcessing.special_tokens (one id only). */
static lm_status template_special(hf_ctx *c, const json_t *pp, const char *name, int32_t *id) {
    const json_t *sp = json_object_get(json_object_get(pp, "special_tokens"), name);
    const json_t *ids = json_object_get(sp, "ids");
    if (json_is_array(ids)) {
        if (json_array_size(ids) != 1)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: post_processor special token '%.40s' has %zu ids",
                              name, json_array_size(ids));
        const json_t *v = json_array_get(ids, 0);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) >= c->n)
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: post_processor special token '%.40s': id out of "
                              "range",
                              name);
        *id = (int32_t)json_integer_value(v);
        return LM_OK;
    }
    *id = find_name(c, name);
    if (*id < 0)
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer.json: post_processor names unknown token '%.40s'", name);
    return LM_OK;
}

/* Sets what add_special adds: `first` before the text, `last` after it (-1 = nothing). */
static void set_added(hf_ctx *c, int32_t first, int32_t last) {
    c->pp_set = 1;
    c->spec.add_bos = first >= 0;
    c->spec.add_eos = 0;
    c->spec.add_sep = 0;
    if (first >= 0) c->spec.special[LM_TOK_BOS] = first;
    if (last >= 0) {
        if (c->wpm) {
            c->spec.add_sep = 1;
            c->spec.special[LM_TOK_SEP] = last;
        } else {
            c->spec.add_eos = 1;
            c->spec.special[LM_TOK_EOS] = last;
        }
    }
}

/* ["name", id] of BertProcessing / RobertaProcessing */
static lm_status pair_id(hf_ctx *c, const json_t *pp, const char *key, int32_t *id) {
    const json_t *a = json_object_get(pp, key), *v = json_array_get(a, 1);
    if (!json_is_array(a) || json_array_size(a) != 2 || !json_is_integer(v) ||
        json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) >= c->n)
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer.json: post_processor.%s is not [\"token\", id in range]", key);
    *id = (int32_t)json_integer_value(v);
    return LM_OK;
}

static lm_status post_processor(hf_ctx *c, const json_t *pp, int depth) {
    if (!pp || json_is_null(pp)) return LM_OK;
    if (!json_is_object(pp))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: post_processor is %s", jtype(pp));
    if (depth > 8)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: post_processor nested too deep");
    lm_status st;
    const char *t = type_of(c, pp, "post_processor", &st);
    if (!t) return st;
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(pp, "processors");
        if (!json_is_array(list))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: post_processor Sequence.processors is %s",
                              jtype(list));
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            st = post_processor(c, v, depth + 1);
            if (st) return st;
        }
        return LM_OK;
    }
    if (!strcmp(t, "ByteLevel")) return LM_OK; /* offsets only */
    if (!strcmp(t, "BertProcessing") || !strcmp(t, "RobertaProcessing")) {
        int32_t cls, sep;
        if ((st = pair_id(c, pp, "cls", &cls)) || (st = pair_id(c, pp, "sep", &sep))) return st;
        set_added(c, cls, sep);
        return LM_OK;
    }
    if (!strcmp(t, "TemplateProcessing")) {
        const json_t *single = json_object_get(pp, "single");
        if (!json_is_array(single))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: TemplateProcessing.single is %s", jtype(single));
        int32_t before[2] = {-1, -1}, after[2] = {-1, -1};
        size_t nb = 0, na = 0, nseq = 0;
        size_t i;
        json_t *v;
        json_array_foreach(single, i, v) {
            const json_t *spt = json_object_get(v, "SpecialToken");
            const json_t *seq = json_object_get(v, "Sequence");
            if (json_is_object(seq)) {
                nseq++;
                continue;
            }
            const json_t *name = json_object_get(spt, "id");
            if (!json_is_string(name))
                return lm_err_set(c->err, LM_ERR_FORMAT,
                                  "tokenizer.json: TemplateProcessing.single[%zu] is neither "
                                  "SpecialToken nor Sequence",
                                  i);
            int32_t id = -1;
            if ((st = template_special(c, pp, json_string_value(name), &id))) return st;
            if (nseq == 0) {
                if (nb < 2) before[nb] = id;
                nb++;
            } else {
                if (na < 2) after[na] = id;
                na++;
            }
        }
        if (nseq != 1 || nb > 1 || na > 1)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                              "tokenizer.json: TemplateProcessing.single with %zu sequences, %zu "
                              "leading and %zu trailing tokens is not supported (at most one "
                              "each)",
                              nseq, nb, na);
        set_added(c, before[0], after[0]);
        return LM_OK;
    }
    return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                      "tokenizer.json: post_processor '%.40s' is not supported", t);
}

/* ---- decoder (validated only: the core decodes per model type) ---------------------------- */

static lm_status decoder(hf_ctx *c, const json_t *d, int depth) {
    if (!d || json_is_null(d)) return LM_OK;
    if (!json_is_object(d))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: decoder is %s", jtype(d));
    if (depth > 8)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED, "tokenizer.json: decoder nested too deep");
    lm_status st;
    const char *t = type_of(c, d, "decoder", &st);
    if (!t) return st;
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(d, "decoders");
        if (!json_is_array(list))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer.json: decoder Sequence.decoders is %s", jtype(list));
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            st = decoder(c, v, depth + 1);
            if (st) return st;
        }
        return LM_OK;
    }
    if (!strcmp(t, "WordPiece")) {
        int cleanup;
        if ((st = get_bool(c, d, "decoder WordPiece", "cleanup", 1, &cleanup))) return st;
        c->clean_spaces = cleanup;
        return LM_OK;
    }
    static const char *ok[] = {"ByteLevel",    "Metaspace", "Replace",
                               "ByteFallback", "Fuse",      "Strip"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(t, ok[i])) return LM_OK;
    return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                      "tokenizer.json: decoder '%.40s' is not supported", t);
}

/* ---- tokenizer_config.json --------------------------------------------------------------- */

/* A config token entry: "text" or {"content": "text", ...}; NULL when absent/null. */
static lm_status config_token(hf_ctx *c, const char *key, int32_t *id) {
    const json_t *v = json_object_get(c->config, key);
    *id = -1;
    if (!v || json_is_null(v)) return LM_OK;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v))
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer_config.json: %s is %s (want string or {content})", key,
                          jtype(v));
    *id = find_name(c, json_string_value(v));
    if (*id < 0)
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer_config.json: %s '%.40s' is not in the vocabulary", key,
                          json_string_value(v));
    return LM_OK;
}

static lm_status apply_config(hf_ctx *c) {
    if (!c->config) return LM_OK;
    if (!json_is_object(c->config))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer_config.json: top level is %s",
                          jtype(c->config));
    static const struct {
        const char *key;
        int role;
    } roles[] = {{"bos_token", LM_TOK_BOS}, {"eos_token", LM_TOK_EOS}, {"unk_token", LM_TOK_UNK},
                 {"sep_token", LM_TOK_SEP}, {"pad_token", LM_TOK_PAD}, {"mask_token", LM_TOK_MASK},
                 {"cls_token", LM_TOK_BOS}};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        int32_t id;
        lm_status st = config_token(c, roles[i].key, &id);
        if (st) return st;
        if (id < 0) continue;
        /* what the post-processor adds keeps its ids; the config names the rest */
        int role = roles[i].role;
        int is_cls = !strcmp(roles[i].key, "cls_token");
        if (role == LM_TOK_BOS && c->wpm != is_cls) continue; /* WPM: BOS is [CLS] */
        if (c->pp_set &&
            ((role == LM_TOK_BOS && c->spec.add_bos) || (role == LM_TOK_EOS && c->spec.add_eos) ||
             (role == LM_TOK_SEP && c->spec.add_sep)))
            continue;
        c->spec.special[role] = id;
    }
    const json_t *v;
    const char *keys[] = {"add_bos_token", "add_eos_token", "clean_up_tokenization_spaces"};
    for (int k = 0; k < 3; k++) {
        v = json_object_get(c->config, keys[k]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_boolean(v))
            return lm_err_set(c->err, LM_ERR_FORMAT,
                              "tokenizer_config.json: %s is %s (want boolean)", keys[k], jtype(v));
        int b = json_is_true(v);
        if (k == 0 && !c->wpm)
            c->spec.add_bos = b;
        else if (k == 1 && !c->wpm)
            c->spec.add_eos = b;
        else if (k == 2)
            c->spec.clean_spaces = b;
    }
    return LM_OK;
}

/* ---- top level --------------------------------------------------------------------------- */

static lm_status load(hf_ctx *c) {
    lm_status st;
    json_t *root = c->root;
    if (!json_is_object(root))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: top level is %s (want object)",
                          jtype(root));
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: model is %s (want object)",
                          jtype(model));
    const json_t *jt = json_object_get(model, "type");
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    const char *mt;
    if (jt) {
        if (!json_is_string(jt))
            return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: model.type is %s", jtype(jt));
        mt = json_string_value(jt);
    } else if (merges) { /* older files leave the type out */
        mt = "BPE";
    } else if (json_is_array(vocab)) {
        mt = "Unigram";
    } else if (json_object_get(model, "continuing_subword_prefix")) {
        mt = "WordPiece";
    } else {
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: model.type is missing");
    }
    if (!strcmp(mt, "BPE")) {
        lm_vocab_spec_init(&c->spec, LM_TOK_MODEL_BPE);
    } else if (!strcmp(mt, "WordPiece")) {
        lm_vocab_spec_init(&c->spec, LM_TOK_MODEL_WPM);
        c->wpm = 1;
    } else if (!strcmp(mt, "Unigram") || !strcmp(mt, "WordLevel")) {
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "tokenizer.json: model type '%s' is not supported by lemma's "
                          "tokenizer core",
                          mt);
    } else {
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: unknown model type '%.40s'", mt);
    }
    /* start from nothing: the core's llama.cpp defaults do not apply to tokenizer.json */
    for (int i = 0; i < LM_TOK_SPECIAL_COUNT; i++)
        c->spec.special[i] = -1;
    c->spec.add_bos = c->spec.add_eos = c->spec.add_sep = 0;
    c->spec.clean_spaces = 0;
    c->spec.lowercase = c->spec.strip_accents = 0;
    c->spec.add_space_prefix = 0;
    c->spec.escape_whitespace = 0;
    c->spec.byte_encode = 0;

    if (!json_is_object(vocab))
        return lm_err_set(c->err, LM_ERR_FORMAT,
                          "tokenizer.json: model.vocab is %s (want "
                          "object)",
                          jtype(vocab));
    const json_t *added = json_object_get(root, "added_tokens");
    json_t *empty = NULL;
    if (!added || json_is_null(added)) added = empty = json_array();
    if (!added) return nomem(c);
    if (!json_is_array(added)) {
        return lm_err_set(c->err, LM_ERR_FORMAT, "tokenizer.json: added_tokens is %s",
                          jtype(added));
    }
    const char *unk = NULL, *prefix = NULL;
    if (!c->wpm) {
        const char *cs, *ews;
        int dropout_ok = 1;
        const json_t *dr = json_object_get(model, "dropout");
        if (dr && !json_is_null(dr) && !(json_is_number(dr) && json_number_value(dr) == 0.0))
            dropout_ok = 0;
        if ((st = get_bool(c, model, "model", "byte_fallback", 0, &c->byte_fallback)) ||
            (st = get_bool(c, model, "model", "ignore_merges", 0, &c->spec.ignore_merges)) ||
            (st = get_str(c, model, "model", "continuing_subword_prefix", &cs, NULL)) ||
            (st = get_str(c, model, "model", "end_of_word_suffix", &ews, NULL)) ||
            (st = get_str(c, model, "model", "unk_token", &unk, NULL)))
            goto done;
        if (!dropout_ok || (cs && *cs) || (ews && *ews)) {
            st = lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                            "tokenizer.json: BPE with dropout / continuing_subword_prefix / "
                            "end_of_word_suffix is not supported");
            goto done;
        }
    } else {
        if ((st = get_str(c, model, "model", "unk_token", &unk, NULL)) ||
            (st = get_str(c, model, "model", "continuing_subword_prefix", &prefix, NULL)))
            goto done;
        if (!prefix) prefix = "##";
        /* absent: the library's default, 100 */
        const json_t *mx = json_object_get(model, "max_input_chars_per_word");
        c->spec.max_input_chars_per_word = 100;
        if (mx && !json_is_null(mx)) {
            if (!json_is_integer(mx) || json_integer_value(mx) < 0) {
                st = lm_err_set(c->err, LM_ERR_FORMAT,
                                "tokenizer.json: model.max_input_chars_per_word is %s (want a "
                                "non-negative integer)",
                                json_is_integer(mx) ? "negative" : jtype(mx));
                goto done;
            }
            if (json_integer_value(mx) == 0) {
                /* HF makes every word unk; the core's 0 means unlimited */
                st = lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                                "tokenizer.json: model.max_input_chars_per_word = 0 is not "
                                "supported");
                goto done;
            }
            c->spec.max_input_chars_per_word = (uint64_t)json_integer_value(mx) > SIZE_MAX
                                                   ? SIZE_MAX
                                                   : (size_t)json_integer_value(mx);
        }
    }
    if ((st = scan_ids(c, vocab, added)) || (st = alloc_tables(c)) || (st = fill_vocab(c, vocab)) ||
        (st = fill_added(c, added)))
        goto done;
    fill_holes(c);
    if (c->wpm && (st = wpm_rewrite(c, prefix))) goto done;
    if (!c->wpm && (st = read_merges(c, merges))) goto done;
    if (unk) {
        int32_t id = find_name(c, unk);
        if (id < 0) {
            st =
                lm_err_set(c->err, LM_ERR_FORMAT,
                           "tokenizer.json: model.unk_token '%.40s' is not in the vocabulary", unk);
            goto done;
        }
        c->spec.special[LM_TOK_UNK] = id;
        /* the unknown token is never split out of text unless it is an added token */
        if (!c->is_added[id]) c->types[id] = LM_TOKEN_UNKNOWN;
    } else if (c->wpm) {
        st = lm_err_set(c->err, LM_ERR_FORMAT,
                        "tokenizer.json: WordPiece model without "
                        "unk_token");
        goto done;
    }
    if ((st = normalizer(c, json_object_get(root, "normalizer"), 0)) ||
        (st = pre_tokenizer(c, json_object_get(root, "pre_tokenizer"), 0)) ||
        (st = post_processor(c, json_object_get(root, "post_processor"), 0)) ||
        (st = decoder(c, json_object_get(root, "decoder"), 0)))
        goto done;
    c->spec.clean_spaces = c->clean_spaces;
    if (!c->wpm) {
        if (c->byte_level && c->metaspace) {
            st = lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                            "tokenizer.json: ByteLevel combined with Metaspace/Replace");
            goto done;
        }
        if (!c->byte_level && !c->byte_fallback) {
            st = lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                            "tokenizer.json: BPE without ByteLevel or byte_fallback (characters "
                            "outside the vocabulary would need unk handling)");
            goto done;
        }
        c->spec.byte_encode = c->byte_level;
        if (c->n_regex == 0) {
            /* no split at all: the whole text is one word (a match-everything pattern, since
             * an empty regex list selects the core's default pre-tokenizer) */
            c->regex[c->n_regex++] = "[\\s\\S]+";
        }
        c->spec.n_regex = c->n_regex;
        c->spec.regex = c->regex;
    } else if (!c->bert_norm) {
        st = lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                        "tokenizer.json: WordPiece without BertNormalizer/BertPreTokenizer");
        goto done;
    }
    if ((st = apply_config(c))) goto done;

    c->spec.n_tokens = c->n;
    c->spec.tokens = c->tokens;
    c->spec.token_lens = c->lens;
    c->spec.types = c->types;
    c->spec.attrs = c->attrs;
    c->spec.n_merges = c->n_merges;
    c->spec.merges = c->merges;
    c->spec.merge_lens = c->merge_lens;
    st = LM_OK;
done:
    json_decref(empty);
    return st;
}

static void ctx_free(hf_ctx *c) {
    for (size_t i = 0; i < c->n_owned; i++)
        lm_free(c->owned[i]);
    lm_free(c->owned);
    lm_free(c->tokens);
    lm_free(c->lens);
    lm_free(c->types);
    lm_free(c->attrs);
    lm_free(c->is_added);
    lm_free(c->merges);
    lm_free(c->merge_lens);
    json_decref(c->root);
    json_decref(c->config);
}

lm_status lm_tokenizer_from_hf_json_text_ex(const char *json, size_t len, const char *config,
                                            size_t config_len, lm_tokenizer **out, lm_hf_info *info,
                                            lm_err *err) {
    hf_ctx c;
    memset(&c, 0, sizeof c);
    c.err = err;
    c.info = info;
    if (info) info->norm = LM_HF_NORM_NONE;
    if (out) *out = NULL;
    if (!json || !out) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer.json: NULL argument");
    if (len > LM_HF_TOKENIZER_MAX_BYTES)
        return lm_err_set(err, LM_ERR_FORMAT, "tokenizer.json: %zu bytes (max %zu)", len,
                          LM_HF_TOKENIZER_MAX_BYTES);
    lm_status st = lm_json_parse(json, len, HF_JSON_MAX_DEPTH, "tokenizer.json", &c.root, err);
    if (!st && config) {
        if (config_len > LM_HF_TOKCONFIG_MAX_BYTES)
            st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer_config.json: %zu bytes (max %zu)",
                            config_len, LM_HF_TOKCONFIG_MAX_BYTES);
        else
            st = lm_json_parse(config, config_len, HF_JSON_MAX_DEPTH, "tokenizer_config.json",
                               &c.config, err);
    }
    if (!st) st = load(&c);
    if (!st) {
        st = lm_tokenizer_build(&c.spec, out, err);
        if (st) lm_err_prefix(err, "tokenizer.json");
    }
    ctx_free(&c);
    return st;
}

lm_status lm_tokenizer_from_hf_json_text(const char *json, size_t len, const char *config,
                                         size_t config_len, lm_tokenizer **out, lm_err *err) {
    return lm_tokenizer_from_hf_json_text_ex(json, len, config, config_len, out, NULL, err);
}

lm_status lm_tokenizer_from_hf_json(const char *tokenizer_json_path,
                                    const char *tokenizer_config_path, lm_tokenizer **out,
                                    lm_err *err) {
    return lm_tokenizer_from_hf_json_ex(tokenizer_json_path, tokenizer_config_path, out, NULL, err);
}

lm_status lm_tokenizer_from_hf_json_ex(const char *tokenizer_json_path,
                                       const char *tokenizer_config_path, lm_tokenizer **out,
                                       lm_hf_info *info, lm_err *err) {
    char *json = NULL, *cfg = NULL;
    size_t len = 0, cfg_len = 0;
    if (out) *out = NULL;
    if (!tokenizer_json_path || !out)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer.json: NULL argument");
    lm_status st =
        lm_file_read_all(tokenizer_json_path, LM_HF_TOKENIZER_MAX_BYTES, &json, &len, err);
    if (st) return st;
    if (tokenizer_config_path) {
        FILE *f = fopen(tokenizer_config_path, "rb");
        if (f) {
            fclose(f);
            st = lm_file_read_all(tokenizer_config_path, LM_HF_TOKCONFIG_MAX_BYTES, &cfg, &cfg_len,
                                  err);
        }
    }
    if (!st) st = lm_tokenizer_from_hf_json_text_ex(json, len, cfg, cfg_len, out, info, err);
    lm_free(json);
    lm_free(cfg);
    return st;
}

/* ---- input normalization for NFC / NFKC tokenizers --------------------------------------- */

static lm_status norm_append(char **buf, size_t *n, size_t *cap, const char *s, size_t len) {
    size_t need;
    if (!lm_add_size(*n, len + 1, &need)) return LM_ERR_NOMEM;
    if (need > *cap) {
        size_t nc = *cap ? *cap : 64;
        while (nc < need) {
            if (!lm_mul_size(nc, 2, &nc)) return LM_ERR_NOMEM;
        }
        char *nb = lm_realloc(*buf, nc);
        if (!nb) return LM_ERR_NOMEM;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *n, s, len);
    *n += len;
    (*buf)[*n] = '\0';
    return LM_OK;
}

lm_status lm_hf_normalize(lm_hf_unicode_norm norm, const char *text, size_t len, char **out,
                          size_t *out_len, lm_err *err) {
    char *buf = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *out_len = 0;
    if (norm_append(&buf, &n, &cap, "", 0)) goto nomem;
    int opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (norm == LM_HF_NORM_NFKC ? UTF8PROC_COMPAT : 0);
    for (size_t i = 0; i < len;) {
        /* a maximal run of valid UTF-8 */
        size_t j = i;
        while (j < len) {
            size_t u = lm_utf8_unit((const unsigned char *)text + j, len - j);
            if (u == 1 && (unsigned char)text[j] >= 0x80) break;
            j += u;
        }
        if (j > i) {
            if (norm == LM_HF_NORM_NONE) {
                if (norm_append(&buf, &n, &cap, text + i, j - i)) goto nomem;
            } else {
                utf8proc_uint8_t *r = NULL;
                utf8proc_ssize_t rl =
                    utf8proc_map((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(j - i), &r,
                                 (utf8proc_option_t)opts);
                if (rl < 0) {
                    free(r);
                    if (rl == UTF8PROC_ERROR_NOMEM) goto nomem;
                    /* cannot happen on valid UTF-8; keep the run as it is */
                    if (norm_append(&buf, &n, &cap, text + i, j - i)) goto nomem;
                } else {
                    lm_status s = norm_append(&buf, &n, &cap, (const char *)r, (size_t)rl);
                    free(r); /* utf8proc allocates with malloc */
                    if (s) goto nomem;
                }
            }
            i = j;
        } else {
            if (norm_append(&buf, &n, &cap, text + i, 1)) goto nomem;
            i++;
        }
    }
    *out = buf;
    *out_len = n;
    return LM_OK;
nomem:
    lm_free(buf);
    return lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory normalizing the input");
}
