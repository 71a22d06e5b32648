# Used by docs/DEVICES.md: python3 tools/gpu/smollm2_shape.py DIR, then bench/bench_patch DIR on the GPU.
# A SmolLM2-135M-shaped Llama with seeded random weights (timings do not depend on the values).
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True, hidden_act="silu")
m = LlamaForCausalLM(cfg)
m.save_pretrained(sys.argv[1], safe_serialization=True)
print("saved", sys.argv[1])
