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

#ifdef __cplusplus
}
#endif
#endif /* LEMMA_H */
