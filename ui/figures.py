"""The live figures of a keep-set (accuracy, KL, size, latency), as the Prune, Circuit graph and Atlas pages show them."""

import time
from typing import Callable

import streamlit as st
import torch

from ui.shell import trace_event
from vitcore.playground import KeepSetFigures, Playground


def show_live_figures(pg: Playground, mask: torch.Tensor, moved_on: Callable[[], bool] | None = None,
                      stop: Callable[[], bool] | None = None) -> KeepSetFigures:
    """One row of metrics against the full model: the fast figures at once, then the measured batch-1
    latency in place of the cost model's prediction, unless ``moved_on()`` says the user has already
    acted again (before the timing) or ``stop()`` does (during it: the figures come back without
    ``latency_b1_ms``). Raises ``NothingKeptError`` for an empty mask."""
    n_components = len(mask)
    pg.focus(mask)  # this session's queued work for any other keep-set is stale now
    t0 = time.perf_counter()
    fig = pg.fast(mask)
    fast_s = time.perf_counter() - t0
    base = pg.fast(torch.ones(n_components))
    m = st.columns(5)
    m[0].metric("Top-1, chosen classes", f"{fig.top1_chosen:.1%}", f"{fig.top1_chosen - base.top1_chosen:+.1%}")
    m[1].metric("KL to full model", f"{fig.kl_chosen:.4f}", f"{fig.kl_chosen - base.kl_chosen:+.4f}", delta_color="inverse")
    m[2].metric("Parameters", f"{fig.params / 1e6:.3f} M", f"{(fig.params - base.params) / base.params:+.1%}", delta_color="inverse")
    m[3].metric("MACs / image", f"{fig.macs / 1e6:.1f} M", f"{(fig.macs - base.macs) / base.macs:+.1%}", delta_color="inverse")
    latency, caption = m[4].empty(), st.empty()
    lm = pg.latency_model
    cost_model = f"cost model: {lm.intercept_ms:.2f} ms + {lm.slope_ms_per_mmac * 1e3:.2f} µs per M MACs" if lm else ""
    if fig.latency_b1_ms is None:
        if fig.predicted_b1_ms is not None:
            latency.metric("Batch-1 latency", f"≈ {fig.predicted_b1_ms:.2f} ms", "predicted · measuring…", delta_color="off", help=cost_model)
        else:
            latency.metric("Batch-1 latency", "measuring…")
    caption.caption(f"{fig.kept}/{n_components} components kept · fast figures in {fast_s:.2f} s")
    trace_event("fast_drawn", kept=fig.kept, fast_s=round(fast_s, 3))
    if moved_on is not None and fig.latency_b1_ms is None and moved_on():
        return fig
    t1 = time.perf_counter()
    fig = pg.measure(mask, stop)
    measured_s = time.perf_counter() - t1
    if fig.latency_b1_ms is None:  # stopped: the next run measures it
        return fig
    s = fig.speedup
    if s is None:
        latency.metric("Batch-1 latency", f"{fig.latency_b1_ms:.2f} ms", help="measured on 1 thread; pruned models show their speed-up measured against the full model")
    elif s.busy:  # too noisy to report as a measurement: the cost model's figure, labelled as such
        predicted_ratio = (lm.predict_ms(pg.base.config) / fig.predicted_b1_ms) if lm and fig.predicted_b1_ms else None
        latency.metric("Batch-1 speed-up", f"≈ {predicted_ratio:.2f}x" if predicted_ratio else "not measured", "predicted (machine busy)", delta_color="off",
                       help=f"the paired timing's ratios spread {s.p25:.2f}x-{s.p75:.2f}x, too wide to report; shown: the cost model's prediction "
                            f"from MACs ({cost_model}). Toggle again later to measure it.")
    else:
        latency.metric("Batch-1 speed-up", f"{s.ratio:.2f}x", f"p25-p75 {s.p25:.2f}-{s.p75:.2f}x", delta_color="off",
                       help=f"1 thread, {s.pairs} interleaved pairs (full model, this model): median {s.reference_ms:.2f} ms vs {s.model_ms:.2f} ms")
    predicted = f" · batch-1 predicted from MACs {fig.predicted_b1_ms:.2f} ms, measured {fig.latency_b1_ms:.2f} ms ({cost_model})" if lm and fig.predicted_b1_ms else ""
    caption.caption(f"{fig.kept}/{n_components} components kept · fast figures in {fast_s:.2f} s, latency in {measured_s:.2f} s{predicted}")
    return fig
