"""How far to trust each method on a model: its scores against exact single-component patching.

For each class set and each registered method (node level, its default setting, on its own metric
and on one shared metric): the Spearman and Pearson correlation of the scores it ranks by with the
magnitude of the exact effect of patching each component alone (same metric, same corruption, same
images), how many of its top 20 are exact patching's top 20, the faithfulness of the patched circuit
that keeps the top 25/50/75% of its scores, and its wall time. An entry ``method@N`` runs the method
on the first N of a class set's images and is still judged against exact patching on all of them. The table ships
in ``assets/faithfulness.json`` (``python -m vitcore bench-faithfulness``) and the app shows it.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..assets import assets_dir
from ..data import ImageSet
from ..model import VisionTransformer
from .corruptions import counterfactual
from .discover import check_method_metric, circuit_faithfulness, discover
from .exact import exact_effects
from .methods import GROUND_TRUTH, METHODS
from .result import keep_top
from .task import TaskError, build_task

CLASS_SETS = (
    ("n01443537", "n01629819", "n01641577"),  # goldfish, European fire salamander, bullfrog
    ("n04146614", "n04285008", "n04487081"),  # school bus, sports car, trolleybus
    ("n07749582", "n07747607", "n07753592"),  # lemon, orange, banana
)
KEEP_RATIOS = (0.25, 0.5, 0.75)
DRAWN_SETS = 6  # class sets drawn with a fixed seed, beside the fixed ones
SHARED_METRIC = "ce"  # the metric every method that can score it is also run on, for one comparison across methods
TOP_K = 20
FAST_SAMPLE = 10  # images of a class set that exact patching's fast entry patches (the rest judge it)
DEFAULT_ENTRIES = (*METHODS, f"{GROUND_TRUTH}@{FAST_SAMPLE}", f"{GROUND_TRUTH}@12")
TRUSTED_SPEARMAN, TRUSTED_OVERLAP = 0.8, 16


def table_path() -> Path:
    return assets_dir() / "faithfulness.json"


def _rank(x: Tensor) -> Tensor:
    return torch.argsort(torch.argsort(x, stable=True), stable=True).double()


def pearson(a: Tensor, b: Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom else 0.0


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation (ties broken by order; scores here are continuous)."""
    return pearson(_rank(a), _rank(b))


def top_overlap(a: Tensor, b: Tensor, k: int = TOP_K) -> int:
    """How many of the ``k`` highest of ``a`` are among the ``k`` highest of ``b``."""
    k = min(k, len(a))
    return len(set(a.topk(k).indices.tolist()) & set(b.topk(k).indices.tolist()))


def drawn_class_sets(wnids: list[str], count: int = DRAWN_SETS, size: int = 3, seed: int = 0) -> list[tuple[str, ...]]:
    """``count`` class sets of ``size`` classes drawn from ``wnids`` with a fixed seed (none of the fixed sets)."""
    gen = torch.Generator().manual_seed(seed)
    fixed = {frozenset(c) for c in CLASS_SETS}
    out: list[tuple[str, ...]] = []
    while len(out) < count and len(wnids) >= size:
        pick = tuple(wnids[i] for i in torch.randperm(len(wnids), generator=gen)[:size].tolist())
        if frozenset(pick) not in fixed and pick not in out:
            out.append(pick)
    return out


def parse_entry(entry: str) -> tuple[str, int | None]:
    """A table entry ``method`` or ``method@N``: the method run on the first N of the class set's images."""
    name, _, images = entry.partition("@")
    if name not in METHODS:
        raise TaskError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    if images and (not images.isdigit() or int(images) < 1):
        raise TaskError(f"{entry}: the image count after @ must be a positive whole number")
    return name, int(images) if images else None


def measure(
    model: VisionTransformer,
    data: ImageSet,
    class_sets=CLASS_SETS,
    n_images: int = 30,
    methods: list[str] | None = None,
    progress=None,
    shared_metric: str | None = SHARED_METRIC,
) -> list[dict[str, Any]]:
    """One row per (entry, class set, metric), as described in the module docstring. An entry is a method name,
    or ``name@N`` to run it on the first N of the set's images; every entry is compared with exact patching on
    all of them. ``shared_metric`` adds a row per entry on that metric (where the method can score it)."""
    rows = []
    entries = methods or list(METHODS)
    for entry in entries:
        parse_entry(entry)
    effects_cache: dict[tuple[int, str], Tensor] = {}
    for s, classes in enumerate(class_sets):
        task = build_task(model, data, list(classes), n_images, 0)
        cf = counterfactual(model, task, "resample")
        for entry in entries:
            name, sample = parse_entry(entry)
            method = METHODS[name]
            metrics = [(method.default_metric, "own")]
            if shared_metric and shared_metric != method.default_metric and _scores(name, shared_metric):
                metrics.append((shared_metric, "shared"))
            for metric, role in metrics:
                result = discover(
                    model,
                    data,
                    list(classes),
                    name,
                    "resample",
                    metric=metric,
                    n_images=min(sample or n_images, n_images),
                )
                scores = result.score_tensor()
                if (s, metric) not in effects_cache:
                    effects_cache[s, metric] = exact_effects(model, task, cf, metric)
                exact = effects_cache[s, metric].abs()
                row = {
                    "entry": entry,
                    "method": name,
                    "label": method.label + (f" ({sample} images)" if sample else ""),
                    "role": role,
                    "classes": list(classes),
                    "images": len(task),
                    "images_used": result.n_images,
                    "metric": metric,
                    "spearman": round(spearman(scores, exact), 4),
                    "pearson": round(pearson(scores, exact), 4),
                    f"top{TOP_K}": top_overlap(scores, exact),
                    "wall_s": round(result.wall_time_s, 2),
                }
                for ratio in KEEP_RATIOS:
                    f = circuit_faithfulness(model, task, keep_top(scores, ratio), cf)
                    row[f"kl_at_{ratio:g}"], row[f"top1_at_{ratio:g}"] = round(f["kl"], 4), round(f["top1"], 4)
                rows.append(row)
                if progress:
                    progress(row)
    return rows


def _scores(method: str, metric: str) -> bool:
    try:
        check_method_metric(method, metric)
    except TaskError:
        return False
    return True


SPREAD_KEYS = ("spearman", f"top{TOP_K}", "kl_at_0.5")


def summarise(rows: list[dict[str, Any]], role: str = "own") -> dict[str, dict[str, float]]:
    """Per entry, on its own metric (``role="own"``) or the shared one: the median of each figure over the class
    sets, with the lowest and highest of the figures in ``SPREAD_KEYS`` (``<key>_min``, ``<key>_max``)."""
    out: dict[str, dict[str, float]] = {}
    rows = [r for r in rows if r.get("role", "own") == role]
    for entry in dict.fromkeys(r.get("entry", r["method"]) for r in rows):
        mine = [r for r in rows if r.get("entry", r["method"]) == entry]
        keys = [k for k, v in mine[0].items() if isinstance(v, (int, float)) and k not in ("images", "images_used")]
        out[entry] = {k: round(statistics.median(r[k] for r in mine), 4) for k in keys}
        for k in SPREAD_KEYS:
            if k in mine[0]:
                out[entry][f"{k}_min"], out[entry][f"{k}_max"] = min(r[k] for r in mine), max(r[k] for r in mine)
        out[entry]["class_sets"] = len(mine)
        out[entry]["images"] = mine[0]["images"]
        out[entry]["images_used"] = mine[0].get("images_used", mine[0]["images"])
    return out


def load_summary(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The shipped table's per-entry summary on each entry's own metric ({} when the file is absent or unreadable)."""
    import json

    try:
        record = json.loads(Path(path or table_path()).read_text())
        return summarise(record["results"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def describe(method: str, summary: dict[str, dict[str, float]]) -> str | None:
    """One sentence for the app: how the method's scores and circuits fared on the shipped model."""
    row = summary.get(method)
    if row is None:
        return None
    if method == GROUND_TRUTH:
        sample = summary.get(f"{GROUND_TRUTH}@{FAST_SAMPLE}")
        on_sample = (
            f" Run on {FAST_SAMPLE} of the {row['images']} images, its ranking agrees with the run on all of them "
            f"with Spearman {sample['spearman']:.2f} and {sample[f'top{TOP_K}']:.0f} of the top {TOP_K} in "
            f"{sample['wall_s']:.1f} s."
            if sample
            else ""
        )
        return (
            f"On the shipped model ({row['class_sets']} class sets x {row['images']} images, medians) the patched "
            f"circuit keeping its top 50% has KL {row['kl_at_0.5']:.2f} and top-1 {row['top1_at_0.5']:.0%}; "
            f"{row['wall_s']:.1f} s a run.{on_sample}"
        )
    overlap = (
        f", {row[f'top{TOP_K}']:.0f} of its top {TOP_K} in exact patching's top {TOP_K}" if f"top{TOP_K}" in row else ""
    )
    return (
        f"On the shipped model ({row['class_sets']} class sets x {row['images']} images, medians): Spearman "
        f"{row['spearman']:.2f} with exact single-component patching{overlap}; the patched circuit keeping the top "
        f"50% has KL {row['kl_at_0.5']:.2f} and top-1 {row['top1_at_0.5']:.0%} on those images; "
        f"{row['wall_s']:.1f} s a run."
    )


def trusted(row: dict[str, float]) -> bool:
    """True when an entry's ranking agrees with exact patching well enough to stand in for it (the issue's bar:
    Spearman >= 0.8 and at least 16 of the top 20 shared, medians)."""
    return row["spearman"] >= TRUSTED_SPEARMAN and row.get(f"top{TOP_K}", 0) >= TRUSTED_OVERLAP


def affordable(summary: dict[str, dict[str, float]], budget_s: float = 2.0, page_images: int = 50) -> list[str]:
    """The entries whose run over ``page_images`` images (at the table's measured rate per class-set image) fits
    ``budget_s``."""
    return [m for m, r in summary.items() if r["wall_s"] / r["images"] * page_images <= budget_s]


def most_faithful(summary: dict[str, dict[str, float]], budget_s: float = 2.0, page_images: int = 50) -> str | None:
    """The entry to default to, judged on rank agreement with exact patching and on circuit KL alike: among the
    :func:`affordable` entries, the lowest sum of its rank by Spearman (highest first) and its rank by the KL of
    the top-50% circuit (lowest first); ties go to the higher Spearman."""
    names = affordable(summary, budget_s, page_images)
    by_spearman = sorted(names, key=lambda m: -summary[m]["spearman"])
    by_kl = sorted(names, key=lambda m: summary[m]["kl_at_0.5"])
    return min(names, key=lambda m: (by_spearman.index(m) + by_kl.index(m), -summary[m]["spearman"]), default=None)


def why_default(summary: dict[str, dict[str, float]], budget_s: float = 2.0, page_images: int = 50) -> str | None:
    """One sentence for the app: why the table's pick is the default."""
    pick = most_faithful(summary, budget_s, page_images)
    if pick is None:
        return None
    row, label = summary[pick], METHODS[parse_entry(pick)[0]].label
    used = (
        f" on {row['images_used']:.0f} of the images" if row.get("images_used", row["images"]) < row["images"] else ""
    )
    agrees = (
        "agrees with exact patching"
        if trusted(row)
        else f"falls short of the bar for agreeing with exact patching (Spearman {TRUSTED_SPEARMAN:g}, "
        f"{TRUSTED_OVERLAP} of the top {TOP_K})"
    )
    return (
        f"Default: {label}{used}. Of the methods that score {page_images} images within {budget_s:g} s on this "
        f"machine it ranks best on rank agreement with exact patching and circuit KL together (Spearman "
        f"{row['spearman']:.2f}, {row.get(f'top{TOP_K}', 0):.0f} of the top {TOP_K}; KL {row['kl_at_0.5']:.2f} at half "
        f"kept); its ranking {agrees}."
    )
