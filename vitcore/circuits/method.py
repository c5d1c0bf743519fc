"""What a circuit-discovery method is: its parameter, its options, its run signature, its output and its record.

Every caller (``discover``, the CLI, the app's pages, the sweep, the target searches, the atlas) reads
a method's behaviour from its :class:`Method` record, never from its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from ..model import Activations, VisionTransformer
from .task import Task, TaskError

# Rough factor for the app's time estimate of edge runs, not fitted: one edge-instrumented pass against a plain
# one (docs/measurements/bench_edges.json has the edge runs' wall times).
EDGE_PASS_COST = 12.0


@dataclass(frozen=True)
class Param:
    """A method's one user-facing parameter: a keep ratio, a threshold or a target sparsity."""

    name: str
    label: str
    default: float
    low: float
    high: float
    low_inclusive: bool = True
    high_inclusive: bool = True
    help: str = ""
    choices: tuple[float, ...] = ()  # the values the app's slider offers
    search: tuple[float, float] | None = (
        None  # the range a target-accuracy search bisects (geometrically), for setting methods
    )

    def check(self, value: float) -> float:
        ok_low = value >= self.low if self.low_inclusive else value > self.low
        ok_high = value <= self.high if self.high_inclusive else value < self.high
        if not (ok_low and ok_high):
            lo, hi = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
            what = self.name if self.label.lower() == self.name else f"{self.label.lower()} ({self.name})"
            raise TaskError(f"{what} must be in {lo}{self.low:g}, {self.high:g}{hi}, got {value}")
        return float(value)


@dataclass(frozen=True)
class Option:
    """An integer run option a method reads: its :class:`RunOptions` field, app widget and CLI flag."""

    field: str  # the RunOptions field, also the app widget's key
    label: str
    default: int
    low: int
    high: int
    step: int = 1
    help: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    def check(self, value: int) -> int:
        if not self.low <= value <= self.high:
            raise TaskError(f"{self.label.lower()} ({self.flag[2:]}) must be in [{self.low}, {self.high}], got {value}")
        return int(value)


@dataclass
class RunOptions:
    """What a run reads besides its setting: the seed, a progress callback, the granularity, and the options the
    method declares (:class:`Option`), by field, read as attributes (``options.n_steps``)."""

    seed: int = 0
    progress: Callable[[float], None] | None = None
    granularity: str = "node"  # "edge": masks over edges between components (vitcore.edges)
    values: dict[str, int] = field(default_factory=dict)

    def __getattr__(self, name: str) -> int:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"no run option {name!r} here (the method declares {', '.join(values) or 'none'})")


@dataclass
class MethodOutput:
    """Scores (higher = more important), the method's own circuit if it picks one, and its cost."""

    scores: Tensor
    kept_mask: Tensor | None  # None: keep the top ``keep`` fraction of the scores
    forward_passes: float  # over the task images, excluding building the task and the counterfactual
    backward_passes: float
    params: dict[str, float] = field(default_factory=dict)


class MethodRun(Protocol):
    def __call__(
        self,
        model: VisionTransformer,
        task: Task,
        cf: Activations | None,
        metric: str,
        value: float,
        options: RunOptions,
        /,
    ) -> MethodOutput: ...


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    run: MethodRun
    default_metric: str
    param: Param
    sweep: tuple[float, ...]  # settings of the Pareto sweep, least to most pruned
    cost: str  # passes per batch, in words
    description: str
    refuse: Callable[[str], str | None] = lambda metric: None  # a reason to refuse a metric, or None
    # what the order of its scores means: by default the magnitude of the (estimated or measured) change of the metric
    # when the component is patched, since a component that moves the metric either way matters
    ranks_by: str = "magnitude"
    options: tuple[Option, ...] = ()  # the run options this method reads
    # forward-pass equivalents (a backward counted as two) over the task images, to estimate time before a run;
    # its second argument is the number of components, or over edges the number of candidates evaluated
    expected_passes: Callable[[RunOptions, int], float] = lambda options, n_components: 4.0
    granularities: tuple[str, ...] = ("node",)  # what it scores: components ("node") and/or edges ("edge")
    edge_default: float | None = None  # the parameter's default over edges (32k of them), when it differs
    # the method's own circuit is the scores at or above its setting (ACDC's tau over its visit scores);
    # otherwise a setting other than a keep ratio is re-run, and a keep ratio cuts the scores
    threshold_scores: bool = False
    edge_evaluations: int | None = None  # over edges: candidates evaluated one by one (None: every edge in one pass)
    edge_images: int | None = (
        None  # over edges: at most this many discovery images in benchmarks (cost grows with them)
    )
    setting_for_keep: Callable[[float], float] | None = (
        None  # the setting that keeps a given fraction, when it is not a keep ratio
    )

    def default(self, granularity: str = "node") -> float:
        """The parameter's default at a granularity."""
        return self.edge_default if granularity == "edge" and self.edge_default is not None else self.param.default

    @property
    def ranks(self) -> bool:
        """True when the circuit is the top fraction of the scores (the parameter is a keep ratio)."""
        return self.param.name == "keep"

    @property
    def target_search(self) -> str:
        """How --target-accuracy searches: "keep" bisects a keep ratio over the default run's scores;
        "setting" bisects the parameter itself over ``param.search`` (re-running the method at each probe)."""
        return "setting" if self.param.search is not None else "keep"

    def own_options(self, values: Mapping[str, int]) -> dict[str, Any]:
        """The run options this method reads, taken from ``values`` (options by field; others ignored)."""
        return {o.field: values[o.field] for o in self.options if o.field in values}

    def run_options(self, values: dict[str, int] | None = None, **fixed) -> RunOptions:
        """RunOptions with this method's options checked and taken from ``values`` (missing ones: their defaults)."""
        values = values or {}
        chosen = {o.field: o.check(int(values.get(o.field, o.default))) for o in self.options}
        return RunOptions(values=chosen, **fixed)

    def estimate_seconds(
        self, forward_s: float, options: RunOptions, n_components: int, granularity: str = "node"
    ) -> float:
        """Expected wall time from one measured forward over the task images (plus building the task,
        the counterfactual and the faithfulness check: three forwards). Over edges every pass runs the
        edge-instrumented forward, about ``EDGE_PASS_COST`` plain ones."""
        if granularity == "edge":
            n = self.edge_evaluations or n_components
            return forward_s * EDGE_PASS_COST * (3 + self.expected_passes(options, n))
        return forward_s * (3 + self.expected_passes(options, n_components))

    def setting_label(self, value: float) -> str:
        return f"{self.label} {self.param.name} {value:g}"
