/*
 * test.h — the tiny test framework of lemma's tests.
 *
 * A test program is a main() that calls T_RUN(fn) for each test function. Inside a test,
 * T_CHECK(cond, fmt, ...) records a failure (with file:line and the message) and goes on;
 * T_REQUIRE stops the test function. Each program prints "ok NAME" / "FAIL NAME" per test and
 * ends with "RESULT passed failed skipped", which tools/run_tests.sh adds up into the closing
 * "N passed, N failed" line. A test that cannot run here (a model not installed) calls
 * T_SKIP(reason): it is counted and shown, never counted as passed.
 */
#ifndef LM_TEST_H
#define LM_TEST_H

#include <stdio.h>
#include <stdlib.h>

extern int t_cur_failed, t_cur_skipped;
extern int t_passed, t_failed, t_skipped;
extern const char *t_cur_name;

#define T_CHECK(cond, ...)                                                                    \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            t_cur_failed++;                                                                   \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)

#define T_REQUIRE(cond, ...)                                                                  \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            T_CHECK(cond, __VA_ARGS__);                                                       \
            return;                                                                           \
        }                                                                                     \
    } while (0)

#define T_SKIP(...)                                                                           \
    do {                                                                                      \
        t_cur_skipped = 1;                                                                    \
        fprintf(stderr, "  skip %s: ", t_cur_name);                                           \
        fprintf(stderr, __VA_ARGS__);                                                         \
        fputc('\n', stderr);                                                                  \
        return;                                                                               \
    } while (0)

void t_run(const char *name, void (*fn)(void));
#define T_RUN(fn) t_run(#fn, fn)
/* Prints the RESULT line; returns the exit code for main. */
int t_finish(void);

/* Path of the shared test data folder ($LM_SHARED, default ../shared) joined with rel. */
const char *t_shared_path(const char *rel);
/* A fresh temporary directory for this test program (removed by nobody: under /tmp). */
const char *t_tmpdir(void);
/* Decompresses the gzip file gz into t_tmpdir()/name; returns that path (a static buffer,
 * valid until the next call) or NULL on failure. */
const char *t_gunzip(const char *gz, const char *name);
/* Path of llama.cpp's vocabulary GGUF "ggml-vocab-NAME.gguf" from the shared test data
 * (top-level or llama.cpp-v0.4.0/), decompressed once into t_tmpdir(); NULL if absent. */
const char *t_vocab_gguf(const char *name);
/* Deterministic xorshift random numbers for tests. */
unsigned long long t_rand_u64(void);
float t_rand_f32(float lo, float hi);
void t_srand(unsigned long long seed);

#endif
