"""The Pareto sweep: discover, prune physically, measure, optionally fine-tune, per configuration."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..circuits import discover
from ..circuits.metrics import kl_damage
from ..circuits.result import keep_top
from ..data import ImageSet
from ..evaluate import predict_logits
from ..model import VisionTransformer
from .counts import count_macs, count_params
from .finetune import finetune_steps
from .latency import time_forward
from .prune import prune

COLUMNS = [
    "method", "setting", "finetuned", "kept_heads", "kept_chunks", "params", "macs", "latency_b1_ms", "throughput_b64_img_s",
    "top1_chosen", "top1_all", "kl", "discovery_s", "kept_components",
]
NUMERIC_COLUMNS = [c for c in COLUMNS if c not in ("method", "finetuned", "kept_components")]
DEFAULT_SETTINGS: dict[str, list[float]] = {
    "eap": [0.9, 0.8, 0.7, 0.6, 0.5],
    "eap-ig": [0.9, 0.8, 0.7, 0.6, 0.5],
    "acdc": [0.01, 0.05, 0.1, 0.15, 0.2],
    "learned": [0.1, 0.2, 0.3, 0.4, 0.5],  # sparsity = 1 - keep ratio, matching EAP's keep ratios
}


@dataclass
class PrunedEval:
    top1_chosen: float
    top1_all: float
    kl: float


@torch.no_grad()
def evaluate_against(base_logits: torch.Tensor, model: VisionTransformer | None, eval_set: ImageSet, chosen: torch.Tensor) -> PrunedEval:
    """Top-1 on the chosen classes and on all classes, and KL(full || model) on the chosen classes.

    ``model=None`` gives the figures of the full model itself, from ``base_logits``.
    """
    logits = base_logits if model is None else predict_logits(model, eval_set.images)
    correct = logits.argmax(1) == eval_set.labels
    return PrunedEval(float(correct[chosen].float().mean()), float(correct.float().mean()), float(kl_damage(logits[chosen], base_logits[chosen], eval_set.labels[chosen]).mean()))


def pareto_frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (latency, error), both minimised, sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    frontier, best = [], float("inf")
    for i in order:
        if points[i][1] < best:
            frontier.append(i)
            best = points[i][1]
    return frontier


def _row(method: str, setting: float, finetuned: bool, model: VisionTransformer, ev: PrunedEval, disc_s: float, kept: list[str]) -> dict[str, Any]:
    return {
        "method": method, "setting": setting, "finetuned": finetuned, "kept_heads": sum(model.config.heads),
        "kept_chunks": len(model.components) - sum(model.config.heads), "params": count_params(model), "macs": count_macs(model.config),
        "latency_b1_ms": float("nan"), "throughput_b64_img_s": float("nan"), "top1_chosen": round(ev.top1_chosen, 4),
        "top1_all": round(ev.top1_all, 4), "kl": round(ev.kl, 5), "discovery_s": round(disc_s, 2), "kept_components": " ".join(kept),
    }


def measure_latencies(models: list[VisionTransformer], repeats: int = 20) -> list[tuple[float, float]]:
    """(batch-1 median ms, batch-64 img/s) per model, all measured interleaved in one run."""
    named = {str(i): m for i, m in enumerate(models)}
    b1 = time_forward(named, 1, repeats)
    b64 = time_forward(named, 64, max(3, repeats // 3))
    return [(b1[k]["median_ms"], 64e3 / b64[k]["median_ms"]) for k in named]


def run_sweep(
    base: VisionTransformer,
    discovery: ImageSet,
    eval_set: ImageSet,
    classes: list[str],
    settings: dict[str, list[float]] | None = None,
    corruption: str = "resample",
    finetune: int = 0,
    n_images: int | None = None,
    latency_repeats: int = 20,
    learned_steps: int = 200,
    progress: Callable[[float, str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per configuration (plus the unpruned baseline), with and without fine-tuning.

    Latency is measured last, for every distinct architecture side by side (interleaved), so
    that machine noise hits all configurations alike. Fine-tuning keeps the shapes, so a
    fine-tuned row shares its pruned row's latency. An empty circuit (e.g. ACDC at a large tau)
    is a row too: embedding, final norm and head only.
    """
    settings = settings if settings is not None else DEFAULT_SETTINGS
    chosen = torch.isin(eval_set.labels, torch.tensor([eval_set.class_index(w) for w in classes]))
    base_logits = predict_logits(base, eval_set.images)
    names = base.components.names
    rows = [_row("baseline", 1.0, False, base, evaluate_against(base_logits, None, eval_set, chosen), 0.0, list(names))]
    arch = [base]  # the model whose latency each row reports
    total = sum(len(v) for v in settings.values()) + 1
    done = 0
    for method, values in settings.items():
        eap_like = None
        for value in values:
            t0 = time.perf_counter()
            if method in ("eap", "eap-ig"):
                if eap_like is None:  # scores do not depend on the keep ratio: compute once
                    eap_like = discover(base, discovery, classes, method, corruption, n_images=n_images)
                    first_s = time.perf_counter() - t0
                keep = keep_top(eap_like.score_tensor(), value)
                disc_s = first_s
            else:
                kwargs = {"tau": value} if method == "acdc" else {"sparsity": value, "steps": learned_steps}
                res = discover(base, discovery, classes, method, corruption, n_images=n_images, **kwargs)
                keep = base.components.mask_from_keep(res.kept or [])
                disc_s = time.perf_counter() - t0
            kept = [names[i] for i in base.components.keep_from_mask(keep)]
            pruned = prune(base, keep)
            rows.append(_row(method, value, False, pruned, evaluate_against(base_logits, pruned, eval_set, chosen), disc_s, kept))
            arch.append(pruned)
            if finetune > 0:
                tuned = pruned.clone()
                finetune_steps(tuned, discovery, finetune, teacher=base)
                rows.append(_row(method, value, True, tuned, evaluate_against(base_logits, tuned, eval_set, chosen), disc_s, kept))
                arch.append(pruned)
            done += 1
            if progress:
                progress(done / total, f"{method} {value}")
    distinct = list({id(m): m for m in arch}.values())
    if progress:
        progress(done / total, f"latency of {len(distinct)} models, side by side")
    measured = dict(zip([id(m) for m in distinct], measure_latencies(distinct, latency_repeats)))
    for row, model in zip(rows, arch):
        b1, b64 = measured[id(model)]
        row["latency_b1_ms"], row["throughput_b64_img_s"] = round(b1, 3), round(b64, 1)
    if progress:
        progress(1.0, "done")
    return rows


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a sweep CSV, numbers parsed; raises ValueError on a foreign file.

    ``kept_components`` is None for CSVs written before that column existed ('' is an empty circuit).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(NUMERIC_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} is not a vitcore sweep CSV: it lacks the column(s) {', '.join(sorted(missing))}")
        rows = []
        for line, r in enumerate(reader, start=2):
            row: dict[str, Any] = {"method": r["method"], "finetuned": r["finetuned"] in ("True", "true", "1"), "kept_components": r.get("kept_components")}
            try:
                row.update({k: float(r[k]) for k in NUMERIC_COLUMNS})
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}, line {line}: not a number ({e})") from e
            rows.append(row)
    return rows


# one hue per method, light to dark along its setting, as in the seed study's figure
RAMPS: dict[str, list[str]] = {
    "eap": ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"],
    "eap-ig": ["#c7e9c0", "#a1d99b", "#74c476", "#31a354", "#006d2c"],
    "acdc": ["#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603"],
    "learned": ["#dadaeb", "#bcbddc", "#9e9ac8", "#756bb1", "#54278f"],
}
SETTING_NAMES = {"eap": "keep", "eap-ig": "keep", "acdc": "tau", "learned": "sparsity"}


def config_label(method: str, setting: float) -> str:
    """'EAP keep 0.7', 'ACDC tau 0.05', 'baseline'."""
    if method == "baseline":
        return "baseline"
    return f"{method.upper() if method != 'learned' else method} {SETTING_NAMES.get(method, 'setting')} {setting:g}"


def config_colours(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Colour-scale domain (config labels) and range: baseline black, each method a ramp over its settings."""
    domain, colours = ["baseline"], ["#000000"]
    for method, ramp in RAMPS.items():
        values = sorted({r["setting"] for r in rows if r["method"] == method}, reverse=method in ("eap", "eap-ig"))
        for i, v in enumerate(values):  # darker = more pruned
            domain.append(config_label(method, v))
            colours.append(ramp[round(i * (len(ramp) - 1) / max(len(values) - 1, 1))])
    return domain, colours


def frontier_chart(rows: list[dict[str, Any]], title: str = "Pareto frontier: error vs batch-1 latency"):
    """Altair chart: error (1 - top-1 on the chosen classes) vs batch-1 latency, frontier drawn.

    Colour: method and setting; shape: fine-tuned or not; the dashed line is the frontier.
    """
    import altair as alt
    import pandas as pd

    df = pd.DataFrame(rows)
    df["error"] = 1 - df["top1_chosen"]
    df["config"] = [config_label(m, v) for m, v in zip(df["method"], df["setting"])]
    df["fine-tuned"] = df["finetuned"].map({True: "yes", False: "no"})
    front = df.iloc[pareto_frontier(list(zip(df["latency_b1_ms"], df["error"])))]
    domain, colours = config_colours(rows)
    points = alt.Chart(df).mark_point(filled=True, size=80, opacity=0.9, stroke="#333333", strokeWidth=0.5).encode(
        x=alt.X("latency_b1_ms:Q", title="batch-1 latency (ms, median)", scale=alt.Scale(zero=False)),
        y=alt.Y("error:Q", title="error on the chosen classes"),
        color=alt.Color("config:N", title="method, setting", scale=alt.Scale(domain=domain, range=colours), sort=domain),
        shape=alt.Shape("fine-tuned:N", scale=alt.Scale(domain=["no", "yes"], range=["circle", "triangle-up"])),
        tooltip=["config", "fine-tuned", "kept_heads", "kept_chunks", "latency_b1_ms", "throughput_b64_img_s", "top1_chosen", "top1_all", "kl", "macs"],
    )
    line = alt.Chart(front).mark_line(color="black", strokeDash=[4, 3]).encode(x="latency_b1_ms:Q", y="error:Q")
    return (line + points).properties(width=560, height=360, title=title)


def bisect_keep(
    base: VisionTransformer, scores: torch.Tensor, eval_set: ImageSet, chosen: torch.Tensor, target: float, iterations: int = 8,
    base_logits: torch.Tensor | None = None,
) -> tuple[float, PrunedEval]:
    """Smallest keep ratio (by ranking ``scores``) whose chosen-class top-1 stays >= ``target``.

    Returns (ratio, figures); ratio 1.0 with the full model's figures when even it misses the target.
    Accuracy is not strictly monotone in the ratio: this is bisection's answer, not an exhaustive one.
    """
    base_logits = predict_logits(base, eval_set.images) if base_logits is None else base_logits
    lo, hi = 0.0, 1.0
    best = evaluate_against(base_logits, None, eval_set, chosen)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ev = evaluate_against(base_logits, prune(base, keep_top(scores, mid)), eval_set, chosen)
        if ev.top1_chosen >= target:
            hi, best = mid, ev
        else:
            lo = mid
    return hi, best


def bisect_tau(
    base: VisionTransformer, discovery: ImageSet, eval_set: ImageSet, classes: list[str], chosen: torch.Tensor, target: float,
    corruption: str = "resample", lo: float = 1e-4, hi: float = 0.5, iterations: int = 6, base_logits: torch.Tensor | None = None,
) -> tuple[float, PrunedEval, int]:
    """Largest ACDC tau (fewest kept components) whose chosen-class top-1 stays >= ``target``.

    Bisects geometrically over [lo, hi], since useful taus span orders of magnitude, re-running
    ACDC at every probe. Returns (tau, figures, kept count); tau = 0 (ACDC removes only components
    that do not raise KL at all) when even ``lo`` misses the target.
    """
    base_logits = predict_logits(base, eval_set.images) if base_logits is None else base_logits

    def probe(tau: float) -> tuple[PrunedEval, int]:
        keep = base.components.mask_from_keep(discover(base, discovery, classes, "acdc", corruption, tau=tau).kept or [])
        return evaluate_against(base_logits, prune(base, keep), eval_set, chosen), int(keep.sum())

    ev, kept = probe(hi)
    if ev.top1_chosen >= target:
        return hi, ev, kept
    ev, kept = probe(lo)
    if ev.top1_chosen < target:
        return (0.0, *probe(0.0))
    best = (lo, ev, kept)
    for _ in range(iterations):
        mid = (lo * hi) ** 0.5
        ev, kept = probe(mid)
        if ev.top1_chosen >= target:
            lo, best = mid, (mid, ev, kept)
        else:
            hi = mid
    return best
