"""The live figures of a keep-set (accuracy, KL, size, latency), as the Prune, Circuit graph and Atlas pages show
them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
import torch
from streamlit.delta_generator import DeltaGenerator

from ui.shell import trace_event
from vitcore.compute.workers import WorkerDied
from vitcore.evaluate import accuracy_text
from vitcore.playground import KeepSetFigures, Playground

QUIET = "timed when the machine is quiet: with no other figure of any session queued or running"


@dataclass
class LiveRow:
    """Where a row's timed figures go once they arrive."""

    latency: DeltaGenerator  # an st.empty slot
    caption: DeltaGenerator
    fast_s: float


def _cost_model(pg: Playground) -> str:
    lm = pg.latency_model
    return f"cost model: {lm.intercept_ms:.2f} ms + {lm.slope_ms_per_mmac * 1e3:.2f} µs per M MACs" if lm else ""


def predicted_speedup(pg: Playground, fig: KeepSetFigures) -> float | None:
    lm = pg.latency_model
    return lm.predict_ms(pg.base.config) / fig.predicted_b1_ms if lm and fig.predicted_b1_ms else None


def show_live_figures(pg: Playground, mask: torch.Tensor) -> tuple[KeepSetFigures, LiveRow]:
    """One row of metrics against the full model: the fast figures, and the cost model's predicted batch-1
    speed-up (labelled) until :func:`show_timings` replaces it. Raises ``NothingKeptError`` for an empty mask."""
    n_components = len(mask)
    pg.focus(mask)  # this session's queued work for any other keep-set is stale now
    t0 = time.perf_counter()
    fig = pg.fast(mask)
    fast_s = time.perf_counter() - t0
    base = pg.fast(torch.ones(n_components))
    m = st.columns(5)
    m[0].metric("Top-1, chosen classes", f"{fig.top1_chosen:.1%}", f"{fig.top1_chosen - base.top1_chosen:+.1%}")
    m[1].metric(
        "KL to full model", f"{fig.kl_chosen:.4f}", f"{fig.kl_chosen - base.kl_chosen:+.4f}", delta_color="inverse"
    )
    m[2].metric(
        "Parameters",
        f"{fig.params / 1e6:.3f} M",
        f"{(fig.params - base.params) / base.params:+.1%}",
        delta_color="inverse",
    )
    m[3].metric(
        "MACs / image", f"{fig.macs / 1e6:.1f} M", f"{(fig.macs - base.macs) / base.macs:+.1%}", delta_color="inverse"
    )
    n = len(pg.chosen)
    st.caption(
        f"Physically pruned model (removed components cut out of the weights) on the chosen classes' eval images: "
        f"top-1 {accuracy_text(fig.top1_chosen, n)}; KL to the full model's answers on the same images."
    )
    row = LiveRow(m[4].empty(), st.empty(), fast_s)
    if fig.latency_b1_ms is None:
        ratio = predicted_speedup(pg, fig)
        if fig.kept == n_components and fig.predicted_b1_ms is not None:
            row.latency.metric(
                "Batch-1 latency",
                f"≈ {fig.predicted_b1_ms:.2f} ms",
                "predicted · measured when quiet",
                delta_color="off",
                help=f"{_cost_model(pg)}; {QUIET}",
            )
        elif ratio is not None:
            row.latency.metric(
                "Batch-1 speed-up",
                f"≈ {ratio:.2f}x",
                "predicted · measured when quiet",
                delta_color="off",
                help=f"{_cost_model(pg)}; {QUIET}",
            )
        else:
            row.latency.metric("Batch-1 latency", "measured when quiet", help=QUIET)
        row.caption.caption(f"{fig.kept}/{n_components} components kept · fast figures in {fast_s:.2f} s")
    else:
        _draw_timing(pg, fig, row, n_components)
    trace_event("fast_drawn", kept=fig.kept, fast_s=round(fast_s, 3))
    return fig, row


def show_timings(
    pg: Playground, mask: torch.Tensor, row: LiveRow, stop: Callable[[], bool] | None = None
) -> KeepSetFigures:
    """Wait for the measured batch-1 figure (and the paired throughput) and draw it in place of the prediction;
    when ``stop()`` answers True first, or the timing stopped its worker on every try (said in one line), the prediction
    stays."""
    t0 = time.perf_counter()
    try:
        fig = pg.measure(mask, stop)
    except WorkerDied as e:
        row.caption.caption(f"Not timed: {e}")
        return pg.fast(mask)
    if fig.latency_b1_ms is not None:
        _draw_timing(pg, fig, row, len(mask), time.perf_counter() - t0)
    return fig


def _draw_timing(
    pg: Playground, fig: KeepSetFigures, row: LiveRow, n_components: int, waited_s: float | None = None
) -> None:
    s, cost_model = fig.speedup, _cost_model(pg)
    if s is None:
        row.latency.metric(
            "Batch-1 latency",
            f"{fig.latency_b1_ms:.2f} ms",
            help=f"measured on 1 thread, {QUIET}; pruned models show their speed-up against the full model",
        )
    elif s.busy:  # too noisy to report as a measurement: the cost model's figure, labelled as such
        ratio = predicted_speedup(pg, fig)
        row.latency.metric(
            "Batch-1 speed-up",
            f"≈ {ratio:.2f}x" if ratio else "not measured",
            "predicted (machine busy)",
            delta_color="off",
            help=f"the paired timing's ratios spread {s.p25:.2f}x-{s.p75:.2f}x, too wide to report; "
            "shown: the cost model's prediction "
            f"from MACs ({cost_model}). Toggle again later to measure it.",
        )
    else:
        row.latency.metric(
            "Batch-1 speed-up",
            f"{s.ratio:.2f}x",
            f"p25-p75 {s.p25:.2f}-{s.p75:.2f}x",
            delta_color="off",
            help=f"1 thread, {s.pairs} interleaved pairs (full model, this model), {QUIET}: "
            f"median {s.reference_ms:.2f} ms vs {s.model_ms:.2f} ms",
        )
    predicted = (
        f" · batch-1 predicted from MACs {fig.predicted_b1_ms:.2f} ms, measured {fig.latency_b1_ms:.2f} ms "
        f"({cost_model})"
        if cost_model and fig.predicted_b1_ms
        else ""
    )
    waited = f", timing after {waited_s:.1f} s" if waited_s is not None else ""
    row.caption.caption(
        f"{fig.kept}/{n_components} components kept · fast figures in {row.fast_s:.2f} s{waited}{predicted}"
    )
