#!/usr/bin/env python3
"""Load and frame times of the circuit viewer (issue 28) in headless Chromium, for pages whose
page draws 500, 5,000 and all 70,651 edges of the default model's graph when it opens
(SmolLM2-135M, EAP on IOI: every edge scored; `view --show n`). A harness: the pages come from `edgewise
discover` and `edgewise view`; the browser measures.

- load: from navigation start to the first frame presented (`window.ewViewPaintedAt`,
  performance.now(), two animation frames after the script drew), median of --loads fresh loads;
- slider: a top-n slider move until its first frame is presented (`ewView.frameMs`: the edges
  chosen again, the first 8,000 drawn -- the page draws progressively, heaviest first -- two
  animation frames), median of --moves moves between n and n - n/10;
- complete: the same move until every edge is drawn and presented (`ewView.fullMs`);
- script: the same move's script time alone (`ewView.setTopN`, synchronous), median;
- size: the HTML file.

  python3 bench/viewer_bench.py [--edgewise build/edgewise] [--out /tmp/viewer_bench]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgewise", default=str(ROOT / "build" / "edgewise"))
    ap.add_argument("--out", default="/tmp/viewer_bench")
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--moves", type=int, default=20)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    b = browser()
    circ = out / "eap.json"  # every edge scored; the page opens drawing the top n
    if not circ.exists():
        subprocess.run([a.edgewise, "discover", "--task", "ioi", "-n", "20", "--method", "eap", "-o", str(circ)],
                       check=True, capture_output=True)
    for n in (500, 5000, 70651):
        page = out / f"eap{n}.html"
        subprocess.run([a.edgewise, "view", str(circ), "--show", str(n), "-o", str(page)], check=True,
                       capture_output=True)
        loads = []
        for _ in range(a.loads):
            b.get("about:blank")
            b.get(page.resolve().as_uri())
            for _ in range(600):
                if b.execute_script("return typeof window.ewViewPaintedAt === 'number'"):
                    break
                time.sleep(0.05)
            loads.append(b.execute_script("return window.ewViewPaintedAt"))
        shown = b.execute_script("return window.ewView.counts().shown")
        b.set_script_timeout(30)
        moves = [b.execute_async_script("window.ewView.frameMs(arguments[0], arguments[1])", n if i % 2 else n - n // 10)
                 for i in range(a.moves)]
        fulls = [b.execute_async_script("window.ewView.fullMs(arguments[0], arguments[1])", n if i % 2 else n - n // 10)
                 for i in range(a.moves)]
        draws = [b.execute_script("return window.ewView.setTopN(arguments[0])", n if i % 2 else n - n // 10)
                 for i in range(a.moves)]
        rows.append((n, shown, page.stat().st_size / 1e6, statistics.median(loads), statistics.median(moves),
                     statistics.median(draws), statistics.median(fulls)))
        print(f"{n:6d} edges: drawn {shown}, {rows[-1][2]:.2f} MB, load {rows[-1][3]:.0f} ms, "
              f"slider {rows[-1][4]:.1f} ms (complete {rows[-1][6]:.1f}), script {rows[-1][5]:.1f} ms", flush=True)
    b.quit()
    print("\n| edges drawn (--show) | HTML MB | load ms (first frame) | slider move ms (first frame) | slider move ms (every edge) | script ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]:,} | {r[2]:.2f} | {r[3]:.0f} | {r[4]:.1f} | {r[6]:.1f} | {r[5]:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
