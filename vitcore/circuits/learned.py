"""Learned masks (Edge Pruning, Bhaskar et al. 2024) over components or edges.

Each component (or edge) has a hard-concrete gate (Louizos et al. 2018) with learnable ``log_alpha``,
temperature beta = 2/3, stretch (l, r) = (-0.1, 1.1), eps = 1e-6. A closed gate patches the
component with its counterfactual. The loss is the damage metric D (KL by default) of sampled gates.
The expected sparsity follows a target raised linearly from 0 to the requested sparsity over the
first ``ramp`` fraction of steps (Edge Pruning's linear warm-up), and is held on it in one of two ways:

- ``constraint="projection"`` (default): after every optimiser step all ``log_alpha`` are shifted by
  one constant, found by bisection, so that the expected sparsity equals the target. The shift keeps
  the order of the gates, so the optimiser decides only which gates close, never how many.
- ``constraint="lagrangian"``: Edge Pruning's penalty ``lambda1 (t - s) + lambda2 (t - s)^2`` with the
  multipliers raised by gradient ascent. With the step budgets the app can afford it reaches some
  targets and overshoots others (docs/results/methods.md).

The final mask is deterministic: the top ``1 - sparsity`` of ``log_alpha``, so the kept set always
has the asked size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import Activations, VisionTransformer
from .method import MethodOutput, RunOptions
from .metrics import damage_fn
from .patching import Patcher
from .result import keep_top
from .task import Task, TaskError

BETA, LEFT, RIGHT, EPS = 2 / 3, -0.1, 1.1, 1e-6


def sample_gates(log_alpha: Tensor, gen: torch.Generator) -> Tensor:
    """A stochastic hard-concrete sample in [0, 1] per component."""
    u = torch.rand(log_alpha.shape, generator=gen).clamp(EPS, 1 - EPS)
    s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / BETA)
    return (s * (RIGHT - LEFT) + LEFT).clamp(0.0, 1.0)


def expected_density(log_alpha: Tensor) -> Tensor:
    """Probability that each gate is non-zero."""
    return torch.sigmoid(log_alpha - BETA * math.log(-LEFT / RIGHT))


def shift_to_sparsity(log_alpha: Tensor, target: float, iterations: int = 60) -> float:
    """The constant ``b`` for which ``log_alpha + b`` has expected sparsity ``target`` (bisection)."""
    lo, hi = -60.0, 60.0
    with torch.no_grad():
        for _ in range(iterations):
            mid = (lo + hi) / 2
            if 1 - float(expected_density(log_alpha + mid).mean()) > target:
                lo = mid
            else:
                hi = mid
    return (lo + hi) / 2


def scheduled_target(sparsity: float, step: int, steps: int, ramp: float) -> float:
    """The target sparsity after ``step`` (0-based) steps: linear from 0, reaching ``sparsity`` after ``ramp *
    steps``.
    """
    return sparsity * min(1.0, (step + 1) / max(1, int(ramp * steps)))


CONSTRAINTS = ("projection", "lagrangian")


@dataclass
class LearnedOutcome:
    log_alpha: Tensor
    kept_mask: Tensor
    expected_sparsity: float
    forward_passes: float
    backward_passes: float
    history: list[dict[str, float]]


def learn_masks(
    model: VisionTransformer,
    task: Task,
    cf: Activations | None,
    sparsity: float,
    metric: str = "kl",
    steps: int = 200,
    lr: float = 0.3,
    lambda_lr: float = 1.0,
    init: float = 1.0,
    ramp: float = 0.5,
    batch_size: int = 64,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    granularity: str = "node",
    constraint: str = "projection",
) -> LearnedOutcome:
    """Hard-concrete gates trained to keep the damage low at the requested expected ``sparsity``."""
    if constraint not in CONSTRAINTS:
        raise TaskError(f"unknown constraint {constraint!r}; choose one of {', '.join(CONSTRAINTS)}")
    if not 0 <= sparsity < 1:
        raise TaskError(f"sparsity must be in [0, 1), got {sparsity}")
    if steps < 1:
        raise TaskError("steps must be >= 1")
    damage = damage_fn(metric)
    gen = torch.Generator().manual_seed(seed)
    patcher = Patcher(model, task, cf, granularity)
    if granularity == "edge":
        batch_size = min(batch_size, 32)  # an edge forward keeps what every node writes
    n, N = patcher.size, len(task)
    log_alpha = torch.full((n,), float(init), requires_grad=True)
    lambdas = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([log_alpha], lr=lr)
    opt_lambda = torch.optim.Adam([lambdas], lr=lambda_lr, maximize=True)
    history: list[dict[str, float]] = []
    images = 0
    for step in range(steps):
        idx = torch.randperm(N, generator=gen)[:batch_size].sort().values
        gates = sample_gates(log_alpha, gen)
        logits = patcher.logits(idx, gates)
        d = damage(logits, task.reference_logits[idx], task.labels[idx]).mean()
        target = scheduled_target(sparsity, step, steps, ramp)
        s = 1 - expected_density(log_alpha).mean()
        loss = d + lambdas[0] * (target - s) + lambdas[1] * (target - s) ** 2 if constraint == "lagrangian" else d
        opt.zero_grad()
        opt_lambda.zero_grad()
        loss.backward()
        opt.step()
        opt_lambda.step()
        if constraint == "projection":
            with torch.no_grad():
                log_alpha += shift_to_sparsity(log_alpha, scheduled_target(sparsity, step + 1, steps, ramp))
        images += len(idx)
        history.append({"step": step + 1, "damage": d.item(), "expected_sparsity": s.item(), "target": target})
        if progress:
            progress((step + 1) / steps)
    final = log_alpha.detach()
    keep = keep_top(final, 1 - sparsity) if sparsity > 0 else torch.ones(n)
    expected = float(1 - expected_density(final).mean())
    return LearnedOutcome(final, keep, expected, images / N, images / N, history)


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, sparsity: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point."""
    with torch.enable_grad():
        out = learn_masks(
            model,
            task,
            cf,
            sparsity,
            metric,
            steps=options.steps,
            seed=options.seed,
            progress=options.progress,
            granularity=options.granularity,
        )
    params = {"sparsity": sparsity, "steps": options.steps, "expected_sparsity": round(out.expected_sparsity, 4)}
    return MethodOutput(out.log_alpha, out.kept_mask, out.forward_passes, out.backward_passes, params)
