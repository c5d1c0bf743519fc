"""Every long action's time estimate, as the pages compute it, against the time it then took.

Circuit runs: every registered method at every granularity it declares, on one class's 10 discovery
images of the shipped model, with its default setting and options; the estimate is the registry's
``estimate_seconds`` from one timed forward over the images (what the Circuits page announces).
Fine-tuning: 40 steps with distillation on a keep-set with five heads removed; the estimate is
``estimate_finetune_seconds`` from the paired batch-64 throughput (what the Prune page announces).
On an idle machine, torch threads as given.

Run: python benchmarks/bench_estimates.py [--out docs/measurements/estimates.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore import load_checkpoint, load_split  # noqa: E402
from vitcore.circuits import METHODS, discover  # noqa: E402
from vitcore.compute.figures import LiveSource, keep_bytes, paired_throughput  # noqa: E402
from vitcore.data import normalize  # noqa: E402
from vitcore.measurement import write_measurement  # noqa: E402
from vitcore.pruning.finetune import estimate_finetune_seconds, finetune_steps  # noqa: E402

CLASS = "n01443537"  # goldfish


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--max-estimate", type=float, default=120.0, help="run only actions estimated at most this many seconds"
    )
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(None)
    discovery, eval_set = load_split(None, "train"), load_split(None, "val")
    images = discovery.images[discovery.chosen([CLASS])]
    rows = []
    for name, entry in METHODS.items():
        for granularity in entry.granularities:
            t0 = time.perf_counter()
            with torch.inference_mode():
                ckpt.model(normalize(images, ckpt.model.config))
            forward_s = time.perf_counter() - t0
            estimate = entry.estimate_seconds(forward_s, entry.run_options(), len(ckpt.model.components), granularity)
            if (
                estimate > args.max_estimate
            ):  # announced as a long run; not run here (it would take this benchmark past its budget)
                rows.append({"action": f"{entry.label} ({granularity})", "estimate_s": estimate, "actual_s": None})
                print(
                    f"{rows[-1]['action']:28s} estimated {estimate:7.1f} s, not run (over --max-estimate)", flush=True
                )
                continue
            t0 = time.perf_counter()
            discover(ckpt.model, discovery, [CLASS], name, granularity=granularity)
            actual = time.perf_counter() - t0
            rows.append({"action": f"{entry.label} ({granularity})", "estimate_s": estimate, "actual_s": actual})
            print(f"{rows[-1]['action']:28s} estimated {estimate:7.1f} s, took {actual:7.1f} s", flush=True)
    mask = ckpt.model.components.ones()
    mask[[0, 13, 30, 50, 70]] = 0
    source = LiveSource(ckpt.model, eval_set)
    k = keep_bytes(mask)
    t = paired_throughput(source, k)
    steps = 40
    estimate = estimate_finetune_seconds(steps, t["model"], t["ratio"], None, distill=True)
    model = source.model(k).clone()
    t0 = time.perf_counter()
    finetune_steps(model, discovery, steps, lr=1e-4, teacher=ckpt.model)
    actual = time.perf_counter() - t0
    rows.append({"action": f"fine-tuning, {steps} steps with distillation", "estimate_s": estimate, "actual_s": actual})
    print(f"{rows[-1]['action']:28s} estimated {estimate:7.1f} s, took {actual:7.1f} s")
    if args.out:
        write_measurement(
            args.out,
            {
                "threads": args.threads,
                "class": CLASS,
                "images": len(images),
                "max_estimate_s": args.max_estimate,
                "rows": rows,
            },
        )


if __name__ == "__main__":
    main()
