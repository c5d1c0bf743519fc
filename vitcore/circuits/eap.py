"""EAP (attribution patching, Syed et al. 2023) over components or edges.

score_c = (a_c_corrupt - a_c_clean) . dD/da_c at the clean run, summed over tokens and features,
averaged over images, where D is a damage metric. Since the patched activation is
``c + m (a - c)``, that equals ``-dD/dm_c`` at ``m = 1``: one backward gives every component.
For an edge u -> v the same holds with v's input ``x_v - (1 - m_uv)(out_u - corrupt_u)``:
one backward gives every edge.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..model import Activations, VisionTransformer
from .method import MethodOutput, RunOptions
from .metrics import damage_fn
from .patching import Patcher
from .task import Task

EDGE_BATCH = 16  # images per edge forward: what each node writes is kept for the backward


def mask_gradient(patcher: Patcher, metric: str, mask: Tensor, batch_size: int = 64) -> Tensor:
    """Sum over images of dD/dm at ``mask`` (``[size]``), batched."""
    damage = damage_fn(metric)
    task = patcher.task
    total = torch.zeros(patcher.size)
    for start in range(0, len(task), batch_size):
        stop = min(start + batch_size, len(task))
        m = mask.detach().clone().requires_grad_(True)
        logits = patcher.logits(slice(start, stop), m)
        d = damage(logits, task.reference_logits[start:stop], task.labels[start:stop]).sum()
        (grad,) = torch.autograd.grad(d, m)
        total += grad
    return total


def eap_scores(
    model: VisionTransformer,
    task: Task,
    cf: Activations | None,
    metric: str = "ce",
    batch_size: int = 64,
    granularity: str = "node",
    lrp: bool | str = False,
) -> Tensor:
    """Estimated damage increase when each component (or edge) is patched (higher = more important).

    ``lrp`` takes the gradient through a rule set of :mod:`vitcore.lrp_rules` instead of the plain one: RelP.
    """
    patcher = Patcher(model, task, cf, granularity, lrp)
    batch_size = min(batch_size, EDGE_BATCH) if granularity == "edge" else batch_size
    return -mask_gradient(patcher, metric, torch.ones(patcher.size), batch_size) / len(task)


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, keep: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point: scores ranked by magnitude (a component whose patching moves the metric either way
    matters).
    """
    with torch.enable_grad():
        scores = eap_scores(model, task, cf, metric, granularity=options.granularity).abs()
    if options.progress:
        options.progress(1.0)
    return MethodOutput(scores, None, 1.0, 1.0, {"keep": keep})
