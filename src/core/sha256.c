/*
 * sha256.c — SHA-256 through OpenSSL (core/sha256.h): EVP, and the allocation-free low-level
 * API as a fallback for when EVP cannot allocate its context (deprecated in OpenSSL 3, hence
 * the local pragma; both give the same digest).
 */
#include "core/sha256.h"

#include <string.h>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
static int fb_init(SHA256_CTX *c) {
    return SHA256_Init(c) == 1;
}
static int fb_update(SHA256_CTX *c, const void *p, size_t n) {
    return SHA256_Update(c, p, n) == 1;
}
static int fb_final(SHA256_CTX *c, uint8_t out[32]) {
    return SHA256_Final(out, c) == 1;
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

void lm_sha256_init(lm_sha256 *r, int use_fb) {
    r->use_fb = use_fb;
    r->evp = NULL;
    if (use_fb) {
        r->ok = fb_init(&r->fb);
    } else {
        r->evp = EVP_MD_CTX_new();
        r->ok = r->evp && EVP_DigestInit_ex(r->evp, EVP_sha256(), NULL) == 1;
    }
}

void lm_sha256_update(lm_sha256 *r, const void *p, size_t n) {
    if (!r->ok) return;
    r->ok = r->use_fb ? fb_update(&r->fb, p, n) : EVP_DigestUpdate(r->evp, p, n) == 1;
}

/* Returns 1 with the digest in out, 0 if any step failed (out untouched). */
int lm_sha256_final(lm_sha256 *r, uint8_t out[32]) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int olen = 0;
    if (r->ok) {
        if (r->use_fb)
            r->ok = fb_final(&r->fb, md);
        else
            r->ok = EVP_DigestFinal_ex(r->evp, md, &olen) == 1 && olen == 32;
    }
    EVP_MD_CTX_free(r->evp);
    r->evp = NULL;
    if (r->ok) memcpy(out, md, 32);
    return r->ok;
}

void lm_sha256_buf(const void *data, size_t len, uint8_t out[32]) {
    for (int use_fb = 0; use_fb < 2; use_fb++) {
        lm_sha256 r;
        lm_sha256_init(&r, use_fb);
        lm_sha256_update(&r, data, len);
        if (lm_sha256_final(&r, out)) return;
    }
}

