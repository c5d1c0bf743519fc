"""Physical pruning: a new, smaller model with the removed heads and neuron chunks cut out.

Removed heads lose their rows of the fused QKV projection and their columns of the output
projection; removed chunks lose their rows of fc1 and columns of fc2. Output biases stay, so a
pruned model computes exactly what the full model computes with those components masked to 0.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor

from ..components import Component, ComponentSpace
from ..errors import VitcoreError
from ..model import VisionTransformer


class PruneError(VitcoreError):
    """A keep-set that does not fit the model."""


def to_keep_mask(space: ComponentSpace, keep: Tensor | Iterable[Component | str | int]) -> Tensor:
    """A 0/1 float mask from a mask tensor or a collection of components, names or ids."""
    if isinstance(keep, Tensor):
        if keep.shape != (len(space),):
            raise PruneError(f"keep mask has shape {tuple(keep.shape)}, expected ({len(space)},)")
        return (keep > 0.5).float()
    try:
        return space.mask_from_keep(keep)
    except (KeyError, ValueError) as e:
        raise PruneError(str(e)) from e


@torch.no_grad()
def prune(model: VisionTransformer, keep: Tensor | Iterable[Component | str | int]) -> VisionTransformer:
    """A new model holding only the kept components; ``model`` is not modified."""
    space = model.components
    mask = to_keep_mask(space, keep)
    cfg = copy.deepcopy(model.config)
    hd = cfg.head_dim
    kept_heads, kept_neurons = [], []
    for layer in range(cfg.depth):
        heads = torch.nonzero(mask[space.head_slices[layer]]).flatten()
        chunks = torch.nonzero(mask[space.chunk_slices[layer]]).flatten().tolist()
        neurons = torch.tensor([n for c in chunks for n in space.chunk_neurons(layer, c)], dtype=torch.long)
        kept_heads.append(heads)
        kept_neurons.append(neurons)
    cfg.heads = [len(h) for h in kept_heads]
    cfg.mlp_widths = [len(n) for n in kept_neurons]
    state = model.state_dict()
    new_state = {k: v.detach().clone() for k, v in state.items() if ".attn." not in k and ".mlp." not in k}
    for layer in range(cfg.depth):
        p = f"blocks.{layer}."
        H = model.config.heads[layer]
        heads, neurons = kept_heads[layer], kept_neurons[layer]
        w = state[p + "attn.qkv.weight"].view(3, H, hd, -1)[:, heads]
        new_state[p + "attn.qkv.weight"] = w.reshape(-1, w.shape[-1]).contiguous()
        new_state[p + "attn.qkv.bias"] = state[p + "attn.qkv.bias"].view(3, H, hd)[:, heads].reshape(-1).contiguous()
        w = state[p + "attn.proj.weight"].view(-1, H, hd)[:, heads]
        new_state[p + "attn.proj.weight"] = w.reshape(w.shape[0], -1).contiguous()
        new_state[p + "attn.proj.bias"] = state[p + "attn.proj.bias"].clone()
        new_state[p + "mlp.fc1.weight"] = state[p + "mlp.fc1.weight"][neurons].contiguous()
        new_state[p + "mlp.fc1.bias"] = state[p + "mlp.fc1.bias"][neurons].contiguous()
        new_state[p + "mlp.fc2.weight"] = state[p + "mlp.fc2.weight"][:, neurons].contiguous()
        new_state[p + "mlp.fc2.bias"] = state[p + "mlp.fc2.bias"].clone()
    return VisionTransformer.from_state_dict(cfg, new_state).train(model.training)
