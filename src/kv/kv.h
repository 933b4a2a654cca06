/*
 * kv.h — the paged KV cache (DESIGN.md §7, in-memory part; on-disk form: docs/formats/store.md).
 *
 * A pool holds fixed-size pages. A page stores page_tokens consecutive token positions of ALL
 * layers, K and V, as IEEE f16. A sequence (one session's context) owns a page table: entry p
 * holds the page of positions [p * page_tokens, (p + 1) * page_tokens). One pool serves every
 * session of a model (with that page size), so sessions share pages:
 *
 *   - refcount: every table entry holding a page counts once. A page with refcount > 1, or one
 *     published under a key, is immutable: lm_kv_seq_reserve copies it (copy-on-write) before
 *     a sequence writes into it.
 *   - keys (prefix cache): a full page can be published under its key (docs/formats/store.md
 *     §2: SHA-256 over the KV identity, the parent page's key and the page's tokens) together
 *     with the XXH3-128 of its bytes. lm_kv_lookup finds it again, and lm_kv_seq_attach puts it
 *     at the end of another sequence without computing anything.
 *   - LRU: a published page whose refcount drops to 0 stays cached; when the pool needs a page
 *     and every slot is taken, the least recently used cached page is evicted (its key
 *     forgotten). max_pages bounds pages in memory (live + cached): the memory budget.
 *
 * Page byte layout (the unit the store writes and hashes), f16 little-endian:
 *     for layer in 0..n_layer-1:
 *         K: page_tokens rows of kv_dim halves   (row t = token t of the page, heads in order)
 *         V: page_tokens rows of kv_dim halves
 * i.e. element (layer, kind 0=K/1=V, t, c) is at half index
 *     ((layer * 2 + kind) * page_tokens + t) * kv_dim + c.
 * Rows of positions a sequence has not written yet are unspecified.
 *
 * Thread safety: pool bookkeeping (refcounts, the key index, LRU) is guarded by the pool's
 * mutex, so sessions of one model may run in different threads. Page memory is written only
 * by the one sequence that owns it exclusively (refcount 1, unpublished), so forward passes
 * read and write rows without the lock. A sequence itself is not shared between threads.
 *
 * Invariants: a pool's geometry (n_layer, kv_dim, page_tokens) never changes; pool memory is
 * bounded by max_pages (allocation beyond it is LM_ERR_NOMEM, not a crash); a published page's
 * bytes never change while it stays published.
 */
#ifndef LM_KV_KV_H
#define LM_KV_KV_H

#include "core/status.h"
#include "tensor/quant.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lm_kv_config {
    int32_t n_layer;     /* layers of the model */
    int32_t kv_dim;      /* n_head_kv * head_dim, the same for K and V and for every layer */
    int32_t page_tokens; /* positions per page, e.g. 256 */
    int32_t max_pages;   /* hard cap on live pages in the pool */
} lm_kv_config;

/* A page key or a content digest (docs/formats/store.md §2). */
typedef struct lm_kv_key {
    uint8_t b[32];
} lm_kv_key;
typedef struct lm_kv_digest {
    uint8_t b[16]; /* XXH3-128 of the page bytes: high 64 bits then low, each little-endian */
} lm_kv_digest;

typedef struct lm_kv_pool {
    lm_kv_config cfg;
    size_t page_halves;  /* halves per page = n_layer * 2 * page_tokens * kv_dim */
    lm_half **pages;     /* (max_pages) page memory, NULL = not allocated */
    int32_t *refcount;   /* (max_pages) 0 = free or cached */
    int32_t n_live;      /* pages with refcount > 0 */
    /* prefix cache: implementation-owned (kv.c); see lm_kv_publish / lm_kv_lookup */
    struct lm_kv_index *index;
    void *mutex;         /* pthread_mutex_t *, owned */
    /* counters for metrics and tests */
    uint64_t n_evicted;  /* cached pages evicted by LRU */
    uint64_t n_cow;      /* copy-on-write copies made */
} lm_kv_pool;

typedef struct lm_kv_seq {
    int32_t *table;      /* (cap) page ids, table[p] covers positions p*page_tokens.. */
    lm_kv_key *keys;     /* (cap) key of full page p, valid for p < n_keyed */
    int32_t n_keyed;     /* leading pages whose key is known (full pages only) */
    int32_t n_pages;     /* entries in use */
    int32_t cap;
    int64_t n_tokens;    /* positions written (the sequence length) */
} lm_kv_seq;

lm_status lm_kv_pool_init(lm_kv_pool *pool, const lm_kv_config *cfg, lm_err *err);
void lm_kv_pool_free(lm_kv_pool *pool);
/* Bytes of one page's memory. */
size_t lm_kv_page_bytes(const lm_kv_pool *pool);
/* Pages cached (published, refcount 0) right now. */
int32_t lm_kv_pool_n_cached(lm_kv_pool *pool);

void lm_kv_seq_init(lm_kv_seq *seq);
/* Prepares seq for writing positions [seq->n_tokens, n_tokens): pages exist for [0, n_tokens)
 * and every page overlapping the written range is owned by seq alone and unpublished (a shared
 * or published page is copied first). Does not change seq->n_tokens. On failure seq is as
 * before (pages it added are released). */
lm_status lm_kv_seq_reserve(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens, lm_err *err);
/* Forgets positions >= n_tokens (pages no longer needed go back to the pool or its cache; keys
 * of pages that are no longer full are dropped from seq->keys). */
void lm_kv_seq_truncate(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens);
/* Releases all pages of seq. */
void lm_kv_seq_free(lm_kv_pool *pool, lm_kv_seq *seq);
/* dst (initialised, empty) shares every page and key of src (refcounts + 1). */
lm_status lm_kv_seq_fork(lm_kv_pool *pool, const lm_kv_seq *src, lm_kv_seq *dst, lm_err *err);

/* Publishes seq's full page p (p < n_keyed, i.e. its key known) under seq->keys[p] with the
 * digest of its bytes (computed here). If the key is already published (for another page
 * with the same tokens), nothing changes. The page becomes immutable. */
lm_status lm_kv_publish(lm_kv_pool *pool, lm_kv_seq *seq, int32_t p, lm_err *err);
/* Page id published under key, or -1; marks it recently used. If digest is not NULL the
 * published page must also have that content digest (else -1). */
int32_t lm_kv_lookup(lm_kv_pool *pool, const lm_kv_key *key, const lm_kv_digest *digest);
/* Appends published page `id` to seq, whose length must be a multiple of page_tokens (else
 * LM_ERR_INVALID_ARG): refcount + 1, seq->keys gets its key, n_tokens += page_tokens. */
lm_status lm_kv_seq_attach(lm_kv_pool *pool, lm_kv_seq *seq, int32_t id, lm_err *err);
/* Looks key up (and digest, when not NULL) and appends that page to seq in one step under the
 * pool's lock, so no other thread can evict it in between (lm_kv_lookup + lm_kv_seq_attach
 * may race with eviction when the pool is shared between threads). LM_ERR_NOT_FOUND when no
 * such page is published. */
lm_status lm_kv_seq_attach_key(lm_kv_pool *pool, lm_kv_seq *seq, const lm_kv_key *key,
                               const lm_kv_digest *digest, lm_err *err);
/* Appends a fresh page owned by seq (length must be a multiple of page_tokens) and returns its
 * memory in *mem for the caller to fill with n_filled rows per (layer, kind) block (the
 * layout above); n_tokens += n_filled. Used to restore pages read from a store. */
lm_status lm_kv_seq_push_page(lm_kv_pool *pool, lm_kv_seq *seq, int32_t n_filled,
                              lm_half **mem, lm_err *err);
/* XXH3-128 over the first n_filled rows of each (layer, kind) block of page memory, i.e. over
 * the page's payload as the store writes it (docs/formats/store.md §3). */
void lm_kv_page_digest(const lm_kv_pool *pool, const lm_half *page, int32_t n_filled,
                       lm_kv_digest *out);
/* Copies the payload (n_filled rows of each block, packed) of a page to dst / from src. */
void lm_kv_page_pack(const lm_kv_pool *pool, const lm_half *page, int32_t n_filled, void *dst);
void lm_kv_page_unpack(const lm_kv_pool *pool, lm_half *page, int32_t n_filled, const void *src);

/* The key of a page (docs/formats/store.md §2): kv_id is the model's KV identity, parent the
 * previous page's key (NULL for the first page). */
void lm_kv_page_key(const uint8_t kv_id[32], const lm_kv_key *parent, const int32_t *tokens,
                    size_t n, lm_kv_key *out);

/* Row of K (kind 0) or V (kind 1) of `layer` at position pos; pos must be reserved. */
static inline lm_half *lm_kv_row(const lm_kv_pool *pool, const lm_kv_seq *seq, int32_t layer,
                                 int kind, int64_t pos) {
    const int32_t pt = pool->cfg.page_tokens;
    lm_half *page = pool->pages[seq->table[pos / pt]];
    size_t t = (size_t)(pos % pt);
    return page + (((size_t)layer * 2 + (size_t)kind) * (size_t)pt + t) * (size_t)pool->cfg.kv_dim;
}

#endif
