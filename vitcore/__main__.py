"""Command line: ``python -m vitcore <command>``. Every command defaults to the shipped model and data."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
