"""Recovery fine-tuning of a pruned model, optionally distilled from the unpruned teacher."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms import v2

from ..circuits.metrics import kl_divergence
from ..data import ImageSet, normalize
from ..model import VisionTransformer


def distill_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """KL(teacher || student) on temperature-softened logits, scaled by T^2."""
    return kl_divergence(student, teacher, temperature).mean() * temperature**2


def finetune_steps(
    model: VisionTransformer,
    data: ImageSet,
    steps: int,
    lr: float = 2e-4,
    batch_size: int = 64,
    teacher: VisionTransformer | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    progress: Callable[[int, float], None] | None = None,
    focus: Tensor | None = None,
    focus_fraction: float = 0.5,
) -> list[float]:
    """Train ``model`` in place for ``steps`` AdamW steps (crop+flip augmentation); returns losses.

    With a ``teacher`` the loss is ``(1 - alpha) CE + alpha KD``. ``focus`` (indices into ``data``,
    e.g. the chosen classes' images) fills ``focus_fraction`` of every batch; the rest is drawn from
    all of ``data``. ``progress(step, loss)`` is called after every step.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    gen = torch.Generator().manual_seed(seed)
    augment = v2.Compose([v2.RandomCrop(model.config.image_size, padding=4), v2.RandomHorizontalFlip()])
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    model.train()
    losses = []
    with torch.random.fork_rng(
        devices=[]
    ):  # the augmentation draws from torch's global generator: seed it here, restore it after
        torch.manual_seed(seed)
        for step in range(steps):
            n = min(batch_size, len(data))
            if focus is not None and len(focus):
                k = max(1, round(focus_fraction * n))
                idx = torch.cat(
                    [
                        focus[torch.randint(len(focus), (k,), generator=gen)],
                        torch.randint(len(data), (n - k,), generator=gen),
                    ]
                )
            else:
                idx = torch.randint(len(data), (n,), generator=gen)
            x = normalize(torch.stack([augment(img) for img in data.images[idx]]), model.config)
            y = data.labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    target = teacher(x)
                loss = (1 - alpha) * loss + alpha * distill_loss(logits, target, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if progress:
                progress(step + 1, losses[-1])
    model.eval()
    return losses


def estimate_finetune_seconds(
    steps: int,
    throughput_b64: float | None,
    throughput_ratio: float | None,
    predicted_b1_ms: float | None,
    distill: bool,
    batch_size: int = 64,
) -> float:
    """Expected wall time of ``steps`` fine-tuning steps: a step is a forward and a backward (about three
    forwards) of the pruned model on a batch, plus the teacher's forward when distilling. The rate comes from
    the measured batch-64 throughput (and the full model's, ``throughput_b64 / throughput_ratio``); before it is
    measured, from the cost model's batch-1 latency, which overstates a batched forward."""
    if throughput_b64 and throughput_ratio:
        per_image = 3 / throughput_b64 + (throughput_ratio / throughput_b64 if distill else 0)
    else:
        per_image = (3 + (1 if distill else 0)) * (predicted_b1_ms or 10.0) / 1e3
    return steps * batch_size * per_image
