"""Write a checkpoint's model card (README.md beside config.json) from its config, training log and an evaluation.

Run: python tools/model_card.py EVAL_JSON [--model assets/model] [--command "python -m vitcore train ..."]
"""

import argparse
import json
from pathlib import Path

from vitcore import load_checkpoint
from vitcore.pruning.counts import count_macs, count_params

MODEL = Path(__file__).resolve().parent.parent / "assets" / "model"

# Earlier stages' weights left the tree; this commit is the last that holds them under checkpoints/.
STAGES_COMMIT = "ae29fea9fd29d474e1e5551443cccab4cbb22551"
EARLIER_STAGES = (
    ("interim-4epoch", "the first shipped model: 4 epochs of the baseline recipe"),
    ("fast-cpu-30", "the 30-epoch `fast-cpu` run, shipped before the staged model"),
    ("regularized-cpu-99", "stage 1: epoch 99 of the `regularized-cpu` run"),
    ("two-stage-42", "stage 2: 8 full-token epochs (shipped then)"),
    ("three-stage-45", "stage 3: 8 epochs without MixUp, CutMix and erasing (shipped then)"),
    ("four-stage-47", "stage 4: 8 epochs without AutoAugment and drop path (shipped then)"),
    ("stage5-aa-half", "stage 5: 12 epochs at half the tokens with AutoAugment"),
    ("six-stage-47", "stage 6 ended in a weight average with stage 4 (shipped then)"),
    ("stage7-aa-half-40", "stage 7: 40 epochs with the full regularisation"),
    ("stage8-48", "stage 8: 3 epochs without augmentation (shipped then)"),
    ("stage9-epoch30", "stage 9: epoch 30 of 40 with the full regularisation"),
    ("stage9-aa-half-40", "stage 10: stage 9's last 10 epochs, the start of stage 11"),
)


def earlier_stages_section() -> str:
    """Where each earlier stage's weights live (a commit of this repository) and how to load them."""
    rows = "\n".join(f"| `checkpoints/{name}/` | {what} |" for name, what in EARLIER_STAGES)
    return f"""## Earlier stages' weights

The weights of earlier stages are not in the tree; commit `{STAGES_COMMIT[:7]}` (`{STAGES_COMMIT}`) of this
repository holds each of them, with its own card, config and training log, under `checkpoints/NAME/`:

| folder at `{STAGES_COMMIT[:7]}` | what it is |
|---|---|
{rows}

To load one, extract its folder from that commit into the working tree and pass it as a checkpoint:

    git archive {STAGES_COMMIT[:7]} checkpoints/stage8-48 | tar -x
    python -m vitcore evaluate --checkpoint checkpoints/stage8-48 --split val --data ../shared/data/tiny-imagenet-200.zip
"""


def fmt(entry: dict, key: str, spec: str) -> str:
    return format(entry[key], spec) if key in entry else "-"


def stage_recipe(t: dict, m: dict, command: str = "") -> str:
    """One training stage's recipe, as run, from its config's training section."""
    done, planned = t.get("epochs_done", t["epochs"]), t["epochs"]
    partial = (
        f" This checkpoint is epoch {done} of a planned {planned}-epoch schedule (the run's best val epoch"
        f" so far); the learning rate had not finished its decay."
        if done < planned
        else ""
    )
    side = m["image_size"]
    resolution = (
        f"{t['low_res_epochs']:g} epochs at {t['low_res']}x{t['low_res']} (position embeddings resampled "
        "bicubically), keeping "
        f"{t['low_res_patch_keep']:.0%} of the patch tokens per image, then {t['epochs'] - t['low_res_epochs']:g} "
        "epochs at "
        f"{side}x{side} keeping {t['patch_keep']:.0%}"
        if t.get("low_res")
        else f"{t['epochs']} epochs at {side}x{side} keeping {t.get('patch_keep', 1.0):.0%} of the patch tokens"
    )
    start = f", starting from the weights of {t['init_from']} (the stage before)" if t.get("init_from") else ""
    sources = t.get("averaged_from", [])
    weights = ", ".join(format(source["weight"], "g") for source in sources)
    names = ", ".join(source["checkpoint"] for source in sources)
    averaged = (
        f" The stage ended in a weighted mean of the weights of {len(sources)} checkpoints (weights {weights};"
        f" SHA-256 in config.json), the start of the next stage: {names}."
        if sources
        else ""
    )
    return f"""{resolution}{start}.{partial} AdamW lr {t["lr"]}, weight decay {t["weight_decay"]}, batch {t["batch_size"]}, warm-up {t["warmup_epochs"]} epoch(s)
then cosine to {t["min_lr"]}, label smoothing {t["label_smoothing"]}, gradient clipping 1.0, random crop (pad {t["crop_padding"]})
+ flip on uint8 batches in the main process (augment={t["augment"]}, mixup={t["mixup"]}, cutmix={t["cutmix"]},
erasing={t["erasing"]}), drop path {t["drop_path"]}. Seed {t["seed"]}. Command:

    {command or t.get("command") or "(not recorded)"}

The same command resumes the run from its last saved state (every {t.get("checkpoint_minutes", 5):g} minutes and each epoch).{averaged}"""


def averaging(cfg: dict) -> str:
    """The card's section on weight averaging, when the checkpoint is an average of others."""
    sources = cfg.get("averaged_from")
    if not sources:
        return ""
    total = sum(s["weight"] for s in sources)
    rows = "\n".join(f"| {s['checkpoint']} | {s['weight'] / total:.3f} | `{s['sha256'][:12]}` |" for s in sources)
    return f"""
## Weight averaging
These weights are the weighted mean of {len(sources)} checkpoints' weights (SWA / model soup), made with

    {cfg.get("averaged_command", "(command not recorded)")}

| checkpoint | weight | SHA-256 of its weights |
|---|---|---|
{rows}

The recipe and log below are the training that produced those checkpoints.
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("eval_json")
    p.add_argument("--model", default=str(MODEL))
    p.add_argument("--command", default="", help="the training command, as run")
    args = p.parse_args()
    model = Path(args.model)
    cfg = json.loads((model / "config.json").read_text())
    log = json.loads((model / "train_log.json").read_text())
    ev = json.loads(Path(args.eval_json).read_text())
    m, t = cfg["model"], cfg["training"]
    net = load_checkpoint(model).model
    stages = [*t.get("earlier_stages", []), t]
    hours = sum(e["seconds"] for e in log) / 3600
    staged = len(stages) > 1
    rows = "\n".join(
        (f"| {e.get('stage', 1)} " if staged else "")
        + f"| {e['epoch']} | {e.get('side', m['image_size'])} | {e.get('patch_keep', 1.0):g} | {e['train_loss']:.3f} | "
        f"{fmt(e, 'val_top1', '.4f')} | {fmt(e, 'val_top5', '.4f')} | {e['images_per_s']:.0f} |"
        for e in log
    )
    header = (
        "| stage " if staged else ""
    ) + "| epoch | side | patch keep | train loss | val top-1 | val top-5 | train img/s |"
    rule = "|---" * (header.count("|") - 1) + "|"
    recipes = "\n\n".join(
        (f"**Stage {i}.** " if staged else "") + stage_recipe(stage, m, args.command if stage is t else "")
        for i, stage in enumerate(stages, 1)
    )
    text = f"""# Shipped checkpoint: ViT for Tiny ImageNet, trained on a 2-core CPU

**Top-1 {ev["top1"]:.4f}, top-5 {ev["top5"]:.4f} on the full Tiny ImageNet val split ({ev["n_images"]:,} images)**, measured with

    python -m vitcore evaluate --data ../shared/data/tiny-imagenet-200.zip --split val --json

{len(log)} epochs{f" in {len(stages)} stages" if staged else ""} on this project's 2-core CPU ({hours:.2f} h of training step time, shared with development
work; per-epoch evaluation not included). The anchor for this architecture, Lee et al. (2021), reports
57.1% after 100 GPU epochs.
{averaging(cfg)}
## Architecture
Pre-norm ViT: patch {m["patch_size"]}, dim {m["dim"]}, depth {len(m["heads"])}, heads {m["heads"][0]} x {m["head_dim"]},
MLP {m["mlp_widths"][0]}, {m["num_classes"]} classes, {count_params(net):,} parameters, {count_macs(net.config) / 1e6:.1f} M MACs per image.
Normalization mean {m["mean"]}, std {m["std"]}.

## Recipe (as run)
{recipes}

{earlier_stages_section()}
## Training log (`train_log.json`, plotted in `docs/figures/train_log.png`)

{header}
{rule}
{rows}
"""
    (model / "README.md").write_text(text)


if __name__ == "__main__":
    main()
