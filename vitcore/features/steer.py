"""Suppress or amplify a feature and measure what changes: the feature's activations scaled by a factor at every
token of its layer (0 removes it, 2 doubles it), the SAE's error term kept, on one image or a whole eval set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import ImageSet, normalize
from ..model import VisionTransformer
from .activations import LatentEdit, residuals, through_sae
from .sae import TopKSAE


def scale_latents(latents: Sequence[int], factor: float) -> LatentEdit:
    """An edit that multiplies the given latents' activations by ``factor``."""
    index = list(latents)

    def edit(z: Tensor) -> Tensor:
        z = z.clone()
        z[..., index] = z[..., index] * factor
        return z

    return edit


@dataclass(frozen=True)
class SteerEffect:
    """A feature edit on an eval set: accuracy before and after (all images, and the chosen classes' images)."""

    images: int
    top1_before: float
    top1_after: float
    chosen_images: int
    chosen_top1_before: float
    chosen_top1_after: float
    flipped: int  # images whose prediction changed
    kl: float  # mean KL(before || after), nats


@torch.no_grad()
def logits_before_after(model: VisionTransformer, sae: TopKSAE, x: Tensor, edit: LatentEdit) -> tuple[Tensor, Tensor]:
    """The model's logits for normalized ``x``, and with ``edit`` applied to the SAE's latents at its layer."""
    layer = sae.config.layer
    resid = residuals(model.eval(), x, [layer])[layer]
    return model.forward_from(resid, layer), model.forward_from(through_sae(sae, resid, edit), layer)


@torch.no_grad()
def steer_effect(
    model: VisionTransformer,
    sae: TopKSAE,
    data: ImageSet,
    edit: LatentEdit,
    classes: Sequence[str] = (),
    batch_size: int = 256,
) -> SteerEffect:
    """What ``edit`` changes on every image of ``data``."""
    chosen = data.chosen(list(classes)) if classes else torch.zeros(len(data), dtype=torch.bool)
    flipped, kl = 0, 0.0
    parts_before, parts_after = [], []
    for i in range(0, len(data), batch_size):
        x = normalize(data.images[i : i + batch_size], model.config)
        before, after = logits_before_after(model, sae, x, edit)
        labels = data.labels[i : i + batch_size]
        parts_before.append(before.argmax(-1) == labels)
        parts_after.append(after.argmax(-1) == labels)
        flipped += int((before.argmax(-1) != after.argmax(-1)).sum())
        kl += float(F.kl_div(after.log_softmax(-1), before.log_softmax(-1), log_target=True, reduction="sum"))
    right_before, right_after = torch.cat(parts_before), torch.cat(parts_after)
    n_chosen = int(chosen.sum())
    return SteerEffect(
        images=len(data),
        top1_before=float(right_before.float().mean()),
        top1_after=float(right_after.float().mean()),
        chosen_images=n_chosen,
        chosen_top1_before=float(right_before[chosen].float().mean()) if n_chosen else float("nan"),
        chosen_top1_after=float(right_after[chosen].float().mean()) if n_chosen else float("nan"),
        flipped=flipped,
        kl=kl / max(len(data), 1),
    )
