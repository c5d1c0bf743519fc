"""Weight averaging (``vitcore average``): hand-computed means, the record it keeps, and clear errors."""

import hashlib
import json

import pytest
import torch
from conftest import tiny_model

from vitcore import load_checkpoint
from vitcore.checkpoint import CheckpointError, save_checkpoint
from vitcore.cli import main
from vitcore.training.averaging import average_checkpoints, average_state_dicts


def _constant(model, value: float):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def _save(model, path, **info):
    return save_checkpoint(model, path, {"classes": {"wnids": [f"n{i:08d}" for i in range(5)]}, **info})


def test_weighted_mean_of_constant_models_matches_hand_computation(tmp_path):
    a = _save(_constant(tiny_model(), 1.0), tmp_path / "a")
    b = _save(_constant(tiny_model(), 3.0), tmp_path / "b")
    # weights 1 and 3: (1*1 + 3*3) / 4 = 2.5 in every parameter; uniform: (1 + 3) / 2 = 2
    for weights, expected in (([1, 3], 2.5), (None, 2.0), ([0, 1], 3.0)):
        model = average_checkpoints([a, b], weights).model
        values = torch.cat([p.flatten() for p in model.parameters()])
        assert torch.equal(values, torch.full_like(values, expected)), weights


def test_averaging_a_checkpoint_with_itself_keeps_its_outputs(tmp_path):
    path = _save(tiny_model(seed=3), tmp_path / "m")
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        expected = load_checkpoint(path).model(x)
        got = average_checkpoints([path, path, path], [0.2, 0.5, 0.3]).model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_checkpoints_trained_with_different_drop_path_average(tmp_path):
    """Drop path acts in training only: stages of one lineage differ in it and still average."""
    a = _save(_constant(tiny_model(drop_path=0.1), 1.0), tmp_path / "a")
    b = _save(_constant(tiny_model(drop_path=0.0), 3.0), tmp_path / "b")
    values = torch.cat([p.flatten() for p in average_checkpoints([a, b]).model.parameters()])
    assert torch.equal(values, torch.full_like(values, 2.0))


def test_cli_writes_a_loadable_checkpoint_that_records_its_sources(tmp_path, capsys):
    a = _save(tiny_model(seed=1), tmp_path / "a", training={"epochs_done": 1}, metrics={"val_top1": 0.1})
    b = _save(tiny_model(seed=2), tmp_path / "b", training={"epochs_done": 2}, metrics={"val_top1": 0.2})
    out = tmp_path / "soup"
    assert main(["average", "--out", str(out), str(a), f"{b}=3"]) == 0
    saved = load_checkpoint(out)
    sa, sb = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    for k, v in saved.model.state_dict().items():  # by hand: (1 * a + 3 * b) / 4
        torch.testing.assert_close(v, 0.25 * sa[k] + 0.75 * sb[k], rtol=1e-6, atol=1e-6)
    sources = saved.info["averaged_from"]
    assert [s["weight"] for s in sources] == [1.0, 3.0]
    assert [s["sha256"] for s in sources] == [
        hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest() for p in (a, b)
    ]
    assert saved.info["training"] == {"epochs_done": 2}  # the last source's training record
    assert "metrics" not in saved.info  # the sources' val scores do not describe the average
    assert "vitcore average" in saved.info["averaged_command"]
    assert json.loads((out / "config.json").read_text())["classes"]["wnids"][0] == "n00000000"


@pytest.mark.parametrize(
    "case, message",
    [
        ("architecture", "architecture differs"),
        ("classes", "classes (wnids) differ"),
        ("weight text", "must be a number"),
        ("negative weight", "non-negative"),
        ("infinite weight", "finite"),
        ("zero weights", "positive sum"),
    ],
)
def test_bad_input_gets_one_clear_error_line(tmp_path, capsys, case, message):
    a = _save(tiny_model(), tmp_path / "a")
    args = [str(a), str(a)]
    if case == "architecture":
        args[1] = str(_save(tiny_model(mlp_widths=[16, 24, 16]), tmp_path / "wide"))
    elif case == "classes":
        args[1] = str(
            save_checkpoint(tiny_model(), tmp_path / "other", {"classes": {"wnids": [f"x{i}" for i in range(5)]}})
        )
    elif case == "weight text":
        args[1] += "=heavy"
    elif case == "negative weight":
        args[1] += "=-1"
    elif case == "infinite weight":
        args[1] += "=inf"
    else:
        args = [f"{a}=0", f"{a}=0"]
    assert main(["average", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_state_dicts_that_do_not_match_are_refused():
    a = tiny_model().state_dict()
    b = dict(a)
    b.pop(next(iter(b)))
    with pytest.raises(CheckpointError, match="different parameters"):
        average_state_dicts([a, b])
    with pytest.raises(CheckpointError, match="2 weights for 1"):
        average_state_dicts([a], [1, 1])
