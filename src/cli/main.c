/* main.c — the `lemma` command: dispatches to subcommands. Uses only include/lemma.h. */
#include "lemma.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "lemma %s — a stateful LLM inference engine\n"
            "usage: lemma <command> [options]\n"
            "commands:\n"
            "  inspect MODEL [--json]   describe a .gguf file or a Hugging Face model directory\n"
            "  version                  print the version\n",
            lm_version());
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("lemma %s\n", lm_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "lemma: unknown command '%s' (see lemma --help)\n", cmd);
    return 2;
}
