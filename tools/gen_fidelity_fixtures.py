#!/usr/bin/env python3
"""Generates the fidelity fixtures: tiny random-weight models of each supported decoder family,
built and run with Hugging Face `transformers` (the reference implementation), saved as an HF
directory (config.json + model.safetensors + tokenizer.json) together with the reference logits
for fixed token sequences.

Run where `torch`, `transformers` and `tokenizers` are installed (the lent GPU machine has them;
the models are tiny, so this runs on its CPU in float32):
    python3 tools/gen_fidelity_fixtures.py OUT_DIR [NAME ...]
(no NAME: every fixture). Then convert each directory to GGUF here with
tools/convert_fixture_gguf.py.

Fixtures: one per family with plain RoPE (llama, qwen2, qwen3, gemma3), and the RoPE scaling
kinds, with sizes chosen so that the scaling changes the logits of the 24-token sequences:
    llama-llama3        Llama 3 ("llama3": factor 8, low/high_freq_factor 1/4, original
                        context 64): with theta 1e4 and head_dim 16, pair 0 is kept, pairs 1-2
                        are smoothed and pairs 3-7 divided by 8 (all three branches)
    qwen2-yarn          YaRN, factor 4, original context 16 (< 24 tokens), defaults otherwise
    qwen3-yarn          YaRN with head_dim 32, theta 1e4, original context 32, beta_fast 16,
                        beta_slow 2 (a fractional ramp value) and an explicit attention_factor
    qwen3-yarn-notrunc  YaRN with truncate false (fractional correction dims; no GGUF: the
                        format has no key for it)
    gemma3-linear       linear scaling (factor 8) of the global layer only, 2 layers (sliding,
                        global)
For a scaled fixture the logits are also computed with the same weights and the scaling
removed (and, for truncate false, with truncation); reference.json records how much they
differ ("variants": max|diff| / logit range), so a fixture that does not exercise its scaling
is visible. It also records the inverse frequencies and attention scaling transformers
computed ("rope").

Per model OUT_DIR/<name>/:
    config.json, model.safetensors, tokenizer.json, tokenizer_config.json  (save_pretrained)
    reference.json   {"arch", "fixture", "sequences": [[ids...], ...], "n_vocab", "shape",
                      "transformers", "torch", "rope", "variants"}
    logits.f32       float32 little-endian, shape (n_sequences, T, n_vocab), row-major
Weights are re-drawn after construction so activations are O(1) (the default init of 0.02
makes logits nearly uniform, which would make argmax comparisons meaningless).
"""
import json, os, sys

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SEED = 1234
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! lemma runs language models on CPUs and GPUs.",
    "def add(a, b):\n    return a + b\n",
    "Ünïcödé tëxt, 日本語のテキスト, and emoji 🙂 all appear here.",
    "Numbers: 3.14159, 2718, 1e-5, 42.",
] * 20


def make_tokenizer(vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|bos|>", "<|eos|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def randomize(model, gemma):
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                # RMSNorm weights: around 1 (Gemma stores w with the 1 added at run time)
                base = 0.0 if gemma else 1.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                # small enough that the layers, not the input embedding, decide the logits
                # (Gemma multiplies embeddings by sqrt(hidden) = 8)
                p.copy_((0.125 if gemma else 0.3) * torch.randn(p.shape, generator=g))
            elif "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)


def rope_type_of(cfg):
    rp = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if "full_attention" in rp:
        rp = rp["full_attention"]
    return rp.get("rope_type", rp.get("type", "default"))


def make_config(cls, rope, **kw):
    """cls(**kw) with RoPE parameters `rope` (transformers 5 "rope_parameters"; for Gemma 3 a
    {"full_attention": ..., "sliding_attention": ...} pair), falling back to the older
    rope_theta / rope_scaling / rope_local_base_freq arguments."""
    want = (rope.get("full_attention", rope)).get("rope_type", "default")
    try:
        cfg = cls(**kw, rope_parameters=rope)
        if rope_type_of(cfg) == want:
            return cfg
        print("  rope_parameters not taken:", getattr(cfg, "rope_parameters", None))
    except Exception as e:  # older transformers
        print("  rope_parameters argument refused:", repr(e))
    full, local = rope.get("full_attention", rope), rope.get("sliding_attention")
    old = dict(kw, rope_theta=full["rope_theta"])
    if local is not None:
        old["rope_local_base_freq"] = local["rope_theta"]
    if want != "default":
        old["rope_scaling"] = {k: v for k, v in full.items() if k != "rope_theta"}
    cfg = cls(**old)
    assert rope_type_of(cfg) == want, (want, cfg)
    return cfg


def configs(V):
    common = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, bos_token_id=0,
                  eos_token_id=1, pad_token_id=None)
    return {
        "llama": (transformers.LlamaConfig(**common, num_hidden_layers=2, rms_norm_eps=1e-5,
                                           rope_theta=10000.0, tie_word_embeddings=False,
                                           attention_bias=False, mlp_bias=False),
                  transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config(**common, num_hidden_layers=2, rms_norm_eps=1e-6,
                                           rope_theta=1000000.0, tie_word_embeddings=True,
                                           use_sliding_window=False),
                  transformers.Qwen2ForCausalLM),
        "qwen3": (transformers.Qwen3Config(**common, num_hidden_layers=2, head_dim=16,
                                           rms_norm_eps=1e-6, rope_theta=1000000.0,
                                           tie_word_embeddings=True, use_sliding_window=False,
                                           attention_bias=False),
                  transformers.Qwen3ForCausalLM),
        # 7 layers: 0-4 sliding (window 8 < sequence length), 5 global, 6 sliding
        "gemma3": (transformers.Gemma3TextConfig(**common, num_hidden_layers=7, head_dim=16,
                                                 rms_norm_eps=1e-6, rope_theta=1000000.0,
                                                 rope_local_base_freq=10000.0, sliding_window=8,
                                                 layer_types=["sliding_attention"] * 5
                                                 + ["full_attention", "sliding_attention"],
                                                 query_pre_attn_scalar=16,
                                                 final_logit_softcapping=None,
                                                 attn_logit_softcapping=None,
                                                 hidden_activation="gelu_pytorch_tanh",
                                                 tie_word_embeddings=True),
                   transformers.Gemma3ForCausalLM),
    }


def scaled_configs(V):
    """name -> (family, class, config kwargs without RoPE, RoPE parameters, variants): each
    variant is other RoPE parameters whose logits must differ measurably."""
    common = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, bos_token_id=0, eos_token_id=1, pad_token_id=None,
                  num_hidden_layers=2)
    llama = dict(common, max_position_embeddings=512, rms_norm_eps=1e-5,
                 tie_word_embeddings=False, attention_bias=False, mlp_bias=False)
    qwen2 = dict(common, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False)
    qwen3 = dict(common, rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                 attention_bias=False, head_dim=32)
    gemma3 = dict(common, max_position_embeddings=512, head_dim=16, rms_norm_eps=1e-6,
                  sliding_window=8, layer_types=["sliding_attention", "full_attention"],
                  query_pre_attn_scalar=16, final_logit_softcapping=None,
                  attn_logit_softcapping=None, hidden_activation="gelu_pytorch_tanh",
                  tie_word_embeddings=True)
    plain = lambda theta: {"rope_type": "default", "rope_theta": theta}
    yarn_nt = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
               "original_max_position_embeddings": 32, "truncate": False}
    yarn_t = {k: v for k, v in yarn_nt.items() if k != "truncate"}
    return {
        "llama-llama3": ("llama", transformers.LlamaForCausalLM, transformers.LlamaConfig, llama,
                         {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64},
                         {"unscaled": plain(10000.0)}),
        "qwen2-yarn": ("qwen2", transformers.Qwen2ForCausalLM, transformers.Qwen2Config,
                       dict(qwen2, max_position_embeddings=64),
                       {"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                        "original_max_position_embeddings": 16},
                       {"unscaled": plain(1000000.0)}),
        "qwen3-yarn": ("qwen3", transformers.Qwen3ForCausalLM, transformers.Qwen3Config,
                       dict(qwen3, max_position_embeddings=128),
                       {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                        "original_max_position_embeddings": 32, "beta_fast": 16.0,
                        "beta_slow": 2.0, "attention_factor": 1.25},
                       {"unscaled": plain(10000.0)}),
        "qwen3-yarn-notrunc": ("qwen3", transformers.Qwen3ForCausalLM, transformers.Qwen3Config,
                               dict(qwen3, max_position_embeddings=128), yarn_nt,
                               {"unscaled": plain(10000.0), "truncated": yarn_t}),
        "gemma3-linear": ("gemma3", transformers.Gemma3ForCausalLM,
                          transformers.Gemma3TextConfig, gemma3,
                          {"full_attention": {"rope_type": "linear", "rope_theta": 1000000.0,
                                              "factor": 8.0},
                           "sliding_attention": plain(10000.0)},
                          {"unscaled": {"full_attention": plain(1000000.0),
                                        "sliding_attention": plain(10000.0)}}),
    }


def run(model, seqs):
    out = []
    with torch.no_grad():
        for s in seqs:
            out.append(model(torch.tensor([s]), use_cache=False).logits[0].float().numpy())
    return np.stack(out).astype("<f4")


def rope_of(model):
    """The inverse frequencies and cos/sin scaling transformers' rotary embeddings hold."""
    r = {}
    for name, b in model.named_buffers():
        if "inv_freq" in name and "original" not in name:
            r[name] = b.float().tolist()
    for mname, m in model.named_modules():
        for k, v in vars(m).items():
            if "attention_scaling" in k and isinstance(v, (int, float)):
                r[f"{mname}.{k}"] = float(v)
    return r


def rel_diff(a, b):
    return float(max(np.abs(a[s] - b[s]).max() / (b[s].max() - b[s].min())
                     for s in range(len(b))))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    only = set(sys.argv[2:])
    torch.manual_seed(SEED)
    tok = make_tokenizer(320)
    V = tok.get_vocab_size()
    rng = np.random.default_rng(SEED)
    text_ids = tok.encode("Hello, world! The quick brown fox: 3.14159 🙂").ids
    T = 24
    seqs = [[0] + text_ids[: T - 1], rng.integers(2, V, size=T).tolist()]
    seqs = [s + rng.integers(2, V, size=T - len(s)).tolist() for s in seqs]
    jobs = []
    for name, (cfg, cls) in configs(V).items():
        jobs.append((name, name, cls, lambda cfg=cfg: cfg, {}))
    for name, (fam, cls, ccls, kw, rope, variants) in scaled_configs(V).items():
        mk = lambda rp, ccls=ccls, kw=kw: make_config(ccls, rp, **kw)
        jobs.append((name, fam, cls, lambda mk=mk, rope=rope: mk(rope),
                     {vn: (lambda mk=mk, rp=rp: mk(rp)) for vn, rp in variants.items()}))
    for name, fam, cls, make, variants in jobs:
        if only and name not in only:
            continue
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        cfg = make()
        torch.manual_seed(SEED)
        model = cls(cfg).to(torch.float32).eval()
        randomize(model, fam == "gemma3")
        model.save_pretrained(d, safe_serialization=True)
        gc = os.path.join(d, "generation_config.json")  # written for some configs; not read
        if os.path.exists(gc):
            os.remove(gc)
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>",
                                                    eos_token="<|eos|>")
        fast.save_pretrained(d)
        arr = run(model, seqs)
        arr.tofile(os.path.join(d, "logits.f32"))
        meta = {"arch": fam, "fixture": name, "sequences": seqs, "n_vocab": V,
                "shape": list(arr.shape), "transformers": transformers.__version__,
                "torch": torch.__version__,
                "text_ids_of": ["Hello, world! The quick brown fox: 3.14159 🙂", text_ids]}
        if variants:
            meta["rope"] = rope_of(model)
            meta["variants"] = {}
            for vn, vmake in variants.items():
                other = cls(vmake()).to(torch.float32).eval()
                other.load_state_dict(model.state_dict())
                diff = rel_diff(run(other, seqs), arr)
                meta["variants"][vn] = diff
                print(f"  {name}: logits with {vn} RoPE differ by {diff:.3g} of the range",
                      "" if diff > 1e-2 else "-- TOO SMALL, the fixture does not test it")
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(name, "logits", arr.shape, "range", float(arr.min()), float(arr.max()),
              "argmax[0][:8]", arr[0].argmax(-1)[:8].tolist())
        if variants:
            print("  rope", json.dumps(meta["rope"]))
        for fn in sorted(os.listdir(d)):
            print("   ", fn, os.path.getsize(os.path.join(d, fn)))


if __name__ == "__main__":
    main()
