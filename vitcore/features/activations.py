"""Residual-stream activations for SAEs: read them at chosen layers, stream them over a data set in bounded
memory, and run the model with an SAE's reconstruction (or an edit of its latents) written back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..data import ImageSet, normalize
from ..model import VisionTransformer
from .sae import TopKSAE


def residuals(model: VisionTransformer, x: Tensor, layers: Sequence[int]) -> dict[int, Tensor]:
    """The residual stream entering each block in ``layers``, ``{layer: [B, T, dim]}``, for inputs ``x``."""
    last = max(layers)
    if last >= len(model.blocks) or min(layers) < 0:
        raise ValueError(f"layers {list(layers)} outside the model's 0..{len(model.blocks) - 1}")
    out: dict[int, Tensor] = {}
    resid = model.embed(x)
    for layer, block in enumerate(model.layers()[: last + 1]):
        if layer in layers:
            out[layer] = resid
        if layer < last:
            resid = block(resid)
    return out


def token_chunks(
    model: VisionTransformer,
    data: ImageSet,
    layers: Sequence[int],
    order: Tensor,
    chunk_images: int,
    batch_size: int = 256,
    start_chunk: int = 0,
) -> Iterator[tuple[int, dict[int, Tensor], Tensor]]:
    """``(chunk index, {layer: [images * tokens, dim]}, positions)`` for consecutive chunks of ``chunk_images``
    images taken in ``order``, every token of each image, shuffled within the chunk; ``positions`` holds each
    row's token position (0: the class token). Only one chunk is held at a time.
    """
    n_chunks = (len(order) + chunk_images - 1) // chunk_images
    generator = torch.Generator().manual_seed(len(order))
    for chunk in range(n_chunks):
        shuffle = torch.randperm(chunk_images * model.config.num_tokens, generator=generator)
        if chunk < start_chunk:
            continue  # the generator still advances, so a resumed run sees the same shuffles
        index = order[chunk * chunk_images : (chunk + 1) * chunk_images]
        parts: dict[int, list[Tensor]] = {layer: [] for layer in layers}
        with torch.no_grad():
            for i in range(0, len(index), batch_size):
                x = normalize(data.images[index[i : i + batch_size]], model.config)
                for layer, resid in residuals(model, x, layers).items():
                    parts[layer].append(resid.reshape(-1, resid.shape[-1]))
        tokens = {layer: torch.cat(p) for layer, p in parts.items()}
        n = next(iter(tokens.values())).shape[0]
        keep = shuffle[shuffle < n]
        yield chunk, {layer: t[keep] for layer, t in tokens.items()}, keep % model.config.num_tokens


LatentEdit = Callable[[Tensor], Tensor]


def through_sae(sae: TopKSAE, resid: Tensor, edit: LatentEdit | None = None, keep_error: bool = True) -> Tensor:
    """The residual ``resid`` passed through ``sae``.

    ``keep_error=False`` gives the SAE's reconstruction (splicing: what the SAE misses is lost).
    ``keep_error=True`` keeps the residual and adds only what ``edit`` changes in the latents
    (``(z' - z) W_dec``), so without an edit the residual is unchanged.
    """
    z = sae.encode(resid)
    z_new = edit(z) if edit is not None else z
    if keep_error:
        return resid + (sae.decode(z_new) - sae.decode(z))
    return sae.decode(z_new)


def forward_with_sae(
    model: VisionTransformer,
    x: Tensor,
    sae: TopKSAE,
    layer: int,
    edit: LatentEdit | None = None,
    keep_error: bool = True,
) -> Tensor:
    """Logits with the residual entering ``layer`` passed through ``sae`` (see :func:`through_sae`)."""
    resid = residuals(model, x, [layer])[layer]
    return model.forward_from(through_sae(sae, resid, edit, keep_error), layer)
