"""Input attribution: which pixels a model's logit for one class rests on (integrated gradients with captum, or LRP)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients
from torch import Tensor

from .circuits.lrp import lrp_relevance
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
    x = _one_input(model, image, target)
    baseline = torch.zeros_like(x)
    was_training = model.training
    if was_training:  # a shared model is already in eval mode and is not written to
        model.eval()
    try:
        with torch.no_grad():
            logit, baseline_logit = model(torch.cat([x, baseline]))[:, target].tolist()
        ig = IntegratedGradients(model)
        attr, delta = ig.attribute(
            x.requires_grad_(True),
            baselines=baseline,
            target=target,
            n_steps=n_steps,
            internal_batch_size=min(n_steps, 64),
            return_convergence_delta=True,
        )
    finally:
        if was_training:
            model.train()
    return InputAttribution(attr[0].sum(0).detach(), target, logit, baseline_logit, float(delta))


def lrp_input_attribution(model: VisionTransformer, image: Tensor, target: int) -> InputAttribution:
    """AttnLRP relevance of each pixel for ``model``'s ``target`` logit, for one uint8 image [3, H, W].

    ``convergence_delta`` is the pixels' total minus the logit: the relevance that biases and the
    softmax rule absorbed on the way. The model must be in eval mode; it is only read.
    """
    if model.training:
        raise ValueError("LRP maps need the model in eval mode")
    rel = lrp_relevance(model, _one_input(model, image, target), torch.tensor([target]))
    logit = float(rel.logits[0])
    return InputAttribution(rel.pixels[0], target, logit, 0.0, float(rel.pixels[0].sum()) - logit)


def _one_input(model: VisionTransformer, image: Tensor, target: int) -> Tensor:
    if image.dtype != torch.uint8 or image.ndim != 3:
        raise ValueError(f"expected one uint8 image [3, H, W], got {tuple(image.shape)} {image.dtype}")
    if not 0 <= target < model.config.num_classes:
        raise ValueError(f"target class {target} is outside 0..{model.config.num_classes - 1}")
    return normalize(image.unsqueeze(0), model.config)
