"""Ship a training run's best checkpoint as assets/model/ if it beats the shipped one on the full val split.

Writes the model card, the training plot and docs/measurements/evaluate_full_val.json; the previous
model can be kept loadable in a checkpoints/ folder. The shipped config.json records the training
command; a run warm-started (--init-from) from a checkpoint folder ships with that checkpoint's stages
before its own: their recipes and commands in "training.earlier_stages", their epochs in
train_log.json (each entry marked by "stage"). What depends on the model (the shipped atlas, the
the docs' figures) is then re-measured with tools/measure_all.sh.

A weight average of a run's epochs (``python -m vitcore average``) ships the same way: give its folder
and the run's log with --log; the card lists what was averaged.

Run: python tools/ship_model.py runs/NAME [--command "python -m vitcore train ... --out runs/NAME"]
     [--data ../shared/data/tiny-imagenet-200.zip] [--keep-previous checkpoints/NAME] [--log runs/NAME/train_log.json]
"""

import argparse
import filecmp
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from vitcore import load_checkpoint
from vitcore.data import load_split
from vitcore.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "assets" / "model"


def same_weights(a: Path, b: Path) -> bool:
    """Whether two checkpoint folders hold byte-identical weights (a run may start from a copy of the shipped model)."""
    fa, fb = a / "model.safetensors", b / "model.safetensors"
    return fa.is_file() and fb.is_file() and filecmp.cmp(fa, fb, shallow=False)


def stage_history(training: dict, keep_previous: Path | None) -> tuple[list[dict], list[dict]]:
    """The earlier stages (recipes, commands) and their log entries of a run warm-started from a checkpoint folder.

    The folder may be a shipped model (its stages are in its config) or an unshipped run's folder or
    its best/ (its own warm start is followed in turn, its log read from the run folder)."""
    if not training.get("init_from"):
        return [], []
    start = Path(training["init_from"])
    if not start.is_absolute() and not start.exists():  # recorded relative to the repository
        start = ROOT / start
    if not (start / "config.json").is_file():
        return [], []
    start_config = json.loads((start / "config.json").read_text())
    before = start_config["training"]
    if start_config.get("averaged_from"):  # the stage ended in a weight average: the next stage started from that
        before["averaged_from"] = start_config["averaged_from"]
    if "earlier_stages" in before or not before.get("init_from"):
        stages, log = before.pop("earlier_stages", []), []
    else:
        stages, log = stage_history(before, keep_previous)
    own = start / "train_log.json"
    if not own.is_file() and start.name == "best":
        own = start.parent / "train_log.json"
    entries = json.loads(own.read_text()) if own.is_file() else []
    if "stage" not in (entries[:1] or [{}])[0]:  # a run's own log: its epochs up to the checkpoint, as one stage
        entries = [
            dict(e, stage=len(stages) + 1) for e in entries if e["epoch"] <= before.get("epochs_done", e["epoch"])
        ]
    stages, log = stages + [before], log + entries
    if keep_previous and same_weights(start, MODEL):  # the shipped model it started from moves there
        training["init_from"] = str(keep_previous.resolve().relative_to(ROOT.resolve()))
    return stages, log


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "run", type=Path, help="a run folder of `python -m vitcore train` (its best/ checkpoint is used when present)"
    )
    p.add_argument(
        "--command",
        default="",
        help="the training command, as run (goes into the model card); default: the one the run recorded",
    )
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "tiny-imagenet-200.zip"))
    p.add_argument("--keep-previous", type=Path, default=None, help="copy the shipped model here first")
    p.add_argument(
        "--log",
        type=Path,
        default=None,
        help="the run's train_log.json (default: RUN/train_log.json; "
        "for a weight average, the log of the run it averages)",
    )
    args = p.parse_args()
    source = args.run / "best" if (args.run / "best").is_dir() else args.run
    if args.keep_previous and args.keep_previous.exists():
        p.error(f"--keep-previous {args.keep_previous} already exists; name a new folder")
    config = json.loads((source / "config.json").read_text())
    training = config["training"]
    command = args.command or training.get("command", "")
    if not command:
        p.error("this run did not record its command; give it with --command")
    val = load_split(args.data, "val", progress=False)
    new = evaluate(load_checkpoint(source).model, val)
    old = evaluate(load_checkpoint(MODEL).model, val)
    print(f"{source}: top-1 {new['top1']:.4f}; shipped: {old['top1']:.4f} ({new['n_images']} val images)")
    if new["top1"] <= old["top1"]:
        print("not shipped: it does not beat the shipped model")
        return 1
    earlier, log = stage_history(training, args.keep_previous)  # read before the shipped model is replaced
    shipped_sha = hashlib.sha256((MODEL / "model.safetensors").read_bytes()).hexdigest()
    for ingredient in config.get(
        "averaged_from", []
    ):  # an average that includes the shipped model names where it moves
        if args.keep_previous and ingredient["sha256"] == shipped_sha:
            ingredient["checkpoint"] = str(args.keep_previous.resolve().relative_to(ROOT.resolve()))
    if args.keep_previous:
        shutil.copytree(MODEL, args.keep_previous)
    shutil.copy2(source / "model.safetensors", MODEL / "model.safetensors")
    epochs = training["epochs_done"]
    log += [
        dict(e, stage=len(earlier) + 1) if earlier else e
        for e in json.loads((args.log or args.run / "train_log.json").read_text())
        if e["epoch"] <= epochs
    ]
    training.update(command=command, **({"earlier_stages": earlier} if earlier else {}))
    (MODEL / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (MODEL / "train_log.json").write_text(json.dumps(log, indent=1))
    evaluation = ROOT / "docs" / "measurements" / "evaluate_full_val.json"
    evaluation.write_text(json.dumps(new | {"split": "val", "data": args.data, "checkpoint": "shipped"}))
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "model_card.py"), str(evaluation), "--command", command], check=True
    )
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "plot_train_log.py"),
            str(MODEL / "train_log.json"),
            str(ROOT / "docs" / "figures" / "train_log.png"),
        ],
        check=True,
    )
    print(f"shipped epoch {epochs} of {args.run}; next: bash tools/measure_all.sh (the docs' figures, the atlas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
