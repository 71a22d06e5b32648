"""Compile a RASP program with Tracr and export it for edgewise (issue 25): the weights, a config,
the input and output vocabularies, Tracr's own outputs on every input, and the ground-truth
circuit in edgewise's circuit format.

Runs in its own environment (tools/tracr/requirements.txt: tracr-pypi with JAX and Haiku, no
torch):

  python3 -m venv .venv-tracr && .venv-tracr/bin/pip install -r tools/tracr/requirements.txt
  .venv-tracr/bin/python tools/tracr/export.py reverse tests/data/tracr/reverse
  .venv-tracr/bin/python tools/tracr/export.py xproportion tests/data/tracr/xproportion

Files written into the output folder (a few KB each; committed, so tests and CI need no JAX):

  model.safetensors  float32 tensors in torch [out, in] order, edgewise's canonical names:
                     token_embd.weight [V_in, D] (with Tracr's constant "one" direction),
                     position_embd.weight [max_len + 1, D] (row 0, the BOS position, is zero),
                     blk.L.attn_q/attn_k/attn_v.weight [H x Dk, D] and .bias,
                     blk.L.attn_output.weight [D, H x Dk] and .bias, blk.L.ffn_up.weight [F, D]
                     and .bias, blk.L.ffn_down.weight [D, F] and .bias, output.weight [V_out, D]
                     (Tracr's unembedding: a projection of the residual onto the output space)
  config.json        model_type "tracr": sizes, activation (relu), norm (none), causal, the
                     input vocabulary (token ids in Tracr's encoding, BOS first) and output
                     space (categorical values or one numerical output), max_seq_len
  expected.json      every input up to max_seq_len (BOS + 1..max_len tokens): Tracr's decoded
                     output and its output values (the unembedding before argmax), from
                     Tracr's own `apply`
  truth.json         the ground-truth circuit (edgewise's circuit file): the edges whose single
                     zero ablation changes the compiled model's output on some input, computed
                     here with an edge-masked forward that first reproduces Tracr's `apply` on
                     every input (outputs identical, values within 1e-5), then cross-checked
                     against the wiring read from the weights (a reader reads a residual
                     direction its source writes)

Graph naming (edgewise / EAP-IG): sources `input` (token + position embeddings), `aL.hH`, `mL`;
readers `aL.hH<q>`, `<k>`, `<v>`, `mL`, `logits`. Tracr's layer L is an attention half-layer
then an MLP half-layer: block L is attention then MLP, as ACDC's canonical Tracr circuits are
named (blocks.L.attn, blocks.L.mlp). An edge name appears only when the reader comes after the
source (heads of layer L read sources of layers < L; MLP L reads heads of layer <= L).
"""
import argparse
import itertools
import json
import os
import sys

import numpy as np

PROGRAMS = {
    # ACDC's settings (acdc/tracr_task/utils.py): vocabularies, max_seq_len 5, BOS "BOS".
    "reverse": dict(vocab={1, 2, 3}, max_seq_len=5),
    "xproportion": dict(vocab={"w", "x", "y", "z"}, max_seq_len=5),
}
BOS = "BOS"


def make_program(name):
    from tracr.compiler import lib
    from tracr.rasp import rasp
    if name == "reverse":
        return lib.make_reverse(rasp.tokens)
    if name == "xproportion":
        return lib.make_frac_prevs(rasp.tokens == "x")
    raise SystemExit(f"export.py: unknown program {name!r}; expected one of {', '.join(PROGRAMS)}")


def compile_program(name, causal):
    """(the compiled model, the program's label: its output space's name in the residual)."""
    from tracr.compiler import compiling
    p = PROGRAMS[name]
    prog = make_program(name)
    m = compiling.compile_rasp_to_model(prog, vocab=p["vocab"], max_seq_len=p["max_seq_len"], compiler_bos=BOS,
                                        causal=causal)
    return m, prog.label


def weights_of(m, prog_label):
    """Tracr's Haiku parameters as edgewise's canonical tensors ([out, in])."""
    P = {k: {kk: np.asarray(vv, dtype=np.float64) for kk, vv in v.items()} for k, v in m.params.items()}
    cfg = m.model_config
    w = {"token_embd.weight": P["token_embed"]["embeddings"], "position_embd.weight": P["pos_embed"]["embeddings"]}
    for layer in range(cfg.num_layers):
        a, f = f"transformer/layer_{layer}/attn/", f"transformer/layer_{layer}/mlp/"
        b = f"blk.{layer}."
        for src, dst in (("query", "attn_q"), ("key", "attn_k"), ("value", "attn_v")):
            w[b + dst + ".weight"] = P[a + src]["w"].T
            w[b + dst + ".bias"] = P[a + src]["b"]
        w[b + "attn_output.weight"] = P[a + "linear"]["w"].T
        w[b + "attn_output.bias"] = P[a + "linear"]["b"]
        w[b + "ffn_up.weight"] = P[f + "linear_1"]["w"].T
        w[b + "ffn_up.bias"] = P[f + "linear_1"]["b"]
        w[b + "ffn_down.weight"] = P[f + "linear_2"]["w"].T
        w[b + "ffn_down.bias"] = P[f + "linear_2"]["b"]
    # The unembedding: Tracr projects the residual onto the output space (x @ res_to_out); its
    # directions are the program's label with each output value (categorical) or alone.
    res = list(m.residual_labels)
    out_values = output_values(m)
    out = np.zeros((len(out_values) if out_values is not None else 1, len(res)))
    if out_values is None:
        out[0, res.index(prog_label)] = 1.0
    else:
        for i, v in enumerate(out_values):
            out[i, res.index(f"{prog_label}:{v}")] = 1.0
    w["output.weight"] = out
    return w


def output_values(m):
    """The output space's values in Tracr's output encoding order, or None for a numerical output."""
    enc = m.output_encoder
    if enc is None or not hasattr(enc, "encoding_map"):
        return None
    return [v for v, _ in sorted(enc.encoding_map.items(), key=lambda kv: kv[1])]


class Forward:
    """Tracr's transformer (no norm, ReLU MLPs, softmax(QK^T / sqrt(Dk)), optionally causal) in
    numpy float64, with a 0/1 mask per graph edge: reader r's input is the sum of the outputs of
    the sources s with mask[s, r] = 1 (all ones: Tracr's residual stream)."""

    def __init__(self, w, n_layers, n_heads, key_size, causal):
        self.w, self.L, self.H, self.Dk, self.causal = w, n_layers, n_heads, key_size, causal
        self.sources = ["input"] + [n for l in range(n_layers) for n in [f"a{l}.h{h}" for h in range(n_heads)] + [f"m{l}"]]
        self.readers = [n for l in range(n_layers)
                        for n in [f"a{l}.h{h}<{x}>" for h in range(n_heads) for x in "qkv"] + [f"m{l}"]] + ["logits"]
        self.s_idx = {n: i for i, n in enumerate(self.sources)}
        self.r_idx = {n: i for i, n in enumerate(self.readers)}

    def order_ok(self, s, r):
        """Whether source s comes before reader r (the graph's edge set)."""
        if s == "input" or r == "logits":
            return True
        ls = int(s[1:].split(".")[0])
        lr = int(r[1:].split(".")[0].split("<")[0])
        if r.startswith("a"):
            return ls < lr
        return ls < lr or (ls == lr and s.startswith("a"))

    def edges(self):
        return [(s, r) for r in self.readers for s in self.sources if self.order_ok(s, r)]

    def __call__(self, ids, mask=None):
        """ids: [T] input token ids (BOS first). Returns the output values [T, V_out] and every
        source's output [n_sources, T, D]."""
        w = self.w
        T = len(ids)
        outs = {"input": w["token_embd.weight"][ids] + w["position_embd.weight"][np.arange(T)]}

        def read(r):
            x = 0.0
            for s, o in outs.items():
                if self.order_ok(s, r) and (mask is None or mask[self.s_idx[s], self.r_idx[r]]):
                    x = x + o
            return x if not np.isscalar(x) else np.zeros_like(outs["input"])

        for l in range(self.L):
            b = f"blk.{l}."
            Dk = self.Dk
            for h in range(self.H):
                rows = slice(h * Dk, (h + 1) * Dk)
                q = read(f"a{l}.h{h}<q>") @ w[b + "attn_q.weight"][rows].T + w[b + "attn_q.bias"][rows]
                k = read(f"a{l}.h{h}<k>") @ w[b + "attn_k.weight"][rows].T + w[b + "attn_k.bias"][rows]
                v = read(f"a{l}.h{h}<v>") @ w[b + "attn_v.weight"][rows].T + w[b + "attn_v.bias"][rows]
                logits = q @ k.T / np.sqrt(Dk)
                if self.causal:
                    logits = np.where(np.tril(np.ones((T, T))) > 0, logits, -1e30)
                p = np.exp(logits - logits.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                z = p @ v
                o = z @ w[b + "attn_output.weight"][:, rows].T
                if h == 0:  # the output bias is added once per layer: given to head 0
                    o = o + w[b + "attn_output.bias"]
                outs[f"a{l}.h{h}"] = o
            x = read(f"m{l}")
            hidden = np.maximum(0.0, x @ w[b + "ffn_up.weight"].T + w[b + "ffn_up.bias"])
            outs[f"m{l}"] = hidden @ w[b + "ffn_down.weight"].T + w[b + "ffn_down.bias"]
        final = read("logits")
        return final @ w["output.weight"].T, outs


def all_inputs(vocab, max_len):
    vals = sorted(vocab, key=str)
    for n in range(1, max_len + 1):
        for seq in itertools.product(vals, repeat=n):
            yield [BOS] + list(seq)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("program", choices=sorted(PROGRAMS))
    ap.add_argument("out")
    ap.add_argument("--causal", action="store_true", help="compile causally masked attention (Tracr's default: not)")
    ap.add_argument("--tolerance", type=float, default=1e-5,
                    help="values: the numpy forward against Tracr's apply (float32 in JAX)")
    ap.add_argument("--change", type=float, default=1e-3,
                    help="a numerical output counts as changed when it moves by more than this")
    a = ap.parse_args()

    m, label = compile_program(a.program, a.causal)
    cfg = m.model_config
    in_map = m.input_encoder.encoding_map  # token -> id (BOS, the vocabulary, compiler_pad)
    categorical = output_values(m) is not None
    w = weights_of(m, label)
    fw = Forward(w, cfg.num_layers, cfg.num_heads, cfg.key_size, a.causal)

    # Tracr's outputs on every input, and the numpy forward against them.
    expected, base, worst = [], [], 0.0
    for toks in all_inputs(PROGRAMS[a.program]["vocab"], PROGRAMS[a.program]["max_seq_len"]):
        out = m.apply(toks)
        ids = [in_map[t] for t in toks]
        vals_tracr = np.asarray(out.transformer_output[0]) @ w["output.weight"].T  # [T, V_out]
        mine, _ = fw(np.array(ids))
        worst = max(worst, float(np.abs(mine - vals_tracr).max()))
        base.append(mine)  # the unablated outputs the ground truth compares against
        decoded = out.decoded[1:]
        if categorical:
            vals = output_values(m)
            mine_dec = [vals[i] for i in mine[1:].argmax(-1)]
            if mine_dec != decoded:
                raise SystemExit(f"export.py: the numpy forward decodes {toks} as {mine_dec}, Tracr as {decoded}")
        expected.append({"tokens": [str(t) for t in toks], "ids": ids,
                         "decoded": [str(d) if categorical else float(d) for d in decoded],
                         "values": np.asarray(vals_tracr, dtype=np.float64).round(7).tolist()})
    if worst > a.tolerance:
        raise SystemExit(f"export.py: the numpy forward differs from Tracr's apply by {worst:.3g} > {a.tolerance}")

    # Ground truth: single-edge zero ablation over every input.
    edges = fw.edges()
    truth = []
    for s, r in edges:
        mask = np.ones((len(fw.sources), len(fw.readers)))
        mask[fw.s_idx[s], fw.r_idx[r]] = 0
        changed = False
        for e, b in zip(expected, base):
            o, _ = fw(np.array(e["ids"]), mask)
            if categorical:
                changed = (o[1:].argmax(-1) != b[1:].argmax(-1)).any()
            else:
                changed = np.abs(o[1:] - b[1:]).max() > a.change
            if changed:
                break
        if changed:
            truth.append(f"{s}->{r}")

    # The wiring read from the weights: the residual directions each source writes and each
    # reader reads (nonzero columns / rows).
    eps = 1e-9
    writes = {"input": (np.abs(w["token_embd.weight"]).sum(0) + np.abs(w["position_embd.weight"]).sum(0)) > eps}
    reads = {"logits": np.abs(w["output.weight"]).sum(0) > eps}
    for l in range(cfg.num_layers):
        b = f"blk.{l}."
        for h in range(cfg.num_heads):
            rows = slice(h * cfg.key_size, (h + 1) * cfg.key_size)
            writes[f"a{l}.h{h}"] = np.abs(w[b + "attn_output.weight"][:, rows]).sum(1) > eps
            for x, t in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v")):
                reads[f"a{l}.h{h}<{x}>"] = np.abs(w[b + t + ".weight"][rows]).sum(0) > eps
        writes[f"m{l}"] = np.abs(w[b + "ffn_down.weight"]).sum(1) > eps
        reads[f"m{l}"] = np.abs(w[b + "ffn_up.weight"]).sum(0) > eps
    wired = {f"{s}->{r}" for s, r in edges if (writes[s] & reads[r]).any()}
    unwired = sorted(set(truth) - wired)
    if unwired:
        raise SystemExit(f"export.py: edges that change the output but read nothing their source writes: {unwired}")

    os.makedirs(a.out, exist_ok=True)
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()}, os.path.join(a.out, "model.safetensors"))
    inv = sorted(in_map.items(), key=lambda kv: kv[1])
    config = {
        "model_type": "tracr", "program": a.program, "n_layers": cfg.num_layers, "n_heads": cfg.num_heads,
        "d_head": cfg.key_size, "d_model": int(w["token_embd.weight"].shape[1]), "d_mlp": cfg.mlp_hidden_size,
        "activation": "relu", "norm": "none", "causal": a.causal, "max_seq_len": PROGRAMS[a.program]["max_seq_len"],
        "bos": BOS, "bos_id": in_map[BOS], "input_vocab": [str(t) for t, _ in inv],
        "output": "categorical" if categorical else "numerical",
        "output_values": [str(v) for v in output_values(m)] if categorical else None,
        "residual_labels": list(m.residual_labels),
        "exported_by": "tools/tracr/export.py (tracr-pypi 1.0.0)",
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump({"program": a.program, "max_abs_diff_numpy_vs_tracr": worst, "inputs": expected}, f)
    circuit = {
        "cfg": {"n_layers": cfg.num_layers, "n_heads": cfg.num_heads, "n_kv_heads": cfg.num_heads,
                "d_model": config["d_model"], "parallel_attn_mlp": False},
        "nodes": {n: {"in_graph": any(t.startswith(n + "->") or t.split("->")[1].split("<")[0] == n for t in truth)}
                  for n in fw.sources},
        "edges": {f"{s}->{r}": {"score": 1.0 if f"{s}->{r}" in truth else 0.0, "in_graph": f"{s}->{r}" in truth}
                  for s, r in edges},
        "edgewise": {"task": f"tracr-{a.program}", "method": "ground truth",
                     "score_sign": "1 = the edge's single zero ablation changes the output on some input",
                     "n_edges_in_circuit": len(truth), "wired_edges": sorted(wired), "split_qkv": True},
    }
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump(circuit, f, indent=1)
    print(json.dumps({"program": a.program, "layers": cfg.num_layers, "heads": cfg.num_heads, "d_model": config["d_model"],
                      "inputs": len(expected), "max_abs_diff_numpy_vs_tracr": worst, "graph_edges": len(edges),
                      "wired_edges": len(wired), "truth": truth}))


if __name__ == "__main__":
    sys.exit(main())
