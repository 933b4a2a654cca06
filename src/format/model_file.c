/* model_file.c — placeholder until the format readers land: lm_model_file_open. */
#include "core/status.h"

#include <stdlib.h>

struct lm_model_file { int unused; };

lm_status lm_model_file_open(const char *path, lm_model_file **out, char *err, size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    *out = NULL;
    lm_status s = lm_err_set(&e, LM_ERR_UNSUPPORTED, "%s: no format reader yet", path);
    lm_err_copy(&e, err, err_len);
    return s;
}
void lm_model_file_close(lm_model_file *f) { free(f); }
char *lm_model_file_describe(const lm_model_file *f, int json) { return NULL; }
