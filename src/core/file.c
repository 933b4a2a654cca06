/* file.c — mmap, bounded whole-file reads and atomic writes (see file.h). */
#include "core/file.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

lm_status lm_file_map(const char *path, lm_mapped_file *out, lm_err *err) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    lm_status s = LM_OK;
    if (fstat(fd, &st) != 0) {
        s = lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        s = lm_err_set(err, LM_ERR_IO, "%s: not a regular file", path);
        goto done;
    }
    if (st.st_size == 0) goto done;
    if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
        s = lm_err_set(err, LM_ERR_IO, "%s: file too large to map", path);
        goto done;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        s = lm_err_set(err, LM_ERR_IO, "%s: mmap: %s", path, strerror(errno));
        goto done;
    }
    out->data = p;
    out->size = (size_t)st.st_size;
done:
    close(fd);
    return s;
}

void lm_file_unmap(lm_mapped_file *mf) {
    if (!mf) return;
    if (mf->data) munmap((void *)mf->data, mf->size);
    mf->data = NULL;
    mf->size = 0;
}

lm_status lm_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
                           lm_err *err) {
    *out = NULL;
    if (len) *len = 0;
    lm_status s = LM_OK;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lm_err_set(err, LM_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = lm_err_set(err, LM_ERR_IO, "%s: not a readable regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        s = lm_err_set(err, LM_ERR_FORMAT, "%s: %lld bytes exceeds the limit of %zu", path,
                       (long long)st.st_size, max_bytes);
        goto fail;
    }
    size_t n = (size_t)st.st_size, got = 0;
    buf = lm_malloc(n + 1);
    if (!buf) {
        s = lm_err_set(err, LM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
        goto fail;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            s = lm_err_set(err, LM_ERR_IO, "%s: short read", path);
            goto fail;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    *out = buf;
    if (len) *len = n;
    return LM_OK;
fail:
    lm_free(buf);
    close(fd);
    return s;
}

int lm_fd_write_full(int fd, const void *data, size_t len) {
    const uint8_t *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int lm_fd_read_full(int fd, void *data, size_t len) {
    uint8_t *p = data;
    while (len) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

lm_status lm_file_write_atomic(const char *path, const void *data, size_t len, lm_err *err) {
    char tmp[4096], dir[4096];
    static unsigned counter; /* threads of one process write distinct temp files */
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED)) >= (int)sizeof tmp)
        return lm_err_set(err, LM_ERR_INVALID_ARG, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return lm_err_set(err, LM_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (lm_fd_write_full(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return lm_err_set(err, LM_ERR_IO, "%s: write: %s", tmp, strerror(e));
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lm_err_set(err, LM_ERR_IO, "%s: rename: %s", path, strerror(e));
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        int rc = fsync(dfd);
        close(dfd);
        if (rc != 0) return lm_err_set(err, LM_ERR_IO, "%s: fsync dir: %s", dir, strerror(errno));
    }
    return LM_OK;
}

int lm_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
