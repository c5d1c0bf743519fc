"""Faithfulness metrics of a circuit against the full model.

Every metric here is a *damage*: per image, higher means the circuit is worse.
``kl`` is KL(full || circuit), ``ce`` the cross-entropy of the true label, ``logit-diff``
the negated margin of the true class over the best other class.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from .task import TaskError

METRICS = ("kl", "ce", "logit-diff", "logit")


def kl_divergence(logits: Tensor, reference: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-sample KL(softmax(reference / T) || softmax(logits / T))."""
    return F.kl_div(
        F.log_softmax(logits / temperature, -1),
        F.log_softmax(reference / temperature, -1),
        log_target=True,
        reduction="none",
    ).sum(-1)


def kl_damage(logits: Tensor, reference: Tensor, labels: Tensor) -> Tensor:
    return kl_divergence(logits, reference)


def ce_damage(logits: Tensor, reference: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def logit_diff(logits: Tensor, labels: Tensor) -> Tensor:
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    return true - other


def logit_diff_damage(logits: Tensor, reference: Tensor, labels: Tensor) -> Tensor:
    return -logit_diff(logits, labels)


def logit_damage(logits: Tensor, reference: Tensor, labels: Tensor) -> Tensor:
    """The true class's logit, negated (what LRP explains)."""
    return -logits.gather(1, labels[:, None]).squeeze(1)


DAMAGE: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "kl": kl_damage,
    "ce": ce_damage,
    "logit-diff": logit_diff_damage,
    "logit": logit_damage,
}


def damage_fn(metric: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    try:
        return DAMAGE[metric]
    except KeyError:
        raise TaskError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}") from None


def faithfulness(logits: Tensor, reference: Tensor, labels: Tensor) -> dict[str, float]:
    """All faithfulness figures of circuit logits: kl, ce, top1 and logit_diff (means)."""
    logits, reference = logits.float(), reference.float()
    return {
        "kl": float(kl_damage(logits, reference, labels).mean()),
        "ce": float(ce_damage(logits, reference, labels).mean()),
        "top1": float((logits.argmax(1) == labels).float().mean()),
        "logit_diff": float(logit_diff(logits, labels).mean()),
    }
