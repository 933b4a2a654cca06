#!/usr/bin/env python3
"""Converts a fidelity fixture (an HF directory written by tools/gen_fidelity_fixtures.py) to GGUF
with the independent `gguf` Python package (PyPI `gguf`, the writer llama.cpp publishes), using
llama.cpp's conventions for tensor names and layouts:
  - names: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_q_norm,
    attn_k_norm, ffn_norm, ffn_gate, ffn_up, ffn_down, post_attention_norm, post_ffw_norm},
    output_norm, output;
  - llama: q/k projection rows permuted from HF's rotate-half order to interleaved pairs (GGML's
    "normal" RoPE); qwen2/qwen3/gemma3 keep HF order (NEOX RoPE);
  - gemma3: 1 is added to every RMSNorm weight (GGUF stores the effective (1 + w) scale);
    layer_types other than 5 sliding to 1 global become attention.sliding_window_pattern
    (u32 period: layer i is global iff (i + 1) % period == 0);
  - RoPE scaling of rope_parameters (of full_attention for gemma3) as convert_hf_to_gguf.py
    writes it: linear -> rope.scaling.type "linear" + factor; yarn -> "yarn" + factor +
    original_context_length (+ yarn_beta_fast / yarn_beta_slow / yarn_attn_factor when the
    config has beta_fast / beta_slow / attention_factor); llama3 -> no metadata, but the
    tensor rope_freqs.weight (f32, head_dim/2) of per-pair divisors, computed in float32 as
    the converter does (its generate_extra_tensors). YaRN with "truncate": false has no GGUF
    key (llama.cpp always truncates), so such a directory is skipped.
Writes DIR/model-f32.gguf, DIR/model-f16.gguf and DIR/model-q8_0.gguf (2-D weights as Q8_0,
1-D tensors F32).
    python3 tools/convert_fixture_gguf.py tests/data/fidelity/llama ...
"""
import json, math, os, sys

import numpy as np
import gguf
from safetensors.numpy import load_file

ARCH = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3_text": "gemma3"}


def hf_to_gguf_name(name, gemma):
    n = name.removeprefix("model.")
    if n == "embed_tokens.weight": return "token_embd.weight"
    if n == "norm.weight": return "output_norm.weight"
    if n == "lm_head.weight" or name == "lm_head.weight": return "output.weight"
    parts = n.split(".")
    assert parts[0] == "layers", name
    i, rest = parts[1], ".".join(parts[2:])
    table = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
        "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
        "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_norm.weight": "attn_q_norm.weight",
        "self_attn.k_norm.weight": "attn_k_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    gemma_norms = {
        "post_attention_layernorm.weight": "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight": "ffn_norm.weight",
        "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
    }
    if rest in table: return f"blk.{i}.{table[rest]}"
    if gemma and rest in gemma_norms: return f"blk.{i}.{gemma_norms[rest]}"
    if rest == "post_attention_layernorm.weight": return f"blk.{i}.ffn_norm.weight"
    raise KeyError(name)


def permute_rows(w, n_head):
    # HF rotate-half order -> interleaved pairs, per head
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def rope_params(cfg):
    rp = cfg.get("rope_parameters") or {}
    return rp.get("full_attention", rp)


def llama3_rope_freqs(rp, head_dim):
    """The divisors llama.cpp's converter writes for rope_type llama3, in float32."""
    f32 = np.float32
    base = rp.get("rope_theta", 10000.0)
    freqs = f32(1.0) / (f32(base) ** (np.arange(0, head_dim, 2, dtype=f32) / f32(head_dim)))
    factor = rp.get("factor", 8.0)
    low, high = rp.get("low_freq_factor", 1.0), rp.get("high_freq_factor", 4.0)
    old = rp.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for freq in freqs:
        wavelen = f32(2 * math.pi) / freq
        if wavelen < f32(high_wavelen):
            out.append(f32(1))
        elif wavelen > f32(low_wavelen):
            out.append(f32(factor))
        else:
            smooth = (f32(old) / wavelen - f32(low)) / f32(high - low)
            out.append(f32(1) / ((f32(1) - smooth) / f32(factor) + smooth))
    return np.array(out, dtype=f32)


def convert(d, variant):
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = ARCH[cfg["model_type"]]
    tensors = load_file(os.path.join(d, "model.safetensors"))
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    w = gguf.GGUFWriter(os.path.join(d, f"model-{variant}.gguf"), arch)
    w.add_name(f"lemma fidelity fixture {arch}")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    rp = cfg["rope_parameters"]
    if arch == "gemma3":
        w.add_rope_freq_base(rp["full_attention"]["rope_theta"])
        w.add_sliding_window(cfg["sliding_window"])
        # layer_types as a period (layer i global iff (i + 1) % period == 0); 6 is the default
        lt = cfg["layer_types"]
        period = next(p for p in range(1, len(lt) + 2)
                      if all((t == "full_attention") == ((i + 1) % p == 0)
                             for i, t in enumerate(lt)))
        if period != 6:
            w.add_sliding_window_pattern(period)
    else:
        w.add_rope_freq_base(rp["rope_theta"])
        w.add_rope_dimension_count(head_dim)
    rp = rope_params(cfg)
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    if rope_type == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rp["factor"])
    elif rope_type == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(rp["factor"])
        w.add_rope_scaling_orig_ctx_len(rp["original_max_position_embeddings"])
        if rp.get("beta_fast") is not None: w.add_rope_scaling_yarn_beta_fast(rp["beta_fast"])
        if rp.get("beta_slow") is not None: w.add_rope_scaling_yarn_beta_slow(rp["beta_slow"])
        if rp.get("attention_factor") is not None:
            w.add_rope_scaling_yarn_attn_factor(rp["attention_factor"])
    elif rope_type == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_rope_freqs(rp, head_dim))
    elif rope_type != "default":
        raise ValueError(f"rope_type {rope_type}")
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type({"f32": 0, "f16": 1, "q8_0": 7}[variant])
    # tokenizer: byte-level BPE with GPT-2 pre-tokenization
    tj = json.load(open(os.path.join(d, "tokenizer.json")))
    vocab = tj["model"]["vocab"]
    toks = [None] * len(vocab)
    for t, i in vocab.items(): toks[i] = t
    special = {a["content"]: a["id"] for a in tj["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(toks)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL
                       for t in toks])
    merges = tj["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_add_bos_token(False)
    for name in sorted(tensors):
        t = tensors[name].astype(np.float32)
        gname = hf_to_gguf_name(name, arch == "gemma3")
        if arch == "llama" and gname.endswith("attn_q.weight"):
            t = permute_rows(t, cfg["num_attention_heads"])
        if arch == "llama" and gname.endswith("attn_k.weight"):
            t = permute_rows(t, cfg["num_key_value_heads"])
        if arch == "gemma3" and gname.endswith("norm.weight"):
            t = t + 1.0
        if t.ndim == 2 and variant == "f16":
            w.add_tensor(gname, t.astype(np.float16))
        elif t.ndim == 2 and variant == "q8_0" and t.shape[1] % 32 == 0:
            q = gguf.quants.quantize(t, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(gname, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    for d in sys.argv[1:]:
        rp = rope_params(json.load(open(os.path.join(d, "config.json"))))
        if rp.get("truncate") is False:
            print(d, "skipped: YaRN truncate false has no GGUF equivalent")
            continue
        for v in ("f32", "f16", "q8_0"):
            convert(d, v)
            print(d, v, os.path.getsize(os.path.join(d, f"model-{v}.gguf")))
