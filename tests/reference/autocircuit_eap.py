#!/usr/bin/env python3
"""Reference for the auto-circuit comparison (issue 5, "What must be shown" 2): edge attribution
patching scores computed by auto-circuit (PyPI `auto-circuit`, on a TransformerLens
HookedTransformer), independently of edgewise, for a small random GPT-2 that edgewise loads from
a Hugging Face directory written here.

What auto-circuit's score is, exactly, and how it maps onto edgewise's convention: docs/AUTOCIRCUIT.md.
In short: score(s->d) = sum over batch, positions and d_model of (clean_s - corrupt_s) * d/dx_d of
mean_b(logit[correct] - logit[incorrect]) at the last position, x_d = reader d's input before its
LayerNorm; head outputs exclude b_O; every bias cancels in clean - corrupt.

Writes into --out:
  model/         Hugging Face GPT-2 checkpoint of the TransformerLens model: config.json
                 (model_type gpt2, tie_word_embeddings true, layer_norm_epsilon = TL's eps) and
                 model.safetensors (HF tensor names, Conv1D [in, out] layouts), checked here:
                 transformers' logits == TransformerLens logits (max diff printed, asserted <= 1e-4)
  data.json      {"clean": [[ids]], "corrupted": [[ids]], "correct": [id], "incorrect": [id]}
                 (B = 6 prompts of T = 10 random ids; every corrupted id differs from the clean one)
  scores.json    {"split": {edge: score}  separate q/k/v readers (auto-circuit separate_qkv=True),
                  "head":  {edge: score}  head-level readers a{l}.h{h} (separate_qkv=False),
                  "split_ig": {edge: score}  auto-circuit's integrated mask gradients, IG_SAMPLES,
                  "ig_samples": IG_SAMPLES, "convention": text, "versions": {...},
                  "stubbed": [packages stubbed while importing], and the check figures:
                  "eap_max_abs", "crosscheck_max_abs_diff", "finite_difference_max_abs_diff",
                  "export_max_abs_diff"}
                 Edge names are edgewise's: input, a{l}.h{h}, m{l} -> a{l}.h{h}<q|k|v>, a{l}.h{h},
                 m{l}, logits. Every edge auto-circuit scores is written.

auto-circuit is run with: resample ablation from the corrupted prompts, grad_function "logit",
answer_function "avg_diff" (mean over the batch of correct - incorrect logit), slice_output
"last_seq", seq_len None (all positions ablated together), mask value 0 (= the clean edge in
auto-circuit's convention). Its slow edge_attribution_patching_prune_scores (a replication of
Syed et al.'s code) is run too and must agree with the mask gradient (checked here), so a broken
install or TransformerLens shim cannot slip through.

The peer libraries are installed by `pip install --no-deps -r requirements-peers.txt
torch==2.13.0`. A few modules they import but never use here are replaced by stubs in
sys.modules while they are imported (PEER_STUBS below; docs/AUTOCIRCUIT.md says why).

Also imported as a module by bench/autocircuit_bench.py (model building, export, data, running).
"""
import argparse
import importlib.machinery
import json
import os
import sys
import time
import types

import torch

# The small model of the comparison: GPT-2 architecture (LayerNorm, gelu_new, learned positions,
# biases everywhere), no LN folding or weight centring (edgewise computes the unfolded model).
SMALL = dict(n_layers=3, n_heads=4, d_model=64, d_head=16, d_mlp=256, n_ctx=64, d_vocab=512)
# GPT-2 small's shape, for the benchmark.
GPT2_SMALL = dict(n_layers=12, n_heads=12, d_model=768, d_head=64, d_mlp=3072, n_ctx=1024,
                  d_vocab=50257)
EPS = 1e-5
B, T = 6, 10
IG_SAMPLES = 5
MODEL_SEED, DATA_SEED = 5, 6


# ----------------------------------------------------------------------------------------------
# Importing the peers
# ----------------------------------------------------------------------------------------------

class _Stubbed:
    """Stands in for a class of a package that is not installed; using it is an error."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__}: this package is stubbed out (see docs/AUTOCIRCUIT.md)")


def _stub_module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)  # so importlib.util.find_spec works
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(sys.modules[parent], child, mod)
    return mod


def _unavailable(what):
    def f(*args, **kwargs):
        raise RuntimeError(f"{what} is stubbed out (see docs/AUTOCIRCUIT.md)")
    return f


# Packages that transformer-lens / auto-circuit import at module level but that no code path
# used here calls, and the attributes those imports need. Each maps to the stub modules to make.
PEER_STUBS = {
    # transformer_lens.utilities.{hf_utils,tokenize_utils}, evals: loading HF data sets (would
    # pull pyarrow, dill, multiprocess, aiohttp, ...)
    "datasets": {"datasets": {"load_dataset": _unavailable("datasets.load_dataset"), "Dataset": _Stubbed},
                 "datasets.arrow_dataset": {"Dataset": _Stubbed},
                 "datasets.iterable_dataset": {"IterableDataset": _Stubbed},
                 "datasets.load": {"load_dataset": _unavailable("datasets.load_dataset")}},
    # transformer_lens.patching: result DataFrames
    "pandas": {"pandas": {"DataFrame": _Stubbed}},
    # auto_circuit.model_utils.sparse_autoencoders.sparse_autoencoder: downloads SAE weights from
    # Azure blobs (would pull lxml + pycryptodomex)
    "blobfile": {"blobfile": {"BlobFile": _Stubbed}},
}


def stubbed_import(packages, do_import):
    """Runs do_import() with stubs for those of `packages` that are not installed (a real install
    is used as is), then takes the stubs out of sys.modules again: the modules that imported them
    keep their reference, and code that probes for an optional package (plotly looks for pandas)
    does not find a fake one. Returns (do_import's result, the packages that were stubbed)."""
    import importlib.util
    made, stubbed = [], []
    for pkg in packages:
        if importlib.util.find_spec(pkg) is not None:
            continue
        stubbed.append(pkg)
        for name, attrs in PEER_STUBS[pkg].items():
            _stub_module(name, **attrs)
            made.append(name)
    try:
        return do_import(), stubbed
    finally:
        for name in made:
            sys.modules.pop(name, None)


def import_peers():
    """Imports transformer_lens and the auto_circuit pieces used here; returns a namespace."""
    import importlib
    import importlib.util
    import warnings
    for pkg in ("auto_circuit", "transformer_lens"):
        if importlib.util.find_spec(pkg) is None:
            raise SystemExit(f"{pkg} is not installed: pip install --no-deps -r "
                             "requirements-peers.txt torch==2.13.0 (docs/AUTOCIRCUIT.md)")
    # TransformerLens 3 warns on every HookedTransformer that 4.0 removes it (we pin 3.9.0).
    warnings.filterwarnings("ignore", message="HookedTransformer is deprecated")
    tl, stubbed = stubbed_import(["datasets", "pandas"], lambda: importlib.import_module("transformer_lens"))
    # auto-circuit 1.0.1 was written against TransformerLens 1.x/2.x, whose key-value cache class
    # was transformer_lens.past_key_value_caching.HookedTransformerKeyValueCache; TransformerLens
    # 3.x (the line that supports transformers 5) renamed it TransformerLensKeyValueCache.
    # auto-circuit only uses the name in type hints and for an optional cache we never pass.
    if not hasattr(tl, "HookedTransformerKeyValueCache"):
        tl.HookedTransformerKeyValueCache = tl.TransformerLensKeyValueCache
    if "transformer_lens.past_key_value_caching" not in sys.modules:
        try:
            import transformer_lens.past_key_value_caching  # noqa: F401  (TransformerLens < 3)
        except ImportError:
            _stub_module("transformer_lens.past_key_value_caching",
                         HookedTransformerKeyValueCache=tl.TransformerLensKeyValueCache)
    _, stubbed_ac = stubbed_import(
        ["blobfile"], lambda: importlib.import_module("auto_circuit.utils.graph_utils"))
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.edge_attribution_patching import \
        edge_attribution_patching_prune_scores
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.types import AblationType
    from auto_circuit.utils.ablation_activations import batch_src_ablations
    from auto_circuit.utils.graph_utils import patch_mode, patchable_model
    from auto_circuit.utils.tensor_ops import batch_avg_answer_diff
    from importlib.metadata import version
    return types.SimpleNamespace(
        tl=tl, PromptDataLoader=PromptDataLoader, PromptDataset=PromptDataset,
        eap_slow=edge_attribution_patching_prune_scores, mask_gradient=mask_gradient_prune_scores,
        AblationType=AblationType, patchable_model=patchable_model, patch_mode=patch_mode,
        batch_src_ablations=batch_src_ablations, batch_avg_answer_diff=batch_avg_answer_diff,
        versions={"auto-circuit": version("auto-circuit"),
                  "transformer-lens": version("transformer-lens"),
                  "torch": torch.__version__},
        stubbed=stubbed + stubbed_ac)


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------

def tl_config(peers, shape, separate_qkv):
    """A HookedTransformerConfig for GPT-2's architecture with the hooks auto-circuit needs:
    per-head results (use_attn_result), MLP input before ln2 (use_hook_mlp_in), and either
    separate q/k/v inputs per head (use_split_qkv_input) or one input per head (use_attn_in).
    Only one of the last two: with both, TransformerLens feeds attention from the split inputs
    and hook_attn_in would be a dead end."""
    return peers.tl.HookedTransformerConfig(
        n_layers=shape["n_layers"], n_heads=shape["n_heads"], d_model=shape["d_model"],
        d_head=shape["d_head"], d_mlp=shape["d_mlp"], n_ctx=shape["n_ctx"],
        d_vocab=shape["d_vocab"], d_vocab_out=shape["d_vocab"], act_fn="gelu_new",
        normalization_type="LN", eps=EPS, positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel", default_prepend_bos=False,
        use_attn_result=True, use_hook_mlp_in=True,
        use_split_qkv_input=separate_qkv, use_attn_in=not separate_qkv,
        init_weights=False, dtype=torch.float32, device="cpu", seed=None)


def random_state_dict(peers, shape, seed):
    """Seeded random weights for a HookedTransformer of `shape`, as a state dict.

    Scales (as in model_golden.py): embeddings std 0.5, matrices std 1/sqrt(fan_in) so the
    residual stream stays O(1) and attention scores have std ~1 (clearly non-uniform patterns),
    LayerNorm gains 1 + 0.2 N(0,1), every bias 0.1 N(0,1). Unembedding tied: W_U = W_E^T,
    b_U = 0, so the model is exactly a tied Hugging Face GPT-2."""
    g = torch.Generator().manual_seed(seed)
    model = peers.tl.HookedTransformer(tl_config(peers, shape, True))
    sd = {}
    for name, p in model.state_dict().items():
        if not p.is_floating_point() or name.endswith(("IGNORE", ".mask")):
            sd[name] = p  # buffers (causal mask, IGNORE)
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("W_E", "W_pos"):
            v = 0.5 * torch.randn(p.shape, generator=g)
        elif leaf in ("W_Q", "W_K", "W_V"):  # [H, D, Dh], fan_in D
            v = torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5
        elif leaf == "W_O":  # [H, Dh, D], fan_in H * Dh
            v = torch.randn(p.shape, generator=g) / (p.shape[0] * p.shape[1]) ** 0.5
        elif leaf in ("W_in", "W_out"):  # [in, out]
            v = torch.randn(p.shape, generator=g) / p.shape[0] ** 0.5
        elif leaf == "w":  # LayerNorm gain
            v = 1.0 + 0.2 * torch.randn(p.shape, generator=g)
        elif leaf in ("W_U", "b_U"):
            continue  # tied below
        elif leaf.startswith("b"):
            v = 0.1 * torch.randn(p.shape, generator=g)
        else:
            raise RuntimeError(f"random_state_dict: unexpected parameter {name} {tuple(p.shape)}")
        sd[name] = v.to(p.dtype)
    sd["unembed.W_U"] = sd["embed.W_E"].T.contiguous()
    sd["unembed.b_U"] = torch.zeros(shape["d_vocab"])
    return sd


def make_tl_model(peers, shape, sd, separate_qkv):
    """A fresh HookedTransformer with weights `sd`, set up as auto-circuit's own loader
    (experiment_utils.load_tl_model) leaves it: eval mode, weights not requiring grad."""
    model = peers.tl.HookedTransformer(tl_config(peers, shape, separate_qkv))
    model.load_state_dict(sd, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return model


def hf_state_dict(sd, shape):
    """TransformerLens weights -> Hugging Face GPT2LMHeadModel tensor names and layouts
    (Conv1D weights are [in, out]; c_attn's output is [q heads | k heads | v heads])."""
    L = shape["n_layers"]
    out = {"transformer.wte.weight": sd["embed.W_E"], "transformer.wpe.weight": sd["pos_embed.W_pos"],
           "transformer.ln_f.weight": sd["ln_final.w"], "transformer.ln_f.bias": sd["ln_final.b"]}
    for l in range(L):
        p, h = f"blocks.{l}.", f"transformer.h.{l}."
        qkv_w = [sd[p + f"attn.W_{x}"].permute(1, 0, 2).reshape(shape["d_model"], -1) for x in "QKV"]
        qkv_b = [sd[p + f"attn.b_{x}"].reshape(-1) for x in "QKV"]
        out.update({
            h + "ln_1.weight": sd[p + "ln1.w"], h + "ln_1.bias": sd[p + "ln1.b"],
            h + "attn.c_attn.weight": torch.cat(qkv_w, dim=1),  # [D, 3 H Dh]
            h + "attn.c_attn.bias": torch.cat(qkv_b),
            h + "attn.c_proj.weight": sd[p + "attn.W_O"].reshape(-1, shape["d_model"]),  # [H Dh, D]
            h + "attn.c_proj.bias": sd[p + "attn.b_O"],
            h + "ln_2.weight": sd[p + "ln2.w"], h + "ln_2.bias": sd[p + "ln2.b"],
            h + "mlp.c_fc.weight": sd[p + "mlp.W_in"], h + "mlp.c_fc.bias": sd[p + "mlp.b_in"],
            h + "mlp.c_proj.weight": sd[p + "mlp.W_out"], h + "mlp.c_proj.bias": sd[p + "mlp.b_out"],
        })
    return {k: v.contiguous().clone() for k, v in out.items()}


def tl_state_dict_from_hf(hf, shape):
    """The inverse of hf_state_dict: Hugging Face GPT-2 tensors (tied, no lm_head.weight needed)
    -> TransformerLens names and layouts, unembedding W_U = W_E^T, b_U = 0."""
    H, D, Dh = shape["n_heads"], shape["d_model"], shape["d_head"]
    g = lambda k: hf.get("transformer." + k, hf.get(k))  # with or without the prefix
    sd = {"embed.W_E": g("wte.weight"), "pos_embed.W_pos": g("wpe.weight"),
          "ln_final.w": g("ln_f.weight"), "ln_final.b": g("ln_f.bias")}
    for l in range(shape["n_layers"]):
        p, h = f"blocks.{l}.", f"h.{l}."
        w, b = g(h + "attn.c_attn.weight"), g(h + "attn.c_attn.bias")  # [D, 3 H Dh], [3 H Dh]
        for i, x in enumerate("QKV"):
            sd[p + f"attn.W_{x}"] = w[:, i * D:(i + 1) * D].reshape(D, H, Dh).permute(1, 0, 2)
            sd[p + f"attn.b_{x}"] = b[i * D:(i + 1) * D].reshape(H, Dh)
        sd.update({
            p + "ln1.w": g(h + "ln_1.weight"), p + "ln1.b": g(h + "ln_1.bias"),
            p + "attn.W_O": g(h + "attn.c_proj.weight").reshape(H, Dh, D),
            p + "attn.b_O": g(h + "attn.c_proj.bias"),
            p + "ln2.w": g(h + "ln_2.weight"), p + "ln2.b": g(h + "ln_2.bias"),
            p + "mlp.W_in": g(h + "mlp.c_fc.weight"), p + "mlp.b_in": g(h + "mlp.c_fc.bias"),
            p + "mlp.W_out": g(h + "mlp.c_proj.weight"), p + "mlp.b_out": g(h + "mlp.c_proj.bias"),
        })
    sd["unembed.W_U"] = sd["embed.W_E"].T
    sd["unembed.b_U"] = torch.zeros(shape["d_vocab"])
    return sd


def shape_from_config(config):
    """The model shape (SMALL's keys) of an exported config.json."""
    return dict(n_layers=config["n_layer"], n_heads=config["n_head"], d_model=config["n_embd"],
                d_head=config["n_embd"] // config["n_head"],
                d_mlp=config.get("n_inner") or 4 * config["n_embd"], n_ctx=config["n_positions"],
                d_vocab=config["vocab_size"])


def load_tl_model(peers, model_dir, separate_qkv):
    """A HookedTransformer with the weights of an exported model directory; returns (model, shape)."""
    from safetensors.torch import load_file
    with open(os.path.join(model_dir, "config.json")) as f:
        shape = shape_from_config(json.load(f))
    sd = tl_state_dict_from_hf(load_file(os.path.join(model_dir, "model.safetensors")), shape)
    model = peers.tl.HookedTransformer(tl_config(peers, shape, separate_qkv))
    buffers = {k: v for k, v in model.state_dict().items() if k not in sd}  # causal mask, IGNORE
    model.load_state_dict({**sd, **buffers}, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    return model, shape


def export_hf(sd, shape, out_dir):
    """Writes out_dir/config.json and out_dir/model.safetensors (tied: no lm_head.weight)."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": shape["d_vocab"], "n_positions": shape["n_ctx"], "n_embd": shape["d_model"],
        "n_layer": shape["n_layers"], "n_head": shape["n_heads"], "n_inner": shape["d_mlp"],
        "activation_function": "gelu_new", "layer_norm_epsilon": EPS,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": True,
        "bos_token_id": shape["d_vocab"] - 1, "eos_token_id": shape["d_vocab"] - 1,
        "torch_dtype": "float32",
    }
    assert shape["d_head"] * shape["n_heads"] == shape["d_model"], "HF GPT-2 needs H * Dh = D"
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    save_file(hf_state_dict(sd, shape), os.path.join(out_dir, "model.safetensors"),
              metadata={"format": "pt"})


def check_export(tl_model, out_dir, ids):
    """Max |transformers logits - TransformerLens logits| on ids [B, T]."""
    from transformers import GPT2LMHeadModel
    hf = GPT2LMHeadModel.from_pretrained(out_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        ref = hf(ids).logits
        got = tl_model(ids)
    return (ref - got).abs().max().item()


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def make_data(vocab, batch, tokens, seed):
    """Seeded random prompts: clean ids, corrupted ids differing from clean at every position,
    and two different answer tokens per prompt."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, vocab, (batch, tokens), generator=g)
    corrupted = (clean + torch.randint(1, vocab, (batch, tokens), generator=g)) % vocab
    correct = torch.randint(0, vocab, (batch,), generator=g)
    incorrect = (correct + torch.randint(1, vocab, (batch,), generator=g)) % vocab
    return {"clean": clean.tolist(), "corrupted": corrupted.tolist(),
            "correct": correct.tolist(), "incorrect": incorrect.tolist()}


def dataloader(peers, data):
    """One batch holding every prompt (auto-circuit's scores accumulate over batches: one batch
    makes the metric exactly the batch mean)."""
    clean = torch.tensor(data["clean"])
    corrupted = torch.tensor(data["corrupted"])
    ds = peers.PromptDataset(clean, corrupted,
                             [torch.tensor([a]) for a in data["correct"]],
                             [torch.tensor([a]) for a in data["incorrect"]])
    return peers.PromptDataLoader(ds, seq_len=None, diverge_idx=0, batch_size=len(clean),
                                  shuffle=False)


# ----------------------------------------------------------------------------------------------
# auto-circuit
# ----------------------------------------------------------------------------------------------

def edgewise_node(name):
    """auto-circuit node name -> edgewise node name."""
    if name == "Resid Start":
        return "input"
    if name == "Resid End":
        return "logits"
    if name.startswith("MLP "):
        return f"m{int(name[4:])}"
    if name.startswith("A"):
        parts = name[1:].split(".")  # A{l}.{h} or A{l}.{h}.{Q|K|V}
        node = f"a{int(parts[0])}.h{int(parts[1])}"
        return node + (f"<{parts[2].lower()}>" if len(parts) == 3 else "")
    raise ValueError(f"unknown auto-circuit node {name!r}")


def edgewise_edge(edge):
    return f"{edgewise_node(edge.src.name)}->{edgewise_node(edge.dest.name)}"


def patchable(peers, shape, sd, separate_qkv):
    model = make_tl_model(peers, shape, sd, separate_qkv)
    return peers.patchable_model(model, factorized=True, slice_output="last_seq", seq_len=None,
                                 separate_qkv=separate_qkv, device=torch.device("cpu"))


def run_mask_gradient(peers, pm, dl, ig_samples=None):
    """auto-circuit's mask gradient: at mask 0 (EAP) or integrated over ig_samples + 1 points."""
    return peers.mask_gradient(
        pm, dl, None, grad_function="logit", answer_function="avg_diff",
        mask_val=None if ig_samples else 0.0, integrated_grad_samples=ig_samples,
        ablation_type=peers.AblationType.RESAMPLE, clean_corrupt="corrupt")


def named_scores(pm, prune_scores):
    out = {}
    for edge in pm.edges:
        name = edgewise_edge(edge)
        assert name not in out, f"two auto-circuit edges map to {name}"
        out[name] = float(edge.prune_score(prune_scores))
    return out


CONVENTION = (
    "auto-circuit 1.0.1 mask_gradient_prune_scores(grad_function='logit', answer_function="
    "'avg_diff', mask_val=0, ablation_type=RESAMPLE, clean_corrupt='corrupt'), slice_output="
    "'last_seq', seq_len=None. score(s->d) = sum_{b,t,k} (clean_s - corrupt_s)[b,t,k] * "
    "dM/dx_d[b,t,k], M = mean_b(logit_b[T-1, correct_b] - logit_b[T-1, incorrect_b]) on the clean "
    "run, x_d = reader d's input before its LayerNorm (the head's own copy of the residual for "
    "a{l}.h{h}<q|k|v> and a{l}.h{h}; the MLP input before ln_2; the final LayerNorm's input for "
    "logits). Positive = the edge raises the logit difference (ablating it lowers M to first "
    "order). Source outputs: input = token + position embedding; a{l}.h{h} = z_h W_O_h without "
    "b_O; m{l} = MLP output with b_out (b_out and the position embedding cancel in clean - "
    "corrupt). split_ig: sum (not mean) of the mask gradient at masks i/ig_samples, i = 0.."
    "ig_samples (ig_samples + 1 points, both ends included).")


def scores_for(peers, shape, sd, data, separate_qkv, ig_samples=None):
    pm = patchable(peers, shape, sd, separate_qkv)
    ps = run_mask_gradient(peers, pm, dataloader(peers, data), ig_samples)
    return pm, ps, named_scores(pm, ps)


def finite_difference_check(peers, pm, data, scores, n_edges=8, h=1e-2):
    """Pins the sign and scale of the convention: for the n_edges largest scores, the central
    difference of M in auto-circuit's mask of that edge alone, score ~ -(M(h) - M(-h)) / 2h
    (auto-circuit's mask 0 = clean, 1 = ablated). Returns the max |score - difference|."""
    dl = dataloader(peers, data)
    batch = next(iter(dl))
    outs = peers.batch_src_ablations(pm, dl, peers.AblationType.RESAMPLE, "corrupt")[batch.key]
    by_name = {edgewise_edge(e): e for e in pm.edges}

    def metric_at(edge, m):
        with torch.no_grad(), peers.patch_mode(pm, outs, edges=[edge]):  # sets this mask to 1
            edge.patch_mask(pm).data[edge.patch_idx] = m
            return peers.batch_avg_answer_diff(pm(batch.clean)[pm.out_slice], batch).item()

    worst = 0.0
    for name in sorted(scores, key=lambda k: -abs(scores[k]))[:n_edges]:
        e = by_name[name]
        fd = -(metric_at(e, h) - metric_at(e, -h)) / (2 * h)
        worst = max(worst, abs(fd - scores[name]))
    return worst


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    peers = import_peers()

    sd = random_state_dict(peers, SMALL, MODEL_SEED)
    data = make_data(SMALL["d_vocab"], B, T, DATA_SEED)
    with open(os.path.join(a.out, "data.json"), "w") as f:
        json.dump(data, f)

    model_dir = os.path.join(a.out, "model")
    export_hf(sd, SMALL, model_dir)
    tl_model = make_tl_model(peers, SMALL, sd, True)
    ids = torch.cat([torch.tensor(data["clean"]), torch.tensor(data["corrupted"])])
    diff = check_export(tl_model, model_dir, ids)
    print(f"export: max |HF - TransformerLens| logits = {diff:.3g}")
    # float32 on both sides, same operations in a different order: differences ~1e-6.
    assert diff <= 1e-4, f"HF export does not reproduce the TransformerLens model: {diff}"
    # The way back (bench/autocircuit_bench.py builds its model from the export): same floats.
    with torch.no_grad():
        back = (load_tl_model(peers, model_dir, True)[0](ids) - tl_model(ids)).abs().max().item()
    assert back == 0.0, f"HF -> TransformerLens conversion changes the model: {back}"

    # The data must make a real metric: logits O(1), attention not uniform.
    with torch.no_grad():
        logits, cache = tl_model.run_with_cache(ids)
    pat = cache["blocks.0.attn.hook_pattern"][:, :, -1, :]  # [2B, H, T] last query
    print(f"logit std {logits.std().item():.3f}; layer-0 last-query attention max "
          f"{pat.max(-1).values.mean().item():.3f} (uniform would be {1 / T:.3f})")

    pm, ps, split = scores_for(peers, SMALL, sd, data, True)
    # Cross-check: auto-circuit's slow replication of Syed et al.'s EAP code on the same model.
    # It sums grad * (corrupt - clean) with grad of -M, the same quantity in another order of
    # floating-point operations: agreement to 1e-5 of the largest score.
    slow = named_scores(pm, peers.eap_slow(pm, dataloader(peers, data), None, answer_diff=True))
    eap_max = max(abs(v) for v in split.values())
    cross = max(abs(split[k] - slow[k]) for k in split)
    print(f"split: {len(split)} edges, max |score| {eap_max:.4g}; "
          f"mask gradient vs auto-circuit's slow EAP: max diff {cross:.3g}")
    assert cross <= 1e-5 * eap_max, f"auto-circuit's two EAP implementations disagree: {cross}"

    fd = finite_difference_check(peers, pm, data, split)
    print(f"split: top edges vs central differences of M in the mask (h = 1e-2): max diff {fd:.3g}")
    # float32 M ~ O(1): rounding 1e-7 / h ~ 1e-5, truncation h^2 M''' / 6 ~ 1e-5 -> 1e-3 of the
    # largest score leaves a margin of 10.
    assert fd <= 1e-3 * eap_max, f"auto-circuit's scores are not -dM/dmask as documented: {fd}"

    _, _, head = scores_for(peers, SMALL, sd, data, False)
    _, _, split_ig = scores_for(peers, SMALL, sd, data, True, IG_SAMPLES)
    # A head's one input feeds its q, k and v, and the score is linear in the reader's gradient:
    # head score = q + k + v scores (float32 sums of ~1e3 terms: 1e-5 of the scale).
    qkv = {k: (sum(split[f"{k}<{x}>"] for x in "qkv") if k.split("->")[1].startswith("a")
               else split[k]) for k in head}
    head_vs_qkv = max(abs(head[k] - qkv[k]) for k in head)
    print(f"head: {len(head)} edges, max |head - (q + k + v)| {head_vs_qkv:.3g}; "
          f"split_ig: {len(split_ig)} edges")
    assert head_vs_qkv <= 1e-5 * eap_max, f"head-level scores are not q + k + v: {head_vs_qkv}"

    with open(os.path.join(a.out, "scores.json"), "w") as f:
        json.dump({"split": split, "head": head, "split_ig": split_ig, "ig_samples": IG_SAMPLES,
                   "convention": CONVENTION, "eap_max_abs": eap_max,
                   "crosscheck_max_abs_diff": cross, "finite_difference_max_abs_diff": fd, "export_max_abs_diff": diff,
                   "versions": peers.versions, "stubbed": peers.stubbed}, f, indent=1, sort_keys=True)
    print(f"wrote {a.out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
