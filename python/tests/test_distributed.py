"""The package across processes: a script launched by torchrun joins edgewise's group
(edgewise.init_distributed) and gets the 1-process scores (docs/SCALING.md). The reference is
the same call in one process: the ranks split the batches and sum their partial scores, so the
only difference is the order of a few float64 additions (1e-12 of the largest bounds it). With
EDGEWISE_PIPELINE_STAGES=2 the two ranks hold half the layers each instead: EAP's gradients are
then each stage's own readers' columns, summed exactly (the rest are zeros), so the same bound."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import edgewise
from conftest import GPT2, need

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")

SCRIPT = textwrap.dedent("""
    import sys, torch, edgewise
    n = edgewise.init_distributed()
    model = edgewise.load(sys.argv[1])
    data = edgewise.task("ioi", model, n=10)
    r = edgewise.attribute(model, model.graph(), data, method="eap", batch_size=3, progress=False)
    if edgewise.rank() == 0:
        torch.save({"world": n, "stages": edgewise.pipeline_stages(), "notes": model.load_notes,
                    "scores": r.scores}, sys.argv[2])
    model.save_pretrained(sys.argv[3])  # every rank: in a pipeline each sends its layers, rank 0 writes
    edgewise.shutdown_distributed()
""")


@pytest.mark.parametrize("stages", [1, 2])
def test_torchrun_script_gets_the_one_process_scores(tmp_path, stages):
    need(GPT2)
    if not os.path.exists(TORCHRUN):
        pytest.skip(f"{TORCHRUN} missing")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "scores.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive", EDGEWISE_PIPELINE_STAGES=str(stages))
    r = subprocess.run([TORCHRUN, "--nproc-per-node", "2", "--master-port", str(32000 + os.getpid() % 1000),
                        str(script), GPT2, str(out), str(tmp_path / "saved")], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.load(out)
    assert got["world"] == 2 and got["stages"] == stages
    if stages == 2:  # rank 0 held the first stage's layers only
        assert any("holds layers 0 to 1 of 3" in n for n in got["notes"]), got["notes"]
    model = edgewise.load(GPT2)
    data = edgewise.task("ioi", model, n=10)
    want = edgewise.attribute(model, model.graph(), data, method="eap", batch_size=3, progress=False).scores
    assert edgewise.world_size() == 1 and edgewise.rank() == 0
    err = (got["scores"] - want).abs().max().item() / want.abs().max().item()
    assert err <= 1e-12, err
    # The saved model is the whole one (a pipeline's rank 0 held half the layers): every weight
    # equal to the loaded model's.
    saved = edgewise.load(str(tmp_path / "saved"))
    w0, w1 = model.weights, saved.weights
    assert sorted(w0) == sorted(w1)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
