/*
 * tpl_eval.c — renders a compiled template: statements, expressions, scopes, macros.
 *
 * Semantics follow jinja2 3.1 in transformers' ImmutableSandboxedEnvironment:
 *   - scopes: the context (globals), the template's top level, one frame per for-loop
 *     iteration (a `set` inside a loop body is gone at the next iteration and after the loop —
 *     the reason templates use namespace()), one per macro call (its parent: the top level);
 *   - undefined (jinja2's default Undefined): prints as "", is false, iterates as empty, equals
 *     only undefined; arithmetic, attribute access, calls and most filters on it are errors;
 *   - a.b: attribute first (str/dict/list methods, loop fields), then item; a[b]: item first,
 *     then attribute; a missing key or attribute is undefined, not an error;
 *   - mutation of lists and dicts (append, update, ...) is refused as the sandbox refuses it;
 *   - integers are int64 (Python's are unbounded): overflow is an error, never wraps.
 * Bounded: steps (each expression node, statement and loop iteration), macro call depth, C
 * recursion (so left-deep chains such as 1+1+...+1 are refused, not a stack overflow), output
 * bytes, and arena bytes. Filters, tests and methods live in tpl_builtins.c.
 */
#include "template/tpl_eval.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

lm_status lt_fail(ev *e, const lt_node *at, lm_status code, const char *fmt, ...) {
    if (e->failed) return e->st;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        lm_err_set(e->err, code, "template:%u:%u: %s", at->line, at->col, msg);
    else
        lm_err_set(e->err, code, "template: %s", msg);
    e->failed = 1;
    e->st = code;
    return code;
}

int lt_oom(ev *e, const lt_node *at) {
    if (e->ar.cap_hit)
        lt_fail(e, at, LM_ERR_NOMEM, "memory limit exceeded (%zu bytes)", e->ar.cap);
    else
        lt_fail(e, at, LM_ERR_NOMEM, "out of memory");
    return 0;
}

int lt_step(ev *e, const lt_node *at, uint64_t n) {
    e->steps += n;
    if (e->steps > e->max_steps) {
        lt_fail(e, at, LM_ERR_NOMEM, "step limit exceeded (%llu evaluation steps)",
                (unsigned long long)e->max_steps);
        return 0;
    }
    return 1;
}

int lt_undef_fail(ev *e, const lt_node *at, lt_val v) {
    if (v.u.uname)
        lt_fail(e, at, LM_ERR_FORMAT, "'%s' is undefined", v.u.uname);
    else
        lt_fail(e, at, LM_ERR_FORMAT, "value is undefined");
    return 0;
}

/* A NUL-terminated copy of an identifier (undefined values keep names for messages). */
static const char *name_cstr(ev *e, const char *s, size_t n) {
    lt_str *x = lt_str_new(&e->ar, s, n);
    return x ? x->data : NULL;
}

/* ---- frames --------------------------------------------------------------------------- */

lt_frame *lt_frame_new(ev *e, lt_frame *parent) {
    lt_frame *f = lt_arena_alloc(&e->ar, sizeof *f);
    if (!f) return NULL;
    f->parent = parent;
    return f;
}

int lt_frame_set(ev *e, lt_frame *f, const char *name, size_t len, lt_val v) {
    for (size_t i = 0; i < f->n; i++)
        if (f->lens[i] == len && memcmp(f->names[i], name, len) == 0) {
            f->vals[i] = v;
            return 1;
        }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 8;
        const char **nn = lt_arena_alloc(&e->ar, nc * sizeof *nn);
        size_t *nl = lt_arena_alloc(&e->ar, nc * sizeof *nl);
        lt_val *nv = lt_arena_alloc(&e->ar, nc * sizeof *nv);
        if (!nn || !nl || !nv) return 0;
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof *nn);
            memcpy(nl, f->lens, f->n * sizeof *nl);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        f->names = nn;
        f->lens = nl;
        f->vals = nv;
        f->cap = nc;
    }
    f->names[f->n] = name;
    f->lens[f->n] = len;
    f->vals[f->n] = v;
    f->n++;
    return 1;
}

/* Scopes are small arrays searched linearly; *scanned counts the entries looked at so the
 * caller can charge them to the step budget (a template with thousands of names pays). */
static lt_val *frame_lookup(lt_frame *f, const char *name, size_t len, size_t *scanned) {
    for (; f; f = f->parent) {
        *scanned += f->n;
        for (size_t i = f->n; i-- > 0;)
            if (f->lens[i] == len && memcmp(f->names[i], name, len) == 0) return &f->vals[i];
    }
    return NULL;
}

static const struct {
    const char *name;
    int id;
} GLOBAL_FUNCS[] = {
    {"namespace", LT_FN_NAMESPACE},   {"range", LT_FN_RANGE}, {"raise_exception", LT_FN_RAISE},
    {"strftime_now", LT_FN_STRFTIME}, {"dict", LT_FN_DICT},
};

static int lookup_name(ev *e, const lt_node *x, lt_val *out) {
    size_t scanned = 0;
    lt_val *v = frame_lookup(e->frame, x->name, x->name_len, &scanned);
    if (scanned > 64 && !lt_step(e, x, scanned / 64)) return 0;
    if (v) {
        *out = *v;
        return 1;
    }
    for (size_t i = 0; i < sizeof GLOBAL_FUNCS / sizeof GLOBAL_FUNCS[0]; i++)
        if (strlen(GLOBAL_FUNCS[i].name) == x->name_len &&
            memcmp(GLOBAL_FUNCS[i].name, x->name, x->name_len) == 0) {
            lt_val f = {0};
            f.t = LT_FUNC;
            f.id = GLOBAL_FUNCS[i].id;
            *out = f;
            return 1;
        }
    *out = lt_undef(name_cstr(e, x->name, x->name_len));
    return 1;
}

/* ---- attribute and item access -------------------------------------------------------- */

static int loop_attr(ev *e, const lt_node *at, const lt_loop *l, const char *nm, size_t n,
                     lt_val *out) {
#define IS(w) (n == sizeof(w) - 1 && memcmp(nm, w, n) == 0)
    if (IS("index"))
        *out = lt_int(l->i + 1);
    else if (IS("index0"))
        *out = lt_int(l->i);
    else if (IS("revindex"))
        *out = lt_int(l->n - l->i);
    else if (IS("revindex0"))
        *out = lt_int(l->n - l->i - 1);
    else if (IS("first"))
        *out = lt_bool(l->i == 0);
    else if (IS("last"))
        *out = lt_bool(l->i == l->n - 1);
    else if (IS("length"))
        *out = lt_int(l->n);
    else if (IS("depth"))
        *out = lt_int(1);
    else if (IS("depth0"))
        *out = lt_int(0);
    else if (IS("previtem"))
        *out = l->i > 0 ? l->items->items[l->i - 1] : lt_undef("previtem");
    else if (IS("nextitem"))
        *out = l->i + 1 < l->n ? l->items->items[l->i + 1] : lt_undef("nextitem");
    else if (IS("cycle")) {
        lt_method *m = lt_arena_alloc(&e->ar, sizeof *m);
        if (!m) return lt_oom(e, at);
        lt_val v = {0};
        v.t = LT_LOOP;
        v.u.loop = (lt_loop *)l;
        m->self = v;
        lt_val r = {0};
        r.t = LT_METHOD;
        r.id = LT_M_CYCLE;
        r.u.meth = m;
        *out = r;
    } else
        *out = lt_undef(name_cstr(e, nm, n));
#undef IS
    return 1;
}

int lt_getattr(ev *e, const lt_node *at, lt_val obj, const char *nm, size_t n, lt_val *out) {
    if (obj.t == LT_UNDEF) return lt_undef_fail(e, at, obj);
    if (obj.t == LT_LOOP) return loop_attr(e, at, obj.u.loop, nm, n, out);
    int mid = lt_method_id(obj, nm, n);
    if (mid >= 0) {
        lt_method *m = lt_arena_alloc(&e->ar, sizeof *m);
        if (!m) return lt_oom(e, at);
        m->self = obj;
        lt_val r = {0};
        r.t = LT_METHOD;
        r.id = mid;
        r.u.meth = m;
        *out = r;
        return 1;
    }
    if (obj.t == LT_DICT || obj.t == LT_NS) {
        if (obj.u.d->n > 64 && !lt_step(e, at, obj.u.d->n / 64)) return 0;
        lt_val *v = lt_dict_get_str(obj.u.d, nm, n);
        if (v) {
            *out = *v;
            return 1;
        }
    }
    *out = lt_undef(name_cstr(e, nm, n));
    return 1;
}

static int str_index(ev *e, const lt_node *at, lt_str *s, int64_t idx, lt_val *out) {
    size_t cnt = lt_utf8_count(s->data, s->len);
    if (idx < 0) idx += (int64_t)cnt;
    if (idx < 0 || (uint64_t)idx >= cnt) {
        *out = lt_undef("string index");
        return 1;
    }
    size_t i = 0, k = 0;
    while (i < s->len) {
        size_t j = i + 1;
        while (j < s->len && ((unsigned char)s->data[j] & 0xC0) == 0x80)
            j++;
        if ((int64_t)k == idx) {
            if (!lt_str_mk(&e->ar, s->data + i, j - i, out)) return lt_oom(e, at);
            return 1;
        }
        k++;
        i = j;
    }
    *out = lt_undef("string index");
    return 1;
}

int lt_getitem(ev *e, const lt_node *at, lt_val obj, lt_val key, lt_val *out) {
    if (obj.t == LT_UNDEF) return lt_undef_fail(e, at, obj);
    if (obj.t == LT_DICT || obj.t == LT_NS) {
        if (obj.u.d->n > 64 && !lt_step(e, at, obj.u.d->n / 64)) return 0;
        lt_val *v = lt_dict_get(obj.u.d, key);
        if (v) {
            *out = *v;
            return 1;
        }
    } else if ((obj.t == LT_LIST || obj.t == LT_STR) && (key.t == LT_INT || key.t == LT_BOOL)) {
        int64_t i = key.t == LT_INT ? key.u.i : key.u.b;
        if (obj.t == LT_STR) return str_index(e, at, obj.u.s, i, out);
        int64_t n = (int64_t)obj.u.l->n;
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
            *out = obj.u.l->items[i];
            return 1;
        }
        *out = lt_undef("list index");
        return 1;
    }
    if (key.t == LT_STR) return lt_getattr(e, at, obj, key.u.s->data, key.u.s->len, out);
    *out = lt_undef("item");
    return 1;
}

/* Python slice semantics over n elements: fills start/step and the count. */
static int slice_bounds(ev *e, const lt_node *at, int64_t n, lt_val vs, lt_val ve, lt_val vst,
                        int64_t *start, int64_t *step, int64_t *count) {
    int64_t st = 1;
    if (vst.t != LT_NONE && vst.t != LT_UNDEF) {
        if (vst.t != LT_INT)
            return lt_fail(e, at, LM_ERR_FORMAT, "slice step must be an integer"), 0;
        st = vst.u.i;
        if (st == 0) return lt_fail(e, at, LM_ERR_FORMAT, "slice step cannot be zero"), 0;
        if (st == INT64_MIN) st = -INT64_MAX;
    }
    int64_t lo = 0, hi = 0;
    for (int k = 0; k < 2; k++) {
        lt_val v = k ? ve : vs;
        int64_t def = st > 0 ? (k ? n : 0) : (k ? -1 : n - 1), x;
        if (v.t == LT_UNDEF && v.u.uname) return lt_undef_fail(e, at, v);
        if (v.t == LT_NONE || v.t == LT_UNDEF) {
            x = def;
        } else {
            if (v.t != LT_INT && v.t != LT_BOOL)
                return lt_fail(e, at, LM_ERR_FORMAT, "slice indices must be integers"), 0;
            x = v.t == LT_INT ? v.u.i : v.u.b;
            if (x < 0) {
                x = x < -n ? (st > 0 ? 0 : -1) : x + n;
            } else if (x >= n) {
                x = st > 0 ? n : n - 1;
            }
        }
        if (k)
            hi = x;
        else
            lo = x;
    }
    int64_t c = 0;
    if (st > 0 && lo < hi) c = (hi - lo + st - 1) / st;
    if (st < 0 && lo > hi) c = (lo - hi + (-st) - 1) / (-st);
    *start = lo;
    *step = st;
    *count = c;
    return 1;
}

static int do_slice(ev *e, const lt_node *at, lt_val obj, lt_val a, lt_val b, lt_val c,
                    lt_val *out) {
    int64_t start, step, count;
    if (obj.t == LT_UNDEF) return lt_undef_fail(e, at, obj);
    if (obj.t == LT_LIST) {
        if (!slice_bounds(e, at, (int64_t)obj.u.l->n, a, b, c, &start, &step, &count)) return 0;
        if (!lt_step(e, at, (uint64_t)count / 16)) return 0;
        lt_list *l = lt_list_new(&e->ar, (size_t)count);
        if (!l) return lt_oom(e, at);
        for (int64_t i = 0; i < count; i++)
            l->items[l->n++] = obj.u.l->items[start + i * step];
        out->t = LT_LIST;
        out->tuple = obj.tuple;
        out->u.l = l;
        return 1;
    }
    if (obj.t == LT_STR) {
        lt_str *s = obj.u.s;
        size_t ncp = lt_utf8_count(s->data, s->len);
        /* codepoint start offsets */
        size_t *off = lm_malloc((ncp + 1) * sizeof(size_t));
        if (!off) return lt_oom(e, at);
        size_t k = 0;
        for (size_t i = 0; i < s->len; i++)
            if (((unsigned char)s->data[i] & 0xC0) != 0x80) off[k++] = i;
        off[ncp] = s->len;
        int ok = slice_bounds(e, at, (int64_t)ncp, a, b, c, &start, &step, &count);
        if (ok) ok = lt_step(e, at, (uint64_t)count / 16);
        lt_str *r = ok ? lt_arena_alloc(&e->ar, sizeof(lt_str) + s->len + 1) : NULL;
        if (ok && !r) ok = lt_oom(e, at);
        if (ok) {
            size_t o = 0;
            if (step == 1 && count > 0) {
                o = off[start + count] - off[start];
                memcpy(r->data, s->data + off[start], o);
            } else {
                for (int64_t i = 0; i < count; i++) {
                    size_t ci = (size_t)(start + i * step), l = off[ci + 1] - off[ci];
                    memcpy(r->data + o, s->data + off[ci], l);
                    o += l;
                }
            }
            r->len = o;
            r->data[o] = '\0';
            *out = lt_str_val(r);
        }
        lm_free(off);
        return ok;
    }
    lt_fail(e, at, LM_ERR_FORMAT, "'%s' object is not subscriptable", lt_type_name(obj));
    return 0;
}

/* ---- arithmetic and comparison -------------------------------------------------------- */

static int as_i64(lt_val v, int64_t *o) {
    if (v.t == LT_INT)
        *o = v.u.i;
    else if (v.t == LT_BOOL)
        *o = v.u.b;
    else
        return 0;
    return 1;
}
static int is_numv(lt_val v) {
    return v.t == LT_INT || v.t == LT_FLOAT || v.t == LT_BOOL;
}
static double as_f(lt_val v) {
    return v.t == LT_FLOAT ? v.u.f : v.t == LT_INT ? (double)v.u.i : (double)v.u.b;
}

static int type_err(ev *e, const lt_node *at, const char *op, lt_val a, lt_val b) {
    if (a.t == LT_UNDEF) return lt_undef_fail(e, at, a);
    if (b.t == LT_UNDEF) return lt_undef_fail(e, at, b);
    lt_fail(e, at, LM_ERR_FORMAT, "unsupported operand type(s) for %s: '%s' and '%s'", op,
            lt_type_name(a), lt_type_name(b));
    return 0;
}

static int overflow(ev *e, const lt_node *at) {
    lt_fail(e, at, LM_ERR_FORMAT, "integer overflow (lemma's integers are 64-bit)");
    return 0;
}

static int repeat(ev *e, const lt_node *at, lt_val seq, int64_t times, lt_val *out) {
    if (times < 0) times = 0;
    if (seq.t == LT_STR) {
        size_t tot;
        if (!lm_mul_size(seq.u.s->len, (size_t)times, &tot) || tot > e->ar.cap)
            return lt_oom(e, at);
        if (!lt_step(e, at, tot / 64)) return 0;
        lt_str *r = lt_arena_alloc(&e->ar, sizeof(lt_str) + tot + 1);
        if (!r) return lt_oom(e, at);
        for (int64_t i = 0; i < times; i++)
            memcpy(r->data + (size_t)i * seq.u.s->len, seq.u.s->data, seq.u.s->len);
        r->len = tot;
        r->data[tot] = '\0';
        *out = lt_str_val(r);
        return 1;
    }
    size_t tot;
    if (!lm_mul_size(seq.u.l->n, (size_t)times, &tot) || tot > e->ar.cap / sizeof(lt_val))
        return lt_oom(e, at);
    if (!lt_step(e, at, tot / 16)) return 0;
    lt_list *l = lt_list_new(&e->ar, tot);
    if (!l) return lt_oom(e, at);
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.u.l->n; j++)
            l->items[l->n++] = seq.u.l->items[j];
    out->t = LT_LIST;
    out->tuple = seq.tuple;
    out->u.l = l;
    return 1;
}

int lt_concat_str(ev *e, const lt_node *at, lt_val a, lt_val b, lt_val *out) {
    lt_buf buf = {0};
    buf.limit = e->ar.cap;
    int ok = lt_to_str(&buf, a, LT_VALUE_MAX_DEPTH) && lt_to_str(&buf, b, LT_VALUE_MAX_DEPTH);
    if (ok) ok = lt_str_mk(&e->ar, buf.p ? buf.p : "", buf.n, out);
    lt_buf_free(&buf);
    if (!ok) return lt_oom(e, at);
    return 1;
}

static int binop(ev *e, const lt_node *at, int op, lt_val a, lt_val b, lt_val *out) {
    int64_t x, y, r;
    static const char *const names[] = {
        [OP_ADD] = "+",       [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
        [OP_FLOORDIV] = "//", [OP_MOD] = "%", [OP_POW] = "**"};
    if (op == OP_TILDE) return lt_concat_str(e, at, a, b, out);
    int ints = as_i64(a, &x) && as_i64(b, &y);
    if (!ints && !(is_numv(a) && is_numv(b))) {
        if (op == OP_ADD && a.t == LT_STR && b.t == LT_STR) {
            size_t n;
            if (!lm_add_size(a.u.s->len, b.u.s->len, &n)) return lt_oom(e, at);
            lt_str *s = lt_arena_alloc(&e->ar, sizeof(lt_str) + n + 1);
            if (!s) return lt_oom(e, at);
            memcpy(s->data, a.u.s->data, a.u.s->len);
            memcpy(s->data + a.u.s->len, b.u.s->data, b.u.s->len);
            s->len = n;
            s->data[n] = '\0';
            *out = lt_str_val(s);
            return 1;
        }
        if (op == OP_ADD && a.t == LT_LIST && b.t == LT_LIST && a.tuple == b.tuple) {
            lt_list *l = lt_list_new(&e->ar, a.u.l->n + b.u.l->n);
            if (!l) return lt_oom(e, at);
            lt_vcopy(l->items, a.u.l->items, a.u.l->n);
            lt_vcopy(l->items + a.u.l->n, b.u.l->items, b.u.l->n);
            l->n = a.u.l->n + b.u.l->n;
            out->t = LT_LIST;
            out->tuple = a.tuple;
            out->u.l = l;
            return 1;
        }
        if (op == OP_MUL) {
            if ((a.t == LT_STR || a.t == LT_LIST) && as_i64(b, &y)) return repeat(e, at, a, y, out);
            if ((b.t == LT_STR || b.t == LT_LIST) && as_i64(a, &x)) return repeat(e, at, b, x, out);
        }
        return type_err(
            e, at, op < (int)(sizeof names / sizeof names[0]) && names[op] ? names[op] : "?", a, b);
    }
    if (ints) {
        switch (op) {
        case OP_ADD:
            if (__builtin_add_overflow(x, y, &r)) return overflow(e, at);
            *out = lt_int(r);
            return 1;
        case OP_SUB:
            if (__builtin_sub_overflow(x, y, &r)) return overflow(e, at);
            *out = lt_int(r);
            return 1;
        case OP_MUL:
            if (__builtin_mul_overflow(x, y, &r)) return overflow(e, at);
            *out = lt_int(r);
            return 1;
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0)
                return lt_fail(e, at, LM_ERR_FORMAT, "integer division or modulo by zero"), 0;
            if (x == INT64_MIN && y == -1) return overflow(e, at);
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q--;
                m += y;
            }
            *out = lt_int(op == OP_MOD ? m : q);
            return 1;
        }
        case OP_POW:
            if (y >= 0) {
                int64_t acc = 1, base = x;
                uint64_t ey = (uint64_t)y;
                while (ey) {
                    if (ey & 1)
                        if (__builtin_mul_overflow(acc, base, &acc)) return overflow(e, at);
                    ey >>= 1;
                    if (ey && __builtin_mul_overflow(base, base, &base)) return overflow(e, at);
                }
                *out = lt_int(acc);
                return 1;
            }
            break; /* negative exponent: float */
        default: break;
        }
    }
    double fa = as_f(a), fb = as_f(b);
    switch (op) {
    case OP_ADD: *out = lt_float(fa + fb); return 1;
    case OP_SUB: *out = lt_float(fa - fb); return 1;
    case OP_MUL: *out = lt_float(fa * fb); return 1;
    case OP_DIV:
        if (fb == 0) return lt_fail(e, at, LM_ERR_FORMAT, "division by zero"), 0;
        *out = lt_float(fa / fb);
        return 1;
    case OP_FLOORDIV:
        if (fb == 0) return lt_fail(e, at, LM_ERR_FORMAT, "float floor division by zero"), 0;
        *out = lt_float(floor(fa / fb));
        return 1;
    case OP_MOD: {
        if (fb == 0) return lt_fail(e, at, LM_ERR_FORMAT, "float modulo by zero"), 0;
        double m = fmod(fa, fb);
        if (m != 0 && ((m < 0) != (fb < 0))) m += fb;
        *out = lt_float(m);
        return 1;
    }
    case OP_POW:
        if (fa == 0 && fb < 0)
            return lt_fail(e, at, LM_ERR_FORMAT, "0.0 cannot be raised to a negative power"), 0;
        *out = lt_float(pow(fa, fb));
        return 1;
    }
    return type_err(e, at, "?", a, b);
}

/* Python ordering: returns 1 and *c (<0, 0, >0), or 0 with an error. */
int lt_compare(ev *e, const lt_node *at, lt_val a, lt_val b, int *c, int depth) {
    if (depth <= 0) return lt_fail(e, at, LM_ERR_FORMAT, "values nested too deeply to compare"), 0;
    if (is_numv(a) && is_numv(b)) {
        int64_t x, y;
        if (as_i64(a, &x) && as_i64(b, &y))
            *c = (x > y) - (x < y);
        else {
            double fa = as_f(a), fb = as_f(b);
            *c = (fa > fb) - (fa < fb);
        }
        return 1;
    }
    if (a.t == LT_STR && b.t == LT_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->data, b.u.s->data, n);
        *c = r ? (r > 0) - (r < 0) : (a.u.s->len > b.u.s->len) - (a.u.s->len < b.u.s->len);
        return 1;
    }
    if (a.t == LT_LIST && b.t == LT_LIST && a.tuple == b.tuple) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (lt_equal(a.u.l->items[i], b.u.l->items[i], LT_VALUE_MAX_DEPTH)) continue;
            return lt_compare(e, at, a.u.l->items[i], b.u.l->items[i], c, depth - 1);
        }
        *c = (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
        return 1;
    }
    if (a.t == LT_UNDEF) return lt_undef_fail(e, at, a);
    if (b.t == LT_UNDEF) return lt_undef_fail(e, at, b);
    lt_fail(e, at, LM_ERR_FORMAT, "'<' not supported between instances of '%s' and '%s'",
            lt_type_name(a), lt_type_name(b));
    return 0;
}

int lt_contains(ev *e, const lt_node *at, lt_val container, lt_val item, int *res) {
    switch (container.t) {
    case LT_STR:
        if (item.t != LT_STR) {
            lt_fail(e, at, LM_ERR_FORMAT, "'in <string>' requires string as left operand, not %s",
                    lt_type_name(item));
            return 0;
        }
        *res = item.u.s->len == 0 || memmem(container.u.s->data, container.u.s->len, item.u.s->data,
                                            item.u.s->len) != NULL;
        return lt_step(e, at, container.u.s->len / 256);
    case LT_LIST:
        *res = 0;
        for (size_t i = 0; i < container.u.l->n; i++)
            if (lt_equal(container.u.l->items[i], item, LT_VALUE_MAX_DEPTH)) {
                *res = 1;
                break;
            }
        return lt_step(e, at, container.u.l->n / 16);
    case LT_DICT:
    case LT_NS:
        *res = lt_dict_get(container.u.d, item) != NULL;
        return lt_step(e, at, container.u.d->n / 16);
    case LT_UNDEF: *res = 0; return 1; /* iterates as empty */
    default:
        lt_fail(e, at, LM_ERR_FORMAT, "argument of type '%s' is not iterable",
                lt_type_name(container));
        return 0;
    }
}

/* Items to iterate: lists as is, dict keys, string characters, undefined as empty. */
int lt_iterable(ev *e, const lt_node *at, lt_val v, lt_list **out) {
    static lt_list empty;
    switch (v.t) {
    case LT_LIST: *out = v.u.l; return 1;
    case LT_UNDEF: *out = &empty; return 1;
    case LT_DICT:
    case LT_NS: {
        lt_list *l = lt_list_new(&e->ar, v.u.d->n);
        if (!l) return lt_oom(e, at);
        lt_vcopy(l->items, v.u.d->keys, v.u.d->n);
        l->n = v.u.d->n;
        *out = l;
        return 1;
    }
    case LT_STR: {
        lt_str *s = v.u.s;
        /* one item per character as the loop below cuts them: a lead byte with its
         * continuation bytes, and a stray continuation byte at the start on its own (so the
         * count must come from the same rule, not from lt_utf8_count) */
        size_t n_items = 0;
        for (size_t i = 0; i < s->len; i++)
            if (i == 0 || ((unsigned char)s->data[i] & 0xC0) != 0x80) n_items++;
        lt_list *l = lt_list_new(&e->ar, n_items);
        if (!l) return lt_oom(e, at);
        for (size_t i = 0; i < s->len;) {
            size_t j = i + 1;
            while (j < s->len && ((unsigned char)s->data[j] & 0xC0) == 0x80)
                j++;
            if (!lt_str_mk(&e->ar, s->data + i, j - i, &l->items[l->n])) return lt_oom(e, at);
            l->n++;
            i = j;
        }
        *out = l;
        return 1;
    }
    default:
        lt_fail(e, at, LM_ERR_FORMAT, "'%s' object is not iterable", lt_type_name(v));
        return 0;
    }
}

/* ---- expressions ---------------------------------------------------------------------- */

static int eval_args(ev *e, const lt_node *x, lt_args *a) {
    memset(a, 0, sizeof *a);
    if (x->nkids > LT_MAX_ARGS || x->nkids2 > LT_MAX_ARGS)
        return lt_fail(e, x, LM_ERR_FORMAT, "too many arguments"), 0;
    for (size_t i = 0; i < x->nkids; i++)
        if (!lt_eval(e, x->kids[i], &a->pos[i])) return 0;
    a->npos = x->nkids;
    for (size_t i = 0; i < x->nkids2; i++) {
        if (!lt_eval(e, x->kids2[i], &a->kwv[i])) return 0;
        a->kwn[i] = x->names[i];
        a->kwl[i] = x->name_lens[i];
    }
    a->nkw = x->nkids2;
    return 1;
}

int lt_call_macro(ev *e, const lt_node *at, const lt_macro *m, const lt_args *a, lt_val *out) {
    const lt_node *mn = m->node;
    if (e->depth >= e->max_depth) {
        lt_fail(e, at, LM_ERR_NOMEM, "recursion depth limit exceeded (%d nested macro calls)",
                e->max_depth);
        return 0;
    }
    lt_frame *f = lt_frame_new(e, mn->kind == N_CALLBLOCK ? m->caller_frame : e->root);
    if (!f) return lt_oom(e, at);
    if (a->npos > mn->nnames)
        return lt_fail(e, at, LM_ERR_FORMAT, "macro takes %zu positional arguments, %zu given",
                       mn->nnames, a->npos),
               0;
    lt_frame *saved = e->frame;
    e->frame = f;
    int ok = 1;
    for (size_t i = 0; ok && i < mn->nnames; i++) {
        lt_val v = lt_undef(mn->names[i]);
        int have = 0;
        if (i < a->npos) {
            v = a->pos[i];
            have = 1;
        }
        for (size_t k = 0; k < a->nkw; k++)
            if (a->kwl[k] == mn->name_lens[i] && memcmp(a->kwn[k], mn->names[i], a->kwl[k]) == 0) {
                v = a->kwv[k];
                have = 1;
            }
        if (!have && mn->kids2 && mn->kids2[i]) ok = lt_eval(e, mn->kids2[i], &v);
        if (!have && v.t == LT_UNDEF) v.u.uname = name_cstr(e, mn->names[i], mn->name_lens[i]);
        if (ok && !lt_frame_set(e, f, mn->names[i], mn->name_lens[i], v)) ok = lt_oom(e, at);
    }
    for (size_t k = 0; ok && k < a->nkw; k++) {
        int known = 0;
        for (size_t i = 0; i < mn->nnames; i++)
            if (a->kwl[k] == mn->name_lens[i] && memcmp(a->kwn[k], mn->names[i], a->kwl[k]) == 0)
                known = 1;
        if (!known && !(a->kwl[k] == 6 && memcmp(a->kwn[k], "caller", 6) == 0)) {
            lt_fail(e, at, LM_ERR_FORMAT, "macro has no parameter named '%.*s'", (int)a->kwl[k],
                    a->kwn[k]);
            ok = 0;
        } else if (!known && !lt_frame_set(e, f, "caller", 6, a->kwv[k])) {
            ok = lt_oom(e, at);
        }
    }
    lt_buf *saved_out = e->out, buf = {0};
    buf.limit = e->max_output;
    if (ok) {
        e->out = &buf;
        e->depth++;
        int r = lt_exec_body(e, mn->kids, mn->nkids);
        e->depth--;
        e->out = saved_out;
        if (r < 0) ok = 0;
    }
    e->frame = saved;
    if (ok) ok = lt_str_mk(&e->ar, buf.p ? buf.p : "", buf.n, out) || lt_oom(e, at);
    lt_buf_free(&buf);
    return ok;
}

static int eval_call(ev *e, const lt_node *x, lt_val *out) {
    lt_val fn;
    lt_args a;
    if (!lt_eval(e, x->a, &fn)) return 0;
    if (!eval_args(e, x, &a)) return 0;
    switch (fn.t) {
    case LT_MACRO: return lt_call_macro(e, x, fn.u.m, &a, out);
    case LT_FUNC: return lt_call_global(e, x, fn.id, &a, out);
    case LT_METHOD: return lt_call_method(e, x, fn.id, fn.u.meth->self, &a, out);
    case LT_UNDEF: return lt_undef_fail(e, x, fn);
    default:
        lt_fail(e, x, LM_ERR_FORMAT, "'%s' object is not callable", lt_type_name(fn));
        return 0;
    }
}

int lt_eval(ev *e, const lt_node *x, lt_val *out) {
    if (e->failed) return 0;
    if (!lt_step(e, x, 1)) return 0;
    if (++e->rdepth > LT_EVAL_MAX_RECURSION) {
        lt_fail(e, x, LM_ERR_NOMEM, "expression nested too deeply");
        e->rdepth--;
        return 0;
    }
    int ok = 1;
    lt_val a, b, c;
    switch (x->kind) {
    case N_CONST: *out = x->lit; break;
    case N_NAME: ok = lookup_name(e, x, out); break;
    case N_LIST:
    case N_TUPLE: {
        lt_list *l = lt_list_new(&e->ar, x->nkids);
        if (!l) {
            ok = lt_oom(e, x);
            break;
        }
        for (size_t i = 0; ok && i < x->nkids; i++)
            ok = lt_eval(e, x->kids[i], &l->items[i]);
        l->n = x->nkids;
        lt_val v = {0};
        v.t = LT_LIST;
        v.tuple = x->kind == N_TUPLE;
        v.u.l = l;
        *out = v;
        break;
    }
    case N_DICT: {
        lt_dict *d = lt_dict_new(&e->ar, x->nkids);
        if (!d) {
            ok = lt_oom(e, x);
            break;
        }
        for (size_t i = 0; ok && i < x->nkids; i++) {
            /* each insert scans the keys so far: charge it */
            ok = lt_step(e, x, i / 64) && lt_eval(e, x->kids[i], &a) && lt_eval(e, x->kids2[i], &b);
            if (ok && (a.t == LT_LIST && !a.tuple))
                ok = (lt_fail(e, x, LM_ERR_FORMAT, "unhashable type: 'list'"), 0);
            if (ok && (a.t == LT_DICT || a.t == LT_NS))
                ok = (lt_fail(e, x, LM_ERR_FORMAT, "unhashable type: 'dict'"), 0);
            if (ok && !lt_dict_set(&e->ar, d, a, b)) ok = lt_oom(e, x);
        }
        lt_val v = {0};
        v.t = LT_DICT;
        v.u.d = d;
        *out = v;
        break;
    }
    case N_GETATTR:
        ok = lt_eval(e, x->a, &a) && lt_getattr(e, x, a, x->name, x->name_len, out);
        break;
    case N_GETITEM:
        ok = lt_eval(e, x->a, &a) && lt_eval(e, x->b, &b) && lt_getitem(e, x, a, b, out);
        break;
    case N_SLICE: {
        lt_val s0 = lt_none(), s1 = lt_none(), s2 = lt_none();
        ok = lt_eval(e, x->a, &a) && (!x->b || lt_eval(e, x->b, &s0)) &&
             (!x->c || lt_eval(e, x->c, &s1)) && (!x->d || lt_eval(e, x->d, &s2)) &&
             do_slice(e, x, a, s0, s1, s2, out);
        break;
    }
    case N_CALL: ok = eval_call(e, x, out); break;
    case N_FILTER: {
        lt_args args;
        ok = lt_eval(e, x->a, &a) && eval_args(e, x, &args) && lt_apply_filter(e, x, a, &args, out);
        break;
    }
    case N_TEST: {
        lt_args args;
        int r = 0;
        ok = lt_eval(e, x->a, &a) && eval_args(e, x, &args) && lt_apply_test(e, x, a, &args, &r);
        if (ok) *out = lt_bool(x->op ? !r : r);
        break;
    }
    case N_UNARY:
        ok = lt_eval(e, x->a, &a);
        if (!ok) break;
        if (x->op == OP_NOT) {
            *out = lt_bool(!lt_truthy(a));
        } else if (a.t == LT_INT || a.t == LT_BOOL) {
            int64_t v = a.t == LT_INT ? a.u.i : a.u.b;
            if (x->op == OP_NEG && v == INT64_MIN)
                ok = overflow(e, x);
            else
                *out = lt_int(x->op == OP_NEG ? -v : v);
        } else if (a.t == LT_FLOAT) {
            *out = lt_float(x->op == OP_NEG ? -a.u.f : a.u.f);
        } else if (a.t == LT_UNDEF) {
            ok = lt_undef_fail(e, x, a);
        } else {
            ok = (lt_fail(e, x, LM_ERR_FORMAT, "bad operand type for unary %s: '%s'",
                          x->op == OP_NEG ? "-" : "+", lt_type_name(a)),
                  0);
        }
        break;
    case N_BINARY:
        ok = lt_eval(e, x->a, &a) && lt_eval(e, x->b, &b) && binop(e, x, x->op, a, b, out);
        break;
    case N_AND:
        ok = lt_eval(e, x->a, &a);
        if (ok) {
            if (!lt_truthy(a))
                *out = a;
            else
                ok = lt_eval(e, x->b, out);
        }
        break;
    case N_OR:
        ok = lt_eval(e, x->a, &a);
        if (ok) {
            if (lt_truthy(a))
                *out = a;
            else
                ok = lt_eval(e, x->b, out);
        }
        break;
    case N_COMPARE: {
        ok = lt_eval(e, x->a, &a);
        int res = 1;
        for (size_t i = 0; ok && res && i < x->nkids; i++) {
            ok = lt_eval(e, x->kids[i], &b);
            if (!ok) break;
            int cmp = 0, in = 0;
            switch (x->ops[i]) {
            case OP_EQ: res = lt_equal(a, b, LT_VALUE_MAX_DEPTH); break;
            case OP_NE: res = !lt_equal(a, b, LT_VALUE_MAX_DEPTH); break;
            case OP_IN:
                ok = lt_contains(e, x, b, a, &in);
                res = in;
                break;
            case OP_NOTIN:
                ok = lt_contains(e, x, b, a, &in);
                res = !in;
                break;
            default:
                ok = lt_compare(e, x, a, b, &cmp, LT_VALUE_MAX_DEPTH);
                res = x->ops[i] == OP_LT   ? cmp < 0
                      : x->ops[i] == OP_LE ? cmp <= 0
                      : x->ops[i] == OP_GT ? cmp > 0
                                           : cmp >= 0;
                break;
            }
            a = b;
        }
        if (ok) *out = lt_bool(res);
        break;
    }
    case N_COND:
        ok = lt_eval(e, x->b, &c);
        if (!ok) break;
        if (lt_truthy(c))
            ok = lt_eval(e, x->a, out);
        else if (x->c)
            ok = lt_eval(e, x->c, out);
        else
            *out = lt_undef("else");
        break;
    default: ok = (lt_fail(e, x, LM_ERR_INTERNAL, "bad expression node %d", x->kind), 0); break;
    }
    e->rdepth--;
    return ok && !e->failed;
}

/* ---- statements ----------------------------------------------------------------------- */

static int emit_val(ev *e, const lt_node *at, lt_val v) {
    if (!lt_to_str(e->out, v, LT_VALUE_MAX_DEPTH)) {
        if (e->out->over == 2) return lt_oom(e, at);
        if (e->out->over) {
            lt_fail(e, at, LM_ERR_NOMEM, "output limit exceeded (%zu bytes)", e->max_output);
            return 0;
        }
        lt_fail(e, at, LM_ERR_FORMAT, "value nested too deeply to print");
        return 0;
    }
    return 1;
}

static int assign(ev *e, const lt_node *target, lt_val v) {
    if (target->kind == N_NAME) {
        if (!lt_frame_set(e, e->frame, target->name, target->name_len, v)) return lt_oom(e, target);
        return 1;
    }
    if (target->kind == N_GETATTR) {
        lt_val ns;
        if (!lt_eval(e, target->a, &ns)) return 0;
        if (ns.t != LT_NS) {
            lt_fail(e, target, LM_ERR_FORMAT, "can only assign attributes of a namespace, not '%s'",
                    lt_type_name(ns));
            return 0;
        }
        lt_val k;
        if (!lt_str_mk(&e->ar, target->name, target->name_len, &k)) return lt_oom(e, target);
        if (!lt_dict_set(&e->ar, ns.u.d, k, v)) return lt_oom(e, target);
        return 1;
    }
    /* tuple unpacking */
    lt_list *items;
    if (!lt_iterable(e, target, v, &items)) return 0;
    if (items->n != target->nkids) {
        lt_fail(e, target, LM_ERR_FORMAT, "cannot unpack %zu values into %zu names", items->n,
                target->nkids);
        return 0;
    }
    for (size_t i = 0; i < target->nkids; i++)
        if (!assign(e, target->kids[i], items->items[i])) return 0;
    return 1;
}

static int capture(ev *e, const lt_node *x, lt_val *out) {
    lt_buf *saved = e->out, buf = {0};
    buf.limit = e->max_output;
    e->out = &buf;
    int r = lt_exec_body(e, x->kids, x->nkids);
    e->out = saved;
    int ok = r >= 0 && (lt_str_mk(&e->ar, buf.p ? buf.p : "", buf.n, out) || lt_oom(e, x));
    lt_buf_free(&buf);
    return ok;
}

/* Applies a filter chain whose innermost operand is NULL to v. */
static int apply_chain(ev *e, const lt_node *f, lt_val v, lt_val *out) {
    if (!f) {
        *out = v;
        return 1;
    }
    lt_val inner;
    lt_args args;
    if (!apply_chain(e, f->a, v, &inner) || !eval_args(e, f, &args)) return 0;
    return lt_apply_filter(e, f, inner, &args, out);
}

static int exec_for(ev *e, const lt_node *x) {
    lt_val seqv;
    lt_list *src;
    if (!lt_eval(e, x->b, &seqv)) return -1;
    if (seqv.t == LT_NONE) {
        lt_fail(e, x->b, LM_ERR_FORMAT, "'NoneType' object is not iterable");
        return -1;
    }
    if (!lt_iterable(e, x->b, seqv, &src)) return -1;
    lt_frame *f = lt_frame_new(e, e->frame);
    if (!f) return lt_oom(e, x), -1;
    lt_frame *saved = e->frame;
    e->frame = f;
    const lt_list *items = src;
    int rc = 0;
    if (x->c) { /* {% for a in b if cond %}: filter first; loop.* counts the kept items */
        lt_list *kept = lt_list_new(&e->ar, src->n);
        if (!kept) {
            e->frame = saved;
            return lt_oom(e, x), -1;
        }
        for (size_t i = 0; i < src->n; i++) {
            f->n = 0;
            lt_val cv;
            if (!assign(e, x->a, src->items[i]) || !lt_eval(e, x->c, &cv)) {
                e->frame = saved;
                return -1;
            }
            if (lt_truthy(cv)) kept->items[kept->n++] = src->items[i];
        }
        items = kept;
    }
    lt_loop *lp = lt_arena_alloc(&e->ar, sizeof *lp);
    if (!lp) {
        e->frame = saved;
        return lt_oom(e, x), -1;
    }
    lp->n = (int64_t)items->n;
    lp->items = items;
    lt_val loopv = {0};
    loopv.t = LT_LOOP;
    loopv.u.loop = lp;
    for (size_t i = 0; i < items->n; i++) {
        if (!lt_step(e, x, 1)) {
            rc = -1;
            break;
        }
        f->n = 0; /* a fresh scope per iteration, as jinja2 has it */
        lp->i = (int64_t)i;
        if (!lt_frame_set(e, f, "loop", 4, loopv)) {
            rc = (lt_oom(e, x), -1);
            break;
        }
        if (!assign(e, x->a, items->items[i])) {
            rc = -1;
            break;
        }
        int r = lt_exec_body(e, x->kids, x->nkids);
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r == 1) break; /* break */
    }
    e->frame = saved;
    if (rc == 0 && items->n == 0 && x->nkids2) {
        int r = lt_exec_body(e, x->kids2, x->nkids2);
        if (r < 0)
            rc = -1;
        else
            rc = r;
    }
    return rc;
}

/* Returns 0 normally, 1 break, 2 continue, -1 error. */
static int exec_stmt(ev *e, const lt_node *x) {
    if (e->failed) return -1;
    if (!lt_step(e, x, 1)) return -1;
    lt_val v;
    switch (x->kind) {
    case N_TEXT:
        if (!lt_buf_put(e->out, x->name, x->name_len)) {
            if (e->out->over == 2) return lt_oom(e, x), -1;
            lt_fail(e, x, LM_ERR_NOMEM, "output limit exceeded (%zu bytes)", e->max_output);
            return -1;
        }
        return 0;
    case N_OUTPUT:
        if (!lt_eval(e, x->a, &v)) return -1;
        return emit_val(e, x, v) ? 0 : -1;
    case N_IF:
        if (!lt_eval(e, x->a, &v)) return -1;
        if (lt_truthy(v)) return lt_exec_body(e, x->kids, x->nkids);
        return lt_exec_body(e, x->kids2, x->nkids2);
    case N_FOR: return exec_for(e, x);
    case N_SET:
        if (!lt_eval(e, x->b, &v)) return -1;
        return assign(e, x->a, v) ? 0 : -1;
    case N_SETBLOCK: {
        lt_val s;
        if (!capture(e, x, &s) || !apply_chain(e, x->c, s, &v)) return -1;
        return assign(e, x->a, v) ? 0 : -1;
    }
    case N_FILTERBLOCK: {
        lt_val s;
        if (!capture(e, x, &s) || !apply_chain(e, x->c, s, &v)) return -1;
        return emit_val(e, x, v) ? 0 : -1;
    }
    case N_MACRO: {
        lt_macro *m = lt_arena_alloc(&e->ar, sizeof *m);
        if (!m) return lt_oom(e, x), -1;
        m->node = x;
        lt_val mv = {0};
        mv.t = LT_MACRO;
        mv.u.m = m;
        if (!lt_frame_set(e, e->frame, x->name, x->name_len, mv)) return lt_oom(e, x), -1;
        return 0;
    }
    case N_CALLBLOCK: {
        /* the body becomes `caller`, passed to the called macro */
        const lt_node *call = x->a;
        lt_val fn;
        lt_args a;
        if (!lt_eval(e, call->a, &fn) || !eval_args(e, call, &a)) return -1;
        if (fn.t != LT_MACRO) {
            lt_fail(e, x, LM_ERR_FORMAT, "call block needs a macro, got '%s'", lt_type_name(fn));
            return -1;
        }
        lt_macro *cm = lt_arena_alloc(&e->ar, sizeof *cm);
        if (!cm || a.nkw >= LT_MAX_ARGS) return lt_oom(e, x), -1;
        cm->node = x;
        cm->caller_frame = e->frame;
        lt_val cv = {0};
        cv.t = LT_MACRO;
        cv.u.m = cm;
        a.kwn[a.nkw] = "caller";
        a.kwl[a.nkw] = 6;
        a.kwv[a.nkw] = cv;
        a.nkw++;
        if (!lt_call_macro(e, x, fn.u.m, &a, &v)) return -1;
        return emit_val(e, x, v) ? 0 : -1;
    }
    case N_BREAK: return 1;
    case N_CONTINUE: return 2;
    case N_BODY: return lt_exec_body(e, x->kids, x->nkids);
    default: lt_fail(e, x, LM_ERR_INTERNAL, "bad statement node %d", x->kind); return -1;
    }
}

int lt_exec_body(ev *e, lt_node *const *body, size_t n) {
    if (++e->rdepth > LT_EVAL_MAX_RECURSION) {
        lt_fail(e, n ? body[0] : NULL, LM_ERR_NOMEM, "blocks nested too deeply");
        e->rdepth--;
        return -1;
    }
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        r = exec_stmt(e, body[i]);
        if (r != 0) break;
    }
    e->rdepth--;
    return r;
}

/* ---- context and API ------------------------------------------------------------------ */

static int from_json(ev *e, const json_t *j, lt_val *out, int depth) {
    if (depth <= 0) return lt_fail(e, NULL, LM_ERR_INVALID_ARG, "context nested too deeply"), 0;
    switch (json_typeof(j)) {
    case JSON_NULL: *out = lt_none(); return 1;
    case JSON_TRUE: *out = lt_bool(1); return 1;
    case JSON_FALSE: *out = lt_bool(0); return 1;
    case JSON_INTEGER: *out = lt_int((int64_t)json_integer_value(j)); return 1;
    case JSON_REAL: *out = lt_float(json_real_value(j)); return 1;
    case JSON_STRING:
        if (!lt_str_mk(&e->ar, json_string_value(j), json_string_length(j), out))
            return lt_oom(e, NULL);
        return 1;
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        lt_list *l = lt_list_new(&e->ar, n);
        if (!l) return lt_oom(e, NULL);
        for (size_t i = 0; i < n; i++)
            if (!from_json(e, json_array_get(j, i), &l->items[i], depth - 1)) return 0;
        l->n = n;
        lt_val v = {0};
        v.t = LT_LIST;
        v.u.l = l;
        *out = v;
        return 1;
    }
    case JSON_OBJECT: {
        lt_dict *d = lt_dict_new(&e->ar, json_object_size(j));
        if (!d) return lt_oom(e, NULL);
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)j, k, val) {
            lt_val kv, vv;
            if (!lt_str_mk(&e->ar, k, strlen(k), &kv)) return lt_oom(e, NULL);
            if (!from_json(e, val, &vv, depth - 1)) return 0;
            /* keys are unique in a jansson object: append without a lookup */
            d->keys[d->n] = kv;
            d->vals[d->n] = vv;
            d->n++;
        }
        lt_val v = {0};
        v.t = LT_DICT;
        v.u.d = d;
        *out = v;
        return 1;
    }
    }
    return 0;
}

void lm_template_default_limits(lm_template_limits *lim) {
    lim->max_output = LM_TEMPLATE_DEFAULT_MAX_OUTPUT;
    lim->max_steps = LM_TEMPLATE_DEFAULT_MAX_STEPS;
    lim->max_depth = LM_TEMPLATE_DEFAULT_MAX_DEPTH;
    lim->max_memory = LM_TEMPLATE_DEFAULT_MAX_MEMORY;
}

lm_status lm_template_compile(const char *src, size_t len, lm_template **out, lm_err *err) {
    if (!out || (!src && len))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "template: NULL argument");
    *out = NULL;
    lm_template *t = lm_calloc(1, sizeof *t);
    if (!t) return lm_err_set(err, LM_ERR_NOMEM, "template: out of memory");
    lt_arena_init(&t->arena, 0);
    lt_token *toks = NULL;
    size_t ntoks = 0;
    lm_status st = lt_lex(&t->arena, src ? src : "", len, &toks, &ntoks, err);
    if (st == LM_OK) st = lt_parse(&t->arena, toks, ntoks, &t->root, err);
    lm_free(toks);
    if (st != LM_OK) {
        lm_template_free(t);
        return st;
    }
    *out = t;
    return LM_OK;
}

lm_status lm_template_render(const lm_template *t, const json_t *context,
                             const lm_template_limits *lim, char **out, size_t *out_len,
                             lm_err *err) {
    if (!t || !out) return lm_err_set(err, LM_ERR_INVALID_ARG, "template: NULL argument");
    *out = NULL;
    if (out_len) *out_len = 0;
    if (context && !json_is_object(context))
        return lm_err_set(err, LM_ERR_INVALID_ARG, "template: context must be a JSON object");
    lm_template_limits L;
    lm_template_default_limits(&L);
    if (lim) L = *lim;
    ev e;
    memset(&e, 0, sizeof e);
    lt_arena_init(&e.ar, L.max_memory ? L.max_memory : LM_TEMPLATE_DEFAULT_MAX_MEMORY);
    e.err = err;
    e.max_steps = L.max_steps ? L.max_steps : LM_TEMPLATE_DEFAULT_MAX_STEPS;
    e.max_depth = L.max_depth > 0 ? L.max_depth : LM_TEMPLATE_DEFAULT_MAX_DEPTH;
    e.max_output = L.max_output ? L.max_output : LM_TEMPLATE_DEFAULT_MAX_OUTPUT;
    lt_buf buf = {0};
    buf.limit = e.max_output;
    e.out = &buf;
    lm_status st = LM_OK;
    e.globals = lt_frame_new(&e, NULL);
    e.root = e.globals ? lt_frame_new(&e, e.globals) : NULL;
    if (!e.root) {
        st = lm_err_set(err, LM_ERR_NOMEM, "template: out of memory");
        goto done;
    }
    if (context) {
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)context, k, val) {
            lt_val v;
            if (!from_json(&e, val, &v, LT_VALUE_MAX_DEPTH)) goto fail;
            if (!lt_frame_set(&e, e.globals, k, strlen(k), v)) {
                lt_oom(&e, NULL);
                goto fail;
            }
        }
    }
    e.frame = e.root;
    if (lt_exec_body(&e, t->root->kids, t->root->nkids) < 0 || e.failed) goto fail;
    if (!buf.p && !lt_buf_put(&buf, "", 0)) {
        st = lm_err_set(err, LM_ERR_NOMEM, "template: out of memory");
        goto done;
    }
    *out = buf.p;
    if (out_len) *out_len = buf.n;
    buf.p = NULL;
    goto done;
fail:
    st = e.st != LM_OK ? e.st : LM_ERR_FORMAT;
    if (err && err->code == LM_OK) lm_err_set(err, st, "template: render failed");
done:
    lt_buf_free(&buf);
    lt_arena_free(&e.ar);
    return st;
}

void lm_template_free(lm_template *t) {
    if (!t) return;
    lt_arena_free(&t->arena);
    lm_free(t);
}
