#!/usr/bin/env python3
"""Reference for tests/test_model.cpp: small random-initialised GPT-2, Llama and Qwen2 models
made with transformers, saved as Hugging Face directories, plus their outputs.

Writes into --out:
  gpt2/, llama/, qwen2/      save_pretrained(safe_serialization=True) directories
                             (gpt2/ also has vocab.json + merges.txt from tests/data/gpt2-tokenizer)
  llama_sharded/             the llama model saved in several shards (model.safetensors.index.json),
                             its config.json rewritten in the pre-transformers-5 form
                             (top-level rope_theta, "rope_scaling") so both spellings are exercised
  <name>_golden.safetensors  input_ids [B, T] int64; logits [B, T, V] fp32 (eager attention);
                             hidden_{i} = HF hidden_states[i] (i = 0..n_layers; the last one has
                             the final norm applied); pattern_{l} = HF attention weights [B, H, T, T];
                             ablated_logits = logits with layer ABLATE_LAYER's attention output
                             zeroed by a forward hook; logits_bf16 = the model run in bfloat16
  gguf/{gpt2,llama,qwen2}.gguf  the same weights written as llama.cpp's converter writes them
                             (F32; llama: Q/K rows permuted for llama.cpp's rotary layout and the
                             llama3 scaling as a rope_freqs.weight tensor; gpt2: fused attn_qkv,
                             Conv1D weights transposed to [out, in]; no output.weight when tied),
                             so the GGUF path is checked against the same transformers logits
  broken/                    bad model directories for the command-line tests:
                             unsupported_arch (model_type "mamba"), missing_tensor, wrong_shape,
                             bin_only (a pickled pytorch_model.bin only)
  qwen2_padded/              the qwen2 model with a 256-id byte-level tokenizer.json: an embedding
                             of 1000 rows, 744 of them beyond the tokenizer (as Qwen2.5 pads its
                             vocabulary); manifest "padded": a prompt, its ids (HF `tokenizers`)
                             and the model's top 40 next tokens by transformers, for `run --top-k`
  manifest.json              what was written, with the sizes the C++ test needs

Weights are redrawn with larger scales than transformers' init (std 0.02 gives nearly uniform
attention and tiny logits, which would make the comparison weak).
"""
import argparse
import json
import os
import shutil
import time

import torch
from safetensors.torch import save_file
import transformers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPT2_TOK = os.path.join(ROOT, "tests", "data", "gpt2-tokenizer")
ABLATE_LAYER = 1
B, T = 3, 24


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p.shape[0] if "c_attn" in name or "c_fc" in name or "c_proj" in name else p.shape[-1]
                if "wte" in name or "embed" in name or "wpe" in name or "lm_head" in name:
                    std = 0.5
                else:
                    std = 1.0 / fan_in ** 0.5
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith("weight"):  # norm gains
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:  # biases
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def attn_modules(model):
    if isinstance(model, GPT2LMHeadModel):
        return [blk.attn for blk in model.transformer.h]
    return [layer.self_attn for layer in model.model.layers]


def run(model, ids):
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
    return out


def golden(name, model, vocab, out_dir, seed):
    g = torch.Generator().manual_seed(seed + 1000)
    ids = torch.randint(0, vocab, (B, T), generator=g)
    model.eval()
    out = run(model, ids)
    t = {"input_ids": ids.contiguous(), "logits": out.logits.float().contiguous()}
    for i, h in enumerate(out.hidden_states):
        t[f"hidden_{i}"] = h.contiguous()
    for l, a in enumerate(out.attentions):
        t[f"pattern_{l}"] = a.contiguous()

    # Zero one layer's attention output (the module's first return value) with a forward hook.
    def zero(mod, args, output):
        return (torch.zeros_like(output[0]),) + tuple(output[1:])
    h = attn_modules(model)[ABLATE_LAYER].register_forward_hook(zero)
    with torch.no_grad():
        t["ablated_logits"] = model(ids).logits.float().contiguous()
    h.remove()

    mb = type(model)(model.config)
    mb.load_state_dict(model.state_dict())
    mb = mb.to(torch.bfloat16).eval()
    with torch.no_grad():
        t["logits_bf16"] = mb(ids).logits.float().contiguous()
    save_file(t, os.path.join(out_dir, f"{name}_golden.safetensors"))


def make_gpt2(seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=50257, n_positions=64, n_embd=64, n_layer=3, n_head=4,
                     activation_function="gelu_new", layer_norm_epsilon=1e-5,
                     attn_implementation="eager")
    m = GPT2LMHeadModel(cfg)
    randomise(m, seed)
    m.tie_weights()
    return m


def make_llama(seed):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, tie_word_embeddings=False,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 64},
                      bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    m = LlamaForCausalLM(cfg)
    randomise(m, seed)
    return m


def make_qwen2(seed):
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
                      rms_norm_eps=1e-6, tie_word_embeddings=True,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    m = Qwen2ForCausalLM(cfg)
    randomise(m, seed)
    m.tie_weights()
    return m


def legacy_rope_config(path):
    with open(path) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = rp
    with open(path, "w") as f:
        json.dump(c, f, indent=2)


def llama_cpp_permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama3_rope_factors(c):
    # convert_hf_to_gguf.py LlamaModel.generate_extra_tensors (Llama 3.1 rope_freqs)
    import math
    rp = c.rope_parameters
    base = rp["rope_theta"]
    dim = c.head_dim
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
    old = rp["original_max_position_embeddings"]
    lo_wl, hi_wl = old / lo, old / hi
    out = []
    for f in freqs.tolist():
        wl = 2 * math.pi / f
        if wl < hi_wl:
            out.append(1.0)
        elif wl > lo_wl:
            out.append(factor)
        else:
            smooth = (old / wl - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32)


def write_gguf(path, arch, model):
    import gguf
    c = model.config
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, arch)
    t = {}
    if arch == "gpt2":
        w.add_uint32("gpt2.block_count", c.n_layer)
        w.add_uint32("gpt2.context_length", c.n_positions)
        w.add_uint32("gpt2.embedding_length", c.n_embd)
        w.add_uint32("gpt2.feed_forward_length", 4 * c.n_embd)
        w.add_uint32("gpt2.attention.head_count", c.n_head)
        w.add_float32("gpt2.attention.layer_norm_epsilon", c.layer_norm_epsilon)
        t["token_embd.weight"] = sd["transformer.wte.weight"]
        t["position_embd.weight"] = sd["transformer.wpe.weight"]
        for l in range(c.n_layer):
            p = f"transformer.h.{l}."
            q = f"blk.{l}."
            for a, b in [("ln_1", "attn_norm"), ("ln_2", "ffn_norm")]:
                t[q + b + ".weight"] = sd[p + a + ".weight"]
                t[q + b + ".bias"] = sd[p + a + ".bias"]
            for a, b in [("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
                         ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down")]:
                t[q + b + ".weight"] = sd[p + a + ".weight"].T.contiguous()
                t[q + b + ".bias"] = sd[p + a + ".bias"]
        t["output_norm.weight"] = sd["transformer.ln_f.weight"]
        t["output_norm.bias"] = sd["transformer.ln_f.bias"]
    else:
        w.add_uint32(f"{arch}.block_count", c.num_hidden_layers)
        w.add_uint32(f"{arch}.context_length", c.max_position_embeddings)
        w.add_uint32(f"{arch}.embedding_length", c.hidden_size)
        w.add_uint32(f"{arch}.feed_forward_length", c.intermediate_size)
        w.add_uint32(f"{arch}.attention.head_count", c.num_attention_heads)
        w.add_uint32(f"{arch}.attention.head_count_kv", c.num_key_value_heads)
        w.add_float32(f"{arch}.rope.freq_base", c.rope_parameters["rope_theta"])
        w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", c.rms_norm_eps)
        w.add_uint32(f"{arch}.rope.dimension_count", c.head_dim if getattr(c, "head_dim", None) else c.hidden_size // c.num_attention_heads)
        w.add_uint32(f"{arch}.vocab_size", c.vocab_size)
        t["token_embd.weight"] = sd["model.embed_tokens.weight"]
        H, G = c.num_attention_heads, c.num_key_value_heads
        for l in range(c.num_hidden_layers):
            p = f"model.layers.{l}."
            q = f"blk.{l}."
            names = [("input_layernorm.weight", "attn_norm.weight"),
                     ("post_attention_layernorm.weight", "ffn_norm.weight"),
                     ("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.q_proj.bias", "attn_q.bias"),
                     ("self_attn.k_proj.weight", "attn_k.weight"), ("self_attn.k_proj.bias", "attn_k.bias"),
                     ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.v_proj.bias", "attn_v.bias"),
                     ("self_attn.o_proj.weight", "attn_output.weight"),
                     ("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.up_proj.weight", "ffn_up.weight"),
                     ("mlp.down_proj.weight", "ffn_down.weight")]
            for a, b in names:
                if p + a not in sd:
                    continue
                x = sd[p + a]
                if arch == "llama" and b.startswith("attn_q"):
                    x = llama_cpp_permute(x, H, H)
                if arch == "llama" and b.startswith("attn_k"):
                    x = llama_cpp_permute(x, H, G)
                t[q + b] = x
        t["output_norm.weight"] = sd["model.norm.weight"]
        if not c.tie_word_embeddings:
            t["output.weight"] = sd["lm_head.weight"]
        if c.rope_parameters.get("rope_type") == "llama3":
            t["rope_freqs.weight"] = llama3_rope_factors(c)
    for k, v in t.items():
        w.add_tensor(k, v.contiguous().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def broken(out, llama_dir):
    b = os.path.join(out, "broken")
    os.makedirs(b, exist_ok=True)
    from safetensors.torch import load_file
    sd = load_file(os.path.join(llama_dir, "model.safetensors"))

    d = os.path.join(b, "unsupported_arch")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2,
                   "vocab_size": 1000}, f)
    save_file({"backbone.embeddings.weight": torch.zeros(1000, 64)}, os.path.join(d, "model.safetensors"))

    d = os.path.join(b, "missing_tensor")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(llama_dir, "config.json"), d)
    s2 = dict(sd)
    del s2["model.layers.1.self_attn.k_proj.weight"]
    save_file(s2, os.path.join(d, "model.safetensors"))

    d = os.path.join(b, "wrong_shape")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(llama_dir, "config.json"), d)
    s2 = dict(sd)
    s2["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(64, 48)
    save_file(s2, os.path.join(d, "model.safetensors"))

    d = os.path.join(b, "bin_only")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(llama_dir, "config.json"), d)
    torch.save({"model.embed_tokens.weight": torch.zeros(2, 2)}, os.path.join(d, "pytorch_model.bin"))


def padded(out, qwen2_dir):
    """qwen2 with a byte-level tokenizer of 256 ids: embedding rows 256..999 have no token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    d = os.path.join(out, "qwen2_padded")
    if os.path.isdir(d):
        shutil.rmtree(d)
    shutil.copytree(qwen2_dir, d)
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.save(os.path.join(d, "tokenizer.json"))
    assert tk.get_vocab_size() == 256
    prompt = "hello there"
    ids = tk.encode(prompt).ids
    m = Qwen2ForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
    assert m.config.vocab_size == 1000
    with torch.no_grad():
        logits = m(torch.tensor([ids])).logits[0, -1].double()
    top = torch.topk(logits, 40)
    top_ids = top.indices.tolist()
    assert any(i >= 256 for i in top_ids) and any(i < 256 for i in top_ids), top_ids  # both kinds ranked
    return {"prompt": prompt, "ids": ids, "top_ids": top_ids,
            "top_probs": torch.softmax(logits, -1)[top.indices].tolist()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    manifest = {"transformers": transformers.__version__, "torch": torch.__version__,
                "ablate_layer": ABLATE_LAYER, "models": {}}
    for name, make, vocab, seed in [("gpt2", make_gpt2, 50257, 1), ("llama", make_llama, 1000, 2),
                                    ("qwen2", make_qwen2, 1000, 3)]:
        m = make(seed)
        d = os.path.join(out, name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        m.save_pretrained(d, safe_serialization=True)
        if name == "gpt2":
            shutil.copy(os.path.join(GPT2_TOK, "encoder.json"), os.path.join(d, "vocab.json"))
            shutil.copy(os.path.join(GPT2_TOK, "vocab.bpe"), os.path.join(d, "merges.txt"))
        if name == "llama":
            ds = os.path.join(out, "llama_sharded")
            if os.path.isdir(ds):
                shutil.rmtree(ds)
            m.save_pretrained(ds, safe_serialization=True, max_shard_size="150KB")
            legacy_rope_config(os.path.join(ds, "config.json"))
            manifest["llama_shards"] = sorted(f for f in os.listdir(ds) if f.endswith(".safetensors"))
        golden(name, m, vocab, out, seed)
        os.makedirs(os.path.join(out, "gguf"), exist_ok=True)
        write_gguf(os.path.join(out, "gguf", name + ".gguf"), name, m)
        c = m.config
        n_params = sum(p.numel() for p in m.parameters())  # tied weights counted once
        manifest["models"][name] = {"n_layers": c.num_hidden_layers, "vocab": vocab, "B": B, "T": T,
                                    "n_params": n_params}
    # GPT-2 tokenization of a sentence by transformers (AutoTokenizer on the saved directory,
    # i.e. its vocab.json + merges.txt), for the tokenizer-loading check.
    from transformers import AutoTokenizer
    tk = AutoTokenizer.from_pretrained(os.path.join(out, "gpt2"))
    text = "Hello world, the year 1984 was   not\n so bad!"
    manifest["gpt2_text"] = {"text": text, "ids": tk(text).input_ids}
    assert len(manifest["gpt2_text"]["ids"]) > 5
    manifest["padded"] = padded(out, os.path.join(out, "qwen2"))
    broken(out, os.path.join(out, "llama"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"model_golden: wrote {out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
