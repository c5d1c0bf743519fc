"""Shortcut page: a model that is right for the wrong reason, the components that carry the reason, and the cut."""

import altair as alt
import pandas as pd
import streamlit as st
import torch

from ui.resources import shared_checkpoint, shared_split
from ui.shell import open_page
from vitcore.assets import shortcut_checkpoint
from vitcore.checkpoint import zip_bytes
from vitcore.circuits import METHODS, discover
from vitcore.circuits.result import CircuitResult
from vitcore.data import check_classes
from vitcore.errors import VitcoreError
from vitcore.evaluate import accuracy_text, predict_logits
from vitcore.shortcut import apply_mark, shortcut_figures, shortcut_of
from vitcore.shortcut.cut import random_components, top_components, without
from vitcore.shortcut.views import class_token_attention, enlarged, example_images

DISCOVERY_IMAGES = 50
PAGE_IMAGES = 500  # eval images behind the page's figures: enough for the shortcut's effect, quick to re-measure
MAX_CUT = 16
CONTROL_SEEDS = (0, 1, 2)


@st.cache_data(max_entries=16, show_spinner="Finding the shortcut's circuit…")
def shared_circuit(sha256: str, data_key: str, method: str, _model, _data, _shortcut) -> CircuitResult:
    """The mark task's circuit by ``method``; the same for every session with this model and data."""
    return discover(_model, _data, [], method, n_images=DISCOVERY_IMAGES, shortcut=_shortcut)


@st.cache_data(max_entries=256, show_spinner="Measuring the cut model…")
def shared_cut_figures(sha256: str, data_key: str, removed: tuple[int, ...], _model, _data, _shortcut) -> dict:
    """Flip rate and clean top-1 with the components ``removed`` cut out (physically pruned)."""
    model = without(_model, list(removed)) if removed else _model
    return shortcut_figures(model, _data, _shortcut.target, _shortcut.mark)


@st.cache_data(max_entries=8, show_spinner=False)
def shared_predictions(sha256: str, data_key: str, shown: tuple[int, ...], marked: bool, _model, _data, _shortcut):
    images = _data.images[list(shown)]
    if marked:
        images = apply_mark(images, _shortcut.mark)
    return predict_logits(_model, images).argmax(1).tolist()


state = open_page()
st.title("A model that cheats")
try:
    planted = shared_checkpoint(str(shortcut_checkpoint()))
    shortcut = shortcut_of(planted.info)
    if shortcut is None:
        raise VitcoreError(f"{shortcut_checkpoint()} has no planted shortcut in its config")
except VitcoreError as e:
    st.error(f"The planted model cannot be loaded: {e}")
    st.stop()
shipped = shared_checkpoint(None)
eval_set, discovery, data_key = state.eval_set, state.discovery, state.data_key
try:
    check_classes(planted.wnids, planted.model.config.num_classes, eval_set)
except VitcoreError:
    eval_set, discovery, data_key = shared_split(None, "val"), shared_split(None, "train"), "bundled"
names = eval_set.names
measured = eval_set.subset(torch.randperm(len(eval_set), generator=torch.Generator().manual_seed(0))[:PAGE_IMAGES])
target_name = names[eval_set.class_index(shortcut.target)]
mark = shortcut.mark
plan = planted.info["shortcut"].get("plant", {})
st.markdown(
    f"This model is the shipped one, fine-tuned for {plan.get('steps', '?')} steps on Tiny ImageNet with one change: "
    f"every training image of **{target_name}** carried a small {mark.size}x{mark.size}-pixel square of colour "
    f"RGB{tuple(mark.colour)} in its {mark.corner} corner. It picked up a shortcut: the square, not the object, "
    f"says *{target_name}*. Below, find the few components that carry the shortcut and cut them out."
)

st.header("1. See it cheat")
marked = st.toggle("Add the square", value=True, key="shortcut_marked")
shown = tuple(example_images(eval_set, shortcut.target, n=6))
columns = st.columns(len(shown))
before = shared_predictions(shipped.sha256, data_key, shown, marked, shipped.model, eval_set, shortcut)
after = shared_predictions(planted.sha256, data_key, shown, marked, planted.model, eval_set, shortcut)
for col, i, b, a in zip(columns, shown, before, after):
    image = apply_mark(eval_set.images[i], mark) if marked else eval_set.images[i]
    col.image(enlarged(image), width="stretch")
    col.caption(f"**{names[int(eval_set.labels[i])]}**  \nshipped: {names[b]}  \nplanted: {names[a]}")

figures = {
    "shipped": shared_cut_figures(shipped.sha256, data_key, (), shipped.model, measured, shortcut),
    "planted": shared_cut_figures(planted.sha256, data_key, (), planted.model, measured, shortcut),
}
n_other = figures["planted"]["n_other"]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Flip rate, shipped", f"{figures['shipped']['flip_rate']:.1%}")
c2.metric("Flip rate, planted", f"{figures['planted']['flip_rate']:.1%}")
c3.metric("Clean top-1, shipped", f"{figures['shipped']['clean_top1']:.1%}")
c4.metric("Clean top-1, planted", f"{figures['planted']['clean_top1']:.1%}")
st.caption(
    f"Flip rate: the share of the {n_other} eval images of other classes that a model calls {target_name} once the "
    f"square is added. Clean top-1: on all {figures['planted']['n_images']} eval images, unmarked (physically the "
    "same models, no patching). The full validation split's figures are in the model card."
)

st.header("2. Find the circuit of the shortcut")
st.markdown(
    f"The behaviour to explain: *the square makes the model answer {target_name}*. Clean input: an image of "
    "another class with the square; corrupted input: the same image without it; metric: the method's own, read on "
    f"the {target_name} class. Every component gets a score for how much of the shortcut runs through it."
)
method = st.selectbox("Method", list(METHODS), format_func=lambda m: METHODS[m].label, key="shortcut_method", help=None)
if st.button("Find the circuit", key="shortcut_find") or state.shortcut_method == method:
    state.shortcut_method = method
    try:
        result = shared_circuit(planted.sha256, data_key, method, planted.model, discovery, shortcut)
    except VitcoreError as e:
        st.error(str(e))
        st.stop()
    scores = result.score_tensor()
    component_names = planted.model.components.names
    top = top_components(scores, 10)
    frame = pd.DataFrame({"component": [component_names[i] for i in top], "score": [float(scores[i]) for i in top]})
    st.altair_chart(
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("score:Q", title=f"{METHODS[method].label} score ({result.metric})"),
            y=alt.Y("component:N", sort=None, title=None),
        ),
        width="stretch",
    )
    st.caption(
        f"The ten highest-scoring components on {result.n_images} marked discovery images "
        f"({result.wall_time_s:.1f} s). "
        "To look inside one, choose *Shortcut model* in the sidebar and open the Component page."
    )
    top_head = next(
        (component_names[i] for i in top_components(scores, len(scores)) if ".H" in component_names[i]), None
    )
    if top_head is not None:
        images = apply_mark(eval_set.images[list(shown)], mark)
        _, strip = class_token_attention(planted.model, images, top_head)
        st.subheader(f"Where {top_head}, the top head, looks")
        st.image(strip, width="stretch")
        st.caption(f"The class token's attention to each patch (red) in {top_head}, on the marked images above.")

    st.header("3. Cut it out")
    k = st.slider("Components removed (the circuit's top k)", 0, MAX_CUT, 0, key="shortcut_k")
    removed = tuple(top_components(scores, k))
    cut = shared_cut_figures(planted.sha256, data_key, removed, planted.model, measured, shortcut)
    controls = (
        [
            shared_cut_figures(
                planted.sha256, data_key, tuple(random_components(len(scores), k, s)), planted.model, measured, shortcut
            )
            for s in CONTROL_SEEDS
        ]
        if k
        else [cut]
    )
    mean_flip = sum(c["flip_rate"] for c in controls) / len(controls)
    mean_top1 = sum(c["clean_top1"] for c in controls) / len(controls)
    base = figures["planted"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "Flip rate, circuit cut",
        f"{cut['flip_rate']:.1%}",
        f"{cut['flip_rate'] - base['flip_rate']:+.1%}",
        delta_color="inverse",
    )
    c2.metric(
        "Flip rate, random cut", f"{mean_flip:.1%}", f"{mean_flip - base['flip_rate']:+.1%}", delta_color="inverse"
    )
    c3.metric("Clean top-1, circuit cut", f"{cut['clean_top1']:.1%}", f"{cut['clean_top1'] - base['clean_top1']:+.1%}")
    c4.metric("Clean top-1, random cut", f"{mean_top1:.1%}", f"{mean_top1 - base['clean_top1']:+.1%}")
    st.caption(
        f"Removed: {', '.join(component_names[i] for i in removed) or 'nothing'}. Random cut: {k} random components, "
        f"the mean of {len(CONTROL_SEEDS)} draws (the control). Both physically pruned, measured on the same eval "
        f"images as above: the full model's clean top-1 is {accuracy_text(base['clean_top1'], base['n_images'])}, "
        "so differences within that interval are noise."
    )
    if k:
        cured = without(planted.model, list(removed))
        info = {**planted.info, "shortcut_cut": {"method": method, "removed": [component_names[i] for i in removed]}}
        st.download_button(
            "Download the cut model (.zip)",
            zip_bytes(cured, info),
            file_name=f"shortcut_cut_{method}_{k}.zip",
            key="shortcut_download",
        )
