"""Model configuration: a small dataclass that round-trips through ``config.json``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import VitcoreError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConfigError(VitcoreError):
    """A config.json that is missing fields, has wrong types or inconsistent values."""


# Bounds far above any model this project trains, far below what would exhaust memory: a config is
# checked against them (and its weights' shapes against it) before anything is allocated.
MAX_DEPTH, MAX_HEADS, MAX_MLP_WIDTH = 64, 256, 65_536
INT_LIMITS: dict[str, tuple[int, int]] = {
    "image_size": (1, 1024),
    "patch_size": (1, 256),
    "in_chans": (1, 16),
    "dim": (1, 8192),
    "head_dim": (1, 1024),
    "num_classes": (1, 100_000),
    "chunk_size": (1, 65_536),
}


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"invalid model config: {name} must be an integer, got {value!r}")
    return value


def _int_list(name: str, values: Any) -> list[int]:
    if not isinstance(values, (list, tuple)) or len(values) > MAX_DEPTH:
        raise ConfigError(f"invalid model config: {name} must be a list of at most {MAX_DEPTH} integers")
    return [_int(f"{name}[{i}]", v) for i, v in enumerate(values)]


def _float_tuple(name: str, values: Any) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)) or len(values) > 16:
        raise ConfigError(f"invalid model config: {name} must be a short list of numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"invalid model config: {name} must hold finite numbers, got {v!r}")
        out.append(float(v))
    return tuple(out)


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
        self.heads = _int_list("heads", self.heads)
        self.mlp_widths = _int_list("mlp_widths", self.mlp_widths)
        for name in INT_LIMITS:
            setattr(self, name, _int(name, getattr(self, name)))
        self.mean = _float_tuple("mean", self.mean)  # type: ignore[assignment]
        self.std = _float_tuple("std", self.std)  # type: ignore[assignment]
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
        if not 1 <= len(self.heads) <= MAX_DEPTH:
            problems.append(f"depth must be 1..{MAX_DEPTH}, got {len(self.heads)}")
        if any(not 0 <= h <= MAX_HEADS for h in self.heads) or any(
            not 0 <= w <= MAX_MLP_WIDTH for w in self.mlp_widths
        ):
            problems.append(f"heads per layer must be 0..{MAX_HEADS} and MLP widths 0..{MAX_MLP_WIDTH}")
        for name, (low, high) in INT_LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                problems.append(f"{name} must be {low}..{high}, got {value}")
        if self.patch_size > 0 and self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            problems.append("mean and std need one value per input channel")
        if any(s <= 0 for s in self.std):
            problems.append(f"std must be positive, got {list(self.std)}")
        if not (isinstance(self.drop_path, (int, float)) and 0 <= self.drop_path < 1) or not (
            isinstance(self.norm_eps, (int, float)) and 0 < self.norm_eps < 1
        ):
            problems.append("drop_path must be in [0, 1) and norm_eps in (0, 1)")
        if problems:
            raise ConfigError("invalid model config: " + "; ".join(problems))

    @classmethod
    def uniform(cls, depth: int = 9, num_heads: int = 12, mlp_width: int = 384, **kw: Any) -> ViTConfig:
        """Config with the same head count and MLP width in every layer."""
        return cls(heads=[num_heads] * depth, mlp_widths=[mlp_width] * depth, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViTConfig:
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
