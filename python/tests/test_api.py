"""The Python package against the command line (the reference for "same inputs, same result":
both call the same library, so scores must be bitwise equal) and against its own contracts:
callable metrics, errors, circuits. Models: the random GPT-2 of tests/reference/model_golden.py
(EW_GOLDEN_DIR/model_golden/gpt2), with the GPT-2 tokenizer.

Run by ctest (python_api) with PYTHONPATH at build/python; EW_CLI is the edgewise binary.
"""
import json
import os
import subprocess

import pytest
import torch

import edgewise
from conftest import GOLDEN, GPT2, N, cli


def cli_circuit(tmp_path, method, *extra):
    out = str(tmp_path / f"{method}.json")
    cli("discover", GPT2, "--task", "ioi", "-n", str(N), "--method", method, "-o", out, *extra)
    return edgewise.Circuit.from_json(out), out


# ---- same inputs, same results as the command line -------------------------------------------

@pytest.mark.parametrize("method", ["eap", "eap-ig-inputs"])
def test_attribution_scores_equal_cli(tmp_path, model, graph, data, method):
    """Every edge score bitwise equal to the CLI's circuit file (float32 there, as written)."""
    ref, _ = cli_circuit(tmp_path, method, "--edges", "30")
    r = edgewise.attribute(model, graph, data, method=method, progress=False)
    assert r.scores.shape == (graph.n_sources, graph.n_readers)
    assert r.scores.dtype == torch.float64
    got = edgewise.Circuit.from_result(model, graph, r)
    assert torch.equal(got.scores, ref.scores)
    # The same selection rule gives the same circuit.
    assert torch.equal(got.top_n(30).mask, ref.mask)


def test_acdc_edge_set_equals_cli(tmp_path, model, graph, data):
    ref, _ = cli_circuit(tmp_path, "acdc", "--tau", "0.05")
    r = edgewise.attribute(model, graph, data, method="acdc", tau=0.05, progress=False)
    got = edgewise.Circuit.from_result(model, graph, r)
    assert got.n_edges == ref.n_edges
    assert torch.equal(got.mask, ref.mask)


def test_edge_pruning_short_run_equals_cli(tmp_path, model, graph, data):
    # The CLI holds out a validation split unless told not to; the library call trains on `data`.
    ref, _ = cli_circuit(tmp_path, "edge-pruning", "--steps", "20", "--target", "0.5", "--validation-fraction", "0")
    r = edgewise.attribute(model, graph, data, method="edge-pruning", steps=20, target=0.5, progress=False)
    got = edgewise.Circuit.from_result(model, graph, r)
    assert torch.equal(got.mask, ref.mask)
    assert torch.equal(got.scores, ref.scores)


def test_path_patching_heads_equal_cli(tmp_path, model, graph, data):
    _, out = cli_circuit(tmp_path, "path-patching")
    with open(out[:-5] + ".report.json") as f:
        ref_heads = json.load(f)["path_patching"]["heads"]
    r = edgewise.attribute(model, graph, data, method="path-patching", progress=False)
    assert r.report["heads"] == ref_heads


# ---- a Python metric -------------------------------------------------------------------------

def logit_diff(logits, batch):
    """The built-in logit difference, written in Python: mean correct logit - mean incorrect."""
    c = logits.gather(1, batch["correct"]) * batch["correct_mask"]
    w = logits.gather(1, batch["incorrect"]) * batch["incorrect_mask"]
    cm = c.sum(1) / batch["correct_mask"].sum(1).clamp_min(1)
    wm = w.sum(1) / batch["incorrect_mask"].sum(1).clamp_min(1)
    return cm - wm


@pytest.mark.parametrize("method", ["eap", "eap-ig-inputs"])
def test_callable_metric_equals_builtin(model, graph, data, method):
    """1e-6 relative: the same operations in another order of dispatch (Python vs C++ calls)."""
    a = edgewise.attribute(model, graph, data, method=method, progress=False)
    b = edgewise.attribute(model, graph, data, method=method, metric=logit_diff, progress=False)
    scale = a.scores.abs().max()
    assert scale > 0
    assert (a.scores - b.scores).abs().max() <= 1e-6 * scale


def test_callable_metric_in_evaluate(model, graph, data):
    r = edgewise.attribute(model, graph, data, method="eap", progress=False)
    c = edgewise.Circuit.from_result(model, graph, r).top_n(40)
    ev = edgewise.evaluate(model, c, data, progress=False)
    ev2 = edgewise.evaluate(model, c, data, metric=logit_diff, progress=False)
    assert len(ev["logit_diff"]) == 3  # model, circuit, empty
    for x, y in zip(ev["logit_diff"], ev2["custom"]):
        assert abs(x - y) <= 1e-6 * max(1.0, abs(x))
    assert abs(ev["faithfulness"][0] - ev2["faithfulness"][0]) <= 1e-6


def test_evaluate_equals_cli(tmp_path, model, graph, data):
    ref, out = cli_circuit(tmp_path, "eap", "--edges", "40")
    cli_out = cli("evaluate", GPT2, "--task", "ioi", "-n", str(N), "--circuit", out).stdout
    ev = edgewise.evaluate(model, ref, data, progress=False)
    meta = ref.meta
    assert abs(ev["logit_diff"][0] - meta["metric_model"]) <= 1e-9 * max(1, abs(meta["metric_model"]))
    assert abs(ev["logit_diff"][1] - meta["metric_circuit"]) <= 1e-9 * max(1, abs(meta["metric_circuit"]))
    assert f"{ev['faithfulness'][0]:.4f}" in cli_out


# ---- graphs, data, circuits -----------------------------------------------------------------

def test_graph_names_and_mask(model, graph):
    c = model.config
    assert graph.n_sources == 1 + c["n_layers"] * (c["n_heads"] + 1)
    assert graph.real_edge_mask.sum().item() == graph.n_edges
    names = graph.edge_names
    assert len(names) == graph.n_edges
    assert graph.find_edge(names[5]) is not None
    assert graph.source_names[0] == "input" and graph.reader_names[-1] == "logits"


def test_records_and_checks(model):
    ok = {"clean": "When Mary and John went to the store, John gave a drink to",
          "corrupted": "When Mary and John went to the store, Anna gave a drink to",
          "correct": " Mary", "incorrect": " John"}
    ds = edgewise.records([ok, ok], model)
    assert len(ds) == 2 and ds.examples[0]["correct"] == [" Mary"]
    bad = [ok, {"clean": "x"}, {"clean": "a", "corrupted": "b", "correct": " 1732", "incorrect": " 1745"}]
    with pytest.raises(ValueError) as e:
        edgewise.records(bad, model)
    msg = str(e.value)
    assert "records:2: missing string field \"corrupted\"" in msg  # records:N is the N-th record
    assert "records:3: correct answer \" 1732\"" in msg and "both begin with token 1596" in msg
    ds = edgewise.records(bad, model, skip_bad_lines=True)
    assert len(ds) == 1 and ds.skipped == 2


def test_circuit_json_round_trip(tmp_path, model, graph, data):
    r = edgewise.attribute(model, graph, data, method="eap", progress=False)
    c = edgewise.Circuit.from_result(model, graph, r).top_n(25)
    p = str(tmp_path / "c.json")
    c.to_json(p)
    back = edgewise.Circuit.from_json(p)
    assert torch.equal(back.mask, c.mask) and torch.equal(back.scores, c.scores)
    assert back.edges == c.edges
    g = c.to_networkx()
    assert g.number_of_edges() == c.n_edges
    assert c._repr_svg_().lstrip().startswith("<?xml") or "<svg" in c._repr_svg_()


# ---- bad input -----------------------------------------------------------------------------

def test_errors_have_fitting_types(tmp_path, model, graph, data):
    with pytest.raises(FileNotFoundError) as e:
        edgewise.load(str(tmp_path / "nope"))
    assert "nope" in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        edgewise.task(str(tmp_path / "missing.jsonl"), model)
    assert "missing.jsonl" in str(e.value)
    with pytest.raises(ValueError) as e:
        edgewise.attribute(model, graph, data, method="no-such-method", progress=False)
    assert "no-such-method" in str(e.value)
    with pytest.raises(ValueError) as e:
        edgewise.attribute(model, graph, data, method="eap", bogus_option=1, progress=False)
    assert "bogus_option" in str(e.value)
    with pytest.raises(ValueError):
        edgewise.task("ioi", model, n=-3)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n{}\n")
    with pytest.raises(ValueError) as e:
        edgewise.task(str(bad), model)
    assert f"{bad}:1" in str(e.value) and f"{bad}:2" in str(e.value)
    # A circuit of another model's graph (model_golden's qwen2_padded: one key/value head).
    llama = edgewise.load(os.path.join(GOLDEN, "model_golden", "qwen2_padded"))
    lg = llama.graph()
    other = edgewise.Circuit.from_scores(llama, lg, torch.ones(lg.n_sources, lg.n_readers)).top_n(5)
    with pytest.raises(ValueError) as e:
        edgewise.evaluate(model, other, data, progress=False)
    assert "does not match the model" in str(e.value)


# ---- Ctrl-C ------------------------------------------------------------------------------------

def test_ctrl_c_stops_acdc_with_checkpoint_and_resumes(tmp_path, model, graph):
    """SIGINT while ACDC runs: KeyboardInterrupt within a second of the next reader, a checkpoint
    written, and resuming from it gives the uninterrupted run's circuit."""
    import signal
    import sys
    import time
    ck = str(tmp_path / "acdc.ck.json")
    n, tau = 8, 0.02  # ~60 passes, several seconds here: the signal lands mid-run
    # The child handles SIGINT as an interactive interpreter or a notebook kernel does, whatever
    # disposition it inherited (a CI job started in the background inherits SIGINT ignored), and
    # says when ACDC has done its first reader, so the signal lands mid-run on any machine.
    script = f"""
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
import edgewise
m = edgewise.load({GPT2!r}); g = m.graph(); d = edgewise.task("ioi", m, n={n})
said = []
def progress(stage, done, total, figures):
    if not said:
        said.append(1)
        print("started", flush=True)
try:
    edgewise.attribute(m, g, d, method="acdc", tau={tau}, checkpoint={ck!r}, checkpoint_every=0, progress=progress)
    print("finished", flush=True)
except KeyboardInterrupt as e:
    print("interrupted:", e, flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    waited = time.monotonic() - t0
    assert p.returncode == 0, err
    assert out.startswith("interrupted:"), out + err
    assert "checkpoint" in out
    # One reader of this small model takes well under a second; the bound leaves room for a busy machine.
    assert waited < 5, waited
    assert os.path.exists(ck)
    data = edgewise.task("ioi", model, n=n)
    resumed = edgewise.attribute(model, graph, data, method="acdc", tau=tau, checkpoint=ck, resume=True,
                                 progress=False)
    full = edgewise.attribute(model, graph, data, method="acdc", tau=tau, progress=False)
    assert torch.equal(resumed.in_circuit, full.in_circuit)
    assert resumed.report["complete"] is True
