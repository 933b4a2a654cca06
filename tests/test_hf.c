/* test_hf.c — Hugging Face model directories (single file and shards), their corruption
 * matrix, MLX affine packs against mlx's own dequantize (tests/data/safetensors/mlx_q), the MLX
 * reference dequant, allocation failure, and the real all-MiniLM-L6-v2 directory. */
#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"
#include "format/hf.h"
#include "tensor/mlx.h"
#include "tensor/quant.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/data/safetensors/"

static json_t *load_json(const char *path) {
    char *text;
    size_t len;
    lm_err e;
    lm_err_clear(&e);
    json_t *j = NULL;
    if (lm_file_read_all(path, 1 << 24, &text, &len, &e) != LM_OK) return NULL;
    lm_json_parse(text, len, 64, path, &j, &e);
    lm_free(text);
    return j;
}

static void put(const char *dir, const char *name, const void *data, size_t len) {
    char p[1024];
    lm_err e;
    lm_err_clear(&e);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (lm_file_write_atomic(p, data, len, &e) != LM_OK) fprintf(stderr, "put: %s\n", e.msg);
}

static void put_str(const char *dir, const char *name, const char *s) {
    put(dir, name, s, strlen(s));
}

static void copy_in(const char *dir, const char *src_dir, const char *name) {
    char p[1024], *data;
    size_t len;
    lm_err e;
    lm_err_clear(&e);
    snprintf(p, sizeof p, "%s/%s", src_dir, name);
    if (lm_file_read_all(p, 1 << 24, &data, &len, &e) != LM_OK) {
        fprintf(stderr, "copy: %s\n", e.msg);
        return;
    }
    put(dir, name, data, len);
    lm_free(data);
}

/* A safetensors image from a header and data_len zero bytes (the caller frees). */
static uint8_t *mk(const char *hdr, size_t data_len, size_t *len) {
    size_t n = strlen(hdr);
    *len = 8 + n + data_len;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(b + 8, hdr, n);
    return b;
}

static void put_st(const char *dir, const char *name, const char *hdr, size_t data_len) {
    size_t len;
    uint8_t *b = mk(hdr, data_len, &len);
    put(dir, name, b, len);
    free(b);
}

/* A fresh directory t_tmpdir()/sub holding a copy of the sharded fixture. */
static const char *sharded_copy(const char *sub) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), sub);
    mkdir(dir, 0755);
    const char *src = FIX "hf_sharded";
    copy_in(dir, src, "config.json");
    copy_in(dir, src, "model.safetensors.index.json");
    copy_in(dir, src, "model-00001-of-00002.safetensors");
    copy_in(dir, src, "model-00002-of-00002.safetensors");
    return dir;
}

static lm_status try_open(const char *dir, lm_err *e) {
    lm_hf *hf = NULL;
    lm_err_clear(e);
    lm_status rc = lm_hf_open(dir, &hf, e);
    if ((rc == LM_OK) != (hf != NULL)) {
        T_CHECK(0, "handle/status disagree for %s", dir);
    }
    lm_hf_close(hf);
    return rc;
}

static double elem(const lm_tensor_info *t, uint64_t i) {
    float f;
    uint16_t h;
    if (t->dtype == LM_DTYPE_F32) {
        memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
        return f;
    }
    memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
    return lm_half_to_f32(h);
}

static void test_sharded_fixture(void) {
    lm_err e;
    lm_err_clear(&e);
    json_t *exp = load_json(FIX "hf_sharded/expected.json");
    T_REQUIRE(exp, "expected.json missing");
    lm_hf *hf = NULL;
    T_REQUIRE(lm_hf_open(FIX "hf_sharded", &hf, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_hf_n_files(hf) == 2, "n_files %u", lm_hf_n_files(hf));
    T_CHECK(strcmp(lm_hf_file_name(hf, 0), "model-00001-of-00002.safetensors") == 0 &&
                strcmp(lm_hf_file_name(hf, 1), "model-00002-of-00002.safetensors") == 0,
            "shard order");
    T_CHECK(lm_hf_file(hf, 1) && lm_st_n_tensors(lm_hf_file(hf, 1)) == 3, "shard 1 handle");
    T_CHECK(lm_hf_n_tensors(hf) == json_object_size(exp), "n_tensors %u", lm_hf_n_tensors(hf));
    const char *name;
    json_t *x;
    json_object_foreach(exp, name, x) {
        const lm_tensor_info *t = lm_hf_find(hf, name);
        T_CHECK(t != NULL, "%s missing", name);
        if (!t) continue;
        T_CHECK(t->file_index == (uint32_t)json_integer_value(json_object_get(x, "file_index")),
                "%s: file_index %u", name, t->file_index);
        json_t *shape = json_object_get(x, "shape");
        size_t rank = json_array_size(shape);
        T_CHECK(t->n_dims == rank, "%s rank", name);
        for (size_t d = 0; d < rank; d++)
            T_CHECK(t->ne[rank - 1 - d] == (uint64_t)json_integer_value(json_array_get(shape, d)),
                    "%s: dim %zu", name, d);
        const char *dt = json_string_value(json_object_get(x, "dtype"));
        T_CHECK(t->dtype == (strcmp(dt, "F32") == 0 ? LM_DTYPE_F32 : LM_DTYPE_F16), "%s dtype",
                name);
        T_CHECK(elem(t, 0) == json_real_value(json_object_get(x, "first")), "%s first %g", name,
                elem(t, 0));
        T_CHECK(elem(t, t->n_elements - 1) == json_number_value(json_object_get(x, "last")),
                "%s last %g", name, elem(t, t->n_elements - 1));
        /* the pointer lies inside its own shard's mapping */
        const lm_st *sh = lm_hf_file(hf, t->file_index);
        const lm_tensor_info *own = lm_st_find(sh, name);
        T_CHECK(own && own->data == t->data, "%s: data not from its shard", name);
    }
    for (uint32_t i = 0; i < lm_hf_n_tensors(hf); i++)
        T_CHECK(lm_hf_find(hf, lm_hf_tensor(hf, i)->name) == lm_hf_tensor(hf, i), "find %u", i);
    T_CHECK(lm_hf_tensor(hf, lm_hf_n_tensors(hf)) == NULL, "out of range");
    T_CHECK(lm_hf_find(hf, "model.nope") == NULL, "absent");
    T_CHECK(lm_hf_model_type(hf) && strcmp(lm_hf_model_type(hf), "llama") == 0, "model_type");
    T_CHECK(lm_hf_architecture(hf) && strcmp(lm_hf_architecture(hf), "LlamaForCausalLM") == 0,
            "architecture");
    T_CHECK(json_integer_value(json_object_get(lm_hf_config(hf), "hidden_size")) == 8, "config");
    T_CHECK(lm_hf_tokenizer_config_path(hf) &&
                strstr(lm_hf_tokenizer_config_path(hf), "hf_sharded/tokenizer_config.json"),
            "tokenizer_config path");
    T_CHECK(lm_hf_tokenizer_path(hf) == NULL && lm_hf_chat_template_path(hf) == NULL,
            "absent optional files");
    lm_hf_close(hf);
    lm_hf_close(NULL);
    json_decref(exp);
}

static void test_single_file_dir(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/single", t_tmpdir());
    mkdir(dir, 0755);
    put_str(dir, "config.json", "{\"model_type\":\"bert\",\"architectures\":[1]}");
    put_st(dir, "model.safetensors",
           "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24);
    put_str(dir, "tokenizer.json", "{}");
    put_str(dir, "chat_template.jinja", "{{ x }}");
    /* an index next to model.safetensors is ignored: the single file wins */
    put_str(dir, "model.safetensors.index.json", "not json");
    lm_hf *hf = NULL;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_hf_open(dir, &hf, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_hf_n_files(hf) == 1 && lm_hf_n_tensors(hf) == 1, "counts");
    const lm_tensor_info *w = lm_hf_find(hf, "w");
    T_CHECK(w && w->ne[0] == 3 && w->ne[1] == 2 && w->file_index == 0, "w");
    T_CHECK(strcmp(lm_hf_model_type(hf), "bert") == 0, "model_type");
    T_CHECK(lm_hf_architecture(hf) == NULL, "architectures[0] not a string -> NULL");
    T_CHECK(lm_hf_tokenizer_path(hf) && lm_hf_chat_template_path(hf), "optional paths");
    T_CHECK(lm_hf_tokenizer_config_path(hf) == NULL, "absent tokenizer_config");
    lm_hf_close(hf);
}

static void test_hf_corruption(void) {
    lm_err e;
    const char *d;
    char p[1200];

    d = sharded_copy("no_config");
    snprintf(p, sizeof p, "%s/config.json", d);
    unlink(p);
    T_CHECK(try_open(d, &e) == LM_ERR_NOT_FOUND && strstr(e.msg, "config.json"),
            "missing config: %s", e.msg);

    d = sharded_copy("bad_config");
    put_str(d, "config.json", "{\"a\": 1,}");
    T_CHECK(try_open(d, &e) == LM_ERR_FORMAT && strstr(e.msg, "config.json: invalid JSON"),
            "bad config: %s", e.msg);

    d = sharded_copy("dup_config");
    put_str(d, "config.json", "{\"a\": 1, \"a\": 2}");
    T_CHECK(try_open(d, &e) == LM_ERR_FORMAT && strstr(e.msg, "config.json"), "dup config: %s",
            e.msg);

    d = sharded_copy("config_array");
    put_str(d, "config.json", "[]");
    T_CHECK(try_open(d, &e) == LM_ERR_FORMAT && strstr(e.msg, "config.json: not a JSON object"),
            "config array: %s", e.msg);

    T_CHECK(try_open("/nonexistent/model", &e) == LM_ERR_NOT_FOUND &&
                strstr(e.msg, "/nonexistent/model"), "missing dir: %s", e.msg);

    static const struct {
        const char *what, *index, *needle;
        lm_status rc;
    } idx[] = {
        {"dotdot shard", "{\"weight_map\":{\"model.norm.weight\":\"../x\"}}",
         "shard name '../x' is not a plain file name", LM_ERR_FORMAT},
        {"slash shard", "{\"weight_map\":{\"model.norm.weight\":\"a/b\"}}",
         "shard name 'a/b' is not a plain file name", LM_ERR_FORMAT},
        {"absolute shard", "{\"weight_map\":{\"model.norm.weight\":\"/etc/passwd\"}}",
         "not a plain file name", LM_ERR_FORMAT},
        {"control char shard", "{\"weight_map\":{\"model.norm.weight\":\"a\\u0001b\"}}",
         "control character", LM_ERR_FORMAT},
        {"empty shard name", "{\"weight_map\":{\"model.norm.weight\":\"\"}}", "length 0",
         LM_ERR_FORMAT},
        {"missing shard", "{\"weight_map\":{\"model.norm.weight\":\"nope.safetensors\"}}",
         "shard 'nope.safetensors' missing", LM_ERR_NOT_FOUND},
        {"shard not string", "{\"weight_map\":{\"model.norm.weight\":3}}",
         "weight_map['model.norm.weight'] is not a string", LM_ERR_FORMAT},
        {"no weight_map", "{\"metadata\":{}}", "weight_map missing", LM_ERR_FORMAT},
        {"index not json", "{", "model.safetensors.index.json: invalid JSON", LM_ERR_FORMAT},
        {"tensor not in its shard",
         "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
         "\"model.layers.0.attn.q_proj.weight\":\"model-00001-of-00002.safetensors\","
         "\"model.layers.0.mlp.up_proj.weight\":\"model-00002-of-00002.safetensors\","
         "\"model.norm.weight\":\"model-00001-of-00002.safetensors\","
         "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}",
         "tensor 'model.norm.weight' is mapped to shard 'model-00001-of-00002.safetensors' but "
         "is not in it", LM_ERR_FORMAT},
        {"ghost tensor",
         "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
         "\"model.layers.0.attn.q_proj.weight\":\"model-00001-of-00002.safetensors\","
         "\"model.layers.0.mlp.up_proj.weight\":\"model-00002-of-00002.safetensors\","
         "\"model.norm.weight\":\"model-00002-of-00002.safetensors\","
         "\"ghost\":\"model-00002-of-00002.safetensors\","
         "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}",
         "tensor 'ghost' is mapped to shard", LM_ERR_FORMAT},
        {"shard tensor not in map",
         "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
         "\"model.layers.0.attn.q_proj.weight\":\"model-00001-of-00002.safetensors\","
         "\"model.layers.0.mlp.up_proj.weight\":\"model-00002-of-00002.safetensors\","
         "\"model.norm.weight\":\"model-00002-of-00002.safetensors\"}}",
         "tensor 'lm_head.weight' of shard 'model-00002-of-00002.safetensors' is not in "
         "weight_map", LM_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "idx%zu", i);
        d = sharded_copy(sub);
        put_str(d, "model.safetensors.index.json", idx[i].index);
        lm_status rc = try_open(d, &e);
        T_CHECK(rc == idx[i].rc, "%s: status %d (%s)", idx[i].what, rc, e.msg);
        T_CHECK(strstr(e.msg, idx[i].needle) != NULL, "%s: '%s' lacks '%s'", idx[i].what, e.msg,
                idx[i].needle);
    }

    /* the same tensor in two shards, the map naming the first */
    d = sharded_copy("dup_across");
    put_st(d, "a.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
           1);
    put_st(d, "b.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
           2);
    put_str(d, "model.safetensors.index.json",
            "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
    T_CHECK(try_open(d, &e) == LM_ERR_FORMAT && strstr(e.msg, "'y'"), "y missing: %s", e.msg);
    put_str(d, "model.safetensors.index.json", "{\"weight_map\":{\"x\":\"a.safetensors\"}}");
    /* b.safetensors is not referenced, so it is not opened: fine */
    T_CHECK(try_open(d, &e) == LM_OK, "unreferenced shard: %s", e.msg);
    put_st(d, "b.safetensors",
           "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
           "\"y\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}", 3);
    put_str(d, "model.safetensors.index.json",
            "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
    T_CHECK(try_open(d, &e) == LM_ERR_FORMAT && strstr(e.msg, "duplicate tensor 'x'") &&
                strstr(e.msg, "a.safetensors") && strstr(e.msg, "b.safetensors"),
            "dup across shards: %s", e.msg);

    /* a corrupt shard is reported with its path */
    d = sharded_copy("bad_shard");
    put_st(d, "model-00002-of-00002.safetensors",
           "{\"t\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    T_CHECK(try_open(d, &e) == LM_ERR_FORMAT && strstr(e.msg, "model-00002-of-00002") &&
                strstr(e.msg, "unknown dtype 'Q9'"), "bad shard: %s", e.msg);

    /* no weights at all */
    d = sharded_copy("no_weights");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    unlink(p);
    T_CHECK(try_open(d, &e) == LM_ERR_NOT_FOUND && strstr(e.msg, "neither model.safetensors"),
            "no weights: %s", e.msg);
}

static void test_hf_alloc_failures(void) {
    int ok = 0;
    unsigned long n;
    for (n = 1; n < 10000 && !ok; n++) {
        lm_err e;
        lm_err_clear(&e);
        lm_hf *hf = NULL;
        lm_alloc_fail_after(n, 0);
        lm_status rc = lm_hf_open(FIX "hf_sharded", &hf, &e);
        lm_alloc_fail_after(0, 0);
        if (rc == LM_OK) {
            ok = 1;
            T_CHECK(lm_hf_n_tensors(hf) == 5, "tensors");
        } else {
            T_CHECK(rc == LM_ERR_NOMEM, "alloc %lu: %d (%s)", n, rc, e.msg);
            T_CHECK(hf == NULL, "handle on failure");
        }
        lm_hf_close(hf);
    }
    T_CHECK(ok && n > 10, "loop ended at %lu", n);

    /* the same for an MLX pack lookup on an open model */
    lm_hf *hf = NULL;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_hf_open(FIX "mlx_q", &hf, &e) == LM_OK, "%s", e.msg);
    ok = 0;
    for (n = 1; n < 100 && !ok; n++) {
        lm_mlx_pack pk;
        lm_err_clear(&e);
        lm_alloc_fail_after(n, 0);
        lm_status rc = lm_hf_mlx_pack(hf, "model.layers.3.proj.weight", &pk, &e);
        lm_alloc_fail_after(0, 0);
        if (rc == LM_OK) ok = 1;
        else T_CHECK(rc == LM_ERR_NOMEM, "mlx alloc %lu: %d (%s)", n, rc, e.msg);
    }
    T_CHECK(ok, "mlx pack never succeeded");
    lm_hf_close(hf);
}

/* ---- MLX ---------------------------------------------------------------------------------- */

static void test_mlx_fixture(void) {
    lm_err e;
    lm_err_clear(&e);
    json_t *exp = load_json(FIX "mlx_q/expected.json");
    T_REQUIRE(exp, "mlx_q/expected.json missing");
    lm_hf *hf = NULL;
    T_REQUIRE(lm_hf_open(FIX "mlx_q", &hf, &e) == LM_OK, "%s", e.msg);
    int seen_bits[9] = {0};
    const char *name;
    json_t *x;
    json_object_foreach(exp, name, x) {
        lm_mlx_pack pk;
        lm_err_clear(&e);
        lm_status rc = lm_hf_mlx_pack(hf, name, &pk, &e);
        T_CHECK(rc == LM_OK, "%s: %s", name, e.msg);
        if (rc != LM_OK) continue;
        int bits = (int)json_integer_value(json_object_get(x, "bits"));
        int gs = (int)json_integer_value(json_object_get(x, "group_size"));
        uint64_t rows = (uint64_t)json_integer_value(json_object_get(x, "rows"));
        uint64_t cols = (uint64_t)json_integer_value(json_object_get(x, "cols"));
        T_CHECK(pk.bits == bits && pk.group_size == gs, "%s: bits %d gs %d", name, pk.bits,
                pk.group_size);
        T_CHECK(pk.rows == rows && pk.cols == cols, "%s: %llux%llu", name,
                (unsigned long long)pk.rows, (unsigned long long)pk.cols);
        T_CHECK(pk.dtype == lm_mlx_dtype(bits), "%s: dtype", name);
        T_CHECK(pk.weight->dtype == LM_DTYPE_U32 &&
                    pk.weight->ne[0] ==
                        (uint64_t)json_integer_value(json_object_get(x, "packed_words")),
                "%s: packed words", name);
        const char *sd = json_string_value(json_object_get(x, "scale_dtype"));
        lm_dtype sdt = strcmp(sd, "F32") == 0 ? LM_DTYPE_F32
                       : strcmp(sd, "F16") == 0 ? LM_DTYPE_F16 : LM_DTYPE_BF16;
        T_CHECK(pk.scales->dtype == sdt && pk.biases->dtype == sdt, "%s: scale dtype", name);
        seen_bits[bits] |= gs == 32 ? 1 : 2;
        json_t *vals = json_object_get(x, "values");
        T_REQUIRE(json_array_size(vals) == rows * cols, "values");
        size_t row_bytes = lm_mlx_row_bytes(bits, (int64_t)cols);
        T_CHECK(row_bytes == pk.weight->ne[0] * 4, "%s: row bytes %zu", name, row_bytes);
        size_t ssz = sdt == LM_DTYPE_F32 ? 4 : 2;
        float out[128];
        int bad = 0;
        for (uint64_t r = 0; r < rows; r++) {
            const uint8_t *q = (const uint8_t *)pk.weight->data + r * row_bytes;
            const uint8_t *s = (const uint8_t *)pk.scales->data + r * (cols / gs) * ssz;
            const uint8_t *b = (const uint8_t *)pk.biases->data + r * (cols / gs) * ssz;
            T_REQUIRE(lm_mlx_dequant_row(bits, gs, q, s, b, sdt, out, (int64_t)cols) == 0,
                      "dequant");
            for (uint64_t c = 0; c < cols; c++) {
                double want = json_number_value(json_array_get(vals, r * cols + c));
                /* mlx may fuse scale*q+bias into one fma: allow a few ulps of the operands */
                if (fabs(out[c] - want) > 1e-6 * (1.0 + fabs(want)) && bad++ < 3)
                    T_CHECK(0, "%s[%llu][%llu]: %.9g != %.9g", name, (unsigned long long)r,
                            (unsigned long long)c, out[c], want);
            }
        }
        T_CHECK(bad == 0, "%s: %d mismatches", name, bad);
    }
    for (int b = 2; b <= 8; b++)
        if (b != 7) T_CHECK(seen_bits[b] == 3, "bits %d not covered at both group sizes", b);

    lm_mlx_pack pk;
    lm_err_clear(&e);
    T_CHECK(lm_hf_mlx_pack(hf, "lm_head.weight", &pk, &e) == LM_ERR_NOT_FOUND &&
                strstr(e.msg, "lm_head.weight"), "override false: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_hf_mlx_pack(hf, "model.norm.weight", &pk, &e) == LM_ERR_NOT_FOUND &&
                strstr(e.msg, "model.norm.weight"), "float norm: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_hf_mlx_pack(hf, "model.layers.99.proj.weight", &pk, &e) == LM_ERR_NOT_FOUND,
            "absent: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_hf_mlx_pack(hf, "model.layers.0.proj.scales", &pk, &e) == LM_ERR_INVALID_ARG,
            "not a .weight: %s", e.msg);
    lm_hf_close(hf);

    /* a model with no quantization section */
    T_REQUIRE(lm_hf_open(FIX "hf_sharded", &hf, &e) == LM_OK, "%s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_hf_mlx_pack(hf, "lm_head.weight", &pk, &e) == LM_ERR_NOT_FOUND, "unquantized");
    lm_hf_close(hf);
    json_decref(exp);
}

/* Writes dir with config.json = cfg and model.safetensors from hdr (data zero-filled). */
static const char *mlx_dir(const char *sub, const char *cfg, const char *hdr, size_t data_len) {
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), sub);
    mkdir(dir, 0755);
    put_str(dir, "config.json", cfg);
    put_st(dir, "model.safetensors", hdr, data_len);
    return dir;
}

static lm_status try_pack(const char *dir, const char *w, lm_err *e) {
    lm_hf *hf = NULL;
    lm_err_clear(e);
    lm_status rc = lm_hf_open(dir, &hf, e);
    if (rc != LM_OK) return rc;
    lm_mlx_pack pk;
    rc = lm_hf_mlx_pack(hf, w, &pk, e);
    lm_hf_close(hf);
    return rc;
}

static void test_mlx_corruption(void) {
    lm_err e;
    /* M: out 2, in 64 at 4 bits -> weight U32 [2, 8], scales/biases F16 [2, 64/G] */
    const char *good = "{\"m.weight\":{\"dtype\":\"U32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
                       "\"m.scales\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[64,68]},"
                       "\"m.biases\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[68,72]}}";
    const char *cfg64 = "{\"quantization\":{\"group_size\":64,\"bits\":4}}";
    const char *d = mlx_dir("mlx_good", cfg64, good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_OK, "good pack: %s", e.msg);

    d = mlx_dir("mlx_bits7", "{\"quantization\":{\"group_size\":64,\"bits\":7}}", good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "'m.weight'") &&
                strstr(e.msg, "bits 7"), "bits 7: %s", e.msg);

    d = mlx_dir("mlx_gs48", "{\"quantization\":{\"group_size\":48,\"bits\":4}}", good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "group_size 48"),
            "gs 48: %s", e.msg);

    /* config says group 32, the file's scales are per 64: shape mismatch names the tensor */
    d = mlx_dir("mlx_gs_mismatch", "{\"quantization\":{\"group_size\":32,\"bits\":4}}", good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "'m.scales'") &&
                strstr(e.msg, "scales shape"), "gs mismatch: %s", e.msg);

    /* per-module override wins over the default */
    d = mlx_dir("mlx_override",
                "{\"quantization\":{\"group_size\":32,\"bits\":4,"
                "\"m\":{\"group_size\":64,\"bits\":4}}}", good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_OK, "override: %s", e.msg);
    d = mlx_dir("mlx_override_bad",
                "{\"quantization\":{\"group_size\":64,\"bits\":4,\"m\":\"yes\"}}", good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "quantization['m']"),
            "override not object: %s", e.msg);

    const char *rows3 =
        "{\"m.weight\":{\"dtype\":\"U32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
        "\"m.scales\":{\"dtype\":\"F16\",\"shape\":[3,1],\"data_offsets\":[64,70]},"
        "\"m.biases\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[70,74]}}";
    d = mlx_dir("mlx_scales_rows", cfg64, rows3, 74);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "'m.scales'"),
            "scales rows: %s", e.msg);

    const char *bias_dt =
        "{\"m.weight\":{\"dtype\":\"U32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
        "\"m.scales\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[64,68]},"
        "\"m.biases\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[68,76]}}";
    d = mlx_dir("mlx_bias_dtype", cfg64, bias_dt, 76);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "'m.biases'"),
            "biases dtype: %s", e.msg);

    const char *scale_i8 =
        "{\"m.weight\":{\"dtype\":\"U32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
        "\"m.scales\":{\"dtype\":\"I8\",\"shape\":[2,1],\"data_offsets\":[64,66]},"
        "\"m.biases\":{\"dtype\":\"I8\",\"shape\":[2,1],\"data_offsets\":[66,68]}}";
    d = mlx_dir("mlx_scale_i8", cfg64, scale_i8, 68);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "'m.scales'") &&
                strstr(e.msg, "i8"), "scales i8: %s", e.msg);

    const char *w_f32 =
        "{\"m.weight\":{\"dtype\":\"F32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
        "\"m.scales\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[64,68]},"
        "\"m.biases\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[68,72]}}";
    d = mlx_dir("mlx_w_f32", cfg64, w_f32, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "'m.weight'") &&
                strstr(e.msg, "U32"), "weight not U32: %s", e.msg);

    const char *no_bias =
        "{\"m.weight\":{\"dtype\":\"U32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
        "\"m.scales\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[64,68]}}";
    d = mlx_dir("mlx_no_bias", cfg64, no_bias, 68);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "m.biases"),
            "missing biases: %s", e.msg);

    /* 3 bits: 7 packed words = 74.67 quants per row: not whole */
    const char *odd3 =
        "{\"m.weight\":{\"dtype\":\"U32\",\"shape\":[1,7],\"data_offsets\":[0,28]},"
        "\"m.scales\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[28,32]},"
        "\"m.biases\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[32,36]}}";
    d = mlx_dir("mlx_odd3", "{\"quantization\":{\"group_size\":64,\"bits\":3}}", odd3, 36);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "'m.weight'") &&
                strstr(e.msg, "7 packed words"), "odd 3-bit: %s", e.msg);
    /* 4 bits, 6 words = 48 columns: not a multiple of 32 */
    const char *cols48 =
        "{\"m.weight\":{\"dtype\":\"U32\",\"shape\":[1,6],\"data_offsets\":[0,24]},"
        "\"m.scales\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[24,28]},"
        "\"m.biases\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[28,32]}}";
    d = mlx_dir("mlx_cols48", "{\"quantization\":{\"group_size\":32,\"bits\":4}}", cols48, 32);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "48 columns not a multiple of group_size 32"), "cols 48: %s",
            e.msg);

    d = mlx_dir("mlx_mode", "{\"quantization\":{\"group_size\":32,\"bits\":4,\"mode\":\"mxfp4\"}}",
                good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_UNSUPPORTED && strstr(e.msg, "mxfp4"),
            "mode: %s", e.msg);
    d = mlx_dir("mlx_hfq", "{\"quantization_config\":{\"quant_method\":\"gptq\",\"bits\":4}}",
                good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_NOT_FOUND && strstr(e.msg, "gptq"),
            "HF quant_method: %s", e.msg);
    d = mlx_dir("mlx_qc", "{\"quantization_config\":{\"group_size\":64,\"bits\":4}}", good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_OK, "quantization_config: %s", e.msg);
    d = mlx_dir("mlx_bits_str", "{\"quantization\":{\"group_size\":64,\"bits\":\"4\"}}", good, 72);
    T_CHECK(try_pack(d, "m.weight", &e) == LM_ERR_FORMAT && strstr(e.msg, "bits"),
            "bits string: %s", e.msg);
}

/* The reference dequant on hand-packed rows: element j at bits [j*B, (j+1)*B) of the row. */
static void test_mlx_dequant_ref(void) {
    static const int bits_list[] = {2, 3, 4, 5, 6, 8};
    for (size_t bi = 0; bi < 6; bi++) {
        int bits = bits_list[bi];
        enum { N = 128, G = 32 };
        uint8_t packed[N]; /* N * 8 / 8 bytes is enough for every bits */
        uint8_t q[N];
        memset(packed, 0, sizeof packed);
        for (int j = 0; j < N; j++) {
            q[j] = (uint8_t)(t_rand_u64() & ((1u << bits) - 1));
            for (int k = 0; k < bits; k++)
                if (q[j] >> k & 1)
                    packed[(j * bits + k) / 8] |= (uint8_t)(1u << ((j * bits + k) % 8));
        }
        float scales[N / G], biases[N / G], out[N];
        uint16_t hs[N / G], hb[N / G];
        for (int g = 0; g < N / G; g++) {
            scales[g] = 0.25f * (float)(g + 1);
            biases[g] = -1.5f + (float)g;
            hs[g] = lm_f32_to_half(scales[g]);
            hb[g] = lm_f32_to_half(biases[g]);
        }
        size_t rb = lm_mlx_row_bytes(bits, N);
        T_CHECK(rb == (size_t)(N * bits / 8), "row bytes %zu", rb);
        uint8_t *exact = malloc(rb); /* exact size: ASan checks no read past the row */
        memcpy(exact, packed, rb);
        T_REQUIRE(lm_mlx_dequant_row(bits, G, exact, scales, biases, LM_DTYPE_F32, out, N) == 0,
                  "dequant");
        int bad = 0;
        for (int j = 0; j < N; j++)
            bad += out[j] != scales[j / G] * (float)q[j] + biases[j / G];
        T_CHECK(bad == 0, "bits %d f32: %d wrong", bits, bad);
        T_REQUIRE(lm_mlx_dequant_row(bits, G, exact, hs, hb, LM_DTYPE_F16, out, N) == 0, "f16");
        bad = 0;
        for (int j = 0; j < N; j++)
            bad += out[j] != scales[j / G] * (float)q[j] + biases[j / G];
        T_CHECK(bad == 0, "bits %d f16: %d wrong", bits, bad);
        free(exact);
    }
    float out[64], s = 1, b = 0;
    uint8_t p[64] = {0};
    T_CHECK(lm_mlx_dequant_row(7, 32, p, &s, &b, LM_DTYPE_F32, out, 32) == -1, "bits 7");
    T_CHECK(lm_mlx_dequant_row(4, 16, p, &s, &b, LM_DTYPE_F32, out, 32) == -1, "gs 16");
    T_CHECK(lm_mlx_dequant_row(4, 32, p, &s, &b, LM_DTYPE_F32, out, 48) == -1, "n %% gs");
    T_CHECK(lm_mlx_dequant_row(4, 32, p, &s, &b, LM_DTYPE_I8, out, 32) == -1, "scale dtype");
    T_CHECK(lm_mlx_row_bytes(3, 16) == 0 && lm_mlx_row_bytes(4, 8) == 4 &&
                lm_mlx_row_bytes(7, 32) == 0, "row_bytes edge cases");
}

/* all-MiniLM-L6-v2 (BERT), installed by tools/install_models.sh; expected values read with the
 * Python safetensors package: 104 tensors, shapes and dtypes below. */
static void test_real_minilm(void) {
    const char *dir = "models/all-minilm-l6-v2";
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/model.safetensors", dir);
    if (access(cfg, R_OK) != 0) T_SKIP("%s not installed (tools/install_models.sh)", dir);
    lm_hf *hf = NULL;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_hf_open(dir, &hf, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_hf_n_tensors(hf) == 104, "n_tensors %u", lm_hf_n_tensors(hf));
    T_CHECK(lm_hf_n_files(hf) == 1, "files");
    T_CHECK(strcmp(lm_hf_model_type(hf), "bert") == 0, "model_type");
    T_CHECK(strcmp(lm_hf_architecture(hf), "BertModel") == 0, "architecture");
    T_CHECK(lm_hf_tokenizer_path(hf) != NULL, "tokenizer.json");
    const lm_tensor_info *t = lm_hf_find(hf, "embeddings.word_embeddings.weight");
    T_CHECK(t && t->dtype == LM_DTYPE_F32 && t->n_dims == 2 && t->ne[0] == 384 &&
                t->ne[1] == 30522, "word_embeddings");
    if (t) {
        float v[3];
        memcpy(v, t->data, sizeof v);
        /* first row as numpy printed it: -0.01998901 -0.00340271 -0.01467896 */
        T_CHECK(fabsf(v[0] + 0.01998901f) < 1e-7f && fabsf(v[1] + 0.00340271f) < 1e-7f &&
                    fabsf(v[2] + 0.01467896f) < 1e-7f, "values %g %g %g", v[0], v[1], v[2]);
    }
    t = lm_hf_find(hf, "encoder.layer.5.output.dense.weight");
    T_CHECK(t && t->ne[0] == 1536 && t->ne[1] == 384, "layer 5 output dense");
    t = lm_hf_find(hf, "pooler.dense.bias");
    T_CHECK(t && t->n_dims == 1 && t->ne[0] == 384, "pooler bias");
    t = lm_hf_find(hf, "embeddings.position_ids");
    T_CHECK(t && t->dtype == LM_DTYPE_I64 && t->ne[0] == 512 && t->ne[1] == 1, "position_ids");
    T_CHECK(strcmp(lm_st_metadata_get(lm_hf_file(hf, 0), "format"), "pt") == 0, "metadata");
    lm_hf_close(hf);
}

int main(void) {
    T_RUN(test_sharded_fixture);
    T_RUN(test_single_file_dir);
    T_RUN(test_hf_corruption);
    T_RUN(test_hf_alloc_failures);
    T_RUN(test_mlx_fixture);
    T_RUN(test_mlx_corruption);
    T_RUN(test_mlx_dequant_ref);
    T_RUN(test_real_minilm);
    return t_finish();
}
