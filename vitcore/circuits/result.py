"""A circuit result: one score per component in canonical order, plus how it was obtained.

JSON schema (``"schema": "vitcore.circuit-result"``, ``"version": 2``)::

    method, metric, corruption: str     classes: [wnid, ...]      n_images, seed: int
    wall_time_s: float                  forward_passes, backward_passes: float (forward-pass equivalents)
    params: {str: number}               component_names: [name, ...] (canonical order)
    scores: [float, ...]                kept: [name, ...] or null  faithfulness: {str: float}
    model_sha256: str                   granularity: "node" | "edge"
    shortcut: {target, mark} or null (optional: the mark task of :mod:`vitcore.shortcut`)

Version 2 added ``granularity``: with ``"edge"``, ``component_names`` are edge names
(``L0.H3->L2.H5.q``, in :mod:`vitcore.edges` order) and scores and ``kept`` are per edge.
Version 1 files read as node results.

Higher score always means "more important to keep". Sign conventions per method:
- EAP: magnitude of the estimated change of the damage metric when the component is patched
  (``|eap_scores|``; the signed estimate is ``circuits.eap_scores``). Averaged over images.
- EAP-IG: magnitude of the integrated estimate of the damage change when patched (the signed
  estimate is ``circuits.eap_ig_scores``). Averaged over images, not normalised.
- exact: magnitude of the measured change of the mean damage when the component alone is patched
  (the signed change is ``circuits.exact.exact_effects``; on KL it is never negative).
- ACDC: the increase of KL measured when the component was visited (kept ones >= tau).
- learned: the final ``log_alpha`` of the component's hard-concrete mask.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..components import Component, ComponentSpace
from ..edges import EdgeSpace
from ..errors import parse_json
from .task import TaskError

SCHEMA, VERSION = "vitcore.circuit-result", 2
READABLE_VERSIONS = (1, 2)
GRANULARITIES = ("node", "edge")
_EDGE_NAME = re.compile(r"^(embed|L\d+\.[HC]\d+)->(L\d+\.H\d+\.[qkv]|L\d+\.mlp|logits)$")


class ResultError(TaskError):
    """A scores file that is corrupt, foreign, of another version or for another model."""


@dataclass
class CircuitResult:
    method: str
    metric: str
    corruption: str
    classes: list[str]
    n_images: int
    seed: int
    component_names: list[str]
    scores: list[float]
    kept: list[str] | None = None
    wall_time_s: float = 0.0
    forward_passes: float = 0.0
    backward_passes: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    faithfulness: dict[str, float] = field(default_factory=dict)
    model_sha256: str = ""
    granularity: str = "node"
    shortcut: dict[str, Any] | None = None  # the mark task's shortcut (target and mark); None: the class task

    @property
    def is_edge(self) -> bool:
        return self.granularity == "edge"

    def score_tensor(self) -> torch.Tensor:
        return torch.tensor(self.scores, dtype=torch.float32)

    def keep_mask(
        self, space: ComponentSpace | EdgeSpace, keep_ratio: float | None = None, threshold: float | None = None
    ) -> torch.Tensor:
        """Keep-set as a 0/1 mask over ``space`` (components, or edges for an edge result): top ``keep_ratio``
        of scores, scores >= ``threshold``, or ``kept``."""
        if isinstance(space, EdgeSpace) != self.is_edge:
            raise ResultError(
                f"this is a {self.granularity}-level result; it gives a mask over "
                f"{'edges' if self.is_edge else 'components'}"
            )
        if space.names != self.component_names:
            raise ResultError(
                f"this result was computed for a model with different {'edges' if self.is_edge else 'components'}"
            )
        if keep_ratio is not None:
            return keep_top(self.score_tensor(), keep_ratio)
        if threshold is not None:
            return (self.score_tensor() >= threshold).float()
        if self.kept is not None:
            return space.mask_from_keep(self.kept)
        raise ResultError("give a keep ratio or a threshold; this result has no kept set of its own")

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, "version": VERSION, **asdict(self)}, indent=1)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.write_text(self.to_csv() if path.suffix == ".csv" else self.to_json())

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            ["rank", "edge", "upstream", "input", "score", "kept"]
            if self.is_edge
            else ["rank", "component", "layer", "kind", "index", "score", "kept"]
        )
        kept = set(self.kept or [])
        order = sorted(range(len(self.scores)), key=lambda i: -self.scores[i])
        for rank, i in enumerate(order, 1):
            name = self.component_names[i]
            flag = int(name in kept) if self.kept is not None else ""
            if self.is_edge:
                w.writerow([rank, name, *name.split("->"), f"{self.scores[i]:.6g}", flag])
            else:
                c = Component.parse(name)
                w.writerow([rank, c.name, c.layer, c.kind, c.index, f"{self.scores[i]:.6g}", flag])
        return buf.getvalue()

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "scores file") -> CircuitResult:
        d = parse_json(text, source, ResultError)
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ResultError(f"{source} is not a vitcore circuit result (schema field missing or foreign)")
        if d.get("version") not in READABLE_VERSIONS:
            raise ResultError(
                f"{source} has schema version {d.get('version')!r}; this vitcore reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        d.pop("schema")
        d.pop("version")
        if d.setdefault("granularity", "node") not in GRANULARITIES:
            raise ResultError(
                f"{source}: granularity must be one of {', '.join(GRANULARITIES)}, got {d['granularity']!r}"
            )
        names, scores = d.get("component_names"), d.get("scores")
        if not isinstance(names, list) or not isinstance(scores, list) or len(names) != len(scores):
            raise ResultError(f"{source}: component_names and scores must be lists of equal length")
        if not all(isinstance(s, (int, float)) and math.isfinite(s) for s in scores):
            raise ResultError(f"{source}: scores must be finite numbers")
        unknown = sorted(set(d.get("kept") or []) - set(names)) if isinstance(d.get("kept"), list) else []
        if unknown:
            raise ResultError(
                f"{source}: kept names component(s) that are not among its component_names: "
                f"{', '.join(map(str, unknown[:5]))}"
            )
        try:
            if d["granularity"] == "edge":
                bad = [n for n in names if not isinstance(n, str) or not _EDGE_NAME.match(n)]
                if bad:
                    raise ValueError(f"not an edge name: {bad[0]!r} (expected like 'L0.H3->L2.H5.q')")
            else:
                [Component.parse(n) for n in names + list(d.get("kept") or [])]
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ResultError(f"{source}: {e}") from e

    @classmethod
    def load(cls, path: str | Path) -> CircuitResult:
        try:
            return cls.from_json(Path(path).read_bytes(), str(path))
        except OSError as e:
            raise ResultError(f"cannot read {path}: {e}") from e


def keep_top(scores: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """0/1 mask keeping the ``round(keep_ratio * n)`` highest scores (at least one)."""
    if not 0 < keep_ratio <= 1:
        raise TaskError(f"keep ratio must be in (0, 1], got {keep_ratio}")
    k = max(1, round(keep_ratio * len(scores)))
    mask = torch.zeros(len(scores))
    mask[torch.argsort(scores, descending=True, stable=True)[:k]] = 1.0
    return mask
