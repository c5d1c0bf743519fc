"""What exact patching costs for one class of 50 images, beside the fast methods, on this machine's cores.

For each class: exact patching over all 50 images (the ground truth and the app's second tier), exact
patching over the first 12 of them (the fast entry of the faithfulness table), the naive loop (one
masked forward of the whole model per component, what ``exact_effects`` replaced), EAP and EAP-IG;
the median of ``--repeats`` timed runs of each, side by side in one process, and the agreement of each
fast ranking with exact patching on all 50 images (Spearman, top-20 overlap; on KL, and for EAP, which
cannot score KL, on cross-entropy). Needs the full Tiny
ImageNet zip (50 val images per class); pause background jobs while it runs.

Run: python benchmarks/bench_exact.py --data ../shared/data/tiny-imagenet-200.zip
     [--out docs/measurements/bench_exact.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore import load_checkpoint, load_split  # noqa: E402
from vitcore.circuits import build_task, counterfactual, eap_ig_scores, eap_scores  # noqa: E402
from vitcore.circuits.exact import exact_effects  # noqa: E402
from vitcore.circuits.metrics import damage_fn  # noqa: E402
from vitcore.circuits.patching import Patcher  # noqa: E402
from vitcore.circuits.trust import FAST_SAMPLE, TOP_K, spearman, top_overlap  # noqa: E402
from vitcore.measurement import write_measurement  # noqa: E402

CLASSES = ("n01443537", "n04146614", "n07749582")  # goldfish, school bus, lemon
IMAGES, SAMPLE = 50, FAST_SAMPLE


@torch.no_grad()
def naive_effects(model, task, cf, metric: str) -> torch.Tensor:
    """One masked forward of the whole model per component: the loop exact patching replaced."""
    damage, patcher = damage_fn(metric), Patcher(model, task, cf)
    clean = damage(task.reference_logits, task.reference_logits, task.labels).mean()
    out = torch.empty(patcher.size)
    for c in range(patcher.size):
        mask = torch.ones(patcher.size)
        mask[c] = 0
        out[c] = damage(patcher.logits(slice(None), mask), task.reference_logits, task.labels).mean() - clean
    return out


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def measure_class(model, data, wnid: str, repeats: int) -> dict:
    """One class's timings and agreements (see the module docstring)."""
    task = build_task(model, data, [wnid], IMAGES, 0)
    sample = build_task(model, data, [wnid], SAMPLE, 0)
    cf, cf_sample = counterfactual(model, task, "resample"), counterfactual(model, sample, "resample")
    with torch.no_grad():
        forward_s, _ = timed(lambda: model(task.inputs), 5)
    exact_s, truth = timed(lambda: exact_effects(model, task, cf, "kl"), repeats)
    truth = truth.abs()
    naive_s, naive = timed(lambda: naive_effects(model, task, cf, "kl"), 1)
    sample_s, sampled = timed(lambda: exact_effects(model, sample, cf_sample, "kl").abs(), repeats)
    with torch.enable_grad():
        eap_s, eap = timed(lambda: eap_scores(model, task, cf, "ce").abs(), repeats)
        ig_s, ig = timed(lambda: eap_ig_scores(model, task, cf, "kl", 5).abs(), repeats)
    row = {
        "class": wnid,
        "images": len(task),
        "forward_s": round(forward_s, 4),
        "exact_s": round(exact_s, 3),
        "naive_s": round(naive_s, 3),
        "naive_max_difference": float((naive.abs() - truth).abs().max()),
    }
    truth_ce = exact_effects(model, task, cf, "ce").abs()  # EAP cannot score KL: judged on its own metric
    for name, seconds, scores, against in (
        (f"exact_{SAMPLE}", sample_s, sampled, truth),
        ("eap", eap_s, eap, truth_ce),
        ("eap_ig", ig_s, ig, truth),
    ):
        row[f"{name}_s"] = round(seconds, 3)
        row[f"{name}_spearman"] = round(spearman(scores, against), 4)
        row[f"{name}_top{TOP_K}"] = top_overlap(scores, against)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the full Tiny ImageNet zip or folder")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "docs" / "measurements" / "bench_exact.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_checkpoint(None).model.eval()
    data = load_split(args.data, "val")
    rows = []
    for wnid in CLASSES:
        rows.append(measure_class(model, data, wnid, args.repeats))
        print(rows[-1], flush=True)
    print(f"wrote {write_measurement(args.out, rows)}")


if __name__ == "__main__":
    main()
