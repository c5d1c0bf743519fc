"""What the Features page's views cost on this machine: a feature's view (warm: the feature index built once),
attributions to the latents for one image (the estimate alone, and with its ten largest checked exactly), and
suppressing a feature on one class's eval images; medians of ``--repeats`` runs side by side in one process, for
each shipped SAE of the shipped model on the bundled eval subset. Pause background jobs while it runs.

Run: python benchmarks/bench_features.py [--out docs/measurements/bench_features.json]
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
from vitcore.data import normalize  # noqa: E402
from vitcore.features.attribution import attribute_latents  # noqa: E402
from vitcore.features.sae import load_sae  # noqa: E402
from vitcore.features.shipped import saes_for  # noqa: E402
from vitcore.features.steer import scale_latents, steer_effect  # noqa: E402
from vitcore.features.view import build_index, feature_view, features_of_class  # noqa: E402
from vitcore.measurement import write_measurement  # noqa: E402

CLASS = "n01443537"  # goldfish


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(ckpt, data, path: Path, repeats: int) -> dict:
    """One SAE's row: the index's build time and the median of each view."""
    subset = data.of_classes([CLASS])
    x = normalize(subset.images[:1], ckpt.model.config)
    sae = load_sae(path)
    start = time.perf_counter()
    index = build_index(ckpt.model, sae, data)
    index_s = time.perf_counter() - start
    latent = features_of_class(index, data, CLASS, n=1)[0][0]
    row = {
        "sae": path.name,
        "layer": sae.config.layer,
        "eval_images": len(data),
        "index_build_s": round(index_s, 3),
        "feature_view_s": median_seconds(lambda: feature_view(ckpt.model, sae, data, index, latent), repeats),
        "attribution_one_image_s": median_seconds(
            lambda: attribute_latents(ckpt.model, sae, x, subset.labels[:1]), repeats
        ),
        "attribution_with_exact_10_s": median_seconds(
            lambda: attribute_latents(ckpt.model, sae, x, subset.labels[:1], exact=10), repeats
        ),
        "suppress_on_class_s": median_seconds(
            lambda: steer_effect(ckpt.model, sae, subset, scale_latents([latent], 0.0)), repeats
        ),
    }
    print(row, file=sys.stderr)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_grad_enabled(True)
    ckpt, data = load_checkpoint(), load_split(None, "val")
    rows = [measure(ckpt, data, path, args.repeats) for path, _ in saes_for(ckpt.sha256)]
    results = [{"class": CLASS, "repeats": args.repeats, **row} for row in rows]
    if args.out:
        write_measurement(args.out, results)
    else:
        print(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
