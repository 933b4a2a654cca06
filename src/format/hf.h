/*
 * hf.h — a Hugging Face model directory: config.json plus safetensors weights, either one
 * model.safetensors or shards listed by model.safetensors.index.json, merged into one
 * validated tensor table. Also the MLX affine packs of mlx-lm's quantized checkpoints.
 *
 * Directory layout read:
 *     config.json                         JSON object (<= 16 MiB)
 *     model.safetensors                   preferred when present, else
 *     model.safetensors.index.json        {"metadata": {...}, "weight_map": {"tensor": "shard"}}
 *     <shard>.safetensors ...             every shard named by weight_map
 *     tokenizer.json, tokenizer_config.json, chat_template.jinja   (optional, paths only)
 *
 * Invariants of an open handle: every shard is a valid safetensors file (safetensors.h);
 * shard names are plain file names in the directory (no '/', '\', "..", control characters);
 * weight_map and the shards agree exactly (each mapped tensor is in its shard, each shard
 * tensor is mapped to that shard); tensor names are unique across the model. Entries'
 * file_index is the shard number (shards numbered in name order; 0 for a single file).
 */
#ifndef LM_FORMAT_HF_H
#define LM_FORMAT_HF_H

#include "core/status.h"
#include "format/safetensors.h"
#include "format/tensor_info.h"

#include <jansson.h>
#include <stdint.h>

#define LM_HF_MAX_CONFIG_BYTES (16u << 20)
#define LM_HF_MAX_INDEX_BYTES (64u << 20)
#define LM_HF_MAX_SHARDS 4096u

typedef struct lm_hf lm_hf;

lm_status lm_hf_open(const char *dir, lm_hf **out, lm_err *err);
void lm_hf_close(lm_hf *hf); /* NULL is fine */

uint32_t lm_hf_n_tensors(const lm_hf *hf);
/* i-th tensor (shard by shard, each in file order), NULL when out of range. */
const lm_tensor_info *lm_hf_tensor(const lm_hf *hf, uint32_t i);
const lm_tensor_info *lm_hf_find(const lm_hf *hf, const char *name);

/* The parsed config.json (an object; owned by hf: do not decref). */
const json_t *lm_hf_config(const lm_hf *hf);
/* config "model_type" and "architectures"[0], NULL when absent or not strings. */
const char *lm_hf_model_type(const lm_hf *hf);
const char *lm_hf_architecture(const lm_hf *hf);
/* Full paths of optional files, NULL when absent. */
const char *lm_hf_tokenizer_path(const lm_hf *hf);        /* tokenizer.json */
const char *lm_hf_tokenizer_config_path(const lm_hf *hf); /* tokenizer_config.json */
const char *lm_hf_chat_template_path(const lm_hf *hf);    /* chat_template.jinja */

/* Weight files: count, file name (relative to the directory) and handle of shard i. */
uint32_t lm_hf_n_files(const lm_hf *hf);
const char *lm_hf_file_name(const lm_hf *hf, uint32_t i);
const lm_st *lm_hf_file(const lm_hf *hf, uint32_t i);

/* An MLX affine-quantized weight (layout in tensor/mlx.h). */
typedef struct lm_mlx_pack {
    int bits;       /* 2, 3, 4, 5, 6 or 8 */
    int group_size; /* 32, 64 or 128 */
    lm_dtype dtype; /* LM_DTYPE_MLX_Q<bits> */
    uint64_t rows;  /* out (all outer dims of the weight multiplied, for stacked experts) */
    uint64_t cols;  /* in: logical elements per row */
    const lm_tensor_info *weight; /* U32 [.., rows, cols * bits / 32] */
    const lm_tensor_info *scales; /* F16/BF16/F32 [.., rows, cols / group_size] */
    const lm_tensor_info *biases; /* same dtype and shape as scales */
} lm_mlx_pack;

/* Describes weight_name ("M.weight") as an MLX pack, reading config "quantization" (or an
 * MLX-style "quantization_config": no "quant_method") with per-module overrides keyed by M.
 * LM_ERR_NOT_FOUND when the model or M is not quantized (or the tensor is absent); a format
 * error naming the tensor when the pack is inconsistent. */
lm_status lm_hf_mlx_pack(const lm_hf *hf, const char *weight_name, lm_mlx_pack *out,
                         lm_err *err);

#endif
