"""tools/ship_model.py in a scratch copy of the repository: a better run ships with its card, plot and log; an equal
one does not.
"""

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tarfile

import pytest
from conftest import ROOT
from safetensors.torch import load_file

from vitcore import load_checkpoint
from vitcore.data import load_split
from vitcore.evaluate import evaluate

BUNDLED = ROOT / "assets" / "tiny-imagenet-subset.zip"
_card_spec = importlib.util.spec_from_file_location("model_card", ROOT / "tools" / "model_card.py")
model_card = importlib.util.module_from_spec(_card_spec)
_card_spec.loader.exec_module(model_card)


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """The earlier stages these tests use, extracted from the commit the model card names (as the card says to)."""
    names = ["checkpoints/interim-4epoch", "checkpoints/two-stage-42"]
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "archive", model_card.STAGES_COMMIT, *names], capture_output=True, timeout=120
        )
    except OSError:
        pytest.skip("git is not installed")
    if done.returncode != 0:
        pytest.skip(f"commit {model_card.STAGES_COMMIT[:7]} is not in this clone's history")
    out = tmp_path_factory.mktemp("stages")
    tarfile.open(fileobj=io.BytesIO(done.stdout)).extractall(out, filter="data")
    return out / "checkpoints"


def _ship(root, run, *extra):
    cmd = [
        sys.executable,
        str(root / "tools" / "ship_model.py"),
        str(run),
        "--command",
        "python -m vitcore train --recipe test",
        "--data",
        str(BUNDLED),
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=600)


def test_a_better_run_ships_and_an_equal_one_does_not(tmp_path, stages):
    root, run = tmp_path / "repo", tmp_path / "run"
    shutil.copytree(ROOT / "tools", root / "tools")
    shutil.copytree(stages / "interim-4epoch", root / "assets" / "model")  # the 'shipped' model here: the 4-epoch one
    (root / "docs" / "measurements").mkdir(parents=True)
    (run / "best").mkdir(parents=True)  # a run folder whose best epoch is today's shipped model
    for name in ("model.safetensors", "config.json"):
        shutil.copy2(ROOT / "assets" / "model" / name, run / "best" / name)
    config = json.loads((run / "best" / "config.json").read_text())
    for key in ("init_from", "earlier_stages"):  # a one-stage run: the shipped model's last stage alone
        config["training"].pop(key, None)
    done = config["training"]["epochs_done"]
    config["training"]["epochs"] = done + 10  # as if the best epoch came before the end of the schedule
    (run / "best" / "config.json").write_text(json.dumps(config))
    shipped_log = json.loads((ROOT / "assets" / "model" / "train_log.json").read_text())
    last_stage = shipped_log[-1].get("stage")
    full_log = [{k: v for k, v in e.items() if k != "stage"} for e in shipped_log if e.get("stage") == last_stage]
    full_log.append(dict(full_log[-1], epoch=done + 1))  # an epoch after the best one: must not reach the card
    (run / "train_log.json").write_text(json.dumps(full_log))

    first = _ship(root, run, "--keep-previous", str(root / "checkpoints" / "previous"))
    assert first.returncode == 0, first.stdout + first.stderr
    shipped = root / "assets" / "model"
    assert (shipped / "model.safetensors").read_bytes() == (
        ROOT / "assets" / "model" / "model.safetensors"
    ).read_bytes()
    assert (root / "checkpoints" / "previous" / "model.safetensors").read_bytes() == (
        stages / "interim-4epoch" / "model.safetensors"
    ).read_bytes()
    assert [e["epoch"] for e in json.loads((shipped / "train_log.json").read_text())] == list(range(1, done + 1))
    assert (root / "docs" / "figures" / "train_log.png").stat().st_size > 10_000

    val = load_split(BUNDLED, "val")
    expected = evaluate(load_checkpoint(ROOT / "assets" / "model").model, val)
    recorded = json.loads((root / "docs" / "measurements" / "evaluate_full_val.json").read_text())
    assert recorded["top1"] == pytest.approx(expected["top1"]) and recorded["n_images"] == len(val.labels)
    card = (shipped / "README.md").read_text()
    n_params = sum(
        t.numel() for t in load_file(shipped / "model.safetensors").values()
    )  # counted from the file, not the model
    assert f"Top-1 {expected['top1']:.4f}" in card and f"{n_params:,} parameters" in card
    assert f"epoch {done} of a planned {done + 10}-epoch schedule" in card
    assert "python -m vitcore train --recipe test" in card and f"| {done} |" in card and f"| {done + 1} |" not in card

    again = _ship(root, run)  # now the run's best is the shipped model: refused, nothing touched
    assert again.returncode == 1 and "not shipped" in again.stdout
    assert (shipped / "README.md").read_text() == card

    clash = _ship(root, run, "--keep-previous", str(root / "checkpoints" / "previous"))
    assert clash.returncode == 2 and "already exists" in clash.stderr


@pytest.mark.parametrize("start", ["shipped", "copy"])
def test_a_warm_started_run_ships_with_the_stages_before_it(tmp_path, start, stages):
    """A run started from the shipped model (--init-from), or from a copy of it, carries its recipe, command and log
    as stage 1.
    """
    root, run = tmp_path / "repo", tmp_path / "run"
    shutil.copytree(ROOT / "tools", root / "tools")
    shipped = root / "assets" / "model"
    shutil.copytree(
        stages / "interim-4epoch", shipped
    )  # stage 1: the 4-epoch model, with the command it was trained with
    stage1 = json.loads((stages / "interim-4epoch" / "config.json").read_text())
    stage1["training"]["command"] = "python -m vitcore train --recipe baseline --epochs 4"
    (shipped / "config.json").write_text(json.dumps(stage1))
    init = shipped
    if start == "copy":  # outside the repository, e.g. under runs/: identical weights, so it too names the kept folder
        init = tmp_path / "copy-of-shipped"
        shutil.copytree(shipped, init)
    (root / "docs" / "measurements").mkdir(parents=True)
    (run / "best").mkdir(
        parents=True
    )  # stage 2: a run from stage 1's weights whose best epoch is today's shipped model
    shutil.copy2(ROOT / "assets" / "model" / "model.safetensors", run / "best" / "model.safetensors")
    config = json.loads((ROOT / "assets" / "model" / "config.json").read_text())
    config["training"] = dict(
        config["training"], init_from=str(init), epochs=3, epochs_done=3, low_res=0, patch_keep=1.0
    )
    config["training"].pop("command", None)
    (run / "best" / "config.json").write_text(json.dumps(config))
    stage2_log = [
        dict(e, epoch=i)
        for i, e in enumerate(json.loads((ROOT / "assets" / "model" / "train_log.json").read_text())[-3:], 1)
    ]
    (run / "train_log.json").write_text(json.dumps(stage2_log))

    result = _ship(root, run, "--keep-previous", str(root / "checkpoints" / "stage1"))
    assert result.returncode == 0, result.stdout + result.stderr
    log = json.loads((shipped / "train_log.json").read_text())
    stage1_log = json.loads((stages / "interim-4epoch" / "train_log.json").read_text())
    assert [(e["stage"], e["epoch"]) for e in log] == [(1, e["epoch"]) for e in stage1_log] + [(2, 1), (2, 2), (2, 3)]
    assert [e["train_loss"] for e in log] == [e["train_loss"] for e in stage1_log + stage2_log]
    training = json.loads((shipped / "config.json").read_text())["training"]
    assert training["earlier_stages"] == [stage1["training"]]
    assert (
        training["init_from"] == "checkpoints/stage1" and training["command"] == "python -m vitcore train --recipe test"
    )
    assert (
        load_checkpoint(root / training["init_from"]).model.config.dim
        == load_checkpoint(stages / "interim-4epoch").model.config.dim
    )

    card = (shipped / "README.md").read_text()
    hours = sum(e["seconds"] for e in stage1_log + stage2_log) / 3600
    assert f"{len(stage1_log) + 3} epochs in 2 stages" in card and f"({hours:.2f} h of training step time" in card
    one, two = card.index("**Stage 1.**"), card.index("**Stage 2.**")
    assert one < card.index("--recipe baseline --epochs 4") < two < card.index("--recipe test")
    assert "starting from the weights of checkpoints/stage1" in card[two:]
    assert "| stage | epoch |" in card and f"| 1 | {len(stage1_log)} |" in card
    last = stage2_log[-1]
    assert (
        f"| 2 | 3 | {last['side']} | {last['patch_keep']:g} | {last['train_loss']:.3f} | {last['val_top1']:.4f} |"
        in card
    )


def test_a_run_started_from_an_unshipped_run_ships_with_every_stage(tmp_path, stages):
    """shipped (stage 1) -> run A, never shipped, its best epoch 2 of 3 (stage 2) -> run B (stage 3): B ships with all
    three.
    """
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "tools", root / "tools")
    shipped = root / "assets" / "model"
    shutil.copytree(stages / "interim-4epoch", shipped)
    stage1 = json.loads((stages / "interim-4epoch" / "config.json").read_text())
    stage1["training"]["command"] = "python -m vitcore train --recipe baseline --epochs 4"
    (shipped / "config.json").write_text(json.dumps(stage1))
    (root / "docs" / "measurements").mkdir(parents=True)
    current = json.loads((ROOT / "assets" / "model" / "config.json").read_text())
    entries = [
        {k: v for k, v in e.items() if k != "stage"}
        for e in json.loads((ROOT / "assets" / "model" / "train_log.json").read_text())[-3:]
    ]

    def make_run(name, init, weights, command, epochs_done):
        run = tmp_path / name
        (run / "best").mkdir(parents=True)
        shutil.copy2(weights, run / "best" / "model.safetensors")
        training = {k: v for k, v in current["training"].items() if k not in ("earlier_stages", "command")}
        training.update(init_from=str(init), epochs=3, epochs_done=epochs_done, low_res=0, command=command)
        (run / "best" / "config.json").write_text(json.dumps(dict(current, training=training)))
        (run / "train_log.json").write_text(json.dumps([dict(e, epoch=i) for i, e in enumerate(entries, 1)]))
        return run

    run_a = make_run(
        "a", shipped, stages / "two-stage-42" / "model.safetensors", "python -m vitcore train --out runs/a", 2
    )
    run_b = make_run(
        "b", run_a / "best", ROOT / "assets" / "model" / "model.safetensors", "python -m vitcore train --out runs/b", 3
    )
    cmd = [
        sys.executable,
        str(root / "tools" / "ship_model.py"),
        str(run_b),
        "--data",
        str(BUNDLED),
        "--keep-previous",
        str(root / "checkpoints" / "stage1"),
    ]  # no --command: the recorded one is used
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    training = json.loads((shipped / "config.json").read_text())["training"]
    assert [s["command"] for s in training["earlier_stages"]] == [
        stage1["training"]["command"],
        "python -m vitcore train --out runs/a",
    ]
    assert training["earlier_stages"][1]["init_from"] == "checkpoints/stage1"  # run A's start moved with the old model
    assert (
        training["init_from"] == str(run_a / "best") and training["command"] == "python -m vitcore train --out runs/b"
    )
    log = json.loads((shipped / "train_log.json").read_text())
    stage1_log = json.loads((stages / "interim-4epoch" / "train_log.json").read_text())
    assert [(e["stage"], e["epoch"]) for e in log] == [(1, e["epoch"]) for e in stage1_log] + [
        (2, 1),
        (2, 2),
        (3, 1),
        (3, 2),
        (3, 3),
    ]
    card = (shipped / "README.md").read_text()
    assert (
        card.index("**Stage 2.**")
        < card.index("--out runs/a")
        < card.index("**Stage 3.**")
        < card.index("--out runs/b")
    )


def test_a_run_without_a_recorded_command_needs_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    config = json.loads((ROOT / "assets" / "model" / "config.json").read_text())
    config["training"].pop("command")
    (run / "config.json").write_text(json.dumps(config))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "ship_model.py"), str(run), "--data", str(BUNDLED)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "did not record its command" in result.stderr


def test_a_weight_average_ships_with_its_sources_on_the_card(tmp_path, stages):
    """An average that includes the shipped model names the folder the shipped model moves to; the log comes from
    --log.
    """
    root, run = tmp_path / "repo", tmp_path / "run"
    shutil.copytree(ROOT / "tools", root / "tools")
    shipped = root / "assets" / "model"
    shutil.copytree(stages / "interim-4epoch", shipped)
    (root / "docs" / "measurements").mkdir(parents=True)
    (run / "epoch3").mkdir(parents=True)  # the run's last epoch: today's shipped weights, as a one-stage run
    shutil.copy2(ROOT / "assets" / "model" / "model.safetensors", run / "epoch3" / "model.safetensors")
    config = json.loads((ROOT / "assets" / "model" / "config.json").read_text())
    for key in ("init_from", "earlier_stages"):
        config["training"].pop(key, None)
    config["training"].update(epochs=3, epochs_done=3)
    (run / "epoch3" / "config.json").write_text(json.dumps(config))
    log = [
        {k: v for k, v in e.items() if k != "stage"}
        for e in json.loads((ROOT / "assets" / "model" / "train_log.json").read_text())[-3:]
    ]
    (run / "train_log.json").write_text(json.dumps([dict(e, epoch=i) for i, e in enumerate(log, 1)]))
    soup = tmp_path / "soup"
    made = subprocess.run(
        [sys.executable, "-m", "vitcore", "average", "--out", str(soup), f"{shipped}=0", str(run / "epoch3")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr

    result = _ship(
        root, soup, "--log", str(run / "train_log.json"), "--keep-previous", str(root / "checkpoints" / "previous")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (shipped / "model.safetensors").read_bytes() == (soup / "model.safetensors").read_bytes()
    sources = json.loads((shipped / "config.json").read_text())["averaged_from"]
    assert [s["checkpoint"] for s in sources] == ["checkpoints/previous", str(run / "epoch3")]
    assert [e["epoch"] for e in json.loads((shipped / "train_log.json").read_text())] == [1, 2, 3]
    card = (shipped / "README.md").read_text()
    assert (
        "## Weight averaging" in card
        and "| checkpoints/previous | 0.000 |" in card
        and f"| {run / 'epoch3'} | 1.000 |" in card
    )
    assert "python -m vitcore average --out" in card


def test_a_run_started_from_a_shipped_average_names_its_sources_in_that_stage(tmp_path, stages):
    """The shipped model is a weight average; a run warm-started from it ships with that average listed under stage
    1.
    """
    root, run = tmp_path / "repo", tmp_path / "run"
    shutil.copytree(ROOT / "tools", root / "tools")
    shipped = root / "assets" / "model"
    shutil.copytree(stages / "interim-4epoch", shipped)
    stage1 = json.loads((stages / "interim-4epoch" / "config.json").read_text())
    stage1["training"]["command"] = "python -m vitcore train --recipe baseline --epochs 4"
    sources = [
        {"checkpoint": "checkpoints/epoch-a", "weight": 1.0, "sha256": "a" * 64},
        {"checkpoint": "runs/epoch-b", "weight": 2.0, "sha256": "b" * 64},
    ]
    (shipped / "config.json").write_text(json.dumps(dict(stage1, averaged_from=sources)))
    (root / "docs" / "measurements").mkdir(parents=True)
    (run / "best").mkdir(parents=True)
    shutil.copy2(ROOT / "assets" / "model" / "model.safetensors", run / "best" / "model.safetensors")
    config = json.loads((ROOT / "assets" / "model" / "config.json").read_text())
    config["training"] = dict(config["training"], init_from=str(shipped), epochs=3, epochs_done=3)
    config.pop("averaged_from", None)
    (run / "best" / "config.json").write_text(json.dumps(config))
    log = [
        {k: v for k, v in e.items() if k != "stage"}
        for e in json.loads((ROOT / "assets" / "model" / "train_log.json").read_text())[-3:]
    ]
    (run / "train_log.json").write_text(json.dumps([dict(e, epoch=i) for i, e in enumerate(log, 1)]))

    result = _ship(root, run, "--keep-previous", str(root / "checkpoints" / "stage1"))
    assert result.returncode == 0, result.stdout + result.stderr
    shipped_config = json.loads((shipped / "config.json").read_text())
    assert shipped_config["training"]["earlier_stages"][0]["averaged_from"] == sources
    assert "averaged_from" not in shipped_config  # the new model itself is not an average
    card = (shipped / "README.md").read_text()
    one, two = card.index("**Stage 1.**"), card.index("**Stage 2.**")
    named = card.index("weighted mean of the weights of 2 checkpoints (weights 1, 2;")
    assert one < named < card.index("checkpoints/epoch-a, runs/epoch-b") < two
    assert "## Weight averaging" not in card


def test_the_card_names_a_commit_that_holds_every_earlier_stage():
    card = (ROOT / "assets" / "model" / "README.md").read_text()
    assert model_card.earlier_stages_section() in card
    try:
        listing = subprocess.run(
            ["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", model_card.STAGES_COMMIT, "checkpoints"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        pytest.skip("git is not installed")
    if listing.returncode != 0:
        pytest.skip(f"commit {model_card.STAGES_COMMIT[:7]} is not in this clone's history")
    files = set(listing.stdout.split())
    for name, _ in model_card.EARLIER_STAGES:
        assert {f"checkpoints/{name}/{f}" for f in ("model.safetensors", "config.json", "README.md")} <= files, name
    assert (
        not (ROOT / "checkpoints").exists()
        or not subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "checkpoints"], capture_output=True, text=True
        ).stdout.strip()
    )
