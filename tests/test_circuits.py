import json
import math

import pytest
import torch

from conftest import tiny_imageset, tiny_model
from vitcore.circuits import (
    CircuitResult, ResultError, TaskError, acdc, build_task, counterfactual, discover, eap_ig_scores, eap_scores, learn_masks,
)
from vitcore.circuits.metrics import damage_fn


@pytest.fixture
def setup():
    model = tiny_model()
    data = tiny_imageset()
    task = build_task(model, data, ["n00000001", "n00000003"], seed=0)
    return model, data, task


def exact_patch_effect(model, task, cf, metric, comp):
    mask = model.components.ones()
    mask[comp] = 0.0
    d = damage_fn(metric)
    with torch.no_grad():
        patched = d(model(task.inputs, mask=mask, counterfactual=cf), task.reference_logits, task.labels).mean()
        clean = d(model(task.inputs), task.reference_logits, task.labels).mean()
    return float(patched - clean)


def test_eap_matches_slow_per_component_reference(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    scores = eap_scores(model, task, cf, "ce")
    # slow reference: per component, (a_corrupt - a_clean) . dCE/da_clean via autograd on activations
    x = task.inputs
    _, clean = model.run_with_cache(x)
    space = model.components
    ref = torch.zeros(len(space))
    for c, comp in enumerate(space.components):
        # differentiate w.r.t. that component's activations alone: perturb with a scalar epsilon direction
        eps = torch.zeros((), requires_grad=True)
        mask = space.ones()
        mask = mask + 0 * eps  # keep the graph
        m = mask.clone()
        m[c] = 1 + eps  # activation = c + (1 + eps)(a - c) = a + eps (a - c)
        logits = model(x, mask=m, counterfactual=cf)
        loss = damage_fn("ce")(logits, task.reference_logits, task.labels).mean()
        (g,) = torch.autograd.grad(loss, eps)
        ref[c] = -g  # (c - a) . dL/da
    assert torch.allclose(scores, ref, atol=1e-5, rtol=1e-4)


def test_eap_ig_one_step_is_eap(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    assert torch.allclose(eap_ig_scores(model, task, cf, "ce", n_steps=1), eap_scores(model, task, cf, "ce"), atol=1e-5)


def test_eap_ig_completeness_error_shrinks(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    d = damage_fn("kl")
    with torch.no_grad():
        patched_all = d(model(task.inputs, mask=torch.zeros(len(model.components)), counterfactual=cf), task.reference_logits, task.labels).mean()
    exact = float(patched_all)  # clean KL is 0
    errors = [abs(float(eap_ig_scores(model, task, cf, "kl", n_steps=n).sum()) - exact) for n in (1, 4, 16, 64)]
    assert exact > 0.05
    assert errors[-1] < errors[0] / 5
    assert all(b < a for a, b in zip(errors, errors[1:]))


def test_acdc_cached_equals_naive_and_tau_extremes(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    fast = acdc(model, task, cf, tau=0.02)
    slow = acdc(model, task, cf, tau=0.02, naive=True)
    assert torch.equal(fast.kept_mask, slow.kept_mask)
    assert fast.forward_passes < slow.forward_passes
    assert 0 < fast.kept_mask.sum() < len(model.components)
    everything = acdc(model, task, cf, tau=1e9)
    assert everything.kept_mask.sum() == 0
    strict = acdc(model, task, cf, tau=0.0)
    removed = (strict.kept_mask == 0).nonzero().flatten()
    assert (strict.scores[removed] < 0).all()  # only removals that did not raise KL when visited
    assert (strict.scores[strict.kept_mask == 1] >= 0).all()
    with pytest.raises(TaskError, match="tau"):
        acdc(model, task, cf, tau=-0.1)


def test_learned_masks_reach_sparsity_and_are_deterministic(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "mean")
    a = learn_masks(model, task, cf, sparsity=0.5, steps=300, seed=3)
    b = learn_masks(model, task, cf, sparsity=0.5, steps=300, seed=3)
    assert torch.equal(a.log_alpha, b.log_alpha) and torch.equal(a.kept_mask, b.kept_mask)
    assert abs(a.expected_sparsity - 0.5) <= 0.03
    assert abs(1 - a.kept_mask.mean().item() - 0.5) <= 0.03


def test_every_corruption_runs(setup):
    model, data, _ = setup
    for corruption in ["resample", "mean", "zero", "noise", "patch-shuffle"]:
        res = discover(model, data, ["n00000002"], method="eap", corruption=corruption)
        assert len(res.scores) == len(model.components) and all(math.isfinite(s) for s in res.scores)
        assert set(res.faithfulness) == {"kl", "ce", "top1", "logit_diff"}


def test_result_round_trip_and_schema_checks(setup, tmp_path):
    model, data, _ = setup
    res = discover(model, data, ["n00000001"], method="acdc", tau=0.01)
    path = tmp_path / "r.json"
    res.save(path)
    back = CircuitResult.load(path)
    assert back == res
    res.save(tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("rank,component") and len(lines) == len(model.components) + 1
    d = json.loads(path.read_text())
    d["version"] = 99
    (tmp_path / "v.json").write_text(json.dumps(d))
    with pytest.raises(ResultError, match="version"):
        CircuitResult.load(tmp_path / "v.json")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ResultError, match="not a vitcore"):
        CircuitResult.load(tmp_path / "foreign.json")
    (tmp_path / "corrupt.json").write_bytes(b"\x00\xff{{")
    with pytest.raises(ResultError):
        CircuitResult.load(tmp_path / "corrupt.json")
    d = json.loads(path.read_text())
    d["scores"] = d["scores"][:-1]
    (tmp_path / "short.json").write_text(json.dumps(d))
    with pytest.raises(ResultError, match="equal length"):
        CircuitResult.load(tmp_path / "short.json")


def test_bad_inputs_raise_clear_errors(setup):
    model, data, _ = setup
    with pytest.raises(TaskError, match="unknown class"):
        discover(model, data, ["n99999999"])
    empty = data.subset(torch.nonzero(data.labels != 4).flatten())
    with pytest.raises(TaskError, match="no images"):
        discover(model, empty, ["n00000004"])
    with pytest.raises(TaskError, match="keep ratio"):
        discover(model, data, ["n00000001"], keep=0.0)
    with pytest.raises(TaskError, match="keep ratio"):
        discover(model, data, ["n00000001"], keep=1.5)
    with pytest.raises(TaskError, match="tau"):
        discover(model, data, ["n00000001"], method="acdc", tau=-1)
    with pytest.raises(TaskError, match="degenerate"):
        discover(model, data, ["n00000001"], method="eap", metric="kl")
    with pytest.raises(TaskError, match="at least one class"):
        discover(model, data, [])
