/*
 * text_internal.h — the library side of lm_vocab (api/text.c): building a vocabulary from a
 * model file the caller already holds open, and tokenizing with an lm_err. A loaded model
 * (engine/engine.c) builds its one lm_vocab this way: its tokenizer and chat template are
 * parsed once, serve the model's sessions and are handed out by lm_model_vocab.
 *
 * A vocabulary built here is the same as lm_vocab_load gives for the file or directory.
 */
#ifndef LM_API_TEXT_INTERNAL_H
#define LM_API_TEXT_INTERNAL_H

#include "lemma.h"

#include "core/status.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

/* The vocabulary of an open GGUF file: its tokenizer.ggml.* keys, tokenizer.chat_template and
 * the texts of its special ids as the template's bos_token / eos_token / ... (g is only read
 * during the call). */
lm_status lm_vocab_from_gguf(const lm_gguf *g, lm_vocab **out, lm_err *err);

/* The vocabulary of a Hugging Face directory from its files: tokenizer_json (required),
 * tokenizer_config and chat_template_jinja (NULL when absent). The template comes from
 * chat_template_jinja, else tokenizer_config's "chat_template". */
lm_status lm_vocab_from_hf_files(const char *tokenizer_json, const char *tokenizer_config,
                                 const char *chat_template_jinja, lm_vocab **out, lm_err *err);

/* The tokenizer inside v (owned by v; NULL when v is NULL). */
const lm_tokenizer *lm_vocab_tokenizer(const lm_vocab *v);

/* lm_vocab_tokenize with the error in an lm_err: the tokenizer.json normalizer (NFC / NFKC)
 * is applied, then the tokenizer. */
lm_status lm_vocab_encode(const lm_vocab *v, const char *text, size_t len, int add_special,
                          int parse_special, int32_t **ids, size_t *n_ids, lm_err *err);

#endif
