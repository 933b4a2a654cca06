/*
 * store.h — the local session store: a directory of page blobs, session manifests and a SQLite
 * index (docs/formats/store.md). Knows nothing about models: it moves validated bytes.
 *
 * Locking: every call takes the store's flock (shared for reads, exclusive for writes) for its
 * whole duration, so a multi-step operation (sleep = pages + manifest + index) is atomic with
 * respect to other lemma processes and threads using the same directory.
 * Durability: files are written as tmp/PID-RANDOM, fsync'd, renamed into place and their
 * directory fsync'd (store.c's own writer, so every step can call the crash hook); the manifest
 * rename is the commit point of a sleep and its unlink of a delete (docs/formats/store.md §6).
 */
#ifndef LM_STORE_STORE_H
#define LM_STORE_STORE_H

#include "core/status.h"
#include "lemma.h"
#include "store/manifest.h"

#include <stddef.h>
#include <stdint.h>

/* struct lm_store is private to store.c; lm_store is declared in lemma.h. */

/* Opens (creating if needed, mode 0700) the store at dir; dir NULL = the default store
 * (lm_store_default_dir). Removes stale temp files, reconciles the index with the files. */
lm_status lm_store_open_dir(const char *dir, lm_store **out, lm_err *err);
/* The default store directory ($LEMMA_STORE, $XDG_DATA_HOME/lemma/store,
 * $HOME/.local/share/lemma/store) into buf; LM_ERR_NOT_FOUND when none can be formed. */
lm_status lm_store_default_dir(char *buf, size_t len, lm_err *err);
void lm_store_close_dir(lm_store *st); /* NULL ok */
const char *lm_store_path(const lm_store *st);

/* Supplies the payload of manifest page i (packed as lm_kv_page_pack writes it) when the store
 * lacks that blob. *payload stays valid until the next call. */
typedef lm_status (*lm_store_page_source)(void *user, uint32_t i, const void **payload,
                                          size_t *bytes, lm_err *err);
/* Receives the validated payload of manifest page i. */
typedef lm_status (*lm_store_page_sink)(void *user, uint32_t i, const void *payload,
                                        size_t bytes, lm_err *err);

/* Saves a session: writes every page blob of m the store lacks (asking src for its bytes),
 * then the manifest (replacing an older one of the same name atomically), then the index;
 * blobs only the replaced manifest used are collected. *bytes_written (may be NULL) = bytes of
 * new files. */
lm_status lm_store_save(lm_store *st, const lm_manifest *m, lm_store_page_source src,
                        void *user, uint64_t *bytes_written, lm_err *err);
/* Loads the manifest of name (validated), then passes each page's validated payload to sink
 * (sink may be NULL: manifest only). LM_ERR_NOT_FOUND when there is no such session. */
lm_status lm_store_load(lm_store *st, const char *name, lm_manifest **out,
                        lm_store_page_sink sink, void *user, lm_err *err);
/* Finds a page blob by key alone (prefix reuse across sessions): fills *ref and passes the
 * validated payload to sink. LM_ERR_NOT_FOUND when the store has none. */
lm_status lm_store_find_page(lm_store *st, const lm_kv_key *key, const lm_identity *id,
                             lm_page_ref *ref, lm_store_page_sink sink, void *user, lm_err *err);

/* Session entries for listing (from the index, reconciled at open). */
typedef struct lm_store_entry {
    char name[LM_SESSION_NAME_MAX + 1];
    char parent[LM_SESSION_NAME_MAX + 1];
    char model[LM_MODEL_DESC_MAX + 1];
    uint64_t n_tokens;
    uint64_t created_at, updated_at;
    uint64_t bytes;          /* bytes of the manifest + blobs it references */
    uint64_t shared_bytes;   /* of those, bytes of blobs other sessions reference too */
} lm_store_entry;
lm_status lm_store_list_entries(lm_store *st, lm_store_entry **out, size_t *n, lm_err *err);
lm_status lm_store_entry_get(lm_store *st, const char *name, lm_store_entry *out, lm_err *err);
/* Deletes a session and every blob no other session references. */
lm_status lm_store_remove(lm_store *st, const char *name, lm_err *err);
/* A new session dst sharing every page of src (a copy of its manifest with name, parent and
 * times changed). LM_ERR_INVALID_ARG if dst exists unless overwrite. */
lm_status lm_store_copy(lm_store *st, const char *src, const char *dst, int overwrite,
                        lm_err *err);

/* Totals: sessions, page blobs, bytes of blobs on disk. */
typedef struct lm_store_stats {
    uint64_t n_sessions, n_blobs, blob_bytes;
} lm_store_stats_t;
lm_status lm_store_get_stats(lm_store *st, lm_store_stats_t *out, lm_err *err);

/* Test hook: when set, called at each numbered write step of the store (after each file write,
 * fsync, rename, index statement); tests make it raise SIGKILL at step k to simulate a crash.
 * Not part of the public API; NULL = off (the default). */
typedef void (*lm_store_crash_hook)(const char *step, int n);
void lm_store_set_crash_hook(lm_store_crash_hook hook);

#endif
