"""RelP (Rezaei Jafari, Eberle, Khakzar, Nanda 2025): attribution patching through LRP's rules.

The score of a component (or edge) is EAP's, ``(a_corrupt - a_clean) . g``, with ``g`` the gradient
of the metric taken through LRP's propagation rules instead of the plain one: the same cost as EAP,
two forwards and one backward. The rules are RelP's (its reference implementation): LN-rule, the
identity rule on GELU and the AH-rule on attention (``lrp_rules.CP_LRP``).
"""

from __future__ import annotations

import torch

from ..lrp_rules import CP_LRP
from ..model import Activations, VisionTransformer
from .eap import eap_scores
from .method import MethodOutput, RunOptions
from .task import Task


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, keep: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point: scores ranked by magnitude, as EAP's."""
    with torch.enable_grad():
        scores = eap_scores(model, task, cf, metric, granularity=options.granularity, lrp=CP_LRP).abs()
    if options.progress:
        options.progress(1.0)
    return MethodOutput(scores, None, 1.0, 1.0, {"keep": keep})
