"""EAP (attribution patching, Syed et al. 2023) at component level.

score_c = (a_c_corrupt - a_c_clean) . dD/da_c at the clean run, summed over tokens and features,
averaged over images, where D is a damage metric. Since the patched activation is
``c + m (a - c)``, that equals ``-dD/dm_c`` at ``m = 1``: one backward gives every component.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..model import Activations, VisionTransformer
from .corruptions import batch_of
from .metrics import damage_fn
from .method import MethodOutput, RunOptions
from .task import Task


def mask_gradient(model: VisionTransformer, task: Task, cf: Activations | None, metric: str, mask: Tensor, batch_size: int = 64) -> Tensor:
    """Sum over images of dD/dm at ``mask`` (``[n]``), batched."""
    damage = damage_fn(metric)
    total = torch.zeros(len(model.components))
    for start in range(0, len(task), batch_size):
        stop = min(start + batch_size, len(task))
        m = mask.detach().clone().requires_grad_(True)
        logits = model(task.inputs[start:stop], mask=m, counterfactual=batch_of(cf, start, stop))
        d = damage(logits, task.reference_logits[start:stop], task.labels[start:stop]).sum()
        (grad,) = torch.autograd.grad(d, m)
        total += grad
    return total


def eap_scores(model: VisionTransformer, task: Task, cf: Activations | None, metric: str = "ce", batch_size: int = 64) -> Tensor:
    """Estimated damage increase when each component is patched (higher = more important)."""
    return -mask_gradient(model, task, cf, metric, model.components.ones(), batch_size) / len(task)


def run(model: VisionTransformer, task: Task, cf: Activations | None, metric: str, keep: float, options: RunOptions) -> MethodOutput:
    """Registry entry point: scores ranked by magnitude (a component whose patching moves the metric either way matters)."""
    with torch.enable_grad():
        scores = eap_scores(model, task, cf, metric).abs()
    if options.progress:
        options.progress(1.0)
    return MethodOutput(scores, None, 1.0, 1.0, {"keep": keep})
