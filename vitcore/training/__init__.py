"""Training from scratch: a resumable loop, a fast CPU recipe and its throughput benchmark."""

from .loop import train
from .recipe import RECIPES, TrainConfig, lr_factor

__all__ = ["RECIPES", "TrainConfig", "lr_factor", "train"]
