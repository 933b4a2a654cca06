/*
 * tpl.h — internals of the chat-template engine shared by its lexer, parser and evaluator.
 *
 * Pipeline: tpl_lex.c turns source into tokens (whitespace control applied there, as jinja2's
 * lexer does), tpl_parse.c builds an AST of lt_node, tpl_eval.c walks it. Values (lt_val) live
 * in a per-render arena (tpl_value.c) that is freed in one go when the render ends; nothing is
 * reference-counted. The arena counts its bytes so a hostile template cannot allocate without
 * bound. Strings are immutable UTF-8 byte strings; lists and dicts are immutable once built
 * (the sandbox forbids mutation), except namespaces, whose attributes `set ns.x = ...` changes.
 */
#ifndef LM_TEMPLATE_TPL_H
#define LM_TEMPLATE_TPL_H

#include "core/status.h"
#include "template/template.h"

#include <stddef.h>
#include <stdint.h>

/* ---- arena ---------------------------------------------------------------------------- */

typedef struct lt_arena_block lt_arena_block;
typedef struct lt_arena {
    lt_arena_block *head;
    size_t used_total; /* bytes handed out plus block overhead */
    size_t cap;        /* 0 = unlimited */
    int cap_hit;       /* an allocation was refused because of cap */
} lt_arena;

void lt_arena_init(lt_arena *a, size_t cap);
/* Returns 8-aligned zeroed memory or NULL (out of memory or over the cap). */
void *lt_arena_alloc(lt_arena *a, size_t n);
void lt_arena_free(lt_arena *a);

/* ---- values --------------------------------------------------------------------------- */

typedef enum lt_type {
    LT_UNDEF = 0,
    LT_NONE,
    LT_BOOL,
    LT_INT,
    LT_FLOAT,
    LT_STR,
    LT_LIST, /* also tuples (flag) */
    LT_DICT,
    LT_NS,     /* namespace(): a dict whose attributes can be assigned */
    LT_MACRO,  /* a macro or a call block's caller */
    LT_LOOP,   /* the loop variable of a for */
    LT_METHOD, /* a bound method: self + method id */
    LT_FUNC,   /* a global function: id */
} lt_type;

typedef struct lt_str {
    size_t len;
    char data[]; /* len bytes + NUL */
} lt_str;

struct lt_list;
struct lt_dict;
struct lt_node;

typedef struct lt_val {
    uint8_t t;     /* lt_type */
    uint8_t tuple; /* LT_LIST: printed as a tuple */
    int32_t id;    /* LT_METHOD / LT_FUNC: which */
    union {
        int b;
        int64_t i;
        double f;
        lt_str *s;
        struct lt_list *l;
        struct lt_dict *d;
        struct lt_macro *m;
        struct lt_loop *loop;
        struct lt_method *meth;
        const char *uname; /* LT_UNDEF: the missing name (may be NULL) */
    } u;
} lt_val;

typedef struct lt_list {
    size_t n, cap;
    lt_val *items;
} lt_list;

typedef struct lt_dict {
    size_t n, cap;
    lt_val *keys;
    lt_val *vals;
} lt_dict;

typedef struct lt_method {
    lt_val self;
} lt_method;

typedef struct lt_frame lt_frame;
typedef struct lt_macro {
    const struct lt_node *node; /* N_MACRO or N_CALLBLOCK */
    lt_frame *caller_frame;     /* N_CALLBLOCK: the frame the caller body runs in */
} lt_macro;

typedef struct lt_loop {
    int64_t i, n;
    const lt_list *items;
} lt_loop;

static inline lt_val lt_undef(const char *name) {
    lt_val v = {0};
    v.t = LT_UNDEF;
    v.u.uname = name;
    return v;
}
static inline lt_val lt_none(void) {
    lt_val v = {0};
    v.t = LT_NONE;
    return v;
}
static inline lt_val lt_bool(int b) {
    lt_val v = {0};
    v.t = LT_BOOL;
    v.u.b = b != 0;
    return v;
}
static inline lt_val lt_int(int64_t i) {
    lt_val v = {0};
    v.t = LT_INT;
    v.u.i = i;
    return v;
}
static inline lt_val lt_float(double f) {
    lt_val v = {0};
    v.t = LT_FLOAT;
    v.u.f = f;
    return v;
}

/* Growable byte buffer (lm_malloc based) with a cap. */
typedef struct lt_buf {
    char *p;
    size_t n, cap, limit;
    int over; /* set when an append would pass limit or allocation failed */
} lt_buf;

int lt_buf_put(lt_buf *b, const char *s, size_t n); /* 1 ok, 0 over/oom (sticky) */
int lt_buf_putc(lt_buf *b, char c);
void lt_buf_free(lt_buf *b);

/* Copies n values; n may be 0 with NULL pointers (empty lists have no items array). */
static inline void lt_vcopy(lt_val *dst, const lt_val *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

/* Value helpers (tpl_value.c). Functions returning int: 1 ok, 0 failure (arena cap / oom). */
lt_str *lt_str_new(lt_arena *a, const char *s, size_t n);
lt_val lt_str_val(lt_str *s);
int lt_str_mk(lt_arena *a, const char *s, size_t n, lt_val *out);
lt_list *lt_list_new(lt_arena *a, size_t cap);
int lt_list_push(lt_arena *a, lt_list *l, lt_val v);
lt_dict *lt_dict_new(lt_arena *a, size_t cap);
/* Sets key (replacing an equal key's value in place, keeping its position). */
int lt_dict_set(lt_arena *a, lt_dict *d, lt_val k, lt_val v);
/* Returns a pointer to the value of a string key, or NULL. */
lt_val *lt_dict_get_str(const lt_dict *d, const char *k, size_t klen);
lt_val *lt_dict_get(const lt_dict *d, lt_val k);

int lt_truthy(lt_val v);
/* Python ==; depth-capped (deeper compares unequal). */
int lt_equal(lt_val a, lt_val b, int depth);
const char *lt_type_name(lt_val v);
size_t lt_utf8_count(const char *s, size_t n);

/* Appends Python's str(v) (none -> None, floats repr-style, lists/dicts as repr). Returns 0 on
 * buffer overflow or when nesting passes depth. */
int lt_to_str(lt_buf *b, lt_val v, int depth);
int lt_repr(lt_buf *b, lt_val v, int depth);
void lt_fmt_float(double f, char out[40]);
/* json.dumps options (transformers' tojson passes these through). */
typedef struct lt_json_opts {
    int indent;          /* < 0: none */
    const char *ind_str; /* indent given as a string (NULL: indent spaces) */
    size_t ind_len;
    const char *item_sep; /* default ", " without indent, "," with */
    size_t item_sep_len;
    const char *key_sep; /* default ": " */
    size_t key_sep_len;
    int sort_keys;
    int ensure_ascii; /* escape non-ASCII (and DEL) as \uXXXX */
} lt_json_opts;

/* json.dumps(v, **opts). Returns 1 ok, 0 on overflow/depth, -1 when a value is not
 * serialisable. */
int lt_to_json(lt_buf *b, lt_val v, const lt_json_opts *o, int level, int depth);

/* ---- tokens and AST ------------------------------------------------------------------- */

typedef enum lt_tok_type {
    TK_EOF = 0,
    TK_TEXT,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
} lt_tok_type;

typedef enum lt_op {
    OP_NONE = 0,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_TILDE,
    OP_LPAREN,
    OP_RPAREN,
    OP_LBRACKET,
    OP_RBRACKET,
    OP_LBRACE,
    OP_RBRACE,
    OP_COMMA,
    OP_DOT,
    OP_COLON,
    OP_PIPE,
    OP_ASSIGN,
    OP_SEMICOLON,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    /* not lexer operators: */
    OP_IN,
    OP_NOTIN,
    OP_NOT,
    OP_NEG,
    OP_POS,
} lt_op;

typedef struct lt_token {
    uint8_t type;
    uint8_t op;
    uint32_t line, col;
    const char *s; /* TEXT, NAME, STRING: bytes (decoded, in the compile arena) */
    size_t len;
    int64_t i;
    double f;
} lt_token;

typedef enum lt_kind {
    N_CONST = 1,
    N_NAME,
    N_LIST,
    N_TUPLE,
    N_DICT,
    N_GETATTR,
    N_GETITEM,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_UNARY,
    N_BINARY,
    N_AND,
    N_OR,
    N_COMPARE,
    N_COND,
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SETBLOCK,
    N_MACRO,
    N_CALLBLOCK,
    N_BREAK,
    N_CONTINUE,
    N_FILTERBLOCK,
    N_BODY,
} lt_kind;

typedef struct lt_node lt_node;
struct lt_node {
    uint8_t kind;
    uint8_t op; /* N_UNARY/N_BINARY operator; N_TEST: negated */
    uint32_t line, col;
    lt_node *a, *b, *c, *d;
    lt_node **kids; /* args, items, body, dict keys */
    size_t nkids;
    lt_node **kids2; /* kwarg values, else-body, dict values, macro defaults */
    size_t nkids2;
    const char **names; /* kwarg names, macro params, for targets */
    size_t *name_lens;
    size_t nnames;
    uint8_t *ops;     /* N_COMPARE: one per kid */
    const char *name; /* identifier, attribute, filter/test name, text */
    size_t name_len;
    lt_val lit; /* N_CONST (strings point into the compile arena) */
};

struct lm_template {
    lt_arena arena; /* tokens' strings and the AST */
    lt_node *root;  /* N_BODY */
};

/* Lexer: tokens into *toks (lm_malloc'd array). */
lm_status lt_lex(lt_arena *a, const char *src, size_t len, lt_token **toks, size_t *ntoks,
                 lm_err *err);
/* Parser: AST of tokens. */
lm_status lt_parse(lt_arena *a, const lt_token *toks, size_t ntoks, lt_node **root, lm_err *err);

#define LT_PARSE_MAX_NEST 200  /* syntax nesting (brackets, blocks, operators) */
#define LT_VALUE_MAX_DEPTH 200 /* nesting of values printed, compared or converted */

#endif
