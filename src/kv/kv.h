/*
 * kv.h — the paged KV cache (DESIGN.md §7, in-memory part).
 *
 * A pool holds fixed-size pages. A page stores page_tokens consecutive token positions of ALL
 * layers, K and V, as IEEE f16. A sequence (one session's context) owns a page table: entry p
 * holds the page of positions [p * page_tokens, (p + 1) * page_tokens). Pages are refcounted so
 * that later work (prefix sharing, fork, sleep/wake) can share them copy-on-write; today every
 * page has one owner.
 *
 * Page byte layout (the unit a store will later write and hash), f16 little-endian:
 *     for layer in 0..n_layer-1:
 *         K: page_tokens rows of kv_dim halves   (row t = token t of the page, heads in order)
 *         V: page_tokens rows of kv_dim halves
 * i.e. element (layer, kind 0=K/1=V, t, c) is at half index
 *     ((layer * 2 + kind) * page_tokens + t) * kv_dim + c.
 * Rows of positions a sequence has not written yet are unspecified.
 *
 * Invariants: a pool's geometry (n_layer, kv_dim, page_tokens) never changes; pool memory is
 * bounded by max_pages (allocation beyond it is LM_ERR_NOMEM, not a crash).
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

typedef struct lm_kv_pool {
    lm_kv_config cfg;
    size_t page_halves;  /* halves per page = n_layer * 2 * page_tokens * kv_dim */
    lm_half **pages;     /* (max_pages) page memory, NULL = not allocated */
    int32_t *refcount;   /* (max_pages) 0 = free */
    int32_t n_live;      /* pages with refcount > 0 */
} lm_kv_pool;

typedef struct lm_kv_seq {
    int32_t *table;      /* (cap) page ids, table[p] covers positions p*page_tokens.. */
    int32_t n_pages;     /* entries in use */
    int32_t cap;
    int64_t n_tokens;    /* positions written (the sequence length) */
} lm_kv_seq;

lm_status lm_kv_pool_init(lm_kv_pool *pool, const lm_kv_config *cfg, lm_err *err);
void lm_kv_pool_free(lm_kv_pool *pool);

void lm_kv_seq_init(lm_kv_seq *seq);
/* Makes sure seq has pages for positions [0, n_tokens). */
lm_status lm_kv_seq_reserve(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens, lm_err *err);
/* Forgets positions >= n_tokens (pages no longer needed go back to the pool). */
void lm_kv_seq_truncate(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens);
/* Releases all pages of seq. */
void lm_kv_seq_free(lm_kv_pool *pool, lm_kv_seq *seq);

/* Row of K (kind 0) or V (kind 1) of `layer` at position pos; pos must be reserved. */
static inline lm_half *lm_kv_row(const lm_kv_pool *pool, const lm_kv_seq *seq, int32_t layer,
                                 int kind, int64_t pos) {
    const int32_t pt = pool->cfg.page_tokens;
    lm_half *page = pool->pages[seq->table[pos / pt]];
    size_t t = (size_t)(pos % pt);
    return page + (((size_t)layer * 2 + (size_t)kind) * (size_t)pt + t) * (size_t)pool->cfg.kv_dim;
}

#endif
