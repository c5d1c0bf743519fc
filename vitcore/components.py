"""The one canonical ordering and naming of prunable components.

Components are attention heads ``(layer, head)`` and MLP neuron chunks ``(layer, chunk)``.
Canonical order is topological: layer by layer, within a layer all heads first, then all
chunks. A component's *id* is its index in that order; its *name* is ``L{layer}.H{head}`` or
``L{layer}.C{chunk}``. Every method, file format and UI in the project uses this scheme.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from .config import ViTConfig

Kind = Literal["head", "chunk"]
_NAME = re.compile(r"^L(\d+)\.([HC])(\d+)$")


@dataclass(frozen=True, order=True)
class Component:
    layer: int
    kind: Kind
    index: int

    @property
    def name(self) -> str:
        return f"L{self.layer}.{'H' if self.kind == 'head' else 'C'}{self.index}"

    @classmethod
    def parse(cls, name: str) -> Component:
        m = _NAME.match(name.strip())
        if not m:
            raise ValueError(f"not a component name: {name!r} (expected like 'L3.H5' or 'L3.C2')")
        return cls(int(m.group(1)), "head" if m.group(2) == "H" else "chunk", int(m.group(3)))


class ComponentSpace:
    """All components of one architecture, with ids, names and per-layer slices of a flat mask."""

    def __init__(self, config: ViTConfig):
        self.config = config
        self.chunk_size = config.chunk_size
        self.heads_per_layer = list(config.heads)
        self.chunks_per_layer = [math.ceil(w / config.chunk_size) for w in config.mlp_widths]
        self.components: list[Component] = []
        self.head_slices: list[slice] = []
        self.chunk_slices: list[slice] = []
        for layer, (h, c) in enumerate(zip(self.heads_per_layer, self.chunks_per_layer)):
            start = len(self.components)
            self.components += [Component(layer, "head", i) for i in range(h)]
            self.head_slices.append(slice(start, start + h))
            self.components += [Component(layer, "chunk", i) for i in range(c)]
            self.chunk_slices.append(slice(start + h, start + h + c))
        self._ids = {c: i for i, c in enumerate(self.components)}

    def __len__(self) -> int:
        return len(self.components)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    @property
    def depth(self) -> int:
        return self.config.depth

    def id(self, component: Component | str) -> int:
        if isinstance(component, str):
            component = Component.parse(component)
        try:
            return self._ids[component]
        except KeyError:
            raise KeyError(f"component {component.name} does not exist in this model") from None

    def ids(self, components: Iterable[Component | str | int]) -> list[int]:
        out = []
        for c in components:
            if isinstance(c, int):
                if not 0 <= c < len(self):
                    raise KeyError(f"component id {c} out of range 0..{len(self) - 1}")
                out.append(c)
            else:
                out.append(self.id(c))
        return out

    def chunk_neurons(self, layer: int, chunk: int) -> range:
        width = self.config.mlp_widths[layer]
        return range(chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, width))

    def neuron_mask(self, chunk_mask: torch.Tensor, layer: int) -> torch.Tensor:
        """Expand a ``[..., chunks]`` mask of one layer to ``[..., neurons]``."""
        width = self.config.mlp_widths[layer]
        return chunk_mask.repeat_interleave(self.chunk_size, dim=-1)[..., :width]

    def reverse_topological(self) -> list[int]:
        """ACDC visiting order: last layer first, MLP chunks before heads within a layer."""
        order: list[int] = []
        for layer in reversed(range(self.depth)):
            order += list(range(self.chunk_slices[layer].start, self.chunk_slices[layer].stop))
            order += list(range(self.head_slices[layer].start, self.head_slices[layer].stop))
        return order

    def ones(self) -> torch.Tensor:
        return torch.ones(len(self))

    def mask_from_keep(self, keep: Iterable[Component | str | int]) -> torch.Tensor:
        mask = torch.zeros(len(self))
        mask[self.ids(list(keep))] = 1.0
        return mask

    def keep_from_mask(self, mask: torch.Tensor | Sequence[float]) -> list[int]:
        mask = torch.as_tensor(mask)
        if mask.shape != (len(self),):
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected ({len(self)},)")
        return [int(i) for i in torch.nonzero(mask > 0.5).flatten()]
