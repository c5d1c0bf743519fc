"""Training hyper-parameters, the named recipes and the schedules they imply."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import VitcoreError


class TrainingError(VitcoreError):
    """Training settings that cannot work, or a run folder that does not match them."""


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128  # per process
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 10.0
    label_smoothing: float = 0.1
    augment: str = "autoaugment"  # autoaugment | randaugment | none
    mixup: float = 0.8  # alpha; 0 disables
    cutmix: float = 1.0  # alpha; 0 disables
    erasing: float = 0.25
    crop_padding: int = 4
    augment_groups: int = (
        0  # 0: per-image augmentation on the CPU; N: N random groups per batch, on the training device
    )
    drop_path: float = 0.1
    seed: int = 0
    compile: bool = False
    steps_per_epoch: int = 0  # 0 = full epoch; >0 caps it (smoke tests, short legs)
    val_every: int = 1
    low_res: int = 0  # side of the low-resolution stage in pixels (0: no such stage)
    low_res_epochs: float = 0.0  # epochs trained at low_res before the full-resolution stage
    low_res_patch_keep: float = 1.0  # fraction of patch tokens kept per image in the low-resolution stage
    patch_keep: float = 1.0  # the same in the full-resolution stage
    checkpoint_minutes: float = 5.0  # resumable state is saved at least this often, and at each epoch
    init_from: str = ""  # checkpoint folder or zip whose weights start the run ("": random initialisation)

    def stage(self, epoch: int, image_size: int) -> tuple[int, float]:
        """Input side and kept patch fraction for ``epoch`` (0-based)."""
        if self.low_res and epoch < self.low_res_epochs:
            return self.low_res, self.low_res_patch_keep
        return image_size, self.patch_keep

    def validate(self, image_size: int, patch_size: int) -> None:
        problems = []
        if self.epochs < 1 or self.batch_size < 1:
            problems.append("epochs and batch size must be at least 1")
        if self.low_res and (self.low_res % patch_size or not 0 < self.low_res <= image_size):
            problems.append(
                f"low_res {self.low_res} must be a multiple of the patch size {patch_size} and at most {image_size}"
            )
        for name in ("patch_keep", "low_res_patch_keep"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} must be in (0, 1]")
        if self.augment_groups < 0 or self.augment_groups > self.batch_size:
            problems.append(f"augment_groups must be between 0 and the batch size {self.batch_size}")
        if self.augment not in ("autoaugment", "randaugment", "none"):
            problems.append(f"unknown augment {self.augment!r}; use autoaugment, randaugment or none")
        if problems:
            raise TrainingError("invalid training config: " + "; ".join(problems))


# Named recipes: values that differ from TrainConfig's defaults. "baseline" is the shipped
# interim checkpoint's recipe (4 CPU epochs, light augmentation); "fast-cpu" adds the measured
# levers of `python -m vitcore bench-train` (see the model card).
RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "baseline": dict(augment="none", mixup=0.0, cutmix=0.0, erasing=0.0, drop_path=0.0, warmup_epochs=0.3),
    "fast-cpu": dict(
        epochs=30,
        batch_size=256,
        lr=1.5e-3,
        warmup_epochs=2.0,
        augment="none",
        mixup=0.0,
        cutmix=0.0,
        erasing=0.0,
        drop_path=0.1,
        low_res=32,
        low_res_epochs=24,
        low_res_patch_keep=0.5,
        patch_keep=0.5,
        val_every=3,
    ),
    # fast-cpu's levers with the regularisation of Lee et al. 2021 (AutoAugment, MixUp 0.8 /
    # CutMix 1.0, random erasing 0.25): fast-cpu without it overfits when run longer (its val loss
    # rises while train accuracy climbs); its cost per step: docs/results/training-speed.md.
    "regularized-cpu": dict(
        epochs=100,
        batch_size=256,
        lr=1.5e-3,
        warmup_epochs=5.0,
        drop_path=0.1,
        low_res=32,
        low_res_epochs=55,
        low_res_patch_keep=0.5,
        patch_keep=0.5,
        val_every=3,
    ),
}


def lr_factor(step: int, total: int, warmup: int, base: float, floor: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``floor / base``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return (floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * progress))) / base
