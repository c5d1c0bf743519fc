"""Circuit discovery: EAP, EAP-IG, ACDC and learned masks over heads and MLP neuron chunks."""

from .acdc import acdc
from .corruptions import CORRUPTIONS, counterfactual
from .discover import DEFAULT_METRIC, METHOD_PARAM, METHODS, check_method_metric, circuit_faithfulness, discover
from .eap import eap_scores
from .eap_ig import eap_ig_scores
from .learned import learn_masks
from .metrics import METRICS, faithfulness
from .result import CircuitResult, ResultError, keep_top
from .task import Task, TaskError, build_task

__all__ = [
    "CORRUPTIONS", "DEFAULT_METRIC", "METHODS", "METHOD_PARAM", "METRICS", "CircuitResult", "ResultError", "Task",
    "TaskError", "acdc", "build_task", "check_method_metric", "circuit_faithfulness", "counterfactual", "discover",
    "eap_ig_scores", "eap_scores", "faithfulness", "keep_top", "learn_masks",
]
