"""The foundation's commands: evaluate, train, data."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from .cli import UserError, command


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Parsers of the commands defined outside cli.py."""
    from . import cli_circuits, cli_pruning

    cli_circuits.add_parsers(sub)
    cli_pruning.add_parsers(sub)


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .data import load_split
    from .evaluate import evaluate

    ckpt = load_checkpoint(args.checkpoint)
    data = load_split(args.data, args.split, progress=not args.json)
    if ckpt.wnids and ckpt.wnids != data.wnids:
        raise UserError("the checkpoint's classes (wnids) differ from the data set's wnids.txt order")
    result = evaluate(ckpt.model, data, args.batch_size)
    result.update(split=args.split, data=str(args.data or "bundled subset"), checkpoint=str(args.checkpoint or "shipped"))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['n_images']} images  top1 {result['top1']:.4f}  top5 {result['top5']:.4f}  loss {result['loss']:.4f}  {result['images_per_s']:.0f} img/s")
    return 0


@command("train")
def _train(args: argparse.Namespace) -> int:
    from .config import ViTConfig
    from .training import RECIPES, TrainConfig, train

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    cfg = TrainConfig(**{**RECIPES[args.recipe], **given})
    model_cfg = ViTConfig.uniform(args.depth, args.heads, args.mlp, dim=args.dim, head_dim=args.head_dim, patch_size=args.patch)
    final = train(args.out, model_cfg, cfg, args.data, args.val_data, args.device)
    print(json.dumps(final))
    return 0


@command("data")
def _data(args: argparse.Namespace) -> int:
    from . import data, download

    if args.data_command == "download":
        path = download.download(args.url or download.OFFICIAL_URL, Path(args.out), args.sha256)
        print(f"saved {path}")
    elif args.data_command == "make-subset":
        counts = data.make_subset(args.source, args.out or data.BUNDLED_DATA, args.train_per_class, args.val_per_class, args.seed)
        print(json.dumps(counts))
    elif args.data_command == "clear-cache":
        print(f"removed {data.clear_cache()} cached split(s) from {data.cache_dir()}")
    elif args.data_command == "info":
        for split in data.SPLITS:
            s = data.load_split(args.data, split)
            print(f"{split}: {len(s.wnids)} classes, {len(s)} images")
    return 0
