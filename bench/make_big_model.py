"""Writes a randomly initialised Llama-3-8B-shaped checkpoint (bf16 safetensors, sharded, with an
index) for the memory and time benchmark of docs/SCALING.md: 32 layers, width 4096, 32 query /
8 key-value heads of 128, MLP 14336, vocabulary 128256, untied embeddings — 8.03 B parameters,
16.06 GB. Not a trained model: its circuits mean nothing, its costs are the real model's.

    .venv/bin/python bench/make_big_model.py OUT_DIR [--layers 32] [--tokenizer DIR]

The tokenizer (tokenizer.json, or vocab.json + merges.txt) is copied from --tokenizer (default:
the model_golden fixture's GPT-2, build/golden/model_golden/gpt2, made by ctest), whose 50,257
ids index the first rows of the 128,256-row embedding, as a padded vocabulary does. Weights are
N(0, 0.02) (norms 1), drawn with a fixed seed per tensor. A fixture tool: nothing here computes
what edgewise reports.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--layers", type=int, default=32)
p.add_argument("--width", type=int, default=4096)
p.add_argument("--heads", type=int, default=32)
p.add_argument("--kv-heads", type=int, default=8)
p.add_argument("--mlp", type=int, default=14336)
p.add_argument("--vocab", type=int, default=128256)
p.add_argument("--tokenizer", default=os.path.join("build", "golden", "model_golden", "gpt2"))
a = p.parse_args()

os.makedirs(a.out, exist_ok=True)
dh = a.width // a.heads
cfg = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.width,
    "intermediate_size": a.mlp, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
    "num_key_value_heads": a.kv_heads, "head_dim": dh, "vocab_size": a.vocab, "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0, "max_position_embeddings": 8192, "hidden_act": "silu",
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 50256, "eos_token_id": 50256,
    "attention_bias": False, "mlp_bias": False,
}
json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
    src = os.path.join(a.tokenizer, name)
    if os.path.exists(src):
        shutil.copy(src, os.path.join(a.out, name))

seed = [0]


def rand(*shape, std=0.02):
    g = torch.Generator().manual_seed(seed[0])
    seed[0] += 1
    return (torch.randn(*shape, generator=g) * std).to(torch.bfloat16)


shards = []  # one per group of 4 layers, plus the embeddings
shards.append({"model.embed_tokens.weight": rand(a.vocab, a.width), "lm_head.weight": rand(a.vocab, a.width),
               "model.norm.weight": torch.ones(a.width, dtype=torch.bfloat16)})
weight_map = {}
n_files = 1 + (a.layers + 3) // 4


def write(i, tensors):
    name = f"model-{i + 1:05d}-of-{n_files:05d}.safetensors"
    save_file(tensors, os.path.join(a.out, name), metadata={"format": "pt"})
    for k in tensors:
        weight_map[k] = name
    print(f"wrote {name}: {sum(t.numel() for t in tensors.values()) / 1e9:.2f} B parameters", flush=True)


write(0, shards[0])
shards.clear()
for g0 in range(0, a.layers, 4):
    t = {}
    for l in range(g0, min(a.layers, g0 + 4)):
        p_ = f"model.layers.{l}."
        t[p_ + "input_layernorm.weight"] = torch.ones(a.width, dtype=torch.bfloat16)
        t[p_ + "post_attention_layernorm.weight"] = torch.ones(a.width, dtype=torch.bfloat16)
        t[p_ + "self_attn.q_proj.weight"] = rand(a.heads * dh, a.width)
        t[p_ + "self_attn.k_proj.weight"] = rand(a.kv_heads * dh, a.width)
        t[p_ + "self_attn.v_proj.weight"] = rand(a.kv_heads * dh, a.width)
        t[p_ + "self_attn.o_proj.weight"] = rand(a.width, a.heads * dh)
        t[p_ + "mlp.gate_proj.weight"] = rand(a.mlp, a.width)
        t[p_ + "mlp.up_proj.weight"] = rand(a.mlp, a.width)
        t[p_ + "mlp.down_proj.weight"] = rand(a.width, a.mlp)
    write(1 + g0 // 4, t)
total = sum(os.path.getsize(os.path.join(a.out, f)) for f in set(weight_map.values()))
json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
          open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)
print(f"{a.out}: {total / 1e9:.2f} GB")
