/*
 * alloc.h — the library's allocation entry points, with fault injection for tests.
 *
 * All heap memory in liblemma comes from these. Tests can make the N-th allocation from now
 * fail (transient: only that one; persistent: that one and every later one) to check that
 * every path returns LM_ERR_NOMEM cleanly and leaks nothing (the SQLite OOM-testing method).
 */
#ifndef LM_CORE_ALLOC_H
#define LM_CORE_ALLOC_H

#include <stddef.h>

void *lm_malloc(size_t n);
void *lm_calloc(size_t count, size_t size); /* overflow-checked */
void *lm_realloc(void *p, size_t n);
void lm_free(void *p);
char *lm_strdup(const char *s);
char *lm_strndup(const char *s, size_t n);

/* Test hook: the n-th allocation from now (1 = the next one) fails; persistent != 0 makes all
 * later ones fail too. n == 0 turns injection off. Not thread-safe: for single-threaded tests. */
void lm_alloc_fail_after(unsigned long n, int persistent);
/* Number of allocations that failed because of injection since the last lm_alloc_fail_after. */
unsigned long lm_alloc_injected_failures(void);

#endif
