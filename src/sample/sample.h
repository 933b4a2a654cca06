/*
 * sample.h — choosing the next token from logits.
 *
 * Chain, in this order (each step optional, off at its neutral value):
 *   0. logit bias: bias added to the token's logit (-inf bans it);
 *   1. penalties over the last repeat_last_n tokens of the history (llama.cpp's semantics):
 *      repetition (logit > 0 ? logit / r : logit * r), frequency (- count * f), presence
 *      (- p once a token occurred);
 *   2. temperature == 0: greedy — the argmax, lowest id on ties; done;
 *   3. top-k (keep the k best; 0 = all), temperature (logits / T), softmax, top-p (keep the
 *      smallest best-first prefix with probability mass >= p), min-p (keep p_i >= min_p *
 *      p_max), renormalise, draw with the sampler's RNG.
 * Invalid parameters are errors (never clamped). The RNG is xoshiro256** seeded through
 * splitmix64; its whole state is 4 u64 (lm_sampler_state) so a session can save and restore
 * it and continue bit-identically.
 */
#ifndef LM_SAMPLE_SAMPLE_H
#define LM_SAMPLE_SAMPLE_H

#include "core/status.h"
#include "lemma.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lm_sampler_state {
    uint64_t s[4]; /* xoshiro256** state */
} lm_sampler_state;

typedef struct lm_sampler {
    lm_sampler_params p; /* p.logit_bias points at the caller's array: keep it alive */
    lm_sampler_state rng;
    int32_t n_vocab;
    float *work;     /* (n_vocab) penalised logits */
    int32_t *idx;    /* (n_vocab) candidate ids */
    float *prob;     /* (n_vocab) candidate probabilities */
    int32_t *count;  /* (n_vocab) occurrences in the penalty window, zero between calls */
} lm_sampler;

lm_status lm_sampler_params_check(const lm_sampler_params *p, lm_err *err);
lm_status lm_sampler_init(lm_sampler *s, const lm_sampler_params *p, int32_t n_vocab,
                          lm_err *err);
void lm_sampler_free(lm_sampler *s);

/* Picks the next token from logits (n_vocab) given the token history (for penalties). */
lm_status lm_sampler_sample(lm_sampler *s, const float *logits, const int32_t *history,
                            size_t n_history, int32_t *out, lm_err *err);

/* Uniform double in [0, 1) from the sampler's RNG (exposed for tests). */
double lm_sampler_uniform(lm_sampler_state *st);
void lm_sampler_seed(lm_sampler_state *st, uint64_t seed);

#endif
