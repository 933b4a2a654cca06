/*
 * fuzz_manifest.c — libFuzzer target for the session manifest decoder (docs/formats/store.md
 * §4): arbitrary bytes through lm_manifest_decode. Any crash, sanitizer report or leak is a bug,
 * and so is a broken invariant (checked with __builtin_trap):
 *   - a refusal sets an error code and message and returns no manifest;
 *   - an accepted manifest re-encodes to exactly the input bytes (the format is canonical) and
 *     satisfies the rules the decoder promises (n_pages, n_filled, names).
 *
 * The trailing XXH3-128 would stop almost every mutation at the checksum, so the first input
 * byte picks a mode: odd = the rest is the whole file as is; even = the rest is a file without
 * its checksum, and this target fills in the size field (bytes 16..23) and appends the correct
 * checksum, so mutations reach every rule of the body. The rest is copied into an exact-size
 * heap buffer so ASan sees any read past its end.
 */
#include "core/alloc.h"
#include "core/status.h"
#include "store/manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
    if (!cond) __builtin_trap(); /* an invariant does not hold */
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int raw = data[0] & 1;
    const size_t n = size - 1;
    const size_t len = raw ? n : n + 16;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return 0;
    if (n) memcpy(buf, data + 1, n);
    if (!raw) {
        if (n >= 24) put_u64(buf + 16, (uint64_t)len);
        XXH128_hash_t h = XXH3_128bits(buf, n);
        put_u64(buf + n, h.high64);
        put_u64(buf + n + 8, h.low64);
    }
    lm_manifest *m = NULL;
    lm_err err;
    lm_err_clear(&err);
    lm_status s = lm_manifest_decode(buf, len, NULL, &m, &err);
    if (s != LM_OK) {
        check(m == NULL && err.code == s && err.msg[0] != '\0');
        free(buf);
        return 0;
    }
    check(m != NULL && err.code == LM_OK);
    /* the promised rules */
    lm_err e2;
    lm_err_clear(&e2);
    check(lm_session_name_check(m->name, &e2) == LM_OK);
    check(m->parent[0] == '\0' || lm_session_name_check(m->parent, &e2) == LM_OK);
    const uint64_t pt = m->id.page_tokens;
    check(pt >= 1 && m->n_tokens <= m->n_ctx && m->n_ctx <= LM_MANIFEST_MAX_CTX);
    check((uint64_t)m->n_pages == (m->n_tokens + pt - 1) / pt);
    uint64_t total = 0;
    for (uint32_t p = 0; p < m->n_pages; p++)
        total += m->pages[p].n_filled;
    check(total == m->n_tokens);
    check(m->rng_valid <= 1);
    /* a named decode agrees; another name is refused */
    lm_manifest *m2 = NULL;
    check(lm_manifest_decode(buf, len, m->name, &m2, &e2) == LM_OK);
    lm_manifest_free(m2);
    lm_err_clear(&e2);
    check(lm_manifest_decode(buf, len, "not-this-name.", &m2, &e2) == LM_ERR_FORMAT && !m2);
    /* canonical: encoding gives back the same bytes */
    uint8_t *out = NULL;
    size_t olen = 0;
    lm_err_clear(&e2);
    check(lm_manifest_encode(m, &out, &olen, &e2) == LM_OK);
    check(olen == len && memcmp(out, buf, len) == 0);
    lm_free(out);
    lm_manifest_free(m);
    free(buf);
    return 0;
}
