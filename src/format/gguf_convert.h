/*
 * gguf_convert.h — convert a GGUF model file to another tensor type (`lemma quantize`).
 *
 * lm_gguf_convert reads IN with the validating reader, decides every tensor's output type by
 * the rules below, and writes OUT with the streaming GGUF writer: each tensor is produced at
 * write time, a chunk of rows at a time (dequantized with lm_dequant_row, requantized with
 * lm_quantize_row), so memory use is the metadata plus a few MiB, whatever the model's size.
 *
 * Metadata. Every key/value is copied in order with its type and bytes unchanged (nested
 * arrays and arrays of strings included; a scalar bool is written as 0 or 1, what any byte of
 * it means), except general.file_type, which becomes the target's llama.cpp file type
 * (LLAMA_FTYPE_*; see lm_gguf_convert_ftype) as a uint32, in the key's old place or appended after
 * the last key when the input has none. The GGUF version and general.alignment (hence the padding)
 * are the input's.
 *
 * Tensors keep their names, shapes and order. The output type of each
 * (lm_gguf_convert_tensor_type):
 *   1. integer tensors (i8, i16, i32, i64) are copied unchanged;
 *   2. tensors with fewer than 2 dimensions (norm weights, biases, scalars) and tensors whose
 *      name does not end in ".weight" become F32 (F32 ones are copied);
 *   3. every other tensor becomes the target type T when its row length ne[0] is a multiple
 *      of T's block size; otherwise T's fallback, as llama.cpp picks it: q2_K, q3_K -> q4_0,
 *      q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0, iq4_xs -> iq4_nl; and F16 when that does
 *      not fit either (or T is a 32-element block type: q4_0 ... q8_0, iq4_nl, mxfp4).
 * A tensor whose output type equals its input type is copied byte for byte (never
 * requantized). Otherwise its rows are dequantized exactly to f32 by lm_dequant_row, then
 * stored as F32 as they are, rounded to nearest-even for F16/BF16, or quantized with
 * lm_quantize_row. A tensor lemma cannot dequantize (iq2_xxs, f64, ...) that would need
 * converting is LM_ERR_UNSUPPORTED before anything is written. Turning a quantized tensor
 * into another quantized type (requantizing) loses accuracy twice, so, as llama-quantize
 * does, it is refused unless flags has LM_GGUF_CONVERT_ALLOW_REQUANTIZE.
 *
 * Guarantees: the output is written atomically (OUT.tmp.<pid>, fsync, rename, fsync(dir));
 * on any failure nothing is left at OUT (an existing OUT is left as it was) and the temp file
 * is removed. The input is only read (mapped read-only). IN and OUT naming the same file
 * (same path, or same device and inode) is LM_ERR_INVALID_ARG. The output depends only on
 * the input bytes and the target type (not on n_threads, timing or the environment): the same
 * conversion always gives a byte-identical file. Never exits or aborts on a bad file.
 */
#ifndef LM_FORMAT_GGUF_CONVERT_H
#define LM_FORMAT_GGUF_CONVERT_H

#include "core/status.h"
#include "format/gguf.h"
#include "tensor/dtype.h"

#include <stddef.h>
#include <stdint.h>

/* Allow quantized -> other quantized type (lossy twice). */
#define LM_GGUF_CONVERT_ALLOW_REQUANTIZE 1u

/* Called after each chunk of output (a few MiB) and after each tensor: tensors finished so
 * far of n_tensors, and bytes of tensor data written so far of bytes_total (output sizes).
 * Return non-zero to stop: the conversion then fails with LM_ERR_ABORTED, leaving nothing. */
typedef int (*lm_gguf_convert_progress_fn)(void *user, uint64_t tensors_done, uint64_t n_tensors,
                                           uint64_t bytes_done, uint64_t bytes_total);

typedef struct lm_gguf_convert_opts {
    lm_dtype target;                      /* one of lm_gguf_convert_target(i); default F32 */
    int n_threads;                        /* rows are converted by this many threads; <= 1:
                                             the calling thread only (the result is the same) */
    lm_gguf_convert_progress_fn progress; /* may be NULL */
    void *progress_user;
    uint32_t flags; /* LM_GGUF_CONVERT_* */
} lm_gguf_convert_opts;

lm_gguf_convert_opts lm_gguf_convert_default_opts(void);

typedef struct lm_gguf_convert_stats {
    uint64_t n_tensors;
    uint64_t n_copied;    /* tensors copied byte for byte */
    uint64_t n_converted; /* tensors dequantized / requantized */
    uint64_t n_fallback;  /* 2-D+ weights that got a fallback type (rule 3) */
    uint64_t in_bytes;    /* size of IN */
    uint64_t out_bytes;   /* size of OUT */
} lm_gguf_convert_stats;

/* Converts IN to OUT (see the rules above). stats may be NULL; it is filled on success. */
lm_status lm_gguf_convert(const char *in_path, const char *out_path, const lm_gguf_convert_opts *o,
                          lm_gguf_convert_stats *stats, lm_err *err);

/* The i-th type lm_gguf_convert can target (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1,
 * q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs, mxfp4, in that order); LM_DTYPE_INVALID
 * past the last. */
lm_dtype lm_gguf_convert_target(size_t i);
/* 1 if t is one of them. */
int lm_gguf_convert_can_target(lm_dtype t);
/* A target by name, case-insensitive ("q4_k", "F16"); LM_DTYPE_INVALID if not a target. */
lm_dtype lm_gguf_convert_parse_type(const char *name);
/* llama.cpp's file type (LLAMA_FTYPE_*) of a file whose weights are mostly t: ALL_F32 = 0,
 * MOSTLY_F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10, Q6_K = 18,
 * IQ4_NL = 25, IQ4_XS = 30, BF16 = 32, MXFP4_MOE = 38; the K-quants without a plain value
 * get their _S variant (the one with the fewest tensors bumped to a bigger type):
 * Q3_K_S = 11, Q4_K_S = 14, Q5_K_S = 16. -1 if t is not a target. */
int lm_gguf_convert_ftype(lm_dtype t);
/* The output type of one tensor (rules 1-3); *fallback (may be NULL) is set to 1 when rule 3
 * had to pick a fallback. */
lm_dtype lm_gguf_convert_tensor_type(const char *name, uint32_t n_dims, const uint64_t *ne,
                                     lm_dtype src, lm_dtype target, int *fallback);

#endif
