"""Do learned masks reach their sparsity target? Expected sparsity at the end and the kept circuit's KL, per setting.

Run: python benchmarks/bench_learned_target.py [--out docs/measurements/bench_learned_target.json]
Shipped model, bundled train subset, goldfish / salamander / bullfrog, resample corruption, the default
step budget, seeds 0-2; node targets 0.3-0.9 and the edge target 0.95, for each sparsity constraint.
"""

import argparse
import statistics
import time

import torch

from vitcore import load_checkpoint
from vitcore.circuits.corruptions import counterfactual
from vitcore.circuits.discover import circuit_faithfulness
from vitcore.circuits.learned import CONSTRAINTS, learn_masks
from vitcore.circuits.task import build_task
from vitcore.data import load_split
from vitcore.measurement import write_measurement

CLASSES = ["n01443537", "n01629819", "n01641577"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node-targets", type=float, nargs="*", default=[0.3, 0.5, 0.7, 0.9])
    p.add_argument("--edge-targets", type=float, nargs="*", default=[0.95])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200, help="the default step budget of the method")
    p.add_argument(
        "--edge-images",
        type=int,
        default=10,
        help="discovery images for edge runs (an edge step costs about 0.15 s per image here)",
    )
    p.add_argument("--constraints", nargs="+", default=list(CONSTRAINTS), choices=CONSTRAINTS)
    p.add_argument("--edge-constraints", nargs="+", default=["projection"], choices=CONSTRAINTS)
    p.add_argument("--out", default="docs/measurements/bench_learned_target.json")
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(None).model
    data = load_split(None, "train")
    rows = []
    plan = [("node", t, c, None) for c in args.constraints for t in args.node_targets]
    plan += [("edge", t, c, args.edge_images) for c in args.edge_constraints for t in args.edge_targets]
    print(
        "| granularity | constraint | target | expected sparsity per seed | max abs error | KL of the kept circuit "
        "(median) | top-1 | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for granularity, target, constraint, n_images in plan:
        task = build_task(model, data, CLASSES, n_images, 0)
        cf = counterfactual(model, task, "resample", embed=granularity == "edge")
        runs = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            out = learn_masks(
                model, task, cf, target, steps=args.steps, seed=seed, granularity=granularity, constraint=constraint
            )
            faith = circuit_faithfulness(model, task, out.kept_mask, cf, granularity)
            runs.append(
                {
                    "seed": seed,
                    "expected_sparsity": round(out.expected_sparsity, 4),
                    "kept": int(out.kept_mask.sum()),
                    "kl": round(faith["kl"], 4),
                    "top1": round(faith["top1"], 3),
                    "wall_s": round(time.perf_counter() - start, 1),
                }
            )
        row = {
            "granularity": granularity,
            "constraint": constraint,
            "target": target,
            "steps": args.steps,
            "n_images": len(task),
            "max_abs_error": round(max(abs(r["expected_sparsity"] - target) for r in runs), 4),
            "kl_median": statistics.median(r["kl"] for r in runs),
            "top1_median": statistics.median(r["top1"] for r in runs),
            "runs": runs,
        }
        rows.append(row)
        per_seed = ", ".join(f"{r['expected_sparsity']:.3f}" for r in runs)
        print(
            f"| {granularity} | {constraint} | {target:g} | {per_seed} | {row['max_abs_error']:.3f} | "
            f"{row['kl_median']:.3f} | {row['top1_median']:.3f} | {sum(r['wall_s'] for r in runs):.0f} |",
            flush=True,
        )
        write_measurement(args.out, rows)


if __name__ == "__main__":
    main()
