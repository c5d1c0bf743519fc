"""The Circuit graph's drawing: dead ends left out, the embedding summarised, top paths against brute force."""

import itertools
import random

from vitcore.circuits.graph import DrawnEdge, circuit_dot, reaching_logits, summarise_embedding, top_paths
from vitcore.edges import EMBED, LOGITS


def E(up, down, score):
    return DrawnEdge(up, down, score)


def test_dead_ends_are_left_out():
    edges = [
        E(EMBED, "L0.H0.q", 0.9),
        E("L0.H0", LOGITS, 0.5),
        E(EMBED, "L1.H2.k", 0.8),  # L1.H2 writes nowhere drawn
        E("L0.C1", "L1.mlp", 0.4),
        E("L1.C0", LOGITS, 0.3),
        E("L0.H1", "L2.mlp", 0.2),  # no chunk of layer 2 writes anywhere
        E(EMBED, "L0.mlp", 0.1),  # reaches through L0.C1 -> L1.mlp -> L1.C0 -> logits
    ]
    kept = reaching_logits(edges)
    assert [(e.upstream, e.input) for e in kept] == [
        (EMBED, "L0.H0.q"),
        ("L0.H0", LOGITS),
        ("L0.C1", "L1.mlp"),
        ("L1.C0", LOGITS),
        (EMBED, "L0.mlp"),
    ]


def test_embedding_edges_are_summarised():
    edges = [E(EMBED, f"L0.H{i}.v", float(i)) for i in range(10)] + [E("L0.H1", LOGITS, 1.0)]
    shown, hidden = summarise_embedding(edges, keep=3)
    assert hidden == 7 and sorted(e.input for e in shown if e.upstream == EMBED) == ["L0.H7.v", "L0.H8.v", "L0.H9.v"]
    assert E("L0.H1", LOGITS, 1.0) in shown


def _brute_force_paths(edges):
    """Every embedding-to-logits path by depth-first search, with its weakest edge."""
    chunks_of = lambda layer: {e.upstream for e in edges if e.upstream.startswith(f"L{layer}.C")}  # noqa: E731
    out = []

    def walk(node, path):
        for e in edges:
            if e.upstream != node:
                continue
            target = e.input.rsplit(".", 1)[0] if e.input.endswith((".q", ".k", ".v")) else e.input
            if target == LOGITS:
                out.append((min(abs(x.score) for x in [*path, e]), [*path, e]))
            elif target.endswith(".mlp"):
                for c in chunks_of(target.split(".")[0][1:]):
                    walk(c, [*path, e])
            else:
                walk(target, [*path, e])

    walk(EMBED, [])
    return sorted(out, key=lambda p: -p[0])


def test_top_paths_match_a_brute_force_search():
    small = [
        E(EMBED, "L0.H0.q", 0.9),
        E("L0.H0", LOGITS, 0.5),
        E(EMBED, "L0.mlp", 0.8),
        E("L0.C0", LOGITS, 0.7),
        E("L0.H0", "L0.mlp", 0.6),
    ]
    assert [round(s, 6) for s, _ in top_paths(small, 3)] == [0.7, 0.6, 0.5]
    rng = random.Random(0)
    nodes = [EMBED] + [f"L{layer}.{k}{i}" for layer in range(3) for k in "HC" for i in range(2)]
    inputs = [f"L{layer}.H{i}.{x}" for layer in range(3) for i in range(2) for x in "qkv"]
    inputs += [f"L{layer}.mlp" for layer in range(3)] + [LOGITS]

    def layer_of(name):
        return -1 if name == EMBED else 99 if name == LOGITS else int(name.split(".")[0][1:])

    def allowed(up, down):  # edges run forward: a head feeds its own layer's MLP, never its own heads
        lu, ld = layer_of(up), layer_of(down)
        return ld > lu or (ld == lu and ".H" in up and down.endswith(".mlp"))

    candidates = [(u, d) for u, d in itertools.product(nodes, inputs) if allowed(u, d)]
    for trial in range(20):
        edges = [E(u, d, rng.uniform(-1, 1)) for u, d in rng.sample(candidates, 25)]
        want = [round(s, 9) for s, _ in _brute_force_paths(edges)[:5]]
        assert [round(s, 9) for s, _ in top_paths(edges, 5)] == want, trial


def test_dot_labels_are_large_enough_for_a_projector():
    from vitcore import load_checkpoint

    space = load_checkpoint().model.edges
    dot = circuit_dot(space, [E(EMBED, "L0.H0.q", 1.0), E("L0.H0", LOGITS, 0.5)], embed_hidden=12)
    assert "fontsize=14" in dot and "+12 weaker edges not drawn" in dot
