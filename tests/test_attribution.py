import pytest
import torch
from conftest import tiny_imageset, tiny_model

from vitcore import load_pretrained, load_split
from vitcore.attribution import input_attribution
from vitcore.pruning.prune import prune


def test_integrated_gradients_complete_and_leave_the_model_untouched():
    model = tiny_model().train()  # the mode is restored afterwards
    image = tiny_imageset().images[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    coarse = input_attribution(model, image, target=2, n_steps=2)
    fine = input_attribution(model, image, target=2, n_steps=64)
    assert fine.pixels.shape == image.shape[1:]
    # completeness: attributions sum to logit(image) - logit(baseline), closer with more steps
    assert float(fine.pixels.sum()) == pytest.approx(
        fine.logit - fine.baseline_logit, abs=abs(fine.convergence_delta) + 1e-5
    )
    assert abs(fine.convergence_delta) < 0.02 * max(1.0, abs(fine.logit - fine.baseline_logit))
    assert abs(fine.convergence_delta) <= abs(coarse.convergence_delta)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and model.training


def test_attribution_of_a_pruned_model_differs_and_bad_input_is_refused():
    model = tiny_model()
    image = tiny_imageset().images[1]
    keep = model.components.ones()
    keep[: len(keep) // 2] = 0
    full, pruned = input_attribution(model, image, 1, 16), input_attribution(prune(model, keep), image, 1, 16)
    assert not torch.allclose(full.pixels, pruned.pixels)
    with pytest.raises(ValueError, match="uint8"):
        input_attribution(model, image.float(), 1)
    with pytest.raises(ValueError, match="outside"):
        input_attribution(model, image, 10_000)


def test_lrp_map_sums_to_the_logit_minus_what_biases_absorb_and_leaves_the_model_untouched():
    from vitcore.attribution import lrp_input_attribution

    model = load_pretrained()
    image = load_split(None, "val").images[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = lrp_input_attribution(model, image, 3)
    assert a.pixels.shape == (64, 64) and a.pixels.abs().sum() > 0
    assert a.convergence_delta == pytest.approx(float(a.pixels.sum()) - a.logit)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and all(
        p.grad is None for p in model.parameters()
    )
    with pytest.raises(ValueError, match="uint8"):
        lrp_input_attribution(model, image.float(), 3)
