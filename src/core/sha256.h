/*
 * sha256.h — SHA-256 for identities and page keys, which must be the same in every process and
 * on every machine (DESIGN.md §4.6) and which callers cannot let fail: a run over OpenSSL's EVP
 * interface (use_fallback 0) or over its allocation-free low-level API (1); lm_sha256_buf tries
 * the first and, should it fail, the second.
 */
#ifndef LM_CORE_SHA256_H
#define LM_CORE_SHA256_H

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lm_sha256 {
    int use_fb;
    int ok; /* every call succeeded so far */
    EVP_MD_CTX *evp;
    SHA256_CTX fb;
} lm_sha256;

void lm_sha256_init(lm_sha256 *r, int use_fallback);
void lm_sha256_update(lm_sha256 *r, const void *p, size_t n);
/* 1 with the digest in out, 0 if any step failed (out untouched); frees the context. */
int lm_sha256_final(lm_sha256 *r, uint8_t out[32]);
/* One-shot SHA-256 that does not fail. */
void lm_sha256_buf(const void *data, size_t len, uint8_t out[32]);

#endif
