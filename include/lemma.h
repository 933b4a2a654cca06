/*
 * lemma.h — the public API of liblemma, the only installed header.
 *
 * Conventions (see docs/api.md):
 *   - lm_<class>_<action> names, opaque handles, params structs with lm_*_default_params();
 *   - a function that can fail returns lm_status; the detail goes into a caller-provided
 *     error buffer or the handle's error string; nothing here ever exits or aborts on
 *     input from outside (files, requests, parameters);
 *   - every *_free / *_close accepts NULL.
 */
#ifndef LEMMA_H
#define LEMMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LM_VERSION_MAJOR 0
#define LM_VERSION_MINOR 1
#define LM_VERSION_PATCH 0
#define LM_VERSION_STRING "0.1.0"

typedef enum lm_status {
    LM_OK = 0,
    LM_ERR_INVALID_ARG = 1, /* a parameter from the caller is out of range */
    LM_ERR_IO = 2,          /* open/read/write/mmap failed (errno in the message) */
    LM_ERR_FORMAT = 3,      /* a file or message is malformed: field and value in the message */
    LM_ERR_UNSUPPORTED = 4, /* well-formed but not something lemma can do (yet) */
    LM_ERR_NOMEM = 5,       /* an allocation failed or a configured cap was exceeded */
    LM_ERR_CORRUPT = 6,     /* a checksum or digest did not match */
    LM_ERR_NOT_FOUND = 7,   /* a named object (tensor, key, session) does not exist */
    LM_ERR_MISMATCH = 8,    /* state identity differs from the loaded model */
    LM_ERR_ABORTED = 9,     /* an abort callback asked to stop */
    LM_ERR_INTERNAL = 10,   /* a bug in lemma: please report */
} lm_status;

/* A short constant name for a status ("format error", ...). Never NULL. */
const char *lm_status_str(lm_status s);

/* Version string of the linked library. */
const char *lm_version(void);

/* ---------------------------------------------------------------------------------------
 * Model files: open a .gguf file or a Hugging Face model directory and look inside it,
 * without knowing anything of architectures. Used by `lemma inspect`.
 * ------------------------------------------------------------------------------------ */

typedef struct lm_model_file lm_model_file;

/* Opens PATH (a .gguf file, a .safetensors file or an HF model directory), validates it
 * completely and maps the tensor data. On failure *out is NULL and err (may be NULL) holds a
 * one-line reason naming the field and value. */
lm_status lm_model_file_open(const char *path, lm_model_file **out, char *err, size_t err_len);
void lm_model_file_close(lm_model_file *f);

/* Writes a human-readable (json == 0) or JSON (json != 0) description of the file: format,
 * architecture, hyperparameters, tokenizer summary and the tensor table. Returns a string
 * owned by the caller (free with lm_free_string) or NULL when out of memory. */
char *lm_model_file_describe(const lm_model_file *f, int json);
void lm_free_string(char *s);

/* Converting a GGUF model to another tensor type, as llama-quantize does for a single-type file
 * (`lemma quantize`; the rules: docs/formats/gguf.md, "Converting"). Every metadata key is
 * kept except general.file_type; 2-D weights become the target type, or a fallback where their
 * rows do not fit its blocks; 1-D tensors become f32. The output is written atomically and is
 * the same bytes for the same input and type, whatever the thread count. */
typedef int (*lm_quantize_progress_fn)(void *user, uint64_t tensors_done, uint64_t n_tensors,
                                       uint64_t bytes_done, uint64_t bytes_total);
typedef struct lm_quantize_params {
    const char *type;          /* target type, case-insensitive: one of lm_quantize_type(i) */
    int32_t n_threads;         /* 0 = all online CPUs */
    int allow_requantize;      /* 1: quantized tensors may become another quantized type
                                  (accuracy is lost twice); 0: that is an error */
    lm_quantize_progress_fn progress; /* may be NULL; non-zero return = stop (LM_ERR_ABORTED) */
    void *progress_user;
} lm_quantize_params;
typedef struct lm_quantize_stats {
    uint64_t n_tensors, n_copied, n_converted, n_fallback; /* tensors: all / byte copies /
                                                              converted / given a fallback type */
    uint64_t in_bytes, out_bytes;                          /* file sizes */
} lm_quantize_stats;
lm_quantize_params lm_quantize_default_params(void); /* type "f32", all CPUs */
/* The i-th target type name ("f32", "f16", "bf16", "q8_0", ...), NULL past the last. */
const char *lm_quantize_type(size_t i);
/* Converts in_path to out_path. An unknown type or in == out is LM_ERR_INVALID_ARG; stats may
 * be NULL. On failure nothing is left at out_path (an existing file there is unchanged). */
lm_status lm_model_quantize(const char *in_path, const char *out_path,
                            const lm_quantize_params *params, lm_quantize_stats *stats, char *err,
                            size_t err_len);

/* =======================================================================================
 * Engine: load a model, run sessions, generate. (src/engine/; see docs/engine.md)
 *
 * A session is one conversation's state: the tokens it has seen, their KV cache (paged, f16)
 * and the logits after the last one. Appending tokens runs them through the model in chunks
 * of n_batch (prefill); generating samples tokens one by one and appends each (decode).
 * Errors: lm_model_load/lm_session_new write into a caller buffer; calls on a session put the
 * detail in lm_session_error(s). A failed call leaves the session as it was before it.
 * ===================================================================================== */

typedef struct lm_model lm_model;
typedef struct lm_session lm_session;
typedef struct lm_store lm_store;

typedef struct lm_model_params {
    int32_t n_threads;    /* compute threads; 0 = all online CPUs */
    uint64_t kv_cache_mb; /* memory budget of the model's KV page pool (pages in use by sessions
                             + cached prefix pages, LRU-evicted), MiB; 0 = 2048 */
} lm_model_params;
lm_model_params lm_model_default_params(void);

/* Loads a model: a .gguf file, or a Hugging Face directory (config.json + safetensors, F32/F16/
 * BF16 or MLX affine packs, with tokenizer.json); weights stay mapped from the files.
 * A path that does not exist is taken as the short name of an installed model in the models
 * directory ($LEMMA_MODELS, default ./models): NAME.gguf, else the one .gguf file or directory
 * whose name starts with NAME (case-insensitive); none or several → LM_ERR_NOT_FOUND /
 * LM_ERR_INVALID_ARG naming the candidates. lm_vocab_load resolves names the same way. */
lm_status lm_model_load(const char *path, const lm_model_params *params, lm_model **out,
                        char *err, size_t err_len);
void lm_model_free(lm_model *m);
int32_t lm_model_n_vocab(const lm_model *m);
int32_t lm_model_n_ctx_train(const lm_model *m);
const char *lm_model_arch(const lm_model *m);       /* "llama", "gemma3", ... */
/* 1 if token ends a generation (EOS, end-of-turn). */
int lm_model_token_is_eog(const lm_model *m, int32_t token);
/* Renders a single user message with the model's chat template (generation prompt added).
 * *out is a string to free with lm_free_string. */
lm_status lm_model_chat_prompt(const lm_model *m, const char *user_message, char **out,
                               char *err, size_t err_len);

typedef struct lm_session_params {
    int32_t n_ctx;       /* context length in tokens; 0 = min(model's, 4096) */
    int32_t n_batch;     /* prefill chunk in tokens; default 256 */
    int32_t page_tokens; /* KV page size in tokens; default 256 */
    int prefix_cache;    /* 1 (default): full pages are published in the model's page pool and
                            appended tokens that begin with published pages attach them instead
                            of computing them (automatic prefix reuse; see lm_metrics) */
    lm_store *store;     /* with prefix_cache: also look pages up in this store (may be NULL) */
} lm_session_params;
lm_session_params lm_session_default_params(void);

lm_status lm_session_new(lm_model *m, const lm_session_params *params, lm_session **out,
                         char *err, size_t err_len);
void lm_session_free(lm_session *s);
/* The last error of a call on s ("" if none). Valid until the next call on s. */
const char *lm_session_error(const lm_session *s);

/* Runs tokens through the model after what the session holds. Token ids outside the
 * vocabulary and a total beyond n_ctx are LM_ERR_INVALID_ARG (nothing is appended). */
lm_status lm_session_append_tokens(lm_session *s, const int32_t *tokens, size_t n);
/* Called by lm_session_append_scored with the logits after appended token i (n_vocab floats,
 * valid during the call). Return non-zero to stop: the call then fails with LM_ERR_ABORTED and
 * appends nothing. */
typedef int (*lm_logits_callback)(void *user, size_t i, const float *logits, size_t n_vocab);
/* Appends tokens as lm_session_append_tokens does (prefill in batches of n_batch) and passes the
 * logits after every appended token i >= from to cb, in order: scoring a text in one pass
 * (perplexity, log-likelihoods) instead of one append per token. Pages are not taken from the
 * prefix cache (every position is computed). */
lm_status lm_session_append_scored(lm_session *s, const int32_t *tokens, size_t n, size_t from,
                                   lm_logits_callback cb, void *user);
/* Tokenizes text and appends it; add_special adds BOS etc. as the model wants (use it for the
 * first text of a session), parse_special turns control-token spellings into those tokens. */
lm_status lm_session_append_text(lm_session *s, const char *text, size_t len, int add_special,
                                 int parse_special);
/* Logits after the last appended token: *logits points at n_vocab floats owned by the
 * session, valid until its next append/generate. LM_ERR_INVALID_ARG when empty. */
lm_status lm_session_logits(lm_session *s, const float **logits, size_t *n_vocab);
size_t lm_session_n_tokens(const lm_session *s);
/* Forgets everything after the first n tokens (n <= current length). */
lm_status lm_session_truncate(lm_session *s, size_t n);

/* Added to a token's logit before penalties and sampling. bias may be -INFINITY to ban the
 * token; +INFINITY and NaN are LM_ERR_INVALID_ARG (use a large finite bias to force one), as
 * is a token outside [0, n_vocab). Biases of a token listed twice add up. */
typedef struct lm_logit_bias {
    int32_t token;
    float bias;
} lm_logit_bias;

#define LM_SEED_CONTINUE UINT64_MAX
typedef struct lm_sampler_params {
    float temperature;       /* 0 = greedy (argmax); default 0.8 */
    int32_t top_k;           /* keep the k most likely; 0 = off; default 40 */
    float top_p;             /* nucleus mass in (0, 1]; 1 = off; default 0.95 */
    float min_p;             /* in [0, 1): drop p < min_p * p_max; 0 = off; default 0.05 */
    float repeat_penalty;    /* > 0; 1 = off (default) */
    int32_t repeat_last_n;   /* penalty window in tokens, >= 0; default 64 */
    float frequency_penalty; /* subtracted per occurrence; default 0 */
    float presence_penalty;  /* subtracted once per present token; default 0 */
    uint64_t seed;           /* RNG seed: the same seed and inputs give the same output;
                                LM_SEED_CONTINUE continues the session's own RNG stream (saved
                                by lm_session_sleep, so a woken session draws what it would
                                have drawn) */
    const lm_logit_bias *logit_bias; /* n_logit_bias entries (read during the call only);
                                        default none */
    size_t n_logit_bias;
} lm_sampler_params;
lm_sampler_params lm_sampler_default_params(void);

/* Called for every generated token with the text it completes (valid UTF-8, possibly empty
 * when a character spans tokens or the text may begin a stop string); a last call with token
 * -1 may deliver held-back bytes at the end. Return non-zero to stop generating. */
typedef int (*lm_token_callback)(void *user, int32_t token, const char *text, size_t len);

typedef struct lm_generate_params {
    int32_t max_tokens;          /* > 0; default 128 */
    lm_sampler_params sampling;
    int stop_at_eog;             /* stop after an end-of-generation token (default 1); the
                                    EOG token itself is not passed to the callback */
    lm_token_callback on_token;  /* may be NULL */
    void *user;
    /* Stop strings (default none): generation ends as soon as the generated text (as passed
     * to the callback: special tokens not rendered) contains one of them. Neither the stop
     * string nor anything after it reaches the callback; text that may begin a stop string is
     * held back until decided, and flushed at the end (token -1) if no stop string matched.
     * The token completing a stop string is passed to the callback (with the text before the
     * stop string, possibly empty) but, like an EOG token, not appended to the session.
     * NULL, empty or invalid UTF-8 entries are LM_ERR_INVALID_ARG; needs the model's
     * tokenizer (LM_ERR_UNSUPPORTED without one). */
    const char *const *stop;
    size_t n_stop;
} lm_generate_params;
lm_generate_params lm_generate_default_params(void);

/* Generates up to max_tokens after what the session holds (it must hold at least one token).
 * Generated tokens are appended to the session. */
lm_status lm_session_generate(lm_session *s, const lm_generate_params *params);

typedef struct lm_metrics {
    uint64_t prompt_tokens;    /* tokens appended by lm_session_append_* since the last reset */
    uint64_t generated_tokens; /* tokens sampled by lm_session_generate */
    double prefill_ms;         /* time in prompt processing */
    double decode_ms;          /* time generating (forward + sampling) */
    double prefill_tps;        /* prompt_tokens / prefill seconds */
    double decode_tps;         /* generated_tokens / decode seconds */
    double ttft_ms;            /* first append to first generated token */
    uint64_t reused_tokens;    /* appended tokens whose KV came from the prefix cache (counted
                                  in prompt_tokens too) */
    uint64_t restored_tokens;  /* tokens restored by lm_session_wake */
    double wake_ms;            /* time lm_session_wake took */
} lm_metrics;
void lm_session_metrics(const lm_session *s, lm_metrics *out);
void lm_session_metrics_reset(lm_session *s);


/* ---------------------------------------------------------------------------------------
 * Durable sessions (src/store/, src/engine/session_store.c; docs/formats/store.md).
 *
 * A store is a directory holding sleeping sessions: their KV pages (content-addressed, shared
 * between sessions and stored once), a manifest per session and an index. A session put to
 * sleep can be woken in another process or on another machine and continues exactly: same
 * tokens, KV bytes, last logits and RNG state, nothing recomputed. A session is woken only by
 * the model it was made with (weights, architecture, tokenizer, chat template, KV dtype and
 * page size are compared; LM_ERR_MISMATCH says which differ). Several processes may use one
 * store at once. Session names: 1-128 bytes of [A-Za-z0-9_.-], not starting with '.'.
 * ------------------------------------------------------------------------------------ */

/* Opens or creates the store in dir; NULL = the default store ($LEMMA_STORE, else
 * $XDG_DATA_HOME/lemma/store, else ~/.local/share/lemma/store). */
lm_status lm_store_open(const char *dir, lm_store **out, char *err, size_t err_len);
void lm_store_close(lm_store *st);
const char *lm_store_dir(const lm_store *st);

typedef struct lm_session_info {
    char name[129];
    char parent[129];     /* session it was forked from, "" if none */
    char model[513];      /* description of the model it belongs to */
    uint64_t n_tokens;
    uint64_t created_at;  /* Unix seconds */
    uint64_t updated_at;
    uint64_t bytes;       /* on disk: manifest + every page it references */
    uint64_t shared_bytes;/* of those, pages other sessions reference too */
} lm_session_info;

/* Writes the session's state to the store under name (replacing an older state of that name
 * atomically: a crash leaves the old or the new state, never a mix). Pages the store already
 * holds are not written again. The session stays usable. Errors in lm_session_error(s). */
lm_status lm_session_sleep(lm_session *s, lm_store *st, const char *name);
/* Restores session name for model m into a new session: no token is recomputed, and it can
 * generate at once. params: n_batch / prefix_cache / store as for lm_session_new; n_ctx 0 =
 * the saved context length (a larger one may be asked for; smaller than the saved tokens is
 * LM_ERR_INVALID_ARG); page_tokens 0 = the saved page size (another is LM_ERR_MISMATCH).
 * LM_ERR_NOT_FOUND when the store has no such session. */
lm_status lm_session_wake(lm_model *m, const lm_session_params *params, lm_store *st,
                          const char *name, lm_session **out, char *err, size_t err_len);
/* A new in-memory session that shares every KV page of s (copy-on-write). */
lm_status lm_session_fork(lm_session *s, lm_session **out);

lm_status lm_store_list(lm_store *st, lm_session_info **out, size_t *n, char *err,
                        size_t err_len);
void lm_free_session_infos(lm_session_info *infos);
lm_status lm_store_info(lm_store *st, const char *name, lm_session_info *out, char *err,
                        size_t err_len);
lm_status lm_store_delete(lm_store *st, const char *name, char *err, size_t err_len);
/* A new stored session dst that shares every page of src (no page is copied). dst must not
 * exist. */
lm_status lm_store_fork(lm_store *st, const char *src, const char *dst, char *err,
                        size_t err_len);

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

/* The vocabulary of a loaded model: the one its sessions tokenize and detokenize with
 * (lm_session_append_text, lm_session_generate), the same as lm_vocab_load on the model's
 * path gives, built from the file when the model loaded (nothing is parsed again). Usable
 * with every lm_vocab_* function. Owned by m: valid until lm_model_free(m), never passed to
 * lm_vocab_free. Immutable like any lm_vocab: any number of threads may use it at once, also
 * while sessions of m run. NULL when m is NULL, or when the model has no tokenizer lemma can
 * use (the model then runs on token ids only; lm_session_append_text says why). */
const lm_vocab *lm_model_vocab(const lm_model *m);

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
#endif /* LEMMA_H */
