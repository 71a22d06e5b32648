"""Forward throughput: edgewise vs Hugging Face transformers on the default model, same run.

Both run the same random tokens (batch x tokens), fp32, on the same number of CPU threads;
transformers loads the same GGUF (dequantised to fp32 through the gguf package). Prints a
markdown row for docs/BENCHMARKS.md.

    .venv/bin/python bench/forward_vs_transformers.py [--batch 8 --tokens 64 --iters 10 --threads 2]
"""
import argparse
import json
import os
import platform
import subprocess
import time

import torch


def default_model():
    return os.environ.get("EDGEWISE_DEFAULT_MODEL") or os.path.expanduser(
        os.path.join(os.environ.get("EDGEWISE_HOME", "~/.cache/edgewise"), "models",
                     "SmolLM2-135M-Instruct.Q4_1.gguf"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=default_model())
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median of each side is reported")
    ap.add_argument("--bench-bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "bench", "bench_forward"))
    a = ap.parse_args()

    def run_ours():
        return json.loads(subprocess.check_output(
            [a.bench_bin, a.model, str(a.batch), str(a.tokens), str(a.iters), str(a.threads)], text=True))

    from transformers import AutoModelForCausalLM
    torch.set_num_threads(a.threads)
    t0 = time.time()
    hf = AutoModelForCausalLM.from_pretrained(os.path.dirname(a.model), gguf_file=os.path.basename(a.model),
                                              torch_dtype=torch.float32).eval()
    load_s = time.time() - t0
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(hf.config.vocab_size, (a.batch, a.tokens), generator=g)
    def run_hf():
        with torch.inference_mode():
            for _ in range(2):
                hf(tokens)
            t0 = time.time()
            for _ in range(a.iters):
                hf(tokens)
            return (time.time() - t0) / a.iters

    # Alternate the two sides so that machine noise (a shared VM) hits both alike.
    ours_runs, hf_runs = [], []
    for _ in range(a.rounds):
        ours_runs.append(run_ours())
        hf_runs.append(run_hf())
    median = lambda xs: sorted(xs)[len(xs) // 2]
    ours = sorted(ours_runs, key=lambda r: r["forward_s"])[len(ours_runs) // 2]
    fwd = median(hf_runs)
    hf_tps = a.batch * a.tokens / fwd
    print(json.dumps({"edgewise": ours, "edgewise_forward_s_all": [r["forward_s"] for r in ours_runs],
                      "transformers": {"load_s": load_s, "forward_s": fwd, "tokens_per_s": hf_tps,
                                       "forward_s_all": hf_runs}}, indent=1))
    print()
    print("| machine | threads | batch x tokens | edgewise tok/s | transformers tok/s | ratio | layer matmul GFLOP/s | unembed GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {platform.machine()} {os.cpu_count()} cores | {ours['threads']} | {a.batch} x {a.tokens} | "
          f"{ours['tokens_per_s']:.0f} | {hf_tps:.0f} | {ours['tokens_per_s'] / hf_tps:.2f}x | "
          f"{ours['layer_matmul_gflops']:.1f} | {ours['unembed_gflops']:.1f} |")


if __name__ == "__main__":
    main()
