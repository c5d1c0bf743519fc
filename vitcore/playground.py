"""Live evaluation of keep-sets against a shared, never-mutated base model (the app's engine).

A :class:`Playground` belongs to one user session. It reads the shared base model and eval
set, caches the base model's logits once, and caches per-keep-set figures keyed by the set,
so that flipping a component back costs nothing. Figures come in tiers, each adding to the one
before: :meth:`~Playground.fast` (chosen-class top-1 and KL, counts, the cost model's predicted
latency), :meth:`~Playground.measure` (measured batch-1 latency, paired against the full model),
:meth:`~Playground.estimate` (all-class top-1 on a stratified sample, batch-64 throughput) and
:meth:`~Playground.slow` (exact all-class top-1). The full model's figures come from the shared
base logits, so a new session runs no full-model evaluation of its own.

Its methods are safe to call from two threads at once (a Streamlit session can briefly run two
script threads: the stopped run and the next one): each takes the playground's lock, and
:meth:`~Playground.refine` takes it per chunk, so the threads take turns on the same state.
"""

from __future__ import annotations

import functools
import math
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

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
COST_MODEL_TOLERANCE = 0.25  # refit the session's cost model when the full model measures this much faster than predicted
COST_MODEL_REFIT_S = 60.0  # at most one refit a minute
MODELS_CACHED = 16  # pruned copies kept per session (each is at most the base model's size)


def _serialized(method: Callable) -> Callable:
    """Run ``method`` holding the playground's (re-entrant) lock."""

    @functools.wraps(method)
    def locked(self: "Playground", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class NothingKeptError(VitcoreError):
    """A keep-set with no component: there is no model left to run."""


@dataclass
class KeepSetFigures:
    kept: int
    params: int
    macs: int
    top1_chosen: float
    kl_chosen: float
    latency_b1_ms: float | None = None  # measured (:meth:`Playground.measure`)
    speedup: SpeedUp | None = None  # batch-1, paired against the full model (None for the full model itself)
    predicted_b1_ms: float | None = None  # from MACs, by the machine's fitted latency model
    top1_all: float | None = None
    throughput_b64: float | None = None
    top1_all_estimate: float | None = None  # on a stratified sample of the eval set, first
    top1_all_se: float | None = None  # its binomial standard error
    sample_correct: int | None = None
    top1_all_done: int | None = None  # eval images counted so far by :meth:`Playground.refine`
    top1_all_correct: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class Playground:
    """Per-session evaluation of keep-sets over a shared base model and eval set."""

    def __init__(self, base: VisionTransformer, eval_set: ImageSet, classes: list[str], latency_repeats: int = 15, base_logits: Tensor | None = None,
                 latency_model: LatencyModel | None = None):
        self.base = base
        self.latency_model = latency_model  # the shared fit at first; replaced (never changed) by this session's refit
        self._cost_model_refit_at = -math.inf
        self._speed: dict[tuple, SpeedUp] = {}  # per architecture: a toggle back to a measured shape costs nothing
        self.eval_set = eval_set
        self.space = base.components
        self.latency_repeats = latency_repeats
        self._cache: dict[bytes, KeepSetFigures] = {}
        self._models: dict[bytes, VisionTransformer] = {}  # pruned copies of the base: rebuilt on demand, so the oldest are dropped
        self._pinned: dict[bytes, VisionTransformer] = {}  # models given by replace_model (fine-tuned): never dropped
        self._base_logits = base_logits
        self._sample: Tensor | None = None
        self._sample_partial: dict[bytes, dict[str, Any]] = {}  # the sample's batches run so far, per keep-set (estimate can stop)
        self._lock = threading.RLock()
        self.set_classes(classes)

    @_serialized
    def set_classes(self, classes: list[str]) -> None:
        self.classes = list(classes)
        # no classes: the stratified sample stands in for "every class", so that the fast tier stays fast
        self.chosen = torch.nonzero(self.eval_set.chosen(classes)).flatten() if classes else self.sample_index()
        self._chosen_inputs_cache: Tensor | None = None
        self._chosen_ref = self.base_logits()[self.chosen] if self._base_logits is not None else None
        self._cache.clear()

    def _chosen_inputs(self) -> Tensor:
        if self._chosen_inputs_cache is None:
            self._chosen_inputs_cache = normalize(self.eval_set.images[self.chosen], self.base.config)
        return self._chosen_inputs_cache

    def _chosen_reference(self) -> Tensor:
        """The full model's logits on the chosen images (from the shared base logits when given)."""
        if self._chosen_ref is None:
            with torch.inference_mode():
                self._chosen_ref = self.base(self._chosen_inputs())
        return self._chosen_ref

    def base_logits(self) -> Tensor:
        if self._base_logits is None:
            self._base_logits = predict_logits(self.base, self.eval_set.images)
        return self._base_logits

    @staticmethod
    def key(mask: Tensor) -> bytes:
        return (mask > 0.5).to(torch.uint8).numpy().tobytes()

    @_serialized
    def model_for(self, mask: Tensor) -> VisionTransformer:
        """The physically pruned model of ``mask`` (cached; the base itself for keep-all)."""
        if mask.sum() == 0:
            raise NothingKeptError("every component is switched off: keep at least one head or chunk")
        k = self.key(mask)
        if k in self._pinned:
            return self._pinned[k]
        if k not in self._models:
            if len(self._models) >= MODELS_CACHED:
                self._models.pop(next(iter(self._models)))
            self._models[k] = self.base if bool((mask > 0.5).all()) else prune(self.base, mask)
        return self._models[k]

    @_serialized
    def fast(self, mask: Tensor) -> KeepSetFigures:
        """Chosen-class top-1 and KL, parameters, MACs and the cost model's predicted batch-1 latency: no timing."""
        k = self.key(mask)
        cached = self._cache.get(k)
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        model = self.model_for(mask)
        t1 = time.perf_counter()
        reference = self._chosen_reference()
        if model is self.base:
            logits = reference
        else:
            with torch.inference_mode():
                logits = model(self._chosen_inputs())
        labels = self.eval_set.labels[self.chosen]
        top1 = float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")
        kl = float(kl_damage(logits, reference, labels).mean()) if len(labels) else float("nan")
        predicted = self.latency_model.predict_ms(model.config) if self.latency_model else None
        figures = KeepSetFigures(int((mask > 0.5).sum()), count_params(model), count_macs(model.config), top1, kl, predicted_b1_ms=predicted,
                                 seconds={"prune": t1 - t0, "eval_chosen": time.perf_counter() - t1})
        self._cache[k] = figures
        return figures

    @_serialized
    def measure(self, mask: Tensor, stop: Callable[[], bool] | None = None) -> KeepSetFigures:
        """Adds measured batch-1 latency; for a pruned model, its speed-up from interleaved pairs with the
        full model, measured once per architecture (a busy reading is measured again on the next call).
        When ``stop()`` answers True between pairs, the timing is dropped and ``latency_b1_ms`` stays None."""
        figures = self.fast(mask)
        if figures.latency_b1_ms is not None and not (figures.speedup and figures.speedup.busy):
            return figures
        t0 = time.perf_counter()
        model = self.model_for(mask)
        if model is self.base:
            figures.latency_b1_ms = time_forward({"m": model}, 1, self.latency_repeats, warmup=2, threads=LATENCY_THREADS)["m"]["median_ms"]
        else:
            arch = (tuple(model.config.heads), tuple(model.config.mlp_widths))
            if arch not in self._speed or self._speed[arch].busy:
                speedup = measure_speedup(self.base, model, 1, self.latency_repeats, threads=LATENCY_THREADS, stop=stop)
                if speedup is None:
                    return figures
                self._speed[arch] = speedup
            figures.speedup = self._speed[arch]
            figures.latency_b1_ms = figures.speedup.model_ms
        full_ms = figures.latency_b1_ms if model is self.base else None if figures.speedup.busy else figures.speedup.reference_ms
        if full_ms is not None:
            self._check_cost_model(full_ms)
        figures.seconds.update(latency_b1=time.perf_counter() - t0)
        return figures

    def _check_cost_model(self, full_ms: float) -> None:
        """Refit this session's cost model when its prediction for the full model exceeds the measured batch-1
        latency by more than ``COST_MODEL_TOLERANCE`` of the measurement, at most once per ``COST_MODEL_REFIT_S``. Contention
        only slows timings down, so a fit that is too slow was taken on a busy machine (while the server was
        starting, say); a measurement above the prediction is today's load, which the paired speed-up already
        accounts for. The shared fit is left as it is; cached predictions are updated."""
        if self.latency_model is None:
            return
        predicted = self.latency_model.predict_ms(self.base.config)
        if predicted - full_ms <= COST_MODEL_TOLERANCE * full_ms or time.monotonic() - self._cost_model_refit_at < COST_MODEL_REFIT_S:
            return
        self._cost_model_refit_at = time.monotonic()
        self.latency_model = fit_latency_model(self.base)
        for k, cached in self._cache.items():
            model = self._pinned.get(k) or self._models.get(k)
            cached.predicted_b1_ms = self.latency_model.predict_ms(model.config) if model is not None else None

    def sample_index(self) -> Tensor:
        """A fixed stratified sample of the eval set: the same number of images from every class (about SAMPLE_SIZE in all)."""
        if self._sample is None:
            labels = self.eval_set.labels
            classes = labels.unique()
            per_class = max(1, -(-SAMPLE_SIZE // len(classes)))
            self._sample = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in classes]).sort().values
        return self._sample

    @_serialized
    def estimate(self, mask: Tensor, stop: Callable[[], bool] | None = None, batch: int = 64) -> KeepSetFigures:
        """Adds all-class top-1 on the stratified sample (with its standard error) and batch-64 throughput
        from the same pass to the measured figures; :meth:`slow` then adds the rest of the eval set.
        ``stop()`` is asked before each batch: when it answers True the figures come back without the
        estimate (``sample_correct`` None), and the next call goes on from the batches already run."""
        figures = self.measure(mask, stop)
        if figures.latency_b1_ms is None or figures.sample_correct is not None:
            return figures
        sample = self.sample_index()
        model = self.model_for(mask)
        if model is self.base:  # the shared logits give the accuracy; time two batches for the throughput
            sample_logits = self.base_logits()[sample]
            timed = sample[: 2 * batch]
        else:
            sample_logits, timed = None, sample
        if self.key(mask) not in self._sample_partial and len(self._sample_partial) >= 16:
            self._sample_partial.pop(next(iter(self._sample_partial)))
        done = self._sample_partial.setdefault(self.key(mask), {"logits": [], "seconds": [], "wall": 0.0})
        for i in range(sum(len(x) for x in done["logits"]), len(timed), batch):
            if stop is not None and stop():
                return figures
            t0 = time.perf_counter()
            logits, seconds = predict_logits_timed(model, self.eval_set.images[timed[i : i + batch]], batch)
            done["logits"].append(logits)
            done["seconds"] += seconds
            done["wall"] += time.perf_counter() - t0
        del self._sample_partial[self.key(mask)]
        if sample_logits is None:
            sample_logits = torch.cat(done["logits"])
        correct = sample_logits.argmax(1) == self.eval_set.labels[sample]
        p = float(correct.float().mean())
        figures.sample_correct = int(correct.sum())
        figures.top1_all_estimate, figures.top1_all_se = p, math.sqrt(p * (1 - p) / len(sample))
        figures.throughput_b64 = batch / statistics.median(done["seconds"]) if done["seconds"] else float("nan")
        figures.seconds.update(estimate_and_throughput=done["wall"])
        return figures

    def refine(self, mask: Tensor, chunk: int = 256) -> Iterator[KeepSetFigures]:
        """Runs the eval images outside the sample, ``chunk`` at a time, yielding the figures after each
        chunk (``top1_all_done`` of ``len(eval_set)`` images counted so far) until ``top1_all`` is exact.
        Stopping between chunks loses nothing: the next call goes on from there."""
        figures = self.estimate(mask)
        while True:
            with self._lock:  # per chunk, and the next chunk read from the figures: another thread may have counted some
                if figures.top1_all is None:
                    self._count_next_chunk(mask, figures, chunk)
            yield figures
            if figures.top1_all is not None:
                return

    def _count_next_chunk(self, mask: Tensor, figures: KeepSetFigures, chunk: int) -> None:
        """Count the next chunk of eval images outside the sample into ``figures``; set ``top1_all`` after the last."""
        model = self.model_for(mask)
        if model is self.base:
            figures.top1_all = float((self.base_logits().argmax(1) == self.eval_set.labels).float().mean())
            return
        sample = self.sample_index()
        if figures.top1_all_done is None:
            figures.top1_all_done, figures.top1_all_correct = len(sample), figures.sample_correct
        rest = torch.ones(len(self.eval_set), dtype=torch.bool)
        rest[sample] = False
        start = figures.top1_all_done - len(sample)
        index = torch.nonzero(rest).flatten()[start : start + chunk]
        if len(index):
            t0 = time.perf_counter()
            logits = predict_logits(model, self.eval_set.images[index], 64)
            figures.top1_all_correct += int((logits.argmax(1) == self.eval_set.labels[index]).sum())
            figures.top1_all_done += len(index)
            figures.seconds["eval_rest"] = figures.seconds.get("eval_rest", 0.0) + time.perf_counter() - t0
        if figures.top1_all_done >= len(self.eval_set):
            figures.top1_all = figures.top1_all_correct / len(self.eval_set)

    def slow(self, mask: Tensor) -> KeepSetFigures:
        """Adds the exact all-class top-1 on the whole eval set (the sample's images are not run again)."""
        for figures in self.refine(mask):
            pass
        return figures

    @_serialized
    def forget(self, mask: Tensor) -> None:
        """Drop cached figures and model of ``mask`` (after it was fine-tuned)."""
        k = self.key(mask)
        self._cache.pop(k, None)
        self._models.pop(k, None)
        self._pinned.pop(k, None)
        self._sample_partial.pop(k, None)

    @_serialized
    def replace_model(self, mask: Tensor, model: VisionTransformer) -> None:
        """Use ``model`` (e.g. fine-tuned) for ``mask`` from now on: it is kept however many other keep-sets follow."""
        self.forget(mask)
        self._pinned[self.key(mask)] = model


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
