"""The second half of the Python package's tests: transformers models in memory (weights shared),
faithfulness curves and sweeps, circuit-tuning, per-example evaluation and generated datasets.
References: the command line (same library, so equal results), `transformers` (an independent
forward for the tuned model and the shared weights).
"""
import json
import os

import pytest
import torch

import edgewise
from conftest import GOLDEN, GPT2, N, cli, need

QWEN2 = os.path.join(GOLDEN, "model_golden", "qwen2_padded")


def storages(tensors):
    return {t.untyped_storage().data_ptr() for t in tensors}


# ---- a transformers model in memory -----------------------------------------------------------

def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_transformers_gpt2_shares_weights_and_scores_match_disk(model, graph, data):
    """Every canonical weight lies in the storage of one of the transformers model's tensors (no
    copy; GPT-2's Conv1D weights are transposed views), and EAP / EAP-IG scores equal those of
    the same weights loaded from disk. Tolerance 1e-5 of the largest |score|: the same products
    and sums, but from disk q/k/v run as one matmul over a packed contiguous buffer and here as
    three over strided views, so float32 rounding differs in the last bits (measured: ~1e-7)."""
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel.from_pretrained(GPT2).eval()
    em = edgewise.load(hf, tokenizer=GPT2)
    assert storages(em.weights.values()) <= storages(hf.state_dict().values())
    n = len(em.weights)
    assert any(f"shared with the given tensors: {n - 1} of {n - 1}" in s or f"{n} of {n}" in s
               for s in em.load_notes), em.load_notes
    assert em.config == model.config
    g = em.graph()
    d = edgewise.task("ioi", em, n=N, seed=0)
    for method in ("eap", "eap-ig-inputs"):
        a = edgewise.attribute(em, g, d, method=method, progress=False, steps=3)
        b = edgewise.attribute(model, graph, data, method=method, progress=False, steps=3)
        assert rel_err(a.scores, b.scores) < 1e-5, method
    # Nothing was written into the transformers model's weights.
    ref = transformers.GPT2LMHeadModel.from_pretrained(GPT2)
    for k, v in ref.state_dict().items():
        assert torch.equal(v, hf.state_dict()[k]), k


def test_transformers_qwen2_shares_every_weight():
    """A Llama-family model (Qwen2, tied embeddings, q/k/v biases) needs no transform: every
    canonical weight is the transformers tensor itself (equal data pointers), and scores match
    the disk load (1e-5 of the largest, as above: separate vs packed q/k/v and gate/up matmuls)."""
    transformers = pytest.importorskip("transformers")
    need(QWEN2)
    hf = transformers.AutoModelForCausalLM.from_pretrained(QWEN2).eval()
    em = edgewise.load(hf)  # the tokenizer from hf.name_or_path, the model's own folder
    sd = hf.state_dict()
    ptrs = {t.data_ptr() for t in sd.values()}
    assert all(w.data_ptr() in ptrs for w in em.weights.values())
    assert em.weights["blk.0.attn_q.weight"].data_ptr() == sd["model.layers.0.self_attn.q_proj.weight"].data_ptr()
    assert em.weights["output.weight"].data_ptr() == sd["model.embed_tokens.weight"].data_ptr()
    disk = edgewise.load(QWEN2)
    # Its tokenizer has 256 byte-level ids and no merges: one token per character.
    recs = [{"clean": "ab cd ab", "corrupted": "ef gh ef", "correct": "c", "incorrect": "a"},
            {"clean": "xy zw xy", "corrupted": "qr st qr", "correct": "z", "incorrect": "x"}]
    for m in (em, disk):
        m._scores = edgewise.attribute(m, m.graph(), edgewise.records(recs, m), method="eap", progress=False).scores
    assert rel_err(em._scores, disk._scores) < 1e-5


def test_transformers_model_errors():
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel.from_pretrained(GPT2).half()
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        edgewise.load(hf)
    with pytest.raises(TypeError, match="expected a path"):
        edgewise.load(object())
    with pytest.raises(FileNotFoundError, match="no such tokenizer folder"):
        edgewise.load(hf.float(), tokenizer="/nonexistent/tok")


# ---- per-example evaluation, generated datasets -----------------------------------------------

def test_per_example_rows_average_to_the_means(model, graph, data):
    """The per-example tensors are what the means average. 1e-6 relative: the means add each
    batch's float32 sum, the test averages the float64 copies of the float32 values."""
    r = edgewise.attribute(model, graph, data, method="eap", progress=False)
    c = edgewise.Circuit.from_result(model, graph, r).top_n(20)
    ev = edgewise.evaluate(model, c, data, per_example=True, progress=False, batch_size=3)
    for k in ("logit_diff", "prob_diff", "kl", "accuracy", "exact_match"):
        pe = ev["per_example"][k]
        assert pe.shape == (3, N)
        assert torch.allclose(pe.mean(1), torch.tensor(ev[k], dtype=torch.float64), rtol=1e-6, atol=1e-9), k
    # The full model's row: KL 0, exact match 1.
    assert torch.all(ev["per_example"]["kl"][0].abs() < 1e-6)
    assert torch.all(ev["per_example"]["exact_match"][0] == 1)


def test_generate_pairs_and_symmetric(model):
    def gen():
        yield "When Mary and John went to the store, John gave a drink to", [" Mary"], [" John"]
        yield "When Alice and Bob went to the store, Bob gave a drink to", [" Alice"], [" Bob"]
    d = edgewise.generate(gen(), model)
    assert len(d) == 1
    e = d.examples[0]
    assert "Mary" in e["clean"] and "Alice" in e["corrupted"]
    s = edgewise.generate(gen(), model, symmetric=True)
    assert len(s) == 2
    assert s.examples[1]["clean"] == e["corrupted"] and s.examples[1]["corrupted"] == e["clean"]
    with pytest.raises(ValueError, match="even number"):
        edgewise.generate([("a b", " c", " d")], model)
    with pytest.raises(ValueError, match="symmetric=True needs"):
        edgewise.generate([("a b", " c", " d", "e f")], model, symmetric=True)


# ---- curves and sweeps -------------------------------------------------------------------------

def read_curve(path):
    rows, tail = [], ""
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                tail += line
            elif line[0].isdigit():
                rows.append([float(x) for x in line.strip().split(",")])
    return rows, tail


def test_curve_equals_cli(tmp_path, model, graph, data):
    """The faithfulness curve of EAP's scores: the command line's --curve file, number for
    number (the same circuits, one evaluation; %g-formatted in the file, so compared at 6
    significant digits), CPR and CMD included."""
    out, curve_csv = str(tmp_path / "eap.json"), str(tmp_path / "curve.csv")
    cli("discover", GPT2, "--task", "ioi", "-n", str(N), "--method", "eap", "-o", out, "--curve", curve_csv)
    r = edgewise.attribute(model, graph, data, method="eap", progress=False)
    cv = edgewise.curve(model, edgewise.Circuit.from_result(model, graph, r), data, progress=False)
    mine = str(tmp_path / "mine.csv")
    cv.to_csv(mine)
    a, ta = read_curve(curve_csv)
    b, tb = read_curve(mine)
    assert len(a) == len(b) == len(cv.points) > 3
    for x, y in zip(a, b):
        assert x == pytest.approx(y, rel=1e-5, abs=1e-9)
    assert ta == tb
    assert 0 <= cv.cmd and cv.points[-1]["fraction"] == 1.0


def test_acdc_sweep_runs_equal_single_runs(model, graph, data):
    """A sweep is one run per value: each run's circuit equals attribute(method='acdc', tau=v)."""
    taus = [0.5, 0.05]
    sw = edgewise.sweep(model, graph, data, "acdc", taus, progress=False)
    assert sw.values == taus and len(sw.circuits) == 2
    for v, res in zip(taus, sw.results):
        one = edgewise.attribute(model, graph, data, method="acdc", tau=v, progress=False)
        assert torch.equal(one.in_circuit, res.in_circuit)
    cv = edgewise.curve(model, sw, data, progress=False)
    assert [p["fraction"] for p in cv.points] == sorted(p["fraction"] for p in cv.points)
    with pytest.raises(ValueError, match="sweep"):
        edgewise.sweep(model, graph, data, "eap", [0.1], progress=False)


# ---- circuit-tuning ----------------------------------------------------------------------------

def test_tune_equals_cli_and_saves_for_transformers(tmp_path, model):
    """edgewise.tune on the file's training split gives the command line's tuned weights bit for
    bit; save_pretrained writes a folder transformers loads, whose logit difference on the data
    equals edgewise's task_score of the tuned model (1e-4 relative: two independent forwards in
    float32)."""
    transformers = pytest.importorskip("transformers")
    st = pytest.importorskip("safetensors.torch")
    ioi = edgewise.task("ioi", model, n=12, seed=1)
    path = tmp_path / "ioi.jsonl"
    with open(path, "w") as f:
        for i, e in enumerate(ioi.examples):
            f.write(json.dumps({"clean": e["clean"], "corrupted": e["corrupted"], "correct": e["correct"],
                                "incorrect": e["incorrect"], "split": "validation" if i % 4 == 0 else "train"}) + "\n")
    opts = dict(nodes=6, rounds=2, steps_per_round=2, batch_size=4, lr=0.01, discovery_examples=4)
    out = str(tmp_path / "cli_tuned")
    cli("tune", GPT2, "--task", str(path), "-o", out, "--nodes", "6", "--rounds", "2", "--steps-per-round", "2",
        "--batch-size", "4", "--lr", "0.01", "--discovery-examples", "4")
    train = edgewise.task(str(path), model, n=100).split("train")
    tr = edgewise.tune(model, train, progress=False, **opts)
    assert tr.complete and tr.steps_done == 4 and len(tr.rounds) == 2
    mine = str(tmp_path / "py_tuned")
    tr.save_pretrained(mine)
    a = st.load_file(os.path.join(out, "model.safetensors"))
    b = st.load_file(os.path.join(mine, "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The untuned model is untouched; the tuned one differs.
    assert 0 < tr.params_updated < tr.params_total
    # transformers reads the saved folder; its logit difference equals edgewise's.
    hf = transformers.GPT2LMHeadModel.from_pretrained(mine).eval()
    tok = transformers.GPT2TokenizerFast.from_pretrained(GPT2)
    diffs = []
    for e in train.examples:
        ids = torch.tensor([model.encode(e["clean"])])  # the ids edgewise scores (test_tokenizer checks them)
        with torch.no_grad():
            last = hf(ids).logits[0, -1]
        c, w = tok(e["correct"][0]).input_ids[0], tok(e["incorrect"][0]).input_ids[0]
        diffs.append(float(last[c] - last[w]))
    ts = edgewise.task_score(tr.model, train)
    assert ts["logit_diff"] == pytest.approx(sum(diffs) / len(diffs), rel=1e-4)
    with pytest.raises(ValueError, match="unknown; the options of tune"):
        edgewise.tune(model, train, progress=False, step=3)


# ---- FLAP and APP, the hybrid ------------------------------------------------------------------

@pytest.mark.parametrize("method,flag,kind", [("flap", "--flap", "hybrid"), ("app", "--pruning", "hybrid")])
def test_flap_and_app_hybrid_equal_cli(tmp_path, model, graph, data, method, flag, kind):
    """FLAP's hybrid (vanilla | contrastive) and APP searching within it: the command line's head
    sets and circuits."""
    out = str(tmp_path / f"{method}.json")
    cli("discover", GPT2, "--task", "ioi", "-n", str(N), "--method", method, flag, kind, "-o", out)
    ref = edgewise.Circuit.from_json(out)
    key = "flap" if method == "flap" else "pruning"
    r = edgewise.attribute(model, graph, data, method=method, progress=False, **{key: kind})
    got = edgewise.Circuit.from_result(model, graph, r)
    assert torch.equal(got.mask, ref.mask)
    assert got.n_edges > 0
    with pytest.raises(ValueError):
        edgewise.attribute(model, graph, data, method=method, progress=False, **{key: "sideways"})


# ---- ROC against a ground truth ----------------------------------------------------------------

def test_roc_equals_cli(tmp_path):
    """edgewise.roc gives the command line's AUCs (the same library function; sklearn checks the
    function itself in tests/reference/roc_check.py)."""
    truth_path = os.path.join(os.path.dirname(__file__), "../../tests/data/tracr/reverse/truth.json")
    truth = edgewise.Circuit.from_json(truth_path)
    r = edgewise.roc(truth, truth)
    assert r["edge"]["auc"] == 1.0 and r["edge"]["positives"] == 10 and r["edge"]["tpr_chosen"] == 1.0
    assert r["node"]["positives"] == 6
    csv = str(tmp_path / "roc.csv")
    cli("roc", "-c", truth_path, "-t", truth_path, "--merge-qkv", "--csv", csv)
    merged = edgewise.roc(truth, truth, merge_qkv=True)
    with open(csv) as f:
        line = [x for x in f if x.startswith("# edge")][0]
    assert float(line.split(" AUC ")[1].split()[0]) == merged["edge"]["auc"]
    assert merged["edge"]["positives"] == int(line.split(" positives ")[1].split()[0])


def test_tracr_task_defaults_and_ground_truth():
    """On the Tracr reverse model (its word vocabulary from config.json) the task brings its own
    defaults, zero ablation and MSE; an ACDC sweep through the package ranks the ground-truth
    edges first (AUC 1 over the sweep's folded scores) and its circuit at tau 1e-4 is the truth,
    which reproduces the model (MSE 0) where the empty circuit does not."""
    path = os.path.join(os.path.dirname(__file__), "../../tests/data/tracr/reverse")
    m = edgewise.load(path)
    g = m.graph()
    d = edgewise.task("tracr-reverse", m, n=100000)
    assert len(d) == 81 * 4
    assert (d.default_ablation, d.default_metric) == ("zero", "mse")
    assert d.examples[0]["clean"].count(" ") == 3  # four words; BOS is prepended by the model
    truth = edgewise.Circuit.from_json(os.path.join(path, "truth.json"))
    s = edgewise.sweep(m, g, d, "acdc", [1e-4, 1e-2], progress=False)
    folded = edgewise.Circuit.from_scores(m, g, torch.as_tensor(s.scores))
    assert edgewise.roc(folded, truth)["edge"]["auc"] == 1.0
    assert torch.equal(s.circuits[0].mask.bool(), truth.mask.bool())
    ev = edgewise.evaluate(m, s.circuits[0], d, progress=False)
    assert ev["mse"][1] < 1e-9 < 1e-3 < ev["mse"][2]
    with pytest.raises(Exception, match="language model"):
        edgewise.task("ioi", m, n=4)


def test_view_is_the_command_lines_page(tmp_path):
    """edgewise.view writes the page `edgewise view` writes (the same library function: equal
    bytes for equal names), and Circuit.to_circuit_tracer equals `view --graph-json`; the page's
    behaviour is tested in a browser by tests/viewer/test_viewer.py."""
    truth_path = os.path.join(os.path.dirname(__file__), "../../tests/data/tracr/reverse/truth.json")
    truth = edgewise.Circuit.from_json(truth_path)
    mine = tmp_path / "py.html"
    html = edgewise.view(truth, str(mine), names=["truth"])
    cli("view", truth_path, "-o", str(tmp_path / "cli.html"), "--graph-json", str(tmp_path / "g.json"))
    assert mine.read_text() == html == (tmp_path / "cli.html").read_text()
    with open(tmp_path / "g.json") as f:
        assert truth.to_circuit_tracer(slug="truth") == json.load(f)
    with pytest.raises(ValueError, match="names"):
        edgewise.view([truth, truth], names=["one"])


# ---- Gemma-3-270M, the bundled second model (issue 26) -------------------------------------------

def test_gemma_by_name_ids_and_scores():
    """The package loads the bundled Gemma by name; its SentencePiece ids equal transformers' (the
    gemma_golden fixture, tests/reference/default_model_golden.py --family gemma3) and EAP's scores
    on IOI equal the command line's, bitwise (float32 as the file holds them)."""
    info = os.path.join(GOLDEN, "gemma_golden", "info.json")
    if not os.path.exists(info) or json.load(open(info)).get("absent", True):
        pytest.skip("Gemma-3-270M not installed (scripts/setup.sh fetches it)")
    m = edgewise.load("gemma-3-270m")
    assert m.config["arch"] == "gemma3"
    prompts = json.load(open(os.path.join(GOLDEN, "gemma_golden", "prompts.json")))
    for p in prompts[:22]:  # the varied prompts (the two long ones add nothing here); BOS first
        assert m.encode(p["text"]) == p["ids"], p["text"]
    g = m.graph()
    data = edgewise.task("ioi", m, n=4)
    r = edgewise.attribute(m, g, data, method="eap", progress=False)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "eap.json")
        cli("discover", "gemma-3-270m", "--task", "ioi", "-n", "4", "--method", "eap", "--edges", "50", "-o", out)
        ref = edgewise.Circuit.from_json(out)
    assert torch.equal(edgewise.Circuit.from_result(m, g, r).scores, ref.scores)
