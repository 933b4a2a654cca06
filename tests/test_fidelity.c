/* test_fidelity.c — lemma's logits against the reference implementation (Hugging Face
 * transformers) on the tiny random-weight fixtures of tests/data/fidelity (see its README):
 * Llama, Qwen2, Qwen3 and Gemma 3 (sliding window 8 < 24 tokens), from GGUF in f32, f16 and
 * q8_0, through the decode path (one token at a time: every position's logits) and the prefill
 * path (whole sequence, and in chunks of 5).
 *
 * Tolerances, relative to the range (max - min) of the reference logits of the position:
 *   f32   1e-3, and the argmax equal at every position (the criterion);
 *   f16   1e-2 (weights rounded to binary16);
 *   q8_0  6e-2 (weights and activations quantized to 8 bits);
 * for f16 and q8_0 the argmax must agree wherever the reference's top-2 margin exceeds twice
 * the tolerance (a closer pair is a tie that the rounding may flip). */
#include "lemma.h"
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

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

static void run_arch(const char *arch) {
    reference r = {0};
    T_REQUIRE(load_reference(arch, &r), "%s: cannot read the reference", arch);
    const char *variants[] = {"f32", "f16", "q8_0"};
    const double tols[] = {1e-3, 1e-2, 6e-2};
    for (int v = 0; v < 3; v++) {
        char path[512], err[512] = "", what[128];
        snprintf(path, sizeof path, "tests/data/fidelity/%s/model-%s.gguf", arch, variants[v]);
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
                                v == 0);
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
                        r.n_vocab, tols[v], v == 0);
                lm_session_free(ses);
            }
        }
        lm_model_free(m);
        printf("# %-7s %-5s worst max|diff| / logit range %.2e (tolerance %.0e)\n", arch,
               variants[v], worst_rel, tols[v]);
    }
    free(r.logits);
}

static void test_llama(void) { run_arch("llama"); }
static void test_qwen2(void) { run_arch("qwen2"); }
static void test_qwen3(void) { run_arch("qwen3"); }
static void test_gemma3(void) { run_arch("gemma3"); }

int main(void) {
    T_RUN(test_llama);
    T_RUN(test_qwen2);
    T_RUN(test_qwen3);
    T_RUN(test_gemma3);
    return t_finish();
}
