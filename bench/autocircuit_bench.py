#!/usr/bin/env python3
"""Benchmark harness (not a test): how long auto-circuit (PyPI `auto-circuit`, on a
TransformerLens HookedTransformer) takes for edge attribution patching and for its integrated
mask gradients, and how much memory it needs, on a model of GPT-2 small's shape (12 layers,
12 heads, d_model 768, d_mlp 3072, vocab 50257, n_ctx 1024; random weights, seeded). Issue 5's
"Against auto-circuit" benchmark: edgewise is timed on the same exported model and prompts.

What it does:
  1. draws the weights, exports them as a Hugging Face GPT-2 directory (--model-dir; the
     exporter of tests/reference/autocircuit_eap.py) and checks transformers' logits against
     TransformerLens' on the prompts;
  2. writes the prompts (--prompts, default <model-dir>/prompts.json; --batch x --tokens seeded
     random ids, corrupted ids differing at every position, a correct and an incorrect answer
     per prompt; the format of autocircuit_eap.py's data.json);
  3. times each method in a fresh subprocess (so peak memory figures do not mix): the model is
     read back from the export, wrapped with auto-circuit's patchable_model (separate q/k/v,
     all positions, last-position logit difference, resample ablation from the corrupted
     prompts, one batch holding every prompt), one warm-up call, then --repeat timed calls of
     mask_gradient_prune_scores: "eap" = mask value 0, "ig" = integrated_grad_samples
     --ig-samples (auto-circuit evaluates ig_samples + 1 mask values);
  4. prints one JSON line: versions, settings, and per method the median / all wall times of the
     attribution call, the setup time (patchable_model), and peak resident memory (VmHWM from
     /proc/self/status): over the whole worker process, and over the timed calls alone (the
     high-water mark reset, after loading, via /proc/self/clear_refs), the model resident in both.

Not here: edgewise's own figures (bench/ and docs/BENCHMARKS.md), checking the scores (that is
tests/reference/autocircuit_eap.py).

  .venv/bin/python bench/autocircuit_bench.py --model-dir /tmp/gpt2-shape [--batch 16 --tokens 16
      --threads 2 --repeat 3 --ig-samples 5 --seed 0 --methods eap,ig]
"""
import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "reference"))

import torch  # noqa: E402

import autocircuit_eap as ace  # noqa: E402


def proc_status_kib(key):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1))


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def load_patchable(peers, model_dir, data):
    """The exported model read back into TransformerLens and wrapped by auto-circuit (separate
    q/k/v, all positions, last-position output), the prompts' dataloader, and the wrapping time."""
    model, _ = ace.load_tl_model(peers, model_dir, separate_qkv=True)
    gc.collect()
    t_setup = time.perf_counter()
    pm = peers.patchable_model(model, factorized=True, slice_output="last_seq", seq_len=None,
                               separate_qkv=True, device=torch.device("cpu"))
    dl = ace.dataloader(peers, data)
    return pm, dl, time.perf_counter() - t_setup


def worker(a):
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    peers = ace.import_peers()
    with open(a.prompts) as f:
        data = json.load(f)
    pm, dl, setup_s = load_patchable(peers, a.model_dir, data)
    ig = a.ig_samples if a.worker == "ig" else None
    rss_loaded = proc_status_kib("VmRSS")
    peak_load = proc_status_kib("VmHWM")  # imports, reading the export, building the model
    reset_ok = reset_peak_rss()

    def call():
        t = time.perf_counter()
        ps = ace.run_mask_gradient(peers, pm, dl, ig)
        return time.perf_counter() - t, ps

    warmup_s, ps = call()
    times = [call()[0] for _ in range(a.repeat)]
    peak_calls = proc_status_kib("VmHWM") if reset_ok else None
    print(json.dumps({
        "method": a.worker, "median_s": statistics.median(times), "times_s": times,
        "warmup_s": warmup_s, "setup_s": setup_s, "edges": len(pm.edges),
        "score_entries": sum(int(v.numel()) for v in ps.values()),
        "rss_loaded_mib": rss_loaded / 1024,
        "peak_rss_mib": max(peak_load, peak_calls or proc_status_kib("VmHWM")) / 1024,
        "peak_rss_calls_mib": peak_calls / 1024 if peak_calls else None,
        "worker_total_s": time.perf_counter() - t0,
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--prompts", help="default: <model-dir>/prompts.json")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ig-samples", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="eap,ig")
    ap.add_argument("--skip-export", action="store_true",
                    help="reuse --model-dir and --prompts as they are")
    ap.add_argument("--worker", choices=["eap", "ig"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.prompts = a.prompts or os.path.join(a.model_dir, "prompts.json")
    if a.worker:
        return worker(a)

    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    export = {}
    if not a.skip_export:
        peers = ace.import_peers()
        sd = ace.random_state_dict(peers, ace.GPT2_SMALL, a.seed)
        ace.export_hf(sd, ace.GPT2_SMALL, a.model_dir)
        data = ace.make_data(ace.GPT2_SMALL["d_vocab"], a.batch, a.tokens, a.seed + 1)
        with open(a.prompts, "w") as f:
            json.dump(data, f)
        tl_model = ace.make_tl_model(peers, ace.GPT2_SMALL, sd, True)
        del sd
        ids = torch.tensor(data["clean"])
        export = {"export_max_abs_diff": ace.check_export(tl_model, a.model_dir, ids),
                  "export_s": time.perf_counter() - t0}
        del tl_model
        gc.collect()

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    results = {}
    for method in a.methods.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", method,
               "--model-dir", a.model_dir, "--prompts", a.prompts, "--threads", str(a.threads),
               "--repeat", str(a.repeat), "--ig-samples", str(a.ig_samples)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stderr[-4000:])
            raise SystemExit(f"autocircuit_bench: worker {method} failed ({r.returncode})")
        results[method] = json.loads(r.stdout.strip().splitlines()[-1])

    from importlib.metadata import version
    with open(os.path.join(a.model_dir, "config.json")) as f:
        shape = ace.shape_from_config(json.load(f))
    with open(a.prompts) as f:
        clean = json.load(f)["clean"]
    print(json.dumps({
        "bench": "autocircuit",
        "versions": {"auto-circuit": version("auto-circuit"),
                     "transformer-lens": version("transformer-lens"), "torch": torch.__version__,
                     "python": sys.version.split()[0]},
        "settings": {"model": {**shape, "weights": "random, seed %d" % a.seed
                               if not a.skip_export else "as found in model_dir"},
                     "model_dir": a.model_dir, "prompts": a.prompts, "batch": len(clean),
                     "tokens": len(clean[0]), "threads": a.threads, "repeat": a.repeat,
                     "ig_samples": a.ig_samples, "separate_qkv": True, "seq_len": None,
                     "slice_output": "last_seq", "ablation": "resample (corrupted prompts)",
                     "metric": "mean logit difference (grad_function logit, answer_function avg_diff)",
                     "dtype": "float32", "device": "cpu"},
        **export, **results, "total_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
