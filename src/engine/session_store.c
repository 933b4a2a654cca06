/*
 * session_store.c — sleep, wake and fork of sessions (include/lemma.h "Durable sessions"):
 * the bridge between a session's in-memory state (engine_internal.h) and the store
 * (store/store.h, docs/formats/store.md).
 *
 * Sleep saves exactly what wake needs to continue bit-identically: the tokens, every KV page
 * (full pages by key + content digest, the partial tail too), the last logits and the RNG
 * stream. Wake checks the identity first, then restores pages (attaching pages the model's
 * pool already holds with the same key and bytes), and recomputes nothing.
 */
#include "engine/engine_internal.h"

#include "core/alloc.h"
#include "store/store.h"

#include <string.h>
#include <time.h>

/* ---- sleep ------------------------------------------------------------------------------ */

typedef struct sleep_ctx {
    lm_session *s;
    const lm_manifest *m;
    void *tail;            /* packed payload of a partial last page */
} sleep_ctx;

static lm_status sleep_source(void *user, uint32_t i, const void **payload, size_t *bytes,
                              lm_err *err) {
    sleep_ctx *c = user;
    lm_kv_pool *pool = c->s->pool;
    if (i >= c->m->n_pages)
        return lm_err_set(err, LM_ERR_INTERNAL, "sleep: page %u of %u asked for", i,
                          c->m->n_pages);
    const uint32_t nf = c->m->pages[i].n_filled;
    const lm_half *page = pool->pages[c->s->seq.table[i]];
    *bytes = lm_kv_page_bytes(pool) / (size_t)pool->cfg.page_tokens * nf;
    if (nf == (uint32_t)pool->cfg.page_tokens) {
        *payload = page; /* a full page's memory is its payload */
    } else {
        lm_kv_page_pack(pool, page, (int32_t)nf, c->tail);
        *payload = c->tail;
    }
    return LM_OK;
}

lm_status lm_session_sleep(lm_session *s, lm_store *st, const char *name) {
    if (!s) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    if (!st || !name)
        return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "sleep: store and name are required");
    lm_status r = lm_session_name_check(name, &s->err);
    if (r != LM_OK) return r;
    lm_model *mod = s->model;
    lm_manifest m;
    memset(&m, 0, sizeof m);
    sleep_ctx c = {s, &m, NULL};
    if ((r = lm_engine_identity(mod, s->p.page_tokens, &m.id, &s->err))) return r;
    if ((r = lm_engine_key_pages(s, m.id.kv_id))) return r;

    snprintf(m.name, sizeof m.name, "%s", name);
    /* the parent: the state this one was forked from (woken under another name) */
    if (s->origin[0] && strcmp(s->origin, name) != 0)
        snprintf(m.parent, sizeof m.parent, "%s", s->origin);
    else
        snprintf(m.parent, sizeof m.parent, "%s", s->origin_parent);
    snprintf(m.model, sizeof m.model, "%s", mod->desc);
    m.updated_at = (uint64_t)time(NULL);
    m.created_at = s->created_at && !strcmp(s->origin, name) ? s->created_at : m.updated_at;
    m.n_ctx = (uint32_t)s->p.n_ctx;
    m.n_tokens = s->n_tokens;
    m.tokens = s->tokens;
    const int32_t pt = s->pool->cfg.page_tokens;
    m.n_pages = (uint32_t)s->seq.n_pages;
    if ((int64_t)m.n_pages != (s->seq.n_tokens + pt - 1) / pt)
        return lm_err_set(&s->err, LM_ERR_INTERNAL, "sleep: %u pages for %lld tokens",
                          m.n_pages, (long long)s->seq.n_tokens);
    m.pages = lm_calloc(m.n_pages ? m.n_pages : 1, sizeof *m.pages);
    c.tail = lm_malloc(lm_kv_page_bytes(s->pool));
    if (!m.pages || !c.tail) {
        r = lm_err_set(&s->err, LM_ERR_NOMEM, "sleep: out of memory");
        goto done;
    }
    for (uint32_t p = 0; p < m.n_pages; p++) {
        lm_page_ref *ref = &m.pages[p];
        const lm_half *page = s->pool->pages[s->seq.table[p]];
        int64_t left = s->seq.n_tokens - (int64_t)p * pt;
        ref->n_filled = (uint32_t)(left < pt ? left : pt);
        if ((int32_t)p < s->seq.n_keyed)
            ref->key = s->seq.keys[p];
        else /* the partial tail: keyed by its tokens like a full page */
            lm_kv_page_key(m.id.kv_id, p ? &s->seq.keys[p - 1] : NULL,
                           s->tokens + (size_t)p * (size_t)pt, ref->n_filled, &ref->key);
        lm_kv_page_digest(s->pool, page, (int32_t)ref->n_filled, &ref->content);
    }
    if (s->has_logits) {
        m.n_vocab = (uint32_t)mod->arch.hp.n_vocab;
        m.logits = s->logits;
    }
    m.rng_valid = (uint32_t)s->rng_valid;
    memcpy(m.rng, s->rng.s, sizeof m.rng);
    r = lm_store_save(st, &m, sleep_source, &c, NULL, &s->err);
    if (r == LM_OK) {
        if (strcmp(s->origin, name) != 0) s->created_at = m.created_at;
        snprintf(s->origin_parent, sizeof s->origin_parent, "%s", m.parent);
        snprintf(s->origin, sizeof s->origin, "%s", name);
    }
done:
    lm_free(m.pages);
    lm_free(c.tail);
    return r;
}

/* ---- wake ------------------------------------------------------------------------------- */

typedef struct wake_ctx {
    lm_session *s;
    const lm_manifest *m;  /* the manifest checked before the pages were read */
} wake_ctx;

/* Puts page i of the manifest at the end of the session: the pool's page with the same key and
 * bytes if it has one, else a new page filled from the payload. */
static lm_status wake_sink(void *user, uint32_t i, const void *payload, size_t bytes,
                           lm_err *err) {
    wake_ctx *c = user;
    lm_session *s = c->s;
    const lm_manifest *m = c->m;
    if (i != (uint32_t)s->seq.n_pages || i >= m->n_pages)
        return lm_err_set(err, LM_ERR_INTERNAL, "wake: page %u out of order", i);
    const lm_page_ref *ref = &m->pages[i];
    const int32_t pt = s->pool->cfg.page_tokens;
    if (bytes != lm_kv_page_bytes(s->pool) / (size_t)pt * ref->n_filled)
        return lm_err_set(err, LM_ERR_CORRUPT, "wake: page %u has %zu bytes", i, bytes);
    if ((int32_t)ref->n_filled == pt) {
        lm_err miss;
        if (lm_kv_seq_attach_key(s->pool, &s->seq, &ref->key, &ref->content, &miss) == LM_OK)
            return LM_OK;
    }
    lm_half *mem;
    lm_status r = lm_kv_seq_push_page(s->pool, &s->seq, (int32_t)ref->n_filled, &mem, err);
    if (r != LM_OK) return r;
    lm_kv_page_unpack(s->pool, mem, (int32_t)ref->n_filled, payload);
    if ((int32_t)ref->n_filled == pt && s->seq.n_keyed == (int32_t)i) {
        s->seq.keys[i] = ref->key;
        s->seq.n_keyed = (int32_t)i + 1;
        if (s->p.prefix_cache) r = lm_kv_publish(s->pool, &s->seq, (int32_t)i, err);
    }
    return r;
}

lm_status lm_session_wake(lm_model *mod, const lm_session_params *params, lm_store *st,
                          const char *name, lm_session **out, char *errbuf, size_t err_len) {
    lm_err err;
    lm_err_clear(&err);
    lm_status r;
    lm_manifest *m = NULL, *m2 = NULL;
    lm_session *s = NULL;
    const double t0 = lm_engine_now_ms();
    if (out) *out = NULL;
    if (!mod || !st || !name || !out) {
        r = lm_err_set(&err, LM_ERR_INVALID_ARG, "wake: model, store, name and out are required");
        goto fail;
    }
    if ((r = lm_session_name_check(name, &err))) goto fail;
    /* the manifest alone first: identity and sizes are checked before any page is read */
    if ((r = lm_store_load(st, name, &m, NULL, NULL, &err))) goto fail;
    lm_session_params p = params ? *params : lm_session_default_params();
    if (p.page_tokens == 0) p.page_tokens = (int32_t)m->id.page_tokens;
    if (p.n_ctx == 0) p.n_ctx = (int32_t)m->n_ctx;
    lm_identity want;
    if ((r = lm_engine_identity(mod, p.page_tokens, &want, &err))) goto fail;
    char what[LM_SESSION_NAME_MAX + 32];
    snprintf(what, sizeof what, "session '%s'", name);
    if ((r = lm_identity_compare(&m->id, &want, what, &err))) {
        lm_err_prefix(&err, "wake: made with %s, loaded %s", m->model, mod->desc);
        goto fail;
    }
    if (m->n_tokens > (uint64_t)p.n_ctx) {
        r = lm_err_set(&err, LM_ERR_INVALID_ARG,
                       "wake: session '%s' holds %llu tokens, more than n_ctx %d", name,
                       (unsigned long long)m->n_tokens, p.n_ctx);
        goto fail;
    }
    for (uint64_t i = 0; i < m->n_tokens; i++)
        if (m->tokens[i] < 0 || m->tokens[i] >= mod->arch.hp.n_vocab) {
            r = lm_err_set(&err, LM_ERR_FORMAT,
                           "wake: session '%s' token %llu is id %d, outside the vocabulary "
                           "[0, %d)", name, (unsigned long long)i, m->tokens[i],
                           mod->arch.hp.n_vocab);
            goto fail;
        }
    if (m->n_vocab != 0 && m->n_vocab != (uint32_t)mod->arch.hp.n_vocab) {
        r = lm_err_set(&err, LM_ERR_FORMAT, "wake: session '%s' has %u logits, the model %d",
                       name, m->n_vocab, mod->arch.hp.n_vocab);
        goto fail;
    }
    if ((r = lm_engine_session_create(mod, &p, &s, &err))) goto fail;

    wake_ctx c = {s, m};
    if ((r = lm_store_load(st, name, &m2, wake_sink, &c, &err))) goto fail;
    /* a writer may have replaced the session between the two reads: the pages must be the
     * ones of the manifest that was checked */
    if (m2->n_tokens != m->n_tokens || m2->n_pages != m->n_pages ||
        (m->n_pages &&
         memcmp(&m2->pages[m->n_pages - 1], &m->pages[m->n_pages - 1], sizeof *m->pages))) {
        r = lm_err_set(&err, LM_ERR_IO, "wake: session '%s' changed while it was read; retry",
                       name);
        goto fail;
    }
    if (s->seq.n_tokens != (int64_t)m->n_tokens) {
        r = lm_err_set(&err, LM_ERR_INTERNAL, "wake: restored %lld of %llu tokens",
                       (long long)s->seq.n_tokens, (unsigned long long)m->n_tokens);
        goto fail;
    }
    if (m->n_tokens) memcpy(s->tokens, m->tokens, m->n_tokens * sizeof *s->tokens);
    s->n_tokens = m->n_tokens;
    if (m->n_vocab && m->n_tokens) {
        memcpy(s->logits, m->logits, (size_t)m->n_vocab * sizeof *s->logits);
        s->has_logits = 1;
    }
    s->rng_valid = (int)m->rng_valid;
    memcpy(s->rng.s, m->rng, sizeof s->rng.s);
    snprintf(s->origin, sizeof s->origin, "%s", m->name);
    snprintf(s->origin_parent, sizeof s->origin_parent, "%s", m->parent);
    s->created_at = m->created_at;
    s->m.restored_tokens = m->n_tokens;
    s->m.wake_ms = lm_engine_now_ms() - t0;
    lm_manifest_free(m);
    lm_manifest_free(m2);
    *out = s;
    return LM_OK;
fail:
    lm_session_free(s);
    lm_manifest_free(m);
    lm_manifest_free(m2);
    lm_err_copy(&err, errbuf, err_len);
    return r;
}

/* ---- prefix pages from a store ------------------------------------------------------------ */

typedef struct fetch_ctx {
    lm_session *s;
} fetch_ctx;

static lm_status fetch_sink(void *user, uint32_t i, const void *payload, size_t bytes,
                            lm_err *err) {
    fetch_ctx *c = user;
    lm_session *s = c->s;
    if (bytes != lm_kv_page_bytes(s->pool))
        return lm_err_set(err, LM_ERR_NOT_FOUND, "prefix: only a partial page is stored");
    lm_half *mem;
    lm_status r = lm_kv_seq_push_page(s->pool, &s->seq, s->pool->cfg.page_tokens, &mem, err);
    if (r == LM_OK) lm_kv_page_unpack(s->pool, mem, s->pool->cfg.page_tokens, payload);
    return r;
}

lm_status lm_engine_fetch_page(lm_session *s, const lm_identity *id, const lm_kv_key *key) {
    lm_err e;
    lm_err_clear(&e);
    const int32_t np = (int32_t)(s->seq.n_tokens / s->pool->cfg.page_tokens);
    if (s->seq.n_tokens % s->pool->cfg.page_tokens || s->seq.n_keyed != np)
        return LM_ERR_NOT_FOUND;
    fetch_ctx c = {s};
    lm_page_ref ref;
    lm_status r = lm_store_find_page(s->p.store, key, id, &ref, fetch_sink, &c, &e);
    if (r == LM_OK && (ref.n_filled != (uint32_t)s->pool->cfg.page_tokens ||
                       s->seq.n_pages != np + 1))
        r = LM_ERR_NOT_FOUND;
    if (r != LM_OK) {
        if (s->seq.n_pages > np) /* undo a pushed page */
            lm_kv_seq_truncate(s->pool, &s->seq, (int64_t)np * s->pool->cfg.page_tokens);
        return r;
    }
    s->seq.keys[np] = *key;
    s->seq.n_keyed = np + 1;
    return lm_kv_publish(s->pool, &s->seq, np, &e);
}

/* ---- fork ------------------------------------------------------------------------------- */

lm_status lm_session_fork(lm_session *s, lm_session **out) {
    if (!s) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    if (!out) return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "fork: out is required");
    *out = NULL;
    lm_session *f = NULL;
    lm_status r = lm_engine_session_create(s->model, &s->p, &f, &s->err);
    if (r != LM_OK) return r;
    if ((r = lm_kv_seq_fork(s->pool, &s->seq, &f->seq, &s->err))) {
        lm_session_free(f);
        return r;
    }
    memcpy(f->tokens, s->tokens, s->n_tokens * sizeof *s->tokens);
    f->n_tokens = s->n_tokens;
    memcpy(f->logits, s->logits, (size_t)s->model->arch.hp.n_vocab * sizeof *s->logits);
    f->has_logits = s->has_logits;
    f->rng = s->rng;
    f->rng_valid = s->rng_valid;
    /* a fork is a new conversation: sleeping it records where it came from */
    snprintf(f->origin_parent, sizeof f->origin_parent, "%s", s->origin);
    *out = f;
    return LM_OK;
}
