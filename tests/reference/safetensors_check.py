"""Reads the safetensors file test_util.cpp wrote with edgewise's writer, using the `safetensors`
library (Hugging Face's reader, the peer every model loader uses): every tensor's dtype, shape and
values, and the metadata, against the values the test wrote (restated here independently)."""
import argparse
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

ap = argparse.ArgumentParser()
ap.add_argument("--file", required=True)
path = ap.parse_args().file

t = load_file(path)
expect = {
    "a": np.array([[0.0, 0.5, 1.0], [1.5, 2.0, 2.5]], dtype=np.float32),
    "b": np.array([-1, 2, 1 << 40, 7], dtype=np.int64),
    "c": np.array([1, 2, 255], dtype=np.uint8),
    "e": np.array(3.25, dtype=np.float64),
    "z": np.zeros((0,), dtype=np.float32),
}
bad = []
if sorted(t) != sorted(expect):
    bad.append(f"tensor names {sorted(t)} != {sorted(expect)}")
for k, v in expect.items():
    if k not in t:
        continue
    if t[k].dtype != v.dtype or t[k].shape != v.shape or not np.array_equal(t[k], v):
        bad.append(f"{k}: got {t[k].dtype} {t[k].shape} {t[k]!r}, want {v.dtype} {v.shape} {v!r}")
with safe_open(path, framework="numpy") as f:
    md = f.metadata()
if md != {"format": "edgewise-test", "note": "written by test_util"}:
    bad.append(f"metadata {md}")
if bad:
    print("safetensors_check: " + "; ".join(bad))
    sys.exit(1)
print(f"safetensors_check: {path}: 5 tensors and metadata read by safetensors match")
