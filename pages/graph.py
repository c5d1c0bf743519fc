"""Circuit graph page: an edge circuit drawn as a layered graph; switch components off and watch the figures."""

import streamlit as st
import torch

from ui.engine import playground
from ui.figures import show_live_figures, show_timings
from ui.shell import open_page
from ui.streamlit_private import rerun_pending
from vitcore.circuits.graph import (
    INPUT_COLOURS,
    circuit_dot,
    reaching_logits,
    shown_edges,
    summarise_embedding,
    top_paths,
)
from vitcore.compute.workers import WorkerDied
from vitcore.playground import NothingKeptError

state = open_page()
ckpt = state.ckpt
edges = ckpt.model.edges
space = ckpt.model.components
results = state.results
edge_results = [i for i, r in enumerate(results) if r.is_edge]

st.title("Circuit graph")
if not edge_results:
    st.info(
        f"Run a method with Score = edges on the Circuits page: this model has {len(edges):,} edges between its "
        f"{len(space)} components, the embedding and the logits."
    )
    st.stop()

pick = st.selectbox(
    "Edge result",
    edge_results,
    index=len(edge_results) - 1,
    format_func=lambda i: (
        f"#{i + 1} {results[i].method} · {len(results[i].kept or [])} kept edges · {len(results[i].classes)} class(es)"
    ),
    key="graph_result",
)
r = results[pick]
kept = edges.mask_from_keep(r.kept or [])
scores = r.score_tensor()

c1, c2, c3 = st.columns([2, 2, 3])
limit = c1.slider("Edges drawn (best first)", 10, 300, 60, 10, key="graph_limit")
kept_scores = scores[kept > 0.5]
low, high = (float(kept_scores.min()), float(kept_scores.max())) if len(kept_scores) else (0.0, 1.0)
min_score = c2.slider(
    "Minimum score", low, max(high, low + 1e-9), low, (high - low) / 100 or 1e-3, format="%.4g", key=f"graph_min_{pick}"
)
alive_before = edges.alive_components(kept)
choices = [space.names[i] for i in torch.nonzero(alive_before).flatten().tolist()]
off_key = f"graph_off_{pick}"
off = set(c3.multiselect("Switch off components (and every edge into or out of them)", choices, key=off_key))

mask = kept.clone()
for name in off:
    mask[edges.outgoing(name)] = 0
    mask[edges.incoming_of_component(space.id(name))] = 0
alive = edges.alive_components(mask)

view = st.radio(
    "Draw",
    ["strongest edges", "top paths to the logits"],
    horizontal=True,
    key="graph_view",
    help="paths: the embedding-to-logits paths whose weakest edge is strongest",
)
embed_hidden = 0
if view == "top paths to the logits":
    n_paths = st.slider("Paths", 1, 20, 5, key="graph_paths")
    paths = top_paths(shown_edges(edges, mask, scores, min_score, len(edges), off), n_paths)
    drawn = list({id(e): e for _, path in paths for e in path}.values())
else:
    drawn, embed_hidden = summarise_embedding(reaching_logits(shown_edges(edges, mask, scores, min_score, limit, off)))
st.caption(
    f"{int(mask.sum())} of {len(edges):,} edges kept · {int(alive.sum())} of {len(space)} components reach the logits "
    "· "
    f"drawing {len(drawn)} (edges that end nowhere left out; the embedding's weaker edges counted on its node) "
    "· colour = the input an edge feeds: "
    + ", ".join(f"<span style='color:{c}'>{name}</span>" for name, c in INPUT_COLOURS.items()),
    unsafe_allow_html=True,
)

pg = playground(state)
row = None
try:
    fig, row = show_live_figures(pg, alive)
    st.caption(
        "Figures of the physically pruned model that keeps these components (every edge between kept components stays)."
    )
except NothingKeptError:
    st.error("Nothing reaches the logits any more: switch some components back on.")
except WorkerDied as e:
    st.error(str(e))

if drawn:
    st.graphviz_chart(circuit_dot(edges, drawn, off, embed_hidden), width="stretch")
else:
    st.warning("No kept edge passes the filters.")

if choices:
    pick_col, link_col = st.columns([1, 3])
    name = pick_col.selectbox("Look inside", choices, key="graph_inspect", label_visibility="collapsed")
    link_col.page_link(
        "pages/component.py",
        label=f"Look inside {name} (what it attends to and writes)",
        query_params={"component": str(name), "classes": ",".join(r.classes)},
    )

if st.button("Use these components on the Prune page", key="graph_to_prune"):
    state.set_keep(alive)
    st.success(f"The Prune page now starts from these {int(alive.sum())} components.")

if row is not None:  # last: the measured timing may wait for a quiet machine
    show_timings(pg, alive, row, stop=rerun_pending)
