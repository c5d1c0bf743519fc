"""Commands ``export`` (zip, ONNX fp32 or int8, torch.export program) and ``bench-deploy`` (the deployment table)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..data import normalize
from ..deploy import QUANTIZE_MODES, RUNTIMES, export_program, onnx_model
from ..deploy.table import deployment_table
from ..model_sources import load_model
from ..pruning.export import export_zip
from .common import load_data_for
from .errors import UserError

CALIBRATION_IMAGES = 256


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint: zip (with ONNX and predict.py), ONNX, or torch.export")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--format", choices=["zip", "onnx", "program"], required=True)
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default=None, help="ONNX only: int8 (dynamic) or int8-static")
    p.add_argument("--data", default=None, help="discovery images that calibrate int8-static (default: bundled)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=run_export)

    p = sub.add_parser("bench-deploy", help="the deployment table: size, latency, throughput, top-1 per runtime")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", required=True, help="the (pruned) model")
    p.add_argument("--base", default=None, help="the full model it is timed against (default: the shipped model)")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, from {', '.join(RUNTIMES)}")
    p.add_argument("--eval-data", default=None, help="val split for top-1 (default: the bundled eval subset)")
    p.add_argument("--data", default=None, help="discovery images that calibrate int8-static (default: bundled)")
    p.add_argument(
        "--threads", type=int, default=1, help="threads of every runtime (1: one core, as on an edge device)"
    )
    p.add_argument("--pairs", type=int, default=30, help="interleaved pairs for batch 1 (a fifth for batch 64)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.set_defaults(func=run_bench_deploy)


def _calibration(ckpt, data: str | None) -> torch.Tensor:
    """Normalized discovery images for static quantization, evenly spread over the classes."""
    discovery = load_data_for(ckpt, data, "train")
    step = max(1, len(discovery) // CALIBRATION_IMAGES)
    return normalize(discovery.images[::step][:CALIBRATION_IMAGES], ckpt.model.config)


def run_export(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    if args.quantize and args.format != "onnx":
        raise UserError("--quantize applies to --format onnx only")
    if args.format == "zip":
        data = export_zip(ckpt.model, {k: v for k, v in ckpt.info.items() if k != "model"}, args.out)
    elif args.format == "program":
        data = export_program(ckpt.model)
    else:
        calibration = _calibration(ckpt, args.data) if args.quantize == "int8-static" else None
        data = onnx_model(ckpt.model, args.quantize, calibration)
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB)")
    return 0


def _table(rows: list[dict]) -> list[str]:
    head = (
        "| runtime | format | MB full -> model | batch-1 ms full -> model | speed-up (p25-p75) | x MAC cut "
        "| batch-64 img/s full -> model | speed-up (p25-p75) | x MAC cut | top-1 full -> model | agrees with eager |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        b1, b64, size = r["batch1_speedup"], r["batch64_speedup"], r["file_bytes"]
        lines.append(
            f"| {r['runtime']} | {r['format']} | {size['full'] / 1e6:.2f} -> {size['model'] / 1e6:.2f} "
            f"| {r['batch1_ms']['full']:.2f} -> {r['batch1_ms']['model']:.2f} | {b1[0]:.2f}x ({b1[1]:.2f}-{b1[2]:.2f}) "
            f"| {r['batch1_over_mac']:.2f} | {r['batch64_img_s']['full']:.0f} -> {r['batch64_img_s']['model']:.0f} "
            f"| {b64[0]:.2f}x ({b64[1]:.2f}-{b64[2]:.2f}) | {r['batch64_over_mac']:.2f} "
            f"| {r['top1']['full']:.4f} -> {r['top1']['model']:.4f} "
            f"| {r['agrees_with_eager']['full']:.4f} / {r['agrees_with_eager']['model']:.4f} |"
        )
    return lines


def run_bench_deploy(args: argparse.Namespace) -> int:
    base = load_checkpoint(args.base)
    ckpt = load_model(args.checkpoint, args.weights)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise UserError(f"unknown runtime(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(RUNTIMES)}")
    eval_set = load_data_for(ckpt, args.eval_data, "val")
    calibration = _calibration(base, args.data) if "onnxruntime-int8-static" in runtimes else None
    rows = deployment_table(
        base.model,
        ckpt.model,
        eval_set,
        runtimes,
        threads=args.threads,
        pairs_b1=args.pairs,
        pairs_b64=max(3, args.pairs // 5),
        calibration=calibration,
        progress=lambda f, what: print(f"{f:4.0%} {what}", flush=True) if not args.json else None,
    )
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "eval_images": len(eval_set), "rows": rows}))
    else:
        print(f"{args.checkpoint} against {args.base or 'the shipped model'}; {len(eval_set)} eval images")
        print("\n".join(_table(rows)))
    return 0
