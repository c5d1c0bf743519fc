"""Why learned masks rank the planted shortcut's heads low: their gates against exact patching on the mark task.

On the planted model's mark task (100 marked discovery images of every other class, paired corruption, KL,
as ``python -m vitcore shortcut cut`` runs it), learned masks at their default sparsity and exact patching
score every component. Recorded: the Spearman of the learned gates (``log_alpha``) with the magnitude of the
exact effects and their top-k overlaps; where each method puts the heads that exact patching ranks highest;
and how the gates spread: how many lie within 5% (of the gates' range) of the highest, and the gates of the
components exact patching ranks first.

Run: python benchmarks/bench_learned_ranking.py [--out docs/measurements/learned_ranking.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore import load_checkpoint, load_split  # noqa: E402
from vitcore.assets import shortcut_checkpoint  # noqa: E402
from vitcore.circuits import discover  # noqa: E402
from vitcore.circuits.trust import spearman, top_overlap  # noqa: E402
from vitcore.measurement import write_measurement  # noqa: E402
from vitcore.shortcut import shortcut_of  # noqa: E402

IMAGES = 100


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "docs" / "measurements" / "learned_ranking.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(shortcut_checkpoint())
    shortcut = shortcut_of(ckpt.info)
    data = load_split(None, "train")
    classes = data.present()  # as `shortcut cut --classes all`: the mark task leaves out the shortcut's own class
    runs = {
        name: discover(ckpt.model, data, classes, name, n_images=IMAGES, shortcut=shortcut)
        for name in ("learned", "exact-patching")
    }
    names = runs["learned"].component_names
    gates, exact = runs["learned"].score_tensor(), runs["exact-patching"].score_tensor()
    order = torch.argsort(exact, descending=True).tolist()
    learned_rank = {c: r + 1 for r, c in enumerate(torch.argsort(gates, descending=True).tolist())}
    span = float(gates.max() - gates.min())
    record = {
        "images": runs["learned"].n_images,
        "learned_setting": runs["learned"].params,
        "spearman": round(spearman(gates, exact), 4),
        "top_overlap": {k: top_overlap(gates, exact, k) for k in (4, 8, 20)},
        "exact_top": [
            {
                "component": names[c],
                "exact_kl_change": round(float(exact[c]), 4),
                "learned_gate": round(float(gates[c]), 3),
                "learned_rank": learned_rank[c],
            }
            for c in order[:8]
        ],
        "learned_top": [
            {"component": names[c], "learned_gate": round(float(gates[c]), 3), "exact_rank": order.index(c) + 1}
            for c in torch.argsort(gates, descending=True)[:8].tolist()
        ],
        "gates_near_top": int((gates >= gates.max() - 0.05 * span).sum()),
        "gate_range": [round(float(gates.min()), 3), round(float(gates.max()), 3)],
        "wall_s": {name: round(r.wall_time_s, 1) for name, r in runs.items()},
    }
    print(record)
    print(f"wrote {write_measurement(args.out, record)}")


if __name__ == "__main__":
    main()
