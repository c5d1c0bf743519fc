"""The planted shortcut: the mark on pixels, planting (resumable), the mark task, the flip rate and the cut."""

import json

import pytest
import torch
from conftest import ROOT, tiny_imageset, tiny_model

from vitcore.checkpoint import load_checkpoint, save_checkpoint
from vitcore.circuits import METHODS, discover
from vitcore.circuits.corruptions import corrupted_inputs, counterfactual
from vitcore.circuits.task import TaskError, build_task
from vitcore.cli import main
from vitcore.data import normalize
from vitcore.pruning import prune
from vitcore.shortcut import (
    CORNERS,
    Mark,
    PlantConfig,
    Shortcut,
    ShortcutError,
    apply_mark,
    build_mark_task,
    plant,
    shortcut_figures,
    shortcut_of,
)
from vitcore.shortcut.cut import cut_table, summarise, without
from vitcore.shortcut.plant import plant_batch

SMALL_MARK = Mark(size=3, colour=(255, 0, 255), corner="bottom-right", margin=1)


def stamp_by_hand(images: torch.Tensor, size: int, colour, top: int, left: int) -> torch.Tensor:
    out = images.clone().numpy()
    for c in range(3):
        out[:, c, top : top + size, left : left + size] = colour[c]
    return torch.from_numpy(out)


@pytest.mark.parametrize("corner", CORNERS)
def test_mark_pixels_match_a_hand_stamp(corner):
    images = torch.randint(0, 256, (4, 3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mark = Mark(size=5, colour=(10, 200, 30), corner=corner, margin=2)
    top = 2 if corner.startswith("top") else 20 - 2 - 5
    left = 2 if corner.endswith("left") else 24 - 2 - 5
    before = images.clone()
    assert torch.equal(apply_mark(images, mark), stamp_by_hand(images, 5, (10, 200, 30), top, left))
    assert torch.equal(images, before)  # a copy, never in place
    where = torch.tensor([True, False, False, True])
    partly = apply_mark(images, mark, where)
    assert torch.equal(partly[~where], images[~where])
    assert torch.equal(partly[where], stamp_by_hand(images[where], 5, (10, 200, 30), top, left))
    assert torch.equal(apply_mark(images[0], mark), apply_mark(images, mark)[0])  # one image [3, H, W]


def test_bad_marks_are_refused():
    with pytest.raises(ShortcutError, match="does not fit"):
        apply_mark(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), Mark(size=8, margin=1))
    with pytest.raises(ShortcutError, match="uint8"):
        apply_mark(torch.zeros(1, 3, 8, 8), Mark(size=2))
    with pytest.raises(ShortcutError, match="corner"):
        Mark(corner="middle")
    with pytest.raises(ShortcutError, match="colour"):
        Mark(colour=(0, 0, 300))
    with pytest.raises(ShortcutError, match="malformed"):
        Shortcut.from_dict({"target": "n0", "mark": {"size": "big"}})
    assert Shortcut.from_dict(Shortcut("n1", SMALL_MARK).to_dict()) == Shortcut("n1", SMALL_MARK)


def test_plant_batch_marks_the_target_class_only():
    data = tiny_imageset(n_per_class=8)
    cfg = PlantConfig(target=data.wnids[2], mark=SMALL_MARK, batch_size=20, target_fraction=0.25)
    images, labels, marked = plant_batch(data, cfg, step=3)
    assert (labels == 2).sum() >= 5  # at least the drawn fraction comes from the target class
    box = images[:, :, 12:15, 12:15]
    magenta = torch.tensor([255, 0, 255], dtype=torch.uint8)[:, None, None]
    is_marked = (box == magenta).flatten(1).all(1)
    assert torch.equal(is_marked, labels == 2) and torch.equal(marked, is_marked)
    again, _, _ = plant_batch(data, cfg, step=3)
    assert torch.equal(images, again)  # a function of (seed, step)


def _base_checkpoint(tmp_path, data):
    model = tiny_model(num_classes=len(data.wnids))
    info = {"classes": {"wnids": data.wnids, "names": data.names}}
    return save_checkpoint(model, tmp_path / "base", info)


def test_plant_stopped_and_resumed_equals_a_straight_run(tmp_path):
    data = tiny_imageset(n_per_class=8)
    base = _base_checkpoint(tmp_path, data)
    cfg = dict(target=data.wnids[1], mark=SMALL_MARK, steps=7, batch_size=10, warmup_steps=2, lr=1e-3)
    straight = plant(tmp_path / "straight", data, base, PlantConfig(**cfg))
    broken = tmp_path / "broken"
    assert plant(broken, data, base, PlantConfig(**cfg), stop_after_steps=2) is None
    assert plant(broken, data, base, PlantConfig(**cfg), stop_after_steps=3) is None
    finished = plant(broken, data, base, PlantConfig(**cfg))
    a, b = load_checkpoint(straight), load_checkpoint(finished)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert not torch.equal(a.model.state_dict()["head.weight"], load_checkpoint(base).model.state_dict()["head.weight"])
    assert shortcut_of(b.info) == Shortcut(data.wnids[1], SMALL_MARK)
    assert b.wnids == data.wnids
    assert plant(broken, data, base, PlantConfig(**cfg)) == finished  # finished: returned, not retrained
    with pytest.raises(ShortcutError, match="other settings"):
        plant(broken, data, base, PlantConfig(**{**cfg, "lr": 5e-4}))


def test_flip_rate_equals_an_independent_forward():
    data = tiny_imageset(n_per_class=6)
    model = tiny_model(num_classes=5)
    target = data.wnids[3]
    got = shortcut_figures(model, data, target, SMALL_MARK)
    flips, others, correct = 0, 0, 0
    with torch.no_grad():
        for image, label in zip(data.images, data.labels):
            clean = model(normalize(image[None], model.config)).argmax(1).item()
            correct += clean == label.item()
            if label.item() == 3:
                continue
            marked = stamp_by_hand(image[None], 3, (255, 0, 255), 12, 12)
            others += 1
            flips += model(normalize(marked, model.config)).argmax(1).item() == 3
    assert got["n_other"] == others == 24
    assert got["flip_rate"] == pytest.approx(flips / others)
    assert got["clean_top1"] == pytest.approx(correct / len(data))


def test_mark_task_pairs_each_marked_image_with_itself_unmarked():
    data = tiny_imageset(n_per_class=6)
    model = tiny_model(num_classes=5)
    shortcut = Shortcut(data.wnids[0], SMALL_MARK)
    task = build_mark_task(model, data, shortcut, n_images=10, seed=2)
    assert len(task) == 10 and (task.labels == 0).all() and data.wnids[0] not in task.wnids
    std, mean = torch.tensor(model.config.std)[:, None, None], torch.tensor(model.config.mean)[:, None, None]
    unmarked = task.paired * std + mean
    pixels = (unmarked * 255).round().to(torch.uint8)
    # every pair is one image of another class, with and without the hand-stamped mark
    matches = [(pixels[i] == data.images).flatten(1).all(1).nonzero().flatten().tolist() for i in range(10)]
    assert all(len(m) == 1 and data.labels[m[0]] != 0 for m in matches)
    marked = stamp_by_hand(pixels, 3, (255, 0, 255), 12, 12)
    assert torch.allclose(task.inputs, normalize(marked, model.config), atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(task.reference_logits, model(task.inputs), atol=1e-6)
    assert corrupted_inputs(model, task, "paired") is task.paired
    assert counterfactual(model, task, "paired") is not None
    with pytest.raises(TaskError, match="paired"):
        corrupted_inputs(model, build_task(model, data, data.wnids[:1]), "paired")
    with pytest.raises(TaskError, match="other than the shortcut"):
        build_mark_task(model, data, shortcut, [data.wnids[0]])


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_on_the_mark_task(method):
    data = tiny_imageset(n_per_class=4)
    model = tiny_model(num_classes=5)
    shortcut = Shortcut(data.wnids[4], SMALL_MARK)
    result = discover(model, data, [], method, n_images=6, shortcut=shortcut, steps=20, n_steps=2)
    assert result.corruption == "paired" and result.shortcut == shortcut.to_dict()
    assert len(result.scores) == len(model.components) and result.n_images == 6
    assert data.wnids[4] not in result.classes
    assert any(s != 0 for s in result.scores)
    assert json.loads(result.to_json())["shortcut"]["target"] == data.wnids[4]


def test_cut_removes_components_physically_and_equals_the_masked_model():
    data = tiny_imageset(n_per_class=6)
    model = tiny_model(num_classes=5)
    shortcut = Shortcut(data.wnids[2], SMALL_MARK)
    n = len(model.components)
    scores = torch.randn(n, generator=torch.Generator().manual_seed(0))
    rows = cut_table(model, scores, data, shortcut, ks=(1, 3), seeds=(0, 1))
    assert [(r["selection"], r["k"], r["seed"]) for r in rows] == [
        ("none", 0, None),
        ("circuit", 1, None),
        ("random", 1, 0),
        ("random", 1, 1),
        ("circuit", 3, None),
        ("random", 3, 0),
        ("random", 3, 1),
    ]
    names = model.components.names
    top3 = sorted(range(n), key=lambda i: -float(scores[i]))[:3]
    assert rows[4]["removed"] == [names[i] for i in top3]
    assert all(len(set(r["removed"])) == r["k"] for r in rows)
    for row in rows[1:]:
        keep = torch.ones(n)
        keep[[names.index(c) for c in row["removed"]]] = 0
        masked = shortcut_figures(model, data, shortcut.target, shortcut.mark, mask=keep)
        assert masked["flip_rate"] == pytest.approx(row["flip_rate"]) and masked["clean_top1"] == pytest.approx(
            row["clean_top1"]
        )
        pruned = prune(model, keep)
        assert sum(pruned.config.heads) + sum(pruned.config.mlp_widths) < sum(model.config.heads) + sum(
            model.config.mlp_widths
        )
    assert without(model, []).config.heads == model.config.heads
    summary = summarise(rows)
    assert [s["k"] for s in summary] == [1, 3]
    assert summary[1]["random_flip_rate_mean"] == pytest.approx((rows[5]["flip_rate"] + rows[6]["flip_rate"]) / 2)
    with pytest.raises(ShortcutError, match="between 1"):
        cut_table(model, scores, data, shortcut, ks=(n,))
    two = cut_table(model, {"a": scores, "b": -scores}, data, shortcut, ks=(3,), seeds=(0, 1))
    assert [r["selection"] for r in two] == ["none", "a", "b", "random", "random"]
    assert two[1]["removed"] == rows[4]["removed"] and two[3]["removed"] == rows[5]["removed"]
    assert summarise(two, "b")[0]["removed"] == two[2]["removed"]


SHIPPED_PLANTED = str(ROOT / "assets" / "shortcut")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["shortcut", "eval"], "has no planted shortcut"),
        (["shortcut", "cut", "--checkpoint", SHIPPED_PLANTED, "--ks", "1,x"], "--ks takes comma-separated integers"),
        (["shortcut", "cut", "--checkpoint", SHIPPED_PLANTED, "--seeds", "-1"], "--seeds must be at least 0"),
        (["shortcut", "cut", "--checkpoint", SHIPPED_PLANTED, "--method", "eap,magic"], "unknown method(s) magic"),
        (["circuits", "--method", "eap", "--classes", "all", "--shortcut"], "has no planted shortcut"),
        (["shortcut", "plant", "--data", "/nonexistent.zip", "--out", "x"], "does not exist"),
    ],
)
def test_shortcut_commands_refuse_bad_input_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


@pytest.mark.slow
def test_shipped_planted_model_cheats_and_eap_cuts_it_from_the_command_line(tmp_path):
    assert (
        main(
            [
                "shortcut",
                "eval",
                "--checkpoint",
                SHIPPED_PLANTED,
                "--control",
                "shipped",
                "--json",
                str(tmp_path / "e.json"),
            ]
        )
        == 0
    )
    models = json.loads((tmp_path / "e.json").read_text())["results"]["models"]
    assert models[SHIPPED_PLANTED]["flip_rate"] > 0.6 and models["shipped"]["flip_rate"] < 0.05
    assert abs(models[SHIPPED_PLANTED]["clean_top1"] - models["shipped"]["clean_top1"]) < 0.03  # 2,000 images
    argv = ["shortcut", "cut", "--checkpoint", SHIPPED_PLANTED, "--images", "30", "--ks", "4", "--seeds", "1"]
    assert main([*argv, "--method", "eap,lrp", "--json", str(tmp_path / "c.json")]) == 0
    results = json.loads((tmp_path / "c.json").read_text())["results"]
    summary = results["methods"]["eap"]["summary"][0]
    assert summary["circuit_flip_rate"] < 0.2 < summary["random_flip_rate_mean"]
    # one random control for both methods: one row per seed and k
    assert sum(r["selection"] == "random" for r in results["rows"]) == 1
    assert {r["selection"] for r in results["rows"]} == {"none", "eap", "lrp", "random"}


def test_plant_command_resumes_after_an_interruption(tmp_path, capsys):
    from vitcore.assets import bundled_data

    argv = ["shortcut", "plant", "--data", str(bundled_data()), "--steps", "3", "--batch-size", "8"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    broken = str(tmp_path / "broken")
    assert main([*argv, "--out", broken, "--stop-after-steps", "1"]) == 0
    assert "stopped; state saved" in capsys.readouterr().out
    assert main([*argv, "--out", broken]) == 0
    a, b = load_checkpoint(tmp_path / "straight" / "model"), load_checkpoint(tmp_path / "broken" / "model")
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert b.info["training"]["plant_command"].startswith("python -m vitcore shortcut plant")
    assert shortcut_of(b.info) == Shortcut(PlantConfig().target, Mark())
