#!/usr/bin/env python3
"""Loads the tokenizer.json files edgewise exported (Tokenizer::to_hf_json, written by
tests/test_tokenizer.cpp into --dir/<name>/ with an export.json manifest) with HF `tokenizers`
and with transformers' PreTrainedTokenizerFast, and checks that they are the tokenizers edgewise
had loaded:
  - the golden corpus (--golden/corpus.json) encodes to the reference ids ids_<ref>.json that
    tokenizer_golden.py wrote with the original HF tokenizers, and decodes back to each document
    (or to tokenizers' own decoding for the documents the vocabulary cannot represent);
  - without reference ids, it encodes as the original tokenizer.json loaded by tokenizers does;
  - the texts of the manifest give edgewise's ids, ids with BOS (add_special_tokens) and decoding,
    in tokenizers and in PreTrainedTokenizerFast (the corpus only in tokenizers: the same backend).
Exits non-zero, naming the tokenizer, document and first differing token, on any mismatch.
"""
import argparse
import json
import sys
from pathlib import Path

from tokenizers import Tokenizer

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True, help="the tok_export directory")
ap.add_argument("--golden", required=True, help="the tokenizer_golden directory")
args = ap.parse_args()
export_dir, golden = Path(args.dir), Path(args.golden)

manifests = sorted(export_dir.glob("*/export.json"))
if not manifests:
    sys.exit(f"no exported tokenizers under {export_dir}: test_tokenizer (TokenizerExport.*) must run first")
docs = json.loads((golden / "corpus.json").read_text(encoding="utf-8"))["documents"]

from transformers import PreTrainedTokenizerFast  # noqa: E402 (slow import, after the cheap checks)

failures = []


def first_diff(a, b):
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return k


def compare_corpus(name, what, got, want, tk):
    bad = 0
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            bad += 1
            if bad <= 3:
                k = first_diff(g, w)
                failures.append(f"{name}: document {i} differs from {what} at token {k}: "
                                f"got {g[max(0, k - 2):k + 4]} {[tk.id_to_token(t) for t in g[k:k + 4]]}, "
                                f"want {w[max(0, k - 2):k + 4]} {[tk.id_to_token(t) for t in w[k:k + 4]]}")
    if len(got) != len(want):
        failures.append(f"{name}: {len(got)} documents encoded, {what} has {len(want)}")
    return bad


for mf in manifests:
    m = json.loads(mf.read_text(encoding="utf-8"))
    name = m["name"]
    path = mf.parent / "tokenizer.json"
    n_fail = len(failures)
    try:
        tk = Tokenizer.from_file(str(path))
        fast = PreTrainedTokenizerFast(tokenizer_file=str(path))
    except Exception as e:  # noqa: BLE001 -- any load error is the finding
        failures.append(f"{name}: tokenizers cannot load {path}: {e}")
        continue

    # The corpus: against the reference ids, else against the original file in tokenizers.
    ids = [e.ids for e in tk.encode_batch(docs, add_special_tokens=False)]
    lossy = {}
    if m["ids"]:
        ref = json.loads((golden / f"ids_{m['ids']}.json").read_text(encoding="utf-8"))
        lossy = {e["doc"]: e["decoded"] for e in ref["lossy"]}
        bad = compare_corpus(name, f"ids_{m['ids']}.json", ids, ref["ids"], tk)
        what = f"ids_{m['ids']}.json"
    elif m["original"]:
        orig = Tokenizer.from_file(m["original"])
        want = [e.ids for e in orig.encode_batch(docs, add_special_tokens=False)]
        decoded = orig.decode_batch(want, skip_special_tokens=False)
        lossy = {i: d for i, d in enumerate(decoded) if d != docs[i]}
        bad = compare_corpus(name, "the original tokenizer.json", ids, want, tk)
        what = "the original"
    else:
        bad, what = None, None
    if what:
        dec = tk.decode_batch(ids, skip_special_tokens=False)
        bad_dec = [i for i, d in enumerate(dec) if d != lossy.get(i, docs[i])]
        for i in bad_dec[:3]:
            k = first_diff(dec[i], lossy.get(i, docs[i]))
            failures.append(f"{name}: decode(encode(document {i})) differs at character {k}: "
                            f"{dec[i][k:k + 20]!r} instead of {lossy.get(i, docs[i])[k:k + 20]!r}")

    # edgewise's own ids for the manifest's texts, with and without BOS, and their decoding.
    for c in m["expect"]:
        t = c["text"]
        for label, got, want in [
                ("ids", tk.encode(t, add_special_tokens=False).ids, c["ids"]),
                ("ids with BOS", tk.encode(t, add_special_tokens=True).ids, c["ids_for_model"]),
                ("PreTrainedTokenizerFast ids", fast(t, add_special_tokens=False)["input_ids"], c["ids"]),
                ("PreTrainedTokenizerFast ids with BOS", fast(t)["input_ids"], c["ids_for_model"]),
                ("decode", tk.decode(c["ids"], skip_special_tokens=False), c["decoded"]),
                ("PreTrainedTokenizerFast decode", fast.decode(c["ids"], skip_special_tokens=False), c["decoded"])]:
            if got != want:
                failures.append(f"{name}: {label} of {t!r}: got {got!r}, edgewise {want!r}")

    status = "ok" if len(failures) == n_fail else "FAILED"
    corpus = f"{len(docs)} documents vs {what}, {bad} differ" if what else "no corpus reference"
    print(f"[{name}] {status}: {corpus}; {len(m['expect'])} texts vs edgewise (from {m['source']})")
    for f in failures[n_fail:n_fail + 8]:
        print("  " + f)
    if len(failures) > n_fail + 8:
        print(f"  ... and {len(failures) - n_fail - 8} more")
    sys.stdout.flush()

if failures:
    bad_names = sorted({f.split(":")[0] for f in failures})
    sys.exit(f"{len(failures)} mismatches between HF and edgewise on the exported tokenizer.json of: "
             f"{', '.join(bad_names)} (details above)")
print(f"all {len(manifests)} exported tokenizers reproduce edgewise's ids in tokenizers and transformers")
