"""Random models for the behaviour record (tests/behaviour/record.sh): a GPT-2, a grouped-query
Llama and a GPT-NeoX with parallel attention + MLP and partial rotary (Pythia's block), all with
the real GPT-2 vocabulary (tests/data/gpt2-tokenizer) so that the
built-in tasks tokenize on them. Seeded; written once per output folder and reused, so a record
before a refactor and one after it run on the very same weights.

Usage: python make_models.py OUT_DIR
"""
import os
import shutil
import sys

import torch
from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                          LlamaForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "..", "data", "gpt2-tokenizer")


def randomise(model, seed):
    # Larger-than-init weights so that circuits differ clearly from edge to edge.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * (0.02 if p.dim() < 2 else 0.2))
            if p.dim() == 1 and p.shape[0] == model.config.hidden_size:
                p.add_(1.0)  # norm weights near 1


def save(model, d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    shutil.copy(os.path.join(VOCAB, "encoder.json"), os.path.join(d, "vocab.json"))
    shutil.copy(os.path.join(VOCAB, "vocab.bpe"), os.path.join(d, "merges.txt"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_positions=64, n_embd=64, n_layer=3, n_head=4,
                                      activation_function="gelu_new", attn_implementation="eager"))
    randomise(gpt2, 11)
    gpt2.tie_weights()
    save(gpt2, os.path.join(out, "gpt2"))
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=50257, hidden_size=64, intermediate_size=160,
                                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, rms_norm_eps=1e-5,
                                         tie_word_embeddings=False, bos_token_id=50256, eos_token_id=50256,
                                         attn_implementation="eager"))
    randomise(llama, 12)
    save(llama, os.path.join(out, "llama"))
    neox = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=50257, hidden_size=64, intermediate_size=256,
                                            num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=256,
                                            use_parallel_residual=True, hidden_act="gelu",
                                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                             "partial_rotary_factor": 0.25},
                                            tie_word_embeddings=False, bos_token_id=50256, eos_token_id=50256,
                                            attn_implementation="eager"))
    randomise(neox, 13)
    save(neox, os.path.join(out, "neox"))


if __name__ == "__main__":
    main()
