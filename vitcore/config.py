"""Model configuration: a small dataclass that round-trips through ``config.json``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import VitcoreError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConfigError(VitcoreError):
    """A config.json that is missing fields, has wrong types or inconsistent values."""


@dataclass
class ViTConfig:
    """Architecture of a (possibly physically pruned) ViT.

    ``heads`` and ``mlp_widths`` are per layer, so pruned models with uneven layers fit.
    """

    image_size: int = 64
    patch_size: int = 8
    in_chans: int = 3
    dim: int = 192
    head_dim: int = 16
    heads: list[int] = field(default_factory=lambda: [12] * 9)
    mlp_widths: list[int] = field(default_factory=lambda: [384] * 9)
    num_classes: int = 200
    chunk_size: int = 32
    drop_path: float = 0.0
    norm_eps: float = 1e-5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.heads = [int(h) for h in self.heads]
        self.mlp_widths = [int(w) for w in self.mlp_widths]
        self.mean = tuple(float(m) for m in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(s) for s in self.std)  # type: ignore[assignment]
        self.validate()

    @property
    def depth(self) -> int:
        return len(self.heads)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        return self.num_patches + 1

    def validate(self) -> None:
        problems = []
        if len(self.heads) != len(self.mlp_widths):
            problems.append(f"heads has {len(self.heads)} layers but mlp_widths has {len(self.mlp_widths)}")
        if len(self.heads) == 0:
            problems.append("depth must be at least 1")
        if any(h < 0 for h in self.heads) or any(w < 0 for w in self.mlp_widths):
            problems.append("heads and mlp_widths must be >= 0")
        for name in ("image_size", "patch_size", "in_chans", "dim", "head_dim", "num_classes", "chunk_size"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.patch_size > 0 and self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            problems.append("mean and std need one value per input channel")
        if problems:
            raise ConfigError("invalid model config: " + "; ".join(problems))

    @classmethod
    def uniform(cls, depth: int = 9, num_heads: int = 12, mlp_width: int = 384, **kw: Any) -> "ViTConfig":
        """Config with the same head count and MLP width in every layer."""
        return cls(heads=[num_heads] * depth, mlp_widths=[mlp_width] * depth, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViTConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"model config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("heads", "mlp_widths", "dim", "num_classes") if n not in d]
        if missing:
            raise ConfigError(f"model config is missing {', '.join(missing)}")
        try:
            return cls(**{k: v for k, v in d.items() if k in names})
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid model config: {e}") from e


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object from ``path`` with an error that names the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data
