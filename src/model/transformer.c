/*
 * transformer.c — the one forward pass every family runs, driven by lm_hparams switches.
 *
 * Per layer, for a batch of n tokens at positions pos0 .. pos0+n-1 (shapes are (rows, width)):
 *
 *   h = norm(x) * attn_norm                      (n, E)
 *   q, k, v = h·Wqᵀ (+bq), h·Wkᵀ (+bk), h·Wvᵀ (+bv)   (n, H*D), (n, Hkv*D), (n, Hkv*D)
 *   q, k = per-head norm (Qwen3, Gemma3)
 *   q, k = RoPE at their positions (base: the layer's, sliding or global)
 *   K/V cache[layer][pos0..] = k, v              (f16 pages)
 *   att = softmax(q·Kᵀ * scale, causal, window) · V   (n, H*D)
 *   h = att·Woᵀ; h = norm(h) * post_attn_norm (Gemma)
 *   x += h
 *   h = norm(x) * ffn_norm
 *   h = (act(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ; h = norm(h) * post_ffn_norm (Gemma)
 *   x += h
 *
 * then logits = norm(x_last) * out_norm · Woutᵀ (soft-capped where configured). Only the last
 * token's logits are computed: prefill needs no others.
 * All work goes through the backend's ops (backend.h); nothing here touches buffer contents.
 */
#include "model/arch.h"

#include <string.h>

lm_status lm_forward_bufs_init(lm_backend *be, const lm_hparams *hp, int64_t n_batch,
                               lm_forward_bufs *b, lm_err *err) {
    memset(b, 0, sizeof *b);
    if (n_batch <= 0 || n_batch > 1 << 16)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "batch size %lld not in [1, 65536]",
                          (long long)n_batch);
    const size_t n = (size_t)n_batch;
    const size_t qd = (size_t)hp->n_head * (size_t)hp->head_dim;
    const size_t kd = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
    b->n_batch = n_batch;
    b->x = be->ops->alloc(be, n * (size_t)hp->n_embd);
    b->h = be->ops->alloc(be, n * (size_t)hp->n_embd);
    b->q = be->ops->alloc(be, n * qd);
    b->k = be->ops->alloc(be, n * kd);
    b->v = be->ops->alloc(be, n * kd);
    b->att = be->ops->alloc(be, n * qd);
    b->gate = be->ops->alloc(be, n * (size_t)hp->n_ff);
    b->up = be->ops->alloc(be, n * (size_t)hp->n_ff);
    b->logits = be->ops->alloc(be, (size_t)hp->n_vocab);
    if (!b->x || !b->h || !b->q || !b->k || !b->v || !b->att || !b->gate || !b->up ||
        !b->logits) {
        lm_forward_bufs_free(be, b);
        return lm_err_set(err, LM_ERR_NOMEM, "forward buffers for a batch of %lld",
                          (long long)n_batch);
    }
    return LM_OK;
}

void lm_forward_bufs_free(lm_backend *be, lm_forward_bufs *b) {
    if (!b || !be) return;
    float *all[] = {b->x, b->h, b->q, b->k, b->v, b->att, b->gate, b->up, b->logits,
                    b->logits_rows};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) be->ops->release(be, all[i]);
    memset(b, 0, sizeof *b);
}

#define TRY(call)                                                                             \
    do {                                                                                      \
        lm_status s_ = (call);                                                                \
        if (s_ != LM_OK) return s_;                                                           \
    } while (0)

/* ys[i] = x · ws[i]ᵀ for weights sharing the input x: one backend op where it has one */
static lm_status matmuls(lm_backend *be, int count, const lm_weight *const *ws, const float *x,
                         int64_t n, float *const *ys, lm_err *err) {
    if (be->ops->matmul_multi) return be->ops->matmul_multi(be, count, ws, x, n, ys, err);
    for (int i = 0; i < count; i++) TRY(be->ops->matmul(be, ws[i], x, n, ys[i], err));
    return LM_OK;
}

static lm_status attention_block(lm_backend *be, const lm_arch_model *m, const lm_layer *L,
                                 int32_t il, lm_kv_pool *pool, lm_kv_seq *seq, int64_t n,
                                 int64_t pos0, lm_forward_bufs *b, lm_err *err) {
    const lm_backend_ops *op = be->ops;
    const lm_hparams *hp = &m->hp;
    const int32_t D = hp->head_dim;

    TRY(op->rmsnorm(be, b->h, b->x, &L->attn_norm, n, hp->n_embd, hp->norm_eps, err));
    const lm_weight *wqkv[3] = {&L->wq, &L->wk, &L->wv};
    float *qkv[3] = {b->q, b->k, b->v};
    TRY(matmuls(be, 3, wqkv, b->h, n, qkv, err));
    if (L->bq.data) TRY(op->add_bias(be, b->q, &L->bq, n, err));
    if (L->bk.data) TRY(op->add_bias(be, b->k, &L->bk, n, err));
    if (L->bv.data) TRY(op->add_bias(be, b->v, &L->bv, n, err));
    if (L->q_norm.data)
        TRY(op->rmsnorm(be, b->q, b->q, &L->q_norm, n * hp->n_head, D, hp->norm_eps, err));
    if (L->k_norm.data)
        TRY(op->rmsnorm(be, b->k, b->k, &L->k_norm, n * hp->n_head_kv, D, hp->norm_eps, err));

    lm_rope_params rp = {hp->rope_style,      hp->n_rot,           hp->rope_base,
                         hp->rope_freq_scale, m->rope_freq_factors, hp->rope_mscale};
    if (L->is_swa) {
        /* Gemma's local layers use their own base and no context scaling */
        rp.base = hp->rope_base_swa;
        rp.freq_scale = 1.0f;
        rp.freq_factors = NULL;
        rp.mscale = 1.0f;
    }
    TRY(op->rope(be, b->q, n, hp->n_head, D, pos0, &rp, err));
    TRY(op->rope(be, b->k, n, hp->n_head_kv, D, pos0, &rp, err));
    TRY(op->kv_write(be, pool, seq, il, b->k, b->v, n, pos0, err));

    lm_attn_params ap = {hp->n_head, hp->n_head_kv, D, hp->attn_scale,
                         L->is_swa ? hp->sliding_window : 0, hp->attn_softcap};
    TRY(op->attention(be, b->att, b->q, pool, seq, il, n, pos0, &ap, err));
    TRY(op->matmul(be, &L->wo, b->att, n, b->h, err));
    if (L->post_attn_norm.data)
        TRY(op->rmsnorm(be, b->h, b->h, &L->post_attn_norm, n, hp->n_embd, hp->norm_eps, err));
    return op->add(be, b->x, b->h, n * hp->n_embd, err);
}

static lm_status ffn_block(lm_backend *be, const lm_arch_model *m, const lm_layer *L, int64_t n,
                           lm_forward_bufs *b, lm_err *err) {
    const lm_backend_ops *op = be->ops;
    const lm_hparams *hp = &m->hp;
    TRY(op->rmsnorm(be, b->h, b->x, &L->ffn_norm, n, hp->n_embd, hp->norm_eps, err));
    const lm_weight *wgu[2] = {&L->w_gate, &L->w_up};
    float *gu[2] = {b->gate, b->up};
    TRY(matmuls(be, 2, wgu, b->h, n, gu, err));
    TRY(op->glu(be, b->gate, b->up, n * hp->n_ff, hp->act, err));
    TRY(op->matmul(be, &L->w_down, b->gate, n, b->h, err));
    if (L->post_ffn_norm.data)
        TRY(op->rmsnorm(be, b->h, b->h, &L->post_ffn_norm, n, hp->n_embd, hp->norm_eps, err));
    return op->add(be, b->x, b->h, n * hp->n_embd, err);
}

lm_status lm_forward(lm_backend *be, const lm_arch_model *m, lm_kv_pool *pool, lm_kv_seq *seq,
                     const int32_t *tokens, int64_t n, int want_logits, lm_forward_bufs *b,
                     lm_err *err) {
    const lm_backend_ops *op = be->ops;
    const lm_hparams *hp = &m->hp;
    if (n <= 0 || n > b->n_batch)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "forward: %lld tokens, batch holds %lld",
                          (long long)n, (long long)b->n_batch);
    const int64_t pos0 = seq->n_tokens;
    if ((pos0 + n + pool->cfg.page_tokens - 1) / pool->cfg.page_tokens > seq->n_pages)
        return lm_err_set(err, LM_ERR_INTERNAL, "forward: KV pages not reserved");

    TRY(op->embed(be, &m->tok_embd, tokens, n, hp->embd_scale, b->x, err));
    for (int32_t il = 0; il < hp->n_layer; il++) {
        const lm_layer *L = &m->layers[il];
        TRY(attention_block(be, m, L, il, pool, seq, n, pos0, b, err));
        TRY(ffn_block(be, m, L, n, b, err));
    }
    seq->n_tokens = pos0 + n;
    if (!want_logits) return LM_OK;

    const float *last = b->x + (n - 1) * hp->n_embd;
    TRY(op->rmsnorm(be, b->h, last, &m->out_norm, 1, hp->n_embd, hp->norm_eps, err));
    TRY(op->matmul(be, &m->output, b->h, 1, b->logits, err));
    if (hp->final_softcap > 0.0f)
        TRY(op->softcap(be, b->logits, hp->final_softcap, hp->n_vocab, err));
    return LM_OK;
}

lm_status lm_forward_logits_rows(lm_backend *be, const lm_arch_model *m, lm_forward_bufs *b,
                                 int64_t n, int64_t from, float *host, lm_row_logits_fn cb,
                                 void *user, lm_err *err) {
    const lm_backend_ops *op = be->ops;
    const lm_hparams *hp = &m->hp;
    const size_t nv = (size_t)hp->n_vocab;
    if (n <= 0 || n > b->n_batch || from < 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "forward: rows [%lld, %lld) of a batch of %lld",
                          (long long)from, (long long)n, (long long)b->n_batch);
    if (!b->logits_rows && !(b->logits_rows = op->alloc(be, LM_LOGITS_ROWS * nv)))
        return lm_err_set(err, LM_ERR_NOMEM, "forward: logits for %d rows", LM_LOGITS_ROWS);
    for (int64_t r = from; r < n; r += LM_LOGITS_ROWS) {
        const int64_t k = n - r < LM_LOGITS_ROWS ? n - r : LM_LOGITS_ROWS;
        TRY(op->rmsnorm(be, b->h, b->x + r * hp->n_embd, &m->out_norm, k, hp->n_embd,
                        hp->norm_eps, err));
        TRY(op->matmul(be, &m->output, b->h, k, b->logits_rows, err));
        if (hp->final_softcap > 0.0f)
            TRY(op->softcap(be, b->logits_rows, hp->final_softcap, (int64_t)((size_t)k * nv),
                            err));
        for (int64_t i = 0; i < k; i++) {
            TRY(op->download(be, host, b->logits_rows + (size_t)i * nv, nv, err));
            TRY(cb(user, r + i, host, err));
        }
    }
    return LM_OK;
}
