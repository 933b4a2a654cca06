/*
 * test_convert.c — GGUF type conversion (lm_gguf_convert, `lemma quantize`).
 *
 * A synthetic model is written with the GGUF writer (metadata of every value type, nested
 * arrays and string arrays, a non-default alignment; 1-D and 2-D tensors of F32, F16, Q8_0,
 * Q4_K and I32 with row lengths that do and do not fit 32- and 256-element blocks) and
 * converted to F32, F16, Q8_0, Q4_0 and Q4_K. Each output is read back and checked against
 * the rules of gguf_convert.h with expectations written out here per tensor (not derived from
 * the rule function), every value against the dequantized input (exact for F32, exact
 * rounding for F16, requantization of the exact input values and an error bound for the
 * quantized types). Then determinism, progress and cancellation, refusals and the error cases
 * (each must leave no output and no temp file), the CLI, and the real SmolLM2 model converted
 * to F32: it loads, its tensors equal the dequantized source, and its SHA-256 is the recorded
 * one (that file was checked tensor by tensor against the Python `gguf` package's dequantize
 * when the digest was recorded).
 */
#include "cli.h"
#include "core/alloc.h"
#include "core/sha256.h"
#include "format/gguf.h"
#include "format/gguf_convert.h"
#include "lemma.h"
#include "tensor/quant.h"
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SMOLLM "models/smollm2-135m-instruct-q4_1.gguf"
/* SHA-256 of SMOLLM converted to f32 (lemma quantize ... f32). */
#define SMOLLM_F32_SHA256 "f0089e79d6755eb5fbbf61cf4a16ba6bd79641f199875d1dc38cef994afdd0fd"

static const char *tmp_path(const char *name) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", t_tmpdir(), name);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Number of entries of t_tmpdir() whose name starts with prefix (temp files included). */
static int count_prefix(const char *prefix) {
    DIR *d = opendir(t_tmpdir());
    int n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static int write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void sha256_file_hex(const char *path, char hex[65]) {
    hex[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    lm_sha256 h;
    lm_sha256_init(&h, 0);
    static unsigned char buf[1 << 20];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        lm_sha256_update(&h, buf, n);
    fclose(f);
    uint8_t d[32];
    if (!lm_sha256_final(&h, d)) return;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ---------------------------------------------------------------------------------------
 * the synthetic model
 * ------------------------------------------------------------------------------------ */

typedef struct synth_tensor {
    const char *name;
    lm_dtype dtype;
    uint32_t n_dims;
    uint64_t ne[2];
    /* expected output type for targets F32, F16, Q8_0, Q4_0, Q4_K */
    lm_dtype want[5];
} synth_tensor;

#define F32 LM_DTYPE_F32
#define F16 LM_DTYPE_F16
#define Q80 LM_DTYPE_Q8_0
#define Q40 LM_DTYPE_Q4_0
#define Q4K LM_DTYPE_Q4_K
#define Q50 LM_DTYPE_Q5_0
#define I32 LM_DTYPE_I32
static const lm_dtype k_targets[5] = {F32, F16, Q80, Q40, Q4K};
static const synth_tensor k_tensors[] = {
    /* 1-D: always F32 */
    {"blk.0.attn_norm.weight", F32, 1, {512, 1}, {F32, F32, F32, F32, F32}},
    {"blk.0.ffn_norm.weight", F16, 1, {512, 1}, {F32, F32, F32, F32, F32}},
    /* 2-D weights that fit every block size */
    {"blk.0.attn_q.weight", F32, 2, {512, 6}, {F32, F16, Q80, Q40, Q4K}},
    {"blk.0.ffn_up.weight", Q80, 2, {256, 5}, {F32, F16, Q80, Q40, Q4K}},
    {"blk.0.ffn_down.weight", Q4K, 2, {512, 3}, {F32, F16, Q80, Q40, Q4K}},
    {"blk.0.attn_k.weight", F16, 2, {256, 4}, {F32, F16, Q80, Q40, Q4K}},
    /* rows of 96: fit 32-blocks, not 256 (Q4_K falls back to Q5_0) */
    {"blk.0.attn_v.weight", F32, 2, {96, 4}, {F32, F16, Q80, Q40, Q50}},
    {"blk.0.attn_o.weight", Q80, 2, {96, 3}, {F32, F16, Q80, Q40, Q50}},
    /* rows of 20: fit no block at all (F16) */
    {"blk.0.tiny.weight", F32, 2, {20, 3}, {F32, F16, F16, F16, F16}},
    /* not a weight: F32 whatever its rank */
    {"blk.0.attn_q.bias", F16, 1, {512, 1}, {F32, F32, F32, F32, F32}},
    {"rope_freqs", F16, 2, {64, 2}, {F32, F32, F32, F32, F32}},
    /* integers: copied */
    {"blk.0.positions.weight", I32, 2, {8, 2}, {I32, I32, I32, I32, I32}},
};
#define N_TENSORS (sizeof k_tensors / sizeof k_tensors[0])

static void fill_tensor(const synth_tensor *st, uint8_t *out, size_t nbytes) {
    uint64_t ne0 = st->ne[0], rows = st->ne[1];
    float *row = malloc(ne0 * sizeof(float));
    size_t rs = lm_dtype_row_size(st->dtype, ne0);
    for (uint64_t r = 0; r < rows; r++) {
        float scale = 0.05f + 0.5f * (float)r; /* rows of different ranges */
        for (uint64_t j = 0; j < ne0; j++)
            row[j] = t_rand_f32(-scale, scale);
        if (r == 1 && ne0 > 40) row[7] = 0.0f, row[8] = -3.0f * scale; /* an outlier */
        if (st->dtype == I32) {
            for (uint64_t j = 0; j < ne0; j++) {
                int32_t v = (int32_t)(r * ne0 + j) - 5;
                memcpy(out + r * rs + 4 * j, &v, 4);
            }
        } else {
            size_t w = lm_quantize_row(st->dtype, row, out + r * rs, (int64_t)ne0);
            if (w != rs) abort();
        }
    }
    if (rows * rs != nbytes) abort();
    free(row);
}

static const char *k_strs[] = {"alpha", "", "gamma\xff\x01", "dé"};

/* Writes the synthetic model to path; 1 on success. */
static int write_synth(const char *path) {
    lm_err err;
    lm_err_clear(&err);
    lm_gguf_writer *w = NULL;
    uint8_t *bufs[N_TENSORS] = {0};
    int ok = lm_gguf_writer_new(&w, &err) == LM_OK;
    t_srand(1234);
    ok = ok && lm_gguf_set_str(w, "general.architecture", "llama", &err) == LM_OK;
    ok = ok && lm_gguf_set_alignment(w, 64, &err) == LM_OK;
    ok = ok && lm_gguf_set_u32(w, "general.file_type", 1, &err) == LM_OK;
    ok = ok && lm_gguf_set_u8(w, "t.u8", 200, &err) == LM_OK;
    ok = ok && lm_gguf_set_i8(w, "t.i8", -100, &err) == LM_OK;
    ok = ok && lm_gguf_set_u16(w, "t.u16", 60000, &err) == LM_OK;
    ok = ok && lm_gguf_set_i16(w, "t.i16", -30000, &err) == LM_OK;
    ok = ok && lm_gguf_set_i32(w, "t.i32", -2000000000, &err) == LM_OK;
    ok = ok && lm_gguf_set_f32(w, "t.f32", 1.5e-5f, &err) == LM_OK;
    ok = ok && lm_gguf_set_bool(w, "t.bool", 1, &err) == LM_OK;
    ok = ok && lm_gguf_set_u64(w, "t.u64", 0xfedcba9876543210ull, &err) == LM_OK;
    ok = ok && lm_gguf_set_i64(w, "t.i64", -((int64_t)1 << 60), &err) == LM_OK;
    ok = ok && lm_gguf_set_f64(w, "t.f64", -2.25e100, &err) == LM_OK;
    ok = ok && lm_gguf_set_strn(w, "t.str", "a\0b", 3, &err) == LM_OK;
    int32_t ia[5] = {1, -2, 3, -4, 5};
    float fa[3] = {0.5f, -1.0f, 1e30f};
    uint8_t ba[3] = {1, 0, 1};
    ok = ok && lm_gguf_set_arr(w, "t.arr_i32", LM_GGUF_TYPE_INT32, ia, 5, &err) == LM_OK;
    ok = ok && lm_gguf_set_arr(w, "t.arr_f32", LM_GGUF_TYPE_FLOAT32, fa, 3, &err) == LM_OK;
    ok = ok && lm_gguf_set_arr(w, "t.arr_bool", LM_GGUF_TYPE_BOOL, ba, 3, &err) == LM_OK;
    ok = ok && lm_gguf_set_arr(w, "t.arr_empty", LM_GGUF_TYPE_UINT64, NULL, 0, &err) == LM_OK;
    size_t lens[4] = {5, 0, 7, 3};
    ok = ok && lm_gguf_set_arr_str(w, "tokenizer.ggml.tokens", k_strs, lens, 4, &err) == LM_OK;
    /* [[1, 2], ["x", "yz"], []] as arrays of arrays */
    lm_gguf_warr *outer = NULL, *a1 = NULL, *a2 = NULL, *a3 = NULL;
    ok = ok && lm_gguf_warr_new(LM_GGUF_TYPE_ARRAY, &outer, &err) == LM_OK;
    ok = ok && lm_gguf_warr_new(LM_GGUF_TYPE_INT16, &a1, &err) == LM_OK;
    int16_t v1 = 1, v2 = 2;
    ok = ok && lm_gguf_warr_push(a1, &v1, &err) == LM_OK &&
         lm_gguf_warr_push(a1, &v2, &err) == LM_OK;
    ok = ok && lm_gguf_warr_push_arr(outer, a1, &err) == LM_OK;
    ok = ok && lm_gguf_warr_new(LM_GGUF_TYPE_STRING, &a2, &err) == LM_OK;
    ok = ok && lm_gguf_warr_push_str(a2, "x", 1, &err) == LM_OK &&
         lm_gguf_warr_push_str(a2, "yz", 2, &err) == LM_OK;
    ok = ok && lm_gguf_warr_push_arr(outer, a2, &err) == LM_OK;
    ok = ok && lm_gguf_warr_new(LM_GGUF_TYPE_UINT8, &a3, &err) == LM_OK;
    ok = ok && lm_gguf_warr_push_arr(outer, a3, &err) == LM_OK;
    ok = ok && lm_gguf_set_warr(w, "t.nested", outer, &err) == LM_OK;
    ok = ok && lm_gguf_set_str(w, "t.last", "end", &err) == LM_OK;
    for (size_t i = 0; ok && i < N_TENSORS; i++) {
        const synth_tensor *st = &k_tensors[i];
        size_t nbytes = lm_dtype_row_size(st->dtype, st->ne[0]) * st->ne[1];
        bufs[i] = malloc(nbytes);
        fill_tensor(st, bufs[i], nbytes);
        ok = lm_gguf_add_tensor(w, st->name, st->dtype, st->n_dims, st->ne, bufs[i], nbytes,
                                &err) == LM_OK;
    }
    ok = ok && lm_gguf_write_file(w, path, &err) == LM_OK;
    if (!ok) fprintf(stderr, "  write_synth: %s\n", err.msg);
    lm_gguf_writer_free(w);
    for (size_t i = 0; i < N_TENSORS; i++)
        free(bufs[i]);
    return ok;
}

static const char *synth_path(void) {
    static char path[1024];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", tmp_path("synth.gguf"));
        if (!write_synth(path)) path[0] = '\0';
    }
    return path[0] ? path : NULL;
}

static lm_status convert(const char *in, const char *out, lm_dtype target, uint32_t flags,
                         int n_threads, lm_err *err) {
    lm_gguf_convert_opts o = lm_gguf_convert_default_opts();
    o.target = target;
    o.flags = flags;
    o.n_threads = n_threads;
    lm_err_clear(err);
    return lm_gguf_convert(in, out, &o, NULL, err);
}

/* ---------------------------------------------------------------------------------------
 * checks of one conversion
 * ------------------------------------------------------------------------------------ */

static void check_metadata(const lm_gguf *in, const lm_gguf *out, lm_dtype target) {
    lm_err err;
    T_CHECK(lm_gguf_n_kv(in) == lm_gguf_n_kv(out), "n_kv %llu vs %llu",
            (unsigned long long)lm_gguf_n_kv(in), (unsigned long long)lm_gguf_n_kv(out));
    T_CHECK(lm_gguf_alignment(out) == lm_gguf_alignment(in), "alignment %u",
            lm_gguf_alignment(out));
    T_CHECK(lm_gguf_version(out) == lm_gguf_version(in), "version %u", lm_gguf_version(out));
    for (uint64_t i = 0; i < lm_gguf_n_kv(in) && i < lm_gguf_n_kv(out); i++) {
        const char *k = lm_gguf_key(in, i);
        T_CHECK(strcmp(k, lm_gguf_key(out, i)) == 0, "kv %llu: '%s' vs '%s'", (unsigned long long)i,
                k, lm_gguf_key(out, i));
        if (strcmp(k, "general.file_type") == 0) {
            uint32_t ft = 99;
            T_CHECK(lm_gguf_kv_type(out, i) == LM_GGUF_TYPE_UINT32, "file_type type");
            T_CHECK(lm_gguf_get_u32(out, k, &ft, &err) == LM_OK &&
                        ft == (uint32_t)lm_gguf_convert_ftype(target),
                    "file_type %u for %s", ft, lm_dtype_name(target));
            continue;
        }
        lm_gguf_value a, b;
        T_REQUIRE(lm_gguf_kv_value(in, i, &a, &err) == LM_OK, "%s", err.msg);
        T_REQUIRE(lm_gguf_kv_value(out, i, &b, &err) == LM_OK, "%s", err.msg);
        /* the encoded value: type, element type, count and bytes (for arrays of strings and
         * nested arrays the bytes include every length and element header) */
        T_CHECK(a.type == b.type && a.elem_type == b.elem_type && a.n == b.n && a.size == b.size &&
                    (a.size == 0 || memcmp(a.data, b.data, a.size) == 0),
                "kv '%s' differs", k);
    }
}

/* Expected f32 values of an output tensor of type dst made from source values x. */
static void check_values(const synth_tensor *st, const lm_tensor_info *ti, const lm_tensor_info *to,
                         lm_dtype target) {
    uint64_t ne0 = ti->ne[0], rows = ti->n_elements / ne0;
    if (to->dtype == ti->dtype) {
        T_CHECK(to->nbytes == ti->nbytes && memcmp(to->data, ti->data, ti->nbytes) == 0,
                "%s: not copied byte for byte", st->name);
        return;
    }
    size_t rs_in = lm_dtype_row_size(ti->dtype, ne0), rs_out = lm_dtype_row_size(to->dtype, ne0);
    T_REQUIRE(to->nbytes == rs_out * rows, "%s: nbytes %llu", st->name,
              (unsigned long long)to->nbytes);
    float *x = malloc(ne0 * sizeof(float)), *y = malloc(ne0 * sizeof(float));
    uint8_t *q = malloc(rs_out);
    int bad_exact = 0, bad_bound = 0, bad_requant = 0;
    double tol = to->dtype == Q80 ? 1.0 / 100 : to->dtype == Q50 ? 1.0 / 12 : 1.0 / 6;
    for (uint64_t r = 0; r < rows; r++) {
        T_REQUIRE(
            lm_dequant_row(ti->dtype, (const uint8_t *)ti->data + r * rs_in, x, (int64_t)ne0) == 0,
            "dequant in");
        T_REQUIRE(
            lm_dequant_row(to->dtype, (const uint8_t *)to->data + r * rs_out, y, (int64_t)ne0) == 0,
            "dequant out");
        float amax = 0;
        for (uint64_t j = 0; j < ne0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        for (uint64_t j = 0; j < ne0; j++) {
            if (to->dtype == F32) {
                bad_exact += memcmp(&x[j], &y[j], 4) != 0;
            } else if (to->dtype == F16) {
                float h = lm_half_to_f32(lm_f32_to_half(x[j]));
                bad_exact += memcmp(&h, &y[j], 4) != 0;
            } else {
                bad_bound += fabs((double)y[j] - (double)x[j]) > tol * amax + 1e-7;
            }
        }
        if (to->dtype != F32 && to->dtype != F16) {
            /* exactly what quantizing the exact input values gives */
            lm_quantize_row(to->dtype, x, q, (int64_t)ne0);
            bad_requant += memcmp(q, (const uint8_t *)to->data + r * rs_out, rs_out) != 0;
        }
    }
    T_CHECK(bad_exact == 0, "%s -> %s (target %s): %d values not exact", st->name,
            lm_dtype_name(to->dtype), lm_dtype_name(target), bad_exact);
    T_CHECK(bad_bound == 0, "%s -> %s: %d values beyond %.3f * row max", st->name,
            lm_dtype_name(to->dtype), bad_bound, tol);
    T_CHECK(bad_requant == 0, "%s -> %s: %d rows differ from quantize(dequant(row))", st->name,
            lm_dtype_name(to->dtype), bad_requant);
    free(x);
    free(y);
    free(q);
}

static void check_conversion(const char *in_path, const char *out_path, int ti_target) {
    lm_err err;
    lm_gguf *in = NULL, *out = NULL;
    lm_dtype target = k_targets[ti_target];
    T_REQUIRE(lm_gguf_open_file(in_path, NULL, &in, &err) == LM_OK, "%s", err.msg);
    if (lm_gguf_open_file(out_path, NULL, &out, &err) != LM_OK) {
        T_CHECK(0, "output does not open: %s", err.msg);
        lm_gguf_close(in);
        return;
    }
    check_metadata(in, out, target);
    T_CHECK(lm_gguf_n_tensors(out) == N_TENSORS, "n_tensors");
    for (uint64_t i = 0; i < N_TENSORS && i < lm_gguf_n_tensors(out); i++) {
        const synth_tensor *st = &k_tensors[i];
        const lm_tensor_info *a = lm_gguf_tensor(in, i), *b = lm_gguf_tensor(out, i);
        T_CHECK(strcmp(a->name, b->name) == 0 && a->n_dims == b->n_dims &&
                    memcmp(a->ne, b->ne, sizeof a->ne) == 0,
                "tensor %llu: %s vs %s", (unsigned long long)i, a->name, b->name);
        T_CHECK(b->dtype == st->want[ti_target], "%s: %s, want %s (target %s)", st->name,
                lm_dtype_name(b->dtype), lm_dtype_name(st->want[ti_target]), lm_dtype_name(target));
        T_CHECK(lm_gguf_convert_tensor_type(a->name, a->n_dims, a->ne, a->dtype, target, NULL) ==
                    b->dtype,
                "%s: rule function disagrees", st->name);
        T_CHECK(b->offset % lm_gguf_alignment(out) == 0, "%s: offset", st->name);
        if (b->dtype == st->want[ti_target]) check_values(st, a, b, target);
    }
    lm_gguf_close(in);
    lm_gguf_close(out);
}

/* ---------------------------------------------------------------------------------------
 * tests
 * ------------------------------------------------------------------------------------ */

static void test_targets(void) {
    const char *in = synth_path();
    T_REQUIRE(in, "cannot write the synthetic model");
    for (int k = 0; k < 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "out_%s.gguf", lm_dtype_name(k_targets[k]));
        const char *out = tmp_path(name);
        lm_err err;
        lm_status s = convert(in, out, k_targets[k], LM_GGUF_CONVERT_ALLOW_REQUANTIZE, 2, &err);
        T_CHECK(s == LM_OK, "to %s: %s", lm_dtype_name(k_targets[k]), err.msg);
        if (s == LM_OK) check_conversion(in, out, k);
        unlink(out);
    }
}

static void test_chained(void) {
    /* converting an output again to the same type changes nothing but nothing */
    const char *in = synth_path();
    T_REQUIRE(in, "no synthetic model");
    const char *a = tmp_path("chain_a.gguf"), *b = tmp_path("chain_b.gguf");
    lm_err err;
    T_REQUIRE(convert(in, a, Q4K, LM_GGUF_CONVERT_ALLOW_REQUANTIZE, 1, &err) == LM_OK, "%s",
              err.msg);
    T_REQUIRE(convert(a, b, Q4K, 0, 1, &err) == LM_OK, "second pass: %s", err.msg);
    size_t la = 0, lb = 0;
    void *pa = read_all(a, &la), *pb = read_all(b, &lb);
    T_CHECK(pa && pb && la == lb && memcmp(pa, pb, la) == 0, "q4_K of a q4_K file is not itself");
    free(pa);
    free(pb);
    unlink(a);
    unlink(b);
}

static void test_deterministic(void) {
    const char *in = synth_path();
    T_REQUIRE(in, "no synthetic model");
    const lm_dtype ts[3] = {Q4K, F16, Q40};
    for (int k = 0; k < 3; k++) {
        const char *a = tmp_path("det_a.gguf"), *b = tmp_path("det_b.gguf");
        lm_err err;
        T_REQUIRE(convert(in, a, ts[k], LM_GGUF_CONVERT_ALLOW_REQUANTIZE, 1, &err) == LM_OK, "%s",
                  err.msg);
        T_REQUIRE(convert(in, b, ts[k], LM_GGUF_CONVERT_ALLOW_REQUANTIZE, 3, &err) == LM_OK, "%s",
                  err.msg);
        size_t la = 0, lb = 0;
        void *pa = read_all(a, &la), *pb = read_all(b, &lb);
        T_CHECK(pa && pb && la == lb && memcmp(pa, pb, la) == 0,
                "%s: 1 and 3 threads give different files", lm_dtype_name(ts[k]));
        free(pa);
        free(pb);
        unlink(a);
        unlink(b);
    }
}

typedef struct prog_rec {
    int calls, bad_order;
    uint64_t last_done, last_bytes, n, total;
    int stop_after; /* > 0: return 1 on that call */
} prog_rec;

static int on_progress(void *user, uint64_t done, uint64_t n, uint64_t bytes, uint64_t total) {
    prog_rec *p = user;
    p->calls++;
    if (done < p->last_done || bytes < p->last_bytes || done > n || bytes > total) p->bad_order++;
    p->last_done = done, p->last_bytes = bytes, p->n = n, p->total = total;
    return p->stop_after > 0 && p->calls >= p->stop_after;
}

static void test_progress_and_stats(void) {
    const char *in = synth_path();
    T_REQUIRE(in, "no synthetic model");
    const char *out = tmp_path("prog.gguf");
    prog_rec rec = {0};
    lm_gguf_convert_opts o = lm_gguf_convert_default_opts();
    o.target = Q4K;
    o.flags = LM_GGUF_CONVERT_ALLOW_REQUANTIZE;
    o.progress = on_progress;
    o.progress_user = &rec;
    lm_gguf_convert_stats s;
    lm_err err;
    lm_err_clear(&err);
    T_REQUIRE(lm_gguf_convert(in, out, &o, &s, &err) == LM_OK, "%s", err.msg);
    T_CHECK(rec.calls > (int)N_TENSORS && rec.bad_order == 0, "calls %d, out of order %d",
            rec.calls, rec.bad_order);
    T_CHECK(rec.last_done == N_TENSORS && rec.n == N_TENSORS && rec.last_bytes == rec.total,
            "last call %llu/%llu, %llu/%llu bytes", (unsigned long long)rec.last_done,
            (unsigned long long)rec.n, (unsigned long long)rec.last_bytes,
            (unsigned long long)rec.total);
    struct stat si, so;
    T_CHECK(stat(in, &si) == 0 && stat(out, &so) == 0 && s.in_bytes == (uint64_t)si.st_size &&
                s.out_bytes == (uint64_t)so.st_size,
            "stats sizes");
    /* copied: 1-D F32, Q4_K weight, I32; fallbacks: the 96- and 20-wide weights */
    T_CHECK(s.n_tensors == N_TENSORS && s.n_copied == 3 && s.n_converted == N_TENSORS - 3 &&
                s.n_fallback == 3,
            "stats: %llu tensors, %llu copied, %llu converted, %llu fallback",
            (unsigned long long)s.n_tensors, (unsigned long long)s.n_copied,
            (unsigned long long)s.n_converted, (unsigned long long)s.n_fallback);
    unlink(out);

    /* stopping from the callback: LM_ERR_ABORTED, nothing left behind */
    prog_rec stop = {0};
    stop.stop_after = 4;
    o.progress_user = &stop;
    lm_err_clear(&err);
    T_CHECK(lm_gguf_convert(in, out, &o, NULL, &err) == LM_ERR_ABORTED, "not aborted: %s", err.msg);
    T_CHECK(count_prefix("prog.gguf") == 0, "output or temp file left after abort");
}

static void test_requantize_refused(void) {
    const char *in = synth_path();
    T_REQUIRE(in, "no synthetic model");
    const char *out = tmp_path("requant.gguf");
    lm_err err;
    T_CHECK(convert(in, out, Q40, 0, 1, &err) == LM_ERR_UNSUPPORTED && strstr(err.msg, "requantiz"),
            "Q8_0/Q4_K -> Q4_0 without the flag: %s", err.msg);
    T_CHECK(count_prefix("requant.gguf") == 0, "output left");
    /* dequantizing and copying need no flag */
    T_CHECK(convert(in, out, F16, 0, 1, &err) == LM_OK, "%s", err.msg);
    unlink(out);
}

static void test_types(void) {
    T_CHECK(lm_gguf_convert_parse_type("Q4_k") == Q4K, "q4_k");
    T_CHECK(lm_gguf_convert_parse_type("f32") == F32, "f32");
    T_CHECK(lm_gguf_convert_parse_type("BF16") == LM_DTYPE_BF16, "bf16");
    T_CHECK(lm_gguf_convert_parse_type("iq4_xs") == LM_DTYPE_IQ4_XS, "iq4_xs");
    T_CHECK(lm_gguf_convert_parse_type("q8_K") == LM_DTYPE_INVALID, "q8_K is no target");
    T_CHECK(lm_gguf_convert_parse_type("q4_k_m") == LM_DTYPE_INVALID, "q4_k_m");
    T_CHECK(lm_gguf_convert_parse_type("") == LM_DTYPE_INVALID, "empty");
    /* llama.cpp's LLAMA_FTYPE numbers (include/llama.h) */
    T_CHECK(lm_gguf_convert_ftype(F32) == 0 && lm_gguf_convert_ftype(F16) == 1 &&
                lm_gguf_convert_ftype(Q40) == 2 && lm_gguf_convert_ftype(LM_DTYPE_Q4_1) == 3 &&
                lm_gguf_convert_ftype(Q80) == 7 && lm_gguf_convert_ftype(Q50) == 8 &&
                lm_gguf_convert_ftype(LM_DTYPE_Q5_1) == 9 &&
                lm_gguf_convert_ftype(LM_DTYPE_Q2_K) == 10 &&
                lm_gguf_convert_ftype(LM_DTYPE_Q3_K) == 11 && lm_gguf_convert_ftype(Q4K) == 14 &&
                lm_gguf_convert_ftype(LM_DTYPE_Q5_K) == 16 &&
                lm_gguf_convert_ftype(LM_DTYPE_Q6_K) == 18 &&
                lm_gguf_convert_ftype(LM_DTYPE_IQ4_NL) == 25 &&
                lm_gguf_convert_ftype(LM_DTYPE_IQ4_XS) == 30 &&
                lm_gguf_convert_ftype(LM_DTYPE_BF16) == 32 &&
                lm_gguf_convert_ftype(LM_DTYPE_MXFP4) == 38 &&
                lm_gguf_convert_ftype(LM_DTYPE_Q8_K) == -1,
            "ftype numbers");
    /* fallbacks as llama.cpp picks them for rows of 96 (32 | 96, 256 does not) and of 20 */
    const uint64_t ne96[2] = {96, 2}, ne20[2] = {20, 2};
    const struct {
        lm_dtype target, want96, want20;
    } fb[] = {
        {LM_DTYPE_Q2_K, Q40, F16},
        {LM_DTYPE_Q3_K, Q40, F16},
        {Q4K, Q50, F16},
        {LM_DTYPE_Q5_K, LM_DTYPE_Q5_1, F16},
        {LM_DTYPE_Q6_K, Q80, F16},
        {LM_DTYPE_IQ4_XS, LM_DTYPE_IQ4_NL, F16},
        {LM_DTYPE_IQ4_NL, LM_DTYPE_IQ4_NL, F16},
        {LM_DTYPE_MXFP4, LM_DTYPE_MXFP4, F16},
        {LM_DTYPE_BF16, LM_DTYPE_BF16, LM_DTYPE_BF16},
    };
    for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) {
        int f96 = -1, f20 = -1;
        lm_dtype a = lm_gguf_convert_tensor_type("x.weight", 2, ne96, F32, fb[i].target, &f96);
        lm_dtype b = lm_gguf_convert_tensor_type("x.weight", 2, ne20, F32, fb[i].target, &f20);
        T_CHECK(a == fb[i].want96 && b == fb[i].want20, "%s: %s / %s", lm_dtype_name(fb[i].target),
                lm_dtype_name(a), lm_dtype_name(b));
        T_CHECK(f96 == (fb[i].want96 != fb[i].target) && f20 == (fb[i].want20 != fb[i].target),
                "%s: fallback flags", lm_dtype_name(fb[i].target));
    }
}

static void test_errors(void) {
    const char *in = synth_path();
    T_REQUIRE(in, "no synthetic model");
    lm_err err;
    const char *out = tmp_path("err_out.gguf");

    T_CHECK(convert(tmp_path("missing.gguf"), out, F32, 0, 1, &err) == LM_ERR_IO &&
                strstr(err.msg, "missing.gguf"),
            "missing input: %s", err.msg);
    T_CHECK(count_prefix("err_out.gguf") == 0, "output left (missing input)");

    const char *garbage = t_write_tmp("garbage.gguf", "this is not a GGUF file at all\n");
    T_REQUIRE(garbage, "cannot write garbage");
    T_CHECK(convert(garbage, out, F32, 0, 1, &err) == LM_ERR_FORMAT, "garbage: %s", err.msg);
    T_CHECK(count_prefix("err_out.gguf") == 0, "output left (garbage)");

    size_t len = 0;
    uint8_t *bytes = read_all(in, &len);
    T_REQUIRE(bytes && len > 1000, "cannot read the synthetic model");
    const char *trunc = tmp_path("trunc.gguf");
    const size_t cuts[3] = {len / 2, len - 1, 200};
    for (int k = 0; k < 3; k++) {
        T_REQUIRE(write_all(trunc, bytes, cuts[k]), "cannot write");
        T_CHECK(convert(trunc, out, F32, 0, 1, &err) == LM_ERR_FORMAT, "truncated at %zu: %s (%s)",
                cuts[k], lm_status_str(err.code), err.msg);
        T_CHECK(count_prefix("err_out.gguf") == 0, "output left (truncated)");
    }
    free(bytes);

    T_CHECK(convert(in, out, LM_DTYPE_Q8_K, 0, 1, &err) == LM_ERR_UNSUPPORTED, "q8_K target: %s",
            err.msg);
    T_CHECK(convert(in, out, LM_DTYPE_INVALID, 0, 1, &err) == LM_ERR_UNSUPPORTED,
            "invalid target: %s", err.msg);
    T_CHECK(count_prefix("err_out.gguf") == 0, "output left (bad target)");

    /* in == out, by the same path and through another name of the same file */
    size_t before = 0, after = 0;
    void *orig = read_all(in, &before);
    T_CHECK(convert(in, in, F16, 0, 1, &err) == LM_ERR_INVALID_ARG, "in == out: %s", err.msg);
    const char *link = tmp_path("link.gguf");
    unlink(link);
    T_CHECK(symlink(in, link) == 0, "symlink");
    T_CHECK(convert(in, link, F16, 0, 1, &err) == LM_ERR_INVALID_ARG, "in == out via link: %s",
            err.msg);
    void *now = read_all(in, &after);
    T_CHECK(orig && now && before == after && memcmp(orig, now, before) == 0, "the input changed");
    free(orig);
    free(now);
    unlink(link);
    T_CHECK(count_prefix("synth.gguf.tmp") == 0, "temp file next to the input");

    /* unwritable output: a directory that does not exist */
    T_CHECK(convert(in, tmp_path("no/such/dir/out.gguf"), F32, 0, 1, &err) == LM_ERR_IO,
            "unwritable: %s", err.msg);

    /* a tensor type lemma cannot dequantize: refused before anything is written */
    lm_gguf_writer *w = NULL;
    static uint8_t blk[66 * 2];
    uint64_t ne[2] = {256, 2};
    lm_err_clear(&err);
    T_REQUIRE(lm_gguf_writer_new(&w, &err) == LM_OK, "writer");
    T_REQUIRE(lm_gguf_add_tensor(w, "x.weight", LM_DTYPE_IQ2_XXS, 2, ne, blk, sizeof blk, &err) ==
                  LM_OK,
              "%s", err.msg);
    const char *iq = tmp_path("iq2.gguf");
    T_REQUIRE(lm_gguf_write_file(w, iq, &err) == LM_OK, "%s", err.msg);
    lm_gguf_writer_free(w);
    T_CHECK(convert(iq, out, F32, 0, 1, &err) == LM_ERR_UNSUPPORTED && strstr(err.msg, "x.weight"),
            "iq2_xxs source: %s", err.msg);
    T_CHECK(count_prefix("err_out.gguf") == 0, "output left (unsupported source)");

    /* an existing output is replaced only on success */
    const char *keep = t_write_tmp("err_keep.gguf", "old contents");
    T_CHECK(convert(garbage, keep, F32, 0, 1, &err) == LM_ERR_FORMAT, "garbage");
    size_t kl = 0;
    char *kc = read_all(keep, &kl);
    T_CHECK(kc && kl == 12 && memcmp(kc, "old contents", 12) == 0, "existing output changed");
    free(kc);
    T_CHECK(count_prefix("err_keep.gguf") == 1, "temp file left next to an existing output");
}

static void test_alloc_failures(void) {
    const char *in = synth_path();
    T_REQUIRE(in, "no synthetic model");
    const char *out = tmp_path("nomem.gguf");
    unsigned long n;
    for (n = 1; n < 2000; n++) {
        lm_err err;
        lm_alloc_fail_after(n, 0);
        lm_status s = convert(in, out, Q80, LM_GGUF_CONVERT_ALLOW_REQUANTIZE, 1, &err);
        unsigned long injected = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (s == LM_OK && injected == 0) break;
        T_CHECK(s == LM_ERR_NOMEM, "n=%lu: %s (%s)", n, lm_status_str(s), err.msg);
        T_CHECK(count_prefix("nomem.gguf") == 0, "n=%lu: output left", n);
        if (s != LM_ERR_NOMEM) unlink(out);
    }
    T_CHECK(n > 10 && n < 2000, "allocations: %lu", n);
    T_CHECK(file_exists(out), "no output after the loop");
    unlink(out);
}

static int n_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_cli(void) {
    if (!t_cli_has("quantize")) T_SKIP("%s not built or without quantize", t_cli_bin());
    const char *in = synth_path();
    T_REQUIRE(in, "no synthetic model");
    const char *out = tmp_path("cli_out.gguf");
    char *o = NULL, *e = NULL;
    const char *ok_args[] = {"quantize", in, out, "Q8_0", "-t", "2", "--allow-requantize", NULL};
    int rc = t_cli_run(ok_args, NULL, &o, NULL, &e);
    T_CHECK(rc == 0 && strstr(e, "12 tensors") && strstr(e, "MiB ->"), "rc %d, stderr: %s", rc, e);
    T_CHECK(file_exists(out), "no output");
    free(o), free(e);
    unlink(out);

    const char *requant[] = {"quantize", in, out, "q4_0", NULL};
    rc = t_cli_run(requant, NULL, &o, NULL, &e);
    T_CHECK(rc == 1 && strstr(e, "lemma quantize: ") && strstr(e, "requantiz") && n_lines(e) == 1,
            "requantize: rc %d, stderr: %s", rc, e);
    free(o), free(e);

    const char *bad_type[] = {"quantize", in, out, "q9_9", NULL};
    rc = t_cli_run(bad_type, NULL, &o, NULL, &e);
    T_CHECK(rc == 2 && strstr(e, "q9_9"), "bad type: rc %d, stderr: %s", rc, e);
    free(o), free(e);

    const char *few[] = {"quantize", in, out, NULL};
    rc = t_cli_run(few, NULL, &o, NULL, &e);
    T_CHECK(rc == 2, "missing TYPE: rc %d", rc);
    free(o), free(e);

    const char *bad_t[] = {"quantize", in, out, "f16", "-t", "0", NULL};
    rc = t_cli_run(bad_t, NULL, &o, NULL, &e);
    T_CHECK(rc == 2, "-t 0: rc %d", rc);
    free(o), free(e);

    const char *same[] = {"quantize", in, in, "f16", NULL};
    rc = t_cli_run(same, NULL, &o, NULL, &e);
    T_CHECK(rc == 2, "in == out: rc %d", rc);
    free(o), free(e);

    const char *missing[] = {"quantize", tmp_path("nope.gguf"), out, "f16", NULL};
    rc = t_cli_run(missing, NULL, &o, NULL, &e);
    T_CHECK(rc == 1 && strstr(e, "nope.gguf"), "missing input: rc %d, stderr: %s", rc, e);
    free(o), free(e);
    T_CHECK(count_prefix("cli_out.gguf") == 0, "output left by a failed command");

    const char *help[] = {"quantize", "-h", NULL};
    rc = t_cli_run(help, NULL, &o, NULL, &e);
    T_CHECK(rc == 0 && strstr(o, "usage: lemma quantize") && strstr(o, "q4_k"), "-h: %d %s", rc, o);
    free(o), free(e);
}

static void test_smollm_f32(void) {
    if (!file_exists(SMOLLM)) T_SKIP("%s not installed (make models)", SMOLLM);
    const char *out = tmp_path("smollm-f32.gguf");
    lm_err err;
    T_REQUIRE(convert(SMOLLM, out, F32, 0, 2, &err) == LM_OK, "%s", err.msg);
    char hex[65];
    sha256_file_hex(out, hex);
    T_CHECK(strcmp(hex, SMOLLM_F32_SHA256) == 0, "sha256 %s", hex);

    lm_gguf *a = NULL, *b = NULL;
    T_REQUIRE(lm_gguf_open_file(SMOLLM, NULL, &a, &err) == LM_OK, "%s", err.msg);
    if (lm_gguf_open_file(out, NULL, &b, &err) != LM_OK) {
        T_CHECK(0, "%s", err.msg);
        lm_gguf_close(a);
        unlink(out);
        return;
    }
    T_CHECK(lm_gguf_n_tensors(a) == lm_gguf_n_tensors(b), "n_tensors");
    uint32_t ft = 99;
    T_CHECK(lm_gguf_get_u32(b, "general.file_type", &ft, &err) == LM_OK && ft == 0, "file_type %u",
            ft);
    const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight",
                           "output_norm.weight"};
    for (int k = 0; k < 4; k++) {
        int64_t ia = lm_gguf_find_tensor(a, names[k]), ib = lm_gguf_find_tensor(b, names[k]);
        T_REQUIRE(ia >= 0 && ib >= 0, "%s missing", names[k]);
        const lm_tensor_info *ta = lm_gguf_tensor(a, (uint64_t)ia),
                             *tb = lm_gguf_tensor(b, (uint64_t)ib);
        T_CHECK(tb->dtype == F32 && tb->n_elements == ta->n_elements, "%s: %s", names[k],
                lm_dtype_name(tb->dtype));
        uint64_t ne0 = ta->ne[0], rows = ta->n_elements / ne0;
        size_t rs = lm_dtype_row_size(ta->dtype, ne0);
        float *x = malloc(ne0 * sizeof(float));
        int bad = 0;
        for (uint64_t r = 0; r < rows && tb->dtype == F32; r++) {
            lm_dequant_row(ta->dtype, (const uint8_t *)ta->data + r * rs, x, (int64_t)ne0);
            bad += memcmp(x, (const uint8_t *)tb->data + r * ne0 * 4, ne0 * 4) != 0;
        }
        T_CHECK(bad == 0, "%s: %d rows differ from the dequantized source", names[k], bad);
        free(x);
    }
    lm_gguf_close(a);
    lm_gguf_close(b);

    char msg[512] = "";
    lm_model *m = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 1;
    lm_status s = lm_model_load(out, &mp, &m, msg, sizeof msg);
    T_CHECK(s == LM_OK && m, "lemma cannot load the f32 model: %s", msg);
    if (m) T_CHECK(lm_model_n_vocab(m) == 49152, "n_vocab %d", lm_model_n_vocab(m));
    lm_model_free(m);
    unlink(out);
}

int main(void) {
    T_RUN(test_types);
    T_RUN(test_targets);
    T_RUN(test_chained);
    T_RUN(test_deterministic);
    T_RUN(test_progress_and_stats);
    T_RUN(test_requantize_refused);
    T_RUN(test_errors);
    T_RUN(test_alloc_failures);
    T_RUN(test_cli);
    T_RUN(test_smollm_f32);
    unlink(tmp_path("synth.gguf"));
    return t_finish();
}
