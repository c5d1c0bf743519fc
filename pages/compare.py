"""Compare page: the Pareto sweep over methods and settings, run here or loaded from a CSV."""

import tempfile
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from ui.longrun import announce, forward_seconds, progress_bar, running, stop_button
from ui.shell import open_page
from vitcore.circuits import METHODS
from vitcore.circuits.methods import DEFAULT_METHOD
from vitcore.pruning.report import config_label, frontier_chart, read_csv
from vitcore.pruning.sweep import default_settings, estimate_sweep_seconds, run_sweep

LATENCY_REPEATS = 10

state = open_page()
ckpt = state.ckpt
st.title("Compare")
classes = state.classes

src = st.radio("Sweep", ["Run it here", "Load a saved CSV"], horizontal=True, key="sweep_source")
if src == "Run it here":
    # the default method against the first that picks its own circuit by a threshold
    default = [DEFAULT_METHOD] + [m.name for m in METHODS.values() if m.threshold_scores][:1]
    methods = st.multiselect(
        "Methods", list(METHODS), default=default, format_func=lambda m: METHODS[m].label, key="sweep_methods"
    )
    read = {o.field: o for m in methods for o in METHODS[m].options}  # the run options the chosen methods read
    cols = st.columns(1 + len(read))
    ft = cols[0].number_input("Fine-tune steps per configuration (0: none)", 0, 200, 0, 10, key="sweep_ft")
    options = {
        o.field: int(col.number_input(o.label, o.low, o.high, o.default, o.step, help=o.help, key=f"sweep_{o.field}"))
        for col, o in zip(cols[1:], read.values())
    }
    if not classes:
        st.warning("Choose classes on the Circuits page first.")
    else:
        discovery, eval_set = state.discovery, state.eval_set
        settings = default_settings(methods)
        images = discovery.images[discovery.chosen(classes)]
        forward_s = forward_seconds(ckpt.model, images, (tuple(classes), len(images), ckpt.sha256))
        note = announce(
            estimate_sweep_seconds(
                settings,
                forward_s,
                len(images),
                len(eval_set),
                len(ckpt.model.components),
                int(ft),
                options,
                LATENCY_REPEATS,
            ),
            f"A sweep of {sum(len(v) for v in settings.values())} configurations",
        )
        run_col, stop_col = st.columns([1, 5])
        stop_button("sweep", "sweep", stop_col)
        if run_col.button("Run sweep", type="primary", key="run_sweep"):
            t0 = time.perf_counter()
            with running("sweep"):
                rows = run_sweep(
                    ckpt.model,
                    discovery,
                    eval_set,
                    classes,
                    settings,
                    finetune=int(ft),
                    latency_repeats=LATENCY_REPEATS,
                    options=options,
                    progress=progress_bar("sweep"),
                )
            note.done(time.perf_counter() - t0)
            state.sweep_rows = rows
else:
    upload = st.file_uploader("Sweep CSV (from python -m vitcore sweep)", type=["csv"], key="sweep_csv")
    if upload is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sweep.csv"
            path.write_bytes(upload.getvalue())
            try:
                state.sweep_rows = read_csv(path)
            except (ValueError, KeyError, UnicodeDecodeError) as e:
                st.error(f"Could not read '{upload.name}': {str(e).replace(str(path), repr(upload.name))}")
            else:
                if not state.sweep_rows:
                    st.warning(f"'{upload.name}' has the sweep columns but no rows: nothing to show.")

rows = state.sweep_rows
if rows:
    st.altair_chart(frontier_chart(rows), width="stretch")
    st.caption(
        "Colour: method and setting (darker = more pruned); triangles: after recovery fine-tuning; dashed: the Pareto "
        "frontier."
    )
    df = pd.DataFrame(rows)
    df.insert(0, "config", [config_label(m, v) for m, v in zip(df["method"], df["setting"])])
    st.dataframe(df.drop(columns=["kept_components"]), hide_index=True)  # the ids are long; applied below
    pick = st.selectbox(
        "Configuration",
        range(len(df)),
        format_func=lambda i: f"{df.config[i]}{' + FT' if df.finetuned[i] else ''}",
        key="sweep_pick",
    )
    if st.button("Apply to the Prune page", key="apply_sweep"):
        row = df.iloc[pick]
        if row["kept_components"] is None:
            st.error(
                "This CSV has no kept_components column (an older sweep): run the sweep again to apply its "
                "configurations."
            )
        else:
            try:
                mask = ckpt.model.components.mask_from_keep(row["kept_components"].split())
            except (KeyError, ValueError) as e:
                st.error(f"This CSV's kept components do not fit the loaded model: {e}")
            else:
                state.set_keep(mask)
                note = (
                    " The fine-tuned weights are not in the CSV: fine-tune again on the Prune page."
                    if row["finetuned"]
                    else ""
                )
                st.success(f"Applied {row['config']} ({int(mask.sum())} components kept); open the Prune page.{note}")
