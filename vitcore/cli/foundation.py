"""Commands ``evaluate``, ``train``, ``average``, ``bench-train`` and ``data``."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import fields
from pathlib import Path

import torch

from .. import data as datasets
from .. import download
from ..checkpoint import save_checkpoint
from ..config import ViTConfig
from ..evaluate import evaluate
from ..model_sources import load_model
from ..training import RECIPES, TrainConfig, train
from ..training.averaging import average_checkpoints
from ..training.bench import RECIPE_STAGES, bench_train, named_recipe_throughput
from .common import add_checkpoint, load_data_for
from .errors import UserError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="top-1/top-5/loss of a checkpoint on a split")
    add_checkpoint(p)
    p.add_argument("--split", choices=["val", "train"], default="val")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("train", help="train a ViT from scratch; the same command resumes the run in --out")
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
    p.add_argument(
        "--recipe", choices=sorted(RECIPES), default="default", help="named recipe; the flags below override its values"
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=None)
        else:
            p.add_argument(flag, type=type(f.default), default=None, help=f"default {f.default!r}")
    p.set_defaults(func=run_train)

    p = sub.add_parser(
        "average", help="average the weights of checkpoints of one lineage (a run's epochs, a model soup)"
    )
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CHECKPOINT[=WEIGHT]",
        help="checkpoint folders or zips, each with an optional weight (default 1)",
    )
    p.add_argument(
        "--out", required=True, help="folder (or .zip) to write; the config keeps the last checkpoint's training record"
    )
    p.set_defaults(func=run_average)

    p = sub.add_parser("bench-train", help="training throughput of the recipe's levers, side by side")
    p.add_argument("--data", default=None, help="train split source (default: the bundled subset)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.set_defaults(func=run_bench_train)

    p = sub.add_parser("data", help="download, subset or cache Tiny ImageNet")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("download", help="download the official zip (atomic, checked)")
    d.add_argument("--url", default=None)
    d.add_argument("--out", default="tiny-imagenet-200.zip")
    d.add_argument(
        "--sha256",
        default=None,
        help="expected SHA-256 (default: the official archive's when the URL is the official one)",
    )
    d = dsub.add_parser("make-subset", help="write the bundled subsets from the full set")
    d.add_argument("--source", required=True)
    d.add_argument("--out", default=None)
    d.add_argument("--train-per-class", type=int, default=10)
    d.add_argument("--val-per-class", type=int, default=10)
    d.add_argument("--seed", type=int, default=0)
    dsub.add_parser("clear-cache", help="delete decoded-tensor caches")
    d = dsub.add_parser("info", help="count classes and images of a data source")
    d.add_argument("--data", default=None)
    p.set_defaults(func=run_data)


def run_evaluate(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    data = load_data_for(ckpt, args.data, args.split, progress=not args.json)
    result = evaluate(ckpt.model, data, args.batch_size)
    result.update(
        split=args.split, data=str(args.data or "bundled subset"), checkpoint=str(args.checkpoint or "shipped")
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['n_images']} images  top1 {result['top1']:.4f}  top5 {result['top5']:.4f}  loss "
            f"{result['loss']:.4f}  {result['images_per_s']:.0f} img/s"
        )
    return 0


def run_train(args: argparse.Namespace) -> int:
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    cfg = TrainConfig(**{**RECIPES[args.recipe], **given})
    model_cfg = ViTConfig.uniform(
        args.depth, args.heads, args.mlp, dim=args.dim, head_dim=args.head_dim, patch_size=args.patch
    )
    command = shlex.join(["python", "-m", "vitcore", *getattr(args, "argv", [])])
    final = train(args.out, model_cfg, cfg, args.data, args.val_data, args.device, command=command)
    print(json.dumps(final))
    return 0


def _path_and_weight(arg: str) -> tuple[str, float]:
    path, sep, tail = arg.rpartition("=")
    if not sep:
        return arg, 1.0
    try:
        return path, float(tail)
    except ValueError:
        raise UserError(f"{arg!r}: the part after '=' must be a number (the checkpoint's weight)") from None


def run_average(args: argparse.Namespace) -> int:
    paths, weights = zip(*(_path_and_weight(a) for a in args.checkpoints))
    ckpt = average_checkpoints(list(paths), list(weights))
    ckpt.info["averaged_command"] = shlex.join(["python", "-m", "vitcore", *getattr(args, "argv", [])])
    out = save_checkpoint(ckpt.model, args.out, ckpt.info)
    print(f"wrote {out}: weighted mean of {len(paths)} checkpoints (weights {', '.join(f'{w:g}' for w in weights)})")
    return 0


def run_bench_train(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    data = datasets.load_split(args.data, "train", progress=True)
    rows = bench_train(data, steps=args.steps, rounds=args.rounds)
    print(
        f"threads {torch.get_num_threads()} | {len(data)} training images | {args.rounds} rounds x {args.steps} steps "
        "per variant, interleaved, medians"
    )
    print("| variant | images/s | p25-p75 | x today | s per 100k-image epoch |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['images_per_s']:.0f} | {r['p25']:.0f}-{r['p75']:.0f} | {r['vs_today']:.2f} | "
            f"{r['epoch_s']:.0f} |"
        )
    rates = {r["variant"]: r["images_per_s"] for r in rows}
    whole = {}
    for name in RECIPE_STAGES:
        whole[name], stages = named_recipe_throughput(rates, name)
        print(
            f"{name} recipe (" + " + ".join(f"{e:g} epochs '{v}'" for v, e in stages) + f"): "
            f"{whole[name]:.0f} images/s over the whole recipe = {whole[name] / rows[0]['images_per_s']:.2f}x today"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "recipes_images_per_s": whole, "threads": torch.get_num_threads()}, indent=1)
        )
    return 0


def run_data(args: argparse.Namespace) -> int:
    if args.data_command == "download":
        path = download.download(args.url or download.OFFICIAL_URL, Path(args.out), args.sha256)
        print(f"saved {path}")
    elif args.data_command == "make-subset":
        counts = datasets.make_subset(
            args.source, args.out or datasets.BUNDLED_DATA, args.train_per_class, args.val_per_class, args.seed
        )
        print(json.dumps(counts))
    elif args.data_command == "clear-cache":
        print(f"removed {datasets.clear_cache()} cached split(s) from {datasets.cache_dir()}")
    elif args.data_command == "info":
        for split in datasets.SPLITS:
            s = datasets.load_split(args.data, split)
            print(f"{split}: {len(s.wnids)} classes, {len(s)} images")
    return 0
