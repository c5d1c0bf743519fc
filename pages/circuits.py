"""Circuits page: choose classes and a method, score every head and MLP chunk, compare results."""

import time
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from ui.charts import component_link, heatmap, pixel_heatmap, score_frames
from ui.engine import current_model, keep_of, playground
from ui.longrun import announce, forward_seconds, running, stop_button
from ui.service import run_discovery
from ui.shell import open_page
from vitcore.attribution import input_attribution, lrp_input_attribution
from vitcore.circuits import CORRUPTIONS, METHODS, METRICS
from vitcore.circuits.methods import DEFAULT_METHOD, GROUND_TRUTH
from vitcore.circuits.result import CircuitResult
from vitcore.circuits.trust import TOP_K, describe, load_summary, spearman, top_overlap, why_default
from vitcore.compute.workers import WorkerDied
from vitcore.errors import VitcoreError
from vitcore.evaluate import accuracy_text

EXACT_AT_ONCE_S = 15.0  # exact patching follows an estimate by itself when it should take no longer

state = open_page()
ckpt, discovery = state.ckpt, state.discovery

st.title("Circuits")


@dataclass
class RunChoice:
    """What the user chose to run: a method at a granularity, with its setting and options."""

    method: str
    corruption: str
    metric: str
    granularity: str
    n_images: int
    kwargs: dict


def class_picker() -> None:
    options = state.class_options()
    labels = {v: k for k, v in options.items()}
    chosen = st.multiselect(
        "Classes (type to search)",
        list(options),
        default=[labels[w] for w in state.classes if w in labels],
        key="class_pick",
    )
    state.classes = [options[c] for c in chosen]


def run_choice() -> RunChoice:
    """The method row, its description and trust, and its setting, options and number of images."""
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox(
        "Method",
        list(METHODS),
        index=list(METHODS).index(DEFAULT_METHOD),
        format_func=lambda m: METHODS[m].label,
        key="method",
    )
    entry = METHODS[method]
    corruption = c2.selectbox("Corruption", CORRUPTIONS, key="corruption")
    metric = c3.selectbox("Metric", METRICS, index=METRICS.index(entry.default_metric), key=f"metric_{method}")
    granularity = c4.radio(
        "Score",
        entry.granularities,
        horizontal=True,
        key=f"granularity_{method}",
        format_func=lambda g: "components" if g == "node" else f"edges ({len(ckpt.model.edges):,})",
        help="components: heads and MLP chunks; edges: each connection from an earlier component (or the embedding) "
        "into a head's query, key or value, an MLP's input or the logits. The Circuit graph page draws edge circuits.",
    )
    st.caption(
        f"{entry.description} Cost: {entry.cost}"
        + (", on an edge-instrumented forward (several times a plain one)." if granularity == "edge" else ".")
    )
    summary = st.cache_data(load_summary)()
    trust = describe(method, summary)
    if trust:
        st.caption(trust + " (python -m vitcore bench-faithfulness)")
    reason = why_default(summary) if method == DEFAULT_METHOD else None
    if reason:
        st.caption(reason)
    n_available = int(sum(int((discovery.labels == discovery.class_index(w)).sum()) for w in state.classes)) or 1
    p1, p2, p3 = st.columns(3)
    n_images = p1.slider("Number of discovery images", 1, max(2, n_available), n_available, key="n_images")
    param = entry.param
    kwargs = {
        param.name: p2.select_slider(
            param.label,
            list(param.choices),
            value=entry.default(granularity),
            help=param.help,
            key=f"{param.name}_param_{granularity}",
        )
    }
    for o in entry.options:  # the run options this method reads, as the registry declares them
        kwargs[o.field] = p3.slider(o.label, o.low, o.high, o.default, o.step, help=o.help, key=o.field)
    return RunChoice(method, corruption, metric, granularity, n_images, kwargs)


def run_panel(choice: RunChoice) -> None:
    """The time estimate, Run and Stop; a finished run becomes the active result and sets the keep-set."""
    entry = METHODS[choice.method]
    note = None
    if state.classes:
        images = discovery.images[discovery.chosen(state.classes)][: choice.n_images]
        forward_s = forward_seconds(ckpt.model, images, (tuple(state.classes), choice.n_images, ckpt.sha256))
        estimate = entry.estimate_seconds(
            forward_s, entry.run_options(choice.kwargs), len(ckpt.model.components), choice.granularity
        )
        note = announce(estimate, "This run")
    run_col, stop_col = st.columns([1, 5])
    stop_button("circuit", "circuit run", stop_col)
    if not run_col.button("Run", type="primary", key="run_circuit"):
        return
    t0 = time.perf_counter()
    try:
        with running("circuit"):
            result = run_discovery(
                state,
                choice.method,
                corruption=choice.corruption,
                metric=choice.metric,
                n_images=choice.n_images,
                granularity=choice.granularity,
                **choice.kwargs,
            )
    except (VitcoreError, WorkerDied) as e:
        st.error(str(e))
        return
    waited = time.perf_counter() - t0
    if note is not None:
        note.done(waited)
    state.add_result(result)
    state.set_keep(keep_of(state, result))


def label(i: int) -> str:
    r = state.results[i]
    edges = " (edges)" if r.is_edge else ""
    return f"#{i + 1} {r.method}{edges} · {len(r.classes)} class(es) · {r.corruption} · {r.metric}"


def result_header(i: int) -> CircuitResult:
    r = state.results[i]
    f = r.faithfulness
    st.subheader(label(i))
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("Kept edges" if r.is_edge else "Kept", f"{len(r.kept or [])}/{len(r.scores)}")
    m2.metric("Top-1, patched circuit", f"{f['top1']:.1%}")
    m3.metric("KL, patched circuit", f"{f['kl']:.4f}")
    m4.metric("Time", f"{r.wall_time_s:.1f} s")
    m5.metric(
        "Passes",
        f"{r.forward_passes:.0f}F+{r.backward_passes:.0f}B",
        help=f"{r.forward_passes:g} forward and {r.backward_passes:g} backward pass equivalents over the images",
    )
    st.caption(
        f"**Patched circuit**: the full model with every removed {'edge' if r.is_edge else 'component'} fed the "
        f"{r.corruption} corruption, on the discovery images the method scored: top-1 "
        f"{accuracy_text(f['top1'], r.n_images, 0)}. It measures how faithful the scores are."
    )
    pruned_figures(keep_of(state, r))
    return r


def pruned_figures(keep) -> None:
    """The physically pruned model's figures for ``keep``: the same numbers the Prune and Circuit graph pages show."""
    if keep.sum() == 0:
        st.warning("The circuit keeps no component: there is no pruned model.")
        return
    pg = playground(state)
    fig = pg.fast(keep)
    n = len(pg.chosen)
    p1, p2, _ = st.columns([1, 1, 3])
    p1.metric("Top-1, physically pruned", f"{fig.top1_chosen:.1%}")
    p2.metric("KL, physically pruned", f"{fig.kl_chosen:.4f}")
    st.caption(
        f"**Physically pruned**: the model with the {len(keep) - int(keep.sum())} removed components cut out of the "
        f"weights, on the chosen classes' eval images (top-1 {accuracy_text(fig.top1_chosen, n, 0)}): the "
        "figures the Prune and Circuit graph pages show for the same components. The two differ because the images "
        "differ and because a removed component outputs zero here instead of the corruption."
    )


def downloads(r: CircuitResult, suffix: str = "") -> None:
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download scores (CSV)", r.to_csv(), file_name=f"circuit-{r.method}{suffix}.csv", mime="text/csv", key="dl_csv"
    )
    d2.download_button(
        "Download result (JSON)",
        r.to_json(),
        file_name=f"circuit-{r.method}{suffix}.json",
        mime="application/json",
        key="dl_json",
    )


def edge_result_view(r: CircuitResult) -> None:
    alive = keep_of(state, r)
    st.caption(
        f"{int(alive.sum())} of {len(alive)} components still reach the logits through kept edges: the Prune page "
        "starts from them "
        "(a pruned model keeps every edge between kept components). The Circuit graph page draws the edges."
    )
    top = sorted(range(len(r.scores)), key=lambda j: -r.scores[j])[:200]
    kept_set = set(r.kept or [])
    st.dataframe(
        pd.DataFrame(
            {
                "edge": [r.component_names[j] for j in top],
                "score": [r.scores[j] for j in top],
                "kept": [r.component_names[j] in kept_set for j in top],
            }
        ),
        height=240,
    )
    downloads(r, "-edges")


def node_result_view(r: CircuitResult) -> None:
    """The result's heatmaps and ranked table; for an estimate, exact patching follows as a second tier."""
    shown = st.empty()
    with shown.container():
        score_view(r, f"{METHODS[r.method].label}'s scores on {r.n_images} images")
    downloads(r)
    truth = exact_tier(r)
    if truth is None:
        return
    first = f"{METHODS[r.method].label} on {r.n_images} images"
    agree = (
        f"{first} against exact patching on {truth.n_images} images: Spearman "
        f"{spearman(r.score_tensor(), truth.score_tensor()):.2f}, "
        f"{top_overlap(r.score_tensor(), truth.score_tensor(), TOP_K)} of its top {TOP_K} in exact patching's top "
        f"{TOP_K}."
    )
    pick = st.radio(
        "Heatmaps show",
        ("exact", "first"),
        format_func=lambda v: f"exact patching on {truth.n_images} images (measured)" if v == "exact" else first,
        horizontal=True,
        key="tier_shown",
    )
    with shown.container():
        if pick == "exact":
            score_view(truth, f"exact patching's measured effects on {truth.n_images} images", agree)
        else:
            score_view(r, f"{first}", agree)


def score_view(r: CircuitResult, what: str, note: str = "") -> None:
    heads, chunks = score_frames(r.component_names, r.scores, set(r.kept or []))
    h1, h2 = st.columns(2)
    h1.altair_chart(heatmap(heads, "Heads: layer x head", classes=r.classes), width="stretch")
    h2.altair_chart(heatmap(chunks, "MLP chunks: layer x chunk", classes=r.classes), width="stretch")
    st.caption(
        f"Showing **{what}**. {note} A white dot marks a component the circuit keeps; click a cell, or a row's link "
        "below, to look inside it."
    )
    table = pd.concat([heads, chunks]).sort_values("score", ascending=False).reset_index(drop=True)
    table.index += 1
    table["look inside"] = [component_link(n, r.classes) for n in table["component"]]
    st.dataframe(
        table[["component", "score", "kept", "look inside"]],
        height=240,
        column_config={"look inside": st.column_config.LinkColumn(display_text="open")},
    )


def exact_tier(r: CircuitResult) -> CircuitResult | None:
    """Exact patching with ``r``'s classes, corruption and metric, through the compute service (shared by every
    session that asks): on ``r``'s images for an estimate, on all the chosen classes' images for exact patching on
    a sample; at once when its estimate is within ``EXACT_AT_ONCE_S``, else on request."""
    if r.shortcut is not None or r.classes != state.classes or r.seed != 0:
        return None
    available = len(discovery.chosen(state.classes))
    n_images = available if r.method == GROUND_TRUTH else r.n_images
    if r.method == GROUND_TRUTH and r.n_images >= available:
        return None
    entry = METHODS[GROUND_TRUTH]
    images = discovery.images[discovery.chosen(state.classes)][:n_images]
    forward_s = forward_seconds(ckpt.model, images, (tuple(state.classes), n_images, ckpt.sha256))
    estimate = entry.estimate_seconds(forward_s, entry.run_options(), len(ckpt.model.components))
    if estimate > EXACT_AT_ONCE_S and not st.button(
        f"Refine to exact patching (about {estimate:.0f} s)", key="exact_tier"
    ):
        st.caption("Exact patching removes each component alone and measures the change: the scores above estimate it.")
        return None
    try:
        return run_discovery(state, GROUND_TRUTH, corruption=r.corruption, metric=r.metric, n_images=n_images)
    except (VitcoreError, WorkerDied) as e:
        st.error(str(e))
        return None


def compare_results() -> None:
    """Two component results side by side, with the overlap of their kept sets."""
    results = state.results
    node_results = [j for j, x in enumerate(results) if not x.is_edge]
    if len(node_results) < 2:
        return
    st.subheader("Compare results")
    a, b = st.columns(2)
    # keys change with the number of results, so that a new run is compared by default
    ia = a.selectbox(
        "Result A", node_results, format_func=label, index=len(node_results) - 2, key=f"cmp_a_{len(results)}"
    )
    ib = b.selectbox(
        "Result B", node_results, format_func=label, index=len(node_results) - 1, key=f"cmp_b_{len(results)}"
    )
    ka, kb = set(results[ia].kept or []), set(results[ib].kept or [])
    jaccard = len(ka & kb) / max(1, len(ka | kb))
    st.metric(
        "Overlap of kept sets (Jaccard)",
        f"{jaccard:.2f}",
        help=f"{len(ka & kb)} shared of {len(ka | kb)} kept by either",
    )
    for col, idx in ((a, ia), (b, ib)):
        hh, cc = score_frames(results[idx].component_names, results[idx].scores, set(results[idx].kept or []))
        classes = results[idx].classes
        col.altair_chart(heatmap(hh, f"Heads #{idx + 1}", classes=classes), width="stretch")
        col.altair_chart(heatmap(cc, f"Chunks #{idx + 1}", classes=classes), width="stretch")


def attribution_panel() -> None:
    """Integrated gradients and LRP maps of one eval image, for the full and the current pruned model."""
    eval_set = state.eval_set
    wanted = [eval_set.class_index(w) for w in state.classes]
    labels = eval_set.labels.tolist()
    pool = [i for i, y in enumerate(labels) if not wanted or y in wanted][:200]
    a1, a2 = st.columns([3, 1])
    name = {i: f"#{i} · {eval_set.names[labels[i]]}" for i in pool}
    pick = a1.selectbox("Eval image", pool, format_func=name.__getitem__, key="attr_image")
    steps = a2.number_input("IG steps", 4, 128, 32, 4, key="attr_steps")
    if st.button("Explain this image", key="attr_run"):
        target = int(eval_set.labels[pick])
        models = {"full model": ckpt.model}
        pruned = current_model(state)
        if pruned is None:
            st.warning("Every component is switched off on the Prune page; showing the full model only.")
        elif pruned is not ckpt.model:
            models["current pruned model"] = pruned
        image = eval_set.images[pick]
        state.attribution = (
            pick,
            {name: input_attribution(m, image, target, int(steps)) for name, m in models.items()},
            {name: lrp_input_attribution(m, image, target) for name, m in models.items()},
        )
    shown = state.attribution
    if not shown or shown[0] >= len(eval_set):
        return
    idx, maps, lrp_maps = shown
    side = ckpt.model.config.image_size
    st.image(
        eval_set.images[idx].permute(1, 2, 0).numpy(),
        caption=f"#{idx}, as the model sees it ({side}x{side})",
        width=160,
    )
    cols = st.columns(2 * len(maps))
    for i, (name, a) in enumerate(maps.items()):
        r = lrp_maps[name]
        cols[2 * i].altair_chart(pixel_heatmap(a.pixels, f"{name}, IG: logit {a.logit:.2f}"), width="content")
        cols[2 * i].caption(
            f"integrated gradients · completeness gap {a.convergence_delta:+.3f} (logit - baseline "
            f"{a.logit - a.baseline_logit:.2f})"
        )
        cols[2 * i + 1].altair_chart(pixel_heatmap(r.pixels, f"{name}, LRP: logit {r.logit:.2f}"), width="content")
        cols[2 * i + 1].caption(f"LRP (AttnLRP) · pixels hold {float(r.pixels.sum()):.2f} of the logit's {r.logit:.2f}")
    st.caption(f"Red raises, blue lowers the '{eval_set.names[next(iter(maps.values())).target]}' logit.")


class_picker()
run_panel(run_choice())
active_index = state.active_index()
if active_index is not None:
    active = result_header(active_index)
    if active.is_edge:
        edge_result_view(active)
    else:
        node_result_view(active)
        compare_results()
else:
    st.info(
        "Pick one or more classes and press Run to score every attention head and MLP chunk (or every edge between "
        "them)."
    )
with st.expander(
    "What does the model look at? (integrated gradients with captum, and LRP)", expanded=state.attribution is not None
):
    attribution_panel()
