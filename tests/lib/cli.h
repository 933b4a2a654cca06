/*
 * cli.h — running the built `lemma` binary from a test and capturing what it prints.
 *
 * The binary is $LM_TEST_BUILD/lemma (default build/lemma, relative to the working directory,
 * which is the repository root under make test). A test that needs it starts with
 *
 *     if (!t_cli_has("tokenize")) T_SKIP("%s not built or without ...", t_cli_bin());
 *
 * and then calls t_cli_run, which forks, runs the binary with the given arguments and waits.
 */
#ifndef LM_TEST_CLI_H
#define LM_TEST_CLI_H

#include <stddef.h>

/* Path of the lemma binary: $LM_TEST_BUILD/lemma, or build/lemma when LM_TEST_BUILD is unset
 * or empty. Never NULL (the file may be absent: see t_cli_has); a static buffer. */
const char *t_cli_bin(void);

/* 1 when t_cli_bin() is an executable file and `lemma COMMAND --help` exits 0 (the binary is
 * built and knows COMMAND), else 0. Asked once per COMMAND and program. */
int t_cli_has(const char *command);

/* Runs t_cli_bin() with args (NULL-terminated, argv[0] excluded, at most 62) in the current
 * working directory and environment, and waits for it.
 *   stdin_text: written to a file under t_tmpdir() that becomes stdin; NULL: /dev/null.
 *   *out: all of stdout, malloc'd and NUL-terminated (never NULL after the call); out_len
 *         (may be NULL) gets its length in bytes, which counts any NUL bytes in it.
 *   err: NULL discards stderr; else *err gets all of stderr like *out (never NULL).
 * Returns the exit status, or -1 when the binary could not be run or died of a signal. */
int t_cli_run(const char *const *args, const char *stdin_text, char **out, size_t *out_len,
              char **err);

/* Writes text to t_tmpdir()/name (replacing it) and returns that path, or NULL on failure.
 * The path lives in one of 4 static buffers used in turn. */
const char *t_write_tmp(const char *name, const char *text);

#endif
