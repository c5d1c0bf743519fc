"""The fast figures of a keep-set (accuracy, KL, size, latency), as the Prune and Circuit graph pages show them."""

import streamlit as st

from vitcore.playground import KeepSetFigures, Playground


def show_fast_figures(fig: KeepSetFigures, base: KeepSetFigures, pg: Playground, n_components: int, fast_s: float):
    """One row of metrics against the full model, and a caption with the cost model; returns the speed-up."""
    m = st.columns(5)
    m[0].metric("Top-1, chosen classes", f"{fig.top1_chosen:.1%}", f"{fig.top1_chosen - base.top1_chosen:+.1%}")
    m[1].metric("KL to full model", f"{fig.kl_chosen:.4f}", f"{fig.kl_chosen - base.kl_chosen:+.4f}", delta_color="inverse")
    m[2].metric("Parameters", f"{fig.params / 1e6:.3f} M", f"{(fig.params - base.params) / base.params:+.1%}", delta_color="inverse")
    m[3].metric("MACs / image", f"{fig.macs / 1e6:.1f} M", f"{(fig.macs - base.macs) / base.macs:+.1%}", delta_color="inverse")
    s = fig.speedup
    if s is None:
        m[4].metric("Batch-1 latency", f"{fig.latency_b1_ms:.2f} ms", help="measured on 1 thread; pruned models show their speed-up measured against the full model")
    elif s.busy:
        m[4].metric("Batch-1 speed-up", "machine busy", help=f"paired ratios spread {s.p25:.2f}x-{s.p75:.2f}x: too wide to report")
    else:
        m[4].metric("Batch-1 speed-up", f"{s.ratio:.2f}x", f"p25-p75 {s.p25:.2f}-{s.p75:.2f}x", delta_color="off",
                    help=f"1 thread, {s.pairs} interleaved pairs (full model, this model): median {s.reference_ms:.2f} ms vs {s.model_ms:.2f} ms")
    lm = pg.latency_model
    predicted = f" · batch-1 predicted from MACs {fig.predicted_b1_ms:.2f} ms, measured {fig.latency_b1_ms:.2f} ms (cost model: {lm.intercept_ms:.2f} ms + {lm.slope_ms_per_mmac * 1e3:.2f} µs per M MACs)" if lm and fig.predicted_b1_ms else ""
    st.caption(f"{fig.kept}/{n_components} components kept · fast figures in {fast_s:.2f} s{predicted}")
    return s
