"""AtP* (Kramár, Lieberum, Shah, Nanda 2024) at component level: attribution patching with GradDrop.

AtP* mends two failure modes of attribution patching (EAP here). *Attention saturation*: patching a
head's query or key can move its softmax far along a flat or steep stretch, where the tangent is wrong;
AtP* recomputes that head's attention pattern exactly and linearises only after it. A component here is
a head's output (taken after its softmax) or an MLP chunk, so none is a query or key, and that fix has
nothing to act on at this granularity. *Cancellation*: a component's effects through different later
layers can cancel in the gradient although each is large. GradDrop repeats the backward pass once per
layer ``l`` with the gradient through layer ``l``'s attention and MLP dropped (the residual stream passes
it on unchanged) and adds the magnitudes::

    score_c = sum_l |AtP_l(c)| / (L - 1)

where ``AtP_l`` is attribution patching with layer ``l``'s gradient dropped. For ``l`` before ``c``'s layer
the term is plain ``|AtP(c)|``; for ``c``'s own layer it is 0 (hence ``L - 1``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..model import Activations, VisionTransformer
from .eap import eap_scores
from .method import MethodOutput, RunOptions
from .task import Task


@contextmanager
def gradient_dropped(block: nn.Module):
    """Within the block: its output's value unchanged, but no gradient through its attention and MLP."""
    handle = block.register_forward_hook(lambda module, args, out: args[0] + (out - args[0]).detach())
    try:
        yield
    finally:
        handle.remove()


def grad_drop_scores(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str = "ce", progress=None
) -> Tensor:
    """GradDrop's score per component (see the module docstring), on a private copy of ``model`` (the hooks never
    touch the caller's)."""
    own = model.clone().eval()
    depth = model.config.depth
    total = torch.zeros(len(model.components))
    for layer, block in enumerate(own.layers()):
        with gradient_dropped(block), torch.enable_grad():
            total += eap_scores(own, task, cf, metric).abs()
        if progress:
            progress((layer + 1) / depth)
    return total / max(depth - 1, 1)


def run(
    model: VisionTransformer, task: Task, cf: Activations | None, metric: str, keep: float, options: RunOptions
) -> MethodOutput:
    """Registry entry point: ranked by GradDrop's score (a sum of magnitudes)."""
    depth = model.config.depth
    scores = grad_drop_scores(model, task, cf, metric, options.progress)
    return MethodOutput(scores, None, float(depth), float(depth), {"keep": keep})
