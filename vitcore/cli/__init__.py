"""Command line: ``vitcore <command>`` or ``python -m vitcore <command>``.

Every command defaults to the shipped model and the bundled data; bad input prints one
``error:`` line and exits with 2.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import VitcoreError
from . import atlas, circuits, deploy, edges, features, foundation, inspect, pruning, shortcut, sweep
from .errors import UserError

__all__ = ["UserError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitcore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (foundation, circuits, edges, inspect, pruning, deploy, sweep, atlas, shortcut, features):
        group.add_parsers(sub)
    _add_weights(parser)
    return parser


def _add_weights(parser: argparse.ArgumentParser) -> None:
    """Every command (and subcommand) that takes a model takes a weights file for a timm name too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _add_weights(command)
    if any(a.dest == "checkpoint" for a in parser._actions):
        parser.add_argument(
            "--weights",
            default=None,
            help="with --model timm:NAME: a local weights file (safetensors, or .pth/.bin read as weights only)",
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # as typed, for commands that record how they were run
    try:
        return args.func(args)
    except VitcoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
