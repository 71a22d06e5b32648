#!/usr/bin/env python3
"""edgewise's EAP against TransformerLens 4.3's native edge attribution patching, same run.

Both sides score every edge of the same random GPT-2-shaped model (--layers x 12 heads,
d_model 768, vocab 50257, n_ctx 128; seeded, saved once as a Hugging Face folder with the real
GPT-2 tokenizer files of tests/data/gpt2-tokenizer, so both load identical weights) on the same
--n IOI pairs (``edgewise.task("ioi", model, n, seed)``), and their scores are compared:

  TransformerLens  ``attribution_patch(bridge, clean, corrupt, metric_fn,
                   EdgeAttributionConfig(granularity="edge"))`` on a ``TransformerBridge`` booted
                   from the folder, in its own environment (.venv-tl, run as a worker subprocess
                   of this file: ``--worker tl``);
  edgewise         ``edgewise.attribute(model, graph, data, method="eap", progress=False)`` in
                   this process.

Conventions, and why the edgewise dataset is the swapped one:

  TL (denoising form)  score(u -> v) = mean over pairs of
                       (a_clean[u] - a_corrupt[u]) . d m / d in[v], gradient on the CORRUPT run,
                       m = one example's logits[0, -1, correct] - logits[0, -1, incorrect];
                       one edge per sequence position (writer at p -> reader at p).
  edgewise (EAP)       score(u -> v) = (a_corrupted[u] - a_clean[u]) . d M / d in[v] at the CLEAN
                       run, M = batch mean of logit(correct) - logit(incorrect) at the last
                       position, summed over positions.

  So edgewise runs on the swapped pairs (its clean = TL's corrupt prompt, its corrupted = TL's
  clean prompt, same answers): (a_TLclean - a_TLcorrupt) . dM/d in at the TL-corrupt run, which
  is TL's score once TL's per-position edges are summed over positions (a writer at p only
  writes to the residual at p) and M's batch mean is expanded (its gradient is the mean of the
  per-example gradients, as TL's average of per-pair scores). Names map one to one:
  embed -> input, attn_head_out L/H -> aL.hH, mlp_out L -> mL (writers); q_input/k_input/v_input
  L/H -> aL.hH<q>/<k>/<v>, mlp_in L -> mL, logits -> logits (readers). TL's embed writer reads
  hook_embed (token embedding only), edgewise's input is token + position embedding; the
  position part is the same on both prompts and cancels in the difference, as do the attention
  and MLP output biases. A control run of edgewise on the unswapped pairs (scores negated) shows
  that the swap, not a sign flip, is what makes the two agree.

  TL's metric_fn sees one example's logits ([1, seq, vocab]) and nothing else, so a dataset whose
  answers change from pair to pair (IOI) cannot go through one batched call: TL is called once
  per pair, with that pair's metric, and the pairs are averaged here (attribution_patch itself
  loops over pairs one at a time and averages, so this is the same computation). The TL time is
  the sum of those calls; the averaging and the summing over positions into edgewise's edge
  layout are timed apart (timing_s.tl_postprocess_rounds).

Timing: one untimed warm-up call on each side (TL: the first pair; edgewise: the dataset), then
--rounds rounds alternating TL (all pairs) and edgewise, medians reported; both use --threads
torch threads. The TL worker keeps its bridge between rounds and idles while edgewise runs.

Compared over all edges: max |diff| / max |score|, Spearman and Kendall tau-b (signed scores and
|scores|), whether the full ranking by |score| is identical (if not: how many ranks hold a
different edge, the first such rank, the number of pairs the two order differently, and the
largest |score| gap of such a pair -- pairs further apart than that are ordered alike), top-100 /
top-1000 overlap. Both sides compute in float32, so the same figures are also given for each side
against TL on a float64 bridge (one untimed run after the rounds; --no-f64-reference skips it):
they say which ranking differences are float32 rounding among near-ties.

Prints one JSON object (settings, machine, versions, timings, comparisons). At the defaults it
takes about 5 minutes on 2 cores, nearly all of it TL (about 6 s per 16-token pair at 12 layers).

  .venv/bin/python bench/tl_attribution.py [--layers 12 --n 8 --rounds 3 --seed 0 --threads 2
      --model-dir DIR --tl-python .venv-tl/bin/python --no-f64-reference]

Needs PYTHONPATH=build/python (added when missing), transformers in .venv (to write the model),
and transformer-lens 4.3 in --tl-python's environment. A benchmark, not a test.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOKENIZER_DIR = os.path.join(ROOT, "tests", "data", "gpt2-tokenizer")
MARKER = "tl_attribution_bench.json"


# ---------------------------------------------------------------------------------------------
# TransformerLens worker (runs under --tl-python)
# ---------------------------------------------------------------------------------------------

def _tl_name(kind, layer, head):
    """edgewise's node name of a TL Node (kind, layer, head)."""
    if kind == "embed":
        return "input"
    if kind == "logits":
        return "logits"
    if kind in ("mlp_out", "mlp_in"):
        return f"m{layer}"
    if kind == "attn_head_out":
        return f"a{layer}.h{head}"
    return f"a{layer}.h{head}<{kind[0]}>"  # q_input / k_input / v_input


def worker_tl(a):
    proto = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol keeps the real stdout ...
    os.dup2(2, 1)  # ... and whatever the libraries print goes to stderr

    def send(obj):
        proto.write(json.dumps(obj) + "\n")

    torch.set_num_threads(a.threads)
    from importlib.metadata import version

    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.tools.analysis.attribution_patching import EdgeAttributionConfig, attribution_patch
    from transformers import GPT2TokenizerFast

    with open(a.pairs) as f:
        pairs = json.load(f)
    # The ids come from edgewise's tokenizer; check that transformers' GPT-2 tokenizer agrees.
    tok = GPT2TokenizerFast.from_pretrained(a.model_dir)
    for p in pairs:
        for text, ids in ((p["clean"], p["clean_ids"]), (p["corrupted"], p["corrupted_ids"])):
            if tok(text).input_ids != ids:
                raise SystemExit(f"tokenizers disagree on {text!r}")
        for text, i in ((p["correct"], p["correct_id"]), (p["incorrect"], p["incorrect_id"])):
            if tok(text).input_ids[0] != i:
                raise SystemExit(f"tokenizers disagree on the answer {text!r}")

    def boot(dtype):
        t0 = time.perf_counter()
        bridge = TransformerBridge.boot_transformers(a.model_dir, device="cpu", dtype=dtype)
        bridge.eval()
        return bridge, time.perf_counter() - t0

    config = EdgeAttributionConfig(granularity="edge")

    def make_metric(correct, incorrect):
        def metric_fn(logits):  # one example: [1, seq, vocab]
            assert logits.dim() == 3 and logits.shape[0] == 1, tuple(logits.shape)
            return logits[0, -1, correct] - logits[0, -1, incorrect]
        return metric_fn

    calls = [(torch.tensor([p["clean_ids"]]), torch.tensor([p["corrupted_ids"]]),
              make_metric(p["correct_id"], p["incorrect_id"])) for p in pairs]

    def run_pairs(bridge):
        """Every pair's attribution_patch (timed), then the average over pairs summed over
        positions, keyed by edgewise's edge names (timed apart)."""
        results, call_s = [], []
        for clean, corrupt, metric_fn in calls:
            t0 = time.perf_counter()
            results.append(attribution_patch(bridge, clean, corrupt, metric_fn, config=config))
            call_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        totals = {}
        for r in results:
            for (w, v), s in r.edge_scores.items():
                key = (w.kind, w.layer, w.head, v.kind, v.layer, v.head)
                totals[key] = totals.get(key, 0.0) + s
        scores = {f"{_tl_name(*k[:3])}->{_tl_name(*k[3:])}": s / len(results) for k, s in totals.items()}
        post_s = time.perf_counter() - t0
        return scores, {"attribution_patch_s": sum(call_s), "per_call_s": call_s, "postprocess_s": post_s,
                        "position_edges": [len(r.edge_scores) for r in results]}

    bridge, boot_s = boot(torch.float32)
    t0 = time.perf_counter()
    attribution_patch(bridge, *calls[0], config=config)
    warmup_s = time.perf_counter() - t0
    send({"ready": True, "boot_s": boot_s, "warmup_s": warmup_s, "threads": torch.get_num_threads(),
          "versions": {"python": platform.python_version(), "torch": torch.__version__,
                       "transformers": version("transformers"),
                       "transformer_lens": version("transformer-lens")}})

    rounds, f64_scores = [], None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "run":
            scores, timing = run_pairs(bridge)
            rounds.append(scores)
            send(timing)
        elif cmd == "f64":  # the float64 reference: the same calls on a float64 bridge
            bridge64, boot64_s = boot(torch.float64)
            f64_scores, timing = run_pairs(bridge64)
            del bridge64
            send(dict(timing, boot_s=boot64_s))
        elif cmd == "done":
            drift = max(max(abs(r[k] - rounds[0][k]) for k in r) for r in rounds) if rounds else None
            with open(a.out, "w") as f:
                json.dump({"scores": rounds[-1], "max_round_to_round_diff": drift, "f64_scores": f64_scores}, f)
            send({"done": True})
            return
        else:
            raise SystemExit(f"tl worker: unknown command {cmd!r}")


# ---------------------------------------------------------------------------------------------
# Statistics (numpy only)
# ---------------------------------------------------------------------------------------------

def _rankdata(x):
    """Average ranks (1-based), ties sharing their mean rank."""
    import numpy as np
    sorter = np.argsort(x, kind="mergesort")
    inv = np.empty(len(x), dtype=np.intp)
    inv[sorter] = np.arange(len(x))
    xs = x[sorter]
    obs = np.r_[True, xs[1:] != xs[:-1]]
    dense = obs.cumsum()[inv]
    count = np.r_[np.nonzero(obs)[0], len(obs)]
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def spearman(x, y):
    import numpy as np
    return float(np.corrcoef(_rankdata(x), _rankdata(y))[0, 1])


def _inversions(r):
    """Pairs i < j with r[i] > r[j], for integer ranks r (Fenwick tree)."""
    m = int(r.max()) + 1
    tree = [0] * (m + 1)
    inv = 0
    for seen, v in enumerate(r.tolist()):
        i, below = v + 1, 0
        while i > 0:
            below += tree[i]
            i -= i & -i
        inv += seen - below
        i = v + 1
        while i <= m:
            tree[i] += 1
            i += i & -i
    return inv


def kendall_tau_b(x, y):
    """Kendall's tau-b (ties in either variable handled) and the number of discordant pairs."""
    import numpy as np
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    n = len(x)
    tot = n * (n - 1) // 2

    def tied_pairs(counts):
        return int((counts * (counts - 1) // 2).sum())

    xtie = tied_pairs(np.unique(x, return_counts=True)[1])
    ytie = tied_pairs(np.unique(y, return_counts=True)[1])
    ntie = tied_pairs(np.unique(np.stack([x, y], 1), axis=0, return_counts=True)[1])
    dis = _inversions(np.unique(y, return_inverse=True)[1])
    con_minus_dis = tot - xtie - ytie + ntie - 2 * dis
    denom = ((tot - xtie) * (tot - ytie)) ** 0.5
    return (con_minus_dis / denom if denom else float("nan")), dis


def largest_discordant_gap(a, b):
    """The largest a-gap |a_i| - |a_j| over pairs that |a| and |b| order differently (|a_i| > |a_j|
    but |b_i| < |b_j|): every pair further apart in |a| than this is ordered alike by both."""
    import numpy as np
    order = np.argsort(-a, kind="stable")
    a, b = a[order], b[order]
    prefix_min = np.minimum.accumulate(b)
    # For each j, the first i (largest a) with b[i] < b[j]; prefix_min is non-increasing.
    first = np.searchsorted(-prefix_min, -b, side="right")
    j = np.nonzero(first < np.arange(len(b)))[0]
    if len(j) == 0:
        return 0.0
    gaps = a[first[j]] - a[j]
    return float(gaps.max())


def compare(ew, tl):
    """Both: float64 numpy vectors over the same edges."""
    import numpy as np
    max_score = float(np.abs(tl).max())
    diff = np.abs(ew - tl)
    a_ew, a_tl = np.abs(ew), np.abs(tl)
    order_ew = np.argsort(-a_ew, kind="stable")
    order_tl = np.argsort(-a_tl, kind="stable")
    differ = np.nonzero(order_ew != order_tl)[0]
    tau, _ = kendall_tau_b(ew, tl)
    tau_abs, dis_abs = kendall_tau_b(a_ew, a_tl)
    gap = largest_discordant_gap(a_ew, a_tl)
    out = {
        "n_edges": int(len(ew)),
        "max_abs_score": max_score,
        "max_abs_diff": float(diff.max()),
        "max_abs_diff_over_max_abs_score": float(diff.max()) / max_score,
        "median_abs_score": float(np.median(a_tl)),
        "spearman": spearman(ew, tl),
        "spearman_abs": spearman(a_ew, a_tl),
        "kendall_tau_b": tau,
        "kendall_tau_b_abs": tau_abs,
        "ranking_by_abs_identical": bool(len(differ) == 0),
        "ranks_holding_a_different_edge": int(len(differ)),
        "first_differing_rank": int(differ[0]) + 1 if len(differ) else None,
        "abs_score_at_first_differing_rank": float(a_tl[order_tl[differ[0]]]) if len(differ) else None,
        "discordant_pairs_by_abs": int(dis_abs),
        "largest_abs_score_gap_of_a_discordant_pair": gap,
        "that_gap_over_max_abs_score": gap / max_score,
        "that_gap_over_max_abs_diff": gap / float(diff.max()) if diff.max() > 0 else None,
    }
    for k in (100, 1000):
        out[f"top{k}_overlap"] = (len(set(order_ew[:k].tolist()) & set(order_tl[:k].tolist())) / k
                                  if k <= len(ew) else None)
    return out


# ---------------------------------------------------------------------------------------------
# Driver (runs under .venv, with edgewise)
# ---------------------------------------------------------------------------------------------

def ensure_model(model_dir, layers, seed):
    """The random GPT-2-shaped Hugging Face folder both sides load (written once, then reused)."""
    want = {"layers": layers, "seed": seed, "n_embd": 768, "n_head": 12, "n_positions": 128,
            "vocab_size": 50257}
    marker = os.path.join(model_dir, MARKER)
    if os.path.isdir(model_dir):
        try:
            with open(marker) as f:
                have = json.load(f)
        except OSError:
            raise SystemExit(f"{model_dir} exists but was not written by this benchmark; pick another --model-dir")
        if have != want:
            raise SystemExit(f"{model_dir} holds a model of {have}, not {want}; pick another --model-dir")
        return False
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=layers, n_embd=768, n_head=12, n_positions=128, vocab_size=50257)
    hf = GPT2LMHeadModel(cfg).eval()
    tmp = model_dir.rstrip("/") + f".tmp{os.getpid()}"
    hf.save_pretrained(tmp)  # model.safetensors + config.json
    shutil.copy(os.path.join(TOKENIZER_DIR, "encoder.json"), os.path.join(tmp, "vocab.json"))
    shutil.copy(os.path.join(TOKENIZER_DIR, "vocab.bpe"), os.path.join(tmp, "merges.txt"))
    with open(os.path.join(tmp, MARKER), "w") as f:
        json.dump(want, f)
    os.rename(tmp, model_dir)
    return True


def machine_info():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)), "loadavg_start": list(os.getloadavg())}


def git_state():
    try:
        head = subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], text=True).strip()
        dirty = bool(subprocess.check_output(["git", "-C", ROOT, "status", "--porcelain", "-uno"], text=True).strip())
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--n", type=int, default=8, help="IOI pairs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="weights and task seed")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--model-dir", default=None,
                    help="default: <tmp>/edgewise-bench-tl-gpt2-l<layers>-s<seed> (written when missing)")
    ap.add_argument("--tl-python", default=os.path.join(ROOT, ".venv-tl", "bin", "python"))
    ap.add_argument("--no-f64-reference", action="store_true",
                    help="skip the untimed float64 TL run both sides are also compared against")
    ap.add_argument("--worker", choices=["tl"], help=argparse.SUPPRESS)
    ap.add_argument("--pairs", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.model_dir is None:
        a.model_dir = os.path.join(tempfile.gettempdir(), f"edgewise-bench-tl-gpt2-l{a.layers}-s{a.seed}")
    a.model_dir = os.path.abspath(a.model_dir)
    if a.worker == "tl":
        return worker_tl(a)

    import numpy as np
    try:
        import edgewise
    except ImportError:
        sys.path.insert(0, os.path.join(ROOT, "build", "python"))
        import edgewise
    from importlib.metadata import version

    torch.set_num_threads(a.threads)
    info = machine_info()
    created = ensure_model(a.model_dir, a.layers, a.seed)
    model = edgewise.load(a.model_dir)
    graph = model.graph()
    data = edgewise.task("ioi", model, n=a.n, seed=a.seed)

    pairs, swapped = [], []
    for ex in data.examples:
        if len(ex["correct"]) != 1 or len(ex["incorrect"]) != 1:
            raise SystemExit(f"expected one answer each: {ex}")
        p = {"clean": ex["clean"], "corrupted": ex["corrupted"],
             "correct": ex["correct"][0], "incorrect": ex["incorrect"][0],
             "clean_ids": model.encode(ex["clean"]), "corrupted_ids": model.encode(ex["corrupted"])}
        if len(p["clean_ids"]) != len(p["corrupted_ids"]):
            raise SystemExit(f"clean and corrupted differ in length: {ex}")
        for side in ("correct", "incorrect"):
            ids = model.encode(p[side])
            if len(ids) != 1:
                raise SystemExit(f"answer {p[side]!r} is {len(ids)} tokens")
            p[side + "_id"] = ids[0]
        pairs.append(p)
        swapped.append({"clean": ex["corrupted"], "corrupted": ex["clean"],
                        "correct": ex["correct"], "incorrect": ex["incorrect"]})
    data_swapped = edgewise.records(swapped, model, name="ioi-swapped")

    def ew_eap(d):
        return edgewise.attribute(model, graph, d, method="eap", progress=False)

    with tempfile.TemporaryDirectory(prefix="edgewise-tl-bench-") as tmp:
        pairs_path, out_path = os.path.join(tmp, "pairs.json"), os.path.join(tmp, "tl_scores.json")
        with open(pairs_path, "w") as f:
            json.dump(pairs, f)
        worker = subprocess.Popen(
            [a.tl_python, os.path.abspath(__file__), "--worker", "tl", "--model-dir", a.model_dir,
             "--pairs", pairs_path, "--out", out_path, "--threads", str(a.threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

        def ask(cmd=None):
            if cmd is not None:
                worker.stdin.write(cmd + "\n")
                worker.stdin.flush()
            line = worker.stdout.readline()
            if not line:
                raise SystemExit(f"the TL worker stopped (exit {worker.wait()})")
            return json.loads(line)

        ready = ask()
        t0 = time.perf_counter()
        ew_eap(data_swapped)
        ew_warmup_s = time.perf_counter() - t0

        tl_rounds, ew_rounds, ew_result = [], [], None
        for _ in range(a.rounds):
            tl_rounds.append(ask("run"))
            t0 = time.perf_counter()
            ew_result = ew_eap(data_swapped)
            ew_rounds.append(time.perf_counter() - t0)
        f64 = None if a.no_f64_reference else ask("f64")
        ask("done")
        worker.wait()
        with open(out_path) as f:
            tl_out = json.load(f)

    control = ew_eap(data)  # unswapped: the gradient at the other prompt
    info["loadavg_end"] = list(os.getloadavg())

    # TL's scores into edgewise's [n_sources, n_readers] layout; the edge sets must be the same.
    mask = graph.real_edge_mask

    def dense(scores):
        out, unknown = torch.zeros(mask.shape, dtype=torch.float64), []
        for name, s in scores.items():
            idx = graph.find_edge(name)
            if idx is None:
                unknown.append(name)
            else:
                out[idx] = s
        return out, unknown

    tl_scores = tl_out["scores"]
    tl_dense, unknown = dense(tl_scores)
    ew_names = set(graph.edge_names)
    edge_sets = {"edgewise_edges": graph.n_edges, "tl_edges_summed_over_positions": len(tl_scores),
                 "tl_edges_per_pair_with_positions": tl_rounds[-1]["position_edges"],
                 "tl_not_in_edgewise": len(unknown), "edgewise_not_in_tl": len(ew_names - set(tl_scores)),
                 "identical": not unknown and ew_names == set(tl_scores)}
    if not edge_sets["identical"]:
        edge_sets["examples_not_in_edgewise"] = unknown[:5]
        edge_sets["examples_not_in_tl"] = sorted(ew_names - set(tl_scores))[:5]

    ew_vec = ew_result.scores[mask].double().numpy()
    tl_vec = tl_dense[mask].numpy()
    ctl_vec = -control.scores[mask].double().numpy()
    cmp = compare(ew_vec, tl_vec)
    ctl = {"what": "edgewise EAP on the unswapped pairs, negated, against TL",
           "max_abs_diff_over_max_abs_score": float(np.abs(ctl_vec - tl_vec).max() / np.abs(tl_vec).max()),
           "spearman": spearman(ctl_vec, tl_vec)}

    reference = None
    if f64 is not None:
        f64_vec = dense(tl_out["f64_scores"])[0][mask].numpy()
        reference = {"what": "TL attribution_patch on a float64 bridge (untimed here): the float32 runs "
                             "of both sides against it",
                     "tl_float64_attribution_patch_s": f64["attribution_patch_s"],
                     "edgewise_f32_vs_tl_f64": compare(ew_vec, f64_vec),
                     "tl_f32_vs_tl_f64": compare(tl_vec, f64_vec)}

    tl_s = [r["attribution_patch_s"] for r in tl_rounds]
    tl_post = [r["postprocess_s"] for r in tl_rounds]
    tl_med, ew_med = statistics.median(tl_s), statistics.median(ew_rounds)
    tl_total_med = statistics.median(x + y for x, y in zip(tl_s, tl_post))
    lengths = [len(p["clean_ids"]) for p in pairs]
    result = {
        "bench": "tl_attribution",
        "settings": {"layers": a.layers, "heads": 12, "d_model": 768, "vocab": 50257, "n_ctx": 128,
                     "n_pairs": len(pairs), "task": "ioi", "seed": a.seed, "rounds": a.rounds,
                     "threads": a.threads, "tl_threads": ready["threads"], "prompt_tokens": lengths,
                     "model_dir": a.model_dir, "model_written_now": created},
        "machine": info,
        "versions": {"edgewise": edgewise.__version__, "edgewise_git": git_state(),
                     "python": platform.python_version(), "torch": torch.__version__,
                     "transformers": version("transformers"), "tl_env": ready["versions"]},
        "timing_s": {
            "tl_attribution_patch_median": tl_med,
            "tl_attribution_patch_rounds": tl_s,
            "tl_per_pair_call_median": statistics.median(c for r in tl_rounds for c in r["per_call_s"]),
            "tl_postprocess_rounds": tl_post,
            "tl_with_postprocess_median": tl_total_med,
            "tl_boot": ready["boot_s"], "tl_warmup_first_pair": ready["warmup_s"],
            "edgewise_attribute_median": ew_med,
            "edgewise_attribute_rounds": ew_rounds,
            "edgewise_warmup": ew_warmup_s,
            "speedup_edgewise_over_tl": tl_med / ew_med,
            "speedup_incl_tl_postprocess": tl_total_med / ew_med,
        },
        "edge_sets": edge_sets,
        "comparison": cmp,
        "tl_max_round_to_round_diff": tl_out["max_round_to_round_diff"],
        "control_unswapped": ctl,
        "float64_reference": reference,
        "score_conventions": {"edgewise_score_sign": ew_result.score_sign,
                              "mapping": "edgewise EAP on swapped pairs == TL denoising EAP, summed over positions"},
        "goal": {"identical_ranking": cmp["ranking_by_abs_identical"],
                 "edgewise_at_least_10x_faster": tl_med / ew_med >= 10},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
