"""What the app's Shortcut page draws: example images of other classes, and where a head looks on them."""

from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor

from ..data import ImageSet, normalize
from ..inspect.attention import attention_patterns, patch_grid
from ..inspect.report import check_component, overlay, side_by_side
from ..model import VisionTransformer


def example_images(data: ImageSet, target: str, n: int = 6, seed: int = 0) -> list[int]:
    """Indices of ``n`` images of ``n`` different classes other than ``target``, drawn by ``seed``."""
    t = data.class_index(target)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    picked: list[int] = []
    seen: set[int] = set()
    for i in order:
        label = int(data.labels[i])
        if label != t and label not in seen:
            picked.append(i)
            seen.add(label)
        if len(picked) == n:
            break
    return picked


def enlarged(image: Tensor, scale: int = 3) -> Image.Image:
    """A uint8 ``[3, H, W]`` image as a PIL image ``scale`` times larger, pixels kept sharp."""
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    return pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)


@torch.no_grad()
def class_token_attention(model: VisionTransformer, images: Tensor, name: str) -> tuple[Tensor, Image.Image]:
    """Head ``name``'s attention from the class token to every patch on uint8 ``images``, ``[B, g, g]``, and the
    images with it drawn over them in red, side by side."""
    component = check_component(model, name)
    if component.kind != "head":
        raise ValueError(f"{name} is an MLP chunk; attention belongs to heads")
    pattern = attention_patterns(model, normalize(images, model.config), component.layer)[:, component.index]
    g = patch_grid(model)
    weights = pattern[:, 0, 1:].reshape(-1, g, g)
    return weights, side_by_side([overlay(img, w, scale=3) for img, w in zip(images, weights)])
