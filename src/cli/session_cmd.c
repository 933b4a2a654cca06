/*
 * session_cmd.c — `lemma session`: look after the sleeping sessions of a store.
 *
 *   lemma session list [--store DIR] [--json]
 *   lemma session show NAME [--store DIR] [--json]
 *   lemma session rm NAME... [--store DIR]
 *   lemma session fork SRC DST [--store DIR]
 *
 * The store is --store DIR, else the default one (lm_store_open(NULL): $LEMMA_STORE, else
 * $XDG_DATA_HOME/lemma/store, else ~/.local/share/lemma/store). Options may come anywhere
 * after `session`; "--" ends them (a session name may begin with '-').
 *
 * list: one row per session — name, tokens, model, last update (UTC), bytes on disk (the
 *       manifest and every page it references) and how many of those bytes are pages shared
 *       with other sessions; with --json one JSON object per line instead:
 *       {"name","parent","model","n_tokens","created_at","updated_at","bytes","shared_bytes"}
 *       (times in Unix seconds).
 * show: every field of one session, "field: value" lines, or that JSON object.
 * rm:   deletes each NAME (its pages go when no other session references them); a name that
 *       fails is reported and the others are still deleted.
 * fork: a new session DST sharing every page of SRC (nothing is copied); DST must not exist.
 *
 * Exit codes: 0 ok, 1 error (no such session, bad name, store unreadable; for rm: any name
 * failed), 2 bad usage. Uses only include/lemma.h.
 */
#include "cli_util.h"
#include "lemma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void session_usage(FILE *f) {
    fprintf(f,
            "usage: lemma session COMMAND [--store DIR] [--json] ...\n"
            "  list                 the sessions of the store: name, tokens, model, last update,\n"
            "                       bytes on disk and bytes shared with other sessions\n"
            "  show NAME            every field of session NAME\n"
            "  rm NAME...           delete sessions (pages no other session uses are removed)\n"
            "  fork SRC DST         a new session DST sharing every page of SRC\n"
            "options:\n"
            "  --store DIR          the store (default $LEMMA_STORE, else\n"
            "                       $XDG_DATA_HOME/lemma/store, else ~/.local/share/lemma/store)\n"
            "  --json               list/show: one JSON object per session and line\n"
            "sessions are made by `lemma run --session NAME` and `lemma chat --session NAME`\n"
            "exit codes: 0 ok, 1 error (no such session, bad name, store), 2 usage\n");
}

static void fmt_time(uint64_t t, char *buf, size_t n) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (t == 0 || !gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%SZ", &tm))
        snprintf(buf, n, "-");
}

static void fmt_bytes(uint64_t b, char *buf, size_t n) {
    if (b < 1024)
        snprintf(buf, n, "%llu B", (unsigned long long)b);
    else if (b < 1024ull * 1024)
        snprintf(buf, n, "%.1f KiB", (double)b / 1024.0);
    else if (b < 1024ull * 1024 * 1024)
        snprintf(buf, n, "%.1f MiB", (double)b / (1024.0 * 1024.0));
    else
        snprintf(buf, n, "%.2f GiB", (double)b / (1024.0 * 1024.0 * 1024.0));
}

static void print_json(const lm_session_info *in) {
    fputs("{\"name\":", stdout);
    cli_json_str(stdout, in->name);
    fputs(",\"parent\":", stdout);
    cli_json_str(stdout, in->parent);
    fputs(",\"model\":", stdout);
    cli_json_str(stdout, in->model);
    printf(",\"n_tokens\":%llu,\"created_at\":%llu,\"updated_at\":%llu,\"bytes\":%llu,"
           "\"shared_bytes\":%llu}\n",
           (unsigned long long)in->n_tokens, (unsigned long long)in->created_at,
           (unsigned long long)in->updated_at, (unsigned long long)in->bytes,
           (unsigned long long)in->shared_bytes);
}

static int do_list(lm_store *st, int json) {
    char err[512];
    lm_session_info *infos = NULL;
    size_t n = 0;
    if (lm_store_list(st, &infos, &n, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma session: list %s: %s\n", lm_store_dir(st), err);
        return 1;
    }
    if (json) {
        for (size_t i = 0; i < n; i++)
            print_json(&infos[i]);
    } else if (n == 0) {
        fprintf(stderr, "lemma session: no sessions in %s\n", lm_store_dir(st));
    } else {
        int wn = 4, wm = 5;
        for (size_t i = 0; i < n; i++) {
            int a = (int)strlen(infos[i].name), b = (int)strlen(infos[i].model);
            if (a > wn) wn = a;
            if (b > wm) wm = b;
        }
        if (wm > 48) wm = 48;
        printf("%-*s %8s  %-*s  %-20s %10s %10s\n", wn, "NAME", "TOKENS", wm, "MODEL", "UPDATED",
               "BYTES", "SHARED");
        for (size_t i = 0; i < n; i++) {
            char t[32], b[32], sb[32];
            fmt_time(infos[i].updated_at, t, sizeof t);
            fmt_bytes(infos[i].bytes, b, sizeof b);
            fmt_bytes(infos[i].shared_bytes, sb, sizeof sb);
            printf("%-*s %8llu  %-*.*s  %-20s %10s %10s\n", wn, infos[i].name,
                   (unsigned long long)infos[i].n_tokens, wm, wm, infos[i].model, t, b, sb);
        }
    }
    fflush(stdout);
    lm_free_session_infos(infos);
    return 0;
}

static int do_show(lm_store *st, const char *name, int json) {
    char err[512];
    lm_session_info in;
    if (lm_store_info(st, name, &in, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma session: show %s: %s\n", name, err);
        return 1;
    }
    if (json) {
        print_json(&in);
    } else {
        char c[32], u[32], b[32], sb[32];
        fmt_time(in.created_at, c, sizeof c);
        fmt_time(in.updated_at, u, sizeof u);
        fmt_bytes(in.bytes, b, sizeof b);
        fmt_bytes(in.shared_bytes, sb, sizeof sb);
        printf("name:         %s\n"
               "parent:       %s\n"
               "model:        %s\n"
               "tokens:       %llu\n"
               "created:      %s (%llu)\n"
               "updated:      %s (%llu)\n"
               "bytes:        %llu (%s)\n"
               "shared bytes: %llu (%s)\n"
               "store:        %s\n",
               in.name, in.parent[0] ? in.parent : "-", in.model, (unsigned long long)in.n_tokens,
               c, (unsigned long long)in.created_at, u, (unsigned long long)in.updated_at,
               (unsigned long long)in.bytes, b, (unsigned long long)in.shared_bytes, sb,
               lm_store_dir(st));
    }
    return 0;
}

static int do_rm(lm_store *st, char **names, int n) {
    char err[512];
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (!cli_session_name_ok("session", names[i])) {
            rc = 1;
            continue;
        }
        if (lm_store_delete(st, names[i], err, sizeof err) != LM_OK) {
            fprintf(stderr, "lemma session: rm %s: %s\n", names[i], err);
            rc = 1;
        }
    }
    return rc;
}

static int do_fork(lm_store *st, const char *src, const char *dst) {
    char err[512];
    if (lm_store_fork(st, src, dst, err, sizeof err) != LM_OK) {
        fprintf(stderr, "lemma session: fork %s %s: %s\n", src, dst, err);
        return 1;
    }
    return 0;
}

int cmd_session(int argc, char **argv) {
    const char *dir = NULL, *sub = NULL;
    int json = 0, n_pos = 0, opts_done = 0;
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos) {
        fprintf(stderr, "lemma session: out of memory\n");
        return 1;
    }
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && a[0] == '-' && a[1]) {
            if (!strcmp(a, "--")) {
                opts_done = 1;
            } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                session_usage(stdout);
                rc = 0;
                goto done;
            } else if (!strcmp(a, "--json")) {
                json = 1;
            } else if (!strcmp(a, "--store")) {
                if (i + 1 >= argc || !argv[i + 1][0]) {
                    fprintf(stderr, "lemma session: --store expects a directory\n");
                    goto done;
                }
                dir = argv[++i];
            } else {
                fprintf(stderr, "lemma session: unknown option '%s'\n", a);
                session_usage(stderr);
                goto done;
            }
        } else if (!sub) {
            sub = a;
        } else {
            pos[n_pos++] = argv[i];
        }
    }
    if (!sub) {
        session_usage(stderr);
        goto done;
    }
    int want_lo, want_hi; /* positional arguments the subcommand takes */
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        want_lo = 0, want_hi = 0;
    else if (!strcmp(sub, "show") || !strcmp(sub, "info"))
        want_lo = 1, want_hi = 1;
    else if (!strcmp(sub, "rm") || !strcmp(sub, "delete"))
        want_lo = 1, want_hi = argc;
    else if (!strcmp(sub, "fork") || !strcmp(sub, "cp"))
        want_lo = 2, want_hi = 2;
    else if (!strcmp(sub, "help")) {
        session_usage(stdout);
        rc = 0;
        goto done;
    } else {
        fprintf(stderr, "lemma session: unknown command '%s' (list, show, rm, fork)\n", sub);
        goto done;
    }
    if (n_pos < want_lo || n_pos > want_hi) {
        fprintf(stderr, "lemma session %s: expects %s\n", sub,
                want_hi == 0   ? "no arguments"
                : want_lo == 2 ? "SRC DST"
                : want_hi == 1 ? "one session NAME"
                               : "one or more session NAMEs");
        session_usage(stderr);
        goto done;
    }
    rc = 1;
    /* a bad name is refused before the store is opened (or created) */
    if (want_hi == 1 || want_lo == 2)
        for (int i = 0; i < n_pos; i++)
            if (!cli_session_name_ok("session", pos[i])) goto done;
    lm_store *st = cli_store_open("session", dir);
    if (!st) goto done;
    if (want_hi == 0)
        rc = do_list(st, json);
    else if (want_lo == 2)
        rc = do_fork(st, pos[0], pos[1]);
    else if (want_hi == 1)
        rc = do_show(st, pos[0], json);
    else
        rc = do_rm(st, pos, n_pos);
    lm_store_close(st);
done:
    free(pos);
    return rc;
}
