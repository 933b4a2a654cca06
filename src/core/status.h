/*
 * status.h — internal error reporting.
 *
 * Every internal function that can fail returns lm_status and, when given a non-NULL lm_err,
 * writes one line saying what failed, naming the field and the offending value:
 *     return lm_err_set(err, LM_ERR_FORMAT, "gguf: tensor '%s': n_dims %u > %u", name, nd, max);
 * The first error set wins (lm_err_set does not overwrite an already-set message), so a
 * low-level reason is not replaced by a vaguer one on the way up; use lm_err_prefix to add
 * context instead.
 */
#ifndef LM_CORE_STATUS_H
#define LM_CORE_STATUS_H

#include "lemma.h"

#include <stdarg.h>
#include <stddef.h>

#define LM_ERR_MSG_MAX 512

typedef struct lm_err {
    lm_status code;            /* LM_OK until set */
    char msg[LM_ERR_MSG_MAX];  /* NUL-terminated, one line */
} lm_err;

#if defined(__GNUC__)
#define LM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LM_PRINTF(a, b)
#endif

void lm_err_clear(lm_err *e);
/* Sets code and message unless an error is already set; returns s (so it can be returned). */
lm_status lm_err_set(lm_err *e, lm_status s, const char *fmt, ...) LM_PRINTF(3, 4);
/* Prepends "prefix: " to the current message (no-op when no error is set). */
void lm_err_prefix(lm_err *e, const char *fmt, ...) LM_PRINTF(2, 3);
/* Copies the message into a caller buffer (truncating); buf may be NULL. */
void lm_err_copy(const lm_err *e, char *buf, size_t len);

#endif
