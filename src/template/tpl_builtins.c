/*
 * tpl_builtins.c — filters, tests, Python methods and global functions of chat templates.
 *
 * Each follows jinja2 3.1 / CPython behaviour for the inputs real templates give it; where
 * lemma differs it is listed in docs/templates.md. Notable choices:
 *   - tojson is transformers' override: json.dumps(x, ensure_ascii=False, indent=indent,
 *     sort_keys=sort_keys) — separators ", " / ": " (or "," / ": " with indent), non-ASCII
 *     kept, no HTML escaping;
 *   - sort, dictsort and unique compare strings case-insensitively by default (jinja2);
 *   - str.upper/lower map code points one-to-one with utf8proc (no 'ß' -> 'SS');
 *   - strftime_now formats local time, like transformers' datetime.now().strftime().
 * Work that grows with input size is charged to the step counter.
 */
#include "template/tpl_eval.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#define NAMEIS(nm, n, w) ((n) == sizeof(w) - 1 && memcmp((nm), (w), (n)) == 0)

static int arg_get(const lt_args *a, size_t idx, const char *name, lt_val *out) {
    size_t nl = strlen(name);
    for (size_t k = 0; k < a->nkw; k++)
        if (a->kwl[k] == nl && memcmp(a->kwn[k], name, nl) == 0) {
            *out = a->kwv[k];
            return 1;
        }
    if (idx < a->npos) {
        *out = a->pos[idx];
        return 1;
    }
    return 0;
}

static int fail_type(ev *e, const lt_node *at, const char *what, lt_val v) {
    if (v.t == LT_UNDEF) return lt_undef_fail(e, at, v);
    lt_fail(e, at, LM_ERR_FORMAT, "%s: unsupported value of type '%s'", what, lt_type_name(v));
    return 0;
}

static lt_val list_val(lt_list *l, int tuple) {
    lt_val v = {0};
    v.t = LT_LIST;
    v.tuple = (uint8_t)tuple;
    v.u.l = l;
    return v;
}

/* str(v) as an arena string. */
static int to_s(ev *e, const lt_node *at, lt_val v, lt_str **out) {
    if (v.t == LT_STR) {
        *out = v.u.s;
        return 1;
    }
    lt_buf b = {0};
    b.limit = e->ar.cap;
    int ok = lt_to_str(&b, v, LT_VALUE_MAX_DEPTH);
    lt_str *s = ok ? lt_str_new(&e->ar, b.p ? b.p : "", b.n) : NULL;
    lt_buf_free(&b);
    if (!s) return lt_oom(e, at);
    *out = s;
    return 1;
}

/* ---- UTF-8 helpers -------------------------------------------------------------------- */

static size_t dec(const char *s, size_t n, size_t i, int32_t *cp) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k =
        utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
    if (k <= 0) {
        *cp = (unsigned char)s[i];
        return 1;
    }
    *cp = c;
    return (size_t)k;
}

static int py_space(int32_t c) {
    return (c >= 9 && c <= 13) || (c >= 28 && c <= 32) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int in_chars(int32_t c, const lt_str *chars) {
    for (size_t i = 0; i < chars->len;) {
        int32_t d;
        i += dec(chars->data, chars->len, i, &d);
        if (d == c) return 1;
    }
    return 0;
}

/* Python str.strip/lstrip/rstrip; chars NULL = whitespace. which: 1 left, 2 right, 3 both. */
static int do_strip(ev *e, const lt_node *at, lt_str *s, const lt_str *chars, int which,
                    lt_val *out) {
    size_t a = 0, b = s->len;
    if (which & 1)
        while (a < b) {
            int32_t c;
            size_t k = dec(s->data, b, a, &c);
            if (chars ? !in_chars(c, chars) : !py_space(c)) break;
            a += k;
        }
    if (which & 2)
        while (b > a) {
            size_t st = b - 1;
            while (st > a && ((unsigned char)s->data[st] & 0xC0) == 0x80)
                st--;
            int32_t c;
            dec(s->data, b, st, &c);
            if (chars ? !in_chars(c, chars) : !py_space(c)) break;
            b = st;
        }
    if (a == 0 && b == s->len) {
        *out = lt_str_val(s);
        return 1;
    }
    if (!lt_str_mk(&e->ar, s->data + a, b - a, out)) return lt_oom(e, at);
    return 1;
}

/* Python str.splitlines() boundaries: \n \r \r\n \v \f \x1c-\x1e \x85 U+2028 U+2029.
 * Appends the lines (without their ends) to l. */
static int split_lines(ev *e, const lt_node *at, const char *s, size_t n, lt_list *l) {
    size_t i = 0, start = 0;
    while (i < n) {
        int32_t c;
        size_t k = dec(s, n, i, &c);
        int brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) ||
                  c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!brk) {
            i += k;
            continue;
        }
        lt_val piece;
        if (!lt_str_mk(&e->ar, s + start, i - start, &piece) || !lt_list_push(&e->ar, l, piece))
            return lt_oom(e, at);
        i += k;
        if (c == '\r' && i < n && s[i] == '\n') i++;
        start = i;
    }
    if (start < n) {
        lt_val piece;
        if (!lt_str_mk(&e->ar, s + start, n - start, &piece) || !lt_list_push(&e->ar, l, piece))
            return lt_oom(e, at);
    }
    return lt_step(e, at, n / 64 + l->n);
}

/* mode: 0 upper, 1 lower, 2 capitalize (first upper, rest lower), 3 jinja title, 4 py title */
static int do_case(ev *e, const lt_node *at, lt_str *s, int mode, lt_val *out) {
    lt_str *r = lt_arena_alloc(&e->ar, sizeof(lt_str) + s->len * 2 + 8);
    if (!r || !lt_step(e, at, s->len / 64)) return r ? 0 : lt_oom(e, at);
    size_t o = 0;
    int word_start = 1, prev_cased = 0;
    for (size_t i = 0; i < s->len;) {
        int32_t c;
        i += dec(s->data, s->len, i, &c);
        int32_t m;
        switch (mode) {
        case 0: m = utf8proc_toupper(c); break;
        case 1: m = utf8proc_tolower(c); break;
        case 2: m = o == 0 ? utf8proc_totitle(c) : utf8proc_tolower(c); break;
        case 3:
            /* jinja2 do_title: words begin after runs of '-', whitespace, '(', '{', '[', '<' */
            if (py_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<') {
                m = c;
                word_start = 1;
            } else {
                m = word_start ? utf8proc_totitle(c) : utf8proc_tolower(c);
                word_start = 0;
            }
            break;
        default: {
            /* str.title: a cased char after an uncased one starts a word */
            const utf8proc_property_t *p = utf8proc_get_property(c);
            int cased = p->category == UTF8PROC_CATEGORY_LU ||
                        p->category == UTF8PROC_CATEGORY_LL || p->category == UTF8PROC_CATEGORY_LT;
            m = cased ? (prev_cased ? utf8proc_tolower(c) : utf8proc_totitle(c)) : c;
            prev_cased = cased;
            break;
        }
        }
        utf8proc_ssize_t k = utf8proc_encode_char(m, (utf8proc_uint8_t *)r->data + o);
        if (k <= 0)
            r->data[o++] = '?';
        else
            o += (size_t)k;
        if (o + 4 > s->len * 2 + 8) break;
    }
    r->len = o;
    r->data[o] = '\0';
    *out = lt_str_val(r);
    return 1;
}

static int do_replace(ev *e, const lt_node *at, lt_str *s, lt_str *old, lt_str *nw, int64_t count,
                      lt_val *out) {
    lt_buf b = {0};
    b.limit = e->ar.cap;
    int64_t done = 0;
    size_t i = 0;
    if (old->len == 0) {
        /* Python inserts the replacement before every character and at the end */
        while (count < 0 || done < count) {
            if (!lt_buf_put(&b, nw->data, nw->len)) break;
            done++;
            if (i >= s->len) break;
            int32_t c;
            size_t k = dec(s->data, s->len, i, &c);
            if (!lt_buf_put(&b, s->data + i, k)) break;
            i += k;
        }
    } else {
        while (i <= s->len && (count < 0 || done < count)) {
            const char *p = memmem(s->data + i, s->len - i, old->data, old->len);
            if (!p) break;
            size_t at_i = (size_t)(p - s->data);
            if (!lt_buf_put(&b, s->data + i, at_i - i) || !lt_buf_put(&b, nw->data, nw->len)) break;
            i = at_i + old->len;
            done++;
        }
    }
    if (i < s->len) lt_buf_put(&b, s->data + i, s->len - i);
    int ok = !b.over && lt_str_mk(&e->ar, b.p ? b.p : "", b.n, out);
    lt_buf_free(&b);
    if (!ok) return lt_oom(e, at);
    return lt_step(e, at, s->len / 64);
}

static int do_split(ev *e, const lt_node *at, lt_str *s, lt_val sepv, int64_t maxsplit,
                    lt_val *out) {
    lt_list *l = lt_list_new(&e->ar, 4);
    if (!l) return lt_oom(e, at);
    if (sepv.t == LT_NONE || sepv.t == LT_UNDEF) {
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            while (i < s->len) {
                int32_t c;
                size_t k = dec(s->data, s->len, i, &c);
                if (!py_space(c)) break;
                i += k;
            }
            if (i >= s->len) break;
            size_t j = i;
            if (maxsplit >= 0 && splits >= maxsplit) {
                j = s->len;
                /* Python keeps the remainder as is, trailing whitespace stripped */
                while (j > i) {
                    size_t st = j - 1;
                    while (st > i && ((unsigned char)s->data[st] & 0xC0) == 0x80)
                        st--;
                    int32_t c;
                    dec(s->data, j, st, &c);
                    if (!py_space(c)) break;
                    j = st;
                }
            } else {
                while (j < s->len) {
                    int32_t c;
                    size_t k = dec(s->data, s->len, j, &c);
                    if (py_space(c)) break;
                    j += k;
                }
            }
            lt_val piece;
            if (!lt_str_mk(&e->ar, s->data + i, j - i, &piece) || !lt_list_push(&e->ar, l, piece))
                return lt_oom(e, at);
            splits++;
            i = j;
        }
    } else {
        if (sepv.t != LT_STR) return fail_type(e, at, "split separator", sepv);
        lt_str *sep = sepv.u.s;
        if (sep->len == 0) return lt_fail(e, at, LM_ERR_FORMAT, "empty separator"), 0;
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            const char *p = (maxsplit < 0 || splits < maxsplit)
                                ? memmem(s->data + i, s->len - i, sep->data, sep->len)
                                : NULL;
            size_t j = p ? (size_t)(p - s->data) : s->len;
            lt_val piece;
            if (!lt_str_mk(&e->ar, s->data + i, j - i, &piece) || !lt_list_push(&e->ar, l, piece))
                return lt_oom(e, at);
            if (!p) break;
            i = j + sep->len;
            splits++;
        }
    }
    *out = list_val(l, 0);
    return lt_step(e, at, s->len / 64 + l->n);
}

static int starts_ends(ev *e, const lt_node *at, lt_str *s, lt_val p, int ends, int *res) {
    if (p.t == LT_LIST && p.tuple) {
        *res = 0;
        for (size_t i = 0; i < p.u.l->n; i++) {
            int r;
            if (!starts_ends(e, at, s, p.u.l->items[i], ends, &r)) return 0;
            if (r) *res = 1;
        }
        return 1;
    }
    if (p.t != LT_STR) return fail_type(e, at, ends ? "endswith" : "startswith", p);
    size_t n = p.u.s->len;
    *res = n <= s->len && memcmp(ends ? s->data + s->len - n : s->data, p.u.s->data, n) == 0;
    return 1;
}

static int join_list(ev *e, const lt_node *at, lt_list *l, lt_str *sep, lt_val *out) {
    lt_buf b = {0};
    b.limit = e->ar.cap;
    int ok = 1;
    for (size_t i = 0; ok && i < l->n; i++) {
        if (i) ok = lt_buf_put(&b, sep->data, sep->len);
        if (ok) ok = lt_to_str(&b, l->items[i], LT_VALUE_MAX_DEPTH);
    }
    if (ok) ok = lt_str_mk(&e->ar, b.p ? b.p : "", b.n, out);
    lt_buf_free(&b);
    if (!ok) return lt_oom(e, at);
    return lt_step(e, at, l->n);
}

/* ---- methods -------------------------------------------------------------------------- */

int lt_method_id(lt_val obj, const char *nm, size_t n) {
    static const struct {
        const char *name;
        int id;
    } STR_M[] =
        {
            {"strip", LT_M_STRIP},
            {"lstrip", LT_M_LSTRIP},
            {"rstrip", LT_M_RSTRIP},
            {"split", LT_M_SPLIT},
            {"rsplit", LT_M_RSPLIT},
            {"startswith", LT_M_STARTSWITH},
            {"endswith", LT_M_ENDSWITH},
            {"upper", LT_M_UPPER},
            {"lower", LT_M_LOWER},
            {"title", LT_M_TITLE},
            {"capitalize", LT_M_CAPITALIZE},
            {"replace", LT_M_REPLACE},
            {"find", LT_M_FIND},
            {"count", LT_M_COUNT},
            {"join", LT_M_JOIN},
            {"isdigit", LT_M_ISDIGIT},
            {"isspace", LT_M_ISSPACE},
            {"isalpha", LT_M_ISALPHA},
            {"isalnum", LT_M_ISALNUM},
            {"splitlines", LT_M_SPLITLINES},
        },
      DICT_M[] =
          {
              {"items", LT_M_ITEMS},       {"keys", LT_M_KEYS},    {"values", LT_M_VALUES},
              {"get", LT_M_GET},           {"pop", LT_M_MUTATE},   {"update", LT_M_MUTATE},
              {"setdefault", LT_M_MUTATE}, {"clear", LT_M_MUTATE}, {"popitem", LT_M_MUTATE},
              {"copy", LT_M_MUTATE},
          },
      LIST_M[] = {
          {"append", LT_M_MUTATE}, {"extend", LT_M_MUTATE},  {"insert", LT_M_MUTATE},
          {"pop", LT_M_MUTATE},    {"remove", LT_M_MUTATE},  {"clear", LT_M_MUTATE},
          {"sort", LT_M_MUTATE},   {"reverse", LT_M_MUTATE}, {"index", LT_M_INDEX},
          {"count", LT_M_COUNT},
      };
#define FIND(tab)                                                                                  \
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)                                        \
        if (strlen(tab[i].name) == n && memcmp(tab[i].name, nm, n) == 0) return tab[i].id;
    if (obj.t == LT_STR) FIND(STR_M)
    if (obj.t == LT_DICT) FIND(DICT_M)
    if (obj.t == LT_LIST) FIND(LIST_M)
#undef FIND
    return -1;
}

static int want_str(ev *e, const lt_node *at, lt_val v, const char *what, lt_str **out) {
    if (v.t != LT_STR) return fail_type(e, at, what, v);
    *out = v.u.s;
    return 1;
}

static int opt_int(ev *e, const lt_node *at, const lt_args *a, size_t idx, const char *name,
                   int64_t def, int64_t *out) {
    lt_val v;
    *out = def;
    if (!arg_get(a, idx, name, &v) || v.t == LT_NONE) return 1;
    if (v.t == LT_INT)
        *out = v.u.i;
    else if (v.t == LT_BOOL)
        *out = v.u.b;
    else
        return fail_type(e, at, name, v);
    return 1;
}

int lt_call_method(ev *e, const lt_node *at, int id, lt_val self, const lt_args *a, lt_val *out) {
    lt_val v;
    lt_str *s = self.t == LT_STR ? self.u.s : NULL, *t1 = NULL, *t2 = NULL;
    int64_t n;
    int r;
    switch (id) {
    case LT_M_STRIP:
    case LT_M_LSTRIP:
    case LT_M_RSTRIP: {
        lt_str *chars = NULL;
        if (arg_get(a, 0, "chars", &v) && v.t != LT_NONE && !want_str(e, at, v, "strip", &chars))
            return 0;
        return do_strip(e, at, s, chars, id == LT_M_STRIP ? 3 : id == LT_M_LSTRIP ? 1 : 2, out);
    }
    case LT_M_SPLIT:
    case LT_M_RSPLIT: {
        lt_val sep = lt_none();
        arg_get(a, 0, "sep", &sep);
        if (!opt_int(e, at, a, 1, "maxsplit", -1, &n)) return 0;
        if (id == LT_M_RSPLIT && n >= 0)
            return lt_fail(e, at, LM_ERR_UNSUPPORTED, "rsplit with maxsplit is not supported"), 0;
        return do_split(e, at, s, sep, n, out);
    }
    case LT_M_SPLITLINES: {
        lt_list *l = lt_list_new(&e->ar, 4);
        if (!l) return lt_oom(e, at);
        if (!split_lines(e, at, s->data, s->len, l)) return 0;
        lt_val lv = {0};
        lv.t = LT_LIST;
        lv.u.l = l;
        *out = lv;
        return 1;
    }
    case LT_M_STARTSWITH:
    case LT_M_ENDSWITH:
        if (!arg_get(a, 0, "prefix", &v))
            return lt_fail(e, at, LM_ERR_FORMAT, "startswith/endswith need an argument"), 0;
        if (!starts_ends(e, at, s, v, id == LT_M_ENDSWITH, &r)) return 0;
        *out = lt_bool(r);
        return 1;
    case LT_M_UPPER: return do_case(e, at, s, 0, out);
    case LT_M_LOWER: return do_case(e, at, s, 1, out);
    case LT_M_CAPITALIZE: return do_case(e, at, s, 2, out);
    case LT_M_TITLE: return do_case(e, at, s, 4, out);
    case LT_M_REPLACE: {
        lt_val o, nw;
        if (!arg_get(a, 0, "old", &o) || !arg_get(a, 1, "new", &nw))
            return lt_fail(e, at, LM_ERR_FORMAT, "replace needs two arguments"), 0;
        if (!want_str(e, at, o, "replace", &t1) || !want_str(e, at, nw, "replace", &t2)) return 0;
        if (!opt_int(e, at, a, 2, "count", -1, &n)) return 0;
        return do_replace(e, at, s, t1, t2, n, out);
    }
    case LT_M_FIND:
        if (!arg_get(a, 0, "sub", &v) || !want_str(e, at, v, "find", &t1)) return 0;
        {
            const char *p = memmem(s->data, s->len, t1->data, t1->len);
            *out = lt_int(p ? (int64_t)lt_utf8_count(s->data, (size_t)(p - s->data)) : -1);
        }
        return 1;
    case LT_M_COUNT:
        if (!arg_get(a, 0, "x", &v))
            return lt_fail(e, at, LM_ERR_FORMAT, "count needs an argument"), 0;
        if (self.t == LT_LIST) {
            n = 0;
            for (size_t i = 0; i < self.u.l->n; i++)
                n += lt_equal(self.u.l->items[i], v, LT_VALUE_MAX_DEPTH);
            *out = lt_int(n);
            return 1;
        }
        if (!want_str(e, at, v, "count", &t1)) return 0;
        if (t1->len == 0) {
            *out = lt_int((int64_t)lt_utf8_count(s->data, s->len) + 1);
            return 1;
        }
        n = 0;
        for (size_t i = 0; i + t1->len <= s->len;) {
            const char *p = memmem(s->data + i, s->len - i, t1->data, t1->len);
            if (!p) break;
            n++;
            i = (size_t)(p - s->data) + t1->len;
        }
        *out = lt_int(n);
        return 1;
    case LT_M_JOIN: {
        lt_list *l;
        if (!arg_get(a, 0, "iterable", &v) || !lt_iterable(e, at, v, &l)) return 0;
        for (size_t i = 0; i < l->n; i++)
            if (l->items[i].t != LT_STR)
                return lt_fail(e, at, LM_ERR_FORMAT,
                               "sequence item %zu: expected str instance, %s found", i,
                               lt_type_name(l->items[i])),
                       0;
        return join_list(e, at, l, s, out);
    }
    case LT_M_ISDIGIT:
    case LT_M_ISSPACE:
    case LT_M_ISALPHA:
    case LT_M_ISALNUM: {
        int ok = s->len > 0;
        for (size_t i = 0; ok && i < s->len;) {
            int32_t c;
            i += dec(s->data, s->len, i, &c);
            const utf8proc_property_t *p = utf8proc_get_property(c);
            int alpha = p->category >= UTF8PROC_CATEGORY_LU && p->category <= UTF8PROC_CATEGORY_LO;
            int digit = p->category == UTF8PROC_CATEGORY_ND;
            if (id == LT_M_ISDIGIT)
                ok = digit;
            else if (id == LT_M_ISSPACE)
                ok = py_space(c);
            else if (id == LT_M_ISALPHA)
                ok = alpha;
            else
                ok = alpha || digit;
        }
        *out = lt_bool(ok);
        return 1;
    }
    case LT_M_ITEMS: {
        const lt_dict *d = self.u.d;
        lt_list *l = lt_list_new(&e->ar, d->n);
        if (!l) return lt_oom(e, at);
        for (size_t i = 0; i < d->n; i++) {
            lt_list *pair = lt_list_new(&e->ar, 2);
            if (!pair) return lt_oom(e, at);
            pair->items[0] = d->keys[i];
            pair->items[1] = d->vals[i];
            pair->n = 2;
            l->items[l->n++] = list_val(pair, 1);
        }
        *out = list_val(l, 0);
        return lt_step(e, at, d->n);
    }
    case LT_M_KEYS:
    case LT_M_VALUES: {
        const lt_dict *d = self.u.d;
        lt_list *l = lt_list_new(&e->ar, d->n);
        if (!l) return lt_oom(e, at);
        lt_vcopy(l->items, id == LT_M_KEYS ? d->keys : d->vals, d->n);
        l->n = d->n;
        *out = list_val(l, 0);
        return 1;
    }
    case LT_M_GET: {
        lt_val k, def = lt_none();
        if (!arg_get(a, 0, "key", &k)) return lt_fail(e, at, LM_ERR_FORMAT, "get needs a key"), 0;
        arg_get(a, 1, "default", &def);
        lt_val *p = lt_dict_get(self.u.d, k);
        *out = p ? *p : def;
        return 1;
    }
    case LT_M_INDEX:
        if (!arg_get(a, 0, "x", &v))
            return lt_fail(e, at, LM_ERR_FORMAT, "index needs an argument"), 0;
        for (size_t i = 0; i < self.u.l->n; i++)
            if (lt_equal(self.u.l->items[i], v, LT_VALUE_MAX_DEPTH)) {
                *out = lt_int((int64_t)i);
                return 1;
            }
        return lt_fail(e, at, LM_ERR_FORMAT, "value is not in list"), 0;
    case LT_M_CYCLE: {
        const lt_loop *lp = self.u.loop;
        if (a->npos == 0) return lt_fail(e, at, LM_ERR_FORMAT, "no items for cycling given"), 0;
        *out = a->pos[(size_t)lp->i % a->npos];
        return 1;
    }
    case LT_M_MUTATE:
        lt_fail(e, at, LM_ERR_FORMAT, "modifying a '%s' object is not allowed (immutable sandbox)",
                lt_type_name(self));
        return 0;
    }
    return lt_fail(e, at, LM_ERR_INTERNAL, "unknown method %d", id), 0;
}

/* ---- globals -------------------------------------------------------------------------- */

int lt_call_global(ev *e, const lt_node *at, int id, const lt_args *a, lt_val *out) {
    switch (id) {
    case LT_FN_NAMESPACE:
    case LT_FN_DICT: {
        lt_dict *d = lt_dict_new(&e->ar, a->nkw + 1);
        if (!d) return lt_oom(e, at);
        for (size_t i = 0; i < a->npos; i++) {
            /* namespace({...}) / dict({...}): copy a mapping */
            if (a->pos[i].t != LT_DICT)
                return fail_type(e, at, id == LT_FN_DICT ? "dict" : "namespace", a->pos[i]);
            for (size_t k = 0; k < a->pos[i].u.d->n; k++)
                if (!lt_dict_set(&e->ar, d, a->pos[i].u.d->keys[k], a->pos[i].u.d->vals[k]))
                    return lt_oom(e, at);
        }
        for (size_t i = 0; i < a->nkw; i++) {
            lt_val k;
            if (!lt_str_mk(&e->ar, a->kwn[i], a->kwl[i], &k) ||
                !lt_dict_set(&e->ar, d, k, a->kwv[i]))
                return lt_oom(e, at);
        }
        lt_val v = {0};
        v.t = id == LT_FN_DICT ? LT_DICT : LT_NS;
        v.u.d = d;
        *out = v;
        return 1;
    }
    case LT_FN_RANGE: {
        int64_t st = 0, en, step = 1;
        for (size_t i = 0; i < a->npos; i++)
            if (a->pos[i].t != LT_INT && a->pos[i].t != LT_BOOL)
                return fail_type(e, at, "range", a->pos[i]);
#define IV(k) (a->pos[k].t == LT_INT ? a->pos[k].u.i : (int64_t)a->pos[k].u.b)
        if (a->npos == 1)
            en = IV(0);
        else if (a->npos == 2 || a->npos == 3) {
            st = IV(0);
            en = IV(1);
            if (a->npos == 3) step = IV(2);
        } else
            return lt_fail(e, at, LM_ERR_FORMAT, "range expects 1 to 3 integer arguments"), 0;
#undef IV
        if (step == 0) return lt_fail(e, at, LM_ERR_FORMAT, "range() arg 3 must not be zero"), 0;
        double cnt_d = step > 0 ? ceil(((double)en - (double)st) / (double)step)
                                : ceil(((double)st - (double)en) / -(double)step);
        if (cnt_d < 0) cnt_d = 0;
        if (cnt_d > (double)(e->max_steps - e->steps) || cnt_d > 1e8) {
            lt_fail(e, at, LM_ERR_NOMEM, "range of %.0f items exceeds the step limit", cnt_d);
            return 0;
        }
        size_t cnt = (size_t)cnt_d;
        if (!lt_step(e, at, cnt / 4)) return 0;
        lt_list *l = lt_list_new(&e->ar, cnt);
        if (!l) return lt_oom(e, at);
        for (size_t i = 0; i < cnt; i++)
            l->items[i] = lt_int(st + (int64_t)i * step);
        l->n = cnt;
        *out = list_val(l, 0);
        return 1;
    }
    case LT_FN_RAISE: {
        lt_str *m = NULL;
        if (a->npos > 0 && !to_s(e, at, a->pos[0], &m)) return 0;
        lt_fail(e, at, LM_ERR_FORMAT, "raise_exception: %s", m ? m->data : "");
        return 0;
    }
    case LT_FN_STRFTIME: {
        lt_str *f = NULL;
        if (a->npos < 1 || !want_str(e, at, a->pos[0], "strftime_now", &f)) {
            if (!e->failed) lt_fail(e, at, LM_ERR_FORMAT, "strftime_now needs a format string");
            return 0;
        }
        if (f->len > 200) return lt_fail(e, at, LM_ERR_FORMAT, "strftime_now format too long"), 0;
        time_t now = time(NULL);
        struct tm tmv;
        char buf[1024];
        size_t n = 0;
        if (localtime_r(&now, &tmv)) n = strftime(buf, sizeof buf, f->data, &tmv);
        if (!lt_str_mk(&e->ar, buf, n, out)) return lt_oom(e, at);
        return 1;
    }
    }
    return lt_fail(e, at, LM_ERR_INTERNAL, "unknown function %d", id), 0;
}

/* ---- tests ---------------------------------------------------------------------------- */

static int test_by_name(ev *e, const lt_node *at, const char *nm, size_t n, lt_val v,
                        const lt_val *args, size_t nargs, int *res) {
    lt_val a0 = nargs ? args[0] : lt_undef(NULL);
    int c;
#define T(w) NAMEIS(nm, n, w)
    if (T("defined"))
        *res = v.t != LT_UNDEF;
    else if (T("undefined"))
        *res = v.t == LT_UNDEF;
    else if (T("none"))
        *res = v.t == LT_NONE;
    else if (T("string"))
        *res = v.t == LT_STR;
    else if (T("mapping"))
        *res = v.t == LT_DICT;
    else if (T("iterable"))
        *res = v.t == LT_LIST || v.t == LT_DICT || v.t == LT_STR || v.t == LT_UNDEF || v.t == LT_NS;
    else if (T("sequence"))
        *res = v.t == LT_LIST || v.t == LT_DICT || v.t == LT_STR;
    else if (T("number"))
        *res = v.t == LT_INT || v.t == LT_FLOAT || v.t == LT_BOOL;
    else if (T("integer"))
        *res = v.t == LT_INT;
    else if (T("float"))
        *res = v.t == LT_FLOAT;
    else if (T("boolean"))
        *res = v.t == LT_BOOL;
    else if (T("true"))
        *res = v.t == LT_BOOL && v.u.b;
    else if (T("false"))
        *res = v.t == LT_BOOL && !v.u.b;
    else if (T("callable"))
        *res = v.t == LT_MACRO || v.t == LT_FUNC || v.t == LT_METHOD;
    else if (T("equalto") || T("eq") || T("=="))
        *res = lt_equal(v, a0, LT_VALUE_MAX_DEPTH);
    else if (T("ne") || T("!="))
        *res = !lt_equal(v, a0, LT_VALUE_MAX_DEPTH);
    else if (T("sameas"))
        *res = v.t == a0.t && lt_equal(v, a0, 1);
    else if (T("lt") || T("<") || T("lessthan")) {
        if (!lt_compare(e, at, v, a0, &c, LT_VALUE_MAX_DEPTH)) return 0;
        *res = c < 0;
    } else if (T("le") || T("<=")) {
        if (!lt_compare(e, at, v, a0, &c, LT_VALUE_MAX_DEPTH)) return 0;
        *res = c <= 0;
    } else if (T("gt") || T(">") || T("greaterthan")) {
        if (!lt_compare(e, at, v, a0, &c, LT_VALUE_MAX_DEPTH)) return 0;
        *res = c > 0;
    } else if (T("ge") || T(">=")) {
        if (!lt_compare(e, at, v, a0, &c, LT_VALUE_MAX_DEPTH)) return 0;
        *res = c >= 0;
    } else if (T("in")) {
        return lt_contains(e, at, a0, v, res);
    } else if (T("odd") || T("even") || T("divisibleby")) {
        if (v.t != LT_INT && v.t != LT_BOOL) return fail_type(e, at, "odd/even/divisibleby", v);
        int64_t x = v.t == LT_INT ? v.u.i : v.u.b, d = 2;
        if (T("divisibleby")) {
            if (a0.t != LT_INT || a0.u.i == 0) return fail_type(e, at, "divisibleby", a0);
            d = a0.u.i;
        }
        int64_t m = d == -1 ? 0 : x % d;
        *res = T("odd") ? m != 0 : m == 0;
    } else if (T("lower") || T("upper")) {
        lt_val conv;
        if (v.t != LT_STR) {
            *res = 0;
            return 1;
        }
        if (!do_case(e, at, v.u.s, T("lower") ? 1 : 0, &conv)) return 0;
        *res = lt_equal(v, conv, 1);
    } else {
        lt_fail(e, at, LM_ERR_FORMAT, "no test named '%.*s'", (int)(n > 64 ? 64 : n), nm);
        return 0;
    }
#undef T
    return 1;
}

int lt_apply_test(ev *e, const lt_node *at, lt_val v, const lt_args *a, int *res) {
    return test_by_name(e, at, at->name, at->name_len, v, a->pos, a->npos, res);
}

/* ---- filters -------------------------------------------------------------------------- */

/* Looks up a dotted attribute path ("a.b.0") like jinja2's make_attrgetter. */
static int attr_path(ev *e, const lt_node *at, lt_val v, const lt_str *path, lt_val *out) {
    size_t i = 0;
    while (i <= path->len) {
        const char *dot = memchr(path->data + i, '.', path->len - i);
        size_t j = dot ? (size_t)(dot - path->data) : path->len;
        const char *seg = path->data + i;
        size_t sl = j - i;
        int isnum = sl > 0;
        int64_t num = 0;
        for (size_t k = 0; k < sl; k++) {
            if (seg[k] < '0' || seg[k] > '9' || k > 17)
                isnum = 0;
            else
                num = num * 10 + (seg[k] - '0');
        }
        if (v.t == LT_UNDEF) return lt_undef_fail(e, at, v);
        if (isnum) {
            if (!lt_getitem(e, at, v, lt_int(num), &v)) return 0;
        } else {
            lt_val key;
            if (!lt_str_mk(&e->ar, seg, sl, &key)) return lt_oom(e, at);
            if (!lt_getitem(e, at, v, key, &v)) return 0;
        }
        if (!dot) break;
        i = j + 1;
    }
    *out = v;
    return 1;
}

static int filter_by_name(ev *e, const lt_node *at, const char *nm, size_t n, lt_val v,
                          const lt_args *a, lt_val *out);

/* Sorting: a stable merge sort over keys with Python ordering (case-insensitive strings). */
typedef struct sort_ctx {
    ev *e;
    const lt_node *at;
    int case_sensitive, reverse, failed;
} sort_ctx;

static int key_cmp(sort_ctx *c, lt_val a, lt_val b) {
    if (c->failed) return 0;
    lt_val x = a, y = b;
    if (!c->case_sensitive && a.t == LT_STR && b.t == LT_STR) {
        if (!do_case(c->e, c->at, a.u.s, 1, &x) || !do_case(c->e, c->at, b.u.s, 1, &y)) {
            c->failed = 1;
            return 0;
        }
    }
    int r;
    if (!lt_compare(c->e, c->at, x, y, &r, LT_VALUE_MAX_DEPTH)) {
        c->failed = 1;
        return 0;
    }
    return c->reverse ? -r : r;
}

static int sort_vals(ev *e, const lt_node *at, lt_val *items, lt_val *keys, size_t n, int cs,
                     int rev) {
    sort_ctx c = {e, at, cs, rev, 0};
    lt_val *ti = lt_arena_alloc(&e->ar, (n + 1) * sizeof(lt_val));
    lt_val *tk = lt_arena_alloc(&e->ar, (n + 1) * sizeof(lt_val));
    if (!ti || !tk) return lt_oom(e, at);
    if (!lt_step(e, at, n * 4)) return 0;
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                if (key_cmp(&c, keys[j], keys[i]) < 0) {
                    ti[k] = items[j];
                    tk[k++] = keys[j++];
                } else {
                    ti[k] = items[i];
                    tk[k++] = keys[i++];
                }
            }
            while (i < mid) {
                ti[k] = items[i];
                tk[k++] = keys[i++];
            }
            while (j < hi) {
                ti[k] = items[j];
                tk[k++] = keys[j++];
            }
        }
        lt_vcopy(items, ti, n);
        lt_vcopy(keys, tk, n);
        if (c.failed) return 0;
    }
    return !c.failed;
}

static int opt_bool(const lt_args *a, size_t idx, const char *name, int def) {
    lt_val v;
    if (!arg_get(a, idx, name, &v)) return def;
    return lt_truthy(v);
}

/* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
 * = json.dumps with those arguments. */
static int f_tojson(ev *e, const lt_node *at, lt_val v, const lt_args *a, lt_val *out) {
    lt_json_opts o;
    memset(&o, 0, sizeof o);
    o.indent = -1;
    lt_val x;
    if (arg_get(a, 1, "indent", &x) && x.t != LT_NONE) {
        if (x.t == LT_INT)
            o.indent = x.u.i < 0 ? 0 : x.u.i > 64 ? 64 : (int)x.u.i;
        else if (x.t == LT_STR) {
            o.ind_str = x.u.s->data;
            o.ind_len = x.u.s->len;
        } else
            return fail_type(e, at, "tojson indent", x);
    }
    int pretty = o.indent >= 0 || o.ind_str;
    o.item_sep = pretty ? "," : ", ";
    o.item_sep_len = strlen(o.item_sep);
    o.key_sep = ": ";
    o.key_sep_len = 2;
    if (arg_get(a, 2, "separators", &x) && x.t != LT_NONE) {
        if (x.t != LT_LIST || x.u.l->n != 2 || x.u.l->items[0].t != LT_STR ||
            x.u.l->items[1].t != LT_STR)
            return lt_fail(e, at, LM_ERR_FORMAT, "tojson: separators must be a pair of strings"), 0;
        o.item_sep = x.u.l->items[0].u.s->data;
        o.item_sep_len = x.u.l->items[0].u.s->len;
        o.key_sep = x.u.l->items[1].u.s->data;
        o.key_sep_len = x.u.l->items[1].u.s->len;
    }
    o.ensure_ascii = opt_bool(a, 0, "ensure_ascii", 0);
    o.sort_keys = opt_bool(a, 3, "sort_keys", 0);
    lt_buf b = {0};
    b.limit = e->max_output;
    int r = lt_to_json(&b, v, &o, 0, LT_VALUE_MAX_DEPTH);
    int ok = r == 1 && lt_str_mk(&e->ar, b.p ? b.p : "", b.n, out);
    size_t produced = b.n;
    int over = b.over;
    lt_buf_free(&b);
    if (r == -1) {
        lt_fail(e, at, LM_ERR_FORMAT, "tojson: value is not JSON serializable (%s inside)",
                v.t == LT_UNDEF ? "Undefined" : "unsupported type");
        return 0;
    }
    if (!ok) {
        if (over == 1)
            lt_fail(e, at, LM_ERR_NOMEM, "output limit exceeded (%zu bytes)", e->max_output);
        else if (over)
            lt_oom(e, at);
        else if (r == 0)
            lt_fail(e, at, LM_ERR_FORMAT, "tojson: value nested too deeply");
        else
            lt_oom(e, at);
        return 0;
    }
    return lt_step(e, at, produced / 64);
}

static int f_indent(ev *e, const lt_node *at, lt_str *s, const lt_args *a, lt_val *out) {
    lt_val wv;
    lt_str *ind = NULL;
    char spaces[65];
    size_t il = 4;
    if (arg_get(a, 0, "width", &wv)) {
        if (wv.t == LT_STR) {
            ind = wv.u.s;
            il = ind->len;
        } else if (wv.t == LT_INT) {
            il = wv.u.i < 0 ? 0 : wv.u.i > 64 ? 64 : (size_t)wv.u.i;
        } else
            return fail_type(e, at, "indent width", wv);
    }
    memset(spaces, ' ', sizeof spaces);
    const char *ip = ind ? ind->data : spaces;
    int first = opt_bool(a, 1, "first", 0), blank = opt_bool(a, 2, "blank", 0);
    /* jinja2's do_indent: s + "\n" split with splitlines(); the first line and empty lines
     * are left alone unless first= / blank= say otherwise. */
    lt_list *lines = lt_list_new(&e->ar, 4);
    if (!lines) return lt_oom(e, at);
    lt_buf b = {0};
    b.limit = e->ar.cap;
    int ok = lt_buf_put(&b, s->data, s->len) && lt_buf_putc(&b, '\n');
    if (ok && !split_lines(e, at, b.p, b.n, lines)) {
        lt_buf_free(&b);
        return 0;
    }
    b.n = 0;
    if (ok && first) ok = lt_buf_put(&b, ip, il);
    for (size_t i = 0; ok && i < lines->n; i++) {
        lt_str *ln = lines->items[i].u.s;
        if (i > 0) {
            ok = lt_buf_putc(&b, '\n');
            if (ok && (blank || ln->len)) ok = lt_buf_put(&b, ip, il);
        }
        if (ok) ok = lt_buf_put(&b, ln->data, ln->len);
    }
    if (ok) ok = lt_str_mk(&e->ar, b.p ? b.p : "", b.n, out);
    lt_buf_free(&b);
    if (!ok) return lt_oom(e, at);
    return 1;
}

static int f_round(ev *e, const lt_node *at, lt_val v, const lt_args *a, lt_val *out) {
    int64_t prec;
    if (!opt_int(e, at, a, 0, "precision", 0, &prec)) return 0;
    lt_val mv;
    const char *method = "common";
    if (arg_get(a, 1, "method", &mv) && mv.t == LT_STR) method = mv.u.s->data;
    if (v.t != LT_INT && v.t != LT_FLOAT && v.t != LT_BOOL) return fail_type(e, at, "round", v);
    double x = v.t == LT_FLOAT ? v.u.f : v.t == LT_INT ? (double)v.u.i : v.u.b;
    if (prec > 15) prec = 15;
    if (prec < -15) prec = -15;
    double m = pow(10.0, (double)prec), y = x * m;
    if (!strcmp(method, "common"))
        y = nearbyint(y); /* Python round(): half to even */
    else if (!strcmp(method, "ceil"))
        y = ceil(y);
    else if (!strcmp(method, "floor"))
        y = floor(y);
    else
        return lt_fail(e, at, LM_ERR_FORMAT, "round: method must be common, ceil or floor"), 0;
    *out = lt_float(y / m);
    return 1;
}

static int f_select(ev *e, const lt_node *at, lt_val v, const lt_args *a, int attr, int reject,
                    lt_val *out) {
    lt_list *src;
    if (!lt_iterable(e, at, v, &src)) return 0;
    lt_list *l = lt_list_new(&e->ar, src->n);
    if (!l) return lt_oom(e, at);
    size_t k = 0;
    lt_str *path = NULL;
    if (attr) {
        if (a->npos < 1 || a->pos[0].t != LT_STR)
            return lt_fail(e, at, LM_ERR_FORMAT, "selectattr/rejectattr need an attribute name"), 0;
        path = a->pos[0].u.s;
        k = 1;
    }
    const char *tn = NULL;
    size_t tl = 0;
    if (k < a->npos) {
        if (a->pos[k].t != LT_STR) return fail_type(e, at, "test name", a->pos[k]);
        tn = a->pos[k].u.s->data;
        tl = a->pos[k].u.s->len;
        k++;
    }
    for (size_t i = 0; i < src->n; i++) {
        lt_val item = src->items[i], probe = item;
        if (path && !attr_path(e, at, item, path, &probe)) {
            if (e->failed) return 0;
        }
        int r;
        if (tn) {
            if (!test_by_name(e, at, tn, tl, probe, a->pos + k, a->npos - k, &r)) return 0;
        } else {
            r = lt_truthy(probe);
        }
        if (r != reject) l->items[l->n++] = item;
    }
    *out = list_val(l, 0);
    return lt_step(e, at, src->n);
}

static int f_map(ev *e, const lt_node *at, lt_val v, const lt_args *a, lt_val *out) {
    lt_list *src;
    if (!lt_iterable(e, at, v, &src)) return 0;
    lt_list *l = lt_list_new(&e->ar, src->n);
    if (!l) return lt_oom(e, at);
    lt_val attr, def;
    int has_def = arg_get(a, 99, "default", &def);
    if (arg_get(a, 99, "attribute", &attr)) {
        if (attr.t != LT_STR) return fail_type(e, at, "map attribute", attr);
        for (size_t i = 0; i < src->n; i++) {
            lt_val r;
            if (!attr_path(e, at, src->items[i], attr.u.s, &r)) return 0;
            if (r.t == LT_UNDEF && has_def) r = def;
            l->items[l->n++] = r;
        }
    } else {
        if (a->npos < 1 || a->pos[0].t != LT_STR)
            return lt_fail(e, at, LM_ERR_FORMAT, "map needs a filter name or attribute="), 0;
        lt_args sub = {0};
        for (size_t i = 1; i < a->npos; i++)
            sub.pos[sub.npos++] = a->pos[i];
        for (size_t i = 0; i < a->nkw; i++) {
            sub.kwn[sub.nkw] = a->kwn[i];
            sub.kwl[sub.nkw] = a->kwl[i];
            sub.kwv[sub.nkw++] = a->kwv[i];
        }
        for (size_t i = 0; i < src->n; i++)
            if (!filter_by_name(e, at, a->pos[0].u.s->data, a->pos[0].u.s->len, src->items[i], &sub,
                                &l->items[l->n++]))
                return 0;
    }
    *out = list_val(l, 0);
    return lt_step(e, at, src->n);
}

static int filter_by_name(ev *e, const lt_node *at, const char *nm, size_t n, lt_val v,
                          const lt_args *a, lt_val *out) {
    lt_str *s;
    lt_list *l;
    lt_val x;
#define F(w) NAMEIS(nm, n, w)
    if (F("safe") || F("string")) {
        if (!to_s(e, at, v, &s)) return 0;
        *out = lt_str_val(s);
        return 1;
    }
    if (F("tojson")) return f_tojson(e, at, v, a, out);
    if (F("trim") || F("upper") || F("lower") || F("title") || F("capitalize") || F("indent") ||
        F("replace") || F("wordcount") || F("e") || F("escape")) {
        if (v.t == LT_UNDEF) v = lt_str_val(lt_str_new(&e->ar, "", 0));
        if (v.t == LT_STR && !v.u.s) return lt_oom(e, at);
        if (!to_s(e, at, v, &s)) return 0;
        if (F("trim")) {
            lt_str *chars = NULL;
            if (arg_get(a, 0, "chars", &x) && x.t != LT_NONE && !want_str(e, at, x, "trim", &chars))
                return 0;
            return do_strip(e, at, s, chars, 3, out);
        }
        if (F("upper")) return do_case(e, at, s, 0, out);
        if (F("lower")) return do_case(e, at, s, 1, out);
        if (F("capitalize")) return do_case(e, at, s, 2, out);
        if (F("title")) return do_case(e, at, s, 3, out);
        if (F("indent")) return f_indent(e, at, s, a, out);
        if (F("replace")) {
            lt_val o, nw;
            lt_str *t1, *t2;
            int64_t cnt;
            if (!arg_get(a, 0, "old", &o) || !arg_get(a, 1, "new", &nw))
                return lt_fail(e, at, LM_ERR_FORMAT, "replace needs two arguments"), 0;
            if (!to_s(e, at, o, &t1) || !to_s(e, at, nw, &t2)) return 0;
            if (!opt_int(e, at, a, 2, "count", -1, &cnt)) return 0;
            return do_replace(e, at, s, t1, t2, cnt, out);
        }
        if (F("wordcount")) { /* jinja2: len(re.findall(r"\w+", s)) */
            int64_t words = 0;
            int inword = 0;
            for (size_t i = 0; i < s->len;) {
                int32_t c;
                i += dec(s->data, s->len, i, &c);
                const utf8proc_property_t *p = utf8proc_get_property(c);
                int w =
                    c == '_' ||
                    (p->category >= UTF8PROC_CATEGORY_LU && p->category <= UTF8PROC_CATEGORY_LO) ||
                    (p->category >= UTF8PROC_CATEGORY_ND && p->category <= UTF8PROC_CATEGORY_NO);
                if (w && !inword) words++;
                inword = w;
            }
            *out = lt_int(words);
            return lt_step(e, at, s->len / 64);
        }
        /* escape: HTML (transformers does not autoescape; for templates that ask) */
        lt_buf b = {0};
        b.limit = e->ar.cap;
        int ok = 1;
        for (size_t i = 0; ok && i < s->len; i++) {
            const char *r = NULL;
            switch (s->data[i]) {
            case '&': r = "&amp;"; break;
            case '<': r = "&lt;"; break;
            case '>': r = "&gt;"; break;
            case '"': r = "&#34;"; break;
            case '\'': r = "&#39;"; break;
            }
            ok = r ? lt_buf_put(&b, r, strlen(r)) : lt_buf_putc(&b, s->data[i]);
        }
        if (ok) ok = lt_str_mk(&e->ar, b.p ? b.p : "", b.n, out);
        lt_buf_free(&b);
        return ok ? 1 : lt_oom(e, at);
    }
    if (F("length") || F("count")) {
        switch (v.t) {
        case LT_STR: *out = lt_int((int64_t)lt_utf8_count(v.u.s->data, v.u.s->len)); return 1;
        case LT_LIST: *out = lt_int((int64_t)v.u.l->n); return 1;
        case LT_DICT:
        case LT_NS: *out = lt_int((int64_t)v.u.d->n); return 1;
        case LT_UNDEF: *out = lt_int(0); return 1;
        default: return fail_type(e, at, "length", v);
        }
    }
    if (F("default") || F("d")) {
        lt_val def;
        if (!arg_get(a, 0, "default_value", &def)) {
            if (!lt_str_mk(&e->ar, "", 0, &def)) return lt_oom(e, at);
        }
        int boolean = opt_bool(a, 1, "boolean", 0);
        *out = (v.t == LT_UNDEF || (boolean && !lt_truthy(v))) ? def : v;
        return 1;
    }
    if (F("list")) {
        if (!lt_iterable(e, at, v, &l)) return 0;
        lt_list *c = lt_list_new(&e->ar, l->n);
        if (!c) return lt_oom(e, at);
        lt_vcopy(c->items, l->items, l->n);
        c->n = l->n;
        *out = list_val(c, 0);
        return 1;
    }
    if (F("first") || F("last")) {
        if (!lt_iterable(e, at, v, &l)) return 0;
        if (l->n == 0)
            *out = lt_undef(F("first") ? "first" : "last");
        else
            *out = l->items[F("first") ? 0 : l->n - 1];
        return 1;
    }
    if (F("reverse")) {
        if (v.t == LT_STR) {
            lt_val m1 = lt_int(-1);
            lt_list *chars;
            if (!lt_iterable(e, at, v, &chars)) return 0;
            lt_str *emp = lt_str_new(&e->ar, "", 0);
            if (!emp) return lt_oom(e, at);
            for (size_t i = 0; i < chars->n / 2; i++) {
                lt_val t = chars->items[i];
                chars->items[i] = chars->items[chars->n - 1 - i];
                chars->items[chars->n - 1 - i] = t;
            }
            (void)m1;
            return join_list(e, at, chars, emp, out);
        }
        if (!lt_iterable(e, at, v, &l)) return 0;
        lt_list *c = lt_list_new(&e->ar, l->n);
        if (!c) return lt_oom(e, at);
        for (size_t i = 0; i < l->n; i++)
            c->items[i] = l->items[l->n - 1 - i];
        c->n = l->n;
        *out = list_val(c, 0);
        return 1;
    }
    if (F("items")) {
        if (v.t == LT_UNDEF) {
            lt_list *c = lt_list_new(&e->ar, 0);
            if (!c) return lt_oom(e, at);
            *out = list_val(c, 0);
            return 1;
        }
        if (v.t != LT_DICT && v.t != LT_NS) return fail_type(e, at, "items", v);
        lt_val dv = v;
        dv.t = LT_DICT;
        return lt_call_method(e, at, LT_M_ITEMS, dv, a, out);
    }
    if (F("join")) {
        lt_val sepv, attr;
        lt_str *sep;
        if (!arg_get(a, 0, "d", &sepv)) sepv = lt_str_val(lt_str_new(&e->ar, "", 0));
        if (sepv.t == LT_STR && !sepv.u.s) return lt_oom(e, at);
        if (!to_s(e, at, sepv, &sep)) return 0;
        if (!lt_iterable(e, at, v, &l)) return 0;
        if (arg_get(a, 1, "attribute", &attr)) {
            if (attr.t != LT_STR) return fail_type(e, at, "join attribute", attr);
            lt_list *c = lt_list_new(&e->ar, l->n);
            if (!c) return lt_oom(e, at);
            for (size_t i = 0; i < l->n; i++)
                if (!attr_path(e, at, l->items[i], attr.u.s, &c->items[c->n++])) return 0;
            l = c;
        }
        return join_list(e, at, l, sep, out);
    }
    if (F("map")) return f_map(e, at, v, a, out);
    if (F("select")) return f_select(e, at, v, a, 0, 0, out);
    if (F("reject")) return f_select(e, at, v, a, 0, 1, out);
    if (F("selectattr")) return f_select(e, at, v, a, 1, 0, out);
    if (F("rejectattr")) return f_select(e, at, v, a, 1, 1, out);
    if (F("int")) {
        int64_t def;
        if (!opt_int(e, at, a, 0, "default", 0, &def)) return 0;
        if (v.t == LT_INT)
            *out = v;
        else if (v.t == LT_BOOL)
            *out = lt_int(v.u.b);
        else if (v.t == LT_FLOAT && isfinite(v.u.f) && fabs(v.u.f) < 9.2e18)
            *out = lt_int((int64_t)v.u.f);
        else if (v.t == LT_STR) {
            char *end;
            const char *p = v.u.s->data;
            long long iv = strtoll(p, &end, 10);
            while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
            if (end != p && *end == '\0')
                *out = lt_int(iv);
            else {
                double dv = strtod(p, &end);
                while (*end == ' ' || *end == '\t' || *end == '\n')
                    end++;
                *out = (end != p && *end == '\0' && isfinite(dv) && fabs(dv) < 9.2e18)
                           ? lt_int((int64_t)dv)
                           : lt_int(def);
            }
        } else
            *out = lt_int(def);
        return 1;
    }
    if (F("float")) {
        double def = 0.0;
        if (arg_get(a, 0, "default", &x) && (x.t == LT_FLOAT || x.t == LT_INT))
            def = x.t == LT_FLOAT ? x.u.f : (double)x.u.i;
        if (v.t == LT_FLOAT)
            *out = v;
        else if (v.t == LT_INT)
            *out = lt_float((double)v.u.i);
        else if (v.t == LT_BOOL)
            *out = lt_float(v.u.b);
        else if (v.t == LT_STR) {
            char *end;
            double dv = strtod(v.u.s->data, &end);
            while (*end == ' ' || *end == '\t' || *end == '\n')
                end++;
            *out = lt_float(end != v.u.s->data && *end == '\0' ? dv : def);
        } else
            *out = lt_float(def);
        return 1;
    }
    if (F("abs")) {
        if (v.t == LT_INT) {
            if (v.u.i == INT64_MIN) return lt_fail(e, at, LM_ERR_FORMAT, "integer overflow"), 0;
            *out = lt_int(v.u.i < 0 ? -v.u.i : v.u.i);
        } else if (v.t == LT_FLOAT)
            *out = lt_float(fabs(v.u.f));
        else if (v.t == LT_BOOL)
            *out = lt_int(v.u.b);
        else
            return fail_type(e, at, "abs", v);
        return 1;
    }
    if (F("round")) return f_round(e, at, v, a, out);
    if (F("unique") || F("sort") || F("min") || F("max")) {
        if (!lt_iterable(e, at, v, &l)) return 0;
        int cs = opt_bool(a, F("sort") ? 1 : 0, "case_sensitive", 0);
        int rev = F("sort") ? opt_bool(a, 0, "reverse", 0) : 0;
        lt_val attr;
        int has_attr = arg_get(a, F("sort") ? 2 : 1, "attribute", &attr) && attr.t == LT_STR;
        lt_val *items = lt_arena_alloc(&e->ar, (l->n + 1) * sizeof(lt_val));
        lt_val *keys = lt_arena_alloc(&e->ar, (l->n + 1) * sizeof(lt_val));
        if (!items || !keys) return lt_oom(e, at);
        for (size_t i = 0; i < l->n; i++) {
            items[i] = l->items[i];
            keys[i] = l->items[i];
            if (has_attr && !attr_path(e, at, l->items[i], attr.u.s, &keys[i])) return 0;
            if (!cs && keys[i].t == LT_STR && !do_case(e, at, keys[i].u.s, 1, &keys[i])) return 0;
        }
        if (F("unique")) {
            lt_list *c = lt_list_new(&e->ar, l->n);
            if (!c || !lt_step(e, at, l->n * l->n / 64)) return c ? 0 : lt_oom(e, at);
            size_t nk = 0;
            for (size_t i = 0; i < l->n; i++) {
                int seen = 0;
                for (size_t j = 0; j < nk && !seen; j++)
                    seen = lt_equal(keys[j], keys[i], LT_VALUE_MAX_DEPTH);
                if (!seen) {
                    keys[nk++] = keys[i];
                    c->items[c->n++] = items[i];
                }
            }
            *out = list_val(c, 0);
            return 1;
        }
        if (!sort_vals(e, at, items, keys, l->n, 1, rev)) return 0;
        if (F("min") || F("max")) {
            if (l->n == 0)
                *out = lt_undef("min/max of an empty sequence");
            else
                *out = items[F("min") ? 0 : l->n - 1];
            return 1;
        }
        lt_list *c = lt_list_new(&e->ar, 0);
        if (!c) return lt_oom(e, at);
        c->items = items;
        c->n = c->cap = l->n;
        *out = list_val(c, 0);
        return 1;
    }
    if (F("dictsort")) {
        if (v.t != LT_DICT && v.t != LT_NS) return fail_type(e, at, "dictsort", v);
        int cs = opt_bool(a, 0, "case_sensitive", 0);
        lt_val by;
        int by_value = arg_get(a, 1, "by", &by) && by.t == LT_STR && by.u.s->len == 5 &&
                       memcmp(by.u.s->data, "value", 5) == 0;
        int rev = opt_bool(a, 2, "reverse", 0);
        lt_val pairs;
        lt_val dv = v;
        dv.t = LT_DICT;
        if (!lt_call_method(e, at, LT_M_ITEMS, dv, a, &pairs)) return 0;
        size_t cnt = pairs.u.l->n;
        lt_val *keys = lt_arena_alloc(&e->ar, (cnt + 1) * sizeof(lt_val));
        if (!keys) return lt_oom(e, at);
        for (size_t i = 0; i < cnt; i++) {
            keys[i] = pairs.u.l->items[i].u.l->items[by_value ? 1 : 0];
            if (!cs && keys[i].t == LT_STR && !do_case(e, at, keys[i].u.s, 1, &keys[i])) return 0;
        }
        if (!sort_vals(e, at, pairs.u.l->items, keys, cnt, 1, rev)) return 0;
        *out = pairs;
        return 1;
    }
    if (F("sum")) {
        if (!lt_iterable(e, at, v, &l)) return 0;
        lt_val acc = lt_int(0), attr;
        int has_attr = arg_get(a, 0, "attribute", &attr) && attr.t == LT_STR;
        arg_get(a, 1, "start", &acc);
        for (size_t i = 0; i < l->n; i++) {
            lt_val it = l->items[i];
            if (has_attr && !attr_path(e, at, it, attr.u.s, &it)) return 0;
            lt_node fake = *at;
            (void)fake;
            if ((acc.t == LT_INT || acc.t == LT_FLOAT || acc.t == LT_BOOL) &&
                (it.t == LT_INT || it.t == LT_FLOAT || it.t == LT_BOOL)) {
                if (acc.t != LT_FLOAT && it.t != LT_FLOAT) {
                    int64_t r;
                    int64_t x1 = acc.t == LT_INT ? acc.u.i : acc.u.b,
                            y1 = it.t == LT_INT ? it.u.i : it.u.b;
                    if (__builtin_add_overflow(x1, y1, &r))
                        return lt_fail(e, at, LM_ERR_FORMAT, "integer overflow"), 0;
                    acc = lt_int(r);
                } else {
                    double x1 = acc.t == LT_FLOAT ? acc.u.f
                                : acc.t == LT_INT ? (double)acc.u.i
                                                  : acc.u.b;
                    double y1 = it.t == LT_FLOAT ? it.u.f
                                : it.t == LT_INT ? (double)it.u.i
                                                 : it.u.b;
                    acc = lt_float(x1 + y1);
                }
            } else {
                return fail_type(e, at, "sum", it);
            }
        }
        *out = acc;
        return 1;
    }
#undef F
    lt_fail(e, at, LM_ERR_FORMAT, "no filter named '%.*s'", (int)(n > 64 ? 64 : n), nm);
    return 0;
}

int lt_apply_filter(ev *e, const lt_node *at, lt_val v, const lt_args *a, lt_val *out) {
    return filter_by_name(e, at, at->name, at->name_len, v, a, out);
}
