"""An edge circuit as a layered graph (Graphviz DOT): layers top to bottom, heads and chunks as nodes.

Edges into a head are drawn to the head and coloured by the input they feed (query, key, value);
edges into a layer's MLP input end at the box holding that layer's chunks; edges into the logits
end at the logits node. Line width grows with the edge's score.
"""

from __future__ import annotations

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


def shown_edges(space: EdgeSpace, kept: Tensor, scores: Tensor, min_score: float = float("-inf"), limit: int = 300,
                switched_off: set[str] = frozenset()) -> list[DrawnEdge]:
    """Kept edges scoring at least ``min_score``, best first, at most ``limit``; edges of switched-off components are left out."""
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


def circuit_dot(space: EdgeSpace, edges: list[DrawnEdge], switched_off: set[str] = frozenset()) -> str:
    """DOT source of the drawn edges: only nodes that an edge touches, ranked by layer."""
    g = graphviz.Digraph("circuit", graph_attr={"rankdir": "TB", "compound": "true", "nodesep": "0.15", "ranksep": "0.5", "bgcolor": "transparent"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "#eef3fb", "fontsize": "10", "height": "0.25"})
    top = max((abs(e.score) for e in edges), default=1.0) or 1.0
    upstream = {e.upstream for e in edges}
    heads_read = {e.input.rsplit(".", 1)[0] for e in edges if e.input.endswith((".q", ".k", ".v"))}
    mlp_read = {int(e.input[1:].split(".")[0]) for e in edges if e.input.endswith(".mlp")}
    if EMBED in upstream:
        g.node(EMBED, "embedding", fillcolor="#dddddd")
    for layer in range(space.components.depth):
        heads = [n for n in space.nodes if n.startswith(f"L{layer}.H") and (n in upstream or n in heads_read)]
        with g.subgraph(name=f"rank_heads_{layer}", graph_attr={"rank": "same"}) as s:
            for n in heads:
                s.node(n, n, fillcolor="#f8d7da" if n in switched_off else "#eef3fb")
        chunks = [n for n in space.nodes if n.startswith(f"L{layer}.C") and n in upstream]
        if chunks or layer in mlp_read:
            with g.subgraph(name=f"cluster_mlp_{layer}", graph_attr={"label": f"L{layer} MLP", "fontsize": "9", "style": "rounded", "color": "#999999"}) as s:
                for n in chunks or [f"L{layer}.mlp"]:
                    s.node(n, n if n in space.nodes else "input", fillcolor="#f8d7da" if n in switched_off else "#e6f4ea")
    g.node(LOGITS, "logits", fillcolor="#dddddd")
    for e in edges:
        width = f"{0.4 + 3.6 * abs(e.score) / top:.2f}"
        if e.input == LOGITS:
            g.edge(e.upstream, LOGITS, penwidth=width, color=INPUT_COLOURS[LOGITS])
        elif e.input.endswith(".mlp"):
            layer = int(e.input[1:].split(".")[0])
            chunks = [n for n in space.nodes if n.startswith(f"L{layer}.C") and n in upstream]
            g.edge(e.upstream, chunks[0] if chunks else e.input, lhead=f"cluster_mlp_{layer}", penwidth=width, color=INPUT_COLOURS["mlp"],
                   tooltip=f"{e.upstream} -> {e.input} ({e.score:.3g})")
        else:
            head, which = e.input.rsplit(".", 1)
            g.edge(e.upstream, head, penwidth=width, color=INPUT_COLOURS[which], tooltip=f"{e.upstream} -> {e.input} ({e.score:.3g})")
    return g.source
