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
    from vitcore.circuits.trust import most_faithful, parse_entry, why_default

    summary = load_summary()
    assert summary, "assets/faithfulness.json is missing: python -m vitcore bench-faithfulness"
    pick = most_faithful(summary)
    assert pick is not None and parse_entry(pick)[0] == DEFAULT_METHOD
    assert why_default(summary).startswith("Default: ")


def test_most_faithful_weighs_agreement_and_kl_within_the_time_budget():
    from vitcore.circuits.trust import most_faithful, why_default

    table = {
        "eap": {"wall_s": 0.3, "images": 30, "kl_at_0.5": 2.0, "spearman": 0.5, "top20": 10},
        "relp": {"wall_s": 1.0, "images": 30, "kl_at_0.5": 1.0, "spearman": 0.4, "top20": 9},
        "acdc": {"wall_s": 10.0, "images": 30, "kl_at_0.5": 0.5, "spearman": 0.9, "top20": 18},
    }
    # acdc does not fit (10 s / 30 images x 50 images > 2 s); eap and relp tie on rank sums (1 + 2 and 2 + 1):
    # the higher Spearman wins
    assert most_faithful(table) == "eap"
    assert "falls short" in why_default(table)
    assert most_faithful(table, budget_s=20) == "acdc"  # first on both
    assert "agrees with exact patching" in why_default(table, budget_s=20)
    assert most_faithful(table, budget_s=0.1) is None and why_default(table, budget_s=0.1) is None
    table["exact-patching@12"] = {"wall_s": 1.1, "images": 30, "kl_at_0.5": 1.5, "spearman": 0.85, "top20": 16}
    # ranks by Spearman: exact 1st, eap 2nd, relp 3rd; by KL: relp 1st, exact 2nd, eap 3rd: exact's sum is lowest
    assert most_faithful(table) == "exact-patching@12"


def test_overlap_spreads_drawn_sets_and_entries():
    from vitcore.circuits.task import TaskError
    from vitcore.circuits.trust import CLASS_SETS, drawn_class_sets, parse_entry, top_overlap

    a = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    b = torch.tensor([1.0, 4.0, 3.0, 2.0, 5.0])
    assert top_overlap(a, b, 2) == 1 and top_overlap(a, b, 3) == 2 and top_overlap(a, a, 20) == 5  # by hand
    wnids = [w for c in CLASS_SETS for w in c] + [f"n{i:08d}" for i in range(20)]
    sets = drawn_class_sets(wnids, 6)
    assert sets == drawn_class_sets(wnids, 6) and len(set(sets)) == 6  # fixed seed, no repeats
    assert all(len(set(s)) == 3 and frozenset(s) not in {frozenset(c) for c in CLASS_SETS} for s in sets)
    assert parse_entry("eap") == ("eap", None) and parse_entry("exact-patching@12") == ("exact-patching", 12)
    for bad in ("nope", "eap@0", "eap@x"):
        with pytest.raises(TaskError):
            parse_entry(bad)
    rows = [
        {"entry": "eap", "method": "eap", "role": "own", "images": 6, "spearman": s, "top20": t, "kl_at_0.5": k}
        for s, t, k in ((0.1, 3, 2.0), (0.5, 9, 1.0), (0.3, 5, 4.0))
    ]
    row = summarise(rows)["eap"]
    assert (row["spearman"], row["spearman_min"], row["spearman_max"]) == (0.3, 0.1, 0.5)
    assert (row["top20"], row["top20_min"], row["top20_max"]) == (5, 3, 9) and summarise(rows, "shared") == {}


def test_measurement_files_name_a_module_command_as_typed(monkeypatch):
    import sys

    from vitcore.measurement import this_command

    monkeypatch.setattr(sys, "argv", ["/somewhere/vitcore/__main__.py", "bench-faithfulness", "--images", "3"])
    assert this_command() == "python -m vitcore bench-faithfulness --images 3"
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py", "--a b"])
    assert this_command() == "python benchmarks/x.py '--a b'"
