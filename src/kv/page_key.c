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
 * (core/sha256.h), which gives the same digest.
 */
#include "kv/kv.h"

#include "core/le.h"
#include "core/sha256.h"

#include <string.h>


static int page_key_with(int use_fb, const uint8_t kv_id[32], const lm_kv_key *parent,
                         const int32_t *tokens, size_t n, lm_kv_key *out) {
    static const char tag[] = "lemma-kv-page-v1"; /* + its NUL: 17 bytes */
    static const uint8_t zero[32];
    lm_sha256 r;
    lm_sha256_init(&r, use_fb);
    lm_sha256_update(&r, tag, sizeof tag);
    lm_sha256_update(&r, kv_id, 32);
    lm_sha256_update(&r, parent ? parent->b : zero, 32);
    uint8_t buf[4 * 256];
    /* n <= page_tokens <= 65536 for every real page */
    lm_le_put_u32(buf, (uint32_t)n);
    lm_sha256_update(&r, buf, 4);
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; k < 256 && i < n; k++, i++)
            lm_le_put_u32(buf + 4 * k, (uint32_t)tokens[i]);
        lm_sha256_update(&r, buf, 4 * k);
    }
    return lm_sha256_final(&r, out->b);
}

void lm_kv_page_key(const uint8_t kv_id[32], const lm_kv_key *parent, const int32_t *tokens,
                    size_t n, lm_kv_key *out) {
    /* EVP first; the low-level API (no allocation) only if EVP could not run */
    if (!page_key_with(0, kv_id, parent, tokens, n, out))
        (void)page_key_with(1, kv_id, parent, tokens, n, out);
}
