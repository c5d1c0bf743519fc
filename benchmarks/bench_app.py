"""Benchmark of the app's live update path (server side) and its cold start.

Toggle speed: three chosen classes, one component flipped at a time from an EAP keep-set, as
the Prune page does (Playground.fast, .measure, .estimate on a stratified sample, then .slow); medians over the flips.
Cold start: `streamlit run app.py` until a headless Chromium shows the Model page with its gallery
(its title and the 32 gallery images drawn).

Run: python benchmarks/bench_app.py [--flips 20] [--threads 2] [--no-cold-start | --cold-start-only]
       [--script serve.py|app.py]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from vitcore import load_checkpoint, load_split
from vitcore.circuits import discover
from vitcore.playground import Playground
from vitcore.pruning import prune
from vitcore.pruning.latency import measure_speedup

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the harness is a package beside it

from benchmarks.appserver import app_server  # noqa: E402


def toggle_speed(flips: int) -> dict:
    ckpt = load_checkpoint()
    eval_set, discovery = load_split(None, "val"), load_split(None, "train")
    classes = eval_set.wnids[:3]
    result = discover(ckpt.model, discovery, classes, "eap")
    pg = Playground(ckpt.model, eval_set, classes)
    mask = ckpt.model.components.mask_from_keep(result.kept)
    pg.slow(ckpt.model.components.ones())
    pg.slow(mask)
    gen = torch.Generator().manual_seed(0)
    fast, measured, estimate, total = [], [], [], []
    for _ in range(flips):
        c = int(torch.randint(len(mask), (1,), generator=gen))
        mask = mask.clone()
        mask[c] = 1 - mask[c]
        if mask.sum() == 0:
            continue
        t0 = time.perf_counter()
        pg.fast(mask)
        t1 = time.perf_counter()
        pg.measure(mask)
        tm = time.perf_counter()
        pg.estimate(mask)
        te = time.perf_counter()
        pg.slow(mask)
        t2 = time.perf_counter()
        fast.append(t1 - t0)
        measured.append(tm - t0)
        estimate.append(te - t0)
        total.append(t2 - t0)
    return {
        "flips": len(fast),
        "fast_median_s": statistics.median(fast),
        "fast_max_s": max(fast),
        "fast_and_measured_latency_median_s": statistics.median(measured),
        "fast_and_measured_latency_max_s": max(measured),
        "all_figures_estimated_median_s": statistics.median(estimate),
        "all_figures_estimated_max_s": max(estimate),
        "all_figures_exact_median_s": statistics.median(total),
        "all_figures_exact_max_s": max(total),
    }


def speedup_stability(repetitions: int, background_load: int) -> dict:
    """The Prune page's batch-1 speed-up of one fixed pruned model (EAP, keep 0.5), measured
    ``repetitions`` times as the page does (15 interleaved pairs each), optionally while
    ``background_load`` busy-loop processes compete for the CPU."""
    ckpt = load_checkpoint()
    discovery = load_split(None, "train")
    result = discover(ckpt.model, discovery, discovery.wnids[:3], "eap")
    pruned = prune(ckpt.model, ckpt.model.components.mask_from_keep(result.kept))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(background_load)]
    try:
        runs = [measure_speedup(ckpt.model, pruned, 1, 15) for _ in range(repetitions)]
    finally:
        for h in hogs:
            h.kill()
    shown = [r.ratio for r in runs if not r.busy]
    med = statistics.median(shown) if shown else float("nan")
    return {
        "background_load_processes": background_load,
        "repetitions": repetitions,
        "flagged_busy": len(runs) - len(shown),
        "shown_median_speedup": med,
        "shown_range_over_median": (max(shown) - min(shown)) / med if shown else None,
        "shown_p25_p75": statistics.quantiles(shown, n=4)[::2] if len(shown) > 1 else shown,
        "all_ratios": [round(r.ratio, 3) for r in runs],
    }


def cold_start(script: str) -> dict:
    from playwright.sync_api import sync_playwright

    with app_server(ROOT, script=script) as (url, start):
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page()
            page.goto(url)
            page.locator("h1", has_text="Model").wait_for(timeout=120_000)
            title = time.perf_counter() - start
            page.locator("img.gallery").nth(31).wait_for(timeout=120_000)
            elapsed = time.perf_counter() - start
            browser.close()
    return {"title_s": round(title, 2), "gallery_s": round(elapsed, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--flips", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-cold-start", action="store_true")
    p.add_argument("--cold-start-only", action="store_true")
    p.add_argument(
        "--script",
        default="serve.py",
        choices=["serve.py", "app.py"],
        help="what the cold start runs (serve.py: the README's command)",
    )
    p.add_argument(
        "--stability", type=int, default=20, help="repetitions of the fixed model's speed-up measurement (0: skip)"
    )
    p.add_argument(
        "--background-load", type=int, default=1, help="busy-loop processes running during the stability measurement"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = {"threads": args.threads}
    if not args.cold_start_only:
        out.update(toggle_speed(args.flips))
    if args.stability and not args.cold_start_only:
        out["speedup_stability"] = speedup_stability(args.stability, args.background_load)
    if not args.no_cold_start:
        out["cold_start_script"] = args.script
        out["cold_start"] = [cold_start(args.script) for _ in range(3)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
