/*
 * tokenize.c — `lemma tokenize` and `lemma detokenize`. Uses only the public headers.
 *
 *   lemma tokenize -m MODEL [--json] [--bos] [--special] (--file F | TEXT)
 *       prints the token ids of the text exactly as given (bytes of TEXT or of file F; F "-"
 *       is stdin): nothing is added unless --bos (what the model adds around a sequence:
 *       BOS, or BERT's [CLS] ... [SEP]); special-token text such as "<|im_start|>" becomes the
 *       special token only with --special. Output: ids separated by spaces on one line, or
 *       with --json one JSON array.
 *   lemma detokenize -m MODEL [--special] ID...
 *       prints the text of the ids exactly (no newline added). IDs may also be written as
 *       one JSON array ("[1,2,3]") or comma-separated. --special renders special tokens.
 * Exit status: 0 ok, 1 failure (model, ids), 2 usage.
 */
#include "cli_util.h"
#include "lemma.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT_BYTES ((size_t)1 << 30)

static void tokenize_usage(FILE *f) {
    fprintf(f, "usage: lemma tokenize -m MODEL [--json] [--bos] [--special] (--file F | TEXT)\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *text = NULL;
    int json = 0, bos = 0, special = 0, ntext = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(a, "--file") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--bos"))
            bos = 1;
        else if (!strcmp(a, "--special"))
            special = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            for (i++; i < argc; i++, ntext++)
                text = argv[i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "lemma tokenize: unknown option or missing value '%s'\n", a);
            tokenize_usage(stderr);
            return 2;
        } else {
            text = a;
            ntext++;
        }
    }
    if (!model || (file != NULL) + (ntext > 0) != 1 || ntext > 1) {
        if (ntext > 1) fprintf(stderr, "lemma tokenize: give one TEXT (quote it)\n");
        tokenize_usage(stderr);
        return 2;
    }
    char *buf = NULL;
    size_t len = 0;
    if (file) {
        if (!(buf = cli_read_file("tokenize", file, MAX_INPUT_BYTES, &len))) return 1;
    } else {
        len = strlen(text);
    }
    char err[512];
    lm_vocab *v = NULL;
    lm_status st = lm_vocab_load(model, &v, err, sizeof err);
    if (st) {
        fprintf(stderr, "lemma tokenize: %s\n", err);
        free(buf);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = lm_vocab_tokenize(v, file ? buf : text, len, bos, special, &ids, &n, err, sizeof err);
    free(buf);
    if (st) {
        fprintf(stderr, "lemma tokenize: %s\n", err);
        lm_vocab_free(v);
        return 1;
    }
    if (json) putchar('[');
    for (size_t i = 0; i < n; i++)
        printf(i ? (json ? ",%d" : " %d") : "%d", (int)ids[i]);
    printf(json ? "]\n" : "\n");
    lm_free_tokens(ids);
    lm_vocab_free(v);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "lemma tokenize: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static void detokenize_usage(FILE *f) {
    fprintf(f, "usage: lemma detokenize -m MODEL [--special] ID...\n");
}

/* Parses the ids in one argument: integers separated by spaces, commas or JSON brackets. */
static int parse_ids(const char *a, int32_t **ids, size_t *n, size_t *cap) {
    const char *p = a;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '[' || *p == ']' || *p == '\t' || *p == '\n')
            p++;
        if (!*p) return 0;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < INT32_MIN || x > INT32_MAX ||
            (*end && !strchr(" ,[]\t\n", *end))) {
            fprintf(stderr, "lemma detokenize: '%s' is not a token id\n", a);
            return 2;
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            int32_t *nv = realloc(*ids, nc * sizeof *nv);
            if (!nv) {
                fprintf(stderr, "lemma detokenize: out of memory\n");
                return 1;
            }
            *ids = nv;
            *cap = nc;
        }
        (*ids)[(*n)++] = (int32_t)x;
        p = end;
    }
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL;
    int special = 0;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(a, "--special"))
            special = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            detokenize_usage(stdout);
            free(ids);
            return 0;
        } else if (a[0] == '-' && (a[1] < '0' || a[1] > '9')) {
            fprintf(stderr, "lemma detokenize: unknown option or missing value '%s'\n", a);
            detokenize_usage(stderr);
            free(ids);
            return 2;
        } else {
            int rc = parse_ids(a, &ids, &n, &cap);
            if (rc) {
                free(ids);
                return rc;
            }
        }
    }
    if (!model) {
        detokenize_usage(stderr);
        free(ids);
        return 2;
    }
    char err[512];
    lm_vocab *v = NULL;
    lm_status st = lm_vocab_load(model, &v, err, sizeof err);
    if (st) {
        fprintf(stderr, "lemma detokenize: %s\n", err);
        free(ids);
        return 1;
    }
    char *text = NULL;
    size_t len = 0;
    st = lm_vocab_detokenize(v, ids, n, special, &text, &len, err, sizeof err);
    free(ids);
    lm_vocab_free(v);
    if (st) {
        fprintf(stderr, "lemma detokenize: %s\n", err);
        return 1;
    }
    fwrite(text, 1, len, stdout);
    lm_free_string(text);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "lemma detokenize: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
