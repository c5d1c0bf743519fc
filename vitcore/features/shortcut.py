"""The planted shortcut, by features: the SAE latents that fire on the mark, and the shortcut's figures with them
suppressed (compared in the docs with cutting the heads that carry it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..data import ImageSet, normalize
from ..model import VisionTransformer
from ..shortcut.figures import shortcut_figures
from ..shortcut.mark import Shortcut, apply_mark
from .activations import LatentEdit, residuals, through_sae
from .sae import TopKSAE
from .steer import scale_latents


@torch.no_grad()
def mark_features(
    model: VisionTransformer, sae: TopKSAE, images: Tensor, shortcut: Shortcut, n: int = 16, batch_size: int = 256
) -> list[tuple[int, float]]:
    """The ``n`` latents that fire on the mark and not without it, on ``images`` (uint8, of other classes than the
    target): ``(latent, score)``, largest first. The score is the share of the marked images on which the latent
    fires anywhere minus the share of the same images unmarked; ties go to the larger rise of its strongest
    activation. A latent that fires on most images anyway (an edge or a corner) scores low however much the
    mark raises it, so suppressing the found ones leaves clean images alone."""
    layer = sae.config.layer
    fires = torch.zeros(sae.config.n_latents)
    rise = torch.zeros(sae.config.n_latents)
    for i in range(0, len(images), batch_size):
        clean = images[i : i + batch_size]
        for sign, batch in ((-1.0, clean), (1.0, apply_mark(clean, shortcut.mark))):
            strongest = sae.encode(residuals(model, normalize(batch, model.config), [layer])[layer]).amax(1)
            fires += sign * (strongest > 0).float().sum(0)
            rise += sign * strongest.sum(0)
    count = max(len(images), 1)
    score = fires / count
    order = sorted(range(sae.config.n_latents), key=lambda j: (-float(score[j]), -float(rise[j])))[:n]
    return [(j, float(score[j])) for j in order]


def edited_predict(model: VisionTransformer, sae: TopKSAE, edit: LatentEdit, batch_size: int = 256):
    """uint8 images to logits with ``edit`` applied to the SAE's latents at its layer (error term kept)."""

    @torch.no_grad()
    def predict(images: Tensor) -> Tensor:
        layer, out = sae.config.layer, []
        for i in range(0, len(images), batch_size):
            resid = residuals(model, normalize(images[i : i + batch_size], model.config), [layer])[layer]
            out.append(model.forward_from(through_sae(sae, resid, edit), layer))
        return torch.cat(out) if out else torch.empty(0, model.config.num_classes)

    return predict


def suppression_table(
    model: VisionTransformer,
    sae: TopKSAE,
    discovery: ImageSet,
    eval_set: ImageSet,
    shortcut: Shortcut,
    counts: Sequence[int] = (1, 2, 4, 8, 16),
) -> dict[str, Any]:
    """The mark's features found on ``discovery``'s images of other classes, then the shortcut's figures on
    ``eval_set`` with none and with the top 1, 2, 4, 8, 16 of them suppressed (activation set to zero)."""
    t = discovery.class_index(shortcut.target)
    found = mark_features(model, sae, discovery.images[discovery.labels != t], shortcut, n=max(counts))
    rows = [{"suppressed": 0, "latents": [], **shortcut_figures(model, eval_set, shortcut.target, shortcut.mark)}]
    for m in counts:
        latents = [j for j, _ in found[:m]]
        predict = edited_predict(model, sae, scale_latents(latents, 0.0))
        figures = shortcut_figures(model, eval_set, shortcut.target, shortcut.mark, predict=predict)
        rows.append({"suppressed": m, "latents": latents, **figures})
    return {"layer": sae.config.layer, "mark_features": found, "rows": rows}
