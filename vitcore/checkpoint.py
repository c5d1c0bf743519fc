"""Checkpoints: ``model.safetensors`` plus ``config.json``, as a folder or a zip. Never pickles."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from .assets import shipped_checkpoint
from .config import ConfigError, ViTConfig
from .errors import VitcoreError, parse_json
from .model import VisionTransformer

DEFAULT_CHECKPOINT = shipped_checkpoint()
WEIGHTS, CONFIG = "model.safetensors", "config.json"


class CheckpointError(VitcoreError):
    """A checkpoint that is missing, not safetensors, or does not fit its config."""


@dataclass
class Checkpoint:
    """A model with everything its config.json says beyond the architecture."""

    model: VisionTransformer
    info: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""

    @property
    def wnids(self) -> list[str]:
        return list(self.info.get("classes", {}).get("wnids", []))

    @property
    def names(self) -> list[str]:
        return list(self.info.get("classes", {}).get("names", self.wnids))


# The most a checkpoint part may hold whatever its config says: far above this project's models,
# far below what a crafted zip could make the process allocate. Within it, the weights may hold no
# more than the config's parameters need (weights_limit), and compress no better than floats do.
MAX_BYTES = {WEIGHTS: 512 * 2**20, CONFIG: 2**20}
MAX_WEIGHTS_COMPRESSION = 8.0  # trained float weights deflate by a few percent; a zip bomb by orders of magnitude


def _too_big(name: str, size: int, source: Path | str, limit: int | None = None) -> CheckpointError:
    return CheckpointError(f"{source}: {name} is {size:,} bytes, over the limit of {limit or MAX_BYTES[name]:,}")


def weights_limit(config: bytes, source: Path | str) -> int:
    """The most bytes a ``model.safetensors`` for this config may hold: every parameter the config implies
    as a 64-bit float, plus a megabyte of header. Raises CheckpointError for a config that is not valid."""
    cfg = _model_config(config, source)
    with torch.device("meta"):  # shapes only, nothing allocated
        n = sum(v.numel() for v in VisionTransformer(cfg).state_dict().values())
    return min(MAX_BYTES[WEIGHTS], 8 * n + 2**20)


def read_member(z: zipfile.ZipFile, member: str, name: str, source: Path | str, limit: int | None = None) -> bytes:
    """A zip member, refused by its declared size and compression before it is inflated, and again by
    what it actually inflates to."""
    limit = limit or MAX_BYTES[name]
    info = z.getinfo(member)
    if info.file_size > limit:
        raise _too_big(name, info.file_size, source, limit)
    if (
        name == WEIGHTS
        and info.file_size > 2**20
        and info.file_size > MAX_WEIGHTS_COMPRESSION * max(info.compress_size, 1)
    ):
        raise CheckpointError(
            f"{source}: {name} would inflate {info.file_size / max(info.compress_size, 1):,.0f}-fold; "
            f"weights compress no better than {MAX_WEIGHTS_COMPRESSION:g}-fold (a zip bomb?)"
        )
    with z.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CheckpointError(f"{source}: {name} inflates beyond its declared size and the limit of {limit:,} bytes")
    return data


def read_zip_parts(source: Path | io.BytesIO, label: str) -> tuple[bytes, bytes]:
    """``model.safetensors`` and ``config.json`` from a checkpoint zip (a path or bytes); errors name ``label``."""
    try:
        with zipfile.ZipFile(source) as z:
            by_base = {Path(n).name: n for n in z.namelist() if n.count("/") <= 1}
            missing = [n for n in (WEIGHTS, CONFIG) if n not in by_base]
            if missing:
                raise CheckpointError(f"checkpoint zip {label} lacks {', '.join(missing)}")
            config = read_member(z, by_base[CONFIG], CONFIG, label)
            return read_member(z, by_base[WEIGHTS], WEIGHTS, label, weights_limit(config, label)), config
    except (zipfile.BadZipFile, OSError) as e:
        if label.endswith(".safetensors"):
            raise CheckpointError(
                f"{label}: give the folder or zip holding {WEIGHTS} and {CONFIG}, not the weights alone"
            ) from e
        raise CheckpointError(f"{label} is neither a checkpoint folder nor a zip ({e})") from e


def _read_parts(path: Path) -> tuple[bytes, bytes]:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        missing = [n for n in (WEIGHTS, CONFIG) if not (path / n).is_file()]
        if missing:
            raise CheckpointError(f"checkpoint folder {path} lacks {', '.join(missing)}")
        if (size := (path / CONFIG).stat().st_size) > MAX_BYTES[CONFIG]:
            raise _too_big(CONFIG, size, path)
        config = (path / CONFIG).read_bytes()
        limit = weights_limit(config, path)
        if (size := (path / WEIGHTS).stat().st_size) > limit:
            raise _too_big(WEIGHTS, size, path, limit)
        return (path / WEIGHTS).read_bytes(), config
    return read_zip_parts(path, str(path))


def parse_checkpoint(weights: bytes, config: bytes, source: str = "checkpoint") -> Checkpoint:
    """Build a model from raw ``model.safetensors`` and ``config.json`` bytes, with clear errors."""
    info = _config_info(config, source)
    cfg = _model_config(config, source)
    try:
        state = load_safetensors_bytes(weights)
    except (SafetensorError, ValueError, RuntimeError, OSError) as e:
        raise CheckpointError(f"{source}: model.safetensors is not a valid safetensors file ({e})") from e
    classes = info.get("classes", {})
    if classes.get("wnids") and len(classes["wnids"]) != cfg.num_classes:
        raise CheckpointError(
            f"{source}: config lists {len(classes['wnids'])} classes but num_classes is {cfg.num_classes}"
        )
    state = upgrade_state_dict(state)
    with torch.device("meta"):  # shapes the config implies, without allocating anything
        expected = VisionTransformer(cfg).state_dict()
    wrong = [
        f"{k} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} by the config"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{source}: shape mismatch between weights and config: {'; '.join(wrong[:3])}"
            + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else "")
        )
    try:
        model = VisionTransformer.from_state_dict(cfg, {k: v.float() for k, v in state.items()})
    except RuntimeError as e:  # load_state_dict(strict=True) names missing and unexpected keys
        raise CheckpointError(f"{source}: weights do not match config: {_first_lines(str(e))}") from e
    model.eval()
    return Checkpoint(model, info, hashlib.sha256(weights).hexdigest())


def _config_info(config: bytes, source: Path | str) -> dict:
    info = parse_json(config, f"{source}: config.json", CheckpointError)
    if not isinstance(info, dict) or "model" not in info:
        raise CheckpointError(f"{source}: config.json has no 'model' section")
    return info


def _model_config(config: bytes, source: Path | str) -> ViTConfig:
    try:
        return ViTConfig.from_dict(_config_info(config, source)["model"])
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from e


# parameters renamed since earlier checkpoints were written (old name -> new name)
RENAMED = {"patch_embed.weight": "patch_embed.proj.weight", "patch_embed.bias": "patch_embed.proj.bias"}


def upgrade_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights saved under earlier parameter names, renamed to today's (timm's) names."""
    return {RENAMED.get(k, k): v for k, v in state.items()}


def _first_lines(message: str, n: int = 4) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " ".join(lines[:n])


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Load a checkpoint folder or zip (default: the shipped model)."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    weights, config = _read_parts(path)
    return parse_checkpoint(weights, config, str(path))


def load_pretrained(path: str | Path | None = None) -> VisionTransformer:
    """The model of a checkpoint folder or zip (default: the shipped one), in eval mode."""
    return load_checkpoint(path).model


def checkpoint_bytes(model: VisionTransformer, info: dict[str, Any]) -> tuple[bytes, bytes]:
    """Serialised ``model.safetensors`` and ``config.json`` for ``model``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    full = {**info, "model": model.config.to_dict()}
    return save_safetensors_bytes(state), json.dumps(full, indent=2).encode()


def save_checkpoint(model: VisionTransformer, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint folder, or a zip when ``path`` ends in ``.zip``; atomic."""
    path = Path(path)
    weights, config = checkpoint_bytes(model, info or {})
    if path.suffix == ".zip":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".zip.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(WEIGHTS, weights)
            z.writestr(CONFIG, config)
        os.replace(tmp, path)
        return path
    path.mkdir(parents=True, exist_ok=True)
    for name, data in ((WEIGHTS, weights), (CONFIG, config)):
        tmp = path / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path / name)
    return path


def zip_bytes(model: VisionTransformer, info: dict[str, Any]) -> bytes:
    """A checkpoint zip in memory (for downloads)."""
    weights, config = checkpoint_bytes(model, info)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(WEIGHTS, weights)
        z.writestr(CONFIG, config)
    return buf.getvalue()
