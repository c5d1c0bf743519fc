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


def circuit_dot(space: EdgeSpace, edges: list[DrawnEdge], switched_off: Collection[str] = frozenset()) -> str:
    """DOT source of the drawn edges: one row per layer's heads and one per layer's MLP (its input node
    "Ln MLP" and the chunks that write), top to bottom; only nodes that a drawn edge touches."""
    g = graphviz.Digraph(
        "circuit",
        graph_attr={"rankdir": "TB", "nodesep": "0.12", "ranksep": "0.45", "bgcolor": "transparent", "newrank": "true"},
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": "#eef3fb",
            "fontsize": "10",
            "height": "0.25",
        },
    )
    top = max((abs(e.score) for e in edges), default=1.0) or 1.0
    touched = {e.upstream for e in edges} | {
        e.input.rsplit(".", 1)[0] if e.input.endswith((".q", ".k", ".v")) else e.input for e in edges
    }
    rows: list[str] = []  # the first node of each row, top to bottom, chained invisibly to keep the layers in order
    if EMBED in touched:
        g.node(EMBED, "embedding", fillcolor="#dddddd")
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
                    row.node(anchor, label, shape="plaintext", style="", fontsize="9")
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
