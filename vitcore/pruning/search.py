"""Target-accuracy searches: the smallest circuit per method whose chosen-class top-1 reaches a target."""

from __future__ import annotations

import torch

from ..circuits import TaskError, discover, get_method
from ..circuits.result import keep_top
from ..data import ImageSet
from ..evaluate import predict_logits
from ..model import VisionTransformer
from .evaluation import PrunedEval, evaluate_against
from .prune import prune


def bisect_keep(
    base: VisionTransformer,
    scores: torch.Tensor,
    eval_set: ImageSet,
    chosen: torch.Tensor,
    target: float,
    iterations: int = 8,
    base_logits: torch.Tensor | None = None,
) -> tuple[float, PrunedEval]:
    """Smallest keep ratio (by ranking ``scores``) whose chosen-class top-1 stays >= ``target``.

    Returns (ratio, figures); ratio 1.0 with the full model's figures when even it misses the target.
    Accuracy is not strictly monotone in the ratio: this is bisection's answer, not an exhaustive one.
    """
    base_logits = predict_logits(base, eval_set.images) if base_logits is None else base_logits
    lo, hi = 0.0, 1.0
    best = evaluate_against(base_logits, None, eval_set, chosen)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ev = evaluate_against(base_logits, prune(base, keep_top(scores, mid)), eval_set, chosen)
        if ev.top1_chosen >= target:
            hi, best = mid, ev
        else:
            lo = mid
    return hi, best


def bisect_setting(
    base: VisionTransformer,
    discovery: ImageSet,
    eval_set: ImageSet,
    classes: list[str],
    chosen: torch.Tensor,
    target: float,
    method: str,
    corruption: str = "resample",
    lo: float | None = None,
    hi: float | None = None,
    iterations: int = 6,
    base_logits: torch.Tensor | None = None,
    options: dict[str, int] | None = None,
) -> tuple[float, PrunedEval, int]:
    """Largest setting (e.g. a threshold: fewest kept components) whose chosen-class top-1 stays >= ``target``.

    Bisects geometrically over [lo, hi] (default: the method's ``param.search``), since useful thresholds
    span orders of magnitude, re-running the method at every probe. Returns (setting, figures, kept count);
    setting 0 (a threshold then removes only components that do not matter at all) when even ``lo`` misses.
    """
    entry = get_method(method)
    search = entry.param.search
    if search is None:
        raise TaskError(f"{entry.label} has no setting range to search; search its keep ratio instead")
    low: float = search[0] if lo is None else lo
    high: float = search[1] if hi is None else hi
    base_logits = predict_logits(base, eval_set.images) if base_logits is None else base_logits

    def probe(value: float) -> tuple[PrunedEval, int]:
        keep = base.components.mask_from_keep(
            discover(
                base, discovery, classes, method, corruption, setting=value, **entry.own_options(options or {})
            ).kept
            or []
        )
        return evaluate_against(base_logits, prune(base, keep), eval_set, chosen), int(keep.sum())

    ev, kept = probe(high)
    if ev.top1_chosen >= target:
        return high, ev, kept
    ev, kept = probe(low)
    if ev.top1_chosen < target:
        return (0.0, *probe(0.0))
    best = (low, ev, kept)
    for _ in range(iterations):
        mid = (low * high) ** 0.5
        ev, kept = probe(mid)
        if ev.top1_chosen >= target:
            low, best = mid, (mid, ev, kept)
        else:
            high = mid
    return best
