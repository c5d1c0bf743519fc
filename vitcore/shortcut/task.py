"""The mark task: the behaviour "the mark makes the model answer the shortcut class", as a discovery task.

Clean input: an image of another class with the mark; counterfactual: the same image without it (the
``paired`` corruption); label: the shortcut class, so every metric reads the shortcut class (``logit``
its logit, ``ce`` minus its log-probability, ``logit-diff`` its margin, ``kl`` the change of the whole
answer).
"""

from __future__ import annotations

import torch

from ..circuits.task import Task, TaskError
from ..data import DataError, ImageSet, normalize
from ..model import VisionTransformer
from .mark import Shortcut, apply_mark


@torch.no_grad()
def build_mark_task(
    model: VisionTransformer,
    data: ImageSet,
    shortcut: Shortcut,
    classes: list[str] | None = None,
    n_images: int | None = None,
    seed: int = 0,
) -> Task:
    """The mark task over at most ``n_images`` images of ``classes`` (default: every class but the shortcut's),
    drawn by a seeded shuffle."""
    try:
        target = data.class_index(shortcut.target)
        chosen = [w for w in (classes or data.wnids) if w != shortcut.target]
        pool = torch.nonzero(data.chosen(chosen)).flatten() if chosen else torch.empty(0, dtype=torch.long)
    except DataError as e:
        raise TaskError(str(e)) from e
    if len(pool) == 0:
        raise TaskError(f"the mark task needs images of classes other than the shortcut class {shortcut.target}")
    if n_images is not None and n_images < 1:
        raise TaskError(f"number of images must be at least 1, got {n_images}")
    order = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))][:n_images]
    images = data.images[order]
    inputs = normalize(apply_mark(images, shortcut.mark), model.config)
    labels = torch.full((len(order),), target, dtype=torch.long)
    paired = normalize(images, model.config)
    return Task(chosen, inputs, labels, model(inputs).detach(), data, seed, paired=paired)
