"""The figure jobs the scheduler runs for the app: each a plain function of where the model is and which keep-set.

A job reads its model and eval set through a *source*: a :class:`Source` names files, so that any process
(a worker) can load them once and keep them; a :class:`LiveSource` holds objects of this process (a
session's fine-tuned model, a test's model) and runs only here. Every job returns plain numbers, and its
key (:func:`job_key`) holds everything its result depends on, so that one result serves every session
that asks for the same thing.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..circuits.metrics import kl_damage
from ..data import ImageSet, normalize
from ..errors import VitcoreError
from ..evaluate import predict_logits
from ..model import VisionTransformer
from ..pruning.counts import count_macs, count_params
from ..pruning.latency import SpeedUp, measure_speedup, time_forward
from ..pruning.prune import prune

SAMPLE_SIZE = 400  # images of the stratified first estimate of all-class top-1
FAST_BUDGET = 50  # images of the fast tier when no class is chosen (see chosen_index)
PRUNED_PER_PROCESS = 16  # pruned copies a process keeps (each at most the base model's size)
LATENCY_THREADS = 1  # timings use one thread: stable under load (see measure_speedup)
THROUGHPUT_BATCH, THROUGHPUT_PAIRS = 64, 2  # a timing runs alone: each pair holds back every session for a moment


class NothingKeptError(VitcoreError):
    """A keep-set with no component: there is no model left to run."""


def keep_bytes(mask: Tensor) -> bytes:
    """A keep-set as the key of everything computed from it."""
    return (mask > 0.5).to(torch.uint8).numpy().tobytes()


def keep_mask(keep: bytes) -> Tensor:
    return torch.frombuffer(bytearray(keep), dtype=torch.uint8).float()


def stratified_sample(labels: Tensor, size: int | None = None) -> Tensor:
    """A fixed sample of eval images: the same number from every class (about ``size`` in all), in index order."""
    classes = labels.unique()
    per_class = max(1, -(-(size or SAMPLE_SIZE) // len(classes)))
    return torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in classes]).sort().values


def outside_sample(n: int, sample: Tensor) -> Tensor:
    """The eval indices not in ``sample``, in order: what the exact all-class figure adds to the estimate."""
    rest = torch.ones(n, dtype=torch.bool)
    rest[sample] = False
    return torch.nonzero(rest).flatten()


# --- sources ---------------------------------------------------------------------------------------------------


class _Models:
    """What a source keeps in this process: pruned copies (the oldest dropped), chosen-class reference logits."""

    def __init__(self) -> None:
        self.pruned: OrderedDict[bytes, VisionTransformer] = OrderedDict()
        self.references: dict[tuple, Tensor] = {}

    def pruned_model(self, base: VisionTransformer, keep: bytes) -> VisionTransformer:
        mask = keep_mask(keep)
        if mask.sum() == 0:
            raise NothingKeptError("every component is switched off: keep at least one head or chunk")
        if bool((mask > 0.5).all()):
            return base
        if keep not in self.pruned:
            if len(self.pruned) >= PRUNED_PER_PROCESS:
                self.pruned.popitem(last=False)
            self.pruned[keep] = prune(base, mask)
        self.pruned.move_to_end(keep)
        return self.pruned[keep]


@dataclass(frozen=True)
class Source:
    """A base model and its data by where they are (a model source as :func:`vitcore.load_model` takes it, a data
    path as :func:`vitcore.image_folder.load_data` takes it; None: the shipped model, the bundled data), loadable in
    any process."""

    checkpoint: str | None
    model_sha: str
    data: str | None
    data_key: str

    @property
    def id(self) -> Hashable:
        return ("files", self.model_sha, self.data_key)

    def model_id(self, keep: bytes) -> Hashable:
        return self.model_sha

    def _loaded(self) -> tuple[VisionTransformer, ImageSet, _Models]:
        got = _PROCESS.get(self)
        if got is None:
            from ..image_folder import load_data
            from ..model_sources import load_model

            ckpt = load_model(self.checkpoint)
            if ckpt.sha256 != self.model_sha:
                raise VitcoreError(
                    f"the checkpoint at {self.checkpoint or 'the shipped path'} changed since the app loaded it"
                )
            for p in ckpt.model.parameters():
                p.requires_grad_(False)
            got = _PROCESS[self] = (ckpt.model, load_data(self.data, ckpt, "val"), _Models())
            _CHECKPOINTS[self] = ckpt
        return got

    def base(self) -> VisionTransformer:
        return self._loaded()[0]

    def eval_set(self) -> ImageSet:
        return self._loaded()[1]

    def discovery_set(self) -> ImageSet:
        """The images circuit runs and fine-tunes use (the train split of the same data), loaded once here."""
        if self not in _DISCOVERY:
            from ..image_folder import load_data

            self._loaded()
            _DISCOVERY[self] = load_data(self.data, _CHECKPOINTS[self], "train")
        return _DISCOVERY[self]

    def model(self, keep: bytes) -> VisionTransformer:
        base, _, models = self._loaded()
        return models.pruned_model(base, keep)

    def reference(self, index: Tensor, classes: tuple) -> Tensor:
        """The base model's logits on eval images ``index`` (the chosen classes' images), kept per class choice."""
        base, eval_set, models = self._loaded()
        if classes not in models.references:
            if len(models.references) >= 64:
                models.references.pop(next(iter(models.references)))
            models.references[classes] = predict_logits(base, eval_set.images[index], 256)
        return models.references[classes]


_PROCESS: dict[Source, tuple[VisionTransformer, ImageSet, _Models]] = {}  # what this process has loaded, per source
_DISCOVERY: dict[Source, ImageSet] = {}
_CHECKPOINTS: dict[Source, Any] = {}  # the checkpoint each source loaded (its classes and preprocessing)


@dataclass(eq=False)
class LiveSource:
    """A base model and eval set held by this process, and models that replace the base's pruned copy for some
    keep-sets (fine-tuned ones). Jobs over it run only in this process."""

    base_model: VisionTransformer
    data: ImageSet
    base_logits: Tensor | None = None  # the base model's logits on every eval image, when the app has them
    replaced: dict[bytes, VisionTransformer] = field(default_factory=dict)
    _models: _Models = field(default_factory=_Models)

    @property
    def id(self) -> Hashable:
        return ("live", id(self))

    def model_id(self, keep: bytes) -> Hashable:
        model = self.replaced.get(keep)
        return ("base", id(self.base_model)) if model is None else ("replaced", id(model))

    def base(self) -> VisionTransformer:
        return self.base_model

    def eval_set(self) -> ImageSet:
        return self.data

    def model(self, keep: bytes) -> VisionTransformer:
        return self.replaced[keep] if keep in self.replaced else self._models.pruned_model(self.base_model, keep)

    def reference(self, index: Tensor, classes: tuple) -> Tensor:
        if self.base_logits is not None:
            return self.base_logits[index]
        if classes not in self._models.references:
            self._models.references[classes] = predict_logits(self.base_model, self.data.images[index], 256)
        return self._models.references[classes]


AnySource = Source | LiveSource


# --- jobs --------------------------------------------------------------------------------------------------------


def chosen_index(eval_set: ImageSet, classes: tuple) -> Tensor:
    """The eval images of the chosen classes. With none chosen, :data:`FAST_BUDGET` images drawn (a fixed draw)
    from the stratified sample stand in for every class: the fast tier stays as fast as with a class chosen, and
    the all-class estimate on the whole sample follows as the next tier."""
    if classes:
        return torch.nonzero(eval_set.chosen(list(classes))).flatten()
    sample = stratified_sample(eval_set.labels)
    draw = torch.randperm(len(sample), generator=torch.Generator().manual_seed(0))[:FAST_BUDGET]
    return sample[draw].sort().values


def fast_figures(src: AnySource, keep: bytes, classes: tuple) -> dict[str, Any]:
    """Chosen-class top-1 and KL to the full model, parameters and MACs: no timing."""
    t0 = time.perf_counter()
    model, eval_set = src.model(keep), src.eval_set()
    index = chosen_index(eval_set, classes)
    reference = src.reference(index, classes)
    if model is src.base():
        logits = reference
    else:
        with torch.inference_mode():
            logits = model(normalize(eval_set.images[index], model.config))
    labels = eval_set.labels[index]
    top1 = float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")
    kl = float(kl_damage(logits, reference, labels).mean()) if len(labels) else float("nan")
    return {
        "kept": int(keep_mask(keep).sum()),
        "params": count_params(model),
        "macs": count_macs(model.config),
        "top1_chosen": top1,
        "kl_chosen": kl,
        "seconds": time.perf_counter() - t0,
    }


def paired_latency(src: AnySource, keep: bytes, pairs: int) -> SpeedUp | float:
    """Batch-1 latency: the full model's median ms, or for a pruned model its speed-up from interleaved pairs."""
    model, base = src.model(keep), src.base()
    if model is base:
        return time_forward({"full": base}, 1, pairs, warmup=3, threads=LATENCY_THREADS)["full"]["median_ms"]
    speedup = measure_speedup(base, model, 1, pairs, threads=LATENCY_THREADS)
    assert speedup is not None  # only a stop callback ends a timing early
    return speedup


def sample_accuracy(src: AnySource, keep: bytes) -> dict[str, Any]:
    """Top-1 on the stratified sample of every class's eval images: the first all-class estimate."""
    eval_set = src.eval_set()
    sample = stratified_sample(eval_set.labels)
    model = src.model(keep)
    if model is src.base() and isinstance(src, LiveSource) and src.base_logits is not None:
        logits = src.base_logits[sample]
    else:
        logits = predict_logits(model, eval_set.images[sample], THROUGHPUT_BATCH)
    correct = int((logits.argmax(1) == eval_set.labels[sample]).sum())
    p = correct / len(sample)
    return {"correct": correct, "n": len(sample), "estimate": p, "se": math.sqrt(p * (1 - p) / len(sample))}


def paired_throughput(src: AnySource, keep: bytes) -> dict[str, Any]:
    """Batch-64 images per second of the model and of the full model, from interleaved pairs on the same batch."""
    model, base, eval_set = src.model(keep), src.base(), src.eval_set()
    batch = normalize(eval_set.images[:THROUGHPUT_BATCH], base.config)
    model_s, base_s = [], []
    runs = (
        ((base, base_s), (model, model_s)) if model is not base else ((base, base_s),)
    )  # the full model is its own reference
    with torch.inference_mode():
        for m, _ in runs:  # warm-up
            m(batch)
        for _ in range(THROUGHPUT_PAIRS):
            for m, out in runs:
                t0 = time.perf_counter()
                m(batch)
                out.append(time.perf_counter() - t0)
    model_s = model_s or base_s
    ratios = [b / m for b, m in zip(base_s, model_s)]
    n = len(batch)
    return {
        "model": n / statistics.median(model_s),
        "base": n / statistics.median(base_s),
        "ratio": statistics.median(ratios),
        "spread": (max(ratios) - min(ratios)) / max(statistics.median(ratios), 1e-9),
    }


def exact_chunk(src: AnySource, keep: bytes, start: int, stop: int) -> dict[str, int]:
    """Correct predictions on eval images ``start:stop`` of those outside the sample (the exact figure's part)."""
    eval_set = src.eval_set()
    index = outside_sample(len(eval_set), stratified_sample(eval_set.labels))[start:stop]
    model = src.model(keep)
    if model is src.base() and isinstance(src, LiveSource) and src.base_logits is not None:
        logits = src.base_logits[index]
    else:
        logits = predict_logits(model, eval_set.images[index], THROUGHPUT_BATCH)
    return {"correct": int((logits.argmax(1) == eval_set.labels[index]).sum()), "n": len(index)}


def architecture(src: AnySource, keep: bytes) -> tuple:
    """What a timing depends on: the pruned model's shapes (which heads go does not change its speed)."""
    space = src.base().components
    mask = keep_mask(keep)
    heads = tuple(int(mask[s].sum()) for s in space.head_slices)
    chunks = tuple(int(mask[s].sum()) for s in space.chunk_slices)
    return heads, chunks


def job_key(kind: str, src: AnySource, keep: bytes, *extra: Hashable) -> tuple[Hashable, ...]:
    """Everything a job's result depends on. Timings depend on the architecture only, not on which heads or
    weights (a fine-tuned model times like the pruned one), so they are shared across keep-sets of one shape."""
    if kind in ("latency", "throughput"):
        return (kind, src.id, architecture(src, keep), *extra)
    return (kind, src.id, src.model_id(keep), keep, *extra)


JOBS: dict[str, Callable[..., Any]] = {
    "fast": fast_figures,
    "latency": paired_latency,
    "sample": sample_accuracy,
    "throughput": paired_throughput,
    "exact": exact_chunk,
}
