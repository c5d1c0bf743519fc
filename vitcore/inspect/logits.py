"""The residual stream read as logits: the logit lens, and direct logit attribution of every component."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import VisionTransformer


@torch.no_grad()
def residual_states(model: VisionTransformer, pixels: Tensor) -> list[Tensor]:
    """The residual stream after the embedding and after every layer: ``depth + 1`` tensors ``[B, T, dim]``."""
    x = model.embed(pixels)
    states = [x]
    for block in model.layers():
        x = block(x)
        states.append(x)
    return states


@torch.no_grad()
def logit_lens(model: VisionTransformer, pixels: Tensor) -> Tensor:
    """``[depth + 1, B, classes]``: the final norm and head applied to the class token's residual after the
    embedding and after every layer (the last row is the model's logits)."""
    return torch.stack([model.unembed(s) for s in residual_states(model, pixels)])


@dataclass
class LogitAttribution:
    """Each part of the class token's final residual, read as logits through the final LayerNorm with its scale
    frozen at the clean run: ``embed`` + the heads + the chunks + the biases + ``constant`` = the logits."""

    embed: Tensor  # [B, classes]: class token and its position embedding
    heads: list[Tensor]  # per layer [B, H_l, classes]
    chunks: list[Tensor]  # per layer [B, C_l, classes]
    biases: Tensor  # [B, classes]: every attention and MLP output bias
    constant: Tensor  # [classes]: the LayerNorm's shift and the head's bias

    def total(self) -> Tensor:
        parts = [self.embed, self.biases, self.constant.expand_as(self.embed)]
        parts += [h.sum(1) for h in self.heads] + [c.sum(1) for c in self.chunks]
        return torch.stack(parts).sum(0)


@torch.no_grad()
def direct_logit_attribution(model: VisionTransformer, pixels: Tensor) -> LogitAttribution:
    """What every component writes into the class token's residual, mapped to logits linearly.

    The final LayerNorm is ``gamma (x - mean x) / std + beta``; with ``std`` frozen at the clean run (the usual
    convention), it is linear in ``x``, so the logits split exactly into one term per part of ``x``."""
    cfg = model.config
    states = residual_states(model, pixels)
    final = states[-1][:, 0]
    std = (final.var(-1, unbiased=False, keepdim=True) + model.norm.eps).sqrt()  # [B, 1], frozen
    weight = model.head.weight * model.norm.weight  # [classes, dim]: gamma folded into the head

    def read(part: Tensor) -> Tensor:  # part [B, ..., dim] -> [B, ..., classes]
        centred = part - part.mean(-1, keepdim=True)
        scale = std.view(std.shape[0], *([1] * (part.dim() - 2)), 1)
        return (centred / scale) @ weight.T

    embed = model.embed(pixels)[:, 0]
    heads, chunks, biases = [], [], torch.zeros_like(final)
    for layer, block in enumerate(model.layers()):
        x = states[layer]
        if block.attn.num_heads:
            per_head = block.attn.head_outputs(block.norm1(x))[:, 0]  # [B, H, hd] at the class token
            w = block.attn.proj.weight.view(cfg.dim, block.attn.num_heads, block.attn.head_dim)
            heads.append(read(torch.einsum("bhe,dhe->bhd", per_head, w)))
        else:
            heads.append(final.new_zeros(final.shape[0], 0, model.head.out_features))
        biases = biases + block.attn.proj.bias
        mid = x + block.attn(block.norm1(x))
        width = block.mlp.fc1.out_features
        if width:
            act = block.mlp.act(block.mlp.fc1(block.norm2(mid)))[:, 0]  # [B, W]
            size = cfg.chunk_size
            n = -(-width // size)
            pad = n * size - width
            act = torch.nn.functional.pad(act, (0, pad)).view(-1, n, size)
            w = torch.nn.functional.pad(block.mlp.fc2.weight, (0, pad)).view(cfg.dim, n, size)
            chunks.append(read(torch.einsum("bce,dce->bcd", act, w)))
        else:
            chunks.append(final.new_zeros(final.shape[0], 0, model.head.out_features))
        biases = biases + block.mlp.fc2.bias
    constant = model.head.weight @ model.norm.bias + model.head.bias
    return LogitAttribution(read(embed), heads, chunks, read(biases), constant)
