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
from .errors import VitcoreError

EMBED = "embed"
SPARSE_READ = 0.06  # below this fraction of kept (or of removed) edges, a read sums over them one by one
LOGITS = "logits"


class EdgeError(VitcoreError):
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
        """Component ids that read each downstream input (a head for q/k/v, every chunk of the layer for an MLP
        input).
        """
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

    @cached_property
    def names(self) -> list[str]:
        """Every edge's name, ``upstream->input`` (32k strings for the shipped model: built on first use)."""
        nodes, inputs = self.nodes, self.inputs
        return [f"{nodes[u]}->{inputs[v]}" for u, v in zip(self.upstream_ids.tolist(), self.input_ids.tolist())]

    def edge_id(self, name: str) -> int:
        """The id of an edge ``upstream->input`` such as ``L0.H3->L2.H5.q`` or ``L8.C1->logits``."""
        try:
            up, down = name.strip().split("->")
            u = self.nodes.index(up)
            v = self.inputs.index(down)
        except ValueError:
            raise EdgeError(
                f"not an edge of this model: {name!r} (expected like 'L0.H3->L2.H5.q' or 'embed->logits')"
            ) from None
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

    def mask_from_keep(self, keep: list[str] | list[int]) -> Tensor:
        """0/1 edge mask from edge names or ids."""
        mask = torch.zeros(self.n_edges)
        ids = {name: i for i, name in enumerate(self.names)}
        try:
            mask[[k if isinstance(k, int) else ids[k] for k in keep]] = 1.0
        except KeyError as e:
            raise EdgeError(f"no edge {e.args[0]!r} in this model") from None
        return mask

    def keep_from_mask(self, mask: Tensor) -> list[int]:
        if mask.shape != (self.n_edges,):
            raise EdgeError(f"edge mask has shape {tuple(mask.shape)}, expected ({self.n_edges},)")
        return [int(i) for i in torch.nonzero(mask > 0.5).flatten()]

    def group_view(self, mask: Tensor, group: DownstreamGroup) -> Tensor:
        """``[K, inputs, upstream]`` view of a ``[K, E]`` mask's edges into ``group``."""
        return mask[:, group.start : group.stop].view(mask.shape[0], len(group.inputs), group.n_upstream)

    def from_node_mask(self, node_mask: Tensor) -> Tensor:
        """Edge mask ``[..., E]`` in which every edge carries its upstream component's mask (the embedding's edges:
        1).
        """
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
            alive_input = torch.tensor(
                [i == len(owners) - 1 or any(bool(alive[o]) for o in owned) for i, owned in enumerate(owners)]
            )


class EdgeStream:
    """One forward pass's edge intervention: the mask, the corrupt outputs, and what each node wrote.

    ``mask`` is ``[E]`` or ``[K, E]``; a forward batch of ``B`` images holds ``K`` candidates of
    ``N = B / K`` images each (candidate-major), candidate ``k`` using row ``k``. Node outputs are
    node-major, ``[n, batch, T, dim]``, so that reading an input is one matrix product per upstream
    group with no copies kept for the backward. ``corrupt`` has one entry per upstream group (the
    embedding, then each layer's heads and chunks): the outputs ``[n, 1 | N | B, T, dim]`` a removed
    edge carries instead, or None for zeros. ``written`` resumes from cached deltas
    (``out - corrupt`` as ``[n, 1 | K, N, T, dim]``) of a prefix of upstream groups, for a forward
    that starts at a later layer.
    """

    def __init__(
        self,
        space: EdgeSpace,
        mask: Tensor,
        corrupt: list[Tensor | None],
        written: list[Tensor] | None = None,
        written_sum: Tensor | None = None,
    ):
        if mask.shape[-1] != space.n_edges:
            raise EdgeError(f"edge mask has {mask.shape[-1]} entries, this model has {space.n_edges} edges")
        self.space = space
        self.mask = mask if mask.dim() == 2 else mask.unsqueeze(0)
        self.corrupt = corrupt
        self.deltas: list[Tensor] = list(written or [])
        # the sum of the deltas written so far (for reading through the kept edges), and how many it covers
        self._sum, self._summed = (written_sum, len(self.deltas)) if written_sum is not None else (None, 0)

    def delta_sum(self) -> Tensor:
        """Sum of every delta written so far, ``[1 | K, N, T, dim]``."""
        for d in self.deltas[self._summed :]:
            part = d.sum(0)
            self._sum = part if self._sum is None else self._sum + part
        self._summed = len(self.deltas)
        if self._sum is None:
            raise EdgeError("no upstream group has written to the residual stream yet")
        return self._sum

    @property
    def candidates(self) -> int:
        return self.mask.shape[0]

    def _split(self, t: Tensor, batch: int) -> Tensor:
        """``[n, b, ...]`` as ``[n, K | 1, N | 1, ...]`` for a forward batch of ``batch`` images."""
        K = self.candidates
        N = batch // K
        b = t.shape[1]
        if b == batch:
            return t.view(t.shape[0], K, N, *t.shape[2:])
        if b in (N, 1):
            return t.view(t.shape[0], 1, b, *t.shape[2:])
        raise EdgeError(f"corrupt outputs have batch {b}; the forward has {batch} images in {K} candidates")

    def write(self, out: Tensor) -> None:
        """Record the next upstream group's outputs ``[n, B, T, dim]``."""
        corrupt = self.corrupt[len(self.deltas)]
        delta = self._split(out.contiguous(), out.shape[1])
        if corrupt is not None:
            delta = delta - self._split(corrupt, out.shape[1])
        self.deltas.append(delta)

    def read(self, x: Tensor, group: DownstreamGroup, cls_only: bool = False) -> Tensor:
        """The inputs of ``group``, ``[inputs, B, T, dim]`` (``T = 1`` with ``cls_only``), from residual ``x``."""
        mask = self.space.group_view(self.mask.to(x.dtype), group)
        xs = x[:, :1] if cls_only else x
        pairs = [
            (sl, d[:, :, :, :1] if cls_only else d)
            for sl, d in zip(self.space.upstream_slices, self.deltas)
            if sl.start < group.n_upstream and sl.stop > sl.start
        ]
        if torch.is_grad_enabled() and (
            mask.requires_grad or x.requires_grad or any(d.requires_grad for _, d in pairs)
        ):
            return _ReadInputs.apply(xs, 1 - mask, [sl for sl, _ in pairs], *[d for _, d in pairs])
        return self._read_sparse(xs, mask, pairs, cls_only)

    def _read_sparse(self, x: Tensor, mask: Tensor, pairs: list[tuple[slice, Tensor]], cls_only: bool) -> Tensor:
        """The same inputs without autograd, summing only over the rarer of kept and removed edges:
        ``x_v = x - sum_u (1 - m_uv) delta_u = (x - sum_u delta_u) + sum_u m_uv delta_u``."""
        K, V = mask.shape[:2]
        kept, removed = int((mask != 0).sum()), int((mask != 1).sum())
        if not removed:
            return x.unsqueeze(0).expand(V, *x.shape)
        if min(kept, removed) > SPARSE_READ * mask.numel():
            return _dense_read(x, 1 - mask, [sl for sl, _ in pairs], [d for _, d in pairs])
        N = x.shape[0] // K
        if kept < removed:  # read what the kept edges carry on top of the fully patched input
            total = self.delta_sum()
            total = total[:, :, :1] if cls_only else total
            base, coef = x - total.expand(K, N, *x.shape[1:]).reshape(x.shape), mask
        else:
            base, coef = x, mask - 1
        out = base.view(1, K, N, *x.shape[1:]).repeat(V, 1, 1, 1, 1)  # [V, K, N, T, dim]
        flat = out.view(V * K, N, *x.shape[1:])
        for sl, d in pairs:
            c = coef[:, :, sl]
            nz = c.nonzero()
            if not len(nz):
                continue
            k, v, n = nz.unbind(1)
            rows = d[n, k if d.shape[1] > 1 else torch.zeros_like(k)]  # [nnz, N, T, dim]
            values = c[k, v, n]
            flat.index_add_(0, v * K + k, rows if bool((values == 1).all()) else rows * values.view(-1, 1, 1, 1))
        return out.view(V, *x.shape)


def _dense_read(x: Tensor, removed: Tensor, slices: list[slice], deltas: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """``x_v = x - sum_u removed_vu delta_u``: one matrix product per upstream group, skipped where nothing is removed.

    Shapes: ``x [B, T, dim]``, ``removed [K, V, U]``, each delta ``[n, 1 | K, N, T, dim]`` (``B = K N``).
    """
    K, V = removed.shape[:2]
    total = None
    for sl, d in zip(slices, deltas):
        w = removed[:, :, sl]
        if not bool(w.any()):
            continue
        n, kd = d.shape[:2]
        flat = d.reshape(n, kd, -1)
        if kd == 1:
            term = (w.reshape(K * V, n) @ flat[:, 0]).view(K, V, -1)
        else:
            term = torch.bmm(w, flat.transpose(0, 1))
        total = term if total is None else total.add_(term)
    if total is None:
        return x.unsqueeze(0).expand(V, *x.shape).clone()
    total = total.view(K, V, -1, *x.shape[1:]).transpose(0, 1)  # [V, K, N | 1, T, dim]
    return x.unsqueeze(0) - total.expand(V, K, x.shape[0] // K, *x.shape[1:]).reshape(V, *x.shape)


class _ReadInputs(torch.autograd.Function):
    """:func:`_dense_read` with a backward that keeps no copies: one matrix product per upstream group."""

    @staticmethod
    def forward(ctx, x: Tensor, removed: Tensor, slices: list[slice], *deltas: Tensor) -> Tensor:
        ctx.save_for_backward(removed, *deltas)
        ctx.slices = slices
        return _dense_read(x, removed, slices, deltas)

    @staticmethod
    def backward(ctx, grad: Tensor):
        removed, *deltas = ctx.saved_tensors
        K, V = removed.shape[:2]
        grad_x = grad.sum(0) if ctx.needs_input_grad[0] else None
        # per candidate: [K, V, N * T * dim]
        g = grad.reshape(V, K, -1).transpose(0, 1)
        grad_removed = torch.zeros_like(removed) if ctx.needs_input_grad[1] else None
        grad_deltas = []
        for i, (sl, d) in enumerate(zip(ctx.slices, deltas)):
            n, kd = d.shape[:2]
            flat = d.reshape(n, kd, -1)
            if grad_removed is not None:
                if kd == 1:
                    grad_removed[:, :, sl] = -(g.reshape(K * V, -1) @ flat[:, 0].T).view(K, V, n)
                else:
                    grad_removed[:, :, sl] = -torch.bmm(g, flat.transpose(0, 1).transpose(1, 2))
            w = removed[:, :, sl]
            if not ctx.needs_input_grad[3 + i] or not bool(w.any()):
                grad_deltas.append(None)
                continue
            if kd == 1:
                gd = -torch.einsum("kvn,kvm->nm", w, g).view(d.shape)
            else:
                gd = -torch.bmm(w.transpose(1, 2), g).transpose(0, 1).reshape(d.shape)
            grad_deltas.append(gd)
        return grad_x, grad_removed, None, *grad_deltas
