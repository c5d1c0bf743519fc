"""AtP* (Kramár, Lieberum, Shah, Nanda 2024): attribution patching with the QK fix and GradDrop.

AtP* mends two failure modes of attribution patching (EAP here). *Attention saturation*: patching a head's
query or key can move its softmax far along a flat or steep stretch, where the tangent is wrong; AtP*
recomputes that head's attention pattern exactly and linearises only after it. Over edges, an edge into a
head's query or key input is such a patch: :func:`qk_fixed_edge_scores` gives it ``sum G * (A' - A)``, with
``A'`` the head's pattern recomputed from the patched input (its LayerNorm included) and ``G`` the gradient of
the metric with respect to the pattern at the clean run; every other edge keeps EAP's score. Over components,
a component is a head's output (taken after its softmax) or an MLP chunk, so none is a query or key and the
fix has nothing to act on. *Cancellation*: a component's effects through different later layers can cancel in
the gradient although each is large. GradDrop repeats the backward pass once per layer ``l`` with the gradient
through layer ``l``'s attention and MLP dropped (the residual stream passes it on unchanged) and adds the
magnitudes::

    score_c = sum_l |AtP_l(c)| / (L - 1)

where ``AtP_l`` is attribution patching with layer ``l``'s gradient dropped. For ``l`` before ``c``'s layer
the term is plain ``|AtP(c)|``; for ``c``'s own layer it is 0 (hence ``L - 1``). GradDrop is applied over
components only; over edges AtP* here is the QK fix."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..edges import EdgeStream
from ..model import Activations, VisionTransformer
from .corruptions import corrupt_outputs
from .eap import eap_scores
from .method import MethodOutput, RunOptions
from .metrics import damage_fn
from .task import Task

UPSTREAM_PER_BATCH = 8  # patched inputs whose attention patterns are recomputed at once


@contextmanager
def gradient_dropped(block: nn.Module):
    """Within the block: its output's value unchanged, but no gradient through its attention and MLP."""
    handle = block.register_forward_hook(lambda module, args, out: args[0] + (out - args[0]).detach())
    try:
        yield
    finally:
        handle.remove()


def grad_drop_scores(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str = "ce", progress=None
) -> Tensor:
    """GradDrop's score per component (see the module docstring), on a private copy of ``model`` (the hooks never
    touch the caller's)."""
    own = model.clone().eval()
    depth = model.config.depth
    total = torch.zeros(len(model.components))
    for layer, block in enumerate(own.layers()):
        with gradient_dropped(block), torch.enable_grad():
            total += eap_scores(own, task, cf, metric).abs()
        if progress:
            progress((layer + 1) / depth)
    return total / max(depth - 1, 1)


def pattern_gradients(model: VisionTransformer, task: Task, metric: str) -> tuple[list[Tensor], list[Tensor]]:
    """Per layer, the clean residual entering it ``[B, T, dim]`` and the gradient of the mean damage with respect
    to each head's attention pattern at the clean run, ``[B, H, T, T]`` (from the gradient at the head's output:
    the output is the pattern times the values)."""
    damage = damage_fn(metric)
    with torch.enable_grad():
        logits, acts = model.run_with_cache(task.inputs, resid=True)
        d = damage(logits, task.reference_logits, task.labels).sum() / len(task)
        at_heads = torch.autograd.grad(d, acts.heads)
    grads = []
    with torch.no_grad():
        for layer, block in enumerate(model.layers()):
            _, _, v = _qkv(block, acts.resid[layer].detach())
            grads.append(torch.einsum("bthe,bhse->bhts", at_heads[layer], v))
    return [r.detach() for r in acts.resid], grads


def _qkv(block, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A block's queries, keys and values ``[..., H, T, hd]`` for residual ``x`` ``[..., T, dim]``."""
    attn = block.attn
    qkv = attn.qkv(block.norm1(x)).unflatten(-1, (3, attn.num_heads, attn.head_dim))  # [..., T, 3, H, hd]
    q, k, v = qkv.movedim(-3, 0).unbind(0)
    return q.transpose(-3, -2), k.transpose(-3, -2), v.transpose(-3, -2)


@torch.no_grad()
def qk_fixed_edge_scores(model: VisionTransformer, task: Task, cf: Activations | None, metric: str) -> Tensor:
    """EAP's edge scores with every edge into a query or key replaced by its QK-fixed estimate (see the module
    docstring), averaged over images; signed (estimated damage increase when the edge is patched)."""
    with torch.enable_grad():
        scores = eap_scores(model, task, cf, metric, granularity="edge")
    space = model.edges
    stream = EdgeStream(space, space.ones(), corrupt_outputs(model, cf))
    model(task.inputs, edges=stream)  # the clean run, recording what each node wrote against its corruption
    deltas = torch.cat([d[:, 0] for d in stream.deltas])  # [1 + components, B, T, dim]
    resid, grads = pattern_gradients(model, task, metric)
    for layer, block in enumerate(model.layers()):
        heads = block.attn.num_heads
        if not heads:
            continue
        group, x, g = space.attn_group(layer), resid[layer], grads[layer]
        q, k, _ = _qkv(block, x)
        scale = q.shape[-1] ** -0.5
        clean = torch.softmax(q @ k.transpose(-2, -1) * scale, -1)
        for start in range(0, group.n_upstream, UPSTREAM_PER_BATCH):
            ups = range(start, min(start + UPSTREAM_PER_BATCH, group.n_upstream))
            q_p, k_p, _ = _qkv(block, x - deltas[start : ups.stop])  # [u, B, H, T, hd]
            for which, pattern in (
                (0, torch.softmax(q_p @ k.transpose(-2, -1) * scale, -1)),  # the patched query, clean keys
                (1, torch.softmax(q @ k_p.transpose(-2, -1) * scale, -1)),  # clean queries, the patched key
            ):
                est = torch.einsum("bhts,ubhts->uh", g, pattern - clean)  # [u, H]
                for h in range(heads):
                    first = group.start + (which * heads + h) * group.n_upstream
                    scores[first + start : first + ups.stop] = est[:, h]
    return scores


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, keep: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point: over components GradDrop's score (a sum of magnitudes); over edges the magnitude of
    the QK-fixed estimate."""
    depth = model.config.depth
    if options.granularity == "edge":
        scores = qk_fixed_edge_scores(model, task, cf, metric).abs()
        if options.progress:
            options.progress(1.0)
        return MethodOutput(scores, None, 3.0, 2.0, {"keep": keep})
    scores = grad_drop_scores(model, task, cf, metric, options.progress)
    return MethodOutput(scores, None, float(depth), float(depth), {"keep": keep})
