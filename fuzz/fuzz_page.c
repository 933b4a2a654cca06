/*
 * fuzz_page.c — libFuzzer target for the page blob check (docs/formats/store.md §3): arbitrary
 * bytes through lm_page_blob_check. Any crash, sanitizer report or leak is a bug, and so is a
 * broken invariant (checked with __builtin_trap): a refusal sets a code and a message and no
 * payload; an accepted blob is exactly 128 + lm_page_payload_bytes bytes, its payload starts at
 * byte 128 and hashes to the expected content.
 *
 * The first input byte picks how the rest (the blob) is checked, so valid-looking pages are
 * reachable despite the digests:
 *   bit 0  expected header = the blob's own header fields (key, content, kv_id, geometry at
 *          bytes 16..115); else a fixed one: key 0x11.., kv_id 0x22.., content 0x33..,
 *          geometry (f16, page_tokens 4, n_layer 1, kv_dim 2), n_filled 1 + (bits 4..5)
 *   bit 1  this target rewrites the header checksum (bytes 120..127) to match
 *   bit 2  this target sets the content field (blob and expected) to the payload's XXH3-128
 * The blob is copied into an exact-size heap buffer so ASan sees any read past its end.
 */
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

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    const size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return 0;
    if (len) memcpy(buf, data + 1, len);

    lm_page_header h;
    memset(&h, 0, sizeof h);
    if ((mode & 1) && len >= LM_PAGE_HEADER_BYTES) {
        memcpy(h.key.b, buf + 16, 32);
        memcpy(h.content.b, buf + 48, 16);
        memcpy(h.kv_id, buf + 64, 32);
        h.kv_dtype = get_u32(buf + 96);
        h.page_tokens = get_u32(buf + 100);
        h.n_layer = get_u32(buf + 104);
        h.kv_dim = get_u32(buf + 108);
        h.n_filled = get_u32(buf + 112);
    } else {
        memset(h.key.b, 0x11, 32);
        memset(h.kv_id, 0x22, 32);
        memset(h.content.b, 0x33, 16);
        h.kv_dtype = LM_KV_DTYPE_F16;
        h.page_tokens = 4;
        h.n_layer = 1;
        h.kv_dim = 2;
        h.n_filled = 1 + ((mode >> 4) & 3);
    }
    if ((mode & 4) && len >= LM_PAGE_HEADER_BYTES) {
        lm_digest128(buf + LM_PAGE_HEADER_BYTES, len - LM_PAGE_HEADER_BYTES, &h.content);
        memcpy(buf + 48, h.content.b, 16);
    }
    if ((mode & 2) && len >= LM_PAGE_HEADER_BYTES) put_u64(buf + 120, XXH3_64bits(buf, 120));

    const uint8_t *payload = (const uint8_t *)&h; /* must be reset by the check */
    lm_err err;
    lm_err_clear(&err);
    lm_status s = lm_page_blob_check(buf, len, &h, &payload, &err);
    size_t pbytes = lm_page_payload_bytes(&h);
    if (s != LM_OK) {
        check(payload == NULL && err.code == s && err.msg[0] != '\0');
        check(pbytes != 0 || s == LM_ERR_INVALID_ARG);
    } else {
        check(pbytes != 0 && len == LM_PAGE_HEADER_BYTES + pbytes);
        check(payload == buf + LM_PAGE_HEADER_BYTES);
        lm_kv_digest d;
        lm_digest128(payload, pbytes, &d);
        check(memcmp(d.b, h.content.b, 16) == 0);
        /* re-encoding the expected header gives the blob's header */
        uint8_t hdr[LM_PAGE_HEADER_BYTES];
        lm_page_header_encode(&h, hdr);
        check(memcmp(hdr, buf, LM_PAGE_HEADER_BYTES) == 0);
    }
    free(buf);
    return 0;
}
