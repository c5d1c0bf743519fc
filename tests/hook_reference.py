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


def _norm_rule(module, args, out):
    x = args[0]
    mu = x.mean(-1, keepdim=True)
    sd = ((x - mu).pow(2).mean(-1, keepdim=True) + module.eps).sqrt()
    return (x - mu) / sd.detach() * module.weight + module.bias


def _gelu_rule(module, args, out):
    x = args[0]
    return out.detach() + (x - x.detach()) * (out / (x + 1e-10)).detach()


@contextmanager
def lrp_rule_hooks(model):
    """The AttnLRP rules applied module by module with forward hooks on an unmodified forward:
    LayerNorm recomputed with a detached standard deviation,
    GELU as out.detach() + (in - in.detach()) * (out / in).detach(),
    the fused qkv output scaled in the backward (1/4 for q and k, 1/2 for v) by x*s + (x*(1-s)).detach()."""

    def qkv_hook(module, args, out):
        inner = out.shape[-1] // 3
        scale = torch.cat([torch.full((2 * inner,), 0.25), torch.full((inner,), 0.5)])
        return out * scale + (out * (1 - scale)).detach()

    handles = [m.register_forward_hook(_norm_rule) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    handles += [b.mlp.act.register_forward_hook(_gelu_rule) for b in model.blocks]
    handles += [b.attn.qkv.register_forward_hook(qkv_hook) for b in model.blocks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def mixed_logits(model, x, mask, corrupt, rules: str | None = None) -> torch.Tensor:
    """Logits with every component's activation replaced by ``c + m (a - c)`` (``m`` from ``mask`` in the order of
    ``model.components.names``, ``c`` from ``corrupt``), by forward pre-hooks on ``attn.proj`` and ``mlp.fc2``.

    ``rules="cp-lrp"`` adds RelP's propagation rules by hooks: LayerNorm with a detached standard deviation, GELU
    with the identity rule, and the AH-rule: each ``attn.proj`` input recomputed from the ``qkv`` output with the
    attention weights detached."""
    slices: dict[tuple[int, str], list[tuple[slice, int]]] = {}
    for i, name in enumerate(model.components.names):
        layer, kind, index = parse(name)
        slices.setdefault((layer, kind), []).append((columns(model, layer, kind, index), i))
    qkv_out = {}

    def keep_qkv(layer):
        def fn(module, args, out):
            qkv_out[layer] = out

        return fn

    def mix(key):
        layer, kind = key

        def fn(module, args):
            a = args[0]
            if rules == "cp-lrp" and kind == "H":
                B, T, _ = a.shape
                H, hd = model.blocks[layer].attn.num_heads, model.config.head_dim
                q, k, v = qkv_out[layer].view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
                pattern = torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, dim=-1).detach()
                a = (pattern @ v).transpose(1, 2).reshape(B, T, H * hd)
            parts = []
            for s, i in sorted(slices[key], key=lambda p: p[0].start):
                c = corrupt[key][..., s]
                parts.append(c + mask[i] * (a[..., s] - c))
            return (torch.cat(parts, -1),)

        return fn

    handles = []
    if rules == "cp-lrp":
        handles += [m.register_forward_hook(_norm_rule) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
        handles += [b.mlp.act.register_forward_hook(_gelu_rule) for b in model.blocks]
        handles += [b.attn.qkv.register_forward_hook(keep_qkv(l)) for l, b in enumerate(model.blocks)]
    elif rules is not None:
        raise ValueError(rules)
    try:
        with hooks([(target(model, *key), mix(key)) for key in slices]):
            return model(x)
    finally:
        for h in handles:
            h.remove()


def hook_attribution_patching(model, task, metric: str, rules: str | None = None, dropped_layer: int | None = None):
    """-dD/dm at m = 1, averaged over images, with the mask applied by forward pre-hooks (never the model's own
    mask path); with ``rules``, RelP's propagation rules put on by hooks as well; with ``dropped_layer``, that
    layer's attention and MLP outputs detached by forward hooks (their values unchanged: GradDrop's pass)."""
    from vitcore.circuits.corruptions import corrupted_inputs
    from vitcore.circuits.metrics import damage_fn

    corrupt = record(model, corrupted_inputs(model, task, "resample"))
    mask = torch.ones(len(model.components), requires_grad=True)
    handles = []
    if dropped_layer is not None:
        block = model.blocks[dropped_layer]
        handles = [m.register_forward_hook(lambda module, args, out: out.detach()) for m in (block.attn, block.mlp)]
    try:
        logits = mixed_logits(model, task.inputs, mask, corrupt, rules)
    finally:
        for handle in handles:
            handle.remove()
    torch.testing.assert_close(logits, task.reference_logits, atol=1e-5, rtol=1e-5)  # the forward is unchanged
    damage = damage_fn(metric)(logits, task.reference_logits, task.labels).sum()
    (grad,) = torch.autograd.grad(damage, mask)
    return -grad / len(task)
