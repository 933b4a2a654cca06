/*
 * quantize.c — the public face of the GGUF converter (lm_model_quantize in include/lemma.h):
 * type names to dtypes, the thread default, and errors into the caller's buffer. The
 * conversion itself is format/gguf_convert.c.
 */
#include "lemma.h"

#include "core/status.h"
#include "format/gguf_convert.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

/* lowercase names of the converter's targets, in its order (filled once, before any reader) */
static char type_names[32][16];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void fill_names(void) {
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++) {
        const lm_dtype t = lm_gguf_convert_target(i);
        if (t == LM_DTYPE_INVALID) break;
        snprintf(type_names[i], sizeof type_names[i], "%s", lm_dtype_name(t));
        for (char *c = type_names[i]; *c; c++) *c = (char)tolower((unsigned char)*c);
    }
}

const char *lm_quantize_type(size_t i) {
    pthread_once(&names_once, fill_names);
    return i < sizeof type_names / sizeof type_names[0] && type_names[i][0] ? type_names[i] : NULL;
}

lm_quantize_params lm_quantize_default_params(void) {
    lm_quantize_params p = {"f32", 0, 0, NULL, NULL};
    return p;
}

lm_status lm_model_quantize(const char *in_path, const char *out_path,
                            const lm_quantize_params *params, lm_quantize_stats *stats, char *err,
                            size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    if (err && err_len) err[0] = '\0';
    lm_quantize_params p = params ? *params : lm_quantize_default_params();
    lm_status s;
    lm_gguf_convert_opts o = lm_gguf_convert_default_opts();
    if (!in_path || !out_path || !p.type) {
        s = lm_err_set(&e, LM_ERR_INVALID_ARG, "quantize: input, output and type are required");
    } else if ((o.target = lm_gguf_convert_parse_type(p.type)) == LM_DTYPE_INVALID) {
        s = lm_err_set(&e, LM_ERR_INVALID_ARG, "quantize: unknown type '%s'", p.type);
    } else if (p.n_threads < 0) {
        s = lm_err_set(&e, LM_ERR_INVALID_ARG, "quantize: n_threads %d < 0", (int)p.n_threads);
    } else {
        long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
        o.n_threads = p.n_threads > 0 ? (int)p.n_threads
                                      : n_cpu > 0 ? (int)(n_cpu < 256 ? n_cpu : 256) : 1;
        o.progress = p.progress;
        o.progress_user = p.progress_user;
        if (p.allow_requantize) o.flags |= LM_GGUF_CONVERT_ALLOW_REQUANTIZE;
        lm_gguf_convert_stats st;
        s = lm_gguf_convert(in_path, out_path, &o, &st, &e);
        if (s == LM_OK && stats) {
            stats->n_tensors = st.n_tensors;
            stats->n_copied = st.n_copied;
            stats->n_converted = st.n_converted;
            stats->n_fallback = st.n_fallback;
            stats->in_bytes = st.in_bytes;
            stats->out_bytes = st.out_bytes;
        }
    }
    if (s != LM_OK) {
        lm_err_copy(&e, err, err_len);
        if (err && err_len && !err[0]) snprintf(err, err_len, "%s", lm_status_str(s));
    }
    return s;
}
