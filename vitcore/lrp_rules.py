"""AttnLRP's propagation rules as modified gradients, so that relevance = activation x gradient.

Achtibat et al. (ICML 2024) show that LRP through a transformer can run as one backward pass in the
Gradient x Input framework when the backward of a few operations is changed:

- linear layers and the softmax: the ordinary gradient (epsilon rule; softmax rule with its bias term);
- element-wise non-linearities (GELU): the identity rule, gradient scaled by ``output / input``;
- LayerNorm: the identity rule on the normalisation, i.e. no gradient through the standard deviation;
- the two attention matmuls: the uniform rule, i.e. each operand gets half the relevance. Through
  ``softmax(q k^T) v`` that is 1/2 for ``v`` and 1/4 for ``q`` and ``k``.

The model applies these when a forward pass is run with ``lrp=True`` (or ``lrp=ATTNLRP``); nothing else
changes. ``lrp=CP_LRP`` applies the conservative-propagation rules of Ali et al. (ICML 2022) that RelP
uses instead: the same LayerNorm and GELU rules, and the AH-rule for attention, which treats the
attention weights as constants (no gradient through queries and keys; the values get all of it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import Function

EPSILON = 1e-10
ATTNLRP = "attnlrp"
CP_LRP = "cp-lrp"


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


def attention(q: Tensor, k: Tensor, v: Tensor, rules: bool | str) -> Tensor:
    """``softmax(q k^T / sqrt(d)) v`` over ``[B, H, T, d]`` with the backward of the rule set ``rules``
    (falsy: the plain gradient; ``True`` or ATTNLRP: the uniform rule; CP_LRP: the AH-rule)."""
    if rules == CP_LRP:
        pattern = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
        return pattern.detach() @ v
    if rules:
        q, k, v = divide_gradient(q, 4.0), divide_gradient(k, 4.0), divide_gradient(v, 2.0)
    return F.scaled_dot_product_attention(q, k, v)


def layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """``norm(x)`` forward; no gradient through the standard deviation (identity rule)."""
    mean = x.mean(-1, keepdim=True)
    std = (x.var(-1, keepdim=True, unbiased=False) + norm.eps).sqrt()
    return (x - mean) / std.detach() * norm.weight + norm.bias
