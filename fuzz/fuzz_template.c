/*
 * fuzz_template.c — libFuzzer target for the chat-template engine: the input bytes are a
 * template; it is compiled and, when it compiles, rendered against a fixed small chat context
 * (system/user/assistant turns, a tool call and result, tools, generation prompt on) under
 * tight limits. Any crash, sanitizer report, leak, hang or abort is a bug: templates come from
 * model files and are hostile. Seeds: fuzz/corpus/fuzz_template/ (the real model templates
 * of tests/data/templates plus small language snippets).
 */
#include "core/alloc.h"
#include "core/status.h"
#include "template/template.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char CONTEXT[] =
    "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_generation_prompt\": true,"
    " \"enable_thinking\": false, \"messages\": ["
    "{\"role\": \"system\", \"content\": \"Be brief.\"},"
    "{\"role\": \"user\", \"content\": \"Hi \\u00e9 <think>x</think>\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"abcdefghi\","
    " \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1.5}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"abcdefghi\", \"content\": \"42\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"part\"}]}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\"}}}}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *ctx;
    if (!ctx) ctx = json_loads(CONTEXT, 0, NULL);
    if (!ctx) return 0;
    lm_template *t = NULL;
    lm_err e;
    lm_err_clear(&e);
    if (lm_template_compile((const char *)data, size, &t, &e) != LM_OK) return 0;
    lm_template_limits lim;
    lm_template_default_limits(&lim);
    lim.max_steps = 200000;
    lim.max_output = 1 << 20;
    lim.max_memory = 64u << 20;
    lim.max_depth = 32;
    char *out = NULL;
    size_t n = 0;
    lm_err_clear(&e);
    if (lm_template_render(t, ctx, &lim, &out, &n, &e) == LM_OK) {
        /* the output is a NUL-terminated string of n bytes */
        if (out[n] != '\0') __builtin_trap();
    }
    lm_free(out);
    lm_template_free(t);
    return 0;
}
