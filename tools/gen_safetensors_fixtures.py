#!/usr/bin/env python3
"""Writes the small safetensors / HF / MLX fixtures of tests/test_safetensors.c and
tests/test_hf.c into tests/data/safetensors/, with expected values computed here by
independent implementations (the Rust-backed `safetensors` writer, numpy, ml_dtypes, mlx).

    pip install safetensors numpy ml_dtypes mlx mlx-cpu    # mlx-cpu: the Linux CPU backend
    python3 tools/gen_safetensors_fixtures.py

Outputs (< 1 MB together; deterministic except the order of __metadata__ keys in
dtypes.safetensors, which the Rust writer keeps in a hash map):
  dtypes.safetensors + dtypes.json   one tensor per safetensors dtype, a rank-0 scalar, an empty
                                     tensor, a rank-4 tensor, __metadata__; the JSON sidecar has
                                     each tensor's dtype, shape, data_offsets (read back from the
                                     written header) and values (raw bytes in hex for F8)
  hf_sharded/                        config.json, model.safetensors.index.json, two shards,
                                     tokenizer_config.json, expected.json
  mlx_q/                             an mlx-lm style quantized checkpoint made by mlx itself
                                     (mx.quantize + mx.save_safetensors): bits 2,3,4,5,6,8 x group
                                     sizes 32/64 with f32/f16/bf16 scales, per-module overrides,
                                     one module marked false; expected.json holds mx.dequantize
"""
import json
import os
import struct
import sys

import ml_dtypes
import numpy as np
import safetensors
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "safetensors")


def header_offsets(path):
    """data_offsets as the file says, parsed here with Python's json (not the C reader)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    return {k: v["data_offsets"] for k, v in h.items() if k != "__metadata__"}


# header dtype -> the writer's TensorSpec spelling
SPEC_DTYPE = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "U16": "uint16", "U32": "uint32", "U64": "uint64", "BOOL": "bool",
              "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def serialize_raw(tensors, path, metadata=None):
    """tensors: name -> (safetensors dtype name, shape, numpy array holding the bytes)."""
    keep = []
    specs = {}
    for name, (dt, shape, arr) in tensors.items():
        arr = np.ascontiguousarray(arr)
        keep.append(arr)
        specs[name] = safetensors.TensorSpec(dtype=SPEC_DTYPE[dt], shape=list(shape),
                                             data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    safetensors.serialize_file(specs, path, metadata)


def gen_dtypes():
    rng = np.random.default_rng(1234)
    t = {}
    exp = {}

    def add(name, st_dtype, arr, values=None, hexbytes=False):
        t[name] = (st_dtype, arr.shape, arr)
        e = {"dtype": st_dtype, "shape": list(arr.shape)}
        if hexbytes:
            e["hex"] = arr.tobytes().hex()
            e["values"] = [float(x) for x in arr.astype(np.float32).ravel()]
        else:
            v = values if values is not None else arr.ravel()
            e["values"] = [x.item() if hasattr(x, "item") else x for x in v]
            if st_dtype in ("U64", "I64"):  # beyond a JSON reader's long long / double
                e["values"] = [str(x) for x in e["values"]]
        exp[name] = e

    add("f64", "F64", rng.standard_normal((2, 3)))
    add("f32", "F32", rng.standard_normal((3, 2)).astype(np.float32))
    add("f16", "F16", rng.standard_normal((2, 2, 2)).astype(np.float16))
    bf = rng.standard_normal((5,)).astype(ml_dtypes.bfloat16)
    add("bf16", "BF16", bf, values=[float(x) for x in bf.astype(np.float32)])
    add("i64", "I64", np.array([-(2**62), -1, 0, 2**62 + 3], dtype=np.int64))
    add("i32", "I32", np.array([[-2**31, 7], [2**31 - 1, -5]], dtype=np.int32))
    add("i16", "I16", np.array([-32768, 32767, 12], dtype=np.int16))
    add("i8", "I8", np.array([-128, 127, 0, -1], dtype=np.int8))
    add("u8", "U8", np.array([0, 1, 254, 255], dtype=np.uint8))
    add("u16", "U16", np.array([0, 65535, 300], dtype=np.uint16))
    add("u32", "U32", np.array([[0, 4294967295], [123456789, 1]], dtype=np.uint32))
    add("u64", "U64", np.array([0, 2**64 - 1, 2**40 + 5], dtype=np.uint64))
    add("bool", "BOOL", np.array([True, False, True], dtype=np.bool_))
    add("f8_e4m3", "F8_E4M3", np.array([0.5, -2.0, 448.0, 0.015625], dtype=ml_dtypes.float8_e4m3fn),
        hexbytes=True)
    add("f8_e5m2", "F8_E5M2", np.array([1.0, -0.25, 57344.0, 3.0], dtype=ml_dtypes.float8_e5m2),
        hexbytes=True)
    add("scalar", "F32", np.array(3.25, dtype=np.float32))
    add("empty", "F32", np.zeros((0, 3), dtype=np.float32))
    add("rank4", "I8", np.arange(2 * 1 * 3 * 2, dtype=np.int8).reshape(2, 1, 3, 2))

    path = os.path.join(OUT, "dtypes.safetensors")
    serialize_raw(t, path, {"format": "pt", "note": "lemma fixture"})
    offs = header_offsets(path)
    for k in exp:
        exp[k]["data_offsets"] = offs[k]
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
    side = {"header_bytes": n, "file_bytes": os.path.getsize(path),
            "metadata": {"format": "pt", "note": "lemma fixture"}, "tensors": exp}
    with open(os.path.join(OUT, "dtypes.json"), "w") as f:
        json.dump(side, f, indent=1, sort_keys=True)


def gen_sharded():
    d = os.path.join(OUT, "hf_sharded")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    shards = {
        "model-00001-of-00002.safetensors": {
            "model.embed_tokens.weight": rng.standard_normal((16, 8)).astype(np.float32),
            "model.layers.0.attn.q_proj.weight": rng.standard_normal((8, 8)).astype(np.float16),
        },
        "model-00002-of-00002.safetensors": {
            "model.layers.0.mlp.up_proj.weight": rng.standard_normal((12, 8)).astype(np.float32),
            "model.norm.weight": np.ones(8, dtype=np.float32),
            "lm_head.weight": rng.standard_normal((16, 8)).astype(np.float16),
        },
    }
    weight_map = {}
    expected = {}
    for i, (fname, ts) in enumerate(sorted(shards.items())):
        save_file(ts, os.path.join(d, fname), metadata={"format": "pt"})
        for k, v in ts.items():
            weight_map[k] = fname
            expected[k] = {"file_index": i, "shape": list(v.shape),
                           "dtype": "F32" if v.dtype == np.float32 else "F16",
                           "first": float(v.ravel()[0]), "last": float(v.ravel()[-1])}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1,
                  sort_keys=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                   "hidden_size": 8, "vocab_size": 16}, f, indent=1)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>"}, f)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


def gen_mlx():
    import mlx.core as mx

    d = os.path.join(OUT, "mlx_q")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(99)
    sdtypes = [mx.float32, mx.float16, mx.bfloat16]
    sname = {mx.float32: "F32", mx.float16: "F16", mx.bfloat16: "BF16"}
    default = {"group_size": 64, "bits": 4}
    quant = dict(default)
    tensors = {}
    expected = {}
    i = 0
    for bits in (2, 3, 4, 5, 6, 8):
        for gs in (32, 64):
            mod = "model.layers.%d.proj" % i
            sd = sdtypes[i % 3]
            rows, cols = 3, 128
            w = mx.array(rng.standard_normal((rows, cols)).astype(np.float32)).astype(sd)
            wq, s, b = mx.quantize(w, group_size=gs, bits=bits)
            tensors[mod + ".weight"] = wq
            tensors[mod + ".scales"] = s
            tensors[mod + ".biases"] = b
            # reference dequant in f32 from the stored scales/biases (MLX's own routine)
            deq = mx.dequantize(wq, s.astype(mx.float32), b.astype(mx.float32), group_size=gs,
                                bits=bits)
            if {"group_size": gs, "bits": bits} != default:
                quant[mod] = {"group_size": gs, "bits": bits}
            expected[mod + ".weight"] = {
                "bits": bits, "group_size": gs, "rows": rows, "cols": cols,
                "scale_dtype": sname[sd], "packed_words": int(wq.shape[1]),
                "values": [float(x) for x in np.array(deq).ravel()]}
            i += 1
    # a module left in float by an explicit override, and a float norm
    tensors["lm_head.weight"] = mx.array(rng.standard_normal((4, 64)).astype(np.float32))
    quant["lm_head"] = False
    tensors["model.norm.weight"] = mx.ones((64,), dtype=mx.float32)
    mx.eval(list(tensors.values()))
    mx.save_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "mlx"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                   "quantization": quant, "quantization_config": quant}, f, indent=1)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, sort_keys=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    gen_dtypes()
    gen_sharded()
    gen_mlx()
    total = 0
    for root, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print("fixtures: %d bytes in %s" % (total, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
