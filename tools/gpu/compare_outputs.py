# What tools/gpu/cli_both_devices.sh compares (run on a GPU machine; docs/DEVICES.md).
# Every JSON output of both runs: per key path (list indices and the keys of dicts with 12 or more
# entries, e.g. edge names, dropped), the largest |a - b| relative to the largest |cpu value|; booleans and strings counted.
import json, os, re, sys, collections
a_dir, b_dir = sys.argv[1:3]
skip = re.compile(r"time|second|elapsed|device|date|path|file|out|version|command", re.I)
for f in sorted(os.listdir(a_dir)):
    if not f.endswith(".json") or not os.path.exists(os.path.join(b_dir, f)): continue
    try:
        A = json.load(open(os.path.join(a_dir, f))); B = json.load(open(os.path.join(b_dir, f)))
    except Exception as e:
        print(f, "unreadable", e); continue
    num = collections.defaultdict(lambda: [0.0, 0.0, 0]); other = collections.Counter(); tot = collections.Counter()
    def walk(a, b, p):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in a:
                if skip.search(k): continue
                if k not in b: other[p + "/" + k + " missing"] += 1; continue
                walk(a[k], b[k], p + "/" + (k if len(a) < 12 else "*"))
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b): other[p + " length %d vs %d" % (len(a), len(b))] += 1
            for x, y in zip(a, b): walk(x, y, p + "[]")
        elif isinstance(a, bool) or isinstance(a, str) or a is None:
            tot[p] += 1
            if a != b: other[p] += 1
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            e = num[p]; e[0] = max(e[0], abs(a - b)); e[1] = max(e[1], abs(a)); e[2] += 1
        else:
            other[p + " type"] += 1
    walk(A, B, "")
    worst = sorted(((d / m if m > 0 else d), p, n) for p, (d, m, n) in num.items())
    print("== %s: %d numeric paths, worst rel diff %s" % (f, len(num), "%.2e at %s (n=%d)" % worst[-1] if worst else "-"))
    for r, p, n in worst[::-1][:4]:
        if r > 1e-4: print("   %.2e %s (n=%d)" % (r, p, n))
    for p, c in other.most_common(6): print("   differs: %s x%d of %d" % (p, c, tot[p] or c))
