"""Cost of the views that show what a component does, on this CPU (medians of repeated calls, the app warm).

Run: python benchmarks/bench_inspect.py [--threads 2] [--repeats 7]
Prints JSON: seconds for a component report (first call and a repeat through Streamlit's cache are the app's;
here every call computes), the logit lens of one image, one image's per-component effects by attribution and
exactly, the mean attention distance of every head, and the memory the process grew by.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch

from vitcore import load_checkpoint, load_split
from vitcore.data import normalize
from vitcore.inspect import image_effects, logit_lens, mean_attention_distance
from vitcore.inspect.report import component_report


def seconds(fn, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return {"median_s": round(statistics.median(times), 4), "p25_s": round(q[0], 4), "p75_s": round(q[2], 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_checkpoint().model
    data = load_split(None, "val")
    classes = ["n01443537"]
    one = normalize(data.images[:1], model.config)
    pixels = normalize(data.of_classes(classes).images, model.config)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    component_report(model, data, classes, "L3.H5")  # warm: the first call pays for lazy imports
    results = {
        "threads": args.threads,
        "component_report_head_s": seconds(lambda: component_report(model, data, classes, "L3.H5"), args.repeats),
        "component_report_chunk_s": seconds(lambda: component_report(model, data, classes, "L3.C2"), args.repeats),
        "logit_lens_one_image_s": seconds(lambda: logit_lens(model, one), args.repeats),
        "effects_attribution_one_image_s": seconds(lambda: image_effects(model, one), args.repeats),
        "effects_exact_one_image_s": seconds(lambda: image_effects(model, one, exact=True), args.repeats),
        "mean_attention_distance_64_images_s": seconds(
            lambda: mean_attention_distance(model, pixels[:64]), args.repeats
        ),
        "images_of_the_class": len(pixels),
    }
    results["max_rss_growth_mb"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
