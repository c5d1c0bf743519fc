"""Atlas page: every class's circuit at once, from the precomputed atlas of the shipped model."""

import streamlit as st

from ui.charts import heatmap, score_frames, similarity_chart
from ui.engine import playground
from ui.figures import show_live_figures, show_timings
from ui.shell import open_page
from ui.streamlit_private import rerun_pending
from vitcore.assets import assets_dir
from vitcore.atlas import cluster_order, load_atlas, similarity, union_circuit, usage
from vitcore.atlas.analysis import AtlasDataError, check_components
from vitcore.circuits.methods import DEFAULT_METHOD, METHODS
from vitcore.compute.workers import WorkerDied
from vitcore.playground import NothingKeptError


@st.cache_resource(show_spinner="Reading the atlas…")
def shared_atlas(path: str):
    return load_atlas(path)


@st.cache_resource(show_spinner="Clustering the classes…")
def shared_similarity(path: str, method: str):
    atlas = shared_atlas(path)
    sim = similarity(atlas, method)
    return sim, cluster_order(sim)


state = open_page()
ckpt, eval_set = state.ckpt, state.eval_set
space = ckpt.model.components
names = dict(zip(eval_set.wnids, eval_set.names))
path = str(assets_dir() / "atlas")

st.title("Atlas")
try:
    atlas = shared_atlas(path)
    check_components(atlas, space.names)
except AtlasDataError as e:
    st.info(f"No atlas for this model ({e}). Compute one with `python -m vitcore atlas --out DIR`.")
    st.stop()

if atlas.model_sha256 and atlas.model_sha256 != ckpt.sha256:
    st.warning(
        "This atlas was computed for another checkpoint of the same architecture (the shipped one): its circuits "
        "describe that model."
    )
method = st.selectbox(
    "Method",
    atlas.methods,
    index=atlas.methods.index(DEFAULT_METHOD) if DEFAULT_METHOD in atlas.methods else 0,
    format_func=lambda m: METHODS[m].label if m in METHODS else m,
    key="atlas_method",
)
st.caption(
    f"{len(atlas.wnids)} classes, one circuit each ({method}, the method's default setting, each class's own "
    "discovery images). "
    "Computed by `python -m vitcore atlas` and shipped precomputed: nothing runs here until you measure a group."
)

st.subheader("Which components do the classes share?")
counts = usage(atlas, method)
heads, chunks = score_frames(atlas.components, counts.tolist())
u1, u2 = st.columns(2)
u1.altair_chart(
    heatmap(heads, f"Heads: in how many of {len(atlas.wnids)} circuits", legend="circuits"), width="stretch"
)
u2.altair_chart(
    heatmap(chunks, f"Chunks: in how many of {len(atlas.wnids)} circuits", legend="circuits"), width="stretch"
)
always = int((counts == len(atlas.wnids)).sum())
never = int((counts == 0).sum())
st.caption(f"{always} components are in every class's circuit, {never} in none.")

st.subheader("How similar are two classes' circuits?")
sim, order = shared_similarity(path, method)
labels = [f"{names.get(atlas.wnids[i], atlas.wnids[i])} ({atlas.wnids[i]})" for i in order]
st.altair_chart(
    similarity_chart(sim[order][:, order], labels, "Jaccard overlap of kept sets, classes ordered by clustering"),
    width="stretch",
)

st.subheader("A circuit for a group of classes")
default = [labels[i] for i in range(min(5, len(labels)))]
group = st.multiselect(
    "Classes (the first five in cluster order by default; type to search)", labels, default=default, key="atlas_group"
)
wnids = [g.rsplit("(", 1)[1].rstrip(")") for g in group]
if wnids:
    keep = union_circuit(atlas, method, wnids)
    st.caption(f"Union of their circuits: {int(keep.sum())} of {len(space)} components.")
    pg = playground(state)
    if pg.classes != wnids:
        pg.set_classes(wnids)
    row = None
    try:
        fig, row = show_live_figures(pg, keep)
    except (NothingKeptError, WorkerDied) as e:
        st.error(str(e))
    if st.button("Open this group on the Prune page", key="atlas_to_prune"):
        state.classes = list(wnids)
        state.set_keep(keep)
        st.success(f"The Prune page now shows these {len(wnids)} classes and {int(keep.sum())} components.")
    if row is not None:  # last: the measured timing may wait for a quiet machine
        show_timings(pg, keep, row, stop=rerun_pending)
