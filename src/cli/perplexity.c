/*
 * perplexity.c — `lemma perplexity`: perplexity of a model on a text file, as llama.cpp's
 * llama-perplexity computes it.
 *
 *   lemma perplexity -m MODEL -f TEXTFILE [-c CTX] [-t THREADS] [-b BATCH] [--chunks N]
 *
 * The file is tokenized with the model's special tokens (BOS when the model adds one), cut
 * into chunks of CTX tokens (default 512; a partial last chunk is dropped), and each chunk is
 * run in a fresh context with its first token replaced by BOS when the model adds one. Only the
 * second half of a chunk is scored (the first half is context): for positions j in
 * [CTX/2, CTX-1) the negative log-likelihood of token j+1 given tokens 0..j. Printed: the
 * running PPL after each chunk ("[1]12.3456,[2]...") and the final estimate
 * "PPL = exp(mean NLL) +/- PPL * stderr(NLL)", the same formulas as llama.cpp.
 *
 * Each chunk is appended in one call, lm_session_append_scored, which runs it in batched
 * prefill and hands over the logits after every scored position.
 *
 * Exit codes: 0 ok, 1 runtime error (model or text file, memory), 2 bad usage (including a
 * text too short for one chunk).
 * Uses only include/lemma.h.
 */
#include "cli_util.h"
#include "lemma.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PPL_MAX_FILE ((size_t)256 << 20)

static void ppl_usage(FILE *f) {
    fprintf(f, "usage: lemma perplexity -m MODEL -f TEXTFILE [options]\n"
               "  -c CTX      tokens per chunk; the second half of each is scored (default 512)\n"
               "  --chunks N  score at most N chunks (default: all)\n"
               "  -b BATCH    prefill chunk (default 256)\n"
               "  -t THREADS  compute threads (default: all CPUs)\n");
}

/* -log softmax(logits)[tok], in double. */
static double nll_of(const float *logits, size_t n, int32_t tok) {
    float mx = logits[0];
    for (size_t i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - (double)mx);
    return log(sum) - ((double)logits[tok] - (double)mx);
}

/* Accumulates the NLL of the next token after each scored position of a chunk. */
typedef struct ppl_acc {
    const int32_t *chunk;
    double nll, nll2;
    size_t count;
    int bad_id; /* a token id beyond the logits was met */
} ppl_acc;

static int ppl_score(void *user, size_t i, const float *logits, size_t n_vocab) {
    ppl_acc *a = user;
    int32_t next = a->chunk[i + 1];
    if (next < 0 || (size_t)next >= n_vocab) {
        a->bad_id = 1;
        return 1;
    }
    double x = nll_of(logits, n_vocab, next);
    a->nll += x;
    a->nll2 += x * x;
    a->count++;
    return 0;
}

int cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL;
    long v, ctx = 512, max_chunks = -1;
    lm_model_params mp = lm_model_default_params();
    lm_session_params sp = lm_session_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            ppl_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!next) {
                fprintf(stderr, "lemma perplexity: %s expects a model path\n", a);
                return 2;
            }
            model_path = next, i++;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!next) {
                fprintf(stderr, "lemma perplexity: %s expects a text file\n", a);
                return 2;
            }
            text_path = next, i++;
        } else if (!strcmp(a, "-c")) {
            if (!cli_parse_long("perplexity", a, next, 4, 1 << 20, &v)) return 2;
            ctx = v, i++;
        } else if (!strcmp(a, "--chunks")) {
            if (!cli_parse_long("perplexity", a, next, 1, 1 << 30, &v)) return 2;
            max_chunks = v, i++;
        } else if (!strcmp(a, "-b")) {
            if (!cli_parse_long("perplexity", a, next, 1, 65536, &v)) return 2;
            sp.n_batch = (int32_t)v, i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_parse_long("perplexity", a, next, 1, 1024, &v)) return 2;
            mp.n_threads = (int32_t)v, i++;
        } else {
            fprintf(stderr, "lemma perplexity: unknown option '%s'\n", a);
            ppl_usage(stderr);
            return 2;
        }
    }
    if (!model_path || !text_path) {
        fprintf(stderr, "lemma perplexity: -m MODEL and -f TEXTFILE are required\n");
        ppl_usage(stderr);
        return 2;
    }

    char err[512];
    lm_model *m = NULL;
    lm_session *s = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0, text_len = 0;
    int rc = 1;
    char *text = cli_read_file("perplexity", text_path, PPL_MAX_FILE, &text_len);
    if (!text) goto done;
    if (lm_model_load(model_path, &mp, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma perplexity: %s\n", err);
        goto done;
    }
    if (ctx > lm_model_n_ctx_train(m)) {
        fprintf(stderr, "lemma perplexity: -c %ld exceeds the model's context of %d\n", ctx,
                lm_model_n_ctx_train(m));
        rc = 2;
        goto done;
    }
    /* the model's own vocabulary, parsed once at load */
    const lm_vocab *voc = cli_model_vocab("perplexity", m, model_path);
    if (!voc) goto done;
    if (lm_vocab_tokenize(voc, text, text_len, 1, 0, &ids, &n_ids, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma perplexity: tokenize: %s\n", err);
        goto done;
    }
    /* "the model adds BOS" is read off the tokenization: add_special put it first */
    int32_t bos = lm_vocab_bos(voc);
    int add_bos = bos >= 0 && n_ids > 0 && ids[0] == bos;
    size_t n_chunks = n_ids / (size_t)ctx;
    if (max_chunks > 0 && (size_t)max_chunks < n_chunks) n_chunks = (size_t)max_chunks;
    fprintf(stderr, "lemma perplexity: %zu tokens, %zu chunk(s) of %ld, BOS %s\n", n_ids, n_chunks,
            ctx, add_bos ? "added" : "not added");
    if (n_chunks == 0) {
        fprintf(stderr, "lemma perplexity: %zu tokens are fewer than one chunk of %ld (-c)\n",
                n_ids, ctx);
        rc = 2;
        goto done;
    }
    sp.n_ctx = (int32_t)ctx;
    sp.prefix_cache = 0; /* chunks share no prefix */
    if (lm_session_new(m, &sp, &s, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma perplexity: %s\n", err);
        goto done;
    }

    const size_t first = (size_t)ctx / 2;
    ppl_acc acc = {NULL, 0.0, 0.0, 0, 0};
    for (size_t c = 0; c < n_chunks; c++) {
        int32_t *chunk = ids + c * (size_t)ctx;
        int32_t saved = chunk[0];
        if (add_bos) chunk[0] = bos;
        acc.chunk = chunk;
        /* positions 0..ctx-2 are run; the logits after j in [first, ctx-1) score token j+1 */
        lm_status st = lm_session_truncate(s, 0);
        if (st == LM_OK)
            st = lm_session_append_scored(s, chunk, (size_t)ctx - 1, first, ppl_score, &acc);
        chunk[0] = saved;
        if (acc.bad_id) {
            fprintf(stderr, "\nlemma perplexity: a token id lies beyond the model's logits\n");
            goto done;
        }
        if (st != LM_OK) {
            fprintf(stderr, "\nlemma perplexity: %s\n", lm_session_error(s));
            goto done;
        }
        printf("[%zu]%.4f,", c + 1, exp(acc.nll / (double)acc.count));
        fflush(stdout);
    }
    printf("\n");
    const double nll = acc.nll, nll2 = acc.nll2;
    const size_t count = acc.count;
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    double ppl = exp(mean);
    double se = count > 1 && var > 0 ? sqrt(var / (double)(count - 1)) : 0.0;
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, se * ppl);
    rc = 0;
done:
    free(text);
    lm_free_tokens(ids);
    lm_session_free(s);
    lm_model_free(m);
    return rc;
}
