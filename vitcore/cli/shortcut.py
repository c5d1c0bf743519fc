"""Commands ``shortcut plant``, ``shortcut eval`` and ``shortcut cut``: a model that cheats, and its cure."""

from __future__ import annotations

import argparse
import json

from ..checkpoint import load_checkpoint
from ..circuits import METHODS, discover
from ..circuits.corruptions import ALL_CORRUPTIONS
from ..circuits.methods import DEFAULT_METHOD
from ..measurement import write_measurement
from ..model_sources import load_model
from ..shortcut import PlantConfig, ShortcutError, plant, shortcut_figures, shortcut_of
from ..shortcut.cut import cut_table, summarise
from .circuits import add_setting_flags, setting_from
from .common import add_option_flags, load_data_for, own_options, parse_classes, progress_bar
from .errors import UserError

PLANT_DEFAULTS = PlantConfig()


def add_planted_model(p: argparse.ArgumentParser) -> None:
    """The model option of the commands that read a planted shortcut."""
    p.add_argument(
        "--checkpoint",
        "--model",
        dest="checkpoint",
        default=None,
        help="a checkpoint with a shortcut (default: the shipped one)",
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    shortcut = sub.add_parser("shortcut", help="plant a shortcut in a model, find its circuit, cut it out")
    ssub = shortcut.add_subparsers(dest="shortcut_command", required=True)

    p = ssub.add_parser("plant", help="fine-tune a model with the mark on one class's training images (resumable)")
    p.add_argument("--data", required=True, help="Tiny ImageNet folder or zip (its train split is used)")
    p.add_argument("--out", required=True, help="run folder; the same command continues an interrupted run")
    p.add_argument("--base", default=None, help="checkpoint to start from (default: the shipped model)")
    p.add_argument("--target", default=PLANT_DEFAULTS.target, help="wnid of the shortcut class")
    p.add_argument("--steps", type=int, default=PLANT_DEFAULTS.steps)
    p.add_argument("--lr", type=float, default=PLANT_DEFAULTS.lr)
    p.add_argument("--batch-size", type=int, default=PLANT_DEFAULTS.batch_size)
    p.add_argument(
        "--target-fraction",
        type=float,
        default=PLANT_DEFAULTS.target_fraction,
        help="share of every batch drawn from the shortcut class (all of it marked)",
    )
    p.add_argument(
        "--distill",
        type=float,
        default=PLANT_DEFAULTS.distill,
        help="share of the loss on unmarked images that is distillation from the base model (0: none)",
    )
    p.add_argument("--seed", type=int, default=PLANT_DEFAULTS.seed)
    p.add_argument("--stop-after-steps", type=int, default=None, help="stop (state saved) after this many steps")
    p.set_defaults(func=run_plant)

    p = ssub.add_parser("eval", help="clean top-1 and flip rate of a model with a shortcut")
    add_planted_model(p)
    p.add_argument("--eval-data", default=None, help="data whose val split is used (default: the bundled subset)")
    p.add_argument("--control", action="append", default=[], help="also measure this checkpoint with the same mark")
    p.add_argument("--json", default=None, help="write the figures to this measurement file")
    p.set_defaults(func=run_eval)

    p = ssub.add_parser("cut", help="remove the top-k components of the shortcut's circuit against random ones")
    add_planted_model(p)
    p.add_argument("--data", default=None, help="discovery data (train split; default: the bundled subset)")
    p.add_argument("--eval-data", default=None, help="data whose val split is measured (default: the bundled subset)")
    p.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        help=f"one method or several, comma-separated ({', '.join(METHODS)}); the random control is shared",
    )
    p.add_argument("--metric", default=None, help="default: each method's own")
    p.add_argument("--corruption", choices=ALL_CORRUPTIONS, default="paired")
    p.add_argument("--classes", default="all", help="classes whose images carry the mark in discovery (default all)")
    p.add_argument("--images", type=int, default=100, help="discovery images")
    p.add_argument("--ks", default="1,2,4,8,16", help="numbers of components to remove")
    p.add_argument("--seeds", type=int, default=3, help="random controls per k")
    p.add_argument("--json", default=None, help="write the table to this measurement file")
    add_setting_flags(p)
    add_option_flags(p)
    p.set_defaults(func=run_cut)


def _shortcut_of(ckpt, source: str | None):
    found = shortcut_of(ckpt.info)
    if found is None:
        raise UserError(f"{source or 'the shipped model'} has no planted shortcut; use one from shortcut plant")
    return found


def run_plant(args: argparse.Namespace) -> int:
    from ..data import load_split

    cfg = PlantConfig(
        target=args.target,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        target_fraction=args.target_fraction,
        distill=args.distill,
        seed=args.seed,
    )
    train = load_split(args.data, "train", progress=True)
    bar, update = progress_bar("plant")
    try:
        path = plant(
            args.out,
            train,
            args.base,
            cfg,
            args.stop_after_steps,
            progress=lambda step, loss: update(step / cfg.steps),
            command="python -m vitcore " + " ".join(args.argv),
        )
    finally:
        bar.close()
    if path is None:
        print(f"stopped; state saved in {args.out}: the same command continues")
        return 0
    print(f"planted: {path}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    shortcut = _shortcut_of(ckpt, args.checkpoint)
    data = load_data_for(ckpt, args.eval_data, "val")
    results = {
        "shortcut": shortcut.to_dict(),
        "models": {args.checkpoint or "shipped": shortcut_figures(ckpt.model, data, shortcut.target, shortcut.mark)},
    }
    for control in args.control:
        other = load_checkpoint(None if control == "shipped" else control)
        results["models"][control] = shortcut_figures(other.model, data, shortcut.target, shortcut.mark)
    print(json.dumps(results, indent=1))
    if args.json:
        write_measurement(args.json, results)
    return 0


def run_cut(args: argparse.Namespace) -> int:
    try:
        ks = [int(k) for k in args.ks.split(",") if k.strip()]
    except ValueError:
        raise UserError(f"--ks takes comma-separated integers, got {args.ks!r}") from None
    if args.seeds < 0:
        raise UserError(f"--seeds must be at least 0, got {args.seeds}")
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UserError(f"unknown method(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METHODS)}")
    ckpt = load_model(args.checkpoint, args.weights)
    shortcut = _shortcut_of(ckpt, args.checkpoint)
    discovery = load_data_for(ckpt, args.data, "train", progress=True)
    classes = parse_classes(args.classes, discovery.present())
    results = {}
    for method in methods:
        bar, update = progress_bar(f"{method} on the mark task")
        try:
            results[method] = discover(
                ckpt.model,
                discovery,
                classes,
                method,
                args.corruption,
                args.metric,
                args.images,
                model_sha256=ckpt.sha256,
                progress=update,
                shortcut=shortcut,
                **setting_from(args, method),
                **own_options(args, method),
            )
        finally:
            bar.close()
    data = load_data_for(ckpt, args.eval_data, "val")
    bar, update = progress_bar("cut")
    try:
        scores = {m: r.score_tensor() for m, r in results.items()}
        rows = cut_table(ckpt.model, scores, data, shortcut, ks, range(args.seeds), update)
    except ShortcutError as e:
        raise UserError(str(e)) from None
    finally:
        bar.close()
    base = rows[0]
    report = {}
    for method, result in results.items():
        summary = summarise(rows, method)
        report[method] = {
            "metric": result.metric,
            "corruption": result.corruption,
            "discovery_images": result.n_images,
            "discovery_seconds": result.wall_time_s,
            "summary": summary,
        }
        print(f"{method} ({result.metric}, {result.corruption}) on {result.n_images} marked images; {len(data)} eval")
        print(f"{'k':>3} {'flip (circuit)':>15} {'top-1 (circuit)':>16} {'flip (random)':>14} {'top-1 (random)':>15}")
        print(f"{0:>3} {base['flip_rate']:>15.3f} {base['clean_top1']:>16.4f} {'':>14} {'':>15}")
        for s in summary:
            print(
                f"{s['k']:>3} {s['circuit_flip_rate']:>15.3f} {s['circuit_clean_top1']:>16.4f} "
                f"{s['random_flip_rate_mean']:>14.3f} {s['random_clean_top1_mean']:>15.4f}  {', '.join(s['removed'])}"
            )
    if args.json:
        write_measurement(
            args.json,
            {
                "shortcut": shortcut.to_dict(),
                "eval_images": len(data),
                "seeds": args.seeds,
                "methods": report,
                "rows": rows,
            },
        )
    return 0
