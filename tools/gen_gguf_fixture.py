#!/usr/bin/env python3
"""Writes tests/data/gguf/python_fixture.gguf with the independent `gguf` Python package
(the one llama.cpp ships), so lemma's reader is checked against a file it did not write.

Every value below is asserted, literally, in tests/test_gguf.c (test_python_fixture): keep the
two in sync. Run from the repository root:  python3 tools/gen_gguf_fixture.py
"""
import os

import numpy as np
import gguf
from gguf import GGUFValueType as VT

OUT = os.path.join("tests", "data", "gguf", "python_fixture.gguf")


def main():
    w = gguf.GGUFWriter(OUT, arch="testarch")  # writes general.architecture = "testarch"
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 1.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo wörld ✓")
    w.add_uint64("t.u64", 18000000000000000000)
    w.add_int64("t.i64", -9000000000000000000)
    w.add_float64("t.f64", 3.141592653589793)
    w.add_array("t.arr_i32", [1, -2, 3])                       # int -> INT32
    w.add_key_value("t.arr_f32", [0.5, 1.5, -2.25], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_array("t.arr_str", ["a", "", "ünï"])
    w.add_array("t.nested", [[1, 2], [3]])                    # ARRAY of ARRAY of INT32
    # tensors: ggml shape is the reverse of the numpy shape
    w.add_tensor("t.f32", np.arange(6, dtype=np.float32).reshape(2, 3))   # ne = {3, 2}
    w.add_tensor("t.f16", np.array([1.0, -2.0, 0.5, 4.0], dtype=np.float16))  # ne = {4}
    q = np.arange(34, dtype=np.uint8)                           # one Q8_0 block of 32 weights
    w.add_tensor("t.q8", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
