"""LRP relevance (AttnLRP, Achtibat et al. 2024) of heads, MLP chunks and input pixels.

One forward with ``lrp=True`` and one backward from the true class's logit give, as activation x
modified gradient, the relevance of every head's output (before the output projection, summed over
tokens and the head's channels), every neuron chunk (after the GELU, summed over tokens and the
chunk's neurons), every residual stream and every input pixel. The rules live in
:mod:`vitcore.lrp_rules`; the model is the same module as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import RECORDABLE, Activations, VisionTransformer
from .method import MethodOutput, RunOptions
from .task import Task, TaskError


@dataclass
class Relevance:
    """Per image: ``components [B, n]`` (canonical order), ``pixels [B, H, W]`` (summed over channels),
    ``resid [depth, B]`` (summed relevance of the residual stream entering each layer), ``logits [B]`` explained."""

    components: Tensor
    pixels: Tensor
    resid: Tensor
    logits: Tensor


def lrp_relevance(model: VisionTransformer, inputs: Tensor, targets: Tensor, rules: bool = True) -> Relevance:
    """Relevance of the ``targets`` logits; ``rules=False`` gives plain gradient x input instead."""
    x = inputs.detach().clone().requires_grad_(True)
    record = Activations(want=RECORDABLE)
    with torch.enable_grad():
        logits = model.forward_from(model.embed(x), 0, record=record, lrp=rules)
        explained = logits.gather(1, targets[:, None]).squeeze(1)
        tensors = [x, *record.heads, *record.mlp, *record.resid]
        live = [t for t in tensors if t.requires_grad]  # an emptied layer records a constant of zero width
        grads = dict(zip(map(id, live), torch.autograd.grad(explained.sum(), live, allow_unused=True)))
    rel = [t.detach() * g if (g := grads.get(id(t))) is not None else torch.zeros_like(t) for t in tensors]
    depth = model.config.depth
    heads, mlp, resid = rel[1 : 1 + depth], rel[1 + depth : 1 + 2 * depth], rel[1 + 2 * depth :]
    space = model.components
    per_layer = []
    for layer in range(depth):
        per_layer.append(heads[layer].sum(dim=(1, 3)))  # [B, H]
        neurons = mlp[layer].sum(1)  # [B, W]
        per_layer.append(
            torch.stack(
                [neurons[:, list(space.chunk_neurons(layer, c))].sum(1) for c in range(space.chunks_per_layer[layer])],
                1,
            )
            if space.chunks_per_layer[layer]
            else neurons[:, :0]
        )
    return Relevance(
        torch.cat(per_layer, 1), rel[0].sum(1), torch.stack([r.sum(dim=(1, 2)) for r in resid]), explained.detach()
    )


def run(
    model: VisionTransformer,
    task: Task,
    cf: Activations | None,
    metric: str,
    keep: float,
    options: RunOptions,
    batch_size: int = 64,
) -> MethodOutput:
    """Registry entry point: mean absolute relevance per component over the task's images.

    LRP needs no counterfactual (``cf`` is unused); it explains the true class's logit.
    """
    if metric != "logit":
        raise TaskError(f"LRP explains the true class's logit; use metric 'logit', not {metric!r}")
    total = torch.zeros(len(model.components))
    for start in range(0, len(task), batch_size):
        stop = min(start + batch_size, len(task))
        total += lrp_relevance(model, task.inputs[start:stop], task.labels[start:stop]).components.abs().sum(0)
    if options.progress:
        options.progress(1.0)
    return MethodOutput(total / len(task), None, 1.0, 1.0, {"keep": keep})
