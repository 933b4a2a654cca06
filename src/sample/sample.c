/*
 * sample.c — the sampler chain described in sample.h.
 */
#include "sample/sample.h"

#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lm_sampler_params lm_sampler_default_params(void) {
    lm_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.seed = 0;
    return p;
}

lm_status lm_sampler_params_check(const lm_sampler_params *p, lm_err *err) {
    if (!p) return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: no parameters");
    if (!isfinite(p->temperature) || p->temperature < 0.0f)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: temperature %g must be >= 0",
                          (double)p->temperature);
    if (p->top_k < 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: top_k %d must be >= 0 (0 = off)",
                          p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: top_p %g must be in (0, 1]",
                          (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: min_p %g must be in [0, 1)",
                          (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: repeat_penalty %g must be > 0",
                          (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: repeat_last_n %d must be >= 0",
                          p->repeat_last_n);
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: penalties must be finite");
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: %zu logit biases but no array",
                          p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const float b = p->logit_bias[i].bias;
        /* -inf bans a token; +inf would make every probability NaN once normalised */
        if (isnan(b) || b == INFINITY)
            return lm_err_set(err, LM_ERR_INVALID_ARG,
                              "sampler: logit bias %zu (token %d) is %g: must be a number or "
                              "-inf", i, p->logit_bias[i].token, (double)b);
        if (p->logit_bias[i].token < 0)
            return lm_err_set(err, LM_ERR_INVALID_ARG,
                              "sampler: logit bias %zu names token %d, outside the vocabulary",
                              i, p->logit_bias[i].token);
    }
    return LM_OK;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void lm_sampler_seed(lm_sampler_state *st, uint64_t seed) {
    for (int i = 0; i < 4; i++) st->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

double lm_sampler_uniform(lm_sampler_state *st) {
    uint64_t *s = st->s;
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return (double)(r >> 11) * (1.0 / 9007199254740992.0); /* 53 random bits */
}

lm_status lm_sampler_init(lm_sampler *s, const lm_sampler_params *p, int32_t n_vocab,
                          lm_err *err) {
    memset(s, 0, sizeof *s);
    lm_status st = lm_sampler_params_check(p, err);
    if (st != LM_OK) return st;
    if (n_vocab <= 0) return lm_err_set(err, LM_ERR_INVALID_ARG, "sampler: empty vocabulary");
    for (size_t i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].token >= n_vocab)
            return lm_err_set(err, LM_ERR_INVALID_ARG,
                              "sampler: logit bias %zu names token %d, outside the vocabulary "
                              "[0, %d)", i, p->logit_bias[i].token, n_vocab);
    s->p = *p;
    s->n_vocab = n_vocab;
    s->work = lm_calloc((size_t)n_vocab, sizeof *s->work);
    s->idx = lm_calloc((size_t)n_vocab, sizeof *s->idx);
    s->prob = lm_calloc((size_t)n_vocab, sizeof *s->prob);
    s->count = lm_calloc((size_t)n_vocab, sizeof *s->count);
    if (!s->work || !s->idx || !s->prob || !s->count) {
        lm_sampler_free(s);
        return lm_err_set(err, LM_ERR_NOMEM, "sampler: buffers for %d tokens", n_vocab);
    }
    lm_sampler_seed(&s->rng, p->seed);
    return LM_OK;
}

void lm_sampler_free(lm_sampler *s) {
    if (!s) return;
    lm_free(s->work);
    lm_free(s->idx);
    lm_free(s->prob);
    lm_free(s->count);
    memset(s, 0, sizeof *s);
}

static const float *g_sort_logits; /* qsort context; sampling is not reentrant per sampler */

static int by_logit_desc(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const float lx = g_sort_logits[x], ly = g_sort_logits[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Moves the k largest (by logit, then lower id) to idx[0..k) in order. A bounded insertion
 * pass: O(n * k) worst case but k is small in practice; k == n falls back to qsort. */
static void top_k_sorted(const float *lg, int32_t *idx, int32_t n, int32_t k) {
    if (k >= n) {
        for (int32_t i = 0; i < n; i++) idx[i] = i;
        g_sort_logits = lg;
        qsort(idx, (size_t)n, sizeof *idx, by_logit_desc);
        return;
    }
    int32_t len = 0;
    for (int32_t i = 0; i < n; i++) {
        if (len == k && !(lg[i] > lg[idx[k - 1]])) continue;
        int32_t j = len < k ? len++ : k - 1;
        while (j > 0 && lg[i] > lg[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
}

lm_status lm_sampler_sample(lm_sampler *s, const float *logits, const int32_t *history,
                            size_t n_history, int32_t *out, lm_err *err) {
    const lm_sampler_params *p = &s->p;
    const int32_t n = s->n_vocab;
    float *lg = s->work;
    memcpy(lg, logits, (size_t)n * sizeof *lg);
    /* ids were checked against n_vocab by lm_sampler_init */
    for (size_t i = 0; i < p->n_logit_bias; i++)
        lg[p->logit_bias[i].token] += p->logit_bias[i].bias;

    const int penalise = p->repeat_last_n > 0 &&
                         (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                          p->presence_penalty != 0.0f);
    if (penalise && n_history > 0) {
        size_t from = n_history > (size_t)p->repeat_last_n ? n_history - (size_t)p->repeat_last_n
                                                           : 0;
        for (size_t i = from; i < n_history; i++)
            if (history[i] >= 0 && history[i] < n) s->count[history[i]]++;
        for (size_t i = from; i < n_history; i++) {
            const int32_t t = history[i];
            if (t < 0 || t >= n || s->count[t] == 0) continue; /* done already */
            float v = lg[t];
            v = v > 0.0f ? v / p->repeat_penalty : v * p->repeat_penalty;
            v -= (float)s->count[t] * p->frequency_penalty + p->presence_penalty;
            lg[t] = v;
            s->count[t] = 0;
        }
    }

    if (p->temperature == 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (lg[i] > lg[best]) best = i;
        if (lg[best] == -INFINITY)
            return lm_err_set(err, LM_ERR_INVALID_ARG,
                              "sampler: every token has logit -inf (all banned by logit bias?)");
        *out = best;
        return LM_OK;
    }

    int32_t k = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    top_k_sorted(lg, s->idx, n, k);
    const double inv_t = 1.0 / p->temperature;
    const double mx = lg[s->idx[0]];
    double sum = 0.0;
    for (int32_t i = 0; i < k; i++) {
        s->prob[i] = (float)exp(((double)lg[s->idx[i]] - mx) * inv_t);
        sum += s->prob[i];
    }
    if (!(sum > 0.0) || !isfinite(sum))
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "sampler: logits are not finite (or all banned by logit bias)");
    /* Banned tokens (-inf) sort last with probability 0; dropping them keeps the fallback
     * pick below (rounding at r ~ total) from ever landing on one. */
    while (k > 1 && s->prob[k - 1] == 0.0f) k--;
    /* top-p: the smallest prefix whose mass reaches top_p */
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        for (int32_t i = 0; i < k; i++) {
            cum += s->prob[i] / sum;
            if (cum >= p->top_p) {
                k = i + 1;
                break;
            }
        }
    }
    /* min-p: relative to the best token's probability (prob[0] is the largest) */
    if (p->min_p > 0.0f) {
        const float floor_p = p->min_p * s->prob[0];
        int32_t keep = 1;
        while (keep < k && s->prob[keep] >= floor_p) keep++;
        k = keep;
    }
    double total = 0.0;
    for (int32_t i = 0; i < k; i++) total += s->prob[i];
    double r = lm_sampler_uniform(&s->rng) * total, acc = 0.0;
    *out = s->idx[k - 1];
    for (int32_t i = 0; i < k; i++) {
        acc += s->prob[i];
        if (r < acc) {
            *out = s->idx[i];
            break;
        }
    }
    return LM_OK;
}
