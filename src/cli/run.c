/*
 * run.c — `lemma run`: load a model, feed a prompt, stream the continuation to stdout.
 *
 *   lemma run -m MODEL -p PROMPT [-n N] [--temp T] [--seed S] [--top-k K] [--top-p P]
 *             [--min-p P] [--repeat-penalty R] [-c CTX] [-b BATCH] [-t THREADS]
 *             [--stop S]... [--logit-bias TOKEN=BIAS]... [--chat] [--metrics]
 *             [--session NAME] [--store DIR]
 *
 * Only the generated text goes to stdout; errors go to stderr; --metrics prints one JSON line
 * of metrics to stderr at the end. Exit codes: 0 ok, 1 runtime error (model file, memory,
 * store, session identity), 2 bad usage or invalid input (options, sampling parameters, a
 * prompt beyond the context).
 *
 * --session NAME keeps the conversation in a store (--store DIR, default lm_store_open(NULL)):
 * the session is woken when the store has it (nothing recomputed), the prompt (optional then:
 * without one the saved state simply goes on generating) is appended, the continuation
 * generated, and the session put back to sleep under NAME. BOS is added only to the first
 * text of a new session. With --chat, a new session gets the prompt rendered as the first user
 * message; a continued one gets only what the template adds for one more user turn after the
 * saved reply (cli_chat_continuation: the same text `lemma chat` appends for a later turn).
 * Without --seed a woken session continues its saved RNG stream (LM_SEED_CONTINUE). A session
 * that cannot be woken (another model, a corrupt store, a bad name) is an error before
 * anything is generated or written. --store without --session still lends the store's pages
 * to the prefix cache.
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
            "  --metrics            print a JSON line of metrics to stderr at the end\n"
            "  --session NAME       continue session NAME of the store (a new one if it does\n"
            "                       not exist) and save it there afterwards; -p is optional\n"
            "                       then (without it the saved state goes on generating)\n"
            "  --store DIR          the session store (default $LEMMA_STORE, else\n"
            "                       $XDG_DATA_HOME/lemma/store, else ~/.local/share/lemma/store);\n"
            "                       without --session its pages still serve as a prefix cache\n");
}


static int print_token(void *user, int32_t token, const char *text, size_t len) {
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

int cmd_run(int argc, char **argv) {
    const char *prompt = NULL;
    int chat = 0;
    cli_common_opts o;
    cli_common_opts_init(&o);
    cli_gen_opts *opt = &o.gen;
    const cli_store_opts *so = &o.store;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_common_option("run", &o, argc, argv, &i);
        if (g == CLI_OPT_HELP) {
            run_usage(stdout);
            return 0;
        }
        if (g < 0) return 2;
        if (g > 0) continue;
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            prompt = next, i++;
        } else if (!strcmp(a, "--chat")) {
            chat = 1;
        } else {
            fprintf(stderr, "lemma run: unknown option '%s'\n", a);
            run_usage(stderr);
            return 2;
        }
    }
    if (!o.model || (!prompt && !so->session)) {
        fprintf(stderr, "lemma run: -m MODEL and -p PROMPT (or --session NAME) are required\n");
        run_usage(stderr);
        return 2;
    }
    if (so->session && !cli_session_name_ok("run", so->session)) return 1;
    cli_gen_opts_finish(opt);
    opt->gen.on_token = print_token;

    char err[512];
    lm_model *m = NULL;
    lm_session *s = NULL;
    lm_store *store = NULL;
    char *wrapped = NULL, *cont = NULL; /* lm_free_string / free */
    int rc = 1, woken = 0;
    if (so->session || so->dir) {
        /* before the model: a store that cannot be opened costs no model load */
        if (!(store = cli_store_open("run", so->dir))) goto done;
        opt->session.store = store;
    }
    if (lm_model_load(o.model, &opt->model, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma run: %s\n", err);
        goto done;
    }
    /* a bias for a token the model lacks is a usage error, reported before any work */
    if (!cli_gen_check_vocab("run", opt, lm_model_n_vocab(m))) {
        rc = 2;
        goto done;
    }
    if (so->session) {
        lm_session_params wp = opt->session;
        wp.page_tokens = 0; /* the saved page size (a new session gets the default) */
        if (!opt->ctx_set) wp.n_ctx = 0;
        if ((rc = cli_session_open("run", m, &wp, store, so->session, &s, &woken)) != 0)
            goto done;
        rc = 1;
        if (!woken && (!prompt || !*prompt)) {
            fprintf(stderr, "lemma run: no session '%s' in %s; give -p PROMPT to start it\n",
                    so->session, lm_store_dir(store));
            goto done;
        }
        if (woken && lm_session_n_tokens(s) > 0 && !opt->seed_set)
            opt->gen.sampling.seed = LM_SEED_CONTINUE;
    } else if (lm_session_new(m, &opt->session, &s, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma run: %s\n", err);
        rc = 2;
        goto done;
    }
    int fresh = lm_session_n_tokens(s) == 0;
    const char *text = prompt ? prompt : "";
    if (chat && prompt) {
        if (fresh) {
            if (lm_model_chat_prompt(m, prompt, &wrapped, err, sizeof err) != LM_OK) {
                fprintf(stderr, "lemma run: --chat: %s\n", err);
                goto done;
            }
        } else {
            /* only what one more user turn adds after the saved reply */
            const lm_vocab *v = cli_model_vocab("run", m, o.model);
            if (!v || cli_chat_continuation("run", v, prompt, strlen(prompt), &cont)) goto done;
        }
        text = fresh ? wrapped : cont;
    }
    /* A raw prompt gets BOS etc. as the model asks (only at the start of a session); a rendered
     * template carries its own special tokens as text, so those are parsed rather than added
     * again. */
    lm_status st = LM_OK;
    if (*text || fresh) st = lm_session_append_text(s, text, strlen(text), !chat && fresh, 1);
    if (st == LM_OK) st = lm_session_generate(s, &opt->gen);
    if (st != LM_OK) {
        fflush(stdout);
        fprintf(stderr, "lemma run: %s\n", lm_session_error(s));
        rc = st == LM_ERR_INVALID_ARG ? 2 : 1; /* bad parameters or input vs. failure */
        goto done;
    }
    fprintf(stdout, "\n");
    fflush(stdout);
    if (so->session && lm_session_sleep(s, store, so->session) != LM_OK) {
        fprintf(stderr, "lemma run: saving session '%s': %s\n", so->session,
                lm_session_error(s));
        goto done;
    }
    rc = 0;
    if (o.metrics) {
        lm_metrics mt;
        lm_session_metrics(s, &mt);
        fprintf(stderr,
                "{\"prompt_tokens\":%llu,\"generated_tokens\":%llu,\"prefill_ms\":%.3f,"
                "\"decode_ms\":%.3f,\"prefill_tps\":%.2f,\"decode_tps\":%.2f,\"ttft_ms\":%.3f,"
                "\"reused_tokens\":%llu,\"restored_tokens\":%llu,\"wake_ms\":%.3f,"
                "\"session_tokens\":%zu}\n",
                (unsigned long long)mt.prompt_tokens, (unsigned long long)mt.generated_tokens,
                mt.prefill_ms, mt.decode_ms, mt.prefill_tps, mt.decode_tps, mt.ttft_ms,
                (unsigned long long)mt.reused_tokens, (unsigned long long)mt.restored_tokens,
                mt.wake_ms, lm_session_n_tokens(s));
    }
done:
    lm_free_string(wrapped);
    free(cont);
    lm_session_free(s);
    lm_model_free(m);
    lm_store_close(store);
    return rc;
}
