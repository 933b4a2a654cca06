/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader: arbitrary bytes through
 * lm_st_open_buffer, then every accessor over the resulting table. Any crash, sanitizer report,
 * leak, or a table that breaks the handle's invariants (safetensors.h) is a bug.
 *
 * The input is copied into an exact-size heap buffer so ASan sees any read past its end.
 */
#include "format/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond) {
    if (!cond) __builtin_trap(); /* an invariant of an accepted file does not hold */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    lm_st_limits lim;
    lm_st_default_limits(&lim);
    lim.max_header_bytes = 1 << 20; /* keep single runs fast; the rules are the same */
    lm_st *st = NULL;
    lm_err err;
    lm_err_clear(&err);
    if (lm_st_open_buffer(buf, size, &lim, &st, &err) == LM_OK) {
        uint64_t expect = 8 + lm_st_header_bytes(st);
        volatile uint8_t sink = 0;
        for (uint32_t i = 0; i < lm_st_n_tensors(st); i++) {
            const lm_tensor_info *t = lm_st_tensor(st, i);
            check(lm_st_find(st, t->name) == t);
            check(t->offset == expect && t->n_dims <= LM_MAX_DIMS);
            check(t->offset + t->nbytes <= size);
            expect = t->offset + t->nbytes;
            if (t->nbytes) {
                const uint8_t *p = t->data;
                sink ^= p[0] ^ p[t->nbytes - 1];
            } else {
                check(t->data == NULL);
            }
        }
        check(expect == size);
        for (uint32_t i = 0; i < lm_st_n_metadata(st); i++)
            check(lm_st_metadata_get(st, lm_st_metadata_key(st, i)) ==
                  lm_st_metadata_value(st, i));
        (void)sink;
    } else {
        check(st == NULL && err.code != LM_OK && err.msg[0] != '\0');
    }
    lm_st_close(st);
    free(buf);
    return 0;
}
