/*
 * chat.c — `lemma chat`: interactive multi-turn chat on stdin/stdout with one session.
 *
 *   lemma chat -m MODEL [-t THREADS] [--temp T] [--seed S] [--top-k K] [--top-p P]
 *              [--min-p P] [--repeat-penalty R] [-n MAX_TOKENS_PER_TURN] [-c CTX]
 *              [--system TEXT] [--stop S]... [--logit-bias TOKEN=BIAS]... [--metrics]
 *              [--session NAME] [--store DIR]
 *
 * Each line of stdin is one user turn; the reply streams to stdout, followed by a newline.
 * The prompt marker "> " goes to stderr, and only when stdin is a terminal. EOF ends the chat.
 *
 * The KV cache is kept across turns: each turn renders the whole conversation with the chat
 * template (lm_vocab_apply_template), checks that the text the session already holds is a
 * prefix of the new rendering and appends only the tokens of the new suffix. When it is not a
 * prefix (a template that rewrites earlier turns, e.g. strips whitespace or thinking from
 * replies), the session is truncated to the longest common token prefix with the tokenized
 * rendering and the rest is appended (said once on stderr). When the context is full the
 * conversation restarts from this turn (said on stderr).
 *
 * --session NAME keeps the conversation in a store (--store DIR, default lm_store_open(NULL)).
 * When the store has NAME it is woken (nothing recomputed; "resumed NAME: N tokens" on
 * stderr) and the chat goes on after its last reply; else a new conversation starts. The
 * session is put to sleep under NAME after every reply, so a crash or a kill loses at most
 * the turn in progress; EOF then has nothing left to save. The saved state holds tokens, not
 * messages, so a resumed conversation is continued by text the template adds for one more
 * turn: the history is seeded with a placeholder exchange (CLI_RESUME_USER / CLI_RESUME_MARK,
 * see cli_chat_continuation) that stands for the saved part; what is rendered up to the end
 * of the placeholder reply stands for the session's restored tokens (c->offset maps one onto
 * the other), and each turn appends what follows, exactly as for a conversation that never
 * slept (for templates that render a turn the same whatever follows it). --system applies to
 * a new conversation (and to a restart after a full context), not to a resumed one. Without
 * --seed a session's turns draw from one RNG stream (the first turn of a new session is seeded
 * from the clock, later ones and those of a resumed session continue it: LM_SEED_CONTINUE), so
 * a resumed chat draws what an uninterrupted one would have.
 *
 * Exit codes: 0 ok (EOF), 1 runtime error (model file, memory, store, session identity),
 * 2 bad usage.
 * Uses only include/lemma.h.
 */
#include "cli_util.h"
#include "lemma.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static void chat_usage(FILE *f) {
    fprintf(f, "usage: lemma chat -m MODEL [options]\n"
               "  one user turn per line of stdin; the reply streams to stdout; EOF ends the chat\n"
               "  -n N                 max tokens per reply (default 512)\n"
               "  --system TEXT        a system message opening the conversation\n"
               "  --temp T             temperature, 0 = greedy (default 0.8)\n"
               "  --seed S             RNG seed (default: from the clock)\n"
               "  --top-k K            0 = off (default 40)\n"
               "  --top-p P            (0, 1], 1 = off (default 0.95)\n"
               "  --min-p P            [0, 1), 0 = off (default 0.05)\n"
               "  --repeat-penalty R   1 = off (default 1)\n"
               "  -c CTX               context length (default min(model, 4096))\n"
               "  -t THREADS           compute threads (default: all CPUs)\n"
               "  --stop S             end a reply when it contains S (repeatable, up to 16);\n"
               "                       S itself is not printed nor kept in the conversation\n"
               "  --logit-bias T=B     add B (a number, or -inf to ban) to token T's logit\n"
               "                       (repeatable)\n"
               "  --metrics            after each reply, a JSON line of metrics on stderr: tokens\n"
               "                       reused from the session, appended, generated; timings\n"
               "  --session NAME       resume session NAME of the store (a new one if it does\n"
               "                       not exist); it is saved after every reply\n"
               "  --store DIR          the session store (default $LEMMA_STORE, else\n"
               "                       $XDG_DATA_HOME/lemma/store, else\n"
               "                       ~/.local/share/lemma/store)\n");
}


/* ---- small growable buffers ------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t n, cap;
} strbuf;

static int sb_put(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return 0;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 1;
}

static int sb_puts(strbuf *b, const char *s) {
    return sb_put(b, s, strlen(s));
}

static void sb_setlen(strbuf *b, size_t n) {
    b->n = n;
    if (b->p) b->p[n] = '\0';
}

/* Appends s as a JSON string literal (quotes included). Bytes >= 0x80 pass through: the
 * template engine rejects invalid UTF-8 with an error, which ends only that turn. */
static int sb_json_str(strbuf *b, const char *s, size_t n) {
    if (!sb_put(b, "\"", 1)) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            if (!sb_put(b, esc, 2)) return 0;
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            if (!sb_put(b, esc, 6)) return 0;
        } else if (!sb_put(b, (const char *)&c, 1)) {
            return 0;
        }
    }
    return sb_put(b, "\"", 1);
}

/* Appends ",{"role":ROLE,"content":TEXT}" (no comma when b is empty). */
static int sb_message(strbuf *b, const char *role, const char *text, size_t n) {
    return (b->n == 0 || sb_put(b, ",", 1)) && sb_puts(b, "{\"role\":\"") && sb_puts(b, role) &&
           sb_puts(b, "\",\"content\":") && sb_json_str(b, text, n) && sb_put(b, "}", 1);
}

typedef struct {
    int32_t *p;
    size_t n, cap;
} tokbuf;

static int tb_put(tokbuf *b, const int32_t *t, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        int32_t *np = realloc(b->p, cap * sizeof *np);
        if (!np) return 0;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, t, n * sizeof *t);
    b->n += n;
    return 1;
}

/* ---- the reply stream ------------------------------------------------------------------ */

typedef struct {
    strbuf text; /* what the user saw */
    tokbuf ids;  /* the tokens passed to the callback (the session may hold fewer) */
    int oom;
} reply;

static int on_reply_token(void *user, int32_t token, const char *text, size_t len) {
    reply *r = user;
    if (len) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
        if (!sb_put(&r->text, text, len)) r->oom = 1;
    }
    if (token >= 0 && !tb_put(&r->ids, &token, 1)) r->oom = 1;
    return r->oom;
}

/* ---- the conversation ------------------------------------------------------------------ */

typedef struct {
    lm_session *s;
    const lm_vocab *v; /* the model's (lm_model_vocab) */
    strbuf hist;     /* the messages so far, comma-separated JSON objects */
    size_t hist_sys; /* length of hist holding only the system message */
    strbuf done;     /* the text the session's tokens spell (template + replies) */
    tokbuf toks;     /* the tokens the session holds */
    int text_exact;  /* done spells exactly the session's tokens */
    int warned_reprocess;
    size_t reused, appended; /* the last sync: tokens kept, tokens run */
    size_t turns;
    /* a resumed session: the tokens of toks[0..pinned) (the rendered placeholder exchange)
     * stand for the session's first pinned + offset tokens (restored, not known here);
     * toks[i] for i >= pinned is session token i + offset. resume_pending: the placeholder
     * is in hist but done/toks are set at the first rendering. */
    long long offset;
    size_t pinned;
    int resume_pending;
} chat;

/* Renders hist as a conversation with the generation prompt. NULL on error (reported). */
static char *render(chat *c) {
    strbuf json = {0};
    char err[512];
    char *out = NULL;
    if (!sb_put(&json, "[", 1) || !sb_put(&json, c->hist.p ? c->hist.p : "", c->hist.n) ||
        !sb_put(&json, "]", 1)) {
        fprintf(stderr, "lemma chat: out of memory\n");
    } else if (lm_vocab_apply_template(c->v, json.p, NULL, 1, -1, &out, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma chat: chat template: %s\n", err);
        out = NULL;
    }
    free(json.p);
    return out;
}

/* Brings the session to the tokens of `rendered`, appending only what it lacks.
 * Returns LM_OK or the status of the failing call (reported). */
static lm_status sync_session(chat *c, const char *rendered) {
    size_t rl = strlen(rendered);
    char err[512];
    int32_t *ids = NULL;
    size_t n_ids = 0;
    lm_status st;
    if (c->text_exact && c->done.n <= rl &&
        memcmp(c->done.p ? c->done.p : "", rendered, c->done.n) == 0) {
        /* the usual case: only the new turn's text is tokenized and run */
        st = lm_vocab_tokenize(c->v, rendered + c->done.n, rl - c->done.n, 0, 1, &ids, &n_ids, err,
                               sizeof err);
        if (st != LM_OK) {
            fprintf(stderr, "lemma chat: tokenize: %s\n", err);
            return st;
        }
        size_t before = lm_session_n_tokens(c->s);
        st = lm_session_append_tokens(c->s, ids, n_ids);
        if (st == LM_OK && !tb_put(&c->toks, ids, n_ids)) st = LM_ERR_NOMEM;
        c->reused = before, c->appended = n_ids;
    } else {
        /* the template rewrote earlier text: keep the longest common token prefix */
        st = lm_vocab_tokenize(c->v, rendered, rl, 0, 1, &ids, &n_ids, err, sizeof err);
        if (st != LM_OK) {
            fprintf(stderr, "lemma chat: tokenize: %s\n", err);
            return st;
        }
        size_t k = 0;
        while (k < n_ids && k < c->toks.n && ids[k] == c->toks.p[k])
            k++;
        if (k < c->pinned) {
            /* the text standing for a resumed session's saved part changed: cannot happen
             * with a template that renders earlier turns the same way each time */
            fprintf(stderr, "lemma chat: the chat template renders the resumed conversation "
                            "differently from turn to turn; cannot go on with it\n");
            lm_free_tokens(ids);
            return LM_ERR_UNSUPPORTED;
        }
        if (!c->warned_reprocess) {
            fprintf(stderr,
                    "lemma chat: the new rendering differs from what the session holds (the "
                    "chat template rewrites earlier turns, or a reply ended at a --stop string); "
                    "the session is cut back to the common prefix (%zu of %zu tokens) and the "
                    "rest re-processed\n",
                    (size_t)((long long)k + c->offset),
                    (size_t)((long long)c->toks.n + c->offset));
            c->warned_reprocess = 1;
        }
        c->text_exact = 0;                 /* until the session holds the whole rendering */
        /* recomputes the logits after token k - 1 */
        st = lm_session_truncate(c->s, (size_t)((long long)k + c->offset));
        if (st == LM_OK) {
            c->toks.n = k;
            st = lm_session_append_tokens(c->s, ids + k, n_ids - k);
            if (st == LM_OK && !tb_put(&c->toks, ids + k, n_ids - k)) st = LM_ERR_NOMEM;
            c->reused = (size_t)((long long)k + c->offset), c->appended = n_ids - k;
        }
    }
    lm_free_tokens(ids);
    if (st == LM_ERR_NOMEM) {
        fprintf(stderr, "lemma chat: out of memory\n");
        return st;
    }
    if (st != LM_OK) return st; /* the caller reports lm_session_error */
    sb_setlen(&c->done, 0);
    if (!sb_put(&c->done, rendered, rl)) {
        fprintf(stderr, "lemma chat: out of memory\n");
        return LM_ERR_NOMEM;
    }
    c->text_exact = 1;
    return LM_OK;
}

/* Forgets the conversation but the system message. */
static lm_status reset(chat *c) {
    sb_setlen(&c->hist, c->hist_sys);
    sb_setlen(&c->done, 0);
    c->toks.n = 0;
    c->text_exact = 1;
    c->offset = 0, c->pinned = 0, c->resume_pending = 0;
    return lm_session_truncate(c->s, 0);
}

/* The first rendering after a resume: the text up to the end of the placeholder reply stands
 * for the restored tokens. 0 on success, 1 after printing the reason. */
static int resume_point(chat *c, const char *rendered) {
    const char *at = strstr(rendered, CLI_RESUME_MARK);
    if (!at) {
        fprintf(stderr, "lemma chat: the chat template does not render a reply verbatim; cannot "
                        "continue a saved conversation with it\n");
        return 1;
    }
    size_t n = (size_t)(at - rendered) + strlen(CLI_RESUME_MARK);
    char err[512];
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (lm_vocab_tokenize(c->v, rendered, n, 0, 1, &ids, &n_ids, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma chat: tokenize: %s\n", err);
        return 1;
    }
    sb_setlen(&c->done, 0);
    c->toks.n = 0;
    int ok = sb_put(&c->done, rendered, n) && tb_put(&c->toks, ids, n_ids);
    lm_free_tokens(ids);
    if (!ok) {
        fprintf(stderr, "lemma chat: out of memory\n");
        return 1;
    }
    c->text_exact = 1;
    c->pinned = n_ids;
    c->offset = (long long)lm_session_n_tokens(c->s) - (long long)n_ids;
    c->resume_pending = 0;
    return 0;
}

/* One turn: user line -> reply streamed. Returns 0 to go on, 1 on a fatal error. */
static int turn(chat *c, const char *line, size_t len, lm_generate_params *gp, int metrics) {
    size_t hist0 = c->hist.n;
    if (!sb_message(&c->hist, "user", line, len)) {
        fprintf(stderr, "lemma chat: out of memory\n");
        return 1;
    }
    char *rendered = render(c);
    if (!rendered) { /* e.g. invalid UTF-8 in the line: drop the turn, go on */
        sb_setlen(&c->hist, hist0);
        return 0;
    }
    if (c->resume_pending && resume_point(c, rendered)) {
        lm_free_string(rendered);
        return 1;
    }
    lm_status st = sync_session(c, rendered);
    if (st == LM_ERR_INVALID_ARG && c->toks.n > 0) {
        /* the context is full: start over from this turn */
        fprintf(stderr, "lemma chat: %s; the conversation restarts from this turn\n",
                lm_session_error(c->s));
        lm_free_string(rendered);
        if ((st = reset(c)) != LM_OK) {
            fprintf(stderr, "lemma chat: %s\n", lm_session_error(c->s));
            return 1;
        }
        if (!sb_message(&c->hist, "user", line, len) || !(rendered = render(c))) return 1;
        st = sync_session(c, rendered);
    }
    lm_free_string(rendered);
    if (st != LM_OK) {
        if (st != LM_ERR_INVALID_ARG) {
            if (st != LM_ERR_NOMEM && st != LM_ERR_UNSUPPORTED) /* else reported */
                fprintf(stderr, "lemma chat: %s\n", lm_session_error(c->s));
            return 1;
        }
        /* this turn alone does not fit the context: drop it, go on */
        fprintf(stderr, "lemma chat: %s; message dropped\n", lm_session_error(c->s));
        if (reset(c) != LM_OK) {
            fprintf(stderr, "lemma chat: %s\n", lm_session_error(c->s));
            return 1;
        }
        return 0;
    }

    reply r = {{0}, {0}, 0};
    gp->on_token = on_reply_token;
    gp->user = &r;
    size_t n0 = lm_session_n_tokens(c->s);
    lm_metrics mt;
    lm_session_metrics(c->s, &mt);
    double prefill_ms = mt.prefill_ms;
    lm_session_metrics_reset(c->s);
    st = lm_session_generate(c->s, gp);
    fputc('\n', stdout);
    fflush(stdout);
    int rc = 0;
    if (r.oom) {
        fprintf(stderr, "lemma chat: out of memory\n");
        rc = 1;
    } else if (st != LM_OK) {
        fprintf(stderr, "lemma chat: %s\n", lm_session_error(c->s));
        rc = 1;
    }
    /* the session holds the generated tokens but a final end-of-generation token (and one
     * that met a full context) */
    size_t added = lm_session_n_tokens(c->s) - n0;
    if (added > r.ids.n) added = r.ids.n; /* cannot happen; keeps the bookkeeping safe */
    if (rc == 0 && !tb_put(&c->toks, r.ids.p, added)) rc = 1;
    if (rc == 0) {
        /* the text of what the session now holds, special tokens spelled out, so that the
         * next rendering is compared with exactly what was run */
        char *t = NULL, err[256];
        size_t tl = 0;
        if (lm_vocab_detokenize(c->v, r.ids.p, added, 1, &t, &tl, err, sizeof err) == LM_OK) {
            if (!sb_put(&c->done, t, tl)) rc = 1;
        } else {
            c->text_exact = 0; /* the next turn goes by tokens */
        }
        lm_free_string(t);
        if (rc == 0 && !sb_message(&c->hist, "assistant", r.text.p ? r.text.p : "", r.text.n))
            rc = 1;
        if (rc) fprintf(stderr, "lemma chat: out of memory\n");
    }
    if (rc == 0 && metrics) {
        lm_session_metrics(c->s, &mt);
        fprintf(stderr,
                "{\"turn\":%zu,\"reused_tokens\":%zu,\"appended_tokens\":%zu,"
                "\"generated_tokens\":%llu,\"session_tokens\":%zu,\"prefill_ms\":%.3f,"
                "\"decode_tps\":%.2f}\n",
                ++c->turns, c->reused, c->appended, (unsigned long long)mt.generated_tokens,
                lm_session_n_tokens(c->s), prefill_ms, mt.decode_tps);
    }
    lm_session_metrics_reset(c->s);
    free(r.text.p);
    free(r.ids.p);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    const char *system = NULL;
    cli_common_opts o;
    cli_common_opts_init(&o);
    cli_gen_opts *opt = &o.gen;
    const cli_store_opts *so = &o.store;
    opt->gen.max_tokens = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int g = cli_common_option("chat", &o, argc, argv, &i);
        if (g == CLI_OPT_HELP) {
            chat_usage(stdout);
            return 0;
        }
        if (g < 0) return 2;
        if (g > 0) continue;
        if (!strcmp(a, "--system")) {
            if (!next) {
                fprintf(stderr, "lemma chat: --system expects a text\n");
                return 2;
            }
            system = next, i++;
        } else {
            fprintf(stderr, "lemma chat: unknown option '%s'\n", a);
            chat_usage(stderr);
            return 2;
        }
    }
    if (!o.model) {
        fprintf(stderr, "lemma chat: -m MODEL is required\n");
        chat_usage(stderr);
        return 2;
    }
    if (so->session && !cli_session_name_ok("chat", so->session)) return 1;
    cli_gen_opts_finish(opt);
    opt->gen.stop_at_eog = 1;

    char err[512];
    lm_model *m = NULL;
    chat c;
    memset(&c, 0, sizeof c);
    c.text_exact = 1;
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 1, woken = 0;
    lm_store *store = NULL;
    int tty = isatty(STDIN_FILENO);
    if (so->session || so->dir) {
        /* before the model: a store that cannot be opened costs no model load */
        if (!(store = cli_store_open("chat", so->dir))) goto done;
        opt->session.store = store;
    }
    if (tty) fprintf(stderr, "lemma chat: loading %s...\n", o.model);
    if (lm_model_load(o.model, &opt->model, &m, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma chat: %s\n", err);
        goto done;
    }
    /* a bias for a token the model lacks is a usage error, reported before any work */
    if (!cli_gen_check_vocab("chat", opt, lm_model_n_vocab(m))) {
        rc = 2;
        goto done;
    }
    /* the model's own vocabulary: its tokenizer and chat template, parsed once at load */
    if (!(c.v = cli_model_vocab("chat", m, o.model))) goto done;
    if (so->session) {
        lm_session_params wp = opt->session;
        wp.page_tokens = 0; /* the saved page size (a new session gets the default) */
        if (!opt->ctx_set) wp.n_ctx = 0;
        if (cli_session_open("chat", m, &wp, store, so->session, &c.s, &woken)) goto done;
        size_t n = lm_session_n_tokens(c.s);
        if (woken && n > 0) {
            lm_metrics mt;
            lm_session_metrics(c.s, &mt);
            fprintf(stderr, "lemma chat: resumed %s: %zu tokens (woken in %.1f ms)\n",
                    so->session, n, mt.wake_ms);
            if (system)
                fprintf(stderr, "lemma chat: --system is not applied to a resumed "
                                "conversation\n");
            c.resume_pending = 1;
            if (!opt->seed_set) opt->gen.sampling.seed = LM_SEED_CONTINUE;
        } else if (tty) {
            fprintf(stderr, "lemma chat: new session %s in %s\n", so->session,
                    lm_store_dir(store));
        }
    } else if (lm_session_new(m, &opt->session, &c.s, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma chat: %s\n", err);
        rc = 2; /* -c beyond the model's context */
        goto done;
    }
    if (system && !sb_message(&c.hist, "system", system, strlen(system))) {
        fprintf(stderr, "lemma chat: out of memory\n");
        goto done;
    }
    c.hist_sys = c.hist.n;
    if (c.resume_pending &&
        (!sb_message(&c.hist, "user", CLI_RESUME_USER, strlen(CLI_RESUME_USER)) ||
         !sb_message(&c.hist, "assistant", CLI_RESUME_MARK, strlen(CLI_RESUME_MARK)))) {
        fprintf(stderr, "lemma chat: out of memory\n");
        goto done;
    }
    if (tty) fprintf(stderr, "lemma chat: one message per line; Ctrl-D ends the chat\n");
    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        ssize_t n = getline(&line, &line_cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        size_t k = 0;
        while (k < (size_t)n && (line[k] == ' ' || line[k] == '\t'))
            k++;
        if (k == (size_t)n) continue; /* blank line */
        if (turn(&c, line, (size_t)n, &opt->gen, o.metrics)) goto done;
        if (so->session) {
            /* one RNG stream per session: later turns continue it (unless --seed) */
            if (!opt->seed_set) opt->gen.sampling.seed = LM_SEED_CONTINUE;
            /* saved after every reply: a crash loses at most the turn in progress */
            if (lm_session_n_tokens(c.s) > 0 &&
                lm_session_sleep(c.s, store, so->session) != LM_OK) {
                fprintf(stderr, "lemma chat: saving session '%s': %s\n", so->session,
                        lm_session_error(c.s));
                goto done;
            }
        }
    }
    if (tty) fputc('\n', stderr);
    if (ferror(stdin)) {
        fprintf(stderr, "lemma chat: reading stdin: %s\n", strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(line);
    free(c.hist.p);
    free(c.done.p);
    free(c.toks.p);
    lm_session_free(c.s);
    lm_model_free(m);
    lm_store_close(store);
    return rc;
}
