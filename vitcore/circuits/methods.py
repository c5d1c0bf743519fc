"""The method registry: what each circuit-discovery method is, in one record that every caller reads.

``discover``, the sweep, the target-accuracy searches, the CLI and the app's pages take names,
parameters, defaults, sweep settings and costs from here. Adding a method is one module with a
``run`` function of the :class:`~vitcore.circuits.method.MethodRun` signature plus one
:class:`~vitcore.circuits.method.Method` entry below.
"""

from __future__ import annotations

from .acdc import run as run_acdc
from .eap import run as run_eap
from .eap_ig import run as run_eap_ig
from .learned import run as run_learned
from .lrp import run as run_lrp
from .method import Method, Param
from .task import TaskError


def _refuse_kl_for_eap(metric: str) -> str | None:
    if metric == "kl":
        return ("EAP on KL is degenerate: KL(full || circuit) is zero with zero gradient at the clean run, "
                "so every score would be 0. Use metric 'ce' (default) or 'logit-diff' for EAP, or EAP-IG for KL.")
    return None


def _refuse_all_but_logit(metric: str) -> str | None:
    if metric != "logit":
        return f"LRP explains the true class's logit; use metric 'logit', not {metric!r}"
    return None


def _registry() -> dict[str, Method]:
    keep = Param("keep", "Keep ratio", 0.5, 0.0, 1.0, low_inclusive=False, help="fraction of components kept, by score",
                 choices=tuple(round(0.05 * i, 2) for i in range(1, 21)))
    return {m.name: m for m in (
        Method("eap", "EAP", run_eap, "ce", keep, (0.9, 0.8, 0.7, 0.6, 0.5), "2 forwards + 1 backward",
               "EAP ranks by the gradient of the metric times the activation difference (default metric: cross-entropy "
               "of the true label; KL is degenerate for EAP).", _refuse_kl_for_eap, edge_default=0.05),
        Method("eap-ig", "EAP-IG", run_eap_ig, "kl", keep, (0.9, 0.8, 0.7, 0.6, 0.5), "n_steps forwards + backwards (+1 forward)",
               "EAP-IG integrates the gradient along the path from corrupt to clean (captum IntegratedGradients; default metric: KL).",
               options=("n_steps",), expected_passes=lambda o, n: 3.0 * o.n_steps, edge_default=0.05),
        # tau 0.01: in the README's sweep tau 0.05 kept 10 of 216 components (chosen-class top-1 0.133), 0.01 kept 65 (0.200)
        Method("acdc", "ACDC", run_acdc, "kl", Param("tau", "tau", 0.01, 0.0, float("inf"), help="KL threshold: a component is removed if patching it raises KL by less",
                                                   choices=(0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2)),
               (0.01, 0.05, 0.1, 0.15, 0.2), "cached residual per layer, candidates of a layer batched",
               "ACDC greedily removes components, in reverse topological order, whose patching raises KL by less than tau.",
               target_search="setting", expected_passes=lambda o, n: 0.6 * n, edge_default=0.005),  # 126.6 forward equivalents for 216 (bench-circuits)
        Method("learned", "learned", run_learned, "kl", Param("sparsity", "Target sparsity", 0.5, 0.0, 1.0, high_inclusive=False, help="fraction of components removed",
                                                                choices=tuple(round(0.05 * i, 2) for i in range(0, 20))),
               (0.1, 0.2, 0.3, 0.4, 0.5), "one forward + backward per step",
               "Learned masks optimise KL plus a Lagrangian sparsity penalty over hard-concrete gates (Edge Pruning's objective).",
               options=("steps",), expected_passes=lambda o, n: 3.0 * o.steps, edge_default=0.95),
        Method("lrp", "LRP", run_lrp, "logit", keep, (0.9, 0.8, 0.7, 0.6, 0.5), "1 forward + 1 backward (no counterfactual)",
               "LRP (AttnLRP rules) scores each component by the relevance that flows through it when the true class's logit is "
               "explained in one modified backward pass; ranked by mean absolute relevance.", _refuse_all_but_logit,
               granularities=("node",)),
    )}


METHODS: dict[str, Method] = _registry()


def get_method(name: str) -> Method:
    """The registered method called ``name``; an unknown name raises TaskError listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise TaskError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None
