"""Compare page: the Pareto sweep over methods and settings, run here or loaded from a CSV."""

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from pages.charts import pareto_chart
from vitcore.pruning.sweep import DEFAULT_SETTINGS, pareto_frontier, read_csv, run_sweep

ckpt = st.session_state["ckpt"]
st.title("Compare")
classes = st.session_state.get("classes", [])

src = st.radio("Sweep", ["Run it here", "Load a saved CSV"], horizontal=True, key="sweep_source")
if src == "Run it here":
    methods = st.multiselect("Methods", list(DEFAULT_SETTINGS), default=["eap", "acdc"], key="sweep_methods")
    c1, c2 = st.columns(2)
    ft = c1.number_input("Fine-tune steps per configuration (0: none)", 0, 200, 0, 10, key="sweep_ft")
    learned_steps = c2.number_input("Learned-mask steps", 20, 400, 100, 20, key="sweep_learned_steps")
    if not classes:
        st.warning("Choose classes on the Circuits page first.")
    elif st.button("Run sweep", type="primary", key="run_sweep"):
        bar = st.progress(0.0, text="sweeping…")
        rows = run_sweep(ckpt.model, st.session_state["discovery"], st.session_state["eval_set"], classes, {m: DEFAULT_SETTINGS[m] for m in methods},
                         finetune=int(ft), latency_repeats=10, learned_steps=int(learned_steps), progress=lambda f, what: bar.progress(f, text=what))
        st.session_state["sweep_rows"] = rows
else:
    upload = st.file_uploader("Sweep CSV (from python -m vitcore sweep)", type=["csv"], key="sweep_csv")
    if upload is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "sweep.csv"
            path.write_bytes(upload.getvalue())
            try:
                st.session_state["sweep_rows"] = read_csv(path)
            except (ValueError, KeyError, UnicodeDecodeError) as e:
                st.error(f"Could not read that CSV: {e}")

rows = st.session_state.get("sweep_rows")
if rows:
    df = pd.DataFrame(rows)
    df["error"] = 1 - df["top1_chosen"]
    df["series"] = df.apply(lambda r: "baseline" if r["method"] == "baseline" else f"{r['method']}{' + FT' if r['finetuned'] else ''}", axis=1)
    front = pareto_frontier(list(zip(df["latency_b1_ms"], df["error"])))
    st.altair_chart(pareto_chart(df, "latency_b1_ms", "error", "series", front, ["method", "setting", "finetuned", "latency_b1_ms", "top1_chosen", "top1_all", "kl", "macs"]), width="stretch")
    st.dataframe(df.drop(columns=["series"]), hide_index=True)
    results = st.session_state.get("results", [])
    pick = st.selectbox("Configuration", range(len(df)), format_func=lambda i: f"{df.method[i]} {df.setting[i]}{' + FT' if df.finetuned[i] else ''}", key="sweep_pick")
    if st.button("Apply to the Prune page", key="apply_sweep"):
        row = df.iloc[pick]
        match = [r for r in results if r.method == row["method"]]
        if row["method"] == "baseline":
            st.session_state["keep"] = ckpt.model.components.ones()
            st.success("Applied: the full model.")
        elif not match:
            st.error(f"Run {row['method']} on the Circuits page first: the sweep CSV holds settings, not scores.")
        else:
            r = match[-1]
            if row["method"] == "acdc":
                mask = (r.score_tensor() >= row["setting"]).float()
            else:
                from vitcore.circuits.result import keep_top

                ratio = 1 - row["setting"] if row["method"] == "learned" else row["setting"]
                mask = keep_top(r.score_tensor(), float(ratio))
            st.session_state["keep"] = mask
            st.success(f"Applied {row['method']} {row['setting']} from your latest {row['method']} scores; open the Prune page.")
