/* status.c — lm_status names and the lm_err helpers (see status.h). */
#include "core/status.h"

#include <stdio.h>
#include <string.h>

const char *lm_status_str(lm_status s) {
    switch (s) {
    case LM_OK: return "ok";
    case LM_ERR_INVALID_ARG: return "invalid argument";
    case LM_ERR_IO: return "i/o error";
    case LM_ERR_FORMAT: return "format error";
    case LM_ERR_UNSUPPORTED: return "unsupported";
    case LM_ERR_NOMEM: return "out of memory";
    case LM_ERR_CORRUPT: return "corrupt data";
    case LM_ERR_NOT_FOUND: return "not found";
    case LM_ERR_MISMATCH: return "identity mismatch";
    case LM_ERR_ABORTED: return "aborted";
    case LM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *lm_version(void) { return LM_VERSION_STRING; }

void lm_err_clear(lm_err *e) {
    if (!e) return;
    e->code = LM_OK;
    e->msg[0] = '\0';
}

/* Replace control characters (a file's bytes may end up in a message) so a message stays one
 * printable line. */
static void sanitize(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

lm_status lm_err_set(lm_err *e, lm_status s, const char *fmt, ...) {
    if (!e || e->code != LM_OK) return s;
    e->code = s;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    sanitize(e->msg);
    return s;
}

void lm_err_prefix(lm_err *e, const char *fmt, ...) {
    if (!e || e->code == LM_OK) return;
    char pre[LM_ERR_MSG_MAX], old[LM_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old);
    sanitize(e->msg);
}

void lm_err_copy(const lm_err *e, char *buf, size_t len) {
    if (!buf || len == 0) return;
    snprintf(buf, len, "%s", e && e->code != LM_OK ? e->msg : "");
}
