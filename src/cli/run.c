/*
 * run.c — `lemma run`: load a model, feed a prompt, stream the continuation to stdout.
 *
 *   lemma run -m MODEL -p PROMPT [-n N] [--temp T] [--seed S] [--top-k K] [--top-p P]
 *             [--min-p P] [--repeat-penalty R] [-c CTX] [-b BATCH] [-t THREADS]
 *             [--stop S]... [--logit-bias TOKEN=BIAS]... [--chat] [--metrics]
 *
 * Only the generated text goes to stdout; errors go to stderr; --metrics prints one JSON line
 * of metrics to stderr at the end. Exit codes: 0 ok, 1 runtime error (model file, memory),
 * 2 bad usage or invalid input (options, sampling parameters, a prompt beyond the context).
 * Uses only include/lemma.h.
 */
#include "cli_util.h"

#include <float.h>
#include "lemma.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void run_usage(FILE *f) {
    fprintf(f,
            "usage: lemma run -m MODEL -p PROMPT [options]\n"
            "  -n N                 tokens to generate (default 128)\n"
            "  --temp T             temperature, 0 = greedy (default 0.8)\n"
            "  --seed S             RNG seed (default: from the clock)\n"
            "  --top-k K            0 = off (default 40)\n"
            "  --top-p P            (0, 1], 1 = off (default 0.95)\n"
            "  --min-p P            [0, 1), 0 = off (default 0.05)\n"
            "  --repeat-penalty R   1 = off (default 1)\n"
            "  -c CTX               context length (default min(model, 4096))\n"
            "  -b BATCH             prefill chunk (default 256)\n"
            "  -t THREADS           compute threads (default: all CPUs)\n"
            "  --stop S             stop when the text contains S (repeatable, up to 16);\n"
            "                       S itself is not printed\n"
            "  --logit-bias T=B     add B (a number, or -inf to ban) to token T's logit\n"
            "                       (repeatable)\n"
            "  --chat               wrap the prompt as a user message in the chat template\n"
            "  --metrics            print a JSON line of metrics to stderr at the end\n");
}


static int print_token(void *user, int32_t token, const char *text, size_t len) {
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    int chat = 0, metrics = 0;
    cli_gen_opts opt;
    cli_gen_opts_init(&opt);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_gen_option("run", &opt, argc, argv, &i);
        if (g < 0) return 2;
        if (g > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = next, i++;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            prompt = next, i++;
        } else if (!strcmp(a, "--chat")) {
            chat = 1;
        } else if (!strcmp(a, "--metrics")) {
            metrics = 1;
        } else {
            fprintf(stderr, "lemma run: unknown option '%s'\n", a);
            run_usage(stderr);
            return 2;
        }
    }
    if (!model_path || !prompt) {
        fprintf(stderr, "lemma run: -m MODEL and -p PROMPT are required\n");
        run_usage(stderr);
        return 2;
    }
    cli_gen_opts_finish(&opt);
    opt.gen.on_token = print_token;

    char err[512];
    lm_model *m = NULL;
    lm_session *s = NULL;
    char *wrapped = NULL;
    int rc = 1;
    if (lm_model_load(model_path, &opt.model, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma run: %s\n", err);
        goto done;
    }
    /* a bias for a token the model lacks is a usage error, reported before any work */
    if (!cli_gen_check_vocab("run", &opt, lm_model_n_vocab(m))) {
        rc = 2;
        goto done;
    }
    if (lm_session_new(m, &opt.session, &s, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma run: %s\n", err);
        rc = 2;
        goto done;
    }
    const char *text = prompt;
    if (chat) {
        if (lm_model_chat_prompt(m, prompt, &wrapped, err, sizeof err) != LM_OK) {
            fprintf(stderr, "lemma run: --chat: %s\n", err);
            goto done;
        }
        text = wrapped;
    }
    /* A raw prompt gets BOS etc. as the model asks; a rendered template carries its own
     * special tokens as text, so those are parsed rather than added again. */
    lm_status st = lm_session_append_text(s, text, strlen(text), !chat, 1);
    if (st == LM_OK) st = lm_session_generate(s, &opt.gen);
    if (st != LM_OK) {
        fflush(stdout);
        fprintf(stderr, "lemma run: %s\n", lm_session_error(s));
        rc = st == LM_ERR_INVALID_ARG ? 2 : 1; /* bad parameters or input vs. failure */
        goto done;
    }
    fprintf(stdout, "\n");
    fflush(stdout);
    rc = 0;
    if (metrics) {
        lm_metrics mt;
        lm_session_metrics(s, &mt);
        fprintf(stderr,
                "{\"prompt_tokens\":%llu,\"generated_tokens\":%llu,\"prefill_ms\":%.3f,"
                "\"decode_ms\":%.3f,\"prefill_tps\":%.2f,\"decode_tps\":%.2f,\"ttft_ms\":%.3f}\n",
                (unsigned long long)mt.prompt_tokens, (unsigned long long)mt.generated_tokens,
                mt.prefill_ms, mt.decode_ms, mt.prefill_tps, mt.decode_tps, mt.ttft_ms);
    }
done:
    lm_free_string(wrapped);
    lm_session_free(s);
    lm_model_free(m);
    return rc;
}
