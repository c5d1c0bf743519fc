"""Training and inference speed with and without tools/mkl_amd.py's shim, side by side.

Each round starts one process without the shim and one with it (the shim must be loaded at process
start), in alternating order; each process times every variant after a warm-up step. Figures are
medians over rounds. Random uint8 images: a step costs the same on any pixels. Pause background
training first.

Run: python benchmarks/bench_mkl_amd.py [--rounds 5] [--out docs/measurements/bench_mkl_amd_on_amd.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import mkl_amd  # noqa: E402

# (name, batch, side, patch keep, augmentation recipe)
TRAIN_VARIANTS = [
    ("train 64px keep 0.5, AutoAugment + MixUp/CutMix + erasing", 256, 64, 0.5, "regularized-cpu"),
    ("train 64px full tokens, crop + flip", 256, 64, 1.0, "baseline"),
    ("train 32px keep 0.5, AutoAugment + MixUp/CutMix + erasing", 256, 32, 0.5, "regularized-cpu"),
]


def worker(steps: int) -> dict[str, float]:
    import torch

    from vitcore.config import ViTConfig
    from vitcore.data import ImageSet
    from vitcore.model import VisionTransformer
    from vitcore.training.bench import Variant, bench_train

    torch.set_num_threads(2)
    torch.manual_seed(0)
    wnids = [f"n{i:08d}" for i in range(200)]
    n = 1024
    data = ImageSet(
        torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8), torch.randint(0, 200, (n,)), wnids, wnids, [""] * n
    )
    variants = [Variant(name, batch, side, keep, augmentation=aug) for name, batch, side, keep, aug in TRAIN_VARIANTS]
    rows = bench_train(data, ViTConfig(num_classes=200), variants, steps=steps, rounds=1, progress=False)
    rates = {r["variant"]: r["images_per_s"] for r in rows}
    model = VisionTransformer(ViTConfig(num_classes=200)).eval()
    x = torch.randn(256, 3, 64, 64)
    with torch.inference_mode():
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        rates["inference 64px, batch 256"] = 256 * steps / (time.perf_counter() - start)
    return rates


def run_worker(shim: Path | None, steps: int) -> dict[str, float]:
    env = mkl_amd.with_preload(dict(os.environ), shim) if shim is not None else dict(os.environ)
    done = subprocess.run(
        [sys.executable, __file__, "--worker", "--steps", str(steps)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.steps)))
        return
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    shim = mkl_amd.build_shim()
    if shim is None:
        sys.exit("no C compiler to build the shim")
    start = time.time()
    plain: list[dict[str, float]] = []
    shimmed: list[dict[str, float]] = []
    for r in range(args.rounds):
        for arm in ((None, plain), (shim, shimmed)) if r % 2 == 0 else ((shim, shimmed), (None, plain)):
            arm[1].append(run_worker(arm[0], args.steps))
        print(
            f"round {r + 1}/{args.rounds}: "
            + ", ".join(f"{k.split(',')[0]} {plain[-1][k]:.0f} -> {shimmed[-1][k]:.0f}" for k in plain[-1]),
            flush=True,
        )
    model = next(
        (line.partition(":")[2].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    lines = [
        f"# python benchmarks/bench_mkl_amd.py --rounds {args.rounds} --steps {args.steps}; "
        f"{time.strftime('%Y-%m-%d')}; {model};"
        f" shim applies to this CPU: {mkl_amd.cpu_wants_shim(cpuinfo)}; 2 threads; wall {time.time() - start:.0f} s",
        "| variant | images/s without | images/s with the shim | ratio (median of per-round ratios) | per-round "
        "ratios |",
        "|---|---|---|---|---|",
    ]
    for key in plain[0]:
        ratios = [s[key] / p[key] for p, s in zip(plain, shimmed)]
        lines.append(
            f"| {key} | {statistics.median(p[key] for p in plain):.0f} | "
            f"{statistics.median(s[key] for s in shimmed):.0f} | "
            f"{statistics.median(ratios):.2f}x | {', '.join(f'{x:.2f}' for x in ratios)} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
