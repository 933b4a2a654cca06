/*
 * identity.h — the identity of a loaded model (docs/formats/store.md §2): what a saved session
 * and a page key depend on, so state is never used with a model it was not made with.
 *
 * weights   digest of every tensor's bytes; the expensive part, so it is cached on disk per
 *           model file (keyed by path, device, inode, size, mtime; docs/formats/store.md §6)
 *           and computed once per process;
 * arch      architecture name + every hyperparameter of the forward pass + the tensor table;
 * tokenizer the tokenizer definition; chat_template the template text.
 * The KV geometry fields (kv_dtype, page_tokens, n_layer, kv_dim) and kv_id are filled by the
 * caller per page size (lm_identity_kv_id).
 */
#ifndef LM_ENGINE_IDENTITY_H
#define LM_ENGINE_IDENTITY_H

#include "core/status.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "model/arch.h"
#include "store/manifest.h"

typedef struct lm_identity_src {
    const lm_gguf *gguf;         /* the model file, or */
    const lm_hf *hf;             /* the Hugging Face directory (exactly one is set) */
    const lm_hparams *hp;
    const char *arch_name;       /* "llama", "gemma3", ... */
    const char *chat_template;   /* NUL-terminated, NULL = none */
    const char *path;            /* the file / directory that gguf / hf was opened from: the
                                    key of the weights digest caches (on disk and in this
                                    process); NULL = no caching, the digest is computed */
} lm_identity_src;

/* Fills out->weights, arch, tokenizer, chat_template (other fields untouched). Uses and
 * refreshes the on-disk digest cache; a cache that cannot be read or written is ignored (the
 * digest is computed), never an error. */
lm_status lm_identity_compute(const lm_identity_src *src, lm_identity *out, lm_err *err);

/* The cache directory ($LEMMA_CACHE_DIR, $XDG_CACHE_HOME/lemma, $HOME/.cache/lemma) into buf;
 * 0 when none can be formed. */
int lm_identity_cache_dir(char *buf, size_t len);

#endif
