#!/usr/bin/env python3
"""Benchmark harness (not a test): auto-circuit's ACDC (PyPI `auto-circuit`,
auto_circuit.prune_algos.ACDC.acdc_prune_scores, on a TransformerLens HookedTransformer), one tau,
timed, on a GPT-2-shaped model with random seeded weights, and the overlap of its circuit with
edgewise's. Issue 6's "Against auto-circuit's ACDC" benchmark: edgewise runs its ACDC on the same
exported model, the same prompts and the same tau, and writes its kept edges and wall time to a
JSON file that this script compares with (--edgewise-json).

What it does:
  1. builds, or reuses when bench_meta.json there says it has the same shape, seed and embedding
     scale, a model directory (--model-dir, default
     /tmp/acdc-bench/gpt2-l{L}h{H}d{D}m{M}v{V}-s{seed}-e{embed scale}): weights drawn by
     tests/reference/autocircuit_eap.py's random_state_dict, the token embedding (and with it the
     tied unembedding) multiplied by --embed-scale (below), exported as a Hugging Face GPT-2
     checkpoint (its export_hf; transformers' logits checked against TransformerLens'), and
     <model-dir>/prompts.json (autocircuit_bench.py's format: {"clean", "corrupted", "correct",
     "incorrect"}; --batch x --tokens seeded random ids, data seed = --seed + 1, as there). Shape:
     GPT-2 small's (12 heads, d_model 768, d_mlp 3072, vocab 50257, n_ctx 1024) with --layers 4
     by default (one forward per edge: 3135 edges, estimated ~50 min at --threads 2 on 2 idle
     cores from 0.7-1.6 s per forward, more under load; --layers 2: 606 edges, measured 935 s,
     1.54 s per edge, with other jobs sharing the 2 cores);
     --embed-scale (default 0.3): random_state_dict's W_E (std 0.5) with a tied W_U = W_E^T makes
     a degenerate ACDC target at d_model 768: the last token's own logit, ~|LN(x)| |e_tok| cos ~
     27.7 x 13.9 x cos, dwarfs the others (std 14), the clean distribution is one-hot on the
     input token (p ~ 1 - e^-300), and every circuit that keeps input->logits has KL ~1e-24
     (measured, 2 layers, scale 1: auto-circuit removed 605 of 606 edges at tau 0.01, keeping
     input->logits alone). At scale 0.3 (2 layers, 16 x 16 prompts): logit std 4.2, mean top
     probability 0.40, entropy 2.9 nats, KL(clean || corrupted run) 1.5; at 0.1 that KL is only
     0.025. --embed-scale 1 gives autocircuit_bench.py's weights;
  2. in a fresh subprocess (clean peak-memory figures), reads the model back from the export,
     wraps it with auto-circuit's patchable_model (factorized, separate q/k/v, all positions
     ablated together (seq_len None), slice_output "last_seq") and times ONE call of
     acdc_prune_scores(tao_bases=[a], tao_exps=[b], faithfulness_target="kl_div") with
     a * 10**b = --tau, resample ablation from the corrupted prompts, one batch holding every
     prompt. Peak resident memory (VmHWM) over the worker, and over the call alone;
  3. maps every auto-circuit edge to edgewise's name (autocircuit_eap.edgewise_edge: input,
     a{l}.h{h}, m{l} -> a{l}.h{h}<q|k|v>, m{l}, logits); an edge whose prune score is finite
     (= tau) was removed, one whose score is inf was kept;
  4. prints one JSON line: versions, settings, edges_total, kept_edges (sorted names), n_kept,
     n_removed, seconds (the acdc_prune_scores call), peak RSS, the KL of the final circuit, and
     with --edgewise-json the comparison (Jaccard, sizes, symmetric difference, speed-up).
     --out FILE writes the same plus the visit order and each edge's KL (the trajectory);
     --from-result FILE re-does only the comparison from such a file (no ACDC rerun).

What auto-circuit 1.0.1's ACDC computes (read from its source; checked here where said):
  * Visit order. edges = OrderedSet(sorted(model.edges, key=dest.layer, reverse=True)): by the
    reader's "layer" descending, and within a layer in the iteration order of model.edges, which
    is a Python set of frozen dataclasses (Edge(src, dest, seq_idx)). auto-circuit's layers:
    input 0; block b's heads 2b+1 (as senders) and block b's q/k/v readers 2b+1; block b's MLP
    2b+2 (sender and reader); logits ("Resid End", reading blocks.{L-1}.hook_resid_post) 2L+1.
    So the layers are visited logits, m{L-1}, all q/k/v readers of block L-1, m{L-2}, ... -
    reverse topological, as in classic ACDC - but INSIDE one layer (the 3 H q/k/v readers of a
    block, and the senders of every reader) the order is the set's hash order, mixing readers
    and senders. That order is NOT deterministic: the hash of an Edge hashes strings (salted per
    process unless PYTHONHASHSEED is set) and None (seq_idx, head_idx; in CPython < 3.12
    hash(None) is None's address, which moves with address-space randomization). Two processes
    visit the same layer in different orders, and greedy ACDC is order-dependent, so two runs of
    auto-circuit can return different circuits. This script makes the native order reproducible
    on one machine by running the worker with PYTHONHASHSEED=--hash-seed under `setarch -R`
    (no ASLR), records it, and can impose another one: --order canonical (within a layer:
    readers from the last head to the first, each head's q, k, v; each reader's senders from the
    latest to the earliest) or --order FILE (a JSON list of edgewise edge names, or an object
    whose "order" is one, e.g. edgewise's own visit order). auto-circuit still sorts by layer,
    stably, so only the order inside a layer can be imposed (a classic reverse-topological order
    already agrees on the layers). The order used is replayed here and checked: the decisions
    recomputed from the recorded KLs must give exactly the removed set auto-circuit returned.
  * Decision. faith = KL after additionally ablating the edge (all masks of edges removed so
    far at 1); the edge is removed iff faith - prev_faith < tau, SIGNED (an edge whose ablation
    lowers the KL is always removed), and then prev_faith = faith; otherwise its mask goes back
    to 0. prev_faith starts at 0.0 (the KL of the full model to itself). As in classic ACDC the
    threshold applies to each step, not to the total: the final circuit's KL can exceed tau.
  * Metric: tensor_ops.multibatch_kl_div(log_softmax(out), log_softmax(clean_out)) =
    F.kl_div(input=circuit logprobs, target=clean logprobs, log_target=True, reduction="sum")
    / (number of rows) = mean over the batch of KL(clean || circuit) = sum_v p_clean (log p_clean
    - log p_circuit), at the LAST position only (out_slice of slice_output "last_seq": logits
    [:, -1, :]), over the whole vocabulary, float32, then .item() (the comparison with tau is in
    Python floats = double). The clean reference is the unpatched model's output on the clean
    prompts.
  * Ablation: every edge s -> d is patched at d's input: x_d = resid + sum_s mask_sd (corrupt_s -
    current_s) (PatchWrapper), corrupt_s = s's output on the corrupted prompts in an unpatched
    run (src_ablations, resample), current_s = s's output in the current forward. Heads' outputs
    are hook_result (z W_O, without b_O; b_O stays in the residual as it is in both runs). A
    reader whose every in-edge is ablated thus sees exactly the corrupted residual.
  * Partial forwards. Before the loop it caches the clean run's blocks.{i}.hook_resid_pre and
    every sender's clean output; each edge's forward starts at block int(dest.module_name
    .split(".")[1]) from the cached clean residual (q/k/v of block b and m{b}: block b; logits:
    block L-1, since its reader is blocks.{L-1}.hook_resid_post) and runs every later block and
    the unembedding (for all T positions; only the last is used). This is exact, not an
    approximation: the readers are visited in descending layer, so no removed edge feeds a block
    before the start, and the senders there keep their clean outputs (auto-circuit passes the
    cached clean sender outputs as curr_src_outs; the senders that do run overwrite theirs).
    Nothing else is cached: no state of the current circuit, one full downstream forward per
    edge, no batching of candidates.
  * No skipping. Every edge is tried, including the in-edges of a reader whose node has no kept
    out-edge left (its output then reaches nothing, so the KL moves only by float32 rounding,
    ~1e-7, and for tau above that the edge is removed - the same set as skipping the reader and
    counting those edges removed, one wasted forward each). Senders whose in-edges were all
    removed keep their kept out-edges (no "remove redundant" pass).
  * prune scores: init inf; a removed edge gets min(tau, previous) (stored in float32); with one
    tau: removed = tau.

Not here: edgewise's own ACDC and figures (bench/ and docs/), checking auto-circuit's scores
(tests/reference/autocircuit_eap.py), the EAP/IG timings (bench/autocircuit_bench.py).
auto_circuit.prune_algos.ACDC imports ordered_set (PyPI ordered-set, a declared dependency of
auto-circuit): pip install --no-deps ordered-set==4.1.0 torch==2.13.0.

  .venv/bin/python bench/autocircuit_acdc.py [--layers 4 --heads 12 --d-model 768 --d-mlp 3072
      --batch 16 --tokens 16 --tau 0.01 --threads 2 --seed 0 --embed-scale 0.3 --hash-seed 0
      --order native|canonical|FILE --model-dir DIR --out result.json --edgewise-json FILE]
  .venv/bin/python bench/autocircuit_acdc.py --from-result result.json --edgewise-json edgewise.json
"""
import argparse
import decimal
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "reference"))

import torch  # noqa: E402

import autocircuit_bench as acb  # noqa: E402  (load_patchable, proc_status_kib, reset_peak_rss)
import autocircuit_eap as ace  # noqa: E402

DEFAULT_ROOT = "/tmp/acdc-bench"
META = "bench_meta.json"


def parse_tau(text):
    """'0.01', '1e-2', '3e-3', ... -> (a, b, a * 10**b) with a an integer in 1..9 (auto-circuit
    computes its tau as base * 10**exp from tao_bases and tao_exps; the float returned is that
    product, exactly as auto-circuit forms it)."""
    try:
        d = decimal.Decimal(text).normalize()
    except decimal.InvalidOperation:
        raise SystemExit(f"--tau {text!r}: not a number")
    sign, digits, exp = d.as_tuple()
    if sign or len(digits) != 1 or digits[0] == 0 or not isinstance(exp, int):
        raise SystemExit(f"--tau {text!r}: expected a * 10^b with an integer a in 1..9 "
                         "(auto-circuit's tao_bases x tao_exps), e.g. 0.01, 3e-3")
    return digits[0], exp, digits[0] * 10 ** exp


def model_shape(a):
    if a.d_model % a.heads:
        raise SystemExit(f"--d-model {a.d_model} is not a multiple of --heads {a.heads}")
    return dict(n_layers=a.layers, n_heads=a.heads, d_model=a.d_model,
                d_head=a.d_model // a.heads, d_mlp=a.d_mlp, n_ctx=a.n_ctx, d_vocab=a.vocab)


def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{what} {path}: cannot read JSON ({e})")


# ----------------------------------------------------------------------------------------------
# Model directory and prompts
# ----------------------------------------------------------------------------------------------

def ensure_model(a, shape):
    """Builds or reuses <model-dir> (+ prompts). Returns what was done, for the report."""
    meta_path = os.path.join(a.model_dir, META)
    meta = {}
    if os.path.exists(meta_path) and not a.rebuild:
        meta = read_json(meta_path, "model metadata")
    have_model = (meta.get("shape") == shape and meta.get("seed") == a.seed
                  and meta.get("embed_scale") == a.embed_scale
                  and all(os.path.exists(os.path.join(a.model_dir, f))
                          for f in ("config.json", "model.safetensors")))
    want_prompts = {"batch": a.batch, "tokens": a.tokens, "seed": a.seed + 1, "path": a.prompts}
    have_prompts = have_model and meta.get("prompts") == want_prompts and os.path.exists(a.prompts)
    done = {"model": "reused" if have_model else "built",
            "prompts": "reused" if have_prompts else "written"}
    if have_model and have_prompts:
        done["export_max_abs_diff"] = meta.get("export_max_abs_diff")
        return done

    t0 = time.perf_counter()
    peers = ace.import_peers()
    sd = ace.random_state_dict(peers, shape, a.seed)
    sd["embed.W_E"] = sd["embed.W_E"] * a.embed_scale
    sd["unembed.W_U"] = sd["embed.W_E"].T.contiguous()  # tied, as random_state_dict makes it
    if not have_model:
        print(f"autocircuit_acdc: building {a.model_dir}", file=sys.stderr)
        ace.export_hf(sd, shape, a.model_dir)
    # Same draw as autocircuit_bench.py: data seed = model seed + 1.
    data = ace.make_data(shape["d_vocab"], a.batch, a.tokens, a.seed + 1)
    with open(a.prompts, "w") as f:
        json.dump(data, f)
    tl_model = ace.make_tl_model(peers, shape, sd, True)
    del sd
    ids = torch.cat([torch.tensor(data["clean"]), torch.tensor(data["corrupted"])])
    diff = ace.check_export(tl_model, a.model_dir, ids)
    # float32 on both sides, the same operations in another order: ~1e-5 on logits of size ~10
    # (5e-5 measured at 4 layers, vocab 50257); a wrong layout or missing bias moves them by O(1).
    if diff > 1e-3:
        raise SystemExit(f"autocircuit_acdc: the export does not reproduce the TransformerLens "
                         f"model: max |logits diff| {diff:.3g} > 1e-3")
    del tl_model
    gc.collect()
    meta = {"shape": shape, "seed": a.seed, "embed_scale": a.embed_scale, "prompts": want_prompts,
            "export_max_abs_diff": diff}
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    done.update(export_max_abs_diff=diff, build_s=time.perf_counter() - t0)
    return done


# ----------------------------------------------------------------------------------------------
# The worker: auto-circuit's ACDC, timed
# ----------------------------------------------------------------------------------------------

def canonical_key(edge):
    """--order canonical: within auto-circuit's layer, readers from the last head to the first
    (each head's q, k, v), then each reader's senders from the latest to the earliest."""
    d = edge.dest
    letter = d.name.rsplit(".", 1)[-1] if d.name.startswith("A") else ""
    return (-(d.head_idx if d.head_idx is not None else -1), "QKV".find(letter),
            -edge.src.src_idx)


def impose_order(pm, how):
    """Replaces pm.edges (a set) by a list in the wanted order; None for auto-circuit's own."""
    if how == "native":
        return None
    if how == "canonical":
        return sorted(pm.edges, key=canonical_key)
    spec = read_json(how, "--order")
    names = spec.get("order") if isinstance(spec, dict) else spec
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SystemExit(f"--order {how}: expected a JSON list of edge names or "
                         "{\"order\": [...]}")
    by_name = {ace.edgewise_edge(e): e for e in pm.edges}
    unknown = [n for n in names if n not in by_name]
    missing = sorted(set(by_name) - set(names))
    if unknown or missing or len(names) != len(set(names)):
        raise SystemExit(f"--order {how}: not a permutation of the model's {len(by_name)} edges: "
                         f"{len(unknown)} unknown (e.g. {unknown[:3]}), {len(missing)} missing "
                         f"(e.g. {missing[:3]}), {len(names) - len(set(names))} repeated")
    return [by_name[n] for n in names]


def worker(a):
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    peers = ace.import_peers()
    try:
        from auto_circuit.prune_algos import ACDC as acdc_mod
    except ModuleNotFoundError as e:
        raise SystemExit(f"auto_circuit.prune_algos.ACDC: {e}; pip install --no-deps "
                         "ordered-set==4.1.0 torch==2.13.0")
    data = read_json(a.prompts, "prompts")
    pm, dl, setup_s = acb.load_patchable(peers, a.model_dir, data)
    imposed = impose_order(pm, a.order)
    if imposed is not None:
        pm.edges = imposed  # acdc_prune_scores only iterates it (sorted(model.edges, ...))
    # The order acdc_prune_scores visits: the same expression over the same, unmodified
    # collection (a set iterates in the same order each time in one process).
    visit = sorted(pm.edges, key=lambda x: x.dest.layer, reverse=True)
    names = [ace.edgewise_edge(e) for e in visit]
    if len(set(names)) != len(names):
        raise SystemExit("autocircuit_acdc: two auto-circuit edges map to one edgewise name")

    # Record each KL acdc_prune_scores computes (one per edge, in visit order): a wrapper around
    # the module-level name it calls, returning the very same tensor.
    kls = []
    kl_fn = acdc_mod.multibatch_kl_div

    def recording_kl(inp, target):
        v = kl_fn(inp, target)
        kls.append(v)
        return v

    acdc_mod.multibatch_kl_div = recording_kl
    rss_loaded = acb.proc_status_kib("VmRSS")
    peak_load = acb.proc_status_kib("VmHWM")
    reset_ok = acb.reset_peak_rss()
    t = time.perf_counter()
    ps = acdc_mod.acdc_prune_scores(pm, dl, None, tao_exps=[a.tau_exp], tao_bases=[a.tau_base],
                                    faithfulness_target="kl_div")
    seconds = time.perf_counter() - t
    peak_call = acb.proc_status_kib("VmHWM") if reset_ok else None
    acdc_mod.multibatch_kl_div = kl_fn

    tau = a.tau_base * 10 ** a.tau_exp  # exactly as acdc_prune_scores forms it
    scores = {n: float(e.prune_score(ps)) for n, e in zip(names, visit)}
    removed = {n for n, s in scores.items() if math.isfinite(s)}
    tau32 = float(torch.tensor(tau, dtype=ps[visit[0].dest.module_name].dtype))  # scores' dtype
    bad = [n for n in removed if scores[n] != tau32]
    if bad or len(kls) != len(visit):
        raise SystemExit(f"autocircuit_acdc: unexpected ACDC output: {len(kls)} KLs for "
                         f"{len(visit)} edges, {len(bad)} finite scores != tau (e.g. {bad[:3]})")
    # Replay the decision rule on the recorded KLs in the recorded order: it must reproduce the
    # removed set exactly (checks the visit order and the rule documented above).
    prev, replay, trajectory = 0.0, set(), []
    for n, v in zip(names, kls):
        kl = v.item()
        gone = kl - prev < tau
        if gone:
            replay.add(n)
            prev = kl
        trajectory.append([n, kl, "removed" if gone else "kept"])
    if replay != removed:
        raise SystemExit(f"autocircuit_acdc: replaying the decisions gives {len(replay)} removed "
                         f"edges, auto-circuit returned {len(removed)} (order not captured?)")
    print(json.dumps({
        "edges_total": len(visit), "n_removed": len(removed), "n_kept": len(visit) - len(removed),
        "kept_edges": sorted(set(names) - removed), "seconds": seconds,
        "seconds_per_edge": seconds / len(visit), "final_kl": prev, "setup_s": setup_s,
        "rss_loaded_mib": rss_loaded / 1024,
        "peak_rss_mib": max(peak_load, peak_call or acb.proc_status_kib("VmHWM")) / 1024,
        "peak_rss_call_mib": peak_call / 1024 if peak_call else None,
        "worker_total_s": time.perf_counter() - t0, "tau_value": tau,
        "order_reordered_by_layer": (imposed is not None
                                     and [ace.edgewise_edge(e) for e in imposed] != names),
        "visit_order": names, "trajectory": trajectory,
    }))


def run_worker(a):
    """The worker in a fresh process: its own peak memory; PYTHONHASHSEED and, where setarch
    can turn address-space randomization off, a reproducible native visit order."""
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads),
               PYTHONHASHSEED=str(a.hash_seed))
    prefix, reproducible = [], False
    if a.order == "native" and not a.no_setarch and shutil.which("setarch"):
        probe = subprocess.run(["setarch", "-R", "true"], capture_output=True)
        if probe.returncode == 0:
            prefix, reproducible = ["setarch", "-R"], True
    cmd = prefix + [sys.executable, os.path.abspath(__file__), "--worker",
                    "--model-dir", a.model_dir, "--prompts", a.prompts, "--threads", str(a.threads),
                    "--tau", a.tau, "--order", a.order]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-4000:] + r.stdout[-2000:])
        raise SystemExit(f"autocircuit_acdc: worker failed ({r.returncode})")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["order_reproducible"] = reproducible if a.order == "native" else True
    return res


# ----------------------------------------------------------------------------------------------
# Comparison with edgewise
# ----------------------------------------------------------------------------------------------

def compare(result, path, show=20):
    ew = read_json(path, "--edgewise-json")
    if not isinstance(ew, dict) or not isinstance(ew.get("kept_edges"), list):
        raise SystemExit(f"--edgewise-json {path}: expected "
                         "{\"kept_edges\": [...], \"seconds\": s}")
    mine, theirs = set(result["kept_edges"]), set(ew["kept_edges"])
    universe = set(result["visit_order"])
    inter, union = mine & theirs, mine | theirs
    only_ac, only_ew = sorted(mine - theirs), sorted(theirs - mine)
    unknown = sorted(theirs - universe)
    out = {"edgewise_json": os.path.abspath(path), "n_kept_autocircuit": len(mine),
           "n_kept_edgewise": len(theirs), "intersection": len(inter), "union": len(union),
           "jaccard": len(inter) / len(union) if union else 1.0,
           "n_only_autocircuit": len(only_ac), "only_autocircuit": only_ac[:show],
           "n_only_edgewise": len(only_ew), "only_edgewise": only_ew[:show],
           "n_edgewise_unknown_names": len(unknown), "edgewise_unknown_names": unknown[:show],
           "autocircuit_seconds": result["seconds"]}
    secs = ew.get("seconds")
    if isinstance(secs, (int, float)) and secs > 0:
        out.update(edgewise_seconds=secs, speedup=result["seconds"] / secs)
    # When edgewise gives its visit order ("order", the same list --order FILE takes): whether
    # the two runs visited in the same order, and the first edge they decided differently.
    order = ew.get("order")
    if isinstance(order, list):
        out["same_visit_order"] = order == result["visit_order"]
        differ = set(only_ac) | set(only_ew)
        out["first_difference_in_autocircuit_order"] = next(
            (n for n in result["visit_order"] if n in differ), None)
    return out


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--d-mlp", type=int, default=3072)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--n-ctx", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--tau", default="0.01", help="a * 10^b, a in 1..9 (e.g. 0.01, 3e-3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="weights; the prompts use seed + 1")
    ap.add_argument("--embed-scale", type=float, default=0.3,
                    help="multiplies W_E (= W_U^T); 1 = autocircuit_bench.py's weights")
    ap.add_argument("--hash-seed", type=int, default=0, help="the worker's PYTHONHASHSEED")
    ap.add_argument("--no-setarch", action="store_true",
                    help="leave address-space randomization on (native order not reproducible)")
    ap.add_argument("--order", default="native", help="native | canonical | FILE (see above)")
    ap.add_argument("--model-dir",
                    help=f"default {DEFAULT_ROOT}/gpt2-l{{L}}h{{H}}d{{D}}m{{M}}v{{V}}-s{{seed}}"
                         "-e{embed scale}")
    ap.add_argument("--prompts", help="default: <model-dir>/prompts.json")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the model and prompts")
    ap.add_argument("--out", help="also write the full result (visit order, trajectory) here")
    ap.add_argument("--edgewise-json",
                    help="edgewise's result: {\"kept_edges\": [...], \"seconds\": s}")
    ap.add_argument("--from-result", help="a previous --out file: compare only, no ACDC run")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.tau_base, a.tau_exp, tau_value = parse_tau(a.tau)
    if a.order not in ("native", "canonical"):
        a.order = os.path.abspath(a.order)
    shape = model_shape(a)
    a.model_dir = os.path.abspath(a.model_dir or os.path.join(
        DEFAULT_ROOT, f"gpt2-l{a.layers}h{a.heads}d{a.d_model}m{a.d_mlp}v{a.vocab}-s{a.seed}"
                      f"-e{a.embed_scale:g}"))
    a.prompts = os.path.abspath(a.prompts or os.path.join(a.model_dir, "prompts.json"))
    if a.worker:
        return worker(a)

    if a.from_result:
        full = read_json(a.from_result, "--from-result")
        if a.edgewise_json:
            full["comparison"] = compare(full, a.edgewise_json)
        full.pop("visit_order", None)
        full.pop("trajectory", None)
        print(json.dumps(full))
        return

    t0 = time.perf_counter()
    torch.set_num_threads(a.threads)
    os.makedirs(a.model_dir, exist_ok=True)
    built = ensure_model(a, shape)
    res = run_worker(a)

    from importlib.metadata import version
    full = {
        "bench": "autocircuit_acdc",
        "versions": {"auto-circuit": version("auto-circuit"),
                     "transformer-lens": version("transformer-lens"), "torch": torch.__version__,
                     "python": sys.version.split()[0]},
        "settings": {"model": {**shape, "weights": f"random, seed {a.seed}, W_E = W_U^T "
                                                   f"scaled by {a.embed_scale:g}"},
                     "model_dir": a.model_dir, "prompts": a.prompts, "batch": a.batch,
                     "tokens": a.tokens, "data_seed": a.seed + 1, "seed": a.seed,
                     "tau": tau_value, "tau_base": a.tau_base, "tau_exp": a.tau_exp,
                     "threads": a.threads, "hash_seed": a.hash_seed, "order": a.order,
                     "order_reproducible": res.pop("order_reproducible"),
                     "separate_qkv": True, "seq_len": None, "slice_output": "last_seq",
                     "ablation": "resample (corrupted prompts), one batch of every prompt",
                     "metric": "kl_div: mean over prompts of KL(clean || circuit) at the last "
                               "position (auto_circuit multibatch_kl_div)",
                     "rule": "removed iff KL_after - KL_current < tau (signed)",
                     "dtype": "float32", "device": "cpu"},
        **built, **res, "total_s": time.perf_counter() - t0,
    }
    if a.edgewise_json:
        full["comparison"] = compare(full, a.edgewise_json)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(full, f, indent=1)
    line = {k: v for k, v in full.items() if k not in ("visit_order", "trajectory")}
    print(json.dumps(line))


if __name__ == "__main__":
    main()
