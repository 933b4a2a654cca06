/* main.c — the `lemma` command: dispatches to subcommands. Uses only include/lemma.h. */
#include "lemma.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_session(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "lemma %s — a stateful LLM inference engine\n"
            "usage: lemma <command> [options]\n"
            "commands:\n"
            "  inspect MODEL [--json]   describe a .gguf file or a Hugging Face model directory\n"
            "  run -m MODEL -p PROMPT [--session NAME] [--store DIR]\n"
            "                           generate a continuation (see lemma run --help); with\n"
            "                           --session, continue and save a durable session\n"
            "  chat -m MODEL [--session NAME] [--store DIR]\n"
            "                           interactive multi-turn chat (see lemma chat --help);\n"
            "                           with --session, resumed and saved after every reply\n"
            "  session list|show|rm|fork [--store DIR] [--json] ...\n"
            "                           the sleeping sessions of a store (see lemma session -h)\n"
            "  bench -m MODEL [-p 512] [-n 128] [-t T] [-r REPS] [--json]\n"
            "                           prefill and decode tokens/s, like llama-bench\n"
            "  perplexity -m MODEL -f TEXTFILE [-c CTX]\n"
            "                           perplexity of the model on a text (llama.cpp's method)\n"
            "  tokenize -m MODEL [--json] [--bos] [--special] (--file F | TEXT)\n"
            "                           print the token ids of a text\n"
            "  detokenize -m MODEL [--special] ID...\n"
            "                           print the text of token ids\n"
            "  template -m MODEL --messages F.json [--add-generation-prompt] [--tools F.json]\n"
            "           [--enable-thinking|--disable-thinking]\n"
            "                           render the model's chat template\n"
            "  quantize IN.gguf OUT.gguf TYPE [-t T]\n"
            "                           convert a GGUF model to another tensor type (f32, f16,\n"
            "                           q8_0, q4_K, ...; see lemma quantize -h)\n"
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
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "detokenize")) return cmd_detokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "template")) return cmd_template(argc - 1, argv + 1);
    if (!strcmp(cmd, "session")) return cmd_session(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 1, argv + 1);
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
