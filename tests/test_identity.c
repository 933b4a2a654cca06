/* test_identity.c — model identity digests (engine/identity.c, docs/formats/store.md §2, §6):
 * determinism within and across processes; each component changes with exactly what it
 * covers (GGUF variants written with lm_gguf_writer: one tensor byte, a tokenizer key, the
 * chat template, the RoPE base; HF directory copies with tokenizer_config.json edits); the
 * on-disk weights digest cache (used when valid, recomputed when its checksum or its key
 * fields do not match, a changed file gets a new entry, an unusable cache directory is
 * ignored); concurrent computations; and the time to digest the real models (printed). */
#include "core/file.h"
#include "engine/identity.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "model/arch.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static const uint8_t zero32[32];

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- a model opened as engine.c opens it --------------------------------------------- */

typedef struct loaded {
    lm_gguf *g;
    lm_hf *hf;
    lm_arch_model m;
    char arch[32];
    char *tpl;
    char path[1024];
} loaded;

static void unload(loaded *l) {
    lm_arch_free(&l->m);
    lm_gguf_close(l->g);
    lm_hf_close(l->hf);
    free(l->tpl);
    memset(l, 0, sizeof *l);
}

static int load(const char *path, loaded *l, lm_err *e) {
    memset(l, 0, sizeof *l);
    snprintf(l->path, sizeof l->path, "%s", path);
    if (lm_path_is_dir(path)) {
        if (lm_hf_open(path, &l->hf, e) != LM_OK) return 0;
        if (lm_arch_from_hf(l->hf, &l->m, l->arch, sizeof l->arch, e) != LM_OK) return 0;
        return 1;
    }
    if (lm_gguf_open_file(path, NULL, &l->g, e) != LM_OK) return 0;
    if (lm_arch_from_gguf(l->g, &l->m, e) != LM_OK) return 0;
    const char *s;
    size_t n;
    if (lm_gguf_get_str(l->g, "general.architecture", &s, &n, NULL) == LM_OK)
        snprintf(l->arch, sizeof l->arch, "%.*s", (int)n, s);
    if (lm_gguf_find(l->g, "tokenizer.chat_template") >= 0 &&
        lm_gguf_get_str(l->g, "tokenizer.chat_template", &s, &n, NULL) == LM_OK) {
        l->tpl = malloc(n + 1);
        memcpy(l->tpl, s, n);
        l->tpl[n] = '\0';
    }
    return 1;
}

/* use_path 0: no caching (the digest is computed from the bytes). */
static lm_status ident(const loaded *l, int use_path, lm_identity *id, lm_err *e) {
    lm_identity_src src = {l->g, l->hf, &l->m.hp, l->arch, l->tpl, use_path ? l->path : NULL};
    memset(id, 0, sizeof *id);
    lm_err_clear(e);
    return lm_identity_compute(&src, id, e);
}

static int ident_path(const char *path, int use_path, lm_identity *id) {
    loaded l;
    lm_err e;
    lm_err_clear(&e);
    int ok = load(path, &l, &e) && ident(&l, use_path, id, &e) == LM_OK;
    if (!ok) fprintf(stderr, "  %s: %s\n", path, e.msg);
    unload(&l);
    return ok;
}

/* Computes the identity in a child process (fresh, except for what fork copies: callers
 * use paths this process never cached) and returns it through a pipe. */
static int child_ident(const char *path, int use_path, lm_identity *id) {
    int fd[2];
    if (pipe(fd) != 0) return 0;
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        close(fd[0]);
        lm_identity x;
        int ok = ident_path(path, use_path, &x);
        if (ok && write(fd[1], &x, sizeof x) != (ssize_t)sizeof x) ok = 0;
        close(fd[1]);
        _exit(ok ? 0 : 1);
    }
    close(fd[1]);
    size_t got = 0;
    while (got < sizeof *id) {
        ssize_t r = read(fd[0], (char *)id + got, sizeof *id - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return got == sizeof *id && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static const char *fixture(const char *arch, const char *file) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "tests/data/fidelity/%s%s%s", arch, file ? "/" : "",
             file ? file : "");
    return p[k];
}

static void set_cache_dir(const char *name) {
    char d[512];
    snprintf(d, sizeof d, "%s/%s", t_tmpdir(), name);
    setenv("LEMMA_CACHE_DIR", d, 1);
}

/* ---- files ---------------------------------------------------------------------------- */

static int copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t n = 0;
    if (lm_file_read_all(from, (size_t)1 << 30, &data, &n, NULL) != LM_OK) return 0;
    int ok = lm_file_write_atomic(to, data, n, NULL) == LM_OK;
    free(data);
    return ok;
}

static int write_text(const char *path, const char *text) {
    return lm_file_write_atomic(path, text, strlen(text), NULL) == LM_OK;
}

/* The one file in dir (the cache's digests/), or "" when there is not exactly one. */
static int count_entries(const char *dir, char *first, size_t len) {
    DIR *d = opendir(dir);
    int n = 0;
    if (first && len) first[0] = '\0';
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (strstr(de->d_name, ".tmp.")) continue;
        if (n == 0 && first) snprintf(first, len, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* ---- GGUF variants through the writer -------------------------------------------------- */

typedef void (*edit_fn)(lm_gguf_writer *w, lm_err *e);

/* Copies every key and tensor of g into path, then applies edit (keys set again keep their
 * place, with the new value); flip >= 0 flips one byte in the middle of that tensor. */
static int copy_gguf(const lm_gguf *g, const char *path, edit_fn edit, int64_t flip, lm_err *e) {
    lm_gguf_writer *w = NULL;
    void *flipped = NULL;
    int ok = 0;
    if (lm_gguf_writer_new(&w, e) != LM_OK) return 0;
    for (uint64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        const char *k = lm_gguf_key(g, i);
        lm_gguf_value v;
        if (lm_gguf_kv_value(g, i, &v, e) != LM_OK) goto out;
        lm_status s = LM_OK;
        const void *d = v.data;
        if (strcmp(k, "general.alignment") == 0) {
            uint32_t a;
            memcpy(&a, d, 4);
            s = lm_gguf_set_alignment(w, a, e);
        } else if (v.type == LM_GGUF_TYPE_STRING) {
            s = lm_gguf_set_strn(w, k, (const char *)d, (size_t)v.size, e);
        } else if (v.type == LM_GGUF_TYPE_ARRAY && v.elem_type == LM_GGUF_TYPE_STRING) {
            const char **strs = calloc(v.n + 1, sizeof *strs);
            size_t *lens = calloc(v.n + 1, sizeof *lens);
            for (uint64_t j = 0; j < v.n; j++)
                lm_gguf_arr_str(g, i, j, &strs[j], &lens[j]);
            s = lm_gguf_set_arr_str(w, k, strs, lens, v.n, e);
            free(strs);
            free(lens);
        } else if (v.type == LM_GGUF_TYPE_ARRAY && v.elem_type != LM_GGUF_TYPE_ARRAY) {
            s = lm_gguf_set_arr(w, k, v.elem_type, d, v.n, e);
        } else if (v.type != LM_GGUF_TYPE_ARRAY) {
            uint8_t b[8] = {0};
            memcpy(b, d, (size_t)v.size);
            switch (v.type) {
            case LM_GGUF_TYPE_UINT8: s = lm_gguf_set_u8(w, k, b[0], e); break;
            case LM_GGUF_TYPE_INT8: s = lm_gguf_set_i8(w, k, (int8_t)b[0], e); break;
            case LM_GGUF_TYPE_BOOL: s = lm_gguf_set_bool(w, k, b[0] != 0, e); break;
            case LM_GGUF_TYPE_UINT16: {
                uint16_t x;
                memcpy(&x, b, 2);
                s = lm_gguf_set_u16(w, k, x, e);
                break;
            }
            case LM_GGUF_TYPE_INT16: {
                int16_t x;
                memcpy(&x, b, 2);
                s = lm_gguf_set_i16(w, k, x, e);
                break;
            }
            case LM_GGUF_TYPE_UINT32: {
                uint32_t x;
                memcpy(&x, b, 4);
                s = lm_gguf_set_u32(w, k, x, e);
                break;
            }
            case LM_GGUF_TYPE_INT32: {
                int32_t x;
                memcpy(&x, b, 4);
                s = lm_gguf_set_i32(w, k, x, e);
                break;
            }
            case LM_GGUF_TYPE_FLOAT32: {
                float x;
                memcpy(&x, b, 4);
                s = lm_gguf_set_f32(w, k, x, e);
                break;
            }
            case LM_GGUF_TYPE_UINT64: {
                uint64_t x;
                memcpy(&x, b, 8);
                s = lm_gguf_set_u64(w, k, x, e);
                break;
            }
            case LM_GGUF_TYPE_INT64: {
                int64_t x;
                memcpy(&x, b, 8);
                s = lm_gguf_set_i64(w, k, x, e);
                break;
            }
            case LM_GGUF_TYPE_FLOAT64: {
                double x;
                memcpy(&x, b, 8);
                s = lm_gguf_set_f64(w, k, x, e);
                break;
            }
            default: s = lm_err_set(e, LM_ERR_UNSUPPORTED, "copy: type of %s", k);
            }
        } else {
            s = lm_err_set(e, LM_ERR_UNSUPPORTED, "copy: nested array %s", k);
        }
        if (s != LM_OK) goto out;
    }
    if (edit) {
        edit(w, e);
        if (e->code != LM_OK) goto out;
    }
    for (uint64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
        const lm_tensor_info *t = lm_gguf_tensor(g, i);
        const void *data = t->data;
        if ((int64_t)i == flip && t->nbytes > 0) {
            flipped = malloc(t->nbytes);
            memcpy(flipped, t->data, t->nbytes);
            ((uint8_t *)flipped)[t->nbytes / 2] ^= 0x01;
            data = flipped;
        }
        if (lm_gguf_add_tensor(w, t->name, t->dtype, t->n_dims, t->ne, data, t->nbytes, e) != LM_OK)
            goto out;
    }
    ok = lm_gguf_write_file(w, path, e) == LM_OK;
out:
    lm_gguf_writer_free(w);
    free(flipped);
    return ok;
}

static void edit_bos(lm_gguf_writer *w, lm_err *e) {
    lm_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 7, e);
}
static void edit_tpl_a(lm_gguf_writer *w, lm_err *e) {
    lm_gguf_set_str(w, "tokenizer.chat_template", "{{ messages[0].content }}", e);
}
static void edit_tpl_b(lm_gguf_writer *w, lm_err *e) {
    lm_gguf_set_str(w, "tokenizer.chat_template", "{{ messages[0].content }}!", e);
}
static void edit_rope(lm_gguf_writer *w, lm_err *e) {
    lm_gguf_set_f32(w, "llama.rope.freq_base", 500000.0f, e);
}

typedef struct diff {
    int weights, arch, tokenizer, tpl;
} diff;

static diff compare_ids(const lm_identity *a, const lm_identity *b) {
    diff d = {memcmp(a->weights, b->weights, 32) != 0, memcmp(a->arch, b->arch, 32) != 0,
              memcmp(a->tokenizer, b->tokenizer, 32) != 0,
              memcmp(a->chat_template, b->chat_template, 32) != 0};
    return d;
}

#define CHECK_DIFF(a, b, w, ar, tk, tp, what)                                                      \
    do {                                                                                           \
        diff d_ = compare_ids(a, b);                                                               \
        T_CHECK(d_.weights == (w) && d_.arch == (ar) && d_.tokenizer == (tk) && d_.tpl == (tp),    \
                "%s: differ weights %d arch %d tokenizer %d template %d, want %d %d %d %d", what,  \
                d_.weights, d_.arch, d_.tokenizer, d_.tpl, w, ar, tk, tp);                         \
    } while (0)

/* ---- tests ---------------------------------------------------------------------------- */

static void test_cache_dir(void) {
    char b[512];
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("LEMMA_CACHE_DIR", "/x/lemma-cache", 1);
    setenv("XDG_CACHE_HOME", "/x/xdg", 1);
    setenv("HOME", "/x/home", 1);
    T_CHECK(lm_identity_cache_dir(b, sizeof b) && strcmp(b, "/x/lemma-cache") == 0, "%s", b);
    setenv("LEMMA_CACHE_DIR", "", 1);
    T_CHECK(lm_identity_cache_dir(b, sizeof b) && strcmp(b, "/x/xdg/lemma") == 0, "%s", b);
    unsetenv("LEMMA_CACHE_DIR");
    T_CHECK(lm_identity_cache_dir(b, sizeof b) && strcmp(b, "/x/xdg/lemma") == 0, "%s", b);
    setenv("XDG_CACHE_HOME", "relative", 1); /* the XDG spec: relative paths are ignored */
    T_CHECK(lm_identity_cache_dir(b, sizeof b) && strcmp(b, "/x/home/.cache/lemma") == 0, "%s", b);
    unsetenv("XDG_CACHE_HOME");
    T_CHECK(lm_identity_cache_dir(b, sizeof b) && strcmp(b, "/x/home/.cache/lemma") == 0, "%s", b);
    T_CHECK(!lm_identity_cache_dir(b, 8), "a buffer too small gives 0");
    unsetenv("HOME");
    T_CHECK(!lm_identity_cache_dir(b, sizeof b), "no variable gives 0");
    T_CHECK(!lm_identity_cache_dir(NULL, 0), "NULL buffer");
    if (home) setenv("HOME", home, 1);
    free(home);
    set_cache_dir("cache-main");
}

static void test_invalid(void) {
    loaded l;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(load(fixture("llama", "model-f32.gguf"), &l, &e), "%s", e.msg);
    lm_identity id;
    lm_identity_src none = {NULL, NULL, &l.m.hp, "llama", NULL, NULL};
    T_CHECK(lm_identity_compute(&none, &id, &e) == LM_ERR_INVALID_ARG, "no source");
    lm_err_clear(&e);
    lm_identity_src nohp = {l.g, NULL, NULL, "llama", NULL, NULL};
    T_CHECK(lm_identity_compute(&nohp, &id, &e) == LM_ERR_INVALID_ARG, "no hparams");
    unload(&l);
}

/* Same digests twice, with and without the caches, and in a child process. */
static void test_deterministic(void) {
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3"};
    lm_identity first[4];
    for (int a = 0; a < 4; a++) {
        loaded l;
        lm_err e;
        lm_err_clear(&e);
        T_REQUIRE(load(fixture(archs[a], "model-f32.gguf"), &l, &e), "%s", e.msg);
        lm_identity x, y, z;
        T_REQUIRE(ident(&l, 1, &x, &e) == LM_OK, "%s", e.msg);
        T_REQUIRE(ident(&l, 1, &y, &e) == LM_OK, "%s", e.msg);
        T_REQUIRE(ident(&l, 0, &z, &e) == LM_OK, "%s", e.msg);
        CHECK_DIFF(&x, &y, 0, 0, 0, 0, archs[a]);
        CHECK_DIFF(&x, &z, 0, 0, 0, 0, archs[a]);
        T_CHECK(memcmp(x.weights, zero32, 32) && memcmp(x.arch, zero32, 32) &&
                    memcmp(x.tokenizer, zero32, 32),
                "%s: a zero digest", archs[a]);
        T_CHECK(memcmp(x.chat_template, zero32, 32) == 0, "%s: no template = zeros", archs[a]);
        T_CHECK(x.kv_dtype == 0 && x.page_tokens == 0 && memcmp(x.kv_id, zero32, 32) == 0,
                "other fields untouched");
        first[a] = x;
        unload(&l);
    }
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            T_CHECK(memcmp(first[a].weights, first[b].weights, 32) &&
                        memcmp(first[a].arch, first[b].arch, 32),
                    "%s and %s share a digest", archs[a], archs[b]);
    /* across a process boundary: computed from the bytes, and through the disk cache */
    for (int a = 0; a < 4; a++) {
        lm_identity c0, c1;
        T_CHECK(child_ident(fixture(archs[a], "model-f32.gguf"), 0, &c0), "child");
        T_CHECK(child_ident(fixture(archs[a], "model-f32.gguf"), 1, &c1), "child");
        CHECK_DIFF(&first[a], &c0, 0, 0, 0, 0, "child, computed");
        CHECK_DIFF(&first[a], &c1, 0, 0, 0, 0, "child, cached");
    }
    /* other dtypes of the same model: other weights and tensor table, same tokenizer */
    lm_identity f16, q8;
    T_REQUIRE(ident_path(fixture("llama", "model-f16.gguf"), 1, &f16), "f16");
    T_REQUIRE(ident_path(fixture("llama", "model-q8_0.gguf"), 1, &q8), "q8_0");
    CHECK_DIFF(&first[0], &f16, 1, 1, 0, 0, "f32 vs f16");
    CHECK_DIFF(&first[0], &q8, 1, 1, 0, 0, "f32 vs q8_0");
}

static void test_gguf_variants(void) {
    loaded l;
    lm_err e;
    lm_err_clear(&e);
    set_cache_dir("cache-variants");
    T_REQUIRE(load(fixture("llama", "model-f32.gguf"), &l, &e), "%s", e.msg);
    lm_identity orig;
    T_REQUIRE(ident(&l, 1, &orig, &e) == LM_OK, "%s", e.msg);
    const char *dir = t_tmpdir();
    char p[7][512];
    const char *names[7] = {"copy", "tensor", "bos", "tpl_a", "tpl_b", "rope", "last_tensor"};
    edit_fn edits[7] = {NULL, NULL, edit_bos, edit_tpl_a, edit_tpl_b, edit_rope, NULL};
    int64_t flips[7] = {-1, 3, -1, -1, -1, -1, (int64_t)lm_gguf_n_tensors(l.g) - 1};
    lm_identity v[7];
    for (int i = 0; i < 7; i++) {
        snprintf(p[i], sizeof p[i], "%s/variant-%s.gguf", dir, names[i]);
        T_REQUIRE(copy_gguf(l.g, p[i], edits[i], flips[i], &e), "%s: %s", names[i], e.msg);
        T_REQUIRE(ident_path(p[i], 1, &v[i]), "%s", names[i]);
    }
    unload(&l);
    CHECK_DIFF(&orig, &v[0], 0, 0, 0, 0, "a plain copy");
    CHECK_DIFF(&v[0], &v[1], 1, 0, 0, 0, "one tensor byte");
    CHECK_DIFF(&v[0], &v[6], 1, 0, 0, 0, "one byte of the last tensor");
    CHECK_DIFF(&v[1], &v[6], 1, 0, 0, 0, "bytes of two tensors");
    CHECK_DIFF(&v[0], &v[2], 0, 0, 1, 0, "tokenizer.ggml.bos_token_id");
    CHECK_DIFF(&v[0], &v[3], 0, 0, 0, 1, "a chat template added");
    CHECK_DIFF(&v[3], &v[4], 0, 0, 0, 1, "the chat template changed");
    CHECK_DIFF(&v[0], &v[5], 0, 1, 0, 0, "rope freq base");
    T_CHECK(memcmp(v[0].chat_template, zero32, 32) == 0, "no template");
    /* the computed digests of the variants agree with what their cache entries said */
    for (int i = 0; i < 7; i++) {
        lm_identity c;
        T_CHECK(child_ident(p[i], 0, &c), "child");
        CHECK_DIFF(&v[i], &c, 0, 0, 0, 0, names[i]);
    }
    set_cache_dir("cache-main");
}

/* Reads the single entry under dir/digests into *data. */
static int read_entry(const char *cache, char *path, size_t plen, char **data, size_t *n) {
    char d[600];
    snprintf(d, sizeof d, "%s/digests", cache);
    if (count_entries(d, path, plen) != 1) return 0;
    return lm_file_read_all(path, 1 << 20, data, n, NULL) == LM_OK;
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_disk_cache(void) {
    char cache[512], model[512], entry[1024];
    snprintf(cache, sizeof cache, "%s/cache-disk/a/b", t_tmpdir()); /* parents created */
    setenv("LEMMA_CACHE_DIR", cache, 1);
    snprintf(model, sizeof model, "%s/disk-model.gguf", t_tmpdir());
    T_REQUIRE(copy_file(fixture("qwen3", "model-f32.gguf"), model), "copy");

    lm_identity truth, got;
    T_REQUIRE(child_ident(model, 0, &truth), "child, no cache");
    char digests[600];
    snprintf(digests, sizeof digests, "%s/digests", cache);
    T_CHECK(count_entries(digests, NULL, 0) == 0, "no cache used, none written");
    T_REQUIRE(child_ident(model, 1, &got), "child, cache");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "first cached computation");
    struct stat sb;
    T_CHECK(stat(digests, &sb) == 0 && (sb.st_mode & 0777) == 0700, "digests/ mode %o",
            (unsigned)(sb.st_mode & 0777));

    char *data = NULL;
    size_t n = 0;
    T_REQUIRE(read_entry(cache, entry, sizeof entry, &data, &n), "one entry written");
    T_REQUIRE(n > 52 && memcmp(data, "LMWDIG01", 8) == 0, "magic");
    uint32_t m;
    memcpy(&m, data + 8, 4);
    T_REQUIRE(n == (size_t)m + 52, "size %zu, material %u", n, m);
    T_CHECK(memcmp(data + 12 + m, truth.weights, 32) == 0, "the entry holds the digest");
    T_CHECK(memmem(data + 12, m, "disk-model.gguf", 15) != NULL, "the path is in the key");
    uint8_t *u = (uint8_t *)data;

    /* a valid entry with another digest is believed: the cache is used */
    uint8_t fake[32];
    memset(fake, 0xab, 32);
    memcpy(u + 12 + m, fake, 32);
    put_u64(u + 44 + m, XXH3_64bits(u, 44 + m));
    T_REQUIRE(lm_file_write_atomic(entry, u, n, NULL) == LM_OK, "write");
    T_REQUIRE(child_ident(model, 1, &got), "child");
    T_CHECK(memcmp(got.weights, fake, 32) == 0, "a valid entry is used");
    CHECK_DIFF(&truth, &got, 1, 0, 0, 0, "faked entry");

    /* digest bytes changed, checksum not: recomputed and the entry rewritten */
    u[12 + m + 5] ^= 0x40;
    T_REQUIRE(lm_file_write_atomic(entry, u, n, NULL) == LM_OK, "write");
    T_REQUIRE(child_ident(model, 1, &got), "child");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "corrupt digest bytes");
    free(data);
    data = NULL;
    T_REQUIRE(read_entry(cache, entry, sizeof entry, &data, &n), "entry");
    u = (uint8_t *)data;
    T_CHECK(n == (size_t)m + 52 && memcmp(u + 12 + m, truth.weights, 32) == 0 &&
                XXH3_64bits(u, 44 + m) ==
                    (uint64_t)u[44 + m] + ((uint64_t)u[45 + m] << 8) + ((uint64_t)u[46 + m] << 16) +
                        ((uint64_t)u[47 + m] << 24) + ((uint64_t)u[48 + m] << 32) +
                        ((uint64_t)u[49 + m] << 40) + ((uint64_t)u[50 + m] << 48) +
                        ((uint64_t)u[51 + m] << 56),
            "the corrupt entry was overwritten with the right one");

    /* key fields that do not match (the mtime's nanoseconds), checksum valid: ignored */
    memcpy(u + 12 + m, fake, 32);
    u[12 + m - 1] ^= 0x01;
    put_u64(u + 44 + m, XXH3_64bits(u, 44 + m));
    T_REQUIRE(lm_file_write_atomic(entry, u, n, NULL) == LM_OK, "write");
    T_REQUIRE(child_ident(model, 1, &got), "child");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "mismatched key fields");

    /* other damage: truncated, empty, wrong magic, wrong length */
    size_t cuts[] = {0, 8, 12, n - 1};
    for (int i = 0; i < 4; i++) {
        memcpy(u + 12 + m, fake, 32);
        put_u64(u + 44 + m, XXH3_64bits(u, 44 + m));
        T_REQUIRE(lm_file_write_atomic(entry, u, cuts[i], NULL) == LM_OK, "write");
        T_REQUIRE(child_ident(model, 1, &got), "child");
        CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "truncated entry");
    }
    memcpy(u + 12 + m, fake, 32);
    u[0] = 'X';
    put_u64(u + 44 + m, XXH3_64bits(u, 44 + m));
    T_REQUIRE(lm_file_write_atomic(entry, u, n, NULL) == LM_OK, "write");
    T_REQUIRE(child_ident(model, 1, &got), "child");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "wrong magic");
    free(data);

    /* a changed file (new mtime) gets a new entry, and the right digest */
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 123}};
    T_REQUIRE(utimensat(AT_FDCWD, model, ts, 0) == 0, "utimensat");
    T_REQUIRE(child_ident(model, 1, &got), "child");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "touched file");
    T_CHECK(count_entries(digests, NULL, 0) == 2, "a second entry for the new mtime");

    /* in this process: the first computation fills the process table, so a corrupt disk
     * entry no longer matters for the second one */
    lm_identity a, b;
    T_REQUIRE(ident_path(model, 1, &a), "ident");
    CHECK_DIFF(&truth, &a, 0, 0, 0, 0, "in process");
    T_REQUIRE(ident_path(model, 1, &b), "ident");
    CHECK_DIFF(&truth, &b, 0, 0, 0, 0, "in process, again");

    /* a path that is not the mapped file (another size): computed, nothing cached */
    loaded l;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(load(fixture("llama", "model-f32.gguf"), &l, &e), "%s", e.msg);
    snprintf(l.path, sizeof l.path, "%s", model);
    lm_identity wrong, right;
    int before = count_entries(digests, NULL, 0);
    T_REQUIRE(ident(&l, 1, &wrong, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(ident(&l, 0, &right, &e) == LM_OK, "%s", e.msg);
    CHECK_DIFF(&wrong, &right, 0, 0, 0, 0, "path of another file");
    T_CHECK(count_entries(digests, NULL, 0) == before, "nothing cached for it");
    unload(&l);
    set_cache_dir("cache-main");
}

static void test_unusable_cache(void) {
    lm_identity truth, got;
    char model[512], blocker[512], d[600];
    snprintf(model, sizeof model, "%s/unusable-model.gguf", t_tmpdir());
    T_REQUIRE(copy_file(fixture("gemma3", "model-f32.gguf"), model), "copy");
    T_REQUIRE(child_ident(model, 0, &truth), "child");
    /* the cache directory would be under a regular file */
    snprintf(blocker, sizeof blocker, "%s/blocker", t_tmpdir());
    T_REQUIRE(write_text(blocker, "x"), "write");
    snprintf(d, sizeof d, "%s/sub", blocker);
    setenv("LEMMA_CACHE_DIR", d, 1);
    T_CHECK(child_ident(model, 1, &got), "child with an unusable cache dir");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "unusable cache dir");
    /* a read-only cache directory (unless running as root, which may write anyway) */
    snprintf(d, sizeof d, "%s/readonly", t_tmpdir());
    mkdir(d, 0500);
    setenv("LEMMA_CACHE_DIR", d, 1);
    T_CHECK(child_ident(model, 1, &got), "child with a read-only cache dir");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "read-only cache dir");
    /* no cache directory at all */
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    unsetenv("LEMMA_CACHE_DIR");
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    T_CHECK(child_ident(model, 1, &got), "child without HOME");
    CHECK_DIFF(&truth, &got, 0, 0, 0, 0, "no HOME");
    if (home) setenv("HOME", home, 1);
    free(home);
    set_cache_dir("cache-main");
}

/* Copies the HF fixture files of arch into dir (tokenizer_config.json replaced when cfg). */
static int copy_hf(const char *arch, const char *dir, const char *cfg) {
    const char *files[] = {"config.json", "model.safetensors", "tokenizer.json",
                           "tokenizer_config.json"};
    mkdir(dir, 0700);
    char to[1024];
    for (int i = 0; i < 4; i++) {
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        if (i == 3 && cfg) {
            if (!write_text(to, cfg)) return 0;
        } else if (!copy_file(fixture(arch, files[i]), to)) {
            return 0;
        }
    }
    return 1;
}

static void test_hf(void) {
    lm_identity h1, h2, h3, g;
    set_cache_dir("cache-hf");
    T_REQUIRE(ident_path(fixture("llama", NULL), 1, &h1), "hf");
    T_REQUIRE(ident_path(fixture("llama", NULL), 1, &h2), "hf");
    T_REQUIRE(ident_path(fixture("llama", NULL), 0, &h3), "hf");
    T_REQUIRE(ident_path(fixture("llama", "model-f32.gguf"), 1, &g), "gguf");
    CHECK_DIFF(&h1, &h2, 0, 0, 0, 0, "HF twice");
    CHECK_DIFF(&h1, &h3, 0, 0, 0, 0, "HF uncached");
    T_CHECK(memcmp(h1.weights, g.weights, 32) != 0, "HF and GGUF weights differ (layout)");
    T_CHECK(memcmp(h1.tokenizer, zero32, 32) != 0, "HF tokenizer digested");
    lm_identity c;
    T_CHECK(child_ident(fixture("llama", NULL), 1, &c), "child");
    CHECK_DIFF(&h1, &c, 0, 0, 0, 0, "HF in a child (disk cache)");
    T_CHECK(child_ident(fixture("llama", NULL), 0, &c), "child");
    CHECK_DIFF(&h1, &c, 0, 0, 0, 0, "HF in a child (computed)");
    char digests[600];
    snprintf(digests, sizeof digests, "%s/cache-hf/digests", t_tmpdir());
    /* the GGUF file's digest came from the process table (test_deterministic): no entry */
    T_CHECK(count_entries(digests, NULL, 0) == 1, "one entry for the directory");

    /* tokenizer_config.json: chat_template does not count, other keys do */
    char *cfg = NULL;
    size_t n;
    T_REQUIRE(lm_file_read_all(fixture("llama", "tokenizer_config.json"), 1 << 20, &cfg, &n,
                               NULL) == LM_OK,
              "read");
    json_t *j = json_loads(cfg, JSON_DECODE_INT_AS_REAL, NULL); /* 1e30 as an integer */
    free(cfg);
    T_REQUIRE(j && json_is_object(j), "tokenizer_config.json is an object");
    json_object_set_new(j, "chat_template", json_string("{{ x }}"));
    char *with_tpl = json_dumps(j, JSON_INDENT(3)); /* other formatting too */
    json_object_set_new(j, "chat_template", json_string("{{ y }}"));
    json_object_set_new(j, "model_max_length", json_integer(77));
    char *other = json_dumps(j, 0);
    json_decref(j);
    char d1[512], d2[512], d3[512];
    snprintf(d1, sizeof d1, "%s/hf-copy", t_tmpdir());
    snprintf(d2, sizeof d2, "%s/hf-tpl", t_tmpdir());
    snprintf(d3, sizeof d3, "%s/hf-other", t_tmpdir());
    T_REQUIRE(copy_hf("llama", d1, NULL) && copy_hf("llama", d2, with_tpl) &&
                  copy_hf("llama", d3, other),
              "copies");
    free(with_tpl);
    free(other);
    lm_identity a, b, o;
    T_REQUIRE(ident_path(d1, 1, &a) && ident_path(d2, 1, &b) && ident_path(d3, 1, &o), "ids");
    CHECK_DIFF(&h1, &a, 0, 0, 0, 0, "a copy of the directory");
    CHECK_DIFF(&a, &b, 0, 0, 0, 0, "chat_template in tokenizer_config.json (and formatting)");
    CHECK_DIFF(&a, &o, 0, 0, 1, 0, "another tokenizer_config.json key");
    /* no tokenizer files: 32 zero bytes */
    char tj[600];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", d3);
    unlink(tj);
    snprintf(tj, sizeof tj, "%s/tokenizer_config.json", d3);
    unlink(tj);
    T_REQUIRE(ident_path(d3, 1, &o), "id");
    T_CHECK(memcmp(o.tokenizer, zero32, 32) == 0, "no tokenizer: zeros");
    CHECK_DIFF(&a, &o, 0, 0, 1, 0, "tokenizer files removed");

    /* every architecture: HF and GGUF weights differ, HF stable across processes */
    const char *archs[] = {"qwen2", "qwen3", "gemma3"};
    for (int i = 0; i < 3; i++) {
        lm_identity x, y, z;
        T_REQUIRE(ident_path(fixture(archs[i], NULL), 1, &x), "%s", archs[i]);
        T_REQUIRE(child_ident(fixture(archs[i], NULL), 0, &y), "%s", archs[i]);
        T_REQUIRE(ident_path(fixture(archs[i], "model-f32.gguf"), 1, &z), "%s", archs[i]);
        CHECK_DIFF(&x, &y, 0, 0, 0, 0, archs[i]);
        /* tensor names always differ (arch); the bytes differ where the GGUF conversion
         * changes them (Llama's Q/K row permutation, Gemma's norm + 1) and are the same,
         * in the same order, for Qwen: the weights digest is over bytes only */
        T_CHECK(memcmp(x.arch, z.arch, 32) != 0, "%s: arch", archs[i]);
        T_CHECK((memcmp(x.weights, z.weights, 32) != 0) == (strcmp(archs[i], "gemma3") == 0),
                "%s: weights", archs[i]);
    }
    set_cache_dir("cache-main");
}

typedef struct thread_arg {
    const char *path;
    int use_path;
    lm_identity id;
    int ok;
} thread_arg;

static void *thread_main(void *p) {
    thread_arg *a = p;
    for (int r = 0; r < 5 && a->ok; r++) {
        lm_identity x;
        if (!ident_path(a->path, a->use_path, &x))
            a->ok = 0;
        else if (r == 0)
            a->id = x;
        else if (memcmp(&x, &a->id, sizeof x) != 0)
            a->ok = 0;
    }
    return NULL;
}

static void test_threads(void) {
    set_cache_dir("cache-threads");
    const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3"};
    thread_arg args[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        args[i].path = fixture(archs[i % 4], i < 4 ? "model-f16.gguf" : NULL);
        args[i].path = strdup(args[i].path);
        args[i].use_path = 1;
        args[i].ok = 1;
        T_REQUIRE(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0, "thread");
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        lm_identity serial;
        T_CHECK(args[i].ok, "%s: thread failed or unstable", args[i].path);
        T_CHECK(child_ident(args[i].path, 0, &serial), "child");
        CHECK_DIFF(&serial, &args[i].id, 0, 0, 0, 0, args[i].path);
        free((char *)args[i].path);
    }
    set_cache_dir("cache-main");
}

static void drop_page_cache(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static void time_model(const char *path) {
    if (access(path, R_OK) != 0) T_SKIP("%s not installed", path);
    set_cache_dir("cache-timing");
    drop_page_cache(path);
    loaded l;
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(load(path, &l, &e), "%s", e.msg);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < lm_gguf_n_tensors(l.g); i++)
        bytes += lm_gguf_tensor(l.g, i)->nbytes;
    lm_identity a, b, c, d, f;
    double t0 = now_ms();
    T_REQUIRE(ident(&l, 0, &a, &e) == LM_OK, "%s", e.msg);
    double t1 = now_ms();
    T_REQUIRE(ident(&l, 0, &b, &e) == LM_OK, "%s", e.msg);
    double t2 = now_ms();
    T_REQUIRE(ident(&l, 1, &c, &e) == LM_OK, "%s", e.msg); /* computes, writes the entry */
    double t3 = now_ms();
    T_REQUIRE(ident(&l, 1, &d, &e) == LM_OK, "%s", e.msg); /* process table */
    double t4 = now_ms();
    unload(&l);
    /* a fresh process: the disk entry (the child's total includes opening the model) */
    double t5 = now_ms();
    T_REQUIRE(child_ident(path, 1, &f), "child");
    double t6 = now_ms();
    CHECK_DIFF(&a, &b, 0, 0, 0, 0, "hot");
    CHECK_DIFF(&a, &c, 0, 0, 0, 0, "cached");
    CHECK_DIFF(&a, &d, 0, 0, 0, 0, "process table");
    CHECK_DIFF(&a, &f, 0, 0, 0, 0, "disk entry");
    fprintf(stderr,
            "  %s (%.0f MB of tensors): identity cold %.1f ms (%.2f GB/s), hot %.1f ms (%.2f "
            "GB/s), hot + cache write %.1f ms, process table %.3f ms, new process via disk "
            "entry %.1f ms (incl. open + bind)\n",
            path, (double)bytes / 1e6, t1 - t0, (double)bytes / 1e6 / (t1 - t0), t2 - t1,
            (double)bytes / 1e6 / (t2 - t1), t3 - t2, t4 - t3, t6 - t5);
    set_cache_dir("cache-main");
}

static void test_time_gemma(void) {
    time_model("models/gemma-3-270m-q4_k_m.gguf");
}
static void test_time_smollm(void) {
    time_model("models/smollm2-135m-instruct-q4_1.gguf");
}

int main(void) {
    T_RUN(test_cache_dir); /* also points LEMMA_CACHE_DIR into the temp dir for the rest */
    T_RUN(test_invalid);
    T_RUN(test_deterministic);
    T_RUN(test_gguf_variants);
    T_RUN(test_disk_cache);
    T_RUN(test_unusable_cache);
    T_RUN(test_hf);
    T_RUN(test_threads);
    T_RUN(test_time_gemma);
    T_RUN(test_time_smollm);
    return t_finish();
}
