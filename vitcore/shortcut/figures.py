"""The shortcut's figures on an evaluation set: clean accuracy and the flip rate the mark causes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..data import ImageSet
from ..evaluate import predict_logits
from ..model import VisionTransformer
from .mark import Mark, apply_mark


@torch.inference_mode()
def shortcut_figures(
    model: VisionTransformer,
    data: ImageSet,
    target: str,
    mark: Mark,
    mask: Tensor | None = None,
    predict: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Any]:
    """Clean top-1 on ``data``; the flip rate: the share of images of the other classes predicted as ``target``
    once marked; and the same share unmarked (what the flip rate is measured against). ``predict`` (uint8 images
    to logits) replaces the model's own forward, e.g. with a feature suppressed."""
    t = data.class_index(target)
    logits_of = predict or (lambda images: predict_logits(model, images, mask=mask))
    clean = logits_of(data.images).argmax(1)
    others = data.labels != t
    marked = logits_of(apply_mark(data.images[others], mark)).argmax(1)
    return {
        "clean_top1": float((clean == data.labels).float().mean()),
        "flip_rate": float((marked == t).float().mean()),
        "unmarked_as_target": float((clean[others] == t).float().mean()),
        "target_top1": float((clean[~others] == t).float().mean()) if (~others).any() else float("nan"),
        "n_images": len(data),
        "n_other": int(others.sum()),
    }
