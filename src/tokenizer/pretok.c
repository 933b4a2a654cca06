/*
 * pretok.c — pre-tokenizers: the regex lists that split text into words before BPE.
 *
 * A pre-tokenizer is a list of PCRE2 patterns applied in sequence: the first splits the text
 * into its matches and the gaps between them (both kept, in order); each next pattern splits
 * every piece of the previous step the same way (Hugging Face Split(behavior=Isolated) chained
 * in a Sequence; llama.cpp's unicode_regex_split). Anchors and lookarounds see only the piece.
 *
 * The pattern strings are the ones llama.cpp uses for each tokenizer.ggml.pre name (facts about
 * each model's tokenizer.json; case-insensitive groups written out as character classes).
 * Compiled once per tokenizer with UTF + UCP (\p{..}, \s follow Unicode) and
 * MATCH_INVALID_UTF (invalid UTF-8 in the input never matches, so it ends up in the gaps and
 * is still tokenized byte by byte), then JIT-compiled when the JIT is available.
 */
#include "core/alloc.h"
#include "tokenizer/tok_internal.h"

#include <string.h>

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACT "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"       \
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"            \
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN35                                                                                  \
    RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+"        \
                "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* GPT-4o / Llama 4 (o200k): case-aware letter runs with optional contraction suffix */
#define RE_LU "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_LL "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RE_O200K_WORDS                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_LU "*" RE_LL "+" RE_CONTRACT "?|[^\\r\\n\\p{L}\\p{N}]?" RE_LU      \
    "+" RE_LL "*" RE_CONTRACT "?"
#define RE_O200K_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_LU "*" RE_LL "+|[^\\r\\n\\p{L}\\p{N}]?" RE_LU "+" RE_LL            \
    "*|\\p{N}" RE_O200K_TAIL
#define RE_DS3_PUNCT                                                                               \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"           \
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK_DS "[一-龥ࠀ-一가-퟿]+"
#define RE_PORO " ?[^(\\s|.,!?…。，、।۔،)]+"

/* flags of a pre-tokenizer name (llama.cpp's llama_vocab::impl::load) */
#define P_IGNORE_MERGES 1 /* a whole word that is a token is emitted as is */
#define P_CLEAN 2         /* decode applies clean_up_tokenization_spaces */
#define P_ADD_BOS 4       /* add_bos defaults to on */
#define P_RAW 8           /* raw UTF-8 BPE with ' ' -> U+2581 (no GPT-2 byte alphabet) */
#define P_NO_BOS 16       /* the model default bos id does not apply */

typedef struct pre_def {
    const char *names; /* '|'-separated tokenizer.ggml.pre names */
    const char *re[LM_TOK_MAX_REGEX];
    int flags;
} pre_def;

static const pre_def k_pre[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, P_CLEAN},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
     {RE_LLAMA3},
     P_IGNORE_MERGES | P_CLEAN | P_ADD_BOS},
    {"dbrx|smaug-bpe", {RE_LLAMA3}, P_CLEAN},
    {"deepseek-llm",
     {"[\r\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-"
      "ᏽᲐ-"
      "ᲺᲽ-"
      "Ჿᴀ-"
      "ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-"
      "ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-"
      "𐓻𐲀-"
      "𐲲𐳀-"
      "𐳲𑢠-"
      "𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", RE_CJK_DS, "\\p{N}+"},
     0},
    {"deepseek-coder", {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK_DS, "\\p{N}"}, 0},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, P_CLEAN},
    {"starcoder|refact|codeshell|exaone|minerva-7b|mellum2", {"\\p{N}", RE_GPT2}, P_CLEAN},
    {"command-r|smollm", {"\\p{N}", RE_GPT2}, 0},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
     "exaone4|mpt|olmo|jais|jina-v1-en|jina-v2-code|roberta-bpe",
     {RE_GPT2},
     P_CLEAN},
    {"trillion|granite-docling", {RE_GPT2}, 0},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|hunyuan|solar-open", {RE_QWEN2}, 0},
    {"stablelm2|megrez", {RE_QWEN2}, P_CLEAN},
    {"qwen35", {RE_QWEN35}, 0},
    {"poro-chat", {RE_PORO}, 0},
    {"bloom|gpt3-finnish", {RE_PORO}, P_CLEAN},
    {"viking", {RE_PORO, "\\p{N}"}, 0},
    {"chatglm-bpe|glm4", {RE_LLAMA3}, P_CLEAN | P_NO_BOS},
    {"seed-coder",
     {RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|"
                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     0},
    {"bailingmoe|bailingmoe2|llada-moe",
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?"
      "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     0},
    {"grok-2", {RE_QWEN2}, 0},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", {RE_O200K_WORDS "|\\p{N}{1,3}" RE_O200K_TAIL}, 0},
    {"tekken", {RE_TEKKEN}, P_IGNORE_MERGES | P_ADD_BOS},
    {"tiny_aya|cohere2moe",
     {"\\d{1,3}(?=(?:\\d{3})*\\b)", RE_O200K_WORDS "|\\p{N}{1,3}" RE_O200K_TAIL},
     0},
    {"superbpe", {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}, 0},
    {"deepseek-v3|hunyuan-dense|joyai-llm|hy_v4",
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+", RE_DS3_PUNCT},
     0},
    {"chameleon",
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2},
     P_ADD_BOS},
    {"exaone-moe",
     {RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?"
                  "[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
     P_CLEAN},
    {"minicpm5",
     {"\\p{N}{1,3}", RE_CONTRACT "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
                                 "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     P_IGNORE_MERGES | P_CLEAN},
    {"laguna", {"[^\\n]+|[\\n]+", RE_QWEN2}, 0},
    {"ufakzeka",
     {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+"},
     0},
    {"gemma4|granite-embed-multi-311m", {"[^\\n]+|[\\n]+"}, P_CLEAN | P_RAW},
};

static int name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    const char *p = names;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static const pre_def *pre_find(const char *name) {
    if (!name || !*name) name = "default";
    for (size_t i = 0; i < sizeof k_pre / sizeof k_pre[0]; i++)
        if (name_in(k_pre[i].names, name)) return &k_pre[i];
    return NULL;
}

lm_status lm_vocab_spec_set_pre(lm_vocab_spec *spec, const char *pre, lm_err *err) {
    const pre_def *d = pre_find(pre);
    if (!d)
        return lm_err_set(err, LM_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer '%s'",
                          pre ? pre : "");
    spec->pre = pre;
    if (spec->model != LM_TOK_MODEL_BPE) return LM_OK;
    spec->ignore_merges = !!(d->flags & P_IGNORE_MERGES);
    spec->clean_spaces = !!(d->flags & P_CLEAN);
    if (d->flags & P_ADD_BOS) spec->add_bos = 1;
    if (d->flags & P_NO_BOS) spec->special[LM_TOK_BOS] = -1;
    spec->escape_whitespace = !!(d->flags & P_RAW);
    spec->byte_encode = !(d->flags & P_RAW);
    return LM_OK;
}

static lm_status compile_one(lm_tokenizer *tk, const char *pat, lm_err *err) {
    int ec = 0;
    PCRE2_SIZE eo = 0;
    pcre2_code *re = pcre2_compile(
        (PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return lm_err_set(err, LM_ERR_FORMAT,
                          "tokenizer: pre-tokenizer regex '%.80s' does not compile at %zu: %s", pat,
                          (size_t)eo, (const char *)msg);
    }
    /* JIT is an optimisation only: without it (no JIT support, no executable memory) the
     * interpreter gives the same matches. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    tk->re[tk->n_re++] = re;
    return LM_OK;
}

lm_status lm_tok_pretok_init(lm_tokenizer *tk, const lm_vocab_spec *spec, lm_err *err) {
    if (spec->model != LM_TOK_MODEL_BPE) return LM_OK;
    if (spec->n_regex) {
        if (spec->n_regex > LM_TOK_MAX_REGEX || !spec->regex)
            return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: %zu regexes (max %d)",
                              spec->n_regex, LM_TOK_MAX_REGEX);
        for (size_t i = 0; i < spec->n_regex; i++) {
            if (!spec->regex[i])
                return lm_err_set(err, LM_ERR_INVALID_ARG, "tokenizer: regex %zu is NULL", i);
            lm_status s = compile_one(tk, spec->regex[i], err);
            if (s) return s;
        }
    } else {
        const pre_def *d = pre_find(spec->pre);
        if (!d)
            return lm_err_set(err, LM_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer '%s'",
                              spec->pre);
        for (size_t i = 0; i < LM_TOK_MAX_REGEX && d->re[i]; i++) {
            lm_status s = compile_one(tk, d->re[i], err);
            if (s) return s;
        }
        tk->newline_word_fix = !!(d->flags & P_RAW);
    }
    return LM_OK;
}

/* One split step: pieces of `in` -> pieces of `out` (offset/length pairs into text). */
typedef struct span {
    size_t off, len;
} span;
typedef struct spanvec {
    span *v;
    size_t n, cap;
} spanvec;

static lm_status span_push(spanvec *sv, size_t off, size_t len) {
    if (len == 0) return LM_OK;
    if (sv->n == sv->cap) {
        size_t nc = sv->cap ? sv->cap * 2 : 64;
        span *nv = lm_realloc(sv->v, nc * sizeof *nv);
        if (!nv) return LM_ERR_NOMEM;
        sv->v = nv;
        sv->cap = nc;
    }
    sv->v[sv->n++] = (span){off, len};
    return LM_OK;
}

static lm_status split_piece(pcre2_code *re, lm_tok_matcher *m, const char *text, size_t off,
                             size_t len, spanvec *out, lm_err *err) {
    const unsigned char *s = (const unsigned char *)text + off;
    pcre2_match_data *md = m->md;
    size_t pos = 0, gap = 0;
    while (pos < len) {
        int rc = pcre2_match(re, s, len, pos, 0, md, m->mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !m->js) {
            /* the default 32 KiB JIT stack was too small (a long whitespace run): give this
             * call a private large one and match again from the same position */
            m->js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
            if (!m->js) return LM_ERR_NOMEM;
            pcre2_jit_stack_assign(m->mc, NULL, m->js);
            continue;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lm_err_set(err, LM_ERR_INTERNAL, "tokenizer: regex match failed: %s",
                              (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* an empty match (lookahead-only patterns such as superbpe's digit grouping) is a
             * cut point: the text before it becomes a piece; look again one character on */
            if (ms >= len) break;
            if (ms > gap) {
                if (span_push(out, off + gap, ms - gap)) return LM_ERR_NOMEM;
                gap = ms;
            }
            pos = ms + lm_utf8_unit(s + ms, len - ms);
            continue;
        }
        if (span_push(out, off + gap, ms - gap)) return LM_ERR_NOMEM;
        if (span_push(out, off + ms, me - ms)) return LM_ERR_NOMEM;
        gap = pos = me;
    }
    if (span_push(out, off + gap, len - gap)) return LM_ERR_NOMEM;
    return LM_OK;
}

lm_status lm_tok_matcher_init(lm_tok_matcher *m) {
    m->md = pcre2_match_data_create(1, NULL);
    m->mc = pcre2_match_context_create(NULL);
    /* JIT matching starts on PCRE2's default 32 KiB stack; split_piece gives the call a
     * private 4 MiB JIT stack only when a match needs more (long whitespace runs). Creating
     * that stack up front cost an mmap and page faults per encode call. */
    m->js = NULL;
    if (!m->md || !m->mc) {
        lm_tok_matcher_free(m);
        return LM_ERR_NOMEM;
    }
    return LM_OK;
}

void lm_tok_matcher_free(lm_tok_matcher *m) {
    pcre2_match_data_free(m->md);
    pcre2_match_context_free(m->mc);
    pcre2_jit_stack_free(m->js);
    m->md = NULL;
    m->mc = NULL;
    m->js = NULL;
}

lm_status lm_tok_pretok_split(const lm_tokenizer *tk, lm_tok_matcher *m, const char *text,
                              size_t len, lm_tok_piece_fn fn, void *ctx, lm_err *err) {
    lm_status st = LM_OK;
    spanvec a = {0}, b = {0};
    if (len == 0) return LM_OK;
    if (span_push(&a, 0, len)) goto nomem;
    if (tk->n_re && !m->md && lm_tok_matcher_init(m)) goto nomem;
    for (size_t r = 0; r < tk->n_re; r++) {
        b.n = 0;
        for (size_t i = 0; i < a.n; i++) {
            st = split_piece(tk->re[r], m, text, a.v[i].off, a.v[i].len, &b, err);
            if (st) goto done;
        }
        spanvec t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < a.n; i++) {
        st = fn(ctx, text + a.v[i].off, a.v[i].len);
        if (st) goto done;
    }
    goto done;
nomem:
    st = LM_ERR_NOMEM;
done:
    if (st == LM_ERR_NOMEM) lm_err_set(err, LM_ERR_NOMEM, "tokenizer: out of memory");
    lm_free(a.v);
    lm_free(b.v);
    return st;
}
