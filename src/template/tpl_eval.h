/*
 * tpl_eval.h — the evaluator's state, shared by tpl_eval.c (statements, expressions) and
 * tpl_builtins.c (filters, tests, methods, global functions).
 */
#ifndef LM_TEMPLATE_TPL_EVAL_H
#define LM_TEMPLATE_TPL_EVAL_H

#include "template/tpl.h"

/* C recursion cap of the evaluator (expression nodes + statement bodies on the stack). */
#define LT_EVAL_MAX_RECURSION 1000
#define LT_MAX_ARGS 16

struct lt_frame {
    lt_frame *parent;
    size_t n, cap;
    const char **names;
    size_t *lens;
    lt_val *vals;
};

typedef struct ev {
    lt_arena ar;
    lt_buf *out;
    uint64_t steps, max_steps;
    int depth, max_depth; /* macro calls */
    int rdepth;           /* C recursion */
    size_t max_output;
    lt_frame *globals, *root, *frame;
    lm_err *err;
    int failed;
    lm_status st;
} ev;

typedef struct lt_args {
    lt_val pos[LT_MAX_ARGS];
    size_t npos;
    const char *kwn[LT_MAX_ARGS + 1];
    size_t kwl[LT_MAX_ARGS + 1];
    lt_val kwv[LT_MAX_ARGS + 1];
    size_t nkw;
} lt_args;

enum {
    LT_FN_NAMESPACE = 1,
    LT_FN_RANGE,
    LT_FN_RAISE,
    LT_FN_STRFTIME,
    LT_FN_DICT,
};

enum {
    /* str */
    LT_M_STRIP = 1,
    LT_M_LSTRIP,
    LT_M_RSTRIP,
    LT_M_SPLIT,
    LT_M_RSPLIT,
    LT_M_STARTSWITH,
    LT_M_ENDSWITH,
    LT_M_UPPER,
    LT_M_LOWER,
    LT_M_TITLE,
    LT_M_CAPITALIZE,
    LT_M_REPLACE,
    LT_M_FIND,
    LT_M_COUNT,
    LT_M_JOIN,
    LT_M_ISDIGIT,
    LT_M_ISSPACE,
    LT_M_ISALPHA,
    LT_M_ISALNUM,
    LT_M_SPLITLINES,
    /* dict */
    LT_M_ITEMS,
    LT_M_KEYS,
    LT_M_VALUES,
    LT_M_GET,
    /* list, dict: refused (the sandbox is immutable) */
    LT_M_MUTATE,
    /* list */
    LT_M_INDEX,
    /* loop */
    LT_M_CYCLE,
};

lm_status lt_fail(ev *e, const lt_node *at, lm_status code, const char *fmt, ...) LM_PRINTF(4, 5);
int lt_oom(ev *e, const lt_node *at);
int lt_step(ev *e, const lt_node *at, uint64_t n);
int lt_undef_fail(ev *e, const lt_node *at, lt_val v);

int lt_eval(ev *e, const lt_node *x, lt_val *out);
int lt_exec_body(ev *e, lt_node *const *body, size_t n);
lt_frame *lt_frame_new(ev *e, lt_frame *parent);
int lt_frame_set(ev *e, lt_frame *f, const char *name, size_t len, lt_val v);
int lt_getattr(ev *e, const lt_node *at, lt_val obj, const char *nm, size_t n, lt_val *out);
int lt_getitem(ev *e, const lt_node *at, lt_val obj, lt_val key, lt_val *out);
int lt_compare(ev *e, const lt_node *at, lt_val a, lt_val b, int *c, int depth);
int lt_contains(ev *e, const lt_node *at, lt_val container, lt_val item, int *res);
int lt_iterable(ev *e, const lt_node *at, lt_val v, lt_list **out);
int lt_concat_str(ev *e, const lt_node *at, lt_val a, lt_val b, lt_val *out);
int lt_call_macro(ev *e, const lt_node *at, const lt_macro *m, const lt_args *a, lt_val *out);

/* tpl_builtins.c */
int lt_method_id(lt_val obj, const char *nm, size_t n); /* -1 when not a method */
int lt_call_method(ev *e, const lt_node *at, int id, lt_val self, const lt_args *a, lt_val *out);
int lt_call_global(ev *e, const lt_node *at, int id, const lt_args *a, lt_val *out);
int lt_apply_filter(ev *e, const lt_node *at, lt_val v, const lt_args *a, lt_val *out);
int lt_apply_test(ev *e, const lt_node *at, lt_val v, const lt_args *a, int *res);

#endif
