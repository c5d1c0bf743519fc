"""The resumable state of a training run: everything needed to continue exactly where it stopped."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import load_state_file
from .recipe import TrainingError

STATE = "train_state.pt"


@dataclass
class RunState:
    """Position in the run (epoch, step within it) plus model, optimiser, scheduler and partial epoch sums."""

    epoch: int = 0
    step: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)  # seen, loss, correct, seconds of the epoch so far

    def save(self, out: Path) -> None:
        """Write atomically: a run killed while saving keeps its previous state."""
        tmp = out / (STATE + ".tmp")
        torch.save(self.__dict__, tmp)
        os.replace(tmp, out / STATE)

    @classmethod
    def load(cls, out: Path) -> RunState | None:
        path = out / STATE
        if not path.exists():
            return None
        raw = load_state_file(path)
        if "model" not in raw:
            raise TrainingError(
                f"{path} was written by an older trainer that cannot resume mid-run; start a new --out folder"
            )
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
