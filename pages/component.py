"""Component page: what one head or MLP chunk does on the chosen classes' eval images."""

import altair as alt
import pandas as pd
import streamlit as st

from ui.shell import open_page
from vitcore.circuits import METHODS
from vitcore.circuits.methods import GROUND_TRUTH
from vitcore.data import normalize
from vitcore.inspect import mean_attention_distance
from vitcore.inspect.attention import patch_attention, patch_grid
from vitcore.inspect.report import SHOWN, InspectError, component_report, outlined, overlay


@st.cache_data(max_entries=64, show_spinner="Looking inside the component…")
def shared_report(sha256: str, data_key: str, classes: tuple[str, ...], name: str, _model, _data):
    """One component's report; the same for every session with the same model, data and classes."""
    return component_report(_model, _data, list(classes), name)


@st.cache_data(max_entries=8, show_spinner="Measuring how far each head looks…")
def shared_distances(sha256: str, data_key: str, classes: tuple[str, ...], _model, _pixels) -> pd.DataFrame:
    """Every head's mean attention distance on the images of ``classes``."""
    dist = mean_attention_distance(_model, _pixels)
    rows = [
        {"layer": layer, "head": f"L{layer}.H{h}", "distance (px)": float(d)}
        for layer, row in enumerate(dist.tolist())
        for h, d in enumerate(row)
        if d == d
    ]
    return pd.DataFrame(rows)


def score_ranks(results, name: str, classes: list[str]) -> list[str]:
    """``<method> (<metric>): rank r of n`` for the newest component result of each method on ``classes``."""
    newest = {r.method: r for r in results if not r.is_edge and r.classes == classes and name in r.component_names}
    out = []
    for r in sorted(newest.values(), key=lambda r: r.method != GROUND_TRUTH):
        score = r.scores[r.component_names.index(name)]
        rank = 1 + sum(s > score for s in r.scores)
        out.append(f"{METHODS[r.method].label} ({r.metric}): rank {rank} of {len(r.scores)}")
    return out


state = open_page()
ckpt, eval_set = state.ckpt, state.eval_set
names = ckpt.model.components.names
st.title("Inside a component")
asked = st.query_params.get("component")
if asked is not None and asked not in names:
    st.error(f"{asked}: there is no such head or MLP chunk in this model (heads L0.H0 …, chunks L0.C0 …).")
choice = st.selectbox(
    "Component",
    names,
    index=names.index(asked) if asked in names else 0,
    key="component_pick",
    help="a head (L3.H5: layer 3, head 5) or a chunk of 32 MLP neurons (L3.C2)",
)
linked = [w for w in (st.query_params.get("classes") or "").split(",") if w in eval_set.wnids]
classes = linked or state.classes or [eval_set.wnids[0]]
labels = dict(zip(eval_set.wnids, eval_set.names))
if not linked and not state.classes:
    st.info(f"No classes chosen on the Circuits page: showing {labels[classes[0]]}.")
try:
    report, strip = shared_report(ckpt.sha256, state.data_key, tuple(classes), choice, ckpt.model, eval_set)
except InspectError as e:
    st.error(str(e))
    st.stop()

kind = "head" if ".H" in choice else "MLP chunk"
where = ", ".join(labels[w] for w in classes)
st.caption(f"{kind} {choice} of the full model, on the {report['images']} eval images of {where}.")
if kind == "head":
    st.subheader("Where the class token looks")
    st.caption(
        f"The class token's attention to each patch (red), on the {SHOWN} images where removing this head "
        "changes the true class's probability most."
    )
else:
    st.subheader("Where it fires")
    st.caption(f"The chunk's mean activation per patch (red), on the {SHOWN} images where it is most active.")
st.image(strip, width="stretch")

if kind == "head":
    st.subheader("Where one patch looks")
    subset = eval_set.of_classes(classes)
    g = patch_grid(ckpt.model)
    i_col, r_col, c_col = st.columns(3)
    image_index = i_col.selectbox(
        "Image", range(min(len(subset), 16)), format_func=lambda i: subset.files[i].rsplit("/", 1)[-1], key="patch_img"
    )
    row = r_col.slider("Patch row", 0, g - 1, g // 2, key="patch_row")
    col = c_col.slider("Patch column", 0, g - 1, g // 2, key="patch_col")
    layer, head = int(choice[1 : choice.index(".")]), int(choice.split(".H")[1])
    image = subset.images[image_index]
    weights = patch_attention(ckpt.model, normalize(image[None], ckpt.model.config), layer, head, row, col)[0]
    st.image(outlined(overlay(image, weights, scale=6), row, col, ckpt.model.config.patch_size * 6), width=384)
    st.caption(f"The attention of the outlined patch (row {row}, column {col}) to every patch in {choice} (red).")

up, down = st.columns(2)
up.subheader("Pushes up")
up.dataframe(pd.DataFrame(report["pushes_up"]), hide_index=True)
down.subheader("Pushes down")
down.dataframe(pd.DataFrame(report["pushes_down"]), hide_index=True)
st.caption(f"Direct logit attribution, mean over these images: {report['convention']}.")

st.subheader("Where removing it matters")
removal = report["removal_summary"]
st.markdown(
    f"Removing {choice} (its output set to zero, as pruning does) lowers the true class's probability on "
    f"**{removal['lowered']} of {removal['images']}** eval images of {where}; mean change "
    f"{removal['mean_change']:+.3f}. This is measured, not estimated."
)
ranks = score_ranks(state.results, choice, classes)
if ranks:
    st.caption(
        "Its rank among the scores of this session's results for these classes: "
        + "; ".join(ranks)
        + ". Exact patching removes each component alone on the discovery images with the run's corruption; "
        "when an estimate and exact patching disagree, trust exact patching."
    )
st.caption("True-class probability with and without this component, on the images where it changes most.")
st.dataframe(pd.DataFrame(report["removal"]), hide_index=True)

if kind == "head":
    st.subheader("How far every head looks")
    pixels_source = eval_set.of_classes(classes)
    pixels = normalize(pixels_source.images[:64], ckpt.model.config)
    frame = shared_distances(ckpt.sha256, state.data_key, tuple(classes), ckpt.model, pixels)
    frame["this one"] = frame["head"] == choice
    st.altair_chart(
        alt.Chart(frame)
        .mark_circle(size=60)
        .encode(
            x=alt.X("layer:O"),
            y=alt.Y("distance (px):Q", title="mean attention distance (px)"),
            color=alt.Color("this one:N", scale=alt.Scale(range=["#9ecae1", "#d62728"]), legend=None),
            tooltip=["head", "distance (px)"],
        ),
        width="stretch",
    )
    st.caption(
        "Per head: the attention-weighted distance from each patch to the patches it attends to, averaged "
        "(small: local, large: global). The chosen head is red."
    )
