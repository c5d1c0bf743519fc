"""Figures of a (pruned) model against the full model's logits on an eval set."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..circuits.metrics import kl_damage
from ..data import ImageSet
from ..evaluate import predict_logits
from ..model import VisionTransformer


@dataclass
class PrunedEval:
    top1_chosen: float
    top1_all: float
    kl: float


@torch.no_grad()
def evaluate_against(
    base_logits: torch.Tensor, model: VisionTransformer | None, eval_set: ImageSet, chosen: torch.Tensor
) -> PrunedEval:
    """Top-1 on the chosen classes and on all classes, and KL(full || model) on the chosen classes.

    ``model=None`` gives the figures of the full model itself, from ``base_logits``.
    """
    logits = base_logits if model is None else predict_logits(model, eval_set.images)
    correct = logits.argmax(1) == eval_set.labels
    return PrunedEval(
        float(correct[chosen].float().mean()),
        float(correct.float().mean()),
        float(kl_damage(logits[chosen], base_logits[chosen], eval_set.labels[chosen]).mean()),
    )
