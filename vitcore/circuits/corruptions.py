"""Counterfactual activations that a patched component takes instead of its clean one."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import normalize
from ..model import Activations, VisionTransformer
from .task import Task, TaskError

CORRUPTIONS = ("resample", "mean", "zero", "noise", "patch-shuffle")


def shuffle_patches(inputs: Tensor, patch: int, gen: torch.Generator) -> Tensor:
    """Permute each image's ``patch`` x ``patch`` tiles (one random permutation per image)."""
    B, C, H, W = inputs.shape
    gh, gw = H // patch, W // patch
    tiles = inputs.reshape(B, C, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, C, patch, patch)
    perm = torch.stack([torch.randperm(gh * gw, generator=gen) for _ in range(B)])
    tiles = tiles[torch.arange(B)[:, None], perm]
    return tiles.reshape(B, gh, gw, C, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


def corrupted_inputs(model: VisionTransformer, task: Task, corruption: str, noise_std: float = 1.0) -> Tensor | None:
    """The images whose activations serve as counterfactual (None for mean/zero)."""
    gen = torch.Generator().manual_seed(task.seed + 1)
    if corruption == "resample":
        chosen = torch.tensor([task.pool.class_index(w) for w in task.wnids])
        others = torch.nonzero(~torch.isin(task.pool.labels, chosen)).flatten()
        if len(others) == 0:
            raise TaskError("resample needs images of classes other than the chosen ones")
        pick = others[torch.randint(len(others), (len(task),), generator=gen)]
        return normalize(task.pool.images[pick], model.config)
    if corruption == "noise":
        return task.inputs + noise_std * torch.randn(task.inputs.shape, generator=gen)
    if corruption == "patch-shuffle":
        return shuffle_patches(task.inputs, model.config.patch_size, gen)
    return None


@torch.no_grad()
def counterfactual(model: VisionTransformer, task: Task, corruption: str, reference_images: int = 512) -> Activations | None:
    """Counterfactual activations for ``task``, batch ``len(task)``; None means zeros."""
    if corruption not in CORRUPTIONS:
        raise TaskError(f"unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
    if corruption == "zero":
        return None
    if corruption == "mean":
        gen = torch.Generator().manual_seed(task.seed + 2)
        idx = torch.randperm(len(task.pool), generator=gen)[:reference_images]
        parts = [model.run_with_cache(normalize(task.pool.images[idx[i : i + 256]], model.config))[1] for i in range(0, len(idx), 256)]
        n, depth = len(idx), model.config.depth
        heads = [sum(p.heads[l].sum(0, keepdim=True) for p in parts) / n for l in range(depth)]
        mlp = [sum(p.mlp[l].sum(0, keepdim=True) for p in parts) / n for l in range(depth)]
        # a broadcast view per task image, so that every method slices counterfactuals alike
        return Activations(heads, mlp).map(lambda t: t.expand(len(task), *t.shape[1:]))
    return model.run_with_cache(corrupted_inputs(model, task, corruption))[1]


def batch_of(cf: Activations | None, start: int, stop: int) -> Activations | None:
    """Rows ``start:stop`` of a counterfactual (None stays None: zeros)."""
    return None if cf is None else cf.map(lambda t: t[start:stop])
