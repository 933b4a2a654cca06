/*
 * identity.c — the component digests of a loaded model (docs/formats/store.md §2) and the
 * on-disk cache of its weights digest (§6).
 *
 * Every digest is SHA-256 over an explicit serialisation: integers little-endian of the width
 * named, "str" = u64 length + the bytes, and each begins with a version tag (with its NUL), so
 * that a change of definition changes every digest instead of colliding with the old ones.
 *
 *   weights        SHA-256("lemma-weights-v1\0" || u64 n_tensors ||
 *                          per tensor in table order: u64 nbytes || XXH3-128(bytes) as
 *                          u64 high || u64 low)
 *                  The table is the GGUF tensor table, or for a Hugging Face directory every
 *                  tensor of every shard (shard by shard, each in file order), MLX packs'
 *                  scales and biases included. Per-tensor XXH3 over the read-only mapping,
 *                  the tensors shared out over a few threads (the result does not depend on
 *                  how many).
 *   arch           SHA-256("lemma-arch-v1\0" || str arch_name || every lm_hparams field in
 *                          declaration order: enums and ints as u32/i32, floats as their u32
 *                          bit patterns || u64 n_tensors || per tensor: str name || u32 dtype
 *                          || u32 n_dims || u64 ne[0..n_dims))
 *   tokenizer      GGUF: SHA-256("lemma-tokenizer-gguf-v1\0" || per metadata key that starts
 *                          with "tokenizer." other than "tokenizer.chat_template", in file
 *                          order: str key || u32 type || u32 elem_type (arrays, else
 *                          0xffffffff) || u64 n || str raw value bytes as stored in the file
 *                          (for arrays of strings the whole on-disk encoding));
 *                  HF:   SHA-256("lemma-tokenizer-hf-v1\0" || u8 has tokenizer.json || str its
 * bytes || tokenizer_config.json: u8 1 and str of its JSON with the "chat_template" key removed,
 * dumped by jansson with sorted keys and compact separators; u8 2 and str of its raw bytes when it
 * is not a JSON object lm_json_parse accepts; u8 0 when absent); 32 zero bytes when there is no
 * tokenizer (no such GGUF key; no tokenizer files in the directory). chat_template  SHA-256 of the
 * template text; 32 zero bytes when there is none.
 *
 * Weights digest cache: $LEMMA_CACHE_DIR, else $XDG_CACHE_HOME/lemma (absolute only), else
 * $HOME/.cache/lemma, then digests/ (directories created 0700). The key material of a model
 * file is
 *     "lemma-digest-key-v1\0" || per weight file: str absolute path || u64 st_dev ||
 *     u64 st_ino || u64 st_size || i64 st_mtim.tv_sec || i64 st_mtim.tv_nsec
 * (one file for GGUF; every safetensors shard, in lm_hf_file order, for a directory), and an
 * entry is the file digests/<hex SHA-256 of the key material>:
 *     [0, 8)        magic "LMWDIG01"
 *     [8, 12)       u32 M: bytes of the key material
 *     [12, 12+M)    the key material
 *     [12+M, 44+M)  the weights digest
 *     [44+M, 52+M)  u64 XXH3-64 (seed 0) of bytes [0, 44+M)
 * An entry is used only when every byte checks out (size, magic, M, material equal to the
 * current one, checksum); anything else is recomputed and overwritten (written atomically).
 * The key is taken before and after hashing; a file that changed meanwhile, or whose size is
 * not that of the mapping, is not cached. An unusable cache directory is silently skipped.
 * A process-wide table (key SHA-256 -> digest, under a mutex) spares a second load in the same
 * process the disk read.
 *
 * Thread safety: lm_identity_compute may run in several threads at once; the only shared
 * state is the process table and the cache writes, each under its own mutex.
 */
#include "engine/identity.h"

#include "core/le.h"
#include "core/sha256.h"

#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* Adding a field to lm_hparams changes its size: put the field in hash_arch, then here. */
_Static_assert(sizeof(lm_hparams) == 148, "lm_hparams changed: update hash_arch in identity.c");

#define TOKENIZER_MAX_BYTES ((size_t)1 << 30)
#define CACHE_MAGIC "LMWDIG01"
#define CACHE_MAX_MATERIAL ((size_t)16 << 20)
#define WEIGHT_THREADS_MAX 8
#define WEIGHT_PARALLEL_MIN_BYTES ((uint64_t)32 << 20) /* below this one thread is as fast */
#define PROC_CACHE_MAX 64

/* ---- SHA-256 over explicit little-endian fields ---------------------------------------- */

typedef struct sha {
    lm_sha256 r;
} sha;

static lm_status sha_begin(sha *h, const char *tag, size_t tag_len, lm_err *err) {
    lm_sha256_init(&h->r, 0);
    lm_sha256_update(&h->r, tag, tag_len);
    if (!h->r.ok) {
        uint8_t drop[32];
        lm_sha256_final(&h->r, drop);
        return lm_err_set(err, LM_ERR_NOMEM, "identity: SHA-256 context");
    }
    return LM_OK;
}
#define SHA_BEGIN(h, lit, err) sha_begin(h, lit, sizeof(lit), err) /* the tag's NUL included */

static void sha_put(sha *h, const void *p, size_t n) {
    if (n) lm_sha256_update(&h->r, p, n);
}
static void sha_u8(sha *h, uint8_t v) {
    sha_put(h, &v, 1);
}
static void sha_u32(sha *h, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    sha_put(h, b, 4);
}
static void sha_u64(sha *h, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    sha_put(h, b, 8);
}
static void sha_f32(sha *h, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    sha_u32(h, u);
}
static void sha_str(sha *h, const void *p, size_t n) {
    sha_u64(h, n);
    sha_put(h, p, n);
}

/* Finishes into out and frees the context (also on failure). */
static lm_status sha_end(sha *h, uint8_t out[32], lm_err *err) {
    if (!lm_sha256_final(&h->r, out))
        return lm_err_set(err, LM_ERR_NOMEM, "identity: SHA-256 failed");
    return LM_OK;
}
static void sha_abort(sha *h) {
    uint8_t drop[32];
    lm_sha256_final(&h->r, drop);
}


/* ---- growable byte buffer (key material) ------------------------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    int bad;
} buf;

static void buf_put(buf *b, const void *p, size_t n) {
    if (b->bad || !n) return;
    if (n > CACHE_MAX_MATERIAL || b->n + n > CACHE_MAX_MATERIAL) {
        b->bad = 1;
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *q = lm_realloc(b->p, cap);
        if (!q) {
            b->bad = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void buf_u64(buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}
static void buf_str(buf *b, const char *s) {
    size_t n = strlen(s);
    buf_u64(b, n);
    buf_put(b, s, n);
}


/* ---- the tensor table of either source -------------------------------------------------- */

static uint64_t src_n_tensors(const lm_identity_src *s) {
    return s->gguf ? lm_gguf_n_tensors(s->gguf) : lm_hf_n_tensors(s->hf);
}
static const lm_tensor_info *src_tensor(const lm_identity_src *s, uint64_t i) {
    if (s->gguf) return lm_gguf_tensor(s->gguf, i);
    return i <= UINT32_MAX ? lm_hf_tensor(s->hf, (uint32_t)i) : NULL;
}

/* ---- weights ---------------------------------------------------------------------------- */

typedef struct weights_job {
    const lm_identity_src *src;
    uint64_t n;
    XXH128_hash_t *out; /* (n) */
    atomic_uint_fast64_t next;
} weights_job;

static void *weights_worker(void *arg) {
    weights_job *j = arg;
    for (;;) {
        uint64_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        const lm_tensor_info *t = src_tensor(j->src, i);
        const void *p = t && t->data ? t->data : "";
        size_t n = t && t->data ? (size_t)t->nbytes : 0;
        j->out[i] = XXH3_128bits(p, n);
    }
    return NULL;
}

static lm_status hash_weights(const lm_identity_src *src, uint8_t out[32], lm_err *err) {
    uint64_t n = src_n_tensors(src), total = 0;
    for (uint64_t i = 0; i < n; i++) {
        const lm_tensor_info *t = src_tensor(src, i);
        if (!t)
            return lm_err_set(err, LM_ERR_INVALID_ARG, "identity: tensor %llu missing",
                              (unsigned long long)i);
        total += t->nbytes;
    }
    weights_job j = {.src = src, .n = n};
    atomic_init(&j.next, 0);
    j.out = lm_calloc(n ? (size_t)n : 1, sizeof *j.out);
    if (!j.out)
        return lm_err_set(err, LM_ERR_NOMEM, "identity: %llu tensor digests",
                          (unsigned long long)n);
    int nt = 1;
    if (total >= WEIGHT_PARALLEL_MIN_BYTES && n > 1) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nt = c > 1 ? (int)(c < WEIGHT_THREADS_MAX ? c : WEIGHT_THREADS_MAX) : 1;
        if ((uint64_t)nt > n) nt = (int)n;
    }
    pthread_t th[WEIGHT_THREADS_MAX];
    int started = 0;
    for (int k = 1; k < nt; k++) {
        if (pthread_create(&th[started], NULL, weights_worker, &j) != 0) break;
        started++;
    }
    weights_worker(&j); /* this thread works too, and finishes alone if none started */
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);

    sha h;
    lm_status s = SHA_BEGIN(&h, "lemma-weights-v1", err);
    if (s == LM_OK) {
        sha_u64(&h, n);
        for (uint64_t i = 0; i < n; i++) {
            sha_u64(&h, src_tensor(src, i)->nbytes);
            sha_u64(&h, j.out[i].high64);
            sha_u64(&h, j.out[i].low64);
        }
        s = sha_end(&h, out, err);
    }
    lm_free(j.out);
    return s;
}

/* ---- weights digest caches -------------------------------------------------------------- */

typedef struct proc_entry {
    uint8_t key[32];
    uint8_t digest[32];
} proc_entry;

static pthread_mutex_t proc_mu = PTHREAD_MUTEX_INITIALIZER;
static proc_entry proc_cache[PROC_CACHE_MAX];
static int proc_n, proc_next;
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER; /* one writer of temp files */

static int proc_lookup(const uint8_t key[32], uint8_t digest[32]) {
    int hit = 0;
    pthread_mutex_lock(&proc_mu);
    for (int i = 0; i < proc_n && !hit; i++)
        if (memcmp(proc_cache[i].key, key, 32) == 0) {
            memcpy(digest, proc_cache[i].digest, 32);
            hit = 1;
        }
    pthread_mutex_unlock(&proc_mu);
    return hit;
}

static void proc_store(const uint8_t key[32], const uint8_t digest[32]) {
    pthread_mutex_lock(&proc_mu);
    int slot = -1;
    for (int i = 0; i < proc_n; i++)
        if (memcmp(proc_cache[i].key, key, 32) == 0) slot = i;
    if (slot < 0) {
        if (proc_n < PROC_CACHE_MAX) {
            slot = proc_n++;
        } else {
            slot = proc_next;
            proc_next = (proc_next + 1) % PROC_CACHE_MAX;
        }
    }
    memcpy(proc_cache[slot].key, key, 32);
    memcpy(proc_cache[slot].digest, digest, 32);
    pthread_mutex_unlock(&proc_mu);
}

/* Appends one weight file's key fields; 0 when it cannot be stat'ed or is not the size of its
 * mapping (then it is not what was mapped, and nothing is cached). */
static int key_file(buf *b, const char *path, uint64_t mapped_size) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != mapped_size)
        return 0;
    buf_str(b, path);
    buf_u64(b, (uint64_t)st.st_dev);
    buf_u64(b, (uint64_t)st.st_ino);
    buf_u64(b, (uint64_t)st.st_size);
    buf_u64(b, (uint64_t)(int64_t)st.st_mtim.tv_sec);
    buf_u64(b, (uint64_t)(int64_t)st.st_mtim.tv_nsec);
    return 1;
}

/* The key material of src into b (reset first); 0 when there is none (b->bad on memory). */
static int key_material(const lm_identity_src *src, buf *b) {
    b->n = 0;
    b->bad = 0;
    if (!src->path) return 0;
    char *abs = realpath(src->path, NULL);
    if (!abs) return 0;
    static const char tag[] = "lemma-digest-key-v1";
    buf_put(b, tag, sizeof tag);
    int ok = 1;
    if (src->gguf) {
        ok = key_file(b, abs, lm_gguf_size(src->gguf));
    } else {
        uint32_t nf = lm_hf_n_files(src->hf);
        size_t al = strlen(abs);
        for (uint32_t i = 0; i < nf && ok; i++) {
            const char *name = lm_hf_file_name(src->hf, i);
            const lm_st *st = lm_hf_file(src->hf, i);
            if (!name || !st) {
                ok = 0;
                break;
            }
            size_t nl = strlen(name);
            if (al > SIZE_MAX / 2 || nl > SIZE_MAX / 2) {
                ok = 0;
                break;
            }
            char *p = lm_malloc(al + nl + 2);
            if (!p) {
                b->bad = 1;
                break;
            }
            memcpy(p, abs, al);
            p[al] = '/';
            memcpy(p + al + 1, name, nl + 1);
            ok = key_file(b, p, lm_st_file_bytes(st));
            lm_free(p);
        }
    }
    free(abs);
    return ok && !b->bad;
}

int lm_identity_cache_dir(char *out, size_t len) {
    const char *d = getenv("LEMMA_CACHE_DIR");
    int n;
    if (!out || !len) return 0;
    if (d && *d) {
        n = snprintf(out, len, "%s", d);
    } else if ((d = getenv("XDG_CACHE_HOME")) && d[0] == '/') {
        n = snprintf(out, len, "%s/lemma", d);
    } else if ((d = getenv("HOME")) && *d) {
        n = snprintf(out, len, "%s/.cache/lemma", d);
    } else {
        out[0] = '\0';
        return 0;
    }
    if (n < 0 || (size_t)n >= len) {
        out[0] = '\0';
        return 0;
    }
    return 1;
}

/* mkdir -p with mode 0700 for the parts that are missing; 1 when path is a directory. */
static int mkdir_p(char *path) {
    for (char *s = path + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            *s = '/';
            return 0;
        }
        *s = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return 0;
    return lm_path_is_dir(path);
}

/* digests/<hex> path for the key into out; 0 when no cache directory. */
static int entry_path(const uint8_t key[32], char *out, size_t len, int create) {
    char dir[PATH_MAX];
    if (!lm_identity_cache_dir(dir, sizeof dir)) return 0;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dir[--dl] = '\0';
    if (dl + sizeof "/digests" > sizeof dir) return 0;
    memcpy(dir + dl, "/digests", sizeof "/digests");
    if (create && !mkdir_p(dir)) return 0;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    int n = snprintf(out, len, "%s/%s", dir, hex);
    return n > 0 && (size_t)n < len;
}

static int disk_lookup(const uint8_t key[32], const buf *mat, uint8_t digest[32]) {
    char path[PATH_MAX + 80];
    if (!entry_path(key, path, sizeof path, 0)) return 0;
    char *data = NULL;
    size_t n = 0;
    if (lm_file_read_all(path, CACHE_MAX_MATERIAL + 64, &data, &n, NULL) != LM_OK) return 0;
    const uint8_t *p = (const uint8_t *)data;
    int ok = n == mat->n + 52 && memcmp(p, CACHE_MAGIC, 8) == 0 && lm_le_get_u32(p + 8) == mat->n &&
             memcmp(p + 12, mat->p, mat->n) == 0 &&
             lm_le_get_u64(p + 44 + mat->n) == (uint64_t)XXH3_64bits(p, 44 + mat->n);
    if (ok) memcpy(digest, p + 12 + mat->n, 32);
    lm_free(data);
    return ok;
}

static void disk_store(const uint8_t key[32], const buf *mat, const uint8_t digest[32]) {
    char path[PATH_MAX + 80];
    if (mat->n > UINT32_MAX || !entry_path(key, path, sizeof path, 1)) return;
    size_t n = mat->n + 52;
    uint8_t *p = lm_malloc(n);
    if (!p) return;
    memcpy(p, CACHE_MAGIC, 8);
    lm_le_put_u32(p + 8, (uint32_t)mat->n);
    memcpy(p + 12, mat->p, mat->n);
    memcpy(p + 12 + mat->n, digest, 32);
    lm_le_put_u64(p + 44 + mat->n, (uint64_t)XXH3_64bits(p, 44 + mat->n));
    /* lm_file_write_atomic's temp name is per process: one writer at a time in this one */
    pthread_mutex_lock(&write_mu);
    (void)lm_file_write_atomic(path, p, n, NULL);
    pthread_mutex_unlock(&write_mu);
    lm_free(p);
}

static lm_status weights_digest(const lm_identity_src *src, uint8_t out[32], lm_err *err) {
    buf mat = {0}, after = {0};
    uint8_t key[32];
    lm_status s = LM_OK;
    int keyed = key_material(src, &mat);
    if (keyed) lm_sha256_buf(mat.p, mat.n, key);
    if (keyed && (proc_lookup(key, out) || disk_lookup(key, &mat, out))) {
        proc_store(key, out); /* a disk hit is remembered for the next load */
        goto done;
    }
    if ((s = hash_weights(src, out, err))) goto done;
    /* Cache only what was hashed: the file must be the same one, unchanged, afterwards. */
    if (keyed && key_material(src, &after) && after.n == mat.n &&
        memcmp(after.p, mat.p, mat.n) == 0) {
        proc_store(key, out);
        disk_store(key, &mat, out);
    }
done:
    lm_free(mat.p);
    lm_free(after.p);
    return s;
}

/* ---- arch ------------------------------------------------------------------------------- */

static lm_status hash_arch(const lm_identity_src *src, uint8_t out[32], lm_err *err) {
    const lm_hparams *hp = src->hp;
    sha h;
    lm_status s = SHA_BEGIN(&h, "lemma-arch-v1", err);
    if (s) return s;
    const char *an = src->arch_name ? src->arch_name : "";
    sha_str(&h, an, strlen(an));
    sha_u32(&h, (uint32_t)hp->arch);
    sha_u32(&h, (uint32_t)hp->n_vocab);
    sha_u32(&h, (uint32_t)hp->n_ctx_train);
    sha_u32(&h, (uint32_t)hp->n_embd);
    sha_u32(&h, (uint32_t)hp->n_layer);
    sha_u32(&h, (uint32_t)hp->n_head);
    sha_u32(&h, (uint32_t)hp->n_head_kv);
    sha_u32(&h, (uint32_t)hp->head_dim);
    sha_u32(&h, (uint32_t)hp->n_ff);
    sha_f32(&h, hp->norm_eps);
    sha_u32(&h, (uint32_t)hp->rope_style);
    sha_u32(&h, (uint32_t)hp->n_rot);
    sha_f32(&h, hp->rope_base);
    sha_f32(&h, hp->rope_base_swa);
    sha_f32(&h, hp->rope_freq_scale);
    sha_u32(&h, (uint32_t)hp->rope_scaling);
    sha_f32(&h, hp->rope_scale_factor);
    sha_u32(&h, (uint32_t)hp->rope_orig_ctx);
    sha_f32(&h, hp->rope_yarn_beta_fast);
    sha_f32(&h, hp->rope_yarn_beta_slow);
    sha_f32(&h, hp->rope_yarn_ext_factor);
    sha_u32(&h, (uint32_t)hp->rope_yarn_truncate);
    sha_f32(&h, hp->rope_llama3_low_freq);
    sha_f32(&h, hp->rope_llama3_high_freq);
    sha_f32(&h, hp->rope_mscale);
    sha_u32(&h, (uint32_t)hp->rope_freqs_in_file);
    sha_f32(&h, hp->attn_scale);
    sha_u32(&h, (uint32_t)hp->sliding_window);
    sha_u32(&h, (uint32_t)hp->swa_period);
    sha_f32(&h, hp->attn_softcap);
    sha_f32(&h, hp->final_softcap);
    sha_u32(&h, (uint32_t)hp->act);
    sha_u32(&h, (uint32_t)hp->norm_add_one);
    sha_f32(&h, hp->embd_scale);
    sha_u32(&h, (uint32_t)hp->has_qk_norm);
    sha_u32(&h, (uint32_t)hp->has_qkv_bias);
    sha_u32(&h, (uint32_t)hp->has_post_norms);
    uint64_t n = src_n_tensors(src);
    sha_u64(&h, n);
    for (uint64_t i = 0; i < n; i++) {
        const lm_tensor_info *t = src_tensor(src, i);
        if (!t) {
            sha_abort(&h);
            return lm_err_set(err, LM_ERR_INVALID_ARG, "identity: tensor %llu missing",
                              (unsigned long long)i);
        }
        sha_str(&h, t->name, strlen(t->name));
        sha_u32(&h, (uint32_t)t->dtype);
        sha_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < LM_MAX_DIMS; d++)
            sha_u64(&h, t->ne[d]);
    }
    return sha_end(&h, out, err);
}

/* ---- tokenizer -------------------------------------------------------------------------- */

static lm_status hash_tokenizer_gguf(const lm_gguf *g, uint8_t out[32], lm_err *err) {
    static const char pre[] = "tokenizer.";
    sha h;
    lm_status s = SHA_BEGIN(&h, "lemma-tokenizer-gguf-v1", err);
    if (s) return s;
    uint64_t n = lm_gguf_n_kv(g), used = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *k = lm_gguf_key(g, i);
        if (!k || strncmp(k, pre, sizeof pre - 1) != 0 || strcmp(k, "tokenizer.chat_template") == 0)
            continue;
        lm_gguf_value v;
        if ((s = lm_gguf_kv_value(g, i, &v, err))) {
            sha_abort(&h);
            return s;
        }
        sha_str(&h, k, strlen(k));
        sha_u32(&h, (uint32_t)v.type);
        sha_u32(&h, (uint32_t)v.elem_type);
        sha_u64(&h, v.n);
        sha_u64(&h, v.size);
        sha_put(&h, v.data, (size_t)v.size);
        used++;
    }
    if (!used) {
        sha_abort(&h);
        memset(out, 0, 32);
        return LM_OK;
    }
    return sha_end(&h, out, err);
}

static lm_status hash_tokenizer_hf(const lm_hf *hf, uint8_t out[32], lm_err *err) {
    const char *tj = lm_hf_tokenizer_path(hf), *tc = lm_hf_tokenizer_config_path(hf);
    if (!tj && !tc) {
        memset(out, 0, 32);
        return LM_OK;
    }
    char *tok = NULL, *cfg = NULL, *dump = NULL;
    size_t tok_n = 0, cfg_n = 0;
    sha h = {0};
    lm_status s;
    if (tj && (s = lm_file_read_all(tj, TOKENIZER_MAX_BYTES, &tok, &tok_n, err))) goto out;
    if (tc && (s = lm_file_read_all(tc, TOKENIZER_MAX_BYTES, &cfg, &cfg_n, err))) goto out;
    if ((s = SHA_BEGIN(&h, "lemma-tokenizer-hf-v1", err))) goto out;
    sha_u8(&h, tj ? 1 : 0);
    sha_str(&h, tok, tok_n);
    if (!cfg) {
        sha_u8(&h, 0);
    } else {
        json_t *j = NULL;
        lm_err jerr;
        lm_err_clear(&jerr);
        if (lm_json_parse(cfg, cfg_n, 64, "tokenizer_config.json", &j, &jerr) == LM_ERR_NOMEM) {
            sha_abort(&h);
            s = lm_err_set(err, LM_ERR_NOMEM, "identity: %s", jerr.msg);
            goto out;
        }
        int is_obj = j && json_is_object(j);
        if (is_obj) {
            json_object_del(j, "chat_template");
            dump = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        }
        json_decref(j);
        if (is_obj && !dump) {
            sha_abort(&h);
            s = lm_err_set(err, LM_ERR_NOMEM, "identity: tokenizer_config.json");
            goto out;
        }
        if (dump) {
            sha_u8(&h, 1);
            sha_str(&h, dump, strlen(dump));
        } else {
            sha_u8(&h, 2);
            sha_str(&h, cfg, cfg_n);
        }
    }
    s = sha_end(&h, out, err);
out:
    free(dump);
    lm_free(tok);
    lm_free(cfg);
    return s;
}

/* ---- all of it -------------------------------------------------------------------------- */

lm_status lm_identity_compute(const lm_identity_src *src, lm_identity *out, lm_err *err) {
    if (!src || !out || !src->hp || !src->gguf == !src->hf)
        return lm_err_set(err, LM_ERR_INVALID_ARG,
                          "identity: a source with exactly one of gguf and hf, and hparams");
    lm_identity r = *out;
    lm_status s;
    if ((s = weights_digest(src, r.weights, err))) return s;
    if ((s = hash_arch(src, r.arch, err))) return s;
    s = src->gguf ? hash_tokenizer_gguf(src->gguf, r.tokenizer, err)
                  : hash_tokenizer_hf(src->hf, r.tokenizer, err);
    if (s) return s;
    if (!src->chat_template)
        memset(r.chat_template, 0, 32);
    else
        lm_sha256_buf(src->chat_template, strlen(src->chat_template), r.chat_template);
    *out = r;
    return LM_OK;
}
