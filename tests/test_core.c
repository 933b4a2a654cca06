/* test_core.c — checked arithmetic, error messages, allocation fault injection, files, JSON. */
#include "core/alloc.h"
#include "core/checked.h"
#include "core/file.h"
#include "core/json.h"
#include "core/status.h"
#include "test.h"

#include <string.h>

static void test_checked(void) {
    uint64_t r = 0;
    T_CHECK(lm_add_u64(1, 2, &r) && r == 3, "1+2=%llu", (unsigned long long)r);
    T_CHECK(!lm_add_u64(UINT64_MAX, 1, &r), "overflow not detected");
    T_CHECK(!lm_mul_u64(UINT64_MAX / 2 + 1, 2, &r), "mul overflow not detected");
    T_CHECK(lm_pad_u64(33, 32, &r) && r == 64, "pad 33 -> %llu", (unsigned long long)r);
    T_CHECK(lm_pad_u64(64, 32, &r) && r == 64, "pad 64 -> %llu", (unsigned long long)r);
    T_CHECK(!lm_pad_u64(UINT64_MAX - 3, 32, &r), "pad overflow not detected");
    T_CHECK(!lm_pad_u64(10, 24, &r), "non power of two alignment accepted");
    T_CHECK(!lm_pad_u64(10, 0, &r), "zero alignment accepted");
}

static void test_err(void) {
    lm_err e;
    lm_err_clear(&e);
    T_CHECK(lm_err_set(&e, LM_ERR_FORMAT, "bad %s\n%d", "field", 7) == LM_ERR_FORMAT, "ret");
    T_CHECK(strcmp(e.msg, "bad field?7") == 0, "msg '%s'", e.msg);
    lm_err_set(&e, LM_ERR_IO, "second");
    T_CHECK(e.code == LM_ERR_FORMAT, "first error must win");
    lm_err_prefix(&e, "gguf");
    T_CHECK(strcmp(e.msg, "gguf: bad field?7") == 0, "prefixed '%s'", e.msg);
    T_CHECK(lm_err_set(NULL, LM_ERR_IO, "x") == LM_ERR_IO, "NULL err");
}

static void test_alloc_injection(void) {
    lm_alloc_fail_after(2, 0);
    void *a = lm_malloc(8), *b = lm_malloc(8), *c = lm_malloc(8);
    T_CHECK(a && !b && c, "transient: %p %p %p", a, b, c);
    lm_free(a);
    lm_free(c);
    lm_alloc_fail_after(1, 1);
    a = lm_malloc(8);
    b = lm_malloc(8);
    T_CHECK(!a && !b && lm_alloc_injected_failures() == 2, "persistent");
    lm_alloc_fail_after(0, 0);
    a = lm_calloc(SIZE_MAX / 2, 4);
    T_CHECK(!a, "calloc overflow must fail");
}

static void test_files(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/atomic.bin", t_tmpdir());
    lm_err e;
    lm_err_clear(&e);
    T_REQUIRE(lm_file_write_atomic(path, "hello", 5, &e) == LM_OK, "%s", e.msg);
    T_REQUIRE(lm_file_write_atomic(path, "world!", 6, &e) == LM_OK, "%s", e.msg);
    lm_mapped_file mf;
    T_REQUIRE(lm_file_map(path, &mf, &e) == LM_OK, "%s", e.msg);
    T_CHECK(mf.size == 6 && memcmp(mf.data, "world!", 6) == 0, "content");
    lm_file_unmap(&mf);
    char *buf;
    size_t n;
    T_CHECK(lm_file_read_all(path, 5, &buf, &n, &e) == LM_ERR_FORMAT, "cap not enforced");
    lm_err_clear(&e);
    T_REQUIRE(lm_file_read_all(path, 100, &buf, &n, &e) == LM_OK, "%s", e.msg);
    T_CHECK(n == 6 && strcmp(buf, "world!") == 0, "read_all");
    lm_free(buf);
    lm_err_clear(&e);
    T_CHECK(lm_file_map("/nonexistent/x", &mf, &e) == LM_ERR_IO && strstr(e.msg, "nonexistent"),
            "missing file: %s", e.msg);
    lm_err_clear(&e);
    T_CHECK(lm_file_map(t_tmpdir(), &mf, &e) == LM_ERR_IO, "directory mapped");
}

static void test_json(void) {
    lm_err e;
    json_t *j;
    lm_err_clear(&e);
    const char *ok = "{\"a\": [1, 2, {\"b\": \"c\"}]}";
    T_REQUIRE(lm_json_parse(ok, strlen(ok), 8, "t", &j, &e) == LM_OK, "%s", e.msg);
    json_decref(j);
    const char *dup = "{\"a\": 1, \"a\": 2}";
    T_CHECK(lm_json_parse(dup, strlen(dup), 8, "t", &j, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "duplicate"), "dup: %s", e.msg);
    lm_err_clear(&e);
    char deep[2001];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    deep[2000] = 0;
    T_CHECK(lm_json_parse(deep, 2000, 64, "t", &j, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "nesting"), "deep: %s", e.msg);
    lm_err_clear(&e);
    const char *str_brackets = "{\"k\": \"[[[[[[[[[[[[\"}";
    T_CHECK(lm_json_parse(str_brackets, strlen(str_brackets), 2, "t", &j, &e) == LM_OK,
            "brackets in strings counted: %s", e.msg);
    json_decref(j);
    lm_err_clear(&e);
    T_CHECK(lm_json_parse("{\"a\":\0}", 7, 8, "t", &j, &e) == LM_ERR_FORMAT, "NUL accepted");
    lm_err_clear(&e);
    const char *big = "{\"model_max_length\": 1000000000000000019884624838656, \"n\": 3}";
    T_REQUIRE(lm_json_parse(big, strlen(big), 8, "t", &j, &e) == LM_OK, "big int: %s", e.msg);
    T_CHECK(json_is_real(json_object_get(j, "model_max_length")) &&
                json_number_value(json_object_get(j, "n")) == 3.0,
            "big integers read as reals");
    json_decref(j);
    lm_err_clear(&e);
    T_CHECK(lm_json_parse("{\"a\":", 5, 8, "t", &j, &e) == LM_ERR_FORMAT &&
                strstr(e.msg, "line"), "truncated: %s", e.msg);
}

int main(void) {
    T_RUN(test_checked);
    T_RUN(test_err);
    T_RUN(test_alloc_injection);
    T_RUN(test_files);
    T_RUN(test_json);
    return t_finish();
}
