/*
 * kv.c — the in-memory paged KV pool and per-sequence page tables. Layout: see kv.h.
 */
#include "kv/kv.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <string.h>

lm_status lm_kv_pool_init(lm_kv_pool *pool, const lm_kv_config *cfg, lm_err *err) {
    memset(pool, 0, sizeof *pool);
    if (cfg->n_layer <= 0 || cfg->kv_dim <= 0 || cfg->page_tokens <= 0 || cfg->max_pages <= 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "kv: bad geometry (layers %d, kv_dim %d, page %d, max_pages %d)",
                          cfg->n_layer, cfg->kv_dim, cfg->page_tokens, cfg->max_pages);
    size_t halves;
    if (!lm_mul_size((size_t)cfg->n_layer * 2, (size_t)cfg->page_tokens, &halves) ||
        !lm_mul_size(halves, (size_t)cfg->kv_dim, &halves) ||
        halves > SIZE_MAX / sizeof(lm_half))
        return lm_err_set(err, LM_ERR_NOMEM, "kv: page size overflows");
    pool->cfg = *cfg;
    pool->page_halves = halves;
    pool->pages = lm_calloc((size_t)cfg->max_pages, sizeof *pool->pages);
    pool->refcount = lm_calloc((size_t)cfg->max_pages, sizeof *pool->refcount);
    if (!pool->pages || !pool->refcount) {
        lm_kv_pool_free(pool);
        return lm_err_set(err, LM_ERR_NOMEM, "kv: out of memory for the page index");
    }
    return LM_OK;
}

void lm_kv_pool_free(lm_kv_pool *pool) {
    if (!pool) return;
    if (pool->pages)
        for (int32_t i = 0; i < pool->cfg.max_pages; i++) lm_free(pool->pages[i]);
    lm_free(pool->pages);
    lm_free(pool->refcount);
    memset(pool, 0, sizeof *pool);
}

/* A free page (memory kept from earlier use when possible), refcount 1; -1 when full. */
static int32_t page_get(lm_kv_pool *pool) {
    int32_t pick = -1;
    for (int32_t i = 0; i < pool->cfg.max_pages; i++) {
        if (pool->refcount[i] != 0) continue;
        if (pool->pages[i]) { pick = i; break; }
        if (pick < 0) pick = i;
    }
    if (pick < 0) return -1;
    if (!pool->pages[pick]) {
        pool->pages[pick] = lm_malloc(pool->page_halves * sizeof(lm_half));
        if (!pool->pages[pick]) return -1;
    }
    pool->refcount[pick] = 1;
    pool->n_live++;
    return pick;
}

static void page_put(lm_kv_pool *pool, int32_t id) {
    if (id < 0 || id >= pool->cfg.max_pages || pool->refcount[id] <= 0) return;
    if (--pool->refcount[id] == 0) pool->n_live--;
}

void lm_kv_seq_init(lm_kv_seq *seq) { memset(seq, 0, sizeof *seq); }

lm_status lm_kv_seq_reserve(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens, lm_err *err) {
    if (n_tokens < 0) return lm_err_set(err, LM_ERR_INVALID_ARG, "kv: negative length");
    int64_t need = (n_tokens + pool->cfg.page_tokens - 1) / pool->cfg.page_tokens;
    if (need > pool->cfg.max_pages)
        return lm_err_set(err, LM_ERR_NOMEM, "kv: %lld tokens need %lld pages, pool holds %d",
                          (long long)n_tokens, (long long)need, pool->cfg.max_pages);
    if (need > seq->cap) {
        int32_t *t = lm_realloc(seq->table, (size_t)need * sizeof *t);
        if (!t) return lm_err_set(err, LM_ERR_NOMEM, "kv: out of memory for a page table");
        seq->table = t;
        seq->cap = (int32_t)need;
    }
    while (seq->n_pages < need) {
        int32_t id = page_get(pool);
        if (id < 0)
            return lm_err_set(err, LM_ERR_NOMEM, "kv: pool exhausted (%d pages live)",
                              pool->n_live);
        seq->table[seq->n_pages++] = id;
    }
    return LM_OK;
}

void lm_kv_seq_truncate(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens) {
    if (n_tokens < 0) n_tokens = 0;
    if (n_tokens >= seq->n_tokens) return;
    int64_t keep = (n_tokens + pool->cfg.page_tokens - 1) / pool->cfg.page_tokens;
    while (seq->n_pages > keep) page_put(pool, seq->table[--seq->n_pages]);
    seq->n_tokens = n_tokens;
}

void lm_kv_seq_free(lm_kv_pool *pool, lm_kv_seq *seq) {
    if (!seq) return;
    if (pool)
        while (seq->n_pages > 0) page_put(pool, seq->table[--seq->n_pages]);
    lm_free(seq->table);
    memset(seq, 0, sizeof *seq);
}
