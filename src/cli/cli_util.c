/* cli_util.c — option value parsing, whole-file reads and the durable-session helpers shared
 * by the subcommands (cli_util.h). */
#include "cli_util.h"

#include <errno.h>
#include <stdint.h>
#include <strings.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void cli_gen_opts_init(cli_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = lm_model_default_params();
    o->session = lm_session_default_params();
    o->gen = lm_generate_default_params();
}

int cli_gen_option(const char *cmd, cli_gen_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i], *next = *i + 1 < argc ? argv[*i + 1] : NULL;
    lm_sampler_params *sp = &o->gen.sampling;
    long v;
    int ok;
    if (!strcmp(a, "-n")) {
        if ((ok = cli_parse_long(cmd, a, next, 1, 1 << 24, &v))) o->gen.max_tokens = (int32_t)v;
    } else if (!strcmp(a, "-c")) {
        if ((ok = cli_parse_long(cmd, a, next, 1, 1 << 24, &v)))
            o->session.n_ctx = (int32_t)v, o->ctx_set = 1;
    } else if (!strcmp(a, "-b")) {
        if ((ok = cli_parse_long(cmd, a, next, 1, 65536, &v))) o->session.n_batch = (int32_t)v;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if ((ok = cli_parse_long(cmd, a, next, 1, 1024, &v))) o->model.n_threads = (int32_t)v;
    } else if (!strcmp(a, "--seed")) {
        if ((ok = cli_parse_long(cmd, a, next, 0, 0x7fffffffL, &v))) {
            sp->seed = (uint64_t)v;
            o->seed_set = 1;
        }
    } else if (!strcmp(a, "--top-k")) {
        if ((ok = cli_parse_long(cmd, a, next, 0, 1 << 24, &v))) sp->top_k = (int32_t)v;
    } else if (!strcmp(a, "--temp")) {
        ok = cli_parse_float(cmd, a, next, 0.0f, 1e6f, 0, 0, &sp->temperature);
    } else if (!strcmp(a, "--top-p")) {
        ok = cli_parse_float(cmd, a, next, 0.0f, 1.0f, 1, 0, &sp->top_p);
    } else if (!strcmp(a, "--min-p")) {
        ok = cli_parse_float(cmd, a, next, 0.0f, 1.0f, 0, 1, &sp->min_p);
    } else if (!strcmp(a, "--repeat-penalty")) {
        ok = cli_parse_float(cmd, a, next, 0.0f, 1e6f, 1, 0, &sp->repeat_penalty);
    } else if (!strcmp(a, "--stop")) {
        ok = 0;
        if (!next || !*next)
            fprintf(stderr, "lemma %s: --stop expects a non-empty string\n", cmd);
        else if (o->n_stop == CLI_MAX_STOP)
            fprintf(stderr, "lemma %s: at most %d --stop strings\n", cmd, CLI_MAX_STOP);
        else
            o->stops[o->n_stop++] = next, ok = 1;
    } else if (!strcmp(a, "--logit-bias")) {
        ok = 0;
        if (o->n_bias == CLI_MAX_LOGIT_BIAS)
            fprintf(stderr, "lemma %s: at most %d --logit-bias options\n", cmd,
                    CLI_MAX_LOGIT_BIAS);
        else if (cli_parse_logit_bias(cmd, next, &o->biases[o->n_bias]))
            o->n_bias++, ok = 1;
    } else {
        return 0;
    }
    if (!ok) return -1;
    (*i)++;
    return 1;
}

void cli_gen_opts_finish(cli_gen_opts *o) {
    if (!o->seed_set) o->gen.sampling.seed = (uint64_t)time(NULL);
    o->gen.stop = o->stops;
    o->gen.n_stop = o->n_stop;
    o->gen.sampling.logit_bias = o->biases;
    o->gen.sampling.n_logit_bias = o->n_bias;
}

int cli_gen_check_vocab(const char *cmd, const cli_gen_opts *o, int32_t n_vocab) {
    for (size_t i = 0; i < o->n_bias; i++)
        if (o->biases[i].token >= n_vocab) {
            fprintf(stderr, "lemma %s: --logit-bias: token %d is outside the vocabulary [0, %d)\n",
                    cmd, o->biases[i].token, n_vocab);
            return 0;
        }
    return 1;
}

/* ---- durable sessions ------------------------------------------------------------------ */

int cli_store_option(const char *cmd, cli_store_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i], *next = *i + 1 < argc ? argv[*i + 1] : NULL;
    const char **dst;
    if (!strcmp(a, "--session"))
        dst = &o->session;
    else if (!strcmp(a, "--store"))
        dst = &o->dir;
    else
        return 0;
    if (!next || !*next) {
        fprintf(stderr, "lemma %s: %s expects a %s\n", cmd, a,
                dst == &o->session ? "session name" : "directory");
        return -1;
    }
    *dst = next;
    (*i)++;
    return 1;
}

/* ---- the options run and chat share ------------------------------------------------------ */

void cli_common_opts_init(cli_common_opts *o) {
    o->model = NULL;
    o->metrics = 0;
    cli_gen_opts_init(&o->gen);
    o->store.session = NULL;
    o->store.dir = NULL;
}

int cli_common_option(const char *cmd, cli_common_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i], *next = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return CLI_OPT_HELP;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        if (!next) {
            fprintf(stderr, "lemma %s: %s expects a model path\n", cmd, a);
            return -1;
        }
        o->model = next;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--metrics")) {
        o->metrics = 1;
        return 1;
    }
    int g = cli_gen_option(cmd, &o->gen, argc, argv, i);
    return g != 0 ? g : cli_store_option(cmd, &o->store, argc, argv, i);
}

const lm_vocab *cli_model_vocab(const char *cmd, const lm_model *m, const char *path) {
    const lm_vocab *v = lm_model_vocab(m);
    if (v) return v;
    char err[512];
    lm_vocab *lv = NULL;
    if (lm_vocab_load(path, &lv, err, sizeof err) != LM_OK)
        fprintf(stderr, "lemma %s: %s\n", cmd, err);
    else
        fprintf(stderr, "lemma %s: %s: the tokenizer does not fit the model (%zu tokens, %d "
                        "embedding rows)\n",
                cmd, path, lm_vocab_n_tokens(lv), lm_model_n_vocab(m));
    lm_vocab_free(lv);
    return NULL;
}

int cli_session_name_ok(const char *cmd, const char *name) {
    size_t n = name ? strlen(name) : 0;
    int ok = n >= 1 && n <= 128 && name[0] != '.' && !strstr(name, "..");
    for (size_t k = 0; ok && k < n; k++) {
        unsigned char c = (unsigned char)name[k];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-' || c == '.';
    }
    if (!ok)
        fprintf(stderr,
                "lemma %s: bad session name '%s': use 1-128 characters of A-Z a-z 0-9 _ - . "
                "(not starting with '.', no '..')\n",
                cmd, name ? name : "");
    return ok;
}

lm_store *cli_store_open(const char *cmd, const char *dir) {
    char err[512];
    lm_store *st = NULL;
    if (lm_store_open(dir, &st, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma %s: store %s: %s\n", cmd, dir ? dir : "(default)", err);
        return NULL;
    }
    return st;
}

int cli_session_open(const char *cmd, lm_model *m, const lm_session_params *params,
                     lm_store *st, const char *name, lm_session **out, int *woken) {
    char err[512];
    lm_session_params p = *params;
    *out = NULL;
    *woken = 0;
    lm_status s = lm_session_wake(m, &p, st, name, out, err, sizeof err);
    if (s == LM_OK) {
        *woken = 1;
        return 0;
    }
    if (s != LM_ERR_NOT_FOUND) {
        fprintf(stderr, "lemma %s: session '%s' (store %s): %s\n", cmd, name, lm_store_dir(st),
                err);
        return 1;
    }
    if (p.page_tokens == 0) p.page_tokens = lm_session_default_params().page_tokens;
    if (lm_session_new(m, &p, out, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma %s: %s\n", cmd, err);
        return 1;
    }
    return 0;
}

/* Appends s to the growable buffer *b (length *n, capacity *cap) as raw bytes, or as a JSON
 * string literal when json. 0 when out of memory. */
static int buf_add(char **b, size_t *n, size_t *cap, const char *s, size_t len, int json) {
    size_t need = *n + (json ? 6 * len + 2 : len) + 1;
    if (need > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < need)
            c *= 2;
        char *nb = realloc(*b, c);
        if (!nb) return 0;
        *b = nb;
        *cap = c;
    }
    char *p = *b + *n;
    if (!json) {
        memcpy(p, s, len);
        p += len;
    } else {
        *p++ = '"';
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"' || c == '\\') {
                *p++ = '\\';
                *p++ = (char)c;
            } else if (c < 0x20) {
                p += sprintf(p, "\\u%04x", c);
            } else {
                *p++ = (char)c;
            }
        }
        *p++ = '"';
    }
    *p = '\0';
    *n = (size_t)(p - *b);
    return 1;
}

static int buf_lit(char **b, size_t *n, size_t *cap, const char *s) {
    return buf_add(b, n, cap, s, strlen(s), 0);
}

int cli_chat_continuation(const char *cmd, const lm_vocab *v, const char *msg, size_t len,
                          char **out) {
    char *js = NULL, *r = NULL, err[512];
    size_t n = 0, cap = 0;
    int rc = 1;
    *out = NULL;
    const char *user = CLI_RESUME_USER, *mark = CLI_RESUME_MARK;
    if (!buf_lit(&js, &n, &cap, "[{\"role\":\"user\",\"content\":") ||
        !buf_add(&js, &n, &cap, user, strlen(user), 1) ||
        !buf_lit(&js, &n, &cap, "},{\"role\":\"assistant\",\"content\":") ||
        !buf_add(&js, &n, &cap, mark, strlen(mark), 1) ||
        !buf_lit(&js, &n, &cap, "},{\"role\":\"user\",\"content\":") ||
        !buf_add(&js, &n, &cap, msg, len, 1) || !buf_lit(&js, &n, &cap, "}]")) {
        fprintf(stderr, "lemma %s: out of memory\n", cmd);
        goto done;
    }
    if (lm_vocab_apply_template(v, js, NULL, 1, -1, &r, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma %s: chat template: %s\n", cmd, err);
        goto done;
    }
    const char *at = strstr(r, mark);
    if (!at || strstr(at + 1, mark)) {
        fprintf(stderr, "lemma %s: the chat template does not render a reply verbatim; cannot "
                        "continue a saved conversation with it\n", cmd);
        goto done;
    }
    at += strlen(mark);
    size_t sl = strlen(at);
    char *o = malloc(sl + 1);
    if (!o) {
        fprintf(stderr, "lemma %s: out of memory\n", cmd);
        goto done;
    }
    memcpy(o, at, sl + 1);
    *out = o;
    rc = 0;
done:
    free(js);
    lm_free_string(r);
    return rc;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
