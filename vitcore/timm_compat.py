"""Conversion to and from timm's ``VisionTransformer``: the same parameter names, identical logits.

timm is an optional dependency (``requirements-dev.txt``); only :func:`to_timm` and converting a
timm *module* need it. Supported: class-token pooling, pre-norm blocks without layer scale,
q/k norm, register tokens or a pre-norm, and GELU MLPs, which is timm's plain ViT.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from .config import ViTConfig
from .errors import VitcoreError
from .model import VisionTransformer


class TimmConversionError(VitcoreError):
    """A timm model or state dict this architecture cannot represent."""


def _config_from_timm_module(model: Any, **overrides: Any) -> ViTConfig:
    # model: a timm VisionTransformer, read by duck typing (timm is an optional dependency)
    problems = []
    if getattr(model, "global_pool", "token") != "token":
        problems.append(f"global_pool {model.global_pool!r} (needs 'token')")
    if getattr(model, "num_prefix_tokens", 1) != 1 or not getattr(model, "has_class_token", True):
        problems.append("register tokens or no class token")
    if getattr(model, "no_embed_class", False):
        problems.append("no_embed_class=True")
    if not isinstance(getattr(model, "norm_pre", nn.Identity()), nn.Identity) or not isinstance(
        getattr(model, "fc_norm", nn.Identity()), nn.Identity
    ):
        problems.append("a pre-norm or fc_norm")
    for i, blk in enumerate(model.blocks):
        if not (isinstance(blk.ls1, nn.Identity) and isinstance(blk.ls2, nn.Identity)):
            problems.append(f"layer scale in block {i}")
        if not (isinstance(blk.attn.q_norm, nn.Identity) and isinstance(blk.attn.k_norm, nn.Identity)):
            problems.append(f"q/k norm in block {i}")
        if not isinstance(blk.mlp.act, nn.GELU) or getattr(blk.mlp.act, "approximate", "none") != "none":
            problems.append(f"a non-GELU activation in block {i}")
        if blk.attn.qkv.bias is None:
            problems.append(f"qkv without bias in block {i}")
    if problems:
        raise TimmConversionError("this timm model cannot be converted: " + "; ".join(sorted(set(problems))))
    first = model.blocks[0]
    cfg = dict(
        image_size=model.patch_embed.img_size[0],
        patch_size=model.patch_embed.patch_size[0],
        in_chans=model.patch_embed.proj.in_channels,
        dim=model.embed_dim,
        head_dim=first.attn.head_dim,
        heads=[b.attn.num_heads for b in model.blocks],
        mlp_widths=[b.mlp.fc1.out_features for b in model.blocks],
        num_classes=model.num_classes,
        norm_eps=model.norm.eps,
    )
    return ViTConfig(**{**cfg, **overrides})


def _config_from_state_dict(state: dict[str, Tensor], num_heads: int, norm_eps: float, **overrides: Any) -> ViTConfig:
    try:
        proj = state["patch_embed.proj.weight"]
        dim, in_chans, patch = proj.shape[0], proj.shape[1], proj.shape[2]
        tokens = state["pos_embed"].shape[1]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        widths = [state[f"blocks.{i}.mlp.fc1.weight"].shape[0] for i in range(depth)]
        qkv_rows = [state[f"blocks.{i}.attn.qkv.weight"].shape[0] for i in range(depth)]
        num_classes = state["head.weight"].shape[0]
    except (KeyError, IndexError, ValueError) as e:
        raise TimmConversionError(f"not a timm ViT state dict: {e}") from e
    side = round((tokens - 1) ** 0.5)
    head_dim = qkv_rows[0] // (3 * num_heads)
    cfg = dict(
        image_size=side * patch,
        patch_size=patch,
        in_chans=in_chans,
        dim=dim,
        head_dim=head_dim,
        heads=[r // (3 * head_dim) for r in qkv_rows],
        mlp_widths=widths,
        num_classes=num_classes,
        norm_eps=norm_eps,
    )
    return ViTConfig(**{**cfg, **overrides})


def from_timm(
    model_or_state_dict: nn.Module | dict[str, Tensor], num_heads: int = 12, norm_eps: float = 1e-6, **config: Any
) -> VisionTransformer:
    """A vitcore model with a timm ViT's weights (a module, or its state dict plus ``num_heads``).

    ``config`` overrides fields of the derived :class:`ViTConfig` (e.g. ``mean`` and ``std``).
    A state dict does not record LayerNorm's eps: timm's default, 1e-6, is assumed.
    """
    if isinstance(model_or_state_dict, nn.Module):
        cfg = _config_from_timm_module(model_or_state_dict, **config)
        state = model_or_state_dict.state_dict()
    else:
        state = model_or_state_dict
        cfg = _config_from_state_dict(state, num_heads, norm_eps, **config)
    try:
        return VisionTransformer.from_state_dict(cfg, {k: v.detach().clone() for k, v in state.items()}).eval()
    except RuntimeError as e:
        raise TimmConversionError(f"timm weights do not fit the derived config: {str(e).splitlines()[0]}") from e


def to_timm(model: VisionTransformer) -> nn.Module:
    """timm's ``VisionTransformer`` with this model's weights; needs uniform layers (an unpruned model)."""
    import timm.models.vision_transformer as tvit

    cfg = model.config
    if len(set(cfg.heads)) != 1 or len(set(cfg.mlp_widths)) != 1 or 0 in cfg.heads or 0 in cfg.mlp_widths:
        raise TimmConversionError(
            "timm's ViT needs the same head count and MLP width in every layer; a pruned model has uneven layers"
        )
    if cfg.dim % cfg.heads[0] or cfg.dim // cfg.heads[0] != cfg.head_dim:
        raise TimmConversionError(
            f"timm derives head_dim as dim / heads = {cfg.dim / cfg.heads[0]:g}, this model has {cfg.head_dim}"
        )
    out = tvit.VisionTransformer(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        in_chans=cfg.in_chans,
        num_classes=cfg.num_classes,
        embed_dim=cfg.dim,
        depth=cfg.depth,
        num_heads=cfg.heads[0],
        mlp_ratio=cfg.mlp_widths[0] / cfg.dim,
        qkv_bias=True,
        global_pool="token",
        norm_layer=partial(nn.LayerNorm, eps=cfg.norm_eps),
    )
    with torch.no_grad():
        out.load_state_dict(model.state_dict(), strict=True)
    return out.eval()
