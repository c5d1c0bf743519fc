"""The faithfulness table: exact single-component patching against forward hooks, correlations against scipy."""

import json

import pytest
import torch
from conftest import tiny_imageset, tiny_model
from hook_reference import patched_logits, record
from scipy import stats

from vitcore.circuits import build_task, counterfactual
from vitcore.circuits.corruptions import corrupted_inputs
from vitcore.circuits.exact import exact_effects
from vitcore.circuits.metrics import damage_fn
from vitcore.circuits.trust import describe, load_summary, measure, pearson, spearman, summarise


@pytest.mark.parametrize("metric", ["kl", "ce", "logit"])
def test_exact_effects_equal_one_hook_patch_per_component(metric):
    model, data = tiny_model(), tiny_imageset()
    task = build_task(model, data, data.wnids[:2])
    cf = counterfactual(model, task, "resample")
    corrupt = record(model, corrupted_inputs(model, task, "resample"))
    damage = damage_fn(metric)
    clean = float(damage(task.reference_logits, task.reference_logits, task.labels).mean())
    with torch.no_grad():
        ref = torch.tensor(
            [
                float(
                    damage(
                        patched_logits(model, task.inputs, [name], corrupt), task.reference_logits, task.labels
                    ).mean()
                )
                - clean
                for name in model.components.names
            ]
        )
    torch.testing.assert_close(
        exact_effects(model, task, cf, metric, rows_per_forward=3 * len(task)), ref, atol=1e-5, rtol=1e-4
    )


def test_correlations_equal_scipy():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(50, generator=gen, dtype=torch.float64)
    b = a + torch.randn(50, generator=gen, dtype=torch.float64)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-9)
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-9)


def test_table_on_a_tiny_model_round_trips_to_the_app_sentence(tmp_path):
    from vitcore.measurement import write_measurement

    model, data = tiny_model(), tiny_imageset()
    rows = measure(model, data, [tuple(data.wnids[:2]), tuple(data.wnids[2:4])], n_images=6, methods=["eap", "relp"])
    assert {r["method"] for r in rows} == {"eap", "relp"} and len(rows) == 4
    assert all(
        -1 <= r["spearman"] <= 1 and r["kl_at_0.25"] >= r["kl_at_0.75"] - 1e-6 for r in rows
    )  # more kept, closer (nested circuits)
    path = write_measurement(tmp_path / "f.json", rows, command="test")
    assert json.loads(path.read_text())["command"] == "test"
    summary = load_summary(path)
    assert summary == summarise(rows) and summary["eap"]["class_sets"] == 2
    assert "Spearman" in describe("eap", summary) and describe("acdc", summary) is None
    assert load_summary(tmp_path / "missing.json") == {}


def test_the_default_method_is_the_shipped_tables_pick():
    from vitcore.circuits.methods import DEFAULT_METHOD
    from vitcore.circuits.trust import most_faithful

    summary = load_summary()
    assert summary, "assets/faithfulness.json is missing: python -m vitcore bench-faithfulness"
    assert most_faithful(summary) == DEFAULT_METHOD


def test_most_faithful_weighs_kl_within_the_time_budget():
    from vitcore.circuits.trust import most_faithful

    table = {
        "fast": {"wall_s": 0.3, "images": 30, "kl_at_0.5": 2.0, "spearman": 0.5},
        "good": {"wall_s": 1.0, "images": 30, "kl_at_0.5": 1.0, "spearman": 0.4},
        "slow": {"wall_s": 10.0, "images": 30, "kl_at_0.5": 0.5, "spearman": 0.9},
    }
    assert most_faithful(table) == "good"  # slow: 10 s / 30 images x 50 images > 2 s
    assert most_faithful(table, budget_s=20) == "slow"
    assert most_faithful(table, budget_s=0.1) is None


def test_measurement_files_name_a_module_command_as_typed(monkeypatch):
    import sys

    from vitcore.measurement import this_command

    monkeypatch.setattr(sys, "argv", ["/somewhere/vitcore/__main__.py", "bench-faithfulness", "--images", "3"])
    assert this_command() == "python -m vitcore bench-faithfulness --images 3"
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py", "--a b"])
    assert this_command() == "python benchmarks/x.py '--a b'"
