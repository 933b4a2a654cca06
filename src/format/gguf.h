/*
 * gguf.h — GGUF (v2, v3) reader and writer.
 *
 * The reader maps a file (or takes a caller's buffer), validates ALL of it in one pass and
 * then answers questions about it without ever touching unvalidated bytes again. Metadata
 * values are not copied: strings and arrays are pointers into the mapping (not NUL-terminated,
 * not aligned). Keys and tensor names are copied once into NUL-terminated arenas. The tensor
 * table is an array of lm_tensor_info (see tensor_info.h) with absolute file offsets and data
 * pointers into the mapping. The byte layout read and written, and every rejection rule, is in
 * gguf.c's header comment and docs/formats/gguf.md.
 *
 * Invariants of an open lm_gguf (all established by lm_gguf_open_*):
 *   - every key is non-empty, has no NUL byte and is unique; every value's type is known and
 *     every string/array lies inside the file; arrays nest at most lim.max_array_depth deep;
 *   - general.alignment, when present, is a UINT32 power of two <= 65536;
 *   - every tensor has a unique non-empty name, 0..4 dims each >= 1, a known GGML type, an
 *     ne[0] that is a multiple of the type's block size, an offset that is a multiple of the
 *     alignment, and data lying inside the file without overlapping any other tensor.
 *
 * Thread safety: an open lm_gguf is immutable; any number of threads may read it.
 */
#ifndef LM_FORMAT_GGUF_H
#define LM_FORMAT_GGUF_H

#include "core/status.h"
#include "format/tensor_info.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Metadata value types, with the GGUF on-disk ids. */
typedef enum lm_gguf_type {
    LM_GGUF_TYPE_UINT8 = 0,
    LM_GGUF_TYPE_INT8 = 1,
    LM_GGUF_TYPE_UINT16 = 2,
    LM_GGUF_TYPE_INT16 = 3,
    LM_GGUF_TYPE_UINT32 = 4,
    LM_GGUF_TYPE_INT32 = 5,
    LM_GGUF_TYPE_FLOAT32 = 6,
    LM_GGUF_TYPE_BOOL = 7,
    LM_GGUF_TYPE_STRING = 8,
    LM_GGUF_TYPE_ARRAY = 9,
    LM_GGUF_TYPE_UINT64 = 10,
    LM_GGUF_TYPE_INT64 = 11,
    LM_GGUF_TYPE_FLOAT64 = 12,
    LM_GGUF_TYPE_COUNT = 13,
    LM_GGUF_TYPE_INVALID = -1,
} lm_gguf_type;

#define LM_GGUF_MAGIC "GGUF"
#define LM_GGUF_DEFAULT_ALIGNMENT 32u
#define LM_GGUF_MAX_ALIGNMENT 65536u
#define LM_GGUF_HARD_MAX_DEPTH 32u /* max_array_depth is clamped to this (bounds recursion) */

/* Caps on what a file may declare, on top of the checks against the real file size. */
typedef struct lm_gguf_limits {
    uint64_t max_string_len;  /* bytes of one string (key or value); default 256 MiB */
    uint64_t max_array_elems; /* elements of one array; default 2^28 */
    uint64_t max_kv;          /* metadata entries; default 65536 */
    uint64_t max_tensors;     /* tensor infos; default 2^20 */
    uint32_t max_array_depth; /* 1 = arrays of scalars/strings only; default 4 */
    uint32_t max_name_len;    /* bytes of a tensor name; default 256 (ggml itself: 63) */
} lm_gguf_limits;

lm_gguf_limits lm_gguf_default_limits(void);

typedef struct lm_gguf lm_gguf;

/* Maps PATH read-only and parses it in place. lim NULL = defaults. On failure *out is NULL. */
lm_status lm_gguf_open_file(const char *path, const lm_gguf_limits *lim, lm_gguf **out,
                            lm_err *err);
/* Parses data[0..len); the buffer must stay valid and unchanged until lm_gguf_close. */
lm_status lm_gguf_open_buffer(const void *data, size_t len, const lm_gguf_limits *lim,
                              lm_gguf **out, lm_err *err);
void lm_gguf_close(lm_gguf *g); /* NULL ok */

/* ---- file-level facts ---- */
uint32_t lm_gguf_version(const lm_gguf *g);
uint32_t lm_gguf_alignment(const lm_gguf *g);   /* general.alignment or 32 */
uint64_t lm_gguf_data_offset(const lm_gguf *g); /* absolute offset of the data section */
size_t lm_gguf_size(const lm_gguf *g);          /* bytes of the file / buffer */
const void *lm_gguf_base(const lm_gguf *g);     /* first byte of the file / buffer */

/* ---- metadata by index ---- */
uint64_t lm_gguf_n_kv(const lm_gguf *g);
const char *lm_gguf_key(const lm_gguf *g, uint64_t i);       /* NUL-terminated; NULL if i >= n_kv */
int64_t lm_gguf_find(const lm_gguf *g, const char *key);     /* index or -1; O(1) hash lookup */
lm_gguf_type lm_gguf_kv_type(const lm_gguf *g, uint64_t i);  /* INVALID if i out of range */
lm_gguf_type lm_gguf_arr_type(const lm_gguf *g, uint64_t i); /* INVALID if not an array */
uint64_t lm_gguf_arr_n(const lm_gguf *g, uint64_t i);        /* 0 if not an array */

/* ---- typed getters by key ----
 * A missing key gives LM_ERR_NOT_FOUND naming the key; a value of another type gives
 * LM_ERR_FORMAT naming the key, the expected and the actual type. Bytes of one type are never
 * read as another.
 *   get_u32/u64/i32/i64: accept any integer type (uint8..int64) whose value fits the target;
 *                        a value that does not fit is LM_ERR_FORMAT naming the value. Bool and
 *                        floats are not integers here.
 *   get_f32: float32, or float64 (converted; a finite value beyond float range is refused).
 *   get_f64: float32 or float64.
 *   get_bool: bool only; any non-zero byte is true.
 *   get_str: pointer into the file and its length; not NUL-terminated, may contain any bytes.
 */
lm_status lm_gguf_get_u32(const lm_gguf *g, const char *key, uint32_t *out, lm_err *err);
lm_status lm_gguf_get_u64(const lm_gguf *g, const char *key, uint64_t *out, lm_err *err);
lm_status lm_gguf_get_i32(const lm_gguf *g, const char *key, int32_t *out, lm_err *err);
lm_status lm_gguf_get_i64(const lm_gguf *g, const char *key, int64_t *out, lm_err *err);
lm_status lm_gguf_get_f32(const lm_gguf *g, const char *key, float *out, lm_err *err);
lm_status lm_gguf_get_f64(const lm_gguf *g, const char *key, double *out, lm_err *err);
lm_status lm_gguf_get_bool(const lm_gguf *g, const char *key, int *out, lm_err *err);
lm_status lm_gguf_get_str(const lm_gguf *g, const char *key, const char **ptr, size_t *len,
                          lm_err *err);

/* An array of fixed-size elements (any type but STRING and ARRAY) whose element type must be
 * exactly expected_elem_type. *data points into the file and is NOT aligned: read elements with
 * memcpy (lm_gguf_load_*) or the lm_gguf_arr_get_* accessors, never by casting. */
lm_status lm_gguf_get_arr(const lm_gguf *g, const char *key, lm_gguf_type expected_elem_type,
                          const void **data, uint64_t *n, lm_err *err);

/* Element j of the array at kv index i. They check the element type and j, and return 0 when
 * either is wrong (so they never read out of bounds); call lm_gguf_get_arr first to get a
 * reportable error. */
float lm_gguf_arr_get_f32(const lm_gguf *g, uint64_t i, uint64_t j);
int32_t lm_gguf_arr_get_i32(const lm_gguf *g, uint64_t i, uint64_t j);
uint32_t lm_gguf_arr_get_u32(const lm_gguf *g, uint64_t i, uint64_t j);

static inline float lm_gguf_load_f32(const void *data, uint64_t j) {
    float v;
    memcpy(&v, (const char *)data + j * 4, 4);
    return v;
}
static inline int32_t lm_gguf_load_i32(const void *data, uint64_t j) {
    int32_t v;
    memcpy(&v, (const char *)data + j * 4, 4);
    return v;
}
static inline uint32_t lm_gguf_load_u32(const void *data, uint64_t j) {
    uint32_t v;
    memcpy(&v, (const char *)data + j * 4, 4);
    return v;
}

/* String j of the string array at kv index i, in O(1) (offsets are precomputed at open).
 * LM_ERR_INVALID_ARG if i is not a string array or j >= its length. */
lm_status lm_gguf_arr_str(const lm_gguf *g, uint64_t i, uint64_t j, const char **ptr, size_t *len);

/* ---- generic values (nested arrays, inspection) ----
 * A value reference: what a kv holds, or one element of an array. For scalars, data points to
 * the little-endian bytes of the value (size bytes, unaligned); for strings, to the characters
 * (size = length); for arrays, to the first element (size = bytes of all elements). */
typedef struct lm_gguf_value {
    lm_gguf_type type;
    lm_gguf_type elem_type; /* arrays only, else INVALID */
    uint64_t n;             /* arrays: element count; else 1 */
    const uint8_t *data;
    uint64_t size;
    const uint64_t *offs; /* internal: element offsets of a top-level variable-size array */
} lm_gguf_value;

lm_status lm_gguf_kv_value(const lm_gguf *g, uint64_t i, lm_gguf_value *out, lm_err *err);
/* Element j of an array value. O(1) for fixed-size elements and for top-level arrays of
 * strings/arrays; O(j) for variable-size elements of a nested array (bounded by the limits). */
lm_status lm_gguf_value_arr_elem(const lm_gguf_value *arr, uint64_t j, lm_gguf_value *out,
                                 lm_err *err);
/* Scalar conversions with the same rules as the getters (what names the value in messages). */
lm_status lm_gguf_value_u64(const lm_gguf_value *v, const char *what, uint64_t *out, lm_err *err);
lm_status lm_gguf_value_i64(const lm_gguf_value *v, const char *what, int64_t *out, lm_err *err);
lm_status lm_gguf_value_f64(const lm_gguf_value *v, const char *what, double *out, lm_err *err);

/* The value of kv i as JSON text (lm_free it); arrays longer than max_array_items end with a
 * string element "... (N more)"; strings are JSON-escaped, each invalid UTF-8 byte becomes
 * U+FFFD; NaN/inf floats become the strings "NaN", "Infinity", "-Infinity". NULL when i is
 * out of range or memory runs out. */
char *lm_gguf_value_to_json(const lm_gguf *g, uint64_t i, size_t max_array_items);

const char *lm_gguf_type_name(lm_gguf_type t); /* "uint32", ...; "?" when unknown */
size_t lm_gguf_type_size(lm_gguf_type t);      /* bytes of a fixed-size type, else 0 */

/* ---- tensors ---- */
uint64_t lm_gguf_n_tensors(const lm_gguf *g);
const lm_tensor_info *lm_gguf_tensor(const lm_gguf *g, uint64_t i); /* NULL if out of range */
int64_t lm_gguf_find_tensor(const lm_gguf *g, const char *name);    /* index or -1; O(1) */

/* ---------------------------------------------------------------------------------------
 * Writer. Values are encoded when set (a key set twice keeps its first position and the new
 * value); tensor data is NOT copied: each data pointer must stay valid until the write. The
 * file is streamed: header, kv, tensor infos, zero padding to the alignment, then each tensor's
 * data padded to the alignment. Version 3 unless lm_gguf_writer_set_version(w, 2).
 * ------------------------------------------------------------------------------------ */
typedef struct lm_gguf_writer lm_gguf_writer;
typedef struct lm_gguf_warr lm_gguf_warr; /* an array value under construction */

lm_status lm_gguf_writer_new(lm_gguf_writer **out, lm_err *err);
void lm_gguf_writer_free(lm_gguf_writer *w); /* NULL ok */
lm_status lm_gguf_writer_set_version(lm_gguf_writer *w, uint32_t version, lm_err *err);
/* Sets general.alignment (UINT32) and pads with it: a power of two <= 65536. */
lm_status lm_gguf_set_alignment(lm_gguf_writer *w, uint32_t alignment, lm_err *err);

lm_status lm_gguf_set_u8(lm_gguf_writer *w, const char *key, uint8_t v, lm_err *err);
lm_status lm_gguf_set_i8(lm_gguf_writer *w, const char *key, int8_t v, lm_err *err);
lm_status lm_gguf_set_u16(lm_gguf_writer *w, const char *key, uint16_t v, lm_err *err);
lm_status lm_gguf_set_i16(lm_gguf_writer *w, const char *key, int16_t v, lm_err *err);
lm_status lm_gguf_set_u32(lm_gguf_writer *w, const char *key, uint32_t v, lm_err *err);
lm_status lm_gguf_set_i32(lm_gguf_writer *w, const char *key, int32_t v, lm_err *err);
lm_status lm_gguf_set_f32(lm_gguf_writer *w, const char *key, float v, lm_err *err);
lm_status lm_gguf_set_bool(lm_gguf_writer *w, const char *key, int v, lm_err *err);
lm_status lm_gguf_set_u64(lm_gguf_writer *w, const char *key, uint64_t v, lm_err *err);
lm_status lm_gguf_set_i64(lm_gguf_writer *w, const char *key, int64_t v, lm_err *err);
lm_status lm_gguf_set_f64(lm_gguf_writer *w, const char *key, double v, lm_err *err);
lm_status lm_gguf_set_str(lm_gguf_writer *w, const char *key, const char *s, lm_err *err);
lm_status lm_gguf_set_strn(lm_gguf_writer *w, const char *key, const char *s, size_t len,
                           lm_err *err);
/* Array of n fixed-size elements of elem_type, given as a C array of that type (bool: one byte
 * each, 0 or 1). */
lm_status lm_gguf_set_arr(lm_gguf_writer *w, const char *key, lm_gguf_type elem_type,
                          const void *data, uint64_t n, lm_err *err);
/* Array of n strings; lens NULL means each is NUL-terminated. */
lm_status lm_gguf_set_arr_str(lm_gguf_writer *w, const char *key, const char *const *strs,
                              const size_t *lens, uint64_t n, lm_err *err);

/* Nested arrays: build an lm_gguf_warr, push elements of its element type (push_arr moves a
 * child array into it, which must be of the ARRAY element type), then lm_gguf_set_warr stores
 * it under key. set_warr and push_arr take ownership of the array even on failure. */
lm_status lm_gguf_warr_new(lm_gguf_type elem_type, lm_gguf_warr **out, lm_err *err);
void lm_gguf_warr_free(lm_gguf_warr *a);                                     /* NULL ok */
lm_status lm_gguf_warr_push(lm_gguf_warr *a, const void *elem, lm_err *err); /* fixed-size */
lm_status lm_gguf_warr_push_str(lm_gguf_warr *a, const char *s, size_t len, lm_err *err);
lm_status lm_gguf_warr_push_arr(lm_gguf_warr *a, lm_gguf_warr *child, lm_err *err);
lm_status lm_gguf_set_warr(lm_gguf_writer *w, const char *key, lm_gguf_warr *a, lm_err *err);

/* Adds a tensor: ne innermost first, nbytes must equal the dtype's size for that shape. */
lm_status lm_gguf_add_tensor(lm_gguf_writer *w, const char *name, lm_dtype dtype, uint32_t n_dims,
                             const uint64_t *ne, const void *data, uint64_t nbytes, lm_err *err);

/* Tensors whose bytes are produced while the file is written (streaming conversion). */
typedef struct lm_gguf_stream lm_gguf_stream;
/* Must push exactly the tensor's nbytes through lm_gguf_stream_write, in order, and return
 * LM_OK; any other status stops the write (lm_gguf_write_file then removes its temp file). */
typedef lm_status (*lm_gguf_tensor_fn)(void *user, lm_gguf_stream *out, lm_err *err);
/* As lm_gguf_add_tensor, with data produced by fn(user, ...) when the file is written (once
 * per lm_gguf_write_file / lm_gguf_write_buffer call). */
lm_status lm_gguf_add_tensor_fn(lm_gguf_writer *w, const char *name, lm_dtype dtype,
                                uint32_t n_dims, const uint64_t *ne, uint64_t nbytes,
                                lm_gguf_tensor_fn fn, void *user, lm_err *err);
/* Appends n bytes of the current tensor; more than its size is LM_ERR_INTERNAL. */
lm_status lm_gguf_stream_write(lm_gguf_stream *out, const void *p, uint64_t n, lm_err *err);

/* Atomic: PATH.tmp.<pid> written and fsynced, renamed over PATH, directory fsynced. */
lm_status lm_gguf_write_file(const lm_gguf_writer *w, const char *path, lm_err *err);
/* The whole file in one lm_malloc'd buffer (lm_free). */
lm_status lm_gguf_write_buffer(const lm_gguf_writer *w, void **out, size_t *len, lm_err *err);

#endif
