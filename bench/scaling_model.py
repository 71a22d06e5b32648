"""The analytic model of docs/SCALING.md: for a Llama-shaped model, the graph's edges, the bytes
of the source-output store and of the readers' inputs per token, the memory per rank, the bytes
that cross between ranks per step and the arithmetic of a step, for

  1. the seed's setting: Edge Pruning on CodeLlama-13B over 32 GPUs (the reference's
     run_scripts/launch_fllama_fs_prune.sh: 4 nodes x 8 GPUs, FSDP FULL_SHARD with parameters
     offloaded to the CPU, bf16, gradient checkpointing, 72-token sequences, batch 1 per GPU,
     a frozen reference copy of the model run every step), against edgewise's data parallel plan;
  2. EAP-IG and Edge Pruning on a Llama-3-70B-shaped model.

    python3 bench/scaling_model.py            # prints the tables

Arithmetic only (no model is run): the formulas are edgewise's graph (docs/PATCHING.md) and the
patched forward's work (one multiply-add per edge per token per dimension for the corrections).
The measured counterparts (CPU, 2-3 ranks) are in docs/SCALING.md.
"""


def llama(name, L, D, H, G, F, V, tied=False):
    dh = D // H
    attn = D * (H * dh) + 2 * D * (G * dh) + (H * dh) * D
    mlp = 3 * D * F
    params = L * (attn + mlp + 2 * D) + V * D * (1 if tied else 2) + D
    return dict(name=name, L=L, D=D, H=H, G=G, F=F, V=V, params=params)


def graph(m):
    L, H, G = m["L"], m["H"], m["G"]
    n_src = 1 + L * H + L
    readers = L * (H + 2 * G) + L + 1  # q per head, k and v per kv head, the MLP, the logits
    edges = 0
    for l in range(L):
        edges += (H + 2 * G) * (1 + l * (H + 1))  # attention readers: input, heads and MLPs before
        edges += 1 + (l + 1) * H + l  # the MLP: its own layer's heads too
    edges += 1 + L * (H + 1)  # the logits
    return n_src, readers, edges


GB = 1e9


def report(m, tokens, bytes_per=2):
    n_src, readers, edges = graph(m)
    store_tok = n_src * m["D"] * bytes_per
    inputs_tok = readers * m["D"] * bytes_per
    w = m["params"] * bytes_per
    fwd = 2 * m["params"]  # FLOPs per token of the plain forward (the unembedding included)
    corr = 2 * edges * m["D"]  # the corrections: one multiply-add per edge per dimension
    return dict(n_src=n_src, readers=readers, edges=edges, store_tok=store_tok, inputs_tok=inputs_tok, weights=w,
                fwd=fwd, corr=corr, tokens=tokens)


def line(k, v):
    print(f"| {k} | {v} |")


codellama = llama("CodeLlama-13B", L=40, D=5120, H=40, G=40, F=13824, V=32016)
l70 = llama("Llama-3-70B", L=80, D=8192, H=64, G=8, F=28672, V=128256)

# --- 1. the seed's setting -----------------------------------------------------------------
r = report(codellama, tokens=72)
ranks = 32
print(f"## {codellama['name']}: Edge Pruning over {ranks} GPUs (72 tokens, batch 1 per GPU)\n")
print("| quantity | value |\n|---|---|")
line("parameters", f"{codellama['params'] / 1e9:.2f} B ({r['weights'] / GB:.1f} GB bf16)")
line("graph", f"{r['n_src']:,} sources, {r['readers']:,} readers, {r['edges']:,} edges")
line("source-output store per token (bf16)", f"{r['store_tok'] / 1e6:.1f} MB")
line("readers' inputs per token (bf16, kept for the backward)", f"{r['inputs_tok'] / 1e6:.1f} MB")
per_example = 72 * (2 * r["store_tok"] + r["inputs_tok"])  # clean store + ablated store + inputs
line("activations per 72-token example (2 stores + inputs)", f"{per_example / GB:.2f} GB")
# edgewise: data parallel, a full bf16 replica per rank, the mask gradients all-reduced.
mask_bytes = (r["edges"] + r["n_src"]) * 4 + 16  # fp32 log-alphas (edges, nodes), loss and figures
ring = 2 * (ranks - 1) / ranks * mask_bytes
line("edgewise, memory per rank", f"{(r['weights'] + per_example) / GB:.1f} GB (replica + one example's activations)")
line("edgewise, sent per rank per step", f"{ring / 1e6:.1f} MB (ring all-reduce of {mask_bytes / 1e6:.1f} MB of mask gradients)")
flops_step = 72 * 3 * (r["fwd"] + r["corr"])  # forward + backward (2x) of the patched pass
line("edgewise, FLOPs per step per rank", f"{flops_step / 1e12:.1f} TFLOP (plain forward {r['fwd'] / 1e9:.0f} + corrections {r['corr'] / 1e9:.0f} GFLOP per token, x3 for the backward)")
for tf in (400,):
    line(f"edgewise, step time at {tf} TFLOP/s (H100 bf16, ~40% of peak)", f"{flops_step / (tf * 1e12) * 1e3:.0f} ms compute + {ring / 25e9 * 1e3:.1f} ms all-reduce at 25 GB/s")
# the reference: FSDP FULL_SHARD, CPU offload, gradient checkpointing, a reference model.
gather = (ranks - 1) / ranks * r["weights"]
ref_traffic = 3 * gather + gather  # pruned model: forward, recompute, backward; reference: forward
line("reference (FSDP), memory per GPU", f"{r['weights'] / ranks / GB:.2f} GB of shards (offloaded to CPU) + one layer gathered + activations")
line("reference, received per GPU per step", f"{ref_traffic / GB:.0f} GB (each layer's weights all-gathered for the forward, the checkpointed recompute and the backward, and for the reference model's forward)")
line("reference, step time bound by that traffic", f"{ref_traffic / 25e9:.1f} s at 25 GB/s (200 Gb/s InfiniBand per GPU), before the CPU-offload copies")
print()

# --- 2. Llama-3-70B ---------------------------------------------------------------------------
r = report(l70, tokens=64)
print(f"## {l70['name']}-shaped: EAP-IG and Edge Pruning (64 tokens per example)\n")
print("| quantity | value |\n|---|---|")
line("parameters", f"{l70['params'] / 1e9:.2f} B ({r['weights'] / GB:.0f} GB bf16)")
line("graph", f"{r['n_src']:,} sources, {r['readers']:,} readers, {r['edges']:,} edges")
line("source-output store per token (bf16)", f"{r['store_tok'] / 1e6:.1f} MB")
line("readers' inputs per token (bf16)", f"{r['inputs_tok'] / 1e6:.1f} MB")
ex = 64 * (2 * r["store_tok"] + r["inputs_tok"])
line("activations per 64-token example", f"{ex / GB:.1f} GB")
for pp in (2, 4):
    per_rank = r["weights"] / pp + ex / pp * 1.0
    line(f"pipeline over {pp} ranks: memory per rank", f"{per_rank / GB:.0f} GB ({r['weights'] / pp / GB:.0f} weights + {ex / pp / GB:.1f} activations)")
ranks_needed = 2
while r["weights"] / ranks_needed + ex / ranks_needed > 0.8 * 80e9:
    ranks_needed += 1
line("ranks needed at 80 GB (80% usable), one example in flight", f"{ranks_needed}")
# what crosses a pipeline boundary: the residual and the store of the sources so far.
mid = (r["n_src"] // 2) * l70["D"] * 2 * 64 + l70["D"] * 2 * 64
line("pipeline boundary at mid-depth, per example per pass", f"{mid / GB:.2f} GB forward (store so far + residual), the same back")
mask_bytes = (r["edges"] + r["n_src"]) * 4
line("Edge Pruning: mask gradients all-reduced per step (data parallel groups)", f"{mask_bytes / 1e6:.0f} MB")
flops_ig = 64 * 5 * 3 * (r["fwd"] + r["corr"])
line("EAP-IG (5 steps), FLOPs per example", f"{flops_ig / 1e15:.2f} PFLOP -> {flops_ig / 400e12:.1f} s at 400 TFLOP/s")
line("EAP-IG: scores all-reduced once", f"{r['n_src'] * r['readers'] * 8 / 1e6:.0f} MB (float64 [n_src, n_readers])")
