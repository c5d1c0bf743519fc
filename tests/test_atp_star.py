"""AtP*'s GradDrop and exact patching as registered methods, against references built from forward hooks."""

import pytest
import torch
from conftest import tiny_imageset, tiny_model
from hook_reference import mixed_logits, record

from vitcore.circuits import build_task, counterfactual, discover
from vitcore.circuits.atp_star import grad_drop_scores
from vitcore.circuits.corruptions import corrupted_inputs
from vitcore.circuits.metrics import damage_fn
from vitcore.circuits.task import TaskError


@pytest.fixture
def setup():
    model = tiny_model()
    data = tiny_imageset()
    task = build_task(model, data, data.wnids[:2])
    return model, data, task


def dropped_attribution(model, task, metric: str, layer: int) -> torch.Tensor:
    """-dD/dm at m = 1 with the mask applied by pre-hooks on attn.proj and fc2, and the outputs of ``layer``'s
    attention and MLP modules detached by forward hooks (their values unchanged)."""
    corrupt = record(model, corrupted_inputs(model, task, "resample"))
    mask = torch.ones(len(model.components), requires_grad=True)
    block = model.blocks[layer]
    detach = [(m, lambda module, args, out: out.detach()) for m in (block.attn, block.mlp)]
    handles = [m.register_forward_hook(fn) for m, fn in detach]
    try:
        logits = mixed_logits(model, task.inputs, mask, corrupt)
    finally:
        for h in handles:
            h.remove()
    damage = damage_fn(metric)(logits, task.reference_logits, task.labels).sum()
    (grad,) = torch.autograd.grad(damage, mask)
    return -grad / len(task)


@pytest.mark.parametrize("metric", ["ce", "logit-diff"])
def test_grad_drop_equals_the_sum_of_hook_dropped_attributions(setup, metric):
    model, _, task = setup
    depth = model.config.depth
    reference = sum(dropped_attribution(model, task, metric, layer).abs() for layer in range(depth)) / (depth - 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = grad_drop_scores(model, task, counterfactual(model, task, "resample"), metric)
    torch.testing.assert_close(scores, reference, atol=1e-6, rtol=1e-4)
    # a component's own layer contributes nothing: the last layer's components keep their plain magnitude
    last = model.components.chunk_slices[depth - 1]
    plain = dropped_attribution(model, task, metric, 0)[last]  # dropping layer 0 leaves the last layer's gradient
    torch.testing.assert_close(scores[last], plain.abs(), atol=1e-6, rtol=1e-4)
    # the caller's model is untouched: same weights, no hooks left behind
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_atp_star_through_discover_refuses_kl_and_reports_progress(setup):
    model, data, _ = setup
    seen = []
    result = discover(model, data, data.wnids[:2], "atp-star", "resample", progress=seen.append)
    assert result.method == "atp-star" and min(result.scores) >= 0 and seen[-1] == 1.0
    with pytest.raises(TaskError, match="KL"):
        discover(model, data, data.wnids[:2], "atp-star", metric="kl")


def test_exact_patching_through_discover_is_the_hook_patched_change(setup):
    """Each component patched alone by hooks, the KL change measured: exact patching's scores to the letter."""
    model, data, task = setup
    corrupt = record(model, corrupted_inputs(model, task, "resample"))
    damage = damage_fn("kl")
    with torch.no_grad():
        expected = torch.stack(
            [
                damage(
                    mixed_logits(
                        model, task.inputs, model.components.ones() - torch.eye(len(model.components))[i], corrupt
                    ),
                    task.reference_logits,
                    task.labels,
                ).mean()
                for i in range(len(model.components))
            ]
        )
    seen = []
    result = discover(model, data, data.wnids[:2], "exact-patching", "resample", progress=seen.append)
    torch.testing.assert_close(result.score_tensor(), expected, atol=1e-6, rtol=1e-4)
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    assert len(result.kept) == len(model.components) // 2  # the top half by default


def test_exact_patching_refuses_edges_in_one_line(setup):
    model, data, _ = setup
    with pytest.raises(TaskError, match="components only, not edges|nodes only"):
        discover(model, data, data.wnids[:2], "exact-patching", granularity="edge")
