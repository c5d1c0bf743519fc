"""Conversion to and from timm's ``VisionTransformer``: the same parameter names, identical logits.

timm is an optional dependency (``requirements-dev.txt``); only :func:`to_timm` and converting a
timm *module* need it. Supported: timm's plain ``VisionTransformer`` with a class token and class-token
pooling, pre-norm blocks and GELU MLPs, square images and patches, any depth, width, head count and MLP
ratio, with or without qkv bias (an absent bias becomes zeros) and with or without layer scale (folded
into the projection before it, which is the same function). Anything else is refused in one line that
names the feature.
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


def _is_identity(module: Any) -> bool:
    return module is None or isinstance(module, nn.Identity)


def unsupported_features(model: Any) -> list[str]:
    """What a timm model has that this architecture cannot represent (empty: it converts exactly)."""
    kind = type(model).__name__
    if "Distilled" in kind or getattr(model, "dist_token", None) is not None:
        return ["a distillation token"]
    if kind != "VisionTransformer" or not hasattr(model, "blocks"):
        return [f"architecture {kind} (only timm's VisionTransformer)"]
    problems = []
    if getattr(model, "cls_token", None) is None or not getattr(model, "has_class_token", True):
        problems.append("no class token")
    if getattr(model, "reg_token", None) is not None or getattr(model, "num_prefix_tokens", 1) != 1:
        problems.append("register tokens")
    if getattr(model, "global_pool", "token") != "token" or not _is_identity(getattr(model, "attn_pool", None)):
        problems.append(f"{model.global_pool!r} pooling (needs the class token)")
    if getattr(model, "pos_embed", None) is None:
        problems.append("no position embedding")
    if getattr(model, "no_embed_class", False):
        problems.append("a class token without position embedding")
    if not _is_identity(getattr(model, "norm_pre", None)):
        problems.append("a pre-norm")
    if not _is_identity(getattr(model, "fc_norm", None)):
        problems.append("an fc_norm")
    embed = model.patch_embed
    if not _is_identity(getattr(embed, "norm", None)):
        problems.append("a patch-embedding norm")
    if embed.img_size is None or embed.img_size[0] != embed.img_size[1] or embed.patch_size[0] != embed.patch_size[1]:
        problems.append("non-square images or patches")
    if getattr(model, "dynamic_img_size", False):
        problems.append("dynamic image size")
    for blk in model.blocks:
        if type(blk).__name__ != "Block":
            problems.append(f"{type(blk).__name__} blocks (post-norm or parallel)")
            continue
        attn, mlp = blk.attn, blk.mlp
        if not (_is_identity(getattr(attn, "q_norm", None)) and _is_identity(getattr(attn, "k_norm", None))):
            problems.append("q/k norm")
        if not _is_identity(getattr(attn, "norm", None)) or not _is_identity(getattr(mlp, "norm", None)):
            problems.append("a norm inside attention or the MLP")
        if type(mlp).__name__ != "Mlp":
            problems.append(f"a {type(mlp).__name__} MLP (SwiGLU or gated)")
        elif not isinstance(mlp.act, nn.GELU) or getattr(mlp.act, "approximate", "none") != "none":
            problems.append(f"a {type(mlp.act).__name__} activation (needs exact GELU)")
        for ls in (blk.ls1, blk.ls2):
            if not _is_identity(ls) and not hasattr(ls, "gamma"):
                problems.append("a layer scale that is not a per-channel gamma")
    eps = {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    if len(eps) > 1:
        problems.append(f"LayerNorms with different eps {sorted(eps)}")
    return sorted(set(problems))


def _config_from_timm_module(model: Any, **overrides: Any) -> ViTConfig:
    # model: a timm VisionTransformer, read by duck typing (timm is an optional dependency)
    problems = unsupported_features(model)
    if problems:
        raise TimmConversionError("this timm model cannot be converted: it has " + "; ".join(problems))
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
        state = exact_state_dict(model_or_state_dict)
    else:
        state = model_or_state_dict
        cfg = _config_from_state_dict(state, num_heads, norm_eps, **config)
    try:
        return VisionTransformer.from_state_dict(cfg, {k: v.detach().clone() for k, v in state.items()}).eval()
    except RuntimeError as e:
        raise TimmConversionError(f"timm weights do not fit the derived config: {str(e).splitlines()[0]}") from e


def exact_state_dict(model: Any) -> dict[str, Tensor]:
    """A supported timm ViT's weights under this architecture's names: absent qkv and patch biases as zeros,
    layer scale folded into the projection it scales (``gamma * (W x + b) = (gamma W) x + gamma b``)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if "patch_embed.proj.bias" not in state:
        state["patch_embed.proj.bias"] = torch.zeros(model.patch_embed.proj.out_channels)
    for i, blk in enumerate(model.blocks):
        p = f"blocks.{i}."
        if blk.attn.qkv.bias is None:
            state[p + "attn.qkv.bias"] = torch.zeros(blk.attn.qkv.out_features)
        for ls, proj in (("ls1", "attn.proj"), ("ls2", "mlp.fc2")):
            gamma = state.pop(p + ls + ".gamma", None)
            if gamma is not None:
                state[p + proj + ".weight"] = state[p + proj + ".weight"] * gamma[:, None]
                state[p + proj + ".bias"] = state[p + proj + ".bias"] * gamma
    return state


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
