/*
 * tokenizer.h — exact text <-> token id conversion for GGUF (and later tokenizer.json)
 * vocabularies.
 *
 * Models (lm_tok_model):
 *   SPM  SentencePiece BPE as llama.cpp runs it (tokenizer.ggml.model "llama"): spaces -> U+2581,
 *        optional dummy-prefix space, greedy highest-score pair merging, <0xNN> byte fallback.
 *   BPE  merges-ranked BPE ("gpt2", "gemma4"): pre-tokenizer regexes split the text into words;
 *        byte_encode = 1 is GPT-2 byte-level BPE (the vocabulary is written in the GPT-2
 *        bytes->unicode alphabet, each word starts as one symbol per byte); byte_encode = 0 is
 *        raw-UTF-8 BPE (Gemma 4: one symbol per character, <0xNN> byte fallback).
 *   WPM  BERT WordPiece ("bert"): BERT normalizer, greedy longest match, word-initial pieces
 *        carry a U+2581 prefix in the GGUF vocabulary (llama.cpp's converter writes them so).
 *
 * Building: every constructor ends in lm_tokenizer_build(spec): the GGUF loader fills an
 * lm_vocab_spec from the file's tokenizer.* keys; a tokenizer.json loader fills the same struct
 * (model type, vocab strings, scores, token types, merges "left right", added tokens as
 * user-defined/control types, pre-tokenizer name or explicit regex list, normalizer flags,
 * special ids). The spec only borrows its arrays; build copies what it keeps.
 *
 * Invariants after a successful build (all input is hostile until then):
 *   - n_vocab >= 1 and every id stored in the tokenizer (special ids, merge parts and results,
 *     byte-fallback ids) is in [0, n_vocab) or -1;
 *   - token texts are unique (duplicates are refused) and at most LM_TOK_MAX_TOKEN_LEN bytes;
 *   - every merge names two tokens whose concatenation is itself a token;
 *   - every token of type BYTE has the text "<0xNN>" with two hex digits.
 * Encoding never fails on any input bytes (invalid UTF-8 included) except for allocation
 * failure; every id it returns is in range. Decoding accepts any int32 id and reports
 * out-of-range ids as LM_ERR_INVALID_ARG.
 *
 * Thread safety: a built tokenizer is immutable; encode/decode may run concurrently on it.
 * A detok stream is single-threaded.
 */
#ifndef LM_TOKENIZER_TOKENIZER_H
#define LM_TOKENIZER_TOKENIZER_H

#include "core/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lm_gguf lm_gguf;
typedef struct lm_tokenizer lm_tokenizer;

#define LM_TOK_MAX_TOKEN_LEN 4096 /* bytes; longer token texts are refused */
#define LM_TOK_MAX_REGEX 8        /* pre-tokenizer regexes applied in sequence */

typedef enum lm_tok_model {
    LM_TOK_MODEL_SPM = 1,
    LM_TOK_MODEL_BPE = 2,
    LM_TOK_MODEL_WPM = 3,
} lm_tok_model;

/* Token types: the GGUF tokenizer.ggml.token_type numbering (= sentencepiece's). */
typedef enum lm_token_type {
    LM_TOKEN_UNDEFINED = 0,
    LM_TOKEN_NORMAL = 1,
    LM_TOKEN_UNKNOWN = 2,
    LM_TOKEN_CONTROL = 3,
    LM_TOKEN_USER_DEFINED = 4,
    LM_TOKEN_UNUSED = 5,
    LM_TOKEN_BYTE = 6,
} lm_token_type;

/* Per-token attribute bits (spec.attrs): whitespace stripping around a special token when the
 * text is split on it (Hugging Face AddedToken lstrip/rstrip). */
#define LM_TOK_ATTR_LSTRIP 1u
#define LM_TOK_ATTR_RSTRIP 2u

/* spec.prefix_scheme values */
#define LM_TOK_PREFIX_NEVER 0
#define LM_TOK_PREFIX_FIRST 1
#define LM_TOK_PREFIX_ALWAYS 2

/* Special token roles (index into spec.special / lm_tokenizer_special). */
typedef enum lm_tok_special {
    LM_TOK_BOS = 0,
    LM_TOK_EOS,
    LM_TOK_EOT,
    LM_TOK_EOM,
    LM_TOK_UNK,
    LM_TOK_SEP,
    LM_TOK_PAD,
    LM_TOK_MASK,
    LM_TOK_SPECIAL_COUNT
} lm_tok_special;

/*
 * Everything a tokenizer is built from. Arrays are borrowed, must be aligned C arrays (the
 * GGUF loader copies unaligned file data first) and are not kept after lm_tokenizer_build.
 * Fill with lm_vocab_spec_init(spec, model), which sets the model's default flags and special
 * ids exactly as llama.cpp does, then override what the source says.
 */
typedef struct lm_vocab_spec {
    lm_tok_model model;
    size_t n_tokens;
    const char *const
        *tokens;              /* [n_tokens] token text as stored (byte-level BPE: GPT-2 alphabet) */
    const size_t *token_lens; /* [n_tokens] bytes; NULL = NUL-terminated strings */
    const float *scores;      /* [n_tokens] SPM merge priority; NULL = all 0 */
    const int32_t *types;     /* [n_tokens] lm_token_type; NULL = all NORMAL */
    const uint8_t *attrs;     /* [n_tokens] LM_TOK_ATTR_* bits; NULL = none */
    size_t n_merges;
    const char *const *merges; /* [n_merges] "left right", rank = index (BPE only) */
    const size_t *merge_lens;  /* [n_merges]; NULL = NUL-terminated */
    /* Pre-tokenizer (BPE): a llama.cpp tokenizer.ggml.pre name ("gpt-2", "llama-bpe", "qwen2",
     * ...; NULL or "" = "default"), or an explicit list of PCRE2 patterns applied in sequence
     * (each splits every piece of the previous one into matches and the gaps between them). */
    const char *pre;
    size_t n_regex;
    const char *const *regex;
    int byte_encode;       /* BPE: GPT-2 byte-level alphabet (1) or raw UTF-8 (0) */
    int escape_whitespace; /* ' ' -> U+2581 before the model (SPM, Gemma 4) */
    int add_space_prefix;  /* SPM: a ' ' before text that starts the input or follows a special */
    /* BPE with escape_whitespace: Hugging Face Metaspace prepend_scheme, a U+2581 before a text
     * fragment (the text between special/added tokens) that does not already start with ' ' or
     * U+2581: LM_TOK_PREFIX_FIRST only the fragment that starts the input, LM_TOK_PREFIX_ALWAYS
     * every fragment. Decoding then drops the first rendered space, as for add_space_prefix. */
    int prefix_scheme;
    int add_bos, add_eos, add_sep; /* what add_special = 1 adds (WPM: BOS=[CLS] .. SEP) */
    int ignore_merges;            /* BPE: a whole pre-token that is in the vocab is emitted as is */
    int clean_spaces;             /* decode: Hugging Face clean_up_tokenization_spaces */
    int lowercase, strip_accents; /* WPM BERT normalizer (strip_accents: NFD, drop Mn) */
    /* WPM: a word of more characters than this becomes unk as a whole (Hugging Face WordPiece
     * max_input_chars_per_word, 100 in BERT exports); 0 = unlimited (llama.cpp, GGUF) */
    size_t max_input_chars_per_word;
    int32_t special[LM_TOK_SPECIAL_COUNT]; /* ids or -1 */
} lm_vocab_spec;

void lm_vocab_spec_init(lm_vocab_spec *spec, lm_tok_model model);
/* Applies a llama.cpp pre-tokenizer name's flags to spec (ignore_merges, clean_spaces, add_bos,
 * escape_whitespace, byte_encode) and sets spec->pre. LM_ERR_UNSUPPORTED for unknown names. */
lm_status lm_vocab_spec_set_pre(lm_vocab_spec *spec, const char *pre, lm_err *err);

lm_status lm_tokenizer_build(const lm_vocab_spec *spec, lm_tokenizer **out, lm_err *err);
/* Reads tokenizer.ggml.* from an open GGUF. */
lm_status lm_tokenizer_from_gguf(const lm_gguf *g, lm_tokenizer **out, lm_err *err);
void lm_tokenizer_free(lm_tokenizer *tk);

/* add_special: prepend BOS / append EOS (and SEP for WPM) as the vocabulary's flags say.
 * parse_special: text spelling a control/unknown token becomes that id; user-defined tokens are
 * always matched first (as Hugging Face does with added tokens). *ids is lm_malloc'ed (free with
 * lm_free); *ids may be NULL when *n_ids == 0. */
lm_status lm_tokenizer_encode(const lm_tokenizer *tk, const char *text, size_t len, int add_special,
                              int parse_special, int32_t **ids, size_t *n_ids, lm_err *err);

size_t lm_tokenizer_n_vocab(const lm_tokenizer *tk);
lm_tok_model lm_tokenizer_model(const lm_tokenizer *tk);
int32_t lm_tokenizer_special(const lm_tokenizer *tk, lm_tok_special which); /* -1 if none */
int lm_tokenizer_add_bos(const lm_tokenizer *tk);
int lm_tokenizer_add_eos(const lm_tokenizer *tk);
/* Type of id, LM_TOKEN_UNDEFINED when out of range. */
lm_token_type lm_tokenizer_token_type(const lm_tokenizer *tk, int32_t id);
/* 1 if id ends generation (EOS, EOT, EOM and the end-of-turn spellings llama.cpp knows). */
int lm_tokenizer_is_eog(const lm_tokenizer *tk, int32_t id);
/* The token's text as stored in the vocabulary (not NUL-terminated). 0 if out of range. */
int lm_tokenizer_token_text(const lm_tokenizer *tk, int32_t id, const char **ptr, size_t *len);
/* The bytes a token stands for (byte-level alphabet undone, U+2581 -> ' ', <0xNN> -> byte);
 * control/unknown tokens give their text. 0 if out of range. */
int lm_tokenizer_token_piece(const lm_tokenizer *tk, int32_t id, const char **ptr, size_t *len);
/* Looks a token up by its stored text; -1 if absent. */
int32_t lm_tokenizer_find(const lm_tokenizer *tk, const char *text, size_t len);

/* Decode flags. Default (0) = llama.cpp's detokenize(remove_special=false,
 * unparse_special=false): control/unknown/unused tokens render as nothing, the SPM dummy-prefix
 * space of the first token is removed, clean_spaces applies when the vocabulary asks for it. */
#define LM_DETOK_RENDER_SPECIAL 1u /* control/unknown tokens render as their text */
#define LM_DETOK_REMOVE_BOS_EOS 2u /* drop a leading BOS / trailing EOS that add_special added */
#define LM_DETOK_KEEP_SPACE 4u     /* keep the leading dummy-prefix space */
#define LM_DETOK_NO_CLEAN 8u       /* never apply clean_up_tokenization_spaces */

/* Bytes of ids (may be invalid UTF-8 when the ids split a character). *out is lm_malloc'ed and
 * NUL-terminated (the NUL not counted in *len). */
lm_status lm_tokenizer_decode(const lm_tokenizer *tk, const int32_t *ids, size_t n, unsigned flags,
                              char **out, size_t *len, lm_err *err);

/* Streaming detokenizer: feed ids one by one, get back only complete, valid UTF-8. A trailing
 * incomplete sequence is held back until a later token completes it; bytes that can never
 * form a character become U+FFFD; flush turns a still-incomplete tail into U+FFFD.
 * Output pointers stay valid until the next call on the stream. */
typedef struct lm_detok_stream lm_detok_stream;
lm_status lm_detok_stream_new(const lm_tokenizer *tk, unsigned flags, lm_detok_stream **out,
                              lm_err *err);
lm_status lm_detok_stream_feed(lm_detok_stream *st, int32_t id, const char **out, size_t *len,
                               lm_err *err);
lm_status lm_detok_stream_flush(lm_detok_stream *st, const char **out, size_t *len, lm_err *err);
void lm_detok_stream_free(lm_detok_stream *st);

#endif
