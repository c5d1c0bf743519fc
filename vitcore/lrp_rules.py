"""AttnLRP's propagation rules as modified gradients, so that relevance = activation x gradient.

Achtibat et al. (ICML 2024) show that LRP through a transformer can run as one backward pass in the
Gradient x Input framework when the backward of a few operations is changed:

- linear layers and the softmax: the ordinary gradient (epsilon rule; softmax rule with its bias term);
- element-wise non-linearities (GELU): the identity rule, gradient scaled by ``output / input``;
- LayerNorm: the identity rule on the normalisation, i.e. no gradient through the standard deviation;
- the two attention matmuls: the uniform rule, i.e. each operand gets half the relevance. Through
  ``softmax(q k^T) v`` that is 1/2 for ``v`` and 1/4 for ``q`` and ``k``.

The model applies these when a forward pass is run with ``lrp=True``; nothing else changes.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn
from torch.autograd import Function

EPSILON = 1e-10


class _DivideGradient(Function):
    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad / ctx.factor, None


class _IdentityRule(Function):
    @staticmethod
    def forward(ctx, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        out = fn(x)
        ctx.save_for_backward(out / (x + EPSILON))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (ratio,) = ctx.saved_tensors
        return grad * ratio, None


def divide_gradient(x: Tensor, factor: float) -> Tensor:
    """Identity forward; the gradient is divided by ``factor`` (uniform rule)."""
    return _DivideGradient.apply(x, factor)


def identity_rule(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` forward; backward passes ``grad * fn(x) / x`` (identity rule)."""
    return _IdentityRule.apply(x, fn)


def layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """``norm(x)`` forward; no gradient through the standard deviation (identity rule)."""
    mean = x.mean(-1, keepdim=True)
    std = (x.var(-1, keepdim=True, unbiased=False) + norm.eps).sqrt()
    return (x - mean) / std.detach() * norm.weight + norm.bias
