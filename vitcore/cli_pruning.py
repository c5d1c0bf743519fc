"""Commands ``prune``, ``finetune``, ``export``, ``bench-latency`` and ``sweep``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .cli import UserError, command


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from .circuits import CORRUPTIONS, METHODS

    p = sub.add_parser("prune", help="discover a circuit and write the physically pruned model")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--method", choices=METHODS, default="eap")
    p.add_argument("--classes", required=True)
    p.add_argument("--corruption", choices=CORRUPTIONS, default="resample")
    p.add_argument("--keep", type=float, default=0.5, help="keep ratio (EAP, EAP-IG)")
    p.add_argument("--tau", type=float, default=0.05, help="ACDC threshold")
    p.add_argument("--sparsity", type=float, default=0.5, help="learned-mask sparsity")
    p.add_argument("--scores", default=None, help="use a saved circuits result (.json) instead of discovering")
    p.add_argument("--out", required=True, help="output checkpoint folder or .zip")

    p = sub.add_parser("finetune", help="recovery fine-tuning of a pruned checkpoint (resumes from --out)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=None, help="train split source (default: bundled subset)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the data per epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--distill", action="store_true", help="distil from the unpruned teacher")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the shipped model)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--out", required=True)

    p = sub.add_parser("export", help="export a checkpoint as a zip or ONNX")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--format", choices=["zip", "onnx"], required=True)
    p.add_argument("--out", required=True)

    p = sub.add_parser("bench-latency", help="batch-1 latency and batch-64 throughput against the unpruned model")
    p.add_argument("--checkpoint", default=None, help="the (pruned) model to measure")
    p.add_argument("--base", default=None, help="the unpruned reference (default: the shipped model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("sweep", help="Pareto sweep over methods and settings")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--data", default=None, help="discovery / fine-tune data (train split)")
    p.add_argument("--eval-data", default=None, help="eval data (val split)")
    p.add_argument("--classes", default=None, help="comma-separated wnids, or 'all' (default: first three classes)")
    p.add_argument("--methods", default="eap,eap-ig,acdc,learned")
    p.add_argument("--corruption", choices=CORRUPTIONS, default="resample")
    p.add_argument("--finetune-steps", type=int, default=30, help="recovery budget per configuration (0: none)")
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--learned-steps", type=int, default=200)
    p.add_argument("--target-accuracy", type=float, default=None, help="find the smallest keep-set per method with chosen-class top-1 >= A")
    p.add_argument("--target-only", action="store_true", help="skip the sweep table; only the --target-accuracy search")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="sweep", help="output prefix: writes PREFIX.csv, PREFIX.html, PREFIX.png")


def _classes(arg: str | None, wnids: list[str]) -> list[str]:
    if arg is None:
        return wnids[:3]
    if arg == "all":
        return list(wnids)
    return [c.strip() for c in arg.split(",") if c.strip()]


@command("prune")
def _prune(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .circuits import CircuitResult, discover
    from .data import load_split
    from .pruning import prune
    from .pruning.export import provenance

    ckpt = load_checkpoint(args.checkpoint)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    if args.scores:
        result = CircuitResult.load(args.scores)
    else:
        result = discover(ckpt.model, load_split(args.data, "train"), classes, args.method, args.corruption, keep=args.keep, tau=args.tau, sparsity=args.sparsity, model_sha256=ckpt.sha256)
    keep = result.keep_mask(ckpt.model.components)
    if keep.sum() == 0:
        raise UserError("the circuit keeps no component: pruning everything leaves no model; lower tau or raise the keep ratio")
    pruned = prune(ckpt.model, keep)
    setting = {k: v for k, v in result.params.items()}
    info = {**{k: v for k, v in ckpt.info.items() if k != "model"}, "provenance": provenance(ckpt.sha256, result.method, result.classes, result.corruption, setting, result.kept or [], False)}
    save_checkpoint(pruned, args.out, info)
    print(f"kept {int(keep.sum())}/{len(keep)} components -> heads {pruned.config.heads}, mlp {pruned.config.mlp_widths}; saved {args.out}")
    return 0


@command("finetune")
def _finetune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import load_split
    from .evaluate import evaluate
    from .pruning.finetune import finetune_steps

    out = Path(args.out)
    state_file = out / "finetune_state.pt"
    resuming = state_file.exists()
    ckpt = load_checkpoint(out if resuming else args.checkpoint)
    model = ckpt.model
    teacher = load_checkpoint(args.teacher).model if args.distill else None
    data = load_split(args.data, "train", progress=True)
    val = load_split(args.data, "val")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    start = 0
    if resuming:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        start = int(state["epoch"])
    steps = args.steps_per_epoch or max(1, len(data) // args.batch_size)
    print(f"before: {json.dumps({k: round(v, 4) for k, v in evaluate(model, val).items() if k in ('top1', 'top5', 'loss')})}")
    for epoch in range(start, args.epochs):
        bar = tqdm(total=steps, desc=f"finetune {epoch + 1}/{args.epochs}", leave=False)
        finetune_steps(model, data, steps, batch_size=args.batch_size, teacher=teacher, temperature=args.temperature, seed=epoch, optimizer=opt,
                       progress=lambda s, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.3f}")))
        bar.close()
        ev = evaluate(model, val)
        info = {k: v for k, v in ckpt.info.items() if k != "model"}
        info.setdefault("provenance", {})["finetuned"] = True
        info["finetune"] = {"epochs_done": epoch + 1, "steps_per_epoch": steps, "distill": args.distill, "temperature": args.temperature, "val_top1": ev["top1"]}
        save_checkpoint(model, out, info)
        torch.save({"optimizer": opt.state_dict(), "epoch": epoch + 1}, state_file)
        print(json.dumps({"epoch": epoch + 1, "val_top1": ev["top1"], "val_top5": ev["top5"], "val_loss": ev["loss"]}))
    return 0


@command("export")
def _export(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .pruning.export import export_onnx, export_zip

    ckpt = load_checkpoint(args.checkpoint)
    data = export_zip(ckpt.model, {k: v for k, v in ckpt.info.items() if k != "model"}, args.out) if args.format == "zip" else export_onnx(ckpt.model, args.out)
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB)")
    return 0


@command("bench-latency")
def _bench_latency(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .pruning.latency import compare

    base = load_checkpoint(args.base).model
    model = load_checkpoint(args.checkpoint).model
    r = compare(base, model, repeats=args.repeats, threads=args.threads)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"threads {r['threads']} | MACs {r['macs']['base']:,} -> {r['macs']['pruned']:,} ({r['mac_reduction']:.2f}x fewer) | params {r['params']['base']:,} -> {r['params']['pruned']:,}")
    print(f"batch 1 latency (median ms): {r['batch1_ms']['base']:.2f} -> {r['batch1_ms']['pruned']:.2f}  speed-up {r['speedup_batch1']:.2f}x = {r['speedup_over_mac_reduction_batch1']:.2f} x MAC reduction")
    print(f"batch 64 throughput (img/s): {r['batch64_img_s']['base']:.0f} -> {r['batch64_img_s']['pruned']:.0f}  speed-up {r['speedup_batch64']:.2f}x = {r['speedup_over_mac_reduction_batch64']:.2f} x MAC reduction")
    return 0


@command("sweep")
def _sweep(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .data import load_split
    from .pruning.sweep import DEFAULT_SETTINGS

    if args.target_only and args.target_accuracy is None:
        raise UserError("--target-only needs --target-accuracy A")
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    discovery = load_split(args.data, "train", progress=True)
    eval_set = load_split(args.eval_data, "val", progress=True)
    classes = _classes(args.classes, eval_set.wnids)
    methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m not in DEFAULT_SETTINGS]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}")
    chosen = torch.isin(eval_set.labels, torch.tensor([eval_set.class_index(w) for w in classes]))
    print(f"{len(classes)} classes, {int(chosen.sum())} chosen-class eval images of {len(eval_set)}" + ("" if args.target_only else
          f"; fine-tuning: {args.finetune_steps} steps of batch 64 (CE + KD from the unpruned model, T=2); latency: {args.threads} threads, interleaved, medians"))
    if not args.target_only:
        _sweep_table(args, ckpt.model, discovery, eval_set, classes, methods)
    if args.target_accuracy is not None:
        _target_search(args, ckpt.model, discovery, eval_set, classes, chosen, methods)
    return 0


def _sweep_table(args: argparse.Namespace, model, discovery, eval_set, classes: list[str], methods: list[str]) -> None:
    from tqdm import tqdm

    from .pruning.sweep import DEFAULT_SETTINGS, frontier_chart, pareto_frontier, run_sweep, write_csv

    bar = tqdm(total=100, desc="sweep", unit="%")

    def progress(fraction: float, what: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(what)
        bar.refresh()

    rows = run_sweep(model, discovery, eval_set, classes, {m: DEFAULT_SETTINGS[m] for m in methods}, args.corruption, args.finetune_steps, args.images, learned_steps=args.learned_steps, progress=progress)
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
    print("| method | setting | FT | heads | chunks | MMACs | b1 ms | b64 img/s | top1 chosen | top1 all | KL | disc s | frontier |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        print(f"| {r['method']} | {r['setting']} | {'yes' if r['finetuned'] else 'no'} | {r['kept_heads']} | {r['kept_chunks']} | {r['macs'] / 1e6:.1f} | {r['latency_b1_ms']:.2f} | "
              f"{r['throughput_b64_img_s']:.0f} | {r['top1_chosen']:.3f} | {r['top1_all']:.3f} | {r['kl']:.3f} | {r['discovery_s']:.1f} | {'*' if i in front else ''} |")
    print(f"wrote {out.with_suffix('.csv')}, {out.with_suffix('.html')}")


def _target_search(args: argparse.Namespace, model, discovery, eval_set, classes: list[str], chosen: torch.Tensor, methods: list[str]) -> None:
    from .circuits import discover
    from .evaluate import predict_logits
    from .pruning.sweep import bisect_keep, bisect_tau

    base_logits = predict_logits(model, eval_set.images)
    for method in methods:
        if method == "acdc":
            tau, ev, kept = bisect_tau(model, discovery, eval_set, classes, chosen, args.target_accuracy, args.corruption, base_logits=base_logits)
            what = f"tau {tau:.4f}, keeps {kept} components"
        else:
            res = discover(model, discovery, classes, method, args.corruption, steps=args.learned_steps)
            ratio, ev = bisect_keep(model, res.score_tensor(), eval_set, chosen, args.target_accuracy, base_logits=base_logits)
            what = f"keeps {ratio:.3f} of components (ranked by its scores)"
        status = "reached" if ev.top1_chosen >= args.target_accuracy else "NOT reachable"
        print(f"target top-1 {args.target_accuracy}: {method} {what}; top1 chosen {ev.top1_chosen:.3f}, all {ev.top1_all:.3f}: {status}", flush=True)
