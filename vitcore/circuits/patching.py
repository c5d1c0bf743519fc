"""Patched forwards over the task's images, for node masks (one value per component) or edge masks.

Methods that only need "logits of these images under this mask" (EAP, EAP-IG, learned masks) take
a :class:`Patcher` and so work at both granularities; ACDC uses the layer caches directly.
"""

from __future__ import annotations

from torch import Tensor

from ..edges import EdgeStream
from ..model import Activations, VisionTransformer
from .corruptions import corrupt_outputs
from .task import Task, TaskError

GRANULARITIES = ("node", "edge")

Rows = slice | Tensor


class Patcher:
    """Logits of task images under a mask over components (``node``) or edges (``edge``).

    ``cf`` is the counterfactual the removed parts carry (None: zeros); an edge patcher needs it
    built with ``counterfactual(..., embed=True)``. ``lrp`` names a rule set of :mod:`vitcore.lrp_rules`
    (``True``: AttnLRP's) to give the same logits with LRP's modified backward, for RelP.
    """

    def __init__(
        self,
        model: VisionTransformer,
        task: Task,
        cf: Activations | None,
        granularity: str = "node",
        lrp: bool | str = False,
    ):
        if granularity not in GRANULARITIES:
            raise TaskError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
        self.model, self.task, self.cf, self.granularity, self.lrp = model, task, cf, granularity, lrp
        self.corrupt = corrupt_outputs(model, cf) if granularity == "edge" else None
        self.size = len(model.edges) if granularity == "edge" else len(model.components)

    def logits(self, rows: Rows, mask: Tensor) -> Tensor:
        """Logits of images ``rows`` with ``mask``: ``[size]`` for all of them, or ``[k * b, size]``, one row
        per image of the ``b`` rows tiled ``k`` times (candidate-major), as captum expands its inputs."""
        x = self.task.inputs[rows]
        b = x.shape[0]
        k = 1 if mask.dim() == 1 else mask.shape[0] // b
        if mask.dim() == 2 and mask.shape[0] != k * b:
            raise TaskError(f"{mask.shape[0]} mask rows for {b} images")
        x = x.repeat(k, 1, 1, 1) if k > 1 else x
        if self.granularity == "node":
            cf = None if self.cf is None else self.cf.map(lambda t: t[rows])
            cf = cf if cf is None or k == 1 else cf.repeat(k)
            if self.lrp:
                return self.model.forward_from(self.model.embed(x), 0, mask, cf, lrp=self.lrp)
            return self.model(x, mask=mask, counterfactual=cf)
        assert self.corrupt is not None  # set for every edge-level patcher
        if mask.dim() == 2 and _blocks_repeat(mask, k):  # captum's rows: one mask per step, repeated per image
            mask = mask.view(k, b, -1).mean(1)  # the same values; the gradient spread evenly over the repeats
            k_corrupt = 1
        else:
            k_corrupt = k
        corrupt = [None if c is None else _tile(c if c.shape[1] == 1 else c[:, rows], k_corrupt) for c in self.corrupt]
        stream = EdgeStream(self.model.edges, mask, corrupt)
        if self.lrp:
            return self.model.forward_from(self.model.embed(x), 0, lrp=self.lrp, edges=stream)
        return self.model(x, edges=stream)


def _tile(t: Tensor, k: int) -> Tensor:
    """Node-major outputs ``[n, b, ...]`` tiled to ``[n, k * b, ...]`` (candidate-major)."""
    return t if k == 1 or t.shape[1] == 1 else t.repeat(1, k, *([1] * (t.dim() - 2)))


def _blocks_repeat(mask: Tensor, k: int) -> bool:
    """True when each of the ``k`` blocks of rows of ``mask`` repeats one row."""
    blocks = mask.detach().view(k, mask.shape[0] // k, -1)
    return bool((blocks == blocks[:, :1]).all())
