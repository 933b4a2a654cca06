/*
 * manifest.c — session manifests, page blob headers, identities and session names
 * (docs/formats/store.md §1–§4). Pure functions over bytes: no files, no model.
 *
 * Manifest layout (§4; all integers little-endian, written and read byte by byte):
 *     0   "LMSESSN1"  8   u32 version = 1   12  u32 flags = 0   16  u64 file size
 *     24  body: str name, str parent, str model (u16 length + bytes), u64 created_at,
 *         u64 updated_at, u8[32] weights/arch/tokenizer/template/kv_id, u32 kv_dtype,
 *         u32 page_tokens, u32 n_layer, u32 kv_dim, u32 n_ctx, u64 n_tokens,
 *         i32 tokens[n_tokens], u32 n_pages, n_pages x {u8[32] key, u8[16] content,
 *         u32 n_filled}, u32 n_vocab, f32 logits[n_vocab], u32 rng_valid, u64 rng[4]
 *     end-16  XXH3-128 of every byte before it (high 64 bits, then low, each LE)
 * Page blob header (§3): 128 bytes, see lm_page_header_encode.
 *
 * Invariants: the decoder trusts nothing: the trailing checksum is verified first, every
 * length and count is compared with the bytes that remain before it is used, every size is
 * computed with overflow checks, and a decoded manifest satisfies every rule of §4 (the same
 * validator runs before encoding, so lemma never writes a manifest it would refuse to read).
 * Status codes: LM_ERR_CORRUPT when a checksum or digest does not match (trailing checksum,
 * kv_id, page keys; page header checksum, payload hash, a page that is not the one expected),
 * LM_ERR_FORMAT for any other malformed field, LM_ERR_INVALID_ARG for a bad caller argument
 * (including a manifest given to the encoder that breaks a rule).
 */
#include "store/manifest.h"

#include "core/le.h"
#include "core/sha256.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

/* One-shot SHA-256 (kv/page_key.c). */

#define MANIFEST_MAGIC "LMSESSN1"
#define PAGE_MAGIC "LMKVPAGE"
#define MANIFEST_HEAD 24
#define MANIFEST_TAIL 16
#define GEOM_MAX 65536u

/* ---- little-endian bytes ---------------------------------------------------------------- */


/* Lower-case hex of n <= 32 bytes into out (2n + 1 chars). */
static void hexn(const uint8_t *b, size_t n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void lm_digest128(const void *data, size_t len, lm_kv_digest *out) {
    XXH128_hash_t h = XXH3_128bits(data, len);
    lm_le_put_u64(out->b, h.high64);
    lm_le_put_u64(out->b + 8, h.low64);
}

/* ---- identity ----------------------------------------------------------------------------- */

void lm_identity_kv_id(const lm_identity *id, uint8_t out[32]) {
    static const char tag[] = "lemma-kv-id-v1"; /* + its NUL: 15 bytes */
    uint8_t buf[sizeof tag + 32 + 32 + 16];
    size_t o = 0;
    memcpy(buf + o, tag, sizeof tag);
    o += sizeof tag;
    memcpy(buf + o, id->weights, 32);
    o += 32;
    memcpy(buf + o, id->arch, 32);
    o += 32;
    lm_le_put_u32(buf + o, id->kv_dtype);
    lm_le_put_u32(buf + o + 4, id->page_tokens);
    lm_le_put_u32(buf + o + 8, id->n_layer);
    lm_le_put_u32(buf + o + 12, id->kv_dim);
    o += 16;
    lm_sha256_buf(buf, o, out);
}

lm_status lm_identity_compare(const lm_identity *have, const lm_identity *want, const char *what,
                              lm_err *err) {
    char list[LM_ERR_MSG_MAX];
    size_t n = 0;
    list[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (n < sizeof list) {                                                                     \
            int w_ = snprintf(list + n, sizeof list - n, "%s", n ? ", " : "");                     \
            if (w_ > 0) n += (size_t)w_;                                                           \
        }                                                                                          \
        if (n < sizeof list) {                                                                     \
            int w_ = snprintf(list + n, sizeof list - n, __VA_ARGS__);                             \
            if (w_ > 0) n += (size_t)w_;                                                           \
        }                                                                                          \
    } while (0)
    if (memcmp(have->weights, want->weights, 32)) ADD("weights");
    if (memcmp(have->arch, want->arch, 32)) ADD("architecture");
    if (memcmp(have->tokenizer, want->tokenizer, 32)) ADD("tokenizer");
    if (memcmp(have->chat_template, want->chat_template, 32)) ADD("chat template");
    if (have->kv_dtype != want->kv_dtype) ADD("KV dtype %u vs %u", have->kv_dtype, want->kv_dtype);
    if (have->page_tokens != want->page_tokens)
        ADD("page size %u vs %u", have->page_tokens, want->page_tokens);
    if (have->n_layer != want->n_layer) ADD("layers %u vs %u", have->n_layer, want->n_layer);
    if (have->kv_dim != want->kv_dim) ADD("KV width %u vs %u", have->kv_dim, want->kv_dim);
    /* kv_id is derived from the fields above; it alone differing means one side is stale */
    if (n == 0 && memcmp(have->kv_id, want->kv_id, 32)) ADD("KV identity");
#undef ADD
    if (n == 0) return LM_OK;
    return lm_err_set(err, LM_ERR_MISMATCH,
                      "%s was saved with a different model: %s differ (values: the session's "
                      "vs the loaded model's)",
                      what && what[0] ? what : "session", list);
}

/* ---- names and text ----------------------------------------------------------------------- */

/* Quotes up to 40 bytes of s (n bytes) for a message, escaping what is not printable ASCII. */
static void quote(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, cap - o, "\\x%02x", c);
            o += 4;
        }
    }
    out[o] = '\0';
}

static int name_byte_ok(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* §1 rules over n bytes (NUL bytes included: they are refused like any other). */
static lm_status name_check_n(const char *name, size_t n, lm_status code, const char *field,
                              lm_err *err) {
    char q[200];
    quote(name, n, q, sizeof q);
    if (n == 0)
        return lm_err_set(err, code, "%s: empty (a name has 1..%d bytes)", field,
                          LM_SESSION_NAME_MAX);
    if (n > LM_SESSION_NAME_MAX)
        return lm_err_set(err, code, "%s '%s': %zu bytes > %d", field, q, n, LM_SESSION_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!name_byte_ok(c))
            return lm_err_set(err, code,
                              "%s '%s': byte 0x%02x at offset %zu is not allowed (only A-Z a-z "
                              "0-9 _ - and an inner .)",
                              field, q, c, i);
    }
    if (name[0] == '.') return lm_err_set(err, code, "%s '%s': must not start with '.'", field, q);
    if (name[n - 1] == '.')
        return lm_err_set(err, code, "%s '%s': must not end with '.'", field, q);
    for (size_t i = 0; i + 1 < n; i++)
        if (name[i] == '.' && name[i + 1] == '.')
            return lm_err_set(err, code, "%s '%s': must not contain '..'", field, q);
    return LM_OK;
}

lm_status lm_session_name_check(const char *name, lm_err *err) {
    if (!name) return lm_err_set(err, LM_ERR_INVALID_ARG, "session name: NULL");
    return name_check_n(name, strlen(name), LM_ERR_INVALID_ARG, "session name", err);
}

/* Strict UTF-8 (no overlong forms, surrogates or code points > U+10FFFF) without control
 * characters (U+0000..U+001F, U+007F..U+009F). Returns the offset of the first bad byte, or n. */
static size_t text_bad_at(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) return i;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        if (cp >= 0x80 && cp <= 0x9f) return i;
        i += len;
    }
    return n;
}

/* ---- manifest validation (shared by encode and decode) ----------------------------------- */

static uint64_t ceil_div(uint64_t a, uint64_t b) {
    return a / b + (a % b != 0);
}

static lm_status geom_check(const char *who, uint32_t kv_dtype, uint32_t page_tokens,
                            uint32_t n_layer, uint32_t kv_dim, lm_status code, lm_err *err) {
    if (kv_dtype != LM_KV_DTYPE_F16)
        return lm_err_set(err, code, "%s: kv_dtype %u != %d (f16)", who, kv_dtype, LM_KV_DTYPE_F16);
    if (page_tokens < 1 || page_tokens > GEOM_MAX)
        return lm_err_set(err, code, "%s: page_tokens %u not in 1..%u", who, page_tokens, GEOM_MAX);
    if (n_layer < 1 || n_layer > GEOM_MAX)
        return lm_err_set(err, code, "%s: n_layer %u not in 1..%u", who, n_layer, GEOM_MAX);
    if (kv_dim < 1 || kv_dim > GEOM_MAX)
        return lm_err_set(err, code, "%s: kv_dim %u not in 1..%u", who, kv_dim, GEOM_MAX);
    return LM_OK;
}

/* Every §4 rule on a manifest in memory. code is the status for a broken rule (FORMAT when
 * decoding, INVALID_ARG when encoding); digest mismatches are CORRUPT when decoding. */
static lm_status manifest_validate(const lm_manifest *m, lm_status code, lm_err *err) {
    const lm_status dcode = code == LM_ERR_FORMAT ? LM_ERR_CORRUPT : code;
    const lm_identity *id = &m->id;
    size_t nl = strnlen(m->name, sizeof m->name);
    lm_status s = name_check_n(m->name, nl, code, "manifest: name", err);
    if (s) return s;
    size_t pl = strnlen(m->parent, sizeof m->parent);
    if (pl && (s = name_check_n(m->parent, pl, code, "manifest: parent", err))) return s;
    size_t ml = strnlen(m->model, sizeof m->model);
    if (ml > LM_MODEL_DESC_MAX)
        return lm_err_set(err, code, "manifest: model length %zu > %d", ml, LM_MODEL_DESC_MAX);
    size_t bad = text_bad_at((const uint8_t *)m->model, ml);
    if (bad != ml)
        return lm_err_set(err, code,
                          "manifest: model: byte 0x%02x at offset %zu is not UTF-8 text without "
                          "control characters",
                          (unsigned char)m->model[bad], bad);
    s = geom_check("manifest", id->kv_dtype, id->page_tokens, id->n_layer, id->kv_dim, code, err);
    if (s) return s;
    if (m->n_ctx > LM_MANIFEST_MAX_CTX)
        return lm_err_set(err, code, "manifest: n_ctx %u > %u", m->n_ctx, LM_MANIFEST_MAX_CTX);
    if (m->n_tokens > m->n_ctx)
        return lm_err_set(err, code, "manifest: n_tokens %llu > n_ctx %u",
                          (unsigned long long)m->n_tokens, m->n_ctx);
    if (m->n_tokens && !m->tokens)
        return lm_err_set(err, code, "manifest: tokens: NULL for n_tokens %llu",
                          (unsigned long long)m->n_tokens);
    const uint64_t pt = id->page_tokens;
    if ((uint64_t)m->n_pages != ceil_div(m->n_tokens, pt))
        return lm_err_set(err, code, "manifest: n_pages %u != ceil(n_tokens %llu / page_tokens %u)",
                          m->n_pages, (unsigned long long)m->n_tokens, id->page_tokens);
    if (m->n_pages && !m->pages)
        return lm_err_set(err, code, "manifest: pages: NULL for n_pages %u", m->n_pages);
    for (uint32_t p = 0; p < m->n_pages; p++) {
        uint64_t want = p + 1 < m->n_pages ? pt : m->n_tokens - (uint64_t)p * pt;
        if (m->pages[p].n_filled != want)
            return lm_err_set(err, code, "manifest: page %u of %u: n_filled %u != %llu", p,
                              m->n_pages, m->pages[p].n_filled, (unsigned long long)want);
    }
    uint8_t kv_id[32];
    lm_identity_kv_id(id, kv_id);
    if (memcmp(kv_id, id->kv_id, 32)) {
        char a[65], b[65];
        hexn(id->kv_id, 32, a);
        hexn(kv_id, 32, b);
        return lm_err_set(err, dcode,
                          "manifest: kv_id %s != %s recomputed from weights, arch and the "
                          "KV geometry",
                          a, b);
    }
    for (uint32_t p = 0; p < m->n_pages; p++) {
        lm_kv_key k;
        lm_kv_page_key(id->kv_id, p ? &m->pages[p - 1].key : NULL, m->tokens + (size_t)p * pt,
                       m->pages[p].n_filled, &k);
        if (memcmp(k.b, m->pages[p].key.b, 32)) {
            char a[65], b[65];
            hexn(m->pages[p].key.b, 32, a);
            hexn(k.b, 32, b);
            return lm_err_set(err, dcode,
                              "manifest: page %u key %s != %s recomputed from kv_id and the "
                              "session's tokens",
                              p, a, b);
        }
    }
    if (m->n_vocab && !m->logits)
        return lm_err_set(err, code, "manifest: logits: NULL for n_vocab %u", m->n_vocab);
    for (uint32_t i = 0; i < m->n_vocab; i++) {
        float f = m->logits[i];
        if (isnan(f) || (isinf(f) && f > 0)) {
            uint32_t bits;
            memcpy(&bits, &f, 4);
            return lm_err_set(err, code,
                              "manifest: logits[%u] = %s (bits 0x%08x): must be finite or -inf", i,
                              isnan(f) ? "nan" : "+inf", bits);
        }
    }
    if (m->rng_valid > 1)
        return lm_err_set(err, code, "manifest: rng_valid %u not 0 or 1", m->rng_valid);
    return LM_OK;
}

/* ---- manifest encode ---------------------------------------------------------------------- */

/* Bytes of the encoded manifest (0 on overflow). */
static size_t manifest_size(const lm_manifest *m) {
    uint64_t t = MANIFEST_HEAD + MANIFEST_TAIL;
    uint64_t x;
    int ok = 1;
    ok &= lm_add_u64(t,
                     3 * 2 + strnlen(m->name, sizeof m->name) +
                         strnlen(m->parent, sizeof m->parent) + strnlen(m->model, sizeof m->model),
                     &t);
    ok &= lm_add_u64(t, 8 + 8 + 5 * 32 + 4 * 4 + 4 + 8, &t);
    ok &= lm_mul_u64(m->n_tokens, 4, &x) && lm_add_u64(t, x, &t);
    ok &= lm_add_u64(t, 4, &t);
    ok &= lm_mul_u64(m->n_pages, 32 + 16 + 4, &x) && lm_add_u64(t, x, &t);
    ok &= lm_add_u64(t, 4, &t);
    ok &= lm_mul_u64(m->n_vocab, 4, &x) && lm_add_u64(t, x, &t);
    ok &= lm_add_u64(t, 4 + 4 * 8, &t);
    if (!ok || t > SIZE_MAX) return 0;
    return (size_t)t;
}

typedef struct wr {
    uint8_t *p;
    size_t o;
} wr;

static void w_bytes(wr *w, const void *b, size_t n) {
    if (n) memcpy(w->p + w->o, b, n);
    w->o += n;
}
static void w_u32(wr *w, uint32_t v) {
    lm_le_put_u32(w->p + w->o, v);
    w->o += 4;
}
static void w_u64(wr *w, uint64_t v) {
    lm_le_put_u64(w->p + w->o, v);
    w->o += 8;
}
static void w_str(wr *w, const char *s, size_t cap) {
    size_t n = strnlen(s, cap);
    lm_le_put_u16(w->p + w->o, (uint16_t)n);
    w->o += 2;
    w_bytes(w, s, n);
}

lm_status lm_manifest_encode(const lm_manifest *m, uint8_t **out, size_t *len, lm_err *err) {
    if (!m || !out || !len) return lm_err_set(err, LM_ERR_INVALID_ARG, "manifest encode: NULL");
    *out = NULL;
    *len = 0;
    lm_status s = manifest_validate(m, LM_ERR_INVALID_ARG, err);
    if (s) return s;
    size_t n = manifest_size(m);
    if (n == 0)
        return lm_err_set(err, LM_ERR_NOMEM, "manifest encode: size overflows (n_tokens %llu)",
                          (unsigned long long)m->n_tokens);
    uint8_t *buf = lm_malloc(n);
    if (!buf) return lm_err_set(err, LM_ERR_NOMEM, "manifest encode: %zu bytes", n);
    wr w = {buf, 0};
    w_bytes(&w, MANIFEST_MAGIC, 8);
    w_u32(&w, LM_STORE_FORMAT_VERSION);
    w_u32(&w, 0);
    w_u64(&w, n);
    w_str(&w, m->name, sizeof m->name);
    w_str(&w, m->parent, sizeof m->parent);
    w_str(&w, m->model, sizeof m->model);
    w_u64(&w, m->created_at);
    w_u64(&w, m->updated_at);
    w_bytes(&w, m->id.weights, 32);
    w_bytes(&w, m->id.arch, 32);
    w_bytes(&w, m->id.tokenizer, 32);
    w_bytes(&w, m->id.chat_template, 32);
    w_bytes(&w, m->id.kv_id, 32);
    w_u32(&w, m->id.kv_dtype);
    w_u32(&w, m->id.page_tokens);
    w_u32(&w, m->id.n_layer);
    w_u32(&w, m->id.kv_dim);
    w_u32(&w, m->n_ctx);
    w_u64(&w, m->n_tokens);
    for (uint64_t i = 0; i < m->n_tokens; i++)
        w_u32(&w, (uint32_t)m->tokens[i]);
    w_u32(&w, m->n_pages);
    for (uint32_t p = 0; p < m->n_pages; p++) {
        w_bytes(&w, m->pages[p].key.b, 32);
        w_bytes(&w, m->pages[p].content.b, 16);
        w_u32(&w, m->pages[p].n_filled);
    }
    w_u32(&w, m->n_vocab);
    for (uint32_t i = 0; i < m->n_vocab; i++) {
        uint32_t bits;
        memcpy(&bits, &m->logits[i], 4);
        w_u32(&w, bits);
    }
    w_u32(&w, m->rng_valid);
    for (int i = 0; i < 4; i++)
        w_u64(&w, m->rng[i]);
    if (w.o != n - MANIFEST_TAIL) {
        lm_free(buf);
        return lm_err_set(err, LM_ERR_INTERNAL, "manifest encode: wrote %zu of %zu bytes", w.o,
                          n - MANIFEST_TAIL);
    }
    lm_kv_digest d;
    lm_digest128(buf, w.o, &d);
    w_bytes(&w, d.b, 16);
    *out = buf;
    *len = n;
    return LM_OK;
}

/* ---- manifest decode ---------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t o, end; /* end = start of the trailing checksum */
    lm_err *err;
} rd;

/* Checks that n bytes of `field` remain; on failure sets the error. */
static int r_need(rd *r, size_t n, const char *field) {
    if (r->end - r->o >= n) return 1;
    lm_err_set(r->err, LM_ERR_FORMAT,
               "manifest: %s at offset %zu needs %zu bytes, only %zu left before the checksum",
               field, r->o, n, r->end - r->o);
    return 0;
}
static int r_u32(rd *r, const char *field, uint32_t *v) {
    if (!r_need(r, 4, field)) return 0;
    *v = lm_le_get_u32(r->p + r->o);
    r->o += 4;
    return 1;
}
static int r_u64(rd *r, const char *field, uint64_t *v) {
    if (!r_need(r, 8, field)) return 0;
    *v = lm_le_get_u64(r->p + r->o);
    r->o += 8;
    return 1;
}
static int r_bytes(rd *r, const char *field, void *dst, size_t n) {
    if (!r_need(r, n, field)) return 0;
    memcpy(dst, r->p + r->o, n);
    r->o += n;
    return 1;
}
/* A str field into dst (cap bytes incl. the NUL): the length must be <= max. NUL bytes inside
 * are kept out of the C string's reach by the validators (they refuse them), so the stored
 * length is checked here against the bytes. */
static int r_str(rd *r, const char *field, char *dst, size_t max) {
    if (!r_need(r, 2, field)) return 0;
    size_t n = lm_le_get_u16(r->p + r->o);
    r->o += 2;
    if (n > max) {
        lm_err_set(r->err, LM_ERR_FORMAT, "manifest: %s length %zu > %zu", field, n, max);
        return 0;
    }
    if (!r_need(r, n, field)) return 0;
    if (memchr(r->p + r->o, 0, n)) {
        lm_err_set(r->err, LM_ERR_FORMAT, "manifest: %s contains a NUL byte", field);
        return 0;
    }
    memcpy(dst, r->p + r->o, n);
    dst[n] = '\0';
    r->o += n;
    return 1;
}

void lm_manifest_free(lm_manifest *m) {
    if (!m) return;
    lm_free(m->tokens);
    lm_free(m->pages);
    lm_free(m->logits);
    lm_free(m);
}

lm_status lm_manifest_decode(const uint8_t *buf, size_t len, const char *expect_name,
                             lm_manifest **out, lm_err *err) {
    lm_status s = LM_OK;
    lm_manifest *m = NULL;
    if (!out || (!buf && len)) return lm_err_set(err, LM_ERR_INVALID_ARG, "manifest decode: NULL");
    *out = NULL;
    if (len < MANIFEST_HEAD + MANIFEST_TAIL)
        return lm_err_set(err, LM_ERR_FORMAT, "manifest: file size %zu < minimum %d", len,
                          MANIFEST_HEAD + MANIFEST_TAIL);
    /* the checksum first: nothing below reads bytes that were not covered by it */
    lm_kv_digest d;
    lm_digest128(buf, len - MANIFEST_TAIL, &d);
    if (memcmp(d.b, buf + len - MANIFEST_TAIL, 16)) {
        char a[33], b[33];
        hexn(buf + len - MANIFEST_TAIL, 16, a);
        hexn(d.b, 16, b);
        return lm_err_set(err, LM_ERR_CORRUPT,
                          "manifest: checksum %s != %s computed over the %zu bytes before "
                          "it (file damaged or truncated)",
                          a, b, len - MANIFEST_TAIL);
    }
    if (memcmp(buf, MANIFEST_MAGIC, 8)) {
        char q[64];
        quote((const char *)buf, 8, q, sizeof q);
        return lm_err_set(err, LM_ERR_FORMAT, "manifest: magic '%s' != '%s'", q, MANIFEST_MAGIC);
    }
    uint32_t version = lm_le_get_u32(buf + 8), flags = lm_le_get_u32(buf + 12);
    uint64_t fsize = lm_le_get_u64(buf + 16);
    if (version != LM_STORE_FORMAT_VERSION)
        return lm_err_set(err, LM_ERR_FORMAT, "manifest: version %u != %d", version,
                          LM_STORE_FORMAT_VERSION);
    if (flags != 0)
        return lm_err_set(err, LM_ERR_FORMAT, "manifest: flags 0x%x != 0 (reserved)", flags);
    if (fsize != (uint64_t)len)
        return lm_err_set(err, LM_ERR_FORMAT, "manifest: size field %llu != file size %zu",
                          (unsigned long long)fsize, len);

    m = lm_calloc(1, sizeof *m);
    if (!m) return lm_err_set(err, LM_ERR_NOMEM, "manifest: %zu bytes", sizeof *m);
    rd r = {buf, MANIFEST_HEAD, len - MANIFEST_TAIL, err};
    lm_identity *id = &m->id;
    s = LM_ERR_FORMAT; /* what a failed read below means */
    if (!r_str(&r, "name", m->name, LM_SESSION_NAME_MAX)) goto fail;
    if (!r_str(&r, "parent", m->parent, LM_SESSION_NAME_MAX)) goto fail;
    if (!r_str(&r, "model", m->model, LM_MODEL_DESC_MAX)) goto fail;
    if (!r_u64(&r, "created_at", &m->created_at)) goto fail;
    if (!r_u64(&r, "updated_at", &m->updated_at)) goto fail;
    if (!r_bytes(&r, "weights", id->weights, 32)) goto fail;
    if (!r_bytes(&r, "arch", id->arch, 32)) goto fail;
    if (!r_bytes(&r, "tokenizer", id->tokenizer, 32)) goto fail;
    if (!r_bytes(&r, "template", id->chat_template, 32)) goto fail;
    if (!r_bytes(&r, "kv_id", id->kv_id, 32)) goto fail;
    if (!r_u32(&r, "kv_dtype", &id->kv_dtype)) goto fail;
    if (!r_u32(&r, "page_tokens", &id->page_tokens)) goto fail;
    if (!r_u32(&r, "n_layer", &id->n_layer)) goto fail;
    if (!r_u32(&r, "kv_dim", &id->kv_dim)) goto fail;
    if (!r_u32(&r, "n_ctx", &m->n_ctx)) goto fail;
    if (!r_u64(&r, "n_tokens", &m->n_tokens)) goto fail;
    /* the rules that bound the arrays, before they size an allocation */
    if ((s = geom_check("manifest", id->kv_dtype, id->page_tokens, id->n_layer, id->kv_dim,
                        LM_ERR_FORMAT, err)))
        goto fail;
    s = LM_ERR_FORMAT;
    if (m->n_ctx > LM_MANIFEST_MAX_CTX) {
        lm_err_set(err, s, "manifest: n_ctx %u > %u", m->n_ctx, LM_MANIFEST_MAX_CTX);
        goto fail;
    }
    if (m->n_tokens > m->n_ctx) {
        lm_err_set(err, s, "manifest: n_tokens %llu > n_ctx %u", (unsigned long long)m->n_tokens,
                   m->n_ctx);
        goto fail;
    }
    size_t nbytes = (size_t)m->n_tokens * 4; /* <= 2^26: no overflow */
    if (!r_need(&r, nbytes, "tokens")) goto fail;
    if (m->n_tokens) {
        m->tokens = lm_malloc(nbytes);
        if (!m->tokens) {
            s = lm_err_set(err, LM_ERR_NOMEM, "manifest: tokens: %zu bytes", nbytes);
            goto fail;
        }
        for (uint64_t i = 0; i < m->n_tokens; i++)
            m->tokens[i] = (int32_t)lm_le_get_u32(buf + r.o + 4 * i);
        r.o += nbytes;
    }
    if (!r_u32(&r, "n_pages", &m->n_pages)) goto fail;
    {
        uint64_t want = ceil_div(m->n_tokens, id->page_tokens);
        if ((uint64_t)m->n_pages != want) {
            lm_err_set(err, s, "manifest: n_pages %u != ceil(n_tokens %llu / page_tokens %u)",
                       m->n_pages, (unsigned long long)m->n_tokens, id->page_tokens);
            goto fail;
        }
    }
    /* n_pages <= 2^24 here, so n_pages * 52 fits */
    if (!r_need(&r, (size_t)m->n_pages * 52, "pages")) goto fail;
    if (m->n_pages) {
        m->pages = lm_calloc(m->n_pages, sizeof *m->pages);
        if (!m->pages) {
            s = lm_err_set(err, LM_ERR_NOMEM, "manifest: pages: %u entries", m->n_pages);
            goto fail;
        }
        for (uint32_t p = 0; p < m->n_pages; p++) {
            memcpy(m->pages[p].key.b, buf + r.o, 32);
            memcpy(m->pages[p].content.b, buf + r.o + 32, 16);
            m->pages[p].n_filled = lm_le_get_u32(buf + r.o + 48);
            r.o += 52;
        }
    }
    if (!r_u32(&r, "n_vocab", &m->n_vocab)) goto fail;
    {
        size_t lbytes;
        if (!lm_mul_size(m->n_vocab, 4, &lbytes)) {
            lm_err_set(err, s, "manifest: n_vocab %u too large", m->n_vocab);
            goto fail;
        }
        if (!r_need(&r, lbytes, "logits")) goto fail;
        if (m->n_vocab) {
            m->logits = lm_malloc(lbytes);
            if (!m->logits) {
                s = lm_err_set(err, LM_ERR_NOMEM, "manifest: logits: %zu bytes", lbytes);
                goto fail;
            }
            for (uint32_t i = 0; i < m->n_vocab; i++) {
                uint32_t bits = lm_le_get_u32(buf + r.o + 4 * (size_t)i);
                memcpy(&m->logits[i], &bits, 4);
            }
            r.o += lbytes;
        }
    }
    if (!r_u32(&r, "rng_valid", &m->rng_valid)) goto fail;
    for (int i = 0; i < 4; i++)
        if (!r_u64(&r, "rng", &m->rng[i])) goto fail;
    if (r.o != r.end) {
        lm_err_set(err, s, "manifest: %zu bytes left over after rng (offset %zu, checksum at %zu)",
                   r.end - r.o, r.o, r.end);
        goto fail;
    }
    if ((s = manifest_validate(m, LM_ERR_FORMAT, err))) goto fail;
    if (expect_name && strcmp(expect_name, m->name) != 0) {
        char a[200], b[200];
        quote(m->name, strlen(m->name), a, sizeof a);
        quote(expect_name, strlen(expect_name), b, sizeof b);
        s = lm_err_set(err, LM_ERR_FORMAT, "manifest: name '%s' != file name '%s'", a, b);
        goto fail;
    }
    *out = m;
    return LM_OK;
fail:
    lm_manifest_free(m);
    if (s == LM_OK) s = LM_ERR_INTERNAL;
    return s;
}

/* ---- page blobs --------------------------------------------------------------------------- */

size_t lm_page_payload_bytes(const lm_page_header *h) {
    if (!h || h->kv_dtype != LM_KV_DTYPE_F16 || h->page_tokens < 1 || h->page_tokens > GEOM_MAX ||
        h->n_layer < 1 || h->n_layer > GEOM_MAX || h->kv_dim < 1 || h->kv_dim > GEOM_MAX ||
        h->n_filled < 1 || h->n_filled > h->page_tokens)
        return 0;
    size_t n = 2 * 2; /* K and V, 2 bytes per f16 */
    if (!lm_mul_size(n, h->n_layer, &n) || !lm_mul_size(n, h->n_filled, &n) ||
        !lm_mul_size(n, h->kv_dim, &n) || n > SIZE_MAX - LM_PAGE_HEADER_BYTES)
        return 0;
    return n;
}

void lm_page_header_encode(const lm_page_header *h, uint8_t out[LM_PAGE_HEADER_BYTES]) {
    memcpy(out, PAGE_MAGIC, 8);
    lm_le_put_u32(out + 8, LM_STORE_FORMAT_VERSION);
    lm_le_put_u32(out + 12, LM_PAGE_HEADER_BYTES);
    memcpy(out + 16, h->key.b, 32);
    memcpy(out + 48, h->content.b, 16);
    memcpy(out + 64, h->kv_id, 32);
    lm_le_put_u32(out + 96, h->kv_dtype);
    lm_le_put_u32(out + 100, h->page_tokens);
    lm_le_put_u32(out + 104, h->n_layer);
    lm_le_put_u32(out + 108, h->kv_dim);
    lm_le_put_u32(out + 112, h->n_filled);
    lm_le_put_u32(out + 116, 0);
    lm_le_put_u64(out + 120, XXH3_64bits(out, 120));
}

static lm_status page_field(lm_err *err, const char *field, uint32_t have, uint32_t want) {
    return lm_err_set(err, LM_ERR_CORRUPT, "page: %s %u != %u expected by the manifest", field,
                      have, want);
}

static lm_status page_digest(lm_err *err, const char *field, const uint8_t *have,
                             const uint8_t *want, size_t n) {
    char a[65], b[65];
    hexn(have, n, a);
    hexn(want, n, b);
    return lm_err_set(err, LM_ERR_CORRUPT, "page: %s %s != %s expected by the manifest", field, a,
                      b);
}

lm_status lm_page_blob_check(const uint8_t *buf, size_t len, const lm_page_header *expect,
                             const uint8_t **payload, lm_err *err) {
    if (payload) *payload = NULL;
    if (!expect || (!buf && len)) return lm_err_set(err, LM_ERR_INVALID_ARG, "page check: NULL");
    size_t pbytes = lm_page_payload_bytes(expect);
    if (pbytes == 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "page check: expected geometry invalid (kv_dtype %u, page_tokens %u, "
                          "n_layer %u, kv_dim %u, n_filled %u)",
                          expect->kv_dtype, expect->page_tokens, expect->n_layer, expect->kv_dim,
                          expect->n_filled);
    if (len < LM_PAGE_HEADER_BYTES)
        return lm_err_set(err, LM_ERR_FORMAT, "page: file size %zu < header %d", len,
                          LM_PAGE_HEADER_BYTES);
    if (memcmp(buf, PAGE_MAGIC, 8)) {
        char q[64];
        quote((const char *)buf, 8, q, sizeof q);
        return lm_err_set(err, LM_ERR_FORMAT, "page: magic '%s' != '%s'", q, PAGE_MAGIC);
    }
    uint32_t version = lm_le_get_u32(buf + 8), hbytes = lm_le_get_u32(buf + 12);
    if (version != LM_STORE_FORMAT_VERSION)
        return lm_err_set(err, LM_ERR_FORMAT, "page: version %u != %d", version,
                          LM_STORE_FORMAT_VERSION);
    if (hbytes != LM_PAGE_HEADER_BYTES)
        return lm_err_set(err, LM_ERR_FORMAT, "page: header bytes %u != %d", hbytes,
                          LM_PAGE_HEADER_BYTES);
    uint64_t hsum = lm_le_get_u64(buf + 120), hwant = XXH3_64bits(buf, 120);
    if (hsum != hwant)
        return lm_err_set(err, LM_ERR_CORRUPT,
                          "page: header checksum %016llx != %016llx computed over bytes 0..119",
                          (unsigned long long)hsum, (unsigned long long)hwant);
    uint32_t flags = lm_le_get_u32(buf + 116);
    if (flags != 0)
        return lm_err_set(err, LM_ERR_FORMAT, "page: flags 0x%x != 0 (reserved)", flags);
    if (memcmp(buf + 16, expect->key.b, 32))
        return page_digest(err, "key", buf + 16, expect->key.b, 32);
    if (memcmp(buf + 48, expect->content.b, 16))
        return page_digest(err, "content", buf + 48, expect->content.b, 16);
    if (memcmp(buf + 64, expect->kv_id, 32))
        return page_digest(err, "kv_id", buf + 64, expect->kv_id, 32);
    uint32_t v;
    if ((v = lm_le_get_u32(buf + 96)) != expect->kv_dtype)
        return page_field(err, "kv_dtype", v, expect->kv_dtype);
    if ((v = lm_le_get_u32(buf + 100)) != expect->page_tokens)
        return page_field(err, "page_tokens", v, expect->page_tokens);
    if ((v = lm_le_get_u32(buf + 104)) != expect->n_layer)
        return page_field(err, "n_layer", v, expect->n_layer);
    if ((v = lm_le_get_u32(buf + 108)) != expect->kv_dim)
        return page_field(err, "kv_dim", v, expect->kv_dim);
    if ((v = lm_le_get_u32(buf + 112)) != expect->n_filled)
        return page_field(err, "n_filled", v, expect->n_filled);
    if (len - LM_PAGE_HEADER_BYTES != pbytes)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "page: file size %zu != header %d + payload %zu (n_layer %u x 2 x "
                          "n_filled %u x kv_dim %u x 2 bytes)",
                          len, LM_PAGE_HEADER_BYTES, pbytes, expect->n_layer, expect->n_filled,
                          expect->kv_dim);
    lm_kv_digest d;
    lm_digest128(buf + LM_PAGE_HEADER_BYTES, pbytes, &d);
    if (memcmp(d.b, expect->content.b, 16)) {
        char a[33], b[33];
        hexn(d.b, 16, a);
        hexn(expect->content.b, 16, b);
        return lm_err_set(err, LM_ERR_CORRUPT,
                          "page: payload hashes to %s, not content %s (payload damaged)", a, b);
    }
    if (payload) *payload = buf + LM_PAGE_HEADER_BYTES;
    return LM_OK;
}
