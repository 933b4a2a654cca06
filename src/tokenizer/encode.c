/*
 * encode.c — text -> token ids: special-token splitting, then SPM, BPE or WordPiece.
 *
 * The procedure is llama.cpp's (which matches the Hugging Face tokenizers on its test set):
 *  1. Split the input on special tokens: for each control/user-defined/unknown token, longest
 *     text first, every occurrence in the not-yet-split text becomes that id. User-defined
 *     tokens are always split out; control and unknown ones only when parse_special is set.
 *     LSTRIP/RSTRIP attributes eat ASCII whitespace next to the token.
 *  2. Each remaining text fragment goes through the model:
 *     SPM  ' ' -> U+2581 (after a dummy ' ' at the start and after each special token when
 *          add_space_prefix), one symbol per UTF-8 character, repeatedly merge the adjacent
 *          pair whose concatenation is a token with the highest score (ties: leftmost), then
 *          symbols that are not tokens become <0xNN> byte tokens.
 *     BPE  (' ' -> U+2581 when escape_whitespace), pre-tokenizer regexes split words; each word
 *          starts as one symbol per byte (byte-level) or per character (raw), and the adjacent
 *          pair with the lowest merge rank is merged until none is left (ties: leftmost).
 *          With ignore_merges a word that is itself a token is emitted directly.
 *          With prefix_scheme (Metaspace prepend) a U+2581 goes before the fragment first.
 *     WPM  BERT normalisation and splitting exactly as Hugging Face's BertNormalizer and
 *          BertPreTokenizer (character classes from wpm_tables.c), then greedy longest-match
 *          of "U+2581word"; a word over max_input_chars_per_word characters is one unk.
 *  3. BOS/EOS (WPM: [CLS]/[SEP]) around the result when add_special and the vocab says so.
 * Both merge loops use a binary heap of candidate pairs: O(n log n) per word. A popped pair is
 * stale (skipped) when either side has changed length since it was pushed: lengths only grow,
 * so an unchanged length means an unchanged, still-adjacent symbol.
 */
#include "core/alloc.h"
#include "core/checked.h"
#include "tokenizer/tok_internal.h"

#include <string.h>
#include <utf8proc.h>

/* ---- heap of merge candidates ------------------------------------------------------------ */

typedef struct cand {
    double key; /* BPE: rank; SPM: -score. Smaller pops first. */
    int32_t left, right;
    uint32_t llen, rlen;
    int32_t result; /* BPE: merged token id */
} cand;

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static int cand_less(const cand *a, const cand *b) {
    if (a->key != b->key) return a->key < b->key;
    return a->left < b->left;
}

static lm_status heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        cand *nv = lm_realloc(h->v, nc * sizeof *nv);
        if (!nv) return LM_ERR_NOMEM;
        h->v = nv;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return LM_OK;
}

static cand heap_pop(heap *h) {
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *mv = &last;
        if (l < h->n && cand_less(&h->v[l], mv)) m = l, mv = &h->v[l];
        if (r < h->n && cand_less(&h->v[r], mv)) m = r, mv = &h->v[r];
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct sym {
    size_t off;
    uint32_t len; /* 0 = merged into its left neighbour */
    int32_t id;   /* token id of the symbol's text, -1 if none */
    int32_t prev, next;
} sym;

typedef struct enc {
    const lm_tokenizer *tk;
    lm_idvec out;
    heap h;
    sym *s;
    size_t s_cap;
    char *buf; /* scratch text */
    size_t buf_cap;
    lm_tok_matcher m;
    lm_err *err;
    uint32_t *run; /* WPM: decomposed code points awaiting canonical ordering */
    size_t n_run, run_cap;
} enc;

static lm_status ensure_sym(enc *e, size_t n) {
    if (n <= e->s_cap) return LM_OK;
    size_t nc = e->s_cap ? e->s_cap : 64;
    while (nc < n)
        nc *= 2;
    sym *nv = lm_realloc(e->s, nc * sizeof *nv);
    if (!nv) return LM_ERR_NOMEM;
    e->s = nv;
    e->s_cap = nc;
    return LM_OK;
}

static lm_status ensure_buf(enc *e, size_t n) {
    if (n <= e->buf_cap) return LM_OK;
    size_t nc = e->buf_cap ? e->buf_cap : 256;
    while (nc < n) {
        if (!lm_mul_size(nc, 2, &nc)) return LM_ERR_NOMEM;
    }
    char *nv = lm_realloc(e->buf, nc);
    if (!nv) return LM_ERR_NOMEM;
    e->buf = nv;
    e->buf_cap = nc;
    return LM_OK;
}

static lm_status push_bytes_fallback(enc *e, const char *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = e->tk->byte_id[(unsigned char)t[i]];
        if (id < 0) id = e->tk->special[LM_TOK_UNK];
        if (id >= 0 && lm_idvec_push(&e->out, id)) return LM_ERR_NOMEM;
    }
    return LM_OK;
}

/* ---- SPM --------------------------------------------------------------------------------- */

static lm_status spm_try_pair(enc *e, const char *t, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return LM_OK;
    const sym *a = &e->s[l], *b = &e->s[r];
    int32_t id = lm_tok_lookup(e->tk, t + a->off, (size_t)a->len + b->len);
    if (id < 0) return LM_OK;
    cand c = {-(double)e->tk->scores[id], l, r, a->len, b->len, id};
    return heap_push(&e->h, c);
}

static lm_status spm_encode(enc *e, const char *t, size_t n) {
    if (n == 0) return LM_OK;
    if (ensure_sym(e, n)) return LM_ERR_NOMEM;
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t u = lm_utf8_unit((const unsigned char *)t + off, n - off);
        e->s[ns] = (sym){off, (uint32_t)u, -1, ns - 1, -1};
        if (ns > 0) e->s[ns - 1].next = ns;
        ns++;
        off += u;
    }
    e->h.n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (spm_try_pair(e, t, i - 1, i)) return LM_ERR_NOMEM;
    while (e->h.n) {
        cand c = heap_pop(&e->h);
        sym *a = &e->s[c.left], *b = &e->s[c.right];
        if (a->len == 0 || b->len == 0 || a->len != c.llen || b->len != c.rlen) continue;
        a->len += b->len;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) e->s[b->next].prev = c.left;
        if (spm_try_pair(e, t, a->prev, c.left) || spm_try_pair(e, t, c.left, a->next))
            return LM_ERR_NOMEM;
    }
    for (int32_t i = 0; i >= 0 && i < ns; i = e->s[i].next) {
        const sym *x = &e->s[i];
        int32_t id = lm_tok_lookup(e->tk, t + x->off, x->len);
        if (id >= 0) {
            if (lm_idvec_push(&e->out, id)) return LM_ERR_NOMEM;
        } else if (push_bytes_fallback(e, t + x->off, x->len)) {
            return LM_ERR_NOMEM;
        }
    }
    return LM_OK;
}

/* ---- BPE --------------------------------------------------------------------------------- */

static lm_status bpe_try_pair(enc *e, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return LM_OK;
    const sym *a = &e->s[l], *b = &e->s[r];
    int32_t res, rank;
    if (!lm_tok_merge_find(e->tk, a->id, b->id, &res, &rank)) return LM_OK;
    cand c = {(double)rank, l, r, a->len, b->len, res};
    return heap_push(&e->h, c);
}

/* Byte-level form of w (GPT-2 alphabet) into e->buf; returns its length. */
static lm_status byte_encode(enc *e, const char *w, size_t n, size_t *out_len) {
    size_t need;
    if (!lm_mul_size(n, 2, &need) || ensure_buf(e, need + 4)) return LM_ERR_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += lm_utf8_put(e->tk->byte_cp[(unsigned char)w[i]], e->buf + o);
    *out_len = o;
    return LM_OK;
}

static lm_status bpe_word(void *ctx, const char *w, size_t n) {
    enc *e = ctx;
    const lm_tokenizer *tk = e->tk;
    if (n == 0) return LM_OK;
    if (tk->ignore_merges && n <= tk->max_token_len) {
        int32_t id;
        if (tk->byte_encode) {
            size_t bl;
            if (byte_encode(e, w, n, &bl)) return LM_ERR_NOMEM;
            id = lm_tok_lookup(tk, e->buf, bl);
        } else {
            id = lm_tok_lookup(tk, w, n);
        }
        if (id >= 0) return lm_idvec_push(&e->out, id);
    }
    if (tk->newline_word_fix && w[0] == '\n') {
        size_t k = 0;
        while (k < n && w[k] == '\n')
            k++;
        int32_t id = k == n ? lm_tok_lookup(tk, w, n) : -1;
        if (id >= 0) return lm_idvec_push(&e->out, id);
    }
    if (ensure_sym(e, n)) return LM_ERR_NOMEM;
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t u;
        int32_t id;
        if (tk->byte_encode) {
            u = 1;
            id = tk->byte_id[(unsigned char)w[off]];
        } else {
            u = lm_utf8_unit((const unsigned char *)w + off, n - off);
            id = lm_tok_lookup(tk, w + off, u);
        }
        e->s[ns] = (sym){off, (uint32_t)u, id, ns - 1, -1};
        if (ns > 0) e->s[ns - 1].next = ns;
        ns++;
        off += u;
    }
    e->h.n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (bpe_try_pair(e, i - 1, i)) return LM_ERR_NOMEM;
    while (e->h.n) {
        cand c = heap_pop(&e->h);
        sym *a = &e->s[c.left], *b = &e->s[c.right];
        if (a->len == 0 || b->len == 0 || a->len != c.llen || b->len != c.rlen) continue;
        a->len += b->len;
        a->id = c.result;
        b->len = 0;
        a->next = b->next;
        if (b->next >= 0) e->s[b->next].prev = c.left;
        if (bpe_try_pair(e, a->prev, c.left) || bpe_try_pair(e, c.left, a->next))
            return LM_ERR_NOMEM;
    }
    for (int32_t i = 0; i >= 0 && i < ns; i = e->s[i].next) {
        const sym *x = &e->s[i];
        if (x->id >= 0) {
            if (lm_idvec_push(&e->out, x->id)) return LM_ERR_NOMEM;
        } else if (!tk->byte_encode) {
            /* a character the vocabulary lacks: its bytes as <0xNN> tokens, when it has them */
            for (size_t k = 0; k < x->len; k++) {
                int32_t id = tk->byte_id[(unsigned char)w[x->off + k]];
                if (id >= 0 && lm_idvec_push(&e->out, id)) return LM_ERR_NOMEM;
            }
        } /* byte-level: a byte with no token in the vocabulary is dropped (as llama.cpp) */
    }
    return LM_OK;
}

/* prefix: the Metaspace U+2581 goes before this fragment unless it starts with one (or with
 * the ' ' that becomes one) */
static lm_status bpe_encode(enc *e, const char *t, size_t n, int prefix) {
    if (e->tk->escape_whitespace) {
        /* ' ' -> U+2581 (3 bytes) */
        size_t need;
        if (!lm_mul_size(n, 3, &need) || ensure_buf(e, need + 4)) return LM_ERR_NOMEM;
        size_t o = 0;
        if (prefix && n && t[0] != ' ' && !(n >= 3 && !memcmp(t, "\xE2\x96\x81", 3))) {
            memcpy(e->buf, "\xE2\x96\x81", 3);
            o = 3;
        }
        for (size_t i = 0; i < n; i++) {
            if (t[i] == ' ') {
                memcpy(e->buf + o, "\xE2\x96\x81", 3);
                o += 3;
            } else {
                e->buf[o++] = t[i];
            }
        }
        /* the words point into a copy: bpe_word reuses e->buf for scratch */
        char *copy = lm_malloc(o ? o : 1);
        if (!copy) return LM_ERR_NOMEM;
        memcpy(copy, e->buf, o);
        lm_status s = lm_tok_pretok_split(e->tk, &e->m, copy, o, bpe_word, e, e->err);
        lm_free(copy);
        return s;
    }
    return lm_tok_pretok_split(e->tk, &e->m, t, n, bpe_word, e, e->err);
}

/* ---- WordPiece --------------------------------------------------------------------------- */

static int is_ws(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Greedy longest match of "U+2581" + word (word = e->buf[ws..we)). */
static lm_status wpm_word(enc *e, size_t ws, size_t we) {
    const lm_tokenizer *tk = e->tk;
    if (we == ws) return LM_OK;
    if (tk->max_input_chars_per_word) {
        /* Hugging Face WordPiece: an over-long word is one unk, whatever its pieces */
        size_t nc = 0;
        for (size_t k = ws; k < we; k++)
            nc += ((unsigned char)e->buf[k] & 0xC0) != 0x80;
        if (nc > tk->max_input_chars_per_word)
            return tk->special[LM_TOK_UNK] >= 0 ? lm_idvec_push(&e->out, tk->special[LM_TOK_UNK])
                                                : LM_OK;
    }
    /* the word with its prefix lives right after the word buffer's end */
    size_t n = 3 + (we - ws);
    size_t need;
    if (!lm_add_size(we, n, &need) || ensure_buf(e, need)) return LM_ERR_NOMEM;
    char *w = e->buf + we;
    memcpy(w, "\xE2\x96\x81", 3);
    memmove(w + 3, e->buf + ws, we - ws);
    size_t start = e->out.n;
    for (size_t i = 0; i < n;) {
        size_t j = i + tk->max_token_len < n ? i + tk->max_token_len : n;
        int32_t id = -1;
        for (; j > i; j--) {
            id = lm_tok_lookup(tk, w + i, j - i);
            if (id >= 0) break;
        }
        if (id < 0) {
            e->out.n = start;
            break;
        }
        if (lm_idvec_push(&e->out, id)) return LM_ERR_NOMEM;
        i = j;
    }
    if (e->out.n == start && tk->special[LM_TOK_UNK] >= 0)
        return lm_idvec_push(&e->out, tk->special[LM_TOK_UNK]);
    return LM_OK;
}

static lm_status wpm_emit_cp(enc *e, size_t *o, uint32_t cp) {
    if (ensure_buf(e, *o + 8)) return LM_ERR_NOMEM;
    *o += lm_utf8_put(cp, e->buf + *o);
    return LM_OK;
}

/* One normalised code point (after clean-up and NFD): drop nonspacing marks, lowercase, and
 * either extend the current word e->buf[0..*o) or, for punctuation and CJK, make it a word of
 * its own. */
static lm_status wpm_put(enc *e, size_t *o, uint32_t cp) {
    const lm_tokenizer *tk = e->tk;
    if (is_ws(cp)) {
        if (wpm_word(e, 0, *o)) return LM_ERR_NOMEM;
        *o = 0;
        return LM_OK;
    }
    /* only nonspacing marks: spacing (Mc) and enclosing (Me) ones stay, e.g. the Devanagari
     * vowel signs */
    if (tk->strip_accents && lm_wpm_in(lm_wpm_mn, lm_wpm_mn_n, cp)) return LM_OK;
    if (tk->lowercase) {
        if (cp == 0x130) {
            /* U+0130 lowercases to i + U+0307 (reached only without strip_accents, which
             * decomposes it first); neither character is punctuation */
            if (wpm_emit_cp(e, o, 0x69) || wpm_emit_cp(e, o, 0x307)) return LM_ERR_NOMEM;
            return LM_OK;
        }
        int lc = lm_wpm_lower_cp(cp);
        cp = lc >= 0 ? (uint32_t)lc : (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    }
    if (lm_wpm_in(lm_wpm_punct, lm_wpm_punct_n, cp) || is_chinese(cp)) {
        if (wpm_word(e, 0, *o)) return LM_ERR_NOMEM;
        *o = 0;
        if (wpm_emit_cp(e, o, cp) || wpm_word(e, 0, *o)) return LM_ERR_NOMEM;
        *o = 0;
        return LM_OK;
    }
    return wpm_emit_cp(e, o, cp);
}

static unsigned ccc(uint32_t cp) {
    return utf8proc_get_property((utf8proc_int32_t)cp)->combining_class;
}

/* NFD's canonical ordering of the pending run (a starter, if any, then non-starters): the
 * non-starters are stably sorted by combining class (a counting sort: a hostile run of many
 * marks stays linear), then everything goes through wpm_put. */
static lm_status wpm_flush_run(enc *e, size_t *o) {
    size_t n = e->n_run, k0 = n && ccc(e->run[0]) == 0 ? 1 : 0;
    int sorted = 1;
    for (size_t k = k0 + 1; k < n && sorted; k++)
        sorted = ccc(e->run[k - 1]) <= ccc(e->run[k]);
    if (!sorted) {
        /* the second half of e->run (run_cap >= 2 * n) is the sort's output */
        size_t count[257] = {0};
        uint32_t *dst = e->run + e->run_cap / 2;
        for (size_t k = k0; k < n; k++)
            count[ccc(e->run[k]) + 1]++;
        for (size_t c = 1; c < 257; c++)
            count[c] += count[c - 1];
        for (size_t k = k0; k < n; k++)
            dst[count[ccc(e->run[k])]++] = e->run[k];
        memcpy(e->run + k0, dst, (n - k0) * sizeof *dst);
    }
    e->n_run = 0;
    for (size_t k = 0; k < n; k++)
        if (wpm_put(e, o, e->run[k])) return LM_ERR_NOMEM;
    return LM_OK;
}

static lm_status wpm_run_push(enc *e, size_t *o, uint32_t cp) {
    if (ccc(cp) == 0 && e->n_run && wpm_flush_run(e, o)) return LM_ERR_NOMEM;
    if (2 * (e->n_run + 1) > e->run_cap) {
        size_t nc = e->run_cap ? e->run_cap * 2 : 64;
        uint32_t *nv = lm_realloc(e->run, nc * sizeof *nv);
        if (!nv) return LM_ERR_NOMEM;
        e->run = nv;
        e->run_cap = nc;
    }
    e->run[e->n_run++] = cp;
    return LM_OK;
}

/* BERT normalisation and pre-tokenisation in Hugging Face's order: clean_text (delete
 * controls; whitespace splits), CJK isolation, NFD with canonical ordering and dropping of
 * nonspacing marks (strip_accents), lowercase, then the punctuation split. */
static lm_status wpm_encode(enc *e, const char *t, size_t n) {
    const lm_tokenizer *tk = e->tk;
    size_t o = 0; /* the normalised current word is e->buf[0..o) */
    e->n_run = 0;
    for (size_t i = 0; i < n;) {
        size_t u = lm_utf8_unit((const unsigned char *)t + i, n - i);
        utf8proc_int32_t cp0 = 0xFFFD; /* invalid UTF-8: deleted like U+FFFD */
        if (u > 1 || (unsigned char)t[i] < 0x80)
            (void)utf8proc_iterate((const utf8proc_uint8_t *)t + i, (utf8proc_ssize_t)u, &cp0);
        i += u;
        /* deleted before anything else, so it never separates marks being reordered */
        if (lm_wpm_in(lm_wpm_removed, lm_wpm_removed_n, (uint32_t)cp0)) continue;
        /* U+11938 gained its canonical decomposition after the Unicode version of Hugging
         * Face's NFD tables (the only such code point, measured against utf8proc 2.6) */
        if (!tk->strip_accents || cp0 == 0x11938) {
            if (e->n_run && wpm_flush_run(e, &o)) return LM_ERR_NOMEM;
            if (wpm_put(e, &o, (uint32_t)cp0)) return LM_ERR_NOMEM;
            continue;
        }
        utf8proc_int32_t dec[8];
        int bc = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(cp0, dec, 8, UTF8PROC_DECOMPOSE, &bc);
        if (nd < 1 || nd > 8) {
            nd = 1;
            dec[0] = cp0;
        }
        for (utf8proc_ssize_t k = 0; k < nd; k++)
            if (wpm_run_push(e, &o, (uint32_t)dec[k])) return LM_ERR_NOMEM;
    }
    if (e->n_run && wpm_flush_run(e, &o)) return LM_ERR_NOMEM;
    return wpm_word(e, 0, o);
}

/* ---- special-token splitting and the driver ---------------------------------------------- */

typedef struct frag {
    int32_t id; /* -1 = text */
    size_t off, len;
} frag;

typedef struct fragvec {
    frag *v;
    size_t n, cap;
} fragvec;

static lm_status frag_push(fragvec *f, int32_t id, size_t off, size_t len) {
    if (id < 0 && len == 0) return LM_OK;
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        frag *nv = lm_realloc(f->v, nc * sizeof *nv);
        if (!nv) return LM_ERR_NOMEM;
        f->v = nv;
        f->cap = nc;
    }
    f->v[f->n++] = (frag){id, off, len};
    return LM_OK;
}

static int c_isspace(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static lm_status split_specials(const lm_tokenizer *tk, const char *text, size_t len,
                                int parse_special, fragvec *a) {
    fragvec b = {0};
    lm_status st = LM_OK;
    unsigned char present[256] = {0};
    for (size_t i = 0; i < len; i++)
        present[(unsigned char)text[i]] = 1;
    /* Byte pairs that occur in the text (every fragment is a range of it): a token with a pair
     * that never occurs cannot match, which skips the memmem scans of most of a large special
     * set (Gemma 3 has thousands of user-defined tokens) without changing the result. */
    uint64_t pairs[65536 / 64];
    int use_pairs = tk->n_specials > 16 && len >= 2;
    if (use_pairs) {
        memset(pairs, 0, sizeof pairs);
        for (size_t i = 0; i + 1 < len; i++) {
            unsigned p = (unsigned)(unsigned char)text[i] << 8 | (unsigned char)text[i + 1];
            pairs[p >> 6] |= (uint64_t)1 << (p & 63);
        }
    }
    for (size_t k = 0; k < tk->n_specials; k++) {
        int32_t id = tk->specials[k];
        int type = tk->types[id];
        if (!parse_special && (type == LM_TOKEN_CONTROL || type == LM_TOKEN_UNKNOWN)) continue;
        const char *s = tk->text_pool + tk->tok_off[id];
        size_t sl = tk->tok_len[id];
        if (sl > len || !present[(unsigned char)s[0]]) continue;
        if (use_pairs) {
            size_t j = 0;
            for (; j + 1 < sl; j++) {
                unsigned p = (unsigned)(unsigned char)s[j] << 8 | (unsigned char)s[j + 1];
                if (!(pairs[p >> 6] >> (p & 63) & 1)) break;
            }
            if (j + 1 < sl) continue;
        }
        /* any occurrence at all? (most special tokens never occur: no rebuild then) */
        int found = 0;
        for (size_t i = 0; i < a->n && !found; i++)
            if (a->v[i].id < 0 && a->v[i].len >= sl &&
                memmem(text + a->v[i].off, a->v[i].len, s, sl))
                found = 1;
        if (!found) continue;
        b.n = 0;
        for (size_t i = 0; i < a->n; i++) {
            frag f = a->v[i];
            if (f.id >= 0) {
                if ((st = frag_push(&b, f.id, 0, 0))) goto done;
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            for (;;) {
                const char *m = end - pos >= sl ? memmem(text + pos, end - pos, s, sl) : NULL;
                if (!m) break;
                size_t mo = (size_t)(m - text), le = mo;
                if (tk->attrs[id] & LM_TOK_ATTR_LSTRIP)
                    while (le > pos && c_isspace(text[le - 1]))
                        le--;
                if ((st = frag_push(&b, -1, pos, le - pos))) goto done;
                if ((st = frag_push(&b, id, 0, 0))) goto done;
                pos = mo + sl;
                if (tk->attrs[id] & LM_TOK_ATTR_RSTRIP)
                    while (pos < end && c_isspace(text[pos]))
                        pos++;
            }
            if ((st = frag_push(&b, -1, pos, end - pos))) goto done;
        }
        fragvec t = *a;
        *a = b;
        b = t;
    }
done:
    lm_free(b.v);
    return st;
}

lm_status lm_tokenizer_encode(const lm_tokenizer *tk, const char *text, size_t len, int add_special,
                              int parse_special, int32_t **ids, size_t *n_ids, lm_err *err) {
    if (!ids || !n_ids) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL output");
    *ids = NULL;
    *n_ids = 0;
    if (!tk || (!text && len))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL tokenizer or text");
    lm_status st = LM_OK;
    enc e = {.tk = tk, .err = err};
    fragvec fr = {0};
    if (len && (st = frag_push(&fr, -1, 0, len))) goto done;
    if ((st = split_specials(tk, text, len, parse_special, &fr))) goto done;

    int prev_special = 1;
    if (add_special && tk->model == LM_TOK_MODEL_WPM && tk->special[LM_TOK_BOS] >= 0) {
        if ((st = lm_idvec_push(&e.out, tk->special[LM_TOK_BOS]))) goto done;
    } else if (add_special && tk->add_bos) {
        if ((st = lm_idvec_push(&e.out, tk->special[LM_TOK_BOS]))) goto done;
    }
    for (size_t i = 0; i < fr.n; i++) {
        const frag *f = &fr.v[i];
        if (f->id >= 0) {
            if ((st = lm_idvec_push(&e.out, f->id))) goto done;
            prev_special = 1;
            continue;
        }
        const char *t = text + f->off;
        switch (tk->model) {
        case LM_TOK_MODEL_SPM: {
            /* dummy prefix + escaped spaces into a private buffer (spm_encode reads it only) */
            size_t need;
            if (!lm_mul_size(f->len, 3, &need) || !lm_add_size(need, 4, &need) ||
                ensure_buf(&e, need)) {
                st = LM_ERR_NOMEM;
                goto done;
            }
            size_t o = 0;
            if (tk->add_space_prefix && prev_special) {
                memcpy(e.buf, "\xE2\x96\x81", 3);
                o = 3;
            }
            for (size_t k = 0; k < f->len; k++) {
                if (t[k] == ' ' && tk->escape_whitespace) {
                    memcpy(e.buf + o, "\xE2\x96\x81", 3);
                    o += 3;
                } else {
                    e.buf[o++] = t[k];
                }
            }
            st = spm_encode(&e, e.buf, o);
            break;
        }
        case LM_TOK_MODEL_BPE: {
            int prefix = tk->prefix_scheme == LM_TOK_PREFIX_ALWAYS ||
                         (tk->prefix_scheme == LM_TOK_PREFIX_FIRST && f->off == 0);
            st = bpe_encode(&e, t, f->len, prefix);
            break;
        }
        case LM_TOK_MODEL_WPM: st = wpm_encode(&e, t, f->len); break;
        }
        if (st) goto done;
        prev_special = 0;
    }
    if (add_special && tk->model == LM_TOK_MODEL_WPM && tk->special[LM_TOK_SEP] >= 0) {
        if ((st = lm_idvec_push(&e.out, tk->special[LM_TOK_SEP]))) goto done;
    } else if (add_special && tk->add_eos) {
        if ((st = lm_idvec_push(&e.out, tk->special[LM_TOK_EOS]))) goto done;
    }
done:
    if (st == LM_ERR_NOMEM) lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory encoding");
    lm_free(fr.v);
    lm_free(e.h.v);
    lm_free(e.s);
    lm_free(e.buf);
    lm_free(e.run);
    lm_tok_matcher_free(&e.m);
    if (st) {
        lm_free(e.out.v);
        return st;
    }
    *ids = e.out.v;
    *n_ids = e.out.n;
    return LM_OK;
}
