"""The deployment table: each runtime's file size, paired batch-1 latency and batch-64 throughput of a model
against the full model in the same runtime, and both models' top-1 on an eval set."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..config import ViTConfig
from ..data import ImageSet, normalize
from ..model import VisionTransformer
from ..pruning.counts import count_macs
from ..pruning.latency import SpeedUp, time_pairs
from .runtimes import RUNTIMES, Deployed, deploy

EVAL_BATCH = 256


def predictions(run: Callable[[Tensor], Tensor], model: VisionTransformer, images: Tensor) -> Tensor:
    """Top-1 class per uint8 image, through ``run`` (a deployed model's callable)."""
    out = [
        run(normalize(images[i : i + EVAL_BATCH], model.config)).argmax(1) for i in range(0, len(images), EVAL_BATCH)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def _paired(
    full: Deployed, model: Deployed, cfg: ViTConfig, batch: int, pairs: int, warmup: int, threads: int
) -> SpeedUp | None:
    """The two deployed models timed back to back on one random batch of ``cfg``'s image shape."""
    x = torch.randn(batch, cfg.in_chans, cfg.image_size, cfg.image_size)
    return time_pairs(full.run, model.run, x, pairs, warmup=warmup, threads=threads)


def deployment_table(
    full: VisionTransformer,
    model: VisionTransformer,
    eval_set: ImageSet,
    runtimes: Sequence[str] = tuple(RUNTIMES),
    threads: int | None = None,
    pairs_b1: int = 30,
    pairs_b64: int = 6,
    calibration: Tensor | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per runtime for ``model`` against ``full``, timed in pairs (full, model) in that runtime.

    ``calibration``: normalized pixels for static int8. Agreement: the share of eval images on which a runtime's
    top-1 equals PyTorch eager's for the same model (1.0 up to float rounding for fp32 runtimes)."""
    threads = threads or torch.get_num_threads()
    cfg = full.config
    mac_reduction = count_macs(full.config) / max(count_macs(model.config), 1)
    labels = eval_set.labels
    eager = {
        name: predictions(deploy(m, "pytorch-eager").run, m, eval_set.images)
        for name, m in (("full", full), ("model", model))
    }
    rows = []
    for i, runtime in enumerate(runtimes):
        if progress:
            progress(i / len(runtimes), runtime)
        pair = {name: deploy(m, runtime, threads, calibration) for name, m in (("full", full), ("model", model))}
        preds = (
            eager
            if runtime == "pytorch-eager"
            else {  # eager's classes are already known
                name: predictions(d.run, m, eval_set.images) for (name, d), m in zip(pair.items(), (full, model))
            }
        )

        b1 = _paired(pair["full"], pair["model"], cfg, 1, pairs_b1, 5, threads)
        b64 = _paired(pair["full"], pair["model"], cfg, 64, pairs_b64, 2, threads)
        assert b1 is not None and b64 is not None  # no stop callback
        rows.append(
            {
                "runtime": runtime,
                "format": RUNTIMES[runtime],
                "file_bytes": {"full": pair["full"].file_bytes, "model": pair["model"].file_bytes},
                "batch1_ms": {"full": b1.reference_ms, "model": b1.model_ms},
                "batch1_speedup": [b1.ratio, b1.p25, b1.p75],
                "batch64_img_s": {"full": 64e3 / b64.reference_ms, "model": 64e3 / b64.model_ms},
                "batch64_speedup": [b64.ratio, b64.p25, b64.p75],
                "mac_reduction": mac_reduction,
                "batch1_over_mac": b1.ratio / mac_reduction,
                "batch64_over_mac": b64.ratio / mac_reduction,
                "top1": {name: float((p == labels).float().mean()) for name, p in preds.items()},
                "agrees_with_eager": {name: float((p == eager[name]).float().mean()) for name, p in preds.items()},
                "threads": threads,
                "pairs": {"batch1": b1.pairs, "batch64": b64.pairs},
            }
        )
    if progress:
        progress(1.0, "done")
    return rows
