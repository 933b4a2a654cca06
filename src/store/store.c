/*
 * store.c — the local session store (docs/formats/store.md §1, §5, §6; interface: store.h).
 *
 * Layout: STORE/{lock, index.sqlite, pages/KK/KEY-CONTENT.page, sessions/NAME.session, tmp/}.
 * The files are the truth; index.sqlite only makes listing, lookup by key and garbage
 * collection fast, and is rebuilt from the files whenever it is missing, corrupt or of another
 * schema (the bad one is moved aside to index.sqlite.corrupt).
 *
 * Locking. Every operation holds, for its whole duration, the handle's mutex (threads sharing a
 * handle) and flock(STORE/lock): LOCK_SH for load / find_page / list / entry_get / stats,
 * LOCK_EX for save / remove / copy and for open's clean-up. Page blobs are therefore never
 * collected while a reader is between reading a manifest and reading its pages, and writers
 * are serialised, so at most one process has temporary files in tmp/ and any temp file seen
 * under LOCK_EX is stale. SQLite's own locks (WAL mode, busy_timeout) cover the index.
 *
 * Writes. Every file is written as tmp/PID-RANDOM (O_EXCL, 0600), fsync'd, renamed into
 * place, and its directory fsync'd (page blobs of one save: each blob fsync'd and renamed,
 * then every touched pages/KK/ directory fsync'd once, all before the manifest). A save:
 * blobs the store lacks -> manifest rename (the commit point) -> one index transaction ->
 * collection of blobs no session references any more -> tmp/ swept. "Lacks" = no file of the
 * right size whose 128-byte header is exactly the one this save would write; the payload of
 * an existing blob is not re-hashed on save (that would read every shared page back on every
 * sleep) — load and find_page validate it, so a damaged payload is refused, never used. A
 * save also verifies that each payload it is given hashes to the manifest's content digest.
 * A remove: manifest unlink (commit point) -> index -> collection. A copy writes a new
 * manifest naming the same blobs.
 * After the commit point an index failure is not a failure of the operation: the files hold
 * the new state and the next reconcile brings the index up to date.
 *
 * Crash detection. Byte 0 of STORE/lock is '1' while a writer holds LOCK_EX and '0' after it
 * finished cleanly (plain pwrite, no fsync). A writer that finds '1' knows the previous writer
 * died (or failed) between writing files and updating the index, and reconciles before going
 * on, so its garbage collection never trusts an index that misses a committed manifest (which
 * could otherwise delete a blob only that manifest uses). After a power loss the byte may be
 * stale, but every open reconciles anyway. Likewise every operation checks (one stat) that
 * index.sqlite is still the file its connection has open; when another process rebuilt it or
 * someone deleted it, the handle reopens it and reconciles under LOCK_EX (a reader upgrades
 * its lock for that) instead of going on with an index nobody else sees.
 *
 * Reconcile (open, and a writer after a crashed writer), under LOCK_EX, one transaction:
 *   - sessions/: for each NAME.session (valid name) its fingerprint — the manifest's own
 *     trailing XXH3-128 (store.md §4: the digest of every byte before it), read with one
 *     16-byte pread — is compared with the row's `manifest` column; a manifest without a row
 *     or with another fingerprint is decoded and re-indexed. One that fails to decode is left
 *     out (a row it had stays as it was, so the blobs it names stay referenced); it is never
 *     deleted. Rows without a file are dropped.
 *   - pages/: rows without a file are dropped; blob files no session references are collected
 *     — unless some manifest failed to decode, in which case pages/ is left alone, so that a
 *     repaired manifest still finds its pages.
 * Index rows are hints: load and find_page always read and validate the files.
 *
 * Crash hook (tests): called as hook(step, n) after every write step (temp write, fsync,
 * rename, directory fsync, index commit, unlink); n counts the steps of the current operation
 * from 1. Steps: "write|fsync|rename page", "fsync pages dir" (a new KK/ made), "fsync page
 * dir", "write|fsync|rename manifest", "fsync sessions dir", "unlink manifest", "index
 * commit", "gc unlink", "gc index commit", "reconcile commit".
 *
 * Costs: open reads one 16-byte tail per manifest, lists pages/ and runs PRAGMA quick_check
 * (all linear in the store's size); list / info sum blob sizes per session in SQL.
 */
#include "store/store.h"

#include "core/alloc.h"
#include "core/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_CAP 4096
#define STORE_PATH_MAX (PATH_CAP - 512) /* leaves room for every suffix we append */
#define MANIFEST_MAX_BYTES ((size_t)1 << 30)
#define BLOB_NAME_LEN (64 + 1 + 32) /* KEY-CONTENT in hex */
#define BUSY_TIMEOUT_MS 60000
#define MANIFEST_MIN_BYTES 40 /* 24-byte header + 16-byte checksum */

enum {
    Q_GET_DIGEST,
    Q_PUT_SESSION,
    Q_DEL_SESSION,
    Q_DEL_REFS,
    Q_PUT_PAGE,
    Q_PUT_REF,
    Q_ORPHANS,
    Q_DEL_PAGE,
    Q_FIND,
    Q_LIST,
    Q_ENTRY,
    Q_STATS,
    Q_COUNT
};

#define USAGE_SQL                                                                              \
    "(SELECT r.session AS session, SUM(p.bytes) AS b,"                                        \
    " SUM(CASE WHEN c.n > 1 THEN p.bytes ELSE 0 END) AS sh"                                   \
    " FROM refs r JOIN pages p ON p.blob = r.blob"                                            \
    " JOIN (SELECT blob, COUNT(*) AS n FROM refs GROUP BY blob) c ON c.blob = r.blob"         \
    " GROUP BY r.session)"

static const char *const k_sql[Q_COUNT] = {
    [Q_GET_DIGEST] = "SELECT manifest FROM sessions WHERE name = ?1",
    [Q_PUT_SESSION] = "INSERT OR REPLACE INTO sessions(name, manifest, model, parent, n_tokens,"
                      " created_at, updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_DEL_SESSION] = "DELETE FROM sessions WHERE name = ?1",
    [Q_DEL_REFS] = "DELETE FROM refs WHERE session = ?1",
    [Q_PUT_PAGE] = "INSERT OR IGNORE INTO pages(blob, key, n_filled, bytes) VALUES(?1, ?2, ?3, ?4)",
    [Q_PUT_REF] = "INSERT OR IGNORE INTO refs(session, blob) VALUES(?1, ?2)",
    [Q_ORPHANS] = "SELECT blob FROM pages WHERE blob NOT IN (SELECT blob FROM refs)",
    [Q_DEL_PAGE] = "DELETE FROM pages WHERE blob = ?1",
    [Q_FIND] = "SELECT blob FROM pages WHERE key = ?1",
    [Q_LIST] = "SELECT s.name, s.parent, s.model, s.n_tokens, s.created_at, s.updated_at,"
               " COALESCE(u.b, 0), COALESCE(u.sh, 0) FROM sessions s LEFT JOIN " USAGE_SQL
               " u ON u.session = s.name ORDER BY s.name",
    [Q_ENTRY] = "SELECT s.name, s.parent, s.model, s.n_tokens, s.created_at, s.updated_at,"
                " COALESCE(u.b, 0), COALESCE(u.sh, 0) FROM sessions s LEFT JOIN " USAGE_SQL
                " u ON u.session = s.name WHERE s.name = ?1",
    [Q_STATS] = "SELECT (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM pages),"
                " (SELECT COALESCE(SUM(bytes), 0) FROM pages)",
};

/* docs/formats/store.md §5 ("IF NOT EXISTS": two processes may create a new index at once) */
static const char k_schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS sessions(name TEXT PRIMARY KEY, manifest TEXT NOT NULL,"
    " model TEXT NOT NULL, parent TEXT NOT NULL, n_tokens INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pages(blob TEXT PRIMARY KEY,"
    " key TEXT NOT NULL, n_filled INTEGER NOT NULL, bytes INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS pages_by_key ON pages(key);"
    "CREATE TABLE IF NOT EXISTS refs(session TEXT NOT NULL, blob TEXT NOT NULL,"
    " PRIMARY KEY(session, blob));"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('format', '1');";

struct lm_store {
    char *path;                 /* the store directory, no trailing '/' */
    int lock_fd;                /* STORE/lock */
    sqlite3 *db;                /* STORE/index.sqlite */
    sqlite3_stmt *q[Q_COUNT];   /* prepared statements (k_sql) */
    pthread_mutex_t mu;         /* serialises threads sharing this handle */
    int hook_n;                 /* crash-hook steps of the current operation */
    int index_behind;           /* this operation committed files the index misses */
    dev_t index_dev;            /* identity of the index.sqlite file db has open, to notice */
    ino_t index_ino;            /* another process replacing it (rebuild, deletion) */
};

static lm_store_crash_hook g_hook;

void lm_store_set_crash_hook(lm_store_crash_hook hook) { g_hook = hook; }

static void step(lm_store *st, const char *what) {
    st->hook_n++;
    if (g_hook) g_hook(what, st->hook_n);
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void hex(const uint8_t *b, size_t n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + (size_t)j];
            int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (x < 0) return 0;
            v = v * 16 + x;
        }
        out[i] = (uint8_t)v;
    }
    return 1;
}

static int is_blob_name(const char *s) {
    uint8_t tmp[32];
    return strlen(s) == BLOB_NAME_LEN && s[64] == '-' && unhex(s, 32, tmp) &&
           unhex(s + 65, 16, tmp);
}

static void blob_name(const lm_page_ref *r, char out[BLOB_NAME_LEN + 1]) {
    hex(r->key.b, 32, out);
    out[64] = '-';
    hex(r->content.b, 16, out + 65);
}

static void blob_path(const lm_store *st, const char *blob, char out[PATH_CAP]) {
    snprintf(out, PATH_CAP, "%s/pages/%.2s/%s.page", st->path, blob, blob);
}

static void manifest_path(const lm_store *st, const char *name, char out[PATH_CAP]) {
    snprintf(out, PATH_CAP, "%s/sessions/%s.session", st->path, name);
}

static void sub_path(const lm_store *st, const char *rel, char out[PATH_CAP]) {
    snprintf(out, PATH_CAP, "%s/%s", st->path, rel);
}

static void page_expect(const lm_identity *id, const lm_page_ref *r, lm_page_header *h) {
    memset(h, 0, sizeof *h);
    h->key = r->key;
    h->content = r->content;
    memcpy(h->kv_id, id->kv_id, 32);
    h->kv_dtype = id->kv_dtype;
    h->page_tokens = id->page_tokens;
    h->n_layer = id->n_layer;
    h->kv_dim = id->kv_dim;
    h->n_filled = r->n_filled;
}

static uint64_t now_unix(void) {
    time_t t = time(NULL);
    return t < 0 ? 0 : (uint64_t)t;
}

static lm_status fsync_dir(const char *dir, lm_err *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return lm_err_set(err, LM_ERR_IO, "%s: open directory: %s", dir, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0) return lm_err_set(err, LM_ERR_IO, "%s: fsync directory: %s", dir, strerror(e));
    return LM_OK;
}

/* mkdir that accepts an existing directory; *created (may be NULL) says whether it made one. */
static lm_status make_dir(const char *path, int *created, lm_err *err) {
    if (created) *created = 0;
    if (mkdir(path, 0700) == 0) {
        if (created) *created = 1;
        return LM_OK;
    }
    if (errno != EEXIST) return lm_err_set(err, LM_ERR_IO, "%s: mkdir: %s", path, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lm_err_set(err, LM_ERR_IO, "%s: exists and is not a directory", path);
    return LM_OK;
}

static lm_status make_dirs(const char *path, lm_err *err) {
    char buf[PATH_CAP];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        lm_status s = make_dir(buf, NULL, err);
        *p = '/';
        if (s != LM_OK) return s;
    }
    return make_dir(buf, NULL, err);
}

static uint64_t random_u64(void) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        int ok = lm_fd_read_full(fd, &r, sizeof r) == 0;
        close(fd);
        if (ok) return r;
    }
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (++counter * 0x9e3779b97f4a7c15ull);
}

/* Writes a then b to a new temp file in tmp/, fsyncs it and renames it to dst. The caller
 * fsyncs dst's directory. what names the file kind in hook steps ("page", "manifest"). */
static lm_status write_file(lm_store *st, const char *dst, const void *a, size_t alen,
                            const void *b, size_t blen, const char *what, lm_err *err) {
    char tmp[PATH_CAP], stepname[64];
    int fd = -1;
    for (int tries = 0; fd < 0; tries++) {
        snprintf(tmp, sizeof tmp, "%s/tmp/%ld-%016llx", st->path, (long)getpid(),
                 (unsigned long long)random_u64());
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && (errno != EEXIST || tries > 8))
            return lm_err_set(err, LM_ERR_IO, "%s: create temp file: %s", tmp, strerror(errno));
    }
    if ((alen && lm_fd_write_full(fd, a, alen) != 0) || (blen && lm_fd_write_full(fd, b, blen) != 0)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return lm_err_set(err, LM_ERR_IO, "%s: write (for %s): %s", tmp, dst, strerror(e));
    }
    snprintf(stepname, sizeof stepname, "write %s", what);
    step(st, stepname);
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return lm_err_set(err, LM_ERR_IO, "%s: fsync (for %s): %s", tmp, dst, strerror(e));
    }
    snprintf(stepname, sizeof stepname, "fsync %s", what);
    step(st, stepname);
    if (close(fd) != 0 || rename(tmp, dst) != 0) {
        int e = errno;
        unlink(tmp);
        return lm_err_set(err, LM_ERR_IO, "%s: rename from %s: %s", dst, tmp, strerror(e));
    }
    snprintf(stepname, sizeof stepname, "rename %s", what);
    step(st, stepname);
    return LM_OK;
}

/* Reads a whole file of exactly `expect` bytes into buf (size >= expect). NOT_FOUND when it
 * does not exist, CORRUPT when its size differs. */
static lm_status read_exact(const char *path, uint8_t *buf, size_t expect, lm_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return lm_err_set(err, LM_ERR_NOT_FOUND, "%s: missing", path);
        return lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
    }
    lm_status s = LM_OK;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = lm_err_set(err, LM_ERR_IO, "%s: not a readable regular file", path);
    } else if ((uint64_t)sb.st_size != (uint64_t)expect) {
        s = lm_err_set(err, LM_ERR_CORRUPT, "%s: file is %lld bytes, expected %zu", path,
                       (long long)sb.st_size, expect);
    } else if (lm_fd_read_full(fd, buf, expect) != 0) {
        s = lm_err_set(err, LM_ERR_IO, "%s: short read", path);
    }
    close(fd);
    return s;
}

/* Reads a whole file of at most max bytes into a new buffer. NOT_FOUND when missing. */
static lm_status read_whole(const char *path, size_t max, uint8_t **out, size_t *len,
                            lm_err *err) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return lm_err_set(err, LM_ERR_NOT_FOUND, "%s: missing", path);
        return lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
    }
    lm_status s = LM_OK;
    uint8_t *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = lm_err_set(err, LM_ERR_IO, "%s: not a readable regular file", path);
        goto done;
    }
    if ((uint64_t)sb.st_size > (uint64_t)max) {
        s = lm_err_set(err, LM_ERR_FORMAT, "%s: %lld bytes exceeds the limit of %zu", path,
                       (long long)sb.st_size, max);
        goto done;
    }
    size_t n = (size_t)sb.st_size;
    buf = lm_malloc(n ? n : 1);
    if (!buf) {
        s = lm_err_set(err, LM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
        goto done;
    }
    if (n && lm_fd_read_full(fd, buf, n) != 0) {
        s = lm_err_set(err, LM_ERR_IO, "%s: short read", path);
        goto done;
    }
    *out = buf;
    *len = n;
    buf = NULL;
done:
    lm_free(buf);
    close(fd);
    return s;
}

/* ---- SQLite ------------------------------------------------------------------------------- */

static lm_status sql_err(lm_store *st, int rc, const char *what, lm_err *err) {
    lm_status code = (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) ? LM_ERR_CORRUPT : LM_ERR_IO;
    return lm_err_set(err, code, "%s/index.sqlite: %s: %s", st->path, what,
                      st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
}

static lm_status sql_exec(lm_store *st, const char *sql, lm_err *err) {
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? LM_OK : sql_err(st, rc, sql, err);
}

static sqlite3_stmt *q(lm_store *st, int id) {
    sqlite3_stmt *s = st->q[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Steps a statement that returns no rows. */
static lm_status q_done(lm_store *st, sqlite3_stmt *s, const char *what, lm_err *err) {
    int rc = sqlite3_step(s);
    lm_status r = rc == SQLITE_DONE ? LM_OK : sql_err(st, rc, what, err);
    sqlite3_reset(s);
    return r;
}

static void index_close(lm_store *st) {
    for (int i = 0; i < Q_COUNT; i++) {
        sqlite3_finalize(st->q[i]);
        st->q[i] = NULL;
    }
    if (st->db) sqlite3_close(st->db);
    st->db = NULL;
}

/* Opens index.sqlite and checks it: LM_OK, LM_ERR_CORRUPT when it must be rebuilt (not a
 * database, corrupt, another schema or format), another status for a real I/O problem. */
static lm_status index_try_open(lm_store *st, lm_err *err) {
    char path[PATH_CAP];
    sub_path(st, "index.sqlite", path);
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        lm_status s = sql_err(st, rc, "open", err);
        return rc == SQLITE_CANTOPEN || rc == SQLITE_IOERR || rc == SQLITE_PERM ? s
                                                                                 : LM_ERR_CORRUPT;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    sqlite3_stmt *s = NULL;
    lm_status r = LM_OK;
    rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL,
                      NULL);
    if (rc != SQLITE_OK) goto bad;
    rc = sqlite3_prepare_v2(st->db, "SELECT COUNT(*) FROM sqlite_master", -1, &s, NULL);
    if (rc != SQLITE_OK || (rc = sqlite3_step(s)) != SQLITE_ROW) goto bad;
    int64_t n_objects = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    if (n_objects == 0) {
        rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) goto bad;
        rc = sqlite3_exec(st->db, k_schema, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            goto bad;
        }
    }
    rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);
    if (rc != SQLITE_OK || (rc = sqlite3_step(s)) != SQLITE_ROW) goto bad;
    const unsigned char *ok = sqlite3_column_text(s, 0);
    if (!ok || strcmp((const char *)ok, "ok") != 0) {
        rc = SQLITE_CORRUPT;
        goto bad;
    }
    sqlite3_finalize(s);
    s = NULL;
    rc = sqlite3_prepare_v2(st->db, "SELECT v FROM meta WHERE k = 'format'", -1, &s, NULL);
    if (rc != SQLITE_OK || (rc = sqlite3_step(s)) != SQLITE_ROW) goto bad;
    const unsigned char *fmt = sqlite3_column_text(s, 0);
    if (!fmt || strcmp((const char *)fmt, "1") != 0) {
        rc = SQLITE_FORMAT;
        goto bad;
    }
    sqlite3_finalize(s);
    s = NULL;
    for (int i = 0; i < Q_COUNT; i++) {
        rc = sqlite3_prepare_v3(st->db, k_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->q[i], NULL);
        if (rc != SQLITE_OK) goto bad; /* another schema */
    }
    return LM_OK;
bad:
    sqlite3_finalize(s);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED || rc == SQLITE_IOERR || rc == SQLITE_FULL ||
        rc == SQLITE_READONLY || rc == SQLITE_CANTOPEN || rc == SQLITE_NOMEM ||
        rc == SQLITE_PERM) {
        r = sql_err(st, rc, "open", err);
    } else {
        r = LM_ERR_CORRUPT; /* rebuilt by the caller; no message needed */
    }
    index_close(st);
    return r;
}

/* Creates an empty index file with mode 0600 when there is none (SQLite would use 0644; its
 * -wal and -shm files take the database file's mode). */
static lm_status precreate(const char *path, lm_err *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
    close(fd);
    return LM_OK;
}

/* Remembers which file the connection has open (see index_unchanged). */
static lm_status index_note_file(lm_store *st, lm_err *err) {
    char path[PATH_CAP];
    struct stat sb;
    sub_path(st, "index.sqlite", path);
    if (stat(path, &sb) != 0) {
        int e = errno;
        index_close(st);
        return lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(e));
    }
    st->index_dev = sb.st_dev;
    st->index_ino = sb.st_ino;
    return LM_OK;
}

/* Is index.sqlite still the file this handle's connection has open? Another process may have
 * rebuilt it (moving the old one aside) or a person may have deleted it; a connection to the
 * old file would then read and collect by an index nobody else updates. */
static int index_unchanged(const lm_store *st) {
    char path[PATH_CAP];
    struct stat sb;
    sub_path(st, "index.sqlite", path);
    return stat(path, &sb) == 0 && sb.st_dev == st->index_dev && sb.st_ino == st->index_ino;
}

/* Opens the index, rebuilding it (moved aside to index.sqlite.corrupt) when it is unusable.
 * Caller holds LOCK_EX. */
static lm_status index_open(lm_store *st, lm_err *err) {
    char path[PATH_CAP], side[PATH_CAP];
    sub_path(st, "index.sqlite", path);
    if (access(path, F_OK) != 0) {
        /* companions of a deleted index must not be applied to a new one */
        snprintf(side, sizeof side, "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", path);
        unlink(side);
    }
    lm_err tmp;
    lm_err_clear(&tmp);
    lm_status s = precreate(path, &tmp);
    if (s == LM_OK) s = index_try_open(st, &tmp);
    if (s == LM_OK) return index_note_file(st, err);
    if (s != LM_ERR_CORRUPT) return lm_err_set(err, s, "%s", tmp.msg);
    snprintf(side, sizeof side, "%s.corrupt", path);
    if (rename(path, side) != 0 && errno != ENOENT)
        return lm_err_set(err, LM_ERR_IO, "%s: cannot move the corrupt index aside: %s", path,
                          strerror(errno));
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    lm_err_clear(&tmp);
    s = precreate(path, &tmp);
    if (s == LM_OK) s = index_try_open(st, &tmp);
    if (s != LM_OK)
        return lm_err_set(err, s == LM_ERR_CORRUPT ? LM_ERR_IO : s,
                          "%s: cannot create a new index: %s", path,
                          tmp.msg[0] ? tmp.msg : "unusable");
    return index_note_file(st, err);
}

/* Rows of one session: refs replaced, session row replaced, pages inserted. Inside a
 * transaction of the caller. */
static lm_status index_put(lm_store *st, const lm_manifest *m, const char *digest, lm_err *err) {
    sqlite3_stmt *s = q(st, Q_DEL_REFS);
    sqlite3_bind_text(s, 1, m->name, -1, SQLITE_STATIC);
    lm_status r = q_done(st, s, "delete refs", err);
    if (r != LM_OK) return r;
    s = q(st, Q_PUT_SESSION);
    sqlite3_bind_text(s, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, digest, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, m->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, m->parent, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)m->n_tokens);
    sqlite3_bind_int64(s, 6, (sqlite3_int64)m->created_at);
    sqlite3_bind_int64(s, 7, (sqlite3_int64)m->updated_at);
    if ((r = q_done(st, s, "insert session", err)) != LM_OK) return r;
    for (uint32_t i = 0; i < m->n_pages; i++) {
        char blob[BLOB_NAME_LEN + 1];
        lm_page_header h;
        blob_name(&m->pages[i], blob);
        page_expect(&m->id, &m->pages[i], &h);
        s = q(st, Q_PUT_PAGE);
        sqlite3_bind_text(s, 1, blob, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, blob, 64, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, m->pages[i].n_filled);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)(LM_PAGE_HEADER_BYTES + lm_page_payload_bytes(&h)));
        if ((r = q_done(st, s, "insert page", err)) != LM_OK) return r;
        s = q(st, Q_PUT_REF);
        sqlite3_bind_text(s, 1, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, blob, -1, SQLITE_TRANSIENT);
        if ((r = q_done(st, s, "insert ref", err)) != LM_OK) return r;
    }
    return LM_OK;
}

static lm_status index_drop(lm_store *st, const char *name, lm_err *err) {
    sqlite3_stmt *s = q(st, Q_DEL_REFS);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    lm_status r = q_done(st, s, "delete refs", err);
    if (r != LM_OK) return r;
    s = q(st, Q_DEL_SESSION);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    return q_done(st, s, "delete session", err);
}

/* ---- name lists --------------------------------------------------------------------------- */

typedef struct name_list {
    char (*v)[BLOB_NAME_LEN + 1];
    size_t n, cap;
} name_list;

static int name_list_add(name_list *l, const char *s) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *p = lm_realloc(l->v, cap * sizeof *l->v);
        if (!p) return 0;
        l->v = p;
        l->cap = cap;
    }
    snprintf(l->v[l->n++], BLOB_NAME_LEN + 1, "%s", s);
    return 1;
}

/* Runs a one-column query and collects the blob names it returns. */
static lm_status collect_blobs(lm_store *st, sqlite3_stmt *s, name_list *out, lm_err *err) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *b = (const char *)sqlite3_column_text(s, 0);
        if (!b || !is_blob_name(b)) continue; /* not ours: never turned into a path */
        if (!name_list_add(out, b)) {
            sqlite3_reset(s);
            return lm_err_set(err, LM_ERR_NOMEM, "store %s: out of memory", st->path);
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? LM_OK : sql_err(st, rc, "collect blobs", err);
}

static void unlink_blobs(lm_store *st, const name_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        char path[PATH_CAP];
        blob_path(st, l->v[i], path);
        unlink(path); /* ENOENT fine: already gone */
        step(st, "gc unlink");
    }
}

/* Removes every file in tmp/ (caller holds LOCK_EX: they are all stale). */
static void sweep_tmp(lm_store *st) {
    char dir[PATH_CAP], path[PATH_CAP];
    sub_path(st, "tmp", dir);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* ---- garbage collection and reconcile ----------------------------------------------------- */

/* Deletes blobs whose index rows no session references. Caller holds LOCK_EX, outside any
 * transaction. */
static lm_status gc(lm_store *st, lm_err *err) {
    name_list l = {0};
    lm_status r = collect_blobs(st, q(st, Q_ORPHANS), &l, err);
    if (r != LM_OK || l.n == 0) goto done;
    unlink_blobs(st, &l);
    if ((r = sql_exec(st, "BEGIN IMMEDIATE", err)) != LM_OK) goto done;
    for (size_t i = 0; i < l.n && r == LM_OK; i++) {
        sqlite3_stmt *s = q(st, Q_DEL_PAGE);
        sqlite3_bind_text(s, 1, l.v[i], -1, SQLITE_STATIC);
        r = q_done(st, s, "delete page", err);
    }
    if (r == LM_OK) r = sql_exec(st, "COMMIT", err);
    if (r != LM_OK) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    else step(st, "gc index commit");
done:
    lm_free(l.v);
    return r;
}

/* The fingerprint of a manifest file: hex of its trailing 16 bytes (its own XXH3-128 over
 * every byte before). "" for a file too small to hold one. */
static lm_status manifest_fingerprint(const char *path, char out[33], lm_err *err) {
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return lm_err_set(err, LM_ERR_NOT_FOUND, "%s: missing", path);
        return lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    uint8_t tail[16];
    lm_status s = LM_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = lm_err_set(err, LM_ERR_IO, "%s: not a regular file", path);
    } else if (sb.st_size >= MANIFEST_MIN_BYTES) {
        if (pread(fd, tail, 16, sb.st_size - 16) == 16) hex(tail, 16, out);
        else s = lm_err_set(err, LM_ERR_IO, "%s: read: %s", path, strerror(errno));
    }
    close(fd);
    return s;
}

static lm_status fingerprint_of(const uint8_t *buf, size_t len, char out[33]) {
    out[0] = '\0';
    if (len >= MANIFEST_MIN_BYTES) hex(buf + len - 16, 16, out);
    return LM_OK;
}

/* Reconciles the index with the files (see the file comment). Caller holds LOCK_EX. */
static lm_status reconcile(lm_store *st, lm_err *err) {
    char dir[PATH_CAP], path[PATH_CAP];
    name_list strays = {0};
    sqlite3_stmt *ins = NULL, *sel = NULL;
    DIR *d = NULL;
    int bad = 0, in_txn = 0;
    lm_status r = sql_exec(st,
                           "CREATE TEMP TABLE IF NOT EXISTS disk_sessions(name TEXT PRIMARY KEY);"
                           "CREATE TEMP TABLE IF NOT EXISTS disk_pages(blob TEXT PRIMARY KEY);"
                           "DELETE FROM temp.disk_sessions; DELETE FROM temp.disk_pages",
                           err);
    if (r != LM_OK) goto done;
    if ((r = sql_exec(st, "BEGIN IMMEDIATE", err)) != LM_OK) goto done;
    in_txn = 1;

    /* sessions/ */
    if (sqlite3_prepare_v2(st->db, "INSERT OR IGNORE INTO temp.disk_sessions VALUES(?1)", -1,
                           &ins, NULL) != SQLITE_OK) {
        r = sql_err(st, sqlite3_errcode(st->db), "prepare", err);
        goto done;
    }
    sub_path(st, "sessions", dir);
    if (!(d = opendir(dir))) {
        r = lm_err_set(err, LM_ERR_IO, "%s: %s", dir, strerror(errno));
        goto done;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 8 || strcmp(e->d_name + n - 8, ".session") != 0 || n - 8 > LM_SESSION_NAME_MAX)
            continue;
        char name[LM_SESSION_NAME_MAX + 1];
        memcpy(name, e->d_name, n - 8);
        name[n - 8] = '\0';
        if (lm_session_name_check(name, NULL) != LM_OK) continue;
        manifest_path(st, name, path);
        char fp[33];
        lm_err ferr;
        lm_err_clear(&ferr);
        lm_status fs = manifest_fingerprint(path, fp, &ferr);
        if (fs == LM_ERR_NOT_FOUND) continue; /* vanished */
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, name, -1, SQLITE_TRANSIENT);
        if ((r = q_done(st, ins, "record session file", err)) != LM_OK) goto done;
        sqlite3_stmt *g = q(st, Q_GET_DIGEST);
        sqlite3_bind_text(g, 1, name, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(g);
        int same = rc == SQLITE_ROW && fp[0] && sqlite3_column_text(g, 0) &&
                   strcmp((const char *)sqlite3_column_text(g, 0), fp) == 0;
        sqlite3_reset(g);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            r = sql_err(st, rc, "read session row", err);
            goto done;
        }
        if (same) continue;
        if (fs != LM_OK) {
            bad++; /* unreadable: keep its row (and so its blobs) as they are */
            continue;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        lm_manifest *m = NULL;
        lm_err derr;
        lm_err_clear(&derr);
        if (read_whole(path, MANIFEST_MAX_BYTES, &buf, &len, &derr) == LM_OK &&
            lm_manifest_decode(buf, len, name, &m, &derr) == LM_OK) {
            fingerprint_of(buf, len, fp);
            r = index_put(st, m, fp, err);
        } else {
            bad++; /* left out of the index, never deleted */
        }
        lm_manifest_free(m);
        lm_free(buf);
        if (r != LM_OK) goto done;
    }
    closedir(d);
    d = NULL;
    if ((r = sql_exec(
             st,
             "DELETE FROM refs WHERE session NOT IN (SELECT name FROM temp.disk_sessions);"
             "DELETE FROM sessions WHERE name NOT IN (SELECT name FROM temp.disk_sessions)",
             err)) != LM_OK)
        goto done;

    /* pages/ */
    sqlite3_finalize(ins);
    if (sqlite3_prepare_v2(st->db, "INSERT OR IGNORE INTO temp.disk_pages VALUES(?1)", -1, &ins,
                           NULL) != SQLITE_OK) {
        ins = NULL;
        r = sql_err(st, sqlite3_errcode(st->db), "prepare", err);
        goto done;
    }
    for (int kk = 0; kk < 256; kk++) {
        char sub[PATH_CAP];
        snprintf(sub, sizeof sub, "%s/pages/%02x", st->path, kk);
        if (!(d = opendir(sub))) continue;
        char want[3];
        snprintf(want, sizeof want, "%02x", kk);
        while ((e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n != BLOB_NAME_LEN + 5 || strcmp(e->d_name + BLOB_NAME_LEN, ".page") != 0 ||
                memcmp(e->d_name, want, 2) != 0)
                continue;
            char blob[BLOB_NAME_LEN + 1];
            memcpy(blob, e->d_name, BLOB_NAME_LEN);
            blob[BLOB_NAME_LEN] = '\0';
            if (!is_blob_name(blob)) continue;
            sqlite3_reset(ins);
            sqlite3_bind_text(ins, 1, blob, -1, SQLITE_TRANSIENT);
            if ((r = q_done(st, ins, "record page file", err)) != LM_OK) goto done;
        }
        closedir(d);
        d = NULL;
    }
    if ((r = sql_exec(st, "DELETE FROM pages WHERE blob NOT IN (SELECT blob FROM temp.disk_pages)",
                      err)) != LM_OK)
        goto done;
    /* referenced files without a row (a blob put back by hand, an interrupted index update):
     * the row is rebuilt from the file's header; it stays a hint, files are validated on use */
    if (sqlite3_prepare_v2(st->db,
                           "SELECT blob FROM temp.disk_pages WHERE blob IN (SELECT blob FROM refs)"
                           " AND blob NOT IN (SELECT blob FROM pages)",
                           -1, &sel, NULL) != SQLITE_OK) {
        sel = NULL;
        r = sql_err(st, sqlite3_errcode(st->db), "prepare", err);
        goto done;
    }
    if ((r = collect_blobs(st, sel, &strays, err)) != LM_OK) goto done;
    sqlite3_finalize(sel);
    sel = NULL;
    for (size_t i = 0; i < strays.n; i++) {
        blob_path(st, strays.v[i], path);
        uint8_t hdr[LM_PAGE_HEADER_BYTES];
        struct stat sb;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        int ok = fstat(fd, &sb) == 0 && pread(fd, hdr, sizeof hdr, 0) == (ssize_t)sizeof hdr;
        close(fd);
        if (!ok) continue;
        sqlite3_stmt *s = q(st, Q_PUT_PAGE);
        sqlite3_bind_text(s, 1, strays.v[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, strays.v[i], 64, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)((uint32_t)hdr[112] | (uint32_t)hdr[113] << 8 |
                                                 (uint32_t)hdr[114] << 16 |
                                                 (uint32_t)hdr[115] << 24));
        sqlite3_bind_int64(s, 4, (sqlite3_int64)sb.st_size);
        if ((r = q_done(st, s, "insert page", err)) != LM_OK) goto done;
    }
    strays.n = 0;
    if (!bad) {
        if (sqlite3_prepare_v2(st->db,
                               "SELECT blob FROM temp.disk_pages WHERE blob NOT IN "
                               "(SELECT blob FROM refs)",
                               -1, &sel, NULL) != SQLITE_OK) {
            sel = NULL;
            r = sql_err(st, sqlite3_errcode(st->db), "prepare", err);
            goto done;
        }
        if ((r = collect_blobs(st, sel, &strays, err)) != LM_OK) goto done;
        if ((r = sql_exec(st, "DELETE FROM pages WHERE blob NOT IN (SELECT blob FROM refs)",
                          err)) != LM_OK)
            goto done;
    }
    r = sql_exec(st, "COMMIT", err);
    in_txn = 0;
    if (r != LM_OK) goto done;
    step(st, "reconcile commit");
    unlink_blobs(st, &strays);
done:
    if (d) closedir(d);
    sqlite3_finalize(ins);
    sqlite3_finalize(sel);
    if (in_txn) sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(st->db, "DELETE FROM temp.disk_sessions; DELETE FROM temp.disk_pages", NULL,
                 NULL, NULL);
    lm_free(strays.v);
    if (r != LM_OK) lm_err_prefix(err, "store %s: reconcile", st->path);
    return r;
}

/* ---- locking ------------------------------------------------------------------------------ */

/* Takes the handle mutex and the flock. For LOCK_EX also checks the writer-crash byte (see the
 * file comment) and marks this writer as running. */
static int flock_retry(int fd, int how) {
    while (flock(fd, how) != 0)
        if (errno != EINTR) return -1;
    return 0;
}

/* Under LOCK_EX: reopens (and reconciles) an index that another process replaced. */
static lm_status refresh_index(lm_store *st, lm_err *err) {
    if (!st->db || index_unchanged(st)) return LM_OK;
    index_close(st);
    lm_status r = index_open(st, err);
    if (r == LM_OK) r = reconcile(st, err);
    return r;
}

static lm_status lock(lm_store *st, int how, lm_err *err) {
    pthread_mutex_lock(&st->mu);
    st->hook_n = 0;
    lm_status r = LM_OK;
    if (flock_retry(st->lock_fd, how) != 0) {
        int e = errno;
        pthread_mutex_unlock(&st->mu);
        return lm_err_set(err, LM_ERR_IO, "%s/lock: flock: %s", st->path, strerror(e));
    }
    if (how != LOCK_EX) {
        if (!st->db || index_unchanged(st)) return LM_OK;
        /* a reader that finds the index replaced upgrades to reopen and reconcile it */
        if (flock_retry(st->lock_fd, LOCK_EX) != 0) {
            r = lm_err_set(err, LM_ERR_IO, "%s/lock: flock: %s", st->path, strerror(errno));
        } else {
            r = refresh_index(st, err);
            if (r == LM_OK && flock_retry(st->lock_fd, LOCK_SH) != 0)
                r = lm_err_set(err, LM_ERR_IO, "%s/lock: flock: %s", st->path, strerror(errno));
        }
        if (r != LM_OK) {
            flock(st->lock_fd, LOCK_UN);
            pthread_mutex_unlock(&st->mu);
        }
        return r;
    }
    char c = 0;
    int crashed = pread(st->lock_fd, &c, 1, 0) == 1 && c == '1';
    if (pwrite(st->lock_fd, "1", 1, 0) != 1) {
        int e = errno;
        flock(st->lock_fd, LOCK_UN);
        pthread_mutex_unlock(&st->mu);
        return lm_err_set(err, LM_ERR_IO, "%s/lock: write: %s", st->path, strerror(e));
    }
    if (st->db && !index_unchanged(st)) {
        r = refresh_index(st, err);
    } else if (crashed && st->db) {
        sweep_tmp(st);
        r = reconcile(st, err);
    }
    if (r != LM_OK) {
        flock(st->lock_fd, LOCK_UN);
        pthread_mutex_unlock(&st->mu);
    }
    return r;
}

static void unlock(lm_store *st, int how) {
    /* an index that missed a committed change keeps the byte set: the next writer
     * reconciles; a failed pwrite has the same harmless effect */
    if (how == LOCK_EX && !st->index_behind) {
        ssize_t w = pwrite(st->lock_fd, "0", 1, 0);
        (void)w;
    }
    st->index_behind = 0;
    flock(st->lock_fd, LOCK_UN);
    pthread_mutex_unlock(&st->mu);
}

/* ---- open / close ------------------------------------------------------------------------- */

lm_status lm_store_default_dir(char *buf, size_t len, lm_err *err) {
    const char *env = getenv("LEMMA_STORE");
    int n;
    if (env && *env) {
        n = snprintf(buf, len, "%s", env);
    } else if ((env = getenv("XDG_DATA_HOME")) && *env == '/') {
        n = snprintf(buf, len, "%s/lemma/store", env);
    } else if ((env = getenv("HOME")) && *env) {
        n = snprintf(buf, len, "%s/.local/share/lemma/store", env);
    } else {
        return lm_err_set(err, LM_ERR_NOT_FOUND,
                          "no default store: LEMMA_STORE, XDG_DATA_HOME and HOME are unset");
    }
    if (n < 0 || (size_t)n >= len)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "default store path too long");
    return LM_OK;
}

const char *lm_store_path(const lm_store *st) { return st ? st->path : NULL; }

void lm_store_close_dir(lm_store *st) {
    if (!st) return;
    index_close(st);
    if (st->lock_fd >= 0) close(st->lock_fd);
    pthread_mutex_destroy(&st->mu);
    lm_free(st->path);
    lm_free(st);
}

lm_status lm_store_open_dir(const char *dir, lm_store **out, lm_err *err) {
    if (!out) return lm_err_set(err, LM_ERR_INVALID_ARG, "store open: out is NULL");
    *out = NULL;
    char def[PATH_CAP], path[PATH_CAP];
    lm_status r;
    if (!dir) {
        if ((r = lm_store_default_dir(def, sizeof def, err)) != LM_OK) return r;
        dir = def;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    if (n == 0) return lm_err_set(err, LM_ERR_INVALID_ARG, "store path is empty");
    if (n > STORE_PATH_MAX)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "store path too long (%zu bytes)", n);
    lm_store *st = lm_calloc(1, sizeof *st);
    if (!st) return lm_err_set(err, LM_ERR_NOMEM, "store %s: out of memory", dir);
    st->lock_fd = -1;
    pthread_mutex_init(&st->mu, NULL);
    if (!(st->path = lm_strndup(dir, n))) {
        lm_store_close_dir(st);
        return lm_err_set(err, LM_ERR_NOMEM, "store %s: out of memory", dir);
    }
    if ((r = make_dirs(st->path, err)) != LM_OK) goto fail;
    static const char *const subs[] = {"sessions", "pages", "tmp"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        sub_path(st, subs[i], path);
        if ((r = make_dir(path, NULL, err)) != LM_OK) goto fail;
    }
    sub_path(st, "lock", path);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0) {
        r = lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if ((r = lock(st, LOCK_EX, err)) != LM_OK) goto fail;
    sweep_tmp(st);
    r = index_open(st, err);
    if (r == LM_OK) r = reconcile(st, err);
    unlock(st, r == LM_OK ? LOCK_EX : LOCK_SH); /* on failure leave the crash byte set */
    if (r != LM_OK) goto fail;
    *out = st;
    return LM_OK;
fail:
    lm_err_prefix(err, "store %s", st->path ? st->path : dir);
    lm_store_close_dir(st);
    return r;
}

/* ---- save --------------------------------------------------------------------------------- */

static lm_status check_name(const lm_store *st, const char *name, lm_err *err) {
    if (!name)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "store %s: session name is NULL", st->path);
    lm_status r = lm_session_name_check(name, err);
    if (r != LM_OK) lm_err_prefix(err, "store %s", st->path);
    return r;
}

/* Does the store already hold this blob? Its size and its whole 128-byte header (key, content,
 * kv_id, geometry, n_filled, checksum: a deterministic function of h) must be what a write
 * would produce; the payload is not re-hashed here (that would read every shared page back on
 * every save) — load validates it, and a file that fails there is refused, never used. */
static int blob_present(const char *path, const lm_page_header *h, size_t total) {
    uint8_t want[LM_PAGE_HEADER_BYTES], have[LM_PAGE_HEADER_BYTES];
    lm_page_header_encode(h, want);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat sb;
    int ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
             (uint64_t)sb.st_size == (uint64_t)total &&
             pread(fd, have, sizeof have, 0) == (ssize_t)sizeof have &&
             memcmp(have, want, sizeof want) == 0;
    close(fd);
    return ok;
}

/* Writes manifest bytes for name and fsyncs sessions/. */
static lm_status write_manifest(lm_store *st, const char *name, const uint8_t *buf, size_t len,
                                lm_err *err) {
    char path[PATH_CAP], dir[PATH_CAP];
    manifest_path(st, name, path);
    lm_status r = write_file(st, path, buf, len, NULL, 0, "manifest", err);
    if (r != LM_OK) return r;
    sub_path(st, "sessions", dir);
    if ((r = fsync_dir(dir, err)) != LM_OK) return r;
    step(st, "fsync sessions dir");
    return LM_OK;
}

/* Index update + collection after a commit point. Failures here leave the files correct and
 * the index behind (reconciled by the next writer or open), so they are not reported. */
static void after_commit(lm_store *st, const lm_manifest *m, const char *drop, const char *fp) {
    lm_err ign;
    lm_err_clear(&ign);
    if (sql_exec(st, "BEGIN IMMEDIATE", &ign) != LM_OK) {
        st->index_behind = 1;
        return;
    }
    lm_status r = m ? index_put(st, m, fp, &ign) : index_drop(st, drop, &ign);
    if (r == LM_OK) r = sql_exec(st, "COMMIT", &ign);
    if (r != LM_OK) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        st->index_behind = 1; /* the next writer reconciles */
        return;
    }
    step(st, "index commit");
    gc(st, &ign);
}

lm_status lm_store_save(lm_store *st, const lm_manifest *m, lm_store_page_source src,
                        void *user, uint64_t *bytes_written, lm_err *err) {
    if (bytes_written) *bytes_written = 0;
    if (!st || !m) return lm_err_set(err, LM_ERR_INVALID_ARG, "store save: NULL argument");
    lm_status r = check_name(st, m->name, err);
    if (r != LM_OK) return r;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    uint8_t touched[32] = {0}; /* pages/KK directories that got a new file */
    uint64_t written = 0;
    char path[PATH_CAP], fp[33];
    if ((r = lm_manifest_encode(m, &enc, &enc_len, err)) != LM_OK) {
        lm_err_prefix(err, "store %s: session '%s'", st->path, m->name);
        return r;
    }
    fingerprint_of(enc, enc_len, fp);
    if ((r = lock(st, LOCK_EX, err)) != LM_OK) goto out;

    for (uint32_t i = 0; i < m->n_pages; i++) {
        char blob[BLOB_NAME_LEN + 1];
        lm_page_header h;
        page_expect(&m->id, &m->pages[i], &h);
        size_t pay = lm_page_payload_bytes(&h), total = LM_PAGE_HEADER_BYTES + pay;
        if (pay == 0) {
            r = lm_err_set(err, LM_ERR_INVALID_ARG, "store %s: session '%s': page %u: bad geometry",
                           st->path, m->name, i);
            goto unlock;
        }
        blob_name(&m->pages[i], blob);
        blob_path(st, blob, path);
        if (blob_present(path, &h, total)) continue;
        const void *payload = NULL;
        size_t bytes = 0;
        if (!src) {
            r = lm_err_set(err, LM_ERR_INVALID_ARG,
                           "store %s: session '%s': page %u missing from the store and no source",
                           st->path, m->name, i);
            goto unlock;
        }
        if ((r = src(user, i, &payload, &bytes, err)) != LM_OK) {
            lm_err_prefix(err, "store %s: session '%s': page %u", st->path, m->name, i);
            goto unlock;
        }
        lm_kv_digest dg;
        if (!payload || bytes != pay) {
            r = lm_err_set(err, LM_ERR_INVALID_ARG,
                           "store %s: session '%s': page %u: source gave %zu bytes, expected %zu",
                           st->path, m->name, i, bytes, pay);
            goto unlock;
        }
        lm_digest128(payload, bytes, &dg);
        if (memcmp(dg.b, m->pages[i].content.b, 16) != 0) {
            r = lm_err_set(err, LM_ERR_INVALID_ARG,
                           "store %s: session '%s': page %u: payload does not hash to the "
                           "manifest's content digest",
                           st->path, m->name, i);
            goto unlock;
        }
        char kk[PATH_CAP];
        int created = 0;
        snprintf(kk, sizeof kk, "%s/pages/%.2s", st->path, blob);
        if ((r = make_dir(kk, &created, err)) != LM_OK) goto unlock;
        if (created) {
            sub_path(st, "pages", kk);
            if ((r = fsync_dir(kk, err)) != LM_OK) goto unlock;
            step(st, "fsync pages dir");
        }
        uint8_t hdr[LM_PAGE_HEADER_BYTES];
        lm_page_header_encode(&h, hdr);
        if ((r = write_file(st, path, hdr, sizeof hdr, payload, bytes, "page", err)) != LM_OK)
            goto unlock;
        const uint8_t b0 = m->pages[i].key.b[0];
        touched[b0 >> 3] |= (uint8_t)(1u << (b0 & 7));
        written += total;
    }
    for (int kk = 0; kk < 256; kk++) {
        if (!(touched[kk >> 3] & (1u << (kk & 7)))) continue;
        snprintf(path, sizeof path, "%s/pages/%02x", st->path, kk);
        if ((r = fsync_dir(path, err)) != LM_OK) goto unlock;
        step(st, "fsync page dir");
    }
    if ((r = write_manifest(st, m->name, enc, enc_len, err)) != LM_OK) goto unlock;
    written += enc_len;
    /* committed */
    after_commit(st, m, NULL, fp);
unlock:
    /* blobs of a save that failed before its commit point are stray: the next writer's
     * reconcile collects them */
    if (r != LM_OK && written) st->index_behind = 1;
    sweep_tmp(st);
    unlock(st, LOCK_EX);
out:
    lm_free(enc);
    if (r == LM_OK && bytes_written) *bytes_written = written;
    return r;
}

/* ---- load / find -------------------------------------------------------------------------- */

/* Reads and decodes the manifest of name (caller holds a lock). */
static lm_status read_manifest(lm_store *st, const char *name, lm_manifest **out, uint8_t **raw,
                               size_t *raw_len, lm_err *err) {
    char path[PATH_CAP];
    uint8_t *buf = NULL;
    size_t len = 0;
    *out = NULL;
    manifest_path(st, name, path);
    lm_err tmp;
    lm_err_clear(&tmp);
    lm_status r = read_whole(path, MANIFEST_MAX_BYTES, &buf, &len, &tmp);
    if (r == LM_ERR_NOT_FOUND)
        return lm_err_set(err, r, "store %s: no session '%s'", st->path, name);
    if (r != LM_OK) return lm_err_set(err, r, "%s", tmp.msg);
    r = lm_manifest_decode(buf, len, name, out, err);
    if (r != LM_OK) {
        lm_err_prefix(err, "%s", path);
        lm_free(buf);
        return r;
    }
    if (raw) {
        *raw = buf;
        *raw_len = len;
    } else {
        lm_free(buf);
    }
    return LM_OK;
}

/* Moves a damaged blob to STORE/corrupt/ (kept for inspection, out of every lookup); *moved
 * gets the new path, "" when the move failed (then the blob stays where it is). */
static void quarantine(lm_store *st, const char *path, const char *blob, char *moved) {
    char dir[PATH_CAP];
    moved[0] = 0;
    if (snprintf(dir, sizeof dir, "%s/corrupt", st->path) >= (int)sizeof dir) return;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return;
    static unsigned counter; /* distinct names for repeated damage within a second */
    char to[PATH_CAP + 64];
    if (snprintf(to, sizeof to, "%s/%s.%ld.%ld.%u", dir, blob, (long)time(NULL),
                 (long)getpid(), __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED)) >=
        (int)sizeof to)
        return;
    if (rename(path, to) == 0) snprintf(moved, PATH_CAP + 64, "%s", to);
}

lm_status lm_store_load(lm_store *st, const char *name, lm_manifest **out,
                        lm_store_page_sink sink, void *user, lm_err *err) {
    if (out) *out = NULL;
    if (!st) return lm_err_set(err, LM_ERR_INVALID_ARG, "store load: store is NULL");
    lm_status r = check_name(st, name, err);
    if (r != LM_OK) return r;
    lm_manifest *m = NULL;
    uint8_t *buf = NULL;
    size_t cap = 0;
    if ((r = lock(st, LOCK_SH, err)) != LM_OK) return r;
    if ((r = read_manifest(st, name, &m, NULL, NULL, err)) != LM_OK) goto done;
    for (uint32_t i = 0; sink && i < m->n_pages; i++) {
        lm_page_header h;
        page_expect(&m->id, &m->pages[i], &h);
        size_t pay = lm_page_payload_bytes(&h), total = LM_PAGE_HEADER_BYTES + pay;
        if (pay == 0) {
            r = lm_err_set(err, LM_ERR_CORRUPT, "store %s: session '%s': page %u: bad geometry",
                           st->path, name, i);
            goto done;
        }
        if (total > cap) {
            lm_free(buf);
            if (!(buf = lm_malloc(total))) {
                cap = 0;
                r = lm_err_set(err, LM_ERR_NOMEM, "store %s: cannot allocate %zu bytes", st->path,
                               total);
                goto done;
            }
            cap = total;
        }
        char blob[BLOB_NAME_LEN + 1], path[PATH_CAP];
        blob_name(&m->pages[i], blob);
        blob_path(st, blob, path);
        lm_err perr;
        lm_err_clear(&perr);
        const uint8_t *payload = NULL;
        r = read_exact(path, buf, total, &perr);
        if (r == LM_ERR_NOT_FOUND) {
            r = lm_err_set(err, LM_ERR_CORRUPT, "store %s: page %u of session '%s' missing: %s",
                           st->path, i, name, path);
            goto done;
        }
        if (r == LM_OK) r = lm_page_blob_check(buf, total, &h, &payload, &perr);
        if (r != LM_OK) {
            /* a damaged blob is moved aside so that the next sleep of this content writes it
             * again (a save trusts a present blob's header, not its payload) */
            char moved[PATH_CAP + 64] = "";
            if (r == LM_ERR_CORRUPT || r == LM_ERR_FORMAT) quarantine(st, path, blob, moved);
            r = lm_err_set(err, r, "store %s: page %u of session '%s': %s: %s%s%s", st->path, i,
                           name, path, perr.msg, moved[0] ? "; moved to " : "", moved);
            goto done;
        }
        if ((r = sink(user, i, payload, pay, err)) != LM_OK) goto done;
    }
done:
    unlock(st, LOCK_SH);
    lm_free(buf);
    if (r != LM_OK || !out) lm_manifest_free(m);
    else *out = m;
    return r;
}

lm_status lm_store_find_page(lm_store *st, const lm_kv_key *key, const lm_identity *id,
                             lm_page_ref *ref, lm_store_page_sink sink, void *user, lm_err *err) {
    if (!st || !key || !id)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "store find page: NULL argument");
    lm_page_header full;
    lm_page_ref probe = {.key = *key, .n_filled = id->page_tokens};
    page_expect(id, &probe, &full);
    size_t max_total = LM_PAGE_HEADER_BYTES + lm_page_payload_bytes(&full);
    if (max_total == LM_PAGE_HEADER_BYTES)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "store %s: find page: bad geometry", st->path);
    char khex[65], path[PATH_CAP];
    hex(key->b, 32, khex);
    name_list cands = {0};
    uint8_t *buf = NULL;
    lm_err last;
    lm_err_clear(&last);
    lm_status r = lock(st, LOCK_SH, err);
    if (r != LM_OK) return r;
    sqlite3_stmt *s = q(st, Q_FIND);
    sqlite3_bind_text(s, 1, khex, -1, SQLITE_STATIC);
    if ((r = collect_blobs(st, s, &cands, err)) != LM_OK) goto done;
    if (cands.n && !(buf = lm_malloc(max_total))) {
        r = lm_err_set(err, LM_ERR_NOMEM, "store %s: cannot allocate %zu bytes", st->path,
                       max_total);
        goto done;
    }
    for (size_t c = 0; c < cands.n; c++) {
        /* the row is a hint: the file itself must be a valid page for this key and model */
        lm_page_ref cand = {.key = *key};
        if (memcmp(cands.v[c], khex, 64) != 0 || !unhex(cands.v[c] + 65, 16, cand.content.b))
            continue;
        blob_path(st, cands.v[c], path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat sb;
        int ok = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= LM_PAGE_HEADER_BYTES &&
                 (uint64_t)sb.st_size <= (uint64_t)max_total &&
                 lm_fd_read_full(fd, buf, (size_t)sb.st_size) == 0;
        close(fd);
        if (!ok) {
            lm_err_clear(&last);
            lm_err_set(&last, LM_ERR_CORRUPT, "%s: unreadable or wrong size", path);
            continue;
        }
        cand.n_filled = (uint32_t)buf[112] | (uint32_t)buf[113] << 8 | (uint32_t)buf[114] << 16 |
                        (uint32_t)buf[115] << 24;
        lm_page_header h;
        page_expect(id, &cand, &h);
        const uint8_t *payload = NULL;
        lm_err_clear(&last);
        if (cand.n_filled < 1 || cand.n_filled > id->page_tokens ||
            lm_page_blob_check(buf, (size_t)sb.st_size, &h, &payload, &last) != LM_OK) {
            if (last.code == LM_OK) lm_err_set(&last, LM_ERR_CORRUPT, "%s: bad n_filled", path);
            continue;
        }
        if (ref) *ref = cand;
        if (sink) r = sink(user, 0, payload, lm_page_payload_bytes(&h), err);
        goto done;
    }
    if (last.code != LM_OK)
        r = lm_err_set(err, LM_ERR_NOT_FOUND, "store %s: no valid page for key %.16s...: %s",
                       st->path, khex, last.msg);
    else
        r = lm_err_set(err, LM_ERR_NOT_FOUND, "store %s: no page for key %.16s...", st->path, khex);
done:
    unlock(st, LOCK_SH);
    lm_free(cands.v);
    lm_free(buf);
    return r;
}

/* ---- listing ------------------------------------------------------------------------------ */

static void copy_text(char *dst, size_t cap, const unsigned char *src) {
    snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

static uint64_t col_u64(sqlite3_stmt *s, int i) {
    sqlite3_int64 v = sqlite3_column_int64(s, i);
    return v < 0 ? 0 : (uint64_t)v;
}

static void entry_from_row(lm_store *st, sqlite3_stmt *s, lm_store_entry *e) {
    memset(e, 0, sizeof *e);
    copy_text(e->name, sizeof e->name, sqlite3_column_text(s, 0));
    copy_text(e->parent, sizeof e->parent, sqlite3_column_text(s, 1));
    copy_text(e->model, sizeof e->model, sqlite3_column_text(s, 2));
    e->n_tokens = col_u64(s, 3);
    e->created_at = col_u64(s, 4);
    e->updated_at = col_u64(s, 5);
    e->bytes = col_u64(s, 6);
    e->shared_bytes = col_u64(s, 7);
    char path[PATH_CAP];
    struct stat sb;
    if (lm_session_name_check(e->name, NULL) == LM_OK) {
        manifest_path(st, e->name, path);
        if (stat(path, &sb) == 0 && sb.st_size > 0) e->bytes += (uint64_t)sb.st_size;
    }
}

lm_status lm_store_list_entries(lm_store *st, lm_store_entry **out, size_t *n, lm_err *err) {
    if (!st || !out || !n) return lm_err_set(err, LM_ERR_INVALID_ARG, "store list: NULL argument");
    *out = NULL;
    *n = 0;
    lm_store_entry *v = NULL;
    size_t cnt = 0, cap = 0;
    lm_status r = lock(st, LOCK_SH, err);
    if (r != LM_OK) return r;
    sqlite3_stmt *s = q(st, Q_LIST);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            void *p = lm_realloc(v, nc * sizeof *v);
            if (!p) {
                r = lm_err_set(err, LM_ERR_NOMEM, "store %s: list: out of memory", st->path);
                break;
            }
            v = p;
            cap = nc;
        }
        entry_from_row(st, s, &v[cnt++]);
    }
    if (r == LM_OK && rc != SQLITE_DONE) r = sql_err(st, rc, "list", err);
    sqlite3_reset(s);
    unlock(st, LOCK_SH);
    if (r != LM_OK) {
        lm_free(v);
        return r;
    }
    *out = v;
    *n = cnt;
    return LM_OK;
}

lm_status lm_store_entry_get(lm_store *st, const char *name, lm_store_entry *out, lm_err *err) {
    if (!st || !out) return lm_err_set(err, LM_ERR_INVALID_ARG, "store info: NULL argument");
    lm_status r = check_name(st, name, err);
    if (r != LM_OK) return r;
    if ((r = lock(st, LOCK_SH, err)) != LM_OK) return r;
    sqlite3_stmt *s = q(st, Q_ENTRY);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) entry_from_row(st, s, out);
    else if (rc == SQLITE_DONE)
        r = lm_err_set(err, LM_ERR_NOT_FOUND, "store %s: no session '%s'", st->path, name);
    else r = sql_err(st, rc, "info", err);
    sqlite3_reset(s);
    unlock(st, LOCK_SH);
    return r;
}

lm_status lm_store_get_stats(lm_store *st, lm_store_stats_t *out, lm_err *err) {
    if (!st || !out) return lm_err_set(err, LM_ERR_INVALID_ARG, "store stats: NULL argument");
    memset(out, 0, sizeof *out);
    lm_status r = lock(st, LOCK_SH, err);
    if (r != LM_OK) return r;
    sqlite3_stmt *s = q(st, Q_STATS);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->n_sessions = col_u64(s, 0);
        out->n_blobs = col_u64(s, 1);
        out->blob_bytes = col_u64(s, 2);
    } else {
        r = sql_err(st, rc, "stats", err);
    }
    sqlite3_reset(s);
    unlock(st, LOCK_SH);
    return r;
}

/* ---- remove / copy ------------------------------------------------------------------------ */

lm_status lm_store_remove(lm_store *st, const char *name, lm_err *err) {
    if (!st) return lm_err_set(err, LM_ERR_INVALID_ARG, "store remove: store is NULL");
    lm_status r = check_name(st, name, err);
    if (r != LM_OK) return r;
    char path[PATH_CAP], dir[PATH_CAP];
    manifest_path(st, name, path);
    if ((r = lock(st, LOCK_EX, err)) != LM_OK) return r;
    if (unlink(path) != 0) {
        if (errno == ENOENT) {
            r = lm_err_set(err, LM_ERR_NOT_FOUND, "store %s: no session '%s'", st->path, name);
            after_commit(st, NULL, name, NULL); /* drop a stale row, if any */
        } else {
            r = lm_err_set(err, LM_ERR_IO, "%s: unlink: %s", path, strerror(errno));
        }
        goto unlock;
    }
    step(st, "unlink manifest");
    /* committed: a failing directory fsync only risks the session coming back after a power
     * loss, which is the old state, so it is not reported */
    sub_path(st, "sessions", dir);
    lm_err ign;
    lm_err_clear(&ign);
    if (fsync_dir(dir, &ign) == LM_OK) step(st, "fsync sessions dir");
    after_commit(st, NULL, name, NULL);
unlock:
    sweep_tmp(st);
    unlock(st, LOCK_EX);
    return r;
}

lm_status lm_store_copy(lm_store *st, const char *src, const char *dst, int overwrite,
                        lm_err *err) {
    if (!st) return lm_err_set(err, LM_ERR_INVALID_ARG, "store copy: store is NULL");
    lm_status r = check_name(st, src, err);
    if (r == LM_OK) r = check_name(st, dst, err);
    if (r != LM_OK) return r;
    if (strcmp(src, dst) == 0)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "store %s: cannot copy session '%s' onto itself",
                          st->path, src);
    lm_manifest *m = NULL;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    char path[PATH_CAP], fp[33];
    if ((r = lock(st, LOCK_EX, err)) != LM_OK) return r;
    if ((r = read_manifest(st, src, &m, NULL, NULL, err)) != LM_OK) goto unlock;
    manifest_path(st, dst, path);
    if (!overwrite && access(path, F_OK) == 0) {
        r = lm_err_set(err, LM_ERR_INVALID_ARG, "store %s: session '%s' already exists", st->path,
                       dst);
        goto unlock;
    }
    /* every page must be there: a copy of a damaged session is refused now, not at wake */
    for (uint32_t i = 0; i < m->n_pages; i++) {
        char blob[BLOB_NAME_LEN + 1], bpath[PATH_CAP];
        blob_name(&m->pages[i], blob);
        blob_path(st, blob, bpath);
        if (access(bpath, F_OK) != 0) {
            r = lm_err_set(err, LM_ERR_CORRUPT, "store %s: page %u of session '%s' missing: %s",
                           st->path, i, src, bpath);
            goto unlock;
        }
    }
    snprintf(m->name, sizeof m->name, "%s", dst);
    snprintf(m->parent, sizeof m->parent, "%s", src);
    m->created_at = m->updated_at = now_unix();
    if ((r = lm_manifest_encode(m, &enc, &enc_len, err)) != LM_OK) {
        lm_err_prefix(err, "store %s: session '%s'", st->path, dst);
        goto unlock;
    }
    fingerprint_of(enc, enc_len, fp);
    if ((r = write_manifest(st, dst, enc, enc_len, err)) != LM_OK) goto unlock;
    after_commit(st, m, NULL, fp);
unlock:
    sweep_tmp(st);
    unlock(st, LOCK_EX);
    lm_manifest_free(m);
    lm_free(enc);
    return r;
}
