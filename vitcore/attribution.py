"""Input attribution with captum: which pixels a model's logit for one class rests on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients
from torch import Tensor

from .data import normalize
from .model import VisionTransformer


@dataclass
class InputAttribution:
    """Per-pixel attribution (summed over colour channels) of one class logit, and IG's check."""

    pixels: Tensor  # [H, W], signed: positive pixels raise the logit
    target: int
    logit: float
    baseline_logit: float
    convergence_delta: float  # sum of attributions minus (logit - baseline logit); 0 for exact integration


def input_attribution(model: VisionTransformer, image: Tensor, target: int, n_steps: int = 32) -> InputAttribution:
    """Integrated gradients of ``model``'s ``target`` logit for one uint8 image [3, H, W].

    The baseline is the dataset-mean image (all zeros after normalisation). The model is only
    read: no hooks, no parameter gradients, so a shared model may be passed.
    """
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected one uint8 image [3, H, W], got {tuple(image.shape)} {image.dtype}")
    if not 0 <= target < model.config.num_classes:
        raise ValueError(f"target class {target} is outside 0..{model.config.num_classes - 1}")
    x = normalize(image.unsqueeze(0), model.config)
    baseline = torch.zeros_like(x)
    was_training = model.training
    if was_training:  # a shared model is already in eval mode and is not written to
        model.eval()
    try:
        with torch.no_grad():
            logit, baseline_logit = model(torch.cat([x, baseline]))[:, target].tolist()
        ig = IntegratedGradients(model)
        attr, delta = ig.attribute(x.requires_grad_(True), baselines=baseline, target=target, n_steps=n_steps,
                                   internal_batch_size=min(n_steps, 64), return_convergence_delta=True)
    finally:
        if was_training:
            model.train()
    return InputAttribution(attr[0].sum(0).detach(), target, logit, baseline_logit, float(delta))
