/*
 * bench_tokenize.c — tokenizer encoding throughput (MB/s of input text, tokens/s).
 *
 * Tokenizers (each skipped with a JSON note when its file is not installed):
 *   smollm2_gguf  models/smollm2-135m-instruct-q4_1.gguf          byte-level BPE
 *   gemma3_gguf   models/gemma-3-270m-q4_k_m.gguf                 SentencePiece BPE (SPM)
 *   bert_json     models/all-minilm-l6-v2/tokenizer.json          WordPiece
 *   smollm2_json  tests/data/tokenizer/smollm2/tokenizer.json     byte-level BPE
 *
 * Corpus: by default generated deterministically (fixed seed, --size-mb MB, default 4):
 * English prose-like paragraphs (most of the bytes), code in several languages, numbers and
 * data lines, the lines of tests/data/tokenizer/corpus.txt (escapes decoded as
 * tools/gen_tokenizer_goldens.py does: many scripts, emoji, special-token text) and CJK / emoji
 * runs. --corpus FILE encodes FILE instead. The corpus is cut into pieces:
 *   --mode block (default): whole lines gathered up to 64 KiB a piece (a piece ends after a '\n';
 *                 a line longer than 64 KiB is a piece of its own);
 *   --mode line:  every line (ending after its '\n') is a piece.
 * Each piece is one lm_tokenizer_encode call (add_special = 0, parse_special = 1, the Hugging
 * Face default of splitting special-token text), single-threaded. tools/bench_tokenize_peer.py
 * cuts the same bytes (--dump-corpus PATH) the same way and encodes each piece with
 * Hugging Face `tokenizers`' Tokenizer.encode; --dump-ids DIR writes DIR/<name>.ids (per piece:
 * uint32 count, then the int32 ids, little-endian) for its id comparison.
 *
 * Timing: one warm-up pass, then --runs passes (default 3); MB/s (1e6 bytes/s) of the best pass,
 * with the median beside it. Prints one JSON document on stdout.
 */
#include "core/alloc.h"
#include "core/file.h"
#include "core/status.h"
#include "format/gguf.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEED_CORPUS "tests/data/tokenizer/corpus.txt"
#define BLOCK_BYTES 65536

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(uint32_t n) { /* uniform-ish in [0, n) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % n);
}

/* ---------------------------------------------------------------- growable text buffer */

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1 << 20;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
static void putf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_cp(buf *b, uint32_t c) {
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xC0 | (c >> 6));
        u[1] = (char)(0x80 | (c & 0x3F));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xE0 | (c >> 12));
        u[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[2] = (char)(0x80 | (c & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (c >> 18));
        u[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        u[3] = (char)(0x80 | (c & 0x3F));
        n = 4;
    }
    put(b, u, n);
}

/* ---------------------------------------------------------------- corpus generation */

static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "she", "this", "are", "or", "his", "her", "from", "at", "which",
    "but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can",
    "there", "been", "has", "more", "if", "will", "would", "when", "what", "so", "no", "about",
    "into", "than", "them", "only", "other", "new", "some", "could", "time", "these", "two",
    "may", "then", "first", "any", "like", "now", "my", "such", "over", "our", "even", "most",
    "made", "after", "also", "did", "many", "before", "must", "through", "years", "where",
    "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
    "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own",
    "see", "men", "work", "long", "here", "get", "both", "between", "life", "being", "under",
    "never", "day", "same", "another", "know", "while", "last", "might", "great", "old",
    "year", "off", "come", "since", "against", "go", "came", "right", "used", "take", "three",
    "himself", "few", "house", "use", "during", "without", "again", "place", "around",
    "however", "home", "small", "found", "thought", "went", "say", "part", "once", "general",
    "high", "upon", "school", "every", "don't", "does", "got", "united", "left", "number",
    "course", "war", "until", "always", "away", "something", "fact", "though", "water",
    "less", "public", "put", "think", "almost", "hand", "enough", "far", "took", "head", "yet",
    "government", "system", "better", "set", "told", "nothing", "night", "end", "why",
    "called", "didn't", "eyes", "find", "going", "look", "asked", "later", "knew", "point",
    "next", "program", "city", "business", "give", "group", "toward", "young", "let", "room",
    "president", "side", "social", "given", "present", "several", "order", "national",
    "possible", "rather", "second", "face", "per", "among", "form", "important", "often",
    "things", "looked", "early", "white", "case", "john", "become", "large", "big", "need",
    "four", "within", "felt", "along", "children", "saw", "best", "church", "ever", "least",
    "power", "development", "light", "thing", "seemed", "family", "interest", "want",
    "members", "mind", "country", "area", "others", "done", "turned", "although", "open",
    "problem", "began", "women", "certain", "economic", "information", "however", "model",
    "language", "tokenizer", "inference", "throughput", "memory", "benchmark", "it's",
    "they're", "we've", "I'm", "you'll", "researchers", "unbelievably", "internationally",
    "characteristics", "responsibility", "straightforward", "mathematics", "algorithm",
};
#define N_WORDS (sizeof WORDS / sizeof WORDS[0])

static const char *const NAMES[] = {"London", "Alice", "Microsoft", "Paris", "Dr. Smith",
                                    "NASA", "Tokyo", "GitHub", "Mr. O'Brien", "Zürich",
                                    "the European Union", "Python", "Linux", "McDonald's"};
#define N_NAMES (sizeof NAMES / sizeof NAMES[0])

static void gen_sentence(buf *b) {
    uint32_t n = 6 + rnd(16);
    for (uint32_t i = 0; i < n; i++) {
        if (i) puts_(b, " ");
        uint32_t r = rnd(100);
        if (r < 4) {
            puts_(b, NAMES[rnd(N_NAMES)]);
        } else if (r < 7) {
            switch (rnd(5)) {
            case 0: putf(b, "%u", 1900 + rnd(130)); break;
            case 1: putf(b, "%u%%", rnd(100)); break;
            case 2: putf(b, "%u.%u", rnd(1000), rnd(100)); break;
            case 3: putf(b, "$%u,%03u", 1 + rnd(99), rnd(1000)); break;
            default: putf(b, "%u", rnd(20)); break;
            }
        } else {
            const char *w = WORDS[rnd(N_WORDS)];
            if (i == 0) {
                char c = w[0];
                if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
                put(b, &c, 1);
                puts_(b, w + 1);
            } else {
                puts_(b, w);
            }
        }
        if (i + 1 < n && rnd(100) < 8) puts_(b, rnd(4) ? "," : (rnd(2) ? ";" : " —"));
    }
    uint32_t e = rnd(20);
    puts_(b, e < 16 ? "." : e < 18 ? "?" : "!");
}

static void gen_paragraph(buf *b) {
    uint32_t n = 2 + rnd(7);
    for (uint32_t i = 0; i < n; i++) {
        if (i) puts_(b, " ");
        if (rnd(12) == 0) puts_(b, "\"");
        gen_sentence(b);
    }
    puts_(b, "\n");
    if (rnd(3) == 0) puts_(b, "\n");
}

static const char *const IDENTS[] = {"count", "buffer", "result", "user_id", "maxValue", "idx",
                                     "node", "tokens", "self", "config", "data", "ctx", "len",
                                     "HTTPServer", "parse_args", "tmp2", "value"};
#define N_IDENTS (sizeof IDENTS / sizeof IDENTS[0])
#define ID() IDENTS[rnd(N_IDENTS)]

static void gen_code(buf *b) {
    uint32_t lines = 3 + rnd(10);
    switch (rnd(4)) {
    case 0: /* Python */
        putf(b, "def %s(%s, %s=None):\n", ID(), ID(), ID());
        for (uint32_t i = 0; i < lines; i++) {
            switch (rnd(4)) {
            case 0: putf(b, "    %s = %s[%u] * %u  # %s\n", ID(), ID(), rnd(64), rnd(1000), WORDS[rnd(N_WORDS)]); break;
            case 1: putf(b, "    if %s is not None and len(%s) > %u:\n        return %s\n", ID(), ID(), rnd(10), ID()); break;
            case 2: putf(b, "    for %s in range(%u):\n        print(f\"{%s}: {%s!r}\")\n", ID(), rnd(100), ID(), ID()); break;
            default: putf(b, "    %s.append({'%s': %u.%u, \"%s\": [%u, %u]})\n", ID(), ID(), rnd(10), rnd(10), ID(), rnd(9), rnd(9)); break;
            }
        }
        break;
    case 1: /* C */
        putf(b, "static int %s(const char *%s, size_t %s) {\n", ID(), ID(), ID());
        for (uint32_t i = 0; i < lines; i++) {
            switch (rnd(4)) {
            case 0: putf(b, "\tfor (size_t i = 0; i < %s; i++) %s[i] ^= 0x%X;\n", ID(), ID(), rnd(256)); break;
            case 1: putf(b, "\tif (!%s || %s->%s == NULL) return -%u; /* %s */\n", ID(), ID(), ID(), rnd(40), WORDS[rnd(N_WORDS)]); break;
            case 2: putf(b, "\tprintf(\"%%s=%%d\\n\", %s, %s + %u);\n", ID(), ID(), rnd(100)); break;
            default: putf(b, "\t%s += (%s << %u) & 0x%08X;\n", ID(), ID(), rnd(32), rnd(0xFFFFFFFFu)); break;
            }
        }
        puts_(b, "}\n");
        break;
    case 2: /* JavaScript / JSON */
        putf(b, "const %s = async (%s) => {\n", ID(), ID());
        for (uint32_t i = 0; i < lines; i++) {
            if (rnd(2))
                putf(b, "  const %s = await fetch(`https://api.example.com/v%u/${%s}`);\n", ID(), 1 + rnd(3), ID());
            else
                putf(b, "  return { \"%s\": %u, \"%s\": [%u, %u.%u, null, true] };\n", ID(), rnd(1000), ID(), rnd(10), rnd(10), rnd(100));
        }
        puts_(b, "};\n");
        break;
    default: /* SQL / shell */
        for (uint32_t i = 0; i < lines; i++) {
            if (rnd(2))
                putf(b, "SELECT %s, COUNT(*) FROM %s WHERE %s >= %u GROUP BY %s;\n", ID(), ID(), ID(), rnd(100), ID());
            else
                putf(b, "$ grep -rn '%s' src/ | head -%u && echo \"ok: $%s\"\n", ID(), rnd(50), ID());
        }
        break;
    }
    puts_(b, "\n");
}

static void gen_data(buf *b) {
    uint32_t n = 2 + rnd(6);
    for (uint32_t i = 0; i < n; i++) {
        putf(b, "%u,%04u-%02u-%02uT%02u:%02u:%02uZ,%u.%02u,-%u,0x%04X,%s\n", rnd(100000),
             2000 + rnd(30), 1 + rnd(12), 1 + rnd(28), rnd(24), rnd(60), rnd(60), rnd(10000),
             rnd(100), rnd(1000), rnd(65536), ID());
    }
}

static const uint32_t CJK[] = {0x7684, 0x4E00, 0x662F, 0x4E0D, 0x4E86, 0x4EBA, 0x6211, 0x5728,
                               0x6709, 0x4ED6, 0x8FD9, 0x4E2D, 0x5927, 0x6765, 0x4E0A, 0x56FD,
                               0x4E2A, 0x5230, 0x8BF4, 0x4EEC, 0x4E3A, 0x5B50, 0x548C, 0x4F60,
                               0x5730, 0x51FA, 0x9053, 0x4E5F, 0x65F6, 0x5E74, 0x3002, 0xFF0C,
                               0x3053, 0x3093, 0x306B, 0x3061, 0x306F, 0x30AB, 0x30BF, 0xD55C,
                               0xAD6D, 0xC5B4};
static const uint32_t EMOJI[] = {0x1F600, 0x1F602, 0x1F44D, 0x2764, 0x1F525, 0x1F680, 0x2728,
                                 0x1F389, 0x1F914, 0x1F64F, 0x1F30D, 0x1F4A1};

static void gen_cjk(buf *b) {
    uint32_t n = 20 + rnd(80);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t r = rnd(100);
        if (r < 85) put_cp(b, CJK[rnd(sizeof CJK / sizeof CJK[0])]);
        else if (r < 93) put_cp(b, EMOJI[rnd(sizeof EMOJI / sizeof EMOJI[0])]);
        else if (r < 97) putf(b, "%u", rnd(2030));
        else puts_(b, " ");
    }
    puts_(b, "\n");
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One corpus.txt line with \n \r \t \\ \uXXXX \UXXXXXXXX decoded, then a '\n'. */
static void put_unescaped(buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\' && i + 1 < n) {
            char c = s[i + 1];
            const char *m = c == 'n' ? "\n" : c == 'r' ? "\r" : c == 't' ? "\t" : c == '\\' ? "\\" : NULL;
            if (m) {
                puts_(b, m);
                i += 2;
                continue;
            }
            size_t k = c == 'u' ? 4 : c == 'U' ? 8 : 0;
            if (k && i + 2 + k <= n) {
                uint32_t v = 0;
                size_t j;
                for (j = 0; j < k; j++) {
                    int h = hexval(s[i + 2 + j]);
                    if (h < 0) break;
                    v = v << 4 | (uint32_t)h;
                }
                if (j == k && v <= 0x10FFFF && (v < 0xD800 || v > 0xDFFF)) {
                    put_cp(b, v);
                    i += 2 + k;
                    continue;
                }
            }
        }
        put(b, s + i, 1);
        i++;
    }
    puts_(b, "\n");
}

typedef struct {
    const char *p;
    size_t n;
} line;

static int gen_corpus(buf *out, size_t target, const char **note) {
    char *seed = NULL;
    size_t seed_len = 0;
    lm_err e = {0};
    line *lines = NULL;
    size_t n_lines = 0;
    if (lm_file_read_all(SEED_CORPUS, (size_t)1 << 20, &seed, &seed_len, &e) == LM_OK) {
        lines = calloc(seed_len + 1, sizeof *lines);
        for (size_t i = 0; i < seed_len;) {
            const char *nl = memchr(seed + i, '\n', seed_len - i);
            size_t len = nl ? (size_t)(nl - (seed + i)) : seed_len - i;
            lines[n_lines++] = (line){seed + i, len};
            i += len + 1;
        }
    } else {
        *note = "tests/data/tokenizer/corpus.txt not found: seed lines left out";
    }
    while (out->n < target) {
        uint32_t r = rnd(100);
        if (r < 62) gen_paragraph(out);
        else if (r < 76) gen_code(out);
        else if (r < 81) gen_data(out);
        else if (r < 86) gen_cjk(out);
        else if (n_lines) {
            uint32_t k = 1 + rnd(4);
            for (uint32_t i = 0; i < k; i++) {
                line l = lines[rnd((uint32_t)n_lines)];
                put_unescaped(out, l.p, l.n);
            }
        } else gen_paragraph(out);
    }
    free(lines);
    lm_free(seed);
    return 0;
}

/* ---------------------------------------------------------------- pieces */

typedef struct {
    size_t off, len;
} piece;

static size_t cut_pieces(const char *t, size_t n, int block, piece **out) {
    size_t cap = 1024, np = 0;
    piece *v = malloc(cap * sizeof *v);
    size_t start = 0, i = 0; /* the piece so far is t[start..i), whole lines */
    while (i < n) {
        const char *nl = memchr(t + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - t) + 1 : n; /* the next line is t[i..end) */
        if (block && i > start && end - start > BLOCK_BYTES) {
            /* the line does not fit: the piece ends before it */
        } else {
            i = end;
            if (block && i < n) continue;
        }
        if (np == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[np++] = (piece){start, i - start};
        start = i;
    }
    *out = v;
    return np;
}

/* ---------------------------------------------------------------- tokenizers */

typedef struct {
    const char *name, *path, *config, *kind;
    int gguf;
} tk_def;

static const tk_def DEFS[] = {
    {"smollm2_gguf", "models/smollm2-135m-instruct-q4_1.gguf", NULL, "byte-level BPE", 1},
    {"gemma3_gguf", "models/gemma-3-270m-q4_k_m.gguf", NULL, "SentencePiece BPE", 1},
    {"bert_json", "models/all-minilm-l6-v2/tokenizer.json",
     "models/all-minilm-l6-v2/tokenizer_config.json", "WordPiece", 0},
    {"smollm2_json", "tests/data/tokenizer/smollm2/tokenizer.json",
     "tests/data/tokenizer/smollm2/tokenizer_config.json", "byte-level BPE", 0},
};
#define N_DEFS (sizeof DEFS / sizeof DEFS[0])

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static lm_status load(const tk_def *d, lm_tokenizer **tk, lm_err *e) {
    if (!d->gguf) return lm_tokenizer_from_hf_json(d->path, d->config, tk, e);
    lm_gguf *g = NULL;
    lm_status st = lm_gguf_open_file(d->path, NULL, &g, e);
    if (st == LM_OK) st = lm_tokenizer_from_gguf(g, tk, e);
    lm_gguf_close(g);
    return st;
}

/* One pass over all pieces; returns seconds, *tokens the id count. */
static double encode_pass(const lm_tokenizer *tk, const char *text, const piece *pc, size_t np,
                          size_t *tokens, FILE *ids_out, lm_err *e) {
    size_t total = 0;
    double t0 = now_s();
    for (size_t i = 0; i < np; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (lm_tokenizer_encode(tk, text + pc[i].off, pc[i].len, 0, 1, &ids, &n, e)) return -1;
        total += n;
        if (ids_out) {
            uint32_t c = (uint32_t)n;
            fwrite(&c, sizeof c, 1, ids_out);
            if (n) fwrite(ids, sizeof *ids, n, ids_out);
        }
        lm_free(ids);
    }
    double t = now_s() - t0;
    *tokens = total;
    return t;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_tokenize [--corpus FILE | --size-mb N] [--mode block|line] [--runs N]\n"
            "                      [--only NAME] [--dump-corpus PATH] [--dump-ids DIR]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *corpus_path = NULL, *dump_corpus = NULL, *dump_ids = NULL, *only = NULL;
    double size_mb = 4;
    int block = 1, runs = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        if (!strcmp(a, "--corpus")) corpus_path = argv[++i];
        else if (!strcmp(a, "--size-mb")) size_mb = atof(argv[++i]);
        else if (!strcmp(a, "--mode")) {
            const char *m = argv[++i];
            if (!strcmp(m, "block")) block = 1;
            else if (!strcmp(m, "line")) block = 0;
            else usage();
        } else if (!strcmp(a, "--runs")) runs = atoi(argv[++i]);
        else if (!strcmp(a, "--only")) only = argv[++i];
        else if (!strcmp(a, "--dump-corpus")) dump_corpus = argv[++i];
        else if (!strcmp(a, "--dump-ids")) dump_ids = argv[++i];
        else usage();
    }
    if (runs < 1 || runs > 64 || !(size_mb > 0 && size_mb <= 1024)) usage();

    buf text = {0};
    const char *note = NULL;
    if (corpus_path) {
        char *p = NULL;
        size_t n = 0;
        lm_err e = {0};
        if (lm_file_read_all(corpus_path, (size_t)1 << 30, &p, &n, &e)) {
            fprintf(stderr, "%s: %s\n", corpus_path, e.msg);
            return 1;
        }
        put(&text, p, n);
        lm_free(p);
    } else {
        gen_corpus(&text, (size_t)(size_mb * 1e6), &note);
    }
    if (dump_corpus) {
        FILE *f = fopen(dump_corpus, "wb");
        if (!f || fwrite(text.p, 1, text.n, f) != text.n || fclose(f)) {
            fprintf(stderr, "cannot write %s\n", dump_corpus);
            return 1;
        }
    }
    piece *pc = NULL;
    size_t np = cut_pieces(text.p, text.n, block, &pc);
    size_t n_lines = 0;
    for (size_t i = 0; i < text.n; i++) n_lines += text.p[i] == '\n';

    printf("{\n  \"benchmark\": \"tokenize\",\n  \"corpus\": {\"source\": ");
    json_str(corpus_path ? corpus_path : "generated");
    printf(", \"bytes\": %zu, \"lines\": %zu, \"pieces\": %zu, \"piece_mode\": \"%s\"", text.n,
           n_lines, np, block ? "block (whole lines up to 64 KiB)" : "line");
    if (note) {
        printf(", \"note\": ");
        json_str(note);
    }
    printf("},\n  \"encode\": \"lm_tokenizer_encode per piece, add_special=0, parse_special=1, "
           "1 thread\",\n  \"runs\": %d,\n  \"results\": [", runs);

    int first = 1;
    for (size_t d = 0; d < N_DEFS; d++) {
        const tk_def *def = &DEFS[d];
        if (only && strcmp(only, def->name)) continue;
        printf("%s\n    {\"name\": \"%s\", \"file\": ", first ? "" : ",", def->name);
        first = 0;
        json_str(def->path);
        printf(", \"model\": \"%s\"", def->kind);
        fflush(stdout);
        if (access(def->path, R_OK) != 0) {
            printf(", \"status\": \"skipped\", \"note\": \"not installed (make models)\"}");
            continue;
        }
        lm_tokenizer *tk = NULL;
        lm_err e = {0};
        double t0 = now_s();
        if (load(def, &tk, &e)) {
            printf(", \"status\": \"error\", \"note\": ");
            json_str(e.msg);
            printf("}");
            continue;
        }
        double load_s = now_s() - t0;
        size_t tokens = 0;
        FILE *ids_out = NULL;
        if (dump_ids) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.ids", dump_ids, def->name);
            ids_out = fopen(path, "wb");
            if (!ids_out) fprintf(stderr, "cannot write %s\n", path);
        }
        double warm = encode_pass(tk, text.p, pc, np, &tokens, ids_out, &e); /* warm-up */
        if (ids_out) fclose(ids_out);
        double t[64];
        int ok = warm >= 0;
        for (int r = 0; ok && r < runs; r++) {
            t[r] = encode_pass(tk, text.p, pc, np, &tokens, NULL, &e);
            ok = t[r] >= 0;
        }
        if (!ok) {
            printf(", \"status\": \"error\", \"note\": ");
            json_str(e.msg);
            printf("}");
            lm_tokenizer_free(tk);
            continue;
        }
        qsort(t, (size_t)runs, sizeof t[0], cmp_d);
        double mb = (double)text.n / 1e6;
        printf(", \"status\": \"ok\", \"load_s\": %.3f, \"tokens\": %zu, \"bytes_per_token\": %.3f,"
               " \"best_s\": %.4f, \"mb_s\": %.2f, \"mb_s_median\": %.2f, \"mb_s_worst\": %.2f,"
               " \"tokens_s\": %.0f}",
               load_s, tokens, tokens ? (double)text.n / (double)tokens : 0.0, t[0], mb / t[0],
               mb / t[runs / 2], mb / t[runs - 1], (double)tokens / t[0]);
        fflush(stdout);
        lm_tokenizer_free(tk);
    }
    printf("\n  ]\n}\n");
    free(pc);
    free(text.p);
    return 0;
}
