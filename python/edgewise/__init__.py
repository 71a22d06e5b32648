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

import contextlib
import os
from typing import Optional

import torch  # noqa: F401  (first: it loads the libtorch the engine links)

from . import _core

__version__ = "0.1.0"
__all__ = ["load", "Model", "Graph", "Dataset", "task", "records", "generate", "methods", "attribute",
           "discover", "Result", "Circuit", "evaluate", "curve", "Curve", "sweep", "Sweep", "tune", "TuneResult",
           "task_score", "tune_allocator", "roc", "init_distributed", "shutdown_distributed", "rank",
           "world_size", "pipeline_stages", "pipeline_stage"]

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
        """Architecture ("gpt2", "llama", "qwen2", "gpt_neox", "gemma3", "tracr"), layers, heads,
        key/value heads, widths, vocabulary and context sizes."""
        return self._m.config

    @property
    def device(self) -> str:
        """Where the weights live and every pass computes (``cpu``, ``cuda:0``...)."""
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

    @property
    def load_notes(self) -> list:
        """What loading did: dequantised types, tied output, weights shared with a model in memory..."""
        return list(self._m.load_notes)

    def save_pretrained(self, path: str) -> None:
        """Write a Hugging Face folder (config.json, model.safetensors, the tokenizer) that
        ``transformers``' ``from_pretrained`` loads; written beside and renamed into place. Across
        ranks only rank 0 writes; with the layers split over ranks (:func:`pipeline_stages` > 1)
        every rank must call it, each sending its layers for rank 0 to write the whole model."""
        self._m.save_pretrained(os.fspath(path))

    @property
    def weights(self) -> dict:
        """The canonical weights (``blk.0.attn_q.weight``, ...) as torch tensors: the model's own
        storage, not copies -- read them, never write them."""
        return self._m.weights()

    def __repr__(self) -> str:
        c = self.config
        return (f"edgewise.Model({self.source!r}, {c['n_layers']} layers, {c['n_heads']} heads "
                f"({c['n_kv_heads']} kv), d_model {c['d_model']}, device {self.device})")


def load(spec="", *, dtype: Optional[str] = None, device: str = "cpu", tokenizer=None) -> Model:
    """Load a model.

    ``spec`` is a Hugging Face directory, a ``.gguf`` / ``.safetensors`` file, a hub id in the
    local Hugging Face cache (nothing is downloaded), ``""`` for the bundled default
    (SmolLM2-135M-Instruct), or a ``transformers`` model object already in memory
    (``GPT2LMHeadModel``, ``LlamaForCausalLM``, ``Qwen2ForCausalLM``, ``GPTNeoXForCausalLM``).

    A file or folder: ``dtype`` is ``"f32"`` (default) or ``"bf16"``; ``device`` is ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` or ``"auto"``. Pickled checkpoints are refused.

    A ``transformers`` model: its weights are *shared*, not copied -- edgewise computes with the
    very tensors of ``spec.state_dict()``, on their device (``device`` is not used) and in their
    dtype (float32 or bfloat16; ``dtype`` defaults to it, another one converts, a copy). Do not
    change the model's weights while edgewise uses them. Its tokenizer is ``tokenizer`` (a
    ``transformers`` tokenizer or a folder with ``tokenizer.json`` / ``vocab.json`` +
    ``merges.txt``), else the model's own folder (``spec.name_or_path``) when it has one;
    without any, tasks given as text cannot be used (``model.load_notes`` says which it took)."""
    if not isinstance(spec, (str, os.PathLike)):
        return _from_transformers(spec, dtype=dtype, tokenizer=tokenizer)
    return Model(_core.Model.load(os.fspath(spec), dtype or "f32", device))


def _from_transformers(hf, *, dtype, tokenizer) -> Model:
    if not (hasattr(hf, "state_dict") and hasattr(hf, "config") and hasattr(hf.config, "to_json_string")):
        raise TypeError(f"edgewise.load: expected a path, a hub id or a transformers model, got {type(hf).__name__}")
    sd = hf.state_dict()  # detached tensors sharing the parameters' storage
    dtypes = {t.dtype for t in sd.values() if t.is_floating_point()}
    if dtype is None:
        if dtypes == {torch.float32}:
            dtype = "f32"
        elif dtypes == {torch.bfloat16}:
            dtype = "bf16"
        else:
            raise ValueError(f"edgewise.load: the model's weights are {sorted(map(str, dtypes))}; edgewise computes "
                             "in float32 or bfloat16 (call .float() or .to(torch.bfloat16), or pass dtype= to convert, a copy)")
    import tempfile
    with tempfile.TemporaryDirectory(prefix="edgewise-hf-") as tmp:
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "w") as f:
            f.write(hf.config.to_json_string())
        tok_dir = None
        if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
            tok_dir = os.path.join(tmp, "tokenizer")
            tokenizer.save_pretrained(tok_dir)
        elif tokenizer is not None:
            tok_dir = os.fspath(tokenizer)
            if not os.path.isdir(tok_dir):
                raise FileNotFoundError(f"{tok_dir}: no such tokenizer folder")
        else:
            own = getattr(hf, "name_or_path", "") or getattr(hf.config, "_name_or_path", "")
            if own and os.path.isdir(own):
                tok_dir = own
        files = {"tokenizer.json": "", "vocab.json": "", "merges.txt": ""}
        if tok_dir:
            for k in files:
                if os.path.isfile(os.path.join(tok_dir, k)):
                    files[k] = os.path.join(tok_dir, k)
            if tokenizer is not None and not files["tokenizer.json"] and not (files["vocab.json"] and files["merges.txt"]):
                raise ValueError(f"{tok_dir}: no tokenizer.json, or vocab.json + merges.txt (edgewise reads those formats)")
        spec = getattr(hf, "name_or_path", "") or type(hf).__name__
        core = _core.Model.from_tensors(cfg, files["tokenizer.json"], files["vocab.json"], files["merges.txt"],
                                        dict(sd), dtype, f"{type(hf).__name__}({spec})")
    return Model(core)


class Graph:
    """Nodes and edges of a model's circuit graph, named as EAP-IG / MIB name them
    (``input``, ``a3.h7``, ``m3``, ``logits``; edges ``a0.h0->a3.h7<q>``). Scores and masks are
    dense ``[n_sources, n_readers]`` tensors; ``real_edge_mask`` marks the entries that are edges."""

    def __init__(self, core: "_core.Graph"):
        self._g = core

    n_sources = property(lambda self: self._g.n_sources, doc="Source nodes: input, every head, every MLP.")
    n_readers = property(lambda self: self._g.n_readers,
                         doc="Readers: each head's q/k/v inputs (or one per head), each MLP, the logits.")
    n_edges = property(lambda self: self._g.n_edges, doc="Number of real edges.")
    split_qkv = property(lambda self: self._g.split_qkv, doc="Separate q/k/v readers per head.")
    source_names = property(lambda self: self._g.source_names, doc="Names of the sources, in score-row order.")
    reader_names = property(lambda self: self._g.reader_names, doc="Names of the readers, in score-column order.")
    real_edge_mask = property(lambda self: self._g.real_edge_mask,
                              doc="bool [n_sources, n_readers]: True where (source, reader) is an edge.")

    def edge_name(self, src: int, dst: int) -> str:
        """The name of the edge at row ``src``, column ``dst`` (``a0.h1->a2.h3<q>``)."""
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


@contextlib.contextmanager
def _progress(enabled):
    """The progress callable of :func:`_progress_bar` for one call; its bars closed after it."""
    report, close = _progress_bar(enabled)
    try:
        yield report
    finally:
        if close:
            close()


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
    raise TypeError(f"metric must be a name ('logit-diff', 'prob-diff', 'kl', 'accuracy', 'mse') or a callable, "
                    f"not {type(metric).__name__}")


def _task_default(value, data: Dataset, which: str, fallback):
    """``value``, or when None the task's own default (the Tracr tasks: zero ablation, MSE), or
    ``fallback``."""
    if value is not None:
        return value
    return getattr(data, "default_" + which, "") or fallback


def _method_options(metric, ablation, options, data: Dataset):
    """A method's metric and ablation into its options (None: the task's default, else the
    method's); returns the callable metric's arguments (callable or None, name,
    higher_is_better, needs_clean_logits)."""
    name, fn, fn_name, hib, clean = _metric_args(_task_default(metric, data, "metric", None))
    ablation = _task_default(ablation, data, "ablation", "resample")
    if name is not None:
        options["metric"] = name
    options["ablation"] = ablation
    return fn, fn_name, hib, clean


def attribute(model: Model, graph: Graph, data: Dataset, method: str = "eap-ig-inputs", *,
              ablation: str | None = None, metric=None, progress: bool = True, **options) -> Result:
    """Run a discovery method (``edgewise.methods()``) on ``data`` and return its :class:`Result`.

    ``ablation``: ``resample`` (the corrupted prompt's values), ``mean``, ``zero``, ... as on the
    command line; None: the task's default (``zero`` for the Tracr tasks), else ``resample``.
    ``metric``: None for the task's default (``mse`` for the Tracr tasks), else the method's own
    (ACDC: ``kl``; the others: ``logit-diff``), a built-in name (``logit-diff``, ``prob-diff``,
    ``kl``, ``accuracy``, ``mse``) or a
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
    fn, fn_name, hib, clean = _method_options(metric, ablation, options, data)
    with _progress(progress) as report:
        d = _core.discover(method, model._m, graph._g, data, options, fn, fn_name, hib, clean, report)
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
        """A circuit holding ``scores`` ``[n_src, n_dst]`` (any float dtype) and no edge yet:
        choose its edges with :meth:`top_n`, :meth:`threshold` or :meth:`greedy`."""
        return Circuit(_core.Circuit.from_scores(model._m, graph._g, scores, None))

    @staticmethod
    def from_json(path: str) -> "Circuit":
        """Read a circuit file (edgewise's or EAP-IG's ``Graph.to_json``)."""
        return Circuit(_core.Circuit.read(path))

    def to_json(self, path: str) -> None:
        """Write the command line's circuit file (atomically)."""
        self._c.write(path)

    def to_circuit_tracer(self, path: Optional[str] = None, slug: str = "edgewise") -> dict:
        """The in-graph edges as circuit-tracer's / Neuronpedia's graph JSON (``metadata``,
        ``qParams``, ``nodes``, ``links``; docs/VIEWER.md), as ``edgewise view --graph-json``
        writes it; also written to ``path`` when given."""
        import json
        text = _core.circuit_tracer_graph(self._c, slug)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return json.loads(text)

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
        """The file's ``edgewise`` object: model, task, method, options, metrics."""
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


def evaluate(model: Model, circuit, data: Dataset, *, ablation: str | None = None, metric=None,
             batch_size: int = 16, per_example: bool = False, progress: bool = True) -> dict:
    """Measure the full model, ``circuit`` (one :class:`Circuit` or a list) and the empty circuit
    on ``data`` in one patched pass per batch.

    ``ablation`` and ``metric`` None: the task's defaults (the Tracr tasks: ``zero``, ``mse``), else
    ``resample`` and ``logit-diff``.
    Returns every metric (``logit_diff``, ``prob_diff``, ``kl``, ``accuracy``, ``mse``, ``exact_match``,
    and ``custom`` for a callable ``metric``) as lists ``[model, circuit..., empty]`` of means
    over the examples, and ``faithfulness``, one per circuit under ``metric``:
    ``(circuit - empty) / (model - empty)``. With ``per_example=True`` also ``per_example``: each
    metric's value for every example, a float64 tensor ``[K + 2, N]`` in the same order (whose
    row means are the lists)."""
    circuits = circuit if isinstance(circuit, (list, tuple)) else [circuit]
    if not circuits:
        raise ValueError("evaluate: no circuit given")
    graph = circuits[0]._c.graph
    masks = torch.stack([c.mask for c in circuits] + [torch.zeros_like(circuits[0].mask)])
    ablation = _task_default(ablation, data, "ablation", "resample")
    name, fn, fn_name, hib, clean = _metric_args(_task_default(metric, data, "metric", "logit-diff"))
    name = name or "logit-diff"
    if fn is None and name.replace("-", "_") not in ("logit_diff", "prob_diff", "kl", "accuracy", "mse"):
        raise ValueError(f"metric {name!r}: expected logit-diff, prob-diff, kl, accuracy, mse or a callable")
    with _progress(progress) as report:
        r = _core.evaluate(model._m, graph, data, masks, ablation, batch_size, fn, fn_name, hib, clean, report,
                           per_example)
    key = "custom" if fn is not None else name.replace("-", "_")
    vals = r[key]
    r["faithfulness"] = [_core.normalized_faithfulness(v, vals[-1], vals[0]) for v in vals[1:-1]]
    return r


class Curve:
    """A faithfulness curve: ``points`` (dicts with ``fraction`` of all edges, ``budget``,
    ``edges`` after pruning, ``metric``, ``faithfulness``), ``cpr`` (area under the faithfulness
    over the fractions) and ``cmd`` (area under ``|1 - faithfulness|``), MIB's two summaries;
    ``circuits`` the circuit at each point. ``to_csv(path)`` writes the command line's
    ``--curve`` file; ``plot()`` draws it with matplotlib."""

    def __init__(self, d: dict, circuits: list, model_value: float, empty_value: float):
        self.points = d["points"]
        self.cpr = d["cpr"]
        self.cmd = d["cmd"]
        self._csv = d["csv"]
        self.circuits = circuits
        self.model_value = model_value
        self.empty_value = empty_value

    @property
    def fractions(self) -> list:
        """The x axis: each point's budget as a fraction of all edges."""
        return [p["fraction"] for p in self.points]

    @property
    def faithfulness(self) -> list:
        """The y axis: each point's normalised faithfulness."""
        return [p["faithfulness"] for p in self.points]

    def to_csv(self, path: str) -> None:
        """The command line's curve file: one row per point and a closing ``# CPR .. CMD ..`` line."""
        with open(path, "w") as f:
            f.write(self._csv)

    def plot(self, ax=None, label: Optional[str] = None):
        """Faithfulness against the fraction of edges kept (log scale); returns the axes."""
        import matplotlib.pyplot as plt
        ax = ax or plt.gca()
        ax.plot(self.fractions, self.faithfulness, marker="o",
                label=label or f"CPR {self.cpr:.3f}, CMD {self.cmd:.3f}")
        ax.set_xscale("log")
        ax.set_xlabel("edges kept (fraction of all)")
        ax.set_ylabel("normalised faithfulness")
        ax.axhline(1.0, color="gray", lw=0.5)
        ax.legend()
        return ax

    def __repr__(self) -> str:
        return f"edgewise.Curve({len(self.points)} points, CPR {self.cpr:.4f}, CMD {self.cmd:.4f})"


def curve(model: Model, scored, data: Dataset, *, fractions=None, ablation: str | None = None,
          metric: str | None = None, absolute: bool = True, greedy: bool = False, batch_size: int = 16,
          progress: bool = True) -> Curve:
    """The faithfulness curve of ``scored`` -- a scored :class:`Circuit` (an attribution's edges
    ranked by score) or a :class:`Sweep` (a search's circuits, one per tau / target) -- on
    ``data``: the circuit at each budget (``fractions`` of all edges, default 0.1% .. 100%,
    the best edges by ``|score|``, or signed with ``absolute=False``, or EAP-IG's greedy growth),
    pruned, measured with the full model and the empty circuit in one patched pass per batch.
    The command line's ``--curve`` computes the same (same circuits, same numbers). ``ablation``
    and ``metric`` None: the task's defaults, else ``resample`` and ``logit-diff``."""
    ablation = _task_default(ablation, data, "ablation", "resample")
    name, fn, fn_name, hib, clean = _metric_args(_task_default(metric, data, "metric", "logit-diff"))
    if fn is not None:
        raise ValueError("curve: metric must be a built-in name (logit-diff, prob-diff, kl, accuracy, mse)")
    name = name or "logit-diff"
    if isinstance(scored, Sweep):
        fr, cores = _core.sweep_curve([c._c for c in scored.circuits], scored.raw_edges, scored.graph.n_edges)
    elif isinstance(scored, Circuit):
        fr = list(fractions) if fractions is not None else _core.curve_fractions()
        cores = _core.curve_circuits(scored._c, fr, absolute, greedy, name)
    else:
        raise TypeError(f"curve: expected a Circuit or a Sweep, got {type(scored).__name__}")
    circuits = [Circuit(c) for c in cores]
    r = evaluate(model, circuits, data, ablation=ablation, metric=name, batch_size=batch_size, progress=progress)
    vals = r[name.replace("-", "_")]
    g = cores[0].graph
    d = _core.faithfulness_curve(fr, cores, vals[1:-1], vals[-1], vals[0], g.n_edges)
    return Curve(d, circuits, vals[0], vals[-1])


class Sweep:
    """A search method run once per value of its sweep option (ACDC's ``tau``, Edge Pruning's
    and HAP's ``target``): ``results`` (one :class:`Result` per value), ``circuits`` (each run's
    circuit, pruned), ``raw_edges`` (each circuit's size before pruning), ``scores`` (one score
    per edge: the largest value at which the edge is kept, as auto-circuit scores ACDC).
    :func:`curve` turns it into a faithfulness curve."""

    def __init__(self, d: dict, model: Model, graph: Graph):
        self.method = d["method"]
        self.values = d["values"]
        self.results = [Result(r) for r in d["runs"]]
        self.scores = d["scores"]
        self.graph = graph
        self.circuits, self.raw_edges = [], []
        for r in self.results:
            c = Circuit(_core.Circuit.from_scores(model._m, graph._g, r.scores, r.in_circuit))
            self.raw_edges.append(c.n_edges)
            self.circuits.append(c.prune())

    def __repr__(self) -> str:
        sizes = ", ".join(str(c.n_edges) for c in self.circuits)
        return f"edgewise.Sweep({self.method!r}, {len(self.values)} values, edges [{sizes}])"


def sweep(model: Model, graph: Graph, data: Dataset, method: str, values, *, ablation: str | None = None,
          metric=None, progress: bool = True, **options) -> Sweep:
    """Run a search method once per value of its sweep option (``tau`` for ``acdc``, ``target``
    for ``edge-pruning`` and ``hap``), as ``edgewise discover --sweep`` does. Options and
    ``metric`` as for :func:`attribute`; with ``checkpoint="ck.json"`` each value checkpoints to
    its own file (``ck.tau0.01.json``)."""
    fn, fn_name, hib, clean = _method_options(metric, ablation, options, data)
    with _progress(progress) as report:
        d = _core.sweep(method, model._m, graph._g, data, [float(v) for v in values], options, fn, fn_name, hib,
                        clean, report)
    return Sweep(d, model, graph)


class TuneResult:
    """What :func:`tune` returns: ``model`` (the tuned :class:`Model`, the original untouched),
    ``rounds`` (each round's nodes with their EAP scores, parameter parts and size), ``log`` (one
    row per optimiser step: loss, learning rate, parameters trained), ``params_total``,
    ``params_updated`` (entries inside the circuit of at least one round), ``steps_done``,
    ``seconds``. ``save_pretrained(dir)`` writes a Hugging Face folder that ``transformers``'
    ``from_pretrained`` loads."""

    def __init__(self, d: dict):
        self.model = Model(d["model"])
        self.rounds = d["rounds"]
        self.log = d["log"]
        self.params_total = d["params_total"]
        self.params_updated = d["params_updated"]
        self.steps_done = d["steps_done"]
        self.complete = d["complete"]
        self.seconds = d["seconds"]

    def save_pretrained(self, path: str) -> None:
        """Write the tuned model as a Hugging Face folder (see :meth:`Model.save_pretrained`)."""
        self.model.save_pretrained(path)

    def __repr__(self) -> str:
        return (f"edgewise.TuneResult({len(self.rounds)} rounds, {self.steps_done} steps, "
                f"{self.params_updated} of {self.params_total} parameters updated)")


def tune(model: Model, data: Dataset, *, progress: bool = True, **options) -> TuneResult:
    """Circuit-tuning (Wang et al. 2025): alternate finding the task's circuit with EAP on the
    current weights and training only the parameters inside it (cross-entropy of the first
    correct answer), everything else frozen bit for bit. ``full=True`` trains every parameter
    instead (the baseline). Trains on all of ``data`` (hold out your own validation set and
    compare with :func:`task_score`).

    Options, as the command line's ``edgewise tune`` (same defaults): ``nodes`` (30) or
    ``edges``, ``mlp_heads``, ``ablation`` (``mean``), ``metric``, ``discovery_examples``,
    ``train_embeddings``, ``train_norms``, ``full``, ``optimizer`` (``sgd`` / ``adamw``), ``lr``,
    ``momentum``, ``weight_decay``, ``rounds``, ``steps_per_round``, ``batch_size``,
    ``warmup_steps``, ``max_grad_norm``, ``seed``, and ``checkpoint`` / ``checkpoint_every`` /
    ``resume`` (Ctrl-C writes the checkpoint and raises KeyboardInterrupt)."""
    with _progress(progress) as report:
        d = _core.tune(model._m, data, options, report)
    return TuneResult(d)


def task_score(model: Model, data: Dataset, *, batch_size: int = 32) -> dict:
    """The plain model on ``data``: mean ``logit_diff``, ``accuracy`` and ``answer_loss``
    (cross-entropy of the first correct answer) -- before and after :func:`tune`."""
    return _core.task_score(model._m, data, batch_size)


def view(circuits, path: Optional[str] = None, *, names=None, curve: "Optional[Curve]" = None, show: int = -1) -> str:
    """The interactive viewer page of ``circuits`` (one :class:`Circuit` or a list over the same
    graph, compared), as ``edgewise view`` writes it: one self-contained HTML file (docs/VIEWER.md).
    ``names`` label them (default: each circuit's method, else circuit1, circuit2, ...); ``curve``
    (a :class:`Curve`) adds its faithfulness against the edges kept; ``show`` edges are drawn
    when the page opens (-1: the circuits' own). Writes ``path`` when given; returns the HTML."""
    cs = circuits if isinstance(circuits, (list, tuple)) else [circuits]
    if not cs:
        raise ValueError("view: no circuit given")
    if names is None:
        names = [str(c.meta.get("method") or f"circuit{i + 1}") for i, c in enumerate(cs)]
    if len(names) != len(cs):
        raise ValueError(f"view: {len(names)} names for {len(cs)} circuits")
    xs = [p["edges"] for p in curve.points] if curve is not None else None
    ys = curve.faithfulness if curve is not None else None
    html = _core.view_html([(n, c._c) for n, c in zip(names, cs)], xs, ys, show)
    if path is not None:
        tmp = f"{path}.part-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, path)
    return html


def roc(circuit: "Circuit", truth: "Circuit", *, merge_qkv: bool = False, absolute: bool = True) -> dict:
    """ROC curves and AUC of a scored ``circuit`` against a ground-truth circuit of the same graph
    (its in-graph edges are the truth), as ``edgewise roc``: ``{"edge": {...}, "node": {...}}``,
    each with ``auc``, ``fpr``, ``tpr``, ``thresholds``, ``positives``, ``negatives`` and the
    circuit's own ``tpr_chosen`` / ``fpr_chosen``. Edges rank by ``|score|`` (``absolute=False``:
    by the score); ``merge_qkv`` counts a head's q/k/v inputs as one edge; a node ranks by its
    best out-edge. Tracr's known circuits are in ``tests/data/tracr/*/truth.json``."""
    return _core.roc(circuit._c, truth._c, merge_qkv, absolute)


def init_distributed() -> int:
    """Join the ranks of a distributed run (``torchrun --nproc-per-node N script.py``, SLURM):
    reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and returns the world size
    (1 when the variables are absent: nothing is joined). After it every method splits its
    prompts over the ranks and every rank gets the same result (docs/SCALING.md); write files
    on ``rank() == 0`` only. edgewise's group is its own (c10d's TCPStore and Gloo), not
    torch.distributed's: a script that also calls ``torch.distributed.init_process_group`` gives
    edgewise another port with EDGEWISE_MASTER_PORT. With EDGEWISE_PIPELINE_STAGES=P the
    layers are split over P ranks (a pipeline; :func:`pipeline_stage`): load the model after
    this call, so that each rank holds only its stage's layers."""
    return _core.init_distributed()


def shutdown_distributed() -> None:
    """Leave the group joined by :func:`init_distributed` (waits for every rank)."""
    _core.shutdown_distributed()


def rank() -> int:
    """This process's rank (0 without a distributed run)."""
    return _core.rank()


def world_size() -> int:
    """The number of ranks (1 without a distributed run)."""
    return _core.world_size()


def pipeline_stages() -> int:
    """How many pipeline stages the layers are split over (1: every rank holds the whole model)."""
    return _core.pipeline_stages()


def pipeline_stage() -> int:
    """This rank's pipeline stage, 0 .. pipeline_stages() - 1 (it holds that stage's layers)."""
    return _core.pipeline_stage()


def tune_allocator() -> None:
    """Make glibc's malloc keep freed memory for reuse, as the command line does at start: large
    passes then skip the page faults of fresh memory (EAP on the default model: ~4% faster,
    docs/BENCHMARKS.md). The cost, in a long-lived process such as a notebook: resident memory
    no longer shrinks after a large computation (up to the largest working set stays mapped).
    Process-wide and not undoable; call it once at the start of a script that runs big passes."""
    _core.tune_allocator()


def generate(generator, model: Model, *, symmetric: bool = False, name: str = "generated",
             skip_bad_lines: bool = False) -> Dataset:
    """A dataset from a generator (or any iterable), in the shape of the alternative ACDC
    implementation's ``generate_dataset``: it yields ``(prompt, correct_answers,
    incorrect_answers)`` alternately for a clean prompt and the corrupted prompt patched into it
    (items 1 and 2 are one example, 3 and 4 the next, ...); or it yields whole examples,
    ``(clean, correct, incorrect, corrupted)`` or ``(clean, correct, incorrect, corrupted,
    corrupted_correct, corrupted_incorrect)``. Answers are a string or a list of strings.

    ``symmetric=True`` (ACDC's ``has_symmetric_patching``) appends every pair swapped -- the
    corrupted prompt patched by the clean one -- after the originals, doubling the dataset (it
    needs the corrupted prompt's answers: the alternating or the 6-field form). Prompts of
    different lengths are padded; each example's prediction position is its own last token.
    Examples are checked as :func:`records` checks them."""
    items = list(generator)
    recs, swapped = [], []
    if items and len(items[0]) == 3:
        if len(items) % 2:
            raise ValueError(f"generate: {len(items)} (prompt, correct, incorrect) items: expected pairs "
                             "(clean, then corrupted), an even number")
        pairs = [(items[i], items[i + 1]) for i in range(0, len(items), 2)]
        for k, (a, b) in enumerate(pairs):
            for it, where in ((a, 2 * k), (b, 2 * k + 1)):
                if len(it) != 3:
                    raise ValueError(f"generate: item {where} has {len(it)} fields; expected 3 "
                                     "(prompt, correct_answers, incorrect_answers) like item 0")
            recs.append({"clean": a[0], "corrupted": b[0], "correct": a[1], "incorrect": a[2]})
            swapped.append({"clean": b[0], "corrupted": a[0], "correct": b[1], "incorrect": b[2]})
    else:
        for k, it in enumerate(items):
            if len(it) not in (4, 6):
                raise ValueError(f"generate: item {k} has {len(it)} fields; expected (prompt, correct, incorrect) "
                                 "pairs, or (clean, correct, incorrect, corrupted[, corrupted_correct, "
                                 "corrupted_incorrect])")
            recs.append({"clean": it[0], "corrupted": it[3], "correct": it[1], "incorrect": it[2]})
            if symmetric:
                if len(it) != 6:
                    raise ValueError(f"generate: symmetric=True needs the corrupted prompt's answers; item {k} "
                                     "has 4 fields (give 6: ..., corrupted_correct, corrupted_incorrect)")
                swapped.append({"clean": it[3], "corrupted": it[0], "correct": it[4], "incorrect": it[5]})
    if symmetric:
        recs += swapped
    return records(recs, model, skip_bad_lines=skip_bad_lines, name=name)
