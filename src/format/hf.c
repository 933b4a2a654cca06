/*
 * hf.c — Hugging Face model directories and MLX affine packs (see hf.h for the layout and the
 * invariants of an open handle, docs/formats/safetensors.md for the rules).
 *
 * Opening is all-or-nothing: config.json is parsed strictly, every shard is mapped and fully
 * validated by the safetensors reader, and weight_map is checked against the shards in both
 * directions before the merged table is handed out. Shard names come from a file, so they
 * are treated as hostile paths: only plain names inside the directory are accepted.
 */
#include "format/hf.h"

#include "core/alloc.h"
#include "core/checked.h"
#include "core/file.h"
#include "core/json.h"
#include "tensor/mlx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct lm_hf {
    json_t *config;
    uint32_t n_files;
    lm_st **files;      /* [n_files] */
    char **file_names;  /* [n_files], sorted */
    uint32_t n_tensors;
    lm_tensor_info *tensors;        /* [n_tensors], copies with file_index set */
    const lm_tensor_info **by_name; /* [n_tensors], sorted by name */
    char *tokenizer, *tokenizer_config, *chat_template; /* full paths or NULL */
};

static int is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* dir + "/" + name in a fresh lm_malloc'd string; NULL when out of memory. */
static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name), n;
    if (!lm_add_size(a, b, &n) || !lm_add_size(n, 2, &n)) return NULL;
    char *p = lm_malloc(n);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Reads and strictly parses dir/name, which must hold a JSON object. */
static lm_status read_json_object(const char *dir, const char *name, size_t cap, json_t **out,
                                  lm_err *err) {
    lm_status rc;
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    char *path = path_join(dir, name);
    if (!path) return lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
    if (!is_regular(path)) {
        rc = lm_err_set(err, LM_ERR_NOT_FOUND, "%s: missing (not a regular file)", name);
        goto done;
    }
    rc = lm_file_read_all(path, cap, &text, &len, err);
    if (rc != LM_OK) goto done;
    rc = lm_json_parse(text, len, LM_JSON_DEFAULT_MAX_DEPTH, name, out, err);
    if (rc != LM_OK) goto done;
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        rc = lm_err_set(err, LM_ERR_FORMAT, "%s: not a JSON object", name);
    }
done:
    if (rc != LM_OK) lm_err_prefix(err, "hf: %s", dir);
    lm_free(text);
    lm_free(path);
    return rc;
}

/* A shard name from weight_map must name a file directly inside the model directory. */
static lm_status check_shard_name(const char *s, lm_err *err) {
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return lm_err_set(err, LM_ERR_FORMAT, "weight_map: shard name '%.64s' has length %zu",
                          s, n);
    if (strchr(s, '/') || strchr(s, '\\') || strstr(s, ".."))
        return lm_err_set(err, LM_ERR_FORMAT,
                          "weight_map: shard name '%.200s' is not a plain file name", s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return lm_err_set(err, LM_ERR_FORMAT,
                              "weight_map: shard name '%.200s' has a control character", s);
    return LM_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_name(const void *a, const void *b) {
    const lm_tensor_info *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Shard number of name in the sorted file_names, or -1. */
static long shard_index(const lm_hf *hf, const char *name) {
    size_t lo = 0, hi = hf->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(hf->file_names[mid], name);
        if (c == 0) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* Opens dir/name as shard i. */
static lm_status open_shard(lm_hf *hf, const char *dir, uint32_t i, const char *name,
                            lm_err *err) {
    hf->file_names[i] = lm_strdup(name);
    char *path = path_join(dir, name);
    lm_status rc;
    if (!hf->file_names[i] || !path) {
        rc = lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
    } else if (!is_regular(path)) {
        rc = lm_err_set(err, LM_ERR_NOT_FOUND, "hf: shard '%s' missing (%s)", name, path);
    } else {
        rc = lm_st_open_file(path, NULL, &hf->files[i], err);
    }
    lm_free(path);
    return rc;
}

/* Reads the index, opens every shard and checks weight_map against them both ways. */
static lm_status open_sharded(lm_hf *hf, const char *dir, lm_err *err) {
    json_t *index = NULL;
    const char **names = NULL;
    lm_status rc = read_json_object(dir, "model.safetensors.index.json", LM_HF_MAX_INDEX_BYTES,
                                    &index, err);
    if (rc != LM_OK) return rc;
    json_t *wm = json_object_get(index, "weight_map");
    if (!json_is_object(wm)) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "hf: index: weight_map missing or not an object");
        goto done;
    }
    size_t n = json_object_size(wm);
    names = lm_calloc(n ? n : 1, sizeof *names);
    if (!names) {
        rc = lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
        goto done;
    }
    const char *key;
    json_t *v;
    size_t k = 0;
    json_object_foreach(wm, key, v) {
        if (!json_is_string(v)) {
            rc = lm_err_set(err, LM_ERR_FORMAT, "hf: index: weight_map['%.200s'] is not a string",
                            key);
            goto done;
        }
        rc = check_shard_name(json_string_value(v), err);
        if (rc != LM_OK) {
            lm_err_prefix(err, "hf: index: tensor '%.200s'", key);
            goto done;
        }
        names[k++] = json_string_value(v);
    }
    qsort(names, n, sizeof *names, cmp_str);
    size_t n_files = 0;
    for (k = 0; k < n; k++)
        if (k == 0 || strcmp(names[k], names[k - 1]) != 0) names[n_files++] = names[k];
    if (n_files > LM_HF_MAX_SHARDS) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "hf: index: %zu shards > limit %u", n_files,
                        LM_HF_MAX_SHARDS);
        goto done;
    }
    hf->files = lm_calloc(n_files ? n_files : 1, sizeof *hf->files);
    hf->file_names = lm_calloc(n_files ? n_files : 1, sizeof *hf->file_names);
    if (!hf->files || !hf->file_names) {
        rc = lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
        goto done;
    }
    hf->n_files = (uint32_t)n_files; /* set first: close frees what was opened */
    for (k = 0; k < n_files; k++) {
        rc = open_shard(hf, dir, (uint32_t)k, names[k], err);
        if (rc != LM_OK) goto done;
    }
    /* map -> shards: every mapped tensor is in its named shard */
    json_object_foreach(wm, key, v) {
        long s = shard_index(hf, json_string_value(v));
        if (s < 0 || !lm_st_find(hf->files[s], key)) {
            rc = lm_err_set(err, LM_ERR_FORMAT,
                            "hf: index: tensor '%.200s' is mapped to shard '%.200s' but is not "
                            "in it",
                            key, json_string_value(v));
            goto done;
        }
    }
    /* shards -> map: every shard tensor is mapped, to that shard */
    for (k = 0; k < n_files; k++) {
        for (uint32_t i = 0; i < lm_st_n_tensors(hf->files[k]); i++) {
            const char *tn = lm_st_tensor(hf->files[k], i)->name;
            json_t *m = json_object_get(wm, tn);
            if (!m) {
                rc = lm_err_set(err, LM_ERR_FORMAT,
                                "hf: index: tensor '%.200s' of shard '%.200s' is not in "
                                "weight_map",
                                tn, hf->file_names[k]);
                goto done;
            }
            if (strcmp(json_string_value(m), hf->file_names[k]) != 0) {
                rc = lm_err_set(err, LM_ERR_FORMAT,
                                "hf: duplicate tensor '%.200s' in shards '%.200s' and '%.200s'",
                                tn, json_string_value(m), hf->file_names[k]);
                goto done;
            }
        }
    }
done:
    lm_free(names);
    json_decref(index);
    return rc;
}

static lm_status open_single(lm_hf *hf, const char *dir, lm_err *err) {
    hf->files = lm_calloc(1, sizeof *hf->files);
    hf->file_names = lm_calloc(1, sizeof *hf->file_names);
    if (!hf->files || !hf->file_names) return lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
    hf->n_files = 1;
    return open_shard(hf, dir, 0, "model.safetensors", err);
}

/* Builds the merged table and its name index; rejects names present in two shards. */
static lm_status merge(lm_hf *hf, lm_err *err) {
    uint64_t total = 0;
    for (uint32_t k = 0; k < hf->n_files; k++) total += lm_st_n_tensors(hf->files[k]);
    if (total > UINT32_MAX)
        return lm_err_set(err, LM_ERR_FORMAT, "hf: %llu tensors in all shards",
                          (unsigned long long)total);
    hf->tensors = lm_calloc(total ? total : 1, sizeof *hf->tensors);
    hf->by_name = lm_calloc(total ? total : 1, sizeof *hf->by_name);
    if (!hf->tensors || !hf->by_name) return lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
    uint32_t n = 0;
    for (uint32_t k = 0; k < hf->n_files; k++)
        for (uint32_t i = 0; i < lm_st_n_tensors(hf->files[k]); i++) {
            hf->tensors[n] = *lm_st_tensor(hf->files[k], i);
            hf->tensors[n].file_index = k;
            hf->by_name[n] = &hf->tensors[n];
            n++;
        }
    hf->n_tensors = n;
    qsort(hf->by_name, n, sizeof *hf->by_name, cmp_name);
    for (uint32_t i = 1; i < n; i++)
        if (strcmp(hf->by_name[i - 1]->name, hf->by_name[i]->name) == 0)
            return lm_err_set(err, LM_ERR_FORMAT,
                              "hf: duplicate tensor '%.200s' in shards '%s' and '%s'",
                              hf->by_name[i]->name, hf->file_names[hf->by_name[i - 1]->file_index],
                              hf->file_names[hf->by_name[i]->file_index]);
    return LM_OK;
}

/* Records dir/name in *out when it is a regular file. */
static lm_status optional_file(const char *dir, const char *name, char **out, lm_err *err) {
    char *p = path_join(dir, name);
    if (!p) return lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
    if (is_regular(p)) *out = p;
    else lm_free(p);
    return LM_OK;
}

lm_status lm_hf_open(const char *dir, lm_hf **out, lm_err *err) {
    *out = NULL;
    lm_status rc;
    char *single = NULL, *index = NULL;
    lm_hf *hf = lm_calloc(1, sizeof *hf);
    if (!hf) return lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
    if (!lm_path_is_dir(dir)) {
        rc = lm_err_set(err, LM_ERR_NOT_FOUND, "hf: %s: not a directory", dir);
        goto done;
    }
    rc = read_json_object(dir, "config.json", LM_HF_MAX_CONFIG_BYTES, &hf->config, err);
    if (rc != LM_OK) goto done;

    single = path_join(dir, "model.safetensors");
    index = path_join(dir, "model.safetensors.index.json");
    if (!single || !index) {
        rc = lm_err_set(err, LM_ERR_NOMEM, "hf: out of memory");
        goto done;
    }
    if (is_regular(single)) rc = open_single(hf, dir, err);
    else if (is_regular(index)) rc = open_sharded(hf, dir, err);
    else rc = lm_err_set(err, LM_ERR_NOT_FOUND,
                         "hf: %s: neither model.safetensors nor model.safetensors.index.json",
                         dir);
    if (rc != LM_OK) goto done;
    rc = merge(hf, err);
    if (rc != LM_OK) goto done;
    rc = optional_file(dir, "tokenizer.json", &hf->tokenizer, err);
    if (rc == LM_OK) rc = optional_file(dir, "tokenizer_config.json", &hf->tokenizer_config, err);
    if (rc == LM_OK) rc = optional_file(dir, "chat_template.jinja", &hf->chat_template, err);
done:
    lm_free(single);
    lm_free(index);
    if (rc != LM_OK) {
        lm_hf_close(hf);
        return rc;
    }
    *out = hf;
    return LM_OK;
}

void lm_hf_close(lm_hf *hf) {
    if (!hf) return;
    for (uint32_t k = 0; k < hf->n_files; k++) {
        lm_st_close(hf->files[k]);
        lm_free(hf->file_names[k]);
    }
    lm_free(hf->files);
    lm_free(hf->file_names);
    lm_free(hf->tensors);
    lm_free(hf->by_name);
    lm_free(hf->tokenizer);
    lm_free(hf->tokenizer_config);
    lm_free(hf->chat_template);
    json_decref(hf->config);
    lm_free(hf);
}

uint32_t lm_hf_n_tensors(const lm_hf *hf) { return hf->n_tensors; }

const lm_tensor_info *lm_hf_tensor(const lm_hf *hf, uint32_t i) {
    return i < hf->n_tensors ? &hf->tensors[i] : NULL;
}

const lm_tensor_info *lm_hf_find(const lm_hf *hf, const char *name) {
    size_t lo = 0, hi = hf->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(hf->by_name[mid]->name, name);
        if (c == 0) return hf->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const json_t *lm_hf_config(const lm_hf *hf) { return hf->config; }

const char *lm_hf_model_type(const lm_hf *hf) {
    return json_string_value(json_object_get(hf->config, "model_type"));
}

const char *lm_hf_architecture(const lm_hf *hf) {
    return json_string_value(json_array_get(json_object_get(hf->config, "architectures"), 0));
}

const char *lm_hf_tokenizer_path(const lm_hf *hf) { return hf->tokenizer; }
const char *lm_hf_tokenizer_config_path(const lm_hf *hf) { return hf->tokenizer_config; }
const char *lm_hf_chat_template_path(const lm_hf *hf) { return hf->chat_template; }
uint32_t lm_hf_n_files(const lm_hf *hf) { return hf->n_files; }

const char *lm_hf_file_name(const lm_hf *hf, uint32_t i) {
    return i < hf->n_files ? hf->file_names[i] : NULL;
}

const lm_st *lm_hf_file(const lm_hf *hf, uint32_t i) {
    return i < hf->n_files ? hf->files[i] : NULL;
}

/* ---- MLX affine packs ---------------------------------------------------------------- */

/* Reads an integer parameter of a quantization object. */
static lm_status quant_int(const json_t *q, const char *field, const char *where, int *out,
                           lm_err *err) {
    const json_t *v = json_object_get(q, field);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1024)
        return lm_err_set(err, LM_ERR_FORMAT, "mlx: %s: %s missing or not a small integer",
                          where, field);
    *out = (int)json_integer_value(v);
    return LM_OK;
}

lm_status lm_hf_mlx_pack(const lm_hf *hf, const char *weight_name, lm_mlx_pack *out,
                         lm_err *err) {
    lm_status rc = LM_OK;
    char *mod = NULL, *sname = NULL, *bname = NULL;
    memset(out, 0, sizeof *out);
    const json_t *q = json_object_get(hf->config, "quantization");
    if (!q) {
        q = json_object_get(hf->config, "quantization_config");
        const json_t *qm = json_object_get(q, "quant_method");
        if (qm)
            return lm_err_set(err, LM_ERR_NOT_FOUND,
                              "mlx: quantization_config is quant_method '%.64s', not MLX",
                              json_is_string(qm) ? json_string_value(qm) : "?");
    }
    if (!q) return lm_err_set(err, LM_ERR_NOT_FOUND, "mlx: model is not quantized");
    if (!json_is_object(q))
        return lm_err_set(err, LM_ERR_FORMAT, "mlx: config quantization is not an object");
    const json_t *mode = json_object_get(q, "mode");
    if (mode && !(json_is_string(mode) && strcmp(json_string_value(mode), "affine") == 0))
        return lm_err_set(err, LM_ERR_UNSUPPORTED,
                          "mlx: quantization mode '%.64s' (only affine is supported)",
                          json_is_string(mode) ? json_string_value(mode) : "?");

    size_t wl = strlen(weight_name);
    if (wl < 7 || strcmp(weight_name + wl - 7, ".weight") != 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "mlx: '%.200s' does not end in .weight",
                          weight_name);
    const lm_tensor_info *w = lm_hf_find(hf, weight_name);
    if (!w) return lm_err_set(err, LM_ERR_NOT_FOUND, "mlx: no tensor '%.200s'", weight_name);
    mod = lm_strndup(weight_name, wl - 7);
    sname = lm_malloc(wl + 1);
    bname = lm_malloc(wl + 1);
    if (!mod || !sname || !bname) {
        rc = lm_err_set(err, LM_ERR_NOMEM, "mlx: out of memory");
        goto done;
    }
    snprintf(sname, wl + 1, "%s.scales", mod);
    snprintf(bname, wl + 1, "%s.biases", mod);

    /* per-module override: false = not quantized, an object = its own parameters */
    const json_t *params = q;
    const json_t *ov = json_object_get(q, mod);
    if (ov && json_is_false(ov)) {
        rc = lm_err_set(err, LM_ERR_NOT_FOUND, "mlx: '%.200s' is not quantized (override)",
                        weight_name);
        goto done;
    }
    if (ov && json_is_object(ov)) params = ov;
    else if (ov) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "mlx: quantization['%.200s'] is neither an object "
                        "nor false", mod);
        goto done;
    }
    const lm_tensor_info *s = lm_hf_find(hf, sname), *b = lm_hf_find(hf, bname);
    if (!s && w->dtype != LM_DTYPE_U32) {
        /* mlx-lm leaves modules it cannot quantize (shapes not divisible) in float */
        rc = lm_err_set(err, LM_ERR_NOT_FOUND, "mlx: '%.200s' is not quantized (%s, no scales)",
                        weight_name, lm_dtype_name(w->dtype));
        goto done;
    }
    int bits, gs;
    rc = quant_int(params, "bits", weight_name, &bits, err);
    if (rc == LM_OK) rc = quant_int(params, "group_size", weight_name, &gs, err);
    if (rc != LM_OK) goto done;
    if (!lm_mlx_bits_valid(bits)) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "mlx: '%.200s': bits %d not in {2,3,4,5,6,8}",
                        weight_name, bits);
        goto done;
    }
    if (!lm_mlx_group_size_valid(gs)) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "mlx: '%.200s': group_size %d not in {32,64,128}",
                        weight_name, gs);
        goto done;
    }
    if (w->dtype != LM_DTYPE_U32) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "mlx: '%.200s': dtype %s, packed weights are U32",
                        weight_name, lm_dtype_name(w->dtype));
        goto done;
    }
    if (w->n_dims < 2) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "mlx: '%.200s': rank %u, need >= 2", weight_name,
                        w->n_dims);
        goto done;
    }
    if (!s || !b) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "mlx: '%.200s': missing %s", weight_name,
                        !s ? sname : bname);
        goto done;
    }
    /* in = packed words * 32 / bits must be whole; ne[0] <= 2^61 keeps * 32 in range, and a
     * real tensor of that many U32 could not exist in a file anyway */
    uint64_t words = w->ne[0], in;
    if (words > (UINT64_MAX >> 6) || (words * 32) % (uint64_t)bits != 0) {
        rc = lm_err_set(err, LM_ERR_FORMAT,
                        "mlx: '%.200s': %llu packed words is not a whole number of %d-bit "
                        "quants",
                        weight_name, (unsigned long long)words, bits);
        goto done;
    }
    in = words * 32 / (uint64_t)bits;
    if (in == 0 || in % (uint64_t)gs != 0) {
        rc = lm_err_set(err, LM_ERR_FORMAT,
                        "mlx: '%.200s': %llu columns not a multiple of group_size %d",
                        weight_name, (unsigned long long)in, gs);
        goto done;
    }
    if (s->dtype != LM_DTYPE_F16 && s->dtype != LM_DTYPE_BF16 && s->dtype != LM_DTYPE_F32) {
        rc = lm_err_set(err, LM_ERR_FORMAT, "mlx: '%.200s': dtype %s, expected f16/bf16/f32",
                        sname, lm_dtype_name(s->dtype));
        goto done;
    }
    const lm_tensor_info *chk[2] = {s, b};
    for (int k = 0; k < 2; k++) {
        const lm_tensor_info *t = chk[k];
        int same = t->dtype == s->dtype && t->n_dims == w->n_dims && t->ne[0] == in / (uint64_t)gs;
        for (uint32_t d = 1; d < LM_MAX_DIMS; d++) same = same && t->ne[d] == w->ne[d];
        if (!same) {
            rc = lm_err_set(err, LM_ERR_FORMAT,
                            "mlx: '%.200s': %s shape/dtype must be %s [.., %llu, %llu] (got %s, "
                            "%llu cols)",
                            t->name, k ? "biases" : "scales", lm_dtype_name(s->dtype),
                            (unsigned long long)w->ne[1], (unsigned long long)(in / (uint64_t)gs),
                            lm_dtype_name(t->dtype), (unsigned long long)t->ne[0]);
            goto done;
        }
    }
    out->bits = bits;
    out->group_size = gs;
    out->dtype = lm_mlx_dtype(bits);
    out->cols = in;
    out->rows = w->n_elements / w->ne[0]; /* ne[0] > 0: checked above */
    out->weight = w;
    out->scales = s;
    out->biases = b;
done:
    lm_free(mod);
    lm_free(sname);
    lm_free(bname);
    return rc;
}
