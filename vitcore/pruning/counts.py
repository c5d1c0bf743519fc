"""Exact parameter and multiply-accumulate counts of any (pruned or full) model, per image.

MACs count every matmul: patch embedding, QKV, the two token-by-token attention matmuls
(QK^T and AV), output projection, fc1, fc2 and the classifier. LayerNorm, softmax, GELU and
additions are not multiply-accumulates of a matmul and are left out.
"""

from __future__ import annotations

from ..config import ViTConfig
from ..model import VisionTransformer


def count_params(model: VisionTransformer) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(config: ViTConfig) -> int:
    """MACs of one forward pass on one image."""
    c = config
    T, D = c.num_tokens, c.dim
    macs = c.num_patches * D * c.in_chans * c.patch_size**2
    for heads, width in zip(c.heads, c.mlp_widths):
        inner = heads * c.head_dim
        macs += T * D * 3 * inner  # qkv
        macs += 2 * heads * T * T * c.head_dim  # QK^T and AV
        macs += T * inner * D  # output projection
        macs += 2 * T * D * width  # fc1 and fc2
    return macs + D * c.num_classes
