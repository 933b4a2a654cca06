/* test_kv.c — the paged KV pool: accounting, fork and copy-on-write, publish / lookup / attach,
 * LRU eviction, exhaustion, push_page and the packed payload, the digest, allocation failures
 * and two threads sharing one pool. */
#include "core/alloc.h"
#include "kv/kv.h"
#include "test.h"

#include <xxhash.h>

#include <pthread.h>
#include <string.h>

/* The value written at (layer, kind, pos, c) by a writer tagged `tag`. */
static lm_half val(int tag, int32_t layer, int kind, int64_t pos, int32_t c) {
    return (lm_half)((unsigned)tag * 7919u + (unsigned)layer * 1009u + (unsigned)kind * 503u +
                     (unsigned)pos * 31u + (unsigned)c);
}

/* Writes positions [from, to) of seq (reserved) with tag and sets its length to `to`. */
static void fill(const lm_kv_pool *pool, lm_kv_seq *seq, int64_t from, int64_t to, int tag) {
    for (int64_t pos = from; pos < to; pos++)
        for (int32_t l = 0; l < pool->cfg.n_layer; l++)
            for (int kind = 0; kind < 2; kind++) {
                lm_half *r = lm_kv_row(pool, seq, l, kind, pos);
                for (int32_t c = 0; c < pool->cfg.kv_dim; c++) r[c] = val(tag, l, kind, pos, c);
            }
    seq->n_tokens = to;
}

/* 1 when positions [from, to) of seq hold what fill(tag) wrote. */
static int holds(const lm_kv_pool *pool, const lm_kv_seq *seq, int64_t from, int64_t to, int tag) {
    for (int64_t pos = from; pos < to; pos++)
        for (int32_t l = 0; l < pool->cfg.n_layer; l++)
            for (int kind = 0; kind < 2; kind++) {
                const lm_half *r = lm_kv_row(pool, seq, l, kind, pos);
                for (int32_t c = 0; c < pool->cfg.kv_dim; c++)
                    if (r[c] != val(tag, l, kind, pos, c)) return 0;
            }
    return 1;
}

static lm_kv_key mkkey(int a, int b, int c) {
    lm_kv_key k;
    memset(&k, 0, sizeof k);
    k.b[0] = (uint8_t)a;
    k.b[1] = (uint8_t)b;
    k.b[2] = (uint8_t)(c & 0xff);
    k.b[3] = (uint8_t)(c >> 8);
    k.b[31] = 0x5a;
    return k;
}

static int key_eq(const lm_kv_key *a, const lm_kv_key *b) { return memcmp(a, b, sizeof *a) == 0; }

static void test_geometry(void) {
    lm_kv_pool pool;
    lm_err e;
    const lm_kv_config bad[] = {{0, 8, 4, 3}, {1, 0, 4, 3}, {1, 8, 0, 3}, {1, 8, 4, 0},
                                {-1, 8, 4, 3}, {1, 8, 4, -5}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_err_clear(&e);
        T_CHECK(lm_kv_pool_init(&pool, &bad[i], &e) == LM_ERR_INVALID_ARG && pool.pages == NULL,
                "geometry %zu accepted", i);
    }
    lm_err_clear(&e);
    lm_kv_config huge = {INT32_MAX, INT32_MAX, INT32_MAX, 1};
    T_CHECK(lm_kv_pool_init(&pool, &huge, &e) == LM_ERR_NOMEM, "overflowing page size: %s", e.msg);
    lm_kv_config c = {3, 8, 4, 5};
    lm_err_clear(&e);
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_kv_page_bytes(&pool) == 3 * 2 * 4 * 8 * 2, "page bytes %zu",
            lm_kv_page_bytes(&pool));
    T_CHECK(pool.n_live == 0 && lm_kv_pool_n_cached(&pool) == 0, "empty pool");
    lm_kv_pool_free(&pool);
    lm_kv_pool_free(&pool); /* twice is harmless */
}

static void test_reserve_truncate(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {2, 4, 4, 8};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq s;
    lm_kv_seq_init(&s);
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 0, &e) == LM_OK && s.n_pages == 0, "reserve 0");
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 5, &e) == LM_OK && s.n_pages == 2 && pool.n_live == 2 &&
                s.n_tokens == 0,
            "reserve 5: %d pages, %d live", s.n_pages, pool.n_live);
    fill(&pool, &s, 0, 5, 1);
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 9, &e) == LM_OK && s.n_pages == 3 && s.n_tokens == 5,
            "reserve 9");
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 3, &e) == LM_OK && s.n_pages == 3, "reserve less: no-op");
    T_CHECK(pool.n_cow == 0, "no copies of private pages");
    fill(&pool, &s, 5, 9, 1);
    T_CHECK(holds(&pool, &s, 0, 9, 1), "contents");
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_reserve(&pool, &s, -1, &e) == LM_ERR_INVALID_ARG, "negative length");
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 33, &e) == LM_ERR_NOMEM && s.n_pages == 3,
            "more pages than the pool holds");
    s.n_keyed = 2;
    lm_kv_seq_truncate(&pool, &s, 6);
    T_CHECK(s.n_pages == 2 && s.n_tokens == 6 && s.n_keyed == 1 && pool.n_live == 2,
            "truncate 6: %d pages, %lld tokens, %d keyed", s.n_pages, (long long)s.n_tokens,
            s.n_keyed);
    lm_kv_seq_truncate(&pool, &s, 100);
    T_CHECK(s.n_tokens == 6 && s.n_pages == 2, "truncate never lengthens");
    T_CHECK(holds(&pool, &s, 0, 6, 1), "contents kept");
    lm_kv_seq_truncate(&pool, &s, 4);
    T_CHECK(s.n_pages == 1 && s.n_keyed == 1, "truncate to a page boundary keeps the full key");
    lm_kv_seq_truncate(&pool, &s, -3);
    T_CHECK(s.n_pages == 0 && s.n_tokens == 0 && s.n_keyed == 0 && pool.n_live == 0, "to 0");
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 32, &e) == LM_OK && pool.n_live == 8, "whole pool");
    lm_kv_seq_free(&pool, &s);
    T_CHECK(pool.n_live == 0 && s.table == NULL && s.keys == NULL && s.n_pages == 0, "free");
    lm_kv_seq_free(&pool, &s);
    lm_kv_pool_free(&pool);
}

static void test_fork_cow(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {2, 4, 4, 8};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq a, b;
    lm_kv_seq_init(&a);
    lm_kv_seq_init(&b);
    T_REQUIRE(lm_kv_seq_reserve(&pool, &a, 6, &e) == LM_OK, "%s", e.msg);
    fill(&pool, &a, 0, 6, 1);
    a.keys[0] = mkkey(1, 0, 0);
    a.n_keyed = 1;
    T_REQUIRE(lm_kv_seq_fork(&pool, &a, &b, &e) == LM_OK, "%s", e.msg);
    T_CHECK(b.n_pages == 2 && b.n_tokens == 6 && b.n_keyed == 1 && key_eq(&b.keys[0], &a.keys[0]),
            "fork copies table and keys");
    T_CHECK(b.table[0] == a.table[0] && b.table[1] == a.table[1] &&
                pool.refcount[a.table[0]] == 2 && pool.refcount[a.table[1]] == 2 &&
                pool.n_live == 2,
            "fork shares pages");
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_fork(&pool, &a, &b, &e) == LM_ERR_INVALID_ARG, "fork into a used seq");
    /* b writes into the shared tail page: it gets a copy */
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 8, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_cow == 1 && b.table[0] == a.table[0] && b.table[1] != a.table[1] &&
                pool.refcount[a.table[1]] == 1 && pool.refcount[b.table[1]] == 1 &&
                pool.refcount[a.table[0]] == 2 && pool.n_live == 3,
            "copy on write (cow %llu)", (unsigned long long)pool.n_cow);
    T_CHECK(b.n_keyed == 1, "keys before the copied page stay");
    T_CHECK(holds(&pool, &b, 0, 6, 1), "the copy has the old rows");
    fill(&pool, &b, 6, 8, 2);
    T_CHECK(holds(&pool, &a, 0, 6, 1), "a unchanged by b's write");
    T_CHECK(holds(&pool, &b, 6, 8, 2), "b's write");
    /* a's tail is now its own: no copy */
    T_REQUIRE(lm_kv_seq_reserve(&pool, &a, 8, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_cow == 1, "no copy of a page owned alone");
    fill(&pool, &a, 6, 8, 3);
    T_CHECK(holds(&pool, &b, 6, 8, 2) && holds(&pool, &a, 6, 8, 3), "separate tails");
    /* a writes into a page still shared after a truncate into it */
    lm_kv_seq_truncate(&pool, &a, 2);
    T_CHECK(a.n_keyed == 0 && pool.refcount[b.table[0]] == 2, "truncate into the shared page");
    T_REQUIRE(lm_kv_seq_reserve(&pool, &a, 4, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_cow == 2 && a.table[0] != b.table[0] && pool.refcount[b.table[0]] == 1,
            "second copy");
    fill(&pool, &a, 2, 4, 4);
    T_CHECK(holds(&pool, &a, 0, 2, 1) && holds(&pool, &a, 2, 4, 4) && holds(&pool, &b, 0, 6, 1),
            "contents after the second copy");
    lm_kv_seq_free(&pool, &a);
    lm_kv_seq_free(&pool, &b);
    T_CHECK(pool.n_live == 0, "all back (%d live)", pool.n_live);
    lm_kv_pool_free(&pool);
}

static void test_publish_attach(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {2, 4, 4, 8};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq a, b, d;
    lm_kv_seq_init(&a);
    lm_kv_seq_init(&b);
    lm_kv_seq_init(&d);
    T_REQUIRE(lm_kv_seq_reserve(&pool, &a, 10, &e) == LM_OK, "%s", e.msg);
    fill(&pool, &a, 0, 10, 1);
    const lm_kv_key k0 = mkkey(7, 0, 0), k1 = mkkey(7, 1, 0), k2 = mkkey(7, 2, 0);
    a.keys[0] = k0;
    a.keys[1] = k1;
    a.keys[2] = k2;
    a.n_keyed = 2;
    lm_err_clear(&e);
    T_CHECK(lm_kv_publish(&pool, &a, 2, &e) == LM_ERR_INVALID_ARG, "unkeyed page published");
    a.n_keyed = 3;
    lm_err_clear(&e);
    T_CHECK(lm_kv_publish(&pool, &a, 2, &e) == LM_ERR_INVALID_ARG, "partial page published");
    a.n_keyed = 2;
    lm_err_clear(&e);
    T_CHECK(lm_kv_publish(&pool, &a, -1, &e) == LM_ERR_INVALID_ARG, "page -1 published");
    T_CHECK(lm_kv_lookup(&pool, &k0, NULL) == -1, "nothing published yet");
    T_REQUIRE(lm_kv_publish(&pool, &a, 0, &e) == LM_OK && lm_kv_publish(&pool, &a, 1, &e) == LM_OK,
              "%s", e.msg);
    T_CHECK(lm_kv_publish(&pool, &a, 1, &e) == LM_OK, "publishing twice is a no-op");
    T_CHECK(lm_kv_lookup(&pool, &k0, NULL) == a.table[0] &&
                lm_kv_lookup(&pool, &k1, NULL) == a.table[1],
            "lookup");
    T_CHECK(lm_kv_lookup(&pool, &k2, NULL) == -1, "unknown key");
    lm_kv_digest d0, bad;
    lm_kv_page_digest(&pool, pool.pages[a.table[0]], 4, &d0);
    bad = d0;
    bad.b[15] ^= 1;
    T_CHECK(lm_kv_lookup(&pool, &k0, &d0) == a.table[0], "lookup with the right digest");
    T_CHECK(lm_kv_lookup(&pool, &k0, &bad) == -1, "lookup with a wrong digest");
    T_CHECK(pool.refcount[a.table[0]] == 1 && lm_kv_pool_n_cached(&pool) == 0, "lookup is free");

    /* attach into an empty seq */
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_attach(&pool, &b, a.table[2], &e) == LM_ERR_INVALID_ARG,
            "unpublished page attached");
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_attach(&pool, &b, 8, &e) == LM_ERR_INVALID_ARG &&
                lm_kv_seq_attach(&pool, &b, -1, &e) == LM_ERR_INVALID_ARG,
            "bad id attached");
    T_REQUIRE(lm_kv_seq_attach(&pool, &b, lm_kv_lookup(&pool, &k0, NULL), &e) == LM_OK, "%s",
              e.msg);
    T_CHECK(b.n_pages == 1 && b.n_tokens == 4 && b.n_keyed == 1 && key_eq(&b.keys[0], &k0) &&
                b.table[0] == a.table[0] && pool.refcount[a.table[0]] == 2,
            "attach: %d pages %lld tokens %d keyed", b.n_pages, (long long)b.n_tokens, b.n_keyed);
    T_CHECK(holds(&pool, &b, 0, 4, 1), "attached rows");
    /* a page whose key differs from the one it is published under is refused */
    T_REQUIRE(lm_kv_seq_attach(&pool, &d, a.table[0], &e) == LM_OK, "%s", e.msg);
    d.keys[0] = k2;
    lm_err_clear(&e);
    T_CHECK(lm_kv_publish(&pool, &d, 0, &e) == LM_ERR_INVALID_ARG, "page under a second key");
    T_CHECK(lm_kv_lookup(&pool, &k2, NULL) == -1, "second key not indexed");
    lm_kv_seq_free(&pool, &d);
    /* a length that is not a page multiple */
    lm_kv_seq_truncate(&pool, &b, 3);
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_attach(&pool, &b, a.table[1], &e) == LM_ERR_INVALID_ARG && b.n_pages == 1,
            "attach after a partial page");
    lm_kv_seq_truncate(&pool, &b, 0);
    /* a's pages go to the cache when a is freed */
    const int32_t id0 = a.table[0], id1 = a.table[1];
    lm_kv_seq_free(&pool, &a);
    T_CHECK(pool.n_live == 0 && lm_kv_pool_n_cached(&pool) == 2, "cached: %d live, %d cached",
            pool.n_live, lm_kv_pool_n_cached(&pool));
    T_CHECK(lm_kv_lookup(&pool, &k0, NULL) == id0 && lm_kv_lookup(&pool, &k1, &bad) == -1,
            "cached pages are found");
    T_REQUIRE(lm_kv_seq_attach(&pool, &b, id0, &e) == LM_OK &&
                  lm_kv_seq_attach(&pool, &b, id1, &e) == LM_OK,
              "%s", e.msg);
    T_CHECK(b.n_tokens == 8 && b.n_keyed == 2 && key_eq(&b.keys[1], &k1) && pool.n_live == 2 &&
                lm_kv_pool_n_cached(&pool) == 0,
            "attach from the cache");
    T_CHECK(holds(&pool, &b, 0, 8, 1), "cached rows");
    /* writing after attached pages takes a new page; writing into one copies it */
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 10, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_cow == 0 && b.n_keyed == 2, "append after attached pages");
    fill(&pool, &b, 8, 10, 2);
    lm_kv_seq_truncate(&pool, &b, 6);
    T_CHECK(b.n_keyed == 1 && b.n_pages == 2, "truncate into a published page");
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 7, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_cow == 1 && b.table[1] != id1 && pool.refcount[id1] == 0 &&
                lm_kv_pool_n_cached(&pool) == 1,
            "a published page owned alone is copied too");
    fill(&pool, &b, 6, 7, 3);
    T_CHECK(holds(&pool, &b, 0, 6, 1) && holds(&pool, &b, 6, 7, 3), "b's rows");
    lm_kv_digest d1;
    lm_kv_page_digest(&pool, pool.pages[id1], 4, &d1);
    T_CHECK(lm_kv_lookup(&pool, &k1, &d1) == id1, "the published page is unchanged");
    lm_kv_seq_free(&pool, &b);
    T_CHECK(pool.n_live == 0 && lm_kv_pool_n_cached(&pool) == 2, "end");
    lm_kv_pool_free(&pool);
}

static void test_lru(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {1, 2, 2, 4};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq a, b;
    lm_kv_seq_init(&a);
    lm_kv_seq_init(&b);
    T_REQUIRE(lm_kv_seq_reserve(&pool, &a, 8, &e) == LM_OK, "%s", e.msg);
    fill(&pool, &a, 0, 8, 1);
    lm_kv_key k[4];
    int32_t id[4];
    for (int p = 0; p < 4; p++) {
        k[p] = mkkey(9, p, 0);
        a.keys[p] = k[p];
        id[p] = a.table[p];
    }
    a.n_keyed = 4;
    for (int p = 0; p < 4; p++)
        T_REQUIRE(lm_kv_publish(&pool, &a, p, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq_free(&pool, &a);
    T_CHECK(lm_kv_pool_n_cached(&pool) == 4 && pool.n_live == 0, "4 cached");
    /* use order now: 1 2 3 0 (0 looked up last) */
    T_CHECK(lm_kv_lookup(&pool, &k[0], NULL) == id[0], "lookup 0");
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 2, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_evicted == 1 && b.table[0] == id[1] && lm_kv_lookup(&pool, &k[1], NULL) == -1,
            "least recently used (1) evicted: evicted %llu, got page %d",
            (unsigned long long)pool.n_evicted, b.table[0]);
    /* order: 2 3 0; look 2 up: 3 0 2 */
    T_CHECK(lm_kv_lookup(&pool, &k[2], NULL) == id[2], "lookup 2");
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 4, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_evicted == 2 && b.table[1] == id[3] && lm_kv_lookup(&pool, &k[3], NULL) == -1,
            "3 evicted");
    T_CHECK(lm_kv_lookup(&pool, &k[0], NULL) == id[0] && lm_kv_lookup(&pool, &k[2], NULL) == id[2],
            "recently used pages survive");
    T_CHECK(lm_kv_pool_n_cached(&pool) == 2 && pool.n_live == 2, "2 cached, 2 live");
    /* freed unpublished pages are reused before any cached page is evicted */
    lm_kv_seq_truncate(&pool, &b, 0);
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 4, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_evicted == 2 && lm_kv_pool_n_cached(&pool) == 2, "free pages first");
    /* order now 0 2; looking 0 up makes it 2 0 */
    T_CHECK(lm_kv_lookup(&pool, &k[0], NULL) == id[0], "lookup 0 again");
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 6, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_evicted == 3 && lm_kv_lookup(&pool, &k[2], NULL) == -1 &&
                lm_kv_lookup(&pool, &k[0], NULL) == id[0],
            "2 evicted, 0 kept");
    lm_kv_seq_free(&pool, &b);
    lm_kv_pool_free(&pool);
}

static void test_exhausted(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {1, 2, 2, 3};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq a, b, f;
    lm_kv_seq_init(&a);
    lm_kv_seq_init(&b);
    lm_kv_seq_init(&f);
    T_REQUIRE(lm_kv_seq_reserve(&pool, &a, 3, &e) == LM_OK, "%s", e.msg);
    fill(&pool, &a, 0, 3, 1);
    T_REQUIRE(lm_kv_seq_reserve(&pool, &b, 1, &e) == LM_OK, "%s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_reserve(&pool, &b, 4, &e) == LM_ERR_NOMEM, "4th page");
    T_CHECK(strstr(e.msg, "exhausted") && strstr(e.msg, "3 of 3"), "message '%s'", e.msg);
    T_CHECK(b.n_pages == 1 && b.n_tokens == 0 && pool.n_live == 3, "b unchanged after failure");
    /* a copy that does not fit */
    T_REQUIRE(lm_kv_seq_fork(&pool, &a, &f, &e) == LM_OK, "%s", e.msg);
    int32_t t0 = f.table[0], t1 = f.table[1];
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_reserve(&pool, &f, 4, &e) == LM_ERR_NOMEM, "no room for the copy");
    T_CHECK(f.n_pages == 2 && f.table[0] == t0 && f.table[1] == t1 && pool.refcount[t1] == 2 &&
                pool.n_cow == 0 && pool.n_live == 3,
            "f unchanged");
    /* room for the copy but not for the page after it: everything rolled back */
    lm_kv_seq_free(&pool, &b);
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_reserve(&pool, &f, 6, &e) == LM_ERR_NOMEM, "copy + 1 page");
    T_CHECK(f.n_pages == 2 && f.table[0] == t0 && f.table[1] == t1 && pool.refcount[t1] == 2 &&
                pool.n_cow == 0 && pool.n_live == 2 && f.n_tokens == 3,
            "f rolled back (%d live, %d pages)", pool.n_live, f.n_pages);
    T_CHECK(holds(&pool, &f, 0, 3, 1) && holds(&pool, &a, 0, 3, 1), "contents intact");
    T_REQUIRE(lm_kv_seq_reserve(&pool, &f, 4, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_cow == 1 && pool.n_live == 3 && holds(&pool, &f, 0, 3, 1), "then it fits");
    /* push_page in a full pool */
    lm_kv_seq g;
    lm_kv_seq_init(&g);
    lm_half *mem = NULL;
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_push_page(&pool, &g, 2, &mem, &e) == LM_ERR_NOMEM && g.n_pages == 0 &&
                g.n_tokens == 0 && mem == NULL,
            "push_page in a full pool");
    lm_kv_seq_free(&pool, &g);
    lm_kv_seq_free(&pool, &a);
    lm_kv_seq_free(&pool, &f);
    T_CHECK(pool.n_live == 0, "all back");
    lm_kv_pool_free(&pool);
}

static void test_push_pack(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {2, 3, 4, 4};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    const size_t full = 2 * 2 * 4 * 3, part = 2 * 2 * 2 * 3; /* halves of 4 and of 2 rows */
    lm_half src0[2 * 2 * 4 * 3], src1[2 * 2 * 2 * 3], back[2 * 2 * 4 * 3];
    for (size_t i = 0; i < full; i++) src0[i] = (lm_half)t_rand_u64();
    for (size_t i = 0; i < part; i++) src1[i] = (lm_half)t_rand_u64();
    lm_kv_seq s;
    lm_kv_seq_init(&s);
    lm_half *mem = NULL;
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_push_page(&pool, &s, 0, &mem, &e) == LM_ERR_INVALID_ARG &&
                lm_kv_seq_push_page(&pool, &s, 5, &mem, &e) == LM_ERR_INVALID_ARG,
            "bad n_filled");
    T_REQUIRE(lm_kv_seq_push_page(&pool, &s, 4, &mem, &e) == LM_OK && mem, "%s", e.msg);
    lm_kv_page_unpack(&pool, mem, 4, src0);
    T_REQUIRE(lm_kv_seq_push_page(&pool, &s, 2, &mem, &e) == LM_OK && mem, "%s", e.msg);
    lm_kv_page_unpack(&pool, mem, 2, src1);
    T_CHECK(s.n_tokens == 6 && s.n_pages == 2 && s.n_keyed == 0 && pool.n_live == 2, "pushed");
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_push_page(&pool, &s, 1, &mem, &e) == LM_ERR_INVALID_ARG,
            "push after a partial page");
    /* the rows are where lm_kv_row says */
    int ok = 1;
    for (int32_t l = 0; l < 2; l++)
        for (int kind = 0; kind < 2; kind++)
            for (int64_t pos = 0; pos < 6; pos++) {
                const lm_half *r = lm_kv_row(&pool, &s, l, kind, pos);
                size_t n = pos < 4 ? 4 : 2, t = (size_t)(pos % 4);
                const lm_half *w =
                    (pos < 4 ? src0 : src1) + (((size_t)l * 2 + (size_t)kind) * n + t) * 3;
                ok &= memcmp(r, w, 3 * sizeof *r) == 0;
            }
    T_CHECK(ok, "unpacked rows at their positions");
    memset(back, 0, sizeof back);
    lm_kv_page_pack(&pool, pool.pages[s.table[0]], 4, back);
    T_CHECK(memcmp(back, src0, sizeof src0) == 0, "full page round trip");
    T_CHECK(memcmp(pool.pages[s.table[0]], src0, sizeof src0) == 0, "a full page is its payload");
    memset(back, 0, sizeof back);
    lm_kv_page_pack(&pool, pool.pages[s.table[1]], 2, back);
    T_CHECK(memcmp(back, src1, sizeof src1) == 0, "partial page round trip");
    /* a reserve appends to a partial pushed page without a copy */
    T_REQUIRE(lm_kv_seq_reserve(&pool, &s, 8, &e) == LM_OK, "%s", e.msg);
    T_CHECK(pool.n_cow == 0 && s.n_pages == 2, "pushed page is private");
    lm_kv_seq_free(&pool, &s);
    lm_kv_pool_free(&pool);
}

static void digest_bytes(const void *p, size_t n, lm_kv_digest *out) {
    XXH128_hash_t h = XXH3_128bits(p, n);
    for (int i = 0; i < 8; i++) {
        out->b[i] = (uint8_t)(h.high64 >> (8 * i));
        out->b[8 + i] = (uint8_t)(h.low64 >> (8 * i));
    }
}

static void test_digest(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {3, 40, 8, 2}; /* blocks of 640 bytes: past XXH3's short-input paths */
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    const size_t halves = pool.page_halves;
    lm_half *page = lm_malloc(halves * sizeof *page), *packed = lm_malloc(halves * sizeof *page);
    T_REQUIRE(page && packed, "memory");
    for (size_t i = 0; i < halves; i++) page[i] = (lm_half)t_rand_u64();
    for (int32_t n = 1; n <= 8; n++) {
        lm_kv_page_pack(&pool, page, n, packed);
        lm_kv_digest want, got;
        digest_bytes(packed, (size_t)3 * 2 * (size_t)n * 40 * 2, &want);
        lm_kv_page_digest(&pool, page, n, &got);
        T_CHECK(memcmp(&want, &got, sizeof want) == 0, "digest of %d rows", n);
    }
    lm_kv_digest want, got;
    digest_bytes(page, halves * 2, &want);
    lm_kv_page_digest(&pool, page, 8, &got);
    T_CHECK(memcmp(&want, &got, sizeof want) == 0, "full page digest = hash of its memory");
    /* byte order: a known value (XXH3-128 of no bytes) */
    XXH128_hash_t h0 = XXH3_128bits("", 0);
    lm_kv_digest d0;
    digest_bytes("", 0, &d0);
    T_CHECK(d0.b[0] == (uint8_t)h0.high64 && d0.b[7] == (uint8_t)(h0.high64 >> 56) &&
                d0.b[8] == (uint8_t)h0.low64,
            "test helper byte order");
    /* rows past n_filled do not count */
    lm_kv_page_digest(&pool, page, 3, &want);
    page[3 * 40 + 5] ^= 0x1234; /* block 0, row 3 */
    lm_kv_page_digest(&pool, page, 3, &got);
    T_CHECK(memcmp(&want, &got, sizeof want) == 0, "unfilled rows ignored");
    page[2 * 40] ^= 1; /* block 0, row 2 */
    lm_kv_page_digest(&pool, page, 3, &got);
    T_CHECK(memcmp(&want, &got, sizeof want) != 0, "filled rows count");
    lm_free(page);
    lm_free(packed);
    lm_kv_pool_free(&pool);
}

/* A scenario touching every allocating path; returns the first failure, cleans up always. */
static lm_status scenario(lm_err *e, int *consistent) {
    lm_kv_pool pool;
    lm_kv_config c = {2, 4, 4, 6};
    lm_status st = lm_kv_pool_init(&pool, &c, e);
    *consistent = 1;
    if (st) return st;
    lm_kv_seq a, b, d, f;
    lm_kv_seq_init(&a);
    lm_kv_seq_init(&b);
    lm_kv_seq_init(&d);
    lm_kv_seq_init(&f);
    lm_half *mem;
    const lm_kv_key k0 = mkkey(3, 0, 0);
    if ((st = lm_kv_seq_reserve(&pool, &a, 6, e))) goto done;
    fill(&pool, &a, 0, 6, 1);
    a.keys[0] = k0;
    a.n_keyed = 1;
    if ((st = lm_kv_publish(&pool, &a, 0, e))) goto done;
    if ((st = lm_kv_seq_fork(&pool, &a, &b, e))) goto done;
    if ((st = lm_kv_seq_reserve(&pool, &b, 16, e))) goto done; /* a copy + 2 new: 5 live */
    if (!(st = lm_kv_seq_reserve(&pool, &b, 24, e))) {
        *consistent = 0; /* 2 more do not fit */
        goto done;
    }
    lm_err_clear(e);
    fill(&pool, &b, 6, 8, 2);
    lm_kv_seq_truncate(&pool, &b, 8); /* 3 live */
    int32_t id = lm_kv_lookup(&pool, &k0, NULL);
    if ((st = lm_kv_seq_attach(&pool, &d, id, e))) goto done;
    if ((st = lm_kv_seq_push_page(&pool, &d, 3, &mem, e))) goto done;
    fill(&pool, &d, 4, 7, 3);
    if ((st = lm_kv_seq_fork(&pool, &d, &f, e))) goto done;
    if ((st = lm_kv_seq_reserve(&pool, &f, 8, e))) goto done; /* a copy: 5 live */
    fill(&pool, &f, 7, 8, 4);
    *consistent = holds(&pool, &a, 0, 6, 1) && holds(&pool, &b, 0, 6, 1) &&
                  holds(&pool, &b, 6, 8, 2) && holds(&pool, &f, 0, 4, 1) &&
                  holds(&pool, &d, 4, 7, 3) && holds(&pool, &f, 4, 7, 3) &&
                  holds(&pool, &f, 7, 8, 4) && pool.n_cow == 2;
done:
    if (st && a.n_tokens != 0 && !holds(&pool, &a, 0, a.n_tokens, 1)) *consistent = 0;
    lm_kv_seq_free(&pool, &a);
    lm_kv_seq_free(&pool, &b);
    lm_kv_seq_free(&pool, &d);
    lm_kv_seq_free(&pool, &f);
    if (pool.n_live != 0) *consistent = 0;
    lm_kv_pool_free(&pool);
    return st;
}

static void test_alloc_failures(void) {
    lm_err e;
    int consistent;
    unsigned long n, transient_n = 0;
    for (int persistent = 0; persistent < 2; persistent++) {
        for (n = 1; n < 500; n++) {
            lm_err_clear(&e);
            lm_alloc_fail_after(n, persistent);
            lm_status st = scenario(&e, &consistent);
            unsigned long injected = lm_alloc_injected_failures();
            lm_alloc_fail_after(0, 0);
            T_CHECK(consistent, "n=%lu persistent %d: inconsistent pool", n, persistent);
            if (st == LM_OK && injected == 0) break;
            /* OK with a failure injected: it hit the reserve that fails anyway */
            T_CHECK(st == LM_ERR_NOMEM || st == LM_OK, "n=%lu persistent %d: status %d '%s'", n,
                    persistent, st, e.msg);
        }
        T_CHECK(n > 10 && n < 500, "scenario never succeeded / too few allocations (%lu)", n);
        if (persistent == 0) transient_n = n;
        else T_CHECK(n == transient_n, "persistent ended at %lu, transient at %lu", n, transient_n);
    }
}

/* ---- two threads, one pool ------------------------------------------------------------- */

typedef struct {
    lm_kv_pool *pool;
    int tag;
    int failures;
} worker_arg;

static void *worker(void *p) {
    worker_arg *w = p;
    lm_kv_pool *pool = w->pool;
    const int32_t pt = pool->cfg.page_tokens;
    lm_kv_seq s, f;
    lm_kv_seq_init(&s);
    lm_err e;
    for (int it = 0; it < 400; it++) {
        lm_err_clear(&e);
        int64_t n = s.n_tokens + 1 + it % 5;
        if (n > 20) {
            lm_kv_seq_truncate(pool, &s, it % 7);
            continue;
        }
        if (lm_kv_seq_reserve(pool, &s, n, &e) != LM_OK) {
            w->failures++;
            break;
        }
        fill(pool, &s, s.n_tokens, n, w->tag);
        /* keys for the new full pages (the same key for the same tag and page number, so
         * later iterations find theirs already published), then publish them */
        while ((int64_t)(s.n_keyed + 1) * pt <= s.n_tokens) {
            s.keys[s.n_keyed] = mkkey(w->tag, s.n_keyed, it);
            s.n_keyed++;
        }
        for (int32_t q = 0; q < s.n_keyed; q++) {
            if (lm_kv_publish(pool, &s, q, &e) != LM_OK) w->failures++;
            lm_kv_digest d;
            lm_kv_page_digest(pool, pool->pages[s.table[q]], pt, &d);
            if (lm_kv_lookup(pool, &s.keys[q], &d) != s.table[q]) w->failures++;
        }
        lm_kv_lookup(pool, &s.keys[0], NULL);
        (void)lm_kv_lookup(pool, &(lm_kv_key){{(uint8_t)(3 - w->tag)}}, NULL);
        lm_kv_pool_n_cached(pool);
        if (!holds(pool, &s, 0, s.n_tokens, w->tag)) w->failures++;
        /* a fork that writes into the shared tail */
        lm_kv_seq_init(&f);
        if (lm_kv_seq_fork(pool, &s, &f, &e) != LM_OK ||
            lm_kv_seq_reserve(pool, &f, f.n_tokens + 1, &e) != LM_OK) {
            w->failures++;
        } else {
            fill(pool, &f, f.n_tokens, f.n_tokens + 1, w->tag + 10);
            if (!holds(pool, &s, 0, s.n_tokens, w->tag)) w->failures++;
        }
        lm_kv_seq_free(pool, &f);
        if (it % 3 == 0) lm_kv_seq_truncate(pool, &s, s.n_tokens - 3 < 0 ? 0 : s.n_tokens - 3);
    }
    lm_kv_seq_free(pool, &s);
    return NULL;
}

static void test_threads(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    /* each thread holds at most 6 pages of its own and 1 copy: 14 live, the rest a cache */
    lm_kv_config c = {2, 8, 4, 20};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    worker_arg w[2] = {{&pool, 1, 0}, {&pool, 2, 0}};
    pthread_t th[2];
    int started[2] = {0, 0};
    for (int i = 0; i < 2; i++) started[i] = pthread_create(&th[i], NULL, worker, &w[i]) == 0;
    for (int i = 0; i < 2; i++)
        if (started[i]) pthread_join(th[i], NULL);
    T_CHECK(started[0] && started[1], "threads");
    T_CHECK(w[0].failures == 0 && w[1].failures == 0, "failures %d %d", w[0].failures,
            w[1].failures);
    T_CHECK(pool.n_live == 0, "%d pages live at the end", pool.n_live);
    T_CHECK(pool.n_evicted > 0 && pool.n_cow > 0, "evicted %llu, copied %llu",
            (unsigned long long)pool.n_evicted, (unsigned long long)pool.n_cow);
    lm_kv_pool_free(&pool);
}

int main(void) {
    t_srand(42);
    T_RUN(test_geometry);
    T_RUN(test_reserve_truncate);
    T_RUN(test_fork_cow);
    T_RUN(test_publish_attach);
    T_RUN(test_lru);
    T_RUN(test_exhausted);
    T_RUN(test_push_pack);
    T_RUN(test_digest);
    T_RUN(test_alloc_failures);
    T_RUN(test_threads);
    return t_finish();
}
