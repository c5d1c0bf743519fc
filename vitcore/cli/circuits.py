"""Commands ``circuits`` and ``bench-circuits``."""

from __future__ import annotations

import argparse
import json
import time

import torch

from ..circuits import (
    METHODS,
    METRICS,
    build_task,
    check_method_metric,
    circuit_faithfulness,
    counterfactual,
    discover,
    trust,
)
from ..circuits.corruptions import ALL_CORRUPTIONS
from ..circuits.patching import GRANULARITIES
from ..circuits.result import keep_top
from ..evaluate import predict_logits
from ..model_sources import load_model
from ..pruning import prune
from ..pruning.evaluation import evaluate_against
from ..shortcut import shortcut_figures, shortcut_of
from .common import add_option_flags, load_data_for, own_options, parse_classes, progress_bar
from .errors import UserError


def add_setting_flags(p: argparse.ArgumentParser) -> None:
    """One flag per distinct method parameter in the registry (--keep, --tau, --sparsity), mutually exclusive."""
    group = p.add_mutually_exclusive_group()
    seen: dict[str, list[str]] = {}
    for m in METHODS.values():
        seen.setdefault(m.param.name, []).append(m.name)
    for name, methods in seen.items():
        param = next(m.param for m in METHODS.values() if m.param.name == name)
        group.add_argument(
            f"--{name}",
            type=float,
            default=None,
            help=f"{param.help} ({', '.join(methods)}; default {param.default:g})",
        )


def setting_from(args: argparse.Namespace, method: str) -> dict[str, float]:
    """The flag that belongs to ``method``; a flag of another method is refused by discover()."""
    names = {m.param.name for m in METHODS.values()}
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "circuits", help="score components for chosen classes (" + ", ".join(m.label for m in METHODS.values()) + ")"
    )
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None, help="discovery data (train split used; default: bundled subset)")
    p.add_argument("--eval-data", default=None, help="eval data (val split used; default: bundled subset)")
    p.add_argument("--method", choices=list(METHODS), required=True)
    p.add_argument(
        "--granularity",
        choices=GRANULARITIES,
        default="node",
        help="score components (node) or the edges between them (edge; "
        + ", ".join(m.name for m in METHODS.values() if "edge" in m.granularities)
        + ")",
    )
    p.add_argument("--classes", required=True, help="comma-separated wnids, or 'all'")
    p.add_argument(
        "--corruption",
        choices=ALL_CORRUPTIONS,
        default=None,
        help="default: resample; with --shortcut, paired (the same images without the mark)",
    )
    p.add_argument(
        "--shortcut",
        action="store_true",
        help="the mark task of the checkpoint's planted shortcut: the classes' images marked, read on its class",
    )
    p.add_argument(
        "--metric",
        choices=METRICS,
        default=None,
        help="default: " + ", ".join(f"{m.default_metric} for {m.name}" for m in METHODS.values()),
    )
    add_setting_flags(p)
    p.add_argument("--images", type=int, default=None, help="number of discovery images (default: all of the classes)")
    add_option_flags(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the result (.json, or .csv for people)")
    p.add_argument("--top", type=int, default=10, help="rows of the ranked table to print")
    p.set_defaults(func=run_circuits)

    p = sub.add_parser(
        "bench-faithfulness",
        help="every method's scores against exact single-component patching, and its circuits' KL "
        "and top-1 at 25/50/75%% kept, over nine class sets (writes the table the app shows)",
    )
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None)
    p.add_argument(
        "--classes",
        action="append",
        default=None,
        help="a comma-separated class set; repeat for several (default: three built-in sets)",
    )
    p.add_argument("--images", type=int, default=30, help="discovery images per class set")
    p.add_argument(
        "--shared-metric",
        default=trust.SHARED_METRIC,
        help="also run every method that can score it on this metric ('none': each on its own metric only)",
    )
    p.add_argument(
        "--drawn-sets", type=int, default=6, help="class sets drawn with a fixed seed beside the three built-in ones"
    )
    p.add_argument(
        "--methods",
        default=",".join(trust.DEFAULT_ENTRIES),
        help="comma-separated entries: a method, or method@N to run it on the first N of each set's images",
    )
    p.add_argument("--out", default=None, help="default: assets/faithfulness.json (the table the app shows)")
    p.set_defaults(func=run_bench_faithfulness)

    p = sub.add_parser("bench-circuits", help="time every method on one class set: passes and KL at matched sparsity")
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--classes", default=None, help="comma-separated wnids (default: the first three classes)")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=run_bench_circuits)


def run_circuits(args: argparse.Namespace) -> int:
    entry = check_method_metric(args.method, args.metric or METHODS[args.method].default_metric, args.granularity)
    metric = args.metric or entry.default_metric
    ckpt = load_model(args.checkpoint, args.weights)
    shortcut = None
    if args.shortcut:
        shortcut = shortcut_of(ckpt.info)
        if shortcut is None:
            raise UserError(f"{args.checkpoint or 'the shipped model'} has no planted shortcut (see shortcut plant)")
    discovery = load_data_for(ckpt, args.data, "train", progress=True)
    classes = parse_classes(args.classes, discovery.present())
    corruption = args.corruption or ("paired" if shortcut else "resample")
    print(f"method {args.method}: optimises/ranks by metric '{metric}', corruption '{corruption}'")
    bar, update = progress_bar(args.method)
    try:
        result = discover(
            ckpt.model,
            discovery,
            classes,
            args.method,
            corruption,
            metric,
            args.images,
            args.seed,
            model_sha256=ckpt.sha256,
            progress=update,
            granularity=args.granularity,
            shortcut=shortcut,
            **setting_from(args, args.method),
            **own_options(args, args.method),
        )
    finally:
        bar.close()
    if args.out:
        result.save(args.out)
    order = sorted(range(len(result.scores)), key=lambda i: -result.scores[i])
    unit = "edges" if result.is_edge else "components"
    width = max(len(result.component_names[i]) for i in order[: args.top]) if order else 8
    print(f"{'rank':>4}  {unit[:-1]:<{width}} {'score':>10}")
    for rank, i in enumerate(order[: args.top], 1):
        print(f"{rank:>4}  {result.component_names[i]:<{width}} {result.scores[i]:>10.4g}")
    f = result.faithfulness
    print(
        f"kept {len(result.kept or [])}/{len(result.scores)} {unit} | {result.n_images} images | "
        f"{result.wall_time_s:.1f} s | "
        f"{result.forward_passes:g} forward + {result.backward_passes:g} backward pass equivalents"
    )
    print(
        f"circuit on discovery images (removed {unit} patched): KL {f['kl']:.4f}  top1 {f['top1']:.3f}  CE "
        f"{f['ce']:.3f}  logit diff {f['logit_diff']:.3f}"
    )
    eval_set = load_data_for(ckpt, args.eval_data, "val")
    if result.is_edge:
        keep = ckpt.model.edges.alive_components(ckpt.model.edges.mask_from_keep(result.kept or []))
        print(
            f"{int(keep.sum())}/{len(keep)} components still reach the logits through kept edges; the other "
            f"{len(keep) - int(keep.sum())} are cut out"
        )
    else:
        keep = ckpt.model.components.mask_from_keep(result.kept or [])
    if keep.sum() == 0:
        print("the circuit keeps no component; nothing to prune")
        return 0
    if shortcut is not None:
        f = shortcut_figures(prune(ckpt.model, keep), eval_set, shortcut.target, shortcut.mark)
        print(
            f"pruned model on the eval set (removed components zeroed): flip rate {f['flip_rate']:.3f} (images of "
            f"other classes, marked, called {shortcut.target})  clean top1 {f['clean_top1']:.3f}"
        )
        return 0
    ev = evaluate_against(
        predict_logits(ckpt.model, eval_set.images), prune(ckpt.model, keep), eval_set, eval_set.chosen(classes)
    )
    print(
        f"pruned model on the eval set (removed components zeroed): top1 chosen {ev.top1_chosen:.3f}  top1 all "
        f"{ev.top1_all:.3f}  KL chosen {ev.kl:.4f}"
    )
    return 0


def run_bench_faithfulness(args: argparse.Namespace) -> int:
    from ..measurement import write_measurement

    torch.set_num_threads(2)
    ckpt = load_model(args.checkpoint, args.weights)
    data = load_data_for(ckpt, args.data, "train")
    class_sets = (
        [parse_classes(c, data.present()) for c in args.classes]
        if args.classes
        else [*trust.CLASS_SETS, *trust.drawn_class_sets(data.present(), args.drawn_sets)]
    )
    entries = [m.strip() for m in args.methods.split(",") if m.strip()]
    for entry in entries:
        trust.parse_entry(entry)
    if args.shared_metric not in (*METRICS, "none"):
        raise UserError(f"unknown metric {args.shared_metric!r}; choose one of {', '.join(METRICS)} or none")
    rows = trust.measure(
        ckpt.model,
        data,
        class_sets,
        args.images,
        entries,
        progress=lambda r: print(json.dumps(r), flush=True),
        shared_metric=None if args.shared_metric == "none" else args.shared_metric,
    )
    path = write_measurement(args.out or trust.table_path(), rows)
    top = f"top{trust.TOP_K}"
    print(f"| entry | metric | Spearman | {top} | KL @25% | KL @50% | KL @75% | top-1 @50% | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for role in ("own", "shared"):
        for name, r in trust.summarise(rows, role).items():
            metric = METHODS[trust.parse_entry(name)[0]].default_metric if role == "own" else trust.SHARED_METRIC
            print(
                f"| {name} | {metric} | {r['spearman']:.3f} | {r[top]:.0f} | {r['kl_at_0.25']:.3f} | "
                f"{r['kl_at_0.5']:.3f} | {r['kl_at_0.75']:.3f} | {r['top1_at_0.5']:.3f} | {r['wall_s']:.1f} |"
            )
    print(f"wrote {path}")
    return 0


def run_bench_circuits(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = load_model(args.checkpoint, args.weights)
    model = ckpt.model
    data = load_data_for(ckpt, args.data, "train")
    classes = parse_classes(args.classes, data.present())
    task = build_task(model, data, classes)
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(3):
            model(task.inputs)
        forward_s = (time.perf_counter() - t0) / 3
    rows = []
    cf = counterfactual(model, task, "resample")
    for entry in METHODS.values():
        res = discover(model, data, classes, entry.name, "resample")
        f50 = circuit_faithfulness(
            model, task, keep_top(res.score_tensor(), 0.5), cf
        )  # matched sparsity: the top half of each method's scores
        rows.append(
            {
                "method": entry.name,
                "setting": {entry.param.name: entry.param.default},
                "wall_s": res.wall_time_s,
                "x_forward": res.wall_time_s / forward_s,
                "fwd_equiv": res.forward_passes,
                "bwd_equiv": res.backward_passes,
                "kl_at_50pct": f50["kl"],
                "top1_at_50pct": f50["top1"],
                "own_kept": len(res.kept or []),
                "own_kl": res.faithfulness["kl"],
            }
        )
    print(
        f"classes {','.join(classes)} | {len(task)} images | one forward over them: {forward_s * 1e3:.1f} ms | "
        f"threads {torch.get_num_threads()}"
    )
    print(
        "| method | setting | wall s | x one forward | fwd equiv | bwd equiv | KL @50% kept | top1 @50% kept | own "
        "kept | own KL |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        setting = ", ".join(f"{k}={v:g}" for k, v in r["setting"].items())
        print(
            f"| {r['method']} | {setting} | {r['wall_s']:.2f} | {r['x_forward']:.1f} | {r['fwd_equiv']:.1f} | "
            f"{r['bwd_equiv']:.1f} | {r['kl_at_50pct']:.4f} | {r['top1_at_50pct']:.3f} | "
            f"{r['own_kept']} | {r['own_kl']:.4f} |"
        )
    print(json.dumps({"rows": rows}, default=str))
    return 0
