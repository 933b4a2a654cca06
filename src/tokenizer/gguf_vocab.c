/*
 * gguf_vocab.c — lm_tokenizer_from_gguf: tokenizer.ggml.* metadata -> lm_vocab_spec -> build.
 *
 * Keys read (GGUF names; types checked, lengths checked against the token count):
 *   tokenizer.ggml.model        string: "llama" (SPM), "gpt2" (byte-level BPE), "bert" (WPM),
 *                               "gemma4" (raw-UTF-8 BPE with the gemma4 pre-tokenizer)
 *   tokenizer.ggml.tokens       array of string, n >= 1
 *   tokenizer.ggml.scores       array of float32 (or int32), same length (optional)
 *   tokenizer.ggml.token_type   array of int32, same length, values 0..6 (optional)
 *   tokenizer.ggml.merges       array of string "a b" (required for BPE)
 *   tokenizer.ggml.pre          string, the pre-tokenizer name (BPE; default "default")
 *   tokenizer.ggml.{bos,eos,eot,eom,unknown,seperator,padding,mask}_token_id  integer; -1 or
 *                               an id < n_tokens (anything else is an error)
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_sep_token / add_space_prefix  bool
 *   general.name                string: "phi3"/"phi-3" turn on RSTRIP for special tokens
 * Model defaults (special ids, flags) are llama.cpp's; a default id that does not fit the
 * vocabulary is dropped (it was never in the file), an explicit one is an error.
 */
#include "core/alloc.h"
#include "format/gguf.h"
#include "tokenizer/tok_internal.h"

#include <ctype.h>
#include <string.h>

#define K_PREFIX "tokenizer.ggml."

static lm_status get_opt_bool(const lm_gguf *g, const char *key, int *v, lm_err *err) {
    if (lm_gguf_find(g, key) < 0) return LM_OK;
    return lm_gguf_get_bool(g, key, v, err);
}

static int ci_contains(const char *s, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && tolower((unsigned char)s[i + k]) == needle[k])
            k++;
        if (k == m) return 1;
    }
    return 0;
}

lm_status lm_tokenizer_from_gguf(const lm_gguf *g, lm_tokenizer **out, lm_err *err) {
    lm_status st = LM_OK;
    lm_vocab_spec spec;
    const char **toks = NULL, **merges = NULL;
    size_t *tlen = NULL, *mlen = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    uint8_t *attrs = NULL;
    char *pre = NULL;
    if (!out) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL output");
    *out = NULL;
    if (!g) return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: NULL gguf");

    const char *ms;
    size_t ml;
    if ((st = lm_gguf_get_str(g, K_PREFIX "model", &ms, &ml, err))) goto fail;
    int gemma4 = 0;
    lm_tok_model model;
    if (ml == 5 && memcmp(ms, "llama", 5) == 0) {
        model = LM_TOK_MODEL_SPM;
    } else if (ml == 4 && memcmp(ms, "gpt2", 4) == 0) {
        model = LM_TOK_MODEL_BPE;
    } else if (ml == 4 && memcmp(ms, "bert", 4) == 0) {
        model = LM_TOK_MODEL_WPM;
    } else if (ml == 6 && memcmp(ms, "gemma4", 6) == 0) {
        model = LM_TOK_MODEL_BPE;
        gemma4 = 1;
    } else {
        int known = (ml == 2 && memcmp(ms, "t5", 2) == 0) ||
                    (ml == 4 && memcmp(ms, "rwkv", 4) == 0) ||
                    (ml == 6 && memcmp(ms, "plamo2", 6) == 0);
        st = lm_err_set(err, LM_ERR_UNSUPPORTED, "tokenizer: tokenizer.ggml.model '%.*s' is %s",
                        (int)(ml > 64 ? 64 : ml), ms, known ? "not supported yet" : "unknown");
        goto fail;
    }
    lm_vocab_spec_init(&spec, model);
    if (gemma4)
        for (int k = 0; k < LM_TOK_SPECIAL_COUNT; k++)
            spec.special[k] = -1;

    /* tokens */
    int64_t ti = lm_gguf_find(g, K_PREFIX "tokens");
    if (ti < 0) {
        st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: missing tokenizer.ggml.tokens");
        goto fail;
    }
    if (lm_gguf_kv_type(g, (uint64_t)ti) != LM_GGUF_TYPE_ARRAY ||
        lm_gguf_arr_type(g, (uint64_t)ti) != LM_GGUF_TYPE_STRING) {
        st = lm_err_set(err, LM_ERR_FORMAT,
                        "tokenizer: tokenizer.ggml.tokens must be an array of string, is %s of %s",
                        lm_gguf_type_name(lm_gguf_kv_type(g, (uint64_t)ti)),
                        lm_gguf_type_name(lm_gguf_arr_type(g, (uint64_t)ti)));
        goto fail;
    }
    uint64_t n = lm_gguf_arr_n(g, (uint64_t)ti);
    if (n == 0) {
        st = lm_err_set(err, LM_ERR_FORMAT,
                        "tokenizer: empty vocabulary (tokenizer.ggml.tokens "
                        "has 0 entries)");
        goto fail;
    }
    if (n > (uint64_t)INT32_MAX - 1) {
        st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: tokenizer.ggml.tokens has %llu entries",
                        (unsigned long long)n);
        goto fail;
    }
    toks = lm_calloc((size_t)n, sizeof *toks);
    tlen = lm_calloc((size_t)n, sizeof *tlen);
    if (!toks || !tlen) goto nomem;
    for (uint64_t i = 0; i < n; i++)
        if ((st = lm_gguf_arr_str(g, (uint64_t)ti, i, &toks[i], &tlen[i]))) goto fail;
    spec.n_tokens = (size_t)n;
    spec.tokens = toks;
    spec.token_lens = tlen;

    /* scores */
    int64_t si = lm_gguf_find(g, K_PREFIX "scores");
    if (si >= 0) {
        lm_gguf_type et = lm_gguf_arr_type(g, (uint64_t)si);
        const void *d;
        uint64_t sn;
        if (et != LM_GGUF_TYPE_INT32) et = LM_GGUF_TYPE_FLOAT32;
        if ((st = lm_gguf_get_arr(g, K_PREFIX "scores", et, &d, &sn, err))) goto fail;
        if (sn != n) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "tokenizer: tokenizer.ggml.scores has %llu entries, tokens %llu",
                            (unsigned long long)sn, (unsigned long long)n);
            goto fail;
        }
        scores = lm_malloc((size_t)n * sizeof *scores);
        if (!scores) goto nomem;
        for (uint64_t i = 0; i < n; i++)
            scores[i] =
                et == LM_GGUF_TYPE_INT32 ? (float)lm_gguf_load_i32(d, i) : lm_gguf_load_f32(d, i);
        spec.scores = scores;
    }

    /* token types */
    if (lm_gguf_find(g, K_PREFIX "token_type") >= 0) {
        const void *d;
        uint64_t tn;
        if ((st = lm_gguf_get_arr(g, K_PREFIX "token_type", LM_GGUF_TYPE_INT32, &d, &tn, err)))
            goto fail;
        if (tn != n) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "tokenizer: tokenizer.ggml.token_type has %llu entries, tokens %llu",
                            (unsigned long long)tn, (unsigned long long)n);
            goto fail;
        }
        types = lm_malloc((size_t)n * sizeof *types);
        if (!types) goto nomem;
        for (uint64_t i = 0; i < n; i++)
            types[i] = lm_gguf_load_i32(d, i);
        spec.types = types;
    }

    /* merges */
    if (model == LM_TOK_MODEL_BPE) {
        int64_t mi = lm_gguf_find(g, K_PREFIX "merges");
        if (mi < 0) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "tokenizer: BPE vocabulary without "
                            "tokenizer.ggml.merges");
            goto fail;
        }
        if (lm_gguf_arr_type(g, (uint64_t)mi) != LM_GGUF_TYPE_STRING) {
            st = lm_err_set(err, LM_ERR_FORMAT,
                            "tokenizer: tokenizer.ggml.merges must be an array of string, is %s",
                            lm_gguf_type_name(lm_gguf_kv_type(g, (uint64_t)mi)));
            goto fail;
        }
        uint64_t mn = lm_gguf_arr_n(g, (uint64_t)mi);
        if (mn > (uint64_t)INT32_MAX) {
            st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: %llu merges", (unsigned long long)mn);
            goto fail;
        }
        if (mn) {
            merges = lm_calloc((size_t)mn, sizeof *merges);
            mlen = lm_calloc((size_t)mn, sizeof *mlen);
            if (!merges || !mlen) goto nomem;
            for (uint64_t i = 0; i < mn; i++)
                if ((st = lm_gguf_arr_str(g, (uint64_t)mi, i, &merges[i], &mlen[i]))) goto fail;
        }
        spec.n_merges = (size_t)mn;
        spec.merges = merges;
        spec.merge_lens = mlen;

        const char *ps = "default";
        size_t pl = 7;
        if (gemma4) {
            ps = "gemma4", pl = 6;
        } else if (lm_gguf_find(g, K_PREFIX "pre") >= 0) {
            if ((st = lm_gguf_get_str(g, K_PREFIX "pre", &ps, &pl, err))) goto fail;
        }
        pre = lm_strndup(ps, pl);
        if (!pre) goto nomem;
        if (strlen(pre) != pl) {
            st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: tokenizer.ggml.pre contains a NUL");
            goto fail;
        }
        if ((st = lm_vocab_spec_set_pre(&spec, pre, err))) goto fail;
    }

    if ((st = get_opt_bool(g, K_PREFIX "add_space_prefix", &spec.add_space_prefix, err))) goto fail;

    /* special ids: defaults that do not fit are dropped, explicit ones must fit */
    static const char *keys[LM_TOK_SPECIAL_COUNT] = {
        K_PREFIX "bos_token_id",     K_PREFIX "eos_token_id",     K_PREFIX "eot_token_id",
        K_PREFIX "eom_token_id",     K_PREFIX "unknown_token_id", K_PREFIX "seperator_token_id",
        K_PREFIX "padding_token_id", K_PREFIX "mask_token_id"};
    for (int k = 0; k < LM_TOK_SPECIAL_COUNT; k++) {
        if (spec.special[k] >= 0 && (uint64_t)spec.special[k] >= n) spec.special[k] = -1;
        if (lm_gguf_find(g, keys[k]) < 0) continue;
        int64_t v;
        if ((st = lm_gguf_get_i64(g, keys[k], &v, err))) goto fail;
        if (v < -1 || (v >= 0 && (uint64_t)v >= n)) {
            st = lm_err_set(err, LM_ERR_FORMAT, "tokenizer: %s = %lld out of range [0, %llu)",
                            keys[k], (long long)v, (unsigned long long)n);
            goto fail;
        }
        spec.special[k] = (int32_t)v;
    }
    if ((st = get_opt_bool(g, K_PREFIX "add_bos_token", &spec.add_bos, err))) goto fail;
    if ((st = get_opt_bool(g, K_PREFIX "add_eos_token", &spec.add_eos, err))) goto fail;
    if ((st = get_opt_bool(g, K_PREFIX "add_sep_token", &spec.add_sep, err))) goto fail;
    if (gemma4) spec.add_bos = 1; /* llama.cpp: Gemma 4 always starts with BOS */

    /* A token spelled like an end-of-turn marker but typed NORMAL is treated as CONTROL (as
     * llama.cpp does), so it is neither split out of plain text nor rendered by default. */
    if (types) {
        static const char *eot[] = {"<|eot_id|>",    "<|im_end|>",      "<|end|>", "<end_of_turn>",
                                    "<|endoftext|>", "<|end_of_text|>", "<EOT>",   "<|eom_id|>"};
        for (uint64_t i = 0; i < n; i++) {
            if (types[i] != LM_TOKEN_NORMAL) continue;
            for (size_t k = 0; k < sizeof eot / sizeof eot[0]; k++)
                if (tlen[i] == strlen(eot[k]) && memcmp(toks[i], eot[k], tlen[i]) == 0)
                    types[i] = LM_TOKEN_CONTROL;
        }
    }

    /* Phi-3 (llama.cpp keys it on general.name): special tokens eat whitespace to their right */
    const char *gn;
    size_t gl;
    if (lm_gguf_find(g, "general.name") >= 0 &&
        lm_gguf_get_str(g, "general.name", &gn, &gl, NULL) == LM_OK &&
        (ci_contains(gn, gl, "phi3") || ci_contains(gn, gl, "phi-3")) && types) {
        attrs = lm_calloc((size_t)n, 1);
        if (!attrs) goto nomem;
        for (uint64_t i = 0; i < n; i++) {
            int t = types[i];
            int sp = t == LM_TOKEN_CONTROL || t == LM_TOKEN_USER_DEFINED || t == LM_TOKEN_UNKNOWN;
            if ((tlen[i] == 4 && memcmp(toks[i], "</s>", 4) == 0)) sp = 1;
            if ((tlen[i] == 5 && memcmp(toks[i], "<unk>", 5) == 0) ||
                (tlen[i] == 3 && memcmp(toks[i], "<s>", 3) == 0) ||
                (tlen[i] == 13 && memcmp(toks[i], "<|endoftext|>", 13) == 0))
                sp = 0;
            if (sp) attrs[i] = LM_TOK_ATTR_RSTRIP;
        }
        spec.attrs = attrs;
    }

    st = lm_tokenizer_build(&spec, out, err);
    goto done;
nomem:
    st = lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory reading the GGUF vocabulary");
fail:
done:
    if (st) lm_err_prefix(err, "gguf vocabulary");
    lm_free(toks);
    lm_free(tlen);
    lm_free(merges);
    lm_free(mlen);
    lm_free(scores);
    lm_free(types);
    lm_free(attrs);
    lm_free(pre);
    return st;
}
