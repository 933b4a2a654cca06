/*
 * tensor_info.h — one entry of a validated tensor table, the common output of every model-file
 * reader (GGUF, safetensors, HF directories). Readers know nothing of architectures; model
 * code knows nothing of files and sees only these entries.
 *
 * Shape convention: ne[0] is the fastest-varying (innermost, contiguous) dimension, as in
 * GGUF/GGML. A safetensors/PyTorch shape [rows, cols] is ne = {cols, rows}. A row is ne[0]
 * elements = lm_dtype_row_size(dtype, ne[0]) bytes.
 */
#ifndef LM_FORMAT_TENSOR_INFO_H
#define LM_FORMAT_TENSOR_INFO_H

#include "tensor/dtype.h"

#include <stdint.h>

#define LM_MAX_DIMS 4 /* GGML_MAX_DIMS; safetensors tensors of higher rank are rejected */

typedef struct lm_tensor_info {
    const char *name;       /* NUL-terminated, owned by the table */
    lm_dtype dtype;
    uint32_t n_dims;        /* 0 (scalar) .. LM_MAX_DIMS */
    uint64_t ne[LM_MAX_DIMS]; /* elements per dimension, innermost first; unused dims = 1 */
    uint64_t n_elements;    /* product of ne, checked */
    uint64_t offset;        /* byte offset of the data within its file */
    uint64_t nbytes;        /* byte size, = row size * rows, checked */
    const void *data;       /* into the read-only mapping of the file; NULL if nbytes == 0 */
    uint32_t file_index;    /* which shard (0 for single-file formats) */
} lm_tensor_info;

#endif
