"""One entry point for every registered discovery method, producing a :class:`CircuitResult`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ..data import ImageSet
from ..model import VisionTransformer
from .corruptions import ALL_CORRUPTIONS, PAIRED, counterfactual
from .method import Method
from .methods import DEFAULT_METHOD, all_options, get_method
from .metrics import METRICS, faithfulness
from .patching import GRANULARITIES, Patcher
from .result import CircuitResult, keep_top
from .task import Task, TaskError, build_task

if TYPE_CHECKING:
    from ..shortcut.mark import Shortcut


def check_method_metric(method: str, metric: str, granularity: str = "node") -> Method:
    """The registered method, after refusing unknown names and combinations it cannot score."""
    entry = get_method(method)
    if metric not in METRICS:
        raise TaskError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    reason = entry.refuse(metric)
    if reason:
        raise TaskError(reason)
    if granularity not in GRANULARITIES:
        raise TaskError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
    if granularity not in entry.granularities:
        raise TaskError(f"{entry.label} scores {' and '.join(entry.granularities)}s only, not {granularity}s")
    return entry


@torch.no_grad()
def circuit_faithfulness(
    model: VisionTransformer, task: Task, keep: torch.Tensor, cf, granularity: str = "node", batch_size: int = 32
) -> dict[str, float]:
    """Faithfulness of the circuit ``keep`` (components, or edges) on the task, removed parts patched with ``cf``."""
    if granularity == "node":
        return faithfulness(model(task.inputs, mask=keep, counterfactual=cf), task.reference_logits, task.labels)
    patcher = Patcher(model, task, cf, granularity)
    logits = torch.cat([patcher.logits(slice(i, i + batch_size), keep) for i in range(0, len(task), batch_size)])
    return faithfulness(logits, task.reference_logits, task.labels)


def discover(
    model: VisionTransformer,
    data: ImageSet,
    classes: list[str],
    method: str = DEFAULT_METHOD,
    corruption: str | None = None,
    metric: str | None = None,
    n_images: int | None = None,
    seed: int = 0,
    setting: float | None = None,
    model_sha256: str = "",
    progress: Callable[[float], None] | None = None,
    granularity: str = "node",
    shortcut: Shortcut | None = None,
    **named: float,
) -> CircuitResult:
    """Score every component (``granularity="edge"``: every edge) of ``model`` for ``classes`` of the discovery set.

    The method's one parameter (``keep``, ``tau`` or ``sparsity``, see the registry) is given
    as ``setting`` or by its name; it defaults to the registry's default. With a ``shortcut`` the task is the
    mark task (:func:`vitcore.shortcut.build_mark_task`) over images of ``classes``, and ``corruption``
    defaults to ``paired`` (the same images unmarked); otherwise to ``resample``. Run options are given by their
    field (``n_steps=8``): the method checks those it declares and takes its declared default for the others;
    another method's options are passed over, and any other name is refused.
    """
    entry = get_method(method)
    metric = metric or entry.default_metric
    check_method_metric(method, metric, granularity)
    option_fields = {o.field for o in all_options()}
    unknown = set(named) - {entry.param.name} - option_fields
    if unknown:
        raise TaskError(f"{method} takes {entry.param.name}, not {', '.join(sorted(unknown))}")
    value = named.get(entry.param.name, setting)
    value = entry.param.check(entry.default(granularity) if value is None else value)
    corruption = corruption or (PAIRED if shortcut is not None else "resample")
    if corruption not in ALL_CORRUPTIONS:
        raise TaskError(f"unknown corruption {corruption!r}; choose one of {', '.join(ALL_CORRUPTIONS)}")
    start = time.perf_counter()
    if shortcut is not None:
        from ..shortcut.task import build_mark_task  # the shortcut package builds on this one

        task = build_mark_task(model, data, shortcut, classes, n_images, seed)
    else:
        task = build_task(model, data, classes, n_images, seed)
    cf = counterfactual(model, task, corruption, embed=granularity == "edge")
    cf_forwards = 0.0 if corruption == "zero" else 1.0
    given = {k: int(v) for k, v in named.items() if k in option_fields and v is not None}
    options = entry.run_options(given, seed=seed, progress=progress, granularity=granularity)
    out = entry.run(model, task, cf, metric, value, options)
    keep_mask = out.kept_mask if out.kept_mask is not None else keep_top(out.scores, value)
    space = model.edges if granularity == "edge" else model.components
    result = CircuitResult(
        method=method,
        metric=metric,
        corruption=corruption,
        classes=list(task.wnids),
        n_images=len(task),
        seed=seed,
        component_names=space.names,
        scores=[float(s) for s in out.scores],
        kept=[space.names[i] for i in space.keep_from_mask(keep_mask)],
        forward_passes=round(out.forward_passes + cf_forwards, 3),
        backward_passes=round(out.backward_passes, 3),
        params=out.params,
        model_sha256=model_sha256,
        granularity=granularity,
        shortcut=shortcut.to_dict() if shortcut is not None else None,
    )
    result.faithfulness = circuit_faithfulness(model, task, keep_mask, cf, granularity)
    result.wall_time_s = time.perf_counter() - start
    return result
