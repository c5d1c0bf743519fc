"""What one SAE feature sees and pushes: its top-activating images with the patches where it fires, its decoder
direction read as logits (final LayerNorm frozen, as the component view does), what removing it on those images
really changes, and a label from the classes of its top images with their purity.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data import ImageSet, normalize
from ..model import VisionTransformer
from .activations import residuals, through_sae
from .sae import TopKSAE

TOP_IMAGES = 12
LABEL_IMAGES = 20
TOP_CLASSES = 5


@dataclass(frozen=True)
class FeatureIndex:
    """Every latent's strongest activation on every image of an eval set, computed once per model, SAE and data
    so that a feature's view reads its top images without running the model over the whole set again."""

    max_act: Tensor  # [N, n_latents]: the largest activation over the image's tokens
    final_std: Tensor  # [N]: the final LayerNorm's scale at the class token (frozen for direct effects)

    @property
    def frequency(self) -> Tensor:
        """The fraction of images on which each latent fires anywhere, ``[n_latents]``."""
        return (self.max_act > 0).float().mean(0)


@torch.no_grad()
def build_index(model: VisionTransformer, sae: TopKSAE, data: ImageSet, batch_size: int = 256) -> FeatureIndex:
    """The :class:`FeatureIndex` of ``sae`` on ``data``."""
    model, layer = model.eval(), sae.config.layer
    maxes, stds = [], []
    for i in range(0, len(data), batch_size):
        x = normalize(data.images[i : i + batch_size], model.config)
        resid = residuals(model, x, [layer])[layer]
        z = sae.encode(resid)
        maxes.append(z.amax(1))
        final = resid
        for block in model.layers()[layer:]:
            final = block(final)
        stds.append((final[:, 0].var(-1, unbiased=False) + model.norm.eps).sqrt())
    return FeatureIndex(torch.cat(maxes), torch.cat(stds))


def direct_logits(model: VisionTransformer, direction: Tensor, std: Tensor) -> Tensor:
    """``[classes]``: what adding ``direction`` to the class token's final residual does to the logits, the final
    LayerNorm's scale frozen at ``std`` (its centring kept), ignoring every layer in between."""
    weight = model.head.weight * model.norm.weight
    return ((direction - direction.mean()) / std) @ weight.T


@dataclass(frozen=True)
class FeatureView:
    """One feature on one eval set."""

    layer: int
    latent: int
    frequency: float  # fraction of images where it fires anywhere
    top: list[int]  # indices into the data, strongest first
    top_max: list[float]
    patch_maps: Tensor  # [len(top), grid, grid]: the activation at each patch
    cls_acts: list[float]  # the activation at the class token of each top image
    label: str  # the most common class among the top LABEL_IMAGES images
    purity: float  # the share of those images that are of that class
    direct_up: list[tuple[str, float]]  # classes its direction pushes up most, logit per unit activation
    direct_down: list[tuple[str, float]]
    removal_p_true: float  # mean change of p(true class) on the top images when the feature is removed
    removal_flipped: int  # top images whose prediction changes when it is removed


@torch.no_grad()
def feature_view(
    model: VisionTransformer, sae: TopKSAE, data: ImageSet, index: FeatureIndex, latent: int, top_n: int = TOP_IMAGES
) -> FeatureView:
    """The view of ``latent``: reads ``index`` for its top images and runs the model on those images only."""
    if not 0 <= latent < sae.config.n_latents:
        raise ValueError(f"latent {latent} outside this SAE's 0..{sae.config.n_latents - 1}")
    layer = sae.config.layer
    acts = index.max_act[:, latent]
    fired = int((acts > 0).sum())
    order = torch.argsort(acts, descending=True)
    top = [i for i in order[: min(top_n, fired)].tolist()]
    label, purity = feature_label(index, data, latent)
    grid = model.config.image_size // model.config.patch_size
    direction = sae.directions()[latent]
    std = index.final_std[top].mean() if top else index.final_std.mean()
    logits = direct_logits(model, direction, std)
    up, down = torch.argsort(logits, descending=True)[:TOP_CLASSES], torch.argsort(logits)[:TOP_CLASSES]
    if top:
        x = normalize(data.images[top], model.config)
        resid = residuals(model, x, [layer])[layer]
        z = sae.encode(resid)
        maps = z[:, 1:, latent].reshape(len(top), grid, grid)
        base = model.forward_from(resid, layer)

        def remove(codes: Tensor) -> Tensor:
            codes = codes.clone()
            codes[..., latent] = 0
            return codes

        removed = model.forward_from(through_sae(sae, resid, remove), layer)
        labels = data.labels[top]
        p_base = base.softmax(-1).gather(1, labels[:, None])[:, 0]
        p_removed = removed.softmax(-1).gather(1, labels[:, None])[:, 0]
        change = float((p_removed - p_base).mean())
        flipped = int((base.argmax(-1) != removed.argmax(-1)).sum())
        cls_acts = z[:, 0, latent].tolist()
    else:
        maps, change, flipped, cls_acts = torch.zeros(0, grid, grid), 0.0, 0, []
    return FeatureView(
        layer=layer,
        latent=latent,
        frequency=float(index.frequency[latent]),
        top=top,
        top_max=[float(acts[i]) for i in top],
        patch_maps=maps,
        cls_acts=cls_acts,
        label=label,
        purity=purity,
        direct_up=[(data.names[i], float(logits[i])) for i in up.tolist()],
        direct_down=[(data.names[i], float(logits[i])) for i in down.tolist()],
        removal_p_true=change,
        removal_flipped=flipped,
    )


def feature_label(index: FeatureIndex, data: ImageSet, latent: int) -> tuple[str, float]:
    """The most common class among the latent's top ``LABEL_IMAGES`` images, and the share of them it makes up."""
    acts = index.max_act[:, latent]
    fired = int((acts > 0).sum())
    if not fired:
        return "(never fires)", 0.0
    top = torch.argsort(acts, descending=True)[: min(LABEL_IMAGES, fired)]
    cls, count = Counter(data.labels[top].tolist()).most_common(1)[0]
    return data.names[cls], count / len(top)


def features_of_class(index: FeatureIndex, data: ImageSet, wnid: str, n: int = 10) -> list[tuple[int, float]]:
    """The latents that fire most on ``wnid``'s images relative to all images (mean max-activation on the class
    minus on the rest), strongest first."""
    chosen = data.labels == data.class_index(wnid)
    if not bool(chosen.any()):
        raise ValueError(f"no images of {wnid} in this data set")
    inside = index.max_act[chosen].mean(0)
    outside = index.max_act[~chosen].mean(0) if bool((~chosen).any()) else torch.zeros_like(inside)
    gap = inside - outside
    top = torch.argsort(gap, descending=True)[:n]
    return [(int(j), float(gap[j])) for j in top]
