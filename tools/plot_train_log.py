"""Plot a training log (train_log.json) as PNG: loss and val top-1 per epoch, stages one after another.

Run: python tools/plot_train_log.py assets/model/train_log.json docs/figures/train_log.png
"""

import json
import sys
from pathlib import Path

import altair as alt
import pandas as pd


def main(log_path: str, out: str) -> None:
    df = pd.DataFrame(json.load(open(log_path)))
    if "stage" in df:  # epochs count on across stages; a rule marks where each later stage starts
        df["epoch"] = range(1, len(df) + 1)
    if "val_top1" not in df:
        df["val_top1"] = df["val_loss"] = float("nan")
    long = pd.concat(
        [
            pd.DataFrame({"epoch": df.epoch, "value": df.train_loss, "series": "train loss"}),
            pd.DataFrame({"epoch": df.epoch, "value": df.val_loss, "series": "val loss"}).dropna(),
        ]
    )
    loss = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(x="epoch:Q", y=alt.Y("value:Q", title="loss"), color="series:N")
        .properties(width=300, height=220)
    )
    acc = (
        alt.Chart(df.dropna(subset=["val_top1"]))
        .mark_line(point=True, color="green")
        .encode(x="epoch:Q", y=alt.Y("val_top1:Q", title="val top-1", axis=alt.Axis(format="%")))
        .properties(width=300, height=220)
    )
    starts = df[df.stage.diff() > 0] if "stage" in df else df.iloc[:0]
    rule = alt.Chart(starts).mark_rule(strokeDash=[4, 4], color="gray").encode(x="epoch:Q")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    (alt.layer(loss, rule) | alt.layer(acc, rule)).save(out, scale_factor=2)


if __name__ == "__main__":
    main(*sys.argv[1:3])
