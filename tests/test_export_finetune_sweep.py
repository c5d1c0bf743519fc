import json
import zipfile

import pytest
import torch
from conftest import tiny_imageset, tiny_model

from vitcore import CheckpointError, load_checkpoint, load_pretrained
from vitcore.circuits.result import keep_top
from vitcore.pruning import prune
from vitcore.pruning.export import export_onnx, export_zip, onnx_logits, provenance
from vitcore.pruning.finetune import finetune_steps
from vitcore.pruning.pareto import pareto_frontier
from vitcore.pruning.report import COLUMNS, read_csv, write_csv
from vitcore.pruning.sweep import run_sweep


def pruned_tiny():
    model = tiny_model(heads=[3, 2, 4], mlp_widths=[16, 24, 20])
    mask = model.components.ones()
    mask[model.components.head_slices[1]] = 0
    mask[model.components.id("L2.C2")] = 0
    return model, prune(model, mask), mask


def test_zip_export_round_trip_with_provenance(tmp_path):
    model, pruned, mask = pruned_tiny()
    kept = [model.components.names[i] for i in model.components.keep_from_mask(mask)]
    info = {
        "classes": {"wnids": [f"w{i}" for i in range(5)], "names": list("abcde")},
        "provenance": provenance("abc", "eap", ["w1"], "mean", {"keep": 0.8}, kept, False),
    }
    export_zip(pruned, info, tmp_path / "p.zip")
    back = load_checkpoint(tmp_path / "p.zip")
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(back.model(x), pruned(x))
    assert back.info["provenance"]["kept_components"] == kept and back.model.config.heads == [3, 0, 4]
    assert back.info["model"]["mlp_widths"] == [16, 24, 16]  # L2.C2 is the partial chunk of 4


def test_onnx_export_matches_torch(tmp_path):
    _, pruned, _ = pruned_tiny()
    data = export_onnx(pruned, tmp_path / "p.onnx")
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(onnx_logits(data, x), pruned(x), atol=1e-4)


def test_tampered_export_fails_clearly(tmp_path):
    _, pruned, _ = pruned_tiny()
    export_zip(pruned, {}, tmp_path / "p.zip")
    with zipfile.ZipFile(tmp_path / "p.zip") as z:
        weights, config = z.read("model.safetensors"), json.loads(z.read("config.json"))
    config["model"]["mlp_widths"][0] = 17
    with zipfile.ZipFile(tmp_path / "t.zip", "w") as z:
        z.writestr("model.safetensors", weights)
        z.writestr("config.json", json.dumps(config))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_pretrained(tmp_path / "t.zip")
    config["model"]["heads"] = "many"
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("model.safetensors", weights)
        z.writestr("config.json", json.dumps(config))
    with pytest.raises(CheckpointError, match="invalid model config"):
        load_pretrained(tmp_path / "c.zip")


def test_finetune_lowers_training_loss():
    _, pruned, _ = pruned_tiny()
    data = tiny_imageset(n_per_class=12)
    teacher = tiny_model(heads=[3, 2, 4], mlp_widths=[16, 24, 20])
    losses = finetune_steps(pruned, data, 40, lr=3e-3, batch_size=32, teacher=teacher, seed=0)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_finetune_is_reproducible_and_focus_draws_half_of_each_batch_from_the_chosen_images(monkeypatch):
    import vitcore.pruning.finetune as ft

    data = tiny_imageset(n_per_class=12)
    runs = []
    for _ in range(2):
        _, pruned, _ = pruned_tiny()
        finetune_steps(pruned, data, 3, batch_size=16, seed=7)
        runs.append(pruned.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])  # the augmentation is seeded too
    state = torch.get_rng_state()
    _, pruned, _ = pruned_tiny()
    torch.set_rng_state(state)
    finetune_steps(pruned, data, 2, batch_size=16, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is restored afterwards
    labels_seen = []
    monkeypatch.setattr(
        ft.F,
        "cross_entropy",
        lambda logits, y, _real=ft.F.cross_entropy: (labels_seen.append(y.clone()), _real(logits, y))[1],
    )
    focus = torch.nonzero(data.labels == 3).flatten()
    _, pruned, _ = pruned_tiny()
    finetune_steps(pruned, data, 4, batch_size=16, focus=focus)
    for y in labels_seen:
        assert (y[:8] == 3).all() and len(y) == 16  # the first half of each batch is the focus class


def test_pareto_frontier_on_hand_made_points():
    pts = [(1.0, 0.5), (2.0, 0.3), (1.5, 0.6), (3.0, 0.3), (0.5, 0.9), (2.5, 0.1)]
    assert pareto_frontier(pts) == [4, 0, 1, 5]


def test_sweep_on_tiny_model_writes_csv(tmp_path):
    model = tiny_model()
    data = tiny_imageset()
    rows = run_sweep(
        model,
        data,
        tiny_imageset(seed=1),
        ["n00000001", "n00000002"],
        {"eap": [0.8, 0.5], "acdc": [0.01, 1e9], "learned": [0.5]},
        corruption="mean",
        finetune=2,
        latency_repeats=3,
        options={"steps": 20},
    )
    write_csv(rows, tmp_path / "s.csv")
    back = read_csv(tmp_path / "s.csv")
    assert set(back[0]) == set(COLUMNS)
    assert back[0]["method"] == "baseline"
    methods = {(r["method"], r["finetuned"]) for r in back}
    assert ("eap", True) in methods and ("eap", False) in methods and ("learned", False) in methods
    assert all(0 <= r["top1_all"] <= 1 and r["macs"] > 0 for r in back)
    eap = [r for r in back if r["method"] == "eap" and not r["finetuned"]]
    assert eap[0]["macs"] > eap[1]["macs"]  # keep 0.8 costs more than keep 0.5
    assert all(r["latency_b1_ms"] > 0 and r["throughput_b64_img_s"] > 0 for r in back)
    for plain, tuned in zip(back[1::2], back[2::2]):  # fine-tuning keeps the shapes, and so the measured latency
        assert (plain["method"], plain["setting"], plain["finetuned"], tuned["finetuned"]) == (
            tuned["method"],
            tuned["setting"],
            False,
            True,
        )
        assert plain["latency_b1_ms"] == tuned["latency_b1_ms"] and plain["kept_components"] == tuned["kept_components"]
    assert all(len(r["kept_components"].split()) == r["kept_heads"] + r["kept_chunks"] for r in back)
    empty = [r for r in back if r["method"] == "acdc" and r["setting"] == 1e9]
    assert (
        empty and empty[0]["kept_heads"] == empty[0]["kept_chunks"] == 0 and empty[0]["macs"] > 0
    )  # an empty circuit is a row
    (tmp_path / "foreign.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a vitcore sweep"):
        read_csv(tmp_path / "foreign.csv")


def test_target_accuracy_bisection_finds_a_qualifying_smaller_model():
    from vitcore.circuits import discover
    from vitcore.evaluate import predict_logits
    from vitcore.pruning.evaluation import evaluate_against
    from vitcore.pruning.search import bisect_keep, bisect_setting

    model, data = tiny_model(), tiny_imageset()
    finetune_steps(model, data, 60, lr=3e-3, batch_size=30)  # some accuracy to lose
    classes = data.wnids[:2]
    chosen = torch.isin(data.labels, torch.tensor([0, 1]))
    full = evaluate_against(predict_logits(model, data.images), model, data, chosen)
    assert full.top1_chosen >= 0.5
    target = full.top1_chosen * 0.75
    scores = discover(model, data, classes, "eap", "mean").score_tensor()
    ratio, ev = bisect_keep(model, scores, data, chosen, target)
    assert ev.top1_chosen >= target and ratio < 1.0
    again = evaluate_against(predict_logits(model, data.images), prune(model, keep_top(scores, ratio)), data, chosen)
    assert again.top1_chosen == ev.top1_chosen  # the reported figures are the returned keep-set's
    ratio, ev = bisect_keep(model, scores, data, chosen, 1.01)  # unreachable: the full model, flagged by its figures
    assert ratio == 1.0 and ev.top1_chosen < 1.01
    tau, ev, kept = bisect_setting(model, data, data, classes, chosen, target, "acdc", "mean", iterations=3)
    assert ev.top1_chosen >= target and 0 < kept <= len(model.components)
    tau, ev, kept = bisect_setting(model, data, data, classes, chosen, 1.01, "acdc", "mean", iterations=3)
    assert tau == 0.0 and ev.top1_chosen < 1.01


@pytest.mark.slow
def test_sweep_cli_target_only_reports_the_search_and_writes_no_table(tmp_path, capsys):
    from vitcore.cli import main

    assert main(["sweep", "--target-only", "--out", str(tmp_path / "s")]) == 2
    assert "--target-only needs --target-accuracy" in capsys.readouterr().err
    assert (
        main(
            [
                "sweep",
                "--methods",
                "eap",
                "--target-only",
                "--target-accuracy",
                "0.3",
                "--classes",
                "n01443537,n01629819,n01641577",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "target top-1 0.3: eap keeps" in out and "reached" in out
    assert not (tmp_path / "s.csv").exists()


def test_the_compare_chart_legend_has_every_configuration_of_every_method():
    from vitcore.pruning.report import frontier_chart

    def row(method, setting, ft=False):
        return {
            "method": method,
            "setting": setting,
            "finetuned": ft,
            "kept_heads": 1,
            "kept_chunks": 1,
            "params": 1,
            "macs": 1,
            "latency_b1_ms": 5.0 - setting,
            "throughput_b64_img_s": 1.0,
            "top1_chosen": setting / 2,
            "top1_all": 0.1,
            "kl": 0.1,
        }

    rows = [
        row("baseline", 1.0),
        row("eap", 0.5),
        row("eap", 0.7, True),
        row("lrp", 0.5),
        row("lrp", 0.9),
        row("acdc", 0.01),
        row("someday", 0.3),
    ]
    spec = frontier_chart(rows).to_dict()
    scale = next(layer["encoding"]["color"]["scale"] for layer in spec["layer"] if "color" in layer["encoding"])
    shown = {
        "baseline",
        "EAP keep 0.5",
        "EAP keep 0.7",
        "LRP keep 0.5",
        "LRP keep 0.9",
        "ACDC tau 0.01",
        "someday",
    }  # by hand
    assert shown <= set(scale["domain"])  # a label outside an explicit domain gets no legend entry (LRP's were dropped)
    assert len(scale["domain"]) == len(scale["range"]) == len(set(scale["domain"]))
