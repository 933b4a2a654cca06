/*
 * tpl_lex.c — the template lexer: source text to tokens, whitespace control included.
 *
 * Mirrors jinja2's lexer as transformers configures it (trim_blocks=True, lstrip_blocks=True,
 * keep_trailing_newline=False):
 *   - "\r\n" and "\r" become "\n" first, and one trailing newline of the template is dropped;
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag; "-%}", "-}}", "-#}" all after;
 *   - trim_blocks: a single "\n" right after "%}" or "#}" is dropped ("+%}" keeps it);
 *   - lstrip_blocks: spaces and tabs between a line start and "{%" or "{#" are dropped
 *     ("{%+" keeps them; "{{" is never lstripped);
 *   - "{% raw %}...{% endraw %}" passes its body through as text;
 *   - inside a tag the end marker only counts when (), [] and {} are balanced, so
 *     "{{ {'a': {'b': 1}} }}" lexes.
 * String literals are unescaped like Python's unicode-escape codec. Positions are 1-based
 * line:column (column in characters).
 */
#include "template/tpl.h"

#include "core/alloc.h"
#include "core/checked.h"

#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    lt_arena *arena;
    const char *s; /* normalized source */
    size_t n;
    /* position tracker (monotonic) */
    size_t t_pos;
    uint32_t t_line, t_col;
    lt_token *toks;
    size_t ntoks, cap;
    lm_err *err;
} lexer;

/* Line and column of pos. Positions are asked for in increasing order, so this advances a
 * cursor (linear overall, even for a template that is one long line). */
static void where(lexer *lx, size_t pos, uint32_t *line, uint32_t *col) {
    if (pos < lx->t_pos) { /* an error about an earlier position: recount from the start */
        lx->t_pos = 0;
        lx->t_line = 1;
        lx->t_col = 1;
    }
    for (size_t i = lx->t_pos; i < pos && i < lx->n; i++) {
        if (lx->s[i] == '\n') {
            lx->t_line++;
            lx->t_col = 1;
        } else if (((unsigned char)lx->s[i] & 0xC0) != 0x80) {
            lx->t_col++;
        }
    }
    lx->t_pos = pos;
    *line = lx->t_line;
    *col = lx->t_col;
}

static lm_status lex_fail(lexer *lx, size_t pos, const char *msg) {
    uint32_t line, col;
    where(lx, pos, &line, &col);
    return lm_err_set(lx->err, LM_ERR_FORMAT, "template:%u:%u: syntax error: %s", line, col, msg);
}

static lt_token *push(lexer *lx, uint8_t type, size_t pos) {
    if (lx->ntoks == lx->cap) {
        size_t nc = lx->cap ? lx->cap * 2 : 256, sz;
        if (!lm_mul_size(nc, sizeof(lt_token), &sz)) return NULL;
        lt_token *nt = lm_realloc(lx->toks, sz);
        if (!nt) return NULL;
        lx->toks = nt;
        lx->cap = nc;
    }
    lt_token *t = &lx->toks[lx->ntoks++];
    memset(t, 0, sizeof *t);
    t->type = type;
    where(lx, pos, &t->line, &t->col);
    return t;
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static lm_status emit_text(lexer *lx, size_t start, const char *p, size_t n) {
    if (n == 0) return LM_OK;
    lt_token *t = push(lx, TK_TEXT, start);
    if (!t) return lm_err_set(lx->err, LM_ERR_NOMEM, "template: out of memory");
    t->s = p;
    t->len = n;
    return LM_OK;
}

/* Applies the whitespace rules for text src[a..b) that precedes a tag opened with sign
 * ('-', '+' or 0); lstrip applies to block and comment tags. Returns the kept length. */
static size_t strip_before(lexer *lx, size_t a, size_t b, char sign, int lstrip_ok) {
    const char *s = lx->s;
    if (sign == '-') {
        while (b > a && is_ws(s[b - 1]))
            b--;
        return b - a;
    }
    if (sign != '+' && lstrip_ok) {
        size_t l = b;
        while (l > a && s[l - 1] != '\n')
            l--;
        int line_starting = l > a || a == 0 || s[a - 1] == '\n';
        if (line_starting && l < b) {
            size_t k = l;
            while (k < b && is_ws(s[k]))
                k++;
            if (k == b) return l - a;
        }
    }
    return b - a;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Unescapes the string body s[a..b) into the arena (Python unicode-escape rules). */
static lm_status unescape(lexer *lx, size_t a, size_t b, lt_token *t) {
    const char *s = lx->s;
    char *o = lt_arena_alloc(lx->arena, b - a + 1);
    if (!o) return lm_err_set(lx->err, LM_ERR_NOMEM, "template: out of memory");
    size_t n = 0;
    for (size_t i = a; i < b; i++) {
        if (s[i] != '\\' || i + 1 >= b) {
            o[n++] = s[i];
            continue;
        }
        char c = s[++i];
        uint32_t cp;
        int digits = 0;
        switch (c) {
        case '\n': break; /* line continuation */
        case '\\': o[n++] = '\\'; break;
        case '\'': o[n++] = '\''; break;
        case '"': o[n++] = '"'; break;
        case 'a': o[n++] = '\a'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'v': o[n++] = '\v'; break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int k = 0; k < 2 && i + 1 < b && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(s[++i] - '0');
                n += put_utf8(o + n, cp);
            } else {
                o[n++] = '\\';
                o[n++] = c;
            }
            break;
        }
        if (digits) {
            cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = i + 1 < b ? hexval(s[i + 1]) : -1;
                if (h < 0) return lex_fail(lx, i, "truncated \\x, \\u or \\U escape in string");
                cp = cp * 16 + (uint32_t)h;
                i++;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return lex_fail(lx, i, "escape is not a valid Unicode scalar value");
            n += put_utf8(o + n, cp);
        }
    }
    o[n] = '\0';
    t->s = o;
    t->len = n;
    return LM_OK;
}

static const struct {
    const char *s;
    uint8_t op;
} OPS[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW},   {"==", OP_EQ},    {"!=", OP_NE},    {"<=", OP_LE},
    {">=", OP_GE},       {"+", OP_ADD},    {"-", OP_SUB},    {"*", OP_MUL},    {"/", OP_DIV},
    {"%", OP_MOD},       {"~", OP_TILDE},  {"(", OP_LPAREN}, {")", OP_RPAREN}, {"[", OP_LBRACKET},
    {"]", OP_RBRACKET},  {"{", OP_LBRACE}, {"}", OP_RBRACE}, {",", OP_COMMA},  {".", OP_DOT},
    {":", OP_COLON},     {"|", OP_PIPE},   {"=", OP_ASSIGN}, {"<", OP_LT},     {">", OP_GT},
    {";", OP_SEMICOLON},
};

/* Lexes a number at s[i]; returns the end or 0 when none. */
static size_t lex_number(lexer *lx, size_t i, lt_token *t, int after_dot) {
    const char *s = lx->s;
    size_t n = lx->n, j = i;
    char buf[128];
    size_t bl = 0;
    if (!is_digit(s[i])) return 0;
    if (s[i] == '0' && i + 1 < n && strchr("bBoOxX", s[i + 1]) && s[i + 1]) {
        int base = (s[i + 1] | 0x20) == 'b' ? 2 : (s[i + 1] | 0x20) == 'o' ? 8 : 16;
        j = i + 2;
        uint64_t v = 0;
        int any = 0;
        while (j < n) {
            if (s[j] == '_' && j + 1 < n && hexval(s[j + 1]) >= 0 && hexval(s[j + 1]) < base) {
                j++;
                continue;
            }
            int h = hexval(s[j]);
            if (h < 0 || h >= base) break;
            if (v > (UINT64_MAX - (uint64_t)h) / (uint64_t)base) return (size_t)-1;
            v = v * (uint64_t)base + (uint64_t)h;
            any = 1;
            j++;
        }
        if (!any) return 0;
        if (v > INT64_MAX) return (size_t)-1;
        t->type = TK_INT;
        t->i = (int64_t)v;
        return j;
    }
    /* Python (and jinja2) have no leading-zero decimals: "01" lexes as 0 then 1 */
    if (s[i] == '0' && !(i + 1 < n && (s[i + 1] == '.' || s[i + 1] == 'e' || s[i + 1] == 'E' ||
                                       s[i + 1] == '_'))) {
        t->type = TK_INT;
        t->i = 0;
        return i + 1;
    }
    /* digits with single '_' separators */
#define DIGITS()                                                                                   \
    do {                                                                                           \
        while (j < n && (is_digit(s[j]) || (s[j] == '_' && j + 1 < n && is_digit(s[j + 1]) &&      \
                                            j > i && is_digit(s[j - 1])))) {                       \
            if (s[j] != '_' && bl < sizeof buf - 8) buf[bl++] = s[j];                              \
            j++;                                                                                   \
        }                                                                                          \
    } while (0)
    DIGITS();
    int is_float = 0;
    if (!after_dot && j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) {
        is_float = 1;
        buf[bl++] = s[j++];
        size_t k = j;
        (void)k;
        DIGITS();
    }
    if (!after_dot && j < n && (s[j] == 'e' || s[j] == 'E')) {
        size_t k = j + 1;
        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
        if (k < n && is_digit(s[k])) {
            is_float = 1;
            buf[bl++] = 'e';
            if (s[j + 1] == '-') buf[bl++] = '-';
            j = k;
            DIGITS();
        }
    }
#undef DIGITS
    buf[bl] = '\0';
    if (is_float) {
        t->type = TK_FLOAT;
        t->f = strtod(buf, NULL);
    } else {
        /* Python ints are unbounded; ours are int64 and say so. */
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (v > INT64_MAX || bl > 19) return (size_t)-1;
        t->type = TK_INT;
        t->i = (int64_t)v;
    }
    return j;
}

/* Lexes the inside of a {{ }} or {% %} tag from *pi; stops after the end marker. */
static lm_status lex_tag(lexer *lx, size_t *pi, int is_block, size_t open_pos) {
    const char *s = lx->s;
    size_t n = lx->n, i = *pi;
    char stack[LT_PARSE_MAX_NEST];
    int depth = 0;
    for (;;) {
        while (i < n && is_ws(s[i]))
            i++;
        if (i >= n)
            return lex_fail(lx, open_pos, is_block ? "unclosed block tag '{%'" : "unclosed '{{'");
        if (depth == 0) {
            const char *end = is_block ? "%}" : "}}";
            size_t e = 0;
            int minus = 0, plus = 0;
            if (s[i] == '-' && i + 2 < n && s[i + 1] == end[0] && s[i + 2] == end[1]) {
                minus = 1;
                e = i + 3;
            } else if (is_block && s[i] == '+' && i + 2 < n && s[i + 1] == '%' && s[i + 2] == '}') {
                plus = 1;
                e = i + 3;
            } else if (i + 1 < n && s[i] == end[0] && s[i + 1] == end[1]) {
                e = i + 2;
            }
            if (e) {
                lt_token *t = push(lx, is_block ? TK_BLOCK_END : TK_VAR_END, i);
                if (!t) return lm_err_set(lx->err, LM_ERR_NOMEM, "template: out of memory");
                if (minus)
                    while (e < n && is_ws(s[e]))
                        e++;
                else if (is_block && !plus && e < n && s[e] == '\n')
                    e++; /* trim_blocks */
                *pi = e;
                return LM_OK;
            }
        }
        lt_token *t = push(lx, TK_EOF, i);
        if (!t) return lm_err_set(lx->err, LM_ERR_NOMEM, "template: out of memory");
        char c = s[i];
        if (is_alpha(c) || (unsigned char)c >= 0x80) {
            size_t j = i;
            while (j < n && (is_alpha(s[j]) || is_digit(s[j])))
                j++;
            if (j == i) return lex_fail(lx, i, "unexpected character (identifiers are ASCII)");
            t->type = TK_NAME;
            t->s = s + i;
            t->len = j - i;
            i = j;
            continue;
        }
        if (is_digit(c)) {
            size_t j = lex_number(lx, i, t, i > 0 && s[i - 1] == '.');
            if (j == (size_t)-1) return lex_fail(lx, i, "integer literal out of range");
            if (j == 0) return lex_fail(lx, i, "bad number");
            i = j;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != c)
                j += s[j] == '\\' ? 2 : 1;
            if (j >= n) return lex_fail(lx, i, "unterminated string literal");
            t->type = TK_STRING;
            lm_status st = unescape(lx, i + 1, j, t);
            if (st != LM_OK) return st;
            i = j + 1;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
            size_t l = strlen(OPS[k].s);
            if (i + l <= n && memcmp(s + i, OPS[k].s, l) == 0) break;
        }
        if (k == sizeof OPS / sizeof OPS[0]) return lex_fail(lx, i, "unexpected character");
        t->type = TK_OP;
        t->op = OPS[k].op;
        i += strlen(OPS[k].s);
        if (t->op == OP_LPAREN || t->op == OP_LBRACKET || t->op == OP_LBRACE) {
            if (depth >= LT_PARSE_MAX_NEST)
                return lex_fail(lx, i - 1, "brackets nested too deeply");
            stack[depth++] = (char)t->op;
        } else if (t->op == OP_RPAREN || t->op == OP_RBRACKET || t->op == OP_RBRACE) {
            uint8_t want = t->op == OP_RPAREN     ? OP_LPAREN
                           : t->op == OP_RBRACKET ? OP_LBRACKET
                                                  : OP_LBRACE;
            if (depth == 0) return lex_fail(lx, i - 1, "unexpected closing bracket");
            if ((uint8_t)stack[depth - 1] != want) return lex_fail(lx, i - 1, "mismatched bracket");
            depth--;
        }
    }
}

/* Is s[i..] "{%" sign? ws* "raw" ws* ("-%}" | "%}")? Returns the end of the tag or 0. */
static size_t match_raw_tag(const char *s, size_t n, size_t i, const char *word, char *sign) {
    size_t j = i + 2;
    *sign = 0;
    if (j < n && (s[j] == '-' || s[j] == '+')) *sign = s[j++];
    while (j < n && is_ws(s[j]))
        j++;
    size_t wl = strlen(word);
    if (j + wl > n || memcmp(s + j, word, wl) != 0) return 0;
    j += wl;
    if (j < n && (is_alpha(s[j]) || is_digit(s[j]))) return 0;
    while (j < n && is_ws(s[j]))
        j++;
    if (j + 1 < n && s[j] == '%' && s[j + 1] == '}') return j + 2;
    if (j + 2 < n && (s[j] == '-' || s[j] == '+') && s[j + 1] == '%' && s[j + 2] == '}') {
        size_t e = j + 3;
        if (s[j] == '-')
            while (e < n && is_ws(s[e]))
                e++;
        return e;
    }
    return 0;
}

lm_status lt_lex(lt_arena *a, const char *src, size_t len, lt_token **toks, size_t *ntoks,
                 lm_err *err) {
    lexer lx = {0};
    lx.arena = a;
    lx.err = err;
    lx.t_line = 1;
    lx.t_col = 1;
    /* normalize newlines, drop one trailing newline */
    char *s = lt_arena_alloc(a, len + 1);
    if (!s) return lm_err_set(err, LM_ERR_NOMEM, "template: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = '\0';
    lx.s = s;
    lx.n = n;
    lm_status st = LM_OK;
    size_t pos = 0;
    while (pos < n) {
        /* find the next tag opener */
        size_t i = pos;
        while (i + 1 < n &&
               !(s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')))
            i++;
        if (i + 1 >= n) {
            st = emit_text(&lx, pos, s + pos, n - pos);
            if (st != LM_OK) goto fail;
            break;
        }
        char kind = s[i + 1];
        char sign = (i + 2 < n && (s[i + 2] == '-' || s[i + 2] == '+')) ? s[i + 2] : 0;
        size_t keep = strip_before(&lx, pos, i, sign, kind != '{');
        st = emit_text(&lx, pos, s + pos, keep);
        if (st != LM_OK) goto fail;
        size_t body = i + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t j = body;
            while (j + 1 < n && !(s[j] == '#' && s[j + 1] == '}'))
                j++;
            if (j + 1 >= n) {
                st = lex_fail(&lx, i, "unclosed comment '{#'");
                goto fail;
            }
            size_t e = j + 2;
            if (j > body && s[j - 1] == '-') {
                while (e < n && is_ws(s[e]))
                    e++;
            } else if (!(j > body && s[j - 1] == '+') && e < n && s[e] == '\n') {
                e++;
            }
            pos = e;
            continue;
        }
        if (kind == '%') {
            char rs;
            size_t re = match_raw_tag(s, n, i, "raw", &rs);
            if (re) {
                /* raw body up to {% endraw %} */
                size_t j = re;
                size_t ee = 0;
                char es = 0;
                for (; j + 1 < n; j++)
                    if (s[j] == '{' && s[j + 1] == '%' &&
                        (ee = match_raw_tag(s, n, j, "endraw", &es)))
                        break;
                if (!ee) {
                    st = lex_fail(&lx, i, "missing end of raw directive");
                    goto fail;
                }
                size_t k2 = strip_before(&lx, re, j, es, 1);
                st = emit_text(&lx, re, s + re, k2);
                if (st != LM_OK) goto fail;
                /* trim_blocks after endraw unless '+' or '-' already ate whitespace */
                if (s[ee - 1] == '}' && s[ee - 2] == '%' && ee < n && s[ee] == '\n') {
                    size_t q = ee - 3;
                    if (s[q] != '+') ee++;
                }
                pos = ee;
                continue;
            }
        }
        lt_token *t = push(&lx, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, i);
        if (!t) {
            st = lm_err_set(err, LM_ERR_NOMEM, "template: out of memory");
            goto fail;
        }
        size_t p = body;
        st = lex_tag(&lx, &p, kind == '%', i);
        if (st != LM_OK) goto fail;
        pos = p;
    }
    if (!push(&lx, TK_EOF, n)) {
        st = lm_err_set(err, LM_ERR_NOMEM, "template: out of memory");
        goto fail;
    }
    *toks = lx.toks;
    *ntoks = lx.ntoks;
    return LM_OK;
fail:
    lm_free(lx.toks);
    return st;
}
