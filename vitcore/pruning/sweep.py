"""The Pareto sweep: discover, prune physically, measure, optionally fine-tune, per configuration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..circuits import discover
from ..circuits.methods import METHODS, get_method
from ..circuits.result import keep_top
from ..data import ImageSet
from ..evaluate import predict_logits
from ..model import VisionTransformer
from .counts import count_macs, count_params
from .evaluation import PrunedEval, evaluate_against
from .finetune import finetune_steps
from .latency import time_forward
from .prune import prune


def default_settings(methods: list[str] | None = None) -> dict[str, list[float]]:
    """Each method's sweep settings from the registry (all registered methods by default)."""
    return {m: list(get_method(m).sweep) for m in (methods or list(METHODS))}


def _row(
    method: str,
    setting: float,
    finetuned: bool,
    model: VisionTransformer,
    ev: PrunedEval,
    disc_s: float,
    kept: list[str],
) -> dict[str, Any]:
    return {
        "method": method,
        "setting": setting,
        "finetuned": finetuned,
        "kept_heads": sum(model.config.heads),
        "kept_chunks": len(model.components) - sum(model.config.heads),
        "params": count_params(model),
        "macs": count_macs(model.config),
        "latency_b1_ms": float("nan"),
        "throughput_b64_img_s": float("nan"),
        "top1_chosen": round(ev.top1_chosen, 4),
        "top1_all": round(ev.top1_all, 4),
        "kl": round(ev.kl, 5),
        "discovery_s": round(disc_s, 2),
        "kept_components": " ".join(kept),
    }


def measure_latencies(models: list[VisionTransformer], repeats: int = 20) -> list[tuple[float, float]]:
    """(batch-1 median ms, batch-64 img/s) per model, all measured interleaved in one run."""
    named = {str(i): m for i, m in enumerate(models)}
    b1 = time_forward(named, 1, repeats)
    b64 = time_forward(named, 64, max(3, repeats // 3))
    return [(b1[k]["median_ms"], 64e3 / b64[k]["median_ms"]) for k in named]


def _within(
    progress: Callable[[float, str], None] | None, done: int, total: int, what: str
) -> Callable[[float], None] | None:
    """A method's own progress (0..1) as a part of the sweep's: a long ACDC or learned-mask run reports as it goes."""
    if progress is None:
        return None
    return lambda f: progress((done + min(max(f, 0.0), 1.0)) / total, what)


def estimate_sweep_seconds(
    settings: dict[str, list[float]],
    forward_s: float,
    task_images: int,
    eval_images: int,
    n_components: int,
    finetune: int = 0,
    options: dict[str, int] | None = None,
    latency_repeats: int = 20,
) -> float:
    """Expected wall time of :func:`run_sweep` from one measured forward over ``task_images`` images: each
    method's own estimate, a forward over the eval set per row, fine-tuning as batches of 64 (forward,
    backward and the teacher's forward: about four forwards each), and the side-by-side latency runs."""
    per_image = forward_s / max(task_images, 1)
    rows = sum(len(v) for v in settings.values())
    seconds = per_image * eval_images * (1 + rows * (2 if finetune else 1))
    for method, values in settings.items():
        entry = get_method(method)
        one = entry.estimate_seconds(forward_s, entry.run_options(options), n_components)
        seconds += one if entry.ranks else one * len(values)
    seconds += rows * finetune * 4 * 64 * per_image
    seconds += (
        (rows + 1) * per_image * (latency_repeats + 5 + (max(3, latency_repeats // 3) + 5) * 64)
    )  # measure_latencies, warm-up included
    return seconds


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
    options: dict[str, int] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per configuration (plus the unpruned baseline), with and without fine-tuning.

    Latency is measured last, for every distinct architecture side by side (interleaved), so
    that machine noise hits all configurations alike. Fine-tuning keeps the shapes, so a
    fine-tuned row shares its pruned row's latency. An empty circuit (e.g. ACDC at a large tau)
    is a row too: embedding, final norm and head only. ``options`` are the methods' run options
    by field (e.g. ``{"steps": 100}``); each method reads its own.
    """
    options = options or {}
    settings = settings if settings is not None else default_settings()
    chosen = eval_set.chosen(classes)
    base_logits = predict_logits(base, eval_set.images)
    names = base.components.names
    rows = [_row("baseline", 1.0, False, base, evaluate_against(base_logits, None, eval_set, chosen), 0.0, list(names))]
    arch = [base]  # the model whose latency each row reports
    total = sum(len(v) for v in settings.values()) + 1
    done = 0
    for method, values in settings.items():
        entry = get_method(method)
        ranked = None
        for value in values:
            t0 = time.perf_counter()
            if entry.ranks:
                if ranked is None:  # scores do not depend on the keep ratio: compute once
                    ranked = discover(
                        base,
                        discovery,
                        classes,
                        method,
                        corruption,
                        n_images=n_images,
                        progress=_within(progress, done, total, f"{method} scores"),
                        **entry.own_options(options),
                    )
                    first_s = time.perf_counter() - t0
                keep = keep_top(ranked.score_tensor(), value)
                disc_s = first_s
            else:
                res = discover(
                    base,
                    discovery,
                    classes,
                    method,
                    corruption,
                    n_images=n_images,
                    setting=value,
                    **entry.own_options(options),
                    progress=_within(progress, done, total, f"{method} {value}"),
                )
                keep = base.components.mask_from_keep(res.kept or [])
                disc_s = time.perf_counter() - t0
            kept = [names[i] for i in base.components.keep_from_mask(keep)]
            pruned = prune(base, keep)
            rows.append(
                _row(
                    method, value, False, pruned, evaluate_against(base_logits, pruned, eval_set, chosen), disc_s, kept
                )
            )
            arch.append(pruned)
            if finetune > 0:
                tuned = pruned.clone()
                finetune_steps(tuned, discovery, finetune, teacher=base)
                rows.append(
                    _row(
                        method, value, True, tuned, evaluate_against(base_logits, tuned, eval_set, chosen), disc_s, kept
                    )
                )
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
