/*
 * template_cmd.c — `lemma template`: renders a model's chat template. Public headers only.
 *
 *   lemma template -m MODEL --messages FILE.json [--add-generation-prompt] [--tools FILE.json]
 *                  [--enable-thinking | --disable-thinking]
 * FILE.json holds a JSON array of messages (tools: a JSON array of tool definitions); "-"
 * reads stdin. The prompt is printed exactly as rendered (no newline added).
 * Exit status: 0 ok, 1 failure (model, files, template errors), 2 usage.
 */
#include "cli_util.h"
#include "lemma.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_BYTES ((size_t)64 << 20)

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
    char *msg_text = cli_read_file("template", messages, MAX_JSON_BYTES, NULL), *tools_text = NULL;
    if (!msg_text) return 1;
    if (tools && !(tools_text = cli_read_file("template", tools, MAX_JSON_BYTES, NULL))) {
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
