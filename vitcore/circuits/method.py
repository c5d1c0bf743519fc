"""What a circuit-discovery method is: its parameter, its run signature, its output and its record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from torch import Tensor

from ..model import Activations, VisionTransformer
from .task import Task, TaskError


# Rough factors for the app's time estimate of edge runs, not fitted: edge EAP took 7.0 s against 0.90 s at node
# level on the same 30 images when first measured, 2.8 s in the latest docs/measurements/bench_edges.txt (node
# EAP not timed there), so 12 probably errs long; one edge ACDC run (tau 0.05, 6 images) evaluated 1,076
# candidates and skipped the rest as dead; smaller tau evaluates more.
EDGE_PASS_COST = 12.0
EDGE_ACDC_EVALUATIONS = 2000


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

    def check(self, value: float) -> float:
        ok_low = value >= self.low if self.low_inclusive else value > self.low
        ok_high = value <= self.high if self.high_inclusive else value < self.high
        if not (ok_low and ok_high):
            lo, hi = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
            what = self.name if self.label.lower() == self.name else f"{self.label.lower()} ({self.name})"
            raise TaskError(f"{what} must be in {lo}{self.low:g}, {self.high:g}{hi}, got {value}")
        return float(value)


@dataclass
class RunOptions:
    """Settings some methods read: integration steps, optimisation steps, seed, progress callback."""

    n_steps: int = 5
    steps: int = 200
    seed: int = 0
    progress: Callable[[float], None] | None = None
    granularity: str = "node"  # "edge": masks over edges between components (vitcore.edges)


@dataclass
class MethodOutput:
    """Scores (higher = more important), the method's own circuit if it picks one, and its cost."""

    scores: Tensor
    kept_mask: Tensor | None  # None: keep the top ``keep`` fraction of the scores
    forward_passes: float  # over the task images, excluding building the task and the counterfactual
    backward_passes: float
    params: dict[str, float] = field(default_factory=dict)


class MethodRun(Protocol):
    def __call__(self, model: VisionTransformer, task: Task, cf: Activations | None, metric: str, value: float, options: RunOptions) -> MethodOutput: ...


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
    # how --target-accuracy searches: "keep" bisects a keep ratio over the default run's scores;
    # "setting" bisects the parameter itself (geometrically, re-running the method at each probe)
    target_search: str = "keep"
    options: tuple[str, ...] = ()  # RunOptions fields this method reads ("n_steps", "steps")
    # forward-pass equivalents (a backward counted as two) over the task images, to estimate time before a run
    expected_passes: Callable[[RunOptions, int], float] = lambda options, n_components: 4.0
    granularities: tuple[str, ...] = ("node", "edge")
    edge_default: float | None = None  # the parameter's default over edges (32k of them), when it differs

    def default(self, granularity: str = "node") -> float:
        """The parameter's default at a granularity."""
        return self.edge_default if granularity == "edge" and self.edge_default is not None else self.param.default

    @property
    def ranks(self) -> bool:
        """True when the circuit is the top fraction of the scores (the parameter is a keep ratio)."""
        return self.param.name == "keep"

    def estimate_seconds(self, forward_s: float, options: RunOptions, n_components: int, granularity: str = "node") -> float:
        """Expected wall time from one measured forward over the task images (plus building the task,
        the counterfactual and the faithfulness check: three forwards). Over edges every pass runs the
        edge-instrumented forward, about ``EDGE_PASS_COST`` plain ones; ACDC's count is its edge count."""
        if granularity == "edge":
            n = EDGE_ACDC_EVALUATIONS if self.target_search == "setting" else n_components
            return forward_s * EDGE_PASS_COST * (3 + self.expected_passes(options, n))
        return forward_s * (3 + self.expected_passes(options, n_components))

    def setting_label(self, value: float) -> str:
        return f"{self.label} {self.param.name} {value:g}"
