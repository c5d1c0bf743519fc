"""How far to trust each method on a model: its scores against exact single-component patching.

For each class set and each registered method (node level, its default setting and metric): the
Spearman and Pearson correlation of the scores it ranks by with the magnitude of the exact effect
of patching each component alone (same metric, same corruption, same images), the faithfulness of
the patched circuit that keeps the top 25/50/75% of its scores, and its wall time. The table ships
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
from .discover import circuit_faithfulness, discover
from .methods import METHODS
from .metrics import damage_fn
from .patching import Patcher
from .result import keep_top
from .task import Task, build_task

CLASS_SETS = (
    ("n01443537", "n01629819", "n01641577"),  # goldfish, European fire salamander, bullfrog
    ("n04146614", "n04285008", "n04487081"),  # school bus, sports car, trolleybus
    ("n07749582", "n07747607", "n07753592"),  # lemon, orange, banana
)
KEEP_RATIOS = (0.25, 0.5, 0.75)


def table_path() -> Path:
    return assets_dir() / "faithfulness.json"


@torch.no_grad()
def exact_effects(model: VisionTransformer, task: Task, cf, metric: str, candidates: int = 8) -> Tensor:
    """Mean increase of the damage ``metric`` when each component alone is patched with ``cf`` (one forward each)."""
    damage = damage_fn(metric)
    patcher = Patcher(model, task, cf)
    n, b = patcher.size, len(task)
    clean = damage(task.reference_logits, task.reference_logits, task.labels).mean()
    effects = torch.empty(n)
    for start in range(0, n, candidates):
        ids = range(start, min(start + candidates, n))
        masks = torch.ones(len(ids), n)
        masks[torch.arange(len(ids)), list(ids)] = 0.0
        logits = patcher.logits(slice(None), masks.repeat_interleave(b, 0))
        per = (
            damage(logits, task.reference_logits.repeat(len(ids), 1), task.labels.repeat(len(ids)))
            .view(len(ids), b)
            .mean(1)
        )
        effects[list(ids)] = per - clean
    return effects


def _rank(x: Tensor) -> Tensor:
    return torch.argsort(torch.argsort(x, stable=True), stable=True).double()


def pearson(a: Tensor, b: Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom else 0.0


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation (ties broken by order; scores here are continuous)."""
    return pearson(_rank(a), _rank(b))


def measure(
    model: VisionTransformer,
    data: ImageSet,
    class_sets=CLASS_SETS,
    n_images: int = 30,
    methods: list[str] | None = None,
    progress=None,
) -> list[dict[str, Any]]:
    """One row per (method, class set), as described in the module docstring."""
    rows = []
    names = methods or list(METHODS)
    effects_cache: dict[tuple[int, str], Tensor] = {}
    for s, classes in enumerate(class_sets):
        task = build_task(model, data, list(classes), n_images, 0)
        cf = counterfactual(model, task, "resample")
        for name in names:
            entry = METHODS[name]
            result = discover(model, data, list(classes), name, "resample", n_images=n_images)
            scores = result.score_tensor()
            if (s, result.metric) not in effects_cache:
                effects_cache[s, result.metric] = exact_effects(model, task, cf, result.metric)
            exact = effects_cache[s, result.metric].abs()
            row = {
                "method": name,
                "label": entry.label,
                "classes": list(classes),
                "images": len(task),
                "metric": result.metric,
                "spearman": round(spearman(scores, exact), 4),
                "pearson": round(pearson(scores, exact), 4),
                "wall_s": round(result.wall_time_s, 2),
            }
            for ratio in KEEP_RATIOS:
                f = circuit_faithfulness(model, task, keep_top(scores, ratio), cf)
                row[f"kl_at_{ratio:g}"], row[f"top1_at_{ratio:g}"] = round(f["kl"], 4), round(f["top1"], 4)
            rows.append(row)
            if progress:
                progress(row)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: the median of each figure over the class sets."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        keys = [k for k, v in mine[0].items() if isinstance(v, (int, float)) and k != "images"]
        out[name] = {k: round(statistics.median(r[k] for r in mine), 4) for k in keys}
        out[name]["class_sets"] = len(mine)
        out[name]["images"] = mine[0]["images"]
    return out


def load_summary(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The shipped table's per-method summary ({} when the file is absent or unreadable)."""
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
    return (
        f"On the shipped model ({row['class_sets']} class sets x {row['images']} images, medians): Spearman "
        f"{row['spearman']:.2f} "
        f"with exact single-component patching; the patched circuit keeping the top 50% has KL {row['kl_at_0.5']:.2f} "
        "and "
        f"top-1 {row['top1_at_0.5']:.0%} on those images; {row['wall_s']:.1f} s a run."
    )


def most_faithful(summary: dict[str, dict[str, float]], budget_s: float = 2.0, page_images: int = 50) -> str | None:
    """The method whose top-50% circuit has the lowest median KL among those that would score ``page_images``
    images (one class of the bundled set) within ``budget_s`` at the table's measured rate; ties: higher Spearman."""
    affordable = [m for m, r in summary.items() if r["wall_s"] / r["images"] * page_images <= budget_s]
    return min(affordable, key=lambda m: (summary[m]["kl_at_0.5"], -summary[m]["spearman"]), default=None)
