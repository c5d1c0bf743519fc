"""The method registry: what each circuit-discovery method is, in one record that every caller reads.

``discover``, the sweep, the target-accuracy searches, the atlas, the CLI and the app's pages take
names, parameters, options, granularities, defaults, sweep settings and costs from here, and name no
method themselves. Adding a method is one module with a ``run`` function of the
:class:`~vitcore.circuits.method.MethodRun` signature plus one :class:`~vitcore.circuits.method.Method`
entry below.
"""

from __future__ import annotations

from .acdc import run as run_acdc
from .atp_star import run as run_atp_star
from .eap import run as run_eap
from .eap_ig import run as run_eap_ig
from .exact import run as run_exact
from .learned import run as run_learned
from .lrp import run as run_lrp
from .method import Method, Option, Param
from .relp import run as run_relp
from .task import TaskError


def _refuse_kl(label: str):
    def refuse(metric: str) -> str | None:
        if metric == "kl":
            return (
                f"{label} on KL is degenerate: KL(full || circuit) is zero with zero gradient at the clean run, "
                f"so every score would be 0. Use metric 'ce' (default) or 'logit-diff' for {label}, or EAP-IG for KL."
            )
        return None

    return refuse


def _refuse_all_but_logit(metric: str) -> str | None:
    if metric != "logit":
        return f"LRP explains the true class's logit; use metric 'logit', not {metric!r}"
    return None


INTEGRATION_STEPS = Option("n_steps", "Integration steps", 5, 1, 64, help="points on the path from corrupt to clean")
OPTIMISATION_STEPS = Option("steps", "Optimisation steps", 200, 20, 1000, 20, help="mask optimisation steps")


def _registry() -> dict[str, Method]:
    keep = Param(
        "keep",
        "Keep ratio",
        0.5,
        0.0,
        1.0,
        low_inclusive=False,
        help="fraction of components kept, by score",
        choices=tuple(round(0.05 * i, 2) for i in range(1, 21)),
    )
    ranked = (0.9, 0.8, 0.7, 0.6, 0.5)
    return {
        m.name: m
        for m in (
            Method(
                "eap",
                "EAP",
                run_eap,
                "ce",
                keep,
                ranked,
                "2 forwards + 1 backward",
                "EAP ranks by the gradient of the metric times the activation difference (default metric: "
                "cross-entropy "
                "of the true label; KL is degenerate for EAP).",
                _refuse_kl("EAP"),
                granularities=("node", "edge"),
                edge_default=0.05,
            ),
            Method(
                "atp-star",
                "AtP*",
                run_atp_star,
                "ce",
                keep,
                ranked,
                "depth x (1 forward + 1 backward)",
                "AtP* (Kramar et al. 2024): over components, attribution patching with GradDrop (one backward per "
                "layer with that layer's gradient dropped, their magnitudes added, so that effects which cancel in one "
                "gradient still count); over edges, the QK fix (an edge into a query or key gets its head's attention "
                "pattern recomputed, then the gradient from the pattern on).",
                _refuse_kl("AtP*"),
                expected_passes=lambda o, n: 27.0,  # forward + backward per layer, at the shipped depth of 9
                granularities=("node", "edge"),
                edge_default=0.05,
            ),
            Method(
                "exact-patching",
                "Exact patching",
                run_exact,
                "kl",
                keep,
                ranked,
                "one patched forward per component, from its own sublayer on",
                "Exact patching removes each component alone (patched with the corruption) and measures the change "
                "of the metric: the ground truth every other method estimates. Ranked by the magnitude of the change "
                "(on KL it is never negative). Its cost grows with the components times the images.",
                expected_passes=lambda o, n: 0.5 * n,  # each candidate runs about half the layers
            ),
            Method(
                "eap-ig",
                "EAP-IG",
                run_eap_ig,
                "kl",
                keep,
                ranked,
                "n_steps forwards + backwards (+1 forward)",
                "EAP-IG integrates the gradient along the path from corrupt to clean (captum IntegratedGradients; "
                "default metric: KL); ranked by the magnitude of the integrated estimate.",
                options=(INTEGRATION_STEPS,),
                expected_passes=lambda o, n: 3.0 * o.n_steps,
                granularities=("node", "edge"),
                edge_default=0.05,
            ),
            # the default tau and the sweep's taus: see the Pareto sweep in the docs (docs/measurements/sweep.json)
            Method(
                "acdc",
                "ACDC",
                run_acdc,
                "kl",
                Param(
                    "tau",
                    "tau",
                    0.01,
                    0.0,
                    float("inf"),
                    help="KL threshold: a component is removed if patching it raises KL by less",
                    choices=(0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2),
                    search=(1e-4, 0.5),
                ),
                (0.01, 0.05, 0.1, 0.15, 0.2),
                "cached residual per layer, candidates of a layer batched",
                "ACDC greedily removes components, in reverse topological order, whose patching raises KL by less "
                "than tau.",
                expected_passes=lambda o, n: 0.6 * n,
                ranks_by="measured change at its visit (signed)",
                granularities=("node", "edge"),
                edge_default=0.005,
                threshold_scores=True,
                edge_evaluations=2000,
                edge_images=6,
            ),  # forward equivalents per component: docs/measurements/bench_circuits.json
            Method(
                "learned",
                "learned",
                run_learned,
                "kl",
                Param(
                    "sparsity",
                    "Target sparsity",
                    0.5,
                    0.0,
                    1.0,
                    high_inclusive=False,
                    help="fraction of components removed",
                    choices=tuple(round(0.05 * i, 2) for i in range(0, 20)),
                ),
                (0.1, 0.2, 0.3, 0.4, 0.5),
                "one forward + backward per step",
                "Learned masks train hard-concrete gates on KL while their expected sparsity is held on a target "
                "raised to the "
                "requested sparsity (Edge Pruning's objective and schedule; the target is kept exactly by a common "
                "shift of the gates).",
                options=(OPTIMISATION_STEPS,),
                expected_passes=lambda o, n: 3.0 * o.steps,
                ranks_by="learned gate (log alpha)",
                granularities=("node", "edge"),
                edge_default=0.95,
                setting_for_keep=lambda keep: 1 - keep,
            ),
            Method(
                "lrp",
                "LRP",
                run_lrp,
                "logit",
                keep,
                ranked,
                "1 forward + 1 backward (no counterfactual)",
                "LRP (AttnLRP rules) scores each component by the relevance that flows through it when the true "
                "class's logit is "
                "explained in one modified backward pass; ranked by mean absolute relevance.",
                _refuse_all_but_logit,
                granularities=("node",),
                ranks_by="mean relevance magnitude",
            ),
            Method(
                "relp",
                "RelP",
                run_relp,
                "ce",
                keep,
                ranked,
                "2 forwards + 1 backward",
                "RelP is attribution patching with the gradient taken through LRP's rules (AttnLRP) instead of the "
                "plain one: "
                "EAP's cost, with the relevance propagation that tracks exact patching more closely (Rezaei Jafari et "
                "al. 2025).",
                _refuse_kl("RelP"),
                granularities=("node", "edge"),
                edge_default=0.05,
            ),
        )
    }


METHODS: dict[str, Method] = _registry()
# the app's and the CLI's default: the faithfulness table's pick (trust.most_faithful; tests/test_trust.py checks it)
DEFAULT_METHOD = "exact-patching"
# the default where edges are scored (the default above may score components only): the edge table's most faithful
# affordable method (docs/results/methods.md, edge-level methods)
DEFAULT_EDGE_METHOD = "eap-ig"
# the ground truth the faithfulness table and the app's second tier of scores measure against
GROUND_TRUTH = "exact-patching"
# the lesson's comparison (the app's Lesson page): one gradient's estimate against the exact answer
TEACHING_PAIR = ("eap", GROUND_TRUTH)


def get_method(name: str) -> Method:
    """The registered method called ``name``; an unknown name raises TaskError listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise TaskError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


def all_options() -> list[Option]:
    """Every distinct run option of the registered methods, in registry order."""
    seen: dict[str, Option] = {}
    for m in METHODS.values():
        for o in m.options:
            seen.setdefault(o.field, o)
    return list(seen.values())


def methods_reading(field: str) -> list[str]:
    """Names of the methods that read the run option ``field``."""
    return [m.name for m in METHODS.values() if any(o.field == field for o in m.options)]
