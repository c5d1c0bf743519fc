"""A circuit-discovery task: images of the chosen classes and the full model's outputs on them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data import DataError, ImageSet, normalize
from ..errors import VitcoreError
from ..model import VisionTransformer


class TaskError(VitcoreError):
    """A task that cannot be built: unknown classes, no images, bad parameters."""


@dataclass
class Task:
    """Inputs (normalized floats), true labels and reference logits of the full model."""

    wnids: list[str]
    inputs: Tensor
    labels: Tensor
    reference_logits: Tensor
    pool: ImageSet  # the whole discovery set, for counterfactuals drawn from other classes
    seed: int = 0
    # the task's own counterfactual, image by image (normalized): the "paired" corruption patches these in
    # (the mark task: the same images without the mark)
    paired: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)


@torch.no_grad()
def build_task(
    model: VisionTransformer, data: ImageSet, wnids: list[str], n_images: int | None = None, seed: int = 0
) -> Task:
    """Task over at most ``n_images`` images of ``wnids`` (balanced by a seeded shuffle)."""
    if not wnids:
        raise TaskError("choose at least one class")
    try:
        chosen = data.of_classes(wnids)
    except DataError as e:
        raise TaskError(str(e)) from e
    empty = [w for w in wnids if not (chosen.labels == data.class_index(w)).any()]
    if empty:
        raise TaskError(f"no images of class(es) {', '.join(empty)} in the discovery set")
    if n_images is not None and n_images < 1:
        raise TaskError(f"number of images must be at least 1, got {n_images}")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(chosen), generator=gen)
    # interleave classes so that any prefix is balanced
    per_class = [order[chosen.labels[order] == data.class_index(w)] for w in wnids]
    interleaved = [int(idx[i]) for i in range(max(len(p) for p in per_class)) for idx in per_class if i < len(idx)]
    picked = chosen.subset(interleaved[: n_images or len(interleaved)])
    inputs = normalize(picked.images, model.config)
    return Task(list(wnids), inputs, picked.labels.clone(), model(inputs).detach(), data, seed)
