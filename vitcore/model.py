"""A pre-norm Vision Transformer whose heads and MLP neuron chunks are addressable.

One mechanism serves masking, patching and recording. For every component with mask value
``m`` and counterfactual activation ``c`` (zeros when none is given), the forward pass uses
``c + m * (a - c)`` in place of the clean activation ``a``: a head's output before the output
projection, a chunk's neurons after the GELU. ``m = 1`` is the clean model, ``m = 0`` patches
fully, and gradients with respect to ``m`` exist. The module holds no state between calls.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .components import ComponentSpace
from .config import ViTConfig


@dataclass
class Activations:
    """Per-layer component activations: ``heads[l]`` is ``[B, T, H, hd]``, ``mlp[l]`` is ``[B, T, W]``.

    ``resid[l]`` is the residual stream entering layer ``l`` (recorded when asked for).
    """

    heads: list[Tensor] = field(default_factory=list)
    mlp: list[Tensor] = field(default_factory=list)
    resid: list[Tensor] = field(default_factory=list)

    def map(self, fn) -> "Activations":
        return Activations([fn(t) for t in self.heads], [fn(t) for t in self.mlp], [fn(t) for t in self.resid])

    def detach(self) -> "Activations":
        return self.map(lambda t: t.detach())

    def repeat(self, k: int) -> "Activations":
        """Tile along the batch dimension ``k`` times (candidate-major)."""
        return self.map(lambda t: t.repeat(k, *([1] * (t.dim() - 1))))

    def mean(self) -> "Activations":
        """Mean over the batch, keeping a broadcastable batch dimension of 1."""
        return self.map(lambda t: t.mean(0, keepdim=True))

    @staticmethod
    def cat(parts: list["Activations"]) -> "Activations":
        n = len(parts[0].heads)
        return Activations(
            [torch.cat([p.heads[i] for p in parts]) for i in range(n)],
            [torch.cat([p.mlp[i] for p in parts]) for i in range(n)],
            [torch.cat([p.resid[i] for p in parts]) for i in range(len(parts[0].resid))],
        )


def _mix(clean: Tensor, mask: Tensor | None, counterfactual: Tensor | None) -> Tensor:
    if mask is None:
        return clean
    if counterfactual is None:
        return clean * mask
    return counterfactual + mask * (clean - counterfactual)


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    if p == 0.0 or not training:
        return x
    keep = torch.empty(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype).bernoulli_(1 - p)
    return x * keep / (1 - p)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.proj = nn.Linear(num_heads * head_dim, dim)

    def head_outputs(self, x: Tensor) -> Tensor:
        """Per-head attention outputs ``[B, T, H, hd]`` (before the output projection)."""
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return out.transpose(1, 2)

    def project(self, heads: Tensor) -> Tensor:
        return self.proj(heads.flatten(2))


class MLP(nn.Module):
    def __init__(self, dim: int, width: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, width)
        self.fc2 = nn.Linear(width, dim)


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig, layer: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim)
        with warnings.catch_warnings():  # empty (fully pruned) layers have zero-element weights
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.attn = Attention(cfg.dim, cfg.heads[layer], cfg.head_dim)
            self.mlp = MLP(cfg.dim, cfg.mlp_widths[layer])
        self.drop_path = cfg.drop_path * layer / max(cfg.depth - 1, 1)

    def forward(
        self,
        x: Tensor,
        head_mask: Tensor | None = None,
        head_cf: Tensor | None = None,
        neuron_mask: Tensor | None = None,
        mlp_cf: Tensor | None = None,
        record: Activations | None = None,
    ) -> Tensor:
        if self.attn.num_heads:
            heads = self.attn.head_outputs(self.norm1(x))
            if record is not None:
                record.heads.append(heads)
            attn_out = self.attn.project(_mix(heads, head_mask, head_cf))
        else:  # no heads left: the output projection's bias is all that remains
            if record is not None:
                record.heads.append(x.new_zeros(*x.shape[:2], 0, self.attn.head_dim))
            attn_out = self.attn.proj.bias
        x = x + _drop_path(attn_out, self.drop_path, self.training)
        if self.mlp.fc1.out_features:
            act = F.gelu(self.mlp.fc1(self.norm2(x)))
            if record is not None:
                record.mlp.append(act)
            mlp_out = self.mlp.fc2(_mix(act, neuron_mask, mlp_cf))
        else:
            if record is not None:
                record.mlp.append(x.new_zeros(*x.shape[:2], 0))
            mlp_out = self.mlp.fc2.bias
        return x + _drop_path(mlp_out, self.drop_path, self.training)


class VisionTransformer(nn.Module):
    """Pre-norm ViT with CLS token, learned positions and per-layer head counts / MLP widths.

    Call ``model(x, mask=..., counterfactual=...)`` for logits. ``mask`` is a float tensor in
    canonical component order (see :mod:`vitcore.components`), shape ``[n]`` or ``[B, n]``.
    ``counterfactual`` is an :class:`Activations` whose batch is ``B`` or 1; ``None`` means zeros.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.components = ComponentSpace(config)
        cfg = config
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.dim, cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if m.weight.numel():
                    nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def embed(self, x: Tensor) -> Tensor:
        """Residual stream entering layer 0, ``[B, T, dim]``.

        Images of another size than ``config.image_size`` (a multiple of the patch size) get the
        position embeddings resampled bicubically to their patch grid (low-resolution training).
        """
        x = self.patch_embed(x)
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.positions(grid)

    def positions(self, grid: tuple[int, int] | torch.Size) -> Tensor:
        """Position embeddings ``[1, 1 + gh * gw, dim]`` for a patch grid of ``grid``."""
        side = self.config.image_size // self.config.patch_size
        if tuple(grid) == (side, side):
            return self.pos_embed
        patches = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=tuple(grid), mode="bicubic", align_corners=False, antialias=True)
        return torch.cat([self.pos_embed[:, :1], patches.flatten(2).transpose(1, 2)], dim=1)

    def unembed(self, resid: Tensor) -> Tensor:
        return self.head(self.norm(resid[:, 0]))

    def forward_from(
        self,
        resid: Tensor,
        start_layer: int = 0,
        mask: Tensor | None = None,
        counterfactual: Activations | None = None,
        record: Activations | None = None,
        record_resid: bool = False,
    ) -> Tensor:
        """Run layers ``start_layer..depth-1`` on a residual stream and return logits."""
        space = self.components
        if mask is not None:
            mask = mask.to(resid.dtype)
            if mask.shape[-1] != len(space):
                raise ValueError(f"mask has {mask.shape[-1]} entries, this model has {len(space)} components")
            mask = mask if mask.dim() == 2 else mask.unsqueeze(0)
        for layer in range(start_layer, len(self.blocks)):
            if record is not None and record_resid:
                record.resid.append(resid)
            head_mask = neuron_mask = head_cf = mlp_cf = None
            if mask is not None:
                head_mask = mask[:, space.head_slices[layer]][:, None, :, None]
                neuron_mask = space.neuron_mask(mask[:, space.chunk_slices[layer]], layer)[:, None, :]
                if counterfactual is not None:
                    head_cf, mlp_cf = counterfactual.heads[layer], counterfactual.mlp[layer]
            resid = self.blocks[layer](resid, head_mask, head_cf, neuron_mask, mlp_cf, record)
        return self.unembed(resid)

    def forward(self, x: Tensor, mask: Tensor | None = None, counterfactual: Activations | None = None) -> Tensor:
        return self.forward_from(self.embed(x), 0, mask, counterfactual)

    def run_with_cache(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        counterfactual: Activations | None = None,
        resid: bool = False,
    ) -> tuple[Tensor, Activations]:
        """Logits plus every component's clean activations (and residuals if ``resid``)."""
        record = Activations()
        logits = self.forward_from(self.embed(x), 0, mask, counterfactual, record, record_resid=resid)
        return logits, record

    def clone(self) -> "VisionTransformer":
        """An independent copy (for per-session edits of a shared model)."""
        copy = VisionTransformer(self.config)
        copy.load_state_dict(self.state_dict())
        return copy.train(self.training)
