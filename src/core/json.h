/*
 * json.h — JSON from outside, parsed strictly.
 *
 * A thin layer over jansson that adds what a hostile-input parser needs: duplicate object
 * keys rejected (JSON_REJECT_DUPLICATES), a nesting-depth cap checked by a pre-scan before
 * jansson sees the text (so absurd nesting costs O(n) and no recursion), a size cap, and error
 * messages with line/column. Callers use jansson's json_t API on the result.
 */
#ifndef LM_CORE_JSON_H
#define LM_CORE_JSON_H

#include "core/status.h"

#include <jansson.h>
#include <stddef.h>

#define LM_JSON_DEFAULT_MAX_DEPTH 64

/* Parses text[0..len) (need not be NUL-terminated; embedded NULs are an error). what names
 * the document in error messages ("config.json"). */
lm_status lm_json_parse(const char *text, size_t len, int max_depth, const char *what,
                        json_t **out, lm_err *err);

/* Nesting depth of the JSON text outside strings (0 for a scalar); stops counting at limit+1. */
int lm_json_depth(const char *text, size_t len, int limit);

#endif
