"""Command ``sweep``: the Pareto table and chart, and the target-accuracy searches."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from ..circuits import CORRUPTIONS, METHODS, discover, get_method
from ..data import ImageSet
from ..evaluate import predict_logits
from ..model import VisionTransformer
from ..model_sources import load_model
from ..pruning.pareto import pareto_frontier
from ..pruning.report import frontier_chart, write_csv
from ..pruning.search import bisect_keep, bisect_setting
from ..pruning.sweep import default_settings, run_sweep
from .common import add_option_flags, load_data_for, options_from, own_options, parse_classes
from .errors import UserError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="Pareto sweep over methods and settings")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None, help="discovery / fine-tune data (train split)")
    p.add_argument("--eval-data", default=None, help="eval data (val split)")
    p.add_argument("--classes", default=None, help="comma-separated wnids, or 'all' (default: first three classes)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--corruption", choices=CORRUPTIONS, default="resample")
    p.add_argument("--finetune-steps", type=int, default=30, help="recovery budget per configuration (0: none)")
    p.add_argument("--images", type=int, default=None)
    add_option_flags(p)
    p.add_argument(
        "--target-accuracy",
        type=float,
        default=None,
        help="find the smallest keep-set per method with chosen-class top-1 >= A",
    )
    p.add_argument("--target-only", action="store_true", help="skip the sweep table; only the --target-accuracy search")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="sweep", help="output prefix: writes PREFIX.csv, PREFIX.html, PREFIX.png")
    p.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    if args.target_only and args.target_accuracy is None:
        raise UserError("--target-only needs --target-accuracy A")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    torch.set_num_threads(args.threads)
    ckpt = load_model(args.checkpoint, args.weights)
    discovery = load_data_for(ckpt, args.data, "train", progress=True)
    eval_set = load_data_for(ckpt, args.eval_data, "val", progress=True)
    classes = parse_classes(args.classes, eval_set.present())
    chosen = eval_set.chosen(classes)
    print(
        f"{len(classes)} classes, {int(chosen.sum())} chosen-class eval images of {len(eval_set)}"
        + (
            ""
            if args.target_only
            else f"; fine-tuning: {args.finetune_steps} steps of batch 64 (CE + KD from the unpruned model, T=2); "
            f"latency: {args.threads} threads, interleaved, medians"
        )
    )
    if not args.target_only:
        _sweep_table(args, ckpt.model, discovery, eval_set, classes, methods)
    if args.target_accuracy is not None:
        _target_search(args, ckpt.model, discovery, eval_set, classes, chosen, methods)
    return 0


def _sweep_table(
    args: argparse.Namespace,
    model: VisionTransformer,
    discovery: ImageSet,
    eval_set: ImageSet,
    classes: list[str],
    methods: list[str],
) -> None:
    bar = tqdm(total=100, desc="sweep", unit="%")

    def progress(fraction: float, what: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(what)
        bar.refresh()

    rows = run_sweep(
        model,
        discovery,
        eval_set,
        classes,
        default_settings(methods),
        args.corruption,
        args.finetune_steps,
        args.images,
        options=options_from(args),
        progress=progress,
    )
    bar.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out.with_suffix(".csv"))
    chart = frontier_chart(rows)
    chart.save(str(out.with_suffix(".html")))
    try:
        chart.save(str(out.with_suffix(".png")), scale_factor=2)
    except Exception as e:  # PNG needs vl-convert; the CSV and HTML are written regardless
        print(f"note: PNG not written ({e})")
    front = set(pareto_frontier([(r["latency_b1_ms"], 1 - r["top1_chosen"]) for r in rows]))
    print(
        "| method | setting | FT | heads | chunks | MMACs | b1 ms | b64 img/s | top1 chosen | top1 all | KL | disc s "
        "| frontier |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        print(
            f"| {r['method']} | {r['setting']} | {'yes' if r['finetuned'] else 'no'} | {r['kept_heads']} | "
            f"{r['kept_chunks']} | {r['macs'] / 1e6:.1f} | {r['latency_b1_ms']:.2f} | "
            f"{r['throughput_b64_img_s']:.0f} | {r['top1_chosen']:.3f} | {r['top1_all']:.3f} | {r['kl']:.3f} | "
            f"{r['discovery_s']:.1f} | {'*' if i in front else ''} |"
        )
    print(f"wrote {out.with_suffix('.csv')}, {out.with_suffix('.html')}")


def _target_search(
    args: argparse.Namespace,
    model: VisionTransformer,
    discovery: ImageSet,
    eval_set: ImageSet,
    classes: list[str],
    chosen: torch.Tensor,
    methods: list[str],
) -> None:
    base_logits = predict_logits(model, eval_set.images)
    for method in methods:
        entry = get_method(method)
        if entry.target_search == "setting":
            value, ev, kept = bisect_setting(
                model,
                discovery,
                eval_set,
                classes,
                chosen,
                args.target_accuracy,
                method,
                args.corruption,
                base_logits=base_logits,
                options=options_from(args),
            )
            what = f"{entry.param.name} {value:.4f}, keeps {kept} components"
        else:
            res = discover(model, discovery, classes, method, args.corruption, **own_options(args, method))
            ratio, ev = bisect_keep(
                model, res.score_tensor(), eval_set, chosen, args.target_accuracy, base_logits=base_logits
            )
            what = f"keeps {ratio:.3f} of components (ranked by its scores)"
        status = "reached" if ev.top1_chosen >= args.target_accuracy else "NOT reachable"
        print(
            f"target top-1 {args.target_accuracy}: {method} {what}; top1 chosen {ev.top1_chosen:.3f}, all "
            f"{ev.top1_all:.3f}: {status}",
            flush=True,
        )
