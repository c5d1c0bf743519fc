"""Counterfactual activations that a patched component takes instead of its clean one."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data import normalize
from ..model import Activations, VisionTransformer
from .task import Task, TaskError

CORRUPTIONS = ("resample", "mean", "zero", "noise", "patch-shuffle")  # for any task
PAIRED = "paired"  # for a task with its own counterfactual images (the mark task: the images unmarked)
ALL_CORRUPTIONS = (*CORRUPTIONS, PAIRED)


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
    if corruption == PAIRED:
        if task.paired is None:
            raise TaskError("the paired corruption needs a task with its own counterfactual images (the mark task)")
        return task.paired
    return None


@torch.no_grad()
def counterfactual(
    model: VisionTransformer, task: Task, corruption: str, reference_images: int = 512, embed: bool = False
) -> Activations | None:
    """Counterfactual activations for ``task``, batch ``len(task)``; None means zeros.

    ``embed`` also keeps the embedding (``resid[0]``), which edge patching needs."""
    if corruption not in ALL_CORRUPTIONS:
        raise TaskError(f"unknown corruption {corruption!r}; choose one of {', '.join(ALL_CORRUPTIONS)}")
    if corruption == "zero":
        return None
    if corruption == "mean":
        gen = torch.Generator().manual_seed(task.seed + 2)
        idx = torch.randperm(len(task.pool), generator=gen)[:reference_images]
        parts = [
            model.run_with_cache(normalize(task.pool.images[idx[i : i + 256]], model.config), resid=embed)[1]
            for i in range(0, len(idx), 256)
        ]
        n, depth = len(idx), model.config.depth
        zero = torch.zeros(())  # a tensor start keeps sum()'s type a Tensor; 0 + x is exactly x
        heads = [sum((p.heads[i].sum(0, keepdim=True) for p in parts), zero) / n for i in range(depth)]
        mlp = [sum((p.mlp[i].sum(0, keepdim=True) for p in parts), zero) / n for i in range(depth)]
        resid = [sum((p.resid[0].sum(0, keepdim=True) for p in parts), zero) / n] if embed else []
        # a broadcast view per task image, so that every method slices counterfactuals alike
        return Activations(heads, mlp, resid, parts[0].want).map(lambda t: t.expand(len(task), *t.shape[1:]))
    images = corrupted_inputs(model, task, corruption)
    assert images is not None  # only zero and mean have no corrupted images, and both returned above
    cf = model.run_with_cache(images, resid=embed)[1]
    cf.resid = cf.resid[:1]
    return cf


@torch.no_grad()
def corrupt_outputs(model: VisionTransformer, cf: Activations | None) -> list[Tensor | None]:
    """What each upstream group (the embedding, each layer's heads, its chunks) writes on the
    counterfactual run, ``[n, b, T, dim]``, for :class:`vitcore.edges.EdgeStream`; None: zeros."""
    if cf is None:
        return [None] * len(model.edges.upstream_slices)
    if not cf.resid:
        raise TaskError(
            "edge patching needs the counterfactual's embedding: build it with counterfactual(..., embed=True)"
        )
    out: list[Tensor | None] = [cf.resid[0].unsqueeze(0)]
    for layer, block in enumerate(model.layers()):
        out.append(block.attn.head_residuals(cf.heads[layer]))
        out.append(block.mlp.chunk_residuals(cf.mlp[layer], model.config.chunk_size))
    return out
