"""Live evaluation of keep-sets against a shared, never-mutated base model (the app's engine).

A :class:`Playground` belongs to one user session. It reads the shared base model and eval
set, caches the base model's logits once, and caches per-keep-set figures keyed by the set,
so that flipping a component back costs nothing. Figures come in two tiers: ``fast`` (chosen
classes, KL, counts, batch-1 latency) and ``slow`` (all-class top-1, batch-64 throughput).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .circuits.metrics import kl_damage
from .data import ImageSet, normalize
from .errors import VitcoreError
from .evaluate import predict_logits, predict_logits_timed
from .model import VisionTransformer
from .pruning.counts import count_macs, count_params
from .pruning.latency import LatencyModel, SpeedUp, measure_speedup, time_forward
from .pruning.prune import prune


SAMPLE_SIZE = 400  # images of the stratified first estimate of all-class top-1
LATENCY_THREADS = 1  # live batch-1 timings use one thread: stable under load (see measure_speedup)


class NothingKeptError(VitcoreError):
    """A keep-set with no component: there is no model left to run."""


@dataclass
class KeepSetFigures:
    kept: int
    params: int
    macs: int
    top1_chosen: float
    kl_chosen: float
    latency_b1_ms: float
    speedup: SpeedUp | None = None  # batch-1, paired against the full model (None for the full model itself)
    predicted_b1_ms: float | None = None  # from MACs, by the machine's fitted latency model
    top1_all: float | None = None
    throughput_b64: float | None = None
    top1_all_estimate: float | None = None  # on a stratified sample of the eval set, first
    top1_all_se: float | None = None  # its binomial standard error
    sample_correct: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class Playground:
    """Per-session evaluation of keep-sets over a shared base model and eval set."""

    def __init__(self, base: VisionTransformer, eval_set: ImageSet, classes: list[str], latency_repeats: int = 15, base_logits: Tensor | None = None,
                 latency_model: LatencyModel | None = None):
        self.base = base
        self.latency_model = latency_model
        self._speed: dict[tuple, SpeedUp] = {}  # per architecture: a toggle back to a measured shape costs nothing
        self.eval_set = eval_set
        self.space = base.components
        self.latency_repeats = latency_repeats
        self._cache: dict[bytes, KeepSetFigures] = {}
        self._models: dict[bytes, VisionTransformer] = {}
        self._base_logits = base_logits
        self._sample: Tensor | None = None
        self.set_classes(classes)

    def set_classes(self, classes: list[str]) -> None:
        self.classes = list(classes)
        self.chosen = torch.nonzero(self.eval_set.chosen(classes)).flatten() if classes else torch.arange(len(self.eval_set))
        self._chosen_inputs = normalize(self.eval_set.images[self.chosen], self.base.config)
        with torch.inference_mode():
            self._chosen_ref = self.base(self._chosen_inputs)
        self._cache.clear()

    def base_logits(self) -> Tensor:
        if self._base_logits is None:
            self._base_logits = predict_logits(self.base, self.eval_set.images)
        return self._base_logits

    @staticmethod
    def key(mask: Tensor) -> bytes:
        return (mask > 0.5).to(torch.uint8).numpy().tobytes()

    def model_for(self, mask: Tensor) -> VisionTransformer:
        """The physically pruned model of ``mask`` (cached; the base itself for keep-all)."""
        if mask.sum() == 0:
            raise NothingKeptError("every component is switched off: keep at least one head or chunk")
        k = self.key(mask)
        if k not in self._models:
            if len(self._models) > 16:
                self._models.pop(next(iter(self._models)))
            self._models[k] = self.base if bool((mask > 0.5).all()) else prune(self.base, mask)
        return self._models[k]

    def fast(self, mask: Tensor) -> KeepSetFigures:
        """Chosen-class top-1 and KL, parameters, MACs and measured batch-1 latency."""
        k = self.key(mask)
        cached = self._cache.get(k)
        if cached is not None and not (cached.speedup and cached.speedup.busy):
            return cached
        t0 = time.perf_counter()
        model = self.model_for(mask)
        t1 = time.perf_counter()
        with torch.inference_mode():
            logits = model(self._chosen_inputs)
        labels = self.eval_set.labels[self.chosen]
        top1 = float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")
        kl = float(kl_damage(logits, self._chosen_ref, labels).mean()) if len(labels) else float("nan")
        t2 = time.perf_counter()
        speed = None
        if model is self.base:
            latency = time_forward({"m": model}, 1, self.latency_repeats, warmup=2, threads=LATENCY_THREADS)["m"]["median_ms"]
        else:
            arch = (tuple(model.config.heads), tuple(model.config.mlp_widths))
            if arch not in self._speed or self._speed[arch].busy:  # a busy reading is measured again
                self._speed[arch] = measure_speedup(self.base, model, 1, self.latency_repeats, threads=LATENCY_THREADS)
            speed = self._speed[arch]
            latency = speed.model_ms
        t3 = time.perf_counter()
        predicted = self.latency_model.predict_ms(model.config) if self.latency_model else None
        figures = KeepSetFigures(int((mask > 0.5).sum()), count_params(model), count_macs(model.config), top1, kl, latency, speed, predicted,
                                 seconds={"prune": t1 - t0, "eval_chosen": t2 - t1, "latency_b1": t3 - t2})
        self._cache[k] = figures
        return figures

    def sample_index(self) -> Tensor:
        """A fixed stratified sample of the eval set: the same number of images from every class (about SAMPLE_SIZE in all)."""
        if self._sample is None:
            labels = self.eval_set.labels
            classes = labels.unique()
            per_class = max(1, -(-SAMPLE_SIZE // len(classes)))
            self._sample = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in classes]).sort().values
        return self._sample

    def estimate(self, mask: Tensor) -> KeepSetFigures:
        """Adds all-class top-1 on the stratified sample (with its standard error) and batch-64 throughput
        from the same pass to the fast figures; :meth:`slow` then adds the rest of the eval set."""
        figures = self.fast(mask)
        if figures.sample_correct is None:
            t0 = time.perf_counter()
            sample = self.sample_index()
            logits, times = predict_logits_timed(self.model_for(mask), self.eval_set.images[sample], 64)
            correct = logits.argmax(1) == self.eval_set.labels[sample]
            p = float(correct.float().mean())
            figures.sample_correct = int(correct.sum())
            figures.top1_all_estimate, figures.top1_all_se = p, math.sqrt(p * (1 - p) / len(sample))
            figures.throughput_b64 = 64 / statistics.median(times) if times else float("nan")
            figures.seconds.update(estimate_and_throughput=time.perf_counter() - t0)
        return figures

    def slow(self, mask: Tensor) -> KeepSetFigures:
        """Adds the exact all-class top-1 on the whole eval set (the sample's images are not run again)."""
        figures = self.estimate(mask)
        if figures.top1_all is None:
            t0 = time.perf_counter()
            rest = torch.ones(len(self.eval_set), dtype=torch.bool)
            rest[self.sample_index()] = False
            logits = predict_logits(self.model_for(mask), self.eval_set.images[rest], 64)
            correct = int((logits.argmax(1) == self.eval_set.labels[rest]).sum())
            figures.top1_all = (figures.sample_correct + correct) / len(self.eval_set)
            figures.seconds.update(eval_rest=time.perf_counter() - t0)
        return figures

    def forget(self, mask: Tensor) -> None:
        """Drop cached figures and model of ``mask`` (after it was fine-tuned)."""
        k = self.key(mask)
        self._cache.pop(k, None)
        self._models.pop(k, None)

    def replace_model(self, mask: Tensor, model: VisionTransformer) -> None:
        """Use ``model`` (e.g. fine-tuned) for ``mask`` from now on."""
        self.forget(mask)
        self._models[self.key(mask)] = model


def figures_dict(f: KeepSetFigures) -> dict[str, Any]:
    return {k: getattr(f, k) for k in ("kept", "params", "macs", "top1_chosen", "kl_chosen", "latency_b1_ms", "top1_all", "throughput_b64")}


def fit_latency_model(base: VisionTransformer, repeats: int = 15) -> LatencyModel:
    """This machine's batch-1 latency against MACs, from the full model and three evenly thinned copies."""
    space = base.components
    models = [base]
    for fraction in (0.75, 0.5, 0.25):
        keep = torch.zeros(len(space))
        for layer in range(space.depth):
            for sl in (space.head_slices[layer], space.chunk_slices[layer]):
                n = sl.stop - sl.start
                keep[sl.start : sl.start + max(1, round(fraction * n))] = 1.0
        models.append(prune(base, keep))
    return LatencyModel.fit(models, repeats, threads=LATENCY_THREADS)
