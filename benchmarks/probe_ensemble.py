"""Full-val top-1 of checkpoints, of their probability-averaged ensembles and of their weight averages.

A probe for what distilling or averaging these checkpoints could give. Every figure is picked on the
val split it reports, so it is an upper bound on what a choice made without val would give.

Run: python benchmarks/probe_ensemble.py CKPT [CKPT ...] [--data ../shared/data/tiny-imagenet-200.zip]
"""

import argparse
import itertools
from pathlib import Path

import torch

from vitcore import load_checkpoint
from vitcore.data import load_split
from vitcore.evaluate import predict_logits
from vitcore.training.averaging import average_checkpoints

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "tiny-imagenet-200.zip"))
    args = p.parse_args()
    val = load_split(args.data, "val", progress=False)
    probs = {n: predict_logits(load_checkpoint(n).model, val.images, 256).softmax(-1) for n in args.checkpoints}

    def top1(prob: torch.Tensor) -> float:
        return (prob.argmax(1) == val.labels).float().mean().item()

    print(f"{len(val.labels)} val images; top-1 of each set of checkpoints")
    print("| checkpoints | ensemble (mean probability) | weight average |")
    print("|---|---|---|")
    for r in range(1, len(probs) + 1):
        for combo in itertools.combinations(probs, r):
            ensemble = top1(sum(probs[c] for c in combo))
            averaged = (
                top1(predict_logits(average_checkpoints(list(combo)).model, val.images, 256)) if r > 1 else ensemble
            )
            print(f"| {' + '.join(combo)} | {ensemble:.4f} | {averaged:.4f} |", flush=True)


if __name__ == "__main__":
    main()
