"""Altair charts shared by the pages (no state)."""

from typing import cast

import altair as alt
import pandas as pd

from vitcore.components import Component

# what st.altair_chart takes (the union it declares): a chart, a layered or a faceted one
Chart = alt.Chart | alt.LayerChart | alt.FacetChart


def score_frames(
    names: list[str], values: list[float], kept: set[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for name, v in zip(names, values):
        c = Component.parse(name)
        rows.append(
            {
                "component": name,
                "layer": c.layer,
                "kind": c.kind,
                "index": c.index,
                "score": v,
                "kept": None if kept is None else name in kept,
            }
        )
    df = pd.DataFrame(rows)
    return cast(pd.DataFrame, df[df["kind"] == "head"]), cast(pd.DataFrame, df[df["kind"] == "chunk"])


def component_link(name: str, classes: list[str] | None = None) -> str:
    """The Component page's URL for ``name`` (relative to the app), with the classes to show it on."""
    return f"component?component={name}" + (f"&classes={','.join(classes)}" if classes else "")


def heatmap(
    df: pd.DataFrame, title: str, field: str = "score", legend: str | None = None, classes: list[str] | None = None
) -> Chart:
    """Layer x index heatmap with hover tooltips; ``legend`` names what the colour counts (default: the field).
    A white dot marks each kept component (when ``df`` has a ``kept`` column); clicking a cell opens the
    Component page on it."""
    x_title = "head" if title.lower().startswith("head") else "chunk"
    frame = df.assign(link=[component_link(n, classes) for n in df["component"]])
    base = alt.Chart(frame).encode(x=alt.X("index:O", title=x_title), y=alt.Y("layer:O", title="layer"))
    cells = base.mark_rect().encode(
        color=alt.Color(f"{field}:Q", scale=alt.Scale(scheme="viridis"), title=legend or field),
        tooltip=["component", alt.Tooltip("score:Q", format=".4g", title=legend or field), "kept"],
        href="link:N",
    )
    layers = [cells]
    if "kept" in frame and bool(frame["kept"].fillna(False).astype(bool).any()):
        kept = frame[frame["kept"].fillna(False).astype(bool)]
        layers.append(
            alt.Chart(kept)
            .mark_point(shape="circle", filled=True, color="white", size=18)
            .encode(x="index:O", y="layer:O", tooltip=["component", "kept"], href="link:N")
        )
    return alt.layer(*layers).properties(title=title, height=220)


def pareto_chart(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    frontier_idx: list[int],
    tooltip: list[str],
    color_order: list[str] | None = None,
) -> Chart:
    """Points on the x-y plane (axis labels to three significant digits), their Pareto frontier dashed;
    ``color_order`` orders the legend (default: as the values first appear)."""
    order = color_order or list(dict.fromkeys(df[color]))
    points = (
        alt.Chart(df)
        .mark_point(filled=True, size=80)
        .encode(
            x=alt.X(f"{x}:Q", scale=alt.Scale(zero=False), axis=alt.Axis(format=".3~g")),
            y=alt.Y(f"{y}:Q", axis=alt.Axis(format=".3~g")),
            color=alt.Color(f"{color}:N", sort=order),
            tooltip=tooltip,
        )
    )
    line = alt.Chart(df.iloc[frontier_idx]).mark_line(color="black", strokeDash=[4, 3]).encode(x=f"{x}:Q", y=f"{y}:Q")
    return (line + points).properties(height=320)


def pixel_heatmap(pixels, title: str) -> Chart:
    """A [H, W] attribution map as a square heatmap, red = raises the logit, blue = lowers it."""
    h, w = pixels.shape
    df = pd.DataFrame(
        {
            "x": [i % w for i in range(h * w)],
            "y": [i // w for i in range(h * w)],
            "attribution": pixels.flatten().tolist(),
        }
    )
    bound = float(pixels.abs().max()) or 1.0
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("x:O", axis=None),
            y=alt.Y("y:O", axis=None),
            color=alt.Color(
                "attribution:Q", scale=alt.Scale(scheme="redblue", reverse=True, domain=[-bound, bound]), legend=None
            ),
            tooltip=["x", "y", alt.Tooltip("attribution:Q", format=".3g")],
        )
        .properties(
            title=alt.TitleParams(title.split(", ")), width=220, height=220
        )  # one line per part: long titles were cut off
    )


def similarity_chart(sim, labels: list[str], title: str) -> Chart:
    """A class x class matrix in the given order (labels already ordered), with hover names."""
    n = len(labels)
    df = pd.DataFrame(
        {
            "a": [labels[i // n] for i in range(n * n)],
            "b": [labels[i % n] for i in range(n * n)],
            "jaccard": sim.flatten().tolist(),
        }
    )
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("b:N", sort=labels, axis=alt.Axis(labels=n <= 40, title=None)),
            y=alt.Y("a:N", sort=labels, axis=alt.Axis(labels=n <= 40, title=None)),
            color=alt.Color("jaccard:Q", scale=alt.Scale(scheme="viridis")),
            tooltip=["a", "b", alt.Tooltip("jaccard:Q", format=".2f")],
        )
        .properties(title=title, height=560)
    )
