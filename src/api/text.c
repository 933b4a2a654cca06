/*
 * text.c — the public text API (lemma.h): vocabularies loaded from a GGUF file or a
 * Hugging Face directory, tokenize / detokenize, and chat templates rendered as transformers'
 * apply_chat_template does.
 *
 * Sources of a vocabulary:
 *   .gguf        tokenizer.ggml.* -> lm_tokenizer_from_gguf; tokenizer.chat_template (string).
 *   directory    tokenizer.json (+ tokenizer_config.json) -> lm_tokenizer_from_hf_json_ex (an
 *                NFC/NFKC normalizer is applied here to the text before encoding); the
 *                template from chat_template.jinja, else tokenizer_config.json "chat_template"
 *                (a string, or a list of {"name", "template"}: "default", and "tool_use" when
 *                tools are given, as transformers picks).
 * A loaded model builds its vocabulary from the file it already holds open
 * (lm_vocab_from_gguf / lm_vocab_from_hf_files, text_internal.h): one parse serves the model's
 * sessions and lm_model_vocab.
 * Template context (what transformers passes): messages, tools (null when none), documents
 * (null), add_generation_prompt, the special-token strings bos_token / eos_token / unk_token /
 * pad_token (from tokenizer_config.json, or the GGUF's special ids), enable_thinking only when
 * the caller sets it. Models without a template get a built-in one for their family.
 */
#include "lemma.h"

#include "api/text_internal.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"
#include "core/model_path.h"
#include "format/gguf.h"
#include "template/template.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_TEMPLATE_BYTES ((size_t)4 << 20)
#define MAX_MESSAGES_BYTES ((size_t)64 << 20)

enum { TOK_BOS, TOK_EOS, TOK_UNK, TOK_PAD, TOK_NAMES };
static const char *k_tok_keys[TOK_NAMES] = {"bos_token", "eos_token", "unk_token", "pad_token"};

struct lm_vocab {
    lm_tokenizer *tk;
    char *chat_template;        /* NULL = none */
    char *chat_template_tool;   /* tokenizer_config "tool_use" template, NULL = none */
    char *tok_names[TOK_NAMES]; /* special-token strings for templates, NULL = undefined */
    lm_hf_unicode_norm norm;    /* applied to the text before encoding (tokenizer.json NFC) */
};

/* ---- built-in templates ------------------------------------------------------------------ */

static const char k_tpl_chatml[] =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

static const char k_tpl_llama3[] =
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
    "message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

static const char k_tpl_gemma[] =
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set first_user_prefix = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'assistant' %}{%- set role = 'model' %}"
    "{%- else %}{%- set role = message['role'] %}{%- endif %}"
    "{{- '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + "
    "message['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}";

/* ---- helpers ------------------------------------------------------------------------------- */

static lm_status fail(lm_err *e, char *err, size_t err_len, lm_status st) {
    lm_err_copy(e, err, err_len);
    if (err && err_len && !err[0]) snprintf(err, err_len, "%s", lm_status_str(st));
    return st;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = lm_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

static int file_exists(const char *p) {
    return p && access(p, R_OK) == 0 && !lm_path_is_dir(p);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* A template string from JSON/GGUF bytes: no NUL inside, capped. */
static lm_status take_template(const char *s, size_t n, const char *what, char **out, lm_err *e) {
    if (n > MAX_TEMPLATE_BYTES)
        return lm_err_set(e, LM_ERR_FORMAT, "%s: chat template of %zu bytes (max %zu)", what, n,
                          MAX_TEMPLATE_BYTES);
    if (memchr(s, '\0', n))
        return lm_err_set(e, LM_ERR_FORMAT, "%s: chat template contains a NUL byte", what);
    *out = lm_strndup(s, n);
    if (!*out) return lm_err_set(e, LM_ERR_NOMEM, "out of memory");
    return LM_OK;
}

/* ---- loading ------------------------------------------------------------------------------- */

static lm_status fill_gguf(lm_vocab *v, const lm_gguf *g, lm_err *e) {
    lm_status st = lm_tokenizer_from_gguf(g, &v->tk, e);
    if (!st && lm_gguf_find(g, "tokenizer.chat_template") >= 0) {
        const char *s;
        size_t n;
        st = lm_gguf_get_str(g, "tokenizer.chat_template", &s, &n, e);
        if (!st) st = take_template(s, n, "tokenizer.chat_template", &v->chat_template, e);
    }
    if (!st) {
        /* the template's special-token strings are the texts of the GGUF's special ids */
        static const lm_tok_special roles[TOK_NAMES] = {LM_TOK_BOS, LM_TOK_EOS, LM_TOK_UNK,
                                                        LM_TOK_PAD};
        for (int i = 0; i < TOK_NAMES && !st; i++) {
            const char *t;
            size_t n;
            int32_t id = lm_tokenizer_special(v->tk, roles[i]);
            if (id < 0 || !lm_tokenizer_token_text(v->tk, id, &t, &n)) continue;
            v->tok_names[i] = lm_strndup(t, n);
            if (!v->tok_names[i]) st = lm_err_set(e, LM_ERR_NOMEM, "out of memory");
        }
    }
    return st;
}

static lm_status load_gguf(lm_vocab *v, const char *path, lm_err *e) {
    lm_gguf *g = NULL;
    lm_status st = lm_gguf_open_file(path, NULL, &g, e);
    if (st) return st;
    st = fill_gguf(v, g, e);
    lm_gguf_close(g);
    return st;
}

/* tokenizer_config.json: chat_template and the special-token strings. */
static lm_status read_config(lm_vocab *v, const char *cfg_path, lm_err *e) {
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    lm_status st = lm_file_read_all(cfg_path, LM_HF_TOKCONFIG_MAX_BYTES, &text, &len, e);
    if (!st) st = lm_json_parse(text, len, 48, "tokenizer_config.json", &root, e);
    if (st) goto done;
    if (!json_is_object(root)) {
        st = lm_err_set(e, LM_ERR_FORMAT, "tokenizer_config.json: top level is not an object");
        goto done;
    }
    for (int i = 0; i < TOK_NAMES; i++) {
        const json_t *t = json_object_get(root, k_tok_keys[i]);
        if (json_is_object(t)) t = json_object_get(t, "content");
        if (!json_is_string(t)) continue;
        v->tok_names[i] = lm_strndup(json_string_value(t), json_string_length(t));
        if (!v->tok_names[i]) {
            st = lm_err_set(e, LM_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    const json_t *ct = json_object_get(root, "chat_template");
    if (v->chat_template || !ct || json_is_null(ct)) goto done; /* chat_template.jinja wins */
    if (json_is_string(ct)) {
        st = take_template(json_string_value(ct), json_string_length(ct), "tokenizer_config.json",
                           &v->chat_template, e);
    } else if (json_is_array(ct)) {
        size_t i;
        json_t *item;
        json_array_foreach(ct, i, item) {
            const json_t *name = json_object_get(item, "name");
            const json_t *tpl = json_object_get(item, "template");
            if (!json_is_string(name) || !json_is_string(tpl)) {
                st = lm_err_set(e, LM_ERR_FORMAT,
                                "tokenizer_config.json: chat_template[%zu] is not "
                                "{\"name\", \"template\"}",
                                i);
                goto done;
            }
            char **dst = NULL;
            if (!strcmp(json_string_value(name), "default"))
                dst = &v->chat_template;
            else if (!strcmp(json_string_value(name), "tool_use"))
                dst = &v->chat_template_tool;
            if (!dst || *dst) continue;
            st = take_template(json_string_value(tpl), json_string_length(tpl),
                               "tokenizer_config.json", dst, e);
            if (st) goto done;
        }
    } else {
        st = lm_err_set(e, LM_ERR_FORMAT,
                        "tokenizer_config.json: chat_template is neither a string nor a list");
    }
done:
    json_decref(root);
    lm_free(text);
    return st;
}

/* tj: tokenizer.json (required); tc, jj: tokenizer_config.json, chat_template.jinja or NULL. */
static lm_status fill_hf(lm_vocab *v, const char *tj, const char *tc, const char *jj, lm_err *e) {
    lm_hf_info info = {LM_HF_NORM_NONE};
    lm_status st = lm_tokenizer_from_hf_json_ex(tj, tc, &v->tk, &info, e);
    v->norm = info.norm;
    if (st) return st;
    if (jj) {
        char *text = NULL;
        size_t len = 0;
        st = lm_file_read_all(jj, MAX_TEMPLATE_BYTES, &text, &len, e);
        if (!st) st = take_template(text, len, "chat_template.jinja", &v->chat_template, e);
        lm_free(text);
        if (st) return st;
    }
    if (tc) st = read_config(v, tc, e);
    return st;
}

static lm_status load_hf_dir(lm_vocab *v, const char *dir, lm_err *e) {
    lm_status st = LM_OK;
    char *tj = path_join(dir, "tokenizer.json");
    char *tc = path_join(dir, "tokenizer_config.json");
    char *jj = path_join(dir, "chat_template.jinja");
    if (!tj || !tc || !jj) {
        st = lm_err_set(e, LM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!file_exists(tj)) {
        st = lm_err_set(e, LM_ERR_NOT_FOUND, "%s: no tokenizer.json in the model directory", dir);
        goto done;
    }
    st = fill_hf(v, tj, file_exists(tc) ? tc : NULL, file_exists(jj) ? jj : NULL, e);
done:
    lm_free(tj);
    lm_free(tc);
    lm_free(jj);
    return st;
}

/* ---- vocabularies of loaded models (text_internal.h) -------------------------------------- */

lm_status lm_vocab_from_gguf(const lm_gguf *g, lm_vocab **out, lm_err *err) {
    *out = NULL;
    lm_vocab *v = lm_calloc(1, sizeof *v);
    if (!v) return lm_err_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = fill_gguf(v, g, err);
    if (st) {
        lm_vocab_free(v);
        return st;
    }
    *out = v;
    return LM_OK;
}

lm_status lm_vocab_from_hf_files(const char *tokenizer_json, const char *tokenizer_config,
                                 const char *chat_template_jinja, lm_vocab **out, lm_err *err) {
    *out = NULL;
    lm_vocab *v = lm_calloc(1, sizeof *v);
    if (!v) return lm_err_set(err, LM_ERR_NOMEM, "out of memory");
    lm_status st = fill_hf(v, tokenizer_json, tokenizer_config, chat_template_jinja, err);
    if (st) {
        lm_vocab_free(v);
        return st;
    }
    *out = v;
    return LM_OK;
}

const lm_tokenizer *lm_vocab_tokenizer(const lm_vocab *v) {
    return v ? v->tk : NULL;
}

lm_status lm_vocab_load(const char *model_path, lm_vocab **out, char *err, size_t err_len) {
    lm_err e = {0};
    lm_status st;
    if (err && err_len) err[0] = '\0';
    if (!out || !model_path) {
        st = lm_err_set(&e, LM_ERR_INVALID_ARG, "lm_vocab_load: NULL argument");
        return fail(&e, err, err_len, st);
    }
    *out = NULL;
    /* a short name of an installed model, as lm_model_load takes (core/model_path.h) */
    char *resolved = NULL;
    if ((st = lm_model_path_resolve(model_path, &resolved, &e)))
        return fail(&e, err, err_len, st);
    if (resolved) model_path = resolved;
    lm_vocab *v = lm_calloc(1, sizeof *v);
    if (!v) {
        lm_free(resolved);
        st = lm_err_set(&e, LM_ERR_NOMEM, "out of memory");
        return fail(&e, err, err_len, st);
    }
    if (lm_path_is_dir(model_path)) {
        st = load_hf_dir(v, model_path, &e);
    } else if (ends_with(model_path, ".json")) {
        /* a tokenizer.json: the directory holding it */
        char *dir = lm_strdup(model_path);
        if (!dir) {
            st = lm_err_set(&e, LM_ERR_NOMEM, "out of memory");
        } else {
            char *slash = strrchr(dir, '/');
            if (slash)
                slash[1] = '\0';
            else
                strcpy(dir, ".");
            st = load_hf_dir(v, dir, &e);
            lm_free(dir);
        }
    } else {
        st = load_gguf(v, model_path, &e);
    }
    if (st) {
        if (!strstr(e.msg, model_path)) lm_err_prefix(&e, "%s", model_path);
        lm_free(resolved);
        lm_vocab_free(v);
        return fail(&e, err, err_len, st);
    }
    lm_free(resolved);
    *out = v;
    return LM_OK;
}

void lm_vocab_free(lm_vocab *v) {
    if (!v) return;
    lm_tokenizer_free(v->tk);
    lm_free(v->chat_template);
    lm_free(v->chat_template_tool);
    for (int i = 0; i < TOK_NAMES; i++)
        lm_free(v->tok_names[i]);
    lm_free(v);
}

/* ---- queries ----------------------------------------------------------------------------- */

size_t lm_vocab_n_tokens(const lm_vocab *v) {
    return v ? lm_tokenizer_n_vocab(v->tk) : 0;
}
int32_t lm_vocab_bos(const lm_vocab *v) {
    return v ? lm_tokenizer_special(v->tk, LM_TOK_BOS) : -1;
}
int32_t lm_vocab_eos(const lm_vocab *v) {
    return v ? lm_tokenizer_special(v->tk, LM_TOK_EOS) : -1;
}
int32_t lm_vocab_eot(const lm_vocab *v) {
    return v ? lm_tokenizer_special(v->tk, LM_TOK_EOT) : -1;
}
int lm_vocab_is_eog(const lm_vocab *v, int32_t id) {
    return v ? lm_tokenizer_is_eog(v->tk, id) : 0;
}

lm_status lm_vocab_token_text(const lm_vocab *v, int32_t id, const char **text, size_t *len) {
    if (!v || !text || !len || !lm_tokenizer_token_text(v->tk, id, text, len))
        return LM_ERR_INVALID_ARG;
    return LM_OK;
}

const char *lm_vocab_chat_template(const lm_vocab *v) {
    return v ? v->chat_template : NULL;
}

/* ---- tokenize / detokenize ----------------------------------------------------------------- */

lm_status lm_vocab_encode(const lm_vocab *v, const char *text, size_t len, int add_special,
                          int parse_special, int32_t **ids, size_t *n_ids, lm_err *e) {
    char *norm = NULL;
    lm_status st = LM_OK;
    if (v->norm != LM_HF_NORM_NONE) {
        /* the tokenizer.json's NFC/NFKC normalizer, which the core does not apply */
        st = lm_hf_normalize(v->norm, text ? text : "", len, &norm, &len, e);
        if (st) return st;
        text = norm;
    }
    st = lm_tokenizer_encode(v->tk, text ? text : "", len, add_special != 0, parse_special != 0,
                             ids, n_ids, e);
    lm_free(norm);
    return st;
}

lm_status lm_vocab_tokenize(const lm_vocab *v, const char *text, size_t len, int add_special,
                            int parse_special, int32_t **ids, size_t *n_ids, char *err,
                            size_t err_len) {
    lm_err e = {0};
    if (err && err_len) err[0] = '\0';
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!v || !ids || !n_ids || (!text && len))
        return fail(&e, err, err_len,
                    lm_err_set(&e, LM_ERR_INVALID_ARG, "lm_vocab_tokenize: NULL argument"));
    lm_status st = lm_vocab_encode(v, text, len, add_special, parse_special, ids, n_ids, &e);
    if (st) return fail(&e, err, err_len, st);
    return LM_OK;
}

void lm_free_tokens(int32_t *ids) {
    lm_free(ids);
}

lm_status lm_vocab_detokenize(const lm_vocab *v, const int32_t *ids, size_t n_ids,
                              int render_special, char **text, size_t *len, char *err,
                              size_t err_len) {
    lm_err e = {0};
    if (err && err_len) err[0] = '\0';
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!v || !text || (!ids && n_ids))
        return fail(&e, err, err_len,
                    lm_err_set(&e, LM_ERR_INVALID_ARG, "lm_vocab_detokenize: NULL argument"));
    size_t l = 0;
    lm_status st = lm_tokenizer_decode(v->tk, ids, n_ids,
                                       render_special ? LM_DETOK_RENDER_SPECIAL : 0u, text, &l, &e);
    if (st) return fail(&e, err, err_len, st);
    if (len) *len = l;
    return LM_OK;
}

/* ---- chat templates ------------------------------------------------------------------------ */

static const char *builtin_template(const lm_vocab *v) {
    if (lm_tokenizer_find(v->tk, "<|im_start|>", 12) >= 0) return k_tpl_chatml;
    if (lm_tokenizer_find(v->tk, "<|start_header_id|>", 19) >= 0) return k_tpl_llama3;
    if (lm_tokenizer_find(v->tk, "<start_of_turn>", 15) >= 0) return k_tpl_gemma;
    return NULL;
}

static lm_status parse_arg(const char *text, const char *what, json_t **out, lm_err *e) {
    size_t n = strlen(text);
    if (n > MAX_MESSAGES_BYTES)
        return lm_err_set(e, LM_ERR_INVALID_ARG, "%s: %zu bytes (max %zu)", what, n,
                          MAX_MESSAGES_BYTES);
    lm_status st = lm_json_parse(text, n, LM_JSON_DEFAULT_MAX_DEPTH, what, out, e);
    if (st) return st;
    if (!json_is_array(*out)) {
        json_decref(*out);
        *out = NULL;
        return lm_err_set(e, LM_ERR_INVALID_ARG, "%s: not a JSON array", what);
    }
    return LM_OK;
}

lm_status lm_vocab_apply_template(const lm_vocab *v, const char *messages_json,
                                  const char *tools_json, int add_generation_prompt,
                                  int enable_thinking, char **out, char *err, size_t err_len) {
    lm_err e = {0};
    lm_status st = LM_OK;
    json_t *ctx = NULL, *messages = NULL, *tools = NULL;
    lm_template *t = NULL;
    char *text = NULL;
    size_t len = 0;
    if (err && err_len) err[0] = '\0';
    if (out) *out = NULL;
    if (!v || !messages_json || !out)
        return fail(&e, err, err_len,
                    lm_err_set(&e, LM_ERR_INVALID_ARG, "lm_vocab_apply_template: NULL argument"));
    if ((st = parse_arg(messages_json, "messages", &messages, &e))) goto done;
    if (tools_json && (st = parse_arg(tools_json, "tools", &tools, &e))) goto done;
    const char *src = v->chat_template;
    if (tools && v->chat_template_tool) src = v->chat_template_tool;
    if (!src) src = builtin_template(v);
    if (!src) {
        st = lm_err_set(&e, LM_ERR_NOT_FOUND,
                        "the model has no chat template and no built-in one fits its "
                        "vocabulary");
        goto done;
    }
    ctx = json_object();
    if (!ctx) goto nomem;
    if (json_object_set_new(ctx, "messages", messages)) {
        messages = NULL;
        goto nomem;
    }
    messages = NULL;
    if (json_object_set_new(ctx, "tools", tools ? tools : json_null())) {
        tools = NULL;
        goto nomem;
    }
    tools = NULL;
    if (json_object_set_new(ctx, "documents", json_null()) ||
        json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt != 0)))
        goto nomem;
    if (enable_thinking >= 0 &&
        json_object_set_new(ctx, "enable_thinking", json_boolean(enable_thinking != 0)))
        goto nomem;
    for (int i = 0; i < TOK_NAMES; i++)
        if (v->tok_names[i] &&
            json_object_set_new(ctx, k_tok_keys[i], json_string(v->tok_names[i])))
            goto nomem;
    if ((st = lm_template_compile(src, strlen(src), &t, &e))) goto done;
    if ((st = lm_template_render(t, ctx, NULL, &text, &len, &e))) goto done;
    *out = text;
    text = NULL;
    goto done;
nomem:
    st = lm_err_set(&e, LM_ERR_NOMEM, "out of memory");
done:
    lm_template_free(t);
    lm_free(text);
    json_decref(ctx);
    json_decref(messages);
    json_decref(tools);
    if (st) return fail(&e, err, err_len, st);
    return LM_OK;
}
