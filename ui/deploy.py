"""The Export page's deployment table: measured on demand, with a progress bar, for the model being exported."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.state import AppState
from vitcore.deploy import RUNTIMES
from vitcore.deploy.table import deployment_table
from vitcore.model import VisionTransformer

APP_RUNTIMES = ("pytorch-eager", "onnxruntime-fp32", "onnxruntime-int8-weights")  # torch.compile builds for minutes


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "runtime": r["runtime"],
                "format": r["format"],
                "MB (full → this)": f"{r['file_bytes']['full'] / 1e6:.2f} → {r['file_bytes']['model'] / 1e6:.2f}",
                "batch-1 ms (full → this)": f"{r['batch1_ms']['full']:.2f} → {r['batch1_ms']['model']:.2f}",
                "batch-1 speed-up": "{:.2f}x ({:.2f}-{:.2f})".format(*r["batch1_speedup"]),
                "× MAC cut (b1)": round(r["batch1_over_mac"], 2),
                "batch-64 img/s (full → this)": f"{r['batch64_img_s']['full']:.0f} → {r['batch64_img_s']['model']:.0f}",
                "batch-64 speed-up": f"{r['batch64_speedup'][0]:.2f}x",
                "× MAC cut (b64)": round(r["batch64_over_mac"], 2),
                "top-1 (full → this)": f"{r['top1']['full']:.1%} → {r['top1']['model']:.1%}",
                "same top-1 as eager": f"{r['agrees_with_eager']['model']:.1%}",
            }
            for r in rows
        ]
    )


def show_deployment_table(state: AppState, model: VisionTransformer, key: tuple) -> None:
    """Size, paired batch-1 latency and batch-64 throughput against the full model in each runtime, and top-1."""
    st.subheader("Before and after, in the runtime you deploy with")
    st.caption(
        "Each runtime times the full model and this one in interleaved pairs (medians, p25-p75) on this machine, "
        f"and scores both on the {len(state.eval_set)} eval images. Runtimes: "
        + ", ".join(f"{r} ({RUNTIMES[r]})" for r in APP_RUNTIMES)
        + ". The CLI adds torch.compile, torch.export, dynamic and static int8: `python -m vitcore bench-deploy`."
    )
    if st.button("Measure the deployment table", key="deploy_run"):
        bar = st.progress(0.0, text="starting")
        rows = deployment_table(
            state.ckpt.model,
            model,
            state.eval_set,
            APP_RUNTIMES,
            threads=1,
            pairs_b1=15,
            pairs_b64=3,
            progress=lambda f, what: _show(bar, f, what),
        )
        bar.empty()
        state.deploy_rows = (key, rows)
    if state.deploy_rows is not None and state.deploy_rows[0] == key:
        st.dataframe(_frame(state.deploy_rows[1]), hide_index=True)


def _show(bar: DeltaGenerator, fraction: float, what: str) -> None:
    bar.progress(fraction, text=f"measuring {what}")
