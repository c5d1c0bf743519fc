"""A session's work as plain JSON and back: what a reload or a server restart must give back (the keep-sets, the
circuit results and the fine-tunes' settings of each model the session used), not what can be recomputed (figures,
pruned copies, fine-tuned weights).

Reading is as careful as with any user's file: the saved JSON is checked field by field and a result goes through
:meth:`~vitcore.circuits.result.CircuitResult.from_json`'s own checks; anything that does not fit is left out.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch

from ..circuits.result import CircuitResult
from ..errors import VitcoreError
from .workspace import Workspace

VERSION = 1
MAX_COMPONENTS = 1 << 16  # a keep-set longer than this is not a model's


@dataclass(frozen=True)
class FineTuneSettings:
    """How a fine-tune ran, and the keep-set it started from: enough to run it again."""

    keep: tuple[float, ...]
    steps: int
    lr: float
    distill: bool
    focus: bool

    def to_json(self) -> dict[str, Any]:
        return {"keep": [int(v) for v in self.keep], "steps": self.steps, "lr": self.lr} | {
            "distill": self.distill,
            "focus": self.focus,
        }

    @classmethod
    def from_json(cls, d: Any) -> FineTuneSettings | None:
        if not isinstance(d, dict):
            return None
        keep = _keep(d.get("keep"))
        steps, lr = d.get("steps"), d.get("lr")
        if keep is None or not isinstance(steps, int) or not 0 < steps <= 100_000:
            return None
        if not isinstance(lr, (int, float)) or not (math.isfinite(lr) and 0 < lr < 1):
            return None
        return cls(tuple(keep.tolist()), steps, float(lr), bool(d.get("distill")), bool(d.get("focus")))


def _keep(value: Any) -> torch.Tensor | None:
    """A saved keep-set (a list of 0/1), or None when it is not one."""
    if not isinstance(value, list) or not 0 < len(value) <= MAX_COMPONENTS:
        return None
    if not all(v in (0, 1) for v in value):
        return None
    return torch.tensor(value, dtype=torch.float32)


def workspace_to_json(key: tuple[str, str], work: Workspace, result_json: Any = None) -> dict[str, Any]:
    """One workspace's work; ``result_json(result)`` may stand in for ``result.to_json()`` (a cache)."""
    to_json = result_json or (lambda r: r.to_json())
    return {
        "model": key[0],
        "data": key[1],
        "keep": None if work.keep is None else [int(v > 0.5) for v in work.keep.tolist()],
        "results": [to_json(r) for r in work.results],
        "active_result": work.active_result,
        "fine_tunes": [s.to_json() for s in work.fine_tune_settings],
    }


def workspace_from_json(d: Any) -> tuple[tuple[str, str], Workspace] | None:
    """A workspace back from :func:`workspace_to_json`'s JSON; None when its key is not there."""
    if not isinstance(d, dict) or not isinstance(d.get("model"), str) or not isinstance(d.get("data"), str):
        return None
    work = Workspace(keep=_keep(d.get("keep")))
    for text in d.get("results") or []:
        if isinstance(text, str):
            try:
                work.results.append(CircuitResult.from_json(text, "a saved circuit result"))
            except VitcoreError:
                continue
    active = d.get("active_result")
    work.active_result = active if isinstance(active, int) and 0 <= active < len(work.results) else None
    work.fine_tune_settings = [
        s for s in (FineTuneSettings.from_json(x) for x in d.get("fine_tunes") or []) if s is not None
    ]
    return (d["model"], d["data"]), work


def session_to_json(settings: dict[str, Any], workspaces: list[tuple[Hashable, Workspace]], **kw: Any) -> dict:
    """A session's work: its settings (strings, lists of strings, numbers) and its workspaces, oldest first."""
    return {
        "version": VERSION,
        "settings": settings,
        "workspaces": [
            workspace_to_json(key, work, **kw) for key, work in workspaces if isinstance(key, tuple) and len(key) == 2
        ],
    }


def session_from_json(d: Any) -> tuple[dict[str, Any], list[tuple[tuple[str, str], Workspace]]]:
    """The settings and the workspaces of :func:`session_to_json`'s JSON (what cannot be read is left out)."""
    if not isinstance(d, dict) or d.get("version") != VERSION:
        return {}, []
    settings = d.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    workspaces = [w for w in (workspace_from_json(x) for x in d.get("workspaces") or []) if w is not None]
    return settings, workspaces
