"""Sweep reports: the CSV format, the seed study's colours and the frontier chart."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..circuits.methods import METHODS
from .pareto import pareto_frontier

COLUMNS = [
    "method",
    "setting",
    "finetuned",
    "kept_heads",
    "kept_chunks",
    "params",
    "macs",
    "latency_b1_ms",
    "throughput_b64_img_s",
    "top1_chosen",
    "top1_all",
    "kl",
    "discovery_s",
    "kept_components",
]
NUMERIC_COLUMNS = [c for c in COLUMNS if c not in ("method", "finetuned", "kept_components")]


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a sweep CSV, numbers parsed; raises ValueError on a foreign file.

    ``kept_components`` is None for CSVs written before that column existed ('' is an empty circuit).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(NUMERIC_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} is not a vitcore sweep CSV: it lacks the column(s) {', '.join(sorted(missing))}")
        rows = []
        for line, r in enumerate(reader, start=2):
            row: dict[str, Any] = {
                "method": r["method"],
                "finetuned": r["finetuned"] in ("True", "true", "1"),
                "kept_components": r.get("kept_components"),
            }
            try:
                row.update({k: float(r[k]) for k in NUMERIC_COLUMNS})
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {line}: not a number ({e})") from e
            rows.append(row)
    return rows


# one hue per method (in registry order), light to dark along its setting, as in the seed study's figure
HUES = [
    ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"],  # blues
    ["#c7e9c0", "#a1d99b", "#74c476", "#31a354", "#006d2c"],  # greens
    ["#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603"],  # oranges
    ["#dadaeb", "#bcbddc", "#9e9ac8", "#756bb1", "#54278f"],  # purples
    ["#fcbba1", "#fc9272", "#fb6a4a", "#de2d26", "#a50f15"],  # reds
    ["#c7eae5", "#80cdc1", "#35978f", "#01665e", "#003c30"],  # teals
    ["#f6e8c3", "#dfc27d", "#bf812d", "#8c510a", "#543005"],  # browns
]
RAMPS: dict[str, list[str]] = dict(zip(METHODS, HUES))
OTHER_RAMP = ["#d9d9d9", "#bdbdbd", "#969696", "#636363", "#252525"]  # a method without a ramp of its own


def config_label(method: str, setting: float) -> str:
    """'EAP keep 0.7', 'ACDC tau 0.05', 'baseline'."""
    if method not in METHODS:
        return method
    return METHODS[method].setting_label(setting)


def config_colours(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Colour-scale domain (config labels) and range: baseline black, each method a ramp over its settings."""
    domain, colours = ["baseline"], ["#000000"]
    present = {r["method"] for r in rows} - {"baseline"}
    for method in [m for m in RAMPS if m in present] + sorted(
        present - set(RAMPS)
    ):  # every method in the rows gets a legend entry
        ramp = RAMPS.get(method, OTHER_RAMP)
        values = sorted(
            {r["setting"] for r in rows if r["method"] == method}, reverse=method in METHODS and METHODS[method].ranks
        )
        for i, v in enumerate(values):  # darker = more pruned
            domain.append(config_label(method, v))
            colours.append(ramp[round(i * (len(ramp) - 1) / max(len(values) - 1, 1))])
    return domain, colours


def frontier_chart(rows: list[dict[str, Any]], title: str = "Pareto frontier: error vs batch-1 latency"):
    """Altair chart: error (1 - top-1 on the chosen classes) vs batch-1 latency, frontier drawn.

    Colour: method and setting; shape: fine-tuned or not; the dashed line is the frontier.
    """
    import altair as alt
    import pandas as pd

    df = pd.DataFrame(rows)
    df["error"] = 1 - df["top1_chosen"]
    df["config"] = [config_label(m, v) for m, v in zip(df["method"], df["setting"])]
    df["fine-tuned"] = df["finetuned"].map(lambda done: "yes" if done else "no")
    front = df.iloc[pareto_frontier(list(zip(df["latency_b1_ms"], df["error"])))]
    domain, colours = config_colours(rows)
    points = (
        alt.Chart(df)
        .mark_point(filled=True, size=80, opacity=0.9, stroke="#333333", strokeWidth=0.5)
        .encode(
            x=alt.X("latency_b1_ms:Q", title="batch-1 latency (ms, median)", scale=alt.Scale(zero=False)),
            y=alt.Y("error:Q", title="error on the chosen classes"),
            color=alt.Color(
                "config:N", title="method, setting", scale=alt.Scale(domain=domain, range=colours), sort=domain
            ),
            shape=alt.Shape("fine-tuned:N", scale=alt.Scale(domain=["no", "yes"], range=["circle", "triangle-up"])),
            tooltip=[
                "config",
                "fine-tuned",
                "kept_heads",
                "kept_chunks",
                "latency_b1_ms",
                "throughput_b64_img_s",
                "top1_chosen",
                "top1_all",
                "kl",
                "macs",
            ],
        )
    )
    line = alt.Chart(front).mark_line(color="black", strokeDash=[4, 3]).encode(x="latency_b1_ms:Q", y="error:Q")
    return (line + points).properties(width=560, height=360, title=title)
