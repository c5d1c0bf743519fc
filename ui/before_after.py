"""Export's before-and-after: the full model against the one being exported, every figure named by its source."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vitcore.evaluate import accuracy_text
from vitcore.playground import KeepSetFigures


def _pct(value: float | None, n: int) -> str:
    if value is None:
        return "not measured yet"
    return accuracy_text(value, n)


def latency_row(full: KeepSetFigures, fig: KeepSetFigures) -> tuple[str, str]:
    """Batch-1 latency of the full model and of this one, both from the same source: the paired measurement taken
    side by side, or both the cost model's prediction, never a measurement against a prediction."""
    s = fig.speedup
    if s is not None and not s.busy:
        paired = f"{s.pairs} interleaved pairs"
        return f"{s.reference_ms:.2f} ms measured ({paired})", f"{s.model_ms:.2f} ms measured ({s.ratio:.2f}x faster)"
    if s is None and fig.kept == full.kept and full.latency_b1_ms is not None:  # this model is the full one
        measured = f"{full.latency_b1_ms:.2f} ms measured"
        return measured, measured
    if full.predicted_b1_ms is not None and fig.predicted_b1_ms is not None:
        why = "too busy to time in pairs" if s is not None else "timed in pairs on the Prune page when quiet"
        return (
            f"≈ {full.predicted_b1_ms:.2f} ms predicted",
            f"≈ {fig.predicted_b1_ms:.2f} ms predicted ({full.predicted_b1_ms / fig.predicted_b1_ms:.2f}x; {why})",
        )
    return "not measured yet", "not measured yet"


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
        "batch-1 latency": latency_row(full, fig),
    }
    if n_chosen == 0:
        rows = {k: v for k, v in rows.items() if "chosen" not in k}
    frame = pd.DataFrame(rows, index=["full model", "this model"]).T
    st.dataframe(frame)
    st.caption(
        f"Both physically as they are (no patching), on the eval set the sidebar chose; each top-1 with its n and "
        f"95% Wilson interval. The zip to download is {zip_bytes / 1e6:.2f} MB (weights, config, ONNX graph)."
    )
