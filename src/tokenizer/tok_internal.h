/*
 * tok_internal.h — the tokenizer's internal layout, shared by vocab.c, pretok.c, encode.c,
 * decode.c, gguf_vocab.c and wpm_tables.c. Not for use outside src/tokenizer.
 *
 * Layout:
 *   text_pool  all token texts back to back; token i is text_pool[tok_off[i] .. +tok_len[i]).
 *   piece_pool the bytes each token decodes to (see lm_tokenizer_token_piece), same scheme.
 *   map        open-addressing hash table text -> id+1 (0 = empty slot), capacity a power of
 *              two >= 2 * n_vocab; empty texts are not entered.
 *   merges     open-addressing table (left id, right id) -> (rank, result id); rank = the
 *              merge's index in the vocabulary's merge list (lower merges first).
 *   byte_id    [256]: the token a raw byte falls back to: byte-level BPE: the token spelling
 *              the byte in the GPT-2 alphabet; SPM / raw BPE: "<0xNN>" (else the 1-byte text);
 *              -1 if none.
 *   specials   ids of control/user-defined/unknown tokens with non-empty text, longest text
 *              first (ties: lower id first): the order in which the input is split on them.
 */
#ifndef LM_TOKENIZER_TOK_INTERNAL_H
#define LM_TOKENIZER_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

typedef struct lm_merge_ent {
    int32_t left, right; /* -1 left = empty slot */
    int32_t result;
    int32_t rank;
} lm_merge_ent;

struct lm_tokenizer {
    lm_tok_model model;
    uint32_t n_vocab;
    char *text_pool;
    uint32_t *tok_off, *tok_len;
    char *piece_pool;
    uint32_t *piece_off, *piece_len;
    float *scores;  /* [n_vocab] */
    uint8_t *types; /* [n_vocab] lm_token_type */
    uint8_t *attrs; /* [n_vocab] LM_TOK_ATTR_* */
    uint8_t *eog;   /* [n_vocab] 1 = ends generation */
    uint32_t *map;
    size_t map_mask;
    lm_merge_ent *merges;
    size_t merge_mask;
    size_t n_merges;
    int32_t byte_id[256];
    uint16_t byte_cp[256]; /* GPT-2 alphabet: the code point byte b is written as */
    int32_t *specials;
    size_t n_specials;
    size_t max_token_len;
    /* pre-tokenizer */
    pcre2_code *re[LM_TOK_MAX_REGEX];
    size_t n_re;
    int newline_word_fix; /* Gemma 4: a run of '\n' that is a token is emitted whole */
    /* flags (see lm_vocab_spec) */
    int byte_encode, escape_whitespace, add_space_prefix, add_bos, add_eos, add_sep;
    int ignore_merges, clean_spaces, lowercase, strip_accents;
    size_t max_input_chars_per_word; /* WPM; 0 = unlimited */
    int prefix_scheme;               /* BPE: LM_TOK_PREFIX_* */
    int32_t special[LM_TOK_SPECIAL_COUNT];
};

/* FNV-1a over bytes: the hash of the text map. */
uint64_t lm_tok_hash(const char *s, size_t n);
/* id of the token whose stored text is s[0..n), or -1. */
int32_t lm_tok_lookup(const lm_tokenizer *tk, const char *s, size_t n);
/* merge of (l, r): result id and rank, or 0 when the pair does not merge. */
int lm_tok_merge_find(const lm_tokenizer *tk, int32_t l, int32_t r, int32_t *result, int32_t *rank);

/* Length of the UTF-8 sequence starting at s[0] (n >= 1 bytes available): 1..4 for a valid
 * sequence, 1 for a byte that does not start one (so any byte string splits into units). */
size_t lm_utf8_unit(const unsigned char *s, size_t n);
/* GPT-2 bytes_to_unicode: the code point byte b is written as; and the reverse (-1 if cp is
 * not in the alphabet). */
uint32_t lm_tok_byte_to_cp(unsigned b);
int lm_tok_cp_to_byte(uint32_t cp);
/* Writes cp as UTF-8 into out (4 bytes room); returns the length. */
size_t lm_utf8_put(uint32_t cp, char *out);

/* Hugging Face BERT character classes (wpm_tables.c): ranges [lo, hi], ascending.
 * removed: what clean_text deletes; mn: what strip_accents drops after NFD; punct: what
 * BertPreTokenizer isolates. lm_wpm_in: 1 if c lies in one of the n ranges of r. */
extern const uint32_t lm_wpm_removed[][2], lm_wpm_mn[][2], lm_wpm_punct[][2];
extern const size_t lm_wpm_removed_n, lm_wpm_mn_n, lm_wpm_punct_n;
int lm_wpm_in(const uint32_t (*r)[2], size_t n, uint32_t c);
/* Hugging Face's lowercase of c where utf8proc's differs (newer case pairs), else -1. */
extern const uint32_t lm_wpm_lower[][2];
extern const size_t lm_wpm_lower_n;
int lm_wpm_lower_cp(uint32_t c);

/* Compiles the pre-tokenizer of spec into tk (regex list or name). */
lm_status lm_tok_pretok_init(lm_tokenizer *tk, const lm_vocab_spec *spec, lm_err *err);

/* Growable id vector used by the encoders. */
typedef struct lm_idvec {
    int32_t *v;
    size_t n, cap;
} lm_idvec;
lm_status lm_idvec_push(lm_idvec *iv, int32_t id);

/* Per-call PCRE2 match state (match data, context, JIT stack): one per encode call, so that
 * concurrent encodes never share it. Zero-initialise; lm_tok_pretok_split sets it up lazily. */
typedef struct lm_tok_matcher {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
} lm_tok_matcher;
lm_status lm_tok_matcher_init(lm_tok_matcher *m);
void lm_tok_matcher_free(lm_tok_matcher *m);

/* Splits text[0..len) with the regex list: calls fn for each piece in order. */
typedef lm_status (*lm_tok_piece_fn)(void *ctx, const char *s, size_t n);
lm_status lm_tok_pretok_split(const lm_tokenizer *tk, lm_tok_matcher *m, const char *text,
                              size_t len, lm_tok_piece_fn fn, void *ctx, lm_err *err);

#endif
