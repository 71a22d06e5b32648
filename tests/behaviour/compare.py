"""Compares two records of tests/behaviour/record.sh: every circuit, report, curve, trajectory,
training log and tuned model, with the wall-clock fields left out (keys and CSV columns whose
name holds 'seconds', 'time' or 's_per_step'). Prints each difference, then a summary; exits 1
when the outputs (not stdout) differ. Stdout is compared too, with timing lines and timing
columns dropped, and its differences are listed for review (they never fail the compare).

Usage: python compare.py BEFORE_DIR AFTER_DIR
"""
import csv
import io
import json
import os
import re
import sys

TIMING = re.compile(r"seconds|time|s_per_step|elapsed", re.I)


def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if not TIMING.search(k)}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def diff_json(a, b, path, out, limit=8):
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'before' if k in a else 'after'}")
            else:
                diff_json(a[k], b[k], f"{path}/{k}", out, limit)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff_json(x, y, f"{path}[{i}]", out, limit)
    elif a != b:
        out.append(f"{path}: {json.dumps(a)[:120]} -> {json.dumps(b)[:120]}")


def csv_rows(text):
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return rows
    keep = [i for i, h in enumerate(rows[0]) if not TIMING.search(h)]
    return [[r[i] for i in keep if i < len(r)] if not (r and r[0].startswith("#")) else r for r in rows]


def stdout_lines(text):
    lines = []
    for ln in text.splitlines():
        if re.search(r"\btime\b|seconds|s/step|\d s\b", ln):
            continue
        lines.append(re.sub(r"\s+[0-9.]+(\s+\(stopped\))?$", "", ln) if re.match(r"^[0-9.e-]+\s", ln) else ln)
    return lines


def read(path, root):
    """The file's text with the record's own folder written as @OUT@ (outputs name their paths)."""
    return open(path).read().replace(os.path.abspath(root), "@OUT@")


def main():
    before, after = sys.argv[1], sys.argv[2]
    failed, compared, notes = [], 0, []
    for dirpath, _, files in os.walk(before):
        for f in sorted(files):
            pa = os.path.join(dirpath, f)
            rel = os.path.relpath(pa, before)
            pb = os.path.join(after, rel)
            if f.endswith(".err"):
                continue
            if not os.path.exists(pb):
                failed.append(f"{rel}: missing after")
                continue
            compared += 1
            if f.endswith(".json"):
                a, b = strip(json.loads(read(pa, before))), strip(json.loads(read(pb, after)))
                d = []
                diff_json(a, b, "", d)
                if d:
                    failed.append(f"{rel}:\n    " + "\n    ".join(d))
            elif f.endswith(".csv"):
                if csv_rows(read(pa, before)) != csv_rows(read(pb, after)):
                    failed.append(f"{rel}: rows differ")
            elif f.endswith(".out"):
                la, lb = stdout_lines(read(pa, before)), stdout_lines(read(pb, after))
                if la != lb:
                    d = [f"- {x}" for x in la if x not in lb][:4] + [f"+ {x}" for x in lb if x not in la][:4]
                    notes.append(f"{rel} (stdout):\n    " + "\n    ".join(d))
            else:
                if open(pa, "rb").read() != open(pb, "rb").read():
                    failed.append(f"{rel}: bytes differ")
    for dirpath, _, files in os.walk(after):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), after)
            if not f.endswith(".err") and not os.path.exists(os.path.join(before, rel)):
                notes.append(f"{rel}: new after")
    for n in notes:
        print("note:", n)
    for x in failed:
        print("DIFF:", x)
    print(f"{compared} files compared, {len(failed)} differ, {len(notes)} notes")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
