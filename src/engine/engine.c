/*
 * engine.c — the public engine API of include/lemma.h: models, sessions, generation.
 * The objects and their invariants: engine_internal.h. Sleep, wake and fork: session_store.c.
 */
#include "engine/engine_internal.h"

#include "api/text_internal.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/model_path.h"
#include "engine/identity.h"
#include "template/template.h"

#include <jansson.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

double lm_engine_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
#define now_ms lm_engine_now_ms

/* ---- model ------------------------------------------------------------------------------ */

lm_model_params lm_model_default_params(void) {
    lm_model_params p = {0};
    return p;
}

void lm_model_free(lm_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_pools; i++) {
        lm_kv_pool_free(m->pools[i].pool);
        lm_free(m->pools[i].pool);
    }
    pthread_mutex_destroy(&m->lock);
    lm_free(m->path);
    lm_backend_free(m->be);
    lm_vocab_free(m->vocab);
    lm_arch_free(&m->arch);
    lm_gguf_close(m->gguf);
    lm_hf_close(m->hf);
    lm_free(m->chat_template);
    lm_free(m);
}

/* The tokenizer is needed for text in and out, not for token-level use: a model whose
 * vocabulary lemma cannot build still runs on token ids, and text calls report why. */
static void set_vocab(lm_model *m, lm_status st, lm_vocab *v, const lm_err *terr) {
    if (st != LM_OK) {
        snprintf(m->tok_error, sizeof m->tok_error, "%s", terr->msg);
        return;
    }
    if (lm_tokenizer_n_vocab(lm_vocab_tokenizer(v)) > (size_t)m->arch.hp.n_vocab) {
        snprintf(m->tok_error, sizeof m->tok_error,
                 "tokenizer has %zu tokens, the model's embedding %d rows",
                 lm_tokenizer_n_vocab(lm_vocab_tokenizer(v)), m->arch.hp.n_vocab);
        lm_vocab_free(v);
        return;
    }
    m->vocab = v;
    m->tok = lm_vocab_tokenizer(v);
}

/* A GGUF file: the vocabulary from its tokenizer.* keys (api/text.c, from the file already
 * open here); the chat template is read on its own, so that the model's identity has it even
 * when the tokenizer cannot be built. */
static lm_status load_gguf(lm_model *m, const char *path, lm_err *err) {
    lm_status s;
    if ((s = lm_gguf_open_file(path, NULL, &m->gguf, err))) return s;
    if ((s = lm_arch_from_gguf(m->gguf, &m->arch, err))) return s;
    const char *an;
    size_t al;
    if (lm_gguf_get_str(m->gguf, "general.architecture", &an, &al, NULL) == LM_OK)
        snprintf(m->arch_name, sizeof m->arch_name, "%.*s", (int)al, an);

    lm_err terr;
    lm_err_clear(&terr);
    lm_vocab *v = NULL;
    lm_status vs = lm_vocab_from_gguf(m->gguf, &v, &terr);
    set_vocab(m, vs, v, &terr);
    const char *tpl;
    size_t tl;
    if (lm_gguf_find(m->gguf, "tokenizer.chat_template") >= 0 &&
        lm_gguf_get_str(m->gguf, "tokenizer.chat_template", &tpl, &tl, NULL) == LM_OK) {
        m->chat_template = lm_strndup(tpl, tl);
        if (!m->chat_template) return lm_err_set(err, LM_ERR_NOMEM, "model: chat template");
    }
    return LM_OK;
}

/* A Hugging Face directory: weights from config.json + safetensors (model/bind_hf.c); the
 * vocabulary (tokenizer.json + tokenizer_config.json, the chat template from
 * chat_template.jinja, else tokenizer_config.json) parsed once, as lm_vocab_load does. */
static lm_status load_hf(lm_model *m, const char *dir, lm_err *err) {
    lm_status s;
    if ((s = lm_hf_open(dir, &m->hf, err))) return s;
    if ((s = lm_arch_from_hf(m->hf, &m->arch, m->arch_name, sizeof m->arch_name, err)))
        return s;
    const char *tj = lm_hf_tokenizer_path(m->hf);
    if (!tj) {
        snprintf(m->tok_error, sizeof m->tok_error, "%s: no tokenizer.json", dir);
        return LM_OK;
    }
    lm_err terr;
    lm_err_clear(&terr);
    lm_vocab *v = NULL;
    lm_status vs = lm_vocab_from_hf_files(tj, lm_hf_tokenizer_config_path(m->hf),
                                          lm_hf_chat_template_path(m->hf), &v, &terr);
    const char *tpl = vs == LM_OK ? lm_vocab_chat_template(v) : NULL;
    if (tpl && !(m->chat_template = lm_strdup(tpl))) {
        lm_vocab_free(v);
        return lm_err_set(err, LM_ERR_NOMEM, "model: chat template");
    }
    set_vocab(m, vs, v, &terr);
    return LM_OK;
}

lm_status lm_model_load(const char *path, const lm_model_params *params, lm_model **out,
                        char *errbuf, size_t err_len) {
    lm_err err;
    lm_err_clear(&err);
    lm_status s = LM_OK;
    lm_model_params p = params ? *params : lm_model_default_params();
    lm_model *m = NULL;
    char *resolved = NULL;
    if (out) *out = NULL;
    if (!path || !out) {
        s = lm_err_set(&err, LM_ERR_INVALID_ARG, "model: path and out are required");
        goto fail;
    }
    if (p.n_threads < 0 || p.n_threads > 1024) {
        s = lm_err_set(&err, LM_ERR_INVALID_ARG, "model: n_threads %d not in [0, 1024]",
                       p.n_threads);
        goto fail;
    }
    if (p.kv_cache_mb > (1u << 24)) {
        s = lm_err_set(&err, LM_ERR_INVALID_ARG, "model: kv_cache_mb %llu not in [0, %u]",
                       (unsigned long long)p.kv_cache_mb, 1u << 24);
        goto fail;
    }
    int nt = p.n_threads;
    if (nt == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nt = c > 0 && c < 1024 ? (int)c : 1;
    }
    if ((s = lm_model_path_resolve(path, &resolved, &err))) goto fail;
    if (resolved) path = resolved; /* a short name (core/model_path.h) */
    m = lm_calloc(1, sizeof *m);
    if (!m) {
        s = lm_err_set(&err, LM_ERR_NOMEM, "model: out of memory");
        goto fail;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->path = lm_strdup(path);
    if (!m->path) {
        s = lm_err_set(&err, LM_ERR_NOMEM, "model: out of memory");
        goto fail;
    }
    m->kv_budget = (p.kv_cache_mb ? p.kv_cache_mb : 2048) << 20;
    if (lm_path_is_dir(path)) {
        if ((s = load_hf(m, path, &err))) goto fail;
    } else if ((s = load_gguf(m, path, &err))) {
        goto fail;
    }
    if ((s = lm_backend_cpu_create(nt, &m->be, &err))) goto fail;
    {
        const char *base = strrchr(path, '/');
        base = base && base[1] ? base + 1 : path;
        snprintf(m->desc, sizeof m->desc, "%s, %.400s", m->arch_name, base);
    }
    lm_free(resolved);
    *out = m;
    return LM_OK;
fail:
    lm_free(resolved);
    lm_model_free(m);
    lm_err_copy(&err, errbuf, err_len);
    return s;
}

int32_t lm_model_n_vocab(const lm_model *m) { return m ? m->arch.hp.n_vocab : 0; }
int32_t lm_model_n_ctx_train(const lm_model *m) { return m ? m->arch.hp.n_ctx_train : 0; }
const char *lm_model_arch(const lm_model *m) { return m ? m->arch_name : ""; }

int lm_model_token_is_eog(const lm_model *m, int32_t token) {
    return m && m->tok && lm_tokenizer_is_eog(m->tok, token);
}

const lm_vocab *lm_model_vocab(const lm_model *m) { return m ? m->vocab : NULL; }

lm_status lm_engine_pool(lm_model *m, int32_t page_tokens, lm_kv_pool **out, lm_err *err) {
    lm_status st = LM_OK;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->n_pools; i++)
        if (m->pools[i].page_tokens == page_tokens) {
            *out = m->pools[i].pool;
            goto done;
        }
    if (m->n_pools == LM_ENGINE_MAX_POOLS) {
        st = lm_err_set(err, LM_ERR_UNSUPPORTED, "session: at most %d page sizes per model",
                        LM_ENGINE_MAX_POOLS);
        goto done;
    }
    const lm_hparams *hp = &m->arch.hp;
    lm_kv_config kc = {hp->n_layer, hp->n_head_kv * hp->head_dim, page_tokens, 1};
    /* pages of one page_tokens-sized block of every layer, K and V, f16 */
    uint64_t page_bytes = (uint64_t)kc.n_layer * 2 * (uint64_t)page_tokens * (uint64_t)kc.kv_dim * 2;
    uint64_t budget_pages = m->kv_budget / page_bytes;
    /* one session of the full trained context always fits */
    uint64_t min_pages = ((uint64_t)hp->n_ctx_train + (uint64_t)page_tokens - 1) /
                         (uint64_t)page_tokens + 1;
    uint64_t n = budget_pages > min_pages ? budget_pages : min_pages;
    kc.max_pages = n > (1u << 20) ? (1 << 20) : (int32_t)n;
    lm_kv_pool *pool = lm_calloc(1, sizeof *pool);
    if (!pool) {
        st = lm_err_set(err, LM_ERR_NOMEM, "session: out of memory for a page pool");
        goto done;
    }
    if ((st = lm_kv_pool_init(pool, &kc, err))) {
        lm_free(pool);
        goto done;
    }
    m->pools[m->n_pools].page_tokens = page_tokens;
    m->pools[m->n_pools].pool = pool;
    m->n_pools++;
    *out = pool;
done:
    pthread_mutex_unlock(&m->lock);
    return st;
}

lm_status lm_engine_identity(lm_model *m, int32_t page_tokens, lm_identity *out, lm_err *err) {
    pthread_mutex_lock(&m->lock);
    if (m->id_state == 0) {
        lm_identity_src src = {m->gguf, m->hf, &m->arch.hp, m->arch_name, m->chat_template,
                               m->path};
        lm_err_clear(&m->id_err);
        m->id_state = lm_identity_compute(&src, &m->id, &m->id_err) == LM_OK ? 1 : -1;
    }
    lm_status st = LM_OK;
    if (m->id_state < 0) {
        st = lm_err_set(err, LM_ERR_INTERNAL, "model identity: %s", m->id_err.msg);
    } else {
        *out = m->id;
        out->kv_dtype = LM_KV_DTYPE_F16;
        out->page_tokens = (uint32_t)page_tokens;
        out->n_layer = (uint32_t)m->arch.hp.n_layer;
        out->kv_dim = (uint32_t)(m->arch.hp.n_head_kv * m->arch.hp.head_dim);
        lm_identity_kv_id(out, out->kv_id);
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}

lm_status lm_model_chat_prompt(const lm_model *m, const char *user_message, char **out,
                               char *errbuf, size_t err_len) {
    lm_err err;
    lm_err_clear(&err);
    lm_status s = LM_OK;
    lm_template *t = NULL;
    json_t *ctx = NULL;
    if (out) *out = NULL;
    if (!m || !user_message || !out) {
        s = lm_err_set(&err, LM_ERR_INVALID_ARG, "chat: model, message and out are required");
        goto done;
    }
    if (!m->chat_template) {
        /* Gemma GGUFs often carry no template; its turn format is fixed and documented, so
         * it is written out here (llama.cpp does the same from the architecture name). */
        if (m->arch.hp.arch == LM_ARCH_GEMMA3) {
            size_t n = strlen(user_message) + 96;
            *out = lm_malloc(n);
            if (!*out) {
                s = lm_err_set(&err, LM_ERR_NOMEM, "chat: out of memory");
                goto done;
            }
            snprintf(*out, n, "<bos><start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n",
                     user_message);
            goto done;
        }
        s = lm_err_set(&err, LM_ERR_NOT_FOUND, "chat: the model has no chat template");
        goto done;
    }
    if ((s = lm_template_compile(m->chat_template, strlen(m->chat_template), &t, &err)))
        goto done;
    const char *bos = "", *eos = "";
    size_t bl = 0, el = 0;
    if (m->tok) {
        int32_t b = lm_tokenizer_special(m->tok, LM_TOK_BOS);
        int32_t e = lm_tokenizer_special(m->tok, LM_TOK_EOS);
        if (b >= 0) lm_tokenizer_token_text(m->tok, b, &bos, &bl);
        if (e >= 0) lm_tokenizer_token_text(m->tok, e, &eos, &el);
    }
    ctx = json_pack("{s:[{s:s,s:s}],s:b,s:s%,s:s%}", "messages", "role", "user", "content",
                    user_message, "add_generation_prompt", 1, "bos_token", bos, bl,
                    "eos_token", eos, el);
    if (!ctx) {
        s = lm_err_set(&err, LM_ERR_INVALID_ARG, "chat: message is not valid UTF-8");
        goto done;
    }
    size_t len;
    s = lm_template_render(t, ctx, NULL, out, &len, &err);
done:
    json_decref(ctx);
    lm_template_free(t);
    if (s != LM_OK) lm_err_copy(&err, errbuf, err_len);
    return s;
}

/* ---- session ---------------------------------------------------------------------------- */

lm_session_params lm_session_default_params(void) {
    lm_session_params p = {0, 256, 256, 1, NULL};
    return p;
}

void lm_session_free(lm_session *s) {
    if (!s) return;
    lm_forward_bufs_free(s->model->be, &s->bufs);
    lm_kv_seq_free(s->pool, &s->seq);
    lm_free(s->tokens);
    lm_free(s->logits);
    lm_free(s);
}

lm_status lm_engine_session_create(lm_model *m, const lm_session_params *params,
                                   lm_session **out, lm_err *err) {
    lm_status st = LM_OK;
    lm_session *s = NULL;
    *out = NULL;
    lm_session_params p = *params;
    const lm_hparams *hp = &m->arch.hp;
    if (p.n_ctx == 0) p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (p.n_ctx < 1 || p.n_ctx > hp->n_ctx_train)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "session: n_ctx %d not in [1, %d]", p.n_ctx,
                          hp->n_ctx_train);
    if (p.n_batch < 1 || p.n_batch > 65536 || p.page_tokens < 1 || p.page_tokens > 65536)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "session: n_batch %d / page_tokens %d not in "
                          "[1, 65536]", p.n_batch, p.page_tokens);
    if (p.prefix_cache != 0 && p.prefix_cache != 1)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "session: prefix_cache %d is not 0 or 1",
                          p.prefix_cache);
    s = lm_calloc(1, sizeof *s);
    if (!s) return lm_err_set(err, LM_ERR_NOMEM, "session: out of memory");
    s->model = m;
    s->p = p;
    s->t_first_append = -1.0;
    lm_kv_seq_init(&s->seq);
    if ((st = lm_engine_pool(m, p.page_tokens, &s->pool, err))) goto fail;
    int64_t nb = p.n_batch < p.n_ctx ? p.n_batch : p.n_ctx;
    if ((st = lm_forward_bufs_init(m->be, hp, nb, &s->bufs, err))) goto fail;
    s->tokens = lm_calloc((size_t)p.n_ctx, sizeof *s->tokens);
    s->logits = lm_calloc((size_t)hp->n_vocab, sizeof *s->logits);
    if (!s->tokens || !s->logits) {
        st = lm_err_set(err, LM_ERR_NOMEM, "session: out of memory for %d tokens", p.n_ctx);
        goto fail;
    }
    *out = s;
    return LM_OK;
fail:
    lm_session_free(s);
    return st;
}

lm_status lm_session_new(lm_model *m, const lm_session_params *params, lm_session **out,
                         char *errbuf, size_t err_len) {
    lm_err err;
    lm_err_clear(&err);
    if (out) *out = NULL;
    lm_status st;
    if (!m || !out) {
        st = lm_err_set(&err, LM_ERR_INVALID_ARG, "session: model and out are required");
    } else {
        lm_session_params p = params ? *params : lm_session_default_params();
        st = lm_engine_session_create(m, &p, out, &err);
    }
    if (st != LM_OK) lm_err_copy(&err, errbuf, err_len);
    return st;
}

const char *lm_session_error(const lm_session *s) { return s ? s->err.msg : "no session"; }
size_t lm_session_n_tokens(const lm_session *s) { return s ? s->n_tokens : 0; }

static void rollback(lm_session *s, size_t n) {
    lm_kv_seq_truncate(s->pool, &s->seq, (int64_t)n);
    s->seq.n_tokens = (int64_t)n;
    s->n_tokens = n;
    s->has_logits = 0;
}

lm_status lm_engine_key_pages(lm_session *s, const uint8_t kv_id[32]) {
    const int64_t pt = s->pool->cfg.page_tokens;
    const int32_t full = (int32_t)(s->seq.n_tokens / pt);
    for (int32_t p = s->seq.n_keyed; p < full; p++) {
        lm_kv_page_key(kv_id, p ? &s->seq.keys[p - 1] : NULL, s->tokens + (size_t)p * (size_t)pt,
                       (size_t)pt, &s->seq.keys[p]);
        s->seq.n_keyed = p + 1;
        if (s->p.prefix_cache) {
            lm_status st = lm_kv_publish(s->pool, &s->seq, p, &s->err);
            if (st != LM_OK) return st;
        }
    }
    return LM_OK;
}

/* Prefix reuse: attaches the published pages (from the pool, else from the session's store)
 * whose keys match tokens[0..n) page by page, starting at a page boundary. Returns how many
 * tokens it attached (their ids copied into s->tokens); 0 when nothing matched or the
 * identity is unavailable (then the tokens are simply computed). */
static size_t attach_prefix(lm_session *s, const int32_t *tokens, size_t n) {
    const size_t pt = (size_t)s->pool->cfg.page_tokens;
    const size_t n0 = s->n_tokens;
    if (!s->p.prefix_cache || n0 % pt || n < pt) return 0;
    if ((size_t)s->seq.n_keyed != n0 / pt) return 0; /* earlier pages not keyed */
    lm_identity id;
    lm_err e;
    if (lm_engine_identity(s->model, (int32_t)pt, &id, &e) != LM_OK) return 0;
    size_t i = 0;
    while (n - i >= pt) {
        const size_t np = (n0 + i) / pt; /* pages before this one */
        lm_kv_key key;
        lm_kv_page_key(id.kv_id, np ? &s->seq.keys[np - 1] : NULL, tokens + i, pt, &key);
        lm_status r = lm_kv_seq_attach_key(s->pool, &s->seq, &key, NULL, &e);
        if (r == LM_ERR_NOT_FOUND && s->p.store)
            r = lm_engine_fetch_page(s, &id, &key); /* attaches and publishes it */
        if (r != LM_OK) break;
        memcpy(s->tokens + n0 + i, tokens + i, pt * sizeof *tokens);
        i += pt;
    }
    s->n_tokens = n0 + i;
    return i;
}

/* Scoring: the caller's callback behind lm_forward_logits_rows. */
typedef struct score_ctx {
    lm_logits_callback cb;
    void *user;
    float *host;    /* (n_vocab) host copy of one row */
    size_t base;    /* index of the batch's first token among the appended ones */
    size_t n_vocab;
} score_ctx;

static lm_status score_row(void *user, int64_t row, const float *logits, lm_err *err) {
    score_ctx *c = user;
    if (c->cb(c->user, c->base + (size_t)row, logits, c->n_vocab))
        return lm_err_set(err, LM_ERR_ABORTED, "append: stopped by the logits callback");
    return LM_OK;
}

/* Appends without touching metrics; on failure the session is rolled back. With sc, the
 * logits after every token i >= from are passed on (no prefix reuse then). */
static lm_status append_ex(lm_session *s, const int32_t *tokens, size_t n, size_t from,
                           score_ctx *sc) {
    lm_model *m = s->model;
    const size_t n0 = s->n_tokens;
    if (n == 0) return LM_OK;
    if (!tokens) return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "append: tokens is NULL");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->arch.hp.n_vocab)
            return lm_err_set(&s->err, LM_ERR_INVALID_ARG,
                              "append: token %zu is id %d, outside the vocabulary [0, %d)", i,
                              tokens[i], m->arch.hp.n_vocab);
    if (n > (size_t)s->p.n_ctx - n0)
        return lm_err_set(&s->err, LM_ERR_INVALID_ARG,
                          "append: %zu tokens after %zu exceed the context of %d tokens", n, n0,
                          s->p.n_ctx);
    size_t done = sc ? 0 : attach_prefix(s, tokens, n);
    if (done == n) {
        /* everything was cached: recompute the last token for its logits (its page is
         * copied on write, the cached one stays as it is) */
        lm_kv_seq_truncate(s->pool, &s->seq, (int64_t)(n0 + n - 1));
        s->n_tokens = n0 + n - 1;
        done = n - 1;
    }
    lm_status st = lm_kv_seq_reserve(s->pool, &s->seq, (int64_t)(n0 + n), &s->err);
    for (size_t i = done; st == LM_OK && i < n; i += (size_t)s->bufs.n_batch) {
        size_t c = n - i < (size_t)s->bufs.n_batch ? n - i : (size_t)s->bufs.n_batch;
        st = lm_forward(m->be, &m->arch, s->pool, &s->seq, tokens + i, (int64_t)c, i + c == n,
                        &s->bufs, &s->err);
        if (st == LM_OK && sc && i + c > from) {
            sc->base = i;
            st = lm_forward_logits_rows(m->be, &m->arch, &s->bufs, (int64_t)c,
                                        (int64_t)(from > i ? from - i : 0), sc->host, score_row,
                                        sc, &s->err);
        }
    }
    if (st == LM_OK)
        st = m->be->ops->download(m->be, s->logits, s->bufs.logits, (size_t)m->arch.hp.n_vocab,
                                  &s->err);
    if (st == LM_OK) {
        memcpy(s->tokens + n0, tokens, n * sizeof *tokens);
        s->n_tokens = n0 + n;
        s->has_logits = 1;
        /* key (and publish) the pages this append filled; a page's key needs its tokens. The
         * cache is an optimisation: a page that cannot be published is simply not shared. */
        lm_identity id;
        lm_err e;
        if (s->p.prefix_cache && s->seq.n_tokens / s->pool->cfg.page_tokens > s->seq.n_keyed &&
            lm_engine_identity(m, s->p.page_tokens, &id, &e) == LM_OK)
            (void)lm_engine_key_pages(s, id.kv_id);
    }
    if (st != LM_OK) {
        /* the logits buffer is written only on success: the old logits are still valid */
        const int had_logits = s->has_logits;
        rollback(s, n0);
        s->has_logits = had_logits && n0 > 0;
        return st;
    }
    s->m.reused_tokens += done;
    return LM_OK;
}

static lm_status append(lm_session *s, const int32_t *tokens, size_t n) {
    return append_ex(s, tokens, n, 0, NULL);
}

lm_status lm_session_append_scored(lm_session *s, const int32_t *tokens, size_t n, size_t from,
                                   lm_logits_callback cb, void *user) {
    if (!s) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    if (!cb) return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "append: no logits callback");
    double t0 = now_ms();
    if (s->t_first_append < 0) s->t_first_append = t0;
    const size_t nv = (size_t)s->model->arch.hp.n_vocab;
    score_ctx sc = {cb, user, lm_malloc(nv * sizeof(float)), 0, nv};
    if (!sc.host) return lm_err_set(&s->err, LM_ERR_NOMEM, "append: out of memory for logits");
    lm_status st = append_ex(s, tokens, n, from, &sc);
    lm_free(sc.host);
    if (st == LM_OK) {
        s->m.prompt_tokens += n;
        s->m.prefill_ms += now_ms() - t0;
    }
    return st;
}

lm_status lm_session_append_tokens(lm_session *s, const int32_t *tokens, size_t n) {
    if (!s) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    double t0 = now_ms();
    if (s->t_first_append < 0) s->t_first_append = t0;
    lm_status st = append(s, tokens, n);
    if (st == LM_OK) {
        s->m.prompt_tokens += n;
        s->m.prefill_ms += now_ms() - t0;
    }
    return st;
}

lm_status lm_session_append_text(lm_session *s, const char *text, size_t len, int add_special,
                                 int parse_special) {
    if (!s) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    if (!s->model->vocab)
        return lm_err_set(&s->err, LM_ERR_UNSUPPORTED, "no tokenizer: %s", s->model->tok_error);
    if (!text && len) return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "append: text is NULL");
    int32_t *ids = NULL;
    size_t n = 0;
    lm_status st = lm_vocab_encode(s->model->vocab, text, len, add_special, parse_special, &ids,
                                   &n, &s->err);
    if (st != LM_OK) return st;
    st = lm_session_append_tokens(s, ids, n);
    lm_free(ids);
    return st;
}

lm_status lm_session_logits(lm_session *s, const float **logits, size_t *n_vocab) {
    if (!s || !logits || !n_vocab) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    if (!s->has_logits)
        return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "logits: the session holds no tokens");
    *logits = s->logits;
    *n_vocab = (size_t)s->model->arch.hp.n_vocab;
    return LM_OK;
}

lm_status lm_session_truncate(lm_session *s, size_t n) {
    if (!s) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    if (n > s->n_tokens)
        return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "truncate: %zu > length %zu", n,
                          s->n_tokens);
    if (n == s->n_tokens) return LM_OK;
    rollback(s, n);
    if (n == 0) return LM_OK;
    /* recompute the logits after the new last token: re-run it at its position */
    int32_t last = s->tokens[n - 1];
    rollback(s, n - 1);
    return append(s, &last, 1);
}

lm_generate_params lm_generate_default_params(void) {
    lm_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 128;
    p.sampling = lm_sampler_default_params();
    p.stop_at_eog = 1;
    return p;
}

/* ---- stop strings ------------------------------------------------------------------------
 * The text not yet passed to the callback is kept in `hold`. After each token it is cut in
 * three: text before the earliest stop-string occurrence (passed on, generation ends), or else
 * everything but the longest suffix that is a proper prefix of some stop string (passed on)
 * and that suffix (held). No occurrence can start in text already passed on: its part up to
 * the held text's start would be a longer suffix that is a prefix of a stop string. Stop
 * strings are valid UTF-8, so a held suffix starts on a character boundary and what is passed
 * on stays valid UTF-8. */

typedef struct stop_match {
    const char *const *stop;
    size_t n_stop;
    char *hold;
    size_t n, cap;
} stop_match;

static lm_status stops_check(const lm_generate_params *p, lm_err *err) {
    if (p->n_stop > 0 && !p->stop)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "generate: %zu stop strings but no array",
                          p->n_stop);
    for (size_t i = 0; i < p->n_stop; i++) {
        const char *t = p->stop[i];
        if (!t || !*t)
            return lm_err_set(err, LM_ERR_INVALID_ARG, "generate: stop string %zu is %s", i,
                              t ? "empty" : "NULL");
        const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)t;
        utf8proc_ssize_t left = (utf8proc_ssize_t)strlen(t);
        while (left > 0) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate(u, left, &cp);
            if (k <= 0)
                return lm_err_set(err, LM_ERR_INVALID_ARG,
                                  "generate: stop string %zu is not valid UTF-8", i);
            u += k;
            left -= k;
        }
    }
    return LM_OK;
}

static int stops_add(stop_match *sm, const char *text, size_t len) {
    if (sm->n + len > sm->cap) {
        size_t cap = sm->cap ? sm->cap : 64;
        while (cap < sm->n + len) cap *= 2;
        char *p = lm_realloc(sm->hold, cap);
        if (!p) return 0;
        sm->hold = p;
        sm->cap = cap;
    }
    if (len) memcpy(sm->hold + sm->n, text, len);
    sm->n += len;
    return 1;
}

/* Length of hold that may be passed on; *hit = 1 when it ends where a stop string begins.
 * final: nothing more follows, so no text needs to be held for a partial match. */
static size_t stops_scan(const stop_match *sm, int final, int *hit) {
    const char *h = sm->hold;
    const size_t n = sm->n;
    size_t first = n;
    *hit = 0;
    for (size_t i = 0; i < sm->n_stop; i++) {
        const size_t sl = strlen(sm->stop[i]);
        const char *f = sl <= n ? memmem(h, n, sm->stop[i], sl) : NULL;
        if (f && (size_t)(f - h) < first) first = (size_t)(f - h), *hit = 1;
    }
    if (*hit || final) return first;
    size_t keep = 0;
    for (size_t i = 0; i < sm->n_stop; i++) {
        const size_t sl = strlen(sm->stop[i]);
        for (size_t k = (sl - 1 < n ? sl - 1 : n); k > keep; k--)
            if (!memcmp(h + n - k, sm->stop[i], k)) {
                keep = k;
                break;
            }
    }
    return n - keep;
}

static void stops_drop(stop_match *sm, size_t k) {
    memmove(sm->hold, sm->hold + k, sm->n - k);
    sm->n -= k;
}

lm_status lm_session_generate(lm_session *s, const lm_generate_params *params) {
    if (!s || !params) return LM_ERR_INVALID_ARG;
    lm_err_clear(&s->err);
    lm_model *m = s->model;
    if (params->max_tokens <= 0)
        return lm_err_set(&s->err, LM_ERR_INVALID_ARG, "generate: max_tokens %d must be > 0",
                          params->max_tokens);
    if (!s->has_logits)
        return lm_err_set(&s->err, LM_ERR_INVALID_ARG,
                          "generate: append a prompt first (the session holds no tokens)");
    lm_status st = stops_check(params, &s->err);
    if (st != LM_OK) return st;
    if (params->n_stop > 0 && !m->tok)
        return lm_err_set(&s->err, LM_ERR_UNSUPPORTED, "generate: stop strings need text: %s",
                          m->tok_error);
    lm_sampler smp;
    if ((st = lm_sampler_init(&smp, &params->sampling, m->arch.hp.n_vocab, &s->err))) return st;
    if (params->sampling.seed == LM_SEED_CONTINUE) {
        /* the session's own stream: where the last generate (or the woken state) left it */
        if (s->rng_valid) smp.rng = s->rng;
        else lm_sampler_seed(&smp.rng, 0);
    }
    stop_match sm = {params->stop, params->n_stop, NULL, 0, 0};
    const int use_stops = params->n_stop > 0;
    lm_detok_stream *ds = NULL;
    if (m->tok && (params->on_token || use_stops) &&
        (st = lm_detok_stream_new(m->tok, 0, &ds, &s->err)))
        goto done;

    double t0 = now_ms();
    int stopped = 0; /* a stop string matched: nothing more is passed on */
    for (int32_t i = 0; i < params->max_tokens; i++) {
        int32_t tok;
        if ((st = lm_sampler_sample(&smp, s->logits, s->tokens, s->n_tokens, &tok, &s->err)))
            break;
        if (s->m.generated_tokens == 0 && s->t_first_append >= 0)
            s->m.ttft_ms = now_ms() - s->t_first_append;
        s->m.generated_tokens++;
        if (params->stop_at_eog && lm_model_token_is_eog(m, tok)) break;
        const char *text = "";
        size_t tl = 0;
        if (ds && (st = lm_detok_stream_feed(ds, tok, &text, &tl, &s->err))) break;
        if (use_stops) {
            if (!stops_add(&sm, text, tl)) {
                st = lm_err_set(&s->err, LM_ERR_NOMEM, "generate: out of memory (stop text)");
                break;
            }
            tl = stops_scan(&sm, 0, &stopped);
            text = sm.hold ? sm.hold : "";
        }
        int quit = params->on_token && params->on_token(params->user, tok, text, tl);
        if (use_stops) stops_drop(&sm, tl);
        /* the token completing a stop string is not appended, like an EOG token */
        if (stopped || quit) break;
        if (s->n_tokens >= (size_t)s->p.n_ctx) break; /* context full: stop, not an error */
        if ((st = append(s, &tok, 1))) break;
    }
    if (st == LM_OK && ds && !stopped) {
        const char *text;
        size_t tl;
        if ((st = lm_detok_stream_flush(ds, &text, &tl, &s->err)) == LM_OK) {
            if (use_stops) {
                /* the flushed tail (U+FFFD for a cut character) may still complete a stop */
                if (!stops_add(&sm, text, tl)) {
                    st = lm_err_set(&s->err, LM_ERR_NOMEM, "generate: out of memory (stop text)");
                    goto timed;
                }
                tl = stops_scan(&sm, 1, &stopped);
                text = sm.hold ? sm.hold : "";
            }
            if (tl > 0 && params->on_token) params->on_token(params->user, -1, text, tl);
        }
    }
timed:
    s->m.decode_ms += now_ms() - t0;
    s->rng = smp.rng;
    s->rng_valid = 1;
done:
    lm_free(sm.hold);
    lm_detok_stream_free(ds);
    lm_sampler_free(&smp);
    return st;
}

void lm_session_metrics(const lm_session *s, lm_metrics *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!s) return;
    *out = s->m;
    out->prefill_tps = s->m.prefill_ms > 0 ? (double)s->m.prompt_tokens * 1e3 / s->m.prefill_ms
                                           : 0.0;
    out->decode_tps = s->m.decode_ms > 0 ? (double)s->m.generated_tokens * 1e3 / s->m.decode_ms
                                         : 0.0;
}

void lm_session_metrics_reset(lm_session *s) {
    if (!s) return;
    memset(&s->m, 0, sizeof s->m);
    s->t_first_append = -1.0;
}
