"""Command ``inspect``: one component's report (what it looks at, what it writes to the logits, where it matters)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..inspect.report import InspectError, component_report
from ..model_sources import load_model
from .common import load_data_for, parse_classes
from .errors import UserError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="one component's report as JSON and PNG (for slides without the app)")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None, help="the eval images (default: the bundled eval subset)")
    p.add_argument("--component", required=True, help="a head (L3.H5) or an MLP chunk (L3.C2)")
    p.add_argument("--classes", required=True)
    p.add_argument("--out", required=True, help="folder for report.json and views.png")
    p.set_defaults(func=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    data = load_data_for(ckpt, args.data, "val")
    classes = parse_classes(args.classes, data.present())
    try:
        report, strip = component_report(ckpt.model, data, classes, args.component)
    except InspectError as e:
        raise UserError(str(e)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    strip.save(out / "views.png")
    up = ", ".join(c["class"] for c in report["pushes_up"][:5])
    print(f"{report['component']} on {report['images']} images: pushes up {up}; wrote {out}/report.json, views.png")
    return 0
