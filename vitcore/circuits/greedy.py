"""ACDC's greedy loop, shared by components (:mod:`.acdc`) and edges (:mod:`.acdc_edges`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ACDCOutcome:
    kept_mask: Tensor  # 1 = kept
    scores: Tensor  # damage increase when visited
    final_damage: float
    forward_passes: float  # full-forward equivalents over the task images
    candidate_evaluations: int


def greedy_removal(
    mask: Tensor,
    scores: Tensor,
    visits: list[tuple[int, list[int]]],
    evaluate: Callable[[Tensor, int], Tensor],
    current: float,
    tau: float,
    adaptive: bool = True,
    max_group: int = 64,
    progress: Callable[[float], None] | None = None,
    skip: Callable[[int], bool] | None = None,
) -> tuple[float, int]:
    """ACDC's loop, shared by components and edges: visit candidates in order, remove one for good when
    patching it raises the damage by less than ``tau``. ``visits`` lists (layer to start the forward
    at, candidates in visiting order); ``evaluate(masks, layer)`` gives each mask row's damage.
    ``skip(c)`` removes a candidate known to change nothing without a forward (score 0).
    Updates ``mask`` and ``scores`` in place; returns the final damage and the number of evaluations."""
    total = sum(len(c) for _, c in visits)
    group_size, done, evaluations = 1, 0, 0
    for layer, candidates in visits:
        pending = list(candidates)
        while pending:
            if skip is not None and skip(pending[0]):
                c = pending.pop(0)
                mask[c], scores[c] = 0.0, 0.0
                done += 1
                continue
            group = pending[:group_size]
            masks = mask.repeat(len(group), 1)
            masks[torch.arange(len(group)), torch.tensor(group)] = 0.0
            values = evaluate(masks, layer)
            evaluations += len(group)
            removed_at = None
            for i, c in enumerate(group):
                pending.pop(0)
                done += 1
                delta = float(values[i]) - current
                scores[c] = delta
                if delta < tau:
                    mask[c] = 0.0
                    current = float(values[i])
                    removed_at = i
                    break  # the remaining values were computed against the old circuit
            if adaptive:
                group_size = min(max_group, group_size * 2) if removed_at is None else max(1, removed_at)
            if progress:
                progress(done / total)
    return current, evaluations
