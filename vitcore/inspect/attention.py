"""Attention patterns of a layer's heads, and how far each head looks."""

from __future__ import annotations

import torch
from torch import Tensor

from ..model import VisionTransformer
from .logits import residual_states


@torch.no_grad()
def attention_patterns(model: VisionTransformer, pixels: Tensor, layer: int) -> Tensor:
    """``softmax(q k^T / sqrt(d))`` of every head of ``layer``, ``[B, H, T, T]`` (query, key; token 0 is the
    class token), for normalized ``pixels``."""
    block = model.layers()[layer]
    x = block.norm1(residual_states(model, pixels)[layer])
    heads, hd = block.attn.num_heads, block.attn.head_dim
    if heads == 0:
        return x.new_zeros(x.shape[0], 0, x.shape[1], x.shape[1])
    q, k, _ = block.attn.qkv(x).view(x.shape[0], x.shape[1], 3, heads, hd).permute(2, 0, 3, 1, 4)
    return torch.softmax(q @ k.transpose(-2, -1) * hd**-0.5, dim=-1)


@torch.no_grad()
def patch_attention(model: VisionTransformer, pixels: Tensor, layer: int, head: int, row: int, col: int) -> Tensor:
    """``[B, g, g]``: where the patch at (``row``, ``col``) of the patch grid looks in head ``head`` of ``layer``
    (its attention to every patch; the share it gives the class token is left out)."""
    g = patch_grid(model)
    if not (0 <= row < g and 0 <= col < g):
        raise ValueError(f"patch ({row}, {col}) is outside the {g}x{g} patch grid")
    pattern = attention_patterns(model, pixels, layer)[:, head]
    return pattern[:, 1 + row * g + col, 1:].reshape(-1, g, g)


def patch_grid(model: VisionTransformer) -> int:
    """Patches per side."""
    return model.config.image_size // model.config.patch_size


@torch.no_grad()
def mean_attention_distance(model: VisionTransformer, pixels: Tensor) -> Tensor:
    """``[depth, max heads]``: per head, the mean over images and patch queries of the attention-weighted distance
    (in pixels) from the query patch to the patches it attends to, the class token left out (Dosovitskiy et al.
    2021, fig. 7); NaN where a layer has fewer heads."""
    side, p = patch_grid(model), model.config.patch_size
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centres = torch.stack([ys.flatten(), xs.flatten()], 1).float() * p
    dist = torch.cdist(centres, centres)  # [N, N] between patch centres
    out = torch.full((model.config.depth, max(model.config.heads, default=0)), float("nan"))
    for layer in range(model.config.depth):
        pattern = attention_patterns(model, pixels, layer)[:, :, 1:, 1:]  # patch queries to patch keys
        if pattern.shape[1] == 0:
            continue
        weights = pattern / pattern.sum(-1, keepdim=True).clamp_min(1e-12)  # renormalised without the class token
        out[layer, : pattern.shape[1]] = (weights * dist).sum(-1).mean((0, 2))
    return out
