/*
 * template.h — chat templates: the subset of Jinja2 that model chat templates use.
 *
 * A model file carries its chat template as Jinja2 source (GGUF tokenizer.chat_template,
 * tokenizer_config.json "chat_template"). lemma renders it the way Hugging Face transformers
 * does (jinja2 ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its own
 * tojson, raise_exception and strftime_now globals), so that prompts are byte-identical to the
 * reference. docs/templates.md lists the supported language and the semantics chosen.
 *
 * Templates come from model files and are hostile: compiling never recurses deeper than a fixed
 * nesting cap, and rendering is bounded by the limits below (evaluation steps, call depth,
 * output bytes, working memory). Every error names the template's line:column.
 */
#ifndef LM_TEMPLATE_TEMPLATE_H
#define LM_TEMPLATE_TEMPLATE_H

#include "core/status.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lm_template lm_template;

typedef struct lm_template_limits {
    size_t max_output;  /* bytes of rendered text */
    uint64_t max_steps; /* evaluation steps (expression nodes, statements, loop iterations) */
    int max_depth;      /* nested macro calls (and evaluator recursion, scaled) */
    size_t max_memory;  /* bytes of working values allocated during one render */
} lm_template_limits;

#define LM_TEMPLATE_DEFAULT_MAX_OUTPUT ((size_t)16 << 20)
#define LM_TEMPLATE_DEFAULT_MAX_STEPS 10000000ull
#define LM_TEMPLATE_DEFAULT_MAX_DEPTH 64
#define LM_TEMPLATE_DEFAULT_MAX_MEMORY ((size_t)256 << 20)

/* Fills *lim with the defaults above. */
void lm_template_default_limits(lm_template_limits *lim);

/* Compiles src[0..len) (need not be NUL-terminated). Syntax errors: LM_ERR_FORMAT with
 * "template:LINE:COL: ...". */
lm_status lm_template_compile(const char *src, size_t len, lm_template **out, lm_err *err);

/* Renders with context (a JSON object: messages, tools, add_generation_prompt, bos_token, ...).
 * lim NULL = defaults. On success *out is a NUL-terminated lm_malloc'd string (free with
 * lm_free) of *out_len bytes. Errors: LM_ERR_FORMAT (type errors, undefined values used,
 * raise_exception), LM_ERR_NOMEM (a limit exceeded or allocation failed), with line:col. */
lm_status lm_template_render(const lm_template *t, const json_t *context,
                             const lm_template_limits *lim, char **out, size_t *out_len,
                             lm_err *err);

void lm_template_free(lm_template *t);

#endif
