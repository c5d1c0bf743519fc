"""Long computations on a page: a time estimate before, progress with time left during, and a Stop button.

Stop works through Streamlit itself: pressing it asks for a rerun, which ends the running script at its
next progress update. A run marks itself in the session while it works, so the next run of the page can
say that the last one was stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st
import torch

from ui.shell import trace_event
from ui.state import app_state
from vitcore.data import normalize

WORKER_THREADS = 1  # long runs go to the compute service's workers, one torch thread each (ui/resources.py)


class Announcement:
    """A run's time estimate on the page; once the run is over, it is replaced by what the run took."""

    def __init__(self, estimate_s: float, what: str):
        self.estimate_s, self.what = estimate_s, what
        self.slot = st.empty()
        if estimate_s > 60:
            self.slot.warning(
                f"{what} will take about {estimate_s / 60:.0f} min on this machine. The Stop button cancels it."
            )
        else:
            self.slot.caption(f"{what}: about {estimate_s:.0f} s expected on this machine.")

    def done(self, actual_s: float) -> None:
        """The run ended: show its time against the estimate (and trace both, for the docs' estimate-against-actual
        table).
        """
        self.slot.caption(f"{self.what} took {actual_s:.1f} s (estimated {self.estimate_s:.0f} s).")
        trace_event("estimate", what=self.what, estimated_s=round(self.estimate_s, 2), actual_s=round(actual_s, 2))


def announce(estimate_s: float, what: str) -> Announcement:
    """Say before a run how long it should take; runs over a minute get a warning, which the run's end replaces."""
    return Announcement(estimate_s, what)


def stop_button(name: str, what: str, column=None) -> None:
    """The Stop button, and a note when the last run of ``name`` did not finish."""
    (column or st).button(
        "Stop", key=f"stop_{name}", help=f"cancels the running {what} (it ends at its next progress update)"
    )
    running = app_state().running
    if name in running:
        running.discard(name)
        st.info(f"The last {what} was stopped before it finished; nothing was saved.")


@contextmanager
def running(name: str) -> Iterator[None]:
    """Mark ``name`` as running. Only a Stop (or another interruption of the script by Streamlit, which
    raises a ``BaseException``) leaves the mark for :func:`stop_button` to report; an error clears it."""
    marks = app_state().running
    marks.add(name)
    try:
        yield
    except Exception:
        marks.discard(name)
        raise
    marks.discard(name)


def forward_seconds(model, images: torch.Tensor, key: tuple) -> float:
    """One timed forward of ``model`` over uint8 ``images``: the base of the time estimates. Measured once
    per session and ``key`` (say, the chosen classes, the number of images and the model's hash)."""
    state = app_state()
    probe = state.forward_probe
    if probe is None or probe[0] != key:
        threads = torch.get_num_threads()
        torch.set_num_threads(WORKER_THREADS)  # timed as the run will go: on a worker's one thread
        try:
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(normalize(images, model.config))
            state.forward_probe = probe = (key, time.perf_counter() - t0)
        finally:
            torch.set_num_threads(threads)
    return probe[1]


def progress_bar(label: str) -> Callable[[float, str], None]:
    """A progress bar whose text shows the fraction done, elapsed time, time left and what is running."""
    bar = st.progress(0.0, text=f"{label}: starting…")
    start = time.perf_counter()

    def update(fraction: float, what: str = "") -> None:
        elapsed = time.perf_counter() - start
        left = f" · about {elapsed / fraction * (1 - fraction):.0f} s left" if 0.02 < fraction < 1 else ""
        bar.progress(
            min(1.0, max(0.0, fraction)),
            text=f"{label}: {fraction:.0%} · {elapsed:.1f} s{left}" + (f" · {what}" if what else ""),
        )

    return update
