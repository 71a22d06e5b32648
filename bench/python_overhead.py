"""What calling edgewise from Python costs over the C++ library: EAP on the default model, the
same task, examples and batch size, timed both ways in one run (rounds alternate so a drifting
shared machine hits both alike).

  C++     build/bench/bench_attribution (the library's attribute("eap"), warm, median of iters)
  Python  edgewise.attribute(model, graph, data, method="eap") in this process, warm, median of
          iters; it includes what the call adds: building the batch from the dataset (the C++
          bench builds it once, outside its timer), converting options, releasing the GIL, the
          result's tensors and report.

  .venv/bin/python bench/python_overhead.py [--n 100] [--batch 25] [--iters 5] [--rounds 3] [--tune-allocator]

The C++ side tunes glibc's allocator as the command line does (edgewise::tune_allocator); the
Python side does so only with --tune-allocator (edgewise.tune_allocator(): not the package's
default, because a notebook's memory would then not shrink after large passes).

Prints one JSON object: each round's medians, the overall medians and python_vs_cpp (the ratio;
goal <= 1.02). Needs PYTHONPATH=build/python (or the package installed) and the default model.
A benchmark, not a test; results in docs/BENCHMARKS.md.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def cpp_round(n, batch, iters):
    exe = os.path.join(ROOT, "build", "bench", "bench_attribution")
    env = dict(os.environ, BENCH_SECTIONS="eap")
    r = subprocess.run([exe, "", "ioi", str(n), str(batch), str(iters), "0"], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"bench_attribution failed: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])["eap_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tune-allocator", action="store_true",
                    help="call edgewise.tune_allocator() first (the C++ side always tunes it, as the CLI does)")
    a = ap.parse_args()
    import torch
    import edgewise
    if a.tune_allocator:
        edgewise.tune_allocator()
    model = edgewise.load()
    graph = model.graph()
    data = edgewise.task("ioi", model, n=a.n, seed=0)
    edgewise.attribute(model, graph, data, method="eap", batch_size=a.batch, progress=False)  # warm-up
    rounds = []
    for _ in range(a.rounds):
        cpp = cpp_round(a.n, a.batch, a.iters)
        ts = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            edgewise.attribute(model, graph, data, method="eap", batch_size=a.batch, progress=False)
            ts.append(time.perf_counter() - t0)
        rounds.append({"cpp_s": cpp, "python_s": statistics.median(ts)})
    cpp = statistics.median(r["cpp_s"] for r in rounds)
    py = statistics.median(r["python_s"] for r in rounds)
    print(json.dumps({"bench": "python_overhead", "model": "default (SmolLM2-135M-Instruct Q4_1, fp32)",
                      "task": "ioi", "n": a.n, "python_tune_allocator": a.tune_allocator, "batch": a.batch, "iters": a.iters, "threads": torch.get_num_threads(),
                      "machine": platform.machine(), "cpus": os.cpu_count(), "rounds": rounds,
                      "cpp_s": round(cpp, 4), "python_s": round(py, 4), "python_vs_cpp": round(py / cpp, 4)}))


if __name__ == "__main__":
    sys.exit(main())
