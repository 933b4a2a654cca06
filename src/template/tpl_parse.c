/*
 * tpl_parse.c — the template parser: tokens to an AST of lt_node.
 *
 * Recursive descent with jinja2's grammar and precedence (lowest first):
 *   conditional  a if c else b
 *   or, and, not
 *   comparisons  == != < <= > >= in, not in   (chained: a < b < c)
 *   + -          ~          * / // %          **
 *   unary - +    then postfix (.attr [index] [a:b:c] (call)) and filters/tests (| f, is t)
 * so "-x | abs" is (-x)|abs and "a + b | trim" is a + (b|trim), as in jinja2.
 * Statements: if/elif/else, for (targets, `if` filter, else), set (name, ns.attr, tuple, block
 * form), macro, call, filter, break/continue, generation (transformers' marker, rendered
 * as its body), raw (handled by the lexer). Recursion is capped at LT_PARSE_MAX_NEST so a
 * hostile template cannot exhaust the C stack while compiling.
 */
#include "template/tpl.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <string.h>

typedef struct parser {
    lt_arena *a;
    const lt_token *t;
    size_t n, i;
    int depth;
    lm_err *err;
    int failed;
} parser;

typedef struct nodevec {
    lt_node **v;
    size_t n, cap;
} nodevec;

static const lt_token *cur(parser *p) {
    return &p->t[p->i < p->n ? p->i : p->n - 1];
}
static const lt_token *peek(parser *p, size_t k) {
    size_t j = p->i + k;
    return &p->t[j < p->n ? j : p->n - 1];
}
static void adv(parser *p) {
    if (p->i < p->n - 1) p->i++;
}

static lt_node *fail_at(parser *p, const lt_token *t, const char *fmt, const char *arg) {
    if (!p->failed) {
        char msg[256];
        snprintf(msg, sizeof msg, fmt, arg ? arg : "");
        lm_err_set(p->err, LM_ERR_FORMAT, "template:%u:%u: syntax error: %s", t->line, t->col, msg);
        p->failed = 1;
    }
    return NULL;
}

static lt_node *oom(parser *p) {
    if (!p->failed) {
        lm_err_set(p->err, LM_ERR_NOMEM, "template: out of memory while parsing");
        p->failed = 1;
    }
    return NULL;
}

static lt_node *mk(parser *p, uint8_t kind, const lt_token *at) {
    lt_node *x = lt_arena_alloc(p->a, sizeof *x);
    if (!x) return oom(p);
    x->kind = kind;
    x->line = at->line;
    x->col = at->col;
    return x;
}

static int vec_push(parser *p, nodevec *v, lt_node *x) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        lt_node **nv = lt_arena_alloc(p->a, nc * sizeof *nv);
        if (!nv) {
            oom(p);
            return 0;
        }
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = x;
    return 1;
}

static int is_op(parser *p, uint8_t op) {
    return cur(p)->type == TK_OP && cur(p)->op == op;
}
static int is_name(const lt_token *t, const char *w) {
    return t->type == TK_NAME && t->len == strlen(w) && memcmp(t->s, w, t->len) == 0;
}
static int expect_op(parser *p, uint8_t op, const char *what) {
    if (!is_op(p, op)) {
        fail_at(p, cur(p), "expected '%s'", what);
        return 0;
    }
    adv(p);
    return 1;
}

static int enter(parser *p) {
    if (++p->depth > LT_PARSE_MAX_NEST) {
        fail_at(p, cur(p), "%snesting too deep", NULL);
        return 0;
    }
    return 1;
}
#define LEAVE(p, x)                                                                                \
    do {                                                                                           \
        (p)->depth--;                                                                              \
        return (x);                                                                                \
    } while (0)

static lt_node *parse_expr(parser *p);
static lt_node *parse_or(parser *p);
static lt_node *parse_unary(parser *p, int with_filter);
static lt_node *parse_primary(parser *p);
static lt_node *parse_postfix(parser *p, lt_node *x);
static lt_node *parse_filter_expr(parser *p, lt_node *x);

/* expr ("," expr)* with optional trailing comma; a tuple when a comma appears. */
static lt_node *parse_tuple(parser *p, int with_cond, int explicit_parens) {
    const lt_token *at = cur(p);
    nodevec items = {0};
    int is_tuple = 0;
    for (;;) {
        if (items.n) {
            if (!is_op(p, OP_COMMA)) break;
            adv(p);
            is_tuple = 1;
        }
        /* end of a tuple: a closing token or tag end */
        const lt_token *c = cur(p);
        if (items.n &&
            (c->type == TK_BLOCK_END || c->type == TK_VAR_END ||
             (c->type == TK_OP && (c->op == OP_RPAREN || c->op == OP_ASSIGN)) || is_name(c, "in")))
            break;
        if (explicit_parens && items.n == 0 && is_op(p, OP_RPAREN)) break;
        lt_node *x = with_cond ? parse_expr(p) : parse_or(p);
        if (!x || !vec_push(p, &items, x)) return NULL;
    }
    if (!is_tuple && items.n == 1) return items.v[0];
    if (!is_tuple && items.n == 0 && !explicit_parens)
        return fail_at(p, cur(p), "expected an expression%s", NULL);
    lt_node *t = mk(p, N_TUPLE, at);
    if (!t) return NULL;
    t->kids = items.v;
    t->nkids = items.n;
    return t;
}

static lt_node *parse_expr(parser *p) {
    if (!enter(p)) return NULL;
    const lt_token *at = cur(p);
    lt_node *x = parse_or(p);
    if (!x) LEAVE(p, NULL);
    while (is_name(cur(p), "if")) {
        adv(p);
        lt_node *cond = parse_or(p);
        if (!cond) LEAVE(p, NULL);
        lt_node *els = NULL;
        if (is_name(cur(p), "else")) {
            adv(p);
            els = parse_expr(p);
            if (!els) LEAVE(p, NULL);
        }
        lt_node *c = mk(p, N_COND, at);
        if (!c) LEAVE(p, NULL);
        c->a = x;
        c->b = cond;
        c->c = els;
        x = c;
    }
    LEAVE(p, x);
}

static lt_node *parse_not(parser *p);
static lt_node *parse_and(parser *p) {
    lt_node *x = parse_not(p);
    while (x && is_name(cur(p), "and")) {
        const lt_token *at = cur(p);
        adv(p);
        lt_node *r = parse_not(p);
        if (!r) return NULL;
        lt_node *b = mk(p, N_AND, at);
        if (!b) return NULL;
        b->a = x;
        b->b = r;
        x = b;
    }
    return x;
}

static lt_node *parse_or(parser *p) {
    if (!enter(p)) return NULL;
    lt_node *x = parse_and(p);
    while (x && is_name(cur(p), "or")) {
        const lt_token *at = cur(p);
        adv(p);
        lt_node *r = parse_and(p);
        if (!r) LEAVE(p, NULL);
        lt_node *b = mk(p, N_OR, at);
        if (!b) LEAVE(p, NULL);
        b->a = x;
        b->b = r;
        x = b;
    }
    LEAVE(p, x);
}

static lt_node *parse_math1(parser *p);
static lt_node *parse_compare(parser *p) {
    const lt_token *at = cur(p);
    lt_node *x = parse_math1(p);
    if (!x) return NULL;
    nodevec ops = {0};
    uint8_t opbuf[64];
    size_t nops = 0;
    for (;;) {
        const lt_token *c = cur(p);
        uint8_t op = 0;
        if (c->type == TK_OP && (c->op == OP_EQ || c->op == OP_NE || c->op == OP_LT ||
                                 c->op == OP_LE || c->op == OP_GT || c->op == OP_GE)) {
            op = c->op;
            adv(p);
        } else if (is_name(c, "in")) {
            op = OP_IN;
            adv(p);
        } else if (is_name(c, "not") && is_name(peek(p, 1), "in")) {
            op = OP_NOTIN;
            adv(p);
            adv(p);
        } else {
            break;
        }
        if (nops >= sizeof opbuf) return fail_at(p, c, "comparison chain too long%s", NULL);
        lt_node *r = parse_math1(p);
        if (!r || !vec_push(p, &ops, r)) return NULL;
        opbuf[nops++] = op;
    }
    if (!nops) return x;
    lt_node *cmp = mk(p, N_COMPARE, at);
    if (!cmp) return NULL;
    cmp->a = x;
    cmp->kids = ops.v;
    cmp->nkids = ops.n;
    cmp->ops = lt_arena_alloc(p->a, nops);
    if (!cmp->ops) return oom(p);
    memcpy(cmp->ops, opbuf, nops);
    return cmp;
}

static lt_node *parse_not(parser *p) {
    if (is_name(cur(p), "not")) {
        const lt_token *at = cur(p);
        adv(p);
        if (!enter(p)) return NULL;
        lt_node *x = parse_not(p);
        if (!x) LEAVE(p, NULL);
        lt_node *u = mk(p, N_UNARY, at);
        if (!u) LEAVE(p, NULL);
        u->op = OP_NOT;
        u->a = x;
        LEAVE(p, u);
    }
    return parse_compare(p);
}

static lt_node *binary(parser *p, const lt_token *at, uint8_t op, lt_node *l, lt_node *r) {
    lt_node *b = mk(p, N_BINARY, at);
    if (!b) return NULL;
    b->op = op;
    b->a = l;
    b->b = r;
    return b;
}

static lt_node *parse_pow(parser *p) {
    lt_node *x = parse_unary(p, 1);
    while (x && is_op(p, OP_POW)) {
        const lt_token *at = cur(p);
        adv(p);
        lt_node *r = parse_unary(p, 1);
        if (!r) return NULL;
        x = binary(p, at, OP_POW, x, r);
    }
    return x;
}

static lt_node *parse_math2(parser *p) {
    lt_node *x = parse_pow(p);
    while (x &&
           (is_op(p, OP_MUL) || is_op(p, OP_DIV) || is_op(p, OP_FLOORDIV) || is_op(p, OP_MOD))) {
        const lt_token *at = cur(p);
        uint8_t op = at->op;
        adv(p);
        lt_node *r = parse_pow(p);
        if (!r) return NULL;
        x = binary(p, at, op, x, r);
    }
    return x;
}

static lt_node *parse_concat(parser *p) {
    lt_node *x = parse_math2(p);
    while (x && is_op(p, OP_TILDE)) {
        const lt_token *at = cur(p);
        adv(p);
        lt_node *r = parse_math2(p);
        if (!r) return NULL;
        x = binary(p, at, OP_TILDE, x, r);
    }
    return x;
}

static lt_node *parse_math1(parser *p) {
    lt_node *x = parse_concat(p);
    while (x && (is_op(p, OP_ADD) || is_op(p, OP_SUB))) {
        const lt_token *at = cur(p);
        uint8_t op = at->op;
        adv(p);
        lt_node *r = parse_concat(p);
        if (!r) return NULL;
        x = binary(p, at, op, x, r);
    }
    return x;
}

static lt_node *parse_unary(parser *p, int with_filter) {
    if (!enter(p)) return NULL;
    const lt_token *at = cur(p);
    lt_node *x;
    if (is_op(p, OP_SUB) || is_op(p, OP_ADD)) {
        adv(p);
        lt_node *o = parse_unary(p, 0);
        if (!o) LEAVE(p, NULL);
        x = mk(p, N_UNARY, at);
        if (!x) LEAVE(p, NULL);
        x->op = at->op == OP_SUB ? OP_NEG : OP_POS;
        x->a = o;
    } else {
        x = parse_primary(p);
    }
    if (x) x = parse_postfix(p, x);
    if (x && with_filter) x = parse_filter_expr(p, x);
    LEAVE(p, x);
}

/* Call arguments after '(' up to ')': positional and name=value. */
static int parse_args(parser *p, lt_node *call) {
    nodevec args = {0}, kwv = {0};
    const char *kwn[64];
    size_t kwl[64], nkw = 0;
    while (!is_op(p, OP_RPAREN)) {
        if (args.n || nkw) {
            if (!expect_op(p, OP_COMMA, ",")) return 0;
            if (is_op(p, OP_RPAREN)) break;
        }
        if (is_op(p, OP_MUL) || is_op(p, OP_POW)) {
            fail_at(p, cur(p), "*args and **kwargs are not supported%s", NULL);
            return 0;
        }
        if (cur(p)->type == TK_NAME && peek(p, 1)->type == TK_OP && peek(p, 1)->op == OP_ASSIGN) {
            if (nkw >= 64) {
                fail_at(p, cur(p), "too many keyword arguments%s", NULL);
                return 0;
            }
            kwn[nkw] = cur(p)->s;
            kwl[nkw] = cur(p)->len;
            adv(p);
            adv(p);
            lt_node *v = parse_expr(p);
            if (!v || !vec_push(p, &kwv, v)) return 0;
            nkw++;
        } else {
            if (nkw) {
                fail_at(p, cur(p), "positional argument after keyword argument%s", NULL);
                return 0;
            }
            lt_node *v = parse_expr(p);
            if (!v || !vec_push(p, &args, v)) return 0;
        }
    }
    adv(p); /* ')' */
    call->kids = args.v;
    call->nkids = args.n;
    call->kids2 = kwv.v;
    call->nkids2 = kwv.n;
    call->nnames = nkw;
    if (nkw) {
        call->names = lt_arena_alloc(p->a, nkw * sizeof(char *));
        call->name_lens = lt_arena_alloc(p->a, nkw * sizeof(size_t));
        if (!call->names || !call->name_lens) {
            oom(p);
            return 0;
        }
        memcpy(call->names, kwn, nkw * sizeof(char *));
        memcpy(call->name_lens, kwl, nkw * sizeof(size_t));
    }
    return 1;
}

static lt_node *parse_postfix(parser *p, lt_node *x) {
    while (x) {
        const lt_token *at = cur(p);
        if (is_op(p, OP_DOT)) {
            adv(p);
            const lt_token *nt = cur(p);
            if (nt->type == TK_NAME) {
                lt_node *g = mk(p, N_GETATTR, at);
                if (!g) return NULL;
                g->a = x;
                g->name = nt->s;
                g->name_len = nt->len;
                adv(p);
                x = g;
            } else if (nt->type == TK_INT) {
                lt_node *g = mk(p, N_GETITEM, at), *k = mk(p, N_CONST, nt);
                if (!g || !k) return NULL;
                k->lit = lt_int(nt->i);
                g->a = x;
                g->b = k;
                adv(p);
                x = g;
            } else {
                return fail_at(p, nt, "expected an attribute name after '.'%s", NULL);
            }
        } else if (is_op(p, OP_LBRACKET)) {
            adv(p);
            if (!enter(p)) return NULL;
            /* subscript: expr | [start]:[stop][:[step]] */
            lt_node *parts[3] = {0};
            int nparts = 0, is_slice = 0;
            for (;;) {
                if (is_op(p, OP_COLON)) {
                    is_slice = 1;
                    if (nparts >= 2) {
                        p->depth--;
                        return fail_at(p, cur(p), "bad slice%s", NULL);
                    }
                    nparts++;
                    adv(p);
                    continue;
                }
                if (is_op(p, OP_RBRACKET)) break;
                if (parts[nparts]) {
                    p->depth--;
                    return fail_at(p, cur(p), "expected ']'%s", NULL);
                }
                parts[nparts] = parse_expr(p);
                if (!parts[nparts]) {
                    p->depth--;
                    return NULL;
                }
            }
            adv(p);
            p->depth--;
            lt_node *g = mk(p, is_slice ? N_SLICE : N_GETITEM, at);
            if (!g) return NULL;
            g->a = x;
            if (is_slice) {
                g->b = parts[0];
                g->c = parts[1];
                g->d = parts[2];
            } else {
                if (!parts[0]) return fail_at(p, at, "empty subscript%s", NULL);
                g->b = parts[0];
            }
            x = g;
        } else if (is_op(p, OP_LPAREN)) {
            adv(p);
            lt_node *c = mk(p, N_CALL, at);
            if (!c) return NULL;
            c->a = x;
            c->line = x->line; /* errors of a call point at its callee */
            c->col = x->col;
            if (!enter(p)) return NULL;
            int ok = parse_args(p, c);
            p->depth--;
            if (!ok) return NULL;
            x = c;
        } else {
            break;
        }
    }
    return x;
}

static lt_node *parse_filter_expr(parser *p, lt_node *x) {
    int had_test = 0;
    while (x) {
        const lt_token *at = cur(p);
        if (is_op(p, OP_PIPE)) {
            adv(p);
            const lt_token *nt = cur(p);
            if (nt->type != TK_NAME) return fail_at(p, nt, "expected a filter name%s", NULL);
            lt_node *f = mk(p, N_FILTER, nt);
            if (!f) return NULL;
            f->a = x;
            f->name = nt->s;
            f->name_len = nt->len;
            adv(p);
            /* dotted filter names are not used by chat templates */
            if (is_op(p, OP_LPAREN)) {
                adv(p);
                if (!enter(p)) return NULL;
                int ok = parse_args(p, f);
                p->depth--;
                if (!ok) return NULL;
            }
            x = f;
        } else if (is_name(at, "is")) {
            if (had_test)
                return fail_at(p, at, "you cannot chain multiple tests with 'is'%s", NULL);
            had_test = 1;
            adv(p);
            int neg = 0;
            if (is_name(cur(p), "not")) {
                neg = 1;
                adv(p);
            }
            const lt_token *nt = cur(p);
            if (nt->type != TK_NAME) return fail_at(p, nt, "expected a test name%s", NULL);
            lt_node *t = mk(p, N_TEST, nt);
            if (!t) return NULL;
            t->a = x;
            t->op = (uint8_t)neg;
            t->name = nt->s;
            t->name_len = nt->len;
            adv(p);
            const lt_token *c = cur(p);
            if (is_op(p, OP_LPAREN)) {
                adv(p);
                if (!enter(p)) return NULL;
                int ok = parse_args(p, t);
                p->depth--;
                if (!ok) return NULL;
            } else if ((c->type == TK_NAME || c->type == TK_STRING || c->type == TK_INT ||
                        c->type == TK_FLOAT ||
                        (c->type == TK_OP && (c->op == OP_LBRACKET || c->op == OP_LBRACE))) &&
                       !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and") &&
                       !is_name(c, "is") && !is_name(c, "if") && !is_name(c, "in") &&
                       !is_name(c, "not")) {
                if (!enter(p)) return NULL;
                lt_node *arg = parse_primary(p);
                if (arg) arg = parse_postfix(p, arg);
                p->depth--;
                if (!arg) return NULL;
                t->kids = lt_arena_alloc(p->a, sizeof(lt_node *));
                if (!t->kids) return oom(p);
                t->kids[0] = arg;
                t->nkids = 1;
            }
            x = t;
        } else if (is_op(p, OP_LPAREN)) {
            adv(p);
            lt_node *c = mk(p, N_CALL, at);
            if (!c) return NULL;
            c->a = x;
            c->line = x->line; /* errors of a call point at its callee */
            c->col = x->col;
            if (!enter(p)) return NULL;
            int ok = parse_args(p, c);
            p->depth--;
            if (!ok) return NULL;
            x = c;
        } else {
            break;
        }
    }
    return x;
}

static lt_node *parse_primary(parser *p) {
    const lt_token *t = cur(p);
    lt_node *x;
    if (!enter(p)) return NULL;
    switch (t->type) {
    case TK_NAME:
        x = mk(p, N_CONST, t);
        if (!x) LEAVE(p, NULL);
        if (is_name(t, "true") || is_name(t, "True")) {
            x->lit = lt_bool(1);
        } else if (is_name(t, "false") || is_name(t, "False")) {
            x->lit = lt_bool(0);
        } else if (is_name(t, "none") || is_name(t, "None")) {
            x->lit = lt_none();
        } else {
            x->kind = N_NAME;
            x->name = t->s;
            x->name_len = t->len;
        }
        adv(p);
        LEAVE(p, x);
    case TK_STRING: {
        x = mk(p, N_CONST, t);
        if (!x) LEAVE(p, NULL);
        /* adjacent string literals concatenate */
        size_t total = 0;
        size_t j = p->i;
        while (p->t[j].type == TK_STRING) {
            if (!lm_add_size(total, p->t[j].len, &total)) LEAVE(p, oom(p));
            j++;
        }
        lt_str *s = lt_str_new(p->a, NULL, 0);
        if (total != 0 || p->i + 1 != j) {
            s = lt_arena_alloc(p->a, sizeof(lt_str) + total + 1);
            if (s) {
                size_t off = 0;
                for (size_t k = p->i; k < j; k++) {
                    memcpy(s->data + off, p->t[k].s, p->t[k].len);
                    off += p->t[k].len;
                }
                s->len = total;
                s->data[total] = '\0';
            }
        }
        if (!s) LEAVE(p, oom(p));
        x->lit = lt_str_val(s);
        p->i = j;
        LEAVE(p, x);
    }
    case TK_INT:
        x = mk(p, N_CONST, t);
        if (!x) LEAVE(p, NULL);
        x->lit = lt_int(t->i);
        adv(p);
        LEAVE(p, x);
    case TK_FLOAT:
        x = mk(p, N_CONST, t);
        if (!x) LEAVE(p, NULL);
        x->lit = lt_float(t->f);
        adv(p);
        LEAVE(p, x);
    case TK_OP:
        if (t->op == OP_LPAREN) {
            adv(p);
            x = parse_tuple(p, 1, 1);
            if (!x) LEAVE(p, NULL);
            if (!expect_op(p, OP_RPAREN, ")")) LEAVE(p, NULL);
            LEAVE(p, x);
        }
        if (t->op == OP_LBRACKET) {
            adv(p);
            nodevec items = {0};
            while (!is_op(p, OP_RBRACKET)) {
                if (items.n && !expect_op(p, OP_COMMA, ",")) LEAVE(p, NULL);
                if (is_op(p, OP_RBRACKET)) break;
                lt_node *e = parse_expr(p);
                if (!e || !vec_push(p, &items, e)) LEAVE(p, NULL);
            }
            adv(p);
            x = mk(p, N_LIST, t);
            if (!x) LEAVE(p, NULL);
            x->kids = items.v;
            x->nkids = items.n;
            LEAVE(p, x);
        }
        if (t->op == OP_LBRACE) {
            adv(p);
            nodevec keys = {0}, vals = {0};
            while (!is_op(p, OP_RBRACE)) {
                if (keys.n && !expect_op(p, OP_COMMA, ",")) LEAVE(p, NULL);
                if (is_op(p, OP_RBRACE)) break;
                lt_node *k = parse_expr(p);
                if (!k || !expect_op(p, OP_COLON, ":")) LEAVE(p, NULL);
                lt_node *v = parse_expr(p);
                if (!v || !vec_push(p, &keys, k) || !vec_push(p, &vals, v)) LEAVE(p, NULL);
            }
            adv(p);
            x = mk(p, N_DICT, t);
            if (!x) LEAVE(p, NULL);
            x->kids = keys.v;
            x->nkids = keys.n;
            x->kids2 = vals.v;
            x->nkids2 = vals.n;
            LEAVE(p, x);
        }
        break;
    default: break;
    }
    if (t->type == TK_BLOCK_END || t->type == TK_VAR_END || t->type == TK_EOF)
        LEAVE(p, fail_at(p, t, "unexpected end of tag, expected an expression%s", NULL));
    LEAVE(p, fail_at(p, t, "unexpected token, expected an expression%s", NULL));
}

/* ---- statements ----------------------------------------------------------------------- */

static int parse_body(parser *p, nodevec *body, const char *const *ends, const lt_token **end_tok);

static int expect_block_end(parser *p) {
    if (cur(p)->type != TK_BLOCK_END) {
        fail_at(p, cur(p), "expected end of block tag '%%}'%s", NULL);
        return 0;
    }
    adv(p);
    return 1;
}

/* Assignment target: name | name.attr | a, b (tuple of names). */
static lt_node *parse_target(parser *p, int allow_attr) {
    const lt_token *at = cur(p);
    nodevec names = {0};
    int paren = 0;
    if (is_op(p, OP_LPAREN)) {
        paren = 1;
        adv(p);
    }
    for (;;) {
        const lt_token *t = cur(p);
        if (t->type != TK_NAME) return fail_at(p, t, "expected a variable name%s", NULL);
        lt_node *x = mk(p, N_NAME, t);
        if (!x) return NULL;
        x->name = t->s;
        x->name_len = t->len;
        adv(p);
        if (allow_attr && is_op(p, OP_DOT) && !names.n) {
            adv(p);
            const lt_token *a2 = cur(p);
            if (a2->type != TK_NAME) return fail_at(p, a2, "expected an attribute name%s", NULL);
            lt_node *g = mk(p, N_GETATTR, a2);
            if (!g) return NULL;
            g->a = x;
            g->name = a2->s;
            g->name_len = a2->len;
            adv(p);
            return g;
        }
        if (!vec_push(p, &names, x)) return NULL;
        if (!is_op(p, OP_COMMA)) break;
        adv(p);
    }
    if (paren && !expect_op(p, OP_RPAREN, ")")) return NULL;
    if (names.n == 1 && !paren) return names.v[0];
    lt_node *tp = mk(p, N_TUPLE, at);
    if (!tp) return NULL;
    tp->kids = names.v;
    tp->nkids = names.n;
    return tp;
}

static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_FOR[] = {"else", "endfor", NULL};
static const char *const END_ENDFOR[] = {"endfor", NULL};
static const char *const END_SET[] = {"endset", NULL};
static const char *const END_MACRO[] = {"endmacro", NULL};
static const char *const END_CALL[] = {"endcall", NULL};
static const char *const END_FILTER[] = {"endfilter", NULL};
static const char *const END_GEN[] = {"endgeneration", NULL};

static lt_node *parse_if(parser *p, const lt_token *at) {
    lt_node *x = mk(p, N_IF, at);
    if (!x) return NULL;
    x->a = parse_tuple(p, 1, 0);
    if (!x->a || !expect_block_end(p)) return NULL;
    nodevec body = {0};
    const lt_token *end;
    if (!parse_body(p, &body, END_IF, &end)) return NULL;
    x->kids = body.v;
    x->nkids = body.n;
    if (is_name(end, "elif")) {
        lt_node *sub = parse_if(p, end);
        if (!sub) return NULL;
        x->kids2 = lt_arena_alloc(p->a, sizeof(lt_node *));
        if (!x->kids2) return oom(p);
        x->kids2[0] = sub;
        x->nkids2 = 1;
        return x; /* the nested if consumed endif */
    }
    if (is_name(end, "else")) {
        if (!expect_block_end(p)) return NULL;
        nodevec eb = {0};
        static const char *const END_ENDIF[] = {"endif", NULL};
        if (!parse_body(p, &eb, END_ENDIF, &end)) return NULL;
        x->kids2 = eb.v;
        x->nkids2 = eb.n;
    }
    if (!expect_block_end(p)) return NULL;
    return x;
}

static int parse_params(parser *p, lt_node *m) {
    /* (a, b=default, ...) */
    const char *nm[64];
    size_t nl[64], n = 0;
    nodevec defs = {0};
    if (!expect_op(p, OP_LPAREN, "(")) return 0;
    while (!is_op(p, OP_RPAREN)) {
        if (n && !expect_op(p, OP_COMMA, ",")) return 0;
        if (is_op(p, OP_RPAREN)) break;
        const lt_token *t = cur(p);
        if (t->type != TK_NAME || n >= 64) {
            fail_at(p, t, "expected a parameter name%s", NULL);
            return 0;
        }
        nm[n] = t->s;
        nl[n] = t->len;
        adv(p);
        lt_node *d = NULL;
        if (is_op(p, OP_ASSIGN)) {
            adv(p);
            d = parse_expr(p);
            if (!d) return 0;
        }
        if (!vec_push(p, &defs, d)) return 0;
        n++;
    }
    adv(p);
    m->nnames = n;
    m->kids2 = defs.v;
    m->nkids2 = defs.n;
    if (n) {
        m->names = lt_arena_alloc(p->a, n * sizeof(char *));
        m->name_lens = lt_arena_alloc(p->a, n * sizeof(size_t));
        if (!m->names || !m->name_lens) {
            oom(p);
            return 0;
        }
        memcpy(m->names, nm, n * sizeof(char *));
        memcpy(m->name_lens, nl, n * sizeof(size_t));
    }
    return 1;
}

/* A filter chain applied to a block body: | f(args) | g ... ; operand left NULL. */
static lt_node *parse_filter_chain(parser *p) {
    lt_node *head = NULL;
    int first = 1;
    while (first || is_op(p, OP_PIPE)) {
        if (!first) adv(p);
        first = 0;
        const lt_token *nt = cur(p);
        if (nt->type != TK_NAME) return fail_at(p, nt, "expected a filter name%s", NULL);
        lt_node *f = mk(p, N_FILTER, nt);
        if (!f) return NULL;
        f->a = head;
        f->name = nt->s;
        f->name_len = nt->len;
        adv(p);
        if (is_op(p, OP_LPAREN)) {
            adv(p);
            if (!parse_args(p, f)) return NULL;
        }
        head = f;
    }
    return head;
}

static lt_node *parse_stmt(parser *p) {
    const lt_token *kw = cur(p);
    if (kw->type != TK_NAME) return fail_at(p, kw, "expected a statement name%s", NULL);
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(kw->len < 31 ? kw->len : 31), kw->s);
    adv(p);
    if (!strcmp(name, "if")) return parse_if(p, kw);
    if (!strcmp(name, "for")) {
        lt_node *x = mk(p, N_FOR, kw);
        if (!x) return NULL;
        x->a = parse_target(p, 0);
        if (!x->a) return NULL;
        if (!is_name(cur(p), "in")) return fail_at(p, cur(p), "expected 'in'%s", NULL);
        adv(p);
        x->b = parse_tuple(p, 0, 0);
        if (!x->b) return NULL;
        if (is_name(cur(p), "if")) {
            adv(p);
            x->c = parse_expr(p);
            if (!x->c) return NULL;
        }
        if (is_name(cur(p), "recursive"))
            return fail_at(p, cur(p), "recursive loops are not supported%s", NULL);
        if (!expect_block_end(p)) return NULL;
        nodevec body = {0}, eb = {0};
        const lt_token *end;
        if (!parse_body(p, &body, END_FOR, &end)) return NULL;
        if (is_name(end, "else")) {
            if (!expect_block_end(p) || !parse_body(p, &eb, END_ENDFOR, &end)) return NULL;
        }
        if (!expect_block_end(p)) return NULL;
        x->kids = body.v;
        x->nkids = body.n;
        x->kids2 = eb.v;
        x->nkids2 = eb.n;
        return x;
    }
    if (!strcmp(name, "set")) {
        lt_node *target = parse_target(p, 1);
        if (!target) return NULL;
        if (is_op(p, OP_ASSIGN)) {
            adv(p);
            lt_node *x = mk(p, N_SET, kw);
            if (!x) return NULL;
            x->a = target;
            x->b = parse_tuple(p, 1, 0);
            if (!x->b || !expect_block_end(p)) return NULL;
            return x;
        }
        lt_node *x = mk(p, N_SETBLOCK, kw);
        if (!x) return NULL;
        x->a = target;
        if (is_op(p, OP_PIPE)) {
            adv(p);
            x->c = parse_filter_chain(p);
            if (!x->c) return NULL;
        }
        if (!expect_block_end(p)) return NULL;
        nodevec body = {0};
        const lt_token *end;
        if (!parse_body(p, &body, END_SET, &end) || !expect_block_end(p)) return NULL;
        x->kids = body.v;
        x->nkids = body.n;
        return x;
    }
    if (!strcmp(name, "macro")) {
        lt_node *x = mk(p, N_MACRO, kw);
        if (!x) return NULL;
        const lt_token *nt = cur(p);
        if (nt->type != TK_NAME) return fail_at(p, nt, "expected a macro name%s", NULL);
        x->name = nt->s;
        x->name_len = nt->len;
        adv(p);
        if (!parse_params(p, x) || !expect_block_end(p)) return NULL;
        nodevec body = {0};
        const lt_token *end;
        if (!parse_body(p, &body, END_MACRO, &end)) return NULL;
        if (cur(p)->type == TK_NAME) adv(p); /* {% endmacro name %} */
        if (!expect_block_end(p)) return NULL;
        x->kids = body.v;
        x->nkids = body.n;
        return x;
    }
    if (!strcmp(name, "call")) {
        lt_node *x = mk(p, N_CALLBLOCK, kw);
        if (!x) return NULL;
        if (is_op(p, OP_LPAREN)) {
            if (!parse_params(p, x)) return NULL;
        }
        x->a = parse_expr(p);
        if (!x->a) return NULL;
        if (x->a->kind != N_CALL)
            return fail_at(p, kw, "expected a macro call after 'call'%s", NULL);
        if (!expect_block_end(p)) return NULL;
        nodevec body = {0};
        const lt_token *end;
        if (!parse_body(p, &body, END_CALL, &end) || !expect_block_end(p)) return NULL;
        x->kids = body.v;
        x->nkids = body.n;
        return x;
    }
    if (!strcmp(name, "filter")) {
        lt_node *x = mk(p, N_FILTERBLOCK, kw);
        if (!x) return NULL;
        x->c = parse_filter_chain(p);
        if (!x->c || !expect_block_end(p)) return NULL;
        nodevec body = {0};
        const lt_token *end;
        if (!parse_body(p, &body, END_FILTER, &end) || !expect_block_end(p)) return NULL;
        x->kids = body.v;
        x->nkids = body.n;
        return x;
    }
    if (!strcmp(name, "generation")) {
        /* transformers' AssistantTracker: marks assistant text for masks; renders its body */
        lt_node *x = mk(p, N_BODY, kw);
        if (!x || !expect_block_end(p)) return NULL;
        nodevec body = {0};
        const lt_token *end;
        if (!parse_body(p, &body, END_GEN, &end) || !expect_block_end(p)) return NULL;
        x->kids = body.v;
        x->nkids = body.n;
        return x;
    }
    if (!strcmp(name, "break") || !strcmp(name, "continue")) {
        lt_node *x = mk(p, name[0] == 'b' ? N_BREAK : N_CONTINUE, kw);
        if (!x || !expect_block_end(p)) return NULL;
        return x;
    }
    return fail_at(p, kw, "unknown or unsupported tag '%s'", name);
}

/* Parses statements until a block tag whose name is in ends (NULL = until EOF). On return
 * *end_tok is that name token, consumed (the caller handles the rest of its tag). */
static int parse_body(parser *p, nodevec *body, const char *const *ends, const lt_token **end_tok) {
    if (!enter(p)) return 0;
    for (;;) {
        const lt_token *t = cur(p);
        if (t->type == TK_EOF) {
            if (ends) {
                const char *const *e = ends;
                while (e[1])
                    e++; /* the closing tag is the last one listed */
                fail_at(p, t, "unexpected end of template, expected '{%% %s %%}'", *e);
                p->depth--;
                return 0;
            }
            break;
        }
        if (t->type == TK_TEXT) {
            lt_node *x = mk(p, N_TEXT, t);
            if (!x) break;
            x->name = t->s;
            x->name_len = t->len;
            adv(p);
            if (!vec_push(p, body, x)) break;
            continue;
        }
        if (t->type == TK_VAR_BEGIN) {
            adv(p);
            lt_node *x = mk(p, N_OUTPUT, t);
            if (!x) break;
            x->a = parse_tuple(p, 1, 0);
            if (!x->a) break;
            if (cur(p)->type != TK_VAR_END) {
                fail_at(p, cur(p), "expected end of print statement '}}'%s", NULL);
                break;
            }
            adv(p);
            if (!vec_push(p, body, x)) break;
            continue;
        }
        if (t->type == TK_BLOCK_BEGIN) {
            const lt_token *nt = peek(p, 1);
            if (ends && nt->type == TK_NAME)
                for (const char *const *e = ends; *e; e++)
                    if (is_name(nt, *e)) {
                        adv(p);
                        adv(p);
                        *end_tok = nt;
                        p->depth--;
                        return 1;
                    }
            if (nt->type == TK_NAME &&
                (is_name(nt, "endif") || is_name(nt, "endfor") || is_name(nt, "else") ||
                 is_name(nt, "elif") || is_name(nt, "endset") || is_name(nt, "endmacro") ||
                 is_name(nt, "endcall") || is_name(nt, "endfilter") ||
                 is_name(nt, "endgeneration"))) {
                char w[32];
                snprintf(w, sizeof w, "%.*s", (int)(nt->len < 31 ? nt->len : 31), nt->s);
                fail_at(p, nt, "unexpected '%s' (no open block it closes)", w);
                break;
            }
            adv(p);
            lt_node *x = parse_stmt(p);
            if (!x || !vec_push(p, body, x)) break;
            continue;
        }
        fail_at(p, t, "unexpected token%s", NULL);
        break;
    }
    p->depth--;
    return !p->failed;
}

lm_status lt_parse(lt_arena *a, const lt_token *toks, size_t ntoks, lt_node **root, lm_err *err) {
    parser p = {0};
    p.a = a;
    p.t = toks;
    p.n = ntoks;
    p.err = err;
    nodevec body = {0};
    const lt_token *end = NULL;
    if (!parse_body(&p, &body, NULL, &end) || p.failed)
        return err && err->code != LM_OK ? err->code : LM_ERR_FORMAT;
    lt_node *r = mk(&p, N_BODY, &toks[0]);
    if (!r) return LM_ERR_NOMEM;
    r->kids = body.v;
    r->nkids = body.n;
    *root = r;
    return LM_OK;
}
