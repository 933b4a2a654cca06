/*
 * model_path.h — short model names: `-m smollm2` instead of models/smollm2-...gguf.
 *
 * One helper shared by lm_model_load (engine.c) and lm_vocab_load (api/text.c), so that every
 * command and API user resolves names the same way. A path that exists, or that contains a
 * '/', is used as given; otherwise it names an installed model in the models directory
 * ($LEMMA_MODELS, default ./models):
 *   1. an entry equal to NAME.gguf or NAME (case-insensitive), else
 *   2. the one .gguf file or directory whose name starts with NAME (case-insensitive).
 * No match → LM_ERR_NOT_FOUND, several → LM_ERR_INVALID_ARG; both messages list the
 * candidates (the installed models, or the matching ones).
 */
#ifndef LM_CORE_MODEL_PATH_H
#define LM_CORE_MODEL_PATH_H

#include "core/status.h"

/* *resolved = NULL when path is to be used as given, else a path to free with lm_free. */
lm_status lm_model_path_resolve(const char *path, char **resolved, lm_err *err);

#endif
