/* test.c — see test.h. */
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int t_cur_failed, t_cur_skipped;
int t_passed, t_failed, t_skipped;
const char *t_cur_name;

void t_run(const char *name, void (*fn)(void)) {
    t_cur_failed = 0;
    t_cur_skipped = 0;
    t_cur_name = name;
    fn();
    if (t_cur_failed) {
        t_failed++;
        printf("FAIL %s (%d checks)\n", name, t_cur_failed);
    } else if (t_cur_skipped) {
        t_skipped++;
        printf("skip %s\n", name);
    } else {
        t_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

int t_finish(void) {
    printf("RESULT %d %d %d\n", t_passed, t_failed, t_skipped);
    return t_failed ? 1 : 0;
}

const char *t_shared_path(const char *rel) {
    static char buf[4096];
    const char *base = getenv("LM_SHARED");
    if (!base || !*base) base = "../shared";
    snprintf(buf, sizeof buf, "%s/%s", base, rel);
    return buf;
}

const char *t_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/lemma-test-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

const char *t_gunzip(const char *gz, const char *name) {
    static char out[1024];
    char cmd[2600];
    snprintf(out, sizeof out, "%s/%s", t_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s.part' && mv '%s.part' '%s'", gz, out, out, out);
    return system(cmd) == 0 ? out : NULL;
}

const char *t_vocab_gguf(const char *name) {
    static char out[1024];
    char gz[1024], file[256];
    snprintf(file, sizeof file, "ggml-vocab-%s.gguf", name);
    snprintf(out, sizeof out, "%s/%s", t_tmpdir(), file);
    if (access(out, R_OK) == 0) return out;
    snprintf(gz, sizeof gz, "%s/%s.gz", t_shared_path("testdata/vocab"), file);
    if (access(gz, R_OK) != 0) {
        snprintf(gz, sizeof gz, "%s/%s.gz", t_shared_path("testdata/vocab/llama.cpp-v0.4.0"), file);
        if (access(gz, R_OK) != 0) return NULL;
    }
    const char *p = t_gunzip(gz, file);
    if (!p) return NULL;
    snprintf(out, sizeof out, "%s", p);
    return out;
}

static unsigned long long t_state = 0x9E3779B97F4A7C15ull;
void t_srand(unsigned long long seed) { t_state = seed ? seed : 0x9E3779B97F4A7C15ull; }
unsigned long long t_rand_u64(void) {
    unsigned long long x = t_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return t_state = x;
}
float t_rand_f32(float lo, float hi) {
    return lo + (hi - lo) * (float)((t_rand_u64() >> 40) * (1.0 / 16777216.0));
}
