"""Shared by the package's tests: where the golden models and the command line are, and the
module-scoped model / graph / data of the random GPT-2 (tests/reference/model_golden.py)."""
import os
import subprocess

import pytest

import edgewise

GOLDEN = os.environ.get("EW_GOLDEN_DIR", os.path.join(os.path.dirname(__file__), "../../build/golden"))
CLI = os.environ.get("EW_CLI", os.path.join(os.path.dirname(__file__), "../../build/edgewise"))
GPT2 = os.path.join(GOLDEN, "model_golden", "gpt2")
N = 8


def need(path):
    if not os.path.exists(os.path.join(path, "config.json")):
        pytest.skip(f"{path} missing: run the model_golden fixture (ctest -R ref_model_golden)")


def cli(*args):
    """Runs the command line; it must succeed."""
    r = subprocess.run([CLI, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def model():
    need(GPT2)
    return edgewise.load(GPT2)


@pytest.fixture(scope="module")
def graph(model):
    return model.graph()


@pytest.fixture(scope="module")
def data(model):
    return edgewise.task("ioi", model, n=N, seed=0)
