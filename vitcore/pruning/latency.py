"""Measured CPU latency and throughput, side by side, with medians and spread."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..model import VisionTransformer
from .counts import count_macs, count_params

logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" notice on CPU machines
from torch.utils.benchmark import Timer  # noqa: E402


def _inference(model: VisionTransformer) -> Callable[[Tensor], Tensor]:
    """The model's forward under inference mode, without touching its train/eval flag (it may be shared)."""
    if model.training:
        raise ValueError("time_forward needs models in eval mode (dropout and drop path would be timed)")

    def forward(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(x)

    return forward


def time_forward(
    models: dict[str, VisionTransformer],
    batch_size: int,
    repeats: int = 30,
    warmup: int = 5,
    threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """Per model: median, p25 and p75 of one forward's wall time (ms), interleaved across models."""
    threads = threads or torch.get_num_threads()  # Timer sets it for the timed calls only, then restores it
    cfg = next(iter(models.values())).config
    x = torch.randn(batch_size, cfg.in_chans, cfg.image_size, cfg.image_size)
    timers = {
        name: Timer("forward(x)", globals={"forward": _inference(m), "x": x}, num_threads=threads)
        for name, m in models.items()
    }
    for timer in timers.values():
        timer.timeit(warmup)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):  # interleaved, so that machine noise hits every model alike
        for name, timer in timers.items():
            times[name].append(timer.timeit(1).median * 1e3)
    out = {}
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
        out[name] = {"median_ms": statistics.median(ts), "p25_ms": q[0], "p75_ms": q[2], "repeats": len(ts)}
    return out


def compare(
    base: VisionTransformer,
    pruned: VisionTransformer,
    repeats: int = 30,
    threads: int | None = None,
    throughput_batch: int = 64,
) -> dict[str, Any]:
    """Batch-1 latency and batch-64 throughput of ``pruned`` against ``base``, measured in one run."""
    models = {"base": base, "pruned": pruned}
    b1 = time_forward(models, 1, repeats, threads=threads)
    bN = time_forward(models, throughput_batch, max(5, repeats // 3), threads=threads)
    base_macs, pruned_macs = count_macs(base.config), count_macs(pruned.config)
    mac_ratio = base_macs / max(pruned_macs, 1)
    speed1 = b1["base"]["median_ms"] / b1["pruned"]["median_ms"]
    speedN = bN["base"]["median_ms"] / bN["pruned"]["median_ms"]
    return {
        "threads": threads or torch.get_num_threads(),
        "params": {"base": count_params(base), "pruned": count_params(pruned)},
        "macs": {"base": base_macs, "pruned": pruned_macs},
        "mac_reduction": mac_ratio,
        "batch1_ms": {k: v["median_ms"] for k, v in b1.items()},
        "batch1_spread_ms": {k: [v["p25_ms"], v["p75_ms"]] for k, v in b1.items()},
        f"batch{throughput_batch}_img_s": {k: throughput_batch * 1e3 / v["median_ms"] for k, v in bN.items()},
        f"batch{throughput_batch}_spread_ms": {k: [v["p25_ms"], v["p75_ms"]] for k, v in bN.items()},
        "speedup_batch1": speed1,
        f"speedup_batch{throughput_batch}": speedN,
        "speedup_over_mac_reduction_batch1": speed1 / mac_ratio,
        f"speedup_over_mac_reduction_batch{throughput_batch}": speedN / mac_ratio,
    }


BUSY_SPREAD = 0.25  # (p75 - p25) / median of the paired ratios above this: the machine was too busy to trust


@dataclass
class SpeedUp:
    """Batch latency of a model against a reference, from back-to-back pairs (reference, model)."""

    ratio: float  # median over pairs of reference_ms / model_ms: > 1 is faster
    p25: float
    p75: float
    reference_ms: float  # medians
    model_ms: float
    pairs: int

    @property
    def busy(self) -> bool:
        """True when the spread is too wide to show the ratio as a fact."""
        return (self.p75 - self.p25) / max(self.ratio, 1e-9) > BUSY_SPREAD


def measure_speedup(
    reference: VisionTransformer,
    model: VisionTransformer,
    batch_size: int = 1,
    pairs: int = 15,
    warmup: int = 3,
    threads: int = 1,
    stop: Callable[[], bool] | None = None,
) -> SpeedUp | None:
    """Interleaved A/B timing: each pair times the reference and the model back to back, so that
    load on the machine hits both; the ratio's median and quartiles come from the pairs.
    ``stop`` is asked before every pair; when it answers True the timing ends and None is returned.

    One thread by default: with every core's thread in a parallel region, one competing process
    stalls whole forwards and the ratio swings between runs (docs/results/app.md, the speed-up's
    stability under a busy-loop process)."""
    cfg = reference.config
    x = torch.randn(batch_size, cfg.in_chans, cfg.image_size, cfg.image_size)
    return time_pairs(_inference(reference), _inference(model), x, pairs, warmup, threads, stop)


def time_pairs(
    reference: Callable[[Tensor], Any],
    model: Callable[[Tensor], Any],
    x: Tensor,
    pairs: int = 15,
    warmup: int = 3,
    threads: int = 1,
    stop: Callable[[], bool] | None = None,
) -> SpeedUp | None:
    """:func:`measure_speedup` for any two callables on the input ``x`` (models in another runtime, say);
    ``threads`` is torch's thread count during the calls (a runtime with its own pool sets its own)."""
    timers = [Timer("forward(x)", globals={"forward": f, "x": x}, num_threads=threads) for f in (reference, model)]
    for t in timers:
        t.timeit(warmup)
    ref_ms, model_ms = [], []
    for _ in range(pairs):
        if stop is not None and stop():
            return None
        ref_ms.append(timers[0].timeit(1).median * 1e3)
        model_ms.append(timers[1].timeit(1).median * 1e3)
    ratios = [a / b for a, b in zip(ref_ms, model_ms)]
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return SpeedUp(statistics.median(ratios), q[0], q[2], statistics.median(ref_ms), statistics.median(model_ms), pairs)


@dataclass
class LatencyModel:
    """Batch-1 latency predicted from MACs, ``ms = intercept + slope * MMACs``, fitted on measured architectures."""

    intercept_ms: float
    slope_ms_per_mmac: float
    points: list[tuple[float, float]]  # (MMACs, measured ms) it was fitted on

    def predict_ms(self, config) -> float:
        return self.intercept_ms + self.slope_ms_per_mmac * count_macs(config) / 1e6

    @classmethod
    def fit(cls, models: list[VisionTransformer], repeats: int = 15, threads: int = 1) -> LatencyModel:
        """Measure ``models`` side by side (interleaved, medians) and fit a least-squares line."""
        timed = time_forward({str(i): m for i, m in enumerate(models)}, 1, repeats, threads=threads)
        points = [(count_macs(m.config) / 1e6, timed[str(i)]["median_ms"]) for i, m in enumerate(models)]
        slope, intercept = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
        return cls(intercept, slope, points)
