"""The base of every error vitcore raises for bad user input, and JSON parsing that raises it."""

import json
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
