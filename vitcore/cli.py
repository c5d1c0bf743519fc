"""Argument parsing and dispatch for ``python -m vitcore``; user errors print one clear line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Callable

from .errors import VitcoreError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class UserError(VitcoreError):
    """A bad command-line argument."""


def command(name: str):
    def register(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return register


def _add_common(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument("--checkpoint", default=None, help="checkpoint folder or zip (default: the shipped model)")
    if data:
        p.add_argument("--data", default=None, help="Tiny ImageNet folder or zip (default: the bundled subsets)")


def build_parser() -> argparse.ArgumentParser:
    from .training import RECIPES, TrainConfig

    parser = argparse.ArgumentParser(prog="python -m vitcore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("evaluate", help="top-1/top-5/loss of a checkpoint on a split")
    _add_common(p)
    p.add_argument("--split", choices=["val", "train"], default="val")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("train", help="train a ViT from scratch (resumes from --out)")
    p.add_argument("--data", default=None)
    p.add_argument("--val-data", default=None, help="val split source (default: --data)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)
    p.add_argument("--depth", type=int, default=9)
    p.add_argument("--dim", type=int, default=192)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=16)
    p.add_argument("--mlp", type=int, default=384)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="default", help="named recipe; the flags below override its values")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=None)
        else:
            p.add_argument(flag, type=type(f.default), default=None, help=f"default {f.default}")

    p = sub.add_parser("data", help="download, subset or cache Tiny ImageNet")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("download", help="download the official zip (atomic, checked)")
    d.add_argument("--url", default=None)
    d.add_argument("--out", default="tiny-imagenet-200.zip")
    d.add_argument("--sha256", default=None, help="expected SHA-256 (default: the official archive's when the URL is the official one)")
    d = dsub.add_parser("make-subset", help="write the bundled subsets from the full set")
    d.add_argument("--source", required=True)
    d.add_argument("--out", default=None)
    d.add_argument("--train-per-class", type=int, default=10)
    d.add_argument("--val-per-class", type=int, default=10)
    d.add_argument("--seed", type=int, default=0)
    dsub.add_parser("clear-cache", help="delete decoded-tensor caches")
    d = dsub.add_parser("info", help="count classes and images of a data source")
    d.add_argument("--data", default=None)

    from . import cli_commands

    cli_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from . import cli_commands  # noqa: F401  registers the commands

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except VitcoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
