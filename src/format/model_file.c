/*
 * model_file.c — lm_model_file: any model file lemma reads, opened and fully validated by its
 * format's reader, and described for `lemma inspect` (text or JSON).
 *
 * PATH may be a .gguf file (by its magic, not its name), a single .safetensors file, or a
 * Hugging Face model directory. The description knows no architecture: it reports what the
 * file says (GGUF keys under "<arch>." as hyperparameters, config.json's scalar entries), a
 * tokenizer summary, and the tensor table with per-dtype totals.
 */
#include "core/alloc.h"
#include "core/file.h"
#include "core/model_path.h"
#include "core/status.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "format/safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

typedef enum { MF_GGUF, MF_SAFETENSORS, MF_HF } mf_kind;

struct lm_model_file {
    mf_kind kind;
    char *path;
    lm_gguf *gguf;
    lm_st *st;
    lm_hf *hf;
};

static int has_gguf_magic(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char m[4] = {0};
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(m, "GGUF", 4) == 0;
}

lm_status lm_model_file_open(const char *path, lm_model_file **out, char *err, size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    lm_status s = LM_OK;
    *out = NULL;
    lm_model_file *f = lm_calloc(1, sizeof *f);
    char *resolved = NULL; /* a short name of an installed model ("smollm2") */
    if ((s = lm_model_path_resolve(path, &resolved, &e)) != LM_OK) goto fail;
    if (resolved) path = resolved;
    if (!f || !(f->path = lm_strdup(path))) {
        lm_free(resolved);
        s = lm_err_set(&e, LM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    lm_free(resolved);
    path = f->path;
    if (lm_path_is_dir(path)) {
        f->kind = MF_HF;
        s = lm_hf_open(path, &f->hf, &e);
    } else if (has_gguf_magic(path)) {
        f->kind = MF_GGUF;
        s = lm_gguf_open_file(path, NULL, &f->gguf, &e);
    } else {
        size_t n = strlen(path);
        if (n >= 12 && strcmp(path + n - 12, ".safetensors") == 0) {
            f->kind = MF_SAFETENSORS;
            s = lm_st_open_file(path, NULL, &f->st, &e);
        } else {
            FILE *probe = fopen(path, "rb");
            if (!probe) s = lm_err_set(&e, LM_ERR_IO, "%s: cannot open", path);
            else {
                fclose(probe);
                s = lm_err_set(&e, LM_ERR_FORMAT,
                               "%s: not a GGUF file (bad magic), a .safetensors file or a model "
                               "directory", path);
            }
        }
    }
    if (s != LM_OK) goto fail;
    *out = f;
    return LM_OK;
fail:
    lm_model_file_close(f);
    lm_err_copy(&e, err, err_len);
    return s;
}

void lm_model_file_close(lm_model_file *f) {
    if (!f) return;
    lm_gguf_close(f->gguf);
    lm_st_close(f->st);
    lm_hf_close(f->hf);
    lm_free(f->path);
    lm_free(f);
}

/* ---- the tensor table, whatever the format ---- */

static uint64_t n_tensors(const lm_model_file *f) {
    switch (f->kind) {
    case MF_GGUF: return lm_gguf_n_tensors(f->gguf);
    case MF_SAFETENSORS: return lm_st_n_tensors(f->st);
    case MF_HF: return lm_hf_n_tensors(f->hf);
    }
    return 0;
}

static const lm_tensor_info *tensor(const lm_model_file *f, uint64_t i) {
    switch (f->kind) {
    case MF_GGUF: return lm_gguf_tensor(f->gguf, i);
    case MF_SAFETENSORS: return lm_st_tensor(f->st, (uint32_t)i);
    case MF_HF: return lm_hf_tensor(f->hf, (uint32_t)i);
    }
    return NULL;
}

/* Shape as the format writes it: GGUF innermost first, safetensors/PyTorch outermost first. */
static json_t *shape_json(const lm_model_file *f, const lm_tensor_info *t) {
    json_t *a = json_array();
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint32_t k = f->kind == MF_GGUF ? d : t->n_dims - 1 - d;
        json_array_append_new(a, json_integer((json_int_t)t->ne[k]));
    }
    return a;
}

/* ---- building the description as JSON (the text form is rendered from it) ---- */

static json_t *gguf_value(const lm_gguf *g, int64_t i, size_t max_items) {
    if (i < 0) return NULL;
    char *txt = lm_gguf_value_to_json(g, (uint64_t)i, max_items);
    if (!txt) return NULL;
    json_t *v = json_loads(txt, JSON_DECODE_ANY, NULL);
    lm_free(txt);
    return v;
}

static void describe_gguf(const lm_model_file *f, json_t *root) {
    const lm_gguf *g = f->gguf;
    char fmt[32];
    snprintf(fmt, sizeof fmt, "gguf v%u", lm_gguf_version(g));
    json_object_set_new(root, "format", json_string(fmt));
    const char *arch = NULL;
    size_t arch_len = 0;
    char archbuf[128] = "";
    if (lm_gguf_get_str(g, "general.architecture", &arch, &arch_len, NULL) == LM_OK &&
        arch_len < sizeof archbuf) {
        memcpy(archbuf, arch, arch_len);
        archbuf[arch_len] = '\0';
    }
    json_object_set_new(root, "architecture", json_string(archbuf[0] ? archbuf : "unknown"));
    json_t *name = gguf_value(g, lm_gguf_find(g, "general.name"), 0);
    if (name) json_object_set_new(root, "name", name);
    json_object_set_new(root, "alignment", json_integer(lm_gguf_alignment(g)));

    json_t *hp = json_object(), *tok = json_object(), *meta = json_object();
    size_t alen = strlen(archbuf);
    for (uint64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        const char *key = lm_gguf_key(g, i);
        json_t *v = NULL;
        if (alen && strncmp(key, archbuf, alen) == 0 && key[alen] == '.') {
            if ((v = gguf_value(g, (int64_t)i, 16))) json_object_set_new(hp, key + alen + 1, v);
        } else if (strncmp(key, "tokenizer.", 10) == 0) {
            if (lm_gguf_arr_type(g, i) != LM_GGUF_TYPE_INVALID) {
                char k2[256];
                snprintf(k2, sizeof k2, "%s (count)", key);
                json_object_set_new(tok, k2, json_integer((json_int_t)lm_gguf_arr_n(g, i)));
            } else if (strcmp(key, "tokenizer.chat_template") == 0) {
                const char *p;
                size_t n;
                if (lm_gguf_get_str(g, key, &p, &n, NULL) == LM_OK)
                    json_object_set_new(tok, "chat_template (bytes)", json_integer((json_int_t)n));
            } else if ((v = gguf_value(g, (int64_t)i, 8))) {
                json_object_set_new(tok, key, v);
            }
        } else if ((v = gguf_value(g, (int64_t)i, 8))) {
            json_object_set_new(meta, key, v);
        }
    }
    json_object_set_new(root, "hyperparameters", hp);
    json_object_set_new(root, "tokenizer", tok);
    json_object_set_new(root, "metadata", meta);
}

static void describe_hf(const lm_model_file *f, json_t *root) {
    const json_t *cfg = lm_hf_config(f->hf);
    char fmt[64];
    snprintf(fmt, sizeof fmt, "hf-directory (%u safetensors file%s)", lm_hf_n_files(f->hf),
             lm_hf_n_files(f->hf) == 1 ? "" : "s");
    json_object_set_new(root, "format", json_string(fmt));
    const char *arch = lm_hf_architecture(f->hf), *mt = lm_hf_model_type(f->hf);
    json_object_set_new(root, "architecture", json_string(arch ? arch : "unknown"));
    if (mt) json_object_set_new(root, "model_type", json_string(mt));
    json_t *hp = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cfg, key, v) {
        if (json_is_number(v) || json_is_boolean(v) || json_is_string(v) ||
            !strcmp(key, "rope_parameters") || !strcmp(key, "rope_scaling") ||
            !strcmp(key, "quantization") || !strcmp(key, "quantization_config") ||
            !strcmp(key, "layer_types"))
            json_object_set(hp, key, v);
    }
    json_object_set_new(root, "hyperparameters", hp);
    json_t *tok = json_object();
    const char *tp = lm_hf_tokenizer_path(f->hf), *tc = lm_hf_tokenizer_config_path(f->hf),
               *ct = lm_hf_chat_template_path(f->hf);
    json_object_set_new(tok, "tokenizer.json", tp ? json_string(tp) : json_null());
    json_object_set_new(tok, "tokenizer_config.json", tc ? json_string(tc) : json_null());
    json_object_set_new(tok, "chat_template.jinja", ct ? json_string(ct) : json_null());
    json_object_set_new(root, "tokenizer", tok);
}

static json_t *describe_json(const lm_model_file *f) {
    json_t *root = json_object();
    json_object_set_new(root, "path", json_string(f->path));
    if (f->kind == MF_GGUF) describe_gguf(f, root);
    else if (f->kind == MF_HF) describe_hf(f, root);
    else {
        json_object_set_new(root, "format", json_string("safetensors"));
        json_t *meta = json_object();
        for (uint32_t i = 0; i < lm_st_n_metadata(f->st); i++)
            json_object_set_new(meta, lm_st_metadata_key(f->st, i),
                                json_string(lm_st_metadata_value(f->st, i)));
        json_object_set_new(root, "metadata", meta);
    }
    json_t *tensors = json_array(), *by_type = json_object();
    uint64_t total_bytes = 0, total_elems = 0;
    for (uint64_t i = 0; i < n_tensors(f); i++) {
        const lm_tensor_info *t = tensor(f, i);
        json_t *row = json_object();
        json_object_set_new(row, "name", json_string(t->name));
        json_object_set_new(row, "dtype", json_string(lm_dtype_name(t->dtype)));
        json_object_set_new(row, "shape", shape_json(f, t));
        json_object_set_new(row, "bytes", json_integer((json_int_t)t->nbytes));
        json_array_append_new(tensors, row);
        total_bytes += t->nbytes;
        total_elems += t->n_elements;
        json_t *c = json_object_get(by_type, lm_dtype_name(t->dtype));
        if (!c) {
            c = json_pack("{s:I,s:I}", "tensors", (json_int_t)0, "bytes", (json_int_t)0);
            json_object_set_new(by_type, lm_dtype_name(t->dtype), c);
        }
        json_object_set_new(c, "tensors",
                            json_integer(json_integer_value(json_object_get(c, "tensors")) + 1));
        json_object_set_new(c, "bytes", json_integer(json_integer_value(json_object_get(c, "bytes")) +
                                                     (json_int_t)t->nbytes));
    }
    json_t *sum = json_object();
    json_object_set_new(sum, "tensors", json_integer((json_int_t)n_tensors(f)));
    json_object_set_new(sum, "elements", json_integer((json_int_t)total_elems));
    json_object_set_new(sum, "bytes", json_integer((json_int_t)total_bytes));
    json_object_set_new(sum, "by_dtype", by_type);
    json_object_set_new(root, "summary", sum);
    json_object_set_new(root, "tensors", tensors);
    return root;
}

/* ---- text rendering ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) LM_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->buf && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *nb = lm_realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

static void sb_value(sbuf *b, const json_t *v) {
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!s) return;
    if (strlen(s) > 160) sb_printf(b, "%.157s...", s);
    else sb_printf(b, "%s", s);
    free(s);
}

static void sb_section(sbuf *b, const json_t *root, const char *key, const char *title) {
    const json_t *o = json_object_get(root, key);
    if (!o || !json_object_size(o)) return;
    sb_printf(b, "%s:\n", title);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        sb_printf(b, "  %-44s ", k);
        sb_value(b, v);
        sb_printf(b, "\n");
    }
}

static char *render_text(const json_t *root) {
    sbuf b = {0};
    const char *scalars[] = {"path", "format", "architecture", "model_type", "name"};
    for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) {
        const json_t *v = json_object_get(root, scalars[i]);
        if (json_is_string(v)) sb_printf(&b, "%-13s %s\n", scalars[i], json_string_value(v));
    }
    sb_section(&b, root, "hyperparameters", "hyperparameters");
    sb_section(&b, root, "tokenizer", "tokenizer");
    sb_section(&b, root, "metadata", "metadata");
    const json_t *sum = json_object_get(root, "summary");
    sb_printf(&b, "tensors: %lld, %lld elements, %.2f MiB\n",
              (long long)json_integer_value(json_object_get(sum, "tensors")),
              (long long)json_integer_value(json_object_get(sum, "elements")),
              (double)json_integer_value(json_object_get(sum, "bytes")) / (1024.0 * 1024.0));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(sum, "by_dtype"), k, v) {
        sb_printf(&b, "  %-8s %5lld tensors %10.2f MiB\n", k,
                  (long long)json_integer_value(json_object_get(v, "tensors")),
                  (double)json_integer_value(json_object_get(v, "bytes")) / (1024.0 * 1024.0));
    }
    sb_printf(&b, "%-48s %-8s %-24s %12s\n", "name", "dtype", "shape", "bytes");
    size_t i;
    json_array_foreach(json_object_get(root, "tensors"), i, v) {
        char *shape = json_dumps(json_object_get(v, "shape"), JSON_COMPACT);
        sb_printf(&b, "%-48s %-8s %-24s %12lld\n", json_string_value(json_object_get(v, "name")),
                  json_string_value(json_object_get(v, "dtype")), shape ? shape : "?",
                  (long long)json_integer_value(json_object_get(v, "bytes")));
        free(shape);
    }
    if (b.oom) {
        lm_free(b.buf);
        return NULL;
    }
    return b.buf;
}

char *lm_model_file_describe(const lm_model_file *f, int json) {
    if (!f) return NULL;
    json_t *root = describe_json(f);
    if (!root) return NULL;
    char *out = NULL;
    if (json) {
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        if (s) {
            size_t n = strlen(s);
            out = lm_malloc(n + 2);
            if (out) {
                memcpy(out, s, n);
                out[n] = '\n';
                out[n + 1] = '\0';
            }
            free(s);
        }
    } else {
        out = render_text(root);
    }
    json_decref(root);
    return out;
}
