"""Weight averaging of checkpoints of one architecture (SWA over a run's epochs, model soups).

Averaging the weights of checkpoints that share a training lineage (the epochs of one run, or a
fine-tuned model and its starting point) often scores above each of them (Izmailov et al. 2018,
Wortsman et al. 2022). Checkpoints from unrelated runs do not average into a working model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..checkpoint import Checkpoint, CheckpointError, load_checkpoint
from ..model import VisionTransformer

TRAINING_ONLY = ("drop_path",)  # config fields that do not change the trained function


def average_state_dicts(
    states: Sequence[dict[str, Tensor]], weights: Sequence[float] | None = None
) -> dict[str, Tensor]:
    """The weighted mean of state dicts with the same keys and shapes (uniform when ``weights`` is None)."""
    if not states:
        raise CheckpointError("nothing to average: give at least one checkpoint")
    weights = [1.0] * len(states) if weights is None else [float(w) for w in weights]
    if len(weights) != len(states):
        raise CheckpointError(f"{len(weights)} weights for {len(states)} checkpoints")
    if any(not 0 <= w < math.inf for w in weights) or sum(weights) <= 0:  # the comparison is False for NaN
        raise CheckpointError(f"weights must be finite, non-negative and with a positive sum, got {weights}")
    keys = list(states[0])
    for i, state in enumerate(states[1:], 2):
        if set(state) != set(keys):
            raise CheckpointError(
                f"checkpoint {i} has different parameters from checkpoint 1: {sorted(set(state) ^ set(keys))[:3]}"
            )
        wrong = [k for k in keys if state[k].shape != states[0][k].shape]
        if wrong:
            raise CheckpointError(
                f"checkpoint {i} differs in shape from checkpoint 1 at {wrong[0]}: "
                f"{tuple(state[wrong[0]].shape)} vs {tuple(states[0][wrong[0]].shape)}"
            )
    total = sum(weights)
    averaged = {}
    for k in keys:
        acc = torch.zeros(states[0][k].shape, dtype=torch.float64)
        for w, state in zip(weights, states):
            acc += (w / total) * state[k].double()
        averaged[k] = acc.to(states[0][k].dtype)
    return averaged


def average_checkpoints(paths: Sequence[str | Path], weights: Sequence[float] | None = None) -> Checkpoint:
    """One checkpoint whose weights are the (weighted) mean of ``paths``' weights.

    All must have the same architecture and classes. The result carries the last checkpoint's
    config (its training record) plus ``averaged_from``: each source's path, weight and SHA-256.
    """
    ckpts = [load_checkpoint(p) for p in paths]
    if not ckpts:
        raise CheckpointError("nothing to average: give at least one checkpoint")
    first = ckpts[0].model.config.to_dict()
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        other = ckpt.model.config.to_dict()
        differ = [k for k in first if k not in TRAINING_ONLY and first[k] != other.get(k)]
        if differ:
            raise CheckpointError(f"{path}: architecture differs from {paths[0]} in {', '.join(differ)}")
        if ckpt.wnids != ckpts[0].wnids:
            raise CheckpointError(f"{path}: its classes (wnids) differ from {paths[0]}'s")
    state = average_state_dicts([c.model.state_dict() for c in ckpts], weights)
    model = VisionTransformer.from_state_dict(ckpts[0].model.config, state).eval()
    weights = [1.0] * len(ckpts) if weights is None else [float(w) for w in weights]
    info = {k: v for k, v in ckpts[-1].info.items() if k not in ("model", "metrics")}  # metrics were the source's
    info["averaged_from"] = [
        {"checkpoint": str(p), "weight": w, "sha256": c.sha256} for p, w, c in zip(paths, weights, ckpts)
    ]
    return Checkpoint(model, info)
