"""One session's view of keep-sets: figures in tiers, computed by a scheduler that may serve every session.

A :class:`Playground` belongs to one user session. It asks for a keep-set's figures in tiers:
:meth:`~Playground.fast` (chosen-class top-1 and KL, counts, the cost model's predicted latency),
:meth:`~Playground.estimate` (all-class top-1 on a stratified sample), :meth:`~Playground.refine` /
:meth:`~Playground.slow` (exact all-class top-1, chunk by chunk) and :meth:`~Playground.measure` (batch-1
speed-up and batch-64 throughput, each from interleaved pairs with the full model). Timings run only when
the machine is quiet: after every session's other work, with nothing else running; until then the page
shows the cost model's prediction, labelled as such.

The work itself is a job of :mod:`vitcore.compute.figures`, run by a :class:`~vitcore.compute.Scheduler`:
the server's shared one (given with a file :class:`~vitcore.compute.figures.Source`, so that worker
processes can run it and every session with the same keep-set shares the result), or one of its own.
Models that exist only in this session (a fine-tuned one) are always computed here. The base model is
shared and never changed.

Its methods are safe to call from two threads at once (a Streamlit session can briefly run two script
threads: the stopped run and the next one): each takes the playground's lock.
"""

from __future__ import annotations

import functools
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .compute import Scheduler
from .compute import figures as jobs
from .compute.figures import LiveSource, NothingKeptError, Source, keep_bytes
from .compute.workers import run_job
from .data import ImageSet
from .evaluate import predict_logits
from .model import VisionTransformer
from .pruning.latency import BUSY_SPREAD, LatencyModel, SpeedUp
from .pruning.prune import prune

__all__ = ["KeepSetFigures", "NothingKeptError", "Playground", "fit_latency_model"]

COST_MODEL_TOLERANCE = (
    0.25  # refit the session's cost model when the full model measures this much faster than predicted
)
COST_MODEL_REFIT_S = 60.0  # at most one refit a minute
FAST_HERE_IMAGES = (
    256  # chosen-class images up to which the fast tier runs in the session's thread (milliseconds of work)
)
EXACT_CHUNK = 256  # eval images per job of the exact all-class figure: a toggle waits at most one chunk for a slot
FAST, SAMPLE, EXACT, TIMING = range(
    4
)  # priorities: every session's cheaper tiers before anyone's slower ones; timings when quiet
CHANNEL = "figures"


def _serialized(method: Callable) -> Callable:
    """Run ``method`` holding the playground's (re-entrant) lock."""

    @functools.wraps(method)
    def locked(self: Playground, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


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
    throughput_b64: float | None = None  # images per second, from interleaved pairs with the full model
    throughput_ratio: float | None = None  # against the full model, measured side by side
    throughput_spread: float | None = None  # (max - min) / median of the paired ratios

    @property
    def throughput_busy(self) -> bool:
        """True when the paired throughput ratios spread too wide to report (see ``BUSY_SPREAD``)."""
        return self.throughput_spread is not None and self.throughput_spread > BUSY_SPREAD

    top1_all_estimate: float | None = None  # on a stratified sample of the eval set, first
    top1_all_se: float | None = None  # its binomial standard error
    sample_correct: int | None = None
    top1_all_done: int | None = None  # eval images counted so far by :meth:`Playground.refine`
    top1_all_correct: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class Playground:
    """Per-session figures of keep-sets over a shared base model and eval set."""

    def __init__(
        self,
        base: VisionTransformer,
        eval_set: ImageSet,
        classes: list[str],
        latency_repeats: int = 15,
        base_logits: Tensor | None = None,
        latency_model: LatencyModel | None = None,
        scheduler: Scheduler | None = None,
        source: Source | None = None,
        session: str = "",
    ):
        self.base = base
        self.eval_set = eval_set
        self.space = base.components
        self.latency_repeats = latency_repeats
        self.latency_model = latency_model  # the shared fit at first; replaced (never changed) by this session's refit
        self._cost_model_refit_at = -math.inf
        self.live = LiveSource(base, eval_set, base_logits)
        self.source = source  # files any worker can load; None: every job runs in this process
        self._own: Scheduler | None = None  # jobs over this session's own models, started at the first such job
        self._shared = scheduler if scheduler is not None and source is not None else None
        self.session = session or uuid.uuid4().hex
        self._focus: bytes | None = None  # the keep-set the user looks at: requests for others are stale
        self._retimed: dict[tuple, int] = {}  # timings measured again after a busy reading, per kind and architecture
        self._cache: dict[bytes, KeepSetFigures] = {}
        self._lock = threading.RLock()
        self.set_classes(classes)

    # --- what the session looks at ---------------------------------------------------------------------------------
    @_serialized
    def set_classes(self, classes: list[str]) -> None:
        self.classes = list(classes)
        self.chosen = jobs.chosen_index(self.eval_set, tuple(self.classes))
        self._cache.clear()

    @property
    def scheduler(self) -> Scheduler:
        """Where this session's jobs over files run: the server's shared scheduler, or its own."""
        return self._shared or self._local()

    def _local(self) -> Scheduler:
        with self._lock:
            if self._own is None:
                self._own = Scheduler(slots=1)
            return self._own

    def focus(self, mask: Tensor) -> None:
        """The keep-set the user now looks at: this session's queued work for any other is dropped."""
        self._focus = keep_bytes(mask)
        self.scheduler.supersede(self.session, CHANNEL, self._focus)

    @staticmethod
    def key(mask: Tensor) -> bytes:
        return keep_bytes(mask)

    def sample_index(self) -> Tensor:
        """A fixed stratified sample of the eval set: the same number of images from every class."""
        return jobs.stratified_sample(self.eval_set.labels)

    def base_logits(self) -> Tensor:
        if self.live.base_logits is None:
            self.live.base_logits = predict_logits(self.base, self.eval_set.images)
        return self.live.base_logits

    # --- models -------------------------------------------------------------------------------------------------------
    @_serialized
    def model_for(self, mask: Tensor) -> VisionTransformer:
        """The physically pruned model of ``mask`` (cached; the base itself for keep-all; a replaced one is kept
        however many other keep-sets follow)."""
        if mask.sum() == 0:
            raise NothingKeptError("every component is switched off: keep at least one head or chunk")
        return self.live.model(keep_bytes(mask))

    @_serialized
    def replacement(self, mask: Tensor) -> VisionTransformer | None:
        """The model that replaced the pruned copy of ``mask`` (a fine-tuned one), or None."""
        return self.live.replaced.get(keep_bytes(mask))

    @_serialized
    def forget(self, mask: Tensor) -> None:
        """Drop cached figures of ``mask`` and any model that replaced its pruned copy."""
        k = keep_bytes(mask)
        self._cache.pop(k, None)
        self.live.replaced.pop(k, None)

    @_serialized
    def replace_model(self, mask: Tensor, model: VisionTransformer) -> None:
        """Use ``model`` (e.g. fine-tuned) for ``mask`` from now on."""
        self.forget(mask)
        self.live.replaced[keep_bytes(mask)] = model

    # --- jobs ---------------------------------------------------------------------------------------------------------
    def _submit(
        self, kind: str, keep: bytes, *extra: Any, priority: int, exclusive: bool = False, retime: int = 0
    ) -> Future:
        src = self.live if (self.source is None or keep in self.live.replaced) else self.source
        scheduler = self._local() if src is self.live else self.scheduler
        key = jobs.job_key(kind, src, keep, *extra) + ((retime,) if retime else ())
        return scheduler.submit(
            key,
            run_job,
            kind,
            src,
            keep,
            *extra,
            priority=priority,
            exclusive=exclusive,
            session=self.session,
            channel=CHANNEL,
            tag=self._focus,
        )

    @staticmethod
    def _wait(future: Future, stop: Callable[[], bool] | None) -> Any | None:
        """The job's result; None when ``stop()`` answers True first, or when the job was dropped as stale."""
        while True:
            try:
                return future.result(timeout=0.05)
            except FutureTimeout:
                if stop is not None and stop():
                    return None
            except CancelledError:
                return None

    # --- tiers --------------------------------------------------------------------------------------------------------
    @_serialized
    def fast(self, mask: Tensor) -> KeepSetFigures:
        """Chosen-class top-1 and KL, parameters, MACs and the cost model's predicted batch-1 latency: no timing."""
        k = keep_bytes(mask)
        cached = self._cache.get(k)
        if cached is not None:
            return cached
        model = self.model_for(mask)  # refuses an empty keep-set; its config gives the prediction
        t0 = time.perf_counter()
        if len(self.chosen) <= FAST_HERE_IMAGES:  # a few images: at once, in this thread, never behind another job
            r = jobs.fast_figures(self.live, k, tuple(self.classes))
        else:
            r = self._wait(self._submit("fast", k, tuple(self.classes), priority=FAST), None)
            if r is None:
                raise NothingKeptError("the figures were dropped before they ran; toggle again")
        predicted = self.latency_model.predict_ms(model.config) if self.latency_model else None
        figures = KeepSetFigures(
            r["kept"],
            r["params"],
            r["macs"],
            r["top1_chosen"],
            r["kl_chosen"],
            predicted_b1_ms=predicted,
            seconds={"fast_job": r["seconds"], "fast": time.perf_counter() - t0},
        )
        self._cache[k] = figures
        return figures

    @_serialized
    def measure(self, mask: Tensor, stop: Callable[[], bool] | None = None) -> KeepSetFigures:
        """Adds measured batch-1 latency (for a pruned model, its speed-up from interleaved pairs with the full
        model) and the batch-64 throughput paired the same way. Both are timed when the machine is quiet (no
        other job queued or running) and shared by every keep-set of the same shapes; a busy reading is
        measured again on the next call. When ``stop()`` answers True first, the figures come back without
        what has not arrived (the timing stays queued, and the next call finds it)."""
        figures = self.fast(mask)
        k = keep_bytes(mask)
        latency = throughput = None
        if figures.latency_b1_ms is None or (figures.speedup is not None and figures.speedup.busy):
            latency = self._timing(
                "latency", k, figures.speedup is not None and figures.speedup.busy, self.latency_repeats
            )
        if figures.throughput_b64 is None or figures.throughput_busy:
            throughput = self._timing("throughput", k, figures.throughput_busy)
        t0 = time.perf_counter()
        if latency is not None:
            r = self._wait(latency, stop)
            if r is None:
                return figures
            if isinstance(r, SpeedUp):
                figures.speedup, figures.latency_b1_ms = r, r.model_ms
                if not r.busy:
                    self._check_cost_model(r.reference_ms)
            else:  # the full model: its own median
                figures.latency_b1_ms = float(r)
                self._check_cost_model(figures.latency_b1_ms)
            figures.seconds.update(latency_b1=time.perf_counter() - t0)
        if throughput is not None:
            t = self._wait(throughput, stop)
            if t is not None:
                figures.throughput_b64, figures.throughput_ratio, figures.throughput_spread = (
                    t["model"],
                    t["ratio"],
                    t["spread"],
                )
        return figures

    def _timing(self, kind: str, k: bytes, again: bool, *extra: Any) -> Future:
        """Queue a timing of ``k``'s architecture for when the machine is quiet; ``again`` after a busy reading."""
        arch = (kind, jobs.architecture(self.live, k))
        if again:
            self._retimed[arch] = self._retimed.get(arch, 0) + 1
        return self._submit(kind, k, *extra, priority=TIMING, exclusive=True, retime=self._retimed.get(arch, 0))

    @_serialized
    def estimate(self, mask: Tensor, stop: Callable[[], bool] | None = None) -> KeepSetFigures:
        """Adds all-class top-1 on the stratified sample (with its standard error); :meth:`refine` then adds the
        rest of the eval set. When ``stop()`` answers True first, the figures come back without the estimate
        (``sample_correct`` None); the job goes on, and the next call finds it."""
        figures = self.fast(mask)
        if figures.sample_correct is not None:
            return figures
        t0 = time.perf_counter()
        s = self._wait(self._submit("sample", keep_bytes(mask), priority=SAMPLE), stop)
        if s is None:
            return figures
        figures.top1_all_estimate, figures.top1_all_se, figures.sample_correct = s["estimate"], s["se"], s["correct"]
        figures.seconds.update(estimate=time.perf_counter() - t0)
        return figures

    def refine(
        self, mask: Tensor, chunk: int = EXACT_CHUNK, stop: Callable[[], bool] | None = None
    ) -> Iterator[KeepSetFigures]:
        """The eval images outside the sample, ``chunk`` at a time: yields the figures after each chunk
        (``top1_all_done`` of ``len(eval_set)`` images counted so far) until ``top1_all`` is exact. Every
        chunk is a job of its own, cached: stopping between chunks loses nothing. When ``stop()`` answers
        True while it waits, it ends without ``top1_all``."""
        figures = self.estimate(mask, stop)
        if figures.sample_correct is None:
            return
        if figures.top1_all is not None:
            yield figures
            return
        k = keep_bytes(mask)
        n_rest = len(self.eval_set) - len(self.sample_index())
        with self._lock:
            parts = [
                self._submit("exact", k, start, min(start + chunk, n_rest), priority=EXACT)
                for start in range(0, n_rest, chunk)
            ]
        done, correct = len(self.sample_index()), figures.sample_correct
        t0 = time.perf_counter()
        for part in parts:
            r = self._wait(part, stop)
            if r is None:  # stopped, or dropped: the session looks at another keep-set now
                return
            with self._lock:
                done, correct = done + r["n"], correct + r["correct"]
                figures.top1_all_done, figures.top1_all_correct = done, correct
                figures.seconds["eval_rest"] = time.perf_counter() - t0
            if done < len(self.eval_set):
                yield figures
        figures.top1_all = correct / len(self.eval_set)
        yield figures

    def slow(self, mask: Tensor) -> KeepSetFigures:
        """Adds the exact all-class top-1 on the whole eval set (the sample's images are not run again)."""
        *_, last = self.refine(mask)
        return last

    # --- the cost model -----------------------------------------------------------------------------------------------
    def _check_cost_model(self, full_ms: float) -> None:
        """Refit this session's cost model when its prediction for the full model exceeds the measured batch-1
        latency by more than ``COST_MODEL_TOLERANCE`` of the measurement, at most once per ``COST_MODEL_REFIT_S``.
        Contention only slows timings down, so a fit that is too slow was taken on a busy machine (while the
        server was starting, say). The shared fit is left as it is; cached predictions are updated."""
        if self.latency_model is None:
            return
        predicted = self.latency_model.predict_ms(self.base.config)
        if (
            predicted - full_ms <= COST_MODEL_TOLERANCE * full_ms
            or time.monotonic() - self._cost_model_refit_at < COST_MODEL_REFIT_S
        ):
            return
        self._cost_model_refit_at = time.monotonic()
        self.latency_model = fit_latency_model(self.base)
        for k, cached in self._cache.items():
            cached.predicted_b1_ms = self.latency_model.predict_ms(self.live.model(k).config)


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
    return LatencyModel.fit(models, repeats, threads=jobs.LATENCY_THREADS)
