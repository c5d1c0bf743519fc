"""Playground: per-session figures of keep-sets over a shared base model, checked against direct computation."""

import hashlib

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_imageset, tiny_model
from vitcore.data import normalize
from vitcore.playground import NothingKeptError, Playground


def weights_hash(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode() + v.numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def pg():
    model, data = tiny_model(), tiny_imageset()
    return Playground(model, data, ["n00000001", "n00000003"], latency_repeats=3), model, data


def test_fast_figures_equal_a_masked_forward_of_the_full_model(pg):
    playground, model, data = pg
    mask = model.components.ones()
    mask[model.components.id("L0.H1")] = 0
    mask[model.components.id("L1.C0")] = 0
    figures = playground.fast(mask)
    chosen = torch.isin(data.labels, torch.tensor([1, 3]))
    x, y = normalize(data.images[chosen], model.config), data.labels[chosen]
    with torch.no_grad():
        masked, full = model(x, mask=mask), model(x)  # zero-masking the full model: no pruned copy involved
    assert figures.kept == len(mask) - 2
    assert figures.top1_chosen == pytest.approx(float((masked.argmax(1) == y).float().mean()))
    kl = F.kl_div(F.log_softmax(masked, -1), F.log_softmax(full, -1), log_target=True, reduction="none").sum(-1).mean()
    assert figures.kl_chosen == pytest.approx(float(kl), abs=1e-5)
    assert figures.params == sum(p.numel() for p in playground.model_for(mask).parameters()) < sum(p.numel() for p in model.parameters())
    assert figures.latency_b1_ms > 0


def test_slow_figures_cover_every_eval_image_and_results_are_cached(pg):
    playground, model, data = pg
    mask = model.components.ones()
    mask[0] = 0
    figures = playground.slow(mask)
    with torch.no_grad():
        pred = model(normalize(data.images, model.config), mask=mask).argmax(1)
    assert figures.top1_all == pytest.approx(float((pred == data.labels).float().mean()))
    assert figures.throughput_b64 is not None
    assert playground.fast(mask) is figures and playground.model_for(mask) is playground.model_for(mask.clone())
    assert playground.model_for(model.components.ones()) is model  # keep-all is the base itself, never a copy


def test_nothing_kept_is_refused_and_the_shared_model_is_untouched(pg):
    playground, model, data = pg
    before, mode = weights_hash(model), model.training
    with pytest.raises(NothingKeptError, match="keep at least one"):
        playground.fast(torch.zeros(len(model.components)))
    mask = model.components.ones()
    mask[3] = 0
    playground.slow(mask)
    tuned = playground.model_for(mask).clone()
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(1.0)
    playground.replace_model(mask, tuned)
    assert playground.model_for(mask) is tuned and playground.fast(mask).top1_all is None  # figures recomputed for the new model
    assert weights_hash(model) == before and model.training == mode and all(p.grad is None for p in model.parameters())


def test_changing_classes_clears_figures(pg):
    playground, model, data = pg
    mask = model.components.ones()
    a = playground.fast(mask)
    playground.set_classes(["n00000000"])
    b = playground.fast(mask)
    assert a is not b and len(playground.chosen) == int((data.labels == 0).sum())
