/*
 * threadpool.c — persistent workers woken by a generation counter.
 *
 * Protocol (all atomics sequentially consistent, which makes the sleep/wake handshake easy to
 * reason about; the cost is a few fences per run, negligible next to a kernel):
 *   run:    each task ith >= 1 gets a claim word (gen << 2 | state; state 0 = unclaimed,
 *           1 = running, 2 = done) set to "unclaimed" for the new gen, fn/ctx are stored, then
 *           gen is incremented. If any worker may be asleep (sleepers > 0) the caller
 *           futex-wakes gen. The caller runs ith 0, then claims and runs every task no worker
 *           has claimed yet (a descheduled or sleeping worker does not hold the run up: on a
 *           busy machine the caller does its share), then waits until every task is done
 *           (spinning, then yielding).
 *   worker: remembers the last gen it served; spins until gen differs, then (after a spin
 *           budget) increments sleepers and futex-waits on gen with the old value. The kernel
 *           re-checks gen under its lock, so a bump between the check and the wait is not lost;
 *           a bump after sleepers++ is seen by the caller's sleepers check and woken. Having
 *           seen gen g it claims its task by CAS from (g, unclaimed) to (g, running) and only
 *           then reads fn/ctx: a worker that wakes late fails the CAS (the word carries a newer
 *           gen, or the caller took the task) and never runs a finished run's function.
 *   free:   stop = 1, gen++, wake all, join.
 * fn/ctx are written before the gen increment and read after a successful claim, so workers see
 * them; the caller does not change them before every claimed task is done. A task may thus run
 * on the caller's thread (after its own), never twice and never concurrently with itself.
 */
#include "core/threadpool.h"

#include "core/alloc.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#define LM_HAVE_FUTEX 1
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LM_CPU_RELAX() _mm_pause()
#else
#define LM_CPU_RELAX() ((void)0)
#endif

/* Spin iterations before sleeping: about 0.1-0.5 ms of pause instructions, longer than the gap
 * between two matmuls of one decode step, much shorter than the gap between two tokens. */
#define LM_TP_SPIN 20000
/* The caller yields sooner: if a worker is slow it is usually descheduled (shared cores), and
 * giving up the core is then what lets it finish. */
#define LM_TP_CALLER_SPIN 4000

typedef struct lm_tp_worker {
    struct lm_threadpool *tp;
    pthread_t thread;
    int ith;
} lm_tp_worker;

struct lm_threadpool {
    int n_threads;
    int n_started;          /* workers actually created (for cleanup after a failed create) */
    lm_tp_worker *workers;  /* n_threads - 1 */
    _Atomic uint32_t gen;   /* futex word: incremented once per run and at shutdown */
    atomic_int sleepers;    /* workers in (or about to enter) futex wait */
    _Atomic uint64_t *claim; /* (n_threads) claim word of task ith: gen << 2 | state */
    atomic_int stop;
    lm_threadpool_fn fn;
    void *ctx;
    /* Without futexes: a condvar on the same protocol. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void tp_wait(lm_threadpool *tp, uint32_t seen) {
#ifdef LM_HAVE_FUTEX
    syscall(SYS_futex, (uint32_t *)&tp->gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
    pthread_mutex_lock(&tp->mu);
    while (atomic_load(&tp->gen) == seen) pthread_cond_wait(&tp->cv, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
#endif
}

static void tp_wake_all(lm_threadpool *tp) {
#ifdef LM_HAVE_FUTEX
    syscall(SYS_futex, (uint32_t *)&tp->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    pthread_mutex_lock(&tp->mu);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
#endif
}

static void *tp_main(void *arg) {
    lm_tp_worker *w = arg;
    lm_threadpool *tp = w->tp;
    uint32_t seen = 0; /* gen is 0 at creation, before any worker starts */
    for (;;) {
        uint32_t g;
        int spins = 0;
        while ((g = atomic_load(&tp->gen)) == seen) {
            if (spins < LM_TP_SPIN) {
                LM_CPU_RELAX();
                spins++;
                continue;
            }
            atomic_fetch_add(&tp->sleepers, 1);
            if (atomic_load(&tp->gen) == seen) tp_wait(tp, seen);
            atomic_fetch_sub(&tp->sleepers, 1);
        }
        seen = g;
        if (atomic_load(&tp->stop)) break;
        uint64_t want = (uint64_t)g << 2;
        if (atomic_compare_exchange_strong(&tp->claim[w->ith], &want, want | 1)) {
            tp->fn(tp->ctx, w->ith, tp->n_threads);
            atomic_store(&tp->claim[w->ith], ((uint64_t)g << 2) | 2);
        }
    }
    return NULL;
}

lm_status lm_threadpool_create(int n_threads, lm_threadpool **out, lm_err *err) {
    if (!out) return lm_err_set(err, LM_ERR_INVALID_ARG, "threadpool: out is NULL");
    *out = NULL;
    if (n_threads < 1 || n_threads > LM_THREADPOOL_MAX)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "threadpool: n_threads %d not in 1..%d",
                          n_threads, LM_THREADPOOL_MAX);
    lm_threadpool *tp = lm_calloc(1, sizeof *tp);
    if (!tp) return lm_err_set(err, LM_ERR_NOMEM, "threadpool: out of memory");
    tp->n_threads = n_threads;
    atomic_init(&tp->gen, 0);
    atomic_init(&tp->sleepers, 0);
    atomic_init(&tp->stop, 0);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    if (n_threads > 1) {
        tp->workers = lm_calloc((size_t)n_threads - 1, sizeof *tp->workers);
        tp->claim = lm_calloc((size_t)n_threads, sizeof *tp->claim);
        if (!tp->workers || !tp->claim) {
            lm_threadpool_free(tp);
            return lm_err_set(err, LM_ERR_NOMEM, "threadpool: out of memory");
        }
        for (int i = 0; i < n_threads; i++) atomic_init(&tp->claim[i], 2); /* gen 0: done */
        for (int i = 0; i < n_threads - 1; i++) {
            lm_tp_worker *w = &tp->workers[i];
            w->tp = tp;
            w->ith = i + 1;
            int rc = pthread_create(&w->thread, NULL, tp_main, w);
            if (rc != 0) {
                lm_threadpool_free(tp);
                return lm_err_set(err, LM_ERR_NOMEM, "threadpool: pthread_create: %s",
                                  strerror(rc));
            }
            tp->n_started++;
        }
    }
    *out = tp;
    return LM_OK;
}

void lm_threadpool_run(lm_threadpool *tp, lm_threadpool_fn fn, void *ctx) {
    if (!tp || tp->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    const int n = tp->n_threads;
    const uint32_t g = atomic_load(&tp->gen) + 1;
    const uint64_t fresh = (uint64_t)g << 2, done = fresh | 2;
    for (int i = 1; i < n; i++) atomic_store(&tp->claim[i], fresh);
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store(&tp->gen, g);
    if (atomic_load(&tp->sleepers) > 0) tp_wake_all(tp);
    fn(ctx, 0, n);
    /* tasks no worker has claimed yet: run them here instead of waiting for their worker */
    for (int i = 1; i < n; i++) {
        uint64_t want = fresh;
        if (atomic_compare_exchange_strong(&tp->claim[i], &want, fresh | 1)) {
            fn(ctx, i, n);
            atomic_store(&tp->claim[i], done);
        }
    }
    for (int i = 1; i < n; i++) {
        int spins = 0;
        while (atomic_load(&tp->claim[i]) != done) {
            if (spins < LM_TP_CALLER_SPIN) {
                LM_CPU_RELAX();
                spins++;
            } else {
                sched_yield(); /* the worker running it may be descheduled: give it the core */
            }
        }
    }
}

int lm_threadpool_n_threads(const lm_threadpool *tp) { return tp ? tp->n_threads : 1; }

void lm_threadpool_free(lm_threadpool *tp) {
    if (!tp) return;
    if (tp->n_started > 0) {
        atomic_store(&tp->stop, 1);
        atomic_fetch_add(&tp->gen, 1);
        tp_wake_all(tp);
        for (int i = 0; i < tp->n_started; i++) pthread_join(tp->workers[i].thread, NULL);
    }
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv);
    lm_free(tp->workers);
    lm_free((void *)tp->claim);
    lm_free(tp);
}
