/*
 * quantize.c — `lemma quantize`: convert a GGUF model to another tensor type, as
 * llama-quantize does for a single-type ("pure") file.
 *
 *   lemma quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--allow-requantize]
 *
 * TYPE (case-insensitive): f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k
 * iq4_nl iq4_xs mxfp4. Which tensors become TYPE, what the others become and what happens to
 * the metadata: src/format/gguf_convert.h and docs/formats/gguf.md ("Converting"). OUT is
 * written atomically; on failure nothing is left at OUT.
 *
 * Output: a progress line on stderr while stderr is a terminal, and always a one-line summary
 * on stderr ("N tensors (...), IN MiB -> OUT MiB in S s"). Exit codes: 0 ok, 1 runtime error
 * (unreadable or malformed input, a tensor type that cannot be converted, unwritable output),
 * 2 bad usage.
 */
#include "cli_util.h"
#include "lemma.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static void q_usage(FILE *f) {
    fprintf(f, "usage: lemma quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--allow-requantize]\n"
               "  TYPE                one of (case-insensitive):");
    for (size_t i = 0; lm_quantize_type(i); i++)
        fprintf(f, "%s%s", i % 8 == 0 ? "\n                      " : " ", lm_quantize_type(i));
    fprintf(f, "\n"
               "                      2-D weights become TYPE (or a fallback when their rows\n"
               "                      do not fit its blocks); 1-D tensors become f32\n"
               "  -t THREADS          conversion threads (default: all CPUs)\n"
               "  --allow-requantize  allow converting quantized tensors to another quantized\n"
               "                      type (loses accuracy twice)\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct q_progress {
    double last; /* when the line was last drawn */
    int drawn;
} q_progress;

static int q_on_progress(void *user, uint64_t done, uint64_t n, uint64_t bytes, uint64_t total) {
    q_progress *p = user;
    double t = now_s();
    if (done < n && t - p->last < 0.1) return 0;
    p->last = t;
    p->drawn = 1;
    fprintf(stderr, "\rlemma quantize: %llu/%llu tensors, %.1f/%.1f MiB (%3.0f%%)",
            (unsigned long long)done, (unsigned long long)n, (double)bytes / 1048576.0,
            (double)total / 1048576.0, total ? 100.0 * (double)bytes / (double)total : 100.0);
    fflush(stderr);
    return 0;
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    long v;
    lm_quantize_params o = lm_quantize_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            q_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_parse_long("quantize", a, next, 1, 256, &v)) return 2;
            o.n_threads = (int)v, i++;
        } else if (!strcmp(a, "--allow-requantize")) {
            o.allow_requantize = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "lemma quantize: unknown option '%s'\n", a);
            q_usage(stderr);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "lemma quantize: unexpected argument '%s'\n", a);
            q_usage(stderr);
            return 2;
        }
    }
    if (n_pos < 3) {
        fprintf(stderr, "lemma quantize: IN.gguf, OUT.gguf and TYPE are required\n");
        q_usage(stderr);
        return 2;
    }
    o.type = NULL;
    for (size_t i = 0; lm_quantize_type(i); i++)
        if (!strcasecmp(pos[2], lm_quantize_type(i))) o.type = lm_quantize_type(i);
    if (!o.type) {
        fprintf(stderr, "lemma quantize: unknown TYPE '%s'\n", pos[2]);
        q_usage(stderr);
        return 2;
    }
    if (!strcmp(pos[0], pos[1])) {
        fprintf(stderr, "lemma quantize: OUT.gguf must differ from IN.gguf\n");
        return 2;
    }

    q_progress prog = {0.0, 0};
    if (isatty(STDERR_FILENO)) {
        o.progress = q_on_progress;
        o.progress_user = &prog;
    }
    char err[512];
    lm_quantize_stats st;
    double t0 = now_s();
    lm_status s = lm_model_quantize(pos[0], pos[1], &o, &st, err, sizeof err);
    double dt = now_s() - t0;
    if (prog.drawn) fputc('\n', stderr);
    if (s != LM_OK) {
        fprintf(stderr, "lemma quantize: %s\n", err);
        return 1;
    }
    fprintf(stderr,
            "lemma quantize: %s: %llu tensors (%llu converted, %llu copied, %llu with a "
            "fallback type), %.1f MiB -> %.1f MiB in %.2f s\n",
            pos[1], (unsigned long long)st.n_tensors, (unsigned long long)st.n_converted,
            (unsigned long long)st.n_copied, (unsigned long long)st.n_fallback,
            (double)st.in_bytes / 1048576.0, (double)st.out_bytes / 1048576.0, dt);
    return 0;
}
