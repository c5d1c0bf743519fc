"""Argument helpers shared by the command groups."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint
from ..data import ImageSet
from ..image_folder import load_data
from .errors import UserError


def add_checkpoint(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument(
        "--checkpoint",
        "--model",
        dest="checkpoint",
        default=None,
        help="checkpoint folder or zip, local timm folder, or timm:NAME (default: the shipped model)",
    )
    if data:
        p.add_argument(
            "--data",
            default=None,
            help="Tiny ImageNet, or a labelled image folder or zip (class_name/*.jpg) (default: the bundled subsets)",
        )


def parse_classes(arg: str | None, wnids: list[str]) -> list[str]:
    """Comma-separated wnids, 'all', or (None) the first three classes; unknown wnids are refused."""
    if arg is None:
        return wnids[:3]
    if arg == "all":
        return list(wnids)
    classes = [c.strip() for c in arg.split(",") if c.strip()]
    if not classes:
        raise UserError("--classes is empty: give comma-separated wnids")
    unknown = [c for c in classes if c not in wnids]
    if unknown:
        raise UserError(
            f"unknown class(es) {', '.join(unknown)}, or none of their images in the data; wnids look like n01443537"
        )
    return classes


def progress_bar(desc: str) -> tuple[Any, Callable[[float], None]]:
    """A tqdm bar driven by fractions in [0, 1]."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=desc, leave=False, unit="%")

    def update(fraction: float) -> None:
        bar.n = round(100 * fraction)
        bar.refresh()

    return bar, update


def add_option_flags(p: argparse.ArgumentParser) -> None:
    """One flag per run option of the registered methods (--n-steps, --steps, ...), defaults from the registry."""
    from ..circuits.methods import all_options, methods_reading

    for o in all_options():
        p.add_argument(
            o.flag,
            type=int,
            default=None,
            dest=o.field,
            help=f"{o.help} ({', '.join(methods_reading(o.field))}; default {o.default}, range {o.low}-{o.high})",
        )


def options_from(args: argparse.Namespace) -> dict[str, int]:
    """The run options given on the command line, by field (options not given are left to each method's default)."""
    from ..circuits.methods import all_options

    return {o.field: getattr(args, o.field) for o in all_options() if getattr(args, o.field, None) is not None}


def own_options(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The run options given on the command line that ``method`` reads."""
    from ..circuits.methods import get_method

    return get_method(method).own_options(options_from(args))


def load_data_for(ckpt: Checkpoint, path: str | Path | None, split: str, **kwargs: Any) -> ImageSet:
    """A split of the data at ``path`` for ``ckpt`` (:func:`vitcore.image_folder.load_data`)."""
    return load_data(path, ckpt, split, **kwargs)
