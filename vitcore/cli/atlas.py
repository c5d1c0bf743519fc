"""Command ``atlas``: per-class circuits of every class by each method, on Ray (local or a cluster) or in one
process.
"""

from __future__ import annotations

import argparse
import json

from ..atlas.analysis import write_table
from ..atlas.run import BACKENDS, AtlasSettings, run_atlas
from ..circuits import CORRUPTIONS, METHODS
from ..circuits.methods import DEFAULT_METHOD
from ..model_sources import load_model
from .common import add_option_flags, load_data_for, options_from, parse_classes


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("atlas", help="per-class circuits of every class (Ray when installed; resumes)")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None, help="discovery data (train split; default: bundled subset)")
    p.add_argument("--methods", default=DEFAULT_METHOD, help="comma-separated, of " + ",".join(METHODS))
    p.add_argument("--classes", default="all", help="comma-separated wnids, or all")
    p.add_argument("--corruption", choices=CORRUPTIONS, default="resample")
    p.add_argument("--images", type=int, default=None, help="discovery images per class (default: all of the class's)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: Ray if installed, else one process")
    p.add_argument("--address", default=None, help="an existing Ray cluster (default: start Ray on this machine)")
    p.add_argument("--workers", type=int, default=None, help="Ray workers on this machine (default: its cores)")
    p.add_argument("--retries", type=int, default=2)
    add_option_flags(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    data = load_data_for(ckpt, args.data, "train", progress=True)
    classes = data.present() if args.classes == "all" else parse_classes(args.classes, data.present())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings = AtlasSettings(
        corruption=args.corruption,
        images=args.images,
        model_sha256=ckpt.sha256,
        options=tuple(sorted(options_from(args).items())),
    )
    result = run_atlas(
        ckpt.model, data, classes, methods, args.out, settings, args.backend, args.address, args.workers, args.retries
    )
    table = write_table(args.out)
    mean_task = sum(result.task_seconds) / len(result.task_seconds) if result.task_seconds else 0.0
    print(
        f"{result.ran} task(s) run, {result.skipped} already done, backend {result.backend}, {result.seconds:.1f} s "
        "wall, "
        f"{result.tasks_per_second:.2f} tasks/s, {mean_task:.2f} s per task inside its worker; table {table}"
    )
    print(
        json.dumps(
            {
                "backend": result.backend,
                "ran": result.ran,
                "skipped": result.skipped,
                "wall_s": round(result.seconds, 2),
                "tasks_per_s": round(result.tasks_per_second, 3),
                "mean_task_s": round(mean_task, 3),
            }
        )
    )
    return 0
