"""Training throughput of recipe variants, measured side by side (``python -m vitcore bench-train``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ..config import ViTConfig
from ..data import ImageSet
from ..model import VisionTransformer
from .augment import BatchAugment
from .forward import TrainingForward
from .loop import make_optimizer
from .recipe import RECIPES, TrainConfig


@dataclass
class Variant:
    name: str
    batch_size: int
    side: int
    patch_keep: float = 1.0
    per_sample_loader: bool = False  # the shipped checkpoint's input path: DataLoader over per-image transforms
    compile: bool = False
    augmentation: str = "baseline"  # the recipe whose augmentation the step runs (crop + flip, or regularized-cpu's)
    augment_groups: int = 0  # 0: augmentation per image; N: per random group of images (TrainConfig.augment_groups)


VARIANTS = [
    Variant("today: 64px, batch 128, per-image loader", 128, 64, per_sample_loader=True),
    Variant("batched augmentation, 64px, batch 128", 128, 64),
    Variant("batched, 64px, batch 256", 256, 64),
    Variant("64px, patch keep 0.5, batch 256", 256, 64, 0.5),
    Variant("32px, batch 256", 256, 32),
    Variant("32px, patch keep 0.5, batch 256", 256, 32, 0.5),
    Variant(
        "32px, patch keep 0.5, batch 256, AutoAugment + MixUp/CutMix + erasing",
        256,
        32,
        0.5,
        augmentation="regularized-cpu",
    ),
    Variant(
        "64px, patch keep 0.5, batch 256, AutoAugment + MixUp/CutMix + erasing",
        256,
        64,
        0.5,
        augmentation="regularized-cpu",
    ),
]

# each recipe's (low-resolution stage, full-resolution stage) as measured variants
RECIPE_STAGES = {
    "fast-cpu": (VARIANTS[5].name, VARIANTS[3].name),
    "regularized-cpu": (VARIANTS[6].name, VARIANTS[7].name),
}


class _PerImage(Dataset):
    """Today's input path, kept only as the benchmark's reference: transforms and normalisation per image."""

    def __init__(self, data: ImageSet, model_cfg: ViTConfig, padding: int):
        self.data = data
        self.transform = v2.Compose(
            [
                v2.RandomCrop(model_cfg.image_size, padding=padding),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(model_cfg.mean, model_cfg.std),
            ]
        )

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.transform(self.data.images[i]), self.data.labels[i]


def _step_fn(variant: Variant, data: ImageSet, model_cfg: ViTConfig, cfg: TrainConfig) -> Callable[[], int]:
    model = VisionTransformer(model_cfg)
    net: torch.nn.Module = TrainingForward(model)
    if variant.compile:
        net = cast(torch.nn.Module, torch.compile(net))  # compiling a Module gives a Module
    opt = make_optimizer(model, cfg)
    augment = BatchAugment(
        TrainConfig(**{**RECIPES[variant.augmentation], "augment_groups": variant.augment_groups}), model_cfg
    )
    loader_iter = None
    if variant.per_sample_loader:
        loader = DataLoader(
            _PerImage(data, model_cfg, cfg.crop_padding), variant.batch_size, shuffle=True, drop_last=True
        )

    def batch():
        nonlocal loader_iter
        if variant.per_sample_loader:
            try:
                x, y = next(loader_iter)  # type: ignore[arg-type]
            except (StopIteration, TypeError):
                loader_iter = iter(loader)
                x, y = next(loader_iter)
            return x, F.one_hot(y, model_cfg.num_classes).float()
        idx = torch.randint(len(data), (variant.batch_size,))
        return augment(data.images[idx], data.labels[idx], variant.side)

    def step() -> int:
        x, target = batch()
        loss = F.cross_entropy(net(x, variant.patch_keep), target, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return len(x)

    return step


def bench_train(
    data: ImageSet,
    model_cfg: ViTConfig | None = None,
    variants: list[Variant] | None = None,
    steps: int = 3,
    rounds: int = 3,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Images/s of each variant's full training step (augmentation included), interleaved.

    Each round runs ``steps`` timed steps of every variant in turn (after one warm-up step
    each); the figure is the median over rounds, with the spread.
    """
    model_cfg = model_cfg or ViTConfig(num_classes=len(data.wnids))
    variants = variants or VARIANTS
    cfg = replace(TrainConfig(**RECIPES["baseline"]))
    fns = [_step_fn(v, data, model_cfg, cfg) for v in variants]
    for fn in fns:
        fn()
    rates: list[list[float]] = [[] for _ in variants]
    for r in range(rounds):
        for i, fn in enumerate(fns):
            start, seen = time.perf_counter(), 0
            for _ in range(steps):
                seen += fn()
            rates[i].append(seen / (time.perf_counter() - start))
        if progress:
            print(
                f"round {r + 1}/{rounds}: "
                + ", ".join(f"{v.name.split(',')[0]} {x[-1]:.0f}" for v, x in zip(variants, rates)),
                flush=True,
            )
    base = statistics.median(rates[0])
    rows = []
    for v, xs in zip(variants, rates):
        q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
        med = statistics.median(xs)
        rows.append(
            {
                "variant": v.name,
                "images_per_s": med,
                "p25": q[0],
                "p75": q[2],
                "vs_today": med / base,
                "epoch_s": len(data) and 100_000 / med,
            }
        )
    return rows


def recipe_throughput(rows: dict[str, float], stages: list[tuple[str, float]]) -> float:
    """Images per second over a whole recipe: stages are (variant name, epochs)."""
    epochs = sum(e for _, e in stages)
    return epochs / sum(e / rows[name] for name, e in stages)


def named_recipe_throughput(rows: dict[str, float], recipe: str) -> tuple[float, list[tuple[str, float]]]:
    """Images per second over the named recipe's two stages, and the stages (variant name, epochs)."""
    r = RECIPES[recipe]
    low, high = RECIPE_STAGES[recipe]
    stages = [(low, r["low_res_epochs"]), (high, r["epochs"] - r["low_res_epochs"])]
    return recipe_throughput(rows, stages), stages
