#!/usr/bin/env python3
"""Summary of bench/paired_ab.sh: for every timing field (names ending in _s, and ACDC's
"seconds"), the median over rounds of B / A, with the rounds' range. Memory fields (peak) as
B - A in the field's unit."""
import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1]
runs = {}
for f in glob.glob(os.path.join(out, "*.json")):
    name, side, r = re.match(r"(.+)\.([AB])\.(\d+)\.json$", os.path.basename(f)).groups()
    try:
        runs.setdefault(name, {}).setdefault(int(r), {})[side] = json.load(open(f))
    except json.JSONDecodeError:
        print(f"{f}: not JSON (the run failed)", file=sys.stderr)
print(f"{'benchmark':<14} {'field':<26} {'A median':>10} {'B median':>10} {'B/A (median of rounds)':>24}  range")
for name in sorted(runs):
    rounds = [v for v in runs[name].values() if "A" in v and "B" in v]
    if not rounds:
        continue
    keys = [k for k, v in rounds[0]["A"].items() if isinstance(v, (int, float)) and (k.endswith("_s") or k == "seconds"
                                                                                      or "peak" in k)]
    for k in keys:
        a = [r["A"][k] for r in rounds]
        b = [r["B"][k] for r in rounds]
        if "peak" in k:
            print(f"{name:<14} {k:<26} {statistics.median(a):>10.1f} {statistics.median(b):>10.1f} "
                  f"{'B-A ' + format(statistics.median(b) - statistics.median(a), '+.1f'):>24}")
            continue
        ratios = [y / x for x, y in zip(a, b) if x > 0]
        print(f"{name:<14} {k:<26} {statistics.median(a):>10.4f} {statistics.median(b):>10.4f} "
              f"{statistics.median(ratios):>24.3f}  {min(ratios):.3f}-{max(ratios):.3f} (n={len(ratios)})")
