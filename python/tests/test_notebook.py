"""examples/quickstart.ipynb runs top to bottom (nbclient, the package's own kernel) and produces
its circuit file, the circuit's drawing (SVG) and the curve's figure (PNG), so it cannot rot.
Needs the default model (scripts/setup.sh installs it); skipped without it."""
import json
import os
import shutil

import pytest

import edgewise

NOTEBOOK = os.path.join(os.path.dirname(__file__), "../../examples/quickstart.ipynb")


def test_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    try:
        edgewise._core.Model.load("", "f32", "cpu", False)
    except FileNotFoundError as e:
        pytest.skip(f"no default model: {e}")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is missing (scripts/setup.sh installs it)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    kinds = {k for o in outputs for k in o.get("data", {})}
    assert "image/svg+xml" in kinds, kinds   # the circuit drew itself
    assert "image/png" in kinds, kinds       # the faithfulness curve
    with open(tmp_path / "ioi_circuit.json") as f:
        saved = json.load(f)
    c = edgewise.Circuit.from_json(str(tmp_path / "ioi_circuit.json"))
    assert 0 < c.n_edges <= 100
    assert saved["edgewise"]["method"] == "eap-ig-inputs"
