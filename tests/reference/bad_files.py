"""Writes broken model files for the command-line error tests (test_cli.cpp).

Each case is a model argument that must make `edgewise info` print one line
`edgewise: error: ...` naming the file and the problem, and exit with status 1 (no crash).
Cases are derived from a tiny GPT-2 that transformers writes, and from the default GGUF.
Output: <out>/cases.json, a list of {name, args, env, expect: [substrings]}.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=96, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    good = os.path.join(out, "good")
    GPT2LMHeadModel(cfg).save_pretrained(good, safe_serialization=True)
    st = os.path.join(good, "model.safetensors")
    raw = open(st, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + hlen].decode()
    cases = []

    def variant(name, files=None, config=None):
        d = os.path.join(out, name)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config if config is not None else cfg.to_dict(), f)
        for fname, data in (files or {}).items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
        return d

    def case(name, arg, expect, env=None):
        cases.append({"name": name, "args": ["info", arg], "env": env or {}, "expect": expect})

    d = variant("truncated", {"model.safetensors": raw[: len(raw) // 2]})
    case("truncated safetensors", d, [os.path.join(d, "model.safetensors"), "past the end"])

    d = variant("header_past_end", {"model.safetensors": struct.pack("<Q", 1 << 40) + raw[8:]})
    case("header length past the end", d, [os.path.join(d, "model.safetensors"), "header"])

    bad_dtype = header.replace('"F32"', '"Q7X"', 1)
    assert len(bad_dtype) == len(header)
    d = variant("unknown_dtype", {"model.safetensors": raw[:8] + bad_dtype.encode() + raw[8 + hlen :]})
    case("unknown dtype", d, [os.path.join(d, "model.safetensors"), "Q7X"])

    sd = load_file(st)
    sd_shape = dict(sd)
    sd_shape["transformer.h.0.mlp.c_fc.weight"] = sd["transformer.h.0.mlp.c_fc.weight"].t().contiguous()
    d = variant("wrong_shape")
    save_file(sd_shape, os.path.join(d, "model.safetensors"))
    case("wrong tensor shape", d, [os.path.join(d, "model.safetensors"), "h.0.mlp.c_fc.weight", "shape"])

    sd_missing = {k: v for k, v in sd.items() if k != "transformer.h.1.attn.c_proj.weight"}
    d = variant("missing_tensor")
    save_file(sd_missing, os.path.join(d, "model.safetensors"))
    case("missing tensor", d, [os.path.join(d, "model.safetensors"), "h.1.attn.c_proj.weight", "missing"])

    conf = cfg.to_dict()
    conf["model_type"] = "mamba"
    d = variant("unsupported_arch", {"model.safetensors": raw}, config=conf)
    case("unsupported architecture", d, [os.path.join(d, "config.json"), "mamba", "unsupported"])

    d = variant("pickle_dir")
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    case("pickled checkpoint directory", d, [d, "pickle"])
    case("pickled checkpoint file", os.path.join(d, "pytorch_model.bin"),
         [os.path.join(d, "pytorch_model.bin"), "pickle"])

    empty_home = os.path.join(out, "empty_hf_home")
    os.makedirs(os.path.join(empty_home, "hub"))
    case("missing hub id", "nobody-here/no-such-model", ["nobody-here/no-such-model", "cache"],
         env={"HF_HOME": empty_home, "HF_HUB_CACHE": ""})

    case("missing path", os.path.join(out, "does_not_exist.gguf"), ["does_not_exist.gguf", "no such file"])

    gguf_path = os.environ.get("EDGEWISE_DEFAULT_MODEL") or os.path.expanduser(
        os.path.join(os.environ.get("EDGEWISE_HOME", "~/.cache/edgewise"), "models",
                     "SmolLM2-135M-Instruct.Q4_1.gguf"))
    if os.path.exists(gguf_path):
        with open(gguf_path, "rb") as f:
            head = f.read(4 << 20)
        for name, cut in (("gguf_truncated_metadata", 200_000), ("gguf_truncated_data", 4 << 20)):
            p = os.path.join(out, name + ".gguf")
            with open(p, "wb") as f:
                f.write(head[:cut])
            case(name.replace("_", " "), p, [p, "truncated"])
        p = os.path.join(out, "gguf_bad_magic.gguf")
        with open(p, "wb") as f:
            f.write(b"GGUX" + head[4:1024])
        case("gguf bad magic", p, [p, "magic"])
    else:
        print(f"default model not found at {gguf_path}: GGUF cases skipped", file=sys.stderr)

    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"{len(cases)} bad-file cases written to {out}")


if __name__ == "__main__":
    main()
