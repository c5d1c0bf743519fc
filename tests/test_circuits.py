import json
import math

import pytest
import torch
from conftest import tiny_imageset, tiny_model

from vitcore.circuits import (
    CircuitResult,
    ResultError,
    TaskError,
    acdc,
    build_task,
    counterfactual,
    discover,
    eap_ig_scores,
    eap_scores,
    learn_masks,
)
from vitcore.circuits.corruptions import corrupted_inputs, shuffle_patches
from vitcore.circuits.metrics import damage_fn


@pytest.fixture
def setup():
    model = tiny_model()
    data = tiny_imageset()
    task = build_task(model, data, ["n00000001", "n00000003"], seed=0)
    return model, data, task


def test_eap_matches_a_gradient_taken_through_forward_hooks(setup):
    """EAP's score per component against (a_corrupt - a_clean) . dCE/da, where a is captured by hooks
    on the projections' inputs and differentiated by autograd: no use of the model's mask path."""
    from hook_reference import columns, parse, record, target

    model, _, task = setup
    corrupt_x = corrupted_inputs(model, task, "resample")
    cf = counterfactual(model, task, "resample")
    scores = eap_scores(model, task, cf, "ce")
    corrupt = record(model, corrupt_x)
    clean = {}

    def keep_grad(key):
        def fn(module, args):
            clean[key] = args[0]  # part of the graph: the total derivative flows through later layers

        return fn

    from hook_reference import hooks

    with hooks([(target(model, l, k), keep_grad((l, k))) for l in range(model.config.depth) for k in "HC"]):
        loss = damage_fn("ce")(model(task.inputs), task.reference_logits, task.labels).mean()
    grads = dict(zip(clean, torch.autograd.grad(loss, list(clean.values()))))
    ref = torch.tensor(
        [
            float(
                (
                    (corrupt[(l, k)] - clean[(l, k)].detach())[..., columns(model, l, k, i)]
                    * grads[(l, k)][..., columns(model, l, k, i)]
                ).sum()
            )
            for l, k, i in map(parse, model.components.names)
        ]
    )
    assert torch.allclose(scores, ref, atol=1e-5, rtol=1e-4)
    assert ref.abs().max() > 1e-3


def _hook_acdc(model, task, corrupt, tau):
    """ACDC written from its definition over hook patching: visit layers last to first, chunks then
    heads (each in index order: components of one layer are parallel, this is the documented convention),
    remove when KL rises by less than tau."""
    from hook_reference import patched_logits

    kl = damage_fn("kl")
    removed: list[str] = []

    def damage(names):
        with torch.no_grad():
            return float(
                kl(patched_logits(model, task.inputs, names, corrupt), task.reference_logits, task.labels).mean()
            )

    current = damage(removed)
    cfg = model.config
    for layer in reversed(range(cfg.depth)):
        chunks = -(-cfg.mlp_widths[layer] // cfg.chunk_size)
        visit = [f"L{layer}.C{i}" for i in range(chunks)] + [f"L{layer}.H{i}" for i in range(cfg.heads[layer])]
        for name in visit:
            value = damage(removed + [name])
            if value - current < tau:
                removed.append(name)
                current = value
    return set(removed)


@pytest.mark.parametrize("tau", [0.0, 0.02, 0.1])
def test_acdc_removes_what_a_hook_based_acdc_removes(setup, tau):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    corrupt = __import__("hook_reference").record(model, corrupted_inputs(model, task, "resample"))
    out = acdc(model, task, cf, tau=tau)
    ours = {model.components.names[i] for i in range(len(model.components)) if out.kept_mask[i] == 0}
    assert ours == _hook_acdc(model, task, corrupt, tau)


def test_eap_ig_one_step_is_eap(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    assert torch.allclose(eap_ig_scores(model, task, cf, "ce", n_steps=1), eap_scores(model, task, cf, "ce"), atol=1e-5)


def test_eap_ig_completeness_error_shrinks(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    d = damage_fn("kl")
    with torch.no_grad():
        patched_all = d(
            model(task.inputs, mask=torch.zeros(len(model.components)), counterfactual=cf),
            task.reference_logits,
            task.labels,
        ).mean()
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


def test_shuffle_patches_permutes_whole_patches_and_nothing_else():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 16, 16)
    out = shuffle_patches(x, 4, gen)
    assert not torch.equal(out, x)

    def tiles(t):  # each image's 16 patches as flat vectors
        return [
            t[b, :, i : i + 4, j : j + 4].reshape(-1)
            for b in range(3)
            for i in range(0, 16, 4)
            for j in range(0, 16, 4)
        ]

    for b in range(3):
        before = sorted(tuple(v.tolist()) for v in tiles(x)[b * 16 : (b + 1) * 16])
        after = sorted(tuple(v.tolist()) for v in tiles(out)[b * 16 : (b + 1) * 16])
        assert before == after  # the same patches of the same image, only moved


@pytest.mark.parametrize("granularity,targets", [("node", (0.3, 0.5, 0.7, 0.9)), ("edge", (0.95,))])
def test_learned_masks_hold_every_target_and_the_kept_size_is_exact(granularity, targets):
    from vitcore.circuits.learned import expected_density, scheduled_target

    model, data = tiny_model(), tiny_imageset()
    task = build_task(model, data, data.wnids[:2])
    cf = counterfactual(model, task, "resample", embed=granularity == "edge")
    n = len(model.edges) if granularity == "edge" else len(model.components)
    for target in targets:
        out = learn_masks(model, task, cf, target, steps=40, granularity=granularity)
        assert abs(out.expected_sparsity - target) <= 0.02
        # recomputed from the final gates, not taken from the outcome's own figure
        assert abs(1 - float(expected_density(out.log_alpha).mean()) - target) <= 0.02
        assert int(out.kept_mask.sum()) == round((1 - target) * n)
        # the schedule: expected sparsity follows the linear warm-up
        # (checked on the recorded history, before each step's shift)
        ramped = [h["expected_sparsity"] for h in out.history[1:]]
        wanted = [scheduled_target(target, i + 1, 40, 0.5) for i in range(len(ramped))]
        assert max(abs(a - b) for a, b in zip(ramped, wanted)) <= 0.02


def test_the_lagrangian_constraint_still_runs_and_unknown_ones_are_refused(setup):
    model, _, task = setup
    cf = counterfactual(model, task, "resample")
    out = learn_masks(model, task, cf, 0.5, steps=20, constraint="lagrangian")
    assert int(out.kept_mask.sum()) == round(0.5 * len(model.components))
    with pytest.raises(TaskError, match="constraint"):
        learn_masks(model, task, cf, 0.5, steps=20, constraint="penalty")
