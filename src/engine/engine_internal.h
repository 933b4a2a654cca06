/*
 * engine_internal.h — the model and session objects behind include/lemma.h, shared by the
 * engine's files: engine.c (load, append, generate), session_store.c (sleep, wake, fork).
 *
 * A model owns the mapped GGUF file or HF directory, the bound architecture, its vocabulary
 * (tokenizer + chat template + special-token strings, built once from the open file by
 * api/text.c; its sessions tokenize through it and lm_model_vocab hands it out), a CPU
 * backend, its identity (computed once, on first need) and one KV page pool per page size
 * (created on first need, shared by all its sessions: the prefix cache).
 * A session owns a page table in its model's pool, forward buffers, the token history, the
 * last logits (host copy) and its RNG stream.
 *
 * Invariants of a session: tokens[0..n_tokens) == the positions in its KV pages
 * (seq.n_tokens == n_tokens); has_logits iff logits hold the output after tokens[n_tokens-1];
 * seq.keys[p] (p < seq.n_keyed) is the key of full page p given those tokens.
 * Every failing call restores them (KV truncated back), so a session is never half-updated.
 */
#ifndef LM_ENGINE_ENGINE_INTERNAL_H
#define LM_ENGINE_ENGINE_INTERNAL_H

#include "lemma.h"

#include "backend/backend.h"
#include "core/status.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "kv/kv.h"
#include "model/arch.h"
#include "sample/sample.h"
#include "store/manifest.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>

#define LM_ENGINE_MAX_POOLS 4

struct lm_model {
    lm_gguf *gguf;          /* the model file, or */
    lm_hf *hf;              /* the Hugging Face directory */
    lm_arch_model arch;
    lm_vocab *vocab;        /* NULL when the file's tokenizer could not be built or does not
                               fit the model (tok_error says why) */
    const lm_tokenizer *tok; /* vocab's tokenizer (owned by vocab), NULL with it */
    char tok_error[LM_ERR_MSG_MAX];
    char *chat_template;    /* NUL-terminated copy, NULL if none; part of the identity, kept
                               even when the tokenizer is unusable */
    char arch_name[32];
    char desc[LM_MODEL_DESC_MAX + 1]; /* "arch, file name" for messages and manifests */
    char *path;             /* the file or directory loaded (short names resolved) */
    lm_backend *be;

    pthread_mutex_t lock;   /* guards pools[] and the identity */
    uint64_t kv_budget;     /* bytes for all pages of a pool */
    struct {
        int32_t page_tokens;
        lm_kv_pool *pool;
    } pools[LM_ENGINE_MAX_POOLS];
    int n_pools;
    int id_state;           /* 0 = not computed, 1 = ok, -1 = failed (id_err says why) */
    lm_identity id;         /* weights/arch/tokenizer/template digests; kv fields unset */
    lm_err id_err;
};

struct lm_session {
    lm_model *model;
    lm_session_params p;
    lm_kv_pool *pool;       /* the model's pool for p.page_tokens */
    lm_kv_seq seq;
    lm_forward_bufs bufs;
    int32_t *tokens;        /* (n_ctx) history */
    size_t n_tokens;
    float *logits;          /* (n_vocab) host copy of the last logits */
    int has_logits;
    lm_sampler_state rng;   /* the session's RNG stream (LM_SEED_CONTINUE) */
    int rng_valid;          /* rng was set by a generate call or a wake */
    lm_err err;
    lm_metrics m;
    double t_first_append;  /* monotonic ms of the first append since reset; < 0 = none */
    /* store bookkeeping */
    char origin[LM_SESSION_NAME_MAX + 1];        /* name it was woken from / last slept as */
    char origin_parent[LM_SESSION_NAME_MAX + 1]; /* that state's parent */
    uint64_t created_at;    /* of the origin state, 0 = none */
};

double lm_engine_now_ms(void);

/* The model's pool for page_tokens, created on first use. */
lm_status lm_engine_pool(lm_model *m, int32_t page_tokens, lm_kv_pool **out, lm_err *err);
/* The model's identity with the KV fields for page_tokens (computed once per model). */
lm_status lm_engine_identity(lm_model *m, int32_t page_tokens, lm_identity *out, lm_err *err);
/* Computes the keys of s's full pages not keyed yet (and publishes them when
 * s->p.prefix_cache). */
lm_status lm_engine_key_pages(lm_session *s, const uint8_t kv_id[32]);
/* Prefix reuse from the session's store: finds the page with this key there, loads it into a
 * new page of s (published) and attaches it. LM_ERR_NOT_FOUND when the store has none. */
lm_status lm_engine_fetch_page(lm_session *s, const lm_identity *id, const lm_kv_key *key);
/* A new empty session (lm_session_new without the public-parameter defaults). */
lm_status lm_engine_session_create(lm_model *m, const lm_session_params *p, lm_session **out,
                                   lm_err *err);

#endif
