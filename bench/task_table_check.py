#!/usr/bin/env python3
"""Recomputes task_table's clean figures with transformers, from the examples it dumped.

    build/bench/task_table "" 200 0 /tmp/tasks      # writes /tmp/tasks/<task>.jsonl
    .venv/bin/python bench/task_table_check.py /tmp/tasks [--n 40] [--model gemma.gguf]

Independent of edgewise: the model is transformers' own GGUF loader, the tokenizer is HF
`tokenizers` with SmolLM2's pre-tokenizer (tests/reference/tokenizer_golden.py), a BOS is
prepended only when the GGUF says tokenizer.ggml.add_bos_token, and each prompt runs alone
(no padding). Answer token = the first token of the answer. Prints the same columns.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reference"))
import tokenizer_golden as tg  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--model", help="another GGUF (Gemma-3-270M): its tokenizer is transformers' "
                                    "conversion of the GGUF's vocabulary (AutoTokenizer)")
    a = ap.parse_args()
    gguf_path = Path(a.model) if a.model else tg.default_model_path()
    import gguf
    from transformers import AutoModelForCausalLM
    r = gguf.GGUFReader(str(gguf_path))
    fld = r.fields.get("tokenizer.ggml.add_bos_token")
    add_bos = bool(fld.parts[fld.data[0]][0]) if fld else False
    bos = int(r.fields["tokenizer.ggml.bos_token_id"].parts[-1][0]) if add_bos else None
    out = Path("/tmp/task_table_check")
    out.mkdir(exist_ok=True)
    if a.model:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)

        class Enc:  # the `tokenizers` interface used below
            def __init__(self, ids):
                self.ids = ids

        class Tok:
            @staticmethod
            def encode(text, add_special_tokens=False):
                return Enc(hf.encode(text, add_special_tokens=add_special_tokens))
        tok = Tok()
    else:
        _, tok = tg.smollm_tokenizers(gguf_path, out)
    torch.set_num_threads(2)
    m = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                             dtype=torch.float32).eval()
    print(f"add_bos {add_bos}; first {a.n} examples per task")
    print("| task | logit diff | prob diff | accuracy |")
    for task in ["ioi", "greater-than", "induction", "gendered-pronouns", "docstring", "sva"]:
        if not (Path(a.dir) / f"{task}.jsonl").exists():
            continue
        rows = [json.loads(l) for l in (Path(a.dir) / f"{task}.jsonl").read_text().splitlines()][: a.n]
        ld = pd = acc = 0.0
        with torch.no_grad():
            for ex in rows:
                ids = tok.encode(ex["clean"], add_special_tokens=False).ids
                if add_bos:
                    ids = [bos] + ids
                last = m(torch.tensor([ids])).logits[0, -1].double()
                p = last.softmax(-1)
                c = [tok.encode(s, add_special_tokens=False).ids[0] for s in ex["correct"]]
                w = [tok.encode(s, add_special_tokens=False).ids[0] for s in ex["incorrect"]]
                ld += last[c].mean().item() - (last[w].mean().item() if w else 0.0)
                pd += p[c].sum().item() - (p[w].sum().item() if w else 0.0)
                acc += float(last.argmax().item() in c)
        n = len(rows)
        print(f"| {task} | {ld / n:.3f} | {pd / n:.3f} | {acc / n:.3f} |")


if __name__ == "__main__":
    main()
