/*
 * cli_util.h — what every lemma subcommand needs the same way: strict number parsing of
 * option values and reading a whole input file (or stdin), each reporting its own error on
 * stderr as "lemma CMD: ...". Uses only the C library (the CLI links only include/lemma.h).
 */
#ifndef LM_CLI_UTIL_H
#define LM_CLI_UTIL_H

#include "lemma.h"

#include <stddef.h>

/* Parses s as a base-10 integer in [lo, hi] for option opt of command cmd. 1 on success;
 * 0 after printing "lemma CMD: OPT expects an integer in [lo, hi], got 'S'". */
int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);

/* Parses s as a finite number in the interval lo..hi, open at an end where *_open is set. */
int cli_parse_float(const char *cmd, const char *opt, const char *s, float lo, float hi,
                    int lo_open, int hi_open, float *out);

/* Parses --logit-bias's TOKEN=BIAS (BIAS a finite number or -inf). 1 on success; 0 after
 * printing the reason. The token's range is checked against the model later. */
int cli_parse_logit_bias(const char *cmd, const char *s, lm_logit_bias *out);

/* Reads all of PATH ("-" = stdin), at most max bytes, into a NUL-terminated malloc'd buffer
 * (free with free). NULL after printing the reason. */
char *cli_read_file(const char *cmd, const char *path, size_t max, size_t *len);

#endif
