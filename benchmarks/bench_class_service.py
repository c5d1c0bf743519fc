"""A class on the compute service without browsers: N students, each toggling heads and waiting for every figure.

Every simulated student is a thread of this process with its own session on one shared scheduler over
worker processes (the app's arrangement: ``shared_scheduler`` in ``ui/resources.py``), over the shipped
model and the bundled data. Each switches off one more head of layer 0 (its own random order), then waits
for the fast figures, the all-class estimate, the exact all-class top-1 and the timings, thinks for
``--think`` seconds, and toggles again. Different students' keep-sets differ (no sharing of the all-class
figures), while timings are shared by keep-sets of one shape, as in the app. This measures what the server
can deliver to a class of N, which the browser load test (benchmarks/load_test.py) cannot reach on this
machine; it does not include drawing the pages.

Run: python benchmarks/bench_class_service.py --students 30 --workers 2 [--toggles 2] [--think 1]
       [--out docs/measurements/class_service_30.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore import load_checkpoint, load_split  # noqa: E402
from vitcore.compute import Scheduler  # noqa: E402
from vitcore.compute.figures import Source  # noqa: E402
from vitcore.compute.workers import WorkerPool  # noqa: E402
from vitcore.evaluate import predict_logits  # noqa: E402
from vitcore.measurement import write_measurement  # noqa: E402
from vitcore.playground import Playground, fit_latency_model  # noqa: E402

WORKER_NICE = 5  # as the app's pool (ui/resources.py)


def _cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _summary(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "max": max(xs), "n": len(xs)} if xs else {"n": 0}


def student(i: int, pg: Playground, heads: list[int], toggles: int, think_s: float, out: dict, start) -> None:
    g = torch.Generator().manual_seed(1000 + i)
    order = [heads[j] for j in torch.randperm(len(heads), generator=g)[:toggles].tolist()]
    mask = pg.base.components.ones()
    start.wait()
    for head in order:
        mask = mask.clone()
        mask[head] = 0
        t0 = time.perf_counter()
        pg.focus(mask)
        pg.fast(mask)
        out["fast"].append(time.perf_counter() - t0)
        pg.estimate(mask)
        out["estimate"].append(time.perf_counter() - t0)
        pg.slow(mask)
        out["exact"].append(time.perf_counter() - t0)
        pg.measure(mask)
        out["timed"].append(time.perf_counter() - t0)
        out["done_at"].append(time.perf_counter())
        time.sleep(think_s)


def run(students: int, workers: int, toggles: int, think_s: float) -> dict:
    torch.set_num_threads(1)
    ckpt = load_checkpoint(None)
    eval_set = load_split(None, "val")
    source = Source(None, ckpt.sha256, None, "bundled")
    pool = WorkerPool(workers, nice=WORKER_NICE)
    pool.warm(source)
    scheduler = Scheduler(pool, slots=workers)
    heads = [i for i, n in enumerate(ckpt.model.components.names) if n.startswith("L0.H")]
    base_logits = predict_logits(ckpt.model, eval_set.images)  # shared by every session, as the app's cache
    latency_model = fit_latency_model(ckpt.model)  # the app's shared fit
    out = {k: [] for k in ("fast", "estimate", "exact", "timed", "done_at")}
    threads, start = [], threading.Event()
    try:
        for i in range(students):
            wnid = eval_set.wnids[(7 * i) % len(eval_set.wnids)]
            pg = Playground(
                ckpt.model,
                eval_set,
                [wnid],
                base_logits=base_logits,
                latency_model=latency_model,
                scheduler=scheduler,
                source=source,
                session=f"student-{i}",
            )
            threads.append(
                threading.Thread(target=student, args=(i, pg, heads, toggles, think_s, out, start), daemon=True)
            )
        for t in threads:
            t.start()
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        start.set()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
    finally:
        scheduler.close()
        pool.shutdown()
    done = len(out["done_at"])
    return {
        "students": students,
        "workers": workers,
        "toggles_each": toggles,
        "think_s": think_s,
        "seconds_after_a_toggle": {k: _summary(out[k]) for k in ("fast", "estimate", "exact", "timed")},
        "wall_s": wall,
        "machine_busy_core_s": cpu,
        "fully_evaluated_toggles": done,
        "fully_evaluated_toggles_per_minute": 60 * done / wall,
        "core_s_per_toggle": cpu / max(done, 1),
        "scheduler": vars(scheduler.stats),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--toggles", type=int, default=2)
    p.add_argument("--think", type=float, default=1.0)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    result = run(args.students, args.workers, args.toggles, args.think)
    for k, v in result["seconds_after_a_toggle"].items():
        print(f"{k:10s} median {v['median']:7.2f} s   max {v['max']:7.2f} s")
    print(
        f"{result['fully_evaluated_toggles']} toggles in {result['wall_s']:.0f} s: "
        f"{result['fully_evaluated_toggles_per_minute']:.1f} a minute, {result['core_s_per_toggle']:.1f} core-s each"
    )
    if args.out:
        write_measurement(args.out, result)


if __name__ == "__main__":
    main()
