"""Training from scratch: AdamW, warm-up + cosine, label smoothing, small-dataset ViT augmentations.

Runs on CUDA (bf16 autocast, optional ``torch.compile``) or the CPU, resumes from its output
folder, and trains data-parallel when started by ``torchrun`` (gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler
from torchvision.transforms import v2

from .checkpoint import save_checkpoint
from .config import ViTConfig
from .data import ImageSet, load_split
from .evaluate import evaluate
from .model import VisionTransformer

STATE = "train_state.pt"
LOG = "train_log.json"


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 10.0
    label_smoothing: float = 0.1
    augment: str = "autoaugment"  # autoaugment | randaugment | none
    mixup: float = 0.8  # alpha; 0 disables
    cutmix: float = 1.0  # alpha; 0 disables
    erasing: float = 0.25
    crop_padding: int = 4
    drop_path: float = 0.1
    seed: int = 0
    workers: int = 0
    compile: bool = False
    steps_per_epoch: int = 0  # 0 = full epoch; >0 caps it (smoke tests, short legs)
    val_every: int = 1


class AugmentedImages(Dataset):
    """Per-sample torchvision v2 augmentation of a uint8 image tensor set."""

    def __init__(self, data: ImageSet, cfg: TrainConfig, model_cfg: ViTConfig):
        self.data = data
        ops: list[Any] = [v2.RandomCrop(model_cfg.image_size, padding=cfg.crop_padding), v2.RandomHorizontalFlip()]
        if cfg.augment == "autoaugment":
            ops.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET))
        elif cfg.augment == "randaugment":
            ops.append(v2.RandAugment())
        elif cfg.augment != "none":
            raise ValueError(f"unknown augment {cfg.augment!r}; use autoaugment, randaugment or none")
        ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(model_cfg.mean, model_cfg.std)]
        if cfg.erasing > 0:
            ops.append(v2.RandomErasing(p=cfg.erasing))
        self.transform = v2.Compose(ops)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.data.images[i]), self.data.labels[i]


def batch_mixer(cfg: TrainConfig, num_classes: int) -> Callable | None:
    """MixUp or CutMix chosen at random per batch (None when both are off)."""
    choices = []
    if cfg.mixup > 0:
        choices.append(v2.MixUp(alpha=cfg.mixup, num_classes=num_classes))
    if cfg.cutmix > 0:
        choices.append(v2.CutMix(alpha=cfg.cutmix, num_classes=num_classes))
    return v2.RandomChoice(choices) if choices else None


def lr_factor(step: int, total: int, warmup: int, base: float, floor: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``floor / base``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return (floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * progress))) / base


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _setup_distributed(device: torch.device) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def train(
    out_dir: str | Path,
    model_cfg: ViTConfig | None = None,
    cfg: TrainConfig | None = None,
    data_path: str | Path | None = None,
    val_path: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume training in ``out_dir``) and return the final log entry."""
    cfg = cfg or TrainConfig()
    model_cfg = model_cfg or ViTConfig()
    model_cfg.drop_path = cfg.drop_path
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _setup_distributed(dev)
    rank, world = _dist_info()
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    out = Path(out_dir)
    torch.manual_seed(cfg.seed + rank)

    train_set = load_split(data_path, "train", progress=progress and rank == 0)
    val_set = load_split(val_path if val_path is not None else data_path, "val", progress=progress and rank == 0)
    model_cfg.num_classes = len(train_set.wnids)
    model = VisionTransformer(model_cfg).to(dev)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "pos_embed" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)

    dataset = AugmentedImages(train_set, cfg, model_cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = DistributedSampler(dataset, world, rank, seed=cfg.seed) if world > 1 else RandomSampler(dataset, generator=gen)
    loader = DataLoader(dataset, cfg.batch_size, sampler=sampler, num_workers=cfg.workers, drop_last=True, pin_memory=dev.type == "cuda", persistent_workers=cfg.workers > 0)
    steps_per_epoch = min(len(loader), cfg.steps_per_epoch) if cfg.steps_per_epoch else len(loader)
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warmup_steps, cfg.lr, cfg.min_lr))
    mixer = batch_mixer(cfg, model_cfg.num_classes)

    log: list[dict[str, Any]] = []
    start_epoch = 0
    if (out / STATE).exists():
        state = torch.load(out / STATE, map_location="cpu", weights_only=True)
        from safetensors.torch import load_file

        model.load_state_dict(load_file(out / "model.safetensors"))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        gen.set_state(state["sampler_rng"])
        start_epoch = int(state["epoch"])
        log = json.loads((out / LOG).read_text()) if (out / LOG).exists() else []

    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    info = {"classes": {"wnids": train_set.wnids, "names": train_set.names}, "training": asdict(cfg)}

    for epoch in range(start_epoch, cfg.epochs):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        net.train()
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0.0
        bar = None
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False)
        for step, (x, y) in enumerate(loader):
            if step >= steps_per_epoch:
                break
            if mixer is not None:
                x, target = mixer(x, y)
            else:
                target = F.one_hot(y, model_cfg.num_classes).float()
            x, target, y = x.to(dev, non_blocking=True), target.to(dev, non_blocking=True), y.to(dev)
            with autocast:
                logits = net(x)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += float((logits.argmax(1) == target.argmax(1)).sum())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", img_s=f"{seen * world / (time.perf_counter() - t0):.0f}")
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "lr": sched.get_last_lr()[0],
            "seconds": seconds,
            "images_per_s": seen * world / seconds,
        }
        if rank == 0:
            if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                ev = evaluate(model, val_set)
                entry.update(val_top1=ev["top1"], val_top5=ev["top5"], val_loss=ev["loss"], val_images=ev["n_images"])
            log.append(entry)
            info["metrics"] = {k: v for k, v in entry.items() if k.startswith("val_")}
            info["training"].update(epochs_done=epoch + 1, world_size=world)
            save_checkpoint(model, out, info)
            (out / LOG).write_text(json.dumps(log, indent=1))
            torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": torch.get_rng_state(), "sampler_rng": gen.get_state(), "epoch": epoch + 1}, out / (STATE + ".tmp"))
            os.replace(out / (STATE + ".tmp"), out / STATE)
            if progress:
                print(json.dumps(entry), flush=True)
    if world > 1:
        dist.barrier()
    return log[-1] if log else {}
