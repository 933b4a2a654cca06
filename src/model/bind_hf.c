/*
 * bind_hf.c — binds a Hugging Face model directory (format/hf.h: config.json + safetensors) to
 * an lm_arch_model (arch.h), through the same lm_arch_bind as GGUF files (bind.h).
 *
 * config.json (transformers' field names; both the transformers 5 "rope_parameters" layout and
 * the older "rope_theta" / "rope_scaling" / "rope_local_base_freq" one):
 *   model_type            llama, qwen2, qwen3, gemma3_text (or gemma3 with a "text_config")
 *   hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size
 *                         required
 *   num_key_value_heads   default num_attention_heads
 *   head_dim              default hidden_size / num_attention_heads
 *   rms_norm_eps          default 1e-6
 *   max_position_embeddings  default 2048
 *   tie_word_embeddings   absent: tied iff lm_head.weight is absent
 *   hidden_act / hidden_activation   silu (llama, qwen), gelu_pytorch_tanh (gemma3)
 *   rope                  rope_parameters (or rope_theta + rope_scaling): rope_type (or type)
 *                         "default"; "linear" (factor); "llama3" (factor, low_freq_factor,
 *                         high_freq_factor, original_max_position_embeddings); "yarn" (factor,
 *                         original_max_position_embeddings, beta_fast, beta_slow,
 *                         attention_factor, mscale, mscale_all_dim, truncate). As transformers
 *                         5 reads them: original_max_position_embeddings defaults to
 *                         max_position_embeddings and a top-level one takes precedence; a
 *                         yarn factor that is null or absent is max_position_embeddings /
 *                         original_max_position_embeddings; beta_fast / beta_slow 0 or
 *                         absent are 32 / 1. Other types (dynamic, longrope, ...) refused
 *                         naming the type. Formulas: arch.h "RoPE scaling".
 *   gemma3: sliding_window, layer_types (else sliding_window_pattern, default 6),
 *           query_pre_attn_scalar, attn/final_logit_softcapping, local RoPE theta
 * Tensors: model.embed_tokens, model.norm, lm_head, model.layers.N.{input_layernorm,
 * self_attn.{q,k,v,o}_proj (+ q/k/v bias: qwen2), self_attn.{q,k}_norm (qwen3, gemma3),
 * post_attention_layernorm, mlp.{gate,up,down}_proj, pre/post_feedforward_layernorm (gemma3)}.
 * Mapping to the roles of arch.h (the numerics are the same as the GGUF conversions'):
 *   - post_attention_layernorm is the pre-FFN norm (ffn_norm) for llama/qwen, but the
 *     post-attention norm for gemma3, whose pre-FFN norm is pre_feedforward_layernorm;
 *   - HF stores Q/K rows in rotate-half order for every family: NEOX RoPE throughout (GGUF
 *     llama files are permuted to adjacent pairs by the converter, HF ones are not);
 *   - Gemma norms hold w for x * (1 + w): norm_add_one (lm_arch_bind folds the +1 in).
 * Weights: F32/F16/BF16, or MLX affine packs (mlx-lm's quantized checkpoints: config
 * "quantization"; each quantized matrix is NAME (U32) + .scales + .biases, multiplied by
 * lm_matmul_mlx; embeddings dequantized per row). Other quantized checkpoints (a
 * quantization_config with a quant_method: GPTQ, AWQ, FP8, ...) are refused.
 * Every field is checked for presence, type and range; anything not modelled is refused with
 * LM_ERR_UNSUPPORTED naming the field.
 */
#include "model/arch.h"
#include "model/bind.h"

#include "format/hf.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct cfg {
    const json_t *o;    /* the (text) config object */
    const char *what;   /* "config.json" or "config.json text_config" */
    lm_err *err;
} cfg;

static const json_t *get(const cfg *c, const char *key) {
    const json_t *v = json_object_get(c->o, key);
    return json_is_null(v) ? NULL : v;
}

static lm_status missing(const cfg *c, const char *key) {
    return lm_err_set(c->err, LM_ERR_FORMAT, "%s: missing '%s'", c->what, key);
}

/* Integer field in [lo, hi]; absent (or null) keeps *out unless required. */
static lm_status get_int(const cfg *c, const char *key, int required, int64_t lo, int64_t hi,
                         int32_t *out) {
    const json_t *v = get(c, key);
    if (!v) return required ? missing(c, key) : LM_OK;
    if (!json_is_integer(v))
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: '%s' is not an integer", c->what, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: '%s' = %lld not in [%lld, %lld]",
                          c->what, key, (long long)x, (long long)lo, (long long)hi);
    *out = (int32_t)x;
    return LM_OK;
}

/* Number field (integer or real), finite, in [lo, hi]. */
static lm_status num_of(const cfg *c, const json_t *v, const char *key, double lo, double hi,
                        float *out) {
    if (!json_is_number(v))
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: '%s' is not a number", c->what, key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: '%s' = %g not in [%g, %g]", c->what, key,
                          x, lo, hi);
    *out = (float)x;
    return LM_OK;
}

static lm_status get_num(const cfg *c, const char *key, int required, double lo, double hi,
                         float *out) {
    const json_t *v = get(c, key);
    if (!v) return required ? missing(c, key) : LM_OK;
    return num_of(c, v, key, lo, hi, out);
}

/* Boolean field: -1 when absent or null. */
static lm_status get_bool(const cfg *c, const char *key, int *out) {
    const json_t *v = get(c, key);
    *out = -1;
    if (!v) return LM_OK;
    if (!json_is_boolean(v))
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: '%s' is not a boolean", c->what, key);
    *out = json_is_true(v);
    return LM_OK;
}

/* String field: NULL when absent or null. */
static lm_status get_str(const cfg *c, const char *key, const char **out) {
    const json_t *v = get(c, key);
    *out = NULL;
    if (!v) return LM_OK;
    if (!json_is_string(v))
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: '%s' is not a string", c->what, key);
    *out = json_string_value(v);
    return LM_OK;
}

/* One RoPE description as written in config.json (0 / -1 = absent). */
typedef struct rope_cfg {
    lm_rope_scaling kind;
    float factor;                  /* linear, llama3, yarn */
    int32_t orig_ctx;              /* original_max_position_embeddings: llama3, yarn */
    float low_freq, high_freq;     /* llama3 */
    float beta_fast, beta_slow;    /* yarn */
    float attention_factor;        /* yarn */
    float mscale, mscale_all_dim;  /* yarn */
    int truncate;                  /* yarn; -1 absent */
} rope_cfg;

static void rope_cfg_init(rope_cfg *r) {
    memset(r, 0, sizeof *r);
    r->truncate = -1;
}

/* {"rope_type" | "type", "rope_theta", "partial_rotary_factor", and the scaling fields of the
 * type} (any absent: default RoPE). Fills *theta when given, and *r. */
static lm_status rope_of(const cfg *parent, const json_t *o, const char *name, float *theta,
                         rope_cfg *r) {
    rope_cfg_init(r);
    if (!json_is_object(o))
        return lm_err_set(parent->err, LM_ERR_FORMAT, "%s: '%s' is not an object",
                          parent->what, name);
    char what[96];
    snprintf(what, sizeof what, "%s %s", parent->what, name);
    cfg c = {o, what, parent->err};
    lm_status s;
    const char *ty = NULL;
    if ((s = get_str(&c, "rope_type", &ty))) return s;
    if (!ty && (s = get_str(&c, "type", &ty))) return s;
    if ((s = get_num(&c, "rope_theta", 0, 1.0000001, 1e12, theta))) return s;
    float prf = 1.0f;
    if ((s = get_num(&c, "partial_rotary_factor", 0, 0.0, 1.0, &prf))) return s;
    if (prf != 1.0f)
        return lm_err_set(c.err, LM_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g not supported",
                          what, (double)prf);
    if (!ty || !strcmp(ty, "default")) return LM_OK;
    if (!strcmp(ty, "linear")) {
        r->kind = LM_ROPE_SCALING_LINEAR;
        return get_num(&c, "factor", 1, 1.0, 1024.0, &r->factor);
    }
    if (!strcmp(ty, "llama3")) {
        r->kind = LM_ROPE_SCALING_LLAMA3;
        if ((s = get_num(&c, "factor", 1, 1.0, 1024.0, &r->factor)) ||
            (s = get_num(&c, "low_freq_factor", 1, 1e-6, 1e6, &r->low_freq)) ||
            (s = get_num(&c, "high_freq_factor", 1, 1e-6, 1e6, &r->high_freq)) ||
            (s = get_int(&c, "original_max_position_embeddings", 0, 1, INT32_MAX,
                         &r->orig_ctx)))
            return s;
        if (r->low_freq == r->high_freq)
            return lm_err_set(c.err, LM_ERR_FORMAT, "%s: 'low_freq_factor' equals "
                              "'high_freq_factor' (%g)", what, (double)r->low_freq);
        return LM_OK;
    }
    if (!strcmp(ty, "yarn")) {
        r->kind = LM_ROPE_SCALING_YARN;
        if ((s = get_num(&c, "factor", 0, 1.0, 1024.0, &r->factor)) ||
            (s = get_int(&c, "original_max_position_embeddings", 0, 1, INT32_MAX,
                         &r->orig_ctx)) ||
            (s = get_num(&c, "beta_fast", 0, 0.0, 1e6, &r->beta_fast)) ||
            (s = get_num(&c, "beta_slow", 0, 0.0, 1e6, &r->beta_slow)) ||
            (s = get_num(&c, "attention_factor", 0, 1e-6, 100.0, &r->attention_factor)) ||
            (s = get_num(&c, "mscale", 0, -1e6, 1e6, &r->mscale)) ||
            (s = get_num(&c, "mscale_all_dim", 0, -1e6, 1e6, &r->mscale_all_dim)) ||
            (s = get_bool(&c, "truncate", &r->truncate)))
            return s;
        return LM_OK;
    }
    return lm_err_set(c.err, LM_ERR_UNSUPPORTED, "%s: rope_type '%.32s' not supported "
                      "(default, linear, llama3, yarn)", what, ty);
}

/* 0.1 m ln(s) + 1, 1 for s <= 1 (transformers' get_mscale) */
static double yarn_get_mscale(double s, double m) {
    return s <= 1.0 ? 1.0 : 0.1 * m * log(s) + 1.0;
}

/* The scaling of the global layers into hp, as transformers 5 resolves it
 * (standardize_rope_params, _compute_{linear_scaling,llama3,yarn}_parameters): top_orig is a
 * top-level original_max_position_embeddings (0 = none), which takes precedence. */
static lm_status rope_resolve(const cfg *c, const rope_cfg *r, int32_t top_orig,
                              lm_hparams *hp) {
    hp->rope_scaling = r->kind;
    hp->rope_freq_scale = 1.0f;
    hp->rope_scale_factor = 1.0f;
    hp->rope_mscale = 1.0f;
    if (r->kind == LM_ROPE_SCALING_NONE) return LM_OK;
    if (r->kind == LM_ROPE_SCALING_LINEAR) {
        hp->rope_freq_scale = 1.0f / r->factor;
        return LM_OK;
    }
    hp->rope_orig_ctx = top_orig > 0      ? top_orig
                        : r->orig_ctx > 0 ? r->orig_ctx
                                          : hp->n_ctx_train;
    if (r->kind == LM_ROPE_SCALING_LLAMA3) {
        hp->rope_scale_factor = r->factor;
        hp->rope_llama3_low_freq = r->low_freq;
        hp->rope_llama3_high_freq = r->high_freq;
        return LM_OK;
    }
    /* yarn */
    double factor = r->factor;
    if (factor == 0.0) {
        factor = (double)hp->n_ctx_train / (double)hp->rope_orig_ctx;
        if (!(factor >= 1.0 && factor <= 1024.0))
            return lm_err_set(c->err, LM_ERR_FORMAT, "%s: yarn without 'factor', and "
                              "max_position_embeddings / original_max_position_embeddings = "
                              "%g is not in [1, 1024]", c->what, factor);
    }
    hp->rope_scale_factor = (float)factor;
    hp->rope_yarn_beta_fast = r->beta_fast != 0.0f ? r->beta_fast : 32.0f;
    hp->rope_yarn_beta_slow = r->beta_slow != 0.0f ? r->beta_slow : 1.0f;
    hp->rope_yarn_ext_factor = 1.0f;
    hp->rope_yarn_truncate = r->truncate != 0; /* absent (-1): true */
    if (r->attention_factor > 0.0f)
        hp->rope_mscale = r->attention_factor;
    else if (r->mscale != 0.0f && r->mscale_all_dim != 0.0f)
        hp->rope_mscale = (float)(yarn_get_mscale(factor, r->mscale) /
                                  yarn_get_mscale(factor, r->mscale_all_dim));
    else
        hp->rope_mscale = (float)yarn_get_mscale(factor, 1.0);
    return LM_OK;
}

/* RoPE of global layers (base and scaling) and, for gemma3, of sliding layers (base_swa;
 * they are never scaled). */
static lm_status read_rope(const cfg *c, lm_hparams *hp) {
    lm_status s;
    const int gemma = hp->arch == LM_ARCH_GEMMA3;
    rope_cfg global, local;
    rope_cfg_init(&global);
    rope_cfg_init(&local);
    hp->rope_base = 10000.0f;
    hp->rope_base_swa = 10000.0f;
    const json_t *rp = get(c, "rope_parameters");
    const int nested = rp && json_is_object(rp) && gemma &&
                       (json_object_get(rp, "full_attention") ||
                        json_object_get(rp, "sliding_attention"));
    if (nested) {
        const json_t *full = json_object_get(rp, "full_attention");
        const json_t *swa = json_object_get(rp, "sliding_attention");
        if (!full || !swa)
            return lm_err_set(c->err, LM_ERR_FORMAT, "%s: rope_parameters lacks %s", c->what,
                              full ? "sliding_attention" : "full_attention");
        if ((s = rope_of(c, full, "rope_parameters.full_attention", &hp->rope_base, &global)) ||
            (s = rope_of(c, swa, "rope_parameters.sliding_attention", &hp->rope_base_swa,
                         &local)))
            return s;
    } else if (rp) {
        if ((s = rope_of(c, rp, "rope_parameters", &hp->rope_base, &global))) return s;
        if (gemma && (s = get_num(c, "rope_local_base_freq", 0, 1.0000001, 1e12,
                                  &hp->rope_base_swa)))
            return s;
    } else {
        const json_t *sc = get(c, "rope_scaling");
        if ((s = get_num(c, "rope_theta", 0, 1.0000001, 1e12, &hp->rope_base))) return s;
        if (sc && (s = rope_of(c, sc, "rope_scaling", &hp->rope_base, &global))) return s;
        if (gemma && (s = get_num(c, "rope_local_base_freq", 0, 1.0000001, 1e12,
                                  &hp->rope_base_swa)))
            return s;
    }
    float prf = 1.0f;
    if ((s = get_num(c, "partial_rotary_factor", 0, 0.0, 1.0, &prf))) return s;
    if (prf != 1.0f)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g not supported",
                          c->what, (double)prf);
    if (local.kind != LM_ROPE_SCALING_NONE)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED,
                          "%s: scaled RoPE on sliding-window layers not supported", c->what);
    int32_t top_orig = 0; /* transformers gives a top-level one precedence (not when nested) */
    if (!nested && global.kind != LM_ROPE_SCALING_NONE &&
        (s = get_int(c, "original_max_position_embeddings", 0, 1, INT32_MAX, &top_orig)))
        return s;
    return rope_resolve(c, &global, top_orig, hp);
}

/* Which layers slide (gemma3): layer_types, else the sliding_window_pattern rule. */
static lm_status read_swa(const cfg *c, lm_hparams *hp, unsigned char *swa, int *have_list) {
    lm_status s;
    *have_list = 0;
    if ((s = get_int(c, "sliding_window", 1, 1, INT32_MAX, &hp->sliding_window))) return s;
    const json_t *lt = get(c, "layer_types");
    if (!lt) {
        hp->swa_period = 6;
        if ((s = get_int(c, "_sliding_window_pattern", 0, 1, LM_MAX_LAYERS, &hp->swa_period)) ||
            (s = get_int(c, "sliding_window_pattern", 0, 1, LM_MAX_LAYERS, &hp->swa_period)))
            return s;
        return LM_OK;
    }
    if (!json_is_array(lt) || json_array_size(lt) != (size_t)hp->n_layer)
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: 'layer_types' is not an array of %d "
                          "strings", c->what, hp->n_layer);
    for (int i = 0; i < hp->n_layer; i++) {
        const char *t = json_string_value(json_array_get(lt, (size_t)i));
        if (t && !strcmp(t, "sliding_attention"))
            swa[i] = 1;
        else if (t && !strcmp(t, "full_attention"))
            swa[i] = 0;
        else
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED, "%s: layer_types[%d] is not "
                              "\"sliding_attention\" or \"full_attention\"", c->what, i);
    }
    *have_list = 1;
    return LM_OK;
}

static lm_status read_hparams(const cfg *c, lm_hparams *hp, unsigned char *swa,
                              int *have_swa_list) {
    lm_status s;
    const int gemma = hp->arch == LM_ARCH_GEMMA3;
    hp->rope_style = LM_ROPE_NEOX; /* HF q/k rows are in rotate-half order for every family */
    hp->norm_eps = 1e-6f;
    hp->n_ctx_train = 2048;
    if ((s = get_int(c, "hidden_size", 1, 1, 65536, &hp->n_embd)) ||
        (s = get_int(c, "num_hidden_layers", 1, 1, LM_MAX_LAYERS, &hp->n_layer)) ||
        (s = get_int(c, "num_attention_heads", 1, 1, 1024, &hp->n_head)) ||
        (s = get_int(c, "intermediate_size", 1, 1, 1 << 20, &hp->n_ff)) ||
        (s = get_int(c, "vocab_size", 1, 1, INT32_MAX, &hp->n_vocab)))
        return s;
    hp->n_head_kv = hp->n_head;
    hp->head_dim = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    if ((s = get_int(c, "num_key_value_heads", 0, 1, 1024, &hp->n_head_kv)) ||
        (s = get_int(c, "head_dim", 0, 1, 1024, &hp->head_dim)) ||
        (s = get_int(c, "max_position_embeddings", 0, 1, INT32_MAX, &hp->n_ctx_train)) ||
        (s = get_num(c, "rms_norm_eps", 0, 1e-30, 0.5, &hp->norm_eps)) ||
        (s = get_num(c, "attn_logit_softcapping", 0, 0.0, 1e6, &hp->attn_softcap)) ||
        (s = get_num(c, "final_logit_softcapping", 0, 0.0, 1e6, &hp->final_softcap)))
        return s;
    if (hp->head_dim == 0)
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: missing 'head_dim' (hidden_size %d is not "
                          "a multiple of num_attention_heads %d)", c->what, hp->n_embd,
                          hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return lm_err_set(c->err, LM_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple "
                          "of num_key_value_heads %d", c->what, hp->n_head, hp->n_head_kv);
    hp->n_rot = hp->head_dim;

    /* activation */
    const char *act = NULL;
    const char *act_key = gemma ? "hidden_activation" : "hidden_act";
    if ((s = get_str(c, act_key, &act))) return s;
    if (!act && gemma) {
        act_key = "hidden_act";
        if ((s = get_str(c, act_key, &act))) return s;
    }
    const char *want = gemma ? "gelu_pytorch_tanh" : "silu";
    if (act && strcmp(act, want) != 0)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED, "%s: %s '%.32s' not supported (%s)",
                          c->what, act_key, act, want);

    /* biases: only Qwen2's Q/K/V biases are modelled */
    int ab, mb;
    if ((s = get_bool(c, "attention_bias", &ab)) || (s = get_bool(c, "mlp_bias", &mb))) return s;
    if (ab == 1 && hp->arch != LM_ARCH_QWEN2)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED, "%s: attention_bias true not supported",
                          c->what);
    if (mb == 1)
        return lm_err_set(c->err, LM_ERR_UNSUPPORTED, "%s: mlp_bias true not supported",
                          c->what);

    if ((s = read_rope(c, hp))) return s;

    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    if (gemma) {
        float qs = (float)hp->head_dim;
        if ((s = get_num(c, "query_pre_attn_scalar", 0, 1e-6, 1e9, &qs))) return s;
        hp->attn_scale = 1.0f / sqrtf(qs);
        hp->embd_scale = sqrtf((float)hp->n_embd);
        hp->norm_add_one = 1;
        if ((s = read_swa(c, hp, swa, have_swa_list))) return s;
    } else {
        int usw;
        if ((s = get_bool(c, "use_sliding_window", &usw))) return s;
        if (usw == 1)
            return lm_err_set(c->err, LM_ERR_UNSUPPORTED, "%s: use_sliding_window true not "
                              "supported", c->what);
    }
    return LM_OK;
}

/* Tensor names of one HF checkpoint; buffers hold the prefixed names. */
typedef struct hf_names {
    lm_tensor_names nm;
    char tok_embd[96], out_norm[96], output[96], layer_prefix[96];
} hf_names;

static void make_names(hf_names *n, const char *base, const char *head, int gemma) {
    snprintf(n->tok_embd, sizeof n->tok_embd, "%sembed_tokens.weight", base);
    snprintf(n->out_norm, sizeof n->out_norm, "%snorm.weight", base);
    snprintf(n->output, sizeof n->output, "%s", head);
    snprintf(n->layer_prefix, sizeof n->layer_prefix, "%slayers.", base);
    lm_tensor_names *nm = &n->nm;
    memset(nm, 0, sizeof *nm);
    nm->tok_embd = n->tok_embd;
    nm->out_norm = n->out_norm;
    nm->output = n->output;
    nm->layer_prefix = n->layer_prefix;
    nm->attn_norm = "input_layernorm.weight";
    nm->wq = "self_attn.q_proj.weight";
    nm->wk = "self_attn.k_proj.weight";
    nm->wv = "self_attn.v_proj.weight";
    nm->wo = "self_attn.o_proj.weight";
    nm->bq = "self_attn.q_proj.bias";
    nm->bk = "self_attn.k_proj.bias";
    nm->bv = "self_attn.v_proj.bias";
    nm->q_norm = "self_attn.q_norm.weight";
    nm->k_norm = "self_attn.k_norm.weight";
    nm->w_gate = "mlp.gate_proj.weight";
    nm->w_up = "mlp.up_proj.weight";
    nm->w_down = "mlp.down_proj.weight";
    if (gemma) {
        nm->post_attn_norm = "post_attention_layernorm.weight";
        nm->ffn_norm = "pre_feedforward_layernorm.weight";
        nm->post_ffn_norm = "post_feedforward_layernorm.weight";
    } else {
        nm->ffn_norm = "post_attention_layernorm.weight";
    }
}

static const lm_tensor_info *hf_find(const void *ctx, const char *name) {
    return lm_hf_find((const lm_hf *)ctx, name);
}

/* A matrix stored as an MLX affine pack (NAME U32 + .scales + .biases; format/hf.h). */
static lm_status hf_pack(const void *ctx, const char *name, lm_weight *w, lm_err *err) {
    lm_mlx_pack p;
    lm_status s = lm_hf_mlx_pack((const lm_hf *)ctx, name, &p, err);
    if (s) return s;
    if (p.weight->n_dims != 2 || p.rows > INT64_MAX || p.cols > INT64_MAX || !p.weight->data ||
        !p.scales->data || !p.biases->data)
        return lm_err_set(err, LM_ERR_FORMAT, "model: packed tensor '%s' is not a 2-D matrix",
                          name);
    memset(w, 0, sizeof *w);
    w->dtype = p.dtype;
    w->data = p.weight->data;
    w->rows = (int64_t)p.rows;
    w->cols = (int64_t)p.cols;
    w->scales = p.scales->data;
    w->biases = p.biases->data;
    w->scale_dtype = p.scales->dtype;
    w->group_size = p.group_size;
    return LM_OK;
}

lm_status lm_arch_from_hf(const lm_hf *hf, lm_arch_model *m, char *arch_name,
                          size_t arch_name_len, lm_err *err) {
    memset(m, 0, sizeof *m);
    if (arch_name && arch_name_len) arch_name[0] = '\0';
    const json_t *root = lm_hf_config(hf);
    if (!json_is_object(root))
        return lm_err_set(err, LM_ERR_FORMAT, "config.json: top level is not an object");
    cfg c = {root, "config.json", err};
    lm_status s;
    /* MLX affine packs ("quantization", or a "quantization_config" without quant_method) are
     * bound by hf_pack; other quantized checkpoints are not modelled */
    const json_t *qc = get(&c, "quantization_config");
    if (!get(&c, "quantization") && qc && json_object_get(qc, "quant_method")) {
        const char *qm = json_string_value(json_object_get(qc, "quant_method"));
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "config.json: quantization_config.quant_method"
                          " '%.32s' not supported (only MLX affine packs)", qm ? qm : "?");
    }
    const char *mt = NULL;
    if ((s = get_str(&c, "model_type", &mt))) return s;
    if (!mt) return missing(&c, "model_type");

    const char *family = NULL;
    int nested = 0;
    if (!strcmp(mt, "llama") || !strcmp(mt, "qwen2") || !strcmp(mt, "qwen3")) {
        family = mt;
    } else if (!strcmp(mt, "gemma3_text")) {
        family = "gemma3";
    } else if (!strcmp(mt, "gemma3")) {
        const json_t *tc = get(&c, "text_config");
        if (!json_is_object(tc))
            return lm_err_set(err, LM_ERR_FORMAT, "config.json: model_type gemma3 without a "
                              "'text_config' object");
        c.o = tc;
        c.what = "config.json text_config";
        family = "gemma3";
        nested = 1;
    } else {
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "config.json: model_type '%.64s' not "
                          "supported (llama, qwen2, qwen3, gemma3_text)", mt);
    }
    lm_hparams *hp = &m->hp;
    if ((s = lm_arch_defaults(family, strlen(family), hp, err))) return s;
    hp->swa_period = 0; /* set by read_swa for gemma3 */
    unsigned char swa[LM_MAX_LAYERS];
    memset(swa, 0, sizeof swa);
    int have_swa_list = 0;
    if ((s = read_hparams(&c, hp, swa, &have_swa_list))) return s;

    int tied = -1;
    if ((s = get_bool(&c, "tie_word_embeddings", &tied))) return s;
    if (tied < 0 && nested) {
        cfg top = {root, "config.json", err};
        if ((s = get_bool(&top, "tie_word_embeddings", &tied))) return s;
    }

    /* where the text model's tensors are */
    const char *base = "model.", *head = "lm_head.weight";
    if (nested) {
        static const char *bases[] = {"model.language_model.", "language_model.model."};
        static const char *heads[] = {"lm_head.weight", "language_model.lm_head.weight"};
        base = NULL;
        for (int i = 0; i < 2 && !base; i++) {
            char probe[96];
            snprintf(probe, sizeof probe, "%sembed_tokens.weight", bases[i]);
            if (lm_hf_find(hf, probe)) {
                base = bases[i];
                head = heads[i];
            }
        }
        if (!base)
            return lm_err_set(err, LM_ERR_FORMAT, "model: no language-model embed_tokens.weight "
                              "in the gemma3 checkpoint");
    }
    hf_names n;
    make_names(&n, base, head, hp->arch == LM_ARCH_GEMMA3);
    if (!hp->has_qkv_bias) n.nm.bq = n.nm.bk = n.nm.bv = NULL;
    if (!hp->has_qk_norm) n.nm.q_norm = n.nm.k_norm = NULL;

    lm_bind_opts o = {tied, 1, have_swa_list ? swa : NULL, hf_pack};
    if ((s = lm_arch_bind(m, hf_find, hf, &n.nm, &o, err))) return s;
    if (arch_name && arch_name_len) snprintf(arch_name, arch_name_len, "%s", family);
    return LM_OK;
}
