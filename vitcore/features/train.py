"""Train TopK SAEs on a model's residual stream, several layers from one pass of the model, resumably.

Activations are streamed: a chunk of images is run through the model, its tokens shuffled, the SAEs take
their steps on it, and the chunk is dropped. The run's state (SAEs, Adam moments, the data position) is
written to its state folder after every few chunks and read back, with ``torch.load(weights_only=True)``,
by a run started again with the same settings.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import ImageSet
from ..errors import VitcoreError, load_state_file
from ..model import VisionTransformer
from .activations import token_chunks
from .sae import SAEConfig, TopKSAE, topk_loss

STATE_FILE, LOG_FILE = "state.pt", "train_log.json"


class FeatureTrainingError(VitcoreError):
    """A training run that cannot start: bad settings, or a state folder of another run."""


@dataclass(frozen=True)
class SAETrainSettings:
    """One training run: which layers, how wide and sparse, on how much data, how fast."""

    layers: tuple[int, ...] = (4, 8)
    expansion: int = 8
    k: int = 32
    epochs: int = 1
    max_images: int = 0  # 0: every image of the data
    chunk_images: int = 1024
    batch_tokens: int = 4096
    lr: float = 1e-3
    warmup_steps: int = 50
    k_aux: int = 0  # 0: half the residual width
    aux_coef: float = 1 / 32
    dead_tokens: int = 500_000  # a latent that has not fired on this many tokens counts as dead
    cls_weight: float = 1.0  # the class token's squared error counts this many times a patch token's
    seed: int = 0

    def check(self, model: VisionTransformer) -> None:
        depth = len(model.blocks)
        if not self.layers or any(not 0 <= layer < depth for layer in self.layers):
            raise FeatureTrainingError(f"layers {list(self.layers)}: each must be in 0..{depth - 1}")
        if len(set(self.layers)) != len(self.layers):
            raise FeatureTrainingError(f"layers {list(self.layers)} name a layer twice")
        for name in ("expansion", "k", "epochs", "chunk_images", "batch_tokens"):
            if getattr(self, name) < 1:
                raise FeatureTrainingError(f"{name} must be at least 1")
        if self.k > self.expansion * model.config.dim:
            raise FeatureTrainingError(f"k={self.k} is more than the {self.expansion * model.config.dim} latents")


@dataclass
class TrainProgress:
    """Where a run is: chunks done of all, and the latest loss and fraction of variance explained per layer."""

    chunk: int
    chunks: int
    seconds: float
    loss: dict[int, float]
    fve: dict[int, float]


def _lr_at(step: int, total: int, settings: SAETrainSettings) -> float:
    """Linear warm-up, constant, then linear decay to zero over the last fifth."""
    warm = min(1.0, (step + 1) / max(settings.warmup_steps, 1))
    decay_start = int(0.8 * total)
    decay = 1.0 if step < decay_start else max(0.0, (total - step) / max(total - decay_start, 1))
    return settings.lr * warm * decay


def train_saes(
    model: VisionTransformer,
    data: ImageSet,
    settings: SAETrainSettings,
    out_dir: str | Path,
    model_sha256: str = "",
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    save_every_chunks: int = 8,
) -> dict[int, TopKSAE]:
    """Train one SAE per layer of ``settings`` on ``data``'s images and write ``L{layer}.safetensors`` and a
    training log to ``out_dir``; a state folder left by an interrupted run of the same settings is resumed.
    """
    settings.check(model)
    model = model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_images = len(data) if settings.max_images <= 0 else min(settings.max_images, len(data))
    generator = torch.Generator().manual_seed(settings.seed)
    orders = [torch.randperm(len(data), generator=generator)[:n_images] for _ in range(settings.epochs)]
    order = torch.cat(orders)
    chunks = math.ceil(len(order) / settings.chunk_images)
    tokens_total = len(order) * model.config.num_tokens
    total_steps = max(1, tokens_total // settings.batch_tokens)
    dim = model.config.dim
    k_aux = settings.k_aux or dim // 2
    key = json.dumps({**asdict(settings), "images": len(data), "model": model_sha256}, sort_keys=True)

    state_path = out / STATE_FILE
    saes: dict[int, TopKSAE] = {}
    optims: dict[int, torch.optim.Adam] = {}
    since_fired: dict[int, torch.Tensor] = {}
    log: dict = {"settings": asdict(settings), "model_sha256": model_sha256, "chunks": [], "seconds": 0.0}
    start_chunk, step = 0, 0
    if state_path.exists():
        state = load_state_file(state_path)
        if state.get("key") != key:
            raise FeatureTrainingError(
                f"{out} holds the state of a run with other settings; give another --out or delete {state_path}"
            )
        start_chunk, step = int(state["chunk"]), int(state["step"])
        log = json.loads(state["log"])
        for layer in settings.layers:
            cfg = SAEConfig(**json.loads(state[f"config.{layer}"]))
            saes[layer] = TopKSAE(cfg)
            saes[layer].load_state_dict(state[f"sae.{layer}"])
            optims[layer] = torch.optim.Adam(saes[layer].parameters(), lr=settings.lr, betas=(0.9, 0.999))
            optims[layer].load_state_dict(state[f"optim.{layer}"])
            since_fired[layer] = state[f"since_fired.{layer}"]
    began = time.perf_counter() - float(log["seconds"])
    last_loss: dict[int, float] = {}
    last_fve: dict[int, float] = {}

    def save_state(chunk: int) -> None:
        log["seconds"] = time.perf_counter() - began
        state = {"key": key, "chunk": chunk, "step": step, "log": json.dumps(log)}
        for layer, sae in saes.items():
            state[f"config.{layer}"] = json.dumps(asdict(sae.config))
            state[f"sae.{layer}"] = sae.state_dict()
            state[f"optim.{layer}"] = optims[layer].state_dict()
            state[f"since_fired.{layer}"] = since_fired[layer]
        tmp = state_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, state_path)

    torch.manual_seed(settings.seed)
    for chunk, tokens, positions in token_chunks(
        model, data, settings.layers, order, settings.chunk_images, start_chunk=start_chunk
    ):
        if not saes:  # the first chunk fixes each SAE's input scale and decoder bias
            for layer, t in tokens.items():
                scale = math.sqrt(dim / float(t.square().sum(-1).mean()))
                cfg = SAEConfig(layer, dim, settings.expansion * dim, settings.k, scale, model_sha256)
                saes[layer] = TopKSAE(cfg)
                with torch.no_grad():
                    saes[layer].b_dec.copy_(t.mean(0) * scale)
                optims[layer] = torch.optim.Adam(saes[layer].parameters(), lr=settings.lr, betas=(0.9, 0.999))
                since_fired[layer] = torch.zeros(cfg.n_latents, dtype=torch.long)
        chunk_log: dict = {"chunk": chunk}
        n = next(iter(tokens.values())).shape[0]
        for layer, t in tokens.items():
            sae, opt = saes[layer], optims[layer]
            losses, sse, sst = [], 0.0, 0.0
            mean = t.mean(0) * sae.config.scale
            for i in range(0, n - settings.batch_tokens + 1, settings.batch_tokens):
                x = t[i : i + settings.batch_tokens]
                weights = None
                if settings.cls_weight != 1.0:
                    is_cls = positions[i : i + settings.batch_tokens] == 0
                    weights = torch.where(is_cls, settings.cls_weight, 1.0)
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, total_steps, settings)
                dead = since_fired[layer] >= settings.dead_tokens
                loss, z = topk_loss(sae, x, dead, k_aux, settings.aux_coef, weights)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                sae.remove_parallel_gradient()
                opt.step()
                sae.normalize_decoder()
                with torch.no_grad():
                    fired = (z > 0).any(0)
                    since_fired[layer] += len(x)
                    since_fired[layer][fired] = 0
                    xs = x * sae.config.scale
                    recon = z @ sae.W_dec + sae.b_dec
                    sse += float((xs - recon).square().sum())
                    sst += float((xs - mean).square().sum())
                losses.append(float(loss.detach()))
                if layer == settings.layers[-1]:
                    step += 1
            last_loss[layer] = sum(losses) / max(len(losses), 1)
            last_fve[layer] = 1 - sse / max(sst, 1e-12)
            chunk_log[f"L{layer}"] = {
                "loss": round(last_loss[layer], 5),
                "fve": round(last_fve[layer], 4),
                "dead": int((since_fired[layer] >= settings.dead_tokens).sum()),
            }
        log["chunks"].append(chunk_log)
        if progress is not None:
            progress(TrainProgress(chunk + 1, chunks, time.perf_counter() - began, dict(last_loss), dict(last_fve)))
        stopping = should_stop is not None and should_stop()
        if (chunk + 1) % save_every_chunks == 0 or chunk + 1 == chunks or stopping:
            save_state(chunk + 1)
        if stopping:
            return saes
    log["seconds"] = time.perf_counter() - began
    for layer, sae in saes.items():
        sae.eval().save(out / f"L{layer}.safetensors")
    (out / LOG_FILE).write_text(json.dumps(log, indent=1))
    return saes
