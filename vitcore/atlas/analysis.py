"""What an atlas shows: component usage across classes, class-to-class circuit similarity, group circuits.

An atlas is a table with one row per (method, class, component): ``score`` and ``kept`` (0/1).
``write_table`` builds it from the result files; ``load_atlas`` reads it (``table.csv.gz``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..circuits.result import CircuitResult
from ..errors import VitcoreError

TABLE = "table.csv.gz"
COLUMNS = ["method", "wnid", "component", "score", "kept"]


class AtlasDataError(VitcoreError):
    """An atlas table that is missing, malformed, or for other components."""


@dataclass
class Atlas:
    """Scores ``[methods, classes, components]`` and kept sets (0/1) of the same shape."""

    methods: list[str]
    wnids: list[str]
    components: list[str]
    scores: Tensor
    kept: Tensor
    model_sha256: str = ""  # from atlas.json beside the table, when present

    def index(self, method: str) -> int:
        try:
            return self.methods.index(method)
        except ValueError:
            raise AtlasDataError(f"this atlas has no method {method!r}; it has {', '.join(self.methods)}") from None


def write_table(out: str | Path) -> Path:
    """Collect ``OUT/results/*/*.json`` into ``OUT/table.csv.gz`` (method, wnid, component, score, kept)."""
    out = Path(out)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for path in sorted(out.glob("results/*/*.json")):
        r = CircuitResult.load(path)
        kept = set(r.kept or [])
        for name, score in zip(r.component_names, r.scores):
            w.writerow([r.method, r.classes[0], name, f"{score:.6g}", int(name in kept)])
    target = out / TABLE
    target.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
    return target


def load_atlas(path: str | Path) -> Atlas:
    """An atlas from its folder (or the table file itself)."""
    path = Path(path)
    table = path / TABLE if path.is_dir() else path
    try:
        text = gzip.decompress(table.read_bytes()).decode()
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as e:
        raise AtlasDataError(f"cannot read the atlas table {table}: {e}") from e
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != COLUMNS:
        raise AtlasDataError(f"{table} is not an atlas table (expected columns {', '.join(COLUMNS)})")
    methods, wnids, components = ({} for _ in range(3))
    for method, wnid, comp, *_ in rows[1:]:
        methods.setdefault(method, len(methods))
        wnids.setdefault(wnid, len(wnids))
        components.setdefault(comp, len(components))
    scores = torch.full((len(methods), len(wnids), len(components)), float("nan"))
    kept = torch.zeros_like(scores)
    try:
        for method, wnid, comp, score, k in rows[1:]:
            i, j, c = methods[method], wnids[wnid], components[comp]
            scores[i, j, c], kept[i, j, c] = float(score), float(k)
    except ValueError as e:
        raise AtlasDataError(f"{table}: malformed row ({e})") from e
    sha = ""
    try:
        sha = json.loads((table.parent / "atlas.json").read_text()).get("settings", {}).get("model_sha256", "")
    except (OSError, ValueError, AttributeError):
        pass  # the table alone is enough; the model check is then skipped
    return Atlas(list(methods), list(wnids), list(components), scores, kept, sha)


def usage(atlas: Atlas, method: str) -> Tensor:
    """In how many classes' circuits each component is kept, ``[components]``."""
    return atlas.kept[atlas.index(method)].sum(0)


def similarity(atlas: Atlas, method: str) -> Tensor:
    """Jaccard similarity of the classes' kept sets, ``[classes, classes]`` (1 on the diagonal)."""
    k = atlas.kept[atlas.index(method)]
    inter = k @ k.T
    sizes = k.sum(1)
    union = sizes[:, None] + sizes[None, :] - inter
    sim = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))
    return sim.fill_diagonal_(1.0)


def cluster_order(sim: Tensor) -> list[int]:
    """An ordering of the classes that puts similar circuits together (average-linkage clustering on 1 - similarity)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if len(sim) < 3:
        return list(range(len(sim)))
    dist = (1 - sim).clamp(min=0).double()
    dist = (dist + dist.T) / 2
    dist.fill_diagonal_(0)
    return [int(i) for i in leaves_list(linkage(squareform(dist.numpy(), checks=False), method="average"))]


def union_circuit(atlas: Atlas, method: str, wnids: list[str]) -> Tensor:
    """Components kept by any of the classes' circuits, ``[components]`` 0/1."""
    missing = [w for w in wnids if w not in atlas.wnids]
    if missing:
        raise AtlasDataError(f"the atlas has no circuit for {', '.join(missing[:5])}")
    k = atlas.kept[atlas.index(method)]
    return (k[[atlas.wnids.index(w) for w in wnids]].sum(0) > 0).float()


def check_components(atlas: Atlas, names: list[str]) -> None:
    """Refuse an atlas made for a model with other components."""
    if atlas.components != names:
        raise AtlasDataError("this atlas was computed for a model with different components")
