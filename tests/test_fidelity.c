/* test_fidelity.c — lemma's logits against the reference implementation (Hugging Face
 * transformers) on the tiny random-weight fixtures of tests/data/fidelity (see its README):
 * Llama, Qwen2, Qwen3 and Gemma 3 (sliding window 8 < 24 tokens), from GGUF in f32, f16 and
 * q8_0 and from the Hugging Face directory itself (config.json + model.safetensors, f32: the
 * HF binding, model/bind_hf.c), through the decode path (one token at a time: every
 * position's logits) and the prefill path (whole sequence, and in chunks of 5).
 *
 * Tolerances, relative to the range (max - min) of the reference logits of the position:
 *   f32   1e-3, and the argmax equal at every position (the criterion); the same for
 *         the HF directory (f32 weights; the KV cache is f16 in both);
 *   f16   1e-2 (weights rounded to binary16);
 *   q8_0  6e-2 (weights and activations quantized to 8 bits);
 * for f16 and q8_0 the argmax must agree wherever the reference's top-2 margin exceeds twice
 * the tolerance (a closer pair is a tie that the rounding may flip).
 *
 * RoPE scaling (fixtures made the same way, see the README): llama-llama3 (Llama 3
 * "llama3": rope_freqs.weight in the GGUFs), qwen2-yarn and qwen3-yarn (YaRN; the latter
 * with beta_fast/slow and an explicit attention_factor), qwen3-yarn-notrunc (YaRN with
 * truncate false: the HF directory only, GGUF has no key for it) and gemma3-linear (linear
 * scaling of the global layer only), with the same tolerances. test_rope_old_config: the
 * same directories with the older config layout (rope_theta + rope_scaling, "type") give the
 * same logits; test_rope_factors: the Llama 3 divisors computed from config.json equal the
 * ones llama.cpp's converter wrote into the GGUF; test_rope_bad_gguf / test_hf_bad_config:
 * malformed or unsupported scaling is a clear error.
 *
 * MLX affine packs (test_hf_mlx): every matrix of a fixture is quantized here (3 and 4 bits,
 * groups of 32, f32 scales/biases) into an mlx-lm style directory, next to a twin holding the
 * same weights dequantized to f32; the pack must give the twin's logits (1e-3 of the range,
 * argmax as for f16): the binding and lm_matmul_mlx against the float path. */
#include "lemma.h"
#include "core/alloc.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "model/arch.h"
#include "tensor/quant.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_LEN 24

typedef struct {
    int n_seq, n_vocab;
    int32_t seq[2][T_LEN];
    float *logits; /* (n_seq, T_LEN, n_vocab) */
} reference;

static int load_reference(const char *arch, reference *r) {
    char p[512];
    snprintf(p, sizeof p, "tests/data/fidelity/%s/reference.json", arch);
    json_t *j = json_load_file(p, 0, NULL);
    if (!j) return 0;
    json_t *seqs = json_object_get(j, "sequences");
    r->n_seq = (int)json_array_size(seqs);
    r->n_vocab = (int)json_integer_value(json_object_get(j, "n_vocab"));
    for (int s = 0; s < r->n_seq && s < 2; s++)
        for (int t = 0; t < T_LEN; t++)
            r->seq[s][t] = (int32_t)json_integer_value(json_array_get(json_array_get(seqs, s), t));
    json_decref(j);
    snprintf(p, sizeof p, "tests/data/fidelity/%s/logits.f32", arch);
    size_t n = (size_t)r->n_seq * T_LEN * (size_t)r->n_vocab;
    r->logits = malloc(n * sizeof(float));
    FILE *f = fopen(p, "rb");
    int ok = f && r->logits && fread(r->logits, sizeof(float), n, f) == n;
    if (f) fclose(f);
    return ok;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Compares one position; returns 1 if within tolerance. */
static double worst_rel; /* largest max|diff| / range seen for the current variant */

static int compare(const char *what, int pos, const float *got, const float *ref, int n,
                   double rel_tol, int strict_argmax) {
    double lo = ref[0], hi = ref[0], maxd = 0;
    for (int i = 0; i < n; i++) {
        lo = fmin(lo, ref[i]);
        hi = fmax(hi, ref[i]);
        maxd = fmax(maxd, fabs((double)got[i] - ref[i]));
    }
    double tol = rel_tol * (hi - lo);
    worst_rel = fmax(worst_rel, maxd / (hi - lo));
    int ra = argmax(ref, n), ga = argmax(got, n);
    double second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != ra) second = fmax(second, ref[i]);
    int must_agree = strict_argmax || ref[ra] - second > 2 * tol;
    int ok = maxd <= tol && (!must_agree || ra == ga);
    T_CHECK(ok, "%s pos %d: max|diff| %.3g (tolerance %.3g), argmax %d vs reference %d", what,
            pos, maxd, tol, ga, ra);
    return ok;
}

/* hf_only: the fixture has no GGUF (a setting GGUF cannot express) */
static void run_fixture(const char *arch, int hf_only) {
    reference r = {0};
    T_REQUIRE(load_reference(arch, &r), "%s: cannot read the reference", arch);
    const char *variants[] = {"f32", "f16", "q8_0", "hf"};
    const double tols[] = {1e-3, 1e-2, 6e-2, 1e-3};
    for (int v = hf_only ? 3 : 0; v < 4; v++) {
        char path[512], err[512] = "", what[128];
        const int strict = v == 0 || v == 3;
        if (v == 3) /* the Hugging Face directory the GGUFs were converted from */
            snprintf(path, sizeof path, "tests/data/fidelity/%s", arch);
        else
            snprintf(path, sizeof path, "tests/data/fidelity/%s/model-%s.gguf", arch,
                     variants[v]);
        lm_model_params mp = lm_model_default_params();
        mp.n_threads = 2;
        lm_model *m = NULL;
        lm_status st = lm_model_load(path, &mp, &m, err, sizeof err);
        T_CHECK(st == LM_OK, "%s: %s", path, err);
        if (st != LM_OK) continue;
        T_CHECK(lm_model_n_vocab(m) == r.n_vocab, "%s: n_vocab %d", path, lm_model_n_vocab(m));
        worst_rel = 0;
        for (int s = 0; s < r.n_seq; s++) {
            const float *ref_seq = r.logits + (size_t)s * T_LEN * r.n_vocab;
            /* decode path: every position */
            lm_session *ses = NULL;
            T_REQUIRE(lm_session_new(m, NULL, &ses, err, sizeof err) == LM_OK, "%s", err);
            int bad = 0;
            for (int t = 0; t < T_LEN && bad < 3; t++) {
                const float *lg;
                size_t nv;
                T_REQUIRE(lm_session_append_tokens(ses, &r.seq[s][t], 1) == LM_OK, "%s",
                          lm_session_error(ses));
                T_REQUIRE(lm_session_logits(ses, &lg, &nv) == LM_OK && (int)nv == r.n_vocab,
                          "logits");
                snprintf(what, sizeof what, "%s/%s seq %d decode", arch, variants[v], s);
                bad += !compare(what, t, lg, ref_seq + (size_t)t * r.n_vocab, r.n_vocab, tols[v],
                                strict);
            }
            lm_session_free(ses);
            /* prefill path: the whole sequence at once, then in chunks of 5 */
            for (int chunk = 0; chunk < 2; chunk++) {
                lm_session_params sp = lm_session_default_params();
                if (chunk) sp.n_batch = 5;
                T_REQUIRE(lm_session_new(m, &sp, &ses, err, sizeof err) == LM_OK, "%s", err);
                const float *lg;
                size_t nv;
                T_REQUIRE(lm_session_append_tokens(ses, r.seq[s], T_LEN) == LM_OK, "%s",
                          lm_session_error(ses));
                T_REQUIRE(lm_session_logits(ses, &lg, &nv) == LM_OK, "logits");
                snprintf(what, sizeof what, "%s/%s seq %d prefill%s", arch, variants[v], s,
                         chunk ? " (chunks of 5)" : "");
                compare(what, T_LEN - 1, lg, ref_seq + (size_t)(T_LEN - 1) * r.n_vocab,
                        r.n_vocab, tols[v], strict);
                lm_session_free(ses);
            }
        }
        lm_model_free(m);
        printf("# %-7s %-5s worst max|diff| / logit range %.2e (tolerance %.0e)\n", arch,
               variants[v], worst_rel, tols[v]);
    }
    free(r.logits);
}

static void run_arch(const char *arch) { run_fixture(arch, 0); }

static void test_llama(void) { run_arch("llama"); }
static void test_qwen2(void) { run_arch("qwen2"); }
static void test_qwen3(void) { run_arch("qwen3"); }
static void test_gemma3(void) { run_arch("gemma3"); }
static void test_llama_llama3(void) { run_arch("llama-llama3"); }
static void test_qwen2_yarn(void) { run_arch("qwen2-yarn"); }
static void test_qwen3_yarn(void) { run_arch("qwen3-yarn"); }
static void test_qwen3_yarn_notrunc(void) { run_fixture("qwen3-yarn-notrunc", 1); }
static void test_gemma3_linear(void) { run_arch("gemma3-linear"); }

/* ---- MLX affine packs, made here from the fixtures' f32 weights -------------------------- */

typedef struct {
    json_t *hdr;
    unsigned char *data;
    size_t len, cap;
} st_writer;

static int st_add(st_writer *w, const char *name, const char *dtype, uint64_t d0, uint64_t d1,
                  int n_dims, const void *bytes, size_t nb) {
    if (w->len + nb > w->cap) {
        size_t cap = (w->len + nb) * 2;
        unsigned char *p = realloc(w->data, cap);
        if (!p) return 0;
        w->data = p;
        w->cap = cap;
    }
    memcpy(w->data + w->len, bytes, nb);
    json_t *shape = n_dims == 1 ? json_pack("[I]", (json_int_t)d1)
                                : json_pack("[I,I]", (json_int_t)d0, (json_int_t)d1);
    json_object_set_new(w->hdr, name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", dtype, "shape",
                                                shape, "data_offsets", (json_int_t)w->len,
                                                (json_int_t)(w->len + nb)));
    w->len += nb;
    return 1;
}

static int st_write(st_writer *w, const char *path) {
    char *h = json_dumps(w->hdr, JSON_COMPACT);
    if (!h) return 0;
    size_t hl = strlen(h), pad = (8 - hl % 8) % 8;
    uint64_t n = hl + pad;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n >> (8 * i));
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(le, 1, 8, f) == 8 && fwrite(h, 1, hl, f) == hl &&
             fwrite("        ", 1, pad, f) == pad && fwrite(w->data, 1, w->len, f) == w->len;
    if (f && fclose(f) != 0) ok = 0;
    free(h);
    return ok;
}

/* Quantizes W (rows, cols) f32 in groups of gs: packed quants (LSB-first bit stream per row),
 * f32 scales and biases, and the dequantized values in place. */
static void mlx_quantize(float *w, int64_t rows, int64_t cols, int bits, int gs, uint8_t *packed,
                         float *scales, float *biases) {
    const int qmax = (1 << bits) - 1;
    const size_t row_bytes = (size_t)cols * (size_t)bits / 8;
    memset(packed, 0, (size_t)rows * row_bytes);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols / gs; g++) {
            float *x = w + r * cols + g * gs;
            float lo = x[0], hi = x[0];
            for (int i = 1; i < gs; i++) {
                lo = fminf(lo, x[i]);
                hi = fmaxf(hi, x[i]);
            }
            float sc = hi > lo ? (hi - lo) / (float)qmax : 1e-4f;
            scales[r * (cols / gs) + g] = sc;
            biases[r * (cols / gs) + g] = lo;
            for (int i = 0; i < gs; i++) {
                long q = lroundf((x[i] - lo) / sc);
                q = q < 0 ? 0 : q > qmax ? qmax : q;
                uint64_t bit = (uint64_t)(g * gs + i) * (uint64_t)bits;
                for (int k = 0; k < bits; k++, bit++)
                    if (q >> k & 1) packed[r * (int64_t)row_bytes + (int64_t)(bit / 8)] |=
                        (uint8_t)(1u << (bit % 8));
                x[i] = sc * (float)q + lo;
            }
        }
}

/* Writes DIR/pack and DIR/twin from the fixture ARCH; returns 1 on success. */
static int make_mlx_dirs(const char *arch, const char *dir, int bits, int gs) {
    char p[600];
    snprintf(p, sizeof p, "tests/data/fidelity/%s", arch);
    lm_hf *hf = NULL;
    lm_err e;
    lm_err_clear(&e);
    if (lm_hf_open(p, &hf, &e) != LM_OK) return 0;
    st_writer pk = {json_object(), NULL, 0, 0}, tw = {json_object(), NULL, 0, 0};
    int ok = 1;
    for (uint32_t i = 0; ok && i < lm_hf_n_tensors(hf); i++) {
        const lm_tensor_info *t = lm_hf_tensor(hf, i);
        ok = t->dtype == LM_DTYPE_F32;
        const int64_t cols = (int64_t)t->ne[0], rows = (int64_t)t->ne[1];
        if (!ok) break;
        if (t->n_dims != 2 || cols % gs != 0) {
            ok = st_add(&pk, t->name, "F32", 0, (uint64_t)cols, 1, t->data, t->nbytes) &&
                 st_add(&tw, t->name, "F32", 0, (uint64_t)cols, 1, t->data, t->nbytes);
            continue;
        }
        float *w = malloc(t->nbytes), *sc = malloc((size_t)(rows * cols / gs) * 4),
              *bi = malloc((size_t)(rows * cols / gs) * 4);
        uint8_t *q = malloc((size_t)(rows * cols * bits / 8));
        ok = w && sc && bi && q;
        if (ok) {
            memcpy(w, t->data, t->nbytes);
            mlx_quantize(w, rows, cols, bits, gs, q, sc, bi);
            char nm[256];
            size_t base = strlen(t->name) - strlen(".weight");
            ok = st_add(&pk, t->name, "U32", (uint64_t)rows, (uint64_t)(cols * bits / 32), 2, q,
                        (size_t)(rows * cols * bits / 8));
            snprintf(nm, sizeof nm, "%.*s.scales", (int)base, t->name);
            ok = ok && st_add(&pk, nm, "F32", (uint64_t)rows, (uint64_t)(cols / gs), 2, sc,
                              (size_t)(rows * cols / gs) * 4);
            snprintf(nm, sizeof nm, "%.*s.biases", (int)base, t->name);
            ok = ok && st_add(&pk, nm, "F32", (uint64_t)rows, (uint64_t)(cols / gs), 2, bi,
                              (size_t)(rows * cols / gs) * 4);
            ok = ok && st_add(&tw, t->name, "F32", (uint64_t)rows, (uint64_t)cols, 2, w,
                              t->nbytes);
        }
        free(w);
        free(sc);
        free(bi);
        free(q);
    }
    lm_hf_close(hf);
    snprintf(p, sizeof p, "tests/data/fidelity/%s/config.json", arch);
    json_t *cfg = json_load_file(p, 0, NULL);
    ok = ok && cfg;
    const char *sub[2] = {"pack", "twin"};
    st_writer *ws[2] = {&pk, &tw};
    for (int k = 0; ok && k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, sub[k]);
        ok = mkdir(p, 0700) == 0;
        if (k == 0)
            json_object_set_new(cfg, "quantization", json_pack("{s:i,s:i}", "group_size", gs,
                                                               "bits", bits));
        else
            json_object_del(cfg, "quantization");
        snprintf(p, sizeof p, "%s/%s/config.json", dir, sub[k]);
        ok = ok && json_dump_file(cfg, p, 0) == 0;
        snprintf(p, sizeof p, "%s/%s/model.safetensors", dir, sub[k]);
        ok = ok && st_write(ws[k], p);
    }
    json_decref(cfg);
    for (int k = 0; k < 2; k++) {
        json_decref(ws[k]->hdr);
        free(ws[k]->data);
    }
    return ok;
}

/* Every position's logits (decode path) of sequence s: out (T_LEN, n_vocab). */
static int decode_all(const char *dir, const reference *r, int s, float *out) {
    char err[512] = "";
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    lm_model *m = NULL;
    lm_session *ses = NULL;
    int ok = lm_model_load(dir, &mp, &m, err, sizeof err) == LM_OK &&
             lm_session_new(m, NULL, &ses, err, sizeof err) == LM_OK;
    T_CHECK(ok, "%s: %s", dir, err);
    for (int t = 0; ok && t < T_LEN; t++) {
        const float *lg;
        size_t nv;
        ok = lm_session_append_tokens(ses, &r->seq[s][t], 1) == LM_OK &&
             lm_session_logits(ses, &lg, &nv) == LM_OK && (int)nv == r->n_vocab;
        T_CHECK(ok, "%s: %s", dir, lm_session_error(ses));
        if (ok) memcpy(out + (size_t)t * r->n_vocab, lg, (size_t)r->n_vocab * sizeof(float));
    }
    lm_session_free(ses);
    lm_model_free(m);
    return ok;
}

static void rm_mlx_dirs(const char *dir) {
    const char *files[] = {"pack/config.json", "pack/model.safetensors", "twin/config.json",
                           "twin/model.safetensors", "pack", "twin", ""};
    char p[600];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (unlink(p) != 0) rmdir(p);
    }
}

static void test_hf_mlx(void) {
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3"};
    const int bits[] = {4, 3};
    for (int a = 0; a < 4; a++) {
        reference r = {0};
        T_REQUIRE(load_reference(archs[a], &r), "%s: reference", archs[a]);
        float *pk = malloc((size_t)T_LEN * r.n_vocab * sizeof(float));
        float *tw = malloc((size_t)T_LEN * r.n_vocab * sizeof(float));
        T_REQUIRE(pk && tw, "memory");
        for (int b = 0; b < 2; b++) {
            char dir[] = "/tmp/lemma_mlx_XXXXXX", pdir[600], tdir[600], what[96];
            T_REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
            int ok = make_mlx_dirs(archs[a], dir, bits[b], 32);
            T_CHECK(ok, "%s: writing the MLX fixture", archs[a]);
            snprintf(pdir, sizeof pdir, "%s/pack", dir);
            snprintf(tdir, sizeof tdir, "%s/twin", dir);
            worst_rel = 0;
            for (int s = 0; ok && s < r.n_seq; s++) {
                if (!decode_all(pdir, &r, s, pk) || !decode_all(tdir, &r, s, tw)) break;
                snprintf(what, sizeof what, "%s/mlx q%d seq %d", archs[a], bits[b], s);
                for (int t = 0; t < T_LEN; t++)
                    compare(what, t, pk + (size_t)t * r.n_vocab, tw + (size_t)t * r.n_vocab,
                            r.n_vocab, 1e-3, 0);
            }
            printf("# %-7s mlx q%d worst max|diff| / logit range vs its f32 twin %.2e "
                   "(tolerance 1e-03)\n", archs[a], bits[b], worst_rel);
            rm_mlx_dirs(dir);
        }
        free(pk);
        free(tw);
        free(r.logits);
    }
}

/* ---- RoPE scaling: the older config layout, HF vs GGUF divisors, bad GGUF metadata ------- */

/* DIR/<files of fixture ARCH> as symbolic links, and DIR/config.json with rope_parameters
 * rewritten in the older layout (rope_theta + rope_scaling with "type"; for Gemma 3 the
 * full_attention part, and rope_local_base_freq). */
static int make_old_config_dir(const char *arch, const char *dir) {
    const char *files[] = {"model.safetensors", "tokenizer.json", "tokenizer_config.json"};
    char from[600], to[600], cwd[400];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    for (int i = 0; i < 3; i++) {
        snprintf(from, sizeof from, "%s/tests/data/fidelity/%s/%s", cwd, arch, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        if (symlink(from, to) != 0) return 0;
    }
    snprintf(from, sizeof from, "tests/data/fidelity/%s/config.json", arch);
    json_t *j = json_load_file(from, 0, NULL);
    if (!j) return 0;
    json_t *rp = json_deep_copy(json_object_get(j, "rope_parameters"));
    json_object_del(j, "rope_parameters");
    json_t *full = json_object_get(rp, "full_attention");
    if (full) {
        json_object_set(j, "rope_local_base_freq",
                        json_object_get(json_object_get(rp, "sliding_attention"), "rope_theta"));
    } else {
        full = rp;
    }
    json_t *sc = json_deep_copy(full);
    json_object_set(j, "rope_theta", json_object_get(sc, "rope_theta"));
    json_object_del(sc, "rope_theta");
    json_object_set(sc, "type", json_object_get(sc, "rope_type"));
    json_object_del(sc, "rope_type");
    json_object_set_new(j, "rope_scaling", sc);
    snprintf(to, sizeof to, "%s/config.json", dir);
    int ok = json_dump_file(j, to, 0) == 0;
    json_decref(rp);
    json_decref(j);
    return ok;
}

static void test_rope_old_config(void) {
    const char *archs[] = {"llama-llama3", "qwen2-yarn", "qwen3-yarn", "qwen3-yarn-notrunc",
                           "gemma3-linear"};
    for (int a = 0; a < 5; a++) {
        reference r = {0};
        T_REQUIRE(load_reference(archs[a], &r), "%s: reference", archs[a]);
        float *lg = malloc((size_t)T_LEN * r.n_vocab * sizeof(float));
        char dir[] = "/tmp/lemma_rope_XXXXXX", what[96];
        T_REQUIRE(lg && mkdtemp(dir) != NULL, "mkdtemp");
        T_CHECK(make_old_config_dir(archs[a], dir), "%s: writing the directory", archs[a]);
        worst_rel = 0;
        for (int s = 0; s < r.n_seq; s++) {
            if (!decode_all(dir, &r, s, lg)) break;
            snprintf(what, sizeof what, "%s (rope_scaling layout) seq %d", archs[a], s);
            for (int t = 0; t < T_LEN; t++)
                compare(what, t, lg + (size_t)t * r.n_vocab,
                        r.logits + ((size_t)s * T_LEN + t) * r.n_vocab, r.n_vocab, 1e-3, 1);
        }
        printf("# %-18s rope_scaling layout: worst max|diff| / logit range %.2e\n", archs[a],
               worst_rel);
        const char *files[] = {"model.safetensors", "tokenizer.json", "tokenizer_config.json",
                               "config.json"};
        char p[600];
        for (int i = 0; i < 4; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, files[i]);
            unlink(p);
        }
        rmdir(dir);
        free(lg);
        free(r.logits);
    }
}

/* The Llama 3 divisors from config.json (bind_hf.c, model.c) against those llama.cpp's
 * converter computed into rope_freqs.weight: the same float32 formula. */
static void test_rope_factors(void) {
    lm_err e;
    lm_err_clear(&e);
    lm_hf *hf = NULL;
    lm_gguf *g = NULL;
    lm_arch_model mh, mg;
    T_REQUIRE(lm_hf_open("tests/data/fidelity/llama-llama3", &hf, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_arch_from_hf(hf, &mh, NULL, 0, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_gguf_open_file("tests/data/fidelity/llama-llama3/model-f32.gguf", NULL, &g,
                                &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_arch_from_gguf(g, &mg, &e) == LM_OK, "%s", e.msg);
    T_CHECK(mh.hp.rope_scaling == LM_ROPE_SCALING_LLAMA3 && !mh.hp.rope_freqs_in_file &&
                mg.hp.rope_scaling == LM_ROPE_SCALING_NONE && mg.hp.rope_freqs_in_file,
            "kinds %d/%d, from file %d/%d", mh.hp.rope_scaling, mg.hp.rope_scaling,
            mh.hp.rope_freqs_in_file, mg.hp.rope_freqs_in_file);
    T_REQUIRE(mh.rope_freq_factors && mg.rope_freq_factors, "factors");
    double worst = 0;
    for (int p = 0; p < mh.hp.n_rot / 2; p++) {
        const double d = fabs((double)mh.rope_freq_factors[p] - mg.rope_freq_factors[p]) /
                         mg.rope_freq_factors[p];
        worst = fmax(worst, d);
        T_CHECK(d <= 1e-6, "pair %d: %.9g from config.json, %.9g in the GGUF", p,
                (double)mh.rope_freq_factors[p], (double)mg.rope_freq_factors[p]);
    }
    /* the three branches: kept, smoothed, divided by the factor */
    T_CHECK(mg.rope_freq_factors[0] == 1.0f && mg.rope_freq_factors[1] > 1.0f &&
                mg.rope_freq_factors[1] < 8.0f && mg.rope_freq_factors[7] == 8.0f,
            "llama3 divisors %g %g %g", (double)mg.rope_freq_factors[0],
            (double)mg.rope_freq_factors[1], (double)mg.rope_freq_factors[7]);
    printf("# llama3 divisors, config.json vs GGUF: worst relative difference %.2e\n", worst);
    lm_arch_free(&mh);
    lm_arch_free(&mg);
    lm_hf_close(hf);
    lm_gguf_close(g);
}

typedef enum { F_KEEP, F_DROP, F_F16, F_LONG, F_2D, F_ZERO, F_NAN } freqs_edit;

typedef struct {
    const char *name;
    const char *fixture;
    const char *key;      /* "<arch>." + key set after the copy; NULL = none */
    char type;            /* 'f' f32, 'u' u32, 's' string */
    double num;
    const char *str;
    freqs_edit freqs;     /* what becomes of rope_freqs.weight */
    lm_status want;
    const char *in_msg;
} gguf_case;

/* The fixture's f32 GGUF rewritten (its "<arch>." and general.architecture keys, c's edit,
 * its tensors with rope_freqs.weight edited) and bound with lm_arch_from_gguf. */
static lm_status bind_edited(const gguf_case *c, char *msg, size_t msg_len) {
    char path[600];
    snprintf(path, sizeof path, "tests/data/fidelity/%s/model-f32.gguf", c->fixture);
    lm_err e;
    lm_err_clear(&e);
    lm_gguf *g = NULL, *g2 = NULL;
    lm_gguf_writer *w = NULL;
    void *buf = NULL;
    size_t len = 0;
    lm_arch_model m;
    memset(&m, 0, sizeof m);
    lm_half half[64];
    float freqs[65];
    const char *an;
    size_t al;
    char arch[32], key[160];
    lm_status s;
    if ((s = lm_gguf_open_file(path, NULL, &g, &e)) || (s = lm_gguf_writer_new(&w, &e)) ||
        (s = lm_gguf_get_str(g, "general.architecture", &an, &al, &e)))
        goto out;
    snprintf(arch, sizeof arch, "%.*s", (int)al, an);
    if ((s = lm_gguf_set_str(w, "general.architecture", arch, &e))) goto out;
    for (uint64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        const char *k = lm_gguf_key(g, i);
        if (strncmp(k, arch, strlen(arch)) != 0 || k[strlen(arch)] != '.') continue;
        const lm_gguf_type t = lm_gguf_kv_type(g, i);
        uint32_t u;
        float f;
        const char *sv;
        size_t sl;
        if (t == LM_GGUF_TYPE_UINT32)
            s = lm_gguf_get_u32(g, k, &u, &e) || lm_gguf_set_u32(w, k, u, &e) ? e.code : LM_OK;
        else if (t == LM_GGUF_TYPE_FLOAT32)
            s = lm_gguf_get_f32(g, k, &f, &e) || lm_gguf_set_f32(w, k, f, &e) ? e.code : LM_OK;
        else if (t == LM_GGUF_TYPE_STRING)
            s = lm_gguf_get_str(g, k, &sv, &sl, &e) || lm_gguf_set_strn(w, k, sv, sl, &e)
                    ? e.code
                    : LM_OK;
        if (s) goto out;
    }
    if (c->key) {
        snprintf(key, sizeof key, "%s.%s", arch, c->key);
        s = c->type == 'f'   ? lm_gguf_set_f32(w, key, (float)c->num, &e)
            : c->type == 'u' ? lm_gguf_set_u32(w, key, (uint32_t)c->num, &e)
                             : lm_gguf_set_str(w, key, c->str, &e);
        if (s) goto out;
    }
    for (uint64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_tensor_info *t = lm_gguf_tensor(g, i);
        if (strcmp(t->name, "rope_freqs.weight") != 0 || c->freqs == F_KEEP) {
            s = lm_gguf_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne, t->data, t->nbytes,
                                   &e);
            if (s) goto out;
            continue;
        }
        const uint64_t n = t->ne[0];
        memcpy(freqs, t->data, n * 4);
        uint64_t ne[2] = {n, 1};
        switch (c->freqs) {
        case F_DROP: continue;
        case F_F16:
            for (uint64_t j = 0; j < n; j++) half[j] = lm_f32_to_half(freqs[j]);
            s = lm_gguf_add_tensor(w, t->name, LM_DTYPE_F16, 1, ne, half, n * 2, &e);
            break;
        case F_LONG:
            freqs[n] = 1.0f;
            ne[0] = n + 1;
            s = lm_gguf_add_tensor(w, t->name, LM_DTYPE_F32, 1, ne, freqs, (n + 1) * 4, &e);
            break;
        case F_2D: s = lm_gguf_add_tensor(w, t->name, LM_DTYPE_F32, 2, ne, freqs, n * 4, &e); break;
        default:
            freqs[n / 2] = c->freqs == F_ZERO ? 0.0f : NAN;
            s = lm_gguf_add_tensor(w, t->name, LM_DTYPE_F32, 1, ne, freqs, n * 4, &e);
        }
        if (s) goto out;
    }
    if ((s = lm_gguf_write_buffer(w, &buf, &len, &e)) ||
        (s = lm_gguf_open_buffer(buf, len, NULL, &g2, &e)))
        goto out;
    s = lm_arch_from_gguf(g2, &m, &e);
out:
    snprintf(msg, msg_len, "%s", e.msg);
    lm_arch_free(&m);
    lm_gguf_close(g2);
    lm_free(buf);
    lm_gguf_writer_free(w);
    lm_gguf_close(g);
    return s;
}

static void test_rope_bad_gguf(void) {
    const gguf_case cases[] = {
        {"copy", "qwen2-yarn", NULL, 0, 0, NULL, F_KEEP, LM_OK, NULL},
        {"copy with rope_freqs", "llama-llama3", NULL, 0, 0, NULL, F_KEEP, LM_OK, NULL},
        {"without rope_freqs", "llama-llama3", NULL, 0, 0, NULL, F_DROP, LM_OK, NULL},
        {"rope_freqs f16", "llama-llama3", NULL, 0, 0, NULL, F_F16, LM_ERR_FORMAT,
         "rope_freqs"},
        {"rope_freqs too long", "llama-llama3", NULL, 0, 0, NULL, F_LONG, LM_ERR_FORMAT,
         "rope_freqs"},
        {"rope_freqs 2-D", "llama-llama3", NULL, 0, 0, NULL, F_2D, LM_ERR_FORMAT, "rope_freqs"},
        {"rope_freqs zero", "llama-llama3", NULL, 0, 0, NULL, F_ZERO, LM_ERR_FORMAT,
         "rope_freqs"},
        {"rope_freqs NaN", "llama-llama3", NULL, 0, 0, NULL, F_NAN, LM_ERR_FORMAT, "rope_freqs"},
        {"longrope", "qwen2-yarn", "rope.scaling.type", 's', 0, "longrope", F_KEEP,
         LM_ERR_UNSUPPORTED, "'longrope'"},
        {"unknown type", "qwen2-yarn", "rope.scaling.type", 's', 0, "dynamic", F_KEEP,
         LM_ERR_UNSUPPORTED, "'dynamic'"},
        {"yarn_log_multiplier", "qwen2-yarn", "rope.scaling.yarn_log_multiplier", 'f', 0.1, NULL,
         F_KEEP, LM_ERR_UNSUPPORTED, "yarn_log_multiplier"},
        {"factor < 1", "qwen2-yarn", "rope.scaling.factor", 'f', 0.5, NULL, F_KEEP,
         LM_ERR_FORMAT, "factor"},
        {"factor a string", "qwen2-yarn", "rope.scaling.factor", 's', 0, "4", F_KEEP,
         LM_ERR_FORMAT, "factor"},
        {"beta_slow < 0", "qwen2-yarn", "rope.scaling.yarn_beta_slow", 'f', -1.0, NULL, F_KEEP,
         LM_ERR_FORMAT, "beta_slow"},
        {"ext_factor 2", "qwen2-yarn", "rope.scaling.yarn_ext_factor", 'f', 2.0, NULL, F_KEEP,
         LM_ERR_FORMAT, "ext_factor"},
        {"yarn_attn_factor 0", "qwen2-yarn", "rope.scaling.yarn_attn_factor", 'f', 0.0, NULL,
         F_KEEP, LM_ERR_FORMAT, "yarn_attn_factor"},
        {"attn_factor < 0", "qwen2-yarn", "rope.scaling.attn_factor", 'f', -2.0, NULL, F_KEEP,
         LM_ERR_FORMAT, "attn_factor"},
        {"original context 0", "qwen2-yarn", "rope.scaling.original_context_length", 'u', 0,
         NULL, F_KEEP, LM_ERR_FORMAT, "original context"},
        {"linear factor 2000", "gemma3-linear", "rope.scaling.factor", 'f', 2000.0, NULL, F_KEEP,
         LM_ERR_FORMAT, "factor"},
        {"factor without a type (linear)", "llama-llama3", "rope.scaling.factor", 'f', 4.0, NULL,
         F_KEEP, LM_OK, NULL},
        {"factor without a type, out of range", "llama-llama3", "rope.scale_linear", 'f', 0.5,
         NULL, F_KEEP, LM_ERR_FORMAT, "factor"},
        {"type none ignores the factor", "qwen2-yarn", "rope.scaling.type", 's', 0, "none",
         F_KEEP, LM_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const gguf_case *c = &cases[i];
        char msg[512] = "";
        const lm_status st = bind_edited(c, msg, sizeof msg);
        if (c->want == LM_OK)
            T_CHECK(st == LM_OK, "%s: %s", c->name, msg);
        else
            T_CHECK(st == c->want && strstr(msg, c->in_msg), "%s: status %d, '%s'", c->name,
                    (int)st, msg);
    }
}

/* ---- HF directories with bad config.json: a clear error, never a crash ------------------- */

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok;
}

typedef struct {
    const char *name;
    const char *key;   /* top-level key to change; "rope_parameters.rope_type" for nested */
    json_t *value;     /* new value (stolen); NULL = delete the key */
    lm_status want;
    const char *in_msg; /* must appear in the error */
} bad_case;

static void test_hf_bad_config(void) {
    char dir[] = "/tmp/lemma_fid_XXXXXX";
    T_REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    char cfgp[600], stp[600];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    snprintf(stp, sizeof stp, "%s/model.safetensors", dir);
    T_REQUIRE(copy_file("tests/data/fidelity/llama/model.safetensors", stp), "copy weights");
    bad_case cases[] = {
        {"missing field", "hidden_size", NULL, LM_ERR_FORMAT, "hidden_size"},
        {"wrong type", "num_hidden_layers", json_string("2"), LM_ERR_FORMAT,
         "num_hidden_layers"},
        {"unknown model_type", "model_type", json_string("mistral"), LM_ERR_UNSUPPORTED,
         "model_type"},
        {"model_type not a string", "model_type", json_integer(3), LM_ERR_FORMAT, "model_type"},
        {"missing model_type", "model_type", NULL, LM_ERR_FORMAT, "model_type"},
        {"unsupported rope", "rope_parameters.rope_type", json_string("dynamic"),
         LM_ERR_UNSUPPORTED, "'dynamic'"},
        {"longrope", "rope_parameters", json_pack("{s:s,s:f,s:[f],s:[f]}", "rope_type",
         "longrope", "rope_theta", 10000.0, "short_factor", 1.0, "long_factor", 1.0),
         LM_ERR_UNSUPPORTED, "'longrope'"},
        {"llama3 without low_freq_factor", "rope_parameters", json_pack("{s:s,s:f,s:f,s:f,s:i}",
         "rope_type", "llama3", "rope_theta", 10000.0, "factor", 8.0, "high_freq_factor", 4.0,
         "original_max_position_embeddings", 64), LM_ERR_FORMAT, "low_freq_factor"},
        {"llama3 low == high", "rope_parameters", json_pack("{s:s,s:f,s:f,s:f,s:f}", "rope_type",
         "llama3", "rope_theta", 10000.0, "factor", 8.0, "low_freq_factor", 4.0,
         "high_freq_factor", 4.0), LM_ERR_FORMAT, "high_freq_factor"},
        {"llama3 (old layout)", "rope_scaling", json_pack("{s:s,s:f,s:f,s:f,s:i}", "rope_type",
         "llama3", "factor", 8.0, "low_freq_factor", 1.0, "high_freq_factor", 4.0,
         "original_max_position_embeddings", 64), LM_OK, NULL},
        {"yarn factor < 1", "rope_parameters", json_pack("{s:s,s:f,s:f}", "type", "yarn",
         "rope_theta", 10000.0, "factor", 0.5), LM_ERR_FORMAT, "factor"},
        {"yarn beta_fast not a number", "rope_parameters", json_pack("{s:s,s:f,s:f,s:s}",
         "rope_type", "yarn", "rope_theta", 10000.0, "factor", 4.0, "beta_fast", "32"),
         LM_ERR_FORMAT, "beta_fast"},
        {"yarn truncate not a boolean", "rope_parameters", json_pack("{s:s,s:f,s:f,s:s}",
         "rope_type", "yarn", "rope_theta", 10000.0, "factor", 4.0, "truncate", "no"),
         LM_ERR_FORMAT, "truncate"},
        {"yarn negative attention_factor", "rope_parameters", json_pack("{s:s,s:f,s:f,s:f}",
         "rope_type", "yarn", "rope_theta", 10000.0, "factor", 4.0, "attention_factor", -1.0),
         LM_ERR_FORMAT, "attention_factor"},
        {"yarn factor only", "rope_parameters", json_pack("{s:s,s:f,s:f}", "rope_type", "yarn",
         "rope_theta", 10000.0, "factor", 4.0), LM_OK, NULL},
        {"yarn without factor, max_position_embeddings < original", "rope_parameters",
         json_pack("{s:s,s:f,s:i}", "rope_type", "yarn", "rope_theta", 10000.0,
         "original_max_position_embeddings", 4096), LM_ERR_FORMAT, "factor"},
        {"wrong vocab", "vocab_size", json_integer(321), LM_ERR_FORMAT, "321"},
        {"bad heads", "num_key_value_heads", json_integer(3), LM_ERR_FORMAT,
         "num_key_value_heads"},
        {"negative eps", "rms_norm_eps", json_real(-1.0), LM_ERR_FORMAT, "rms_norm_eps"},
        {"activation", "hidden_act", json_string("relu"), LM_ERR_UNSUPPORTED, "hidden_act"},
        {"non-MLX quantization", "quantization_config", json_pack("{s:s,s:i}", "quant_method",
         "gptq", "bits", 4), LM_ERR_UNSUPPORTED, "quant_method"},
        {"MLX quantization, float weights", "quantization", json_pack("{s:i,s:i}",
         "group_size", 64, "bits", 4), LM_OK, NULL},
        {"MLX quantization, bad bits", "quantization", json_pack("{s:i,s:i}", "group_size", 64,
         "bits", 7), LM_OK, NULL},
        {"untied without lm_head", "tie_word_embeddings", json_false(), LM_OK, NULL},
        {"shape", "intermediate_size", json_integer(96), LM_ERR_FORMAT, "mlp.gate_proj"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bad_case *c = &cases[i];
        json_t *j = json_load_file("tests/data/fidelity/llama/config.json", 0, NULL);
        T_REQUIRE(j != NULL, "llama config");
        if (!strcmp(c->key, "rope_parameters.rope_type")) {
            json_object_set_new(json_object_get(j, "rope_parameters"), "rope_type", c->value);
        } else if (!strcmp(c->key, "rope_scaling")) { /* the older layout */
            json_object_del(j, "rope_parameters");
            json_object_set_new(j, "rope_theta", json_real(10000.0));
            json_object_set_new(j, c->key, c->value);
        } else if (c->value)
            json_object_set_new(j, c->key, c->value);
        else
            json_object_del(j, c->key);
        T_REQUIRE(json_dump_file(j, cfgp, 0) == 0, "write config");
        json_decref(j);
        char err[512] = "";
        lm_model *m = NULL;
        lm_status st = lm_model_load(dir, NULL, &m, err, sizeof err);
        if (c->want == LM_OK) { /* float weights stay float; lm_head.weight is there */
            T_CHECK(st == LM_OK && m, "%s: %s", c->name, err);
        } else {
            T_CHECK(st == c->want && !m && strstr(err, c->in_msg), "%s: status %d, '%s'",
                    c->name, (int)st, err);
        }
        lm_model_free(m);
    }
    /* a directory without weights, and one without config.json */
    char err[512] = "";
    lm_model *m = NULL;
    unlink(stp);
    T_CHECK(lm_model_load(dir, NULL, &m, err, sizeof err) != LM_OK && !m && err[0],
            "no weights: '%s'", err);
    unlink(cfgp);
    T_CHECK(lm_model_load(dir, NULL, &m, err, sizeof err) != LM_OK && !m && err[0],
            "no config: '%s'", err);
    rmdir(dir);
}

int main(void) {
    T_RUN(test_llama);
    T_RUN(test_qwen2);
    T_RUN(test_qwen3);
    T_RUN(test_gemma3);
    T_RUN(test_llama_llama3);
    T_RUN(test_qwen2_yarn);
    T_RUN(test_qwen3_yarn);
    T_RUN(test_qwen3_yarn_notrunc);
    T_RUN(test_gemma3_linear);
    T_RUN(test_rope_old_config);
    T_RUN(test_rope_factors);
    T_RUN(test_rope_bad_gguf);
    T_RUN(test_hf_bad_config);
    T_RUN(test_hf_mlx);
    return t_finish();
}
