"""Patching by forward pre-hooks on the output projections and fc2: a reference that never uses the
model's own mask/counterfactual path, so tests of that path compare against something independent.

A head's output is the slice of ``attn.proj``'s input that belongs to it; a chunk is a slice of
``mlp.fc2``'s input. Component names are parsed here, not through vitcore.components.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import torch


def parse(name: str) -> tuple[int, str, int]:
    layer, kind, index = re.fullmatch(r"L(\d+)\.([HC])(\d+)", name).groups()
    return int(layer), kind, int(index)


def columns(model, layer: int, kind: str, index: int) -> slice:
    if kind == "H":
        hd = model.config.head_dim
        return slice(index * hd, (index + 1) * hd)
    size = model.config.chunk_size
    return slice(index * size, min((index + 1) * size, model.config.mlp_widths[layer]))


def target(model, layer: int, kind: str):
    block = model.blocks[layer]
    return block.attn.proj if kind == "H" else block.mlp.fc2


@contextmanager
def hooks(pairs):
    handles = [module.register_forward_pre_hook(fn) for module, fn in pairs]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def record(model, x) -> dict[tuple[int, str], torch.Tensor]:
    """Inputs of every layer's output projection ('H') and fc2 ('C') on ``x``."""
    seen = {}

    def grab(key):
        def fn(module, args):
            seen[key] = args[0].detach().clone()
        return fn

    pairs = [(target(model, l, k), grab((l, k))) for l in range(model.config.depth) for k in "HC"]
    with hooks(pairs):
        model(x)
    return seen


def patched_logits(model, x, names, corrupt: dict[tuple[int, str], torch.Tensor]) -> torch.Tensor:
    """Logits with every component in ``names`` replaced by its activation in ``corrupt``."""
    by_module: dict[tuple[int, str], list[slice]] = {}
    for name in names:
        layer, kind, index = parse(name)
        by_module.setdefault((layer, kind), []).append(columns(model, layer, kind, index))

    def replace(key, slices):
        def fn(module, args):
            new = args[0].clone()
            for s in slices:
                new[..., s] = corrupt[key][..., s].expand_as(new[..., s])
            return (new,)
        return fn

    with hooks([(target(model, *key), replace(key, slices)) for key, slices in by_module.items()]):
        return model(x)


@contextmanager
def lrp_rule_hooks(model):
    """The AttnLRP rules applied module by module with forward hooks on an unmodified forward:
    LayerNorm recomputed with a detached standard deviation, GELU as out.detach() + (in - in.detach()) * (out / in).detach(),
    the fused qkv output scaled in the backward (1/4 for q and k, 1/2 for v) by x*s + (x*(1-s)).detach()."""

    def norm_hook(module, args, out):
        x = args[0]
        mu = x.mean(-1, keepdim=True)
        sd = ((x - mu).pow(2).mean(-1, keepdim=True) + module.eps).sqrt()
        return (x - mu) / sd.detach() * module.weight + module.bias

    def gelu_hook(module, args, out):
        x = args[0]
        return out.detach() + (x - x.detach()) * (out / (x + 1e-10)).detach()

    def qkv_hook(module, args, out):
        inner = out.shape[-1] // 3
        scale = torch.cat([torch.full((2 * inner,), 0.25), torch.full((inner,), 0.5)])
        return out * scale + (out * (1 - scale)).detach()

    handles = [m.register_forward_hook(norm_hook) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    handles += [b.mlp.act.register_forward_hook(gelu_hook) for b in model.blocks]
    handles += [b.attn.qkv.register_forward_hook(qkv_hook) for b in model.blocks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
