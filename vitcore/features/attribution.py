"""Which SAE features drive a prediction: attribution patching to the latents (one backward pass: the gradient of
log p(class) at the residual, read along each latent's decoder direction, times minus its activation), checked
against exact patching (the latent removed at every token and the model run again from its layer).

Removing a latent keeps the SAE's error term (:func:`.activations.through_sae`), so the model is otherwise
unchanged and an estimate and its exact value answer the same question.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import VisionTransformer
from .activations import residuals
from .sae import TopKSAE


@dataclass(frozen=True)
class LatentAttribution:
    """Estimated (and, for the latents checked, exact) change of mean log p(class) when each latent is removed."""

    latents: Tensor  # [M] latent indices, by |estimate| descending
    estimate: Tensor  # [M]
    exact: Tensor | None  # [M] (NaN where not checked) or None
    images: int

    def agreement(self) -> float | None:
        """Spearman rank correlation of estimate and exact over the latents checked (None if fewer than three)."""
        if self.exact is None:
            return None
        checked = ~torch.isnan(self.exact)
        if int(checked.sum()) < 3:
            return None
        from ..circuits.trust import spearman

        return spearman(self.estimate[checked], self.exact[checked])


def _log_p(logits: Tensor, labels: Tensor) -> Tensor:
    return logits.log_softmax(-1).gather(-1, labels[:, None])[:, 0]


def attribute_latents(
    model: VisionTransformer, sae: TopKSAE, x: Tensor, labels: Tensor, exact: int = 0, chunk: int = 256
) -> LatentAttribution:
    """Attributions of every latent active on images ``x`` (normalized) to log p(``labels``), averaged over the
    images; ``exact`` > 0 also patches the ``exact`` latents with the largest estimates exactly."""
    model = model.eval()
    layer = sae.config.layer
    with torch.no_grad():
        resid = residuals(model, x, [layer])[layer]
        z = sae.encode(resid)  # [B, T, n]
    resid = resid.detach().requires_grad_(True)
    metric = _log_p(model.forward_from(resid, layer), labels).sum()
    (grad,) = torch.autograd.grad(metric, resid)  # [B, T, d]
    with torch.no_grad():
        along = grad @ sae.directions().T  # [B, T, n]: d metric / d z at each token
        per_image = -(z * along).sum(1)  # [B, n]
        estimate = per_image.mean(0)
        active = (z > 0).any(1).any(0)
        latents = active.nonzero()[:, 0]
        latents = latents[torch.argsort(estimate[latents].abs(), descending=True)]
        est = estimate[latents]
        exact_values = None
        if exact > 0:
            exact_values = torch.full_like(est, float("nan"))
            checked = latents[:exact]
            exact_values[: len(checked)] = exact_latent_effects(model, sae, resid.detach(), z, labels, checked, chunk)
    return LatentAttribution(latents, est, exact_values, len(x))


@torch.no_grad()
def exact_latent_effects(
    model: VisionTransformer, sae: TopKSAE, resid: Tensor, z: Tensor, labels: Tensor, latents: Tensor, chunk: int = 256
) -> Tensor:
    """``[len(latents)]``: the mean over images of log p(label) with the latent removed at every token minus
    without; the forwards of one image and several latents run as one batch."""
    layer = sae.config.layer
    base = _log_p(model.forward_from(resid, layer), labels)  # [B]
    directions = sae.directions()[latents]  # [M, d]
    out = resid.new_zeros(len(latents))
    for b in range(resid.shape[0]):
        for start in range(0, len(latents), chunk):
            part = latents[start : start + chunk]
            writes = z[b][:, part].T[:, :, None] * directions[start : start + chunk][:, None, :]  # [m, T, d]
            patched = resid[b][None] - writes
            lp = _log_p(model.forward_from(patched, layer), labels[b].expand(len(part)))
            out[start : start + len(part)] += lp - base[b]
    return out / resid.shape[0]
