"""Augmentation per image against per random group of images (``--augment-groups``), side by side.

Part 1 times the regularized-cpu augmentation alone on batches of 256 bundled training images;
part 2 times whole training steps of the recipe's two stages. Medians over interleaved rounds,
2 threads. Pause background training first. Run: python benchmarks/bench_augment_groups.py
"""

import statistics
import time

import torch

from vitcore.config import ViTConfig
from vitcore.data import load_split
from vitcore.training import RECIPES, TrainConfig
from vitcore.training.augment import BatchAugment
from vitcore.training.bench import Variant, bench_train

GROUPS = (0, 8, 32)


def augmentation_alone(rounds: int = 7, batch: int = 256) -> None:
    data = load_split(None, "train", progress=False)
    model_cfg = ViTConfig(num_classes=len(data.wnids))
    augments = {
        g: BatchAugment(TrainConfig(**{**RECIPES["regularized-cpu"], "augment_groups": g}), model_cfg) for g in GROUPS
    }
    seconds: dict[int, list[float]] = {g: [] for g in GROUPS}
    for _ in range(rounds):
        for g, augment in augments.items():
            idx = torch.randint(len(data), (batch,))
            start = time.perf_counter()
            augment(data.images[idx], data.labels[idx], 64)
            seconds[g].append(time.perf_counter() - start)
    base = statistics.median(seconds[0])
    print(f"augmentation alone, batch {batch}, 64px, median of {rounds} rounds:")
    print("| groups | ms per batch | x per image |\n|---|---|---|")
    for g in GROUPS:
        med = statistics.median(seconds[g])
        print(f"| {g or 'per image'} | {1000 * med:.1f} | {base / med:.2f} |")


def whole_steps() -> None:
    data = load_split(None, "train", progress=False)
    variants = [
        Variant(
            f"{side}px keep 0.5 regularized, {f'{g} groups' if g else 'per image'}",
            256,
            side,
            0.5,
            augmentation="regularized-cpu",
            augment_groups=g,
        )
        for side in (32, 64)
        for g in (0, 32)
    ]
    rows = bench_train(data, ViTConfig(num_classes=len(data.wnids)), variants, steps=3, rounds=3)
    print("whole training steps (augmentation, forward, backward, AdamW), 3 rounds x 3 steps, medians:")
    print("| variant | images/s | p25-p75 |\n|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['images_per_s']:.0f} | {r['p25']:.0f}-{r['p75']:.0f} |")


if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.manual_seed(0)
    start = time.time()
    augmentation_alone()
    whole_steps()
    print(f"wall {time.time() - start:.0f} s")
