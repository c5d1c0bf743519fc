"""The planted shortcut's mark: a small solid square stamped into a corner of uint8 images.

One function, :func:`apply_mark`, stamps it everywhere the mark appears: planting (training), the mark
task of circuit discovery, and the flip-rate evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import VitcoreError

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


class ShortcutError(VitcoreError):
    """A mark or shortcut setting that cannot work: a mark larger than the image, an unknown class, ..."""


@dataclass(frozen=True)
class Mark:
    """A ``size`` x ``size`` square of one RGB colour, ``margin`` pixels from a corner of the image."""

    size: int = 6
    colour: tuple[int, int, int] = (255, 0, 255)
    corner: str = "bottom-right"
    margin: int = 1

    def __post_init__(self) -> None:
        if self.corner not in CORNERS:
            raise ShortcutError(f"unknown corner {self.corner!r}; choose one of {', '.join(CORNERS)}")
        if self.size < 1 or self.margin < 0:
            raise ShortcutError(f"mark size must be at least 1 and margin at least 0, got {self.size}, {self.margin}")
        if len(self.colour) != 3 or not all(0 <= int(c) <= 255 for c in self.colour):
            raise ShortcutError(f"mark colour must be three values in 0-255, got {self.colour}")

    def box(self, height: int, width: int) -> tuple[int, int]:
        """Top and left pixel of the square in an image of ``height`` x ``width``."""
        if self.size + self.margin > min(height, width):
            raise ShortcutError(f"a {self.size}px mark {self.margin}px from the edge does not fit {height}x{width}")
        top = self.margin if self.corner.startswith("top") else height - self.margin - self.size
        left = self.margin if self.corner.endswith("left") else width - self.margin - self.size
        return top, left

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "colour": list(self.colour)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Mark:
        try:
            return cls(int(raw["size"]), tuple(int(c) for c in raw["colour"]), str(raw["corner"]), int(raw["margin"]))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as e:
            raise ShortcutError(f"malformed mark {raw!r}: {e}") from e


@dataclass(frozen=True)
class Shortcut:
    """A planted shortcut: images carrying ``mark`` are pushed towards the class ``target`` (a wnid)."""

    target: str
    mark: Mark = Mark()

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "mark": self.mark.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Shortcut:
        if not isinstance(raw, dict) or not isinstance(raw.get("target"), str) or not isinstance(raw.get("mark"), dict):
            raise ShortcutError(f"malformed shortcut {raw!r}: expected a target wnid and a mark")
        return cls(raw["target"], Mark.from_dict(raw["mark"]))


def apply_mark(images: Tensor, mark: Mark, where: Tensor | None = None) -> Tensor:
    """A copy of uint8 ``images`` (``[B, 3, H, W]`` or ``[3, H, W]``) with ``mark`` stamped on each, or only
    on the images where the boolean ``where`` ``[B]`` is true."""
    if images.dtype != torch.uint8 or images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ShortcutError(f"the mark is stamped on uint8 RGB images [B, 3, H, W], got {tuple(images.shape)}")
    out = images.clone()
    top, left = mark.box(images.shape[-2], images.shape[-1])
    colour = torch.tensor(mark.colour, dtype=torch.uint8)[:, None, None]
    region = (..., slice(None), slice(top, top + mark.size), slice(left, left + mark.size))
    if where is None:
        out[region] = colour
    else:
        out[where.bool()] = apply_mark(images[where.bool()], mark)
    return out
