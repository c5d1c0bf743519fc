import pytest
import torch
from conftest import tiny_model

from vitcore import Activations, Component


def test_components_canonical_order(model):
    space = model.components
    # layer 0: 3 heads + 2 chunks (16/8); layer 1: 2 heads + 3 chunks; layer 2: 3 heads + 1 chunk
    assert space.names[:6] == ["L0.H0", "L0.H1", "L0.H2", "L0.C0", "L0.C1", "L1.H0"]
    assert len(space) == 3 + 2 + 2 + 3 + 3 + 1
    assert space.id("L1.C2") == 9
    assert Component.parse("L2.H1") == Component(2, "head", 1)
    order = [space.names[i] for i in space.reverse_topological()]
    assert order[:4] == ["L2.C0", "L2.H0", "L2.H1", "L2.H2"]
    with pytest.raises(ValueError):
        Component.parse("layer3")
    with pytest.raises(KeyError):
        space.id("L0.H9")


def test_all_ones_mask_equals_no_mask(model):
    x = torch.randn(4, 3, 16, 16)
    ref = model(x)
    ones = model.components.ones()
    assert torch.allclose(model(x, mask=ones), ref, atol=1e-6)
    assert torch.allclose(model(x, mask=ones.expand(4, -1)), ref, atol=1e-6)


def test_zero_head_mask_equals_subtracting_its_contribution(model):
    x = torch.randn(2, 3, 16, 16)
    space = model.components
    mask = space.ones()
    mask[space.id("L2.H1")] = 0.0  # last layer: only the final residual changes
    _, acts = model.run_with_cache(x, resid=True)
    blk = model.blocks[2]
    head = acts.heads[2][:, :, 1]  # [B, T, hd]
    w = blk.attn.proj.weight[:, 1 * 4 : 2 * 4]
    contribution = head @ w.T
    # recompute the last block by hand with the head's contribution removed
    resid = acts.resid[2]
    attn = blk.attn.proj(acts.heads[2].flatten(2)) - contribution
    mid = resid + attn
    mlp = blk.mlp.fc2(torch.nn.functional.gelu(blk.mlp.fc1(blk.norm2(mid))))
    expected = model.unembed(mid + mlp)
    assert torch.allclose(model(x, mask=mask), expected, atol=1e-5)
    assert not torch.allclose(model(x, mask=mask), model(x), atol=1e-3)


def test_fractional_mask_has_gradients(model):
    x = torch.randn(2, 3, 16, 16)
    mask = torch.full((len(model.components),), 0.5, requires_grad=True)
    model(x, mask=mask).sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


def test_patching_with_own_clean_activations_changes_nothing(model):
    x = torch.randn(3, 3, 16, 16)
    ref, acts = model.run_with_cache(x)
    zeros = torch.zeros(len(model.components))
    assert torch.allclose(model(x, mask=zeros, counterfactual=acts), ref, atol=1e-5)


def test_patching_a_whole_layer_reproduces_that_layer_on_other_input(model):
    a, b = torch.randn(2, 3, 3, 16, 16)
    _, acts_b = model.run_with_cache(b, resid=True)
    _, clean_a = model.run_with_cache(a, resid=True)
    space = model.components
    layer = 1
    mask = space.ones()
    mask[space.head_slices[layer]] = 0
    mask[space.chunk_slices[layer]] = 0
    _, patched = model.run_with_cache(a, mask=mask, counterfactual=acts_b, resid=True)
    # what layer 1 writes into the residual stream on A (patched) equals what it writes on B
    written_patched = patched.resid[2] - patched.resid[1]
    written_b = acts_b.resid[2] - acts_b.resid[1]
    assert torch.allclose(written_patched, written_b, atol=1e-5)
    assert torch.allclose(patched.resid[1], clean_a.resid[1], atol=1e-5)  # earlier layers untouched
    assert not torch.allclose(written_patched, clean_a.resid[2] - clean_a.resid[1], atol=1e-3)


def test_mean_counterfactual_broadcasts_and_many_components_patch_at_once(model):
    x = torch.randn(4, 3, 16, 16)
    _, acts = model.run_with_cache(x)
    mean = acts.mean()
    mask = (torch.rand(len(model.components)) > 0.5).float()
    out = model(x, mask=mask, counterfactual=mean)
    # batched per-example masks: row i uses mask i
    masks = torch.stack([mask, model.components.ones()])
    xx = torch.cat([x[:1], x[:1]])
    both = model(xx, mask=masks, counterfactual=Activations.cat([mean, mean]))
    assert torch.allclose(both[0], out[0], atol=1e-5)
    assert torch.allclose(both[1], model(x[:1])[0], atol=1e-5)


def test_uneven_and_empty_layers():
    model = tiny_model(heads=[0, 1, 4], mlp_widths=[8, 0, 13])
    x = torch.randn(2, 3, 16, 16)
    space = model.components
    assert [len(range(s.start, s.stop)) for s in space.head_slices] == [0, 1, 4]
    assert space.chunks_per_layer == [1, 0, 2]
    ref, acts = model.run_with_cache(x)
    assert acts.heads[0].shape[2] == 0 and acts.mlp[1].shape[2] == 0
    assert torch.allclose(model(x, mask=space.ones()), ref, atol=1e-6)
    assert torch.allclose(model(x, mask=torch.zeros(len(space)), counterfactual=acts), ref, atol=1e-5)
    m = space.ones()
    m[space.id("L2.C1")] = 0  # the partial last chunk (neurons 8..12)
    assert not torch.allclose(model(x, mask=m), ref, atol=1e-4)


def test_model_holds_no_state_between_calls(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 16, 16)
    model.run_with_cache(x, mask=torch.zeros(len(model.components)))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mask_patching_equals_forward_hook_patching(model):
    """The model's ``c + m (a - c)`` path against hooks that overwrite the projections' inputs."""
    from hook_reference import patched_logits, record

    torch.manual_seed(1)
    x, other = torch.randn(3, 3, 16, 16), torch.randn(3, 3, 16, 16)
    corrupt = record(model, other)
    _, cf = model.run_with_cache(other)
    space = model.components
    for names in (["L0.H1"], ["L1.C2"], ["L0.H0", "L1.C2", "L2.H2", "L0.C1", "L1.H1"]):
        mask = space.ones()
        for n in names:
            mask[space.id(n)] = 0.0
        with torch.no_grad():
            ours = model(x, mask=mask, counterfactual=cf)
            ref = patched_logits(model, x, names, corrupt)
        assert torch.allclose(ours, ref, atol=1e-5), names
        assert not torch.allclose(ours, model(x), atol=1e-4)


def test_the_standard_error_of_an_accuracy_is_the_binomial_one():
    from vitcore.evaluate import standard_error

    assert standard_error(0.5, 100) == pytest.approx(0.05)  # sqrt(0.5 * 0.5 / 100), by hand
    assert standard_error(0.9, 400) == pytest.approx(0.015)  # sqrt(0.9 * 0.1 / 400)
    assert standard_error(0.3, 0) == pytest.approx((0.3 * 0.7) ** 0.5)  # no images: counted as one


def test_the_wilson_interval_of_an_accuracy_matches_scipy_and_never_has_zero_width():
    from scipy.stats import binomtest

    from vitcore.evaluate import accuracy_text, wilson_interval

    for correct, n in ((10, 10), (7, 10), (0, 10), (1, 3), (371, 400), (0, 1)):
        reference = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_interval(correct / n, n)
        assert (lo, hi) == pytest.approx((reference.low, reference.high), abs=1e-9)
        assert hi - lo > 0
    assert accuracy_text(1.0, 10) == "100.0% (n=10, 95% CI 72.2%–100.0%)"  # no "± 0%"
    assert wilson_interval(0.5, 0) == (0.0, 1.0)
