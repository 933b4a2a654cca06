/*
 * lemma_text.h — the text side of the public API: vocabularies (text <-> token ids) and chat
 * templates. These declarations are meant to be merged into include/lemma.h as they stand
 * (section "Text: vocabularies and chat templates"); until then this header includes lemma.h.
 */
#ifndef LEMMA_TEXT_H
#define LEMMA_TEXT_H

#include "lemma.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Text: vocabularies and chat templates. A vocabulary is the tokenizer of a model plus its
 * chat template, loaded without the weights. Immutable once loaded: any function below may
 * run concurrently on one lm_vocab.
 * ------------------------------------------------------------------------------------ */

typedef struct lm_vocab lm_vocab;

/* Loads the vocabulary of MODEL_PATH:
 *   a .gguf file          its tokenizer.ggml.* keys and tokenizer.chat_template;
 *   a directory           tokenizer.json (+ tokenizer_config.json), the chat template from
 *                         chat_template.jinja or tokenizer_config.json "chat_template";
 *   a tokenizer.json file as a directory holding it (its tokenizer_config.json beside it).
 * On failure *out is NULL and err (may be NULL) holds a one-line reason. */
lm_status lm_vocab_load(const char *model_path, lm_vocab **out, char *err, size_t err_len);
void lm_vocab_free(lm_vocab *v);

/* Number of token ids (valid ids are 0 .. n-1). */
size_t lm_vocab_n_tokens(const lm_vocab *v);
/* Special ids, -1 when the vocabulary has none. */
int32_t lm_vocab_bos(const lm_vocab *v);
int32_t lm_vocab_eos(const lm_vocab *v);
int32_t lm_vocab_eot(const lm_vocab *v);
/* 1 if id ends a generation (EOS, end-of-turn and the like), else 0. */
int lm_vocab_is_eog(const lm_vocab *v, int32_t id);
/* The token's text as stored in the vocabulary (not NUL-terminated); LM_ERR_INVALID_ARG when
 * id is out of range. */
lm_status lm_vocab_token_text(const lm_vocab *v, int32_t id, const char **text, size_t *len);

/* Token ids of text[0..len) (any bytes; invalid UTF-8 is tokenized byte by byte).
 * add_special: add what the model adds around a sequence (BOS, EOS, BERT's [CLS]/[SEP]).
 * parse_special: text spelling a special token (e.g. "<|im_start|>") becomes that token;
 * otherwise it is tokenized as plain text. *ids is freed with lm_free_tokens (NULL when
 * *n_ids == 0). */
lm_status lm_vocab_tokenize(const lm_vocab *v, const char *text, size_t len, int add_special,
                            int parse_special, int32_t **ids, size_t *n_ids, char *err,
                            size_t err_len);
void lm_free_tokens(int32_t *ids);

/* The text of ids (the bytes they stand for; may be invalid UTF-8 when the ids split a
 * character). render_special: special tokens appear as their text (else as nothing).
 * *text is NUL-terminated (the NUL not counted in *len); free it with lm_free_string. */
lm_status lm_vocab_detokenize(const lm_vocab *v, const int32_t *ids, size_t n_ids,
                              int render_special, char **text, size_t *len, char *err,
                              size_t err_len);

/* The model's own chat template (Jinja2 source), NULL when it has none. */
const char *lm_vocab_chat_template(const lm_vocab *v);

/* Renders the chat template as transformers' apply_chat_template does: messages_json is a JSON
 * array of message objects ({"role", "content", "tool_calls", ...}); tools_json (NULL = none)
 * a JSON array of tool definitions; add_generation_prompt 0/1; enable_thinking 0/1, or -1 to
 * leave it undefined. bos_token / eos_token (and unk/pad when present) are provided from the
 * vocabulary. A model without a template gets a built-in one for its family (ChatML for
 * <|im_start|> vocabularies, Llama 3, Gemma); LM_ERR_NOT_FOUND when none fits. *out is freed
 * with lm_free_string. Template errors carry the template's line:column. */
lm_status lm_vocab_apply_template(const lm_vocab *v, const char *messages_json,
                                  const char *tools_json, int add_generation_prompt,
                                  int enable_thinking, char **out, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif /* LEMMA_TEXT_H */
