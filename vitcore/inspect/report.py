"""One component's report: what it attends to or where it fires, what it writes to the logits, where removing it
matters. Used by ``python -m vitcore inspect`` (JSON and PNG) and by the app's component view."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..components import Component
from ..data import ImageSet, normalize
from ..model import VisionTransformer
from .attention import attention_patterns, mean_attention_distance, patch_grid
from .logits import direct_logit_attribution

SHOWN = 8  # images per view
TOP_CLASSES = 10


class InspectError(ValueError):
    """A component that does not exist in this model, or was pruned away."""


def check_component(model: VisionTransformer, name: str) -> Component:
    """The component ``name`` names, or one clear error."""
    try:
        component = Component.parse(name)
        model.components.id(component)
    except (KeyError, ValueError) as e:
        raise InspectError(f"{name}: {str(e).strip(chr(39))}") from None
    return component


@torch.no_grad()
def removal_effects(
    model: VisionTransformer, pixels: Tensor, labels: Tensor, component: Component
) -> dict[str, Tensor]:
    """Per image: true-class probability and top-1 with and without the component (zero ablation, as pruning)."""
    mask = model.components.ones()
    mask[model.components.id(component)] = 0
    full, without = model(pixels).softmax(-1), model(pixels, mask=mask).softmax(-1)
    rows = torch.arange(len(labels))
    return {
        "p_with": full[rows, labels],
        "p_without": without[rows, labels],
        "pred_with": full.argmax(-1),
        "pred_without": without.argmax(-1),
    }


def removal_summary(model: VisionTransformer, data: ImageSet, classes: list[str], name: str) -> dict[str, float]:
    """On the eval images of ``classes``: on how many removing ``name`` (zero, as pruning) lowers the true class's
    probability, and the mean change of that probability."""
    subset = data.of_classes(classes)
    if len(subset) == 0:
        raise InspectError(f"no images of {', '.join(classes)} in this data set")
    pixels = normalize(subset.images, model.config)
    return _summary(removal_effects(model, pixels, subset.labels, check_component(model, name)))


def _summary(effects: dict[str, Tensor]) -> dict[str, float]:
    change = effects["p_without"] - effects["p_with"]
    return {"lowered": int((change < 0).sum()), "images": len(change), "mean_change": round(float(change.mean()), 4)}


def component_to_open(
    model: VisionTransformer,
    data: ImageSet,
    classes: list[str],
    names: list[str],
    scores: list[float],
    kind: str = "head",
    tries: int = 8,
) -> str | None:
    """The highest-scored component of ``kind`` ("head" or "chunk") among ``names`` whose removal lowers the true
    class's probability on most of the eval images of ``classes`` (of the ``tries`` highest-scored; None if none)."""
    marker = ".H" if kind == "head" else ".C"
    ranked = sorted((s, n) for n, s in zip(names, scores) if marker in n)[::-1][:tries]
    for _, name in ranked:
        summary = removal_summary(model, data, classes, name)
        if summary["lowered"] * 2 > summary["images"]:
            return name
    return None


def overlay(image: Tensor, weights: Tensor, scale: int = 4) -> Image.Image:
    """An image ``[3, H, W]`` uint8 with a patch-grid heat map ``[g, g]`` over it, enlarged ``scale`` times."""
    size = image.shape[-1] * scale
    base = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((size, size), Image.Resampling.NEAREST)
    heat = (weights / weights.max().clamp_min(1e-12) * 255).to(torch.uint8).numpy()
    red = Image.fromarray(heat).resize((size, size), Image.Resampling.NEAREST)
    tint = Image.merge("RGB", (red, Image.new("L", red.size), Image.new("L", red.size)))
    return Image.blend(base, tint, 0.5)


def outlined(image: Image.Image, row: int, col: int, cell: int) -> Image.Image:
    """A copy of ``image`` with the patch at (``row``, ``col``) of a grid of ``cell``-pixel squares outlined."""
    from PIL import ImageDraw

    out = image.copy()
    ImageDraw.Draw(out).rectangle(
        [col * cell, row * cell, (col + 1) * cell - 1, (row + 1) * cell - 1], outline=(255, 255, 0), width=2
    )
    return out


def component_report(
    model: VisionTransformer, data: ImageSet, classes: list[str], name: str
) -> tuple[dict[str, Any], Image.Image]:
    """The report of component ``name`` on the images of ``classes``, and a strip of its views (PNG)."""
    component = check_component(model, name)
    subset = data.of_classes(classes)
    if len(subset) == 0:
        raise InspectError(f"no images of {', '.join(classes)} in this data set")
    pixels = normalize(subset.images, model.config)
    effects = removal_effects(model, pixels, subset.labels, component)
    drop = effects["p_with"] - effects["p_without"]  # > 0: the component helps the true class
    order = torch.argsort(drop.abs(), descending=True)[:SHOWN]
    names = data.names
    report: dict[str, Any] = {
        "component": component.name,
        "classes": classes,
        "images": len(subset),
        "convention": "direct logit attribution through the final LayerNorm with its scale frozen at the clean run",
        "removal": [
            {
                "file": subset.files[i],
                "true": names[int(subset.labels[i])],
                "p_true_with": round(float(effects["p_with"][i]), 4),
                "p_true_without": round(float(effects["p_without"][i]), 4),
                "predicted_with": names[int(effects["pred_with"][i])],
                "predicted_without": names[int(effects["pred_without"][i])],
            }
            for i in order.tolist()
        ],
        "removal_summary": _summary(effects),
    }
    dla = direct_logit_attribution(model, pixels)
    layer_part = dla.heads if component.kind == "head" else dla.chunks
    mean = layer_part[component.layer][:, component.index].mean(0)  # [classes]
    up, down = torch.argsort(mean, descending=True), torch.argsort(mean)
    report["pushes_up"] = [{"class": names[i], "logit": round(float(mean[i]), 4)} for i in up[:TOP_CLASSES].tolist()]
    report["pushes_down"] = [
        {"class": names[i], "logit": round(float(mean[i]), 4)} for i in down[:TOP_CLASSES].tolist()
    ]
    tiles: list[Image.Image] = []
    if component.kind == "head":
        pattern = attention_patterns(model, pixels[order], component.layer)[:, component.index]  # [k, T, T]
        g = patch_grid(model)
        cls_to_patches = pattern[:, 0, 1:].reshape(-1, g, g)
        tiles = [overlay(subset.images[i], w) for i, w in zip(order.tolist(), cls_to_patches)]
        report["class_token_attention"] = [[round(float(v), 5) for v in w.flatten()] for w in cls_to_patches]
        report["mean_attention_distance_px"] = [
            [None if v != v else round(float(v), 3) for v in row] for row in mean_attention_distance(model, pixels[:64])
        ]
    else:
        act = _chunk_activation(model, pixels, component)  # [N, T]: mean over the chunk's neurons
        patch_act = act[:, 1:]
        top = torch.argsort(patch_act.max(1).values, descending=True)[:SHOWN]
        g = patch_grid(model)
        tiles = [overlay(subset.images[i], patch_act[i].clamp_min(0).reshape(g, g)) for i in top.tolist()]
        report["most_active"] = [
            {
                "file": subset.files[i],
                "patch": int(patch_act[i].argmax()),
                "activation": round(float(patch_act[i].max()), 4),
            }
            for i in top.tolist()
        ]
    return report, side_by_side(tiles)


def side_by_side(tiles: list[Image.Image]) -> Image.Image:
    """The tiles in one row, left to right (one white pixel when there are none)."""
    strip = Image.new("RGB", (sum(t.width for t in tiles) or 1, max((t.height for t in tiles), default=1)), "white")
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width
    return strip


@torch.no_grad()
def _chunk_activation(model: VisionTransformer, pixels: Tensor, component: Component) -> Tensor:
    """The mean activation of the chunk's neurons per token, ``[N, T]``."""
    _, acts = model.run_with_cache(pixels)
    size = model.config.chunk_size
    mlp = acts.mlp[component.layer]
    return mlp[..., component.index * size : (component.index + 1) * size].mean(-1)
