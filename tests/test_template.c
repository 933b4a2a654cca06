/*
 * test_template.c — the chat-template engine against goldens rendered by Python jinja2 set up
 * as transformers sets it up (tools/gen_template_goldens.py): real model templates x cases,
 * language snippets, then syntax errors with their line:column, runtime errors, limits
 * (steps, depth, output, memory, nesting) and allocation-failure injection.
 * Runs from the repository root (reads tests/data/templates/).
 */
#include "core/alloc.h"
#include "core/file.h"
#include "core/status.h"
#include "template/template.h"
#include "test.h"

#include <jansson.h>
#include <string.h>

#define DATA "tests/data/templates/"

static char *slurp(const char *path, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    lm_err e;
    lm_err_clear(&e);
    if (lm_file_read_all(path, 64u << 20, &buf, &n, &e) != LM_OK) return NULL;
    if (len) *len = n;
    return buf;
}

/* Renders src with ctx; returns status; *out malloc'd on success. */
static lm_status render(const char *src, size_t len, const json_t *ctx,
                        const lm_template_limits *lim, char **out, size_t *out_len, lm_err *e) {
    lm_template *t = NULL;
    lm_err_clear(e);
    *out = NULL;
    lm_status st = lm_template_compile(src, len, &t, e);
    if (st != LM_OK) return st;
    st = lm_template_render(t, ctx, lim, out, out_len, e);
    lm_template_free(t);
    return st;
}

/* First differing byte, with a little context of both sides, into msg. */
static void diff_msg(const char *want, size_t wn, const char *got, size_t gn, char *msg,
                     size_t cap) {
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i])
        i++;
    size_t from = i > 30 ? i - 30 : 0;
    char w[80], g[80];
    snprintf(w, sizeof w, "%.*s", (int)((wn - from) < 60 ? wn - from : 60), want + from);
    snprintf(g, sizeof g, "%.*s", (int)((gn - from) < 60 ? gn - from : 60), got + from);
    for (char *p = w; *p; p++)
        if (*p == '\n') *p = '|';
    for (char *p = g; *p; p++)
        if (*p == '\n') *p = '|';
    snprintf(msg, cap, "differs at byte %zu (want %zu bytes, got %zu): want \"%s\" got \"%s\"", i,
             wn, gn, w, g);
}

static void test_real_templates(void) {
    json_error_t je;
    json_t *man = json_load_file(DATA "cases.json", 0, &je);
    T_REQUIRE(man && json_is_array(man), "cases.json: %s", je.text);
    size_t i;
    json_t *it;
    int matched = 0, total = 0;
    json_array_foreach(man, i, it) {
        const char *tname = json_string_value(json_object_get(it, "template"));
        const char *cname = json_string_value(json_object_get(it, "case"));
        char path[512];
        size_t slen, wlen;
        snprintf(path, sizeof path, DATA "%s", tname);
        char *src = slurp(path, &slen);
        T_CHECK(src, "%s: cannot read", path);
        if (!src) continue;
        snprintf(path, sizeof path, DATA "%s.json", cname);
        json_t *ctx = json_load_file(path, 0, &je);
        T_CHECK(ctx, "%s: %s", path, je.text);
        snprintf(path, sizeof path, DATA "%s.out", cname);
        char *want = slurp(path, &wlen);
        char *want_err = NULL;
        if (!want) {
            snprintf(path, sizeof path, DATA "%s.err", cname);
            want_err = slurp(path, NULL);
        }
        char *got = NULL;
        size_t glen = 0;
        lm_err e;
        lm_status st = ctx ? render(src, slen, ctx, NULL, &got, &glen, &e) : LM_ERR_FORMAT;
        total++;
        if (want) {
            char msg[400] = "";
            int ok = st == LM_OK && glen == wlen && memcmp(got, want, wlen) == 0;
            if (st == LM_OK && !ok) diff_msg(want, wlen, got, glen, msg, sizeof msg);
            T_CHECK(ok, "%s: %s", cname, st != LM_OK ? e.msg : msg);
            matched += ok;
        } else {
            int ok = st != LM_OK && want_err && strstr(e.msg, want_err);
            T_CHECK(ok, "%s: expected error '%s', got status %d '%s'", cname,
                    want_err ? want_err : "?", st, st != LM_OK ? e.msg : "");
            matched += ok;
        }
        fprintf(
            stderr, "  %-44s %s\n", cname,
            (want ? (st == LM_OK && glen == wlen && memcmp(got, want, wlen) == 0) : (st != LM_OK))
                ? "match"
                : "MISMATCH");
        lm_free(got);
        lm_free(src);
        lm_free(want);
        lm_free(want_err);
        json_decref(ctx);
    }
    fprintf(stderr, "  real templates: %d/%d cases byte-identical to jinja2\n", matched, total);
    json_decref(man);
}

static void test_unit_snippets(void) {
    json_error_t je;
    json_t *all = json_load_file(DATA "unit.json", 0, &je);
    T_REQUIRE(all && json_is_array(all), "unit.json: %s", je.text);
    size_t i;
    json_t *u;
    json_array_foreach(all, i, u) {
        const char *name = json_string_value(json_object_get(u, "name"));
        const char *src = json_string_value(json_object_get(u, "template"));
        json_t *ctx = json_object_get(u, "context");
        json_t *want = json_object_get(u, "output");
        json_t *want_err = json_object_get(u, "error");
        char *got = NULL;
        size_t glen = 0;
        lm_err e;
        lm_status st = render(src, strlen(src), ctx, NULL, &got, &glen, &e);
        if (want) {
            const char *w = json_string_value(want);
            size_t wn = json_string_length(want);
            char msg[400] = "";
            int ok = st == LM_OK && glen == wn && memcmp(got, w, wn) == 0;
            if (st == LM_OK && !ok) diff_msg(w, wn, got, glen, msg, sizeof msg);
            T_CHECK(ok, "%s: %s", name, st != LM_OK ? e.msg : msg);
        } else {
            T_CHECK(st != LM_OK && strstr(e.msg, "template:1:"),
                    "%s: expected an error (%s), got %d", name, json_string_value(want_err), st);
            if (strcmp(name, "err_raise") == 0)
                T_CHECK(strstr(e.msg, json_string_value(want_err)) != NULL, "%s: message '%s'",
                        name, e.msg);
        }
        lm_free(got);
    }
    json_decref(all);
}

static void test_syntax_errors(void) {
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"abc {% if x %}yes",
         "template:1:18: syntax error: unexpected end of template, expected '{% endif %}'"},
        {"line1\n  {{ x + }}", "template:2:10: syntax error: unexpected end of tag"},
        {"{{ 'abc }}", "template:1:4: syntax error: unterminated string"},
        {"a\nb {# never closed", "template:2:3: syntax error: unclosed comment"},
        {"{{ x | }}", "template:1:8: syntax error: expected a filter name"},
        {"{% endfor %}", "template:1:4: syntax error: unexpected 'endfor'"},
        {"{% for x in y %}{% endif %}", "template:1:20: syntax error: unexpected 'endif'"},
        {"{% frobnicate %}", "template:1:4: syntax error: unknown or unsupported tag 'frobnicate'"},
        {"{{ (1, 2 }}", "template:1:"},
        {"{{ x ]] }}", "template:1:6: syntax error: unexpected closing bracket"},
        {"{{ 99999999999999999999 }}", "template:1:4: syntax error: integer literal out of range"},
        {"{% set %}", "template:1:8: syntax error: expected a variable name"},
        {"\n\n   {{ a b }}", "template:3:9: syntax error: expected end of print statement"},
        {"{% include 'x' %}", "unsupported tag 'include'"},
        {"{{ 'é' }}{{ ? }}", "template:1:13: syntax error: unexpected character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lm_template *t = NULL;
        lm_err e;
        lm_err_clear(&e);
        lm_status st = lm_template_compile(cases[i].src, strlen(cases[i].src), &t, &e);
        T_CHECK(st == LM_ERR_FORMAT && t == NULL && strstr(e.msg, cases[i].want),
                "case %zu: want '%s', got %d '%s'", i, cases[i].want, st, e.msg);
        lm_template_free(t);
    }
}

static void test_runtime_errors(void) {
    static const struct {
        const char *src, *want;
    } cases[] = {
        {"ok\n  {{ raise_exception('Conversation roles must alternate') }}",
         "template:2:6: raise_exception: Conversation roles must alternate"},
        {"{{ x.y }}", "template:1:5: 'x' is undefined"},
        {"{{ 1 + 'a' }}", "template:1:6: unsupported operand type(s) for +: 'int' and 'str'"},
        {"{{ x | frob }}", "template:1:8: no filter named 'frob'"},
        {"{{ x is frob }}", "template:1:9: no test named 'frob'"},
        {"{{ 1 // 0 }}", "integer division or modulo by zero"},
        {"{{ [].append(1) }}", "immutable sandbox"},
        {"{% for x in none %}{% endfor %}", "'NoneType' object is not iterable"},
        {"{{ 9223372036854775807 + 1 }}", "integer overflow"},
        {"{{ u | tojson }}", "not JSON serializable"},
        {"{{ 1 < 'a' }}", "'<' not supported"},
        {"{% set x.y = 1 %}", "can only assign attributes of a namespace"},
    };
    json_t *ctx = json_object();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        lm_err e;
        lm_status st = render(cases[i].src, strlen(cases[i].src), ctx, NULL, &out, NULL, &e);
        T_CHECK(st == LM_ERR_FORMAT && out == NULL && strstr(e.msg, cases[i].want),
                "case %zu: want '%s', got %d '%s'", i, cases[i].want, st, e.msg);
        lm_free(out);
    }
    json_decref(ctx);
}

static void test_limits(void) {
    json_t *ctx = json_object();
    lm_template_limits lim;
    lm_template_default_limits(&lim);
    char *out = NULL;
    lm_err e;
    /* steps: an effectively endless loop */
    lim.max_steps = 100000;
    const char *loop =
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    lm_status st = render(loop, strlen(loop), ctx, &lim, &out, NULL, &e);
    T_CHECK(st == LM_ERR_NOMEM && strstr(e.msg, "step limit"), "steps: %d '%s'", st, e.msg);
    /* depth: unbounded macro recursion */
    lm_template_default_limits(&lim);
    const char *rec = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}";
    st = render(rec, strlen(rec), ctx, &lim, &out, NULL, &e);
    T_CHECK(st == LM_ERR_NOMEM && strstr(e.msg, "recursion depth") && strstr(e.msg, "template:1:"),
            "depth: %d '%s'", st, e.msg);
    /* output */
    lim.max_output = 1000;
    const char *big = "{% for i in range(1000) %}0123456789{% endfor %}";
    st = render(big, strlen(big), ctx, &lim, &out, NULL, &e);
    T_CHECK(st == LM_ERR_NOMEM && strstr(e.msg, "output limit"), "output: %d '%s'", st, e.msg);
    /* memory: doubling a string */
    lm_template_default_limits(&lim);
    lim.max_memory = 1 << 20;
    const char *mem = "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ "
                      "ns.s %}{% endfor %}";
    st = render(mem, strlen(mem), ctx, &lim, &out, NULL, &e);
    T_CHECK(st == LM_ERR_NOMEM && strstr(e.msg, "memory limit"), "memory: %d '%s'", st, e.msg);
    const char *rep = "{{ 'x' * 1000000000000 }}";
    st = render(rep, strlen(rep), ctx, &lim, &out, NULL, &e);
    T_CHECK(st == LM_ERR_NOMEM, "repeat: %d '%s'", st, e.msg);
    const char *rng = "{% for i in range(1000000000000) %}{% endfor %}";
    st = render(rng, strlen(rng), ctx, NULL, &out, NULL, &e);
    T_CHECK(st == LM_ERR_NOMEM && strstr(e.msg, "step limit"), "range: %d '%s'", st, e.msg);
    /* nesting: deep brackets and deep blocks fail to compile, never overflow the stack */
    size_t n = 100000;
    char *deep = malloc(n * 2 + 16);
    T_REQUIRE(deep, "malloc");
    strcpy(deep, "{{ ");
    size_t k = 3;
    for (size_t i = 0; i < n; i++)
        deep[k++] = '[';
    deep[k] = '\0';
    lm_template *t = NULL;
    lm_err_clear(&e);
    st = lm_template_compile(deep, k, &t, &e);
    T_CHECK(st == LM_ERR_FORMAT && strstr(e.msg, "nested too deeply"), "brackets: %d '%s'", st,
            e.msg);
    k = 0;
    for (size_t i = 0; i < 5000; i++)
        k += (size_t)sprintf(deep + k, "{%% if 1 %%}");
    st = lm_template_compile(deep, k, &t, &e);
    lm_err_clear(&e);
    st = lm_template_compile(deep, k, &t, &e);
    T_CHECK(st == LM_ERR_FORMAT && strstr(e.msg, "nesting too deep"), "blocks: %d '%s'", st, e.msg);
    k = 0;
    k += (size_t)sprintf(deep, "{{ 1");
    for (size_t i = 0; i < 20000; i++)
        k += (size_t)sprintf(deep + k, "+1");
    k += (size_t)sprintf(deep + k, " }}");
    st = render(deep, k, ctx, NULL, &out, NULL, &e);
    T_CHECK(st == LM_ERR_NOMEM && strstr(e.msg, "nested too deeply"), "chain: %d '%s'", st, e.msg);
    k = 0;
    for (size_t i = 0; i < 150; i++)
        k += (size_t)sprintf(deep + k, "{%% if 1 %%}");
    k += (size_t)sprintf(deep + k, "x");
    for (size_t i = 0; i < 150; i++)
        k += (size_t)sprintf(deep + k, "{%% endif %%}");
    st = render(deep, k, ctx, NULL, &out, NULL, &e);
    T_CHECK(st == LM_OK && out && strcmp(out, "x") == 0, "150 nested ifs: %d '%s'", st, e.msg);
    lm_free(out);
    out = NULL;
    /* a value nested a million deep prints as an error, not a crash */
    const char *nest = "{% set ns = namespace(x=1) %}{% for i in range(100000) %}{% set ns.x = "
                       "[ns.x] %}{% endfor %}{{ ns.x | tojson }}";
    st = render(nest, strlen(nest), ctx, NULL, &out, NULL, &e);
    T_CHECK(st == LM_ERR_FORMAT && strstr(e.msg, "nested too deeply"), "deep value: %d '%s'", st,
            e.msg);
    free(deep);
    json_decref(ctx);
}

static void test_api_edges(void) {
    lm_template *t = NULL;
    lm_err e;
    lm_err_clear(&e);
    T_CHECK(lm_template_compile(NULL, 0, &t, &e) == LM_OK && t, "empty template");
    char *out = NULL;
    size_t n = 99;
    T_CHECK(lm_template_render(t, NULL, NULL, &out, &n, &e) == LM_OK && out && n == 0,
            "empty render");
    lm_free(out);
    json_t *arr = json_array();
    lm_err_clear(&e);
    T_CHECK(lm_template_render(t, arr, NULL, &out, &n, &e) == LM_ERR_INVALID_ARG,
            "non-object context");
    json_decref(arr);
    lm_template_free(t);
    lm_template_free(NULL);
    /* embedded NUL bytes in the source are text */
    const char src[] = "a\0b{{ 1 }}";
    lm_err_clear(&e);
    T_REQUIRE(lm_template_compile(src, sizeof src - 1, &t, &e) == LM_OK, "%s", e.msg);
    T_CHECK(lm_template_render(t, NULL, NULL, &out, &n, &e) == LM_OK && n == 4 &&
                memcmp(out, "a\0b1", 4) == 0,
            "NUL in text");
    lm_free(out);
    lm_template_free(t);
}

static void test_alloc_failures(void) {
    size_t slen;
    char *src = slurp(DATA "qwen3.jinja", &slen);
    json_error_t je;
    json_t *ctx = json_load_file(DATA "qwen3.tools_call_result.json", 0, &je);
    T_REQUIRE(src && ctx, "qwen3 data");
    int failures_seen = 0;
    for (unsigned long k = 1; k < 400; k++) {
        lm_alloc_fail_after(k, 0);
        char *out = NULL;
        lm_err e;
        lm_status st = render(src, slen, ctx, NULL, &out, NULL, &e);
        unsigned long inj = lm_alloc_injected_failures();
        lm_alloc_fail_after(0, 0);
        if (inj) {
            failures_seen++;
            T_CHECK(st == LM_ERR_NOMEM || st == LM_OK, "alloc #%lu: status %d '%s'", k, st, e.msg);
        }
        lm_free(out);
        if (!inj) break; /* past the last allocation */
    }
    T_CHECK(failures_seen > 3, "injection never hit (%d)", failures_seen);
    lm_free(src);
    json_decref(ctx);
}

int main(void) {
    T_RUN(test_real_templates);
    T_RUN(test_unit_snippets);
    T_RUN(test_syntax_errors);
    T_RUN(test_runtime_errors);
    T_RUN(test_limits);
    T_RUN(test_api_edges);
    T_RUN(test_alloc_failures);
    return t_finish();
}
