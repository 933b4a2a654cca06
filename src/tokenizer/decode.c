/*
 * decode.c — token ids -> text: whole-sequence decode and the streaming detokenizer.
 *
 * A token's bytes are its precomputed piece (vocab.c: GPT-2 alphabet undone, U+2581 -> ' ',
 * <0xNN> -> one byte). Control and unknown tokens render only with LM_DETOK_RENDER_SPECIAL;
 * unused/undefined tokens never render (llama.cpp's token_to_piece). When the vocabulary adds
 * a dummy prefix (SPM), the first token that renders anything loses one leading ' ' (so a BOS
 * in front does not keep the space, as with Hugging Face's skip_special_tokens).
 * clean_spaces is Hugging Face's clean_up_tokenization_spaces as llama.cpp implements it (" ." ->
 * ".", " 's" -> "'s", ...).
 *
 * The stream holds the bytes of a trailing, possibly incomplete UTF-8 sequence back; everything
 * it hands out is valid UTF-8. A sequence that can no longer become valid is replaced by one
 * U+FFFD per maximal invalid subpart (the Unicode "substitution of maximal subparts" practice);
 * an incomplete tail becomes U+FFFD only at flush. clean_spaces is not applied when streaming.
 */
#include "core/alloc.h"
#include "core/checked.h"
#include "tokenizer/tok_internal.h"

#include <string.h>

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static lm_status buf_add(buf *b, const char *s, size_t n) {
    size_t need;
    if (!lm_add_size(b->n, n, &need) || !lm_add_size(need, 1, &need)) return LM_ERR_NOMEM;
    if (need > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < need) {
            if (!lm_mul_size(nc, 2, &nc)) return LM_ERR_NOMEM;
        }
        char *np = lm_realloc(b->p, nc);
        if (!np) return LM_ERR_NOMEM;
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return LM_OK;
}

/* The bytes id renders as under flags (*len may be 0). */
static void render(const lm_tokenizer *tk, int32_t id, unsigned flags, const char **p,
                   size_t *len) {
    int t = tk->types[id];
    *p = tk->piece_pool + tk->piece_off[id];
    *len = tk->piece_len[id];
    if (t == LM_TOKEN_UNUSED || t == LM_TOKEN_UNDEFINED ||
        ((t == LM_TOKEN_CONTROL || t == LM_TOKEN_UNKNOWN) && !(flags & LM_DETOK_RENDER_SPECIAL)))
        *len = 0;
}

static void clean_spaces(char *t, size_t *len) {
    size_t n = *len, o;
    if (n < 2) return;
    /* " ?", " !", " .", " ," lose the space */
    o = 1;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) o--;
        t[o++] = x;
    }
    n = o;
    /* " ' " -> "'" */
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < n && t[i - 1] == ' ' && t[i + 1] == ' ') {
            o--;
            t[++i] = 0;
        }
        t[o++] = x;
    }
    n = o;
    /* " 's", " 'm", " 're", " 've" lose the space */
    o = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm')
                o--;
            else if (i + 2 < n &&
                     ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e')))
                o--;
        }
        t[o++] = x;
    }
    *len = o;
}

lm_status lm_tokenizer_decode(const lm_tokenizer *tk, const int32_t *ids, size_t n, unsigned flags,
                              char **out, size_t *len, lm_err *err) {
    if (!out || !len) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL output");
    *out = NULL;
    *len = 0;
    if (!tk || (!ids && n))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL tokenizer or ids");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= tk->n_vocab)
            return lm_err_set(err, LM_ERR_INVALID_ARG,
                              "tokenizer: token id %d at position %zu out of range [0, %u)",
                              (int)ids[i], i, tk->n_vocab);
    if ((flags & LM_DETOK_REMOVE_BOS_EOS) && tk->add_bos && n && ids[0] == tk->special[LM_TOK_BOS])
        ids++, n--;
    if ((flags & LM_DETOK_REMOVE_BOS_EOS) && tk->add_eos && n &&
        ids[n - 1] == tk->special[LM_TOK_EOS])
        n--;
    buf b = {0};
    if (buf_add(&b, "", 0)) goto nomem;
    int strip = (tk->add_space_prefix || tk->prefix_scheme) && !(flags & LM_DETOK_KEEP_SPACE);
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t l;
        render(tk, ids[i], flags, &p, &l);
        if (strip && l) {
            /* the dummy prefix: on the first token that renders anything */
            if (p[0] == ' ') p++, l--;
            strip = 0;
        }
        if (buf_add(&b, p, l)) goto nomem;
    }
    if (tk->clean_spaces && !(flags & LM_DETOK_NO_CLEAN)) {
        clean_spaces(b.p, &b.n);
        b.p[b.n] = 0;
    }
    *out = b.p;
    *len = b.n;
    return LM_OK;
nomem:
    lm_free(b.p);
    return lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory decoding %zu ids", n);
}

/* ---- streaming --------------------------------------------------------------------------- */

struct lm_detok_stream {
    const lm_tokenizer *tk;
    unsigned flags;
    int first;
    buf pend; /* bytes not yet handed out (an incomplete UTF-8 tail) */
    buf out;  /* what the last call returned */
};

enum { U_VALID, U_INVALID, U_INCOMPLETE };

/* Classifies the UTF-8 sequence at s[0..n): *k = its length (valid), the length of the maximal
 * invalid subpart (invalid), or n (incomplete: a valid prefix that more bytes may finish). */
static int utf8_class(const unsigned char *s, size_t n, size_t *k) {
    unsigned c = s[0];
    size_t need;
    if (c < 0x80) {
        *k = 1;
        return U_VALID;
    }
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4;
    else {
        *k = 1;
        return U_INVALID;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *k = n;
            return U_INCOMPLETE;
        }
        unsigned lo = 0x80, hi = 0xBF, x = s[i];
        if (i == 1) {
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
            else if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        }
        if (x < lo || x > hi) {
            *k = i;
            return U_INVALID;
        }
    }
    *k = need;
    return U_VALID;
}

static lm_status stream_emit(lm_detok_stream *st, int final) {
    const unsigned char *s = (const unsigned char *)st->pend.p;
    size_t n = st->pend.n, i = 0;
    st->out.n = 0;
    if (buf_add(&st->out, "", 0)) return LM_ERR_NOMEM;
    while (i < n) {
        size_t k;
        int c = utf8_class(s + i, n - i, &k);
        if (c == U_INCOMPLETE && !final) break;
        if (c == U_VALID) {
            if (buf_add(&st->out, (const char *)s + i, k)) return LM_ERR_NOMEM;
        } else if (buf_add(&st->out, "\xEF\xBF\xBD", 3)) {
            return LM_ERR_NOMEM;
        }
        i += k;
    }
    memmove(st->pend.p, st->pend.p + i, n - i);
    st->pend.n = n - i;
    return LM_OK;
}

lm_status lm_detok_stream_new(const lm_tokenizer *tk, unsigned flags, lm_detok_stream **out,
                              lm_err *err) {
    if (!out || !tk) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL argument");
    lm_detok_stream *st = lm_calloc(1, sizeof *st);
    if (!st) return lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory (stream)");
    st->tk = tk;
    st->flags = flags;
    st->first = 1;
    *out = st;
    return LM_OK;
}

lm_status lm_detok_stream_feed(lm_detok_stream *st, int32_t id, const char **out, size_t *len,
                               lm_err *err) {
    if (!st || !out || !len) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL arg");
    *out = "";
    *len = 0;
    const lm_tokenizer *tk = st->tk;
    if (id < 0 || (uint32_t)id >= tk->n_vocab)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: token id %d out of range [0, %u)",
                          (int)id, tk->n_vocab);
    const char *p;
    size_t l;
    render(tk, id, st->flags, &p, &l);
    if (st->first && l) {
        if ((tk->add_space_prefix || tk->prefix_scheme) && !(st->flags & LM_DETOK_KEEP_SPACE) &&
            p[0] == ' ')
            p++, l--;
        st->first = 0;
    }
    if (buf_add(&st->pend, p, l) || stream_emit(st, 0))
        return lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory (stream)");
    *out = st->out.p;
    *len = st->out.n;
    return LM_OK;
}

lm_status lm_detok_stream_flush(lm_detok_stream *st, const char **out, size_t *len, lm_err *err) {
    if (!st || !out || !len) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL arg");
    if (buf_add(&st->pend, "", 0) || stream_emit(st, 1))
        return lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory (stream)");
    st->first = 1;
    *out = st->out.p;
    *len = st->out.n;
    return LM_OK;
}

void lm_detok_stream_free(lm_detok_stream *st) {
    if (!st) return;
    lm_free(st->pend.p);
    lm_free(st->out.p);
    lm_free(st);
}
