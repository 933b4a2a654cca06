/*
 * fuzz_tokenizer_json.c — libFuzzer target for the Hugging Face tokenizer.json reader.
 *
 * Input: the bytes of a tokenizer.json; when they contain the separator line "\n#config\n",
 * what follows is tokenizer_config.json. The reader must reject anything malformed with an
 * error (never crash, leak or read out of bounds); when it accepts the document (NFC/NFKC
 * normalizers allowed, as the public API loads them), a fixed text
 * (scripts, digits, whitespace runs, special-token spellings, invalid UTF-8) is encoded with
 * every add_special / parse_special combination, every id must be in range, and the ids are
 * decoded again.
 */
#include "core/alloc.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char k_text[] =
    "Hello, world! I'm 12345 caf\xC3\xA9 \xCE\xB1\xCE\xB2 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80"
    "  \t\n\r\n <|im_start|>[CLS]<s></s><unk> ab a b \xFF\xC3 \xE2\x96\x81x";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json = (const char *)data, *cfg = NULL;
    size_t len = size, cfg_len = 0;
    static const char sep[] = "\n#config\n";
    const char *s = size >= sizeof sep - 1 ? memmem(data, size, sep, sizeof sep - 1) : NULL;
    if (s) {
        len = (size_t)(s - json);
        cfg = s + sizeof sep - 1;
        cfg_len = size - len - (sizeof sep - 1);
    }
    lm_tokenizer *tk = NULL;
    lm_err err = {0};
    lm_hf_info info;
    if (lm_tokenizer_from_hf_json_text_ex(json, len, cfg, cfg_len, &tk, &info, &err) != LM_OK) {
        if (tk || err.msg[0] == '\0') abort(); /* failures leave nothing and say why */
        return 0;
    }
    size_t nv = lm_tokenizer_n_vocab(tk);
    char *text = NULL;
    size_t tl = 0;
    if (lm_hf_normalize(info.norm, k_text, sizeof k_text - 1, &text, &tl, &err) != LM_OK) {
        lm_tokenizer_free(tk);
        return 0;
    }
    for (int mode = 0; mode < 4; mode++) {
        int32_t *ids = NULL;
        size_t n = 0;
        lm_err e = {0};
        if (lm_tokenizer_encode(tk, k_text, sizeof k_text - 1, mode & 1, mode >> 1, &ids, &n, &e) ==
            LM_OK) {
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || (size_t)ids[i] >= nv) abort();
            char *out = NULL;
            size_t ol = 0;
            if (lm_tokenizer_decode(tk, ids, n, (unsigned)mode, &out, &ol, &e) != LM_OK &&
                e.code != LM_ERR_NOMEM)
                abort(); /* in-range ids always decode */
            lm_free(out);
        }
        lm_free(ids);
    }
    lm_free(text);
    lm_tokenizer_free(tk);
    return 0;
}
