/*
 * kv.c — the in-memory paged KV pool, its prefix-cache index and per-sequence page tables.
 * Page layout, refcount and publishing rules: see kv.h. Packed payload and digest byte order:
 * docs/formats/store.md §3.
 *
 * Pool slots: slot i is never used (pages[i] == NULL), free (refcount 0, unpublished: memory
 * kept for reuse), live (refcount > 0, maybe published) or cached (refcount 0, published).
 * Page memory, once allocated for a slot, stays at its address until the pool is freed, so
 * lm_kv_row may read pool->pages[] without the lock.
 *
 * The index (private here) maps key -> slot with an open-addressing hash table (linear
 * probing, capacity a power of two >= 2 * max_pages, deletion by backward shift, so no
 * tombstones); per slot it keeps the published flag, the key, the content digest and a
 * last-used stamp from a monotonic clock (LRU: the cached slot with the smallest stamp goes
 * first). Every field of the pool but page memory is read and written under pool->mutex.
 */
#include "kv/kv.h"

#include "core/alloc.h"
#include "core/checked.h"

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: the digest never allocates */
#include <xxhash.h>

#include <pthread.h>
#include <string.h>

struct lm_kv_index {
    int32_t *slots;        /* (cap) page id, -1 = empty */
    size_t mask;           /* cap - 1 */
    uint8_t *published;    /* (max_pages) */
    lm_kv_key *key;        /* (max_pages) valid when published */
    lm_kv_digest *digest;  /* (max_pages) valid when published */
    uint64_t *stamp;       /* (max_pages) clock value of the last publish / lookup */
    uint64_t clock;
};

static void lock(lm_kv_pool *pool) { pthread_mutex_lock((pthread_mutex_t *)pool->mutex); }
static void unlock(lm_kv_pool *pool) { pthread_mutex_unlock((pthread_mutex_t *)pool->mutex); }

static void index_free(struct lm_kv_index *ix) {
    if (!ix) return;
    lm_free(ix->slots);
    lm_free(ix->published);
    lm_free(ix->key);
    lm_free(ix->digest);
    lm_free(ix->stamp);
    lm_free(ix);
}

static struct lm_kv_index *index_new(int32_t max_pages) {
    size_t cap = 16;
    while (cap < (size_t)max_pages * 2) {
        if (cap > SIZE_MAX / 2) return NULL;
        cap *= 2;
    }
    struct lm_kv_index *ix = lm_calloc(1, sizeof *ix);
    if (!ix) return NULL;
    size_t n = (size_t)max_pages;
    ix->slots = lm_calloc(cap, sizeof *ix->slots);
    ix->published = lm_calloc(n, sizeof *ix->published);
    ix->key = lm_calloc(n, sizeof *ix->key);
    ix->digest = lm_calloc(n, sizeof *ix->digest);
    ix->stamp = lm_calloc(n, sizeof *ix->stamp);
    if (!ix->slots || !ix->published || !ix->key || !ix->digest || !ix->stamp) {
        index_free(ix);
        return NULL;
    }
    for (size_t i = 0; i < cap; i++) ix->slots[i] = -1;
    ix->mask = cap - 1;
    return ix;
}

static size_t key_hash(const lm_kv_key *k) { return (size_t)XXH3_64bits(k->b, sizeof k->b); }

/* Position in slots[] holding key, or of the empty slot where it would go. */
static size_t index_find(const struct lm_kv_index *ix, const lm_kv_key *k) {
    size_t i = key_hash(k) & ix->mask;
    while (ix->slots[i] >= 0 && memcmp(ix->key[ix->slots[i]].b, k->b, sizeof k->b) != 0)
        i = (i + 1) & ix->mask;
    return i;
}

/* Forgets the key of published page id (linear-probing deletion by backward shift). */
static void index_remove(struct lm_kv_index *ix, int32_t id) {
    size_t i = index_find(ix, &ix->key[id]);
    if (ix->slots[i] != id) return;
    ix->slots[i] = -1;
    for (size_t j = (i + 1) & ix->mask; ix->slots[j] >= 0; j = (j + 1) & ix->mask) {
        size_t home = key_hash(&ix->key[ix->slots[j]]) & ix->mask;
        /* entry j may move into the hole at i unless its home lies cyclically in (i, j] */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        ix->slots[i] = ix->slots[j];
        ix->slots[j] = -1;
        i = j;
    }
    ix->published[id] = 0;
}

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
    pool->index = index_new(cfg->max_pages);
    pthread_mutex_t *mu = lm_malloc(sizeof *mu);
    if (mu && pthread_mutex_init(mu, NULL) != 0) {
        lm_free(mu);
        mu = NULL;
    }
    pool->mutex = mu;
    if (!pool->pages || !pool->refcount || !pool->index || !pool->mutex) {
        lm_kv_pool_free(pool);
        return lm_err_set(err, LM_ERR_NOMEM, "kv: out of memory for a pool of %d pages",
                          cfg->max_pages);
    }
    return LM_OK;
}

void lm_kv_pool_free(lm_kv_pool *pool) {
    if (!pool) return;
    if (pool->pages)
        for (int32_t i = 0; i < pool->cfg.max_pages; i++) lm_free(pool->pages[i]);
    lm_free(pool->pages);
    lm_free(pool->refcount);
    index_free(pool->index);
    if (pool->mutex) {
        pthread_mutex_destroy((pthread_mutex_t *)pool->mutex);
        lm_free(pool->mutex);
    }
    memset(pool, 0, sizeof *pool);
}

size_t lm_kv_page_bytes(const lm_kv_pool *pool) { return pool->page_halves * sizeof(lm_half); }

int32_t lm_kv_pool_n_cached(lm_kv_pool *pool) {
    int32_t n = 0;
    lock(pool);
    for (int32_t i = 0; i < pool->cfg.max_pages; i++)
        n += pool->index->published[i] && pool->refcount[i] == 0;
    unlock(pool);
    return n;
}

/* Under the lock. A page for exclusive use (refcount 1, unpublished): a free slot with memory,
 * else a never-used one (memory allocated now), else the least recently used cached page
 * (evicted). -1 with err set when every slot is live or memory runs out. */
static int32_t page_get(lm_kv_pool *pool, lm_err *err) {
    struct lm_kv_index *ix = pool->index;
    int32_t free_mem = -1, never = -1, lru = -1;
    for (int32_t i = 0; i < pool->cfg.max_pages && free_mem < 0; i++) {
        if (pool->refcount[i] != 0) continue;
        if (ix->published[i]) {
            if (lru < 0 || ix->stamp[i] < ix->stamp[lru]) lru = i;
        } else if (pool->pages[i]) {
            free_mem = i;
        } else if (never < 0) {
            never = i;
        }
    }
    int32_t pick = free_mem >= 0 ? free_mem : never >= 0 ? never : lru;
    if (pick < 0) {
        lm_err_set(err, LM_ERR_NOMEM, "kv: pool exhausted (%d of %d pages live)", pool->n_live,
                   pool->cfg.max_pages);
        return -1;
    }
    if (!pool->pages[pick]) {
        pool->pages[pick] = lm_malloc(pool->page_halves * sizeof(lm_half));
        if (!pool->pages[pick]) {
            lm_err_set(err, LM_ERR_NOMEM, "kv: out of memory for a page of %zu bytes",
                       pool->page_halves * sizeof(lm_half));
            return -1;
        }
    } else if (ix->published[pick]) {
        index_remove(ix, pick);
        pool->n_evicted++;
    }
    pool->refcount[pick] = 1;
    pool->n_live++;
    return pick;
}

/* Under the lock. Drops one reference; a published page at 0 stays cached. */
static void page_put(lm_kv_pool *pool, int32_t id) {
    if (id < 0 || id >= pool->cfg.max_pages || pool->refcount[id] <= 0) return;
    if (--pool->refcount[id] == 0) pool->n_live--;
}

/* Under the lock. Releases seq's pages from table entry `keep` on. */
static void release_from(lm_kv_pool *pool, lm_kv_seq *seq, int32_t keep) {
    while (seq->n_pages > keep) page_put(pool, seq->table[--seq->n_pages]);
}

/* Pages needed for n_tokens positions (n_tokens >= 0). */
static int64_t pages_for(const lm_kv_pool *pool, int64_t n_tokens) {
    const int64_t pt = pool->cfg.page_tokens;
    return n_tokens / pt + (n_tokens % pt != 0);
}

/* Makes room for `need` table entries (and keys). On failure seq's contents are unchanged. */
static lm_status seq_grow(lm_kv_seq *seq, int64_t need, lm_err *err) {
    if (need <= seq->cap) return LM_OK;
    if (need > INT32_MAX) return lm_err_set(err, LM_ERR_NOMEM, "kv: page table too long");
    int64_t cap = seq->cap < 4 ? 4 : seq->cap;
    while (cap < need) cap *= 2;
    if (cap > INT32_MAX) cap = INT32_MAX;
    int32_t *t = lm_realloc(seq->table, (size_t)cap * sizeof *t);
    if (!t) return lm_err_set(err, LM_ERR_NOMEM, "kv: out of memory for a page table");
    seq->table = t; /* cap stays until both arrays have grown */
    lm_kv_key *k = lm_realloc(seq->keys, (size_t)cap * sizeof *k);
    if (!k) return lm_err_set(err, LM_ERR_NOMEM, "kv: out of memory for page keys");
    seq->keys = k;
    seq->cap = (int32_t)cap;
    return LM_OK;
}

void lm_kv_seq_init(lm_kv_seq *seq) { memset(seq, 0, sizeof *seq); }

lm_status lm_kv_seq_reserve(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens, lm_err *err) {
    if (n_tokens < 0) return lm_err_set(err, LM_ERR_INVALID_ARG, "kv: negative length");
    const int64_t pt = pool->cfg.page_tokens;
    const int64_t need = pages_for(pool, n_tokens);
    if (need > pool->cfg.max_pages)
        return lm_err_set(err, LM_ERR_NOMEM, "kv: %lld tokens need %lld pages, pool holds %d",
                          (long long)n_tokens, (long long)need, pool->cfg.max_pages);
    lm_status st = seq_grow(seq, need, err);
    if (st) return st;
    /* existing pages overlapping the write range [seq->n_tokens, n_tokens) may need a copy */
    int32_t first = 0, last = 0; /* table entries [first, last) */
    if (n_tokens > seq->n_tokens) {
        first = (int32_t)(seq->n_tokens / pt);
        last = (int32_t)((n_tokens - 1) / pt) + 1;
        if (last > seq->n_pages) last = seq->n_pages;
        if (first > last) first = last;
    }
    int32_t old_buf[8], *old = old_buf; /* (last - first) old page ids of copied entries */
    if (last - first > 8) {
        old = lm_malloc((size_t)(last - first) * sizeof *old);
        if (!old) return lm_err_set(err, LM_ERR_NOMEM, "kv: out of memory in reserve");
    }
    const int32_t n_pages0 = seq->n_pages;
    int32_t n_copy = 0, p = first;
    lock(pool);
    for (; p < last; p++) {
        int32_t id = seq->table[p];
        old[p - first] = -1;
        if (pool->refcount[id] <= 1 && !pool->index->published[id]) continue;
        int32_t nid = page_get(pool, err);
        if (nid < 0) goto fail;
        old[p - first] = id;
        seq->table[p] = nid;
        n_copy++;
    }
    for (; seq->n_pages < need; seq->n_pages++) {
        int32_t nid = page_get(pool, err);
        if (nid < 0) goto fail;
        seq->table[seq->n_pages] = nid;
    }
    unlock(pool);
    /* the old pages are immutable (shared or published) and we still hold them: copy unlocked */
    const size_t bytes = lm_kv_page_bytes(pool);
    for (int32_t q = first; q < last; q++)
        if (old[q - first] >= 0)
            memcpy(pool->pages[seq->table[q]], pool->pages[old[q - first]], bytes);
    if (n_copy > 0) {
        lock(pool);
        for (int32_t q = first; q < last; q++) {
            if (old[q - first] < 0) continue;
            page_put(pool, old[q - first]);
            if (seq->n_keyed > q) seq->n_keyed = q;
        }
        pool->n_cow += (uint64_t)n_copy;
        unlock(pool);
    }
    if (old != old_buf) lm_free(old);
    return LM_OK;
fail:
    release_from(pool, seq, n_pages0);
    for (int32_t q = first; q < p; q++) {
        if (old[q - first] < 0) continue;
        page_put(pool, seq->table[q]);
        seq->table[q] = old[q - first];
    }
    unlock(pool);
    if (old != old_buf) lm_free(old);
    return LM_ERR_NOMEM;
}

void lm_kv_seq_truncate(lm_kv_pool *pool, lm_kv_seq *seq, int64_t n_tokens) {
    if (n_tokens < 0) n_tokens = 0;
    if (n_tokens > seq->n_tokens) n_tokens = seq->n_tokens;
    const int64_t keep = pages_for(pool, n_tokens);
    lock(pool);
    if (keep < seq->n_pages) release_from(pool, seq, (int32_t)keep); /* also reserved ones */
    unlock(pool);
    seq->n_tokens = n_tokens;
    const int64_t full = n_tokens / pool->cfg.page_tokens;
    if (seq->n_keyed > full) seq->n_keyed = (int32_t)full;
}

void lm_kv_seq_free(lm_kv_pool *pool, lm_kv_seq *seq) {
    if (!seq) return;
    if (pool && seq->n_pages > 0) {
        lock(pool);
        release_from(pool, seq, 0);
        unlock(pool);
    }
    lm_free(seq->table);
    lm_free(seq->keys);
    memset(seq, 0, sizeof *seq);
}

lm_status lm_kv_seq_fork(lm_kv_pool *pool, const lm_kv_seq *src, lm_kv_seq *dst, lm_err *err) {
    if (dst->n_pages != 0 || dst->n_tokens != 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "kv: fork into a non-empty sequence");
    /* pages reserved beyond src's length are not shared: they hold nothing yet */
    int64_t np = pages_for(pool, src->n_tokens);
    if (np > src->n_pages) np = src->n_pages;
    lm_status st = seq_grow(dst, np, err);
    if (st) return st;
    lock(pool);
    for (int32_t p = 0; p < (int32_t)np; p++) {
        dst->table[p] = src->table[p];
        pool->refcount[src->table[p]]++;
    }
    unlock(pool);
    int32_t nk = src->n_keyed < (int32_t)np ? src->n_keyed : (int32_t)np;
    if (nk > 0) memcpy(dst->keys, src->keys, (size_t)nk * sizeof *dst->keys);
    dst->n_pages = (int32_t)np;
    dst->n_keyed = nk;
    dst->n_tokens = src->n_tokens;
    return LM_OK;
}

static void put_u64_le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int32_t clamp_filled(const lm_kv_pool *pool, int32_t n_filled) {
    if (n_filled < 0) return 0;
    return n_filled > pool->cfg.page_tokens ? pool->cfg.page_tokens : n_filled;
}

void lm_kv_page_digest(const lm_kv_pool *pool, const lm_half *page, int32_t n_filled,
                       lm_kv_digest *out) {
    n_filled = clamp_filled(pool, n_filled);
    const size_t row = (size_t)pool->cfg.kv_dim * sizeof(lm_half);
    const size_t block = (size_t)pool->cfg.page_tokens * row, part = (size_t)n_filled * row;
    const size_t n_blocks = (size_t)pool->cfg.n_layer * 2;
    XXH128_hash_t h;
    if (n_filled == pool->cfg.page_tokens) {
        h = XXH3_128bits(page, n_blocks * block); /* a full page is its own payload */
    } else {
        XXH3_state_t s;
        XXH3_128bits_reset(&s);
        for (size_t b = 0; b < n_blocks; b++)
            XXH3_128bits_update(&s, (const uint8_t *)page + b * block, part);
        h = XXH3_128bits_digest(&s);
    }
    put_u64_le(out->b, h.high64);
    put_u64_le(out->b + 8, h.low64);
}

void lm_kv_page_pack(const lm_kv_pool *pool, const lm_half *page, int32_t n_filled, void *dst) {
    n_filled = clamp_filled(pool, n_filled);
    const size_t row = (size_t)pool->cfg.kv_dim * sizeof(lm_half);
    const size_t block = (size_t)pool->cfg.page_tokens * row, part = (size_t)n_filled * row;
    for (size_t b = 0; b < (size_t)pool->cfg.n_layer * 2; b++)
        memcpy((uint8_t *)dst + b * part, (const uint8_t *)page + b * block, part);
}

void lm_kv_page_unpack(const lm_kv_pool *pool, lm_half *page, int32_t n_filled, const void *src) {
    n_filled = clamp_filled(pool, n_filled);
    const size_t row = (size_t)pool->cfg.kv_dim * sizeof(lm_half);
    const size_t block = (size_t)pool->cfg.page_tokens * row, part = (size_t)n_filled * row;
    for (size_t b = 0; b < (size_t)pool->cfg.n_layer * 2; b++)
        memcpy((uint8_t *)page + b * block, (const uint8_t *)src + b * part, part);
}

lm_status lm_kv_publish(lm_kv_pool *pool, lm_kv_seq *seq, int32_t p, lm_err *err) {
    const int64_t pt = pool->cfg.page_tokens;
    if (p < 0 || p >= seq->n_keyed || p >= seq->n_pages || ((int64_t)p + 1) * pt > seq->n_tokens)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "kv: page %d cannot be published (%d keyed of %d pages, %lld tokens)",
                          p, seq->n_keyed, seq->n_pages, (long long)seq->n_tokens);
    struct lm_kv_index *ix = pool->index;
    const lm_kv_key *key = &seq->keys[p];
    const int32_t id = seq->table[p];
    lock(pool);
    int known = ix->slots[index_find(ix, key)] >= 0;
    int other = !known && ix->published[id];
    unlock(pool);
    if (known) return LM_OK;
    if (other)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "kv: page %d is already published under another key", p);
    /* seq holds the page and nobody writes it (ours alone, or shared and so immutable):
     * hash it without the lock */
    lm_kv_digest d;
    lm_kv_page_digest(pool, pool->pages[id], pool->cfg.page_tokens, &d);
    lock(pool);
    size_t i = index_find(ix, key);
    if (ix->slots[i] < 0 && !ix->published[id]) { /* another thread may have won meanwhile */
        ix->key[id] = *key;
        ix->digest[id] = d;
        ix->stamp[id] = ++ix->clock;
        ix->published[id] = 1;
        ix->slots[i] = id;
    }
    unlock(pool);
    return LM_OK;
}

int32_t lm_kv_lookup(lm_kv_pool *pool, const lm_kv_key *key, const lm_kv_digest *digest) {
    struct lm_kv_index *ix = pool->index;
    lock(pool);
    int32_t id = ix->slots[index_find(ix, key)];
    if (id >= 0 && digest && memcmp(ix->digest[id].b, digest->b, sizeof digest->b) != 0) id = -1;
    if (id >= 0) ix->stamp[id] = ++ix->clock;
    unlock(pool);
    return id;
}

/* Checks that seq may get a page appended at its end and makes room for it. */
static lm_status append_check(lm_kv_pool *pool, lm_kv_seq *seq, const char *what, lm_err *err) {
    const int64_t pt = pool->cfg.page_tokens;
    if (seq->n_tokens % pt != 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "kv: %s after %lld tokens, not a multiple of the page size %lld", what,
                          (long long)seq->n_tokens, (long long)pt);
    if (seq->n_tokens / pt >= INT32_MAX || seq->n_tokens > INT64_MAX - pt)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "kv: %s: sequence too long", what);
    return seq_grow(seq, seq->n_tokens / pt + 1, err);
}

/* Appends published page id at table entry `at` of seq; the pool's lock is held and released
 * here (after which only seq, owned by the caller, is touched). */
static void attach_locked(lm_kv_pool *pool, lm_kv_seq *seq, int32_t id, int32_t at) {
    release_from(pool, seq, at); /* pages reserved beyond the length hold nothing */
    if (pool->refcount[id]++ == 0) pool->n_live++;
    seq->keys[at] = pool->index->key[id];
    unlock(pool);
    seq->table[at] = id;
    if (seq->n_keyed == at) seq->n_keyed = at + 1;
    seq->n_pages = at + 1;
    seq->n_tokens += pool->cfg.page_tokens;
}

lm_status lm_kv_seq_attach(lm_kv_pool *pool, lm_kv_seq *seq, int32_t id, lm_err *err) {
    if (id < 0 || id >= pool->cfg.max_pages)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "kv: attach of page %d: no such page", id);
    lm_status st = append_check(pool, seq, "attach", err);
    if (st) return st;
    const int32_t at = (int32_t)(seq->n_tokens / pool->cfg.page_tokens);
    lock(pool);
    if (!pool->index->published[id]) {
        unlock(pool);
        return lm_err_set(err, LM_ERR_INVALID_ARG, "kv: attach of page %d: not published", id);
    }
    attach_locked(pool, seq, id, at);
    return LM_OK;
}

lm_status lm_kv_seq_attach_key(lm_kv_pool *pool, lm_kv_seq *seq, const lm_kv_key *key,
                               const lm_kv_digest *digest, lm_err *err) {
    lm_status st = append_check(pool, seq, "attach", err);
    if (st) return st;
    const int32_t at = (int32_t)(seq->n_tokens / pool->cfg.page_tokens);
    struct lm_kv_index *ix = pool->index;
    lock(pool);
    int32_t id = ix->slots[index_find(ix, key)];
    if (id >= 0 && digest && memcmp(ix->digest[id].b, digest->b, sizeof digest->b) != 0) id = -1;
    if (id < 0) {
        unlock(pool);
        return lm_err_set(err, LM_ERR_NOT_FOUND, "kv: no published page with that key");
    }
    ix->stamp[id] = ++ix->clock;
    attach_locked(pool, seq, id, at);
    return LM_OK;
}

lm_status lm_kv_seq_push_page(lm_kv_pool *pool, lm_kv_seq *seq, int32_t n_filled,
                              lm_half **mem, lm_err *err) {
    if (n_filled < 1 || n_filled > pool->cfg.page_tokens)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "kv: page of %d rows (page size %d)",
                          n_filled, pool->cfg.page_tokens);
    lm_status st = append_check(pool, seq, "push page", err);
    if (st) return st;
    const int32_t at = (int32_t)(seq->n_tokens / pool->cfg.page_tokens);
    lock(pool);
    release_from(pool, seq, at); /* pages reserved beyond the length hold nothing */
    int32_t id = page_get(pool, err);
    unlock(pool);
    if (id < 0) return LM_ERR_NOMEM;
    seq->table[at] = id;
    if (seq->n_keyed > at) seq->n_keyed = at;
    seq->n_pages = at + 1;
    seq->n_tokens += n_filled;
    *mem = pool->pages[id];
    return LM_OK;
}
