"""Prune page: toggle heads and chunks, and watch measured accuracy, KL, size and latency update."""

import time

import pandas as pd
import streamlit as st
import torch

from ui.charts import pareto_chart
from ui.engine import playground
from ui.figures import QUIET, LiveRow, show_live_figures, show_timings
from ui.longrun import announce, running, stop_button
from ui.persist import save
from ui.service import run_finetune
from ui.shell import open_page, trace_event
from ui.state import FineTuned
from ui.streamlit_private import rerun_pending
from vitcore.circuits import METHODS
from vitcore.circuits.result import keep_top
from vitcore.compute.figures import FAST_BUDGET
from vitcore.compute.workers import WorkerDied
from vitcore.evaluate import accuracy_text
from vitcore.playground import KeepSetFigures, NothingKeptError, Playground
from vitcore.pruning.finetune import estimate_finetune_seconds
from vitcore.pruning.pareto import pareto_frontier
from vitcore.session.snapshot import FineTuneSettings

FT_STEPS, FT_LR = (
    40,
    1e-4,
)  # chosen on the shipped model: docs/results/pruning.md (benchmarks/finetune_defaults.py)
SLIDERS = ("threshold_slider", "keep_slider")

state = open_page()
ckpt = state.ckpt
space = ckpt.model.components
depth = space.depth
result = state.active()
edge_result = result is not None and result.is_edge
if (
    edge_result
):  # an edge circuit sets the grid to the components it keeps alive; its scores are per edge, not per component
    result = None

st.title("Prune")
if state.classes:
    st.caption("Chosen classes: " + ", ".join(state.class_names()))
else:
    st.warning(
        f"No classes chosen (Circuits page): the fast figures use {FAST_BUDGET} eval images drawn from every class "
        "(their top-1 with its interval); the all-class top-1 follows, first on a sample, then on every eval image."
    )


def grid_keys(layer: int) -> tuple[str, str]:
    return f"heads_{layer}", f"chunks_{layer}"


def sync_grid_from_mask() -> None:
    """Write the keep mask into the toggle widgets' state (before they are drawn)."""
    mask = state.keep_mask()
    for layer in range(depth):
        hk, ck = grid_keys(layer)
        st.session_state[hk] = [
            f"H{i}" for i in range(space.heads_per_layer[layer]) if mask[space.head_slices[layer].start + i] > 0.5
        ]
        st.session_state[ck] = [
            f"C{i}" for i in range(space.chunks_per_layer[layer]) if mask[space.chunk_slices[layer].start + i] > 0.5
        ]
    st.session_state["prune_grid_version"] = state.keep_version


def mask_from_grid() -> None:
    mask = torch.zeros(len(space))
    for layer in range(depth):
        hk, ck = grid_keys(layer)
        for name in st.session_state.get(hk, []):
            mask[space.head_slices[layer].start + int(name[1:])] = 1.0
        for name in st.session_state.get(ck, []):
            mask[space.chunk_slices[layer].start + int(name[1:])] = 1.0
    state.set_keep(mask)
    st.session_state["prune_grid_version"] = state.keep_version  # the grid already shows it


def apply_slider() -> None:
    if result is None:
        return
    for k in SLIDERS:  # widget state is dropped when the page is left: keep a copy
        if k in st.session_state:
            state.slider_values[k] = st.session_state[k]
    if METHODS[result.method].threshold_scores:
        state.set_keep((result.score_tensor() >= st.session_state["threshold_slider"]).float())
    else:
        state.set_keep(keep_top(result.score_tensor(), st.session_state["keep_slider"]))
    sync_grid_from_mask()


def set_rows(value: float) -> None:
    mask = state.keep_mask().clone()
    for layer in st.session_state.get("row_pick", []):
        mask[space.head_slices[layer]] = value
        mask[space.chunk_slices[layer]] = value
    state.set_keep(mask)
    sync_grid_from_mask()


def reset_all() -> None:
    """Keep every component; the sliders go back to their start, which is what they now describe."""
    state.set_keep(space.ones())
    for k in SLIDERS:
        st.session_state.pop(k, None)
        state.slider_values.pop(k, None)
    sync_grid_from_mask()


def slider_row() -> None:
    """The slider that drives the grid from the active result's scores (or a note on where scores come from)."""
    entry = METHODS[result.method] if result is not None else None
    if "keep_slider" not in st.session_state:
        st.session_state["keep_slider"] = state.slider_values.get("keep_slider", 0.5)
    if (
        entry is not None and entry.threshold_scores
    ):  # a value left by another method's slider is not among this one's choices
        value = st.session_state.get(
            "threshold_slider", state.slider_values.get("threshold_slider", entry.param.default)
        )
        st.session_state["threshold_slider"] = value if value in entry.param.choices else entry.param.default
    if entry is not None:
        if entry.threshold_scores:
            st.select_slider(
                f"{entry.param.label} (threshold on {entry.label}'s scores; re-run {entry.label} for its exact "
                "circuit)",
                list(entry.param.choices),
                key="threshold_slider",
                on_change=apply_slider,
            )
        else:
            st.slider(
                f"Keep ratio from the {entry.label} scores",
                0.05,
                1.0,
                step=0.05,
                key="keep_slider",
                on_change=apply_slider,
            )
    elif edge_result:
        st.info(
            "The grid starts from the components the edge circuit keeps alive; the Circuit graph page edits the edges."
        )
    else:
        st.info("Run a method on the Circuits page to drive the grid from scores; or toggle by hand.")
    r1, r2, r3, r4 = st.columns([3, 1, 1, 1])
    r1.multiselect("Rows (layers)", list(range(depth)), key="row_pick", format_func=lambda layer: f"layer {layer}")
    r2.button("Keep rows", on_click=set_rows, args=(1.0,), key="rows_on")
    r3.button("Drop rows", on_click=set_rows, args=(0.0,), key="rows_off")
    r4.button("Keep all", on_click=reset_all, key="all_on")


def toggle_grid() -> None:
    """One row of pills per layer for the heads, then for the MLP chunks."""
    # full-width rows: in half-width columns the 12th head and chunk wrapped out of sight at 1280-1500 px
    st.markdown("**Attention heads** (highlighted = kept)")
    for layer in range(depth):
        st.pills(
            f"L{layer}",
            [f"H{i}" for i in range(space.heads_per_layer[layer])],
            selection_mode="multi",
            key=grid_keys(layer)[0],
            on_change=mask_from_grid,
        )
    st.markdown("**MLP neuron chunks** (highlighted = kept)")
    for layer in range(depth):
        st.pills(
            f"L{layer} ",
            [f"C{i}" for i in range(space.chunks_per_layer[layer])],
            selection_mode="multi",
            key=grid_keys(layer)[1],
            on_change=mask_from_grid,
        )
    pick_col, link_col = st.columns([1, 3])
    name = pick_col.selectbox("Look inside", space.names, key="prune_inspect", label_visibility="collapsed")
    query = {"component": name} | ({"classes": ",".join(state.classes)} if state.classes else {})
    link_col.page_link(
        "pages/component.py", label=f"Look inside {name} (what it attends to and writes)", query_params=query
    )


def all_class_figures(pg: Playground, mask: torch.Tensor, p_all) -> KeepSetFigures | None:
    """The all-class top-1: a sample's estimate, then exact; None when the user moved on."""
    p_all.metric("Top-1, all eval classes", "updating…")
    base_est = pg.estimate(space.ones(), stop=rerun_pending)
    fig = pg.estimate(mask, stop=rerun_pending)  # first a stratified sample, then every eval image
    if base_est.sample_correct is None or fig.sample_correct is None:  # the user toggled again
        return None
    n_sample = len(pg.sample_index())
    sample_help = (
        f"estimate on a stratified sample of {n_sample} eval images: "
        f"{accuracy_text(fig.top1_all_estimate or 0.0, n_sample)}; the exact figure on every eval image follows"
    )
    if fig.top1_all is None:
        p_all.metric(
            "Top-1, all eval classes",
            f"≈ {fig.top1_all_estimate:.1%}",
            f"updating… estimated on {n_sample} images",
            delta_color="off",
            help=sample_help,
        )
    base_slow = pg.slow(space.ones())
    for fig in pg.refine(mask, stop=rerun_pending):  # chunk by chunk; a new toggle ends it (the work done is kept)
        if fig.top1_all is None:
            p_all.metric(
                "Top-1, all eval classes",
                f"≈ {fig.top1_all_estimate:.1%}",
                f"updating… {fig.top1_all_done}/{len(pg.eval_set)} images",
                delta_color="off",
                help=sample_help,
            )
    if fig.top1_all is None:  # dropped: the session looks at another keep-set now
        return None
    change = "" if base_slow.top1_all is None else f"{fig.top1_all - base_slow.top1_all:+.1%}"
    p_all.metric(
        "Top-1, all eval classes",
        f"{fig.top1_all:.1%}",
        change,
        help=f"every eval image: {accuracy_text(fig.top1_all, len(pg.eval_set))}",
    )
    return fig


def timed_figures(pg: Playground, mask: torch.Tensor, row: LiveRow, p_thr) -> KeepSetFigures:
    """The measured batch-1 speed-up and batch-64 throughput, once the machine is quiet enough to time them."""
    p_thr.metric("Batch-64 throughput", "measured when quiet", help=QUIET)
    fig = show_timings(pg, mask, row, stop=rerun_pending)
    if fig.throughput_b64 is None:
        return fig
    if fig.throughput_busy:
        p_thr.metric(
            "Batch-64 throughput",
            "not measured",
            "machine busy",
            delta_color="off",
            help=f"the paired timings' ratios spread {fig.throughput_spread:.0%} of their median: too wide to report",
        )
    else:
        ratio = fig.throughput_ratio  # the sign leads, so that a slow-down gets a down arrow
        p_thr.metric(
            "Batch-64 throughput (measured)",
            f"{fig.throughput_b64:.0f} img/s",
            None if ratio is None else f"{ratio - 1:+.0%} ({ratio:.2f}x)",
            help=f"medians of interleaved batches of 64 with the full model, {QUIET}",
        )
    return fig


def history_chart(pg: Playground, mask: torch.Tensor, fig: KeepSetFigures) -> None:
    """The configurations this session has tried, on the latency-error plane with their Pareto frontier."""
    measured = fig.latency_b1_ms is not None and not (fig.speedup and fig.speedup.busy)
    state.history[pg.key(mask)] = {
        "kept": fig.kept,
        "error": 1 - fig.top1_chosen,
        "latency_b1_ms": fig.latency_b1_ms if measured else fig.predicted_b1_ms,
        "latency": "measured" if measured else "predicted",
        "top1_all": fig.top1_all,
        "macs": fig.macs,
        "config": "full model" if fig.kept == len(space) else f"{fig.kept} kept",
    }
    df = pd.DataFrame(list(state.history.values()))
    front = pareto_frontier(list(zip(df["latency_b1_ms"], df["error"])))
    st.markdown("**Configurations tried in this session** (dashed: Pareto frontier)")
    order = list(
        df.sort_values("kept", ascending=False)["config"]
    )  # by components kept, not as text ("215 kept" after "24 kept")
    st.altair_chart(
        pareto_chart(
            df,
            "latency_b1_ms",
            "error",
            "config",
            front,
            ["config", "kept", "error", "latency_b1_ms", "latency", "top1_all", "macs"],
            order,
        ),
        width="stretch",
    )


def previous_fine_tune(mask: torch.Tensor) -> FineTuneSettings | None:
    """The settings of a fine-tune of ``mask`` saved with the session's work whose model this session does not hold
    (it ran before a reload or a restart); its widgets are set to them once."""
    keep = tuple(int(v > 0.5) for v in mask.tolist())
    earlier = next((s for s in reversed(state.fine_tune_settings) if s.keep == keep), None)
    if earlier is None or state.fine_tune is not None:
        return None
    if state.fine_tune_shown != keep:
        st.session_state.update(ft_steps=earlier.steps, ft_distill=earlier.distill, ft_focus=earlier.focus)
        state.fine_tune_shown = keep
    return earlier


def fine_tune_panel(pg: Playground, mask: torch.Tensor, fig: KeepSetFigures) -> None:
    """Fine-tune a copy of the pruned model, then choose between it and the model before fine-tuning."""
    key = pg.key(mask)
    st.markdown("**Fine-tune to recover**")
    earlier = previous_fine_tune(mask)
    if earlier is not None:
        st.info(
            f"This keep-set was fine-tuned before this session was reopened ({earlier.steps} steps"
            f"{', distilled' if earlier.distill else ''}{', half chosen-class batches' if earlier.focus else ''}); "
            "its weights are not kept across a reload. The settings below are that run's: run it again to get it back."
        )
    f1, f2 = st.columns([1, 3])
    steps = f1.number_input("Steps", 5, 500, FT_STEPS, 5, key="ft_steps")
    distill = f1.checkbox("Distil from the full model", value=True, key="ft_distill")
    focus = f1.checkbox(
        "Half of each batch from the chosen classes",
        value=True,
        key="ft_focus",
        help="the discovery set has 10 images per class: without this, a batch of 64 holds about 3 chosen-class images",
    )
    with f2:
        # this session's measured rate once it has fine-tuned; before that, from the throughputs above
        estimate = (
            state.ft_seconds_per_step * steps
            if state.ft_seconds_per_step
            else estimate_finetune_seconds(
                int(steps), fig.throughput_b64, fig.throughput_ratio, fig.predicted_b1_ms, distill
            )
        )
        note = announce(estimate, f"{steps} fine-tuning steps")
        stop_button("finetune", "fine-tuning")
    if f2.button("Fine-tune the current pruned model", key="ft_run"):
        before = pg.slow(mask)
        previous = pg.model_for(mask)
        t0 = time.perf_counter()
        try:  # a worker trains a copy: never the shared model or a cached one in place
            with f2, running("finetune"):
                model, losses = run_finetune(
                    state, mask, pg.replacement(mask), steps=int(steps), lr=FT_LR, distill=distill, focus=focus
                )
        except WorkerDied as e:
            f2.error(str(e))
            return
        note.done(time.perf_counter() - t0)
        state.ft_seconds_per_step = (time.perf_counter() - t0) / max(
            int(steps), 1
        )  # this machine's rate, for the next estimate
        pg.replace_model(mask, model)
        state.fine_tune_settings.append(  # kept with the session's work: a reload can run it again
            FineTuneSettings(tuple(int(v > 0.5) for v in mask.tolist()), int(steps), FT_LR, distill, focus)
        )
        after = pg.slow(mask)
        state.finetuned = key
        state.fine_tune = FineTuned(
            key,
            {"before fine-tuning": previous, "fine-tuned": model},
            losses,
            {"before fine-tuning": before, "fine-tuned": after},
            f"Top-1 chosen {before.top1_chosen:.1%} → {after.top1_chosen:.1%} · all classes {before.top1_all:.1%} → "
            f"{after.top1_all:.1%}",
        )
        state.history.pop(key, None)  # the chart and the figures above now show the fine-tuned model
        st.session_state["ft_use"] = "fine-tuned" if after.top1_chosen >= before.top1_chosen else "before fine-tuning"
        st.rerun()
    ft = state.fine_tune
    if ft and ft.key == key:
        worse = ft.figures["fine-tuned"].top1_chosen < ft.figures["before fine-tuning"].top1_chosen
        (f2.warning if worse else f2.success)(
            ft.message
            + (
                " — fine-tuning lowered the chosen-class accuracy on the eval images, so the model before fine-tuning "
                "is selected; "
                "switch below to use the fine-tuned one anyway."
                if worse
                else ""
            )
        )
        f2.line_chart(pd.DataFrame({"training loss": ft.losses}), height=160, x_label="step", y_label="loss")
        use = f2.radio("Use", ["fine-tuned", "before fine-tuning"], horizontal=True, key="ft_use")
        if pg.model_for(mask) is not ft.models[use]:
            pg.replace_model(mask, ft.models[use])
            state.finetuned = key if use == "fine-tuned" else None
            state.history.pop(key, None)
            st.rerun()


if st.session_state.get("prune_grid_version") != state.keep_version:
    sync_grid_from_mask()  # the keep-set changed elsewhere (Circuits, Compare, Atlas, a new model)


@st.fragment
def playground_panel() -> None:
    trace_event("prune_run", kept=int((state.keep_mask() > 0.5).sum()), classes=state.classes)
    slider_row()
    figures_box = st.container()  # figures go above the grid, filled once the grid is drawn
    toggle_grid()
    pg = playground(state)
    mask = state.keep_mask()
    save(state)  # a fragment's run does not reach the shell's save: the toggle is kept before the figures
    with figures_box:
        try:
            fig, row = show_live_figures(pg, mask)
            p_all, p_thr = (c.empty() for c in st.columns(2))
            if rerun_pending():  # the user toggled again: leave the slower figures to the new run
                return
            fig = all_class_figures(pg, mask, p_all)
        except (NothingKeptError, WorkerDied) as e:  # no model left, or a job that stopped its worker on every try
            st.error(str(e))
            return
        if fig is None:
            return
        trace_event("prune_slow_done", kept=fig.kept)
        fig = timed_figures(pg, mask, row, p_thr)
    history_chart(pg, mask, fig)
    fine_tune_panel(pg, mask, fig)


playground_panel()
