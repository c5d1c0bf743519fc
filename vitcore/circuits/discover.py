"""One entry point for the four discovery methods, producing a :class:`CircuitResult`."""

from __future__ import annotations

import time
from typing import Callable

import torch

from ..data import ImageSet
from ..model import VisionTransformer
from .acdc import acdc
from .corruptions import CORRUPTIONS, counterfactual
from .eap import eap_scores
from .eap_ig import eap_ig_scores
from .learned import learn_masks
from .metrics import METRICS, faithfulness
from .result import CircuitResult, keep_top
from .task import Task, TaskError, build_task

METHODS = ("eap", "eap-ig", "acdc", "learned")
DEFAULT_METRIC = {"eap": "ce", "eap-ig": "kl", "acdc": "kl", "learned": "kl"}
METHOD_PARAM = {"eap": "keep", "eap-ig": "keep", "acdc": "tau", "learned": "sparsity"}


def check_method_metric(method: str, metric: str) -> None:
    """Refuse unknown names and the degenerate EAP-on-KL combination."""
    if method not in METHODS:
        raise TaskError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if metric not in METRICS:
        raise TaskError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if method == "eap" and metric == "kl":
        raise TaskError(
            "EAP on KL is degenerate: KL(full || circuit) is zero with zero gradient at the clean run, "
            "so every score would be 0. Use metric 'ce' (default) or 'logit-diff' for EAP, or EAP-IG for KL."
        )


@torch.no_grad()
def circuit_faithfulness(model: VisionTransformer, task: Task, keep: torch.Tensor, cf) -> dict[str, float]:
    """Faithfulness of the circuit ``keep`` on the task, removed components patched with ``cf``."""
    return faithfulness(model(task.inputs, mask=keep, counterfactual=cf), task.reference_logits, task.labels)


def discover(
    model: VisionTransformer,
    data: ImageSet,
    classes: list[str],
    method: str = "eap",
    corruption: str = "resample",
    metric: str | None = None,
    n_images: int | None = None,
    seed: int = 0,
    keep: float = 0.5,
    tau: float = 0.05,
    sparsity: float = 0.5,
    n_steps: int = 5,
    steps: int = 200,
    model_sha256: str = "",
    progress: Callable[[float], None] | None = None,
) -> CircuitResult:
    """Score every component of ``model`` for ``classes`` of the discovery set ``data``."""
    metric = metric or DEFAULT_METRIC.get(method, "kl")
    check_method_metric(method, metric)
    if corruption not in CORRUPTIONS:
        raise TaskError(f"unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
    if method in ("eap", "eap-ig") and not 0 < keep <= 1:
        raise TaskError(f"keep ratio must be in (0, 1], got {keep}")
    if method == "acdc" and tau < 0:
        raise TaskError(f"tau must be >= 0, got {tau}")
    if method == "learned" and not 0 <= sparsity < 1:
        raise TaskError(f"sparsity must be in [0, 1), got {sparsity}")
    start = time.perf_counter()
    task = build_task(model, data, classes, n_images, seed)
    cf = counterfactual(model, task, corruption)
    cf_forwards = 0.0 if corruption == "zero" else 1.0
    kept = None
    params: dict[str, float] = {}
    if method == "eap":
        with torch.enable_grad():
            # rank by magnitude: a component whose patching moves the metric either way matters
            scores = eap_scores(model, task, cf, metric).abs()
        fwd, bwd = 1 + cf_forwards, 1.0
        params["keep"] = keep
        if progress:
            progress(1.0)
    elif method == "eap-ig":
        with torch.enable_grad():
            scores = eap_ig_scores(model, task, cf, metric, n_steps)
        fwd, bwd = n_steps + cf_forwards, float(n_steps)
        params.update(keep=keep, n_steps=n_steps)
        if progress:
            progress(1.0)
    elif method == "acdc":
        out = acdc(model, task, cf, tau, metric, progress=progress)
        scores, fwd, bwd = out.scores, out.forward_passes + 1 + cf_forwards, 0.0
        kept = out.kept_mask
        params["tau"] = tau
    else:
        with torch.enable_grad():
            out = learn_masks(model, task, cf, sparsity, metric, steps=steps, seed=seed, progress=progress)
        scores, fwd, bwd = out.log_alpha, out.forward_passes + cf_forwards, out.backward_passes
        kept = out.kept_mask
        params.update(sparsity=sparsity, steps=steps, expected_sparsity=round(out.expected_sparsity, 4))
    keep_mask = kept if kept is not None else keep_top(scores, keep)
    space = model.components
    result = CircuitResult(
        method=method,
        metric=metric,
        corruption=corruption,
        classes=list(classes),
        n_images=len(task),
        seed=seed,
        component_names=space.names,
        scores=[float(s) for s in scores],
        kept=[space.names[i] for i in space.keep_from_mask(keep_mask)],
        forward_passes=round(fwd, 3),
        backward_passes=round(bwd, 3),
        params=params,
        model_sha256=model_sha256,
    )
    result.faithfulness = circuit_faithfulness(model, task, keep_mask, cf)
    result.wall_time_s = time.perf_counter() - start
    return result
