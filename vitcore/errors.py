"""The base of every error vitcore raises for bad user input, and JSON parsing that raises it."""

import json
from pathlib import Path
from typing import Any


class VitcoreError(ValueError):
    """Bad input (data, checkpoint, image, config or argument); the message names the problem."""


def parse_json(text: str | bytes, what: str, error: type[VitcoreError]) -> Any:
    """Parse a user's JSON; malformed or pathologically nested text raises ``error`` naming ``what``."""
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{what} is not valid JSON ({e})") from e
    except RecursionError:
        raise error(f"{what} nests JSON too deeply") from None


def read_json_object(path: "str | Path", limit: int, what: str, error: type[VitcoreError]) -> dict:
    """A user's JSON file that must hold an object, refused by its size before it is read; ``error`` names
    ``what`` for a missing, too large, malformed or non-object file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    if path.stat().st_size > limit:
        raise error(f"{path}: the {what} is larger than {limit // 1024} KiB")
    value = parse_json(path.read_bytes(), f"{path}: the {what}", error)
    if not isinstance(value, dict):
        raise error(f"{path}: the {what} must be a JSON object")
    return value


class StateFileError(VitcoreError):
    """A resumable run's state file that cannot be read safely."""


def load_state_file(path: "str | Path") -> dict:
    """A run's state file, read with ``torch.load(weights_only=True)``: tensors and plain containers only,
    never arbitrary pickled objects. Anything else raises :class:`StateFileError` in one line."""
    import pickle
    import zipfile

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        AttributeError,
        TypeError,
        ValueError,
    ) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StateFileError(
            f"{path} is not a state file this program wrote (refused without unpickling it: {reason[:200]})"
        ) from None
    if not isinstance(state, dict):
        raise StateFileError(
            f"{path} is not a state file this program wrote (it holds a {type(state).__name__}, not a dict)"
        )
    return state
