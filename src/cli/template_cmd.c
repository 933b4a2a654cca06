/*
 * template_cmd.c — `lemma template`: renders a model's chat template. Public headers only.
 *
 *   lemma template -m MODEL --messages FILE.json [--add-generation-prompt] [--tools FILE.json]
 *                  [--enable-thinking | --disable-thinking]
 * FILE.json holds a JSON array of messages (tools: a JSON array of tool definitions); "-"
 * reads stdin. The prompt is printed exactly as rendered (no newline added).
 * Exit status: 0 ok, 1 failure (model, files, template errors), 2 usage.
 */
#include "lemma.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_BYTES ((size_t)64 << 20)

/* Reads a whole text file ("-" = stdin) as a NUL-terminated string. */
static char *read_text(const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "lemma template: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = cap < MAX_JSON_BYTES ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                fprintf(stderr, "lemma template: %s: too large or out of memory\n", path);
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - 1 - n, f);
        n += r;
        if (r == 0) break;
    }
    if (buf && ferror(f)) {
        fprintf(stderr, "lemma template: %s: read error\n", path);
        free(buf);
        buf = NULL;
    }
    if (f != stdin) fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static void usage(FILE *f) {
    fprintf(f, "usage: lemma template -m MODEL --messages FILE.json [--add-generation-prompt] "
               "[--tools FILE.json] [--enable-thinking|--disable-thinking]\n");
}

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *messages = NULL, *tools = NULL;
    int gen = 0, thinking = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(a, "--messages") && i + 1 < argc)
            messages = argv[++i];
        else if (!strcmp(a, "--tools") && i + 1 < argc)
            tools = argv[++i];
        else if (!strcmp(a, "--add-generation-prompt"))
            gen = 1;
        else if (!strcmp(a, "--enable-thinking"))
            thinking = 1;
        else if (!strcmp(a, "--disable-thinking"))
            thinking = 0;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "lemma template: unknown argument or missing value '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || !messages) {
        usage(stderr);
        return 2;
    }
    char *msg_text = read_text(messages), *tools_text = NULL;
    if (!msg_text) return 1;
    if (tools && !(tools_text = read_text(tools))) {
        free(msg_text);
        return 1;
    }
    char err[512];
    lm_vocab *v = NULL;
    char *out = NULL;
    int rc = 0;
    lm_status st = lm_vocab_load(model, &v, err, sizeof err);
    if (!st)
        st = lm_vocab_apply_template(v, msg_text, tools_text, gen, thinking, &out, err, sizeof err);
    if (st) {
        fprintf(stderr, "lemma template: %s\n", err);
        rc = 1;
    } else {
        fputs(out, stdout);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "lemma template: write error: %s\n", strerror(errno));
            rc = 1;
        }
    }
    lm_free_string(out);
    lm_vocab_free(v);
    free(msg_text);
    free(tools_text);
    return rc;
}
