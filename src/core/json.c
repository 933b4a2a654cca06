/* json.c — strict JSON parsing over jansson (see json.h). */
#include "core/json.h"

#include "core/alloc.h"

#include <string.h>

/* jansson allocates through lm_malloc/lm_free, so allocation-failure injection reaches it.
 * jansson reports a failed allocation as a parse error; the flag tells the two apart. */
static _Thread_local int json_oom;
static void *json_alloc(size_t n) {
    void *p = lm_malloc(n);
    if (!p) json_oom = 1;
    return p;
}
static void json_release(void *p) { lm_free(p); }

int lm_json_depth(const char *text, size_t len, int limit) {
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > max) max = depth;
            if (max > limit) return max;
        } else if (c == '}' || c == ']') depth--;
    }
    return max;
}

lm_status lm_json_parse(const char *text, size_t len, int max_depth, const char *what,
                        json_t **out, lm_err *err) {
    *out = NULL;
    if (memchr(text, '\0', len))
        return lm_err_set(err, LM_ERR_FORMAT, "%s: NUL byte inside JSON text", what);
    int d = lm_json_depth(text, len, max_depth);
    if (d > max_depth)
        return lm_err_set(err, LM_ERR_FORMAT, "%s: JSON nesting deeper than %d", what, max_depth);
    json_set_alloc_funcs(json_alloc, json_release);
    json_error_t je;
    json_oom = 0;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root && json_oom)
        return lm_err_set(err, LM_ERR_NOMEM, "%s: out of memory while parsing JSON", what);
    if (!root && json_error_code(&je) == json_error_numeric_overflow) {
        /* An integer beyond int64 (transformers writes model_max_length = 1e30 as one): read
         * every number of this document as a real instead; fields that must be integers then
         * fail their own type checks with a message naming them. */
        json_oom = 0;
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
                                         JSON_DECODE_INT_AS_REAL, &je);
        if (!root && json_oom)
            return lm_err_set(err, LM_ERR_NOMEM, "%s: out of memory while parsing JSON", what);
    }
    if (!root)
        return lm_err_set(err, LM_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", what,
                          je.line, je.column, je.text);
    *out = root;
    return LM_OK;
}
