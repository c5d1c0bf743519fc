"""Where the shipped checkpoint and the bundled data subsets live.

``$VITCORE_ASSETS`` wins when set; otherwise the ``assets/`` folder beside the package (a checkout,
or ``pip install -e .``).
"""

from __future__ import annotations

import os
from pathlib import Path


def assets_dir() -> Path:
    """The assets folder (it may not exist: loading from it then fails with a clear error)."""
    env = os.environ.get("VITCORE_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "assets"


def shipped_checkpoint() -> Path:
    return assets_dir() / "model"


def shortcut_checkpoint() -> Path:
    """The shipped model with a planted shortcut (``python -m vitcore shortcut plant``; card in its README)."""
    return assets_dir() / "shortcut"


def example_images() -> dict[str, Path]:
    """The example images to try (``tools/make_examples.py``), by a readable name; empty when none ship."""
    import json

    listing = assets_dir() / "examples" / "examples.json"
    if not listing.exists():
        return {}
    return {
        entry["file"].rsplit(".", 1)[0].replace("_", " "): assets_dir() / "examples" / entry["file"]
        for entry in json.loads(listing.read_text())
    }


def bundled_data() -> Path:
    return assets_dir() / "tiny-imagenet-subset.zip"


def sae_folders() -> list[Path]:
    """Where shipped SAEs live: one ``sae/`` folder beside each shipped model (``python -m vitcore features
    train``; card in each folder's README)."""
    return [shipped_checkpoint() / "sae", shortcut_checkpoint() / "sae"]
