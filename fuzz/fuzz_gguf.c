/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader.
 *
 * Opens the input with small limits, then walks everything an opened file offers: every kv
 * through every typed getter, the string/array accessors, nested array elements and the JSON
 * renderer; every tensor (its first and last data byte are read, so ASan catches a table entry
 * pointing outside the input) and the name lookup. Invariants an open file must satisfy are
 * checked with __builtin_trap (a crash is a finding).
 */
#include "core/alloc.h"
#include "core/status.h"
#include "format/gguf.h"

#include <stdint.h>
#include <string.h>

static volatile uint8_t sink;

static void walk_value(const lm_gguf_value *v, int depth) {
    lm_err e;
    if (v->type != LM_GGUF_TYPE_ARRAY || depth > 8) return;
    uint64_t n = v->n < 16 ? v->n : 16;
    for (uint64_t j = 0; j < n; j++) {
        lm_gguf_value el;
        lm_err_clear(&e);
        if (lm_gguf_value_arr_elem(v, j, &el, &e) != LM_OK) __builtin_trap();
        if (el.size) sink ^= el.data[el.size - 1];
        uint64_t u;
        int64_t i;
        double d;
        lm_err_clear(&e);
        (void)lm_gguf_value_u64(&el, "x", &u, &e);
        lm_err_clear(&e);
        (void)lm_gguf_value_i64(&el, "x", &i, &e);
        lm_err_clear(&e);
        (void)lm_gguf_value_f64(&el, "x", &d, &e);
        walk_value(&el, depth + 1);
    }
    lm_err_clear(&e);
    lm_gguf_value el;
    if (lm_gguf_value_arr_elem(v, v->n, &el, &e) == LM_OK) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_gguf_limits lim = lm_gguf_default_limits();
    lim.max_string_len = 1 << 16;
    lim.max_array_elems = 1 << 16;
    lim.max_kv = 256;
    lim.max_tensors = 256;
    lim.max_array_depth = 4;
    lim.max_name_len = 64;
    lm_gguf *g = NULL;
    lm_err e;
    lm_err_clear(&e);
    if (lm_gguf_open_buffer(data, size, &lim, &g, &e) != LM_OK) {
        if (g || e.code == LM_OK || !e.msg[0]) __builtin_trap();
        return 0;
    }
    for (uint64_t i = 0; i < lm_gguf_n_kv(g); i++) {
        const char *key = lm_gguf_key(g, i);
        if (!key || !key[0] || lm_gguf_find(g, key) != (int64_t)i) __builtin_trap();
        uint32_t u32;
        uint64_t u64;
        int32_t i32;
        int64_t i64;
        float f;
        double d;
        int b;
        const char *s;
        size_t n;
        const void *arr;
        uint64_t cnt;
        lm_err_clear(&e);
        (void)lm_gguf_get_u32(g, key, &u32, &e);
        lm_err_clear(&e);
        (void)lm_gguf_get_u64(g, key, &u64, &e);
        lm_err_clear(&e);
        (void)lm_gguf_get_i32(g, key, &i32, &e);
        lm_err_clear(&e);
        (void)lm_gguf_get_i64(g, key, &i64, &e);
        lm_err_clear(&e);
        (void)lm_gguf_get_f32(g, key, &f, &e);
        lm_err_clear(&e);
        (void)lm_gguf_get_f64(g, key, &d, &e);
        lm_err_clear(&e);
        (void)lm_gguf_get_bool(g, key, &b, &e);
        lm_err_clear(&e);
        if (lm_gguf_get_str(g, key, &s, &n, &e) == LM_OK && n) sink ^= (uint8_t)s[n - 1];
        for (int t = 0; t < LM_GGUF_TYPE_COUNT; t++) {
            lm_err_clear(&e);
            if (lm_gguf_get_arr(g, key, (lm_gguf_type)t, &arr, &cnt, &e) == LM_OK && cnt)
                sink ^= ((const uint8_t *)arr)[cnt * lm_gguf_type_size((lm_gguf_type)t) - 1];
        }
        uint64_t an = lm_gguf_arr_n(g, i);
        for (uint64_t j = 0; j < an && j < 64; j++) {
            if (lm_gguf_arr_str(g, i, j, &s, &n) == LM_OK && n) sink ^= (uint8_t)s[n - 1];
            float fv = lm_gguf_arr_get_f32(g, i, j);
            uint32_t bits;
            memcpy(&bits, &fv, 4);
            sink ^= (uint8_t)bits;
            sink ^= (uint8_t)lm_gguf_arr_get_i32(g, i, j);
            sink ^= (uint8_t)lm_gguf_arr_get_u32(g, i, j);
        }
        if (an && lm_gguf_arr_type(g, i) == LM_GGUF_TYPE_STRING &&
            lm_gguf_arr_str(g, i, an - 1, &s, &n) != LM_OK)
            __builtin_trap();
        lm_gguf_value v;
        lm_err_clear(&e);
        if (lm_gguf_kv_value(g, i, &v, &e) != LM_OK) __builtin_trap();
        walk_value(&v, 0);
        char *js = lm_gguf_value_to_json(g, i, 8);
        if (!js) __builtin_trap();
        lm_free(js);
    }
    uint64_t nt = lm_gguf_n_tensors(g);
    for (uint64_t i = 0; i < nt; i++) {
        const lm_tensor_info *t = lm_gguf_tensor(g, i);
        if (!t || lm_gguf_find_tensor(g, t->name) != (int64_t)i) __builtin_trap();
        if (t->nbytes == 0 || t->offset + t->nbytes > size || t->offset % lm_gguf_alignment(g))
            __builtin_trap();
        const uint8_t *p = t->data;
        sink ^= p[0];
        sink ^= p[t->nbytes - 1];
    }
    lm_gguf_close(g);
    return 0;
}
