/*
 * hf_tokenizer.h — tokenizers built from Hugging Face tokenizer.json (+ tokenizer_config.json).
 *
 * The loader reads the `tokenizers` library's serialization (strict JSON, size- and
 * depth-capped), maps it onto an lm_vocab_spec and builds it with lm_tokenizer_build. Every
 * component it cannot reproduce exactly is refused with LM_ERR_UNSUPPORTED naming the
 * component (never silently approximated). See hf_tokenizer.c for the mapping.
 */
#ifndef LM_TOKENIZER_HF_TOKENIZER_H
#define LM_TOKENIZER_HF_TOKENIZER_H

#include "tokenizer/tokenizer.h"

#define LM_HF_TOKENIZER_MAX_BYTES ((size_t)128 << 20) /* tokenizer.json file size cap */
#define LM_HF_TOKCONFIG_MAX_BYTES ((size_t)16 << 20)  /* tokenizer_config.json size cap */
#define LM_HF_MAX_VOCAB ((size_t)1 << 22)             /* ids are < this */
#define LM_HF_MAX_MERGES ((size_t)1 << 23)
#define LM_HF_MAX_PATTERN 4096 /* bytes of one Split regex */

/* Unicode normalization a tokenizer.json asks for before tokenization, which the tokenizer core
 * does not do itself: callers of the _ex loaders apply it to the text (lm_hf_normalize) before
 * lm_tokenizer_encode. */
typedef enum lm_hf_unicode_norm {
    LM_HF_NORM_NONE = 0,
    LM_HF_NORM_NFC = 1,
    LM_HF_NORM_NFKC = 2,
} lm_hf_unicode_norm;

typedef struct lm_hf_info {
    lm_hf_unicode_norm norm; /* what the caller must apply to the input text */
} lm_hf_info;

/* Reads tokenizer_json_path and, when not NULL, tokenizer_config_path (missing config file =
 * as if NULL). */
lm_status lm_tokenizer_from_hf_json(const char *tokenizer_json_path,
                                    const char *tokenizer_config_path, lm_tokenizer **out,
                                    lm_err *err);

/* Same from memory: json[0..len) is tokenizer.json; config[0..config_len) is
 * tokenizer_config.json (config may be NULL). */
lm_status lm_tokenizer_from_hf_json_text(const char *json, size_t len, const char *config,
                                         size_t config_len, lm_tokenizer **out, lm_err *err);

/* As above; with info != NULL an NFC / NFKC normalizer (first in the chain) is accepted and
 * reported in info->norm instead of being refused with LM_ERR_UNSUPPORTED. */
lm_status lm_tokenizer_from_hf_json_ex(const char *tokenizer_json_path,
                                       const char *tokenizer_config_path, lm_tokenizer **out,
                                       lm_hf_info *info, lm_err *err);
lm_status lm_tokenizer_from_hf_json_text_ex(const char *json, size_t len, const char *config,
                                            size_t config_len, lm_tokenizer **out, lm_hf_info *info,
                                            lm_err *err);

/* Applies norm to text[0..len): each maximal run of valid UTF-8 is normalized, invalid bytes
 * are kept as they are. *out is lm_malloc'ed and NUL-terminated (not counted in *out_len). */
lm_status lm_hf_normalize(lm_hf_unicode_norm norm, const char *text, size_t len, char **out,
                          size_t *out_len, lm_err *err);

#endif
