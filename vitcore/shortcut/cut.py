"""Cutting the shortcut: remove the top components of its circuit (physically) against random ones.

For each ``k`` the table holds the flip rate and clean top-1 of the model with the ``k`` highest-scoring
components removed, and of the model with ``k`` random components removed (one row per seed, the
control), all measured by :func:`vitcore.shortcut.figures.shortcut_figures` on the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..data import ImageSet
from ..model import VisionTransformer
from ..pruning import prune
from .figures import shortcut_figures
from .mark import Shortcut, ShortcutError


def top_components(scores: Tensor, k: int) -> list[int]:
    """Indices of the ``k`` highest scores (ties: the lower index first)."""
    return torch.argsort(scores, descending=True, stable=True)[:k].tolist()


def random_components(n: int, k: int, seed: int) -> list[int]:
    """``k`` distinct component indices out of ``n``, drawn by ``seed``."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist()


def without(model: VisionTransformer, removed: Sequence[int]) -> VisionTransformer:
    """The physically pruned model with the components ``removed`` cut out."""
    keep = torch.ones(len(model.components))
    keep[list(removed)] = 0.0
    return prune(model, keep)


def cut_table(
    model: VisionTransformer,
    scores: Tensor | dict[str, Tensor],
    data: ImageSet,
    shortcut: Shortcut,
    ks: Sequence[int] = (1, 2, 4, 8, 16),
    seeds: Sequence[int] = (0, 1, 2),
    progress: Callable[[float], None] | None = None,
) -> list[dict[str, Any]]:
    """One row for the model as it is (``k`` 0), then per ``k``: each circuit's top ``k`` removed (``scores`` by
    method name, or one tensor: selection "circuit"), and ``k`` random components removed per seed (shared by every
    circuit). Each row: selection, k, seed, removed (names), and the shortcut figures."""
    n = len(model.components)
    by_method = scores if isinstance(scores, dict) else {"circuit": scores}
    for name, s in by_method.items():
        if s.shape != (n,):
            raise ShortcutError(f"{name} scores have shape {tuple(s.shape)}; the model has {n} components")
    bad = [k for k in ks if not 0 < k < n]
    if bad:
        raise ShortcutError(f"k must be between 1 and {n - 1} (the model has {n} components), got {bad}")
    plan: list[tuple[str, int, int | None, list[int]]] = [("none", 0, None, [])]
    for k in ks:
        plan += [(name, k, None, top_components(s, k)) for name, s in by_method.items()]
        plan += [("random", k, s, random_components(n, k, s)) for s in seeds]
    names = model.components.names
    rows = []
    for i, (selection, k, seed, removed) in enumerate(plan):
        pruned = without(model, removed) if removed else model
        figures = shortcut_figures(pruned, data, shortcut.target, shortcut.mark)
        rows.append({"selection": selection, "k": k, "seed": seed, "removed": [names[j] for j in removed], **figures})
        if progress:
            progress((i + 1) / len(plan))
    return rows


def summarise(rows: list[dict[str, Any]], selection: str = "circuit") -> list[dict[str, Any]]:
    """Per ``k``: one circuit's flip rate and clean top-1 (``selection``: its method name, or "circuit") beside the
    random control's mean, min and max."""
    out = []
    base = next(r for r in rows if r["selection"] == "none")
    for k in sorted({r["k"] for r in rows if r["k"]}):
        circuit = next(r for r in rows if r["selection"] == selection and r["k"] == k)
        rand = [r for r in rows if r["selection"] == "random" and r["k"] == k]
        flips = [r["flip_rate"] for r in rand]
        tops = [r["clean_top1"] for r in rand]
        out.append(
            {
                "k": k,
                "circuit_flip_rate": circuit["flip_rate"],
                "circuit_clean_top1": circuit["clean_top1"],
                "circuit_top1_drop": base["clean_top1"] - circuit["clean_top1"],
                "random_flip_rate_mean": sum(flips) / len(flips) if flips else float("nan"),
                "random_flip_rate_min": min(flips, default=float("nan")),
                "random_flip_rate_max": max(flips, default=float("nan")),
                "random_clean_top1_mean": sum(tops) / len(tops) if tops else float("nan"),
                "removed": circuit["removed"],
            }
        )
    return out
