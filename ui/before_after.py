"""Export's before-and-after: the full model against the one being exported, every figure named by its source."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vitcore.evaluate import standard_error
from vitcore.playground import KeepSetFigures


def _pct(value: float | None, n: int) -> str:
    if value is None:
        return "not measured yet"
    se = standard_error(value, n)
    return f"{value:.1%} ± {se:.1%}"


def _latency(fig: KeepSetFigures, full: KeepSetFigures) -> str:
    if fig.speedup is not None and not fig.speedup.busy:
        return f"{fig.speedup.model_ms:.2f} ms measured ({fig.speedup.ratio:.2f}x the full model, paired)"
    if fig.speedup is None and fig.latency_b1_ms is not None:
        return f"{fig.latency_b1_ms:.2f} ms measured"
    if fig.predicted_b1_ms is not None:
        return f"{fig.predicted_b1_ms:.2f} ms predicted (cost model; measure it on the Prune page)"
    return "not measured yet"


def before_after(full: KeepSetFigures, fig: KeepSetFigures, zip_bytes: int, n_eval: int, n_chosen: int) -> None:
    """Draw the table: parameters, MACs, weight size, top-1 (all classes and the chosen ones) and batch-1 latency."""
    rows = {
        "parameters": (f"{full.params:,}", f"{fig.params:,}"),
        "MACs / image": (f"{full.macs / 1e6:.1f} M", f"{fig.macs / 1e6:.1f} M"),
        "weights (float32)": (f"{full.params * 4 / 1e6:.2f} MB", f"{fig.params * 4 / 1e6:.2f} MB"),
        f"top-1, all {n_eval:,} eval images": (_pct(full.top1_all, n_eval), _pct(fig.top1_all, n_eval)),
        f"top-1, the chosen classes' {n_chosen:,} eval images": (
            _pct(full.top1_chosen, n_chosen),
            _pct(fig.top1_chosen, n_chosen),
        ),
        "batch-1 latency": (
            f"{full.latency_b1_ms:.2f} ms measured" if full.latency_b1_ms is not None else _latency(full, full),
            _latency(fig, full),
        ),
    }
    if n_chosen == 0:
        rows = {k: v for k, v in rows.items() if "chosen" not in k}
    frame = pd.DataFrame(rows, index=["full model", "this model"]).T
    st.dataframe(frame)
    st.caption(
        f"Both physically as they are (no patching), on the eval set the sidebar chose; ± is one binomial standard "
        f"error for that many images. The zip to download is {zip_bytes / 1e6:.2f} MB (weights, config, ONNX graph)."
    )
