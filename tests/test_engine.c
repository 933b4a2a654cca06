/*
 * test_engine.c — the engine: sampler, KV pages, CPU ops, and real models against llama.cpp.
 *
 * Real-model checks (skipped when models/ lacks the files): for each prompt of
 * tests/data/engine/<model>.expected.json (made by tools/gen_llamacpp_expected.py), lemma is
 * fed llama.cpp's prompt token ids, then llama.cpp's generated tokens one by one (teacher
 * forcing), and at every step lemma's argmax is compared with llama.cpp's greedy choice.
 *
 * Why not demand 100% identical free-running output: with quantized weights every runtime
 * quantizes activations to 8 bits before each matmul, and last-bit differences cascade through
 * those steps: llama.cpp's own prompt path and decode path pick the same token at only 97.4%
 * (SmolLM2) / 97.8% (Gemma 3) of these steps (tools/llamacpp_self_consistency.py; docs/
 * engine.md, "Exactness"). Token identity is checked on F32 conversions in test_exact.c.
 * The rule checked is therefore:
 *   - at least 95% of all steps (and the first step of every prompt) pick llama.cpp's token;
 *   - where they differ, it is a near-tie: lemma's deficit (its best logit minus its logit
 *     for llama.cpp's pick) plus llama.cpp's margin (its pick over its runner-up) is at most
 *     NEAR_TIE logits.
 * A real bug (wrong RoPE, norm, scale) moves logits by whole units and fails the first step.
 * The free-running greedy continuation is also run and its first divergence printed.
 */
#include "lemma.h"
#include "test.h"

#include "backend/backend.h"
#include "backend/cpu/ops.h"
#include "format/gguf.h"
#include "model/arch.h"
#include "kv/kv.h"
#include "sample/sample.h"

#include <jansson.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* Largest disagreement accepted at a step where the two runtimes pick different tokens:
 * lemma's deficit (its best logit minus its logit for llama.cpp's pick) plus llama.cpp's
 * margin (its pick minus its runner-up) = how far the two runtimes' relative logits of the
 * two tokens are apart. Observed (2026-11-26): up to 0.36 on SmolLM2; on Gemma 3 up to 0.78
 * at one step (prompt 3, step 12), a step that moves by 0.3 when only the f32 summation order
 * inside lemma's attention changes (scalar vs AVX2): the noise floor of this comparison, not
 * a modelling error (those move logits by whole units and fail the first-token check). */
#define NEAR_TIE 1.0f

/* Under ASan/UBSan (10x slower) only the first prompts of each model are run. */
#if defined(__SANITIZE_ADDRESS__)
#define MAX_CASES 2
#else
#define MAX_CASES 1000
#endif

/* ---- sampler ------------------------------------------------------------------------- */

static void test_sampler_greedy_and_params(void) {
    lm_sampler s;
    lm_err e;
    lm_err_clear(&e);
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = 0.0f;
    T_REQUIRE(lm_sampler_init(&s, &p, 5, &e) == LM_OK, "%s", e.msg);
    float lg[5] = {0.1f, 2.0f, 2.0f, -1.0f, 1.9f};
    int32_t tok = -1;
    T_CHECK(lm_sampler_sample(&s, lg, NULL, 0, &tok, &e) == LM_OK && tok == 1,
            "greedy picks the lowest id among ties, got %d", tok);
    /* repetition penalty 2 on token 1: 2.0 -> 1.0, so 2 wins */
    lm_sampler_free(&s);
    p.repeat_penalty = 2.0f;
    T_REQUIRE(lm_sampler_init(&s, &p, 5, &e) == LM_OK, "%s", e.msg);
    int32_t hist[1] = {1};
    T_CHECK(lm_sampler_sample(&s, lg, hist, 1, &tok, &e) == LM_OK && tok == 2, "got %d", tok);
    lm_sampler_free(&s);

    lm_sampler_params bad[7];
    for (int i = 0; i < 7; i++) bad[i] = lm_sampler_default_params();
    bad[0].temperature = -0.5f;
    bad[1].top_k = -1;
    bad[2].top_p = 0.0f;
    bad[3].top_p = 1.5f;
    bad[4].min_p = 1.0f;
    bad[5].repeat_penalty = 0.0f;
    bad[6].temperature = NAN;
    for (int i = 0; i < 7; i++) {
        lm_err_clear(&e);
        T_CHECK(lm_sampler_init(&s, &bad[i], 5, &e) == LM_ERR_INVALID_ARG,
                "bad params %d accepted", i);
    }
}

static void test_sampler_seeded(void) {
    lm_sampler a, b;
    lm_err e;
    lm_err_clear(&e);
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 42;
    enum { V = 16 };
    float lg[V];
    for (int i = 0; i < V; i++) lg[i] = (float)(i % 5) * 0.3f;
    T_REQUIRE(lm_sampler_init(&a, &p, V, &e) == LM_OK && lm_sampler_init(&b, &p, V, &e) == LM_OK,
              "%s", e.msg);
    int counts[V] = {0}, same = 1;
    for (int i = 0; i < 2000; i++) {
        int32_t x, y;
        lm_sampler_sample(&a, lg, NULL, 0, &x, &e);
        lm_sampler_sample(&b, lg, NULL, 0, &y, &e);
        same &= x == y;
        if (x >= 0 && x < V) counts[x]++;
    }
    T_CHECK(same, "the same seed gives the same tokens");
    /* tokens with logit 1.2 (i % 5 == 4) are e^1.2 ≈ 3.3x likelier than logit 0 ones */
    T_CHECK(counts[4] + counts[9] + counts[14] > 2 * (counts[0] + counts[5] + counts[10]),
            "distribution follows the logits");
    /* top_k 1 is greedy whatever the temperature */
    lm_sampler_free(&a);
    p.top_k = 1;
    T_REQUIRE(lm_sampler_init(&a, &p, V, &e) == LM_OK, "%s", e.msg);
    int32_t x;
    lm_sampler_sample(&a, lg, NULL, 0, &x, &e);
    T_CHECK(x == 4, "top-k 1 = argmax, got %d", x);
    /* min_p 0.9: only tokens within 10% of the best remain (the three with logit 1.2) */
    lm_sampler_free(&a);
    p.top_k = 0;
    p.min_p = 0.9f;
    T_REQUIRE(lm_sampler_init(&a, &p, V, &e) == LM_OK, "%s", e.msg);
    int ok = 1;
    for (int i = 0; i < 200; i++) {
        lm_sampler_sample(&a, lg, NULL, 0, &x, &e);
        ok &= x % 5 == 4;
    }
    T_CHECK(ok, "min-p keeps only the best tokens");
    lm_sampler_free(&a);
    lm_sampler_free(&b);
}

/* ---- KV pages and ops -------------------------------------------------------------------- */

static void test_kv_pages(void) {
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {3, 8, 4, 3};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq s;
    lm_kv_seq_init(&s);
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 9, &e) == LM_OK && s.n_pages == 3, "3 pages for 9");
    lm_err_clear(&e);
    T_CHECK(lm_kv_seq_reserve(&pool, &s, 13, &e) == LM_ERR_NOMEM, "a 4th page is refused");
    /* rows are distinct and inside their page */
    lm_half *r0 = lm_kv_row(&pool, &s, 2, 1, 5), *r1 = lm_kv_row(&pool, &s, 2, 1, 6);
    T_CHECK(r1 - r0 == 8, "consecutive positions are adjacent rows");
    s.n_tokens = 9;
    lm_kv_seq_truncate(&pool, &s, 4);
    T_CHECK(s.n_pages == 1 && pool.n_live == 1, "truncate frees pages (%d live)", pool.n_live);
    lm_kv_seq_free(&pool, &s);
    T_CHECK(pool.n_live == 0, "all pages back");
    lm_kv_pool_free(&pool);
    lm_err_clear(&e);
    lm_kv_config bad = {0, 8, 4, 3};
    T_CHECK(lm_kv_pool_init(&pool, &bad, &e) == LM_ERR_INVALID_ARG, "bad geometry refused");
}

static void test_rope_styles(void) {
    /* head_dim 4, position 1, base 10000: pair 0 rotates by 1 rad, pair 1 by 0.01 rad */
    float a[4] = {1, 0, 1, 0}, b[4] = {1, 1, 0, 0};
    lm_rope_params norm = {LM_ROPE_NORM, 4, 10000.0f, 1.0f, NULL, 1.0f};
    lm_rope_params neox = {LM_ROPE_NEOX, 4, 10000.0f, 1.0f, NULL, 1.0f};
    lm_cpu_rope(a, 1, 1, 4, 1, &norm);
    lm_cpu_rope(b, 1, 1, 4, 1, &neox);
    T_CHECK(fabsf(a[0] - cosf(1)) < 1e-6f && fabsf(a[1] - sinf(1)) < 1e-6f, "norm pair 0");
    T_CHECK(fabsf(a[2] - cosf(0.01f)) < 1e-6f && fabsf(a[3] - sinf(0.01f)) < 1e-6f, "norm pair 1");
    /* neox pairs (0, 2) and (1, 3) */
    T_CHECK(fabsf(b[0] - cosf(1)) < 1e-6f && fabsf(b[2] - sinf(1)) < 1e-6f, "neox pair 0");
    T_CHECK(fabsf(b[1] - cosf(0.01f)) < 1e-6f && fabsf(b[3] - sinf(0.01f)) < 1e-6f, "neox pair 1");
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 2}, y[4];
    lm_cpu_rmsnorm(y, x, w, 1, 4, 0.0f);
    const float r = 1.0f / sqrtf(7.5f);
    T_CHECK(fabsf(y[0] - r) < 1e-6f && fabsf(y[3] - 8 * r) < 1e-6f, "rmsnorm");
}

static void test_attention_window_softcap(void) {
    /* one head, head_dim 2, keys all equal: attention must average exactly the visible V */
    lm_kv_pool pool;
    lm_err e;
    lm_err_clear(&e);
    lm_kv_config c = {1, 2, 4, 2};
    T_REQUIRE(lm_kv_pool_init(&pool, &c, &e) == LM_OK, "%s", e.msg);
    lm_kv_seq s;
    lm_kv_seq_init(&s);
    T_REQUIRE(lm_kv_seq_reserve(&pool, &s, 6, &e) == LM_OK, "%s", e.msg);
    lm_cpu_ops_init();
    float k[12], v[12];
    for (int i = 0; i < 6; i++) {
        k[2 * i] = 1, k[2 * i + 1] = 0;
        v[2 * i] = (float)i, v[2 * i + 1] = 0;
    }
    lm_cpu_kv_write(&pool, &s, 0, k, v, 6, 0);
    float q[2] = {1, 0}, out[2], scratch[8];
    lm_attn_params ap = {1, 1, 2, 1.0f, 0, 0.0f};
    lm_cpu_attention_rows(out, q, &pool, &s, 0, 5, &ap, 0, 1, scratch);
    T_CHECK(fabsf(out[0] - 2.5f) < 1e-3f, "full causal average of 0..5 = 2.5, got %g", out[0]);
    ap.window = 2; /* positions 4, 5 */
    lm_cpu_attention_rows(out, q, &pool, &s, 0, 5, &ap, 0, 1, scratch);
    T_CHECK(fabsf(out[0] - 4.5f) < 1e-3f, "window 2 averages 4, 5, got %g", out[0]);
    lm_kv_seq_free(&pool, &s);
    lm_kv_pool_free(&pool);
}

/* ---- synthetic GGUF files: Qwen2 / Qwen3 switches ------------------------------------- */

typedef struct gbuf {
    unsigned char *p;
    size_t n, cap;
} gbuf;

static void put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(gbuf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_u32(gbuf *b, const char *k, uint32_t v) {
    put_str(b, k);
    put_u32(b, 4);
    put_u32(b, v);
}

typedef struct tdesc {
    char name[64];
    uint64_t ne0, ne1;
} tdesc;

/* A one-layer f32 model of architecture arch (E 8, 2 heads of 4, 1 KV head, ff 16, vocab 32);
 * skip names a tensor to leave out. Returns the file bytes. */
static gbuf tiny_gguf(const char *arch, int biases, int qk_norm, const char *skip) {
    tdesc t[20];
    int nt = 0;
#define T(nm, a, b) do { if (!skip || strcmp(skip, nm)) { snprintf(t[nt].name, 64, "%s", nm); \
                          t[nt].ne0 = a; t[nt].ne1 = b; nt++; } } while (0)
    T("token_embd.weight", 8, 32);
    T("output_norm.weight", 8, 1);
    T("blk.0.attn_norm.weight", 8, 1);
    T("blk.0.attn_q.weight", 8, 8);
    T("blk.0.attn_k.weight", 8, 4);
    T("blk.0.attn_v.weight", 8, 4);
    T("blk.0.attn_output.weight", 8, 8);
    if (biases) {
        T("blk.0.attn_q.bias", 8, 1);
        T("blk.0.attn_k.bias", 4, 1);
        T("blk.0.attn_v.bias", 4, 1);
    }
    if (qk_norm) {
        T("blk.0.attn_q_norm.weight", 4, 1);
        T("blk.0.attn_k_norm.weight", 4, 1);
    }
    T("blk.0.ffn_norm.weight", 8, 1);
    T("blk.0.ffn_gate.weight", 8, 16);
    T("blk.0.ffn_up.weight", 8, 16);
    T("blk.0.ffn_down.weight", 16, 8);
#undef T
    gbuf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)nt);
    put_u64(&b, 6);
    put_str(&b, "general.architecture");
    put_u32(&b, 8);
    put_str(&b, arch);
    char k[96];
    snprintf(k, sizeof k, "%s.block_count", arch);
    kv_u32(&b, k, 1);
    snprintf(k, sizeof k, "%s.embedding_length", arch);
    kv_u32(&b, k, 8);
    snprintf(k, sizeof k, "%s.feed_forward_length", arch);
    kv_u32(&b, k, 16);
    snprintf(k, sizeof k, "%s.attention.head_count", arch);
    kv_u32(&b, k, 2);
    snprintf(k, sizeof k, "%s.attention.head_count_kv", arch);
    kv_u32(&b, k, 1);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        put_str(&b, t[i].name);
        put_u32(&b, t[i].ne1 == 1 ? 1 : 2);
        put_u64(&b, t[i].ne0);
        if (t[i].ne1 != 1) put_u64(&b, t[i].ne1);
        put_u32(&b, 0); /* f32 */
        put_u64(&b, off);
        off += (t[i].ne0 * t[i].ne1 * 4 + 31) / 32 * 32;
    }
    while (b.n % 32) put(&b, "", 1);
    for (int i = 0; i < nt; i++) {
        uint64_t n = t[i].ne0 * t[i].ne1, padded = (n * 4 + 31) / 32 * 32;
        for (uint64_t j = 0; j < n; j++) {
            float v = strstr(t[i].name, "norm") ? t_rand_f32(0.5f, 1.5f) : t_rand_f32(-0.5f, 0.5f);
            put(&b, &v, 4);
        }
        for (uint64_t j = n * 4; j < padded; j++) put(&b, "", 1);
    }
    return b;
}

static void test_qwen_switches(void) {
    struct { const char *arch; int bias, qkn; } fam[] = {{"qwen2", 1, 0}, {"qwen3", 0, 1},
                                                         {"llama", 0, 0}};
    lm_backend *be = NULL;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_backend_cpu_create(1, &be, &e) == LM_OK, "%s", e.msg);
    for (int f = 0; f < 3; f++) {
        t_srand(7);
        gbuf b = tiny_gguf(fam[f].arch, fam[f].bias, fam[f].qkn, NULL);
        lm_gguf *g = NULL;
        lm_arch_model m;
        lm_err_clear(&e);
        T_REQUIRE(lm_gguf_open_buffer(b.p, b.n, NULL, &g, &e) == LM_OK, "%s", e.msg);
        T_REQUIRE(lm_arch_from_gguf(g, &m, &e) == LM_OK, "%s: %s", fam[f].arch, e.msg);
        T_CHECK(m.hp.has_qkv_bias == fam[f].bias && m.hp.has_qk_norm == fam[f].qkn,
                "%s switches", fam[f].arch);
        T_CHECK((m.layers[0].bq.data != NULL) == fam[f].bias &&
                    (m.layers[0].q_norm.data != NULL) == fam[f].qkn, "%s tensors bound",
                fam[f].arch);
        T_CHECK(m.hp.rope_style == (f == 2 ? LM_ROPE_NORM : LM_ROPE_NEOX), "%s rope style",
                fam[f].arch);
        T_CHECK(m.output.data == m.tok_embd.data, "tied output");
        /* the forward runs, and two batch splits give the same logits */
        lm_kv_pool pool;
        lm_kv_config kc = {1, 4, 4, 4};
        lm_kv_seq s1, s2;
        lm_forward_bufs fb;
        T_REQUIRE(lm_kv_pool_init(&pool, &kc, &e) == LM_OK, "%s", e.msg);
        T_REQUIRE(lm_forward_bufs_init(be, &m.hp, 8, &fb, &e) == LM_OK, "%s", e.msg);
        lm_kv_seq_init(&s1);
        lm_kv_seq_init(&s2);
        int32_t ids[6] = {1, 5, 9, 30, 2, 17};
        float a[32], c[32];
        T_REQUIRE(lm_kv_seq_reserve(&pool, &s1, 6, &e) == LM_OK &&
                      lm_forward(be, &m, &pool, &s1, ids, 6, 1, &fb, &e) == LM_OK, "%s", e.msg);
        memcpy(a, fb.logits, sizeof a);
        T_REQUIRE(lm_kv_seq_reserve(&pool, &s2, 6, &e) == LM_OK &&
                      lm_forward(be, &m, &pool, &s2, ids, 4, 0, &fb, &e) == LM_OK &&
                      lm_forward(be, &m, &pool, &s2, ids + 4, 1, 0, &fb, &e) == LM_OK &&
                      lm_forward(be, &m, &pool, &s2, ids + 5, 1, 1, &fb, &e) == LM_OK,
                  "%s", e.msg);
        memcpy(c, fb.logits, sizeof c);
        float md = 0;
        int finite = 1;
        for (int i = 0; i < 32; i++) {
            finite &= isfinite(a[i]);
            if (fabsf(a[i] - c[i]) > md) md = fabsf(a[i] - c[i]);
        }
        T_CHECK(finite && md < 1e-4f, "%s: batch 6 vs 4+1+1 differ by %g", fam[f].arch, md);
        lm_kv_seq_free(&pool, &s1);
        lm_kv_seq_free(&pool, &s2);
        lm_kv_pool_free(&pool);
        lm_forward_bufs_free(be, &fb);
        lm_arch_free(&m);
        lm_gguf_close(g);
        free(b.p);
        if (fam[f].bias) {
            /* a family switch that needs a tensor the file lacks: a format error */
            t_srand(7);
            b = tiny_gguf(fam[f].arch, 1, 0, "blk.0.attn_k.bias");
            lm_err_clear(&e);
            T_REQUIRE(lm_gguf_open_buffer(b.p, b.n, NULL, &g, &e) == LM_OK, "%s", e.msg);
            T_CHECK(lm_arch_from_gguf(g, &m, &e) == LM_ERR_FORMAT && strstr(e.msg, "attn_k.bias"),
                    "missing bias: %s", e.msg);
            lm_gguf_close(g);
            free(b.p);
        }
    }
    lm_backend_free(be);
}

/* ---- real models ------------------------------------------------------------------------- */

typedef struct collected {
    int32_t *ids;
    size_t n, cap;
} collected;

static int collect(void *user, int32_t token, const char *text, size_t len) {
    collected *c = user;
    if (token >= 0 && c->n < c->cap) c->ids[c->n++] = token;
    return 0;
}

static void check_model(const char *model_path, const char *expected_path) {
    if (access(model_path, R_OK) != 0) T_SKIP("%s not installed", model_path);
    json_error_t je;
    json_t *root = json_load_file(expected_path, 0, &je);
    T_REQUIRE(root, "%s: %s", expected_path, je.text);
    char err[512];
    lm_model *m = NULL;
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    T_REQUIRE(lm_model_load(model_path, &mp, &m, err, sizeof err) == LM_OK, "%s", err);
    json_t *cases = json_object_get(root, "cases");
    size_t steps = 0, agree = 0;
    float worst = 0.0f;
    for (size_t ci = 0; ci < json_array_size(cases) && ci < MAX_CASES; ci++) {
        json_t *c = json_array_get(cases, ci);
        json_t *pid = json_object_get(c, "prompt_ids"), *gid = json_object_get(c, "generated_ids");
        json_t *mar = json_object_get(c, "margins");
        size_t np = json_array_size(pid), ng = json_array_size(gid);
        int32_t *ids = calloc(np + ng, sizeof *ids);
        for (size_t i = 0; i < np; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(pid, i));
        for (size_t i = 0; i < ng; i++)
            ids[np + i] = (int32_t)json_integer_value(json_array_get(gid, i));
        lm_session *s = NULL;
        lm_session_params sp = lm_session_default_params();
        sp.n_ctx = 512;
        sp.n_batch = 7; /* several chunks per prompt: exercises chunked prefill */
        T_REQUIRE(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);
        T_REQUIRE(lm_session_append_tokens(s, ids, np) == LM_OK, "%s", lm_session_error(s));
        int first_diff = -1;
        for (size_t i = 0; i < ng; i++) {
            const float *lg;
            size_t nv;
            T_REQUIRE(lm_session_logits(s, &lg, &nv) == LM_OK, "%s", lm_session_error(s));
            int32_t best = 0;
            for (size_t v = 1; v < nv; v++)
                if (lg[v] > lg[best]) best = (int32_t)v;
            const int32_t want = ids[np + i];
            steps++;
            if (best == want) {
                agree++;
            } else {
                const float deficit = lg[best] - lg[want];
                const double ref_margin = json_number_value(json_array_get(mar, i));
                if (first_diff < 0) first_diff = (int)i;
                if (deficit > worst) worst = deficit;
                T_CHECK(i > 0, "case %zu: the first generated token differs (%d vs %d)", ci,
                        best, want);
                T_CHECK(deficit + ref_margin <= NEAR_TIE,
                        "case %zu step %zu: lemma %d, llama.cpp %d: lemma deficit %.4f, "
                        "llama.cpp margin %.4f — not a near-tie", ci, i, best, want, deficit,
                        ref_margin);
            }
            if (i + 1 < ng)
                T_REQUIRE(lm_session_append_tokens(s, &ids[np + i], 1) == LM_OK, "%s",
                          lm_session_error(s));
        }
        /* free-running greedy from the same prompt: report where it leaves llama.cpp's text */
        lm_session_truncate(s, np);
        lm_generate_params gp = lm_generate_default_params();
        gp.sampling.temperature = 0.0f;
        gp.max_tokens = (int32_t)ng;
        gp.stop_at_eog = 0;
        collected col = {calloc(ng, sizeof(int32_t)), 0, ng};
        gp.on_token = collect;
        gp.user = &col;
        T_REQUIRE(lm_session_generate(s, &gp) == LM_OK, "%s", lm_session_error(s));
        size_t same = 0;
        while (same < col.n && ids[np + same] == col.ids[same]) same++;
        fprintf(stderr, "  case %2zu: teacher-forced first difference at %d, free-running greedy "
                "identical for %zu of %zu tokens\n", ci, first_diff, same, ng);
        free(col.ids);
        lm_session_free(s);
        free(ids);
    }
    fprintf(stderr, "  %s: %zu/%zu steps pick llama.cpp's token (%.1f%%), worst deficit %.4f\n",
            model_path, agree, steps, 100.0 * (double)agree / (double)steps, (double)worst);
    T_CHECK(agree * 100 >= steps * 95, "agreement %zu/%zu below 95%%", agree, steps);
    lm_model_free(m);
    json_decref(root);
}

static void test_smollm2_vs_llamacpp(void) {
    check_model("models/smollm2-135m-instruct-q4_1.gguf",
                "tests/data/engine/smollm2-135m-instruct-q4_1.expected.json");
}

static void test_gemma3_vs_llamacpp(void) {
    check_model("models/gemma-3-270m-q4_k_m.gguf",
                "tests/data/engine/gemma-3-270m-q4_k_m.expected.json");
}

static void test_bad_input(void) {
    const char *path = "models/smollm2-135m-instruct-q4_1.gguf";
    char err[512];
    lm_model *m = NULL;
    T_CHECK(lm_model_load("tests/data/engine/does-not-exist.gguf", NULL, &m, err,
                          sizeof err) != LM_OK && m == NULL && err[0], "missing file refused");
    if (access(path, R_OK) != 0) T_SKIP("%s not installed", path);
    lm_model_params mp = lm_model_default_params();
    mp.n_threads = 2;
    T_REQUIRE(lm_model_load(path, &mp, &m, err, sizeof err) == LM_OK, "%s", err);
    lm_session *s = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_ctx = 8;
    T_REQUIRE(lm_session_new(m, &sp, &s, err, sizeof err) == LM_OK, "%s", err);

    lm_generate_params gp = lm_generate_default_params();
    T_CHECK(lm_session_generate(s, &gp) == LM_ERR_INVALID_ARG, "generate on an empty session");
    int32_t bad[2] = {1, lm_model_n_vocab(m)};
    T_CHECK(lm_session_append_tokens(s, bad, 2) == LM_ERR_INVALID_ARG &&
                strstr(lm_session_error(s), "outside the vocabulary"),
            "out-of-range id: %s", lm_session_error(s));
    bad[1] = -5;
    T_CHECK(lm_session_append_tokens(s, bad, 2) == LM_ERR_INVALID_ARG, "negative id");
    int32_t nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    T_CHECK(lm_session_append_tokens(s, nine, 9) == LM_ERR_INVALID_ARG &&
                strstr(lm_session_error(s), "exceed the context"),
            "too long: %s", lm_session_error(s));
    T_CHECK(lm_session_n_tokens(s) == 0, "nothing appended by failed calls");
    T_CHECK(lm_session_append_tokens(s, nine, 6) == LM_OK, "%s", lm_session_error(s));
    T_CHECK(lm_session_append_tokens(s, nine, 3) == LM_ERR_INVALID_ARG, "6 + 3 > 8");
    T_CHECK(lm_session_n_tokens(s) == 6, "still 6 tokens");
    gp.sampling.top_p = 2.0f;
    T_CHECK(lm_session_generate(s, &gp) == LM_ERR_INVALID_ARG, "invalid sampler refused");
    gp = lm_generate_default_params();
    gp.max_tokens = 0;
    T_CHECK(lm_session_generate(s, &gp) == LM_ERR_INVALID_ARG, "max_tokens 0 refused");
    gp.max_tokens = 10; /* context holds only 2 more: stops there, not an error */
    gp.stop_at_eog = 0;
    T_CHECK(lm_session_generate(s, &gp) == LM_OK, "%s", lm_session_error(s));
    T_CHECK(lm_session_n_tokens(s) == 8, "filled to the context, got %zu",
            lm_session_n_tokens(s));
    sp.n_ctx = 1 << 30;
    lm_session *s2 = NULL;
    T_CHECK(lm_session_new(m, &sp, &s2, err, sizeof err) == LM_ERR_INVALID_ARG && !s2,
            "n_ctx beyond the model's refused");
    lm_session_free(s);
    lm_model_free(m);
    lm_session_free(NULL);
    lm_model_free(NULL);
}

int main(void) {
    T_RUN(test_sampler_greedy_and_params);
    T_RUN(test_sampler_seeded);
    T_RUN(test_kv_pages);
    T_RUN(test_rope_styles);
    T_RUN(test_attention_window_softcap);
    T_RUN(test_qwen_switches);
    T_RUN(test_bad_input);
    T_RUN(test_smollm2_vs_llamacpp);
    T_RUN(test_gemma3_vs_llamacpp);
    return t_finish();
}
