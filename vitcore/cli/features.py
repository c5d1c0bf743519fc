"""Command ``features``: train sparse autoencoders on the residual stream (resumable) and measure them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..data import ImageSet
from ..features.quality import measure_quality
from ..features.sae import load_sae
from ..features.shortcut import suppression_table
from ..features.train import LOG_FILE, SAETrainSettings, train_saes
from ..model_sources import load_model
from ..shortcut.mark import apply_mark
from ..shortcut.plant import shortcut_of
from .common import load_data_for
from .errors import UserError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="sparse autoencoders (SAEs) on the residual stream: train, measure")
    fsub = p.add_subparsers(dest="features_command", required=True)

    t = fsub.add_parser("train", help="train TopK SAEs at chosen layers (resumes an interrupted run in --out)")
    t.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    t.add_argument("--data", default=None, help="training images (train split; default: the bundled subset)")
    t.add_argument("--layers", default="4,8", help="comma-separated layers whose incoming residual is read")
    defaults = SAETrainSettings()
    t.add_argument("--expansion", type=int, default=defaults.expansion, help="latents per residual dimension")
    t.add_argument("--k", type=int, default=defaults.k, help="latents kept per token (TopK)")
    t.add_argument("--epochs", type=int, default=defaults.epochs)
    t.add_argument("--max-images", type=int, default=0, help="use at most this many images (0: all)")
    t.add_argument("--lr", type=float, default=defaults.lr)
    t.add_argument("--seed", type=int, default=defaults.seed)
    t.add_argument("--cls-weight", type=float, default=defaults.cls_weight, help="the class token's weight in the loss")
    t.add_argument(
        "--mark-share",
        type=float,
        default=None,
        help="share of training images stamped with the model's planted mark (default: the plant's share of "
        "marked images per batch for a planted model, 0 otherwise)",
    )
    t.add_argument("--out", required=True, help="folder for L<layer>.safetensors, train_log.json and the run state")
    t.set_defaults(func=run_train)

    q = fsub.add_parser("quality", help="variance explained, L0, dead/dense latents, spliced top-1 and KL")
    q.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    q.add_argument("--data", default=None, help="evaluation images (val split; default: the bundled subset)")
    q.add_argument("--sae", required=True, nargs="+", help="SAE file(s)")
    q.set_defaults(func=run_quality)

    h = fsub.add_parser("half", help="copy an SAE file with its weights in float16 (half the size, to ship)")
    h.add_argument("--sae", required=True)
    h.add_argument("--out", required=True)
    h.set_defaults(func=run_half)

    c = fsub.add_parser("shortcut", help="a planted model's mark, by features: find them, suppress them")
    c.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    c.add_argument("--sae", required=True, help="an SAE file trained on the planted model")
    c.add_argument("--data", default=None, help="images to find the mark's features on (train split)")
    c.add_argument("--images", type=int, default=200, help="discovery images of other classes (default 200)")
    c.add_argument("--eval-data", default=None, help="evaluation images (val split; default: the bundled subset)")
    c.set_defaults(func=run_shortcut)


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--layers {text!r}: give comma-separated layer numbers, e.g. 4,8") from None


def run_train(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    settings = SAETrainSettings(
        layers=_layers(args.layers),
        expansion=args.expansion,
        k=args.k,
        epochs=args.epochs,
        max_images=args.max_images,
        lr=args.lr,
        seed=args.seed,
        cls_weight=args.cls_weight,
    )
    settings.check(ckpt.model)

    share = args.mark_share
    shortcut = shortcut_of(ckpt.info)
    if share and shortcut is None:
        raise UserError("--mark-share needs a model with a planted shortcut (its config names the mark)")
    data = load_data_for(ckpt, args.data, "train", progress=True)
    if share is None:
        share = float(ckpt.info.get("shortcut", {}).get("plant", {}).get("target_fraction", 0.0)) if shortcut else 0.0
    if share > 0:
        if shortcut is None:
            raise UserError("--mark-share needs a model with a planted shortcut (its config names the mark)")
        where = torch.rand(len(data), generator=torch.Generator().manual_seed(args.seed)) < share
        data = ImageSet(apply_mark(data.images, shortcut.mark, where), data.labels, data.wnids, data.names, data.files)
        print(f"{int(where.sum())} of {len(data)} training images carry the planted mark", file=sys.stderr)

    def report(p) -> None:  # noqa: ANN001
        figures = ", ".join(f"L{layer} loss {p.loss[layer]:.4f} fve {p.fve[layer]:.3f}" for layer in p.loss)
        print(f"chunk {p.chunk}/{p.chunks} {p.seconds:.0f} s: {figures}", file=sys.stderr, flush=True)

    train_saes(ckpt.model, data, settings, args.out, ckpt.sha256, progress=report)
    log = json.loads((Path(args.out) / LOG_FILE).read_text())
    print(f"wrote {', '.join(f'L{layer}.safetensors' for layer in settings.layers)} to {args.out}", file=sys.stderr)
    last = log["chunks"][-1] if log["chunks"] else {}
    summary = {
        "settings": log["settings"],
        "images": len(data),
        "mark_share": share,
        "seconds": round(log["seconds"], 1),
        "seconds_per_layer": round(log["seconds"] / len(settings.layers), 1),
        "last_chunk": last,
    }
    print(json.dumps(summary))
    return 0


def run_quality(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    data = load_data_for(ckpt, args.data, "val")
    rows = []
    for path in args.sae:
        sae = load_sae(path, ckpt.model.config.dim, len(ckpt.model.blocks), ckpt.sha256)
        row = {"sae": str(Path(path)), **measure_quality(ckpt.model, sae, data).as_dict()}
        rows.append(row)
        print(
            f"{path}: FVE {row['fve']:.3f} (class token {row['fve_cls']:.3f}), L0 {row['mean_l0']:.1f}, "
            f"dead {row['dead_fraction']:.1%}, dense {row['dense_fraction']:.1%}, top-1 {row['top1_model']:.4f} -> "
            f"{row['top1_spliced']:.4f} spliced, KL {row['kl_spliced']:.3f}",
            file=sys.stderr,
        )
    print(json.dumps(rows))
    return 0


def run_shortcut(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    shortcut = shortcut_of(ckpt.info)
    if shortcut is None:
        raise UserError("this model has no planted shortcut (its config names none): give --checkpoint assets/shortcut")
    sae = load_sae(args.sae, ckpt.model.config.dim, len(ckpt.model.blocks), ckpt.sha256)
    train = load_data_for(ckpt, args.data, "train")
    others = (train.labels != train.class_index(shortcut.target)).nonzero()[:, 0]
    pick = others[torch.randperm(len(others), generator=torch.Generator().manual_seed(0))[: args.images]]
    eval_set = load_data_for(ckpt, args.eval_data, "val")
    table = suppression_table(ckpt.model, sae, train.subset(pick), eval_set, shortcut)
    for row in table["rows"]:
        print(
            f"{row['suppressed']} feature(s) suppressed: flip rate {row['flip_rate']:.3f}, clean top-1 "
            f"{row['clean_top1']:.4f}",
            file=sys.stderr,
        )
    print(json.dumps({"sae": str(args.sae), "discovery_images": len(pick), "eval_images": len(eval_set), **table}))
    return 0


def run_half(args: argparse.Namespace) -> int:
    sae = load_sae(args.sae)
    sae.save(args.out, dtype=torch.float16)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size:,} bytes, float16)", file=sys.stderr)
    return 0
