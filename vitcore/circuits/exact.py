"""Exact single-component patching: the ground truth every fast method estimates.

Each component alone is patched with its counterfactual and the damage metric is measured; its
effect is the change of the mean damage against the clean run. Nothing is linearised.

Patching a head or a chunk changes what its sublayer writes into the residual stream by an exact,
linear amount (``W_out (c - a)``: the output projection or ``fc2`` is linear in the activation), so
each candidate starts from the clean residual cached at its own sublayer plus that difference, and
only the rest of the network runs: a head's layer from its MLP on, a chunk's from the next layer.
Candidates of one sublayer are batched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..model import Activations, VisionTransformer
from .method import MethodOutput, RunOptions
from .metrics import damage_fn
from .task import Task

ROWS_PER_FORWARD = 128  # images x candidates in one batched forward (docs/results/methods.md, exact patching's cost)


@torch.no_grad()
def exact_effects(
    model: VisionTransformer,
    task: Task,
    cf: Activations | None,
    metric: str,
    progress: Callable[[float], None] | None = None,
    rows_per_forward: int = ROWS_PER_FORWARD,
) -> Tensor:
    """Signed increase of the mean damage ``metric`` when each component alone is patched with ``cf``
    (zeros when ``cf`` is None), in canonical component order."""
    damage = damage_fn(metric)
    space, n = model.components, len(task)
    ref, labels = task.reference_logits, task.labels
    clean_damage = damage(ref, ref, labels).mean()
    _, acts = model.run_with_cache(task.inputs, resid=True)
    effects = torch.zeros(len(space))
    per_forward = max(1, rows_per_forward // n)
    done = 0

    def measure(ids: list[int], starts: Tensor, run: Callable[[Tensor], Tensor]) -> None:
        nonlocal done
        for i in range(0, len(ids), per_forward):
            group = ids[i : i + per_forward]
            k = len(group)
            logits = run(starts[i : i + k].flatten(0, 1))
            patched = damage(logits, ref.repeat(k, 1), labels.repeat(k)).view(k, n).mean(1)
            effects[group] = patched - clean_damage
            done += k
            if progress:
                progress(done / len(space))

    for layer, block in enumerate(model.layers()):
        resid, heads, neurons = acts.resid[layer], acts.heads[layer], acts.mlp[layer]
        mid = block.forward_attn(resid)  # the residual after this layer's attention, then after its MLP
        if heads.shape[2]:
            change = block.attn.head_residuals(_counterfactual(cf, "heads", layer, heads) - heads)  # [H, B, T, dim]
            ids = list(range(space.head_slices[layer].start, space.head_slices[layer].stop))
            measure(
                ids,
                mid + change,
                lambda x, layer=layer, block=block: model.forward_from(block.forward_mlp(x), layer + 1),
            )
        if neurons.shape[2]:
            change = block.mlp.chunk_residuals(
                _counterfactual(cf, "mlp", layer, neurons) - neurons, model.config.chunk_size
            )
            ids = list(range(space.chunk_slices[layer].start, space.chunk_slices[layer].stop))
            measure(ids, block.forward_mlp(mid) + change, lambda x, layer=layer: model.forward_from(x, layer + 1))
    return effects


def _counterfactual(cf: Activations | None, what: str, layer: int, clean: Tensor) -> Tensor:
    """The counterfactual activation at ``layer`` broadcast to ``clean``'s shape (zeros when none)."""
    if cf is None:
        return torch.zeros_like(clean)
    return getattr(cf, what)[layer].expand_as(clean)


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, keep: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point: ranked by the magnitude of the exact effect (a component whose removal moves the
    metric either way matters; on KL every effect is already >= 0)."""
    effects = exact_effects(model, task, cf, metric, options.progress)
    return MethodOutput(effects.abs(), None, forward_equivalents(model), 0.0, {"keep": keep})


def forward_equivalents(model: VisionTransformer) -> float:
    """Full forwards over the task images one exact run costs: the clean recording run, then each candidate
    runs the layers after its own sublayer (a head's MLP counted as half a layer)."""
    depth = model.config.depth
    after = [depth - c.layer - (0.5 if c.kind == "head" else 1.0) for c in model.components.components]
    return 1.0 + sum(after) / depth
