"""An edge circuit as a layered graph (Graphviz DOT): layers top to bottom, heads and chunks as nodes.

Edges into a head are drawn to the head and coloured by the input they feed (query, key, value);
edges into a layer's MLP input end at that layer's "MLP" node, in the row of its chunks; edges into
the logits end at the logits node. Line width grows with the edge's score.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import graphviz
import torch
from torch import Tensor

from ..edges import EMBED, LOGITS, EdgeSpace

INPUT_COLOURS = {"q": "#1f77b4", "k": "#2ca02c", "v": "#ff7f0e", "mlp": "#7f7f7f", LOGITS: "#000000"}


@dataclass
class DrawnEdge:
    upstream: str
    input: str
    score: float


def shown_edges(
    space: EdgeSpace,
    kept: Tensor,
    scores: Tensor,
    min_score: float = float("-inf"),
    limit: int = 300,
    switched_off: Collection[str] = frozenset(),
) -> list[DrawnEdge]:
    """Kept edges scoring at least ``min_score``, best first, at most ``limit``; edges of switched-off components are
    left out.
    """
    ids = torch.nonzero((kept > 0.5) & (scores >= min_score)).flatten()
    ids = ids[torch.argsort(scores[ids], descending=True, stable=True)]
    out = []
    for i in ids.tolist():
        up, down = space.names[i].split("->")
        owner = down.rsplit(".", 1)[0] if down.endswith((".q", ".k", ".v")) else None
        if up in switched_off or owner in switched_off:
            continue
        out.append(DrawnEdge(up, down, float(scores[i])))
        if len(out) == limit:
            break
    return out


def _target(edge: DrawnEdge) -> str:
    """The node an edge ends at: the head for its q/k/v inputs, ``Ln.mlp`` for a layer's MLP input, or the logits."""
    return edge.input.rsplit(".", 1)[0] if edge.input.endswith((".q", ".k", ".v")) else edge.input


def _next_nodes(target: str, outputs: set[str]) -> list[str]:
    """Where a path continues from an edge's target: a layer's MLP input leads to that layer's chunks."""
    if target.endswith(".mlp"):
        layer = target.split(".")[0]
        return sorted(n for n in outputs if n.startswith(f"{layer}.C"))
    return [target]


def reaching_logits(edges: list[DrawnEdge]) -> list[DrawnEdge]:
    """The edges on some path of ``edges`` that ends at the logits (dead ends left out of the drawing)."""
    outputs = {e.upstream for e in edges}
    alive = {LOGITS}
    changed = True
    while changed:
        changed = False
        for e in edges:
            if e.upstream not in alive and any(n in alive for n in _next_nodes(_target(e), outputs) + [_target(e)]):
                alive.add(e.upstream)
                changed = True
    return [e for e in edges if any(n in alive for n in _next_nodes(_target(e), outputs) + [_target(e)])]


def _order(node: str) -> tuple[int, int]:
    """Topological position: the embedding, then per layer its heads, its MLP input and its chunks, then the logits."""
    if node == EMBED:
        return (-1, 0)
    if node == LOGITS:
        return (10**9, 0)
    layer = int(node.split(".")[0][1:])
    return (layer, 0 if ".H" in node else 1 if node.endswith(".mlp") else 2)


def top_paths(edges: list[DrawnEdge], n: int = 5) -> list[tuple[float, list[DrawnEdge]]]:
    """The ``n`` paths from the embedding to the logits whose weakest edge (by ``|score|``) is strongest, strongest
    first; a path is its list of edges (an edge into a layer's MLP continues from any of that layer's chunks)."""
    outputs = {e.upstream for e in edges}
    by_source: dict[str, list[DrawnEdge]] = {}
    for e in edges:
        by_source.setdefault(e.upstream, []).append(e)
    best: dict[str, list[tuple[float, list[DrawnEdge]]]] = {EMBED: [(float("inf"), [])]}
    nodes = sorted(outputs | {LOGITS}, key=_order)
    done: list[tuple[float, list[DrawnEdge]]] = []
    for node in nodes:
        for strength, path in best.get(node, []):
            for e in by_source.get(node, []):
                step = (min(strength, abs(e.score)), [*path, e])
                for nxt in _next_nodes(_target(e), outputs):
                    if nxt == LOGITS:
                        done.append(step)
                    elif _order(nxt) > _order(node):
                        best.setdefault(nxt, []).append(step)
                        best[nxt] = sorted(best[nxt], key=lambda p: -p[0])[:n]
    return sorted(done, key=lambda p: -p[0])[:n]


def summarise_embedding(edges: list[DrawnEdge], keep: int = 6) -> tuple[list[DrawnEdge], int]:
    """The edges with at most ``keep`` of the embedding's (its strongest), and how many of its edges were left out."""
    from_embed = [e for e in edges if e.upstream == EMBED]
    dropped = {id(e) for e in sorted(from_embed, key=lambda e: -abs(e.score))[keep:]}
    return [e for e in edges if id(e) not in dropped], len(dropped)


def circuit_dot(
    space: EdgeSpace, edges: list[DrawnEdge], switched_off: Collection[str] = frozenset(), embed_hidden: int = 0
) -> str:
    """DOT source of the drawn edges: one row per layer's heads and one per layer's MLP (its input node
    "Ln MLP" and the chunks that write), top to bottom; only nodes that a drawn edge touches. Labels are 14 pt
    (readable on a projector); ``embed_hidden`` edges of the embedding left out are counted on its node."""
    g = graphviz.Digraph(
        "circuit",
        graph_attr={"rankdir": "TB", "nodesep": "0.2", "ranksep": "0.5", "bgcolor": "transparent", "newrank": "true"},
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": "#eef3fb",
            "fontsize": "14",
            "height": "0.35",
        },
    )
    top = max((abs(e.score) for e in edges), default=1.0) or 1.0
    touched = {e.upstream for e in edges} | {
        e.input.rsplit(".", 1)[0] if e.input.endswith((".q", ".k", ".v")) else e.input for e in edges
    }
    rows: list[str] = []  # the first node of each row, top to bottom, chained invisibly to keep the layers in order
    if EMBED in touched:
        label = f"embedding (+{embed_hidden} weaker edges not drawn)" if embed_hidden else "embedding"
        g.node(EMBED, label, fillcolor="#dddddd")
        rows.append(EMBED)
    for layer in range(space.components.depth):
        heads = [n for n in space.nodes if n.startswith(f"L{layer}.H") and n in touched]
        chunks = [n for n in space.nodes if n.startswith(f"L{layer}.C") and n in touched]
        mlp_in = f"L{layer}.mlp"
        for members, label, anchor in (
            (heads, f"layer {layer}", f"L{layer}.row"),
            (chunks + ([mlp_in] if mlp_in in touched else []), None, None),
        ):
            if not members:
                continue
            # subgraph() without a graph argument returns a context manager (documented; the stubs say Optional)
            with g.subgraph(name=f"row_{members[0]}", graph_attr={"rank": "same"}) as row:  # pyright: ignore[reportOptionalContextManager]
                if anchor:
                    row.node(anchor, label, shape="plaintext", style="", fontsize="12")
                for n in members:
                    if n == mlp_in:
                        row.node(n, f"L{layer} MLP", fillcolor="#dddddd", shape="box")
                    else:
                        row.node(
                            n, n, fillcolor="#f8d7da" if n in switched_off else ("#e6f4ea" if ".C" in n else "#eef3fb")
                        )
            rows.append(anchor or members[0])
    g.node(LOGITS, "logits", fillcolor="#dddddd")
    rows.append(LOGITS)
    for a, b in zip(rows, rows[1:]):
        g.edge(a, b, style="invis", weight="10")
    for e in edges:
        width = f"{0.4 + 3.6 * abs(e.score) / top:.2f}"
        tooltip = f"{e.upstream} -> {e.input} ({e.score:.3g})"
        if e.input.endswith((".q", ".k", ".v")):
            head, which = e.input.rsplit(".", 1)
            g.edge(e.upstream, head, penwidth=width, color=INPUT_COLOURS[which], tooltip=tooltip)
        else:
            g.edge(
                e.upstream,
                e.input,
                penwidth=width,
                color=INPUT_COLOURS["mlp" if e.input.endswith(".mlp") else LOGITS],
                tooltip=tooltip,
            )
    return g.source
