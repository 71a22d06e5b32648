"""The circuit viewer (`edgewise view`) in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by selenium opens the generated pages from disk and the checks compare
what the page shows with what the circuit files say, computed here independently:

- no console errors; node and edge counts equal the file's (its sources plus the logits; every
  edge of the graph); the edges drawn at load are the file's in-circuit edges;
- moving the top-n slider (a real `input` event on the element) draws min(n, all) edges, and the
  threshold slider at its top keeps only the edges of the largest |score|;
- a real mouse click on a node highlights exactly the edges on a path input -> node -> logits
  among the drawn edges (a breadth-first search here over the file's edges);
- comparing two files: the page's shared / only-here / union counts equal set operations on the
  two files' in-circuit edges;
- the graph JSON export (the page's button's function, and `view --graph-json`) loads in
  circuit-tracer 0.5's pydantic graph models.

Run by ctest (`viewer_browser`) with EW_CLI set to build/edgewise; skipped when Chromium or
selenium is missing only outside CI (setup.sh installs both).
"""
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict, deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = os.environ.get("EW_CLI", str(ROOT / "build" / "edgewise"))
TRACR = ROOT / "tests" / "data" / "tracr"


def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("selenium is not installed (scripts/setup.sh installs it)")
    driver_path = shutil.which("chromedriver")
    if not driver_path or not shutil.which("chromium"):
        if os.environ.get("CI"):
            raise RuntimeError("chromium / chromedriver missing: apt-get install chromium chromium-driver")
        pytest.skip("chromium / chromedriver missing (scripts/setup.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900",
              "--allow-file-access-from-files"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)


@pytest.fixture(scope="module")
def browser():
    b = _browser()
    yield b
    b.quit()


def cli(*args):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def open_page(browser, path):
    browser.get(Path(path).resolve().as_uri())
    browser.implicitly_wait(5)
    for _ in range(100):
        if browser.execute_script("return window.ewViewReady === true"):
            break
        browser.implicitly_wait(0.1)
    assert browser.execute_script("return window.ewViewReady === true"), "the page did not finish loading"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors


def in_edges(path):
    with open(path) as f:
        c = json.load(f)
    return c, {k for k, v in c["edges"].items() if v["in_graph"]}


def node_of_reader(reader, n_heads, n_kv):
    """The node(s) a reader name feeds: a3.h0<q> -> a3.h0, a1.kv0<k> -> the group's heads."""
    if reader == "logits" or reader.startswith("m"):
        return [reader]
    head = reader.split("<")[0]
    layer, rest = head.split(".")
    if rest.startswith("kv"):
        g, per = int(rest[2:]), n_heads // n_kv
        return [f"{layer}.h{h}" for h in range(g * per, (g + 1) * per)]
    return [head]


def paths_through(edges, node, n_heads, n_kv):
    """Edges on some path input -> ... -> node -> ... -> logits, by breadth-first search."""
    out, inn = defaultdict(set), defaultdict(set)
    for e in edges:
        s, r = e.split("->")
        for v in node_of_reader(r, n_heads, n_kv):
            out[s].add(v)
            inn[v].add(s)

    def reach(start, adj):
        seen, q = {start}, deque([start])
        while q:
            x = q.popleft()
            for y in adj[x]:
                if y not in seen:
                    seen.add(y)
                    q.append(y)
        return seen

    from_input, to_node = reach("input", out), reach(node, inn)
    from_node, to_logits = reach(node, out), reach("logits", inn)
    if node not in from_input or node not in to_logits:
        return set()
    keep = set()
    for e in edges:
        s, r = e.split("->")
        for v in node_of_reader(r, n_heads, n_kv):
            if (s in from_input and v in to_node) or (s in from_node and v in to_logits):
                keep.add(e)
    return keep


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("viewer")
    model = TRACR / "reverse"
    truth = model / "truth.json"
    eap = d / "eap.json"
    cli("discover", model, "-t", "tracr-reverse", "-n", 324, "--method", "eap-ig-inputs", "--edges", 12, "-o", eap,
        "--curve", d / "eap.curve.csv")
    one = d / "truth.html"
    cli("view", truth, "-o", one, "--graph-json", d / "truth.graph.json")
    cmp_page = d / "compare.html"
    cli("view", truth, eap, "-o", cmp_page, "--curve", d / "eap.curve.csv")
    return {"truth": truth, "eap": eap, "one": one, "compare": cmp_page, "graph_json": d / "truth.graph.json"}


def test_counts_and_sliders(browser, files):
    open_page(browser, files["one"])
    c, inside = in_edges(files["truth"])
    got = browser.execute_script("return window.ewView.counts()")
    assert got["nodes"] == len(c["nodes"]) + 1  # the file's source nodes and the logits
    assert got["edges"] == len(c["edges"])
    assert got["shown"] == len(inside)
    assert sorted(browser.execute_script("return window.ewView.shownNames()")) == sorted(inside)
    assert got["inCircuit"] == [len(inside)]
    slider = browser.find_element("id", "topn")
    for n in (0, 3, 25, len(c["edges"]), len(c["edges"]) + 10):
        browser.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
                               slider, n)
        shown = browser.execute_script("return window.ewView.counts().shown")
        assert shown == min(n, len(c["edges"])), n
    # The threshold at its top keeps the edges of the largest |score| only.
    thr = browser.find_element("id", "thr")
    browser.execute_script("arguments[0].value = 1000; arguments[0].dispatchEvent(new Event('input'));", thr)
    top = max(abs(v["score"]) for v in c["edges"].values())
    want = {k for k, v in c["edges"].items() if abs(v["score"]) >= top}
    assert set(browser.execute_script("return window.ewView.shownNames()")) == want
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors


def test_click_highlights_the_paths_through_a_node(browser, files):
    from selenium.webdriver.common.action_chains import ActionChains
    c, inside = in_edges(files["eap"])
    open_page(browser, files["compare"])  # two circuits: the union of their in-circuit edges is drawn
    _, truth = in_edges(files["truth"])
    drawn = set(browser.execute_script("return window.ewView.shownNames()"))
    assert drawn == inside | truth
    cfg = c["cfg"]
    canvas = browser.find_element("id", "cv")
    for node in ("m1", "a3.h0", "a0.h0"):
        x, y = browser.execute_script("return window.ewView.nodeScreen(arguments[0])", node)
        rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", canvas)
        ActionChains(browser).move_to_element_with_offset(canvas, int(x - rect[0] / 2), int(y - rect[1] / 2)).click().perform()
        got = set(browser.execute_script("return window.ewView.highlightedNames()"))
        want = paths_through(drawn, node, cfg["n_heads"], cfg.get("n_kv_heads", cfg["n_heads"]))
        assert got == want, node
        assert want, node  # each of these nodes lies on a path in the drawn edges


def test_search_by_name(browser, files):
    # Typing a node's name highlights its input-to-logits paths (as a click does); part of an
    # edge's name highlights the drawn edges whose names contain it.
    open_page(browser, files["one"])
    _, inside = in_edges(files["truth"])
    box = browser.find_element("id", "search")
    box.send_keys("a3.h0")
    got = set(browser.execute_script("return window.ewView.highlightedNames()"))
    assert got == paths_through(inside, "a3.h0", 1, 1) and got
    box.clear()
    box.send_keys("->logits")
    got = set(browser.execute_script("return window.ewView.highlightedNames()"))
    assert got == {e for e in inside if "->logits" in e}
    assert "shown edge(s) match" in browser.find_element("id", "found").text


def test_comparison_counts(browser, files):
    open_page(browser, files["compare"])
    _, a = in_edges(files["truth"])
    _, b = in_edges(files["eap"])
    got = browser.execute_script("return window.ewView.compare()")
    assert got["shared"] == len(a & b)
    assert got["union"] == len(a | b)
    assert got["inEach"] == [len(a), len(b)]
    assert got["only"] == [len(a - b), len(b - a)]
    summary = browser.find_element("id", "summary").text
    assert f"shared by all: {len(a & b)}" in summary


def test_graph_json_loads_in_circuit_tracer_models(browser, files):
    from circuit_tracer.frontend.graph_models import Link, Model
    open_page(browser, files["one"])
    for obj in (browser.execute_script("return window.ewView.graphJson()"), json.load(open(files["graph_json"]))):
        m = Model(**obj)
        for link in m.links:
            Link(**link)
        ids = {n.node_id for n in m.nodes}
        assert all(l["source"] in ids and l["target"] in ids for l in m.links)
    _, inside = in_edges(files["truth"])
    # One link per in-circuit edge and node it feeds (no grouped k/v here: one each).
    assert len(json.load(open(files["graph_json"]))["links"]) == len(inside)


def test_draw_top_keeps_the_best_edges(tmp_path):
    # `draw --top n`: a static figure of at most n edges (the best by |score|, then pruned).
    if not shutil.which("dot"):
        pytest.skip("Graphviz missing (scripts/setup.sh installs it)")
    for top, most in ((10, 10), (4, 4)):
        r = cli("draw", TRACR / "reverse" / "truth.json", "--top", top, "-o", tmp_path / "t.svg")
        drawn = int(r.stdout.split(":")[1].split()[0])
        assert drawn <= most and (tmp_path / "t.svg").exists()
        if top == 10:
            assert drawn == 10  # the whole truth: every edge on an input-to-logits path


def test_bad_inputs_fail_clearly(tmp_path):
    # Circuits of different graphs cannot be compared; the message names the file.
    r = subprocess.run([CLI, "view", TRACR / "reverse" / "truth.json", TRACR / "xproportion" / "truth.json", "-o",
                        tmp_path / "x.html"], capture_output=True, text=True)
    assert r.returncode != 0 and "differs from" in r.stderr and not (tmp_path / "x.html").exists()
    bad = tmp_path / "curve.csv"
    bad.write_text("fraction,edges,edges_after_prune,metric,faithfulness\n0.1,3,3,0.5,zero\n")
    r = subprocess.run([CLI, "view", TRACR / "reverse" / "truth.json", "--curve", bad, "-o", tmp_path / "y.html"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "curve.csv:2" in r.stderr and not (tmp_path / "y.html").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
