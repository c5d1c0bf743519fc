"""Command ``bench-edges``: every edge method on one class set, and what an edge circuit frees against a node
circuit.
"""

from __future__ import annotations

import argparse
import json

import torch

from ..circuits import METHODS, build_task, circuit_faithfulness, counterfactual, discover, get_method
from ..circuits.methods import DEFAULT_EDGE_METHOD
from ..circuits.result import keep_top
from ..evaluate import predict_logits
from ..model_sources import load_model
from ..pruning import prune
from ..pruning.evaluation import evaluate_against
from ..pruning.latency import measure_speedup
from .common import add_option_flags, load_data_for, own_options, parse_classes


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-edges",
        help="edge-level methods: time, KL at matched edge sparsity, and the pruned model against a node circuit "
        "of equal KL",
    )
    p.add_argument("--checkpoint", "--model", dest="checkpoint", default=None)
    p.add_argument("--data", default=None, help="discovery data (train split; default: bundled subset)")
    p.add_argument("--eval-data", default=None, help="eval data (val split; default: bundled subset)")
    p.add_argument("--classes", default=None, help="comma-separated wnids (default: the first three classes)")
    p.add_argument(
        "--images",
        type=int,
        default=30,
        help="discovery images per method (a method whose cost grows with the edges it evaluates "
        "uses at most its registry's edge_images, or --few-images)",
    )
    p.add_argument(
        "--few-images",
        type=int,
        default=None,
        help="discovery images for those methods (default: their registry entry)",
    )
    p.add_argument(
        "--keep",
        type=float,
        default=0.05,
        help="matched edge sparsity: the fraction of edges each method's top scores keep",
    )
    add_option_flags(p)
    p.add_argument("--methods", default=",".join(m.name for m in METHODS.values() if "edge" in m.granularities))
    p.set_defaults(func=run_bench_edges)


def run_bench_edges(args: argparse.Namespace) -> int:
    ckpt = load_model(args.checkpoint, args.weights)
    model = ckpt.model
    data = load_data_for(ckpt, args.data, "train")
    classes = parse_classes(args.classes, data.present())
    n_edges = len(model.edges)
    rows, results = [], {}
    for name in args.methods.split(","):
        entry = get_method(name)
        n_images = (args.few_images or entry.edge_images) if entry.edge_images else args.images
        task = build_task(model, data, classes, n_images)
        cf = counterfactual(model, task, "resample", embed=True)
        kw = {entry.param.name: entry.setting_for_keep(args.keep)} if entry.setting_for_keep else {}
        res = discover(
            model,
            data,
            classes,
            name,
            "resample",
            n_images=n_images,
            granularity="edge",
            **kw,
            **own_options(args, name),
        )
        matched = circuit_faithfulness(model, task, keep_top(res.score_tensor(), args.keep), cf, "edge")
        results[name] = res
        rows.append(
            {
                "method": name,
                "images": n_images,
                "setting": res.params,
                "wall_s": round(res.wall_time_s, 2),
                "own_kept_edges": len(res.kept or []),
                "own_kl": res.faithfulness["kl"],
                f"kl_at_{args.keep:g}": matched["kl"],
                f"top1_at_{args.keep:g}": matched["top1"],
            }
        )
        print(json.dumps(rows[-1], default=str), flush=True)

    # what the default edge method's circuit frees, against its node-level circuit of the same KL on the same images
    task = build_task(model, data, classes, args.images)
    cf_edge = counterfactual(model, task, "resample", embed=True)
    edge_res = results.get(DEFAULT_EDGE_METHOD) or discover(
        model, data, classes, DEFAULT_EDGE_METHOD, "resample", n_images=args.images, granularity="edge"
    )
    edge_mask = model.edges.mask_from_keep(edge_res.kept or [])
    edge_kl = circuit_faithfulness(model, task, edge_mask, cf_edge, "edge")["kl"]
    alive = model.edges.alive_components(edge_mask)
    node_res = discover(model, data, classes, DEFAULT_EDGE_METHOD, "resample", n_images=args.images)
    cf = counterfactual(model, task, "resample")
    node_keep = keep_top(node_res.score_tensor(), 1.0)  # the whole model when no smaller circuit is as faithful
    for ratio in [
        round(0.05 * i, 2) for i in range(1, 21)
    ]:  # the smallest node circuit at least as faithful as the edge circuit
        node_keep = keep_top(node_res.score_tensor(), ratio)
        if circuit_faithfulness(model, task, node_keep, cf)["kl"] <= edge_kl:
            break
    node_kl = circuit_faithfulness(model, task, node_keep, cf)["kl"]
    eval_set = load_data_for(ckpt, args.eval_data, "val")
    base_logits = predict_logits(model, eval_set.images)
    chosen = eval_set.chosen(classes)
    compare = {}
    label_of = get_method(DEFAULT_EDGE_METHOD).label
    for label, keep, kl in ((f"edge {label_of}", alive, edge_kl), (f"node {label_of}", node_keep, node_kl)):
        pruned = prune(model, keep)
        ev = evaluate_against(base_logits, pruned, eval_set, chosen)
        s = measure_speedup(model, pruned, pairs=25)
        assert s is not None  # only a stop callback ends a timing early
        compare[label] = {
            "circuit_kl": kl,
            "components_kept": int(keep.sum()),
            "pruned_kl_eval": ev.kl,
            "pruned_top1_chosen_eval": ev.top1_chosen,
            "speedup_b1": round(s.ratio, 3),
            "speedup_p25_p75": [round(s.p25, 3), round(s.p75, 3)],
            "busy": s.busy,
        }
    print(f"classes {','.join(classes)} | {n_edges} edges | threads {torch.get_num_threads()}")
    print(
        f"| method | images | wall s | own kept edges | own KL | KL @ top {args.keep:.0%} edges | top-1 @ top "
        f"{args.keep:.0%} edges |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['images']} | {r['wall_s']:.1f} | {r['own_kept_edges']} | {r['own_kl']:.4f} | "
            f"{r[f'kl_at_{args.keep:g}']:.4f} | {r[f'top1_at_{args.keep:g}']:.3f} |"
        )
    print(
        f"\n{label_of} edge circuit (top {args.keep:.0%} edges) against the smallest node {label_of} circuit with KL "
        f"<= its KL, {args.images} images:"
    )
    print(
        "| circuit | circuit KL | components kept | pruned model KL (eval, chosen) | pruned top-1 chosen | batch-1 "
        "speed-up (p25-p75) |"
    )
    print("|---|---|---|---|---|---|")
    for label, c in compare.items():
        print(
            f"| {label} | {c['circuit_kl']:.4f} | {c['components_kept']}/{len(model.components)} | "
            f"{c['pruned_kl_eval']:.4f} | {c['pruned_top1_chosen_eval']:.3f} | "
            f"{c['speedup_b1']:.2f}x "
            f"({c['speedup_p25_p75'][0]:.2f}-{c['speedup_p25_p75'][1]:.2f}){' busy' if c['busy'] else ''} |"
        )
    print(json.dumps({"rows": rows, "edge_vs_node": compare, "edges": n_edges}, default=str))
    return 0
