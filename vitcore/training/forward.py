"""The training forward pass: patch dropout between the embedding and the blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..model import VisionTransformer


def drop_patches(tokens: Tensor, keep: float) -> Tensor:
    """Keep a random ``keep`` fraction of each image's patch tokens; the CLS token (index 0) always stays."""
    if keep >= 1.0:
        return tokens
    batch, n_tokens, dim = tokens.shape
    n_keep = max(1, round((n_tokens - 1) * keep))
    index = torch.rand(batch, n_tokens - 1, device=tokens.device).argsort(dim=1)[:, :n_keep] + 1
    kept = tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, dim))
    return torch.cat([tokens[:, :1], kept], dim=1)


class TrainingForward(nn.Module):
    """Wraps a model for training (and for DDP): ``forward(x, patch_keep)`` returns logits."""

    def __init__(self, model: VisionTransformer):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, patch_keep: float = 1.0) -> Tensor:
        return self.model.forward_from(drop_patches(self.model.embed(x), patch_keep))
