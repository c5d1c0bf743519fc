"""Edges between components: the residual stream taken apart into what each node wrote.

*Upstream nodes* write into the residual stream: the embedding and every component (a head, an
MLP chunk), in canonical order. *Downstream inputs* read from it: each head's query, key and
value input, each layer's MLP input and the logits (final norm and classifier). An edge
``u -> v`` exists when ``u`` writes before ``v`` reads, so every downstream input reads a prefix
of the upstream nodes. With an edge mask ``m`` (1 = kept), input ``v`` reads

    x_v = x - sum_u (1 - m_uv) (out_u - corrupt_u)

where ``x`` is the residual stream of the current run and ``out_u`` what ``u`` wrote in it.
``m = 1`` everywhere is the clean model; a node mask is the special case in which all of a
node's outgoing edges share its value.

Flat edge order: downstream groups in topological order (layer 0 attention, layer 0 MLP, ...,
logits); within a group a ``[inputs, upstream]`` matrix flattened row-major. Attention inputs
are ordered query of every head, then key, then value (the layout of the fused QKV weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from .components import ComponentSpace

EMBED = "embed"
LOGITS = "logits"


class EdgeError(ValueError):
    """An edge name or mask that does not fit the model."""


@dataclass(frozen=True)
class DownstreamGroup:
    """The inputs of one attention layer, one MLP or the logits, and the edges into them."""

    name: str  # "L3.attn", "L3.mlp" or "logits"
    layer: int  # the layer it belongs to (depth for the logits)
    inputs: tuple[str, ...]  # "L3.H0.q", ..., "L3.mlp", "logits"
    n_upstream: int  # it reads upstream nodes 0 .. n_upstream - 1
    start: int  # offset of its first edge in the flat edge vector

    @property
    def size(self) -> int:
        return len(self.inputs) * self.n_upstream

    @property
    def stop(self) -> int:
        return self.start + self.size


class EdgeSpace:
    """All edges of one architecture: names, ids, groups, and conversions to and from node masks."""

    def __init__(self, components: ComponentSpace):
        self.components = components
        self.nodes: list[str] = [EMBED] + components.names
        groups: list[DownstreamGroup] = []
        start = 0
        # upstream groups: what a forward writes at once (the embedding, a layer's heads, its chunks)
        self.upstream_slices: list[slice] = [slice(0, 1)]
        for layer in range(components.depth):
            hs, cs = components.head_slices[layer], components.chunk_slices[layer]
            heads = components.heads_per_layer[layer]
            inputs = tuple(f"L{layer}.H{h}.{s}" for s in "qkv" for h in range(heads))
            groups.append(DownstreamGroup(f"L{layer}.attn", layer, inputs, 1 + hs.start, start))
            start = groups[-1].stop
            groups.append(DownstreamGroup(f"L{layer}.mlp", layer, (f"L{layer}.mlp",), 1 + cs.start, start))
            start = groups[-1].stop
            self.upstream_slices += [slice(1 + hs.start, 1 + hs.stop), slice(1 + cs.start, 1 + cs.stop)]
        groups.append(DownstreamGroup(LOGITS, components.depth, (LOGITS,), 1 + len(components), start))
        self.groups = groups
        self.n_edges = groups[-1].stop

    def __len__(self) -> int:
        return self.n_edges

    def attn_group(self, layer: int) -> DownstreamGroup:
        return self.groups[2 * layer]

    def mlp_group(self, layer: int) -> DownstreamGroup:
        return self.groups[2 * layer + 1]

    @property
    def logits_group(self) -> DownstreamGroup:
        return self.groups[-1]

    @cached_property
    def upstream_ids(self) -> Tensor:
        """Upstream node index of every edge (0 = embedding, 1 + component id otherwise)."""
        return torch.cat([torch.arange(g.n_upstream).repeat(len(g.inputs)) for g in self.groups])

    @cached_property
    def input_ids(self) -> Tensor:
        """Index into :attr:`inputs` of every edge's downstream input."""
        out, offset = [], 0
        for g in self.groups:
            out.append(torch.arange(offset, offset + len(g.inputs)).repeat_interleave(g.n_upstream))
            offset += len(g.inputs)
        return torch.cat(out)

    @cached_property
    def inputs(self) -> list[str]:
        return [name for g in self.groups for name in g.inputs]

    @cached_property
    def input_owner(self) -> list[list[int]]:
        """Component ids that read each downstream input (a head for q/k/v, every chunk of the layer for an MLP input)."""
        space, owners = self.components, []
        for g in self.groups:
            for name in g.inputs:
                if name == LOGITS:
                    owners.append([])
                elif name.endswith(".mlp"):
                    s = space.chunk_slices[g.layer]
                    owners.append(list(range(s.start, s.stop)))
                else:
                    owners.append([space.id(name.rsplit(".", 1)[0])])
        return owners

    def names(self) -> list[str]:
        """Every edge's name, ``upstream->input`` (32k strings for the shipped model: built on demand)."""
        nodes, inputs = self.nodes, self.inputs
        return [f"{nodes[u]}->{inputs[v]}" for u, v in zip(self.upstream_ids.tolist(), self.input_ids.tolist())]

    def edge_id(self, name: str) -> int:
        """The id of an edge ``upstream->input`` such as ``L0.H3->L2.H5.q`` or ``L8.C1->logits``."""
        try:
            up, down = name.strip().split("->")
            u = self.nodes.index(up)
            v = self.inputs.index(down)
        except ValueError:
            raise EdgeError(f"not an edge of this model: {name!r} (expected like 'L0.H3->L2.H5.q' or 'embed->logits')") from None
        offset = 0
        for g in self.groups:
            if v < offset + len(g.inputs):
                if u >= g.n_upstream:
                    raise EdgeError(f"no edge {name!r}: {up} writes after {down} reads")
                return g.start + (v - offset) * g.n_upstream + u
            offset += len(g.inputs)
        raise EdgeError(f"not an edge of this model: {name!r}")

    def ones(self) -> Tensor:
        return torch.ones(self.n_edges)

    def group_view(self, mask: Tensor, group: DownstreamGroup) -> Tensor:
        """``[K, inputs, upstream]`` view of a ``[K, E]`` mask's edges into ``group``."""
        return mask[:, group.start : group.stop].view(mask.shape[0], len(group.inputs), group.n_upstream)

    def from_node_mask(self, node_mask: Tensor) -> Tensor:
        """Edge mask ``[..., E]`` in which every edge carries its upstream component's mask (the embedding's edges: 1)."""
        upstream = torch.cat([torch.ones(*node_mask.shape[:-1], 1, dtype=node_mask.dtype), node_mask], dim=-1)
        return upstream[..., self.upstream_ids]

    def outgoing(self, node: str | int) -> Tensor:
        """Ids of the edges leaving an upstream node (a name, or an index into :attr:`nodes`)."""
        u = self.nodes.index(node) if isinstance(node, str) else node
        return torch.nonzero(self.upstream_ids == u).flatten()

    def incoming_of_component(self, component: int) -> Tensor:
        """Ids of the edges into the inputs a component reads (its q, k, v, or its layer's MLP input)."""
        inputs = [i for i, owners in enumerate(self.input_owner) if component in owners]
        return torch.nonzero(torch.isin(self.input_ids, torch.tensor(inputs))).flatten()

    def alive_components(self, edge_mask: Tensor) -> Tensor:
        """0/1 component mask: components with a kept path to the logits through kept edges.

        A component whose every outgoing edge is removed (or leads only to components that are
        themselves dead) contributes nothing to the circuit's output and can be cut out physically.
        """
        kept = edge_mask > 0.5
        owners = self.input_owner
        alive_input = torch.zeros(len(self.inputs), dtype=torch.bool)
        alive_input[-1] = True  # the logits
        alive = torch.zeros(len(self.components), dtype=torch.bool)
        while True:  # a fixed point: at most one step per downstream group
            writers = self.upstream_ids[kept & alive_input[self.input_ids]]
            now = torch.zeros_like(alive)
            now[writers[writers > 0] - 1] = True
            if torch.equal(now, alive):
                return alive.float()
            alive = now
            alive_input = torch.tensor([i == len(owners) - 1 or any(bool(alive[o]) for o in owned) for i, owned in enumerate(owners)])


class EdgeStream:
    """One forward pass's edge intervention: the mask, the corrupt outputs, and what each node wrote.

    ``mask`` is ``[E]`` or ``[K, E]``; a forward batch of ``B`` images holds ``K`` candidates of
    ``N = B / K`` images each (candidate-major), candidate ``k`` using row ``k``. ``corrupt`` has
    one entry per upstream group (the embedding, then each layer's heads and chunks): the outputs
    ``[1 | N | B, T, n, dim]`` a removed edge carries instead, or None for zeros. ``written``
    resumes from cached deltas (``out - corrupt`` as ``[1 | K, N, T, n, dim]``) of a prefix of
    upstream groups, for a forward that starts at a later layer.
    """

    def __init__(self, space: EdgeSpace, mask: Tensor, corrupt: list[Tensor | None], written: list[Tensor] | None = None):
        if mask.shape[-1] != space.n_edges:
            raise EdgeError(f"edge mask has {mask.shape[-1]} entries, this model has {space.n_edges} edges")
        self.space = space
        self.mask = mask if mask.dim() == 2 else mask.unsqueeze(0)
        self.corrupt = corrupt
        self.deltas: list[Tensor] = list(written or [])

    @property
    def candidates(self) -> int:
        return self.mask.shape[0]

    def _split(self, t: Tensor, batch: int) -> Tensor:
        """``[b, ...]`` as ``[K | 1, N | 1, ...]`` for a forward batch of ``batch`` images."""
        K = self.candidates
        N = batch // K
        if t.shape[0] == batch:
            return t.view(K, N, *t.shape[1:])
        if t.shape[0] in (N, 1):
            return t.view(1, t.shape[0], *t.shape[1:])
        raise EdgeError(f"corrupt outputs have batch {t.shape[0]}; the forward has {batch} images in {K} candidates")

    def write(self, out: Tensor) -> None:
        """Record the next upstream group's outputs ``[B, T, n, dim]``."""
        corrupt = self.corrupt[len(self.deltas)]
        delta = self._split(out, out.shape[0])
        if corrupt is not None:
            delta = delta - self._split(corrupt, out.shape[0])
        self.deltas.append(delta)

    def read(self, x: Tensor, group: DownstreamGroup, cls_only: bool = False) -> Tensor:
        """The inputs of ``group``, ``[B, T, inputs, dim]`` (``T = 1`` with ``cls_only``), from residual ``x``."""
        removed = 1 - self.space.group_view(self.mask.to(x.dtype), group)
        xs = x[:, :1] if cls_only else x
        total = None
        for sl, delta in zip(self.space.upstream_slices, self.deltas):
            if sl.start >= group.n_upstream or sl.stop == sl.start:
                continue
            w = removed[:, :, sl]
            if not w.requires_grad and not bool(w.any()):
                continue
            term = torch.einsum("kvn,kmtnd->kmtvd", w, delta[:, :, :1] if cls_only else delta)
            total = term if total is None else total + term
        if total is None:
            return xs.unsqueeze(2).expand(-1, -1, len(group.inputs), -1)
        if total.shape[0] * total.shape[1] != x.shape[0]:  # a shared mask over a batch cached with one candidate
            total = total.expand(self.candidates, x.shape[0] // self.candidates, *total.shape[2:])
        return xs.unsqueeze(2) - total.reshape(x.shape[0], xs.shape[1], len(group.inputs), -1)
