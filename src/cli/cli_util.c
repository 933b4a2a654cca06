/* cli_util.c — option value parsing and whole-file reads for the subcommands (cli_util.h). */
#include "cli_util.h"

#include <errno.h>
#include <stdint.h>
#include <strings.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "lemma %s: %s expects an integer in [%ld, %ld], got '%s'\n", cmd, opt, lo,
                hi, s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_float(const char *cmd, const char *opt, const char *s, float lo, float hi,
                    int lo_open, int hi_open, float *out) {
    char *end;
    errno = 0;
    float v = s ? strtof(s, &end) : 0.0f;
    int ok = s && !errno && end != s && !*end && isfinite(v) && (lo_open ? v > lo : v >= lo) &&
             (hi_open ? v < hi : v <= hi);
    if (!ok) {
        fprintf(stderr, "lemma %s: %s expects a number in %c%g, %g%c, got '%s'\n", cmd, opt,
                lo_open ? '(' : '[', (double)lo, (double)hi, hi_open ? ')' : ']', s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

char *cli_read_file(const char *cmd, const char *path, size_t max, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "lemma %s: %s: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    const char *why = buf ? NULL : "out of memory";
    while (buf) {
        if (n + 1 >= cap) {
            if (cap > max) {
                why = "too large";
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                why = "out of memory";
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0) break;
    }
    if (!why && ferror(f)) why = "read error";
    if (!why && n > max) why = "too large";
    if (f != stdin) fclose(f);
    if (why) {
        fprintf(stderr, "lemma %s: %s: %s\n", cmd, path, why);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int cli_parse_logit_bias(const char *cmd, const char *s, lm_logit_bias *out) {
    const char *eq = s ? strchr(s, '=') : NULL;
    char *end;
    if (eq && eq > s && eq[1]) {
        errno = 0;
        long t = strtol(s, &end, 10);
        if (!errno && end == eq && t >= 0 && t <= INT32_MAX) {
            const char *b = eq + 1;
            float v;
            if (!strcasecmp(b, "-inf") || !strcasecmp(b, "-infinity")) {
                v = -INFINITY;
            } else {
                errno = 0;
                v = strtof(b, &end);
                if (errno || end == b || *end || !isfinite(v)) goto bad;
            }
            out->token = (int32_t)t;
            out->bias = v;
            return 1;
        }
    }
bad:
    fprintf(stderr, "lemma %s: --logit-bias expects TOKEN=BIAS (a token id, a number or -inf), "
            "got '%s'\n", cmd, s ? s : "");
    return 0;
}
