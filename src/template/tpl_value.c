/*
 * tpl_value.c — template values: the render arena, strings, lists, dicts, Python-style str()
 * and repr(), and transformers' tojson (json.dumps with ensure_ascii=False).
 *
 * Printing follows CPython exactly where real templates can observe it: floats print as
 * repr() does (shortest round-trip digits, exponent form below 1e-4 and from 1e16), None,
 * True and False are capitalised, strings inside containers are quoted as repr() quotes them.
 * Every recursive walk takes a depth and stops at LT_VALUE_MAX_DEPTH: a template can build a
 * list nested a million deep in a loop, and printing it must not overflow the C stack.
 */
#include "template/tpl.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---------------------------------------------------------------------------- */

struct lt_arena_block {
    lt_arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

#define LT_BLOCK_MIN 16384

void lt_arena_init(lt_arena *a, size_t cap) {
    a->head = NULL;
    a->used_total = 0;
    a->cap = cap;
    a->cap_hit = 0;
}

void *lt_arena_alloc(lt_arena *a, size_t n) {
    size_t need;
    if (!lm_add_size(n, 15, &need)) return NULL;
    need &= ~(size_t)15;
    if (need == 0) need = 16;
    lt_arena_block *b = a->head;
    if (!b || b->size - b->used < need) {
        size_t sz = need > LT_BLOCK_MIN ? need : LT_BLOCK_MIN, tot;
        if (!lm_add_size(sz, sizeof(lt_arena_block), &tot)) return NULL;
        size_t after;
        if (!lm_add_size(a->used_total, tot, &after)) return NULL;
        if (a->cap && after > a->cap) {
            a->cap_hit = 1;
            return NULL;
        }
        b = lm_malloc(tot);
        if (!b) return NULL;
        b->used = 0;
        b->size = sz;
        /* A big one-off block goes behind the current one so the current one keeps serving
         * small allocations. */
        if (a->head && sz > LT_BLOCK_MIN) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
        a->used_total = after;
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, n);
    return p;
}

void lt_arena_free(lt_arena *a) {
    lt_arena_block *b = a->head;
    while (b) {
        lt_arena_block *nx = b->next;
        lm_free(b);
        b = nx;
    }
    a->head = NULL;
    a->used_total = 0;
}

/* ---- buffer --------------------------------------------------------------------------- */

int lt_buf_put(lt_buf *b, const char *s, size_t n) {
    if (b->over) return 0;
    size_t need;
    if (!lm_add_size(b->n, n, &need) || !lm_add_size(need, 1, &need) ||
        (b->limit && need - 1 > b->limit)) {
        b->over = 1;
        return 0;
    }
    if (need > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < need) {
            if (nc > SIZE_MAX / 2) {
                nc = need;
                break;
            }
            nc *= 2;
        }
        char *np = lm_realloc(b->p, nc);
        if (!np) {
            b->over = 2;
            return 0;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 1;
}

int lt_buf_putc(lt_buf *b, char c) {
    return lt_buf_put(b, &c, 1);
}

void lt_buf_free(lt_buf *b) {
    lm_free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- strings, lists, dicts ------------------------------------------------------------ */

lt_str *lt_str_new(lt_arena *a, const char *s, size_t n) {
    size_t sz;
    if (!lm_add_size(sizeof(lt_str), n, &sz) || !lm_add_size(sz, 1, &sz)) return NULL;
    lt_str *r = lt_arena_alloc(a, sz);
    if (!r) return NULL;
    r->len = n;
    if (n) memcpy(r->data, s, n);
    r->data[n] = '\0';
    return r;
}

lt_val lt_str_val(lt_str *s) {
    lt_val v = {0};
    v.t = LT_STR;
    v.u.s = s;
    return v;
}

int lt_str_mk(lt_arena *a, const char *s, size_t n, lt_val *out) {
    lt_str *r = lt_str_new(a, s, n);
    if (!r) return 0;
    *out = lt_str_val(r);
    return 1;
}

lt_list *lt_list_new(lt_arena *a, size_t cap) {
    lt_list *l = lt_arena_alloc(a, sizeof *l);
    if (!l) return NULL;
    if (cap == 0) cap = 1; /* items is never NULL: no pointer arithmetic on NULL */
    {
        size_t sz;
        if (!lm_mul_size(cap, sizeof(lt_val), &sz)) return NULL;
        l->items = lt_arena_alloc(a, sz);
        if (!l->items) return NULL;
        l->cap = cap;
    }
    return l;
}

int lt_list_push(lt_arena *a, lt_list *l, lt_val v) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4, sz;
        if (!lm_mul_size(nc, sizeof(lt_val), &sz)) return 0;
        lt_val *ni = lt_arena_alloc(a, sz);
        if (!ni) return 0;
        if (l->n) memcpy(ni, l->items, l->n * sizeof(lt_val));
        l->items = ni;
        l->cap = nc;
    }
    l->items[l->n++] = v;
    return 1;
}

lt_dict *lt_dict_new(lt_arena *a, size_t cap) {
    lt_dict *d = lt_arena_alloc(a, sizeof *d);
    if (!d) return NULL;
    if (cap == 0) cap = 1;
    {
        size_t sz;
        if (!lm_mul_size(cap, sizeof(lt_val), &sz)) return NULL;
        d->keys = lt_arena_alloc(a, sz);
        d->vals = lt_arena_alloc(a, sz);
        if (!d->keys || !d->vals) return NULL;
        d->cap = cap;
    }
    return d;
}

lt_val *lt_dict_get(const lt_dict *d, lt_val k) {
    if (k.t == LT_STR) return lt_dict_get_str(d, k.u.s->data, k.u.s->len);
    for (size_t i = 0; i < d->n; i++)
        if (lt_equal(d->keys[i], k, 4)) return &d->vals[i];
    return NULL;
}

lt_val *lt_dict_get_str(const lt_dict *d, const char *k, size_t klen) {
    for (size_t i = 0; i < d->n; i++) {
        const lt_val *kk = &d->keys[i];
        if (kk->t == LT_STR && kk->u.s->len == klen && memcmp(kk->u.s->data, k, klen) == 0)
            return &d->vals[i];
    }
    return NULL;
}

int lt_dict_set(lt_arena *a, lt_dict *d, lt_val k, lt_val v) {
    lt_val *slot = lt_dict_get(d, k);
    if (slot) {
        *slot = v;
        return 1;
    }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 4, sz;
        if (!lm_mul_size(nc, sizeof(lt_val), &sz)) return 0;
        lt_val *nk = lt_arena_alloc(a, sz), *nv = lt_arena_alloc(a, sz);
        if (!nk || !nv) return 0;
        if (d->n) {
            memcpy(nk, d->keys, d->n * sizeof(lt_val));
            memcpy(nv, d->vals, d->n * sizeof(lt_val));
        }
        d->keys = nk;
        d->vals = nv;
        d->cap = nc;
    }
    d->keys[d->n] = k;
    d->vals[d->n] = v;
    d->n++;
    return 1;
}

/* ---- truth, equality, names ----------------------------------------------------------- */

int lt_truthy(lt_val v) {
    switch (v.t) {
    case LT_UNDEF:
    case LT_NONE: return 0;
    case LT_BOOL: return v.u.b;
    case LT_INT: return v.u.i != 0;
    case LT_FLOAT: return v.u.f != 0.0;
    case LT_STR: return v.u.s->len != 0;
    case LT_LIST: return v.u.l->n != 0;
    case LT_DICT: return v.u.d->n != 0;
    default: return 1;
    }
}

static int is_num(lt_val v) {
    return v.t == LT_INT || v.t == LT_FLOAT || v.t == LT_BOOL;
}
static double num_f(lt_val v) {
    return v.t == LT_FLOAT ? v.u.f : v.t == LT_INT ? (double)v.u.i : (double)v.u.b;
}

int lt_equal(lt_val a, lt_val b, int depth) {
    if (depth <= 0) return 0;
    if (is_num(a) && is_num(b)) {
        if (a.t != LT_FLOAT && b.t != LT_FLOAT) {
            int64_t x = a.t == LT_INT ? a.u.i : a.u.b, y = b.t == LT_INT ? b.u.i : b.u.b;
            return x == y;
        }
        return num_f(a) == num_f(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case LT_UNDEF:
    case LT_NONE: return 1;
    case LT_STR:
        return a.u.s->len == b.u.s->len && memcmp(a.u.s->data, b.u.s->data, a.u.s->len) == 0;
    case LT_LIST:
        /* Python: a tuple never equals a list. */
        if (a.tuple != b.tuple || a.u.l->n != b.u.l->n) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!lt_equal(a.u.l->items[i], b.u.l->items[i], depth - 1)) return 0;
        return 1;
    case LT_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            lt_val *o = lt_dict_get(b.u.d, a.u.d->keys[i]);
            if (!o || !lt_equal(a.u.d->vals[i], *o, depth - 1)) return 0;
        }
        return 1;
    case LT_NS: return a.u.d == b.u.d;
    case LT_MACRO: return a.u.m == b.u.m;
    case LT_LOOP: return a.u.loop == b.u.loop;
    case LT_FUNC: return a.id == b.id;
    case LT_METHOD: return a.id == b.id && a.u.meth == b.u.meth;
    }
    return 0;
}

const char *lt_type_name(lt_val v) {
    switch (v.t) {
    case LT_UNDEF: return "Undefined";
    case LT_NONE: return "NoneType";
    case LT_BOOL: return "bool";
    case LT_INT: return "int";
    case LT_FLOAT: return "float";
    case LT_STR: return "str";
    case LT_LIST: return v.tuple ? "tuple" : "list";
    case LT_DICT: return "dict";
    case LT_NS: return "Namespace";
    case LT_MACRO: return "Macro";
    case LT_LOOP: return "LoopContext";
    case LT_METHOD: return "method";
    case LT_FUNC: return "function";
    }
    return "object";
}

size_t lt_utf8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

/* ---- float formatting ----------------------------------------------------------------- */

/* CPython's float repr: the shortest digit string that reads back to the same double, shown
 * positionally when the decimal exponent is in [-4, 16) and in exponent form otherwise. */
void lt_fmt_float(double f, char out[40]) {
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    if (prec > 17) prec = 17;
    /* tmp = [-]d.ddde[+-]XX */
    char digits[24];
    int nd = 0, neg = 0;
    const char *p = tmp;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 20) digits[nd++] = *p;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    char *o = out;
    if (neg) *o++ = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                *o++ = '0';
            for (int i = 0; i < nd; i++)
                *o++ = digits[i];
        } else {
            for (int i = 0; i <= exp10; i++)
                *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > exp10 + 1)
                for (int i = exp10 + 1; i < nd; i++)
                    *o++ = digits[i];
            else
                *o++ = '0';
        }
        *o = '\0';
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++)
                *o++ = digits[i];
        }
        snprintf(o, 12, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
}

/* ---- str() / repr() ------------------------------------------------------------------- */

static int put_s(lt_buf *b, const char *s) {
    return lt_buf_put(b, s, strlen(s));
}

static int repr_str(lt_buf *b, const char *s, size_t n) {
    /* repr() picks single quotes unless the text has ' and no ". */
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if (!lt_buf_putc(b, q)) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == (unsigned char)q || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            if (!lt_buf_put(b, esc, 2)) return 0;
        } else if (c == '\n') {
            if (!put_s(b, "\\n")) return 0;
        } else if (c == '\r') {
            if (!put_s(b, "\\r")) return 0;
        } else if (c == '\t') {
            if (!put_s(b, "\\t")) return 0;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            if (!put_s(b, esc)) return 0;
        } else if (!lt_buf_putc(b, (char)c)) {
            return 0;
        }
    }
    return lt_buf_putc(b, q);
}

int lt_repr(lt_buf *b, lt_val v, int depth) {
    if (depth <= 0) return 0;
    switch (v.t) {
    case LT_STR: return repr_str(b, v.u.s->data, v.u.s->len);
    case LT_UNDEF: return put_s(b, "Undefined"); /* jinja2 Undefined.__repr__ */
    case LT_LIST: {
        if (!lt_buf_putc(b, v.tuple ? '(' : '[')) return 0;
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i && !put_s(b, ", ")) return 0;
            if (!lt_repr(b, v.u.l->items[i], depth - 1)) return 0;
        }
        if (v.tuple && v.u.l->n == 1 && !lt_buf_putc(b, ',')) return 0;
        return lt_buf_putc(b, v.tuple ? ')' : ']');
    }
    case LT_DICT: {
        if (!lt_buf_putc(b, '{')) return 0;
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i && !put_s(b, ", ")) return 0;
            if (!lt_repr(b, v.u.d->keys[i], depth - 1) || !put_s(b, ": ") ||
                !lt_repr(b, v.u.d->vals[i], depth - 1))
                return 0;
        }
        return lt_buf_putc(b, '}');
    }
    default: return lt_to_str(b, v, depth);
    }
}

int lt_to_str(lt_buf *b, lt_val v, int depth) {
    char tmp[48];
    switch (v.t) {
    case LT_UNDEF: return 1;
    case LT_NONE: return put_s(b, "None");
    case LT_BOOL: return put_s(b, v.u.b ? "True" : "False");
    case LT_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); return put_s(b, tmp);
    case LT_FLOAT: lt_fmt_float(v.u.f, tmp); return put_s(b, tmp);
    case LT_STR: return lt_buf_put(b, v.u.s->data, v.u.s->len);
    case LT_LIST:
    case LT_DICT: return lt_repr(b, v, depth);
    case LT_NS: {
        lt_val d = v;
        d.t = LT_DICT;
        return put_s(b, "<Namespace ") && lt_repr(b, d, depth) && put_s(b, ">");
    }
    case LT_MACRO: return put_s(b, "<Macro>");
    case LT_LOOP: return put_s(b, "<LoopContext>");
    case LT_METHOD: return put_s(b, "<built-in method>");
    case LT_FUNC: return put_s(b, "<function>");
    }
    return 1;
}

/* ---- tojson --------------------------------------------------------------------------- */

static int json_str(lt_buf *b, const char *s, size_t n, int ensure_ascii) {
    if (!lt_buf_putc(b, '"')) return 0;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && !(ensure_ascii && c >= 0x7f)) continue;
        if (!lt_buf_put(b, s + run, i - run)) return 0;
        run = i + 1;
        char esc[16];
        switch (c) {
        case '"': strcpy(esc, "\\\""); break;
        case '\\': strcpy(esc, "\\\\"); break;
        case '\n': strcpy(esc, "\\n"); break;
        case '\r': strcpy(esc, "\\r"); break;
        case '\t': strcpy(esc, "\\t"); break;
        case '\b': strcpy(esc, "\\b"); break;
        case '\f': strcpy(esc, "\\f"); break;
        default:
            if (c < 0x80) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
            } else {
                /* ensure_ascii: decode one UTF-8 sequence; astral planes as surrogate pairs */
                uint32_t cp = 0;
                size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
                if (len == 1 || i + len > n) {
                    cp = 0xFFFD;
                    len = 1;
                } else {
                    cp = c & (0x3F >> (len - 1));
                    for (size_t k = 1; k < len; k++)
                        cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
                }
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                             0xDC00 + (v & 0x3FF));
                } else {
                    snprintf(esc, sizeof esc, "\\u%04x", cp);
                }
                i += len - 1;
                run = i + 1;
            }
            break;
        }
        if (!put_s(b, esc)) return 0;
    }
    if (!lt_buf_put(b, s + run, n - run)) return 0;
    return lt_buf_putc(b, '"');
}

static int json_nl(lt_buf *b, const lt_json_opts *o, int level) {
    if (!lt_buf_putc(b, '\n')) return 0;
    for (int i = 0; i < level; i++) {
        if (o->ind_str) {
            if (!lt_buf_put(b, o->ind_str, o->ind_len)) return 0;
        } else {
            for (int k = 0; k < o->indent; k++)
                if (!lt_buf_putc(b, ' ')) return 0;
        }
    }
    return 1;
}

static int key_cmp(const lt_val *a, const lt_val *b) {
    size_t n = a->u.s->len < b->u.s->len ? a->u.s->len : b->u.s->len;
    int c = memcmp(a->u.s->data, b->u.s->data, n);
    if (c) return c;
    return a->u.s->len < b->u.s->len ? -1 : a->u.s->len > b->u.s->len;
}

int lt_to_json(lt_buf *b, lt_val v, const lt_json_opts *o, int level, int depth) {
    char tmp[48];
    if (depth <= 0) return 0;
    int pretty = o->indent >= 0 || o->ind_str;
    switch (v.t) {
    case LT_NONE: return put_s(b, "null");
    case LT_BOOL: return put_s(b, v.u.b ? "true" : "false");
    case LT_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); return put_s(b, tmp);
    case LT_FLOAT:
        if (isnan(v.u.f)) return put_s(b, "NaN");
        if (isinf(v.u.f)) return put_s(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        lt_fmt_float(v.u.f, tmp);
        return put_s(b, tmp);
    case LT_STR: return json_str(b, v.u.s->data, v.u.s->len, o->ensure_ascii);
    case LT_LIST: {
        const lt_list *l = v.u.l;
        if (l->n == 0) return put_s(b, "[]");
        if (!lt_buf_putc(b, '[')) return 0;
        for (size_t i = 0; i < l->n; i++) {
            if (i && !lt_buf_put(b, o->item_sep, o->item_sep_len)) return 0;
            if (pretty && !json_nl(b, o, level + 1)) return 0;
            int r = lt_to_json(b, l->items[i], o, level + 1, depth - 1);
            if (r != 1) return r;
        }
        if (pretty && !json_nl(b, o, level)) return 0;
        return lt_buf_putc(b, ']');
    }
    case LT_DICT: {
        const lt_dict *d = v.u.d;
        if (d->n == 0) return put_s(b, "{}");
        for (size_t i = 0; i < d->n; i++)
            if (d->keys[i].t != LT_STR) return -1; /* non-string keys: not produced by us */
        /* sort_keys: an index permutation, insertion sort (small dicts). */
        size_t stack_idx[64], *idx = stack_idx;
        if (d->n > 64) {
            idx = lm_malloc(d->n * sizeof(size_t));
            if (!idx) return 0;
        }
        for (size_t i = 0; i < d->n; i++)
            idx[i] = i;
        if (o->sort_keys)
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0 && key_cmp(&d->keys[idx[j - 1]], &d->keys[idx[j]]) > 0;
                     j--) {
                    size_t t = idx[j];
                    idx[j] = idx[j - 1];
                    idx[j - 1] = t;
                }
        int r = lt_buf_putc(b, '{');
        for (size_t k = 0; r == 1 && k < d->n; k++) {
            size_t i = idx[k];
            if (k && !lt_buf_put(b, o->item_sep, o->item_sep_len)) r = 0;
            if (r == 1 && pretty && !json_nl(b, o, level + 1)) r = 0;
            if (r == 1 && !json_str(b, d->keys[i].u.s->data, d->keys[i].u.s->len, o->ensure_ascii))
                r = 0;
            if (r == 1 && !lt_buf_put(b, o->key_sep, o->key_sep_len)) r = 0;
            if (r == 1) r = lt_to_json(b, d->vals[i], o, level + 1, depth - 1);
        }
        if (r == 1 && pretty && !json_nl(b, o, level)) r = 0;
        if (r == 1 && !lt_buf_putc(b, '}')) r = 0;
        if (idx != stack_idx) lm_free(idx);
        return r;
    }
    default: return -1;
    }
}
