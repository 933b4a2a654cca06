/*
 * checked.h — overflow-checked integer arithmetic for sizes that come from outside.
 *
 * Every count, length, dimension, offset and product read from a file or a request goes
 * through these before it is used to size an allocation or index memory. Each returns 1 on
 * success (result stored) and 0 on overflow (result untouched).
 */
#ifndef LM_CORE_CHECKED_H
#define LM_CORE_CHECKED_H

#include <stddef.h>
#include <stdint.h>

static inline int lm_add_u64(uint64_t a, uint64_t b, uint64_t *r) {
    uint64_t t;
    if (__builtin_add_overflow(a, b, &t)) return 0;
    *r = t;
    return 1;
}
static inline int lm_mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
    uint64_t t;
    if (__builtin_mul_overflow(a, b, &t)) return 0;
    *r = t;
    return 1;
}
static inline int lm_add_size(size_t a, size_t b, size_t *r) {
    size_t t;
    if (__builtin_add_overflow(a, b, &t)) return 0;
    *r = t;
    return 1;
}
static inline int lm_mul_size(size_t a, size_t b, size_t *r) {
    size_t t;
    if (__builtin_mul_overflow(a, b, &t)) return 0;
    *r = t;
    return 1;
}
/* Rounds x up to a multiple of align (align must be a non-zero power of two). */
static inline int lm_pad_u64(uint64_t x, uint64_t align, uint64_t *r) {
    uint64_t t;
    if (align == 0 || (align & (align - 1)) != 0) return 0;
    if (__builtin_add_overflow(x, align - 1, &t)) return 0;
    *r = t & ~(align - 1);
    return 1;
}
static inline int lm_is_pow2_u64(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

#endif
