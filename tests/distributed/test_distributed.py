"""Runs across processes (edgewise/distributed.h, docs/SCALING.md): every method on 2 and 3 ranks
(Gloo over loopback, `edgewise --nproc N`) against the same command on one rank, on the small
random GPT-2 and Llama checkpoints of the model_golden fixture; a rank killed mid-run stops the
others with an error naming it; a checkpoint resumes with another number of ranks.

The reference is the 1-rank run of the same build: a distributed run computes every example
exactly as one rank does (the same batches, the same passes) and differs only in the order in
which the per-batch sums are added, and — for methods that split one batch across ranks (ACDC,
Edge Pruning, circuit-tuning) — in the matrix products over fewer rows, whose float32 rounding
differs in the last bits. Hence the tolerances below.
"""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

CLI = os.environ["EW_CLI"]
GOLDEN = os.environ["EW_GOLDEN_DIR"]
GPT2 = os.path.join(GOLDEN, "model_golden", "gpt2")
# The Llama family (Qwen2: Llama's block with q/k/v biases). Its tokenizer is byte-level
# (256 ids), so its task is a file of letter prompts whose answers are single bytes
# (`letters`, written per test), with clean and corrupted prompts of equal byte counts.
LLAMA = os.path.join(GOLDEN, "model_golden", "qwen2_padded")


def task_for(model, tmp_path):
    if model != LLAMA:
        return "ioi"
    path = tmp_path / "letters.jsonl"
    rows = []
    for i in range(16):
        a, b, c = "ABCDEFGHIJKLMNOP"[i], "QRSTUVWXYZ"[i % 10], "abcdefghijklmnop"[i]
        rows.append({"clean": f"When {a} and {b} met, {b} gave it to", "corrupted": f"When {a} and {b} met, {c} gave it to",
                     "correct": a, "incorrect": b})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)
ENV = dict(os.environ, OMP_WAIT_POLICY="passive", OMP_NUM_THREADS="1")

# Attribution scores are float64 sums over batches computed exactly as on one rank; only the
# order of those additions changes (relative 1e-15). The bound is 1e-6 of the largest.
SCORE_RTOL = 1e-6
# Metrics averaged over examples: float64 sums in another order (1e-15), plus, where a batch is
# split (ACDC's one batch), float32 products over fewer rows (a few ulps of float32).
METRIC_RTOL = 1e-5


def run(args, nproc=1, check=True, env=None, timeout=600, pipeline=None):
    cmd = [CLI] + (["--nproc", str(nproc)] if nproc > 1 else []) + (["--pipeline", str(pipeline)] if pipeline else []) + args
    r = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return r


def edges(path):
    with open(path) as f:
        c = json.load(f)
    return c, {k: (v["score"], v["in_graph"]) for k, v in c["edges"].items()}


def close(a, b, rtol, scale=None):
    scale = scale if scale is not None else max(abs(a), abs(b), 1e-300)
    return abs(a - b) <= rtol * scale


def compare_scores(one, many, rtol=SCORE_RTOL, same_circuit=True):
    c1, e1 = edges(one)
    c2, e2 = edges(many)
    assert e1.keys() == e2.keys()
    top = max(abs(s) for s, _ in e1.values()) or 1.0
    worst = max(abs(e1[k][0] - e2[k][0]) for k in e1) / top
    assert worst <= rtol, f"{many}: scores differ by {worst:.3g} of the largest"
    if same_circuit:
        diff = [k for k in e1 if e1[k][1] != e2[k][1]]
        assert not diff, f"{many}: {len(diff)} edges differ in the circuit, e.g. {diff[:3]}"
    m1 = c1["edgewise"].get("evaluation", {})
    m2 = c2["edgewise"].get("evaluation", {})
    for k, v in m1.items():
        if isinstance(v, float):
            assert close(v, m2[k], METRIC_RTOL), f"{many}: evaluation {k} {v} vs {m2[k]}"


ATTRIBUTION = ["eap", "eap-ig-inputs", "eap-ig-activations", "clean-corrupted", "mask-gradient",
               "mask-gradient-ig", "exact"]


@pytest.mark.parametrize("method", ATTRIBUTION)
def test_attribution_matches_one_rank(tmp_path, method):
    # 10 examples in batches of 3: four batches, shared 2/2 over 2 ranks and 2/1/1 over 3.
    base = ["discover", GPT2, "--task", "ioi", "-n", "10", "--batch-size", "3", "--method", method,
            "--edges", "20"]
    run(base + ["-o", str(tmp_path / "one.json")])
    for n in (2, 3):
        run(base + ["-o", str(tmp_path / f"n{n}.json")], nproc=n)
        compare_scores(tmp_path / "one.json", tmp_path / f"n{n}.json")


@pytest.mark.parametrize("model,ablation", [(GPT2, "mean"), (LLAMA, "resample"), (LLAMA, "mean-positional")])
def test_eap_other_ablations_and_models(tmp_path, model, ablation):
    base = ["discover", model, "--task", task_for(model, tmp_path), "-n", "9", "--batch-size", "2", "--method", "eap-ig-inputs",
            "--ablation", ablation, "--edges", "20", "--curve", str(tmp_path / "{}.csv")]
    run([a.replace("{}", "one") for a in base] + ["-o", str(tmp_path / "one.json")])
    run([a.replace("{}", "n3") for a in base] + ["-o", str(tmp_path / "n3.json")], nproc=3)
    compare_scores(tmp_path / "one.json", tmp_path / "n3.json")
    # The faithfulness curve: every circuit's metrics over every rank's examples.
    a = np.genfromtxt(tmp_path / "one.csv", delimiter=",", names=True)
    b = np.genfromtxt(tmp_path / "n3.csv", delimiter=",", names=True)
    for name in a.dtype.names:
        np.testing.assert_allclose(b[name], a[name], rtol=METRIC_RTOL, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("mode", ["classic", "group", "rollback"])
@pytest.mark.parametrize("model", [GPT2, LLAMA])
def test_acdc_same_edges(tmp_path, mode, model):
    base = ["discover", model, "--task", task_for(model, tmp_path), "-n", "7", "--method", "acdc", "--acdc-mode", mode,
            "--tau", "0.02"]
    run(base + ["-o", str(tmp_path / "one.json")])
    for n in (2, 3):
        run(base + ["-o", str(tmp_path / f"n{n}.json")], nproc=n)
        # ACDC's scores are the metric changes it measured: differences of float32 metrics over
        # fewer rows per rank, each metric a few ulps off (1e-7 of |M|), so a small change can be
        # 1e-5 of the largest change off; 1e-4 of the largest. The circuit: identical.
        compare_scores(tmp_path / "one.json", tmp_path / f"n{n}.json", rtol=1e-4)


@pytest.mark.parametrize("method", ["edge-pruning", "hap"])
def test_edge_pruning_same_masks(tmp_path, method):
    base = ["discover", GPT2, "--task", "ioi", "-n", "24", "--batch-size", "8", "--method", method,
            "--steps", "40", "--target", "0.5", "--lr", "0.5"]
    run(base + ["-o", str(tmp_path / "one.json")])
    for n in (2, 3):
        run(base + ["-o", str(tmp_path / f"n{n}.json")], nproc=n)
        # The mask each edge ends with (its score) after 40 AdamW steps on gradients summed in another
        # order and float32 products over fewer rows: 1e-4 of the largest (the masks are in [0, 1]).
        compare_scores(tmp_path / "one.json", tmp_path / f"n{n}.json", rtol=1e-4)
        # The training loss at every logged step, over every rank's share of the step's batch.
        a = np.genfromtxt(tmp_path / "one.log.csv", delimiter=",", names=True)
        b = np.genfromtxt(tmp_path / f"n{n}.log.csv", delimiter=",", names=True)
        # While the masks are near 1 the KL is float32 rounding of near-equal logits (~1e-7),
        # whatever the ranks: atol 1e-6 covers it; later the KL agrees to 1e-3.
        np.testing.assert_allclose(b["kl"], a["kl"], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("method", ["path-patching", "flap", "app"])
def test_head_set_methods(tmp_path, method):
    base = ["discover", GPT2, "--task", "ioi", "-n", "9", "--batch-size", "2", "--method", method,
            "--importance-threshold", "1", "--min-value-threshold", "0.001"]
    run(base + ["-o", str(tmp_path / "one.json")])
    for n in (2, 3):
        run(base + ["-o", str(tmp_path / f"n{n}.json")], nproc=n)
        compare_scores(tmp_path / "one.json", tmp_path / f"n{n}.json", rtol=METRIC_RTOL)


def test_evaluate_metrics_equal(tmp_path):
    run(["discover", GPT2, "--task", "ioi", "-n", "8", "--method", "eap", "--edges", "30", "-o",
         str(tmp_path / "c.json")])
    base = ["evaluate", GPT2, "--task", "ioi", "-n", "11", "--batch-size", "3", "--circuit", str(tmp_path / "c.json"),
            "--metric", "kl"]
    # The printed table (4 decimals): the same figures on any number of ranks.
    drop_time = lambda text: [l for l in text.splitlines() if not l.startswith("time")]
    one = drop_time(run(base).stdout)
    for n in (2, 3):
        assert drop_time(run(base, nproc=n).stdout) == one


def test_tune_same_weights(tmp_path):
    base = ["tune", GPT2, "--task", "ioi", "-n", "24", "--rounds", "2", "--steps-per-round", "3", "--batch-size",
            "6", "--discovery-examples", "6", "--nodes", "3"]
    run(base + ["-o", str(tmp_path / "one")])
    w1 = load_file(str(tmp_path / "one" / "model.safetensors"))
    for n in (2, 3):
        run(base + ["-o", str(tmp_path / f"n{n}")], nproc=n)
        w2 = load_file(str(tmp_path / f"n{n}" / "model.safetensors"))
        for k in w1:
            # Six AdamW steps from gradients summed in another order: the updates agree to 1e-5
            # of the weights' scale.
            np.testing.assert_allclose(w2[k], w1[k], rtol=0, atol=1e-5 * max(1.0, float(np.abs(w1[k]).max())),
                                       err_msg=k)


def test_only_rank_zero_prints_and_writes(tmp_path):
    r = run(["discover", GPT2, "--task", "ioi", "-n", "6", "--method", "eap", "-o", str(tmp_path / "c.json")],
            nproc=3)
    one = run(["discover", GPT2, "--task", "ioi", "-n", "6", "--method", "eap", "-o", str(tmp_path / "d.json")])
    assert r.stdout.count("edges") == one.stdout.count("edges")
    assert sorted(os.listdir(tmp_path)) == ["c.json", "d.json"]  # no rank's staged file is left


def test_torchrun_environment(tmp_path):
    """RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT as torchrun sets them, one process per rank."""
    port = 29000 + os.getpid() % 1000
    args = [CLI, "discover", GPT2, "--task", "ioi", "-n", "6", "--method", "eap", "-o", str(tmp_path / "t.json")]
    procs = [subprocess.Popen(args, env=dict(ENV, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r),
                                              MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[1][0] == ""  # rank 1 prints nothing
    run(["discover", GPT2, "--task", "ioi", "-n", "6", "--method", "eap", "-o", str(tmp_path / "o.json")])
    compare_scores(tmp_path / "o.json", tmp_path / "t.json")


TORCHRUN = os.path.join(os.path.dirname(os.sys.executable), "torchrun")


def test_torchrun_itself(tmp_path):
    """torchrun (from the torch wheel) launching the binary: its agent hosts the store, every
    rank is a client (TORCHELASTIC_USE_AGENT_STORE)."""
    if not os.path.exists(TORCHRUN):
        pytest.skip(f"{TORCHRUN} missing")
    args = ["discover", GPT2, "--task", "ioi", "-n", "10", "--batch-size", "3", "--method", "eap"]
    r = subprocess.run([TORCHRUN, "--nproc-per-node", "2", "--master-port", str(31000 + os.getpid() % 1000),
                        "--no-python", CLI] + args + ["-o", str(tmp_path / "t.json")],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    run(args + ["-o", str(tmp_path / "o.json")])
    compare_scores(tmp_path / "o.json", tmp_path / "t.json")


def test_bad_environment_is_one_error():
    # A bad environment is a failed run (exit 1); a bad --nproc a bad command line (2, as CLI11's).
    r = run(["info", GPT2], check=False, env=dict(ENV, RANK="1", WORLD_SIZE="x"))
    assert r.returncode == 1 and "WORLD_SIZE" in r.stderr, r.stderr
    r = run(["info", GPT2], check=False, env=dict(ENV, RANK="0", WORLD_SIZE="2"))
    assert r.returncode == 1 and "MASTER_ADDR" in r.stderr, r.stderr
    r = run(["--nproc", "0", "info", GPT2], check=False)
    assert r.returncode == 2 and "--nproc" in r.stderr, r.stderr


# --- Model parallel: the layers split over ranks (a pipeline, --pipeline P) ---
# Each stage runs its own layers on every example, so the arithmetic is one rank's except where a
# stage starts: its first readers' corrections come from one GEMM over the received store rows
# where one rank had cut that GEMM at other layers (docs/PATCHING.md's chunks). Those float32 sums
# in another grouping move a score by a few 1e-7 of the largest at most (measured 4.2e-7 for
# mask-gradient-ig, 0 for the methods at all-ones masks): the 1e-6 holds.


@pytest.mark.parametrize("method", ATTRIBUTION)
def test_pipeline_attribution_matches_one_rank(tmp_path, method):
    base = ["discover", GPT2, "--task", "ioi", "-n", "10", "--batch-size", "3", "--method", method,
            "--edges", "20"]
    run(base + ["-o", str(tmp_path / "one.json")])
    run(base + ["-o", str(tmp_path / "p2.json")], nproc=2, pipeline=2)  # 2 ranks, half the layers each
    compare_scores(tmp_path / "one.json", tmp_path / "p2.json")


def test_pipeline_three_stages_and_with_data_parallel(tmp_path):
    """Qwen2 (the Llama family) over 3 stages (a layer each), and 4 ranks as 2 pipelines of 2
    stages sharing the examples; the faithfulness curve too."""
    base = ["discover", LLAMA, "--task", task_for(LLAMA, tmp_path), "-n", "9", "--batch-size", "2", "--method",
            "eap-ig-inputs", "--ablation", "mean-positional", "--edges", "20", "--curve", str(tmp_path / "{}.csv")]
    run([a.replace("{}", "one") for a in base] + ["-o", str(tmp_path / "one.json")])
    for name, nproc, stages in (("p3", 3, 3), ("d2p2", 4, 2)):
        run([a.replace("{}", name) for a in base] + ["-o", str(tmp_path / f"{name}.json")], nproc=nproc, pipeline=stages)
        compare_scores(tmp_path / "one.json", tmp_path / f"{name}.json")
        a = np.genfromtxt(tmp_path / "one.csv", delimiter=",", names=True)
        b = np.genfromtxt(tmp_path / f"{name}.csv", delimiter=",", names=True)
        for col in a.dtype.names:
            np.testing.assert_allclose(b[col], a[col], rtol=METRIC_RTOL, atol=1e-12, err_msg=col)


@pytest.mark.parametrize("method", ["edge-pruning", "hap"])
def test_pipeline_edge_pruning_same_masks(tmp_path, method):
    base = ["discover", GPT2, "--task", "ioi", "-n", "24", "--batch-size", "8", "--method", method,
            "--steps", "40", "--target", "0.5", "--lr", "0.5"]
    run(base + ["-o", str(tmp_path / "one.json")])
    for name, nproc, stages in (("p2", 2, 2), ("d2p2", 4, 2)):
        run(base + ["-o", str(tmp_path / f"{name}.json")], nproc=nproc, pipeline=stages)
        # As for data parallel (test_edge_pruning_same_masks): 40 AdamW steps on mask gradients
        # summed over the stages (each its readers' columns) and over the data group.
        compare_scores(tmp_path / "one.json", tmp_path / f"{name}.json", rtol=1e-4)
        a = np.genfromtxt(tmp_path / "one.log.csv", delimiter=",", names=True)
        b = np.genfromtxt(tmp_path / f"{name}.log.csv", delimiter=",", names=True)
        np.testing.assert_allclose(b["kl"], a["kl"], rtol=1e-3, atol=1e-6)


def test_pipeline_evaluate_metrics_equal(tmp_path):
    run(["discover", GPT2, "--task", "ioi", "-n", "8", "--method", "eap", "--edges", "30", "-o",
         str(tmp_path / "c.json")])
    base = ["evaluate", GPT2, "--task", "ioi", "-n", "11", "--batch-size", "3", "--circuit", str(tmp_path / "c.json"),
            "--metric", "kl"]
    drop_time = lambda text: [l for l in text.splitlines() if not l.startswith("time")]
    assert drop_time(run(base, nproc=2, pipeline=2).stdout) == drop_time(run(base).stdout)


def test_pipeline_stage_holds_its_layers_only():
    r = run(["info", GPT2], nproc=2, pipeline=2)
    assert "holds layers 0 to 1 of 3 (a pipeline stage)" in r.stdout, r.stdout  # rank 0 prints


@pytest.mark.parametrize("method", ["path-patching", "flap", "app"])
def test_pipeline_head_set_methods(tmp_path, method):
    """FLAP's hooks run on the stage holding their layer; its statistics and channel metrics are
    summed over the stages (each row one stage's); path patching's sweeps are patched forwards."""
    base = ["discover", GPT2, "--task", "ioi", "-n", "9", "--batch-size", "2", "--method", method,
            "--importance-threshold", "1", "--min-value-threshold", "0.001"]
    run(base + ["-o", str(tmp_path / "one.json")])
    run(base + ["-o", str(tmp_path / "p2.json")], nproc=2, pipeline=2)
    compare_scores(tmp_path / "one.json", tmp_path / "p2.json", rtol=METRIC_RTOL)


@pytest.mark.parametrize("mode", ["classic", "group", "rollback"])
@pytest.mark.parametrize("model", [GPT2, LLAMA])
def test_pipeline_acdc_same_edges(tmp_path, mode, model):
    """In a pipeline ACDC evaluates each candidate batch with the patched forward (stage by stage,
    from the clean cache) instead of its incremental engine: the same metrics up to float32
    rounding, so the same decisions."""
    base = ["discover", model, "--task", task_for(model, tmp_path), "-n", "7", "--method", "acdc", "--acdc-mode", mode,
            "--tau", "0.02"]
    run(base + ["-o", str(tmp_path / "one.json")])
    run(base + ["-o", str(tmp_path / "p2.json")], nproc=2, pipeline=2)
    # As across data-parallel ranks: the scores are metric changes, differences of float32
    # metrics computed in another order (measured up to 1.9e-5 of the largest change); the
    # circuit: identical.
    compare_scores(tmp_path / "one.json", tmp_path / "p2.json", rtol=1e-4)


@pytest.mark.parametrize("case", ["nodes", "edges-embeddings-norms-adamw-clip", "qwen2-2x2"])
def test_pipeline_tune_same_weights(tmp_path, case):
    """Each stage trains its own layers' weights (the embeddings and norms, which every stage
    holds, with their gradients summed over the stages; the gradient norm over the whole model);
    the tuned model is gathered and written whole by rank 0."""
    model, task, nproc = GPT2, "ioi", 2
    base = ["--rounds", "2", "--steps-per-round", "3", "--batch-size", "6", "--discovery-examples", "6"]
    if case == "nodes":
        base += ["--nodes", "3", "--baseline", "--baseline-out", str(tmp_path / "{}_full")]
    elif case.startswith("edges"):
        base += ["--edges", "20", "--train-embeddings", "--train-norms", "--optimizer", "adamw", "--max-grad-norm", "0.5",
                 "--ablation", "mean"]
    else:  # 2 pipelines of 2 stages, the Llama family, a tied embedding trained on the first and last stage
        model, task, nproc = LLAMA, task_for(LLAMA, tmp_path), 4
        base += ["--nodes", "2", "--train-embeddings", "--max-grad-norm", "1"]
    base = ["tune", model, "--task", task, "-n", "24"] + base
    run([a.replace("{}", "one") for a in base] + ["-o", str(tmp_path / "one")])
    r = run([a.replace("{}", "p") for a in base] + ["-o", str(tmp_path / "p")], nproc=nproc, pipeline=2)
    for out in ["one", "one_full"] if case == "nodes" else ["one"]:
        w1 = load_file(str(tmp_path / out / "model.safetensors"))
        w2 = load_file(str(tmp_path / out.replace("one", "p") / "model.safetensors"))
        assert sorted(w1) == sorted(w2)  # the whole model, every stage's layers
        for k in w1:
            # As across data-parallel ranks (test_tune_same_weights): 1e-5 of the weights' scale
            # (measured 0 on 2 stages, 1.5e-8 on 2 x 2).
            np.testing.assert_allclose(w2[k], w1[k], rtol=0, atol=1e-5 * max(1.0, float(np.abs(w1[k]).max())),
                                       err_msg=k)
    assert "updated" in r.stdout


def test_pipeline_tune_checkpoint_refused(tmp_path):
    r = run(["tune", GPT2, "--task", "ioi", "-n", "12", "--rounds", "1", "--steps-per-round", "1", "--nodes", "2",
             "--checkpoint", str(tmp_path / "ck"), "-o", str(tmp_path / "t")], nproc=2, pipeline=2, check=False)
    assert r.returncode == 1 and "checkpoints are not written when the layers are split" in r.stderr, r.stderr
    assert sorted(os.listdir(tmp_path)) == []  # nothing written


def test_pipeline_killed_stage_stops_the_other(tmp_path):
    """A stage killed mid-run leaves the other blocked in a receive: the heartbeat still stops it
    within 60 s, naming the lost rank, with nothing written. (The default model: long enough to
    be killed mid-run.)"""
    port = 33000 + os.getpid() % 1000
    args = [CLI, "discover", "--task", "ioi", "-n", "400", "--method", "eap", "-o", str(tmp_path / "k.json")]
    procs = [subprocess.Popen(args, env=dict(ENV, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                                              MASTER_PORT=str(port), EDGEWISE_PIPELINE_STAGES="2"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    time.sleep(12)  # loaded, joined and into the attribution (~60 s of it on this machine)
    assert procs[1].poll() is None, "rank 1 finished before it could be killed: make the run longer"
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    out, err = procs[0].communicate(timeout=120)
    assert procs[0].returncode == 1 and time.time() - killed <= 60, (procs[0].returncode, err)
    assert "rank 1 of 2 was lost" in err, err
    procs[1].wait()
    assert not (tmp_path / "k.json").exists()


def test_pipeline_bad_stage_counts():
    r = run(["info", GPT2], nproc=2, pipeline=3, check=False)
    assert r.returncode == 2 and "--pipeline" in r.stderr and "do not divide" in r.stderr, r.stderr
    r = run(["info", GPT2], check=False, env=dict(ENV, RANK="0", WORLD_SIZE="1", EDGEWISE_PIPELINE_STAGES="2"))
    assert r.returncode == 1 and "EDGEWISE_PIPELINE_STAGES" in r.stderr, r.stderr
    r = run(["info", GPT2], nproc=4, pipeline=4, check=False)  # 3 layers over 4 stages
    assert r.returncode != 0 and "cannot be split over 4 pipeline stages" in r.stderr, r.stderr


def test_killed_rank_stops_the_others_and_resume_with_other_ranks(tmp_path):
    """Three ranks run ACDC with a checkpoint after every reader; rank 1 is killed once the
    checkpoint exists. Ranks 0 and 2 must exit non-zero within 60 s naming rank 1 (the default
    heartbeat limit, 20 s, is what is tested); then the run
    resumes on 2 ranks and ends with the uninterrupted circuit."""
    ck = tmp_path / "ck.json"
    # About 7 s of search on 3 ranks: the kill lands early, long before the end.
    search = ["discover", GPT2, "--task", "ioi", "-n", "100", "--method", "acdc", "--tau", "0.005"]
    base = search + ["--checkpoint", str(ck), "--checkpoint-every", "0"]
    port = 30000 + os.getpid() % 1000
    procs = [subprocess.Popen([CLI] + base + ["-o", str(tmp_path / "killed.json")],
                              env=dict(ENV, RANK=str(r), WORLD_SIZE="3", LOCAL_RANK=str(r),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(3)]
    deadline = time.time() + 300
    while not ck.exists() and time.time() < deadline and procs[1].poll() is None:
        time.sleep(0.05)
    assert ck.exists(), "no checkpoint appeared"
    assert procs[1].poll() is None, "rank 1 finished before it could be killed: make the run longer"
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    for r in (0, 2):
        out, err = procs[r].communicate(timeout=120)
        print(f"rank {r}: {err.strip().splitlines()[-1]}")
        took = time.time() - killed
        assert procs[r].returncode > 0, (r, procs[r].returncode, err)  # an exit status, not a signal
        assert took <= 60, f"rank {r} took {took:.1f} s to stop"
        assert "rank 1 of 3" in err, (r, err)
    procs[1].wait()
    assert not (tmp_path / "killed.json").exists()  # nothing half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json"], list(tmp_path.iterdir())
    run(base + ["--resume", "-o", str(tmp_path / "resumed.json")], nproc=2)
    run(search + ["-o", str(tmp_path / "whole.json")])
    compare_scores(tmp_path / "whole.json", tmp_path / "resumed.json", rtol=1e-4)
