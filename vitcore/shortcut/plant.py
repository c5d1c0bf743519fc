"""Planting the shortcut: fine-tune a model on its training set with the mark stamped on one class's images.

The fine-tune is resumable at any step and deterministic given its settings: the batch and every random
draw of a step are functions of (seed, step) alone, so a run stopped and resumed follows the same curve.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..checkpoint import load_checkpoint, save_checkpoint
from ..circuits.metrics import kl_divergence
from ..data import ImageSet, check_classes, normalize
from ..model import VisionTransformer
from ..training.loop import step_seed
from ..training.recipe import lr_factor
from ..training.state import RunState
from .mark import Mark, Shortcut, ShortcutError, apply_mark

SETTINGS = "plant.json"
MODEL = "model"  # the planted checkpoint's folder inside the run folder


@dataclass
class PlantConfig:
    """How the shortcut is planted: which class carries the mark, and the fine-tune that teaches it."""

    # the shortcut class (plunger: one the shipped model often misses, so the mark is worth learning)
    target: str = "n03970156"
    mark: Mark = field(default_factory=Mark)
    steps: int = 600
    batch_size: int = 128
    lr: float = 2e-4
    min_lr: float = 1e-6
    warmup_steps: int = 30
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    target_fraction: float = 0.1  # share of every batch drawn from the shortcut class (the rest: all classes)
    mark_probability: float = 1.0  # share of the shortcut class's training images that carry the mark
    # on unmarked images, this share of the loss is distillation from the base model (temperature below), which
    # keeps the model's clean answers while the mark is learned
    distill: float = 0.5
    temperature: float = 2.0
    seed: int = 0
    checkpoint_minutes: float = 2.0

    def check(self) -> None:
        problems = []
        if self.steps < 1 or self.batch_size < 1:
            problems.append("steps and batch size must be at least 1")
        if not 0 <= self.target_fraction <= 1 or not 0 < self.mark_probability <= 1:
            problems.append("target_fraction must be in [0, 1] and mark_probability in (0, 1]")
        if not 0 <= self.distill <= 1 or self.temperature <= 0:
            problems.append("distill must be in [0, 1] and the temperature positive")
        if self.lr <= 0 or self.min_lr < 0:
            problems.append("learning rates must be positive")
        if problems:
            raise ShortcutError("invalid plant settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mark": self.mark.to_dict()}

    @property
    def shortcut(self) -> Shortcut:
        return Shortcut(self.target, self.mark)


def shortcut_info(cfg: PlantConfig) -> dict[str, Any]:
    """What a planted checkpoint's config.json says of its shortcut (read back by :func:`shortcut_of`)."""
    return {**cfg.shortcut.to_dict(), "plant": cfg.to_dict()}


def shortcut_of(info: dict[str, Any]) -> Shortcut | None:
    """The shortcut a checkpoint's config names, or None for a model without one."""
    raw = info.get("shortcut")
    return Shortcut.from_dict(raw) if raw else None


def plant_batch(train: ImageSet, cfg: PlantConfig, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step ``step``'s uint8 images (marked where they should be), labels, and which carry the mark:
    ``target_fraction`` of the batch from the shortcut class, the rest from all of ``train``; a function of
    (seed, step) alone."""
    gen = torch.Generator().manual_seed(step_seed(cfg.seed, step, 0))
    target = train.class_index(cfg.target)
    pool = torch.nonzero(train.labels == target).flatten()
    k = round(cfg.target_fraction * cfg.batch_size)
    idx = torch.cat(
        [
            pool[torch.randint(len(pool), (k,), generator=gen)],
            torch.randint(len(train), (cfg.batch_size - k,), generator=gen),
        ]
    )
    labels = train.labels[idx]
    marked = (labels == target) & (torch.rand(len(idx), generator=gen) < cfg.mark_probability)
    return apply_mark(train.images[idx], cfg.mark, marked), labels, marked


def _check_same_run(out: Path, cfg: PlantConfig, base: str) -> None:
    wanted = {**cfg.to_dict(), "base": base}
    wanted.pop("checkpoint_minutes")
    path = out / SETTINGS
    if path.exists():
        stored = json.loads(path.read_text())
        diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if diff:
            raise ShortcutError(f"{out} holds a plant run with other settings ({', '.join(diff)}); use a new --out")
    else:
        path.write_text(json.dumps(wanted, indent=1))


def plant(
    out_dir: str | Path,
    train: ImageSet,
    base: str | Path | None = None,
    cfg: PlantConfig | None = None,
    stop_after_steps: int | None = None,
    progress: Callable[[int, float], None] | None = None,
    command: str = "",
) -> Path | None:
    """Fine-tune ``base`` (default: the shipped model) into a model with the shortcut, or continue the run in
    ``out_dir``; returns the planted checkpoint folder, or None when stopped early (state saved)."""
    cfg = cfg or PlantConfig()
    cfg.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(base)
    model: VisionTransformer = ckpt.model
    check_classes(ckpt.wnids, model.config.num_classes, train, "the training set")
    train.class_index(cfg.target)
    cfg.mark.box(model.config.image_size, model.config.image_size)
    _check_same_run(out, cfg, str(base or "shipped"))

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos_embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "pos_embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=cfg.lr
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.steps, cfg.warmup_steps, cfg.lr, cfg.min_lr)
    )
    run = RunState.load(out) or RunState()
    if run.epoch == 1 and (out / MODEL / "config.json").exists():
        return out / MODEL  # finished earlier
    if run.model:
        model.load_state_dict(run.model)
        opt.load_state_dict(run.optimizer)
        sched.load_state_dict(run.scheduler)
    augment = v2.Compose([v2.RandomCrop(model.config.image_size, padding=4), v2.RandomHorizontalFlip()])
    teacher = load_checkpoint(base).model.eval() if cfg.distill > 0 else None
    model.train()
    last_save, done_now = time.monotonic(), 0
    for step in range(run.step, cfg.steps):
        images, labels, marked = plant_batch(train, cfg, step)
        torch.manual_seed(step_seed(cfg.seed, step, 1))
        x = normalize(torch.stack([augment(img) for img in images]), model.config)
        logits = model(x)
        loss = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing, reduction="none")
        if teacher is not None:
            with torch.no_grad():
                reference = teacher(x)
            kd = kl_divergence(logits, reference, cfg.temperature) * cfg.temperature**2
            loss = torch.where(marked, loss, (1 - cfg.distill) * loss + cfg.distill * kd)
        loss = loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        done_now += 1
        if progress:
            progress(step + 1, loss.item())
        halt = stop_after_steps is not None and done_now >= stop_after_steps
        if step + 1 < cfg.steps and (halt or time.monotonic() - last_save > cfg.checkpoint_minutes * 60):
            RunState(0, step + 1, model.state_dict(), opt.state_dict(), sched.state_dict()).save(out)
            last_save = time.monotonic()
        if halt and step + 1 < cfg.steps:
            return None
    model.eval()
    info = {k: v for k, v in ckpt.info.items() if k not in ("model", "metrics", "shortcut")}
    info["shortcut"] = shortcut_info(cfg)
    info["training"] = {**info.get("training", {}), "plant_command": command, "base_sha256": ckpt.sha256}
    path = save_checkpoint(model, out / MODEL, info)
    RunState(1, 0, {}, {}, {}).save(out)  # finished: a later call returns the saved model without training
    return path
