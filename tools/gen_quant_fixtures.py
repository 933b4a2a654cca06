#!/usr/bin/env python3
"""gen_quant_fixtures.py — builds tests/data/quant/*.bin, the fixtures that tests/test_quant.c
checks lemma's scalar quant reference against.

The independent implementation is the `gguf` Python package (gguf-py, llama.cpp's own Python
reader/writer, numpy code per type). Where gguf-py has no code for a type (Q8_1, Q8_K: activation
formats ggml never stores in files) this script computes the expected values itself with numpy,
following GGML's formulas; the script's output marks those "(numpy)".

Two kinds of fixture, both little-endian:

  <type>.bin   dequantization: random-but-valid blocks (random bytes, with the half scales
               replaced by finite values: mostly uniform in [-1, 1], some random finite bit
               patterns including subnormals and +-0) and the f32 values gguf-py decodes them to.
  <type>_q.bin quantization (BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 from gguf-py, whose
               quantizers mirror ggml's *_ref ones, which lemma follows bit for bit; Q8_1 and
               Q8_K from numpy as above): random f32 rows (gaussian blocks of
               varied scale, all-zero blocks, constant blocks, tiny values) and the bytes
               gguf-py quantizes them to.

Layout of each file:
  0  char[4]  magic "LMQF"
  4  u32      version = 1
  8  u32      kind: 0 = dequant (blocks then f32), 1 = quant (f32 then blocks)
  12 u32      GGML type id
  16 u32      number of blocks
  20 u32      bytes per block
  24 u32      elements per block
  28 ...      payload: dequant: blocks, then n_blocks * elems f32; quant: f32 first, then blocks

Each file stays under 20 KB. Deterministic (fixed seed): rerunning reproduces the same bytes for
the same gguf-py version. Usage: python3 tools/gen_quant_fixtures.py [outdir]
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES, quants

MAX_BYTES = 20000
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "quant")

rng = np.random.default_rng(20261126)


def rand_half_bits(n):
    """Finite half scales: 3/4 uniform in [-1, 1], 1/4 random finite bit patterns."""
    u = rng.uniform(-1.0, 1.0, n).astype(np.float16).view(np.uint16)
    bits = rng.integers(0, 0x10000, n, dtype=np.uint32).astype(np.uint16)
    bits = np.where((bits & 0x7C00) == 0x7C00, bits & 0x83FF, bits)  # inf/NaN -> subnormal
    pick = rng.random(n) < 0.25
    out = np.where(pick, bits, u).astype(np.uint16)
    if n >= 4:
        out[0], out[1], out[2] = 0x0000, 0x8000, 0x0001  # +0, -0, smallest subnormal
    return out


# Byte offsets of the half scales in each block (format facts, see docs/formats/quant.md).
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q8_1: [0, 2],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0], T.IQ4_XS: [0],
}


def sizes(qt):
    # gguf-py still lists Q8_1 with the old 40-byte block (f32 d and s); ggml's block_q8_1 has
    # been two halves + 32 int8 = 36 bytes for a long time, and lemma's dtype table says 36.
    return (32, 36) if qt == T.Q8_1 else GGML_QUANT_SIZES[qt]


def n_blocks_for(bs, ts):
    return max(1, min(64, (MAX_BYTES - 64) // (ts + 4 * bs)))


def random_blocks(qt, nb):
    bs, ts = sizes(qt)
    raw = rng.integers(0, 256, (nb, ts), dtype=np.uint16).astype(np.uint8)
    for off in HALF_FIELDS.get(qt, []):
        raw[:, off:off + 2] = rand_half_bits(nb).view(np.uint8).reshape(nb, 2)
    if qt == T.Q8_K:
        raw[:, 0:4] = rng.uniform(-1, 1, nb).astype(np.float32).view(np.uint8).reshape(nb, 4)
    if qt == T.MXFP4:
        e = rng.integers(0, 200, nb).astype(np.uint8)
        e[:4] = [0, 1, 2, 127][: min(4, nb)]  # the two subnormal scales, the first normal, 1/2
        raw[:, 0] = e
    if qt == T.F16:
        raw = rand_half_bits(nb).view(np.uint8).reshape(nb, 2)
    if qt == T.BF16:
        b = rng.integers(0, 0x10000, nb, dtype=np.uint32).astype(np.uint16)
        b = np.where((b & 0x7F80) == 0x7F80, b & 0x807F, b)  # no inf/NaN
        raw = b.view(np.uint8).reshape(nb, 2)
    return raw


def numpy_dequant(qt, raw):
    nb = raw.shape[0]
    if qt == T.Q8_1:  # half d, half s, int8 qs[32]: x = qs * d
        d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
        q = raw[:, 4:].copy().view(np.int8).astype(np.float32)
        return (q * d).reshape(nb * 32)
    if qt == T.Q8_K:  # f32 d, int8 qs[256], int16 bsums[16]: x = d * qs
        d = raw[:, 0:4].copy().view(np.float32)
        q = raw[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(nb * 256)
    raise ValueError(qt)


def write(path, kind, qt, nb, bs, ts, first, second):
    data = struct.pack("<4s6I", b"LMQF", 1, kind, int(qt), nb, ts, bs) + first + second
    assert len(data) < MAX_BYTES + 1024, (path, len(data))
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def gen_dequant(qt, source):
    bs, ts = sizes(qt)
    nb = n_blocks_for(bs, ts) if bs > 1 else 2048
    raw = random_blocks(qt, nb)
    if source == "gguf":
        exp = quants.dequantize(raw.reshape(-1) if bs == 1 else raw.reshape(1, -1), qt)
        exp = np.asarray(exp, dtype=np.float32).reshape(-1)
    else:
        exp = numpy_dequant(qt, raw)
    assert exp.size == nb * bs
    assert np.all(np.isfinite(exp)), qt.name
    name = qt.name.lower().replace("_k", "_K")
    n = write(os.path.join(OUT, name + ".bin"), 0, qt, nb, bs, ts, raw.tobytes(),
              exp.astype("<f4").tobytes())
    print(f"{name}.bin: {nb} blocks, {n} bytes ({source})")


def quant_input(nb, bs):
    """Rows that exercise the quantizers: gaussian with varied scales, zeros, constants, tiny."""
    x = rng.standard_normal((nb, bs)).astype(np.float32)
    scale = (10.0 ** rng.uniform(-3, 2, (nb, 1))).astype(np.float32)
    x *= scale
    x[0] = 0.0                                  # all-zero block
    x[1] = 0.75                                 # positive constant
    x[2] = -1.5                                 # negative constant
    x[3] *= np.float32(1e-6)                    # tiny values
    x[4, :] = 0.0
    x[4, 5] = -3.0                              # a single outlier
    x[5] = rng.uniform(-1, 1, bs).astype(np.float32)
    return x


def q8_1_numpy(x):
    """GGML's quantize_row_q8_1_ref: d = amax/127, q = roundf(x/d), s = half(d * sum(q))."""
    amax = np.abs(x).max(axis=1, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = quants.np_roundf((x * idv).astype(np.float32)).astype(np.int8)
    s = (q.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d).astype(np.float32)
    return np.concatenate([d.astype(np.float16).view(np.uint8), s.astype(np.float16).view(np.uint8),
                           q.view(np.uint8)], axis=1)


def q8_K_numpy(x):
    """GGML's quantize_row_q8_K_ref: iscale = -127/max (max = signed largest magnitude),
    q = min(127, rint(iscale*x)) (ties to even), d = 1/iscale (f32), bsums per 16."""
    nb = x.shape[0]
    out = np.zeros((nb, 292), dtype=np.uint8)
    for i in range(nb):
        row = x[i]
        j = int(np.argmax(np.abs(row)))
        mx = row[j]
        if mx == 0:
            continue
        iscale = np.float32(-127.0) / np.float32(mx)
        q = np.minimum(127, np.rint((iscale * row).astype(np.float32))).astype(np.int8)
        bs = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        d = np.float32(1.0) / iscale
        out[i, 0:4] = np.array([d], dtype=np.float32).view(np.uint8)
        out[i, 4:260] = q.view(np.uint8)
        out[i, 260:292] = bs.view(np.uint8)
    return out


def gen_quant(qt, source):
    bs, ts = sizes(qt)
    nb = n_blocks_for(bs, ts) if bs > 1 else 2048
    x = quant_input(nb, bs) if bs > 1 else rng.standard_normal(nb).astype(np.float32)
    if source == "gguf":
        q = quants.quantize(x.reshape(1, -1), qt).reshape(-1)
        q = np.ascontiguousarray(q).view(np.uint8)
    elif qt == T.Q8_1:
        q = q8_1_numpy(x)
    else:
        q = q8_K_numpy(x)
    q = q.reshape(-1)
    assert q.size == nb * ts
    name = qt.name.lower().replace("_k", "_K")
    n = write(os.path.join(OUT, name + "_q.bin"), 1, qt, nb, bs, ts,
              x.astype("<f4").tobytes(), q.tobytes())
    print(f"{name}_q.bin: {nb} blocks, {n} bytes ({source})")


def main():
    os.makedirs(OUT, exist_ok=True)
    for qt in (T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K,
               T.Q5_K, T.Q6_K, T.IQ4_NL, T.IQ4_XS, T.MXFP4):
        gen_dequant(qt, "gguf")
    for qt in (T.Q8_1, T.Q8_K):
        gen_dequant(qt, "numpy")
    for qt in (T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.MXFP4):
        gen_quant(qt, "gguf")
    for qt in (T.Q8_1, T.Q8_K):
        gen_quant(qt, "numpy")


if __name__ == "__main__":
    main()
