"""Edge patching by forward hooks: an independent reference for :mod:`vitcore.edges`.

What a node writes into the residual stream is taken from hook-captured inputs of the output
projection (a head's columns) and of fc2 (a chunk's columns), and the embedding from block 0's
input. Patching the edge u -> v adds ``corrupt_u - clean_u`` to the input v reads: for a head's
q, k or v, the rows of the fused QKV projection that belong to it are recomputed from the shifted
input; for an MLP, norm2's input is shifted; for the logits, the final norm's input.
Node and input names are parsed here, not through vitcore.
"""

from __future__ import annotations

import re
from contextlib import ExitStack

import torch
import torch.nn.functional as F


@torch.no_grad()
def node_outputs(model, x) -> dict[str, torch.Tensor]:
    """What every node writes into the residual stream on ``x``: ``{name: [B, T, dim]}``."""
    seen = {}
    handles = [model.blocks[0].register_forward_pre_hook(lambda m, a: seen.__setitem__("embed", a[0].clone()))]
    for layer, block in enumerate(model.blocks):
        handles.append(
            block.attn.proj.register_forward_pre_hook(lambda m, a, l=layer: seen.__setitem__(("H", l), a[0].clone()))
        )
        handles.append(
            block.mlp.fc2.register_forward_pre_hook(lambda m, a, l=layer: seen.__setitem__(("C", l), a[0].clone()))
        )
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    out = {"embed": seen["embed"]}
    hd, size = model.config.head_dim, model.config.chunk_size
    for layer, block in enumerate(model.blocks):
        for h in range(model.config.heads[layer]):
            cols = slice(h * hd, (h + 1) * hd)
            out[f"L{layer}.H{h}"] = seen[("H", layer)][..., cols] @ block.attn.proj.weight[:, cols].T
        width = model.config.mlp_widths[layer]
        for c in range(-(-width // size)):
            cols = slice(c * size, min((c + 1) * size, width))
            out[f"L{layer}.C{c}"] = seen[("C", layer)][..., cols] @ block.mlp.fc2.weight[:, cols].T
    return out


@torch.no_grad()
def patch_edges(model, x, edges: list[str], clean: dict, corrupt: dict) -> torch.Tensor:
    """Logits with every edge ``'u->v'`` in ``edges`` patched (its input reads ``corrupt_u`` for ``clean_u``).

    Exact only when no patched edge's upstream node is itself downstream of another patched edge
    (then ``clean_u`` is what u writes in the patched run too)."""
    shifts: dict[str, torch.Tensor] = {}
    for e in edges:
        up, down = e.split("->")
        shifts[down] = shifts.get(down, 0) + corrupt[up] - clean[up]
    block_in: dict[int, torch.Tensor] = {}
    hd = model.config.head_dim
    with ExitStack() as stack:

        def keep(h):
            stack.callback(h.remove)

        for down, shift in shifts.items():
            if down == "logits":
                keep(model.norm.register_forward_pre_hook(lambda m, a, s=shift: (a[0] + s[:, 0],)))
                continue
            layer, rest = re.fullmatch(r"L(\d+)\.(.+)", down).groups()
            layer, block = int(layer), model.blocks[int(layer)]
            if rest == "mlp":
                keep(block.norm2.register_forward_pre_hook(lambda m, a, s=shift: (a[0] + s,)))
                continue
            head, which = re.fullmatch(r"H(\d+)\.([qkv])", rest).groups()
            H = model.config.heads[layer]
            start = ("qkv".index(which) * H + int(head)) * hd
            rows = slice(start, start + hd)
            keep(block.register_forward_pre_hook(lambda m, a, l=layer: block_in.__setitem__(l, a[0])))

            def fix(module, args, output, l=layer, rows=rows, s=shift, b=block):
                output = output.clone()
                output[..., rows] = F.linear(b.norm1(block_in[l] + s), module.weight[rows], module.bias[rows])
                return output

            keep(block.attn.qkv.register_forward_hook(fix))
        return model(x)
