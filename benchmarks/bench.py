"""Benchmark of the shipped model on this CPU: batch-256 images/s and batch-1 latency (medians).

Run: python benchmarks/bench.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json

from vitcore import load_pretrained
from vitcore.pruning.latency import time_forward


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    model = load_pretrained()
    b256 = time_forward({"m": model}, 256, max(5, args.repeats // 3), threads=args.threads)["m"]
    b1 = time_forward({"m": model}, 1, max(20, args.repeats), threads=args.threads)["m"]
    print(
        json.dumps(
            {
                "threads": args.threads,
                "batch256_images_per_s": round(256e3 / b256["median_ms"], 1),
                "batch256_ms_median_p25_p75": [round(b256[k], 1) for k in ("median_ms", "p25_ms", "p75_ms")],
                "batch1_ms_median_p25_p75": [round(b1[k], 2) for k in ("median_ms", "p25_ms", "p75_ms")],
                "batch1_repeats": b1["repeats"],
            }
        )
    )


if __name__ == "__main__":
    main()
