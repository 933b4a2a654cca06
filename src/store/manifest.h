/*
 * manifest.h — session manifests and page blob headers: encode and validate
 * (docs/formats/store.md §3, §4). Pure functions over bytes: no files, no model.
 *
 * Decoders take hostile bytes: every rule of the spec is checked, every failure is an lm_status
 * with a message naming the field ("manifest: n_pages 3 != ceil(n_tokens 700 / 256)").
 */
#ifndef LM_STORE_MANIFEST_H
#define LM_STORE_MANIFEST_H

#include "core/status.h"
#include "kv/kv.h"

#include <stddef.h>
#include <stdint.h>

#define LM_STORE_FORMAT_VERSION 1
#define LM_SESSION_NAME_MAX 128
#define LM_MODEL_DESC_MAX 512
#define LM_MANIFEST_MAX_CTX (1u << 24)
#define LM_PAGE_HEADER_BYTES 128
#define LM_KV_DTYPE_F16 1

/* What a session's state depends on (docs/formats/store.md §2). */
typedef struct lm_identity {
    uint8_t weights[32];
    uint8_t arch[32];
    uint8_t tokenizer[32];
    uint8_t chat_template[32];
    uint8_t kv_id[32];       /* lm_identity_kv_id() of the fields above and below */
    uint32_t kv_dtype;       /* LM_KV_DTYPE_F16 */
    uint32_t page_tokens;
    uint32_t n_layer;
    uint32_t kv_dim;
} lm_identity;

/* kv_id = SHA-256("lemma-kv-id-v1\0" || weights || arch || u32 kv_dtype || u32 page_tokens ||
 * u32 n_layer || u32 kv_dim). */
void lm_identity_kv_id(const lm_identity *id, uint8_t out[32]);
/* Compares a session's identity (`have`) with the loaded model's (`want`): LM_OK when equal,
 * else LM_ERR_MISMATCH with a message listing every component that differs ("weights",
 * "tokenizer", "chat template", "page size 256 vs 128", ...). what names the session. */
lm_status lm_identity_compare(const lm_identity *have, const lm_identity *want,
                              const char *what, lm_err *err);

/* A page as a manifest names it. */
typedef struct lm_page_ref {
    lm_kv_key key;
    lm_kv_digest content;
    uint32_t n_filled;
} lm_page_ref;

typedef struct lm_manifest {
    char name[LM_SESSION_NAME_MAX + 1];
    char parent[LM_SESSION_NAME_MAX + 1]; /* "" = none */
    char model[LM_MODEL_DESC_MAX + 1];    /* human description of the model */
    uint64_t created_at, updated_at;      /* Unix seconds */
    lm_identity id;
    uint32_t n_ctx;
    uint64_t n_tokens;
    int32_t *tokens;                      /* (n_tokens) */
    uint32_t n_pages;
    lm_page_ref *pages;                   /* (n_pages) */
    uint32_t n_vocab;                     /* 0 = no logits */
    float *logits;                        /* (n_vocab) */
    uint32_t rng_valid;
    uint64_t rng[4];
} lm_manifest;

/* Session names (docs/formats/store.md §1): LM_OK or LM_ERR_INVALID_ARG saying what is wrong. */
lm_status lm_session_name_check(const char *name, lm_err *err);

/* Serialises m (which must itself satisfy every rule; checked) into a new buffer *out (free
 * with lm_free). */
lm_status lm_manifest_encode(const lm_manifest *m, uint8_t **out, size_t *len, lm_err *err);
/* Parses and validates a manifest. expect_name (may be NULL) must equal the stored name.
 * On success *out is a new manifest (free with lm_manifest_free). */
lm_status lm_manifest_decode(const uint8_t *buf, size_t len, const char *expect_name,
                             lm_manifest **out, lm_err *err);
void lm_manifest_free(lm_manifest *m); /* NULL ok; frees the arrays too */

/* Page blob header (docs/formats/store.md §3). */
typedef struct lm_page_header {
    lm_kv_key key;
    lm_kv_digest content;
    uint8_t kv_id[32];
    uint32_t kv_dtype, page_tokens, n_layer, kv_dim, n_filled;
} lm_page_header;

/* Payload bytes of a page with this geometry and n_filled (0 on overflow / bad geometry). */
size_t lm_page_payload_bytes(const lm_page_header *h);
/* Writes the 128-byte header for h into out. */
void lm_page_header_encode(const lm_page_header *h, uint8_t out[LM_PAGE_HEADER_BYTES]);
/* Validates a whole page blob (header + payload, len bytes) against the expected header:
 * every field, the header checksum, the file size and the payload's XXH3-128. On success
 * *payload points into buf. */
lm_status lm_page_blob_check(const uint8_t *buf, size_t len, const lm_page_header *expect,
                             const uint8_t **payload, lm_err *err);
/* XXH3-128 of bytes in the store's byte order. */
void lm_digest128(const void *data, size_t len, lm_kv_digest *out);

#endif
