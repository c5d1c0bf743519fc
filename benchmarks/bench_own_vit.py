"""What bringing your own ViT costs on this machine: a timm model of ViT-Ti's shape (and ViT-B's), a labelled folder.

A randomly initialised timm ``vit_tiny_patch16_224`` (5.7 M parameters; or ``--arch``) is written as a local timm
folder and loaded with ``vitcore.load_model``; a generated image folder (``--classes`` x ``--per-class`` random
images) gives the discovery and eval images through ``vitcore.image_folder``. Then: EAP on 10 images of one
class, a toggle's fast figures (five heads off, then one more), and the process's peak memory. Medians of
``--repeats``; weights are random, so the figures are costs, not accuracies.

Run: python benchmarks/bench_own_vit.py [--arch vit_tiny_patch16_224] [--out docs/measurements/own_vit_tiny.json]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vitcore.circuits import discover  # noqa: E402
from vitcore.image_folder import load_image_folder  # noqa: E402
from vitcore.measurement import write_measurement  # noqa: E402
from vitcore.model_sources import load_model  # noqa: E402
from vitcore.playground import Playground  # noqa: E402
from vitcore.pruning import count_macs, count_params  # noqa: E402

CLASSES = ["goldfish", "tench", "great_white_shark", "tiger_shark", "hammerhead"]


def make_folder(root: Path, classes: int, per_class: int) -> Path:
    g = torch.Generator().manual_seed(0)
    for name in CLASSES[:classes]:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (300, 400, 3), generator=g, dtype=torch.uint8)
            Image.fromarray(pixels.numpy()).save(root / name / f"{i}.jpg", quality=90)
    return root


def main() -> None:
    import timm
    from timm.models import save_for_hf

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="vit_tiny_patch16_224")
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--per-class", type=int, default=40, help="images per class; half are eval images")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        save_for_hf(timm.create_model(args.arch, pretrained=False), f"{tmp}/model", safe_serialization=True)
        t0 = time.perf_counter()
        ckpt = load_model(f"{tmp}/model")
        load_s = time.perf_counter() - t0
        folder = make_folder(Path(tmp) / "images", args.classes, args.per_class)
        t0 = time.perf_counter()
        discovery, eval_set = load_image_folder(folder, ckpt)
        data_s = time.perf_counter() - t0
    model = ckpt.model
    wnid = discovery.wnids[int(discovery.labels[0])]
    eap = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = discover(model, discovery, [wnid], "eap", n_images=10)
        eap.append(time.perf_counter() - t0)
    pg = Playground(model, eval_set, [wnid])
    mask = model.components.ones()
    heads = [i for i, n in enumerate(model.components.names) if ".H" in n]
    mask[heads[:5]] = 0
    pg.fast(mask)  # the session's first keep-set: the base logits and the first pruned copy
    fast = []
    for h in heads[5 : 5 + args.repeats]:
        mask = mask.clone()
        mask[h] = 0
        t0 = time.perf_counter()
        pg.fast(mask)
        fast.append(time.perf_counter() - t0)
    out = {
        "arch": args.arch,
        "parameters": count_params(model),
        "macs_per_image": count_macs(model.config),
        "components": len(model.components),
        "eval_images": len(eval_set),
        "discovery_images": len(discovery),
        "torch_threads": torch.get_num_threads(),
        "load_model_s": load_s,
        "load_folder_s": data_s,
        "eap_10_images_s": statistics.median(eap),
        "fast_figures_s": statistics.median(fast),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "eap_kept": len(result.kept or []),
    }
    for k, v in out.items():
        print(f"{k:20s} {v:.3f}" if isinstance(v, float) else f"{k:20s} {v}")
    if args.out:
        write_measurement(args.out, out)


if __name__ == "__main__":
    main()
