"""One image, end to end: how the answer forms layer by layer (logit lens), and what each component does to it."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st
import torch

from vitcore.inspect import image_effects, logit_lens, without_components
from vitcore.model import VisionTransformer

LENS_CLASSES = 5
TOP_EFFECTS = 10


def lens_frame(model: VisionTransformer, x: torch.Tensor, names: list[str]) -> pd.DataFrame:
    """Probability of the final top-5 classes read from the residual stream after the embedding and each layer."""
    probs = logit_lens(model, x)[:, 0].softmax(-1)  # [depth + 1, classes]
    final = probs[-1].topk(LENS_CLASSES).indices.tolist()
    stages = ["embedding"] + [f"after L{i}" for i in range(model.config.depth)]
    return pd.DataFrame(
        [
            {"stage": stage, "step": s, "class": names[c], "probability": float(probs[s, c])}
            for s, stage in enumerate(stages)
            for c in final
        ]
    )


def lens_chart(frame: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("stage:N", sort=list(dict.fromkeys(frame["stage"])), title=None),
            y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("class:N", sort=list(frame[frame["step"] == frame["step"].max()]["class"])),
            tooltip=["stage", "class", alt.Tooltip("probability:Q", format=".1%")],
        )
        .properties(height=240)
    )


def top5(model: VisionTransformer, x: torch.Tensor, names: list[str]) -> pd.DataFrame:
    with torch.inference_mode():
        probs = model(x).softmax(-1)[0]
    top = probs.topk(5)
    return pd.DataFrame({"class": [names[i] for i in top.indices.tolist()], "probability": top.values.numpy()})


def one_image_view(model: VisionTransformer, x: torch.Tensor, names: list[str], key: str) -> None:
    """The logit lens and the per-component effects of one normalized image ``[1, 3, H, W]`` (full model)."""
    st.markdown("**How the answer forms**")
    st.altair_chart(lens_chart(lens_frame(model, x, names)), width="stretch")
    st.caption(
        "The logit lens: the final LayerNorm and head applied to the class token after the embedding and after each "
        "layer; the five classes the full model ranks highest at the end."
    )
    with torch.no_grad():
        predicted = int(model(x).argmax(-1))
    exact = st.toggle("Exact effects (one forward per component)", key=f"{key}_exact")
    effects = image_effects(model, x, predicted, exact=exact)[:TOP_EFFECTS]
    st.markdown(f"**What each component does to *{names[predicted]}***")
    table = pd.DataFrame(
        {
            "component": [e.name for e in effects],
            "logit change if removed (estimate)": [e.estimate for e in effects],
            **({"logit change if removed (exact)": [e.exact for e in effects]} if exact else {}),
        }
    )
    st.dataframe(table, hide_index=True)
    st.caption(
        "Ranked by attribution patching on this image: the gradient of the predicted class's logit with respect to "
        "each component's mask, at the full model. Negative: the component supports this answer."
    )
    off = st.multiselect(
        "Switch off", [e.name for e in effects], key=f"{key}_off", placeholder="pick components from the table"
    )
    if off:
        pruned = without_components(model, off)
        left, right = st.columns(2)
        left.markdown("**Full model**")
        left.dataframe(top5(model, x, names), hide_index=True)
        right.markdown(f"**Without {', '.join(off)}** (physically pruned)")
        right.dataframe(top5(pruned, x, names), hide_index=True)
