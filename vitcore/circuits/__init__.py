"""Circuit discovery over heads and MLP neuron chunks; the methods are listed in :mod:`.methods`."""

from .acdc import acdc
from .corruptions import CORRUPTIONS, counterfactual
from .discover import check_method_metric, circuit_faithfulness, discover
from .eap import eap_scores
from .eap_ig import eap_ig_scores
from .learned import learn_masks
from .method import Method, MethodOutput, Param, RunOptions
from .methods import METHODS, get_method
from .metrics import METRICS, faithfulness
from .result import CircuitResult, ResultError, keep_top
from .task import Task, TaskError, build_task

__all__ = [
    "CORRUPTIONS",
    "METHODS",
    "METRICS",
    "CircuitResult",
    "Method",
    "MethodOutput",
    "Param",
    "ResultError",
    "RunOptions",
    "Task",
    "TaskError",
    "acdc",
    "build_task",
    "check_method_metric",
    "circuit_faithfulness",
    "counterfactual",
    "discover",
    "eap_ig_scores",
    "eap_scores",
    "faithfulness",
    "get_method",
    "keep_top",
    "learn_masks",
]
