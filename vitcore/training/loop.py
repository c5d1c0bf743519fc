"""The training loop: resumable at any step, deterministic given the seed, DDP when under torchrun."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..checkpoint import save_checkpoint, upgrade_state_dict
from ..config import ViTConfig
from ..data import load_split
from ..evaluate import evaluate
from ..model import VisionTransformer
from .augment import BatchAugment
from .forward import TrainingForward
from .recipe import TrainConfig, TrainingError, lr_factor
from .state import RunState
from .warm_start import initial_weights

LOG = "train_log.json"
BEST = "best"  # the checkpoint of the epoch with the highest val top-1 so far


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the training set used in ``epoch``: a function of (seed, epoch) alone."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def step_seed(seed: int, global_step: int, rank: int) -> int:
    """Seed of every random draw in one step (augmentation, patch dropout, drop path, mixing)."""
    return (seed * 1_000_003 + global_step) * 64 + rank


def make_optimizer(model: VisionTransformer, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "pos_embed" in n]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _setup_distributed(device: torch.device) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


class _StopFlag:
    """Set by SIGTERM/SIGINT so the loop saves its state and returns instead of dying mid-step."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if int(os.environ.get("WORLD_SIZE", "1")) == 1:
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, *_: Any) -> None:
        self.set = True

    def __exit__(self, *_: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


RUN = "run.json"
_FREE = ("checkpoint_minutes", "compile", "val_every")  # may change between legs of one run


def _check_same_run(out: Path, cfg: TrainConfig, model_cfg: ViTConfig, rank: int) -> None:
    """Record the run's settings on first start; refuse to resume with a different schedule."""
    wanted = {"training": {k: v for k, v in asdict(cfg).items() if k not in _FREE}, "model": model_cfg.to_dict()}
    path = out / RUN
    if path.exists():
        stored = json.loads(path.read_text())
        # a setting added to the code after the run started counts as its default
        defaults = {"training": asdict(TrainConfig()), "model": ViTConfig().to_dict()}
        diff = sorted(
            k
            for part in ("training", "model")
            for k in set(stored[part]) | set(wanted[part])
            if stored[part].get(k, defaults[part].get(k)) != wanted[part].get(k)
        )
        if diff:
            raise TrainingError(
                f"{out} holds a run with other settings ({', '.join(diff)}); resume with the same command or use a "
                "new --out"
            )
    elif rank == 0:
        path.write_text(json.dumps(wanted, indent=1))


def train(
    out_dir: str | Path,
    model_cfg: ViTConfig | None = None,
    cfg: TrainConfig | None = None,
    data_path: str | Path | None = None,
    val_path: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    stop_after_steps: int | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Train, or continue the run in ``out_dir``; return the last epoch's log entry.

    The schedule is fixed by ``cfg.epochs`` at the start, data order and every random draw are
    functions of (seed, step), so a run stopped at any step and resumed follows the same curve.
    ``stop_after_steps`` stops (with state saved) after that many steps of this call.
    ``command``, when given, is recorded in the checkpoints' config (``training.command``).
    """
    cfg = cfg or TrainConfig()
    model_cfg = model_cfg or ViTConfig()
    model_cfg.drop_path = cfg.drop_path
    cfg.validate(model_cfg.image_size, model_cfg.patch_size)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _setup_distributed(dev)
    rank, world = _dist_info()
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    train_set = load_split(data_path, "train", progress=progress and rank == 0)
    val_set = load_split(val_path if val_path is not None else data_path, "val", progress=progress and rank == 0)
    model_cfg.num_classes = len(train_set.wnids)
    torch.manual_seed(cfg.seed)
    model = VisionTransformer(model_cfg).to(dev)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = len(train_set) // (cfg.batch_size * world)
    if cfg.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.steps_per_epoch)
    if steps_per_epoch < 1:
        raise TrainingError(f"{len(train_set)} training images are fewer than one batch of {cfg.batch_size * world}")
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, warmup_steps, cfg.lr, cfg.min_lr)
    )

    _check_same_run(out, cfg, model_cfg, rank)
    run = RunState.load(out) or RunState()
    if run.model:
        model.load_state_dict(upgrade_state_dict(run.model))  # runs started before the parameter rename
        opt.load_state_dict(run.optimizer)
        sched.load_state_dict(run.scheduler)
    elif cfg.init_from:
        model.load_state_dict(initial_weights(cfg.init_from, model_cfg, train_set.wnids))
    log: list[dict[str, Any]] = json.loads((out / LOG).read_text()) if run.epoch and (out / LOG).exists() else []

    net: torch.nn.Module = TrainingForward(model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    if cfg.compile:
        net = cast(torch.nn.Module, torch.compile(net))  # compiling a Module gives a Module
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    augment = BatchAugment(cfg, model_cfg)
    info = {"classes": {"wnids": train_set.wnids, "names": train_set.names}, "training": asdict(cfg)}
    if command:
        info["training"]["command"] = command

    def save_state(epoch: int, step: int, sums: dict[str, float]) -> None:
        if rank == 0:
            RunState(epoch, step, model.state_dict(), opt.state_dict(), sched.state_dict(), dict(sums)).save(out)

    steps_this_call = 0
    with _StopFlag() as stop:
        for epoch in range(run.epoch, cfg.epochs):
            side, keep = cfg.stage(epoch, model_cfg.image_size)
            order = epoch_order(len(train_set), cfg.seed, epoch)[rank::world]
            first = run.step if epoch == run.epoch else 0
            sums = (
                dict(run.sums)
                if epoch == run.epoch and first
                else {"seen": 0.0, "loss": 0.0, "correct": 0.0, "seconds": 0.0}
            )
            net.train()
            bar = None
            if progress and rank == 0:
                from tqdm import tqdm

                bar = tqdm(
                    total=steps_per_epoch,
                    initial=first,
                    desc=f"epoch {epoch + 1}/{cfg.epochs} @{side}px",
                    unit="step",
                    leave=False,
                )
            last_save = time.monotonic()
            for step in range(first, steps_per_epoch):
                t0 = time.perf_counter()
                torch.manual_seed(step_seed(cfg.seed, epoch * steps_per_epoch + step, rank))
                idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                y = train_set.labels[idx]
                images = train_set.images[idx]
                if cfg.augment_groups:  # augmentation on the training device
                    images, y = images.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                x, target = augment(images, y, side)
                x, target = x.to(dev, non_blocking=True), target.to(dev, non_blocking=True)
                with autocast:
                    logits = net(x, keep)
                loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                sums["seen"] += len(y) * world
                sums["loss"] += loss.item() * len(y)
                sums["correct"] += float((logits.argmax(1) == target.argmax(1).to(logits.device)).sum())
                sums["seconds"] += time.perf_counter() - t0
                steps_this_call += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{sums['loss'] * world / sums['seen']:.3f}", img_s=f"{sums['seen'] / sums['seconds']:.0f}"
                    )
                halt = stop.set or (stop_after_steps is not None and steps_this_call >= stop_after_steps)
                if step + 1 < steps_per_epoch and (halt or time.monotonic() - last_save > cfg.checkpoint_minutes * 60):
                    save_state(epoch, step + 1, sums)
                    last_save = time.monotonic()
                if halt and step + 1 < steps_per_epoch:
                    if bar is not None:
                        bar.close()
                    return {"stopped_at": {"epoch": epoch, "step": step + 1}}
            if bar is not None:
                bar.close()
            entry: dict[str, Any] = {
                "epoch": epoch + 1,
                "side": side,
                "patch_keep": keep,
                "train_loss": sums["loss"] * world / max(sums["seen"], 1),
                "train_acc": sums["correct"] * world / max(sums["seen"], 1),
                "lr": sched.get_last_lr()[0],
                "seconds": sums["seconds"],
                "images_per_s": sums["seen"] / max(sums["seconds"], 1e-9),
            }
            if rank == 0:
                if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                    ev = evaluate(model, val_set)
                    entry.update(
                        val_top1=ev["top1"], val_top5=ev["top5"], val_loss=ev["loss"], val_images=ev["n_images"]
                    )
                log.append(entry)
                info["metrics"] = {k: v for k, v in entry.items() if k.startswith("val_")}
                info["training"].update(epochs_done=epoch + 1, world_size=world)
                save_checkpoint(model, out, info)
                if "val_top1" in entry and entry["val_top1"] >= max(e.get("val_top1", 0.0) for e in log):
                    save_checkpoint(model, out / BEST, info)  # a run that overfits keeps its best epoch
                (out / LOG).write_text(json.dumps(log, indent=1))
                save_state(epoch + 1, 0, {})
                if progress:
                    print(json.dumps(entry), flush=True)
            if stop.set or (stop_after_steps is not None and steps_this_call >= stop_after_steps):
                break
    if world > 1:
        dist.barrier()
    return log[-1] if log else {}
