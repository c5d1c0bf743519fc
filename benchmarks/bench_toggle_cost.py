"""What one toggle costs the compute service: the CPU seconds of each figure job for a fresh keep-set, one thread.

Five keep-sets of the shipped model with five heads removed (fixed seed); each job kind timed once per
keep-set in this process with one torch thread, as a worker runs it; medians. The sum is the core-seconds
a fully evaluated toggle needs, which sizes the worker pool for a class (docs/results/class.md).

Run: python benchmarks/bench_toggle_cost.py [--out docs/measurements/toggle_cost.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore import load_checkpoint  # noqa: E402
from vitcore.compute.figures import (  # noqa: E402
    Source,
    exact_chunk,
    fast_figures,
    keep_bytes,
    outside_sample,
    paired_latency,
    paired_throughput,
    sample_accuracy,
    stratified_sample,
)
from vitcore.measurement import write_measurement  # noqa: E402
from vitcore.playground import EXACT_CHUNK  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keep-sets", type=int, default=5)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(None)
    source = Source(None, ckpt.sha256, None, "bundled")
    eval_set = source.eval_set()
    n_rest = len(outside_sample(len(eval_set), stratified_sample(eval_set.labels)))
    heads = [i for i, name in enumerate(ckpt.model.components.names) if ".H" in name]
    g = torch.Generator().manual_seed(0)
    seconds: dict[str, list[float]] = {
        "fast (one class, 10 images)": [],
        "sample estimate (400 images)": [],
        f"exact (the other {n_rest} images)": [],
        "batch-1 speed-up (15 pairs)": [],
        "batch-64 throughput (2 pairs)": [],
    }
    for _ in range(args.keep_sets):
        mask = ckpt.model.components.ones()
        mask[torch.tensor(heads)[torch.randperm(len(heads), generator=g)[:5]]] = 0
        k = keep_bytes(mask)
        source.model(k)  # prune once, as a worker does at a keep-set's first job
        jobs = [
            lambda k=k: fast_figures(source, k, (eval_set.wnids[0],)),
            lambda k=k: sample_accuracy(source, k),
            lambda k=k: [
                exact_chunk(source, k, s, min(s + EXACT_CHUNK, n_rest)) for s in range(0, n_rest, EXACT_CHUNK)
            ],
            lambda k=k: paired_latency(source, k, 15),
            lambda k=k: paired_throughput(source, k),
        ]
        for name, job in zip(seconds, jobs):
            t0 = time.perf_counter()
            job()
            seconds[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(v) for name, v in seconds.items()}
    result = {"keep_sets": args.keep_sets, "threads": 1, "median_s": medians, "toggle_core_s": sum(medians.values())}
    for name, s in medians.items():
        print(f"{name:40s} {s:6.2f} s")
    print(f"{'one fully evaluated toggle':40s} {result['toggle_core_s']:6.2f} core-seconds")
    if args.out:
        write_measurement(args.out, result)


if __name__ == "__main__":
    main()
