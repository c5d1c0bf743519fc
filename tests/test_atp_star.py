"""AtP*'s GradDrop and exact patching as registered methods, against references built from forward hooks."""

import pytest
import torch
from hook_reference import hook_attribution_patching, mixed_logits, record

from vitcore.circuits import counterfactual, discover
from vitcore.circuits.atp_star import grad_drop_scores
from vitcore.circuits.corruptions import corrupted_inputs
from vitcore.circuits.metrics import damage_fn
from vitcore.circuits.task import TaskError


@pytest.fixture
def setup(tiny_task):
    return tiny_task


def dropped_attribution(model, task, metric: str, layer: int) -> torch.Tensor:
    return hook_attribution_patching(model, task, metric, dropped_layer=layer)


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


def hand_forward(model, resid, override=None):
    """The tiny model's blocks written out with an explicit softmax; ``override(layer, pattern)`` may replace a
    layer's attention pattern ``[B, H, T, T]``."""
    import torch.nn.functional as F

    for layer, block in enumerate(model.blocks):
        a = F.layer_norm(resid, (resid.shape[-1],), block.norm1.weight, block.norm1.bias, block.norm1.eps)
        H, hd = block.attn.num_heads, block.attn.head_dim
        qkv = (a @ block.attn.qkv.weight.T + block.attn.qkv.bias).view(*a.shape[:2], 3, H, hd)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        pattern = torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, -1)
        if override is not None:
            pattern = override(layer, pattern)
        heads = (pattern @ v).transpose(1, 2).flatten(2)
        resid = resid + heads @ block.attn.proj.weight.T + block.attn.proj.bias
        m = F.layer_norm(resid, (resid.shape[-1],), block.norm2.weight, block.norm2.bias, block.norm2.eps)
        resid = resid + F.gelu(m @ block.mlp.fc1.weight.T + block.mlp.fc1.bias) @ block.mlp.fc2.weight.T
        resid = resid + block.mlp.fc2.bias
    cls = F.layer_norm(resid[:, 0], (resid.shape[-1],), model.norm.weight, model.norm.bias, model.norm.eps)
    return cls @ model.head.weight.T + model.head.bias


def hand_qk_fix(model, task, layer, head, which, delta, metric):
    """d/de of the damage when the head's pattern is A + e (A' - A) with A' recomputed by hand from its query
    (``which`` 0) or key (1) input ``x - delta``, at e = 0: the QK-fixed estimate, by an independent forward."""
    import torch.nn.functional as F

    block = model.blocks[layer]
    embedded = model.embed(task.inputs).detach()
    resid = [embedded]
    with torch.no_grad():  # the clean residual entering ``layer``
        x = embedded
        for b in model.blocks[:layer]:
            x = b(x)
    H, hd = block.attn.num_heads, block.attn.head_dim

    def project(inp):
        a = F.layer_norm(inp, (inp.shape[-1],), block.norm1.weight, block.norm1.bias, block.norm1.eps)
        return (a @ block.attn.qkv.weight.T + block.attn.qkv.bias).view(*a.shape[:2], 3, H, hd)

    clean, patched = project(x), project(x - delta)
    q, k = clean[:, :, 0, head], clean[:, :, 1, head]
    if which == 0:
        q = patched[:, :, 0, head]
    else:
        k = patched[:, :, 1, head]
    new = torch.softmax(q @ k.transpose(-2, -1) / hd**0.5, -1).detach()
    e = torch.zeros((), requires_grad=True)

    def override(at, pattern):
        if at != layer:
            return pattern
        mixed = pattern.clone()
        mixed[:, head] = pattern[:, head] + e * (new - pattern[:, head])
        return mixed

    logits = hand_forward(model, resid[0], override)
    d = damage_fn(metric)(logits, task.reference_logits, task.labels).mean()
    (grad,) = torch.autograd.grad(d, e)
    return float(grad)


@pytest.mark.parametrize("metric", ["ce", "logit-diff"])
def test_qk_fix_equals_a_hand_recomputed_pattern_linearised_from_there(setup, metric):
    from vitcore.circuits.atp_star import qk_fixed_edge_scores
    from vitcore.circuits.eap import eap_scores

    model, _, task = setup
    torch.testing.assert_close(hand_forward(model, model.embed(task.inputs)), task.reference_logits)
    cf = counterfactual(model, task, "resample", embed=True)
    scores = qk_fixed_edge_scores(model, task, cf, metric)
    corrupt_x = corrupted_inputs(model, task, "resample")
    clean_rec, corrupt_rec = record(model, task.inputs), record(model, corrupt_x)
    hd = model.config.head_dim
    proj = model.blocks[0].attn.proj.weight
    with torch.no_grad():
        from_embed = model.embed(task.inputs) - model.embed(corrupt_x)
        # what head L0.H1 writes (its slice of attn.proj's input times its columns of the projection), clean - corrupt
        cols = slice(hd, 2 * hd)
        from_head = (clean_rec[0, "H"][..., cols] - corrupt_rec[0, "H"][..., cols]) @ proj[:, cols].T
    space = model.edges
    for name, delta in (
        ("embed->L1.H0.q", from_embed),
        ("embed->L2.H2.k", from_embed),
        ("L0.H1->L1.H1.k", from_head),
        ("L0.H1->L2.H0.q", from_head),
    ):
        target, kind = name.split("->")[1].rsplit(".", 1)
        layer, head = int(target[1]), int(target.split(".H")[1])
        expected = hand_qk_fix(model, task, layer, head, "qk".index(kind), delta, metric)
        assert float(scores[space.edge_id(name)]) == pytest.approx(expected, rel=1e-3, abs=1e-6), name
    # every edge into a value, an MLP or the logits keeps EAP's score
    with torch.enable_grad():
        eap = eap_scores(model, task, cf, metric, granularity="edge")
    plain = torch.tensor([not n.endswith((".q", ".k")) for n in space.names])
    torch.testing.assert_close(scores[plain], eap[plain])
    assert not torch.allclose(scores[~plain], eap[~plain])  # the fix changed the query and key edges
