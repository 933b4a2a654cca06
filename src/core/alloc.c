/* alloc.c — malloc wrappers with optional fault injection (see alloc.h). */
#include "core/alloc.h"

#include "lemma.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static unsigned long g_fail_countdown; /* 0 = off */
static int g_fail_persistent;
static int g_failing;
static unsigned long g_injected;

static int should_fail(void) {
    if (g_failing) {
        g_injected++;
        return 1;
    }
    if (g_fail_countdown == 0) return 0;
    if (--g_fail_countdown == 0) {
        g_injected++;
        if (g_fail_persistent) g_failing = 1;
        return 1;
    }
    return 0;
}

void lm_alloc_fail_after(unsigned long n, int persistent) {
    g_fail_countdown = n;
    g_fail_persistent = persistent;
    g_failing = 0;
    g_injected = 0;
}

unsigned long lm_alloc_injected_failures(void) { return g_injected; }

void *lm_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *lm_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *lm_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void lm_free(void *p) { free(p); }

char *lm_strndup(const char *s, size_t n) {
    char *d = lm_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *lm_strdup(const char *s) { return lm_strndup(s, strlen(s)); }

void lm_free_string(char *s) { free(s); }
