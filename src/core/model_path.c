/* model_path.c — short model names resolved in the models directory (model_path.h). */
#include "core/model_path.h"

#include "core/alloc.h"
#include "core/file.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct names {
    char **p;
    size_t n, cap;
} names;

static int names_add(names *v, const char *s) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        char **np = lm_realloc(v->p, cap * sizeof *np);
        if (!np) return 0;
        v->p = np;
        v->cap = cap;
    }
    if (!(v->p[v->n] = lm_strdup(s))) return 0;
    v->n++;
    return 1;
}

static void names_free(names *v) {
    for (size_t i = 0; i < v->n; i++) lm_free(v->p[i]);
    lm_free(v->p);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "a, b, c" into buf (cut with "..." when long) */
static void join(const names *v, char *buf, size_t len) {
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < v->n && at + 4 < len; i++) {
        int w = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", v->p[i]);
        if (w < 0 || (size_t)w >= len - at) {
            snprintf(buf + (len > 4 ? len - 4 : 0), 4, "...");
            return;
        }
        at += (size_t)w;
    }
}

static int ends_with_gguf(const char *s) {
    size_t n = strlen(s);
    return n >= 5 && !strcasecmp(s + n - 5, ".gguf");
}

lm_status lm_model_path_resolve(const char *path, char **resolved, lm_err *err) {
    *resolved = NULL;
    struct stat sb;
    /* an existing path, or one that is clearly a path, keeps the loader's own error */
    if (!path || !*path || stat(path, &sb) == 0 || strchr(path, '/')) return LM_OK;
    const char *env = getenv("LEMMA_MODELS");
    const char *dir = env && *env ? env : "models";
    DIR *d = opendir(dir);
    if (!d)
        return lm_err_set(err, LM_ERR_NOT_FOUND,
                          "'%s' is not a file or directory, and there is no models directory "
                          "%s ($LEMMA_MODELS) to find an installed model of that name in",
                          path, dir);
    names all = {0}, hits = {0}, exact = {0};
    lm_status st = LM_OK;
    const size_t nl = strlen(path);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *e = de->d_name;
        if (e[0] == '.') continue;
        size_t plen = strlen(dir) + strlen(e) + 2;
        char *full = lm_malloc(plen);
        if (!full) {
            st = lm_err_set(err, LM_ERR_NOMEM, "models directory %s: out of memory", dir);
            break;
        }
        snprintf(full, plen, "%s/%s", dir, e);
        const int is_dir = lm_path_is_dir(full);
        lm_free(full);
        if (!is_dir && !ends_with_gguf(e)) continue; /* not a model */
        const size_t el = strlen(e);
        const int is_exact = (el == nl && !strncasecmp(e, path, nl)) ||
                             (!is_dir && el == nl + 5 && !strncasecmp(e, path, nl));
        if (!names_add(&all, e) || (!strncasecmp(e, path, nl) && !names_add(&hits, e)) ||
            (is_exact && !names_add(&exact, e))) {
            st = lm_err_set(err, LM_ERR_NOMEM, "models directory %s: out of memory", dir);
            break;
        }
    }
    closedir(d);
    if (st == LM_OK) {
        if (all.n > 1) qsort(all.p, all.n, sizeof *all.p, by_name); /* NULL when empty */
        if (hits.n > 1) qsort(hits.p, hits.n, sizeof *hits.p, by_name);
        const names *pick = exact.n == 1 ? &exact : &hits;
        char list[384];
        if (pick->n == 1) {
            size_t len = strlen(dir) + strlen(pick->p[0]) + 2;
            *resolved = lm_malloc(len);
            if (!*resolved)
                st = lm_err_set(err, LM_ERR_NOMEM, "out of memory");
            else
                snprintf(*resolved, len, "%s/%s", dir, pick->p[0]);
        } else if (pick->n == 0) {
            join(&all, list, sizeof list);
            st = lm_err_set(err, LM_ERR_NOT_FOUND,
                            "'%s' is not a file or directory, nor the start of an installed "
                            "model's name in %s/ (installed: %s)",
                            path, dir, all.n ? list : "none");
        } else {
            join(pick, list, sizeof list);
            st = lm_err_set(err, LM_ERR_INVALID_ARG,
                            "model name '%s' is ambiguous in %s/: it matches %s; give more of "
                            "the name or a path", path, dir, list);
        }
    }
    names_free(&all);
    names_free(&hits);
    names_free(&exact);
    return st;
}
