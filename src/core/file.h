/*
 * file.h — files as the rest of lemma sees them: mapped read-only, read whole with a cap, or
 * written atomically (temp + fsync + rename + fsync(dir)).
 */
#ifndef LM_CORE_FILE_H
#define LM_CORE_FILE_H

#include "core/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lm_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;         /* bytes */
} lm_mapped_file;

/* Maps PATH read-only (MAP_PRIVATE). A regular file is required. */
lm_status lm_file_map(const char *path, lm_mapped_file *out, lm_err *err);
void lm_file_unmap(lm_mapped_file *mf);

/* Reads a whole file into a NUL-terminated heap buffer (lm_free). Files larger than max_bytes
 * are refused with LM_ERR_FORMAT. */
lm_status lm_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
                           lm_err *err);

/* Writes data to PATH so that a crash at any point leaves either the old file or the new one:
 * PATH.tmp.<pid> is written and fsynced, renamed over PATH, and the directory fsynced. */
lm_status lm_file_write_atomic(const char *path, const void *data, size_t len, lm_err *err);

/* 1 if PATH is a directory, 0 otherwise. */
int lm_path_is_dir(const char *path);

/* write(2) / read(2) of exactly len bytes, retrying on EINTR and short transfers: 0, or -1
 * with errno set (a read that meets end of file first returns -1). */
int lm_fd_write_full(int fd, const void *data, size_t len);
int lm_fd_read_full(int fd, void *data, size_t len);

#endif
