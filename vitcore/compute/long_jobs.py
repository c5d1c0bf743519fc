"""The long jobs the app hands to the compute service: a circuit run and a fine-tune, each a plain function of
files a worker can load (a :class:`~vitcore.compute.figures.Source`) and of the choices that determine its result.

Both run on the worker's one torch thread (switching a worker to more threads per job made each job take
seconds longer whenever two workers did it at once, measured ad hoc) and report their progress with
:func:`vitcore.compute.progress.report`. Their keys (:func:`discovery_key`, :func:`finetune_key`) hold
everything the result depends on, so two sessions asking for the same run share it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any

import torch

from ..circuits import discover
from ..circuits.result import CircuitResult
from ..model import VisionTransformer
from ..pruning.finetune import finetune_steps
from .figures import Source
from .progress import report


def options_key(options: dict[str, Any]) -> tuple:
    return tuple(sorted(options.items()))


def discovery_key(src: Source, classes: tuple[str, ...], method: str, **options: Any) -> tuple[Hashable, ...]:
    """What a circuit run's result depends on: the model and data files, the classes, the method and its options."""
    return ("discover", src.id, tuple(classes), method, options_key(options))


def discovery_job(src: Source, classes: tuple[str, ...], method: str, options: tuple) -> CircuitResult:
    """:func:`vitcore.circuits.discover` of ``method`` on the source's discovery images of ``classes``."""
    return discover(
        src.base(),
        src.discovery_set(),
        list(classes),
        method,
        model_sha256=src.model_sha,
        progress=report,
        **dict(options),
    )


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of a model's weights (names and bytes): keys a fine-tune that starts from an already fine-tuned
    model, and lets tests check that a shared model was not changed."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def finetune_key(
    src: Source, keep: bytes, start: VisionTransformer | None, classes: tuple[str, ...], **options: Any
) -> tuple[Hashable, ...]:
    """What a fine-tune's result depends on: the base model's files, the keep-set, the weights it starts from
    (None: the pruned base model), the chosen classes and the settings (steps, lr, distillation, focus)."""
    start_id = None if start is None else weights_digest(start)
    return ("finetune", src.id, keep, start_id, tuple(classes), options_key(options))


def finetune_job(
    src: Source,
    keep: bytes,
    start: VisionTransformer | None,
    classes: tuple[str, ...],
    options: tuple,
) -> tuple[VisionTransformer, list[float]]:
    """Fine-tune a copy of ``start`` (None: the base model pruned to ``keep``) on the source's discovery images;
    returns the fine-tuned model and its losses. ``options``: ``steps``, ``lr``, ``distill`` (from the base
    model) and ``focus`` (half of each batch from ``classes``)."""
    settings = dict(options)
    steps = int(settings["steps"])
    model = (start if start is not None else src.model(keep)).clone()
    for p in model.parameters():
        p.requires_grad_(True)
    data = src.discovery_set()
    focus = torch.nonzero(data.chosen(list(classes))).flatten() if classes and settings.get("focus") else None
    losses = finetune_steps(
        model,
        data,
        steps,
        lr=float(settings["lr"]),
        teacher=src.base() if settings.get("distill") else None,
        focus=focus,
        progress=lambda s, loss: report(s / steps, f"step {s}/{steps} · loss {loss:.3f}"),
    )
    for p in model.parameters():
        p.requires_grad_(False)
    return model, losses


LONG_JOBS = {"discover": discovery_job, "finetune": finetune_job}
