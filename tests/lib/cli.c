/*
 * cli.c — running the built `lemma` binary from tests (see cli.h).
 */
#include "cli.h"

#include "test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *t_cli_bin(void) {
    static char bin[1024];
    if (!bin[0]) {
        const char *b = getenv("LM_TEST_BUILD");
        snprintf(bin, sizeof bin, "%s/lemma", b && *b ? b : "build");
    }
    return bin;
}

int t_cli_has(const char *command) {
    static struct {
        char command[64];
        int known;
    } cache[8];
    static int n_cache;
    for (int i = 0; i < n_cache; i++)
        if (!strcmp(cache[i].command, command)) return cache[i].known;
    int known = 0;
    if (access(t_cli_bin(), X_OK) == 0) {
        const char *args[] = {command, "--help", NULL};
        char *out, *err;
        known = t_cli_run(args, NULL, &out, NULL, &err) == 0;
        free(out);
        free(err);
    }
    if (n_cache < 8 && strlen(command) < sizeof cache[0].command) {
        strcpy(cache[n_cache].command, command);
        cache[n_cache++].known = known;
    }
    return known;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

const char *t_write_tmp(const char *name, const char *text) {
    static char path[4][1024];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", t_tmpdir(), name);
    return write_file(p, text) == 0 ? p : NULL;
}

/* All of fd until EOF or an error, malloc'd and NUL-terminated; *len gets its length.
 * NULL when nothing could be allocated. */
static char *slurp(int fd, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    *len = 0;
    if (!buf) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int t_cli_run(const char *const *args, const char *stdin_text, char **out, size_t *out_len,
              char **err) {
    const char *bin = t_cli_bin();
    char in_path[1024], err_path[1024];
    snprintf(in_path, sizeof in_path, "%s/cli_stdin.txt", t_tmpdir());
    snprintf(err_path, sizeof err_path, "%s/cli_stderr.txt", t_tmpdir());
    size_t n_out = 0, n_err = 0;
    int rc = -1, fd[2];
    *out = NULL;
    if (err) *err = NULL;
    if (stdin_text && write_file(in_path, stdin_text) != 0) goto done;
    if (pipe(fd)) goto done;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        goto done;
    }
    if (pid == 0) {
        const char *argv[64];
        int n = 0;
        argv[n++] = bin;
        for (; args[n - 1] && n < 63; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        int ifd = open(stdin_text ? in_path : "/dev/null", O_RDONLY);
        int efd =
            err ? open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open("/dev/null", O_WRONLY);
        if (ifd < 0 || efd < 0) _exit(126);
        dup2(ifd, 0);
        dup2(fd[1], 1);
        dup2(efd, 2);
        close(fd[0]);
        close(fd[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fd[1]);
    *out = slurp(fd[0], &n_out);
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (err) {
        int efd = open(err_path, O_RDONLY);
        if (efd >= 0) {
            *err = slurp(efd, &n_err);
            close(efd);
        }
    }
    rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
done:
    if (!*out) {
        *out = calloc(1, 1);
        n_out = 0;
    }
    if (err && !*err) *err = calloc(1, 1);
    if (out_len) *out_len = n_out;
    return rc;
}
