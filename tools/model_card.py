"""Write assets/model/README.md (the model card) from config.json, train_log.json and an evaluation.

Run: python tools/model_card.py docs/measurements/evaluate_full_val.json
"""

import json
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parent.parent / "assets" / "model"


def main(eval_json: str) -> None:
    cfg = json.loads((MODEL / "config.json").read_text())
    log = json.loads((MODEL / "train_log.json").read_text())
    ev = json.loads(Path(eval_json).read_text())
    m, t = cfg["model"], cfg["training"]
    cpu_hours = sum(e["seconds"] for e in log) / 3600
    rows = "\n".join(f"| {e['epoch']} | {e['train_loss']:.3f} | {e['val_top1']:.4f} | {e['val_top5']:.4f} | {e['images_per_s']:.0f} |" for e in log)
    text = f"""# Shipped checkpoint: interim ViT for Tiny ImageNet (CPU-trained)

**Top-1 {ev['top1']:.4f}, top-5 {ev['top5']:.4f} on the full Tiny ImageNet val split ({ev['n_images']:,} images)**, measured with

    python -m vitcore evaluate --data ../shared/data/tiny-imagenet-200.zip --split val --json

This is an *interim* checkpoint: {len(log)} epochs on a 2-core CPU ({cpu_hours:.2f} h of training wall time,
shared with development work), far short of the 100-epoch recipe of Lee et al. (2021), who report
57.1% for this architecture. No GPU was lent to this project's sessions so far; the full-recipe
checkpoint is a separate issue. Circuits found on an undertrained model are noisier than they would be
on a converged one.

## Architecture
Pre-norm ViT: patch {m['patch_size']}, dim {m['dim']}, depth {len(m['heads'])}, heads {m['heads'][0]} x {m['head_dim']},
MLP {m['mlp_widths'][0]}, {m['num_classes']} classes, 2,761,928 parameters, 189.5 M MACs per image.
Normalization mean {m['mean']}, std {m['std']}.

## Recipe (as run)
AdamW lr {t['lr']}, weight decay {t['weight_decay']}, batch {t['batch_size']}, warm-up {t['warmup_epochs']} epoch then cosine to {t['min_lr']},
label smoothing {t['label_smoothing']}, gradient clipping 1.0, random crop (pad {t['crop_padding']}) + flip only
(augment={t['augment']}, mixup={t['mixup']}, cutmix={t['cutmix']}, erasing={t['erasing']}, drop path={t['drop_path']}):
heavy augmentation hurts at a few epochs. Seed {t['seed']}. Command:

    python -m vitcore train --data ../shared/data/tiny-imagenet-200.zip --out runs/interim --epochs 4 \\
        --warmup-epochs 0.3 --augment none --mixup 0 --cutmix 0 --erasing 0 --drop-path 0 --seed 0

## Training log (`train_log.json`, plotted in `docs/train_log.png`)

| epoch | train loss | val top-1 | val top-5 | train img/s |
|---|---|---|---|---|
{rows}
"""
    (MODEL / "README.md").write_text(text)


if __name__ == "__main__":
    main(sys.argv[1])
