"""vitcore: a component-addressable ViT for Tiny ImageNet, with circuit discovery and physical pruning."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, load_pretrained, save_checkpoint
from .components import Component, ComponentSpace
from .config import ConfigError, ViTConfig
from .data import DataError, ImageSet, load_split
from .model import Activations, VisionTransformer
from .model_sources import ModelSourceError, load_model

__all__ = [
    "Activations",
    "Checkpoint",
    "CheckpointError",
    "Component",
    "ComponentSpace",
    "ConfigError",
    "DataError",
    "ImageSet",
    "ModelSourceError",
    "ViTConfig",
    "VisionTransformer",
    "load_checkpoint",
    "load_model",
    "load_pretrained",
    "load_split",
    "save_checkpoint",
]
