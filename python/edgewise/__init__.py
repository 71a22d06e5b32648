"""edgewise: find circuits in transformer language models, from Python.

The engine is C++ (libtorch); this package is its interface, with no computation of its own, so
results equal the command line's. A session::

    import edgewise
    model = edgewise.load()                        # the bundled SmolLM2-135M-Instruct
    graph = model.graph()                          # nodes, edges, real-edge mask
    data = edgewise.task("ioi", model, n=50)       # or edgewise.records([...]), or a .jsonl / .csv path
    result = edgewise.attribute(model, graph, data, method="eap-ig-inputs")
    result.scores                                  # torch.Tensor [n_src, n_dst]
    circuit = edgewise.Circuit.from_result(model, graph, result).top_n(200)
    edgewise.evaluate(model, circuit, data)        # metrics of the full model, circuit, empty circuit
    circuit.to_json("ioi.json")                    # the command line's circuit file

Every method of the command line runs through ``attribute`` (``edgewise.methods()`` lists them):
attribution methods score every edge; search methods (ACDC, Edge Pruning, path patching, ...)
also return the circuit they found (``result.in_circuit``). Errors raise ``ValueError``,
``FileNotFoundError`` or ``NotImplementedError`` with the command line's one-line message;
Ctrl-C raises ``KeyboardInterrupt`` at the next unit of work (a search writes its checkpoint).
"""
from __future__ import annotations

import torch  # noqa: F401  (first: it loads the libtorch the engine links)

from . import _core

__version__ = "0.1.0"
__all__ = ["load", "Model", "Graph", "Dataset", "task", "records", "methods", "attribute", "discover",
           "Result", "Circuit", "evaluate"]

Dataset = _core.Dataset


class Model:
    """A loaded model (weights on one device, its tokenizer). Create with :func:`load`."""

    def __init__(self, core: "_core.Model"):
        self._m = core

    @property
    def source(self) -> str:
        """Where the weights came from (path or hub id)."""
        return self._m.source

    @property
    def config(self) -> dict:
        """Layers, heads, key/value heads, widths, vocabulary and context sizes."""
        return self._m.config

    @property
    def device(self) -> str:
        return self._m.device

    def graph(self, head_level: bool = False) -> "Graph":
        """The circuit graph: sources (input, every head, every MLP) and readers (each head's
        q/k/v inputs, or one reader per head with ``head_level=True``, each MLP, the logits)."""
        return Graph(_core.Graph(self._m, head_level))

    def encode(self, text: str) -> list:
        """Token ids as the model's forward sees them (BOS first when the model asks)."""
        return self._m.encode(text)

    def decode(self, ids) -> str:
        """Text of token ids; embedding rows beyond the tokenizer show as ``<id N>``."""
        return self._m.decode(list(ids))

    def __repr__(self) -> str:
        c = self.config
        return (f"edgewise.Model({self.source!r}, {c['n_layers']} layers, {c['n_heads']} heads "
                f"({c['n_kv_heads']} kv), d_model {c['d_model']}, device {self.device})")


def load(spec: str = "", *, dtype: str = "f32", device: str = "cpu") -> Model:
    """Load a model: a Hugging Face directory, a ``.gguf`` / ``.safetensors`` file, a hub id in
    the local Hugging Face cache (nothing is downloaded), or ``""`` for the bundled default
    (SmolLM2-135M-Instruct). ``dtype``: ``"f32"`` or ``"bf16"``; ``device``: ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` or ``"auto"``. Pickled checkpoints are refused."""
    return Model(_core.Model.load(spec, dtype, device))


class Graph:
    """Nodes and edges of a model's circuit graph, named as EAP-IG / MIB name them
    (``input``, ``a3.h7``, ``m3``, ``logits``; edges ``a0.h0->a3.h7<q>``). Scores and masks are
    dense ``[n_sources, n_readers]`` tensors; ``real_edge_mask`` marks the entries that are edges."""

    def __init__(self, core: "_core.Graph"):
        self._g = core

    n_sources = property(lambda self: self._g.n_sources)
    n_readers = property(lambda self: self._g.n_readers)
    n_edges = property(lambda self: self._g.n_edges, doc="Number of real edges.")
    split_qkv = property(lambda self: self._g.split_qkv, doc="Separate q/k/v readers per head.")
    source_names = property(lambda self: self._g.source_names)
    reader_names = property(lambda self: self._g.reader_names)
    real_edge_mask = property(lambda self: self._g.real_edge_mask,
                              doc="bool [n_sources, n_readers]: True where (source, reader) is an edge.")

    def edge_name(self, src: int, dst: int) -> str:
        return self._g.edge_name(src, dst)

    def find_edge(self, name: str):
        """(src, dst) of an edge name, or None."""
        return self._g.find_edge(name)

    @property
    def edge_names(self) -> list:
        """Every real edge's name, row-major over [n_sources, n_readers]."""
        idx = self.real_edge_mask.nonzero().tolist()
        return [self._g.edge_name(s, r) for s, r in idx]

    def __repr__(self) -> str:
        return (f"edgewise.Graph({self.n_sources} sources, {self.n_readers} readers, {self.n_edges} edges"
                f"{', q/k/v readers' if self.split_qkv else ', head level'})")


def task(name: str, model: Model, n: int = 100, seed: int = 0, *, skip_bad_lines: bool = False) -> Dataset:
    """A built-in task (``ioi``, ``greater-than``, ``induction``, ``gendered-pronouns``,
    ``docstring``, ``sva``; seeded, adapted to the tokenizer) or the first ``n`` good examples of
    a ``.jsonl`` / ``.csv`` file. Every bad line of a file is reported in one ``ValueError``;
    ``skip_bad_lines=True`` skips them instead (``dataset.skipped``, ``dataset.skip_notes``).
    Multi-token answers are allowed and noted in ``dataset.warnings``."""
    return _core.task(name, model._m, n, seed, skip_bad_lines)


def records(items: list, model: Model, *, skip_bad_lines: bool = False, name: str = "records") -> Dataset:
    """A dataset from dicts ``{"clean", "corrupted", "correct", "incorrect", "split"}`` (answers:
    a string or a list of strings, usually with a leading space: ``" Mary"``), checked as files
    are: every bad record at once, or skipped with ``skip_bad_lines``."""
    return _core.records(list(items), model._m, skip_bad_lines, name)


def methods() -> list:
    """The discovery methods: key, kind (attribution or search), one-line summary, sweep option."""
    return _core.methods()


class Result:
    """What every method returns: ``scores`` [n_src, n_dst] float64 (0 off the edges; larger
    |score| = more important; ``score_sign`` says what the sign means), ``in_circuit`` (bool, the
    circuit a search method found; None for attribution) and ``report`` (the method's settings,
    counts, seconds and figures)."""

    def __init__(self, d: dict):
        self.method = d["method"]
        self.scores = d["scores"]
        self.in_circuit = d["in_circuit"]
        self.score_sign = d["score_sign"]
        self.report = d["report"]

    def __repr__(self) -> str:
        extra = "" if self.in_circuit is None else f", {int(self.in_circuit.sum())} edges in its circuit"
        return f"edgewise.Result({self.method!r}, scores {tuple(self.scores.shape)}{extra})"


def _progress_bar(enabled):
    """A progress callable over tqdm (notebook-aware) when ``enabled`` is True; ``enabled``
    itself when it is a callable ``f(stage, done, total, figures)``; else None."""
    if callable(enabled):
        return enabled, None
    if not enabled:
        return None, None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # no tqdm: no bar
        return None, None
    bars = {}

    def report(stage, done, total, figures):
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total or None, desc=stage, leave=False)
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        if figures:
            bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in figures.items()},
                            refresh=False)
        bar.refresh()

    def close():
        for b in bars.values():
            b.close()

    return report, close


def _metric_args(metric):
    """(built-in name or None, callable or None, name, higher_is_better, needs_clean_logits)."""
    if metric is None or isinstance(metric, str):
        return metric, None, "custom", True, False
    if callable(metric):
        return (None, metric, getattr(metric, "__name__", "custom"), getattr(metric, "higher_is_better", True),
                getattr(metric, "needs_clean_logits", False))
    raise TypeError(f"metric must be a name ('logit-diff', 'prob-diff', 'kl', 'accuracy') or a callable, "
                    f"not {type(metric).__name__}")


def attribute(model: Model, graph: Graph, data: Dataset, method: str = "eap-ig-inputs", *,
              ablation: str = "resample", metric=None, progress: bool = True, **options) -> Result:
    """Run a discovery method (``edgewise.methods()``) on ``data`` and return its :class:`Result`.

    ``ablation``: ``resample`` (the corrupted prompt's values), ``mean``, ``zero``, ... as on the
    command line. ``metric``: None for the method's own default (ACDC: ``kl``; the others:
    ``logit-diff``), a built-in name (``logit-diff``, ``prob-diff``, ``kl``, ``accuracy``) or a
    callable ``metric(logits, batch) -> Tensor[N]`` where ``logits`` are the
    logits at the prediction positions [N, V] and ``batch`` a dict with ``correct`` /
    ``incorrect`` answer ids [N, A], their masks (``correct_mask``: 1 for a real answer) and
    ``clean_logits`` (the full model's, when the callable has ``needs_clean_logits = True``);
    set ``higher_is_better = False`` on it for a loss. ``progress``: True for a tqdm bar per stage,
    False for none, or a callable ``f(stage, done, total, figures)`` called after each unit of work. Gradients flow through it for the
    gradient methods. Other keywords are the methods' options, named as the command line's
    (``steps``, ``batch_size``, ``tau`` for ACDC, ``target`` for Edge Pruning, ``checkpoint``,
    ``resume``, ...; docs/PYTHON.md lists them); an unknown one is an error listing them.
    """
    name, fn, fn_name, hib, clean = _metric_args(metric)
    if name is not None:
        options["metric"] = name
    options["ablation"] = ablation
    report, close = _progress_bar(progress)
    try:
        d = _core.discover(method, model._m, graph._g, data, options, fn, fn_name, hib, clean, report)
    finally:
        if close:
            close()
    return Result(d)


discover = attribute


class Circuit:
    """A circuit: per-edge scores and in-circuit flags over a graph, with metadata; on disk the
    command line's JSON (EAP-IG / MIB format plus an ``edgewise`` object)."""

    def __init__(self, core: "_core.Circuit"):
        self._c = core

    @staticmethod
    def from_result(model: Model, graph: Graph, result: Result) -> "Circuit":
        """A circuit holding ``result``'s scores and, for a search method, its circuit."""
        kept = result.in_circuit
        c = Circuit(_core.Circuit.from_scores(model._m, graph._g, result.scores, kept))
        c._c.meta = {"method": result.method, "score_sign": result.score_sign}
        if kept is not None:
            c._c.prune()
        return c

    @staticmethod
    def from_scores(model: Model, graph: Graph, scores: torch.Tensor) -> "Circuit":
        return Circuit(_core.Circuit.from_scores(model._m, graph._g, scores, None))

    @staticmethod
    def from_json(path: str) -> "Circuit":
        """Read a circuit file (edgewise's or EAP-IG's ``Graph.to_json``)."""
        return Circuit(_core.Circuit.read(path))

    def to_json(self, path: str) -> None:
        """Write the command line's circuit file (atomically)."""
        self._c.write(path)

    def _select(self, **kw) -> "Circuit":
        c = Circuit(self._c.copy())
        c._c.select(**kw)
        return c

    def top_n(self, n: int, *, absolute: bool = True) -> "Circuit":
        """The ``n`` best edges by |score| (or signed importance), then pruned (a new circuit)."""
        return self._select(edges=n, absolute=absolute)

    def threshold(self, t: float, *, absolute: bool = True) -> "Circuit":
        """Every edge whose importance is >= ``t``, pruned (a new circuit)."""
        return self._select(threshold=t, absolute=absolute)

    def greedy(self, n: int, *, absolute: bool = True) -> "Circuit":
        """EAP-IG's greedy growth from the logits to ``n`` edges, pruned (a new circuit)."""
        return self._select(edges=n, greedy=True, absolute=absolute)

    def top_nodes(self, n: int) -> "Circuit":
        """The ``n`` best source nodes and the edges among them (a new circuit)."""
        return self._select(nodes=n)

    def prune(self) -> "Circuit":
        """Drop edges on no input -> logits path (in place; returns self)."""
        self._c.prune()
        return self

    n_edges = property(lambda self: self._c.n_edges_in, doc="Edges in the circuit.")
    scores = property(lambda self: self._c.scores, doc="float32 [n_src, n_dst].")
    mask = property(lambda self: self._c.mask, doc="float [n_src, n_dst]: 1 for an edge in the circuit.")

    @property
    def meta(self) -> dict:
        return self._c.meta

    @property
    def edges(self) -> list:
        """Names of the edges in the circuit."""
        g = self._c.graph
        return [g.edge_name(s, r) for s, r in (self.mask > 0).nonzero().tolist()]

    def dot(self) -> str:
        """Graphviz source of the drawing."""
        return self._c.dot()

    def _repr_svg_(self) -> str:
        """The drawing, so a circuit shows itself in a notebook (needs Graphviz's ``dot``)."""
        import os
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "circuit.svg")
            self._c.draw_svg(p)
            with open(p) as f:
                return f.read()

    def to_networkx(self):
        """A ``networkx.DiGraph`` of the circuit's edges (attribute ``score``)."""
        import networkx as nx
        g = nx.DiGraph()
        scores = self.scores
        core_graph = self._c.graph
        for s, r in (self.mask > 0).nonzero().tolist():
            name = core_graph.edge_name(s, r)
            src, dst = name.split("->", 1)
            g.add_edge(src, dst, score=float(scores[s, r]), name=name)
        return g

    def __repr__(self) -> str:
        return f"edgewise.Circuit({self.n_edges} edges, method {self.meta.get('method', '?')!r})"


def evaluate(model: Model, circuit, data: Dataset, *, ablation: str = "resample", metric="logit-diff",
             batch_size: int = 16, progress: bool = True) -> dict:
    """Measure the full model, ``circuit`` (one :class:`Circuit` or a list) and the empty circuit
    on ``data`` in one patched pass per batch. Returns every metric (``logit_diff``,
    ``prob_diff``, ``kl``, ``accuracy``, ``exact_match``, and ``custom`` for a callable metric)
    as lists [model, circuit..., empty], and ``faithfulness`` per circuit under ``metric``."""
    circuits = circuit if isinstance(circuit, (list, tuple)) else [circuit]
    if not circuits:
        raise ValueError("evaluate: no circuit given")
    graph = circuits[0]._c.graph
    masks = torch.stack([c.mask for c in circuits] + [torch.zeros_like(circuits[0].mask)])
    name, fn, fn_name, hib, clean = _metric_args(metric)
    name = name or "logit-diff"
    if fn is None and name.replace("-", "_") not in ("logit_diff", "prob_diff", "kl", "accuracy"):
        raise ValueError(f"metric {name!r}: expected logit-diff, prob-diff, kl, accuracy or a callable")
    report, close = _progress_bar(progress)
    try:
        r = _core.evaluate(model._m, graph, data, masks, ablation, batch_size, fn, fn_name, hib, clean, report)
    finally:
        if close:
            close()
    key = "custom" if fn is not None else name.replace("-", "_")
    vals = r[key]
    r["faithfulness"] = [_core.normalized_faithfulness(v, vals[-1], vals[0]) for v in vals[1:-1]]
    return r
