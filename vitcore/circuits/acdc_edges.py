"""ACDC over edges (Conmy et al. 2023, as in their edge-level code): greedy patching of edges.

Downstream inputs are visited in reverse topological order (the logits, then each layer's MLP
input, then its heads' value, key and query inputs, last layer first); each input's incoming
edges latest upstream node first. An edge is removed for good when patching it raises the damage
(KL by default) by less than ``tau``.

Speed, as at node level: while the inputs of layer l are visited, every edge into layers < l is
intact, so what the nodes before l write and the residual entering l are those of the clean
run; they are cached once and only layers l.. run, with a layer's candidates batched and the
group size adapting (:func:`vitcore.circuits.greedy.greedy_removal`). An input whose readers no
longer reach the logits through kept edges changes nothing: for tau > 0 its edges are removed
without a forward. ``naive=True`` runs every candidate from the embedding, one at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..edges import EdgeStream
from ..model import Activations, LayerIntervention, VisionTransformer
from .corruptions import corrupt_outputs
from .greedy import ACDCOutcome, greedy_removal
from .metrics import damage_fn
from .task import Task, TaskError


def visiting_order(model: VisionTransformer) -> list[tuple[int, list[int]]]:
    """(layer to start at, edge ids in visiting order) per layer, the logits first (layer = depth)."""
    space = model.edges
    visits = []
    for layer in reversed(range(model.config.depth + 1)):
        groups = (
            [space.logits_group] if layer == model.config.depth else [space.mlp_group(layer), space.attn_group(layer)]
        )
        ids = [
            g.start + v * g.n_upstream + u
            for g in groups
            for v in reversed(range(len(g.inputs)))
            for u in reversed(range(g.n_upstream))
        ]
        visits.append((layer, ids))
    return visits


@torch.no_grad()
def clean_caches(
    model: VisionTransformer, x: Tensor, corrupt: list[Tensor | None]
) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """On the clean run: the residual entering each layer (and the final one), what every upstream group
    wrote (as deltas from the corrupt run), and the running sums of those deltas."""
    stream = EdgeStream(model.edges, model.edges.ones(), corrupt)
    resid = model.embed(x)
    stream.write(resid.unsqueeze(0))
    resids = []
    for block in model.blocks:
        resids.append(resid)
        resid = block(resid, LayerIntervention(edges=stream))
    sums, total = [], None
    for d in stream.deltas:
        total = d.sum(0) if total is None else total + d.sum(0)
        sums.append(total)
    return resids + [resid], stream.deltas, sums


@torch.no_grad()
def acdc_edges(
    model: VisionTransformer,
    task: Task,
    cf: Activations | None,
    tau: float,
    metric: str = "kl",
    naive: bool = False,
    max_group: int = 32,
    progress: Callable[[float], None] | None = None,
) -> ACDCOutcome:
    """Greedy edge removal; ``kept_mask`` and ``scores`` are over edges (:mod:`vitcore.edges`)."""
    if tau < 0:
        raise TaskError(f"tau must be >= 0, got {tau}")
    damage = damage_fn(metric)
    space = model.edges
    depth, N = model.config.depth, len(task)
    x, ref, labels = task.inputs, task.reference_logits, task.labels
    corrupt = corrupt_outputs(model, cf)
    resids, deltas, sums = clean_caches(model, x, corrupt)
    mask, scores = space.ones(), torch.zeros(len(space))
    layer_runs = 0.0

    def evaluate(masks: Tensor, layer: int) -> Tensor:
        nonlocal layer_runs
        k = masks.shape[0]
        if naive:
            logits = model.forward_from(model.embed(x).repeat(k, 1, 1), 0, edges=EdgeStream(space, masks, corrupt))
            layer_runs += k * N * depth
        else:
            stream = EdgeStream(space, masks, corrupt, written=deltas[: 1 + 2 * layer], written_sum=sums[2 * layer])
            logits = model.forward_from(resids[layer].repeat(k, 1, 1), layer, edges=stream)
            layer_runs += k * N * (depth - layer)
        return damage(logits, ref.repeat(k, 1), labels.repeat(k)).view(k, N).mean(1)

    dead_inputs: dict[int, bool] = {}
    owners, input_ids = space.input_owner, space.input_ids

    def skip(edge: int) -> bool:
        """True when the edge's input is read only by components cut off from the logits."""
        v = int(input_ids[edge])
        if v not in dead_inputs:
            alive = space.alive_components(mask)
            dead_inputs[v] = bool(owners[v]) and not any(bool(alive[o]) for o in owners[v])
        return dead_inputs[v]

    current = float(evaluate(mask[None], depth)[0])
    current, evaluations = greedy_removal(
        mask,
        scores,
        visiting_order(model),
        evaluate,
        current,
        tau,
        adaptive=not naive,
        max_group=max_group,
        progress=progress,
        skip=skip if tau > 0 else None,
    )
    return ACDCOutcome(mask, scores, current, layer_runs / (N * depth), evaluations)
