/*
 * cli_util.h — what every lemma subcommand needs the same way: strict number parsing of
 * option values, reading a whole input file (or stdin), the options `run` and `chat` share
 * (model, help, metrics, generation, durable sessions: cli_common_option), each reporting its
 * own error on stderr as "lemma CMD: ...". Uses only the C library and include/lemma.h.
 */
#ifndef LM_CLI_UTIL_H
#define LM_CLI_UTIL_H

#include "lemma.h"

#include <stddef.h>
#include <stdio.h>

/* Parses s as a base-10 integer in [lo, hi] for option opt of command cmd. 1 on success;
 * 0 after printing "lemma CMD: OPT expects an integer in [lo, hi], got 'S'". */
int cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);

/* Parses s as a finite number in the interval lo..hi, open at an end where *_open is set. */
int cli_parse_float(const char *cmd, const char *opt, const char *s, float lo, float hi,
                    int lo_open, int hi_open, float *out);

/* Parses --logit-bias's TOKEN=BIAS (BIAS a finite number or -inf). 1 on success; 0 after
 * printing the reason. The token's range is checked against the model later. */
int cli_parse_logit_bias(const char *cmd, const char *s, lm_logit_bias *out);

/* The generation options `lemma run` and `lemma chat` share: -n -c -b -t --seed --top-k --temp
 * --top-p --min-p --repeat-penalty --stop --logit-bias. Ranges are checked here so that a bad
 * value is a usage error (exit 2) before the model loads; the library checks them again. */
enum { CLI_MAX_STOP = 16, CLI_MAX_LOGIT_BIAS = 1024 };
typedef struct cli_gen_opts {
    lm_model_params model;
    lm_session_params session;
    lm_generate_params gen; /* stop / logit_bias point into this struct after finish */
    const char *stops[CLI_MAX_STOP];
    size_t n_stop;
    lm_logit_bias biases[CLI_MAX_LOGIT_BIAS];
    size_t n_bias;
    int seed_set;
    int ctx_set; /* -c was given */
} cli_gen_opts;

void cli_gen_opts_init(cli_gen_opts *o);
/* If argv[*i] is a generation option, consumes it and its value (advancing *i) and returns 1;
 * returns 0 when it is not one, -1 after printing why its value is wrong. */
int cli_gen_option(const char *cmd, cli_gen_opts *o, int argc, char **argv, int *i);
/* Points gen at the collected stops and biases; a time-based seed unless --seed was given. */
void cli_gen_opts_finish(cli_gen_opts *o);
/* 1 if every --logit-bias token is in [0, n_vocab); else prints why and returns 0. */
int cli_gen_check_vocab(const char *cmd, const cli_gen_opts *o, int32_t n_vocab);

/* Reads all of PATH ("-" = stdin), at most max bytes, into a NUL-terminated malloc'd buffer
 * (free with free). NULL after printing the reason. */
char *cli_read_file(const char *cmd, const char *path, size_t max, size_t *len);

/* ---- durable sessions: --session NAME and --store DIR (run, chat) ---------------------- */

typedef struct cli_store_opts {
    const char *session; /* --session NAME; NULL = none */
    const char *dir;     /* --store DIR; NULL = the default store (lm_store_open(NULL)) */
} cli_store_opts;

/* If argv[*i] is --session or --store, consumes it and its value (advancing *i) and returns
 * 1; 0 when it is not one; -1 after printing why (a missing value: a usage error). */
int cli_store_option(const char *cmd, cli_store_opts *o, int argc, char **argv, int *i);

/* 1 if name follows the store's session-name rules (1-128 bytes of [A-Za-z0-9_.-], not
 * starting with '.', no ".."); else prints "lemma CMD: bad session name ..." and returns 0.
 * The library checks again; this only lets the CLI refuse before loading a model. */
int cli_session_name_ok(const char *cmd, const char *name);

/* ---- the options `run` and `chat` share ------------------------------------------------ */

typedef struct cli_common_opts {
    const char *model;    /* -m / --model MODEL; NULL = not given */
    int metrics;          /* --metrics */
    cli_gen_opts gen;     /* the generation options (cli_gen_option) */
    cli_store_opts store; /* --session / --store (cli_store_option) */
} cli_common_opts;

/* Defaults: no model, no metrics, cli_gen_opts_init, no session or store. */
void cli_common_opts_init(cli_common_opts *o);

/* cli_common_option's answer to -h / --help: the caller prints its usage to stdout, exits 0. */
#define CLI_OPT_HELP 2
/* If argv[*i] is -h / --help (CLI_OPT_HELP), -m / --model MODEL, --metrics, a generation
 * option or a store option, consumes it and its value (advancing *i) and returns 1 (or
 * CLI_OPT_HELP); 0 when it is none of them; -1 after printing why its value is wrong or
 * missing (a usage error: exit 2). */
int cli_common_option(const char *cmd, cli_common_opts *o, int argc, char **argv, int *i);

/* The vocabulary of the loaded model m (lm_model_vocab), loaded from path. When m has none,
 * prints why ("lemma CMD: ..."; the reason is what lm_vocab_load says of path, read only on
 * this path) and returns NULL. */
const lm_vocab *cli_model_vocab(const char *cmd, const lm_model *m, const char *path);

/* Opens the store dir (NULL = default). NULL after printing the reason. */
lm_store *cli_store_open(const char *cmd, const char *dir);

/* Wakes session `name` from st for model m (params: n_ctx 0 = the saved one, page_tokens 0
 * = the saved page size), or, when the store has no such session, creates a new empty one
 * with params. *woken = 1 when it was woken. Returns 0, or the exit code (1) after printing
 * the reason (identity mismatch, corrupt store, bad name ...). */
int cli_session_open(const char *cmd, lm_model *m, const lm_session_params *params,
                     lm_store *st, const char *name, lm_session **out, int *woken);

/* The text that continues a chat whose session ends after an assistant reply with one more
 * user message (generation prompt included): the template is rendered for a conversation
 * with a placeholder user turn and a placeholder reply (CLI_RESUME_MARK) followed by msg, and
 * what follows the placeholder reply is returned (the end-of-turn markup of the reply, then
 * the new turn). Exactly what `lemma chat` appends for a later turn when the template renders
 * each turn the same whatever follows it. *out is freed with free. 0 on success;
 * 1 after printing the reason. */
#define CLI_RESUME_USER "lemma-resumed-conversation"
#define CLI_RESUME_MARK "lemma-resume-point-6b1f0c"
int cli_chat_continuation(const char *cmd, const lm_vocab *v, const char *msg, size_t len,
                          char **out);

/* Writes s as a JSON string literal (quotes included) to f. */
void cli_json_str(FILE *f, const char *s);

#endif
