"""The committed Tracr fixtures (tests/data/tracr/, written by tools/tracr/export.py) against
their references, without JAX:

- the ground-truth circuits equal the canonical ones published with ACDC
  (acdc/tracr_task/utils.py: get_tracr_reverse_edges, get_tracr_proportion_edges), translated
  into edgewise's names: ACDC's hook_embed and hook_pos_embed are both edgewise's `input`
  (one source, token + position embeddings), blocks.L.attn.hook_result head 0 is `aL.h0` and its
  hook_q/k/v_input readers `aL.h0<q>` / `<k>` / `<v>`, blocks.L.hook_mlp_in / hook_mlp_out are the
  reader and the source `mL`, blocks.L.hook_resid_post of the last block is `logits`. Tracr's
  layer L is attention then MLP, as ACDC's blocks: the mapping of half-layers onto blocks is
  the identity;
- the exported float32 weights, run by the exporter's numpy forward, reproduce Tracr's own
  outputs recorded in expected.json on every input (decoded outputs identical, values within
  1e-5: float32 weights against JAX's float32 run);
- every input up to max_seq_len is there.

Run by ctest (tracr_fixtures) with the project's .venv.
"""
import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "../../tests/data/tracr")
sys.path.insert(0, HERE)
import export  # noqa: E402  (numpy only at import; JAX is imported inside its functions)

# ACDC's canonical circuits in edgewise's names (see the module docstring).
CANONICAL = {
    "reverse": {
        "a3.h0->logits", "m2->a3.h0<q>", "input->a3.h0<k>", "input->a3.h0<v>", "m1->m2", "m0->m1",
        "input->m1", "a0.h0->m0", "input->m0", "input->a0.h0<v>",
    },
    "xproportion": {"a1.h0->logits", "input->a1.h0<q>", "input->a1.h0<k>", "m0->a1.h0<v>", "input->m0"},
}


def load(program):
    from safetensors.numpy import load_file
    d = os.path.join(DATA, program)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "expected.json")) as f:
        exp = json.load(f)
    with open(os.path.join(d, "truth.json")) as f:
        truth = json.load(f)
    w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
    return cfg, exp, truth, w


@pytest.mark.parametrize("program", ["reverse", "xproportion"])
def test_truth_is_acdc_canonical_circuit(program):
    _, _, truth, _ = load(program)
    got = {e for e, v in truth["edges"].items() if v["in_graph"]}
    assert got == CANONICAL[program]
    assert len(got) == {"reverse": 10, "xproportion": 5}[program]
    # Every truth edge is also wired in the weights (the exporter's cross-check, kept in the file).
    assert got <= set(truth["edgewise"]["wired_edges"])


@pytest.mark.parametrize("program", ["reverse", "xproportion"])
def test_exported_weights_reproduce_tracr(program):
    cfg, exp, _, w = load(program)
    fw = export.Forward(w, cfg["n_layers"], cfg["n_heads"], cfg["d_head"], cfg["causal"])
    V = len(export.PROGRAMS[program]["vocab"])
    assert len(exp["inputs"]) == sum(V ** n for n in range(1, cfg["max_seq_len"] + 1))
    worst = 0.0
    for e in exp["inputs"]:
        vals, _ = fw(np.array(e["ids"]))
        worst = max(worst, float(np.abs(vals - np.array(e["values"])).max()))
        if cfg["output"] == "categorical":
            assert [cfg["output_values"][i] for i in vals[1:].argmax(-1)] == e["decoded"], e["tokens"]
        else:
            assert np.allclose(vals[1:, 0], e["decoded"], atol=1e-5), e["tokens"]
    assert worst < 1e-5, worst
    # Shapes as the config says.
    D = cfg["d_model"]
    assert w["token_embd.weight"].shape == (len(cfg["input_vocab"]), D)
    assert w["position_embd.weight"].shape == (cfg["max_seq_len"] + 1, D)
    assert w["blk.0.attn_q.weight"].shape == (cfg["n_heads"] * cfg["d_head"], D)
    assert w["blk.0.ffn_up.weight"].shape == (cfg["d_mlp"], D)
