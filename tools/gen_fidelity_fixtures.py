#!/usr/bin/env python3
"""Generates the fidelity fixtures: tiny random-weight models of each supported decoder family,
built and run with Hugging Face `transformers` (the reference implementation), saved as an HF
directory (config.json + model.safetensors + tokenizer.json) together with the reference logits
for fixed token sequences.

Run where `torch`, `transformers` and `tokenizers` are installed (the lent GPU machine has them;
the models are tiny, so this runs on its CPU in float32):
    python3 tools/gen_fidelity_fixtures.py OUT_DIR
Then convert each directory to GGUF here with tools/convert_fixture_gguf.py.

Per model OUT_DIR/<name>/:
    config.json, model.safetensors, tokenizer.json, tokenizer_config.json  (save_pretrained)
    reference.json   {"arch", "sequences": [[ids...], ...], "n_vocab", "transformers", "torch"}
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


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    torch.manual_seed(SEED)
    tok = make_tokenizer(320)
    V = tok.get_vocab_size()
    rng = np.random.default_rng(SEED)
    text_ids = tok.encode("Hello, world! The quick brown fox: 3.14159 🙂").ids
    T = 24
    seqs = [[0] + text_ids[: T - 1], rng.integers(2, V, size=T).tolist()]
    seqs = [s + rng.integers(2, V, size=T - len(s)).tolist() for s in seqs]
    for name, (cfg, cls) in configs(V).items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        torch.manual_seed(SEED)
        model = cls(cfg).to(torch.float32).eval()
        randomize(model, name == "gemma3")
        model.save_pretrained(d, safe_serialization=True)
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>",
                                                    eos_token="<|eos|>")
        fast.save_pretrained(d)
        logits = []
        with torch.no_grad():
            for s in seqs:
                ids = torch.tensor([s])
                logits.append(model(ids, use_cache=False).logits[0].float().numpy())
        arr = np.stack(logits).astype("<f4")
        arr.tofile(os.path.join(d, "logits.f32"))
        meta = {"arch": name, "sequences": seqs, "n_vocab": V, "shape": list(arr.shape),
                "transformers": transformers.__version__, "torch": torch.__version__,
                "text_ids_of": ["Hello, world! The quick brown fox: 3.14159 🙂", text_ids]}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(name, "logits", arr.shape, "range", float(arr.min()), float(arr.max()),
              "argmax[0][:8]", arr[0].argmax(-1)[:8].tolist())
        for fn in sorted(os.listdir(d)):
            print("   ", fn, os.path.getsize(os.path.join(d, fn)))


if __name__ == "__main__":
    main()
