/*
 * model.c — binds a GGUF file's metadata and tensors to an lm_arch_model (arch.h).
 *
 * GGUF naming (llama.cpp's convention, which every GGUF writer follows):
 *   metadata  "<arch>.block_count", ".embedding_length", ".feed_forward_length",
 *             ".attention.head_count", ".attention.head_count_kv", ".attention.key_length",
 *             ".attention.layer_norm_rms_epsilon", ".rope.freq_base", ".rope.dimension_count",
 *             ".attention.sliding_window", ".context_length", ".attn_logit_softcapping",
 *             ".final_logit_softcapping", and RoPE scaling (arch.h "RoPE scaling"):
 *             ".rope.scaling.type"   "none", "linear" or "yarn" (others, e.g. "longrope", are
 *                                    LM_ERR_UNSUPPORTED naming the type)
 *             ".rope.scaling.factor" linear and yarn factor (or the older ".rope.scale_linear";
 *                                    absent or 0: 1); with no type a factor means linear
 *                                    scaling (llama.cpp's default type)
 *             ".rope.scaling.original_context_length"  yarn (absent: .context_length, as
 *                                    llama.cpp's n_ctx_orig_yarn)
 *             ".rope.scaling.yarn_beta_fast" / "_beta_slow" (32 / 1), ".yarn_ext_factor" (1)
 *             ".rope.scaling.yarn_attn_factor"  yarn: the whole cos/sin factor, as transformers'
 *                                    attention_factor that llama.cpp's converter writes here
 *                                    (absent: 0.1 ln(factor) + 1, llama.cpp's and
 *                                    transformers' default). llama.cpp reads this key only for
 *                                    some architectures (not llama/qwen), so for a file that
 *                                    has it lemma follows transformers, not llama.cpp.
 *             ".rope.scaling.attn_factor"  multiplies the cos/sin factor (any type; 1)
 *             ".rope.scaling.yarn_log_multiplier"  DeepSeek's mscale_all_dim: refused
 *   tensors   token_embd, output_norm, output (absent = tied to token_embd), rope_freqs
 *             (optional, f32 [n_rot/2]: Llama 3's per-pair divisors, written by llama.cpp's
 *             converter; validated and copied to lm_arch_model.rope_freq_factors),
 *             blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_q_norm, attn_k_norm,
 *             post_attention_norm, ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm}.weight,
 *             blk.N.attn_{q,k,v}.bias
 * Everything read here is validated before use: the file is outside input.
 *
 * The binding itself (shapes, types, vectors to f32, sliding layers) is lm_arch_bind, shared
 * with the Hugging Face binder (bind_hf.c): a format only reads hyperparameters and names
 * tensors.
 */
#include "model/arch.h"
#include "model/bind.h"

#include "core/alloc.h"
#include "format/gguf.h"
#include "tensor/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

typedef struct binder {
    const lm_gguf *g;
    const char *arch;  /* metadata key prefix */
    lm_err *err;
} binder;

/* Reads "<arch>.<key>" as u32 into *out; absent keys keep *out when !required. */
static lm_status meta_u32(binder *b, const char *key, int required, int32_t *out) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", b->arch, key);
    if (lm_gguf_find(b->g, full) < 0) {
        if (!required) return LM_OK;
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: missing metadata '%s'", full);
    }
    uint32_t v;
    lm_status s = lm_gguf_get_u32(b->g, full, &v, b->err);
    if (s != LM_OK) return s;
    if (v > INT32_MAX) return lm_err_set(b->err, LM_ERR_FORMAT, "model: %s = %u too big", full, v);
    *out = (int32_t)v;
    return LM_OK;
}

static lm_status meta_f32(binder *b, const char *key, int required, float *out) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", b->arch, key);
    if (lm_gguf_find(b->g, full) < 0) {
        if (!required) return LM_OK;
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: missing metadata '%s'", full);
    }
    float v;
    lm_status s = lm_gguf_get_f32(b->g, full, &v, b->err);
    if (s != LM_OK) return s;
    if (!isfinite(v)) return lm_err_set(b->err, LM_ERR_FORMAT, "model: %s is not finite", full);
    *out = v;
    return LM_OK;
}

/* Family switches; the numbers come from the file in read_hparams. */
lm_status lm_arch_defaults(const char *name, size_t len, lm_hparams *hp, lm_err *err) {
    memset(hp, 0, sizeof *hp);
    hp->rope_freq_scale = 1.0f;
    hp->rope_scale_factor = 1.0f;
    hp->rope_mscale = 1.0f;
    hp->embd_scale = 1.0f;
    hp->act = LM_ACT_SILU;
    hp->rope_style = LM_ROPE_NORM;
    hp->rope_base = 10000.0f;
    hp->norm_eps = 1e-5f;
#define IS(s) (len == strlen(s) && !memcmp(name, s, len))
    if (IS("llama")) {
        hp->arch = LM_ARCH_LLAMA;
    } else if (IS("qwen2")) {
        hp->arch = LM_ARCH_QWEN2;
        hp->rope_style = LM_ROPE_NEOX;
        hp->has_qkv_bias = 1;
    } else if (IS("qwen3")) {
        hp->arch = LM_ARCH_QWEN3;
        hp->rope_style = LM_ROPE_NEOX;
        hp->has_qk_norm = 1;
    } else if (IS("gemma3")) {
        hp->arch = LM_ARCH_GEMMA3;
        hp->rope_style = LM_ROPE_NEOX;
        hp->has_qk_norm = 1;
        hp->has_post_norms = 1;
        hp->act = LM_ACT_GELU_TANH;
        hp->swa_period = 6;
        hp->rope_base_swa = 10000.0f;
        hp->norm_eps = 1e-6f;
    } else {
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "model: architecture '%.*s' not supported",
                          (int)(len > 64 ? 64 : len), name);
    }
#undef IS
    return LM_OK;
}

static int meta_has(binder *b, const char *key) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", b->arch, key);
    return lm_gguf_find(b->g, full) >= 0;
}

/* ".rope.scaling.*" (file header): the scaling kind and its numbers, ranges checked by
 * lm_hparams_check. n_ctx_train must be read already. */
static lm_status read_rope_scaling(binder *b, lm_hparams *hp) {
    lm_status s;
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", b->arch);
    const char *ty = "none";
    size_t tl = 4;
    if (lm_gguf_find(b->g, key) >= 0 && (s = lm_gguf_get_str(b->g, key, &ty, &tl, b->err)))
        return s;
    /* as llama.cpp: the factor also under its old key, 0 = unset, and a factor without a
     * type is linear scaling */
    float factor = 0.0f, attn = 1.0f;
    if ((s = meta_f32(b, "rope.scale_linear", 0, &factor)) ||
        (s = meta_f32(b, "rope.scaling.factor", 0, &factor)) ||
        (s = meta_f32(b, "rope.scaling.attn_factor", 0, &attn)))
        return s;
    if (factor == 0.0f) factor = 1.0f;
    if (lm_gguf_find(b->g, key) < 0 && factor != 1.0f) {
        ty = "linear";
        tl = 6;
    }
    const int none = tl == 4 && !memcmp(ty, "none", 4);
    const int linear = tl == 6 && !memcmp(ty, "linear", 6);
    const int yarn = tl == 4 && !memcmp(ty, "yarn", 4);
    if (!none && !linear && !yarn)
        return lm_err_set(b->err, LM_ERR_UNSUPPORTED, "model: rope scaling type '%.*s' not "
                          "supported (none, linear, yarn)", (int)(tl > 32 ? 32 : tl), ty);
    if (!none && !(factor >= 1.0f && factor <= 1024.0f))
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: %s.rope.scaling.factor %g", b->arch,
                          (double)factor);
    if (!(attn > 0.0f && attn <= 100.0f))
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: %s.rope.scaling.attn_factor %g",
                          b->arch, (double)attn);
    if (meta_has(b, "rope.scaling.yarn_log_multiplier"))
        return lm_err_set(b->err, LM_ERR_UNSUPPORTED,
                          "model: %s.rope.scaling.yarn_log_multiplier (DeepSeek's YaRN "
                          "mscale_all_dim) not supported", b->arch);
    if (linear) {
        hp->rope_scaling = LM_ROPE_SCALING_LINEAR;
        hp->rope_freq_scale = 1.0f / factor;
    } else if (yarn) {
        hp->rope_scaling = LM_ROPE_SCALING_YARN;
        hp->rope_scale_factor = factor;
        hp->rope_orig_ctx = hp->n_ctx_train;
        hp->rope_yarn_beta_fast = 32.0f;
        hp->rope_yarn_beta_slow = 1.0f;
        hp->rope_yarn_ext_factor = 1.0f;
        hp->rope_yarn_truncate = 1;
        float mscale = 0.0f;
        if ((s = meta_u32(b, "rope.scaling.original_context_length", 0, &hp->rope_orig_ctx)) ||
            (s = meta_f32(b, "rope.scaling.yarn_beta_fast", 0, &hp->rope_yarn_beta_fast)) ||
            (s = meta_f32(b, "rope.scaling.yarn_beta_slow", 0, &hp->rope_yarn_beta_slow)) ||
            (s = meta_f32(b, "rope.scaling.yarn_ext_factor", 0, &hp->rope_yarn_ext_factor)) ||
            (s = meta_f32(b, "rope.scaling.yarn_attn_factor", 0, &mscale)))
            return s;
        if (meta_has(b, "rope.scaling.yarn_attn_factor")) {
            if (!(mscale > 0.0f && mscale <= 100.0f))
                return lm_err_set(b->err, LM_ERR_FORMAT,
                                  "model: %s.rope.scaling.yarn_attn_factor %g", b->arch,
                                  (double)mscale);
            hp->rope_mscale = mscale;
        } else if (hp->rope_yarn_ext_factor != 0.0f) {
            /* llama.cpp: get_mscale(factor) / (1 + 0.1 ln factor) as the attention factor,
             * times the (1 + 0.1 ln factor) rope_yarn applies: 0.1 ln(factor) + 1 */
            hp->rope_mscale = (float)(0.1 * log((double)factor) + 1.0);
        }
    }
    hp->rope_mscale *= attn;
    return LM_OK;
}

/* rope_freqs.weight, when present: f32 [n_rot/2] divisors, each finite and > 0, copied to
 * m->rope_freq_factors (lm_arch_bind applies any yarn ramp on top). */
static lm_status read_rope_freqs(const lm_gguf *g, lm_arch_model *m, lm_err *err) {
    const int64_t idx = lm_gguf_find_tensor(g, "rope_freqs.weight");
    if (idx < 0) return LM_OK;
    const lm_tensor_info *t = lm_gguf_tensor(g, (uint64_t)idx);
    const int32_t np = m->hp.n_rot / 2;
    if (!t || t->dtype != LM_DTYPE_F32)
        return lm_err_set(err, LM_ERR_FORMAT, "model: tensor 'rope_freqs.weight' is %s, "
                          "expected f32", t ? lm_dtype_name(t->dtype) : "missing");
    if (t->n_dims != 1 || t->ne[0] != (uint64_t)np || t->nbytes != (uint64_t)np * 4 || !t->data)
        return lm_err_set(err, LM_ERR_FORMAT, "model: tensor 'rope_freqs.weight' has %u dims, "
                          "[%llu], expected [%d] (n_rot / 2)", t->n_dims,
                          (unsigned long long)t->ne[0], np);
    float *f = lm_calloc((size_t)np, sizeof(float));
    if (!f) return lm_err_set(err, LM_ERR_NOMEM, "model: rope_freqs");
    memcpy(f, t->data, (size_t)np * sizeof(float));
    for (int32_t p = 0; p < np; p++)
        if (!(isfinite(f[p]) && f[p] > 0.0f)) {
            lm_status s = lm_err_set(err, LM_ERR_FORMAT, "model: rope_freqs.weight[%d] = %g, "
                                     "expected a positive number", p, (double)f[p]);
            lm_free(f);
            return s;
        }
    m->rope_freq_factors = f;
    m->hp.rope_freqs_in_file = 1;
    return LM_OK;
}

static lm_status read_hparams(binder *b, lm_hparams *hp) {
    lm_status s;
    if ((s = meta_u32(b, "block_count", 1, &hp->n_layer)) ||
        (s = meta_u32(b, "embedding_length", 1, &hp->n_embd)) ||
        (s = meta_u32(b, "feed_forward_length", 1, &hp->n_ff)) ||
        (s = meta_u32(b, "attention.head_count", 1, &hp->n_head)))
        return s;
    hp->n_head_kv = hp->n_head;
    hp->n_ctx_train = 2048;
    if ((s = meta_u32(b, "attention.head_count_kv", 0, &hp->n_head_kv)) ||
        (s = meta_u32(b, "context_length", 0, &hp->n_ctx_train)) ||
        (s = meta_f32(b, "attention.layer_norm_rms_epsilon", 0, &hp->norm_eps)) ||
        (s = meta_f32(b, "rope.freq_base", 0, &hp->rope_base)) ||
        (s = meta_f32(b, "attn_logit_softcapping", 0, &hp->attn_softcap)) ||
        (s = meta_f32(b, "final_logit_softcapping", 0, &hp->final_softcap)))
        return s;
    if (hp->n_layer <= 0 || hp->n_layer > LM_MAX_LAYERS || hp->n_embd <= 0 ||
        hp->n_embd > 65536 || hp->n_head <= 0 || hp->n_head > 1024 || hp->n_head_kv <= 0 ||
        hp->n_head % hp->n_head_kv != 0 || hp->n_ff <= 0 || hp->n_ff > 1 << 20 ||
        hp->n_ctx_train <= 0)
        return lm_err_set(b->err, LM_ERR_FORMAT,
                          "model: bad hyperparameters (layers %d, embd %d, heads %d/%d, ff %d, "
                          "ctx %d)", hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv,
                          hp->n_ff, hp->n_ctx_train);
    hp->head_dim = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    int32_t vlen = -1;
    if ((s = meta_u32(b, "attention.key_length", 0, &hp->head_dim)) ||
        (s = meta_u32(b, "attention.value_length", 0, &vlen)))
        return s;
    if (hp->head_dim <= 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0 ||
        (vlen >= 0 && vlen != hp->head_dim))
        return lm_err_set(b->err, LM_ERR_UNSUPPORTED, "model: head size %d (value %d)",
                          hp->head_dim, vlen);
    hp->n_rot = hp->head_dim;
    if ((s = meta_u32(b, "rope.dimension_count", 0, &hp->n_rot))) return s;
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: rope.dimension_count %d", hp->n_rot);
    if (!(hp->norm_eps > 0.0f && hp->norm_eps < 1.0f) || !(hp->rope_base > 1.0f) ||
        hp->attn_softcap < 0.0f || hp->final_softcap < 0.0f)
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: bad eps %g / rope base %g / softcap",
                          (double)hp->norm_eps, (double)hp->rope_base);

    if ((s = read_rope_scaling(b, hp))) return s;

    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    if (hp->arch == LM_ARCH_GEMMA3) {
        hp->embd_scale = sqrtf((float)hp->n_embd);
        if ((s = meta_u32(b, "attention.sliding_window", 1, &hp->sliding_window))) return s;
        if ((s = meta_u32(b, "attention.sliding_window_pattern", 0, &hp->swa_period))) return s;
        if (hp->sliding_window <= 0 || hp->swa_period <= 0)
            return lm_err_set(b->err, LM_ERR_FORMAT, "model: sliding window %d, period %d",
                              hp->sliding_window, hp->swa_period);
    }
    return LM_OK;
}

static const lm_tensor_info *gguf_find(const void *ctx, const char *name) {
    const lm_gguf *g = ctx;
    int64_t idx = lm_gguf_find_tensor(g, name);
    return idx >= 0 ? lm_gguf_tensor(g, (uint64_t)idx) : NULL;
}

static const lm_tensor_names k_gguf_names = {
    .tok_embd = "token_embd.weight",
    .out_norm = "output_norm.weight",
    .output = "output.weight",
    .layer_prefix = "blk.",
    .attn_norm = "attn_norm.weight",
    .wq = "attn_q.weight",
    .wk = "attn_k.weight",
    .wv = "attn_v.weight",
    .wo = "attn_output.weight",
    .bq = "attn_q.bias",
    .bk = "attn_k.bias",
    .bv = "attn_v.bias",
    .q_norm = "attn_q_norm.weight",
    .k_norm = "attn_k_norm.weight",
    .post_attn_norm = "post_attention_norm.weight",
    .ffn_norm = "ffn_norm.weight",
    .w_gate = "ffn_gate.weight",
    .w_up = "ffn_up.weight",
    .w_down = "ffn_down.weight",
    .post_ffn_norm = "post_ffw_norm.weight",
};

lm_status lm_arch_from_gguf(const lm_gguf *g, lm_arch_model *m, lm_err *err) {
    memset(m, 0, sizeof *m);
    const char *an;
    size_t al;
    lm_status s = lm_gguf_get_str(g, "general.architecture", &an, &al, err);
    if (s != LM_OK) return s;
    lm_hparams *hp = &m->hp;
    if ((s = lm_arch_defaults(an, al, hp, err))) return s;
    char arch[32];
    snprintf(arch, sizeof arch, "%.*s", (int)al, an);
    binder b = {g, arch, err};
    if ((s = read_hparams(&b, hp))) return s;
    if ((s = read_rope_freqs(g, m, err))) return s; /* owned by m: lm_arch_bind frees it on
                                                      failure */
    lm_bind_opts o = {-1, 0, NULL, NULL};
    return lm_arch_bind(m, gguf_find, g, &k_gguf_names, &o, err);
}

/* ---- shared by every format ------------------------------------------------------------- */

/* Ranges of the RoPE scaling fields (whichever binder filled them). */
static lm_status rope_scaling_check(const lm_hparams *hp, lm_err *err) {
    const int k = (int)hp->rope_scaling;
    if (k < LM_ROPE_SCALING_NONE || k > LM_ROPE_SCALING_LLAMA3)
        return lm_err_set(err, LM_ERR_FORMAT, "model: rope scaling kind %d", k);
    if (!(hp->rope_mscale > 0.0f && hp->rope_mscale <= 100.0f))
        return lm_err_set(err, LM_ERR_FORMAT, "model: rope cos/sin factor %g",
                          (double)hp->rope_mscale);
    if (k != LM_ROPE_SCALING_YARN && k != LM_ROPE_SCALING_LLAMA3) return LM_OK;
    if (!(hp->rope_scale_factor >= 1.0f && hp->rope_scale_factor <= 1024.0f) ||
        hp->rope_orig_ctx <= 0)
        return lm_err_set(err, LM_ERR_FORMAT, "model: rope scaling factor %g, original "
                          "context %d", (double)hp->rope_scale_factor, hp->rope_orig_ctx);
    if (k == LM_ROPE_SCALING_YARN &&
        (!(hp->rope_yarn_beta_fast > 0.0f && hp->rope_yarn_beta_fast < 1e6f) ||
         !(hp->rope_yarn_beta_slow > 0.0f && hp->rope_yarn_beta_slow < 1e6f) ||
         !(hp->rope_yarn_ext_factor >= 0.0f && hp->rope_yarn_ext_factor <= 1.0f)))
        return lm_err_set(err, LM_ERR_FORMAT, "model: yarn beta_fast %g, beta_slow %g, "
                          "ext_factor %g", (double)hp->rope_yarn_beta_fast,
                          (double)hp->rope_yarn_beta_slow, (double)hp->rope_yarn_ext_factor);
    if (k == LM_ROPE_SCALING_LLAMA3 &&
        (!(hp->rope_llama3_low_freq > 0.0f && hp->rope_llama3_low_freq < 1e6f) ||
         !(hp->rope_llama3_high_freq > 0.0f && hp->rope_llama3_high_freq < 1e6f) ||
         hp->rope_llama3_high_freq == hp->rope_llama3_low_freq))
        return lm_err_set(err, LM_ERR_FORMAT, "model: llama3 rope low_freq_factor %g, "
                          "high_freq_factor %g", (double)hp->rope_llama3_low_freq,
                          (double)hp->rope_llama3_high_freq);
    return LM_OK;
}

lm_status lm_hparams_check(const lm_hparams *hp, lm_err *err) {
    if (hp->n_layer <= 0 || hp->n_layer > LM_MAX_LAYERS || hp->n_embd <= 0 ||
        hp->n_embd > 65536 || hp->n_head <= 0 || hp->n_head > 1024 || hp->n_head_kv <= 0 ||
        hp->n_head % hp->n_head_kv != 0 || hp->n_ff <= 0 || hp->n_ff > 1 << 20 ||
        hp->n_ctx_train <= 0 || hp->n_vocab < 0)
        return lm_err_set(err, LM_ERR_FORMAT,
                          "model: bad hyperparameters (layers %d, embd %d, heads %d/%d, ff %d, "
                          "ctx %d, vocab %d)", hp->n_layer, hp->n_embd, hp->n_head,
                          hp->n_head_kv, hp->n_ff, hp->n_ctx_train, hp->n_vocab);
    if (hp->head_dim <= 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0)
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "model: head size %d", hp->head_dim);
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return lm_err_set(err, LM_ERR_FORMAT, "model: %d rotated dims of %d", hp->n_rot,
                          hp->head_dim);
    if (!(hp->norm_eps > 0.0f && hp->norm_eps < 1.0f) || !(hp->rope_base > 1.0f) ||
        !(hp->attn_softcap >= 0.0f) || !(hp->final_softcap >= 0.0f) ||
        !(hp->attn_scale > 0.0f && isfinite(hp->attn_scale)) ||
        !(hp->rope_freq_scale > 0.0f && hp->rope_freq_scale <= 1.0f) ||
        !(hp->embd_scale > 0.0f && isfinite(hp->embd_scale)))
        return lm_err_set(err, LM_ERR_FORMAT,
                          "model: bad eps %g / rope base %g / freq scale %g / softcap / scale",
                          (double)hp->norm_eps, (double)hp->rope_base,
                          (double)hp->rope_freq_scale);
    if (hp->sliding_window < 0 || hp->swa_period < 0 ||
        (hp->sliding_window > 0 && !(hp->rope_base_swa > 1.0f)))
        return lm_err_set(err, LM_ERR_FORMAT, "model: sliding window %d, period %d, base %g",
                          hp->sliding_window, hp->swa_period, (double)hp->rope_base_swa);
    return rope_scaling_check(hp, err);
}

/* The per-pair divisors of the global layers' angles (arch.h "RoPE scaling"): the file's
 * rope_freqs (already in m->rope_freq_factors), times Llama 3's or YaRN's. */
static lm_status rope_factors(lm_arch_model *m, lm_err *err) {
    const lm_hparams *hp = &m->hp;
    const int32_t nr = hp->n_rot, np = nr / 2;
    if (hp->rope_scaling != LM_ROPE_SCALING_YARN && hp->rope_scaling != LM_ROPE_SCALING_LLAMA3)
        return LM_OK;
    if (!m->rope_freq_factors) {
        m->rope_freq_factors = lm_calloc((size_t)np, sizeof(float));
        if (!m->rope_freq_factors) return lm_err_set(err, LM_ERR_NOMEM, "model: rope factors");
        for (int32_t p = 0; p < np; p++) m->rope_freq_factors[p] = 1.0f;
    }
    const double factor = hp->rope_scale_factor, orig = hp->rope_orig_ctx;
    if (hp->rope_scaling == LM_ROPE_SCALING_LLAMA3) {
        /* in float, as transformers (torch float32) and llama.cpp's converter compute it */
        const float lo = hp->rope_llama3_low_freq, hi = hp->rope_llama3_high_freq;
        const float lo_wavelen = (float)(orig / lo), hi_wavelen = (float)(orig / hi);
        for (int32_t p = 0; p < np; p++) {
            const float inv = 1.0f / powf(hp->rope_base, (float)(2 * p) / (float)nr);
            const float wavelen = (float)(2.0 * M_PI) / inv;
            float div = 1.0f;
            if (wavelen < hi_wavelen) {
                div = 1.0f;
            } else if (wavelen > lo_wavelen) {
                div = (float)factor;
            } else {
                const float sm = ((float)orig / wavelen - lo) / (hi - lo);
                div = 1.0f / ((1.0f - sm) / (float)factor + sm);
            }
            m->rope_freq_factors[p] *= div;
        }
        return LM_OK;
    }
    /* YaRN: correction range in double (math.log), ramp in float (torch float32) */
    const double two_ln_base = 2.0 * log((double)hp->rope_base);
    double low = nr * log(orig / (hp->rope_yarn_beta_fast * 2.0 * M_PI)) / two_ln_base;
    double high = nr * log(orig / (hp->rope_yarn_beta_slow * 2.0 * M_PI)) / two_ln_base;
    if (hp->rope_yarn_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = fmax(low, 0.0);
    high = fmin(high, (double)(nr - 1));
    if (low == high) high += 0.001; /* transformers' guard against a zero-width ramp */
    for (int32_t p = 0; p < np; p++) {
        float ramp = (float)(((double)p - low) / (high - low));
        ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
        const double e = (double)(1.0f - ramp) * hp->rope_yarn_ext_factor;
        m->rope_freq_factors[p] *= (float)(1.0 / ((1.0 - e) / factor + e));
    }
    return LM_OK;
}

typedef struct bind_ctx {
    lm_tensor_find_fn find;
    const void *ctx;
    const lm_bind_opts *o;
    lm_err *err;
} bind_ctx;

static int is_float_type(lm_dtype t) {
    return t == LM_DTYPE_F32 || t == LM_DTYPE_F16 || t == LM_DTYPE_BF16;
}

/* Binds tensor NAME with expected shape (cols, rows) (rows 1 for a vector). A missing optional
 * tensor (or a NULL name) leaves w->data NULL. Vectors must be F32/F16/BF16 (copied to f32
 * later); matrices any type that can be dequantized (the matmul reports the ones it cannot
 * multiply), or only float types with float_only. */
static lm_status bind(bind_ctx *b, const char *name, int64_t cols, int64_t rows, int required,
                      lm_weight *w) {
    memset(w, 0, sizeof *w);
    const lm_tensor_info *t = name ? b->find(b->ctx, name) : NULL;
    if (!t) {
        if (!required) return LM_OK;
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: missing tensor '%s'",
                          name ? name : "(unnamed)");
    }
    if (rows > 1 && b->o->pack) {
        lm_err perr;
        lm_err_clear(&perr);
        lm_status ps = b->o->pack(b->ctx, name, w, &perr);
        if (ps == LM_OK) {
            if (w->rows != rows || w->cols != cols)
                return lm_err_set(b->err, LM_ERR_FORMAT,
                                  "model: packed tensor '%s' is [%lld, %lld], expected "
                                  "[%lld, %lld]", name, (long long)w->cols, (long long)w->rows,
                                  (long long)cols, (long long)rows);
            return LM_OK;
        }
        memset(w, 0, sizeof *w);
        if (ps != LM_ERR_NOT_FOUND) return lm_err_set(b->err, ps, "%s", perr.msg);
    }
    const uint64_t want_rows = (uint64_t)rows;
    if (t->ne[0] != (uint64_t)cols || t->ne[1] != want_rows || t->ne[2] != 1 || t->ne[3] != 1)
        return lm_err_set(b->err, LM_ERR_FORMAT,
                          "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected "
                          "[%lld, %lld]", name, (unsigned long long)t->ne[0],
                          (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                          (unsigned long long)t->ne[3], (long long)cols, (long long)rows);
    if ((rows == 1 || b->o->float_only) && !is_float_type(t->dtype))
        return lm_err_set(b->err, LM_ERR_UNSUPPORTED,
                          "model: tensor '%s' is %s, expected f32, f16 or bf16", name,
                          lm_dtype_name(t->dtype));
    if (!lm_can_dequant(t->dtype))
        return lm_err_set(b->err, LM_ERR_UNSUPPORTED, "model: tensor '%s' has type %s",
                          name, lm_dtype_name(t->dtype));
    if (t->nbytes != lm_dtype_row_size(t->dtype, t->ne[0]) * want_rows || !t->data)
        return lm_err_set(b->err, LM_ERR_FORMAT, "model: tensor '%s' size mismatch", name);
    w->dtype = t->dtype;
    w->data = t->data;
    w->rows = rows;
    w->cols = cols;
    return LM_OK;
}

static lm_status blk(bind_ctx *b, const lm_tensor_names *nm, int il, const char *role,
                     int64_t cols, int64_t rows, int required, lm_weight *w) {
    if (!role) return bind(b, NULL, cols, rows, required, w);
    char name[256];
    int n = snprintf(name, sizeof name, "%s%d.%s", nm->layer_prefix, il, role);
    if (n < 0 || (size_t)n >= sizeof name)
        return lm_err_set(b->err, LM_ERR_INTERNAL, "model: tensor name too long");
    return bind(b, name, cols, rows, required, w);
}

/* Copies every norm and bias vector into one owned f32 block: converted from f16/bf16, and
 * norms with +1 folded in for norm_add_one models (HF Gemma's x * (1 + w)). */
static lm_status own_vectors(lm_arch_model *m, lm_err *err) {
    const lm_hparams *hp = &m->hp;
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        float *dst = m->owned;
        for (int il = -1; il < hp->n_layer; il++) {
            lm_weight *list[10];
            int n = 0, n_norms;
            if (il < 0) {
                list[n++] = &m->out_norm;
                n_norms = 1;
            } else {
                lm_layer *L = &m->layers[il];
                lm_weight *all[10] = {&L->attn_norm, &L->ffn_norm, &L->post_attn_norm,
                                      &L->post_ffn_norm, &L->q_norm, &L->k_norm,
                                      &L->bq, &L->bk, &L->bv, NULL};
                n_norms = 6;
                for (int j = 0; j < 9; j++) list[n++] = all[j];
            }
            for (int j = 0; j < n; j++) {
                lm_weight *w = list[j];
                if (!w->data) continue;
                if (pass == 0) {
                    total += (size_t)w->cols;
                    continue;
                }
                if (lm_dequant_row(w->dtype, w->data, dst, w->cols) != 0)
                    return lm_err_set(err, LM_ERR_UNSUPPORTED, "model: vector of type %s",
                                      lm_dtype_name(w->dtype));
                if (j < n_norms && hp->norm_add_one)
                    for (int64_t c = 0; c < w->cols; c++) dst[c] += 1.0f;
                w->dtype = LM_DTYPE_F32;
                w->data = dst;
                dst += w->cols;
            }
        }
        if (pass == 0) {
            m->owned = lm_calloc(total ? total : 1, sizeof(float));
            if (!m->owned) return lm_err_set(err, LM_ERR_NOMEM, "model: norm weights");
        }
    }
    return LM_OK;
}

lm_status lm_arch_bind(lm_arch_model *m, lm_tensor_find_fn find, const void *ctx,
                       const lm_tensor_names *nm, const lm_bind_opts *o, lm_err *err) {
    lm_hparams *hp = &m->hp;
    bind_ctx b = {find, ctx, o, err};
    lm_status s = lm_hparams_check(hp, err);
    if (s) goto fail;

    const int64_t E = hp->n_embd, D = hp->head_dim;
    const int64_t QD = (int64_t)hp->n_head * D, KD = (int64_t)hp->n_head_kv * D;
    const lm_tensor_info *te = find(ctx, nm->tok_embd);
    if (!te || te->ne[1] == 0 || te->ne[1] > INT32_MAX) {
        s = lm_err_set(err, LM_ERR_FORMAT, "model: %s missing or empty", nm->tok_embd);
        goto fail;
    }
    if (hp->n_vocab > 0 && te->ne[1] != (uint64_t)hp->n_vocab) {
        s = lm_err_set(err, LM_ERR_FORMAT, "model: %s has %llu rows, the vocabulary is %d",
                       nm->tok_embd, (unsigned long long)te->ne[1], hp->n_vocab);
        goto fail;
    }
    hp->n_vocab = (int32_t)te->ne[1];
    if ((s = bind(&b, nm->tok_embd, E, hp->n_vocab, 1, &m->tok_embd)) ||
        (s = bind(&b, nm->out_norm, E, 1, 1, &m->out_norm)) ||
        (o->tied != 1 && (s = bind(&b, nm->output, E, hp->n_vocab, o->tied == 0, &m->output))))
        goto fail;
    if (!m->output.data) m->output = m->tok_embd; /* tied */

    m->layers = lm_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        s = lm_err_set(err, LM_ERR_NOMEM, "model: layers");
        goto fail;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        lm_layer *L = &m->layers[il];
        const int qkn = hp->has_qk_norm, bias = hp->has_qkv_bias, post = hp->has_post_norms;
        if ((s = blk(&b, nm, il, nm->attn_norm, E, 1, 1, &L->attn_norm)) ||
            (s = blk(&b, nm, il, nm->wq, E, QD, 1, &L->wq)) ||
            (s = blk(&b, nm, il, nm->wk, E, KD, 1, &L->wk)) ||
            (s = blk(&b, nm, il, nm->wv, E, KD, 1, &L->wv)) ||
            (s = blk(&b, nm, il, nm->wo, QD, E, 1, &L->wo)) ||
            (s = blk(&b, nm, il, nm->bq, QD, 1, bias, &L->bq)) ||
            (s = blk(&b, nm, il, nm->bk, KD, 1, bias, &L->bk)) ||
            (s = blk(&b, nm, il, nm->bv, KD, 1, bias, &L->bv)) ||
            (s = blk(&b, nm, il, nm->q_norm, D, 1, qkn, &L->q_norm)) ||
            (s = blk(&b, nm, il, nm->k_norm, D, 1, qkn, &L->k_norm)) ||
            (s = blk(&b, nm, il, nm->post_attn_norm, E, 1, post, &L->post_attn_norm)) ||
            (s = blk(&b, nm, il, nm->ffn_norm, E, 1, 1, &L->ffn_norm)) ||
            (s = blk(&b, nm, il, nm->w_gate, E, hp->n_ff, 1, &L->w_gate)) ||
            (s = blk(&b, nm, il, nm->w_up, E, hp->n_ff, 1, &L->w_up)) ||
            (s = blk(&b, nm, il, nm->w_down, hp->n_ff, E, 1, &L->w_down)) ||
            (s = blk(&b, nm, il, nm->post_ffn_norm, E, 1, post, &L->post_ffn_norm)))
            goto fail;
        if (o->swa_layers)
            L->is_swa = hp->sliding_window > 0 && o->swa_layers[il];
        else
            L->is_swa = hp->sliding_window > 0 && hp->swa_period > 0 &&
                        (il + 1) % hp->swa_period != 0;
    }
    if ((s = own_vectors(m, err)) || (s = rope_factors(m, err))) goto fail;
    return LM_OK;
fail:
    lm_arch_free(m);
    return s;
}

void lm_arch_free(lm_arch_model *m) {
    if (!m) return;
    lm_free(m->layers);
    lm_free(m->owned);
    lm_free(m->rope_freq_factors);
    memset(m, 0, sizeof *m);
}
