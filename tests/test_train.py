import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from vitcore import load_checkpoint
from vitcore.config import ViTConfig
from vitcore.model import VisionTransformer
from vitcore.training import TrainConfig, lr_factor, train
from vitcore.training.forward import drop_patches
from vitcore.training.recipe import TrainingError

TINY = dict(depth=1, num_heads=2, mlp_width=32, dim=32, head_dim=16, patch_size=16)


def test_lr_schedule_warms_up_then_decays():
    f = [lr_factor(s, 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert f[0] == 0.1 and f[9] == 1.0 and f[-1] < 0.02 and all(a >= b for a, b in zip(f[10:], f[11:]))


def test_train_saves_and_resumes(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=32, steps_per_epoch=3, warmup_epochs=0.5)
    first = train(tmp_path, ViTConfig.uniform(**TINY), cfg, progress=False, stop_after_steps=3)
    assert first["epoch"] == 1 and 0 <= first["val_top1"] <= 1
    before = load_checkpoint(tmp_path).model.state_dict()
    second = train(tmp_path, ViTConfig.uniform(**TINY), cfg, progress=False)
    log = json.loads((tmp_path / "train_log.json").read_text())
    assert [e["epoch"] for e in log] == [1, 2] and second["epoch"] == 2
    after = load_checkpoint(tmp_path)
    assert after.info["training"]["epochs_done"] == 2 and len(after.wnids) == 200
    assert any(not torch.equal(before[k], v) for k, v in after.model.state_dict().items())
    best = load_checkpoint(tmp_path / "best")  # the epoch with the highest val top-1, re-evaluated here
    assert best.info["metrics"]["val_top1"] == max(e["val_top1"] for e in log)
    from vitcore.data import load_split
    from vitcore.evaluate import evaluate

    assert evaluate(best.model, load_split(None, "val", progress=False))["top1"] == pytest.approx(
        best.info["metrics"]["val_top1"]
    )


def _weights(path):
    return load_checkpoint(path).model.state_dict()


def test_stop_anywhere_and_resume_equals_a_straight_run(tmp_path):
    """Mid-epoch stops (twice) then resuming gives bit-identical weights to an unbroken run.

    Exercises every random draw: crop/flip, RandAugment, MixUp/CutMix, erasing, drop path,
    patch dropout, and the switch from the low-resolution stage to full resolution.
    """
    cfg = dict(
        epochs=3,
        batch_size=16,
        steps_per_epoch=4,
        warmup_epochs=1,
        augment="randaugment",
        mixup=0.8,
        cutmix=1.0,
        erasing=0.25,
        drop_path=0.1,
        low_res=32,
        low_res_epochs=1,
        low_res_patch_keep=0.5,
        patch_keep=0.75,
    )
    model = dict(TINY, patch_size=8)
    train(tmp_path / "straight", ViTConfig.uniform(**model), TrainConfig(**cfg), progress=False)
    broken = tmp_path / "broken"
    assert train(broken, ViTConfig.uniform(**model), TrainConfig(**cfg), progress=False, stop_after_steps=2) == {
        "stopped_at": {"epoch": 0, "step": 2}
    }
    assert train(broken, ViTConfig.uniform(**model), TrainConfig(**cfg), progress=False, stop_after_steps=5)[
        "stopped_at"
    ] == {"epoch": 1, "step": 3}
    train(broken, ViTConfig.uniform(**model), TrainConfig(**cfg), progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(broken)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    straight_log = json.loads((tmp_path / "straight" / "train_log.json").read_text())
    broken_log = json.loads((broken / "train_log.json").read_text())
    assert [e["side"] for e in broken_log] == [32, 64, 64]
    assert [e["train_loss"] for e in straight_log] == pytest.approx([e["train_loss"] for e in broken_log], rel=1e-6)


def test_resume_with_other_settings_is_refused(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=32, steps_per_epoch=2)
    train(tmp_path, ViTConfig.uniform(**TINY), cfg, progress=False, stop_after_steps=1)
    with pytest.raises(TrainingError, match="epochs"):
        train(
            tmp_path, ViTConfig.uniform(**TINY), TrainConfig(epochs=3, batch_size=32, steps_per_epoch=2), progress=False
        )


def test_patch_dropout_keeps_cls_and_a_subset_of_distinct_patches():
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).view(2, 17, 3)
    kept = drop_patches(tokens, 0.5)
    assert kept.shape == (2, 9, 3)
    for b in range(2):
        assert torch.equal(kept[b, 0], tokens[b, 0])
        rows = {tuple(r.tolist()) for r in kept[b, 1:]}
        assert len(rows) == 8 and rows <= {tuple(r.tolist()) for r in tokens[b, 1:]}
    assert drop_patches(tokens, 1.0) is tokens


def test_low_resolution_input_uses_resampled_positions():
    model = VisionTransformer(ViTConfig.uniform(**dict(TINY, patch_size=8)))
    assert (
        model.embed(torch.zeros(1, 3, 64, 64)).shape[1] == 65 and model.embed(torch.zeros(1, 3, 32, 32)).shape[1] == 17
    )
    with torch.no_grad():  # a constant position table stays constant when resampled
        model.pos_embed.fill_(0.5)
    assert torch.allclose(model.positions((4, 4)), torch.full((1, 17, 32), 0.5), atol=1e-6)


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "vitcore",
        "train",
        "--out",
        str(tmp_path),
        "--depth",
        "1",
        "--dim",
        "32",
        "--heads",
        "2",
        "--head-dim",
        "16",
        "--mlp",
        "32",
        "--patch",
        "16",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "16",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.info["training"]["world_size"] == 2


def test_a_run_started_by_older_code_resumes(tmp_path):
    """run.json written before a setting existed (here: norm_eps) and weights under the old
    parameter names (patch_embed.weight) still resume; a changed setting is still refused."""
    from vitcore.training.state import RunState

    cfg = TrainConfig(epochs=2, batch_size=32, steps_per_epoch=2)
    train(tmp_path, ViTConfig.uniform(**TINY), cfg, progress=False, stop_after_steps=1)
    run_json = json.loads((tmp_path / "run.json").read_text())
    del run_json["model"]["norm_eps"]
    (tmp_path / "run.json").write_text(json.dumps(run_json))
    state = RunState.load(tmp_path)
    state.model = {
        (
            "patch_embed.weight"
            if k == "patch_embed.proj.weight"
            else "patch_embed.bias"
            if k == "patch_embed.proj.bias"
            else k
        ): v
        for k, v in state.model.items()
    }
    state.save(tmp_path)
    assert train(tmp_path, ViTConfig.uniform(**TINY), cfg, progress=False)["epoch"] == 2


def test_bench_train_runs_each_recipes_stages_and_averages_them_by_time():
    from vitcore.data import ImageSet
    from vitcore.training.bench import RECIPE_STAGES, VARIANTS, bench_train, named_recipe_throughput, recipe_throughput

    # 100 images/s for one epoch then 50 images/s for one: 2 epochs in 1/100 + 1/50 time units
    assert recipe_throughput({"a": 100.0, "b": 50.0}, [("a", 1), ("b", 1)]) == pytest.approx(2 / (1 / 100 + 1 / 50))
    names = {v.name for v in VARIANTS}
    assert all(low in names and high in names for low, high in RECIPE_STAGES.values())
    wnids = [f"n{i:08d}" for i in range(200)]
    data = ImageSet(
        torch.randint(0, 256, (160, 3, 64, 64), dtype=torch.uint8),
        torch.randint(0, 200, (160,)),
        wnids,
        wnids,
        [""] * 160,
    )
    tiny = ViTConfig.uniform(**TINY)
    regularized = [v for v in VARIANTS if v.augmentation == "regularized-cpu"]
    rows = bench_train(data, tiny, [VARIANTS[0]] + regularized, steps=1, rounds=2, progress=False)
    assert [r["variant"] for r in rows] == [VARIANTS[0].name] + [v.name for v in regularized]
    assert all(r["images_per_s"] > 0 and r["p25"] <= r["p75"] for r in rows) and rows[0]["vs_today"] == 1.0
    rates = {r["variant"]: r["images_per_s"] for r in rows}
    whole, stages = named_recipe_throughput(rates, "regularized-cpu")
    assert [e for _, e in stages] == [55, 45] and min(rates.values()) <= whole <= max(rates.values())


def test_init_from_starts_at_the_checkpoints_weights_and_refuses_a_mismatch(tmp_path):
    cfg = dict(
        epochs=1,
        batch_size=16,
        steps_per_epoch=1,
        warmup_epochs=0,
        lr=1e-3,
        augment="none",
        mixup=0.0,
        cutmix=0.0,
        erasing=0.0,
    )
    train(tmp_path / "a", ViTConfig.uniform(**TINY), TrainConfig(**cfg, seed=1), progress=False)
    start = _weights(tmp_path / "a")
    train(tmp_path / "b", ViTConfig.uniform(**TINY), TrainConfig(**cfg, init_from=str(tmp_path / "a")), progress=False)
    train(tmp_path / "c", ViTConfig.uniform(**TINY), TrainConfig(**cfg), progress=False)
    warm, cold = _weights(tmp_path / "b"), _weights(tmp_path / "c")
    # one AdamW step moves each weight by at most about lr (plus lr * weight decay): b starts at a, c does not
    assert max((warm[k] - start[k]).abs().max().item() for k in start) < 2e-3
    assert max((cold[k] - start[k]).abs().max().item() for k in start) > 0.05
    assert json.loads((tmp_path / "b" / "run.json").read_text())["training"]["init_from"] == str(tmp_path / "a")

    with pytest.raises(TrainingError, match="dim: 32 in the checkpoint, 48 in this run"):
        train(
            tmp_path / "d",
            ViTConfig.uniform(**dict(TINY, dim=48)),
            TrainConfig(**cfg, init_from=str(tmp_path / "a")),
            progress=False,
        )
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    config["classes"]["wnids"] = config["classes"]["wnids"][::-1]
    (tmp_path / "a" / "config.json").write_text(json.dumps(config))
    with pytest.raises(TrainingError, match="other classes"):
        train(
            tmp_path / "e", ViTConfig.uniform(**TINY), TrainConfig(**cfg, init_from=str(tmp_path / "a")), progress=False
        )
    with pytest.raises(TrainingError, match="does not exist"):
        train(
            tmp_path / "f",
            ViTConfig.uniform(**TINY),
            TrainConfig(**cfg, init_from=str(tmp_path / "nowhere")),
            progress=False,
        )


def test_grouped_augmentation_shares_one_draw_per_group_and_keeps_each_image_in_place():
    from torchvision.transforms import v2

    from vitcore.training.augment import per_group

    torch.manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(per_group(v2.RandomHorizontalFlip(p=1.0), images, 4), images.flip(-1))
    same = images[:1].expand(32, -1, -1, -1).contiguous()
    crop = v2.RandomCrop(16, padding=4)
    distinct = lambda x: len({tuple(img.flatten().tolist()) for img in x})  # noqa: E731
    assert distinct(per_group(crop, same, 4)) <= 4 < distinct(per_group(crop, same, 0))
    flipped = torch.stack(
        [(per_group(v2.RandomHorizontalFlip(), same, 8) != same).flatten(1).any(1) for _ in range(100)]
    )
    assert 0.4 < flipped.float().mean().item() < 0.6  # each image flipped with probability 1/2, as per image


def test_grouped_augmentation_runs_resume_bit_identically(tmp_path):
    cfg = dict(
        epochs=2,
        batch_size=16,
        steps_per_epoch=3,
        warmup_epochs=1,
        augment="autoaugment",
        mixup=0.8,
        cutmix=1.0,
        erasing=0.25,
        augment_groups=4,
        patch_keep=0.75,
    )
    train(tmp_path / "straight", ViTConfig.uniform(**TINY), TrainConfig(**cfg), progress=False)
    train(tmp_path / "broken", ViTConfig.uniform(**TINY), TrainConfig(**cfg), progress=False, stop_after_steps=4)
    train(tmp_path / "broken", ViTConfig.uniform(**TINY), TrainConfig(**cfg), progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "broken")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TrainingError, match="augment_groups"):
        train(tmp_path / "bad", ViTConfig.uniform(**TINY), TrainConfig(**dict(cfg, augment_groups=17)), progress=False)


def test_the_train_command_records_itself_in_the_checkpoint(tmp_path):
    from vitcore.cli import main

    argv = [
        "train",
        "--out",
        str(tmp_path / "run"),
        "--depth",
        "1",
        "--heads",
        "2",
        "--head-dim",
        "16",
        "--dim",
        "32",
        "--mlp",
        "32",
        "--patch",
        "16",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "1e-3",
    ]
    assert main(argv) == 0
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["training"]["command"]
    assert recorded.split() == ["python", "-m", "vitcore", *argv]
    assert json.loads((tmp_path / "run" / "best" / "config.json").read_text())["training"]["command"] == recorded
