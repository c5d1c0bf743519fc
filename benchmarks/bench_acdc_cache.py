"""ACDC's cached, batched search against the naive one-candidate-at-a-time loop: wall time and the removed set.

Run: python benchmarks/bench_acdc_cache.py [--classes n01443537,n01629819,n01641577]
       [--out docs/measurements/bench_acdc_cache.json]
Shipped model, bundled train subset, resample corruption, the registry's default tau; runs alternate, medians.
"""

import argparse
import statistics
import time

import torch

from vitcore import load_checkpoint
from vitcore.circuits import acdc, build_task, counterfactual, get_method
from vitcore.data import load_split
from vitcore.measurement import write_measurement


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", default="n01443537,n01629819,n01641577")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="docs/measurements/bench_acdc_cache.json")
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(None).model
    task = build_task(model, load_split(None, "train"), args.classes.split(","), None, 0)
    cf = counterfactual(model, task, "resample")
    tau = get_method("acdc").param.default
    times: dict[str, list[float]] = {"cached": [], "naive": []}
    masks, passes = {}, {}
    for _ in range(args.rounds):
        for name in times:
            start = time.perf_counter()
            out = acdc(model, task, cf, tau, naive=name == "naive")
            times[name].append(time.perf_counter() - start)
            masks[name] = out.kept_mask
            passes[name] = out.forward_passes
    cached, naive = statistics.median(times["cached"]), statistics.median(times["naive"])
    result = {
        "tau": tau,
        "images": len(task),
        "cached_s": times["cached"],
        "naive_s": times["naive"],
        "cached_median_s": round(cached, 2),
        "naive_median_s": round(naive, 2),
        "speedup": round(naive / cached, 2),
        # layers run, in full-forward equivalents: the speed-up the cache could give if time were only layer work
        "forward_equivalents": {k: round(v, 1) for k, v in passes.items()},
        "layer_work_ratio": round(passes["naive"] / passes["cached"], 2),
        "same_removed_set": bool(torch.equal(masks["cached"], masks["naive"])),
    }
    print(result)
    write_measurement(args.out, result)


if __name__ == "__main__":
    main()
