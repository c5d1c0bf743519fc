"""EAP-IG (Hanna et al. 2024): attribution patching integrated from corrupt to clean activations.

Captum's ``IntegratedGradients`` integrates over the per-component mask ``m`` (the input),
from the all-patched baseline ``m = 0`` to the clean ``m = 1``. Because the model computes
``c + m (a - c)``, d/dm already carries the ``(a - c)`` factor, so no hook-level captum layer is
needed: attributing the mask is exactly per-component patching. ``riemann_right`` samples
alphas k/n_steps, k = 1..n_steps. Captum's Riemann rules need n_steps > 1; the one-step rule
is the gradient at the clean end times (1 - 0), which captum's ``InputXGradient`` computes,
so ``n_steps = 1`` is EAP exactly.

score_c = -IG_c, averaged over images: the integrated estimate of the damage increase when
c is patched. Completeness: sum_c score_c -> D(all patched) - D(clean) as n_steps grows.
Over edges the mask is the edge mask (:mod:`vitcore.edges`) and the same holds per edge.
"""

from __future__ import annotations

import torch
from captum.attr import InputXGradient, IntegratedGradients
from torch import Tensor

from ..model import Activations, VisionTransformer
from .method import MethodOutput, RunOptions
from .metrics import damage_fn
from .patching import Patcher
from .task import Task, TaskError


def eap_ig_scores(
    model: VisionTransformer,
    task: Task,
    cf: Activations | None,
    metric: str = "kl",
    n_steps: int = 5,
    batch_size: int = 32,
    method: str = "riemann_right",
    granularity: str = "node",
) -> Tensor:
    """Integrated-gradient damage estimate per component or edge (higher = more important)."""
    if n_steps < 1:
        raise TaskError(f"n_steps must be >= 1, got {n_steps}")
    damage = damage_fn(metric)
    patcher = Patcher(model, task, cf, granularity)
    n = patcher.size
    rows_per_forward = 32 if granularity == "edge" else 256  # an edge forward keeps what every node writes
    batch_size = min(batch_size, rows_per_forward)
    total = torch.zeros(n)
    for start in range(0, len(task), batch_size):
        stop = min(start + batch_size, len(task))
        ref, labels = task.reference_logits[start:stop], task.labels[start:stop]
        b = stop - start

        def forward(masks: Tensor, start=start, stop=stop, ref=ref, labels=labels, b=b) -> Tensor:
            # masks: [k * b, n], step-major as captum expands; this batch's values bound as defaults
            k = masks.shape[0] // b
            return damage(patcher.logits(slice(start, stop), masks), ref.repeat(k, 1), labels.repeat(k))

        if n_steps == 1:
            attr = InputXGradient(forward).attribute(torch.ones(b, n, requires_grad=True))
        else:
            ig = IntegratedGradients(forward)
            attr = ig.attribute(
                torch.ones(b, n),
                baselines=torch.zeros(b, n),
                n_steps=n_steps,
                method=method,
                internal_batch_size=b * max(1, rows_per_forward // b),
            )
        total -= attr.detach().sum(0)
    return total / len(task)


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, keep: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point: ranked by magnitude, like EAP (a component whose patching moves the metric either way
    matters; a negative estimate on KL, which patching can only raise, is the linearisation's error)."""
    with torch.enable_grad():
        scores = eap_ig_scores(model, task, cf, metric, options.n_steps, granularity=options.granularity).abs()
    if options.progress:
        options.progress(1.0)
    return MethodOutput(
        scores, None, float(options.n_steps), float(options.n_steps), {"keep": keep, "n_steps": options.n_steps}
    )
