"""How good an SAE is: variance of the residual it explains, how sparse it is, which latents never or almost
always fire, and what the model loses when the SAE's reconstruction replaces its residual stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..data import ImageSet, normalize
from ..model import VisionTransformer
from .activations import residuals
from .sae import TopKSAE

DENSE_FREQUENCY = 0.1  # a latent firing on more than this fraction of tokens counts as dense


@dataclass(frozen=True)
class SAEQuality:
    """Figures of one SAE on one data split (every token of every image)."""

    layer: int
    n_latents: int
    k: int
    images: int
    tokens: int
    fve: float  # 1 - sum of squared errors / sum of squares around the mean residual
    fve_cls: float  # the same over class tokens only
    mean_l0: float
    dead_fraction: float  # fired on no token
    dense_fraction: float  # fired on more than DENSE_FREQUENCY of tokens
    top1_model: float
    top1_spliced: float
    kl_spliced: float  # mean KL(model || spliced) over images, nats

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def measure_quality(
    model: VisionTransformer,
    sae: TopKSAE,
    data: ImageSet,
    batch_size: int = 256,
    progress: Callable[[float], None] | None = None,
) -> SAEQuality:
    """Measure ``sae`` at its layer of ``model`` on every image of ``data``."""
    model, sae = model.eval(), sae.eval()
    layer = sae.config.layer
    n_lat = sae.config.n_latents
    sum_x = torch.zeros(sae.config.d_in, dtype=torch.float64)
    sum_x2 = sum_cls = sum_cls2 = 0.0
    sum_cls_x = torch.zeros(sae.config.d_in, dtype=torch.float64)
    sse = sse_cls = 0.0
    fires = torch.zeros(n_lat, dtype=torch.long)
    l0_sum = 0
    tokens = 0
    correct_model = correct_spliced = 0
    kl_sum = 0.0
    n = len(data)
    for i in range(0, n, batch_size):
        x = normalize(data.images[i : i + batch_size], model.config)
        labels = data.labels[i : i + batch_size]
        resid = residuals(model, x, [layer])[layer]
        z = sae.encode(resid)
        recon = sae.decode(z)
        flat, flat_err = (
            resid.reshape(-1, resid.shape[-1]).double(),
            (resid - recon).reshape(-1, resid.shape[-1]).double(),
        )
        sum_x += flat.sum(0)
        sum_x2 += float(flat.square().sum())
        sse += float(flat_err.square().sum())
        cls, cls_err = resid[:, 0].double(), (resid - recon)[:, 0].double()
        sum_cls_x += cls.sum(0)
        sum_cls2 += float(cls.square().sum())
        sum_cls += cls.shape[0]
        sse_cls += float(cls_err.square().sum())
        active = z > 0
        fires += active.reshape(-1, n_lat).sum(0)
        l0_sum += int(active.sum())
        tokens += flat.shape[0]
        logits = model.forward_from(resid, layer)
        spliced = model.forward_from(recon, layer)
        correct_model += int((logits.argmax(-1) == labels).sum())
        correct_spliced += int((spliced.argmax(-1) == labels).sum())
        kl_sum += float(F.kl_div(spliced.log_softmax(-1), logits.log_softmax(-1), log_target=True, reduction="sum"))
        if progress is not None:
            progress(min(1.0, (i + batch_size) / n))
    sst = sum_x2 - float(sum_x.square().sum()) / tokens
    sst_cls = sum_cls2 - float(sum_cls_x.square().sum()) / sum_cls
    freq = fires.double() / tokens
    return SAEQuality(
        layer=layer,
        n_latents=n_lat,
        k=sae.config.k,
        images=n,
        tokens=tokens,
        fve=1 - sse / sst,
        fve_cls=1 - sse_cls / sst_cls,
        mean_l0=l0_sum / tokens,
        dead_fraction=float((fires == 0).double().mean()),
        dense_fraction=float((freq > DENSE_FREQUENCY).double().mean()),
        top1_model=correct_model / n,
        top1_spliced=correct_spliced / n,
        kl_spliced=kl_sum / n,
    )
