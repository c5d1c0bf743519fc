"""The SAEs that ship for a model: every SAE file in the shipped SAE folders trained on that model's weights."""

from __future__ import annotations

from pathlib import Path

from ..assets import sae_folders
from .sae import SAEConfig, SAEError, read_config


def saes_for(model_sha256: str) -> list[tuple[Path, SAEConfig]]:
    """``(file, config)`` of each shipped SAE trained on the model with these weights, by layer."""
    found = []
    for folder in sae_folders():
        for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                config = read_config(path)
            except SAEError:
                continue  # not ours to show; `vitcore features quality` names the problem
            if config.model_sha256 == model_sha256:
                found.append((path, config))
    return sorted(found, key=lambda item: item[1].layer)
