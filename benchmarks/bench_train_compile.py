"""torch.compile for CPU training, side by side with eager, on the regularized-cpu recipe's two stages.

Random uint8 images: a training step costs the same on any pixels. Pause background training first.
Run: python benchmarks/bench_train_compile.py
"""

import time

import torch

from vitcore.config import ViTConfig
from vitcore.data import ImageSet
from vitcore.training.bench import Variant, bench_train


def main(images: int = 2048) -> None:
    torch.set_num_threads(2)
    wnids = [f"n{i:08d}" for i in range(200)]
    data = ImageSet(
        torch.randint(0, 256, (images, 3, 64, 64), dtype=torch.uint8),
        torch.randint(0, 200, (images,)),
        wnids,
        wnids,
        [""] * images,
    )
    variants = [
        Variant(
            f"{side}px keep 0.5 reg{', compile' if compiled else ''}",
            256,
            side,
            0.5,
            compile=compiled,
            augmentation="regularized-cpu",
        )
        for side in (32, 64)
        for compiled in (False, True)
    ]
    start = time.time()
    rows = bench_train(data, ViTConfig(num_classes=200), variants, steps=3, rounds=3)
    for r in rows:
        print(f"| {r['variant']} | {r['images_per_s']:.0f} | {r['p25']:.0f}-{r['p75']:.0f} |")
    print(f"wall {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
