/*
 * threadpool.h — a persistent pool of worker threads for data-parallel kernels.
 *
 * lm_threadpool_run(tp, fn, ctx) calls fn(ctx, ith, nth) once for every ith in [0, nth) and
 * returns when all calls have returned; the calling thread runs ith 0 itself, so a pool of
 * n threads starts n - 1 workers. Decode calls this hundreds of times per token, so a run is
 * cheap: workers spin briefly on a generation counter before sleeping on a futex, and the
 * caller spins on a completion counter.
 *
 * Invariants: one run at a time per pool (run is not reentrant and must not be called from
 * inside fn, nor from two threads at once); fn must not block waiting for another ith.
 */
#ifndef LM_CORE_THREADPOOL_H
#define LM_CORE_THREADPOOL_H

#include "core/status.h"

typedef struct lm_threadpool lm_threadpool;

typedef void (*lm_threadpool_fn)(void *ctx, int ith, int nth);

#define LM_THREADPOOL_MAX 256

/* Creates a pool of n_threads (1..LM_THREADPOOL_MAX, counting the caller). */
lm_status lm_threadpool_create(int n_threads, lm_threadpool **out, lm_err *err);
/* Runs fn(ctx, ith, nth) for all ith and waits. tp == NULL runs fn(ctx, 0, 1). */
void lm_threadpool_run(lm_threadpool *tp, lm_threadpool_fn fn, void *ctx);
/* Number of threads, caller included (1 for NULL). */
int lm_threadpool_n_threads(const lm_threadpool *tp);
/* Stops and joins the workers. NULL is a no-op. */
void lm_threadpool_free(lm_threadpool *tp);

#endif
