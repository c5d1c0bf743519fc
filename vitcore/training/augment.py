"""Augmentation of whole uint8 batches in the main process (torchvision transforms v2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2

from ..config import ViTConfig
from ..data import normalize
from .recipe import TrainConfig


def batch_mixer(cfg: TrainConfig, num_classes: int) -> Callable | None:
    """MixUp or CutMix chosen at random per batch (None when both are off)."""
    choices = []
    if cfg.mixup > 0:
        choices.append(v2.MixUp(alpha=cfg.mixup, num_classes=num_classes))
    if cfg.cutmix > 0:
        choices.append(v2.CutMix(alpha=cfg.cutmix, num_classes=num_classes))
    return v2.RandomChoice(choices) if choices else None


def per_group(transform: Callable[[Tensor], Tensor], images: Tensor, groups: int) -> Tensor:
    """``transform`` applied to each of ``groups`` random groups of the batch, one parameter draw per group.

    With ``groups == 0``, one call per image. Each image's augmentation has the same distribution
    either way; only images of one group share their draw. Runs on the images' device.
    """
    if groups <= 0:
        return torch.stack([transform(img) for img in images])
    out = torch.empty_like(images)
    for part in torch.randperm(len(images)).to(images.device).chunk(groups):
        out[part] = transform(images[part])
    return out


class BatchAugment:
    """uint8 images ``[B, 3, H, W]`` and labels to normalised inputs at a given side and soft targets.

    Geometric and colour ops and erasing draw their parameters per image (or per group of images
    with ``cfg.augment_groups``, fewer calls, for a GPU); resizing, normalisation and MixUp/CutMix
    run once on the batch. Runs on the device the images are on.
    """

    def __init__(self, cfg: TrainConfig, model_cfg: ViTConfig):
        ops: list[Any] = [v2.RandomCrop(model_cfg.image_size, padding=cfg.crop_padding), v2.RandomHorizontalFlip()]
        if cfg.augment == "autoaugment":
            ops.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET))
        elif cfg.augment == "randaugment":
            ops.append(v2.RandAugment())
        self.per_image = v2.Compose(ops)
        self.erasing = v2.RandomErasing(p=cfg.erasing) if cfg.erasing > 0 else None
        self.mixer = batch_mixer(cfg, model_cfg.num_classes)
        self.model_cfg = model_cfg
        self.groups = cfg.augment_groups

    def __call__(self, images: Tensor, labels: Tensor, side: int) -> tuple[Tensor, Tensor]:
        x = per_group(self.per_image, images, self.groups)
        if side != x.shape[-1]:
            x = v2.functional.resize(x, [side, side], antialias=True)
        x = normalize(x, self.model_cfg)
        if self.erasing is not None:
            x = per_group(self.erasing, x, self.groups)
        if self.mixer is not None:
            return self.mixer(x, labels)
        return x, F.one_hot(labels.to(x.device), self.model_cfg.num_classes).float()
