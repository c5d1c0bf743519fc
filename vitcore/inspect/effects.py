"""What each component does to one image's prediction: attribution patching, exact removal, and the pruned model."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import VisionTransformer
from ..pruning import prune


@dataclass
class ComponentEffect:
    """The change of the target class's logit when one component is switched off (its output set to zero, as
    physical pruning does): estimated by attribution patching, and exact when asked for."""

    name: str
    estimate: float
    exact: float | None = None


def image_effects(
    model: VisionTransformer, pixels: Tensor, target: int | None = None, exact: bool = False
) -> list[ComponentEffect]:
    """Every component's effect on the ``target`` logit (default: the predicted class) of one normalized image
    ``[1, 3, H, W]``, largest magnitude first. The estimate is ``-dlogit/dm`` at ``m = 1`` (one backward pass);
    ``exact`` adds the true change, one batched forward with each component removed in turn."""
    if pixels.shape[0] != 1:
        raise ValueError(f"one image at a time, got a batch of {pixels.shape[0]}")
    space = model.components
    with torch.no_grad():
        logits = model(pixels)[0]
    target = int(logits.argmax()) if target is None else target
    mask = space.ones().requires_grad_(True)
    with torch.enable_grad():  # the gradient of the mask only: the model's parameters get no .grad
        (grad,) = torch.autograd.grad(model(pixels, mask=mask)[0, target], mask)
    estimate = -grad
    changes = None
    if exact:
        with torch.no_grad():
            removed = 1 - torch.eye(len(space))  # row i switches component i off
            changes = model(pixels.expand(len(space), *pixels.shape[1:]), mask=removed)[:, target] - logits[target]
    effects = [
        ComponentEffect(space.names[i], float(estimate[i]), None if changes is None else float(changes[i]))
        for i in range(len(space))
    ]
    return sorted(effects, key=lambda e: -abs(e.estimate))


def without_components(model: VisionTransformer, names: Iterable[str]) -> VisionTransformer:
    """The physically pruned model with the named components removed (every other one kept)."""
    space = model.components
    keep = space.ones()
    for name in names:
        keep[space.id(name)] = 0
    return prune(model, keep)
