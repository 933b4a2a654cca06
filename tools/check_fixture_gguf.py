#!/usr/bin/env python3
"""Checks a converted fidelity fixture: a plain numpy forward pass over DIR/model-f32.gguf, written
from the GGUF conventions (GGML "normal" RoPE on adjacent pairs for llama, NEOX RoPE on halves
for qwen2/qwen3/gemma3; Gemma's norms already hold 1 + w; RoPE scaling as llama.cpp applies
it: rope_freqs.weight divisors, rope.scaling.type linear / yarn with ggml's correction dims,
ramp and magnitude, on the global layers only), must reproduce the transformers logits in
DIR/logits.f32. This validates tools/convert_fixture_gguf.py, independently of lemma.
Directories without a GGUF (YaRN with truncate false) are skipped.
    python3 tools/check_fixture_gguf.py tests/data/fidelity/llama ...
"""
import json, math, os, sys

import numpy as np
import gguf


def load(path):
    r = gguf.GGUFReader(path)
    T = {t.name: np.array(t.data, dtype=np.float32).reshape(list(reversed(t.shape.tolist())))
         for t in r.tensors}
    F = {}
    for k, f in r.fields.items():
        if f.types and f.types[0] in (gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32):
            F[k] = f.parts[-1][0].item()
        elif f.types == [gguf.GGUFValueType.STRING]:
            F[k] = f.parts[-1].tobytes().decode()
    return T, F


def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * w


def rope_scaling(T, F, arch, D):
    """(per-pair multipliers of the angle, cos/sin factor) of the global layers."""
    p = lambda k, d=None: F.get(f"{arch}.{k}", d)
    mult = np.ones(D // 2)
    if "rope_freqs.weight" in T:
        mult /= T["rope_freqs.weight"].astype(np.float64)
    ty, factor = p("rope.scaling.type", "none"), p("rope.scaling.factor", 1.0)
    mscale = p("rope.scaling.attn_factor", 1.0)
    if ty == "linear":
        mult /= factor
    elif ty == "yarn":
        base, orig = p("rope.freq_base"), p("rope.scaling.original_context_length")
        corr = lambda r: D * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(base))
        low = max(math.floor(corr(p("rope.scaling.yarn_beta_fast", 32.0))), 0)
        high = min(math.ceil(corr(p("rope.scaling.yarn_beta_slow", 1.0))), D - 1)
        ramp = 1 - np.clip((np.arange(D // 2) - low) / max(0.001, high - low), 0, 1)
        mult *= (1 - ramp) / factor + ramp
        mscale *= p("rope.scaling.yarn_attn_factor", 0.1 * math.log(factor) + 1)
    return mult, mscale


def rope(x, pos, base, neox, mult=None, mscale=1.0):  # x: (T, H, D)
    D = x.shape[-1]
    inv = base ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    if mult is not None: inv = inv * mult
    ang = pos[:, None].astype(np.float64) * inv[None, :]          # (T, D/2)
    c, s = mscale * np.cos(ang)[:, None, :], mscale * np.sin(ang)[:, None, :]
    if neox:
        a, b = x[..., : D // 2], x[..., D // 2:]
        return np.concatenate([a * c - b * s, a * s + b * c], -1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = a * c - b * s, a * s + b * c
    return out


def forward(T, F, ids):
    arch = F["general.architecture"]
    p = lambda k: F[f"{arch}.{k}"]
    L, H, Hkv, eps = p("block_count"), p("attention.head_count"), p("attention.head_count_kv"), \
        p("attention.layer_norm_rms_epsilon")
    D = p("attention.key_length")
    gemma = arch == "gemma3"
    x = T["token_embd.weight"][ids].astype(np.float64)
    if gemma: x = x * math.sqrt(x.shape[-1])
    n = len(ids)
    pos = np.arange(n)
    scaling = rope_scaling(T, F, arch, D)
    for i in range(L):
        b = lambda k: T.get(f"blk.{i}.{k}")
        h = rms(x, b("attn_norm.weight"), eps)
        q, k, v = h @ b("attn_q.weight").T, h @ b("attn_k.weight").T, h @ b("attn_v.weight").T
        if b("attn_q.bias") is not None:
            q, k, v = q + b("attn_q.bias"), k + b("attn_k.bias"), v + b("attn_v.bias")
        q, k, v = q.reshape(n, H, D), k.reshape(n, Hkv, D), v.reshape(n, Hkv, D)
        if b("attn_q_norm.weight") is not None:
            q, k = rms(q, b("attn_q_norm.weight"), eps), rms(k, b("attn_k_norm.weight"), eps)
        is_global = (not gemma) or (i + 1) % F.get(f"{arch}.attention.sliding_window_pattern",
                                                   6) == 0
        base = p("rope.freq_base") if is_global else 10000.0
        mult, ms = scaling if is_global else (None, 1.0)
        q, k = (rope(q, pos, base, arch != "llama", mult, ms),
                rope(k, pos, base, arch != "llama", mult, ms))
        mask = pos[None, :] <= pos[:, None]
        if gemma and not is_global:
            mask &= pos[:, None] - pos[None, :] < p("attention.sliding_window")
        out = np.zeros((n, H, D))
        for hh in range(H):
            kv = hh // (H // Hkv)
            s = q[:, hh] @ k[:, kv].T / math.sqrt(D)
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh] = s @ v[:, kv]
        a = out.reshape(n, H * D) @ b("attn_output.weight").T
        if gemma: a = rms(a, b("post_attention_norm.weight"), eps)
        x = x + a
        h = rms(x, b("ffn_norm.weight"), eps)
        g, u = h @ b("ffn_gate.weight").T, h @ b("ffn_up.weight").T
        if gemma:
            act = 0.5 * g * (1 + np.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
        else:
            act = g / (1 + np.exp(-g))
        m = (act * u) @ b("ffn_down.weight").T
        if gemma: m = rms(m, b("post_ffw_norm.weight"), eps)
        x = x + m
    x = rms(x, T["output_norm.weight"], eps)
    out_w = T.get("output.weight", T["token_embd.weight"])
    return x @ out_w.T


if __name__ == "__main__":
    bad = 0
    for d in sys.argv[1:]:
        if not os.path.exists(os.path.join(d, "model-f32.gguf")):
            print(f"{d}: no GGUF, skipped")
            continue
        ref = json.load(open(os.path.join(d, "reference.json")))
        logits = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").reshape(ref["shape"])
        T, F = load(os.path.join(d, "model-f32.gguf"))
        for si, seq in enumerate(ref["sequences"]):
            got = forward(T, F, np.array(seq))
            diff = np.abs(got - logits[si]).max()
            rng = logits[si].max() - logits[si].min()
            same = (got.argmax(-1) == logits[si].argmax(-1)).all()
            ok = diff <= 1e-3 * rng and same
            bad += not ok
            print(f"{d} seq {si}: max|diff| {diff:.2e} (range {rng:.1f}) argmax equal {same}",
                  "ok" if ok else "MISMATCH")
    sys.exit(1 if bad else 0)
