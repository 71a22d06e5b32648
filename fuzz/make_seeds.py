#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (fuzz/*.cpp), written into <out>/<harness>/.

Every seed is small (at most a few KiB) and made from what the repository holds: hand-written
files covering each format's features (every safetensors dtype, every GGUF value type and
dequantisable tensor type, each tokenizer pre-split variant and added-token flag, each circuit
graph kind, JSONL and CSV datasets, each config.json architecture) and a slice of the GPT-2
vocabulary in tests/data/gpt2-tokenizer. With --golden DIR (the golden files the reference tests
write into build/golden), small fixtures from there are added too: config.json files as they
are, circuits, datasets and GGUF files under 64 KiB, and safetensors / tokenizer.json files
rewritten small (the same names, dtypes and structure with tiny tensors or a vocabulary cut to
its first entries). Deterministic: the same repository gives the same seeds.

Python 3 standard library only.
  python3 fuzz/make_seeds.py --out build-fuzz/seeds [--golden build/golden]
"""
import argparse
import hashlib
import json
import random
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_GOLDEN = 64 << 10


class Corpus:
    def __init__(self, out: Path, harness: str):
        self.dir = out / harness
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def add(self, data, name=""):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        # Named by content, as libFuzzer names corpus files, so reruns do not duplicate seeds.
        digest = hashlib.sha1(data).hexdigest()[:16]
        (self.dir / f"{name + '-' if name else ''}{digest}").write_bytes(data)
        self.n += 1


# ----------------------------------------------------------------------------- byte-level BPE

def byte_level_table():
    """GPT-2's bytes_to_unicode: byte -> printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BL = byte_level_table()
SP = BL[ord(" ")]
NL = BL[ord("\n")]


def tiny_vocab_merges():
    """The 256 byte pieces plus a few merges (" t", "he", " the", " a", "in", "ing")."""
    vocab = {BL[b]: b for b in range(256)}
    merges = []
    for a, b in [(SP, "t"), ("h", "e"), (SP + "t", "he"), (SP, "a"), ("i", "n"), ("in", "g"), ("1", "2"),
                 (SP, SP), (NL, NL)]:
        vocab.setdefault(a + b, len(vocab))
        merges.append((a, b))
    return vocab, merges


PATTERNS = {
    "gpt2": r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    "llama3": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


def pre_tokenizer(variant):
    if variant == "gpt2":
        return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    if variant == "smollm":
        return {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": PATTERNS[variant]}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


def tokenizer_json(variant, merges_as_pairs=False, added=(), bos=None, normalizer=None, ignore_merges=False):
    vocab, merges = tiny_vocab_merges()
    added_tokens = []
    for i, (content, flags) in enumerate(added):
        tid = len(vocab) + i
        added_tokens.append({"id": tid, "content": content, "single_word": flags.get("single_word", False),
                             "lstrip": flags.get("lstrip", False), "rstrip": flags.get("rstrip", False),
                             "normalized": flags.get("normalized", False), "special": flags.get("special", True)})
    post = None
    if bos is not None:
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [], "special_tokens": {bos: {"id": bos, "ids": [len(vocab)], "tokens": [bos]}}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added_tokens, "normalizer": normalizer, "pre_tokenizer": pre_tokenizer(variant),
        "post_processor": post, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                            "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": ignore_merges, "vocab": vocab,
                  "merges": [[a, b] for a, b in merges] if merges_as_pairs else [f"{a} {b}" for a, b in merges]},
    }


def shrink_tokenizer_json(j, keep=300):
    """A real tokenizer.json with its vocabulary cut to its first `keep` ids (and the merges that
    stay inside them); everything else as it was."""
    m = j.get("model")
    if not isinstance(m, dict) or not isinstance(m.get("vocab"), dict):
        return None
    vocab = {k: v for k, v in m["vocab"].items() if isinstance(v, int) and v < keep}
    merges = []
    for e in m.get("merges", []):
        a, b = (e.split(" ", 1) if isinstance(e, str) and " " in e else (e if isinstance(e, list) and len(e) == 2
                                                                          else (None, None)))
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append(e)
    m["vocab"], m["merges"] = vocab, merges
    j["added_tokens"] = [t for t in j.get("added_tokens", [])][:8]
    return j


def tokenizer_seeds(c: Corpus, golden):
    dump = lambda j: json.dumps(j, ensure_ascii=False)
    flags = [("<|endoftext|>", {}), ("<|im_start|>", {"lstrip": True}), ("<|im_end|>", {"rstrip": True}),
             ("word", {"single_word": True, "special": False, "normalized": True}), ("<s>", {})]
    for v in ["gpt2", "llama3", "qwen2", "smollm"]:
        c.add(dump(tokenizer_json(v)), v)
        c.add(dump(tokenizer_json(v, merges_as_pairs=True, added=flags, bos="<|endoftext|>")), v + "-added")
    c.add(dump(tokenizer_json("llama3", ignore_merges=True, normalizer={"type": "NFC"})), "nfc")
    c.add(dump(tokenizer_json("gpt2", normalizer={"type": "Sequence", "normalizers": []})), "seqnorm")
    j = tokenizer_json("qwen2", added=flags[:2], bos="<|endoftext|>")
    j["post_processor"] = {"type": "Sequence", "processors": [{"type": "ByteLevel"}, j["post_processor"]]}
    c.add(dump(j), "seqpost")
    j = tokenizer_json("gpt2")
    j["model"]["unk_token"] = SP
    del j["model"]["vocab"]["z"]  # a gap in the ids and an unknown byte
    c.add(dump(j), "gap-unk")
    # SentencePiece-style vocabularies: BPE with byte_fallback (Llama normaliser, Metaspace) and Unigram.
    sp = "\u2581"
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [sp, "a", "b", sp + "a", "ab", sp + "ab"]
    llama_norm = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": sp},
                                                      {"type": "Replace", "pattern": {"String": " "}, "content": sp}]}
    decoder = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": sp}, "content": " "},
                                                {"type": "ByteFallback"}, {"type": "Fuse"},
                                                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    added = [{"id": 1, "content": "<s>", "special": True, "normalized": False},
             {"id": 2, "content": "</s>", "special": True, "normalized": False}]
    bpe = {"added_tokens": added, "normalizer": llama_norm, "pre_tokenizer": None, "decoder": decoder,
           "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                     "vocab": {p: i for i, p in enumerate(pieces)}, "merges": [f"{sp} a", "a b", f"{sp}a b"]}}
    c.add(dump(bpe), "sp-bpe")
    meta = dict(bpe, normalizer=None, pre_tokenizer={"type": "Metaspace", "replacement": sp, "prepend_scheme": "first",
                                                     "split": True})
    c.add(dump(meta), "sp-bpe-metaspace")
    uni = dict(bpe, model={"type": "Unigram", "unk_id": 0, "byte_fallback": True,
                           "vocab": [[p, -float(i % 7)] for i, p in enumerate(pieces)]})
    c.add(dump(uni), "sp-unigram")
    if golden:
        for p in sorted(golden.glob("tokenizer_golden/*/tokenizer.json")) + sorted(golden.glob("tok_export/*/tokenizer.json")):
            try:
                j = shrink_tokenizer_json(json.loads(p.read_text()))
            except (ValueError, UnicodeDecodeError):
                continue
            if j is not None:
                c.add(dump(j), "golden-" + p.parent.name)


def gpt2_vocab_slice(keep):
    d = ROOT / "tests/data/gpt2-tokenizer"
    enc = json.loads((d / "encoder.json").read_text())
    vocab = {k: v for k, v in enc.items() if v < keep}
    merges = []
    for line in (d / "vocab.bpe").read_text().splitlines()[1:]:
        a, _, b = line.partition(" ")
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(line)
    return vocab, merges


def vocab_merges_seeds(c: Corpus):
    sep = "\n#----merges----#\n"
    for keep in (300, 600):
        vocab, merges = gpt2_vocab_slice(keep)
        vocab["<|endoftext|>"] = len(vocab)
        c.add(json.dumps(vocab, ensure_ascii=False) + sep + "#version: 0.2\n" + "\n".join(merges) + "\n", f"gpt2-{keep}")
    vocab, merges = tiny_vocab_merges()
    c.add(json.dumps(vocab, ensure_ascii=False) + sep + "\r\n".join(f"{a} {b}" for a, b in merges), "tiny-crlf")
    c.add(json.dumps(vocab, ensure_ascii=False) + sep, "no-merges")
    c.add(json.dumps(vocab, ensure_ascii=False), "no-separator")


# ----------------------------------------------------------------------------- safetensors

ST_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=True, rng=None):
    """tensors: [(name, dtype, shape)] -> file bytes with packed data."""
    rng = rng or random.Random(0)
    header, data, off = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape in tensors:
        n = ST_DTYPES[dt]
        for d in shape:
            n *= d
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        data += bytes(rng.randrange(256) for _ in range(n)) if dt != "BOOL" else bytes(rng.randrange(2) for _ in range(n))
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds(c: Corpus, golden):
    for dt in ST_DTYPES:
        c.add(safetensors([("w", dt, [2, 3])]), dt)
    c.add(safetensors([("a", "F32", [2, 2]), ("b", "F16", [3]), ("c", "I64", []), ("empty", "F32", [0, 4])],
                      metadata={"format": "pt"}), "mixed")
    c.add(safetensors([("model.layers.0.self_attn.q_proj.weight", "BF16", [4, 4]),
                       ("model.embed_tokens.weight", "F32", [8, 4])], pad=False), "names")
    c.add(safetensors([]), "empty")
    c.add(safetensors([], metadata={}), "meta-only")
    if golden:
        for p in sorted(golden.rglob("*.safetensors")):
            if c.n > 60:
                break
            try:
                raw = p.open("rb").read(8)
                (n,) = struct.unpack("<Q", raw)
                if n > 1 << 20:
                    continue
                with p.open("rb") as f:
                    f.seek(8)
                    header = json.loads(f.read(n))
            except (OSError, ValueError, struct.error):
                continue
            # The same names and dtypes, each tensor shrunk to at most 2 elements per dimension.
            tensors = [(k, v["dtype"], [min(d, 2) for d in v["shape"]]) for k, v in header.items()
                       if k != "__metadata__" and v.get("dtype") in ST_DTYPES][:12]
            c.add(safetensors(tensors, metadata=header.get("__metadata__")), "golden-" + p.stem)


# ----------------------------------------------------------------------------- GGUF

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
              U64: "<Q", I64: "<q", F64: "<d"}
# ggml type id -> (block elements, block bytes), the dequantisable ones (src/io/dequant.cpp).
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
        10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
        24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2)}


def gstr(s):
    b = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gvalue(et, x) for x in items)
    return struct.pack(SCALAR_FMT[t], v)


def gguf(kv, tensors, version=3, alignment=32, rng=None):
    """kv: [(key, type, value)]; tensors: [(name, [ne0, ne1, ...], ggml type)] with random data."""
    rng = rng or random.Random(0)
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
    for k, t, v in kv:
        out += gstr(k) + struct.pack("<I", t) + gvalue(t, v)
    blobs, off = [], 0
    for name, shape, ty in tensors:
        n = 1
        for d in shape:
            n *= d
        be, bb = GGML[ty]
        nbytes = n // be * bb
        out += gstr(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", ty, off)
        blob = bytes(rng.randrange(256) for _ in range(nbytes))
        if ty in (1, 2, 3, 6, 7, 8):  # keep the fp16 scales finite and small
            blob = bytearray(blob)
            for i in range(0, len(blob), bb):
                blob[i:i + 2] = struct.pack("<e", 0.01)
            blob = bytes(blob)
        pad = (-nbytes) % alignment
        blobs.append(blob + b"\0" * pad)
        off += nbytes + pad
    out += b"\0" * ((-len(out)) % alignment)
    return out + b"".join(blobs)


def gguf_tokenizer_kv(pre, with_types=True):
    vocab, merges = tiny_vocab_merges()
    tokens = sorted(vocab, key=vocab.get) + ["<|endoftext|>", "<|user|>"]
    kv = [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, pre),
          ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
          ("tokenizer.ggml.merges", ARR, (STR, [f"{a} {b}" for a, b in merges])),
          ("tokenizer.ggml.bos_token_id", U32, len(tokens) - 2), ("tokenizer.ggml.eos_token_id", U32, len(tokens) - 2),
          ("tokenizer.ggml.add_bos_token", BOOL, True)]
    if with_types:
        kv.append(("tokenizer.ggml.token_type", ARR, (I32, [1] * (len(tokens) - 2) + [3, 4])))
    return kv


def gguf_seeds(c: Corpus, golden):
    every_type = [(f"k.{t}", t, v) for t, v in [(U8, 200), (I8, -5), (U16, 60000), (I16, -300), (U32, 7), (I32, -7),
                                                (F32, 1.5), (BOOL, True), (U64, 1 << 40), (I64, -(1 << 40)),
                                                (F64, 2.25), (STR, "llama")]]
    arrays = [(f"a.{t}", ARR, (t, v)) for t, v in [(U8, [1, 2]), (I8, [-1]), (U16, [3]), (I16, [-3]), (U32, [4, 5]),
                                                   (I32, [-4]), (F32, [0.5, 1.5]), (BOOL, [True, False]),
                                                   (U64, [1 << 63]), (I64, [-1]), (F64, [3.5]), (STR, ["a", "bc"])]]
    c.add(gguf(every_type + arrays, []), "metadata")
    c.add(gguf(every_type[:4], [], version=2), "v2")
    arch = [("general.architecture", STR, "llama"), ("general.alignment", U32, 64),
            ("llama.block_count", U32, 1), ("llama.context_length", U32, 64), ("llama.embedding_length", U32, 32),
            ("llama.feed_forward_length", U32, 64), ("llama.attention.head_count", U32, 4),
            ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)]
    c.add(gguf(arch, [("token_embd.weight", [32, 8], 0), ("blk.0.attn_q.weight", [32, 2], 8)], alignment=64),
          "aligned64")
    for ty, (be, _) in sorted(GGML.items()):
        c.add(gguf([("general.architecture", STR, "llama")], [(f"t{ty}", [be * (2 if be > 1 else 6), 2], ty)],
                   rng=random.Random(ty)), f"type{ty}")
    for pre in ["gpt2", "default", "llama-bpe", "qwen2", "smollm"]:
        c.add(gguf(gguf_tokenizer_kv(pre, with_types=pre != "default"), []), "tok-" + pre)
    c.add(gguf([("tokenizer.ggml.model", STR, "llama")], []), "tok-spm")
    if golden:
        for p in sorted(list(golden.glob("gguf_golden/**/*.gguf")) + list(golden.glob("tokenizer_golden/*.gguf"))
                        + list(golden.glob("sentencepiece_golden/*.gguf"))):  # SentencePiece vocabularies
            if p.stat().st_size <= MAX_GOLDEN:
                c.add(p.read_bytes(), "golden-" + p.stem)


# ----------------------------------------------------------------------------- circuits

def circuit(n_layers, n_heads, n_kv=None, parallel=False, split_qkv=True, rng=None, meta=True, cfg_extra=None):
    """An EAP-IG / edgewise circuit file with every edge listed and about a third in the circuit."""
    rng = rng or random.Random(0)
    n_kv = n_kv or n_heads
    grouped = n_kv != n_heads
    sources = ["input"]
    for l in range(n_layers):
        sources += [f"a{l}.h{h}" for h in range(n_heads)] + [f"m{l}"]
    edges = {}
    for l in range(n_layers):
        before_attn = sources[:1 + l * (n_heads + 1)]
        before_mlp = sources[:1 + l * (n_heads + 1) + (0 if parallel else n_heads)]
        if split_qkv:
            readers = [f"a{l}.h{h}<q>" for h in range(n_heads)]
            kv = [f"a{l}.kv{g}" if grouped else f"a{l}.h{g}" for g in range(n_kv)]
            readers += [k + "<k>" for k in kv] + [k + "<v>" for k in kv]
        else:
            readers = [f"a{l}.h{h}" for h in range(n_heads)]
        for r in readers:
            for s in before_attn:
                edges[f"{s}->{r}"] = {"score": round(rng.uniform(-1, 1), 6), "in_graph": rng.random() < 0.33}
        for s in before_mlp:
            edges[f"{s}->m{l}"] = {"score": round(rng.uniform(-1, 1), 6), "in_graph": rng.random() < 0.33}
    for s in sources:
        edges[f"{s}->logits"] = {"score": round(rng.uniform(-1, 1), 6), "in_graph": rng.random() < 0.33}
    cfg = {"n_layers": n_layers, "n_heads": n_heads, "n_kv_heads": n_kv, "parallel_attn_mlp": parallel, "d_model": 16}
    cfg.update(cfg_extra or {})
    j = {"cfg": cfg, "nodes": {s: {"in_graph": True} for s in sources + ["logits"]}, "edges": edges}
    if meta:
        j["edgewise"] = {"version": "0.1.0", "split_qkv": split_qkv, "model": "tiny", "task": "ioi",
                         "method": "eap-ig", "options": {"steps": 5}, "n_edges_in_circuit": 0}
    return json.dumps(j, indent=1)


def circuit_seeds(c: Corpus, golden):
    c.add(circuit(1, 1), "1x1")
    c.add(circuit(2, 2, rng=random.Random(1)), "2x2")
    c.add(circuit(2, 4, n_kv=2, rng=random.Random(2)), "grouped")
    c.add(circuit(2, 2, parallel=True, rng=random.Random(3)), "parallel")
    c.add(circuit(2, 3, split_qkv=False, rng=random.Random(4)), "heads")
    c.add(circuit(1, 2, meta=False, cfg_extra={"n_kv_heads": None}), "eap-ig")
    c.add('{"cfg": {"n_layers": 1, "n_heads": 1}, "nodes": {}, "edges": {"input->logits": {"score": null, "in_graph": true}}}',
          "minimal")
    if golden:
        for p in sorted(golden.glob("circuit/*.json")) + sorted(golden.glob("badfiles/*.json")):
            if p.stat().st_size <= MAX_GOLDEN and b'"cfg"' in p.read_bytes()[:4096]:
                c.add(p.read_bytes(), "golden-" + p.stem)


# ----------------------------------------------------------------------------- datasets

def dataset_seeds(c: Corpus, golden):
    jl = lambda *rows: "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    c.add(jl({"clean": "When Mary and John went to the store, John gave a drink to <predict>Mary</predict>",
              "corrupted": "When Mary and John went to the store, Mary gave a drink to <predict>John</predict>",
              "split": "train"},
             {"clean": "The war lasted from 1732 to 17<predict>33</predict>",
              "corrupted": "The war lasted from 1701 to 17<predict>01</predict>", "split": "validation"}), "predict")
    c.add(jl({"clean": "The capital of France is", "corrupted": "The capital of Italy is",
              "correct": [" Paris", " paris"], "incorrect": " Rome"},
             {"clean": "2 + 2 =", "corrupted": "2 + 3 =", "correct": " 4"}), "explicit")
    c.add("\r\n" + jl({"clean": "a <predict>b</predict>", "corrupted": "c <predict>d</predict>"}).replace("\n", "\r\n")
          + "   \n{\"clean\": 1}\nnot json\n", "crlf-bad")
    c.add("clean,corrupted,correct,incorrect,split\n"
          "\"When Mary and John went to the store, John gave a drink to\",\"When Mary and John went to the store, "
          "Mary gave a drink to\", Mary, John,train\n"
          "\"He said \"\"hi\"\"\nthen left\",other prompt, yes, no,validation\n", "csv-text")
    c.add("\ufeffclean,corrupted,label\r\nx y,z w, a\r\n\r\n", "csv-label-bom")
    c.add("clean,corrupted,correct_idx,incorrect_idx\nThe sky is,The grass is,256,258\nbad,row,-1,x\n", "csv-ids")
    if golden:
        for p in sorted(golden.rglob("*.jsonl")) + sorted(golden.rglob("*.csv")):
            if p.is_file() and p.stat().st_size <= 16 << 10:
                c.add(p.read_bytes(), "golden-" + p.stem)


# ----------------------------------------------------------------------------- config.json

def config_seeds(c: Corpus, golden):
    gpt2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128, "vocab_size": 1000,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "bos_token_id": 0, "eos_token_id": [0, 1],
            "tie_word_embeddings": True, "scale_attn_weights": True}
    llama = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 128, "max_position_embeddings": 256, "vocab_size": 1000,
             "rms_norm_eps": 1e-6, "hidden_act": "silu", "rope_theta": 500000.0, "head_dim": 16,
             "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192},
             "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": True, "bos_token_id": 1,
             "eos_token_id": None}
    qwen2 = {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 1, "intermediate_size": 96, "use_sliding_window": False,
             "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0}}
    neox = {"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 256, "rotary_pct": 0.25, "rotary_emb_base": 10000, "use_parallel_residual": True,
            "hidden_act": "gelu", "layer_norm_eps": 1e-5, "vocab_size": 512, "max_position_embeddings": 64}
    neox5 = dict(neox, rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"})
    del neox5["rotary_pct"]
    # Gemma 3: per-layer-type rope parameters, the layer list, the older keys too.
    gemma3 = {"model_type": "gemma3_text", "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
              "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 96, "query_pre_attn_scalar": 24,
              "sliding_window": 8, "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
              "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
              "final_logit_softcapping": None, "attn_logit_softcapping": None, "hidden_activation": "gelu_pytorch_tanh"}
    gemma3_old = {"model_type": "gemma3_text", "hidden_size": 64, "num_hidden_layers": 7, "num_attention_heads": 2,
                  "intermediate_size": 96, "sliding_window_pattern": 6, "rope_theta": 1000000.0,
                  "rope_local_base_freq": 10000.0, "rope_scaling": {"rope_type": "linear", "factor": 8.0}}
    for name, j in [("gpt2", gpt2), ("llama", llama), ("qwen2", qwen2), ("neox", neox), ("neox5", neox5),
                    ("gemma3", gemma3), ("gemma3-old-keys", gemma3_old), ("gpt2-defaults", {"model_type": "gpt2"})]:
        c.add(json.dumps(j, indent=2), name)
    for p in sorted((ROOT / "tests" / "data" / "tracr").glob("*/config.json")):  # Tracr's (tools/tracr)
        c.add(p.read_bytes(), "tracr-" + p.parent.name)
    if golden:
        for p in sorted(golden.rglob("config.json")):
            if p.stat().st_size <= MAX_GOLDEN:
                c.add(p.read_bytes(), "golden-" + p.parent.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--golden", type=Path, help="build/golden: add small fixtures from there")
    a = ap.parse_args()
    golden = a.golden if a.golden and a.golden.is_dir() else None
    makers = {"fuzz_safetensors": safetensors_seeds, "fuzz_gguf": gguf_seeds, "fuzz_tokenizer": tokenizer_seeds,
              "fuzz_vocab_merges": lambda c, g: vocab_merges_seeds(c), "fuzz_circuit": circuit_seeds,
              "fuzz_dataset": dataset_seeds, "fuzz_config": config_seeds}
    for h, make in makers.items():
        c = Corpus(a.out, h)
        make(c, golden)
        print(f"{h}: {c.n} seeds{' (with golden files)' if golden else ''}")


if __name__ == "__main__":
    main()
