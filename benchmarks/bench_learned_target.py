"""Do learned masks reach their sparsity target? Expected sparsity at the end and the kept circuit's KL, per setting.

Run: python benchmarks/bench_learned_target.py [--steps 100 200] [--lambda-lr 0.05 0.5] [--sparsity 0.5 0.9]
Shipped model, bundled train subset, goldfish / salamander / bullfrog, resample corruption, node level.
"""

import argparse
import itertools
import json
import time

import torch

from vitcore import load_checkpoint
from vitcore.circuits.learned import learn_masks
from vitcore.circuits.discover import circuit_faithfulness
from vitcore.circuits.corruptions import counterfactual
from vitcore.circuits.task import build_task
from vitcore.data import load_split

CLASSES = ["n01443537", "n01629819", "n01641577"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[100, 200])
    p.add_argument("--lambda-lr", type=float, nargs="+", default=[0.05, 0.5])
    p.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.9])
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(None).model
    task = build_task(model, load_split(None, "train"), CLASSES, None, 0)
    cf = counterfactual(model, task, "resample")
    print("| steps | lambda lr | target sparsity | expected sparsity at the end | KL of the kept top (1 - target) | top-1 | wall s |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for steps, lambda_lr, sparsity in itertools.product(args.steps, args.lambda_lr, args.sparsity):
        start = time.perf_counter()
        out = learn_masks(model, task, cf, sparsity, steps=steps, lambda_lr=lambda_lr)
        faith = circuit_faithfulness(model, task, out.kept_mask, cf, "node")
        row = dict(steps=steps, lambda_lr=lambda_lr, sparsity=sparsity, expected_sparsity=round(out.expected_sparsity, 4),
                   kl=round(faith["kl"], 4), top1=round(faith["top1"], 3), wall_s=round(time.perf_counter() - start, 1))
        rows.append(row)
        print(f"| {steps} | {lambda_lr:g} | {sparsity:g} | {row['expected_sparsity']:.3f} | {row['kl']:.3f} | {row['top1']:.3f} | {row['wall_s']:.1f} |", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
