#!/usr/bin/env python3
"""Reference token ids for the SentencePiece tests of tests/test_tokenizer.cpp, from the
`sentencepiece` library (the reference of record) and HF `tokenizers`.

Writes into --out:
  corpus.json            {"documents": [...]}: a seeded corpus of >= 1 MB, made only from the
                         repository (docs/*.md, include/ and src/ sources, read in sorted order) and
                         the seeded generators of tokenizer_golden.py (prose, numbers, CJK, Arabic,
                         Devanagari, Cyrillic, emoji sequences, whitespace runs, random code points
                         across the planes: most of those are missing from the small vocabularies
                         below and fall back to bytes). Documents holding the text of a control
                         token of any vocabulary here (<s>, </s>, <unk>, Gemma's <mask>, ...) are
                         left out: sentencepiece reads them as characters where edgewise, llama.cpp
                         and tokenizers read them as the control token.
  bpe.model, unigram.model
                         SentencePiece models trained on the corpus (single thread, fixed seed, no
                         sampling: deterministic): BPE and unigram, 3000 pieces, byte_fallback,
                         identity normalisation, remove_extra_whitespaces = false, character
                         coverage 0.9995; trained on the documents other than CJK,
                         emoji and random code points, whose characters then mostly fall back to bytes.
  *_nobytes.gguf/.model  the same pieces without the 256 byte pieces and byte_fallback off
                         (unknown characters: one <unk> per run); unigram_nobytes/tokenizer.json.
  bpe.gguf, unigram.gguf tokenizer.ggml.* metadata of each (model "llama" / "t5", tokens, scores,
                         token_type, bos/eos/unk, add_space_prefix true); bpe_noprefix_key.gguf
                         without the add_space_prefix key (llama.cpp's default: true);
                         bpe_noprefix.gguf with add_space_prefix false (as Gemma's GGUF).
  bpe/tokenizer.json     transformers' LlamaConverter (LlamaTokenizerFast(vocab_file, legacy=True,
                         from_slow=True)): normalizer Sequence[Prepend, Replace], BPE byte_fallback.
  bpe_metaspace/tokenizer.json
                         the same with legacy=False: pre_tokenizer Metaspace(prepend_scheme first).
  unigram/tokenizer.json tokenizers' Unigram(vocab with scores, unk_id, byte_fallback) with the
                         Llama normalizer and decoder.
  ids_<name>.json        {"sp": [[ids] per document] (sentencepiece, absent for tokenizer.json-only
                         forms), "hf": [[ids] per document] (tokenizers), "sp_decoded_ok": [bools]
                         (sentencepiece's decode(encode(doc)) == doc), "disagree": [documents where
                         sp and hf differ]} for bpe, bpe_noprefix, unigram, bpe_metaspace.
  cases.json             {name: [{"text", "sp", "hf", "sp_decoded", "hf_decoded"}]}: edge cases
                         (empty, spaces only, leading/trailing/runs of spaces, tabs and newlines,
                         characters outside the vocabulary, a 10,000-character word, emoji).
  gemma/                 with --gemma GGUF (default: ~/.cache/edgewise/models/gemma-3-270m-q4_k_m.gguf,
                         skipped when absent): corpus ids from a sentencepiece ModelProto built
                         from the GGUF's pieces / scores / types (ids_gemma.json "sp"), from
                         transformers' AutoTokenizer(gguf_file=...) ("hf"), and that tokenizer's
                         tokenizer.json. The transformers conversion (~30 s) is cached in --out.
"""
import argparse
import hashlib
import importlib.util
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import struct

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261204
TARGET_BYTES = 1_100_000
VOCAB = 3000
SPACE = "\u2581"
GEMMA_DEFAULT = Path(os.environ.get("EDGEWISE_HOME", Path.home() / ".cache" / "edgewise")) / "models" / \
    "gemma-3-270m-q4_k_m.gguf"

# The generators of the byte-level tokenizer corpus (sentences, numbers, CJK, mixed scripts, emoji).
_spec = importlib.util.spec_from_file_location("tokenizer_golden", Path(__file__).with_name("tokenizer_golden.py"))
tg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tg)

MORE_SCRIPTS = ["الذكاء الاصطناعي يغير العالم بسرعة كبيرة.", "كتب الطالب الدرس في الدفتر",
                "भारत एक विशाल देश है और यहाँ अनेक भाषाएँ बोली जाती हैं।", "हिन्दी में लिखा गया वाक्य",
                "Москва — столица России, крупнейший город страны.", "Съешь же ещё этих мягких булок",
                "Ελλάδα και Κύπρος", "日本語のテキストと漢字かな交じり文。", "中文分词测试：我爱北京天安门。",
                "ⓐⓑⓒ ᚠᚢᚦ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈𐌰𐌿 𓀀𓁿 ꙮ", "tab\tseparated\tvalues\t1\t2", "e\u0301\u0302\u0303 combining"]


def repo_sources():
    """Text files of the repository, sorted: docs for prose, C++ for code."""
    prose, code = [], []
    for p in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        prose += [para for para in p.read_text(encoding="utf-8").split("\n\n") if len(para) > 80]
    for sub in ("include", "src"):
        for p in sorted((ROOT / sub).rglob("*")):
            if p.suffix in (".h", ".cpp") and p.is_file():
                code.append(p.read_text(encoding="utf-8", errors="replace"))
    return code, prose


def make_document(rng, kind, code, prose):
    if kind in ("cjk", "emoji", "numbers", "whitespace", "random"):
        return tg.make_document(rng, kind, code, prose)
    parts, n, size = [], 0, rng.randrange(600, 5000)
    while n < size:
        if kind == "prose":
            p = rng.choice(prose) if rng.random() < 0.5 else " ".join(tg.sentence(rng) for _ in range(rng.randrange(1, 6)))
            p += rng.choice(["\n\n", " ", "\n", "  "])
        elif kind == "code":
            lines = rng.choice(code).split("\n")
            i = rng.randrange(len(lines))
            p = "\n".join(lines[i:i + rng.randrange(5, 60)]) + "\n"
        else:  # scripts
            p = rng.choice(MORE_SCRIPTS + tg.MIXED + tg.CJK_SENT) + tg.rand_ws(rng)
        if rng.random() < 0.1:
            p += rng.choice(tg.EMOJI_SEQ + MORE_SCRIPTS) + tg.rand_ws(rng)
        parts.append(p)
        n += len(p.encode("utf-8"))
    return "".join(parts)


def make_corpus(control_re):
    rng = random.Random(SEED)
    code, prose = repo_sources()
    kinds = ["prose"] * 4 + ["code"] * 3 + ["scripts"] * 2 + ["numbers", "cjk", "emoji", "whitespace", "random"]
    docs = ["", " ", "  ", "a", " a", "a ", "  leading and trailing  ", "\n", "\t\tx", "Hello world",
            "x" * 10000, SPACE, SPACE + "x" + SPACE, "🇯🇵 𝔘𝔫𝔦", "ꙮꙮꙮ", "\u0000nul", "a\u00a0b\u3000c"]
    dropped, total, train_docs = 0, 0, []
    while total < TARGET_BYTES:
        kind = rng.choice(kinds)
        d = make_document(rng, kind, code, prose)
        if control_re.search(d):
            dropped += 1
            continue
        docs.append(d)
        if kind not in ("cjk", "emoji", "random"):
            train_docs.append(d)
        total += len(d.encode("utf-8"))
    return docs, train_docs, dropped


def train(docs, out, model_type):
    """Trains (or reuses, when corpus and library are unchanged) a small SentencePiece model."""
    text = "\n".join(d for d in docs if d)
    stamp = hashlib.sha256((text + model_type + spm.__version__ + str(VOCAB)).encode()).hexdigest()
    model, stamp_file = out / f"{model_type}.model", out / f"{model_type}.stamp"
    if model.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return model
    spm.set_random_generator_seed(SEED)
    train_file = out / "train.txt"
    train_file.write_text(text, encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(train_file), model_prefix=str(out / model_type), model_type=model_type,
        vocab_size=VOCAB, byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, character_coverage=0.9995,
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, split_digits=False,
        max_sentence_length=1 << 16, minloglevel=2)
    train_file.unlink()
    stamp_file.write_text(stamp)
    return model


# SentencePiece piece types (sentencepiece_model.proto; llama.cpp's token_type uses the same numbers).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def pieces_of(sp):
    """(piece, score, type) of every id of a SentencePieceProcessor (no protobuf package needed)."""
    out = []
    for i in range(sp.get_piece_size()):
        t = (UNKNOWN if sp.is_unknown(i) else CONTROL if sp.is_control(i) else UNUSED if sp.is_unused(i)
             else BYTE if sp.is_byte(i) else NORMAL)
        out.append((sp.id_to_piece(i), sp.get_score(i), t))
    return out


def _varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n:
            return bytes(b)


def _field(num, wire, payload):
    key = _varint(num << 3 | wire)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    return key + payload


def model_proto(pieces, model_type, unk, bos, eos, add_dummy_prefix, byte_fallback=True):
    """Serialised sentencepiece ModelProto (the protobuf wire format written by hand: the
    `protobuf` package is not a dependency). model_type: 1 unigram, 2 BPE; identity
    normalisation, no extra-whitespace removal."""
    body = b""
    for piece, score, t in pieces:
        sp = _field(1, 2, piece.encode("utf-8")) + _field(2, 5, struct.pack("<f", score)) + _field(3, 0, _varint(t))
        body += _field(1, 2, sp)
    trainer = (_field(3, 0, _varint(model_type)) + _field(4, 0, _varint(len(pieces))) + _field(35, 0, _varint(int(byte_fallback)))
               + _field(40, 0, _varint(unk)) + _field(41, 0, _varint(bos)) + _field(42, 0, _varint(eos)))
    norm = (_field(1, 2, b"identity") + _field(3, 0, _varint(int(add_dummy_prefix))) + _field(4, 0, _varint(0))
            + _field(5, 0, _varint(1)))
    return body + _field(2, 2, trainer) + _field(3, 2, norm)


def write_gguf(path, sp, model, add_space_prefix, pieces=None):
    import gguf
    pieces = pieces or pieces_of(sp)
    w = gguf.GGUFWriter(str(path), arch="llama" if model == "llama" else "t5")
    w.add_tokenizer_model(model)
    w.add_token_list([p[0] for p in pieces])
    w.add_token_scores([p[1] for p in pieces])
    w.add_token_types([p[2] for p in pieces])
    w.add_bos_token_id(sp.bos_id())  # 0 <unk>, 1 <s>, 2 </s> in every model here
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    if add_space_prefix is not None:
        w.add_add_space_prefix(add_space_prefix)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_decoder(strip):
    ds = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if strip:
        ds.append(decoders.Strip(" ", 1, 0))
    return decoders.Sequence(ds)


def hf_tokenizer(sp, kind, metaspace=False):
    """What transformers' LlamaConverter (BPE: merges from generate_merges ordered by score, the
    first three ids scored 0) or SpmConverter (unigram: pieces with their scores) builds from a
    SentencePiece model, with the Llama normaliser (legacy: Prepend + Replace) or, metaspace=True,
    the non-legacy Metaspace(prepend_scheme first) pre-tokenizer; control pieces are special
    added tokens (written here rather than through the converters, which need `protobuf`)."""
    pieces = pieces_of(sp)
    if kind == "bpe":
        from transformers.convert_slow_tokenizer import generate_merges
        scores = [(p, 0.0 if i < 3 else s) for i, (p, s, _) in enumerate(pieces)]
        vocab = {p: i for i, (p, _) in enumerate(scores)}
        merges = generate_merges(vocab, scores)
        tk = Tokenizer(models.BPE(vocab, merges, unk_token=sp.id_to_piece(sp.unk_id()), fuse_unk=True,
                                  byte_fallback=True, dropout=None))
    else:
        tk = Tokenizer(models.Unigram([(p, s) for p, s, _ in pieces], sp.unk_id(), byte_fallback=True))
    if metaspace:
        tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first", split=False)
    else:
        tk.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
    tk.decoder = llama_decoder(True)
    tk.add_tokens([AddedToken(p, normalized=False, special=t == CONTROL) for p, _, t in pieces
                   if t in (CONTROL, USER_DEFINED)])
    return tk


def encode_all(sp, hf, docs, add_prefix=True):
    sp_ids = [sp.encode(d) for d in docs] if sp is not None else None
    hf_ids = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)] if hf is not None else None
    res = {}
    if sp_ids is not None:
        res["sp"] = sp_ids
        res["sp_decoded_ok"] = [sp.decode(i) == d for i, d in zip(sp_ids, docs)]
    if hf_ids is not None:
        res["hf"] = hf_ids
        res["hf_decoded_ok"] = [d == t for d, t in zip(hf.decode_batch(hf_ids, skip_special_tokens=False), docs)]
    if sp_ids is not None and hf_ids is not None:
        res["disagree"] = [i for i, (a, b) in enumerate(zip(sp_ids, hf_ids)) if a != b]
    return res


CASES = ["", " ", "   ", "a", " a", "a ", "a  b", "  a  b  ", "\t", "\n\n", " \n ", "hello world",
         "Hello, World!", "naïve café", "日本語", "😀👍🏿", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ", "x" * 10000, "ab" * 3000, "▁", "▁▁a▁",
         "a\u00a0b", "123456789 3.14159", "def f(x):\n    return x\n", "مرحبا", "नमस्ते", "Привет мир"]


def case_entries(sp, hf, texts):
    out = []
    for t in texts:
        e = {"text": t}
        if sp is not None:
            e["sp"] = sp.encode(t)
            e["sp_decoded"] = sp.decode(e["sp"])
        if hf is not None:
            e["hf"] = hf.encode(t, add_special_tokens=False).ids
            e["hf_decoded"] = hf.decode(e["hf"], skip_special_tokens=False)
        out.append(e)
    return out


def write_bad_ggufs(out):
    """Unusable SentencePiece vocabularies: each must be one clear error naming the file."""
    import gguf
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    good = (["<unk>", "<s>", "▁a"], [0.0, 0.0, -1.0], [UNKNOWN, CONTROL, NORMAL])

    def write(name, tokens, scores, types, model="llama", extra=None):
        w = gguf.GGUFWriter(str(out / name), arch="llama")
        w.add_tokenizer_model(model)
        w.add_token_list(tokens)
        if scores is not None:
            w.add_token_scores(scores)
        w.add_token_types(types)
        if extra:
            extra(w)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    write("bad_noscores.gguf", good[0], None, good[2])
    write("bad_type.gguf", good[0], good[1], [UNKNOWN, 9, NORMAL])
    write("bad_dup.gguf", ["<unk>", "▁a", "▁a"], good[1], [UNKNOWN, NORMAL, NORMAL])
    write("bad_bytes.gguf", good[0] + byte_pieces[:10], good[1] + [0.0] * 10, good[2] + [BYTE] * 10)
    write("bad_byte_name.gguf", good[0] + ["<0xZZ>"], good[1] + [0.0], good[2] + [BYTE])
    write("bad_nounk.gguf", ["<s>", "▁a"], [0.0, -1.0], [CONTROL, NORMAL])
    write("bad_charsmap.gguf", good[0], good[1], good[2], model="t5",
          extra=lambda w: w.add_precompiled_charsmap(b"\x01\x02\x03"))
    write("bad_model.gguf", good[0], good[1], good[2], model="bert")


# ----------------------------------------------------------------------------- Gemma

def gemma_pieces(path):
    import gguf
    r = gguf.GGUFReader(str(path))
    f = r.fields

    def arr(key, conv):
        fld = f[key]
        return [conv(fld.parts[i]) for i in fld.data]

    tokens = arr("tokenizer.ggml.tokens", lambda p: bytes(p).decode("utf-8"))
    scores = arr("tokenizer.ggml.scores", lambda p: float(p[0]))
    types = arr("tokenizer.ggml.token_type", lambda p: int(p[0]))
    scalar = lambda k: int(f[k].parts[f[k].data[0]][0])  # noqa: E731
    return tokens, scores, types, scalar("tokenizer.ggml.unknown_token_id")


def gemma_sp(tokens, scores, types, unk, out):
    """A sentencepiece BPE ModelProto from the GGUF's vocabulary (as Gemma's tokenizer.model):
    the GGUF's unknown id (typed control there) is the UNKNOWN piece, and user-defined pieces get
    back the U+2581 that llama.cpp's converter turns into spaces ("pre-normalize user-defined
    spaces": Gemma's "▁▁" is "  " in the GGUF, matched by llama.cpp in the raw text)."""
    pieces = [(t.replace(" ", SPACE) if ty == USER_DEFINED else t, s, UNKNOWN if i == unk else ty)
              for i, (t, s, ty) in enumerate(zip(tokens, scores, types))]
    path = out / "gemma_from_gguf.model"
    path.write_bytes(model_proto(pieces, 2, unk, 2, 1, False))
    return spm.SentencePieceProcessor(model_file=str(path))


def gemma_hf(path, out):
    """transformers' conversion of Gemma's GGUF vocabulary (kept in out/gemma while it holds)."""
    return Tokenizer.from_file(str(tg.transformers_conversion(path, out / "gemma")))


def write_codellama(out):
    """CodeLlama's layout with random weights: a LlamaForCausalLM directory (config.json,
    model.safetensors) whose vocabulary is the trained BPE SentencePiece model, as tokenizer.json
    (transformers' LlamaConverter form, written above) and tokenizer.model, plus a JSONL dataset
    whose answers are single pieces of that vocabulary (the built-in tasks need English names and
    numbers this 3000-piece vocabulary may not hold whole). tests/test_cli.cpp runs every command
    on it."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    sp = spm.SentencePieceProcessor(model_file=str(out / "bpe.model"))
    d = out / "codellama"
    d.mkdir(exist_ok=True)
    torch.manual_seed(5)
    cfg = LlamaConfig(vocab_size=sp.get_piece_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      tie_word_embeddings=False, bos_token_id=sp.bos_id(), eos_token_id=sp.eos_id())
    LlamaForCausalLM(cfg).eval().save_pretrained(str(d), safe_serialization=True)
    shutil.copy(out / "bpe" / "tokenizer.json", d / "tokenizer.json")
    shutil.copy(out / "bpe.model", d / "tokenizer.model")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizerFast", "add_bos_token": True, "add_eos_token": False,
        "bos_token": sp.id_to_piece(sp.bos_id()), "eos_token": sp.id_to_piece(sp.eos_id()),
        "unk_token": sp.id_to_piece(sp.unk_id()), "legacy": True}, indent=1))
    # Words that are one piece with their leading space: answers of the dataset.
    words = sorted({sp.id_to_piece(i)[1:] for i in range(sp.get_piece_size())
                    if sp.id_to_piece(i).startswith(SPACE) and sp.id_to_piece(i)[1:].isalpha()
                    and len(sp.id_to_piece(i)) >= 5 and len(sp.encode(" " + sp.id_to_piece(i)[1:])) <= 2})
    words = [w for w in words if sp.encode(" " + w)[-1] == sp.piece_to_id(SPACE + w)][:24]
    lines = []
    for i in range(24):
        a, b = words[i % len(words)], words[(i * 7 + 3) % len(words)]
        if a == b:
            continue
        lines.append({"clean": f"The {a} and the {b} went home, and the {b} gave it to <predict>{a}</predict>",
                      "corrupted": f"The {a} and the {b} went home, and the {a} gave it to <predict>{b}</predict>"})
    with open(out / "codellama_data.jsonl", "w") as f:
        for ln in lines:
            f.write(json.dumps(ln) + "\n")
    print(f"codellama: random Llama with the BPE vocabulary ({sp.get_piece_size()} pieces), {len(lines)} examples")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--gemma", default=str(GEMMA_DEFAULT))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    gemma_path = Path(args.gemma)
    gemma = gemma_pieces(gemma_path) if gemma_path.exists() else None
    controls = {"<s>", "</s>", "<unk>"}
    if gemma:
        controls |= {t for t, ty in zip(gemma[0], gemma[2]) if ty == 3}
    control_re = re.compile("|".join(re.escape(c) for c in sorted(controls, key=len, reverse=True)))
    docs, train_docs, dropped = make_corpus(control_re)
    (out / "corpus.json").write_text(json.dumps({"seed": SEED, "documents": docs}), encoding="utf-8")
    total = sum(len(d.encode("utf-8")) for d in docs)
    print(f"corpus: {len(docs)} documents, {total} bytes ({dropped} generated documents with control-token "
          f"text left out)")

    cases = {}
    protos = {}
    for kind in ("bpe", "unigram"):
        model = train(train_docs, out, kind)
        sp = spm.SentencePieceProcessor(model_file=str(model))
        write_gguf(out / f"{kind}.gguf", sp, "llama" if kind == "bpe" else "t5", True)
        hf = hf_tokenizer(sp, kind)
        if kind == "bpe":
            write_gguf(out / "bpe_noprefix_key.gguf", sp, "llama", None)
            write_gguf(out / "bpe_noprefix.gguf", sp, "llama", False)
            # sentencepiece without the dummy prefix (as Gemma), from the same pieces
            (out / "bpe_noprefix.model").write_bytes(
                model_proto(pieces_of(sp), 2, sp.unk_id(), sp.bos_id(), sp.eos_id(), False))
            sp_np = spm.SentencePieceProcessor(model_file=str(out / "bpe_noprefix.model"))
            (out / "ids_bpe_noprefix.json").write_text(json.dumps(encode_all(sp_np, None, docs)))
            cases["bpe_noprefix"] = case_entries(sp_np, None, CASES)
            hf_meta = hf_tokenizer(sp, kind, metaspace=True)
            (out / "bpe_metaspace").mkdir(exist_ok=True)
            hf_meta.save(str(out / "bpe_metaspace" / "tokenizer.json"))
            r = encode_all(sp, hf_meta, docs)
            (out / "ids_bpe_metaspace.json").write_text(json.dumps(r))
            cases["bpe_metaspace"] = case_entries(sp, hf_meta, CASES)
            print(f"bpe (Metaspace tokenizer.json): sentencepiece and tokenizers disagree on {len(r['disagree'])} "
                  f"documents {r['disagree'][:10]}")
        # Without byte pieces (and byte_fallback off): unknown characters are <unk>, one per run.
        nb = [p for p in pieces_of(sp) if p[2] != BYTE]
        nb_name = f"{kind}_nobytes"
        (out / f"{nb_name}.model").write_bytes(
            model_proto(nb, 2 if kind == "bpe" else 1, sp.unk_id(), sp.bos_id(), sp.eos_id(), True, byte_fallback=False))
        sp_nb = spm.SentencePieceProcessor(model_file=str(out / f"{nb_name}.model"))
        write_gguf(out / f"{nb_name}.gguf", sp_nb, "llama" if kind == "bpe" else "t5", True, pieces=nb)
        hf_nb = None
        if kind == "unigram":
            hf_nb = Tokenizer(models.Unigram([(p, s) for p, s, _ in nb], sp.unk_id(), byte_fallback=False))
            hf_nb.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)])
            hf_nb.decoder = llama_decoder(True)
            (out / nb_name).mkdir(exist_ok=True)
            hf_nb.save(str(out / nb_name / "tokenizer.json"))
        r = encode_all(sp_nb, hf_nb, docs)
        (out / f"ids_{nb_name}.json").write_text(json.dumps(r))
        cases[nb_name] = case_entries(sp_nb, hf_nb, CASES)
        print(f"{nb_name}: {sum(len(x) for x in r['sp'])} ids, {sum(x.count(sp.unk_id()) for x in r['sp'])} unk; "
              f"sentencepiece and tokenizers disagree on {len(r.get('disagree', []))} documents")
        (out / kind).mkdir(exist_ok=True)
        hf.save(str(out / kind / "tokenizer.json"))
        r = encode_all(sp, hf, docs)
        (out / f"ids_{kind}.json").write_text(json.dumps(r))
        cases[kind] = case_entries(sp, hf, CASES)
        n_ids = sum(len(x) for x in r["sp"])
        print(f"{kind}: {n_ids} ids; sentencepiece and tokenizers disagree on {len(r['disagree'])} documents "
              f"{r['disagree'][:10]}; sentencepiece round trip fails on {sum(not x for x in r['sp_decoded_ok'])}, "
              f"tokenizers' on {sum(not x for x in r['hf_decoded_ok'])}")
        case_dis = [c["text"][:20] for c in cases[kind] if c["sp"] != c["hf"]]
        if case_dis:
            print(f"{kind}: cases where they disagree: {case_dis}")
    (out / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1), encoding="utf-8")
    write_bad_ggufs(out)
    write_codellama(out)

    if gemma:
        tokens, scores, types, unk = gemma
        sp = gemma_sp(tokens, scores, types, unk, out)
        try:
            hf = gemma_hf(gemma_path, out)
        except Exception as e:  # noqa: BLE001 -- transformers' GGUF support varies by version
            print(f"transformers could not convert {gemma_path} ({e}): its tokenizer.json is not checked",
                  file=sys.stderr)
            hf = None
            (out / "gemma" / "tokenizer.json").unlink(missing_ok=True)
        r = encode_all(sp, hf, docs)
        r["gguf"] = str(gemma_path)
        (out / "ids_gemma.json").write_text(json.dumps(r))
        print(f"gemma: {sum(len(x) for x in r['sp'])} ids; sentencepiece and transformers disagree on "
              f"{len(r.get('disagree', []))} documents {r.get('disagree', [])[:10]}; sentencepiece round trip "
              f"fails on {sum(not x for x in r['sp_decoded_ok'])}")
    else:
        for stale in (out / "ids_gemma.json", out / "gemma" / "tokenizer.json"):
            stale.unlink(missing_ok=True)
        print(f"Gemma GGUF not found at {gemma_path}: its references are skipped", file=sys.stderr)
    print(f"done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
