"""Starting a run from a checkpoint's weights instead of a random initialisation."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ..checkpoint import CheckpointError, load_checkpoint
from ..config import ViTConfig
from .recipe import TrainingError

# config fields a warm start may change: training-time regularisation and the class count
# (checked through the class list itself)
_FREE = ("drop_path", "num_classes")


def initial_weights(path: str | Path, model_cfg: ViTConfig, wnids: list[str]) -> dict[str, Tensor]:
    """The weights of checkpoint ``path``, refused unless its architecture and classes match the run's."""
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise TrainingError(f"--init-from: {e}") from e
    theirs, ours = ckpt.model.config.to_dict(), model_cfg.to_dict()
    differ = sorted(k for k in set(theirs) | set(ours) if k not in _FREE and theirs.get(k) != ours.get(k))
    if differ:
        shown = "; ".join(f"{k}: {theirs.get(k)} in the checkpoint, {ours.get(k)} in this run" for k in differ[:3])
        raise TrainingError(
            f"--init-from {path} has another architecture ({shown}); give the matching "
            "--depth/--dim/--heads/--mlp/--patch"
        )
    if ckpt.wnids != wnids:
        raise TrainingError(
            f"--init-from {path} was trained on other classes (or another class order) than this run's training data"
        )
    return ckpt.model.state_dict()
