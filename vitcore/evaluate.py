"""Accuracy, loss and throughput of a model on a decoded image set."""

from __future__ import annotations

import math
import time
from statistics import NormalDist
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import ImageSet, normalize
from .model import VisionTransformer


@torch.inference_mode()
def predict_logits_timed(
    model: VisionTransformer, images: Tensor, batch_size: int = 256, mask: Tensor | None = None
) -> tuple[Tensor, list[float]]:
    """Logits for uint8 images ``[N, 3, 64, 64]``, batched, on the model's device, plus each full batch's forward
    seconds.
    """
    device = next(model.parameters()).device
    out, seconds = [], []
    for i in range(0, len(images), batch_size):
        x = normalize(images[i : i + batch_size].to(device), model.config)
        t0 = time.perf_counter()
        logits = model(x, mask=mask)
        if len(x) == batch_size:
            seconds.append(time.perf_counter() - t0)
        out.append(logits.float().cpu())
    return (torch.cat(out) if out else torch.empty(0, model.config.num_classes)), seconds


def predict_logits(
    model: VisionTransformer, images: Tensor, batch_size: int = 256, mask: Tensor | None = None
) -> Tensor:
    """Logits for uint8 images ``[N, 3, 64, 64]``, batched, on the model's device."""
    return predict_logits_timed(model, images, batch_size, mask)[0]


def accuracy_from_logits(logits: Tensor, labels: Tensor) -> dict[str, float]:
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return {
        "top1": float((top5[:, 0] == labels).float().mean()),
        "top5": float((top5 == labels[:, None]).any(1).float().mean()),
        "loss": float(F.cross_entropy(logits, labels)),
    }


def evaluate(model: VisionTransformer, data: ImageSet, batch_size: int = 256) -> dict[str, Any]:
    """top1, top5 (fractions), loss, n_images and images/s of ``model`` on ``data``."""
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    logits = predict_logits(model, data.images, batch_size)
    seconds = time.perf_counter() - start
    model.train(was_training)
    return {
        **accuracy_from_logits(logits, data.labels),
        "n_images": len(data),
        "images_per_s": len(data) / max(seconds, 1e-9),
    }


def per_class_accuracy(logits: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Top-1 per class (NaN where a class has no images)."""
    correct = (logits.argmax(1) == labels).float()
    total = torch.bincount(labels, minlength=num_classes).float()
    hits = torch.bincount(labels, weights=correct, minlength=num_classes)
    return hits / total.where(total > 0, torch.tensor(float("nan")))


def standard_error(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` images (binomial: each image right or wrong)."""
    return (accuracy * (1 - accuracy) / max(n, 1)) ** 0.5


Z95 = NormalDist().inv_cdf(0.975)  # the normal quantile of a two-sided 95% interval


def wilson_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of an accuracy measured on ``n`` images: never of zero width,
    and inside [0, 1] even for 0 or n of n right (where the standard error says "± 0%")."""
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (accuracy + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_text(accuracy: float, n: int, digits: int = 1) -> str:
    """An accuracy as a page shows it: the value, its n and its 95% Wilson interval."""
    lo, hi = wilson_interval(accuracy, n)
    return f"{accuracy:.{digits}%} (n={n}, 95% CI {lo:.{digits}%}–{hi:.{digits}%})"
