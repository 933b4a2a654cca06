/*
 * vocab.c — building a tokenizer from an lm_vocab_spec: token table, text hash map, merge
 * table, byte fallback table, special-token list, decoded pieces; accessors.
 *
 * Everything in the spec is validated here once (see the invariants in tokenizer.h); the
 * encoders and decoders then trust the tables. Layout: tok_internal.h.
 */
#include "core/alloc.h"
#include "core/checked.h"
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 and the GPT-2 byte alphabet ------------------------------------------------- */

size_t lm_utf8_unit(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need;
    uint32_t min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4, min = 0x10000;
    else
        return 1;
    if (n < need) return 1;
    uint32_t cp = c & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
    return need;
}

size_t lm_utf8_put(uint32_t cp, char *o) {
    unsigned char *u = (unsigned char *)o;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (unsigned char)(0xF0 | (cp >> 18));
    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 bytes_to_unicode: printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for
 * themselves; the other 68 bytes, in increasing order, become U+0100, U+0101, ... */
static int printable_byte(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t lm_tok_byte_to_cp(unsigned b) {
    b &= 0xFF;
    if (printable_byte(b)) return b;
    uint32_t k = 0;
    for (unsigned x = 0; x < b; x++)
        if (!printable_byte(x)) k++;
    return 256 + k;
}

int lm_tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return printable_byte(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    for (unsigned x = 0; x < 256; x++)
        if (!printable_byte(x) && k-- == 0) return (int)x;
    return -1;
}

/* ---- hash tables -------------------------------------------------------------------------- */

uint64_t lm_tok_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

int32_t lm_tok_lookup(const lm_tokenizer *tk, const char *s, size_t n) {
    if (n == 0 || n > tk->max_token_len) return -1;
    size_t i = (size_t)lm_tok_hash(s, n) & tk->map_mask;
    for (;;) {
        uint32_t e = tk->map[i];
        if (e == 0) return -1;
        uint32_t id = e - 1;
        if (tk->tok_len[id] == n && memcmp(tk->text_pool + tk->tok_off[id], s, n) == 0)
            return (int32_t)id;
        i = (i + 1) & tk->map_mask;
    }
}

static size_t merge_slot(int32_t l, int32_t r, size_t mask) {
    uint64_t h = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & mask;
}

int lm_tok_merge_find(const lm_tokenizer *tk, int32_t l, int32_t r, int32_t *result,
                      int32_t *rank) {
    if (!tk->merges || l < 0 || r < 0) return 0;
    size_t i = merge_slot(l, r, tk->merge_mask);
    for (;;) {
        const lm_merge_ent *e = &tk->merges[i];
        if (e->left < 0) return 0;
        if (e->left == l && e->right == r) {
            *result = e->result;
            *rank = e->rank;
            return 1;
        }
        i = (i + 1) & tk->merge_mask;
    }
}

lm_status lm_idvec_push(lm_idvec *iv, int32_t id) {
    if (iv->n == iv->cap) {
        size_t nc = iv->cap ? iv->cap * 2 : 64;
        int32_t *nv = lm_realloc(iv->v, nc * sizeof *nv);
        if (!nv) return LM_ERR_NOMEM;
        iv->v = nv;
        iv->cap = nc;
    }
    iv->v[iv->n++] = id;
    return LM_OK;
}

/* ---- spec defaults (llama.cpp's per-model defaults) --------------------------------------- */

void lm_vocab_spec_init(lm_vocab_spec *spec, lm_tok_model model) {
    memset(spec, 0, sizeof *spec);
    spec->model = model;
    for (int i = 0; i < LM_TOK_SPECIAL_COUNT; i++)
        spec->special[i] = -1;
    spec->escape_whitespace = 0;
    switch (model) {
    case LM_TOK_MODEL_SPM:
        spec->special[LM_TOK_BOS] = 1;
        spec->special[LM_TOK_EOS] = 2;
        spec->special[LM_TOK_UNK] = 0;
        spec->add_space_prefix = 1;
        spec->escape_whitespace = 1;
        spec->add_bos = 1;
        break;
    case LM_TOK_MODEL_BPE:
        spec->special[LM_TOK_BOS] = 11;
        spec->special[LM_TOK_EOS] = 11;
        spec->byte_encode = 1;
        spec->clean_spaces = 1;
        break;
    case LM_TOK_MODEL_WPM:
        spec->special[LM_TOK_BOS] = 101;
        spec->special[LM_TOK_UNK] = 100;
        spec->special[LM_TOK_SEP] = 102;
        spec->special[LM_TOK_PAD] = 0;
        spec->special[LM_TOK_MASK] = 103;
        spec->add_bos = 1;
        spec->add_sep = 1;
        spec->clean_spaces = 1;
        spec->lowercase = 1;
        spec->strip_accents = 1;
        break;
    }
}

/* ---- build ------------------------------------------------------------------------------- */

static const char *k_special_names[LM_TOK_SPECIAL_COUNT] = {"bos", "eos", "eot", "eom",
                                                            "unk", "sep", "pad", "mask"};

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1 */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    if (hi < 0 || lo < 0) return -1;
    return hi * 16 + lo;
}

/* The bytes token id stands for, appended to *dst (room checked by caller: 2x text). */
static size_t make_piece(const lm_tokenizer *tk, uint32_t id, char *dst) {
    const char *t = tk->text_pool + tk->tok_off[id];
    size_t n = tk->tok_len[id], o = 0;
    int type = tk->types[id];
    if (type == LM_TOKEN_BYTE) {
        dst[0] = (char)byte_token_value(t, n);
        return 1;
    }
    if (type == LM_TOKEN_NORMAL || type == LM_TOKEN_UNDEFINED || type == LM_TOKEN_UNUSED) {
        if (tk->model == LM_TOK_MODEL_BPE && tk->byte_encode) {
            /* undo the GPT-2 alphabet; code points outside it are kept as they are */
            for (size_t i = 0; i < n;) {
                size_t u = lm_utf8_unit((const unsigned char *)t + i, n - i);
                int b = -1;
                if (u > 1 || (unsigned char)t[i] < 0x80) {
                    uint32_t cp = 0;
                    const unsigned char *s = (const unsigned char *)t + i;
                    if (u == 1)
                        cp = s[0];
                    else if (u == 2)
                        cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
                    else
                        cp = 0x110000; /* 3/4-byte code points are never in the alphabet */
                    b = lm_tok_cp_to_byte(cp);
                }
                if (b >= 0)
                    dst[o++] = (char)b;
                else
                    memcpy(dst + o, t + i, u), o += u;
                i += u;
            }
            return o;
        }
        if (tk->escape_whitespace || tk->model == LM_TOK_MODEL_WPM) {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(t + i, "\xE2\x96\x81", 3) == 0) {
                    dst[o++] = ' ';
                    i += 3;
                } else {
                    dst[o++] = t[i++];
                }
            }
            return o;
        }
    }
    memcpy(dst, t, n);
    return n;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* End-of-generation spellings llama.cpp recognises by text. */
static const char *k_eog_texts[] = {
    "<|eot_id|>",    "<|im_end|>",      "<|end|>",
    "<|return|>",    "<|call|>",        "<end_of_turn>",
    "<|endoftext|>", "<|eom_id|>",      "<EOT>",
    "_<EOT>",        "<|end_of_text|>", "<end_of_utterance>",
    "<eos>",         "<turn|>",         "<\uFF5Cend\u2581of\u2581sentence\uFF5C>",
};

lm_status lm_tokenizer_build(const lm_vocab_spec *spec, lm_tokenizer **out, lm_err *err) {
    lm_status st = LM_OK;
    lm_tokenizer *tk = NULL;
    *out = NULL;
    if (!spec || !out) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL argument");
    if (spec->model < LM_TOK_MODEL_SPM || spec->model > LM_TOK_MODEL_WPM)
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "tokenizer: model %d not supported",
                          (int)spec->model);
    if (spec->n_tokens == 0 || !spec->tokens)
        return lm_err_set(err, LM_ERR_FORMAT, "tokenizer: empty vocabulary (0 tokens)");
    if (spec->n_tokens > (size_t)INT32_MAX - 1)
        return lm_err_set(err, LM_ERR_FORMAT, "tokenizer: %zu tokens (max %d)", spec->n_tokens,
                          INT32_MAX - 1);
    if (spec->n_merges && !spec->merges)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: %zu merges but no array",
                          spec->n_merges);
    tk = lm_calloc(1, sizeof *tk);
    if (!tk) goto nomem;
    size_t n = spec->n_tokens;
    tk->model = spec->model;
    tk->n_vocab = (uint32_t)n;
    tk->byte_encode = spec->model == LM_TOK_MODEL_BPE ? spec->byte_encode : 0;
    tk->escape_whitespace = spec->escape_whitespace;
    tk->add_space_prefix = spec->add_space_prefix;
    tk->add_bos = spec->add_bos;
    tk->add_eos = spec->add_eos;
    tk->add_sep = spec->add_sep;
    tk->ignore_merges = spec->ignore_merges;
    tk->clean_spaces = spec->clean_spaces;
    tk->lowercase = spec->lowercase;
    tk->strip_accents = spec->strip_accents;
    tk->max_input_chars_per_word = spec->max_input_chars_per_word;
    /* only BPE with escaped spaces has a Metaspace prefix */
    tk->prefix_scheme =
        spec->model == LM_TOK_MODEL_BPE && spec->escape_whitespace ? spec->prefix_scheme : 0;

    /* token texts */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = spec->tokens[i];
        if (!t)
            return lm_tokenizer_free(tk),
                   lm_err_set(err, LM_ERR_FORMAT, "tokenizer: token %zu is NULL", i);
        size_t l = spec->token_lens ? spec->token_lens[i] : strlen(t);
        if (l > LM_TOK_MAX_TOKEN_LEN) {
            lm_tokenizer_free(tk);
            return lm_err_set(err, LM_ERR_FORMAT, "tokenizer: token %zu is %zu bytes (max %d)", i,
                              l, LM_TOK_MAX_TOKEN_LEN);
        }
        total += l; /* <= 2^31 * 4096: cannot overflow size_t on 64-bit */
        if (l > tk->max_token_len) tk->max_token_len = l;
    }
    if (total > UINT32_MAX / 2) {
        lm_tokenizer_free(tk);
        return lm_err_set(err, LM_ERR_FORMAT, "tokenizer: %zu bytes of token text (max %u)", total,
                          UINT32_MAX / 2);
    }
    tk->text_pool = lm_malloc(total + 1);
    tk->piece_pool = lm_malloc(total * 2 + 1);
    tk->tok_off = lm_calloc(n, sizeof *tk->tok_off);
    tk->tok_len = lm_calloc(n, sizeof *tk->tok_len);
    tk->piece_off = lm_calloc(n, sizeof *tk->piece_off);
    tk->piece_len = lm_calloc(n, sizeof *tk->piece_len);
    tk->scores = lm_calloc(n, sizeof *tk->scores);
    tk->types = lm_calloc(n, 1);
    tk->attrs = lm_calloc(n, 1);
    tk->eog = lm_calloc(n, 1);
    if (!tk->text_pool || !tk->piece_pool || !tk->tok_off || !tk->tok_len || !tk->piece_off ||
        !tk->piece_len || !tk->scores || !tk->types || !tk->attrs || !tk->eog)
        goto nomem;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = spec->token_lens ? spec->token_lens[i] : strlen(spec->tokens[i]);
        memcpy(tk->text_pool + off, spec->tokens[i], l);
        tk->tok_off[i] = (uint32_t)off;
        tk->tok_len[i] = (uint32_t)l;
        off += l;
        int32_t t = spec->types ? spec->types[i] : LM_TOKEN_NORMAL;
        if (t < 0 || t > LM_TOKEN_BYTE) {
            st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: token %zu has type %d (valid 0..6)", i,
                            (int)t);
            goto fail;
        }
        tk->types[i] = (uint8_t)t;
        if (t == LM_TOKEN_BYTE && byte_token_value(tk->text_pool + tk->tok_off[i], l) < 0) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "tokenizer: byte token %zu has text '%.*s' (want <0xNN>)", i,
                            (int)(l > 16 ? 16 : l), tk->text_pool + tk->tok_off[i]);
            goto fail;
        }
        float sc = spec->scores ? spec->scores[i] : 0.0f;
        if (sc != sc) sc = -1e30f; /* NaN would break the merge order */
        tk->scores[i] = sc;
        tk->attrs[i] =
            spec->attrs ? (spec->attrs[i] & (LM_TOK_ATTR_LSTRIP | LM_TOK_ATTR_RSTRIP)) : 0;
    }

    /* text -> id map */
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    tk->map = lm_calloc(cap, sizeof *tk->map);
    if (!tk->map) goto nomem;
    tk->map_mask = cap - 1;
    for (size_t i = 0; i < n; i++) {
        size_t l = tk->tok_len[i];
        if (l == 0) continue; /* an empty token can never be produced by encoding */
        const char *t = tk->text_pool + tk->tok_off[i];
        int32_t dup = lm_tok_lookup(tk, t, l);
        if (dup >= 0) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "tokenizer: duplicate token text '%.*s' (ids %d and %zu)",
                            (int)(l > 40 ? 40 : l), t, (int)dup, i);
            goto fail;
        }
        size_t h = (size_t)lm_tok_hash(t, l) & tk->map_mask;
        while (tk->map[h])
            h = (h + 1) & tk->map_mask;
        tk->map[h] = (uint32_t)i + 1;
    }

    /* special ids */
    for (int k = 0; k < LM_TOK_SPECIAL_COUNT; k++) {
        int32_t id = spec->special[k];
        if (id < -1 || (id >= 0 && (size_t)id >= n)) {
            st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: %s token id %d out of range [0, %zu)",
                            k_special_names[k], (int)id, n);
            goto fail;
        }
        tk->special[k] = id;
    }
    if (tk->add_bos && tk->special[LM_TOK_BOS] < 0) {
        st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: add_bos is set but there is no bos id");
        goto fail;
    }
    if (tk->add_eos && tk->special[LM_TOK_EOS] < 0) {
        st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: add_eos is set but there is no eos id");
        goto fail;
    }
    if (tk->add_sep && tk->special[LM_TOK_SEP] < 0) {
        st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: add_sep is set but there is no sep id");
        goto fail;
    }

    /* end-of-generation set */
    for (size_t i = 0; i < sizeof k_eog_texts / sizeof k_eog_texts[0]; i++) {
        int32_t id = lm_tok_lookup(tk, k_eog_texts[i], strlen(k_eog_texts[i]));
        if (id >= 0) tk->eog[id] = 1;
    }
    if (tk->special[LM_TOK_EOS] >= 0) tk->eog[tk->special[LM_TOK_EOS]] = 1;
    if (tk->special[LM_TOK_EOT] >= 0) tk->eog[tk->special[LM_TOK_EOT]] = 1;
    if (tk->special[LM_TOK_EOM] >= 0) tk->eog[tk->special[LM_TOK_EOM]] = 1;
    if (tk->special[LM_TOK_EOT] < 0) {
        static const char *eot[] = {"<|eot_id|>",    "<|im_end|>",      "<|end|>", "<end_of_turn>",
                                    "<|endoftext|>", "<|end_of_text|>", "<EOT>"};
        for (size_t i = 0; i < sizeof eot / sizeof eot[0] && tk->special[LM_TOK_EOT] < 0; i++)
            tk->special[LM_TOK_EOT] = lm_tok_lookup(tk, eot[i], strlen(eot[i]));
    }

    /* byte fallback table */
    for (int b = 0; b < 256; b++) {
        tk->byte_cp[b] = (uint16_t)lm_tok_byte_to_cp((unsigned)b);
        int32_t id = -1;
        if (tk->byte_encode) {
            char buf[4];
            size_t l = lm_utf8_put(lm_tok_byte_to_cp((unsigned)b), buf);
            id = lm_tok_lookup(tk, buf, l);
        } else {
            static const char hex[] = "0123456789ABCDEF";
            char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            id = lm_tok_lookup(tk, buf, 6);
            if (id < 0 && tk->model == LM_TOK_MODEL_SPM) {
                char c = (char)b;
                id = lm_tok_lookup(tk, &c, 1);
            }
        }
        tk->byte_id[b] = id;
    }

    /* merges: "left right" split at the first space after the first byte */
    if (spec->model == LM_TOK_MODEL_BPE && spec->n_merges) {
        size_t mc = 16;
        while (mc < 2 * spec->n_merges)
            mc *= 2;
        tk->merges = lm_malloc(mc * sizeof *tk->merges);
        if (!tk->merges) goto nomem;
        for (size_t i = 0; i < mc; i++)
            tk->merges[i].left = -1;
        tk->merge_mask = mc - 1;
        char *tmp = lm_malloc(2 * LM_TOK_MAX_TOKEN_LEN + 2);
        if (!tmp) goto nomem;
        for (size_t i = 0; i < spec->n_merges; i++) {
            const char *m = spec->merges[i];
            size_t ml = m ? (spec->merge_lens ? spec->merge_lens[i] : strlen(m)) : 0;
            const char *sp = ml > 1 ? memchr(m + 1, ' ', ml - 1) : NULL;
            if (!sp || i > (size_t)INT32_MAX) {
                lm_free(tmp);
                st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: merge %zu '%.*s' is not 'a b'", i,
                                (int)(ml > 40 ? 40 : ml), m ? m : "");
                goto fail;
            }
            size_t la = (size_t)(sp - m), lb = ml - la - 1;
            int32_t a = lm_tok_lookup(tk, m, la), b = lm_tok_lookup(tk, sp + 1, lb), r = -1;
            if (a >= 0 && b >= 0 && la + lb <= 2 * LM_TOK_MAX_TOKEN_LEN) {
                memcpy(tmp, m, la);
                memcpy(tmp + la, sp + 1, lb);
                r = lm_tok_lookup(tk, tmp, la + lb);
            }
            if (a < 0 || b < 0 || r < 0) {
                lm_free(tmp);
                st = lm_err_set(err, LM_ERR_FORMAT,
                                "tokenizer: merge %zu '%.*s' references a token not in the "
                                "vocabulary ('%.*s')",
                                i, (int)(ml > 40 ? 40 : ml), m,
                                a < 0   ? (int)la
                                : b < 0 ? (int)lb
                                        : (int)ml,
                                a < 0   ? m
                                : b < 0 ? sp + 1
                                        : m);
                goto fail;
            }
            int32_t er, erank;
            if (lm_tok_merge_find(tk, a, b, &er, &erank)) continue; /* first (lowest) rank wins */
            size_t h = merge_slot(a, b, tk->merge_mask);
            while (tk->merges[h].left >= 0)
                h = (h + 1) & tk->merge_mask;
            tk->merges[h] = (lm_merge_ent){a, b, r, (int32_t)i};
            tk->n_merges++;
        }
        lm_free(tmp);
    }

    /* pieces */
    off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = make_piece(tk, (uint32_t)i, tk->piece_pool + off);
        tk->piece_off[i] = (uint32_t)off;
        tk->piece_len[i] = (uint32_t)l;
        off += l;
    }

    /* special tokens, in the order the input is split on them */
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        int t = tk->types[i];
        if (tk->tok_len[i] &&
            (t == LM_TOKEN_CONTROL || t == LM_TOKEN_USER_DEFINED || t == LM_TOKEN_UNKNOWN))
            ns++;
    }
    if (ns) {
        /* sort key: longer text first, then lower id (qsort has no context argument) */
        uint64_t *keys = lm_malloc(ns * sizeof *keys);
        tk->specials = lm_malloc(ns * sizeof *tk->specials);
        if (!keys || !tk->specials) {
            lm_free(keys);
            goto nomem;
        }
        for (size_t i = 0; i < n; i++) {
            int t = tk->types[i];
            if (tk->tok_len[i] &&
                (t == LM_TOKEN_CONTROL || t == LM_TOKEN_USER_DEFINED || t == LM_TOKEN_UNKNOWN))
                keys[tk->n_specials++] =
                    (uint64_t)(LM_TOK_MAX_TOKEN_LEN - tk->tok_len[i]) << 32 | (uint32_t)i;
        }
        qsort(keys, ns, sizeof *keys, cmp_u64);
        for (size_t i = 0; i < ns; i++)
            tk->specials[i] = (int32_t)(uint32_t)keys[i];
        lm_free(keys);
    }

    st = lm_tok_pretok_init(tk, spec, err);
    if (st) goto fail;
    *out = tk;
    return LM_OK;
nomem:
    st = lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory building the vocabulary");
fail:
    lm_tokenizer_free(tk);
    return st;
}

void lm_tokenizer_free(lm_tokenizer *tk) {
    if (!tk) return;
    lm_free(tk->text_pool);
    lm_free(tk->piece_pool);
    lm_free(tk->tok_off);
    lm_free(tk->tok_len);
    lm_free(tk->piece_off);
    lm_free(tk->piece_len);
    lm_free(tk->scores);
    lm_free(tk->types);
    lm_free(tk->attrs);
    lm_free(tk->eog);
    lm_free(tk->map);
    lm_free(tk->merges);
    lm_free(tk->specials);
    for (size_t i = 0; i < tk->n_re; i++)
        pcre2_code_free(tk->re[i]);
    lm_free(tk);
}

/* ---- accessors --------------------------------------------------------------------------- */

size_t lm_tokenizer_n_vocab(const lm_tokenizer *tk) {
    return tk ? tk->n_vocab : 0;
}
lm_tok_model lm_tokenizer_model(const lm_tokenizer *tk) {
    return tk->model;
}
int lm_tokenizer_add_bos(const lm_tokenizer *tk) {
    return tk->add_bos;
}
int lm_tokenizer_add_eos(const lm_tokenizer *tk) {
    return tk->add_eos;
}

int32_t lm_tokenizer_special(const lm_tokenizer *tk, lm_tok_special which) {
    if (!tk || (int)which < 0 || which >= LM_TOK_SPECIAL_COUNT) return -1;
    return tk->special[which];
}

lm_token_type lm_tokenizer_token_type(const lm_tokenizer *tk, int32_t id) {
    if (!tk || id < 0 || (uint32_t)id >= tk->n_vocab) return LM_TOKEN_UNDEFINED;
    return (lm_token_type)tk->types[id];
}

int lm_tokenizer_is_eog(const lm_tokenizer *tk, int32_t id) {
    if (!tk || id < 0 || (uint32_t)id >= tk->n_vocab) return 0;
    return tk->eog[id];
}

int lm_tokenizer_token_text(const lm_tokenizer *tk, int32_t id, const char **ptr, size_t *len) {
    if (!tk || id < 0 || (uint32_t)id >= tk->n_vocab) return 0;
    *ptr = tk->text_pool + tk->tok_off[id];
    *len = tk->tok_len[id];
    return 1;
}

int lm_tokenizer_token_piece(const lm_tokenizer *tk, int32_t id, const char **ptr, size_t *len) {
    if (!tk || id < 0 || (uint32_t)id >= tk->n_vocab) return 0;
    *ptr = tk->piece_pool + tk->piece_off[id];
    *len = tk->piece_len[id];
    return 1;
}

int32_t lm_tokenizer_find(const lm_tokenizer *tk, const char *text, size_t len) {
    return tk ? lm_tok_lookup(tk, text, len) : -1;
}
