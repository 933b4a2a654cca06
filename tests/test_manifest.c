/*
 * test_manifest.c — session manifests, page blob headers, identities, page keys and session
 * names (docs/formats/store.md §1–§4).
 *
 * Round trips of realistic manifests; SHA-256 vectors computed independently with Python's
 * hashlib; the corruption matrix: one malformed manifest per rule of §4, written byte by byte
 * here by a raw writer that knows nothing of the rules (with a valid trailing checksum, so the
 * rule itself is what refuses the file), and one bad page blob per rule of §3; truncation at
 * every length, bit flips, swapped files, the name table and allocation-failure loops.
 */
#include "core/alloc.h"
#include "kv/kv.h"
#include "store/manifest.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

/* ---------------------------------------------------------------------------------------
 * a byte builder and a raw manifest writer (no validation: writes whatever it is given)
 * ------------------------------------------------------------------------------------ */

typedef struct bb {
    uint8_t p[1 << 16];
    size_t len;
} bb;

static void bb_bytes(bb *b, const void *d, size_t n) {
    if (b->len + n > sizeof b->p) {
        fprintf(stderr, "test byte builder overflow\n");
        abort();
    }
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void bb_u16(bb *b, uint16_t v) {
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    bb_bytes(b, t, 2);
}
static void bb_u32(bb *b, uint32_t v) {
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    bb_bytes(b, t, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    bb_bytes(b, t, 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The trailing XXH3-128, computed here from xxhash directly: high 64 bits then low, each LE. */
static void bb_checksum(bb *b) {
    XXH128_hash_t h = XXH3_128bits(b->p, b->len);
    bb_u64(b, h.high64);
    bb_u64(b, h.low64);
}

#define MAXT 64
#define MAXP 8
#define MAXV 64

typedef struct rawstr {
    const char *s;
    size_t n;   /* bytes written */
    long claim; /* length field written; -1 = n */
} rawstr;

typedef struct raw {
    char magic[9];
    uint32_t version, flags;
    long size_delta; /* added to the true size in the size field */
    rawstr name, parent, model;
    uint64_t created, updated;
    uint8_t weights[32], arch[32], tok[32], tmpl[32], kv_id[32];
    uint32_t kv_dtype, page_tokens, n_layer, kv_dim, n_ctx;
    uint64_t n_tokens;
    uint32_t tokens_written;
    int32_t tokens[MAXT];
    uint32_t n_pages, pages_written;
    struct {
        uint8_t key[32], content[16];
        uint32_t n_filled;
    } pages[MAXP];
    uint32_t n_vocab, vocab_written;
    float logits[MAXV];
    uint32_t rng_valid;
    uint64_t rng[4];
    uint32_t rng_words; /* u64 rng words written (4) */
    size_t extra;       /* junk bytes before the checksum */
} raw;

static void raw_str(bb *b, const rawstr *s) {
    bb_u16(b, (uint16_t)(s->claim >= 0 ? (size_t)s->claim : s->n));
    bb_bytes(b, s->s, s->n);
}

static void raw_encode(const raw *r, bb *b) {
    b->len = 0;
    bb_bytes(b, r->magic, 8);
    bb_u32(b, r->version);
    bb_u32(b, r->flags);
    bb_u64(b, 0); /* size: patched below */
    raw_str(b, &r->name);
    raw_str(b, &r->parent);
    raw_str(b, &r->model);
    bb_u64(b, r->created);
    bb_u64(b, r->updated);
    bb_bytes(b, r->weights, 32);
    bb_bytes(b, r->arch, 32);
    bb_bytes(b, r->tok, 32);
    bb_bytes(b, r->tmpl, 32);
    bb_bytes(b, r->kv_id, 32);
    bb_u32(b, r->kv_dtype);
    bb_u32(b, r->page_tokens);
    bb_u32(b, r->n_layer);
    bb_u32(b, r->kv_dim);
    bb_u32(b, r->n_ctx);
    bb_u64(b, r->n_tokens);
    for (uint32_t i = 0; i < r->tokens_written; i++)
        bb_u32(b, (uint32_t)r->tokens[i]);
    bb_u32(b, r->n_pages);
    for (uint32_t p = 0; p < r->pages_written; p++) {
        bb_bytes(b, r->pages[p].key, 32);
        bb_bytes(b, r->pages[p].content, 16);
        bb_u32(b, r->pages[p].n_filled);
    }
    bb_u32(b, r->n_vocab);
    for (uint32_t i = 0; i < r->vocab_written; i++) {
        uint32_t bits;
        memcpy(&bits, &r->logits[i], 4);
        bb_u32(b, bits);
    }
    bb_u32(b, r->rng_valid);
    for (uint32_t i = 0; i < r->rng_words; i++)
        bb_u64(b, r->rng[i]);
    for (size_t i = 0; i < r->extra; i++) {
        uint8_t z = 0;
        bb_bytes(b, &z, 1);
    }
    put_u64(b->p + 16, (uint64_t)((long)b->len + 16 + r->size_delta));
    bb_checksum(b);
}

static void fill_identity(lm_identity *id, uint32_t page_tokens, uint32_t n_layer,
                          uint32_t kv_dim) {
    memset(id, 0, sizeof *id);
    for (int i = 0; i < 32; i++) {
        id->weights[i] = (uint8_t)i;
        id->arch[i] = (uint8_t)(0x40 + i);
        id->tokenizer[i] = (uint8_t)(0x80 + i);
        id->chat_template[i] = (uint8_t)(0xc0 + i);
    }
    id->kv_dtype = LM_KV_DTYPE_F16;
    id->page_tokens = page_tokens;
    id->n_layer = n_layer;
    id->kv_dim = kv_dim;
    lm_identity_kv_id(id, id->kv_id);
}

/* Computes the page refs (keys from the tokens, made-up contents) of n tokens. */
static uint32_t make_pages(const lm_identity *id, const int32_t *tokens, uint64_t n,
                           lm_page_ref *pages) {
    uint32_t np = (uint32_t)((n + id->page_tokens - 1) / id->page_tokens);
    for (uint32_t p = 0; p < np; p++) {
        uint64_t start = (uint64_t)p * id->page_tokens;
        uint32_t nf = (uint32_t)(n - start < id->page_tokens ? n - start : id->page_tokens);
        lm_kv_page_key(id->kv_id, p ? &pages[p - 1].key : NULL, tokens + start, nf, &pages[p].key);
        for (int i = 0; i < 16; i++)
            pages[p].content.b[i] = (uint8_t)(p * 16 + i + 1);
        pages[p].n_filled = nf;
    }
    return np;
}

/* A valid raw manifest: page_tokens 16, 37 tokens (pages 16, 16, 5), 50 logits. */
static void raw_good(raw *r) {
    static int32_t toks[37];
    static const char model[] = "SmolLM2 135M Instruct (Q4_1) \xc3\xa9\xe2\x82\xac";
    memset(r, 0, sizeof *r);
    memcpy(r->magic, "LMSESSN1", 9);
    r->version = 1;
    r->name = (rawstr){"chat-1.a_B", 10, -1};
    r->parent = (rawstr){"base", 4, -1};
    r->model = (rawstr){model, sizeof model - 1, -1};
    r->created = 1700000000;
    r->updated = 1700000123;
    lm_identity id;
    fill_identity(&id, 16, 2, 8);
    memcpy(r->weights, id.weights, 32);
    memcpy(r->arch, id.arch, 32);
    memcpy(r->tok, id.tokenizer, 32);
    memcpy(r->tmpl, id.chat_template, 32);
    memcpy(r->kv_id, id.kv_id, 32);
    r->kv_dtype = 1;
    r->page_tokens = 16;
    r->n_layer = 2;
    r->kv_dim = 8;
    r->n_ctx = 128;
    r->n_tokens = 37;
    r->tokens_written = 37;
    for (int i = 0; i < 37; i++)
        toks[i] = r->tokens[i] = i * 7919 % 50000 - (i == 3 ? 5 : 0);
    lm_page_ref pr[MAXP];
    r->n_pages = r->pages_written = make_pages(&id, toks, 37, pr);
    for (uint32_t p = 0; p < r->n_pages; p++) {
        memcpy(r->pages[p].key, pr[p].key.b, 32);
        memcpy(r->pages[p].content, pr[p].content.b, 16);
        r->pages[p].n_filled = pr[p].n_filled;
    }
    r->n_vocab = r->vocab_written = 50;
    for (int i = 0; i < 50; i++)
        r->logits[i] = (float)(i - 25) * 0.37f;
    r->logits[7] = -INFINITY;
    r->logits[8] = 1e-45f; /* a denormal */
    r->logits[9] = -0.0f;
    r->rng_valid = 1;
    r->rng[0] = 0x0123456789abcdefull;
    r->rng[1] = 1;
    r->rng[2] = UINT64_MAX;
    r->rng[3] = 42;
    r->rng_words = 4;
}

/* Re-keys the pages of r after its tokens or identity changed (so only the intended rule
 * breaks). */
static void raw_rekey(raw *r) {
    lm_kv_key prev;
    for (uint32_t p = 0; p < r->pages_written; p++) {
        lm_kv_key k;
        lm_kv_page_key(r->kv_id, p ? &prev : NULL, r->tokens + (size_t)p * r->page_tokens,
                       r->pages[p].n_filled, &k);
        memcpy(r->pages[p].key, k.b, 32);
        prev = k;
    }
}

static int contains(const char *s, const char *sub) {
    return strstr(s, sub) != NULL;
}

/* ---------------------------------------------------------------------------------------
 * vectors
 * ------------------------------------------------------------------------------------ */

static void hex(const uint8_t *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* Expected values from Python's hashlib (run in the repository root):
 *   import hashlib, struct
 *   weights = bytes(range(32)); arch = bytes(range(0x40, 0x60))
 *   kv = hashlib.sha256(b"lemma-kv-id-v1\0" + weights + arch
 *                       + struct.pack("<4I", 1, 4, 2, 8)).digest()
 *   k1 = hashlib.sha256(b"lemma-kv-page-v1\0" + kv + bytes(32) + struct.pack("<I", 4)
 *                       + struct.pack("<4i", 1, -2, 70000, 3)).digest()
 *   k2 = hashlib.sha256(b"lemma-kv-page-v1\0" + kv + k1 + struct.pack("<I", 1)
 *                       + struct.pack("<i", -2147483648)).digest()
 */
static void test_vectors(void) {
    lm_identity id;
    fill_identity(&id, 4, 2, 8);
    char h[65];
    hex(id.kv_id, 32, h);
    T_CHECK(strcmp(h, "57ec5dd917437c149e55ef3857476c5434a54de87e1cac1188c875eb5db12127") == 0,
            "kv_id %s", h);
    /* the other identity fields do not enter kv_id */
    lm_identity id2 = id;
    memset(id2.tokenizer, 0xee, 32);
    memset(id2.chat_template, 0, 32);
    uint8_t k2id[32];
    lm_identity_kv_id(&id2, k2id);
    T_CHECK(memcmp(k2id, id.kv_id, 32) == 0, "tokenizer/template must not change kv_id");
    id2 = id;
    id2.page_tokens = 8;
    lm_identity_kv_id(&id2, k2id);
    T_CHECK(memcmp(k2id, id.kv_id, 32) != 0, "page_tokens must change kv_id");

    const int32_t t1[4] = {1, -2, 70000, 3};
    const int32_t t2[1] = {INT32_MIN};
    lm_kv_key k1, k2;
    lm_kv_page_key(id.kv_id, NULL, t1, 4, &k1);
    hex(k1.b, 32, h);
    T_CHECK(strcmp(h, "761a809136043b05ad30674edf482259790ee51c68c860e319f924c7b54e9651") == 0,
            "page key 1 %s", h);
    lm_kv_page_key(id.kv_id, &k1, t2, 1, &k2);
    hex(k2.b, 32, h);
    T_CHECK(strcmp(h, "fb7ce11dc21fd4b8b550e9b74588defafaf91dca58c91edd29a3c616fcabf7e4") == 0,
            "page key 2 %s", h);
    /* NULL parent == 32 zero bytes */
    lm_kv_key zero, k1z;
    memset(&zero, 0, sizeof zero);
    lm_kv_page_key(id.kv_id, &zero, t1, 4, &k1z);
    T_CHECK(memcmp(k1.b, k1z.b, 32) == 0, "NULL parent must equal the zero key");
    /* more than one 256-token chunk inside the hasher */
    static int32_t many[1000];
    for (int i = 0; i < 1000; i++)
        many[i] = i;
    lm_kv_key a, b;
    lm_kv_page_key(id.kv_id, NULL, many, 1000, &a);
    many[999] = 1000;
    lm_kv_page_key(id.kv_id, NULL, many, 1000, &b);
    T_CHECK(memcmp(a.b, b.b, 32) != 0, "the last token of a long page must enter the key");

    /* lm_digest128: XXH3-128, high 64 bits then low, each little-endian */
    lm_kv_digest d;
    lm_digest128("lemma", 5, &d);
    XXH128_hash_t x = XXH3_128bits("lemma", 5);
    T_CHECK(get_u64(d.b) == x.high64 && get_u64(d.b + 8) == x.low64, "digest byte order");
}

/* ---------------------------------------------------------------------------------------
 * round trips
 * ------------------------------------------------------------------------------------ */

static int manifests_equal(const lm_manifest *a, const lm_manifest *b) {
    if (strcmp(a->name, b->name) || strcmp(a->parent, b->parent) || strcmp(a->model, b->model))
        return 0;
    if (a->created_at != b->created_at || a->updated_at != b->updated_at) return 0;
    if (memcmp(&a->id, &b->id, sizeof a->id)) return 0;
    if (a->n_ctx != b->n_ctx || a->n_tokens != b->n_tokens || a->n_pages != b->n_pages ||
        a->n_vocab != b->n_vocab || a->rng_valid != b->rng_valid)
        return 0;
    if (a->n_tokens && memcmp(a->tokens, b->tokens, a->n_tokens * 4)) return 0;
    for (uint32_t p = 0; p < a->n_pages; p++)
        if (memcmp(&a->pages[p], &b->pages[p], sizeof a->pages[p])) return 0;
    if (a->n_vocab && memcmp(a->logits, b->logits, a->n_vocab * 4)) return 0; /* bit-exact */
    return memcmp(a->rng, b->rng, sizeof a->rng) == 0;
}

static void test_roundtrip(void) {
    enum { NT = 1000, PT = 256, NV = 300 };
    static int32_t toks[NT];
    static lm_page_ref pages[4];
    static float logits[NV];
    lm_manifest m;
    memset(&m, 0, sizeof m);
    strcpy(m.name, "work.session-2");
    strcpy(m.parent, "work");
    strcpy(m.model, "Llama 3.2 1B Instruct \xe2\x80\x94 Q8_0");
    m.created_at = 1712345678;
    m.updated_at = 1712349999;
    fill_identity(&m.id, PT, 16, 512);
    m.n_ctx = 4096;
    m.n_tokens = NT;
    for (int i = 0; i < NT; i++)
        toks[i] = (int32_t)(t_rand_u64() % 128256);
    m.tokens = toks;
    m.n_pages = make_pages(&m.id, toks, NT, pages);
    T_REQUIRE(m.n_pages == 4 && pages[3].n_filled == NT - 3 * PT, "pages %u", m.n_pages);
    m.pages = pages;
    m.n_vocab = NV;
    for (int i = 0; i < NV; i++)
        logits[i] = t_rand_f32(-30, 30);
    logits[5] = -INFINITY;
    logits[6] = -0.0f;
    logits[7] = 1e-40f;
    logits[8] = 3.4028235e38f;
    m.logits = logits;
    m.rng_valid = 1;
    m.rng[0] = 0xdeadbeefcafebabeull;
    m.rng[3] = 7;

    lm_err e;
    lm_err_clear(&e);
    uint8_t *buf = NULL;
    size_t len = 0;
    T_REQUIRE(lm_manifest_encode(&m, &buf, &len, &e) == LM_OK, "%s", e.msg);
    size_t want = 24 + 2 + 14 + 2 + 4 + 2 + strlen(m.model) + 16 + 5 * 32 + 16 + 4 + 8 + 4 * NT +
                  4 + 4 * 52 + 4 + 4 * NV + 4 + 32 + 16;
    T_CHECK(len == want, "len %zu want %zu", len, want);
    T_CHECK(memcmp(buf, "LMSESSN1", 8) == 0 && get_u32(buf + 8) == 1 && get_u32(buf + 12) == 0 &&
                get_u64(buf + 16) == len,
            "header");
    /* name at 24: u16 length then bytes */
    T_CHECK(buf[24] == 14 && buf[25] == 0 && memcmp(buf + 26, "work.session-2", 14) == 0, "name");
    lm_manifest *d = NULL;
    T_REQUIRE(lm_manifest_decode(buf, len, "work.session-2", &d, &e) == LM_OK, "%s", e.msg);
    T_CHECK(manifests_equal(&m, d), "decoded manifest differs");
    T_CHECK(isinf(d->logits[5]) && d->logits[5] < 0, "-inf kept");
    T_CHECK(signbit(d->logits[6]), "-0 kept");
    /* re-encoding gives the same bytes */
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    T_CHECK(lm_manifest_encode(d, &buf2, &len2, &e) == LM_OK, "%s", e.msg);
    T_CHECK(len2 == len && memcmp(buf, buf2, len) == 0, "re-encode differs");
    lm_free(buf2);
    /* expect_name NULL: no name check */
    lm_manifest *d2 = NULL;
    T_CHECK(lm_manifest_decode(buf, len, NULL, &d2, &e) == LM_OK, "%s", e.msg);
    lm_manifest_free(d2);
    /* swapped file: another session's name */
    lm_err_clear(&e);
    d2 = (lm_manifest *)1;
    T_CHECK(lm_manifest_decode(buf, len, "work", &d2, &e) == LM_ERR_FORMAT && d2 == NULL &&
                contains(e.msg, "name"),
            "swapped manifest: %s", e.msg);
    lm_manifest_free(d);
    lm_free(buf);

    /* an empty session: no tokens, pages, logits; no parent; rng not valid */
    memset(&m, 0, sizeof m);
    strcpy(m.name, "e");
    fill_identity(&m.id, 1, 1, 1);
    lm_err_clear(&e);
    T_REQUIRE(lm_manifest_encode(&m, &buf, &len, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_manifest_decode(buf, len, "e", &d, &e) == LM_OK, "%s", e.msg);
    T_CHECK(manifests_equal(&m, d) && !d->tokens && !d->pages && !d->logits, "empty session");
    lm_manifest_free(d);
    lm_free(buf);

    /* exact multiple of the page size: the last page is full */
    memset(&m, 0, sizeof m);
    strcpy(m.name, "full");
    fill_identity(&m.id, 4, 1, 2);
    m.n_ctx = 8;
    m.n_tokens = 8;
    int32_t t8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    m.tokens = t8;
    m.n_pages = make_pages(&m.id, t8, 8, pages);
    m.pages = pages;
    lm_err_clear(&e);
    T_REQUIRE(m.n_pages == 2 && lm_manifest_encode(&m, &buf, &len, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_manifest_decode(buf, len, "full", &d, &e) == LM_OK && manifests_equal(&m, d), "%s",
            e.msg);
    lm_manifest_free(d);
    lm_free(buf);

    /* the raw writer's good manifest decodes (it is the base of the corruption matrix) */
    raw r;
    raw_good(&r);
    static bb b;
    raw_encode(&r, &b);
    lm_err_clear(&e);
    T_CHECK(lm_manifest_decode(b.p, b.len, "chat-1.a_B", &d, &e) == LM_OK, "raw good: %s", e.msg);
    if (d) T_CHECK(d->n_pages == 3 && d->pages[2].n_filled == 5 && d->logits[8] == 1e-45f, "raw");
    lm_manifest_free(d);
}

/* The encoder refuses a manifest that breaks a rule (it never writes what it would refuse). */
static void test_encode_refuses(void) {
    int32_t toks[5] = {1, 2, 3, 4, 5};
    lm_page_ref pages[2];
    float lg[2] = {0, NAN};
    lm_manifest m;
    memset(&m, 0, sizeof m);
    strcpy(m.name, "x");
    fill_identity(&m.id, 4, 1, 2);
    m.n_ctx = 5;
    m.n_tokens = 5;
    m.tokens = toks;
    m.n_pages = make_pages(&m.id, toks, 5, pages);
    m.pages = pages;
    uint8_t *buf = NULL;
    size_t len = 0;
    lm_err e;
    lm_manifest t;
#define REFUSE(mut, sub)                                                                           \
    do {                                                                                           \
        t = m;                                                                                     \
        mut;                                                                                       \
        lm_err_clear(&e);                                                                          \
        buf = (uint8_t *)1;                                                                        \
        T_CHECK(lm_manifest_encode(&t, &buf, &len, &e) == LM_ERR_INVALID_ARG && !buf &&            \
                    contains(e.msg, sub),                                                          \
                "%s: %s", #mut, e.msg);                                                            \
    } while (0)
    REFUSE(strcpy(t.name, "a/b"), "name");
    REFUSE(t.name[0] = 0, "name");
    REFUSE(strcpy(t.parent, ".."), "parent");
    REFUSE(strcpy(t.model, "a\nb"), "model");
    REFUSE(t.n_tokens = 6, "n_tokens");
    REFUSE(t.n_pages = 1, "n_pages");
    REFUSE(toks[0] = 9, "key");
    toks[0] = 1;
    REFUSE(t.id.weights[0] ^= 1, "kv_id");
    REFUSE((t.n_vocab = 2, t.logits = lg), "logits");
    REFUSE(t.rng_valid = 2, "rng_valid");
    REFUSE(t.tokens = NULL, "tokens");
    REFUSE(memset(t.name, 'a', sizeof t.name), "name");
#undef REFUSE
    lm_err_clear(&e);
    T_CHECK(lm_manifest_encode(&m, &buf, &len, &e) == LM_OK, "%s", e.msg);
    lm_free(buf);
}

/* ---------------------------------------------------------------------------------------
 * the manifest corruption matrix
 * ------------------------------------------------------------------------------------ */

typedef struct mcase {
    const char *what;
    void (*mut)(raw *r);
    lm_status want;
    const char *sub; /* the message must contain this (the field) */
} mcase;

static char long_name[200], long_model[600];

static void m_magic(raw *r) {
    memcpy(r->magic, "LMSESSN2", 8);
}
static void m_version(raw *r) {
    r->version = 2;
}
static void m_flags(raw *r) {
    r->flags = 1;
}
static void m_size_plus(raw *r) {
    r->size_delta = 1;
}
static void m_size_minus(raw *r) {
    r->size_delta = -1;
}
static void m_name_long(raw *r) {
    r->name = (rawstr){long_name, 129, -1};
}
static void m_name_claim(raw *r) {
    r->name.claim = 5000;
}
static void m_name_slash(raw *r) {
    r->name = (rawstr){"a/b", 3, -1};
}
static void m_name_empty(raw *r) {
    r->name = (rawstr){"", 0, -1};
}
static void m_name_dot(raw *r) {
    r->name = (rawstr){".x", 2, -1};
}
static void m_name_dotdot(raw *r) {
    r->name = (rawstr){"a..b", 4, -1};
}
static void m_name_nul(raw *r) {
    r->name = (rawstr){"a\0b", 3, -1};
}
static void m_name_ctrl(raw *r) {
    r->name = (rawstr){"a\tb", 3, -1};
}
static void m_parent_bad(raw *r) {
    r->parent = (rawstr){"x\\y", 3, -1};
}
static void m_parent_long(raw *r) {
    r->parent = (rawstr){long_name, 130, -1};
}
static void m_model_long(raw *r) {
    r->model = (rawstr){long_model, 513, -1};
}
static void m_model_ctrl(raw *r) {
    r->model = (rawstr){"llama\x1b[31m", 10, -1};
}
static void m_model_c1(raw *r) {
    r->model = (rawstr){"llama \xc2\x85", 8, -1};
}
static void m_model_utf8(raw *r) {
    r->model = (rawstr){"llama \xff", 7, -1};
}
static void m_model_overlong(raw *r) {
    r->model = (rawstr){"\xc0\xaf", 2, -1};
}
static void m_model_surrogate(raw *r) {
    r->model = (rawstr){"\xed\xa0\x80", 3, -1};
}
static void m_model_cut(raw *r) {
    r->model = (rawstr){"ab\xe2\x82", 4, -1};
}
static void m_model_nul(raw *r) {
    r->model = (rawstr){"a\0b", 3, -1};
}
static void m_dtype(raw *r) {
    r->kv_dtype = 2;
}
static void m_pt0(raw *r) {
    r->page_tokens = 0;
}
static void m_pt_big(raw *r) {
    r->page_tokens = 65537;
}
static void m_nl0(raw *r) {
    r->n_layer = 0;
}
static void m_nl_big(raw *r) {
    r->n_layer = 65537;
}
static void m_kd0(raw *r) {
    r->kv_dim = 0;
}
static void m_kd_big(raw *r) {
    r->kv_dim = 0x80000000u;
}
static void m_ctx_big(raw *r) {
    r->n_ctx = (1u << 24) + 1;
}
static void m_ntok_gt_ctx(raw *r) {
    r->n_ctx = 36;
}
static void m_ntok_huge(raw *r) {
    r->n_tokens = UINT64_MAX;
}
static void m_ntok_short(raw *r) {
    r->n_ctx = 1u << 24;
    r->n_tokens = 1u << 24; /* the file holds far fewer */
}
static void m_npages_plus(raw *r) {
    r->n_pages = 4;
}
static void m_npages_minus(raw *r) {
    r->n_pages = 2;
    r->pages_written = 2;
}
static void m_npages_huge(raw *r) {
    r->n_pages = UINT32_MAX;
}
static void m_mid_filled(raw *r) {
    r->pages[0].n_filled = 15;
}
static void m_last_filled(raw *r) {
    r->pages[2].n_filled = 6;
}
static void m_last_filled0(raw *r) {
    r->pages[2].n_filled = 0;
}
static void m_key_bit(raw *r) {
    r->pages[1].key[31] ^= 0x80;
}
static void m_key_swap(raw *r) {
    uint8_t t[32];
    memcpy(t, r->pages[0].key, 32);
    memcpy(r->pages[0].key, r->pages[1].key, 32);
    memcpy(r->pages[1].key, t, 32);
}
static void m_token_changed(raw *r) {
    r->tokens[20] ^= 1;
}
static void m_token_tail(raw *r) {
    r->tokens[36] += 1;
}
static void m_kvid_bit(raw *r) {
    r->kv_id[0] ^= 1;
    raw_rekey(r); /* keys consistent with the (wrong) kv_id: only kv_id breaks */
}
static void m_weights(raw *r) {
    r->weights[5] ^= 0x10;
}
static void m_arch(raw *r) {
    r->arch[31] ^= 1;
}
static void m_geom_kvid(raw *r) {
    r->n_layer = 3; /* valid, but kv_id covers it */
}
static void m_logit_nan(raw *r) {
    uint32_t bits = 0x7fc00001;
    memcpy(&r->logits[3], &bits, 4);
}
static void m_logit_snan(raw *r) {
    uint32_t bits = 0xff800001;
    memcpy(&r->logits[49], &bits, 4);
}
static void m_logit_pinf(raw *r) {
    r->logits[0] = INFINITY;
}
static void m_nvocab_huge(raw *r) {
    r->n_vocab = UINT32_MAX;
}
static void m_nvocab_plus(raw *r) {
    r->n_vocab = 51;
}
static void m_nvocab_minus(raw *r) {
    r->n_vocab = 49;
}
static void m_rng_valid(raw *r) {
    r->rng_valid = 2;
}
static void m_rng_short(raw *r) {
    r->rng_words = 3;
}
static void m_extra(raw *r) {
    r->extra = 1;
}
static void m_extra_many(raw *r) {
    r->extra = 64;
}
static void m_tokens_written_less(raw *r) {
    r->tokens_written = 36;
}

static const mcase mcases[] = {
    {"magic", m_magic, LM_ERR_FORMAT, "magic"},
    {"version", m_version, LM_ERR_FORMAT, "version"},
    {"flags", m_flags, LM_ERR_FORMAT, "flags"},
    {"size field +1", m_size_plus, LM_ERR_FORMAT, "size"},
    {"size field -1", m_size_minus, LM_ERR_FORMAT, "size"},
    {"name 129 bytes", m_name_long, LM_ERR_FORMAT, "name length 129"},
    {"name length beyond the file", m_name_claim, LM_ERR_FORMAT, "name length 5000"},
    {"name a/b", m_name_slash, LM_ERR_FORMAT, "name"},
    {"name empty", m_name_empty, LM_ERR_FORMAT, "name"},
    {"name .x", m_name_dot, LM_ERR_FORMAT, "name"},
    {"name a..b", m_name_dotdot, LM_ERR_FORMAT, "name"},
    {"name NUL", m_name_nul, LM_ERR_FORMAT, "name"},
    {"name control", m_name_ctrl, LM_ERR_FORMAT, "name"},
    {"parent a\\b", m_parent_bad, LM_ERR_FORMAT, "parent"},
    {"parent 130 bytes", m_parent_long, LM_ERR_FORMAT, "parent length 130"},
    {"model 513 bytes", m_model_long, LM_ERR_FORMAT, "model length 513"},
    {"model ESC", m_model_ctrl, LM_ERR_FORMAT, "model"},
    {"model C1 control", m_model_c1, LM_ERR_FORMAT, "model"},
    {"model invalid UTF-8", m_model_utf8, LM_ERR_FORMAT, "model"},
    {"model overlong", m_model_overlong, LM_ERR_FORMAT, "model"},
    {"model surrogate", m_model_surrogate, LM_ERR_FORMAT, "model"},
    {"model cut sequence", m_model_cut, LM_ERR_FORMAT, "model"},
    {"model NUL", m_model_nul, LM_ERR_FORMAT, "model"},
    {"kv_dtype 2", m_dtype, LM_ERR_FORMAT, "kv_dtype 2"},
    {"page_tokens 0", m_pt0, LM_ERR_FORMAT, "page_tokens 0"},
    {"page_tokens 65537", m_pt_big, LM_ERR_FORMAT, "page_tokens 65537"},
    {"n_layer 0", m_nl0, LM_ERR_FORMAT, "n_layer 0"},
    {"n_layer 65537", m_nl_big, LM_ERR_FORMAT, "n_layer 65537"},
    {"kv_dim 0", m_kd0, LM_ERR_FORMAT, "kv_dim 0"},
    {"kv_dim 2^31", m_kd_big, LM_ERR_FORMAT, "kv_dim 2147483648"},
    {"n_ctx 2^24+1", m_ctx_big, LM_ERR_FORMAT, "n_ctx 16777217"},
    {"n_tokens > n_ctx", m_ntok_gt_ctx, LM_ERR_FORMAT, "n_tokens 37 > n_ctx 36"},
    {"n_tokens 2^64-1", m_ntok_huge, LM_ERR_FORMAT, "n_tokens"},
    {"n_tokens beyond the file", m_ntok_short, LM_ERR_FORMAT, "tokens"},
    {"tokens one short", m_tokens_written_less, LM_ERR_FORMAT, "manifest:"},
    {"n_pages + 1", m_npages_plus, LM_ERR_FORMAT, "n_pages 4"},
    {"n_pages - 1", m_npages_minus, LM_ERR_FORMAT, "n_pages 2"},
    {"n_pages 2^32-1", m_npages_huge, LM_ERR_FORMAT, "n_pages"},
    {"inner page not full", m_mid_filled, LM_ERR_FORMAT, "n_filled 15"},
    {"last page n_filled", m_last_filled, LM_ERR_FORMAT, "n_filled 6"},
    {"last page n_filled 0", m_last_filled0, LM_ERR_FORMAT, "n_filled 0"},
    {"page key bit", m_key_bit, LM_ERR_CORRUPT, "page 1 key"},
    {"page keys swapped", m_key_swap, LM_ERR_CORRUPT, "page 0 key"},
    {"token changed", m_token_changed, LM_ERR_CORRUPT, "page 1 key"},
    {"tail token changed", m_token_tail, LM_ERR_CORRUPT, "page 2 key"},
    {"kv_id", m_kvid_bit, LM_ERR_CORRUPT, "kv_id"},
    {"weights", m_weights, LM_ERR_CORRUPT, "kv_id"},
    {"arch", m_arch, LM_ERR_CORRUPT, "kv_id"},
    {"n_layer not in kv_id", m_geom_kvid, LM_ERR_CORRUPT, "kv_id"},
    {"logit NaN", m_logit_nan, LM_ERR_FORMAT, "logits[3]"},
    {"logit negative NaN", m_logit_snan, LM_ERR_FORMAT, "logits[49]"},
    {"logit +inf", m_logit_pinf, LM_ERR_FORMAT, "logits[0]"},
    {"n_vocab 2^32-1", m_nvocab_huge, LM_ERR_FORMAT, "logits"},
    {"n_vocab + 1", m_nvocab_plus, LM_ERR_FORMAT, "manifest:"},
    {"n_vocab - 1", m_nvocab_minus, LM_ERR_FORMAT, "left over"},
    {"rng_valid 2", m_rng_valid, LM_ERR_FORMAT, "rng_valid 2"},
    {"rng short", m_rng_short, LM_ERR_FORMAT, "rng"},
    {"one byte left over", m_extra, LM_ERR_FORMAT, "left over"},
    {"64 bytes left over", m_extra_many, LM_ERR_FORMAT, "64 bytes left over"},
};

static void test_corrupt_manifest(void) {
    memset(long_name, 'n', sizeof long_name);
    memset(long_model, 'm', sizeof long_model);
    static bb b;
    for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++) {
        const mcase *c = &mcases[i];
        raw r;
        raw_good(&r);
        c->mut(&r);
        raw_encode(&r, &b);
        lm_err e;
        lm_err_clear(&e);
        lm_manifest *m = (lm_manifest *)1;
        lm_status s = lm_manifest_decode(b.p, b.len, NULL, &m, &e);
        T_CHECK(s == c->want && m == NULL && contains(e.msg, c->sub) &&
                    strncmp(e.msg, "manifest", 8) == 0,
                "%s: status %d (want %d): %s", c->what, s, c->want, e.msg);
        if (s == LM_OK) lm_manifest_free(m);
    }
    /* the same bytes with a wrong checksum: the checksum is what refuses them */
    raw r;
    raw_good(&r);
    raw_encode(&r, &b);
    b.p[b.len - 1] ^= 1;
    lm_err e;
    lm_err_clear(&e);
    lm_manifest *m = NULL;
    T_CHECK(lm_manifest_decode(b.p, b.len, NULL, &m, &e) == LM_ERR_CORRUPT &&
                contains(e.msg, "checksum"),
            "checksum: %s", e.msg);
    /* a tokenizer or template change is not a manifest error (compared at wake) */
    raw_good(&r);
    r.tok[0] ^= 1;
    r.tmpl[0] ^= 1;
    raw_encode(&r, &b);
    lm_err_clear(&e);
    T_CHECK(lm_manifest_decode(b.p, b.len, NULL, &m, &e) == LM_OK, "tokenizer: %s", e.msg);
    lm_manifest_free(m);
    /* NULL buffer / out */
    lm_err_clear(&e);
    T_CHECK(lm_manifest_decode(NULL, 5, NULL, &m, &e) == LM_ERR_INVALID_ARG, "NULL buf");
    lm_err_clear(&e);
    T_CHECK(lm_manifest_decode(NULL, 0, NULL, &m, &e) == LM_ERR_FORMAT && !m, "empty");
}

static void test_truncation(void) {
    static bb b, t;
    raw r;
    raw_good(&r);
    raw_encode(&r, &b);
    int bad = 0, bad_fixed = 0;
    for (size_t len = 0; len < b.len; len++) {
        lm_err e;
        lm_err_clear(&e);
        lm_manifest *m = NULL;
        lm_status s = lm_manifest_decode(b.p, len, NULL, &m, &e);
        if (!(s == LM_ERR_CORRUPT || s == LM_ERR_FORMAT) || m || !e.msg[0]) {
            if (bad++ < 5) T_CHECK(0, "truncated to %zu: status %d: %s", len, s, e.msg);
            lm_manifest_free(m);
        }
        /* truncated body with a valid size field and checksum: a rule must still refuse it */
        if (len >= 24 && len < b.len - 16) {
            t.len = 0;
            bb_bytes(&t, b.p, len);
            put_u64(t.p + 16, len + 16);
            bb_checksum(&t);
            lm_err_clear(&e);
            s = lm_manifest_decode(t.p, t.len, NULL, &m, &e);
            if (s != LM_ERR_FORMAT || m || !contains(e.msg, "manifest")) {
                if (bad_fixed++ < 5)
                    T_CHECK(0, "body truncated to %zu (checksum fixed): status %d: %s", len, s,
                            e.msg);
                lm_manifest_free(m);
            }
        }
    }
    T_CHECK(bad == 0 && bad_fixed == 0, "%d + %d truncations accepted", bad, bad_fixed);
}

static void test_bit_flips(void) {
    static bb b;
    raw r;
    raw_good(&r);
    raw_encode(&r, &b);
    int bad = 0;
    for (size_t off = 0; off < b.len; off++) {
        for (int bit = 0; bit < 8; bit += (off % 7 == 0) ? 1 : 8) {
            b.p[off] ^= (uint8_t)(1 << ((bit + off) % 8));
            lm_err e;
            lm_err_clear(&e);
            lm_manifest *m = NULL;
            lm_status s = lm_manifest_decode(b.p, b.len, NULL, &m, &e);
            b.p[off] ^= (uint8_t)(1 << ((bit + off) % 8));
            if (s != LM_ERR_CORRUPT || m || !contains(e.msg, "checksum")) {
                if (bad++ < 5) T_CHECK(0, "bit flip at %zu: status %d: %s", off, s, e.msg);
                lm_manifest_free(m);
            }
        }
    }
    T_CHECK(bad == 0, "%d bit flips accepted", bad);
}

/* ---------------------------------------------------------------------------------------
 * names and identities
 * ------------------------------------------------------------------------------------ */

static void test_names(void) {
    static const char *good[] = {"a",     "Z",           "0",      "_",
                                 "-",     "a.b",         "chat-1", "my_session.v2",
                                 "a.b.c", "A-Z_a-z.0-9", "-x",     "x-"};
    static const char *badn[] = {
        "",       ".",   "..",   ".x",   "x.",    "a..b", "a/b",         "a\\b",         "/",
        "../etc", "a b", "a\tb", "a\nb", "a\x01", "\x7f", "caf\xc3\xa9", "\xe2\x80\x94", "a:b",
        "a*b",    "a?b", "~",    "a\"b", "a'b",   "a%b",  "a+b",         "a@b"};
    lm_err e;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        lm_err_clear(&e);
        T_CHECK(lm_session_name_check(good[i], &e) == LM_OK, "'%s': %s", good[i], e.msg);
    }
    for (size_t i = 0; i < sizeof badn / sizeof badn[0]; i++) {
        lm_err_clear(&e);
        T_CHECK(lm_session_name_check(badn[i], &e) == LM_ERR_INVALID_ARG &&
                    contains(e.msg, "session name"),
                "'%s' accepted (%s)", badn[i], e.msg);
    }
    char n[200];
    memset(n, 'a', sizeof n);
    n[128] = '\0';
    lm_err_clear(&e);
    T_CHECK(lm_session_name_check(n, &e) == LM_OK, "128 bytes: %s", e.msg);
    n[128] = 'a';
    n[129] = '\0';
    lm_err_clear(&e);
    T_CHECK(lm_session_name_check(n, &e) == LM_ERR_INVALID_ARG && contains(e.msg, "129 bytes"),
            "129 bytes: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_session_name_check(NULL, &e) == LM_ERR_INVALID_ARG, "NULL");
    /* a message stays one printable line whatever the name holds */
    lm_err_clear(&e);
    lm_session_name_check("a\nb\x1b", &e);
    for (const char *p = e.msg; *p; p++)
        T_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in message");
}

static void test_identity_compare(void) {
    lm_identity a, b;
    fill_identity(&a, 256, 16, 512);
    b = a;
    lm_err e;
    lm_err_clear(&e);
    T_CHECK(lm_identity_compare(&a, &b, "session 's1'", &e) == LM_OK, "%s", e.msg);
    b.weights[0] ^= 1;
    fill_identity(&b, 128, 16, 512);
    b.weights[0] ^= 1;
    lm_identity_kv_id(&b, b.kv_id);
    lm_err_clear(&e);
    T_CHECK(lm_identity_compare(&a, &b, "session 's1'", &e) == LM_ERR_MISMATCH &&
                contains(e.msg, "session 's1'") && contains(e.msg, "weights") &&
                contains(e.msg, "page size 256 vs 128") && !contains(e.msg, "tokenizer") &&
                !contains(e.msg, "architecture") && contains(e.msg, "session's") &&
                contains(e.msg, "loaded model's"),
            "%s", e.msg);
    /* every component */
    b = a;
    memset(b.weights, 1, 32);
    memset(b.arch, 1, 32);
    memset(b.tokenizer, 1, 32);
    memset(b.chat_template, 1, 32);
    b.kv_dtype = 2;
    b.page_tokens = 128;
    b.n_layer = 30;
    b.kv_dim = 64;
    lm_err_clear(&e);
    T_CHECK(lm_identity_compare(&a, &b, NULL, &e) == LM_ERR_MISMATCH &&
                contains(e.msg, "weights") && contains(e.msg, "architecture") &&
                contains(e.msg, "tokenizer") && contains(e.msg, "chat template") &&
                contains(e.msg, "KV dtype 1 vs 2") && contains(e.msg, "page size 256 vs 128") &&
                contains(e.msg, "layers 16 vs 30") && contains(e.msg, "KV width 512 vs 64"),
            "%s", e.msg);
    /* a chat template alone */
    b = a;
    b.chat_template[31] ^= 1;
    lm_err_clear(&e);
    T_CHECK(lm_identity_compare(&a, &b, "s", &e) == LM_ERR_MISMATCH &&
                contains(e.msg, "chat template") && !contains(e.msg, "weights"),
            "%s", e.msg);
    /* kv_id alone (a stale identity) */
    b = a;
    b.kv_id[0] ^= 1;
    lm_err_clear(&e);
    T_CHECK(lm_identity_compare(&a, &b, "s", &e) == LM_ERR_MISMATCH &&
                contains(e.msg, "KV identity"),
            "%s", e.msg);
}

/* ---------------------------------------------------------------------------------------
 * page blobs
 * ------------------------------------------------------------------------------------ */

typedef struct page_fix {
    lm_page_header h;
    uint8_t blob[128 + 2 * 2 * 16 * 8 * 2];
    size_t len;
} page_fix;

/* A page of geometry (page_tokens 16, n_layer 2, kv_dim 8) with n_filled rows and a payload
 * from seed; key from tokens seeded the same way. */
static void make_page(page_fix *f, uint32_t n_filled, unsigned seed) {
    lm_identity id;
    fill_identity(&id, 16, 2, 8);
    memset(&f->h, 0, sizeof f->h);
    memcpy(f->h.kv_id, id.kv_id, 32);
    f->h.kv_dtype = 1;
    f->h.page_tokens = 16;
    f->h.n_layer = 2;
    f->h.kv_dim = 8;
    f->h.n_filled = n_filled;
    int32_t toks[16];
    for (int i = 0; i < 16; i++)
        toks[i] = (int32_t)(seed * 100 + (unsigned)i);
    lm_kv_page_key(id.kv_id, NULL, toks, n_filled, &f->h.key);
    size_t p = lm_page_payload_bytes(&f->h);
    for (size_t i = 0; i < p; i++)
        f->blob[128 + i] = (uint8_t)(i * 31 + seed * 7);
    lm_digest128(f->blob + 128, p, &f->h.content);
    lm_page_header_encode(&f->h, f->blob);
    f->len = 128 + p;
}

static void fix_header_sum(uint8_t *blob) {
    put_u64(blob + 120, XXH3_64bits(blob, 120));
}

static void test_page_blob(void) {
    page_fix f;
    make_page(&f, 5, 1);
    T_REQUIRE(f.len == 128 + 2 * 2 * 5 * 8 * 2, "len %zu", f.len);
    /* the header layout of §3, read back field by field */
    const uint8_t *b = f.blob;
    T_CHECK(memcmp(b, "LMKVPAGE", 8) == 0 && get_u32(b + 8) == 1 && get_u32(b + 12) == 128 &&
                memcmp(b + 16, f.h.key.b, 32) == 0 && memcmp(b + 48, f.h.content.b, 16) == 0 &&
                memcmp(b + 64, f.h.kv_id, 32) == 0 && get_u32(b + 96) == 1 &&
                get_u32(b + 100) == 16 && get_u32(b + 104) == 2 && get_u32(b + 108) == 8 &&
                get_u32(b + 112) == 5 && get_u32(b + 116) == 0 &&
                get_u64(b + 120) == XXH3_64bits(b, 120),
            "header layout");
    lm_err e;
    lm_err_clear(&e);
    const uint8_t *payload = NULL;
    T_CHECK(lm_page_blob_check(f.blob, f.len, &f.h, &payload, &e) == LM_OK &&
                payload == f.blob + 128,
            "good page: %s", e.msg);

    /* each header field wrong (header checksum fixed, so the field itself refuses it) */
    static const struct {
        const char *what;
        size_t off, n;
        uint32_t v; /* written as u32 at off when n == 4, else the bytes are xor'd with 1 */
        lm_status want;
        const char *sub;
    } hc[] = {
        {"magic", 0, 1, 0, LM_ERR_FORMAT, "magic"},
        {"version", 8, 4, 2, LM_ERR_FORMAT, "version 2"},
        {"header bytes", 12, 4, 127, LM_ERR_FORMAT, "header bytes 127"},
        {"key", 16, 1, 0, LM_ERR_CORRUPT, "key"},
        {"key last byte", 47, 1, 0, LM_ERR_CORRUPT, "key"},
        {"content", 48, 1, 0, LM_ERR_CORRUPT, "content"},
        {"kv_id", 64, 1, 0, LM_ERR_CORRUPT, "kv_id"},
        {"kv_dtype", 96, 4, 2, LM_ERR_CORRUPT, "kv_dtype 2"},
        {"page_tokens", 100, 4, 32, LM_ERR_CORRUPT, "page_tokens 32"},
        {"n_layer", 104, 4, 3, LM_ERR_CORRUPT, "n_layer 3"},
        {"kv_dim", 108, 4, 4, LM_ERR_CORRUPT, "kv_dim 4"},
        {"n_filled", 112, 4, 4, LM_ERR_CORRUPT, "n_filled 4"},
        {"n_filled 0", 112, 4, 0, LM_ERR_CORRUPT, "n_filled 0"},
        {"flags", 116, 4, 1, LM_ERR_FORMAT, "flags"},
    };
    for (size_t i = 0; i < sizeof hc / sizeof hc[0]; i++) {
        page_fix g = f;
        if (hc[i].n == 4)
            put_u32(g.blob + hc[i].off, hc[i].v);
        else
            g.blob[hc[i].off] ^= 1;
        fix_header_sum(g.blob);
        lm_err_clear(&e);
        payload = (const uint8_t *)1;
        lm_status s = lm_page_blob_check(g.blob, g.len, &f.h, &payload, &e);
        T_CHECK(s == hc[i].want && payload == NULL && contains(e.msg, hc[i].sub) &&
                    strncmp(e.msg, "page", 4) == 0,
                "%s: status %d: %s", hc[i].what, s, e.msg);
        /* and without fixing the checksum: refused too */
        g = f;
        g.blob[hc[i].off] ^= 0x40;
        lm_err_clear(&e);
        T_CHECK(lm_page_blob_check(g.blob, g.len, &f.h, NULL, &e) != LM_OK, "%s (raw)", hc[i].what);
    }
    /* header checksum itself */
    page_fix g = f;
    g.blob[121] ^= 4;
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(g.blob, g.len, &f.h, NULL, &e) == LM_ERR_CORRUPT &&
                contains(e.msg, "header checksum"),
            "header checksum: %s", e.msg);
    /* payload bit flips anywhere */
    int bad = 0;
    for (size_t off = 128; off < f.len; off += 13) {
        g = f;
        g.blob[off] ^= (uint8_t)(1 << (off % 8));
        lm_err_clear(&e);
        if (lm_page_blob_check(g.blob, g.len, &f.h, NULL, &e) != LM_ERR_CORRUPT ||
            !contains(e.msg, "payload"))
            bad++;
    }
    T_CHECK(bad == 0, "%d payload flips accepted (%s)", bad, e.msg);
    /* truncated at every length, extended by one byte */
    bad = 0;
    for (size_t len = 0; len < f.len; len++) {
        lm_err_clear(&e);
        lm_status s = lm_page_blob_check(f.blob, len, &f.h, NULL, &e);
        if (s != LM_ERR_FORMAT || !contains(e.msg, "size")) bad++;
    }
    T_CHECK(bad == 0, "%d truncations accepted", bad);
    g = f;
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(g.blob, f.len + 1, &f.h, NULL, &e) == LM_ERR_FORMAT &&
                contains(e.msg, "file size"),
            "extended: %s", e.msg);
    /* a swapped blob: another page's file under this page's name */
    page_fix o;
    make_page(&o, 5, 2);
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(o.blob, o.len, &f.h, NULL, &e) == LM_ERR_CORRUPT &&
                contains(e.msg, "key"),
            "other page: %s", e.msg);
    /* same key, other content (the same tokens computed differently) */
    o = f;
    o.blob[128] ^= 1;
    lm_digest128(o.blob + 128, o.len - 128, &o.h.content);
    lm_page_header_encode(&o.h, o.blob);
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(o.blob, o.len, &f.h, NULL, &e) == LM_ERR_CORRUPT &&
                contains(e.msg, "content"),
            "other content: %s", e.msg);
    /* a page whose header names the expected content but whose payload is another's */
    o = f;
    o.blob[200] ^= 1;
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(o.blob, o.len, &f.h, NULL, &e) == LM_ERR_CORRUPT &&
                contains(e.msg, "payload"),
            "payload swapped: %s", e.msg);
    /* same key and content, another model (kv_id) */
    o = f;
    o.h.kv_id[3] ^= 1;
    lm_page_header_encode(&o.h, o.blob);
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(o.blob, o.len, &f.h, NULL, &e) == LM_ERR_CORRUPT &&
                contains(e.msg, "kv_id"),
            "other kv_id: %s", e.msg);
    /* a full page of the same geometry */
    page_fix full;
    make_page(&full, 16, 3);
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(full.blob, full.len, &full.h, NULL, &e) == LM_OK, "full: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(full.blob, full.len, &f.h, NULL, &e) == LM_ERR_CORRUPT,
            "full vs partial: %s", e.msg);
    /* an invalid expected header is the caller's error */
    lm_page_header bh = f.h;
    bh.n_filled = 17;
    lm_err_clear(&e);
    T_CHECK(lm_page_blob_check(f.blob, f.len, &bh, NULL, &e) == LM_ERR_INVALID_ARG, "%s", e.msg);
}

static void test_payload_bytes(void) {
    lm_page_header h;
    memset(&h, 0, sizeof h);
    h.kv_dtype = 1;
    h.page_tokens = 256;
    h.n_layer = 32;
    h.kv_dim = 1024;
    h.n_filled = 256;
    T_CHECK(lm_page_payload_bytes(&h) == (size_t)32 * 2 * 256 * 1024 * 2, "full");
    h.n_filled = 1;
    T_CHECK(lm_page_payload_bytes(&h) == (size_t)32 * 2 * 1024 * 2, "one row");
    h.page_tokens = h.n_layer = h.kv_dim = h.n_filled = 65536;
    T_CHECK(lm_page_payload_bytes(&h) == (SIZE_MAX > 0xffffffffu ? (size_t)1 << 50 : 0), "max");
    const struct {
        uint32_t dt, pt, nl, kd, nf;
    } bad[] = {{2, 16, 1, 1, 1},    {1, 0, 1, 1, 1},      {1, 16, 0, 1, 1},
               {1, 16, 1, 0, 1},    {1, 16, 1, 1, 0},     {1, 16, 1, 1, 17},
               {1, 65537, 1, 1, 1}, {1, 16, 65537, 1, 1}, {1, 16, 1, 65537, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h.kv_dtype = bad[i].dt;
        h.page_tokens = bad[i].pt;
        h.n_layer = bad[i].nl;
        h.kv_dim = bad[i].kd;
        h.n_filled = bad[i].nf;
        T_CHECK(lm_page_payload_bytes(&h) == 0, "bad geometry %zu", i);
    }
    T_CHECK(lm_page_payload_bytes(NULL) == 0, "NULL");
}

/* ---------------------------------------------------------------------------------------
 * allocation failures
 * ------------------------------------------------------------------------------------ */

static void test_alloc_failures(void) {
    static bb b;
    raw r;
    raw_good(&r);
    raw_encode(&r, &b);
    for (int persistent = 0; persistent < 2; persistent++) {
        int done = 0;
        for (unsigned long n = 1; n < 100 && !done; n++) {
            lm_err e;
            lm_err_clear(&e);
            lm_manifest *m = (lm_manifest *)1;
            lm_alloc_fail_after(n, persistent);
            lm_status s = lm_manifest_decode(b.p, b.len, "chat-1.a_B", &m, &e);
            unsigned long inj = lm_alloc_injected_failures();
            lm_alloc_fail_after(0, 0);
            if (s == LM_OK) {
                T_CHECK(inj == 0, "decode succeeded despite %lu injected failures", inj);
                lm_manifest_free(m);
                done = 1;
            } else {
                T_CHECK(s == LM_ERR_NOMEM && m == NULL && e.msg[0], "n=%lu: status %d: %s", n, s,
                        e.msg);
            }
        }
        T_CHECK(done, "decode never succeeded");
    }
    /* encode */
    lm_manifest *m = NULL;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_manifest_decode(b.p, b.len, NULL, &m, &e) == LM_OK, "%s", e.msg);
    int done = 0;
    for (unsigned long n = 1; n < 20 && !done; n++) {
        uint8_t *buf = (uint8_t *)1;
        size_t len = 0;
        lm_err_clear(&e);
        lm_alloc_fail_after(n, 0);
        lm_status s = lm_manifest_encode(m, &buf, &len, &e);
        unsigned long inj = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (s == LM_OK) {
            T_CHECK(inj == 0 && len == b.len && memcmp(buf, b.p, len) == 0, "encode n=%lu", n);
            lm_free(buf);
            done = 1;
        } else {
            T_CHECK(s == LM_ERR_NOMEM && buf == NULL, "encode n=%lu: %d %s", n, s, e.msg);
        }
    }
    T_CHECK(done, "encode never succeeded");
    lm_manifest_free(m);
}

int main(void) {
    T_RUN(test_vectors);
    T_RUN(test_roundtrip);
    T_RUN(test_encode_refuses);
    T_RUN(test_corrupt_manifest);
    T_RUN(test_truncation);
    T_RUN(test_bit_flips);
    T_RUN(test_names);
    T_RUN(test_identity_compare);
    T_RUN(test_page_blob);
    T_RUN(test_payload_bytes);
    T_RUN(test_alloc_failures);
    return t_finish();
}
