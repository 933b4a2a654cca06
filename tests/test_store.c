/*
 * test_store.c — the session store (src/store/store.c, store_api.c) on synthetic sessions: no
 * model. Round trips, shared and forked pages, garbage collection, lookup by key, names,
 * corruption of every file kind, index loss and rebuild, reconcile, crash durability (a child
 * killed with SIGKILL at every write step of save / remove / copy, and at random times) and
 * several processes using one store at once.
 */
#include "core/alloc.h"
#include "core/status.h"
#include "kv/kv.h"
#include "store/manifest.h"
#include "store/store.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PT 16 /* page_tokens */
#define NL 2  /* n_layer */
#define KD 8  /* kv_dim */
#define NV 32 /* n_vocab */
#define MAXP 12
#define PAGE_MAX ((size_t)NL * 2 * PT * KD * 2)

typedef struct tstate {
    lm_manifest m;
    int32_t tokens[MAXP * PT];
    lm_page_ref pages[MAXP];
    float logits[NV];
    uint8_t payload[MAXP][PAGE_MAX];
    size_t plen[MAXP];
} tstate;

static lm_identity g_id;

static void init_identity(void) {
    memset(&g_id, 0, sizeof g_id);
    for (int i = 0; i < 32; i++) {
        g_id.weights[i] = (uint8_t)(i * 7 + 1);
        g_id.arch[i] = (uint8_t)(i * 11 + 2);
        g_id.tokenizer[i] = (uint8_t)(i * 13 + 3);
        g_id.chat_template[i] = (uint8_t)(i * 17 + 4);
    }
    g_id.kv_dtype = LM_KV_DTYPE_F16;
    g_id.page_tokens = PT;
    g_id.n_layer = NL;
    g_id.kv_dim = KD;
    lm_identity_kv_id(&g_id, g_id.kv_id);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* A session of n tokens. A page's payload depends on its key only, so equal prefixes give
 * equal blobs (as real KV does). salt varies logits, rng and times. */
static void make_state(tstate *s, const char *name, const int32_t *toks, size_t n, uint64_t salt) {
    memset(s, 0, sizeof *s);
    snprintf(s->m.name, sizeof s->m.name, "%s", name);
    snprintf(s->m.model, sizeof s->m.model, "synthetic test model");
    s->m.created_at = 1000 + salt;
    s->m.updated_at = 2000 + salt;
    s->m.id = g_id;
    s->m.n_ctx = 4096;
    s->m.n_tokens = n;
    memcpy(s->tokens, toks, n * sizeof *toks);
    s->m.tokens = s->tokens;
    s->m.n_pages = (uint32_t)((n + PT - 1) / PT);
    s->m.pages = s->pages;
    lm_kv_key prev;
    for (uint32_t p = 0; p < s->m.n_pages; p++) {
        size_t cnt = n - (size_t)p * PT < PT ? n - (size_t)p * PT : PT;
        lm_kv_page_key(g_id.kv_id, p ? &prev : NULL, toks + (size_t)p * PT, cnt, &s->pages[p].key);
        s->pages[p].n_filled = (uint32_t)cnt;
        s->plen[p] = (size_t)NL * 2 * cnt * KD * 2;
        uint64_t x;
        memcpy(&x, s->pages[p].key.b, 8);
        for (size_t i = 0; i < s->plen[p]; i++) {
            if (i % 8 == 0) x = mix(x + i);
            s->payload[p][i] = (uint8_t)(x >> (8 * (i % 8)));
        }
        lm_digest128(s->payload[p], s->plen[p], &s->pages[p].content);
        prev = s->pages[p].key;
    }
    s->m.n_vocab = NV;
    s->m.logits = s->logits;
    for (int i = 0; i < NV; i++)
        s->logits[i] = (float)(mix(salt * 100 + (uint64_t)i) % 20000) / 100.0f - 100.0f;
    s->logits[3] = -__builtin_inff();
    s->m.rng_valid = 1;
    for (int i = 0; i < 4; i++) s->m.rng[i] = mix(salt * 7 + (uint64_t)i);
}

static void rand_tokens(int32_t *t, size_t n) {
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)(t_rand_u64() % 50000);
}

static lm_status src_cb(void *user, uint32_t i, const void **payload, size_t *bytes, lm_err *err) {
    tstate *s = user;
    if (i >= s->m.n_pages) return lm_err_set(err, LM_ERR_INTERNAL, "page %u out of range", i);
    *payload = s->payload[i];
    *bytes = s->plen[i];
    return LM_OK;
}

typedef struct got {
    uint32_t n;
    uint8_t pl[MAXP][PAGE_MAX];
    size_t len[MAXP];
} got;

static lm_status sink_cb(void *user, uint32_t i, const void *payload, size_t bytes, lm_err *err) {
    got *g = user;
    if (i >= MAXP || bytes > PAGE_MAX) return lm_err_set(err, LM_ERR_INTERNAL, "sink: page %u", i);
    memcpy(g->pl[i], payload, bytes);
    g->len[i] = bytes;
    if (i + 1 > g->n) g->n = i + 1;
    return LM_OK;
}

/* Does the loaded manifest + payloads equal state s (names and times aside)? */
static int same_state(const lm_manifest *m, const got *g, const tstate *s) {
    const lm_manifest *w = &s->m;
    if (m->n_tokens != w->n_tokens || m->n_pages != w->n_pages || m->n_vocab != w->n_vocab ||
        m->rng_valid != w->rng_valid || m->n_ctx != w->n_ctx)
        return 0;
    if (memcmp(&m->id, &w->id, sizeof m->id) != 0) return 0;
    if (memcmp(m->tokens, w->tokens, w->n_tokens * sizeof *w->tokens) != 0) return 0;
    if (memcmp(m->logits, w->logits, w->n_vocab * sizeof *w->logits) != 0) return 0;
    if (memcmp(m->rng, w->rng, sizeof m->rng) != 0) return 0;
    if (strcmp(m->model, w->model) != 0) return 0;
    for (uint32_t p = 0; p < w->n_pages; p++) {
        if (memcmp(&m->pages[p], &w->pages[p], sizeof m->pages[p]) != 0) return 0;
        if (!g) continue;
        if (g->len[p] != s->plen[p] || memcmp(g->pl[p], s->payload[p], s->plen[p]) != 0) return 0;
    }
    return !g || g->n == w->n_pages;
}

static got g_got; /* big: not on the stack */

/* Loads name and returns the index of the state in cands it equals, -1 when it equals none,
 * -2 when the load failed (*status says why). */
static int load_which(lm_store *st, const char *name, const tstate *const *cands, int nc,
                      lm_status *status, lm_err *e) {
    lm_manifest *m = NULL;
    memset(&g_got, 0, sizeof g_got);
    lm_err_clear(e);
    *status = lm_store_load(st, name, &m, sink_cb, &g_got, e);
    if (*status != LM_OK) return -2;
    int which = -1;
    for (int i = 0; i < nc && which < 0; i++)
        if (same_state(m, &g_got, cands[i])) which = i;
    lm_manifest_free(m);
    return which;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) n += count_files(p);
        else n++;
    }
    closedir(d);
    return n;
}

static int count_sub(const char *store, const char *sub) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", store, sub);
    return count_files(p);
}

/* Distinct blobs of the given states. */
static int distinct_blobs(const tstate *const *s, int n) {
    lm_page_ref seen[MAXP * 8];
    int k = 0;
    for (int i = 0; i < n; i++)
        for (uint32_t p = 0; p < s[i]->m.n_pages; p++) {
            int dup = 0;
            for (int j = 0; j < k && !dup; j++)
                dup = memcmp(&seen[j].key, &s[i]->pages[p].key, 32) == 0 &&
                      memcmp(&seen[j].content, &s[i]->pages[p].content, 16) == 0;
            if (!dup && k < MAXP * 8) seen[k++] = s[i]->pages[p];
        }
    return k;
}

static const char *new_store(const char *tag) {
    static char path[4096];
    static int counter;
    snprintf(path, sizeof path, "%s/%s-%d", t_tmpdir(), tag, counter++);
    return path;
}

static void blob_file(const char *store, const lm_page_ref *r, char out[4096]) {
    char k[65], c[33];
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        k[2 * i] = d[r->key.b[i] >> 4];
        k[2 * i + 1] = d[r->key.b[i] & 15];
    }
    k[64] = 0;
    for (int i = 0; i < 16; i++) {
        c[2 * i] = d[r->content.b[i] >> 4];
        c[2 * i + 1] = d[r->content.b[i] & 15];
    }
    c[32] = 0;
    snprintf(out, 4096, "%s/pages/%.2s/%s-%s.page", store, k, k, c);
}

static void session_file(const char *store, const char *name, char out[4096]) {
    snprintf(out, 4096, "%s/sessions/%s.session", store, name);
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)(n > 0 ? n : 0);
    return b;
}

static int spit(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(b, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* The shared fixture: A (70 tokens: 4 full pages + a partial), B (A's first 48 tokens + 40
 * new: shares pages 0-2), C (unrelated, 40 tokens), D (A's first 32 tokens + 20 new). */
static tstate *A, *B, *C, *D;

static void make_fixture(const char *sname) {
    int32_t ta[70], tb[88], tc[40], td[52];
    rand_tokens(ta, 70);
    memcpy(tb, ta, 48 * sizeof *ta);
    rand_tokens(tb + 48, 40);
    rand_tokens(tc, 40);
    memcpy(td, ta, 32 * sizeof *ta);
    rand_tokens(td + 32, 20);
    make_state(A, sname, ta, 70, 1);
    make_state(B, sname, tb, 88, 2);
    make_state(C, "other", tc, 40, 3);
    make_state(D, "dee", td, 52, 4);
}

#define OPEN(st, dir)                                                                         \
    do {                                                                                      \
        lm_err_clear(&e);                                                                     \
        T_REQUIRE(lm_store_open_dir(dir, &st, &e) == LM_OK, "open %s: %s", dir, e.msg);      \
    } while (0)
#define SAVE(st, s)                                                                           \
    do {                                                                                      \
        lm_err_clear(&e);                                                                     \
        T_REQUIRE(lm_store_save(st, &(s)->m, src_cb, (s), NULL, &e) == LM_OK, "save %s: %s", \
                  (s)->m.name, e.msg);                                                       \
    } while (0)

/* ---- basic behaviour ---------------------------------------------------------------------- */

static void test_roundtrip(void) {
    lm_err e;
    const char *dir = new_store("rt");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    uint64_t w1 = 0, w2 = 0;
    lm_err_clear(&e);
    T_REQUIRE(lm_store_save(st, &A->m, src_cb, A, &w1, &e) == LM_OK, "%s", e.msg);
    lm_status s;
    const tstate *c[] = {A};
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "load: %d %s", s, e.msg);
    lm_err_clear(&e);
    T_REQUIRE(lm_store_save(st, &A->m, src_cb, A, &w2, &e) == LM_OK, "%s", e.msg);
    T_CHECK(w1 > w2 && w2 > 0 && w2 < 1000, "bytes written %llu then %llu",
            (unsigned long long)w1, (unsigned long long)w2);
    /* saving again needs no source when the store has every page */
    lm_err_clear(&e);
    T_CHECK(lm_store_save(st, &A->m, NULL, NULL, NULL, &e) == LM_OK, "%s", e.msg);
    T_CHECK(count_sub(dir, "pages") == 5, "pages %d", count_sub(dir, "pages"));
    T_CHECK(count_sub(dir, "tmp") == 0, "tmp not empty");
    static const char *const modes[][2] = {
        {"", "700"},      {"/pages", "700"},        {"/sessions", "700"},          {"/tmp", "700"},
        {"/lock", "600"}, {"/index.sqlite", "600"}, {"/sessions/S.session", "600"}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char p[4200], mode[8];
        struct stat sb;
        snprintf(p, sizeof p, "%s%s", dir, modes[i][0]);
        T_CHECK(stat(p, &sb) == 0, "stat %s", p);
        snprintf(mode, sizeof mode, "%o", (unsigned)(sb.st_mode & 0777));
        T_CHECK(strcmp(mode, modes[i][1]) == 0, "%s mode %s", p, mode);
    }
    lm_store_stats_t stt;
    T_REQUIRE(lm_store_get_stats(st, &stt, &e) == LM_OK, "%s", e.msg);
    T_CHECK(stt.n_sessions == 1 && stt.n_blobs == 5, "stats %llu %llu",
            (unsigned long long)stt.n_sessions, (unsigned long long)stt.n_blobs);
    uint64_t want = 0;
    for (uint32_t p = 0; p < A->m.n_pages; p++) want += 128 + A->plen[p];
    T_CHECK(stt.blob_bytes == want, "blob bytes %llu != %llu", (unsigned long long)stt.blob_bytes,
            (unsigned long long)want);
    /* manifest only */
    lm_manifest *m = NULL;
    lm_err_clear(&e);
    T_CHECK(lm_store_load(st, "S", &m, NULL, NULL, &e) == LM_OK && m &&
                same_state(m, NULL, A),
            "manifest-only load: %s", e.msg);
    lm_manifest_free(m);
    /* a source that lies about a payload is refused before anything is committed */
    tstate *bad = malloc(sizeof *bad);
    memcpy(bad, B, sizeof *bad);
    bad->m.tokens = bad->tokens;
    bad->m.pages = bad->pages;
    bad->m.logits = bad->logits;
    bad->payload[4][0] ^= 1;
    lm_err_clear(&e);
    T_CHECK(lm_store_save(st, &bad->m, src_cb, bad, NULL, &e) == LM_ERR_INVALID_ARG,
            "lying source");
    free(bad);
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "still A after refused save");
    T_CHECK(count_sub(dir, "tmp") == 0, "tmp not empty");
    lm_store_close_dir(st);
    /* reopen: everything still there */
    OPEN(st, dir);
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "after reopen: %d %s", s, e.msg);
    lm_store_close_dir(st);
}


static lm_status src_fail5(void *user, uint32_t i, const void **payload, size_t *bytes,
                           lm_err *err) {
    if (i == 5) return lm_err_set(err, LM_ERR_IO, "source broke at page %u", i);
    return src_cb(user, i, payload, bytes, err);
}

/* A save whose source fails half way leaves the old state and no stray blobs for long. */
static void test_failed_save(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("failsave");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    lm_err_clear(&e);
    T_CHECK(lm_store_save(st, &B->m, src_fail5, B, NULL, &e) == LM_ERR_IO &&
                strstr(e.msg, "page 5") && strstr(e.msg, dir),
            "failing source: %s", e.msg);
    const tstate *c[] = {A};
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "old state kept");
    T_CHECK(count_sub(dir, "tmp") == 0, "tmp");
    T_CHECK(count_sub(dir, "pages") == 5 + 2, "pages %d (B's pages 3 and 4 written)",
            count_sub(dir, "pages"));
    SAVE(st, C); /* the next writer collects them */
    T_CHECK(count_sub(dir, "pages") == 5 + 3, "pages %d", count_sub(dir, "pages"));
    lm_store_close_dir(st);
}

static void test_shared_and_list(void) {
    lm_err e;
    const char *dir = new_store("share");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    snprintf(B->m.name, sizeof B->m.name, "S2");
    SAVE(st, A);
    SAVE(st, B);
    const tstate *ab[] = {A, B};
    T_CHECK(count_sub(dir, "pages") == distinct_blobs(ab, 2) && distinct_blobs(ab, 2) == 8,
            "pages %d, distinct %d", count_sub(dir, "pages"), distinct_blobs(ab, 2));
    lm_store_entry *ents = NULL;
    size_t n = 0;
    T_REQUIRE(lm_store_list_entries(st, &ents, &n, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(n == 2, "n %zu", n);
    T_CHECK(strcmp(ents[0].name, "S") == 0 && strcmp(ents[1].name, "S2") == 0, "order");
    char mp[4096];
    session_file(dir, "S", mp);
    struct stat sb;
    stat(mp, &sb);
    uint64_t all = (uint64_t)sb.st_size, shared = 0;
    for (uint32_t p = 0; p < A->m.n_pages; p++) {
        all += 128 + A->plen[p];
        if (p < 3) shared += 128 + A->plen[p];
    }
    T_CHECK(ents[0].bytes == all && ents[0].shared_bytes == shared,
            "bytes %llu/%llu shared %llu/%llu", (unsigned long long)ents[0].bytes,
            (unsigned long long)all, (unsigned long long)ents[0].shared_bytes,
            (unsigned long long)shared);
    T_CHECK(ents[0].n_tokens == 70 && ents[1].n_tokens == 88, "n_tokens");
    T_CHECK(ents[0].created_at == 1001 && ents[0].updated_at == 2001, "times");
    T_CHECK(strcmp(ents[0].model, "synthetic test model") == 0, "model '%s'", ents[0].model);
    lm_store_entry one;
    T_CHECK(lm_store_entry_get(st, "S2", &one, &e) == LM_OK && one.n_tokens == 88 &&
                one.shared_bytes == shared,
            "entry_get: %s", e.msg);
    lm_free(ents);

    /* public API */
    char err[256];
    lm_store *pub = NULL;
    T_REQUIRE(lm_store_open(dir, &pub, err, sizeof err) == LM_OK, "%s", err);
    T_CHECK(strcmp(lm_store_dir(pub), dir) == 0, "dir %s", lm_store_dir(pub));
    lm_session_info *infos = NULL;
    T_REQUIRE(lm_store_list(pub, &infos, &n, err, sizeof err) == LM_OK && n == 2, "%s", err);
    T_CHECK(strcmp(infos[1].name, "S2") == 0 && infos[1].n_tokens == 88 &&
                infos[0].bytes == all && infos[0].shared_bytes == shared,
            "infos");
    lm_free_session_infos(infos);
    T_CHECK(lm_store_fork(pub, "S", "F", err, sizeof err) == LM_OK, "%s", err);
    T_CHECK(lm_store_fork(pub, "S", "F", err, sizeof err) == LM_ERR_INVALID_ARG,
            "fork onto existing");
    lm_session_info inf;
    struct stat fsb;
    session_file(dir, "F", mp);
    stat(mp, &fsb);
    T_CHECK(lm_store_info(pub, "F", &inf, err, sizeof err) == LM_OK &&
                strcmp(inf.parent, "S") == 0 && inf.n_tokens == 70 &&
                inf.bytes == all - (uint64_t)sb.st_size + (uint64_t)fsb.st_size &&
                inf.shared_bytes == inf.bytes - (uint64_t)fsb.st_size,
            "info F: %s parent '%s' bytes %llu shared %llu", err, inf.parent,
            (unsigned long long)inf.bytes, (unsigned long long)inf.shared_bytes);
    T_CHECK(lm_store_info(pub, "nope", &inf, err, sizeof err) == LM_ERR_NOT_FOUND &&
                strstr(err, dir) != NULL,
            "info missing: %s", err);
    T_CHECK(lm_store_delete(pub, "F", err, sizeof err) == LM_OK, "%s", err);
    T_CHECK(lm_store_delete(pub, "F", err, sizeof err) == LM_ERR_NOT_FOUND, "delete twice");
    lm_store_close(pub);
    lm_store_close(NULL);
    lm_free_session_infos(NULL);
    T_CHECK(lm_store_list(NULL, &infos, &n, err, sizeof err) == LM_ERR_INVALID_ARG, "NULL store");
    lm_store_close_dir(st);
}

static void test_fork_and_remove(void) {
    lm_err e;
    const char *dir = new_store("fork");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    SAVE(st, C);
    lm_err_clear(&e);
    T_REQUIRE(lm_store_copy(st, "S", "F", 0, &e) == LM_OK, "%s", e.msg);
    T_CHECK(count_sub(dir, "pages") == 5 + 3, "fork copied pages: %d", count_sub(dir, "pages"));
    lm_status s;
    const tstate *c[] = {A};
    T_CHECK(load_which(st, "F", c, 1, &s, &e) == 0, "F: %d %s", s, e.msg);
    lm_manifest *m = NULL;
    T_REQUIRE(lm_store_load(st, "F", &m, NULL, NULL, &e) == LM_OK, "%s", e.msg);
    T_CHECK(strcmp(m->name, "F") == 0 && strcmp(m->parent, "S") == 0, "name/parent");
    lm_manifest_free(m);
    lm_err_clear(&e);
    T_CHECK(lm_store_copy(st, "S", "F", 0, &e) == LM_ERR_INVALID_ARG, "copy onto existing");
    lm_err_clear(&e);
    T_CHECK(lm_store_copy(st, "C-none", "G", 0, &e) == LM_ERR_NOT_FOUND, "copy missing");
    lm_err_clear(&e);
    T_CHECK(lm_store_copy(st, "other", "F", 1, &e) == LM_OK, "copy overwrite: %s", e.msg);
    const tstate *cc[] = {C};
    T_CHECK(load_which(st, "F", cc, 1, &s, &e) == 0, "F is C now");
    lm_err_clear(&e);
    T_CHECK(lm_store_copy(st, "S", "F", 1, &e) == LM_OK, "copy back: %s", e.msg);
    /* removing the original keeps every page the fork uses */
    lm_err_clear(&e);
    T_REQUIRE(lm_store_remove(st, "S", &e) == LM_OK, "%s", e.msg);
    T_CHECK(count_sub(dir, "pages") == 8, "pages after remove S: %d", count_sub(dir, "pages"));
    T_CHECK(load_which(st, "F", c, 1, &s, &e) == 0, "F after remove S: %d %s", s, e.msg);
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == -2 && s == LM_ERR_NOT_FOUND, "S gone: %d", s);
    lm_err_clear(&e);
    T_REQUIRE(lm_store_remove(st, "F", &e) == LM_OK, "%s", e.msg);
    T_CHECK(count_sub(dir, "pages") == 3, "only C's pages left: %d", count_sub(dir, "pages"));
    lm_err_clear(&e);
    T_CHECK(lm_store_remove(st, "F", &e) == LM_ERR_NOT_FOUND, "remove twice");
    lm_store_stats_t stt;
    T_CHECK(lm_store_get_stats(st, &stt, &e) == LM_OK && stt.n_sessions == 1 && stt.n_blobs == 3,
            "stats");
    lm_store_close_dir(st);
}

static void test_replace_collects(void) {
    lm_err e;
    const char *dir = new_store("repl");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    SAVE(st, D); /* shares A's pages 0-1 */
    SAVE(st, B); /* replaces A: A's pages 3, 4 go; 0-2 stay */
    const tstate *bd[] = {B, D};
    T_CHECK(count_sub(dir, "pages") == distinct_blobs(bd, 2), "pages %d want %d",
            count_sub(dir, "pages"), distinct_blobs(bd, 2));
    for (uint32_t p = 0; p < A->m.n_pages; p++) {
        char path[4096];
        blob_file(dir, &A->pages[p], path);
        T_CHECK((access(path, F_OK) == 0) == (p < 3), "A page %u present=%d", p,
                access(path, F_OK) == 0);
    }
    lm_status s;
    const tstate *c[] = {B};
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "S is B");
    lm_err_clear(&e);
    T_CHECK(lm_store_remove(st, "dee", &e) == LM_OK, "%s", e.msg);
    T_CHECK(count_sub(dir, "pages") == 6, "pages %d", count_sub(dir, "pages"));
    lm_store_close_dir(st);
}

static lm_status sink_count(void *user, uint32_t i, const void *payload, size_t bytes,
                            lm_err *err) {
    got *g = user;
    memcpy(g->pl[0], payload, bytes);
    g->len[0] = bytes;
    g->n++;
    return LM_OK;
}

static void test_find_page(void) {
    lm_err e;
    const char *dir = new_store("find");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    for (uint32_t p = 0; p < A->m.n_pages; p++) {
        lm_page_ref ref;
        memset(&g_got, 0, sizeof g_got);
        lm_err_clear(&e);
        T_CHECK(lm_store_find_page(st, &A->pages[p].key, &g_id, &ref, sink_count, &g_got, &e) ==
                    LM_OK,
                "find page %u: %s", p, e.msg);
        T_CHECK(memcmp(&ref, &A->pages[p], sizeof ref) == 0, "ref of page %u", p);
        T_CHECK(g_got.n == 1 && g_got.len[0] == A->plen[p] &&
                    memcmp(g_got.pl[0], A->payload[p], A->plen[p]) == 0,
                "payload of page %u", p);
    }
    lm_page_ref ref;
    lm_err_clear(&e);
    T_CHECK(lm_store_find_page(st, &B->pages[4].key, &g_id, &ref, NULL, NULL, &e) ==
                LM_ERR_NOT_FOUND,
            "unknown key");
    /* another model's identity does not find the page */
    lm_identity other = g_id;
    other.weights[0] ^= 1;
    lm_identity_kv_id(&other, other.kv_id);
    lm_err_clear(&e);
    T_CHECK(lm_store_find_page(st, &A->pages[0].key, &other, &ref, NULL, NULL, &e) ==
                LM_ERR_NOT_FOUND,
            "other kv_id found a page");
    /* a corrupt file behind a row is not returned */
    char path[4096];
    blob_file(dir, &A->pages[1], path);
    size_t len;
    uint8_t *orig = slurp(path, &len);
    T_REQUIRE(orig, "read blob");
    uint8_t *bad = malloc(len);
    memcpy(bad, orig, len);
    bad[len - 1] ^= 0x40;
    spit(path, bad, len);
    lm_err_clear(&e);
    T_CHECK(lm_store_find_page(st, &A->pages[1].key, &g_id, &ref, NULL, NULL, &e) ==
                LM_ERR_NOT_FOUND,
            "corrupt page found");
    spit(path, orig, len);
    free(bad);
    free(orig);
    lm_store_close_dir(st);
}

static void test_names(void) {
    lm_err e;
    const char *dir = new_store("names");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    char longname[200];
    memset(longname, 'a', 129);
    longname[129] = 0;
    const char *bad[] = {"",  ".hidden", "a/b",    "..",     "a b", "x\n",
                         "a\\b", longname,  "\xc3\xa9", "x..y", "end."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (strlen(bad[i]) <= LM_SESSION_NAME_MAX) {
            snprintf(A->m.name, sizeof A->m.name, "%s", bad[i]);
            lm_err_clear(&e);
            T_CHECK(lm_store_save(st, &A->m, src_cb, A, NULL, &e) != LM_OK, "saved '%s'", bad[i]);
        }
        lm_err_clear(&e);
        T_CHECK(lm_store_load(st, bad[i], NULL, NULL, NULL, &e) == LM_ERR_INVALID_ARG,
                "load '%s'", bad[i]);
        lm_err_clear(&e);
        T_CHECK(lm_store_remove(st, bad[i], &e) == LM_ERR_INVALID_ARG, "remove '%s'", bad[i]);
        lm_err_clear(&e);
        T_CHECK(lm_store_copy(st, "S", bad[i], 0, &e) == LM_ERR_INVALID_ARG, "copy '%s'", bad[i]);
    }
    T_CHECK(count_sub(dir, "sessions") == 0 && count_sub(dir, "pages") == 0, "nothing written");
    const char *good[] = {"a.b", "A-_9", "x.y.z"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(A->m.name, sizeof A->m.name, "%s", good[i]);
        SAVE(st, A);
    }
    lm_err_clear(&e);
    T_CHECK(lm_store_load(st, "missing", NULL, NULL, NULL, &e) == LM_ERR_NOT_FOUND &&
                strstr(e.msg, dir) && strstr(e.msg, "missing"),
            "missing: %s", e.msg);
    lm_store_close_dir(st);
    /* default directory */
    char buf[4096];
    setenv("LEMMA_STORE", "/x/y", 1);
    T_CHECK(lm_store_default_dir(buf, sizeof buf, &e) == LM_OK && strcmp(buf, "/x/y") == 0, "env");
    unsetenv("LEMMA_STORE");
    const char *xdg = getenv("XDG_DATA_HOME");
    char *saved = xdg ? strdup(xdg) : NULL;
    setenv("XDG_DATA_HOME", "/d", 1);
    T_CHECK(lm_store_default_dir(buf, sizeof buf, &e) == LM_OK &&
                strcmp(buf, "/d/lemma/store") == 0,
            "xdg %s", buf);
    if (saved) setenv("XDG_DATA_HOME", saved, 1);
    else unsetenv("XDG_DATA_HOME");
    free(saved);
    /* a store under a file is refused with the path in the message */
    char fpath[4096];
    snprintf(fpath, sizeof fpath, "%s/plainfile", t_tmpdir());
    spit(fpath, "x", 1);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/store", fpath);
    lm_store *bad_st = NULL;
    lm_err_clear(&e);
    T_CHECK(lm_store_open_dir(sub, &bad_st, &e) == LM_ERR_IO && !bad_st && strstr(e.msg, fpath),
            "store under a file: %s", e.msg);
}

/* ---- corruption --------------------------------------------------------------------------- */

static void test_corruption(void) {
    lm_err e;
    const char *dir = new_store("corrupt");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    SAVE(st, C);
    char mpath[4096], opath[4096], p1[4096], p2[4096];
    session_file(dir, "S", mpath);
    session_file(dir, "other", opath);
    blob_file(dir, &A->pages[1], p1);
    blob_file(dir, &A->pages[2], p2);
    size_t mlen, olen, l1, l2;
    uint8_t *morig = slurp(mpath, &mlen), *oorig = slurp(opath, &olen), *b1 = slurp(p1, &l1),
            *b2 = slurp(p2, &l2);
    T_REQUIRE(morig && oorig && b1 && b2, "read files");
    uint8_t *work = malloc(mlen + olen + l1 + l2 + 64);
    const tstate *c[] = {A};
    lm_status s;
    int files = count_sub(dir, "pages");

    struct {
        const char *what;
        const char *path;
        const uint8_t *orig;
        size_t len;
        int kind; /* 0 truncate, 1 flip middle, 2 flip last byte, 3 replace with other, 4 delete, 5
                     append */
        const uint8_t *other;
        size_t other_len;
    } cases[] = {
        {"manifest truncated", mpath, morig, mlen, 0, NULL, 0},
        {"manifest bit flip", mpath, morig, mlen, 1, NULL, 0},
        {"manifest checksum flip", mpath, morig, mlen, 2, NULL, 0},
        {"manifest swapped", mpath, morig, mlen, 3, oorig, olen},
        {"manifest appended", mpath, morig, mlen, 5, NULL, 0},
        {"page truncated", p1, b1, l1, 0, NULL, 0},
        {"page payload flip", p1, b1, l1, 1, NULL, 0},
        {"page last byte flip", p1, b1, l1, 2, NULL, 0},
        {"page swapped", p1, b1, l1, 3, b2, l2},
        {"page missing", p1, b1, l1, 4, NULL, 0},
        {"page appended", p1, b1, l1, 5, NULL, 0},
    };
    int moved_before = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].len;
        memcpy(work, cases[i].orig, n);
        switch (cases[i].kind) {
        case 0: n = n / 2; break;
        case 1: work[n / 2] ^= 0x10; break;
        case 2: work[n - 1] ^= 0x01; break;
        case 3:
            memcpy(work, cases[i].other, cases[i].other_len);
            n = cases[i].other_len;
            break;
        case 5: memset(work + n, 0, 8); n += 8; break;
        default: break;
        }
        if (cases[i].kind == 4) unlink(cases[i].path);
        else spit(cases[i].path, work, n);
        int r = load_which(st, "S", c, 1, &s, &e);
        T_CHECK(r == -2 && (s == LM_ERR_CORRUPT || s == LM_ERR_FORMAT),
                "%s: load gave %d status %d", cases[i].what, r, s);
        T_CHECK(strstr(e.msg, "S") != NULL, "%s: message '%s'", cases[i].what, e.msg);
        if (cases[i].kind == 4)
            T_CHECK(strstr(e.msg, "missing") != NULL, "missing page message: %s", e.msg);
        /* a damaged page blob is moved aside to corrupt/ (so a later sleep of that content
         * writes it again); a damaged manifest is left alone; reopening touches neither */
        const int page_moved = cases[i].path == p1 && cases[i].kind != 4;
        if (page_moved)
            T_CHECK(strstr(e.msg, "moved to") != NULL, "%s: says where it moved: %s",
                    cases[i].what, e.msg);
        lm_store_close_dir(st);
        OPEN(st, dir);
        size_t now_len = 0;
        uint8_t *now = slurp(cases[i].path, &now_len);
        if (cases[i].kind == 4 || page_moved) {
            T_CHECK(!now, "%s: file came back", cases[i].what);
        } else {
            T_CHECK(now && now_len == n && memcmp(now, work, n) == 0, "%s: file altered",
                    cases[i].what);
        }
        free(now);
        T_CHECK(count_sub(dir, "pages") == files - (cases[i].path == p1),
                "%s: pages %d", cases[i].what, count_sub(dir, "pages"));
        T_CHECK(count_sub(dir, "corrupt") == moved_before + page_moved, "%s: %d in corrupt/",
                cases[i].what, count_sub(dir, "corrupt"));
        moved_before = count_sub(dir, "corrupt");
        r = load_which(st, "S", c, 1, &s, &e);
        T_CHECK(r == -2, "%s: loaded after reopen", cases[i].what);
        const tstate *oc[] = {C};
        T_CHECK(load_which(st, "other", oc, 1, &s, &e) == 0, "%s: other session hurt",
                cases[i].what);
        spit(cases[i].path, cases[i].orig, cases[i].len);
        T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "%s: restored: %d %s", cases[i].what, s,
                e.msg);
    }
    /* a save over a page with a damaged header or size writes it again */
    memcpy(work, b1, l1);
    work[20] ^= 0x22;
    spit(p1, work, l1);
    SAVE(st, A);
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "save repaired header: %d %s", s, e.msg);
    spit(p1, b1, l1 - 2);
    SAVE(st, A);
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "save repaired size: %d %s", s, e.msg);
    free(work);
    free(morig);
    free(oorig);
    free(b1);
    free(b2);
    lm_store_close_dir(st);
}

static void drop_index(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/index.sqlite", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/index.sqlite-wal", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/index.sqlite-shm", dir);
    unlink(p);
}

static void check_all(lm_store *st, const char *dir, int n_sessions, int n_blobs) {
    lm_err e;
    lm_status s;
    lm_store_entry *ents = NULL;
    size_t n = 0;
    lm_err_clear(&e);
    T_CHECK(lm_store_list_entries(st, &ents, &n, &e) == LM_OK && (int)n == n_sessions,
            "list: %zu sessions, want %d: %s", n, n_sessions, e.msg);
    lm_free(ents);
    const tstate *ca[] = {A}, *cc[] = {C};
    T_CHECK(load_which(st, "S", ca, 1, &s, &e) == 0, "load S: %d %s", s, e.msg);
    T_CHECK(load_which(st, "other", cc, 1, &s, &e) == 0, "load other: %d %s", s, e.msg);
    lm_store_stats_t stt;
    T_CHECK(lm_store_get_stats(st, &stt, &e) == LM_OK && (int)stt.n_blobs == n_blobs &&
                (int)stt.n_sessions == n_sessions,
            "stats %llu blobs %llu sessions", (unsigned long long)stt.n_blobs,
            (unsigned long long)stt.n_sessions);
    lm_page_ref ref;
    lm_err_clear(&e);
    T_CHECK(lm_store_find_page(st, &A->pages[2].key, &g_id, &ref, NULL, NULL, &e) == LM_OK,
            "find after rebuild: %s", e.msg);
    (void)dir;
}

static void test_index_rebuild(void) {
    lm_err e;
    const char *dir = new_store("index");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    SAVE(st, C);
    lm_store_close_dir(st);
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/index.sqlite", dir);

    /* deleted */
    drop_index(dir);
    OPEN(st, dir);
    check_all(st, dir, 2, 8);
    lm_store_close_dir(st);

    /* garbage */
    uint8_t junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)t_rand_u64();
    drop_index(dir);
    spit(ipath, junk, sizeof junk);
    OPEN(st, dir);
    check_all(st, dir, 2, 8);
    lm_store_close_dir(st);
    char side[4200];
    snprintf(side, sizeof side, "%s.corrupt", ipath);
    T_CHECK(access(side, F_OK) == 0, "corrupt index not moved aside");

    /* a valid SQLite file with another format / schema */
    static const char *const sqls[] = {
        "UPDATE meta SET v = '2' WHERE k = 'format'",
        "DROP TABLE refs",
        "DELETE FROM meta",
        "DELETE FROM sessions; DELETE FROM refs; DELETE FROM pages", /* empty: reconcile refills */
    };
    for (size_t i = 0; i < sizeof sqls / sizeof sqls[0]; i++) {
        sqlite3 *db = NULL;
        T_REQUIRE(sqlite3_open(ipath, &db) == SQLITE_OK, "sqlite open");
        T_CHECK(sqlite3_exec(db, sqls[i], NULL, NULL, NULL) == SQLITE_OK, "%s", sqls[i]);
        sqlite3_close(db);
        OPEN(st, dir);
        check_all(st, dir, 2, 8);
        lm_store_close_dir(st);
    }

    /* truncated in the middle (a torn copy) */
    size_t len;
    uint8_t *bytes = slurp(ipath, &len);
    T_REQUIRE(bytes && len > 4096, "index size %zu", len);
    drop_index(dir);
    spit(ipath, bytes, len / 2 + 100);
    free(bytes);
    OPEN(st, dir);
    check_all(st, dir, 2, 8);
    lm_store_close_dir(st);
}


/* The index deleted or replaced while a handle is open: the handle notices and rebuilds instead
 * of going on with a file nobody else sees. */
static void test_index_replaced_under_handle(void) {
    lm_err e;
    const char *dir = new_store("index-live");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    SAVE(st, C);
    drop_index(dir);
    check_all(st, dir, 2, 8);
    char ipath[4096], tmp[4200];
    snprintf(ipath, sizeof ipath, "%s/index.sqlite", dir);
    T_CHECK(access(ipath, F_OK) == 0, "index not recreated");
    /* replaced by garbage through a rename (a new file) */
    snprintf(tmp, sizeof tmp, "%s.new", ipath);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)t_rand_u64();
    spit(tmp, junk, sizeof junk);
    rename(tmp, ipath);
    SAVE(st, D); /* a writer notices too */
    check_all(st, dir, 3, 10);
    lm_store *st2;
    OPEN(st2, dir);
    check_all(st2, dir, 3, 10);
    lm_err_clear(&e);
    T_CHECK(lm_store_remove(st2, "dee", &e) == LM_OK, "%s", e.msg);
    check_all(st, dir, 2, 8);
    lm_store_close_dir(st2);
    lm_store_close_dir(st);
}

static void test_reconcile(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("recon");
    lm_store *st;
    OPEN(st, dir);
    make_fixture("S");
    SAVE(st, A);
    lm_err_clear(&e);
    T_REQUIRE(lm_store_copy(st, "S", "keep", 0, &e) == LM_OK, "%s", e.msg); /* keeps A's blobs */
    char mpath[4096];
    session_file(dir, "S", mpath);
    size_t alen;
    uint8_t *abytes = slurp(mpath, &alen);
    T_REQUIRE(abytes, "read manifest");
    SAVE(st, B);
    lm_store_close_dir(st);
    /* the older manifest comes back behind the index's back */
    spit(mpath, abytes, alen);
    free(abytes);
    OPEN(st, dir);
    lm_store_entry en;
    T_CHECK(lm_store_entry_get(st, "S", &en, &e) == LM_OK && en.n_tokens == 70, "n_tokens %llu",
            (unsigned long long)en.n_tokens);
    const tstate *c[] = {A};
    T_CHECK(load_which(st, "S", c, 1, &s, &e) == 0, "S is A again: %d %s", s, e.msg);
    /* B's own pages are referenced by nobody now: collected at open */
    T_CHECK(count_sub(dir, "pages") == 5, "pages %d", count_sub(dir, "pages"));
    SAVE(st, C);
    lm_store_close_dir(st);

    /* a manifest that does not decode is kept, its pages too, and the store still opens */
    char opath[4096];
    session_file(dir, "other", opath);
    size_t olen;
    uint8_t *obytes = slurp(opath, &olen);
    T_REQUIRE(obytes, "read other");
    uint8_t *bad = malloc(olen);
    memcpy(bad, obytes, olen);
    bad[olen - 1] ^= 0xff; /* checksum: also changes the fingerprint */
    spit(opath, bad, olen);
    OPEN(st, dir);
    T_CHECK(lm_store_entry_get(st, "other", &en, &e) == LM_OK, "stale row kept");
    T_CHECK(count_sub(dir, "pages") == 8, "pages %d", count_sub(dir, "pages"));
    lm_store_close_dir(st);
    drop_index(dir);
    OPEN(st, dir);
    lm_err_clear(&e);
    T_CHECK(lm_store_entry_get(st, "other", &en, &e) == LM_ERR_NOT_FOUND, "bad manifest indexed");
    T_CHECK(count_sub(dir, "pages") == 8 && count_sub(dir, "sessions") == 3,
            "pages %d sessions %d", count_sub(dir, "pages"), count_sub(dir, "sessions"));
    const tstate *cc[] = {C};
    T_CHECK(load_which(st, "other", cc, 1, &s, &e) == -2 && s == LM_ERR_CORRUPT, "bad loaded: %d",
            s);
    /* a save elsewhere does not collect the bad manifest's pages */
    SAVE(st, D);
    T_CHECK(count_sub(dir, "pages") == 8 + 2, "pages %d", count_sub(dir, "pages"));
    lm_store_close_dir(st);
    spit(opath, obytes, olen);
    OPEN(st, dir);
    T_CHECK(load_which(st, "other", cc, 1, &s, &e) == 0, "repaired: %d %s", s, e.msg);
    lm_store_close_dir(st);
    free(bad);
    free(obytes);

    /* stray temp files and unreferenced blobs are collected at open */
    char tp[4200];
    snprintf(tp, sizeof tp, "%s/tmp/12345-deadbeef", dir);
    spit(tp, "junk", 4);
    char bp[4096];
    blob_file(dir, &B->pages[4], bp);
    char kk[4096];
    snprintf(kk, sizeof kk, "%s", bp);
    *strrchr(kk, '/') = 0;
    mkdir(kk, 0700);
    spit(bp, "x", 1);
    OPEN(st, dir);
    T_CHECK(count_sub(dir, "tmp") == 0, "tmp not swept");
    T_CHECK(access(bp, F_OK) != 0, "stray blob kept");
    lm_store_close_dir(st);
}

/* ---- crashes ------------------------------------------------------------------------------ */

static int g_kill_at;
static const char *g_kill_step;
static void kill_hook(const char *step, int n) {
    if ((g_kill_step && strcmp(step, g_kill_step) == 0) || (!g_kill_step && n == g_kill_at))
        raise(SIGKILL);
}

enum { OP_SAVE, OP_REMOVE, OP_COPY };

/* Runs op in a child killed at write step k; returns 1 if it was killed, 0 if it finished,
 * -1 on an unexpected end. */
static int crash_child(const char *dir, int op, const tstate *s, int k) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        lm_store *st = NULL;
        if (lm_store_open_dir(dir, &st, NULL) != LM_OK) _exit(3);
        g_kill_at = k;
        g_kill_step = NULL;
        lm_store_set_crash_hook(kill_hook);
        lm_status r;
        if (op == OP_SAVE) r = lm_store_save(st, &s->m, src_cb, (void *)s, NULL, NULL);
        else if (op == OP_REMOVE) r = lm_store_remove(st, s->m.name, NULL);
        else r = lm_store_copy(st, s->m.name, "copy", 0, NULL);
        lm_store_set_crash_hook(NULL);
        lm_store_close_dir(st);
        _exit(r == LM_OK ? 0 : 4);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return 1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    return -1;
}

static void test_crash_save(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("crash-save");
    lm_store *st;
    make_fixture("S");
    OPEN(st, dir);
    SAVE(st, A);
    SAVE(st, C);
    lm_store_close_dir(st);
    const tstate *ab[] = {A, B};
    const tstate *ac[] = {A, C};
    int seen[2] = {0, 0}, k;
    for (k = 1; k < 200; k++) {
        int killed = crash_child(dir, OP_SAVE, B, k);
        T_REQUIRE(killed >= 0, "child at step %d ended unexpectedly", k);
        OPEN(st, dir);
        T_CHECK(count_sub(dir, "tmp") == 0, "step %d: tmp files after open", k);
        int w = load_which(st, "S", ab, 2, &s, &e);
        T_CHECK(w >= 0, "step %d: S is neither A nor B (%d, %d %s)", k, w, s, e.msg);
        if (w >= 0) seen[w]++;
        if (!killed) {
            T_CHECK(w == 1, "finished save is not B");
            lm_store_close_dir(st);
            break;
        }
        const tstate *oc[] = {C};
        T_CHECK(load_which(st, "other", oc, 1, &s, &e) == 0, "step %d: other hurt", k);
        SAVE(st, A); /* back to A for the next step */
        T_CHECK(count_sub(dir, "pages") == distinct_blobs(ac, 2), "step %d: %d pages, want %d", k,
                count_sub(dir, "pages"), distinct_blobs(ac, 2));
        lm_store_close_dir(st);
    }
    T_CHECK(seen[0] > 0 && seen[1] > 1, "states seen: A %d B %d over %d steps", seen[0], seen[1],
            k);
    fprintf(stderr, "  save: %d crash points (A %d, B %d)\n", k - 1, seen[0], seen[1]);
}

static void test_crash_remove(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("crash-rm");
    lm_store *st;
    make_fixture("S");
    snprintf(D->m.name, sizeof D->m.name, "dee");
    OPEN(st, dir);
    SAVE(st, A);
    SAVE(st, D);
    lm_store_close_dir(st);
    const tstate *ca[] = {A}, *cd[] = {D}, *ad[] = {A, D};
    int gone = 0, kept = 0, k;
    for (k = 1; k < 100; k++) {
        int killed = crash_child(dir, OP_REMOVE, A, k);
        T_REQUIRE(killed >= 0, "child at step %d ended unexpectedly", k);
        OPEN(st, dir);
        T_CHECK(count_sub(dir, "tmp") == 0, "tmp files");
        int w = load_which(st, "S", ca, 1, &s, &e);
        T_CHECK(w == 0 || (w == -2 && s == LM_ERR_NOT_FOUND), "step %d: S %d status %d %s", k, w,
                s, e.msg);
        T_CHECK(load_which(st, "dee", cd, 1, &s, &e) == 0, "step %d: dee hurt: %s", k, e.msg);
        if (w == 0) kept++;
        else gone++;
        if (w != 0) {
            const tstate *only_d[] = {D};
            T_CHECK(count_sub(dir, "pages") == distinct_blobs(only_d, 1), "step %d: pages %d", k,
                    count_sub(dir, "pages"));
            SAVE(st, A);
        }
        T_CHECK(count_sub(dir, "pages") == distinct_blobs(ad, 2), "step %d: pages %d", k,
                count_sub(dir, "pages"));
        lm_store_close_dir(st);
        if (!killed) break;
    }
    /* the manifest unlink is the first write step: no crash point leaves the old state */
    T_CHECK(gone > 1, "remove: gone %d kept %d", gone, kept);
    fprintf(stderr, "  remove: %d crash points (gone %d, kept %d)\n", k - 1, gone, kept);
}

static void test_crash_copy(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("crash-cp");
    lm_store *st;
    make_fixture("S");
    OPEN(st, dir);
    SAVE(st, A);
    lm_store_close_dir(st);
    const tstate *ca[] = {A};
    int made = 0, absent = 0, k;
    for (k = 1; k < 100; k++) {
        int killed = crash_child(dir, OP_COPY, A, k);
        T_REQUIRE(killed >= 0, "child at step %d ended unexpectedly", k);
        OPEN(st, dir);
        T_CHECK(count_sub(dir, "tmp") == 0, "tmp files");
        int w = load_which(st, "copy", ca, 1, &s, &e);
        T_CHECK(w == 0 || (w == -2 && s == LM_ERR_NOT_FOUND), "step %d: copy %d %d %s", k, w, s,
                e.msg);
        T_CHECK(load_which(st, "S", ca, 1, &s, &e) == 0, "step %d: S hurt", k);
        T_CHECK(count_sub(dir, "pages") == 5, "pages");
        if (w == 0) {
            made++;
            lm_err_clear(&e);
            T_CHECK(lm_store_remove(st, "copy", &e) == LM_OK, "%s", e.msg);
        } else {
            absent++;
        }
        lm_store_close_dir(st);
        if (!killed) break;
    }
    T_CHECK(made > 1 && absent > 0, "copy: made %d absent %d", made, absent);
}

/* A handle opened before another process died after its commit point must not trust its
 * index: a remove through it would otherwise collect pages only the new manifest uses. */
static void test_crash_stale_handle(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("crash-stale");
    lm_store *st;
    make_fixture("S");
    /* U holds B's own pages (3..5) so that they exist before the crash */
    tstate *U = malloc(sizeof *U);
    make_state(U, "U", B->tokens, B->m.n_tokens, 9);
    OPEN(st, dir);
    SAVE(st, A);
    SAVE(st, U);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        lm_store *cst = NULL;
        if (lm_store_open_dir(dir, &cst, NULL) != LM_OK) _exit(3);
        g_kill_step = "fsync sessions dir"; /* just after the commit point */
        lm_store_set_crash_hook(kill_hook);
        lm_store_save(cst, &B->m, src_cb, B, NULL, NULL);
        _exit(5);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    T_REQUIRE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    lm_err_clear(&e);
    T_CHECK(lm_store_remove(st, "U", &e) == LM_OK, "%s", e.msg);
    const tstate *cb[] = {B};
    T_CHECK(load_which(st, "S", cb, 1, &s, &e) == 0, "S after remove via stale handle: %d %s", s,
            e.msg);
    lm_store_entry en;
    T_CHECK(lm_store_entry_get(st, "S", &en, &e) == LM_OK && en.n_tokens == 88, "index updated");
    T_CHECK(count_sub(dir, "pages") == 6, "pages %d", count_sub(dir, "pages"));
    lm_store_close_dir(st);
    free(U);
}

static void test_crash_random(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("crash-rand");
    lm_store *st;
    make_fixture("S");
    OPEN(st, dir);
    SAVE(st, A);
    lm_store_close_dir(st);
    const tstate *ab[] = {A, B};
    int seen[2] = {0, 0};
    for (int it = 0; it < 30; it++) {
        int pfd[2];
        T_REQUIRE(pipe(pfd) == 0, "pipe");
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            lm_store *cst = NULL;
            close(pfd[0]);
            if (lm_store_open_dir(dir, &cst, NULL) != LM_OK) _exit(3);
            if (write(pfd[1], "o", 1) != 1) _exit(6); /* opened: the random window starts */
            for (int j = 0;; j++) {
                const tstate *x = (j & 1) ? A : B;
                if (lm_store_save(cst, &x->m, src_cb, (void *)x, NULL, NULL) != LM_OK) _exit(4);
            }
        }
        close(pfd[1]);
        char ch;
        T_CHECK(read(pfd[0], &ch, 1) == 1, "child did not open the store");
        close(pfd[0]);
        struct timespec ts = {0, (long)(t_rand_u64() % 30000000)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        T_CHECK(WIFSIGNALED(status), "iteration %d: child exited %d", it, WEXITSTATUS(status));
        OPEN(st, dir);
        T_CHECK(count_sub(dir, "tmp") == 0, "tmp files");
        int w = load_which(st, "S", ab, 2, &s, &e);
        T_CHECK(w >= 0, "iteration %d: neither A nor B (%d %d %s)", it, w, s, e.msg);
        if (w >= 0) seen[w]++;
        T_CHECK(count_sub(dir, "pages") == (int)ab[w >= 0 ? w : 0]->m.n_pages,
                "iteration %d: pages %d", it, count_sub(dir, "pages"));
        lm_store_close_dir(st);
    }
    fprintf(stderr, "  random kills: A %d, B %d\n", seen[0], seen[1]);
}

/* ---- concurrency -------------------------------------------------------------------------- */

static void test_concurrent(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("conc");
    lm_store *st;
    /* X1a/X1b and X2a/X2b: every state shares the first two pages (a common prompt) */
    int32_t base[120];
    rand_tokens(base, 120);
    tstate *x[4];
    for (int i = 0; i < 4; i++) x[i] = malloc(sizeof *x[i]);
    int32_t t[120];
    for (int i = 0; i < 4; i++) {
        memcpy(t, base, sizeof t);
        rand_tokens(t + 32, 20 + 10 * (size_t)i);
        make_state(x[i], i < 2 ? "one" : "two", t, 52 + 10 * (size_t)i, 10 + (uint64_t)i);
    }
    OPEN(st, dir);
    SAVE(st, x[0]);
    SAVE(st, x[2]);
    lm_store_close_dir(st);
    fflush(NULL);
    pid_t pids[3];
    for (int c = 0; c < 3; c++) {
        pids[c] = fork();
        if (pids[c] != 0) continue;
        lm_store *cst = NULL;
        lm_err ce;
        lm_err_clear(&ce);
        if (lm_store_open_dir(dir, &cst, &ce) != LM_OK) {
            fprintf(stderr, "child %d open: %s\n", c, ce.msg);
            _exit(3);
        }
        if (c < 2) {
            for (int j = 0; j < 12; j++) {
                const tstate *w = x[c * 2 + (j & 1)];
                lm_err_clear(&ce);
                if (lm_store_save(cst, &w->m, src_cb, (void *)w, NULL, &ce) != LM_OK) {
                    fprintf(stderr, "child %d save: %s\n", c, ce.msg);
                    _exit(4);
                }
            }
        } else {
            for (int j = 0; j < 40; j++) {
                const tstate *o[] = {x[0], x[1]}, *tw[] = {x[2], x[3]};
                lm_status cs;
                if (load_which(cst, "one", o, 2, &cs, &ce) < 0 ||
                    load_which(cst, "two", tw, 2, &cs, &ce) < 0) {
                    fprintf(stderr, "reader: load %d: %s\n", cs, ce.msg);
                    _exit(5);
                }
                lm_store_entry *ents = NULL;
                size_t n = 0;
                lm_err_clear(&ce);
                if (lm_store_list_entries(cst, &ents, &n, &ce) != LM_OK || n != 2) {
                    fprintf(stderr, "reader: list %zu: %s\n", n, ce.msg);
                    _exit(6);
                }
                lm_free(ents);
            }
        }
        lm_store_close_dir(cst);
        _exit(0);
    }
    for (int c = 0; c < 3; c++) {
        int status = 0;
        waitpid(pids[c], &status, 0);
        T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d status %d", c, status);
    }
    OPEN(st, dir);
    const tstate *o[] = {x[0], x[1]}, *tw[] = {x[2], x[3]};
    int w1 = load_which(st, "one", o, 2, &s, &e);
    int w2 = load_which(st, "two", tw, 2, &s, &e);
    T_CHECK(w1 == 1 && w2 == 1, "final states %d %d", w1, w2);
    const tstate *fin[] = {x[1], x[3]};
    T_CHECK(count_sub(dir, "pages") == distinct_blobs(fin, 2), "pages %d want %d",
            count_sub(dir, "pages"), distinct_blobs(fin, 2));
    lm_store_close_dir(st);
    for (int i = 0; i < 4; i++) free(x[i]);
}


/* Threads: two share one handle, a third has its own; all save and load. */
typedef struct thr_arg {
    lm_store *st;
    const tstate *s[2];
    int fails;
    char msg[LM_ERR_MSG_MAX];
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    static _Thread_local got tg;
    for (int j = 0; j < 8 && !a->fails; j++) {
        const tstate *w = a->s[j & 1];
        lm_err e;
        lm_err_clear(&e);
        if (lm_store_save(a->st, &w->m, src_cb, (void *)w, NULL, &e) != LM_OK) {
            a->fails++;
            snprintf(a->msg, sizeof a->msg, "save: %s", e.msg);
            break;
        }
        lm_manifest *m = NULL;
        memset(&tg, 0, sizeof tg);
        lm_err_clear(&e);
        if (lm_store_load(a->st, w->m.name, &m, sink_cb, &tg, &e) != LM_OK ||
            (!same_state(m, &tg, a->s[0]) && !same_state(m, &tg, a->s[1]))) {
            a->fails++;
            snprintf(a->msg, sizeof a->msg, "load: %s", e.msg);
        }
        lm_manifest_free(m);
    }
    return NULL;
}

static void test_threads(void) {
    lm_err e;
    const char *dir = new_store("threads");
    lm_store *st1, *st2;
    OPEN(st1, dir);
    OPEN(st2, dir);
    int32_t base[120], t[120];
    rand_tokens(base, 120);
    tstate *x[6];
    for (int i = 0; i < 6; i++) {
        x[i] = malloc(sizeof *x[i]);
        memcpy(t, base, sizeof t);
        rand_tokens(t + 40, 30);
        char name[16];
        snprintf(name, sizeof name, "t%d", i / 2);
        make_state(x[i], name, t, 60 + (size_t)i * 5, 20 + (uint64_t)i);
    }
    thr_arg args[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].st = i < 2 ? st1 : st2;
        args[i].s[0] = x[2 * i];
        args[i].s[1] = x[2 * i + 1];
        pthread_create(&th[i], NULL, thr_main, &args[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        T_CHECK(args[i].fails == 0, "thread %d: %s", i, args[i].msg);
    }
    const tstate *fin[] = {x[1], x[3], x[5]};
    T_CHECK(count_sub(dir, "pages") == distinct_blobs(fin, 3), "pages %d want %d",
            count_sub(dir, "pages"), distinct_blobs(fin, 3));
    lm_store_close_dir(st1);
    lm_store_close_dir(st2);
    for (int i = 0; i < 6; i++) free(x[i]);
}

/* Every allocation of every operation failing in turn: a clean error, no leak (ASan), and the
 * store still consistent afterwards. */
static void test_alloc_failures(void) {
    lm_err e;
    lm_status s;
    const char *dir = new_store("oom");
    make_fixture("S");
    lm_store *st = NULL;
    OPEN(st, dir);
    SAVE(st, A);
    lm_store_close_dir(st);
    int ops = 0;
    for (int op = 0; op < 6; op++) {
        for (unsigned long n = 1; n < 500; n++) {
            lm_store *o = NULL;
            OPEN(o, dir);
            lm_manifest *m = NULL;
            lm_store_entry *ents = NULL;
            size_t cnt = 0;
            lm_err_clear(&e);
            lm_alloc_fail_after(n, 0);
            switch (op) {
            case 0: s = lm_store_save(o, &B->m, src_cb, B, NULL, &e); break;
            case 1: s = lm_store_load(o, "S", &m, sink_cb, &g_got, &e); break;
            case 2: s = lm_store_list_entries(o, &ents, &cnt, &e); break;
            case 3: s = lm_store_copy(o, "S", "cp", 1, &e); break;
            case 4: s = lm_store_remove(o, "cp", &e); break;
            default: {
                lm_store *o2 = NULL;
                s = lm_store_open_dir(dir, &o2, &e);
                lm_store_close_dir(o2);
            }
            }
            unsigned long injected = lm_alloc_injected_failures();
            lm_alloc_fail_after(0, 0);
            lm_manifest_free(m);
            lm_free(ents);
            T_CHECK(s == LM_OK || s == LM_ERR_NOMEM || (op == 4 && s == LM_ERR_NOT_FOUND),
                    "op %d alloc %lu: status %d %s", op, n, s, e.msg);
            /* whatever happened, the store holds a whole state */
            const tstate *ab[] = {A, B};
            T_CHECK(load_which(o, "S", ab, 2, &s, &e) >= 0, "op %d alloc %lu: S broken: %s", op,
                    n, e.msg);
            lm_store_close_dir(o);
            ops++;
            if (!injected) break;
        }
    }
    OPEN(st, dir);
    T_CHECK(count_sub(dir, "pages") == (int)B->m.n_pages, "pages %d", count_sub(dir, "pages"));
    lm_store_close_dir(st);
    fprintf(stderr, "  %d injected-failure runs\n", ops);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* T_RUN with the time each test took (fsync-bound: depends on the disk) */
#define RUN(fn)                                                                               \
    do {                                                                                      \
        double t0_ = now_s();                                                                 \
        T_RUN(fn);                                                                            \
        fprintf(stderr, "  %s: %.2f s\n", #fn, now_s() - t0_);                                \
    } while (0)

int main(void) {
    t_srand(0x5eed5704eull);
    init_identity();
    A = malloc(sizeof *A);
    B = malloc(sizeof *B);
    C = malloc(sizeof *C);
    D = malloc(sizeof *D);
    RUN(test_roundtrip);
    RUN(test_failed_save);
    RUN(test_shared_and_list);
    RUN(test_fork_and_remove);
    RUN(test_replace_collects);
    RUN(test_find_page);
    RUN(test_names);
    RUN(test_corruption);
    RUN(test_index_rebuild);
    RUN(test_index_replaced_under_handle);
    RUN(test_reconcile);
    RUN(test_crash_save);
    RUN(test_crash_remove);
    RUN(test_crash_copy);
    RUN(test_crash_stale_handle);
    RUN(test_crash_random);
    RUN(test_concurrent);
    RUN(test_threads);
    RUN(test_alloc_failures);
    free(A);
    free(B);
    free(C);
    free(D);
    return t_finish();
}
