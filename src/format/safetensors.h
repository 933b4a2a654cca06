/*
 * safetensors.h — reader of the safetensors format (Hugging Face), validated in one pass.
 *
 * Byte layout (all integers little-endian):
 *     [0, 8)            u64 N: size of the JSON header in bytes
 *     [8, 8+N)          UTF-8 JSON object, starting with '{', possibly right-padded with spaces:
 *                           { "__metadata__": { "k": "v", ... },          (optional)
 *                             "NAME": { "dtype": "F16", "shape": [d0, d1, ...],
 *                                       "data_offsets": [BEGIN, END] }, ... }
 *     [8+N, size)       byte buffer; a tensor's bytes are [8+N+BEGIN, 8+N+END), row-major,
 *                       little-endian, with no alignment guarantee.
 *
 * Invariants of an open handle (checked by lm_st_open_*; see docs/formats/safetensors.md):
 *   - the header is valid UTF-8 JSON within the caps in lm_st_limits, no duplicate keys;
 *   - every tensor has exactly the fields dtype/shape/data_offsets, a known dtype, rank <= 4,
 *     non-negative integer dims, and END - BEGIN == product(shape) * dtype size (checked math);
 *   - sorted by offset, the tensors tile the byte buffer exactly: the first starts at 0, each
 *     starts where the previous ends, and the last ends at the end of the file (no holes, no
 *     overlaps, no trailing bytes);
 *   - the table (lm_st_tensor order) is sorted by (BEGIN, END, name), i.e. file order.
 * The handle is immutable after open; its tensor data pointers stay valid until lm_st_close.
 */
#ifndef LM_FORMAT_SAFETENSORS_H
#define LM_FORMAT_SAFETENSORS_H

#include "core/status.h"
#include "format/tensor_info.h"

#include <stddef.h>
#include <stdint.h>

#define LM_ST_MAX_HEADER_BYTES 100000000ull /* the reference implementation's MAX_HEADER_SIZE */

typedef struct lm_st_limits {
    uint64_t max_header_bytes; /* N cap; default LM_ST_MAX_HEADER_BYTES */
    uint32_t max_tensors;      /* default 1,000,000 */
    uint32_t max_name_bytes;   /* tensor names and metadata keys; default 4096 */
    uint32_t max_meta_entries; /* __metadata__ entries; default 65536 */
    int max_json_depth;        /* nesting of the header JSON; default 8 (a valid header has 3) */
} lm_st_limits;

typedef struct lm_st lm_st;

/* Fills lim with the defaults above. */
void lm_st_default_limits(lm_st_limits *lim);

/* Maps PATH read-only and validates it. lim may be NULL (defaults). */
lm_status lm_st_open_file(const char *path, const lm_st_limits *lim, lm_st **out, lm_err *err);
/* Validates the caller's buffer data[0..len); it must outlive the handle (nothing is copied). */
lm_status lm_st_open_buffer(const void *data, size_t len, const lm_st_limits *lim, lm_st **out,
                            lm_err *err);
void lm_st_close(lm_st *st); /* NULL is fine */

uint32_t lm_st_n_tensors(const lm_st *st);
/* i-th tensor in file order, NULL when i is out of range. file_index is 0. */
const lm_tensor_info *lm_st_tensor(const lm_st *st, uint32_t i);
/* Tensor by exact name, NULL when absent (binary search). */
const lm_tensor_info *lm_st_find(const lm_st *st, const char *name);

/* __metadata__ (string -> string), sorted by key. */
uint32_t lm_st_n_metadata(const lm_st *st);
const char *lm_st_metadata_key(const lm_st *st, uint32_t i);
const char *lm_st_metadata_value(const lm_st *st, uint32_t i);
/* Value for key, NULL when absent. */
const char *lm_st_metadata_get(const lm_st *st, const char *key);

/* Header size N and total file size, for tools. */
uint64_t lm_st_header_bytes(const lm_st *st);
uint64_t lm_st_file_bytes(const lm_st *st);

#endif
