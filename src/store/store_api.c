/*
 * store_api.c — the public store functions of lemma.h ("Durable sessions") that need no model:
 * open / close / list / info / delete / fork. Thin wrappers over store/store.h that turn an
 * lm_err into the caller's error buffer. Sleep and wake live in src/engine/.
 */
#include "lemma.h"

#include "core/alloc.h"
#include "core/status.h"
#include "store/store.h"

#include <string.h>

static lm_status finish(const lm_err *e, lm_status s, char *err, size_t err_len) {
    if (s != LM_OK) lm_err_copy(e, err, err_len);
    else if (err && err_len) err[0] = '\0';
    return s;
}

static lm_status no_store(char *err, size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    return finish(&e, lm_err_set(&e, LM_ERR_INVALID_ARG, "store is NULL"), err, err_len);
}

static void info_from_entry(const lm_store_entry *en, lm_session_info *out) {
    memset(out, 0, sizeof *out);
    memcpy(out->name, en->name, sizeof out->name);
    memcpy(out->parent, en->parent, sizeof out->parent);
    memcpy(out->model, en->model, sizeof out->model);
    out->name[sizeof out->name - 1] = '\0';
    out->parent[sizeof out->parent - 1] = '\0';
    out->model[sizeof out->model - 1] = '\0';
    out->n_tokens = en->n_tokens;
    out->created_at = en->created_at;
    out->updated_at = en->updated_at;
    out->bytes = en->bytes;
    out->shared_bytes = en->shared_bytes;
}

_Static_assert(sizeof(((lm_session_info *)0)->name) == LM_SESSION_NAME_MAX + 1, "name size");
_Static_assert(sizeof(((lm_session_info *)0)->parent) == LM_SESSION_NAME_MAX + 1, "parent size");
_Static_assert(sizeof(((lm_session_info *)0)->model) == LM_MODEL_DESC_MAX + 1, "model size");

lm_status lm_store_open(const char *dir, lm_store **out, char *err, size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    if (!out) return finish(&e, lm_err_set(&e, LM_ERR_INVALID_ARG, "out is NULL"), err, err_len);
    return finish(&e, lm_store_open_dir(dir, out, &e), err, err_len);
}

void lm_store_close(lm_store *st) { lm_store_close_dir(st); }

const char *lm_store_dir(const lm_store *st) { return lm_store_path(st); }

lm_status lm_store_list(lm_store *st, lm_session_info **out, size_t *n, char *err,
                        size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    if (out) *out = NULL;
    if (n) *n = 0;
    if (!st) return no_store(err, err_len);
    if (!out || !n)
        return finish(&e, lm_err_set(&e, LM_ERR_INVALID_ARG, "out is NULL"), err, err_len);
    lm_store_entry *entries = NULL;
    size_t cnt = 0;
    lm_status s = lm_store_list_entries(st, &entries, &cnt, &e);
    if (s != LM_OK) return finish(&e, s, err, err_len);
    lm_session_info *v = NULL;
    if (cnt) {
        v = lm_calloc(cnt, sizeof *v);
        if (!v) {
            lm_free(entries);
            return finish(&e, lm_err_set(&e, LM_ERR_NOMEM, "store %s: list: out of memory",
                                         lm_store_path(st)),
                          err, err_len);
        }
        for (size_t i = 0; i < cnt; i++) info_from_entry(&entries[i], &v[i]);
    }
    lm_free(entries);
    *out = v;
    *n = cnt;
    return finish(&e, LM_OK, err, err_len);
}

void lm_free_session_infos(lm_session_info *infos) { lm_free(infos); }

lm_status lm_store_info(lm_store *st, const char *name, lm_session_info *out, char *err,
                        size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    if (!st) return no_store(err, err_len);
    if (!out) return finish(&e, lm_err_set(&e, LM_ERR_INVALID_ARG, "out is NULL"), err, err_len);
    lm_store_entry en;
    lm_status s = lm_store_entry_get(st, name, &en, &e);
    if (s == LM_OK) info_from_entry(&en, out);
    return finish(&e, s, err, err_len);
}

lm_status lm_store_delete(lm_store *st, const char *name, char *err, size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    if (!st) return no_store(err, err_len);
    return finish(&e, lm_store_remove(st, name, &e), err, err_len);
}

lm_status lm_store_fork(lm_store *st, const char *src, const char *dst, char *err,
                        size_t err_len) {
    lm_err e;
    lm_err_clear(&e);
    if (!st) return no_store(err, err_len);
    return finish(&e, lm_store_copy(st, src, dst, 0, &e), err, err_len);
}
