"""A pre-norm Vision Transformer whose heads and MLP neuron chunks are addressable.

Parameter names follow timm's ``VisionTransformer`` (``patch_embed.proj``, ``blocks.N.attn.qkv``,
``blocks.N.mlp.fc1``, ...), so weights convert both ways (:mod:`vitcore.timm_compat`).

One mechanism serves masking, patching and recording. For every component with mask value
``m`` and counterfactual activation ``c`` (zeros when none is given), the forward pass uses
``c + m * (a - c)`` in place of the clean activation ``a``: a head's output before the output
projection, a chunk's neurons after the GELU. ``m = 1`` is the clean model, ``m = 0`` patches
fully, and gradients with respect to ``m`` exist. The module holds no state between calls: what
one call changes or records travels in a :class:`LayerIntervention` per block.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import stochastic_depth

from .components import ComponentSpace
from .config import ViTConfig
from .edges import EdgeSpace, EdgeStream
from .lrp_rules import attention, identity_rule
from .lrp_rules import layer_norm as lrp_layer_norm

RECORDABLE = frozenset({"heads", "mlp", "resid"})


@dataclass
class Activations:
    """Recorded activations, one list entry per layer ``l`` (lists not asked for stay empty).

    - ``heads[l]``: ``[B, T, H_l, head_dim]``, each head's output before the output projection;
    - ``mlp[l]``: ``[B, T, W_l]``, the MLP neurons after the GELU;
    - ``resid[l]``: ``[B, T, dim]``, the residual stream entering layer ``l``.

    ``want`` names what a forward pass records into it.
    """

    heads: list[Tensor] = field(default_factory=list)
    mlp: list[Tensor] = field(default_factory=list)
    resid: list[Tensor] = field(default_factory=list)
    want: frozenset[str] = frozenset({"heads", "mlp"})

    def record(self, what: str, tensor: Tensor) -> None:
        if what in self.want:
            getattr(self, what).append(tensor)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Activations:
        return Activations(
            [fn(t) for t in self.heads], [fn(t) for t in self.mlp], [fn(t) for t in self.resid], self.want
        )

    def detach(self) -> Activations:
        return self.map(lambda t: t.detach())

    def repeat(self, k: int) -> Activations:
        """Tile along the batch dimension ``k`` times (candidate-major)."""
        return self.map(lambda t: t.repeat(k, *([1] * (t.dim() - 1))))

    def mean(self) -> Activations:
        """Mean over the batch, keeping a broadcastable batch dimension of 1."""
        return self.map(lambda t: t.mean(0, keepdim=True))

    @staticmethod
    def cat(parts: list[Activations]) -> Activations:
        def join(name: str) -> list[Tensor]:
            lists = [getattr(p, name) for p in parts]
            return [torch.cat([lst[i] for lst in lists]) for i in range(len(lists[0]))]

        return Activations(join("heads"), join("mlp"), join("resid"), parts[0].want)


@dataclass
class LayerIntervention:
    """What one block's forward changes or records.

    ``head_mask`` ``[B, 1, H, 1]`` with ``head_cf`` ``[B or 1, T, H, hd]``; ``neuron_mask``
    ``[B, 1, W]`` with ``mlp_cf`` ``[B or 1, T, W]``; ``record`` collects activations; ``lrp``
    applies LRP's backward rules (``True``: AttnLRP's; or a rule set named in :mod:`vitcore.lrp_rules`),
    leaving the forward values unchanged.
    ``edges`` routes every head's q, k, v input and the MLP input through an edge mask
    (:mod:`vitcore.edges`) instead of the node masks.
    """

    head_mask: Tensor | None = None
    head_cf: Tensor | None = None
    neuron_mask: Tensor | None = None
    mlp_cf: Tensor | None = None
    record: Activations | None = None
    lrp: bool | str = False
    edges: EdgeStream | None = None


def mix(clean: Tensor, mask: Tensor | None, counterfactual: Tensor | None) -> Tensor:
    """``c + m (a - c)``: the clean activation where ``m = 1``, the counterfactual (or 0) where ``m = 0``."""
    if mask is None:
        return clean
    if counterfactual is None:
        return clean * mask
    return counterfactual + mask * (clean - counterfactual)


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: ``[B, C, H, W]`` to ``[B, dim, H/p, W/p]``."""

    def __init__(self, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.proj = nn.Linear(num_heads * head_dim, dim)

    def head_outputs(self, x: Tensor, lrp: bool | str = False) -> Tensor:
        """Per-head attention outputs ``[B, T, H, hd]`` (before the output projection)."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return attention(q, k, v, lrp).transpose(1, 2)

    def head_outputs_split(self, x: Tensor, lrp: bool | str = False) -> Tensor:
        """Per-head outputs ``[B, T, H, hd]`` when every head's query, key and value read their own
        (normed) input: ``x`` is ``[3H, B, T, dim]``, queries of all heads first, then keys, then values."""
        B, T = x.shape[1:3]
        w = self.qkv.weight.view(3, self.num_heads, self.head_dim, -1)
        qkv = torch.einsum("shbtd,shed->sbhte", x.view(3, self.num_heads, B, T, -1), w)
        q, k, v = qkv + self.qkv.bias.view(3, 1, self.num_heads, 1, self.head_dim)
        return attention(q, k, v, lrp).transpose(1, 2)

    def head_residuals(self, heads: Tensor) -> Tensor:
        """What each head writes into the residual stream, ``[H, B, T, dim]`` (the shared bias excluded)."""
        return torch.einsum("bthe,dhe->hbtd", heads, self.proj.weight.view(-1, self.num_heads, self.head_dim))

    def forward(self, x: Tensor, iv: LayerIntervention | None = None) -> Tensor:
        if not self.num_heads:  # every head pruned: the output projection's bias is all that remains
            if iv is not None and iv.record is not None:
                iv.record.record("heads", x.new_zeros(*x.shape[:2], 0, self.head_dim))
            return self.proj.bias
        heads = self.head_outputs(x, iv.lrp if iv is not None else False)
        if iv is not None:
            if iv.record is not None:
                iv.record.record("heads", heads)
            heads = mix(heads, iv.head_mask, iv.head_cf)
        return self.proj(heads.flatten(2))


class MLP(nn.Module):
    def __init__(self, dim: int, width: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, width)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(width, dim)

    def forward(self, x: Tensor, iv: LayerIntervention | None = None) -> Tensor:
        if not self.fc1.out_features:  # every chunk pruned
            if iv is not None and iv.record is not None:
                iv.record.record("mlp", x.new_zeros(*x.shape[:2], 0))
            return self.fc2.bias
        act = identity_rule(self.act, self.fc1(x)) if iv is not None and iv.lrp else self.act(self.fc1(x))
        if iv is not None:
            if iv.record is not None:
                iv.record.record("mlp", act)
            act = mix(act, iv.neuron_mask, iv.mlp_cf)
        return self.fc2(act)

    def chunk_residuals(self, act: Tensor, chunk_size: int) -> Tensor:
        """What each neuron chunk writes into the residual stream, ``[C, B, T, dim]`` (the bias excluded)."""
        width = act.shape[-1]
        chunks = -(-width // chunk_size)
        pad = chunks * chunk_size - width
        act = F.pad(act, (0, pad)).view(*act.shape[:2], chunks, chunk_size)
        weight = F.pad(self.fc2.weight, (0, pad)).view(-1, chunks, chunk_size)
        return torch.einsum("btce,dce->cbtd", act, weight)


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig, layer: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        with warnings.catch_warnings():  # empty (fully pruned) layers have zero-element weights
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.attn = Attention(cfg.dim, cfg.heads[layer], cfg.head_dim)
            self.mlp = MLP(cfg.dim, cfg.mlp_widths[layer])
        self.drop_path = cfg.drop_path * layer / max(cfg.depth - 1, 1)
        self.layer, self.chunk_size = layer, cfg.chunk_size

    def forward(self, x: Tensor, iv: LayerIntervention | None = None) -> Tensor:
        lrp = iv.lrp if iv is not None else False
        if iv is not None and iv.edges is not None:
            return self._forward_edges(x, iv.edges, lrp)
        return self.forward_mlp(self.forward_attn(x, iv), iv)

    def forward_attn(self, x: Tensor, iv: LayerIntervention | None = None) -> Tensor:
        """The residual after this block's attention sublayer."""
        return self._add(x, self.attn(self._norm(self.norm1, x, iv.lrp if iv is not None else False), iv))

    def forward_mlp(self, x: Tensor, iv: LayerIntervention | None = None) -> Tensor:
        """The residual after this block's MLP sublayer, from the residual after its attention."""
        return self._add(x, self.mlp(self._norm(self.norm2, x, iv.lrp if iv is not None else False), iv))

    @staticmethod
    def _norm(norm: nn.LayerNorm, x: Tensor, lrp: bool | str) -> Tensor:
        return lrp_layer_norm(norm, x) if lrp else norm(x)

    def _forward_edges(self, x: Tensor, edges: EdgeStream, lrp: bool | str = False) -> Tensor:
        """The block with each head's q, k, v and the MLP reading their own inputs through the edge mask."""
        B, T, dim = x.shape
        if self.attn.num_heads:
            heads = self.attn.head_outputs_split(
                self._norm(self.norm1, edges.read(x, edges.space.attn_group(self.layer)), lrp), lrp
            )
            out = self.attn.head_residuals(heads)
            edges.write(out)
            x = x + out.sum(0)
        else:
            edges.write(x.new_zeros(0, B, T, dim))
        x = x + self.attn.proj.bias
        if self.mlp.fc1.out_features:
            pre = self.mlp.fc1(self._norm(self.norm2, edges.read(x, edges.space.mlp_group(self.layer))[0], lrp))
            act = identity_rule(self.mlp.act, pre) if lrp else self.mlp.act(pre)
            out = self.mlp.chunk_residuals(act, self.chunk_size)
            edges.write(out)
            x = x + out.sum(0)
        else:
            edges.write(x.new_zeros(0, B, T, dim))
        return x + self.mlp.fc2.bias

    def _add(self, x: Tensor, branch: Tensor) -> Tensor:
        # an emptied branch is only its bias ([dim]), the same for every sample: no stochastic depth
        if self.training and self.drop_path > 0 and branch.dim() > 1:
            branch = stochastic_depth(branch, self.drop_path, "row", True)
        return x + branch


class VisionTransformer(nn.Module):
    """Pre-norm ViT with CLS token, learned positions and per-layer head counts / MLP widths.

    Call ``model(x, mask=..., counterfactual=...)`` for logits. ``mask`` is a float tensor in
    canonical component order (see :mod:`vitcore.components`), shape ``[n]`` or ``[B, n]``.
    ``counterfactual`` is an :class:`Activations` whose batch is ``B`` or 1; ``None`` means zeros.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.components = ComponentSpace(config)
        cfg = config
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self._init_weights()

    @classmethod
    def from_state_dict(cls, config: ViTConfig, state: dict[str, Tensor]) -> VisionTransformer:
        """A model that takes ``state``'s tensors as its parameters, built without initialising weights."""
        with torch.device("meta"):
            model = cls(config)
        model.load_state_dict(state, strict=True, assign=True)
        return model

    @functools.cached_property
    def edges(self) -> EdgeSpace:
        """The edges between this model's components, built on first use (most models, pruned copies among
        them, are never asked for edges)."""
        return EdgeSpace(self.components)

    def layers(self) -> list[Block]:
        """The blocks, typed as such (``self.blocks`` is an ``nn.ModuleList``)."""
        return [cast(Block, b) for b in self.blocks]

    def _init_weights(self) -> None:
        if self.pos_embed.is_meta:
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if m.weight.numel():
                    nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def embed(self, x: Tensor) -> Tensor:
        """Residual stream entering layer 0, ``[B, T, dim]``.

        Images of another size than ``config.image_size`` (a multiple of the patch size) get the
        position embeddings resampled bicubically to their patch grid (low-resolution training).
        """
        x = self.patch_embed(x)
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.positions(grid)

    def positions(self, grid: tuple[int, int] | torch.Size) -> Tensor:
        """Position embeddings ``[1, 1 + gh * gw, dim]`` for a patch grid of ``grid``."""
        side = self.config.image_size // self.config.patch_size
        if tuple(grid) == (side, side):
            return self.pos_embed
        patches = self.pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=tuple(grid), mode="bicubic", align_corners=False, antialias=True)
        return torch.cat([self.pos_embed[:, :1], patches.flatten(2).transpose(1, 2)], dim=1)

    def unembed(self, resid: Tensor, lrp: bool | str = False, edges: EdgeStream | None = None) -> Tensor:
        cls = edges.read(resid, edges.space.logits_group, cls_only=True)[0, :, 0] if edges is not None else resid[:, 0]
        return self.head(lrp_layer_norm(self.norm, cls) if lrp else self.norm(cls))

    def _layer_intervention(
        self,
        layer: int,
        mask: Tensor | None,
        counterfactual: Activations | None,
        record: Activations | None,
        lrp: bool | str,
        edges: EdgeStream | None = None,
    ) -> LayerIntervention | None:
        if mask is None and record is None and not lrp and edges is None:
            return None
        iv = LayerIntervention(record=record, lrp=lrp, edges=edges)
        if mask is not None:
            space = self.components
            iv.head_mask = mask[:, space.head_slices[layer]][:, None, :, None]
            iv.neuron_mask = space.neuron_mask(mask[:, space.chunk_slices[layer]], layer)[:, None, :]
            if counterfactual is not None:
                iv.head_cf, iv.mlp_cf = counterfactual.heads[layer], counterfactual.mlp[layer]
        return iv

    def forward_from(
        self,
        resid: Tensor,
        start_layer: int = 0,
        mask: Tensor | None = None,
        counterfactual: Activations | None = None,
        record: Activations | None = None,
        lrp: bool | str = False,
        edges: EdgeStream | None = None,
    ) -> Tensor:
        """Run layers ``start_layer..depth-1`` on a residual stream and return logits.

        ``lrp=True`` gives the same logits with AttnLRP's modified backward; ``lrp`` may also name a rule
        set of :mod:`vitcore.lrp_rules` (``"cp-lrp"``, RelP's).
        ``edges`` patches edges instead of nodes (node masks, counterfactual and recording do not apply);
        a stream that has no cached deltas records ``resid`` as the embedding's output.
        """
        if edges is not None:
            if mask is not None or record is not None:
                raise ValueError("an edge forward takes no node mask or recording")
            if not edges.deltas:
                if start_layer:
                    raise ValueError(
                        "an edge forward from a later layer needs the cached outputs of the layers before it"
                    )
                edges.write(resid.unsqueeze(0))
            for layer in range(start_layer, len(self.blocks)):
                resid = self.blocks[layer](resid, LayerIntervention(edges=edges, lrp=lrp))
            return self.unembed(resid, lrp, edges=edges)
        if mask is not None:
            mask = mask.to(resid.dtype)
            if mask.shape[-1] != len(self.components):
                raise ValueError(f"mask has {mask.shape[-1]} entries, this model has {len(self.components)} components")
            mask = mask if mask.dim() == 2 else mask.unsqueeze(0)
        for layer in range(start_layer, len(self.blocks)):
            if record is not None:
                record.record("resid", resid)
            resid = self.blocks[layer](resid, self._layer_intervention(layer, mask, counterfactual, record, lrp))
        return self.unembed(resid, lrp)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        counterfactual: Activations | None = None,
        edges: EdgeStream | None = None,
    ) -> Tensor:
        return self.forward_from(self.embed(x), 0, mask, counterfactual, edges=edges)

    def run_with_cache(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        counterfactual: Activations | None = None,
        resid: bool = False,
        components: bool = True,
    ) -> tuple[Tensor, Activations]:
        """Logits plus what was asked for: every component's activations (``components``) and the residuals
        (``resid``).
        """
        want = (RECORDABLE if resid else RECORDABLE - {"resid"}) - (set() if components else {"heads", "mlp"})
        record = Activations(want=frozenset(want))
        logits = self.forward_from(self.embed(x), 0, mask, counterfactual, record)
        return logits, record

    def clone(self) -> VisionTransformer:
        """An independent copy (for per-session edits of a shared model)."""
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        return VisionTransformer.from_state_dict(self.config, state).train(self.training)
