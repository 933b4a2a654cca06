/*
 * page_key.c — the key of a KV page (docs/formats/store.md §2):
 *
 *     key = SHA-256("lemma-kv-page-v1\0" || kv_id || parent || u32 n || i32 t[0] .. i32 t[n-1])
 *
 * parent is 32 zero bytes for the first page of a sequence; integers are little-endian, written
 * byte by byte so the key is the same on every host. Keys must never differ between processes
 * or machines (DESIGN.md §4.6) and this function cannot report failure, so it hashes with
 * OpenSSL's EVP interface and, should that fail (only when libcrypto cannot allocate its
 * context), hashes again from the start with OpenSSL's allocation-free low-level SHA-256
 * (deprecated in OpenSSL 3, hence the local pragma), which gives the same digest.
 *
 * lm_sha256_buf (declared where used: store/manifest.c) is the same one-shot SHA-256 for the
 * KV identity.
 */
#include "kv/kv.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

void lm_sha256_buf(const void *data, size_t len, uint8_t out[32]);

/* A running SHA-256 over EVP, or (use_fb) over the low-level API. */
typedef struct sha256_run {
    int use_fb;
    int ok; /* every call succeeded so far */
    EVP_MD_CTX *evp;
    SHA256_CTX fb;
} sha256_run;

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

static void run_init(sha256_run *r, int use_fb) {
    r->use_fb = use_fb;
    r->evp = NULL;
    if (use_fb) {
        r->ok = fb_init(&r->fb);
    } else {
        r->evp = EVP_MD_CTX_new();
        r->ok = r->evp && EVP_DigestInit_ex(r->evp, EVP_sha256(), NULL) == 1;
    }
}

static void run_update(sha256_run *r, const void *p, size_t n) {
    if (!r->ok) return;
    r->ok = r->use_fb ? fb_update(&r->fb, p, n) : EVP_DigestUpdate(r->evp, p, n) == 1;
}

/* Returns 1 with the digest in out, 0 if any step failed (out untouched). */
static int run_final(sha256_run *r, uint8_t out[32]) {
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
        sha256_run r;
        run_init(&r, use_fb);
        run_update(&r, data, len);
        if (run_final(&r, out)) return;
    }
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int page_key_with(int use_fb, const uint8_t kv_id[32], const lm_kv_key *parent,
                         const int32_t *tokens, size_t n, lm_kv_key *out) {
    static const char tag[] = "lemma-kv-page-v1"; /* + its NUL: 17 bytes */
    static const uint8_t zero[32];
    sha256_run r;
    run_init(&r, use_fb);
    run_update(&r, tag, sizeof tag);
    run_update(&r, kv_id, 32);
    run_update(&r, parent ? parent->b : zero, 32);
    uint8_t buf[4 * 256];
    /* n <= page_tokens <= 65536 for every real page */
    put_u32(buf, (uint32_t)n);
    run_update(&r, buf, 4);
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; k < 256 && i < n; k++, i++)
            put_u32(buf + 4 * k, (uint32_t)tokens[i]);
        run_update(&r, buf, 4 * k);
    }
    return run_final(&r, out->b);
}

void lm_kv_page_key(const uint8_t kv_id[32], const lm_kv_key *parent, const int32_t *tokens,
                    size_t n, lm_kv_key *out) {
    /* EVP first; the low-level API (no allocation) only if EVP could not run */
    if (!page_key_with(0, kv_id, parent, tokens, n, out))
        (void)page_key_with(1, kv_id, parent, tokens, n, out);
}
