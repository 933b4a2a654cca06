/* inspect.c — `lemma inspect MODEL [--json]`. */
#include "lemma.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "lemma inspect: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "lemma inspect: more than one MODEL given\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: lemma inspect MODEL [--json]\n");
        return 2;
    }
    char err[512];
    lm_model_file *f = NULL;
    lm_status s = lm_model_file_open(path, &f, err, sizeof err);
    if (s != LM_OK) {
        fprintf(stderr, "lemma inspect: %s\n", err[0] ? err : lm_status_str(s));
        return 1;
    }
    char *text = lm_model_file_describe(f, json);
    if (!text) {
        fprintf(stderr, "lemma inspect: out of memory\n");
        lm_model_file_close(f);
        return 1;
    }
    fputs(text, stdout);
    lm_free_string(text);
    lm_model_file_close(f);
    return 0;
}
