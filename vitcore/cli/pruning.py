"""Commands ``prune``, ``finetune`` and ``bench-latency``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..circuits import CORRUPTIONS, METHODS, CircuitResult, discover
from ..circuits.methods import DEFAULT_METHOD
from ..errors import StateFileError, load_state_file
from ..evaluate import evaluate
from ..model_sources import load_model
from ..pruning import prune
from ..pruning.export import provenance
from ..pruning.finetune import finetune_steps
from ..pruning.latency import compare
from .circuits import add_setting_flags, setting_from
from .common import add_option_flags, load_data_for, own_options, parse_classes
from .errors import UserError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="discover a circuit and write the physically pruned model")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--method", choices=list(METHODS), default=DEFAULT_METHOD)
    p.add_argument("--classes", required=True)
    p.add_argument("--corruption", choices=CORRUPTIONS, default="resample")
    add_setting_flags(p)
    add_option_flags(p)
    p.add_argument("--scores", default=None, help="use a saved circuits result (.json) instead of discovering")
    p.add_argument("--out", required=True, help="output checkpoint folder or .zip")
    p.set_defaults(func=run_prune)

    p = sub.add_parser("finetune", help="recovery fine-tuning of a pruned checkpoint (resumes from --out)")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", required=True)
    p.add_argument("--data", default=None, help="train split source (default: bundled subset)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the data per epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--distill", action="store_true", help="distil from the unpruned teacher")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the shipped model)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=run_finetune)

    p = sub.add_parser("bench-latency", help="batch-1 latency and batch-64 throughput against the unpruned model")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None, help="the (pruned) model to measure")
    p.add_argument("--base", default=None, help="the unpruned reference (default: the shipped model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_bench_latency)


def run_prune(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    if args.scores:
        result = CircuitResult.load(args.scores)
    else:
        discovery = load_data_for(ckpt, args.data, "train")
        classes = parse_classes(args.classes, discovery.present())
        result = discover(
            ckpt.model,
            discovery,
            classes,
            args.method,
            args.corruption,
            model_sha256=ckpt.sha256,
            **setting_from(args, args.method),
            **own_options(args, args.method),
        )
    keep = result.keep_mask(ckpt.model.components)
    if keep.sum() == 0:
        raise UserError(
            "the circuit keeps no component: pruning everything leaves no model; lower tau or raise the keep ratio"
        )
    pruned = prune(ckpt.model, keep)
    setting = {k: v for k, v in result.params.items()}
    info = {
        **{k: v for k, v in ckpt.info.items() if k != "model"},
        "provenance": provenance(
            ckpt.sha256, result.method, result.classes, result.corruption, setting, result.kept or [], False
        ),
    }
    save_checkpoint(pruned, args.out, info)
    print(
        f"kept {int(keep.sum())}/{len(keep)} components -> heads {pruned.config.heads}, mlp "
        f"{pruned.config.mlp_widths}; saved {args.out}"
    )
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    out = Path(args.out)
    state_file = out / "finetune_state.pt"
    resuming = state_file.exists()
    ckpt = load_checkpoint(out if resuming else args.checkpoint)
    model = ckpt.model
    teacher = load_checkpoint(args.teacher).model if args.distill else None
    data = load_data_for(ckpt, args.data, "train", progress=True)
    val = load_data_for(ckpt, args.data, "val")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    start = 0
    if resuming:
        state = load_state_file(state_file)
        if not {"optimizer", "epoch"} <= state.keys():
            raise StateFileError(
                f"{state_file} lacks the optimizer and epoch a fine-tuning run writes; start a new --out folder"
            )
        opt.load_state_dict(state["optimizer"])
        start = int(state["epoch"])
    steps = args.steps_per_epoch or max(1, len(data) // args.batch_size)
    print(
        "before:",
        json.dumps({k: round(v, 4) for k, v in evaluate(model, val).items() if k in ("top1", "top5", "loss")}),
    )
    for epoch in range(start, args.epochs):
        bar = tqdm(total=steps, desc=f"finetune {epoch + 1}/{args.epochs}", leave=False)

        def show(step: int, loss: float, bar: tqdm = bar) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

        finetune_steps(
            model,
            data,
            steps,
            batch_size=args.batch_size,
            teacher=teacher,
            temperature=args.temperature,
            seed=epoch,
            optimizer=opt,
            progress=show,
        )
        bar.close()
        ev = evaluate(model, val)
        info = {k: v for k, v in ckpt.info.items() if k != "model"}
        info.setdefault("provenance", {})["finetuned"] = True
        info["finetune"] = {
            "epochs_done": epoch + 1,
            "steps_per_epoch": steps,
            "distill": args.distill,
            "temperature": args.temperature,
            "val_top1": ev["top1"],
        }
        save_checkpoint(model, out, info)
        torch.save({"optimizer": opt.state_dict(), "epoch": epoch + 1}, state_file)
        print(json.dumps({"epoch": epoch + 1, "val_top1": ev["top1"], "val_top5": ev["top5"], "val_loss": ev["loss"]}))
    return 0


def run_bench_latency(args: argparse.Namespace) -> int:
    base = load_checkpoint(args.base).model
    model = load_model(args.checkpoint, args.weights).model
    r = compare(base, model, repeats=args.repeats, threads=args.threads)
    if args.json:
        print(json.dumps(r))
        return 0
    print(
        f"threads {r['threads']} | MACs {r['macs']['base']:,} -> {r['macs']['pruned']:,} ({r['mac_reduction']:.2f}x "
        f"fewer) | params {r['params']['base']:,} -> {r['params']['pruned']:,}"
    )
    print(
        f"batch 1 latency (median ms): {r['batch1_ms']['base']:.2f} -> {r['batch1_ms']['pruned']:.2f}  speed-up "
        f"{r['speedup_batch1']:.2f}x = {r['speedup_over_mac_reduction_batch1']:.2f} x MAC reduction"
    )
    print(
        f"batch 64 throughput (img/s): {r['batch64_img_s']['base']:.0f} -> {r['batch64_img_s']['pruned']:.0f}  "
        f"speed-up {r['speedup_batch64']:.2f}x = {r['speedup_over_mac_reduction_batch64']:.2f} x MAC reduction"
    )
    return 0
