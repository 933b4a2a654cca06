/* test_threadpool.c — the persistent thread pool: every ith runs exactly once per run, runs
 * are fully finished when lm_threadpool_run returns, many rapid runs, 1..4 threads, errors. */
#include "core/threadpool.h"
#include "test.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    atomic_int hits[8];
    atomic_long sum;
    int nth_seen;
    long round;
    long *slots; /* one plain (non-atomic) slot per ith: written by that ith only */
} ctx_t;

static void job(void *arg, int ith, int nth) {
    ctx_t *c = arg;
    atomic_fetch_add(&c->hits[ith], 1);
    atomic_fetch_add(&c->sum, ith + 1);
    c->slots[ith] = c->round; /* checked by the caller after run returns */
    if (ith == 0) c->nth_seen = nth;
}

static void test_basic(void) {
    for (int n = 1; n <= 4; n++) {
        lm_threadpool *tp = NULL;
        lm_err e;
        lm_err_clear(&e);
        T_REQUIRE(lm_threadpool_create(n, &tp, &e) == LM_OK, "create %d: %s", n, e.msg);
        T_CHECK(lm_threadpool_n_threads(tp) == n, "n_threads");
        long slots[8] = {0};
        ctx_t c;
        memset(&c, 0, sizeof c);
        c.slots = slots;
        const long runs = n <= 2 ? 20000 : 2000; /* 3-4 threads oversubscribe 2 cores */
        for (long r = 1; r <= runs; r++) {
            c.round = r;
            lm_threadpool_run(tp, job, &c);
            /* every ith has finished (and its writes are visible) when run returns */
            for (int i = 0; i < n; i++)
                if (slots[i] != r) {
                    T_CHECK(0, "n %d run %ld: ith %d slot %ld", n, r, i, slots[i]);
                    r = runs;
                    break;
                }
        }
        T_CHECK(c.nth_seen == n, "nth %d", c.nth_seen);
        for (int i = 0; i < n; i++)
            T_CHECK(atomic_load(&c.hits[i]) == runs, "n %d ith %d ran %d times", n, i,
                    atomic_load(&c.hits[i]));
        T_CHECK(atomic_load(&c.sum) == runs * n * (n + 1) / 2, "sum");
        lm_threadpool_free(tp);
    }
}

/* Runs separated by pauses long enough that workers go to sleep on the futex. */
static void test_sleep_wake(void) {
    lm_threadpool *tp = NULL;
    T_REQUIRE(lm_threadpool_create(3, &tp, NULL) == LM_OK, "create");
    long slots[8] = {0};
    ctx_t c;
    memset(&c, 0, sizeof c);
    c.slots = slots;
    for (long r = 1; r <= 30; r++) {
        c.round = r;
        if (r % 3 == 0) usleep(20000);
        lm_threadpool_run(tp, job, &c);
        for (int i = 0; i < 3; i++) T_CHECK(slots[i] == r, "round %ld ith %d", r, i);
    }
    lm_threadpool_free(tp);
}

static void test_null_and_errors(void) {
    long slots[8] = {0};
    ctx_t c;
    memset(&c, 0, sizeof c);
    c.slots = slots;
    c.round = 7;
    lm_threadpool_run(NULL, job, &c);
    T_CHECK(slots[0] == 7 && c.nth_seen == 1, "NULL pool runs inline");
    T_CHECK(lm_threadpool_n_threads(NULL) == 1, "NULL n_threads");
    lm_threadpool_free(NULL);
    lm_threadpool *tp = (lm_threadpool *)&c;
    lm_err e;
    lm_err_clear(&e);
    T_CHECK(lm_threadpool_create(0, &tp, &e) == LM_ERR_INVALID_ARG && tp == NULL, "0 threads");
    lm_err_clear(&e);
    T_CHECK(lm_threadpool_create(LM_THREADPOOL_MAX + 1, &tp, &e) == LM_ERR_INVALID_ARG, "too many");
    T_CHECK(lm_threadpool_create(2, NULL, NULL) == LM_ERR_INVALID_ARG, "NULL out");
    /* create/free churn, including freeing a pool that never ran */
    for (int i = 0; i < 50; i++) {
        T_REQUIRE(lm_threadpool_create(1 + i % 4, &tp, NULL) == LM_OK, "churn");
        if (i % 2) lm_threadpool_run(tp, job, &c);
        lm_threadpool_free(tp);
    }
}

static void empty(void *ctx, int ith, int nth) { (void)ctx, (void)ith, (void)nth; }

static void test_latency(void) {
    lm_threadpool *tp = NULL;
    T_REQUIRE(lm_threadpool_create(2, &tp, NULL) == LM_OK, "create");
    struct timespec a, b;
    const int runs = 20000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < runs; i++) lm_threadpool_run(tp, empty, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / runs;
    /* informational only: speed is asserted in benchmarks, never in unit tests */
    fprintf(stderr, "  empty run, 2 threads: %.2f us\n", us);
    lm_threadpool_free(tp);
}

int main(void) {
    T_RUN(test_basic);
    T_RUN(test_sleep_wake);
    T_RUN(test_null_and_errors);
    T_RUN(test_latency);
    return t_finish();
}
