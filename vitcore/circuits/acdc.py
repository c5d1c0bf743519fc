"""ACDC (Conmy et al. 2023) at component level: greedy patching in reverse topological order.

Visiting components last layer first (MLP chunks before heads), each is patched tentatively and
removed for good when ``D(H_new) - D(H) < tau`` (D is KL(full || circuit) by default).

Speed: while layer l is visited, layers < l are intact, so the residual entering l is cached
once and only layers l.. run. Candidates can be evaluated several at a time (``max_group``) in one
batched forward against the current circuit, but the first removal makes the later values stale
and they are evaluated again; with all of a class's images in each forward, batching candidates
saves less than that waste costs, so the default evaluates one candidate at a time and the forward
work is only the layers after each candidate (docs/results/methods.md, "ACDC's layer cache").
The result is the same removed set as the naive loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..model import Activations, VisionTransformer
from .acdc_edges import acdc_edges
from .greedy import ACDCOutcome, greedy_removal
from .method import MethodOutput, RunOptions
from .metrics import damage_fn
from .task import Task, TaskError


@torch.no_grad()
def acdc(
    model: VisionTransformer,
    task: Task,
    cf: Activations | None,
    tau: float,
    metric: str = "kl",
    naive: bool = False,
    max_group: int = 1,
    progress: Callable[[float], None] | None = None,
) -> ACDCOutcome:
    if tau < 0:
        raise TaskError(f"tau must be >= 0, got {tau}")
    damage = damage_fn(metric)
    space = model.components
    depth, N = model.config.depth, len(task)
    x, ref, labels = task.inputs, task.reference_logits, task.labels
    _, clean = model.run_with_cache(x, resid=True, components=False)
    mask = space.ones()
    scores = torch.zeros(len(space))
    layer_runs = 0.0  # image-layers run, divided by N * depth at the end

    def evaluate(masks: Tensor, layer: int) -> Tensor:
        """Mean damage of each candidate mask row, running layers ``layer..``."""
        nonlocal layer_runs
        k = masks.shape[0]
        start = 0 if naive else layer
        resid = model.embed(x) if naive else clean.resid[layer]
        logits = model.forward_from(
            resid if k == 1 else resid.repeat(k, 1, 1), start, masks.repeat_interleave(N, 0), _tile(cf, k)
        )
        layer_runs += k * N * (depth - start)
        return damage(logits, ref.repeat(k, 1), labels.repeat(k)).view(k, N).mean(1)

    current = float(evaluate(mask[None], depth - 1 if not naive else 0)[0])
    order = space.reverse_topological()
    visits = [(layer, [c for c in order if space.components[c].layer == layer]) for layer in reversed(range(depth))]
    current, evaluations = greedy_removal(
        mask, scores, visits, evaluate, current, tau, adaptive=not naive, max_group=max_group, progress=progress
    )
    return ACDCOutcome(mask, scores, current, layer_runs / (N * depth), evaluations)


def _tile(cf: Activations | None, k: int) -> Activations | None:
    """Counterfactual tiled candidate-major to match ``resid.repeat(k)`` (itself, untouched, for one candidate)."""
    return cf if cf is None or k == 1 else cf.repeat(k)


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, tau: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point; the forward count includes the clean recording run."""
    if options.granularity == "edge":
        out = acdc_edges(model, task, cf, tau, metric, progress=options.progress)
    else:
        out = acdc(model, task, cf, tau, metric, progress=options.progress)
    return MethodOutput(out.scores, out.kept_mask, out.forward_passes + 1, 0.0, {"tau": tau})
