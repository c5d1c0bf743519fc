import pytest
import torch
from conftest import tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitcore import VisionTransformer, ViTConfig
from vitcore.pruning import PruneError, count_macs, count_params, prune

MODEL = tiny_model(heads=[3, 2, 4], mlp_widths=[16, 24, 20])  # last layer: chunks of 8, 8, 4
X = torch.randn(3, 3, 16, 16)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.booleans(), min_size=len(MODEL.components), max_size=len(MODEL.components)))
def test_pruned_model_equals_masked_model(bits):
    mask = torch.tensor(bits, dtype=torch.float32)
    pruned = prune(MODEL, mask)
    assert pruned.config.heads == [int(mask[s].sum()) for s in MODEL.components.head_slices]
    with torch.no_grad():
        assert torch.allclose(pruned(X), MODEL(X, mask=mask), atol=1e-5)


@pytest.mark.parametrize("case", ["all", "none", "single", "empty-layer"])
def test_pruning_edge_cases(case):
    space = MODEL.components
    mask = {"all": space.ones(), "none": torch.zeros(len(space))}.get(case)
    if case == "single":
        mask = space.mask_from_keep(["L1.H1"])
    if case == "empty-layer":
        mask = space.ones()
        mask[space.head_slices[1]] = 0
        mask[space.chunk_slices[1]] = 0
    before = {k: v.clone() for k, v in MODEL.state_dict().items()}
    pruned = prune(MODEL, mask)
    with torch.no_grad():
        assert torch.allclose(pruned(X), MODEL(X, mask=mask), atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in MODEL.state_dict().items())  # original untouched
    if case == "none":
        assert pruned.config.heads == [0, 0, 0] and pruned.config.mlp_widths == [0, 0, 0]
        assert torch.allclose(pruned(X)[0], pruned(X)[1])  # no components: input only via the residual
    if case == "all":
        assert count_params(pruned) == count_params(MODEL)


def test_bad_keep_sets():
    with pytest.raises(PruneError):
        prune(MODEL, ["L9.H0"])
    with pytest.raises(PruneError):
        prune(MODEL, torch.ones(3))


def test_reference_counts_match_hand_count():
    cfg = ViTConfig()  # depth 9, dim 192, 12 heads of 16, MLP 384, patch 8, 200 classes
    model = VisionTransformer(cfg)
    # hand count: patch 192*192+192; cls 192; pos 65*192; per layer 2 LN (2*384) + qkv 192*576+576
    # + proj 192*192+192 + fc1 192*384+384 + fc2 384*192+192; final LN 384; head 192*200+200
    per_layer = 2 * 384 + (192 * 576 + 576) + (192 * 192 + 192) + (192 * 384 + 384) + (384 * 192 + 192)
    params = (192 * 192 + 192) + 192 + 65 * 192 + 9 * per_layer + 384 + (192 * 200 + 200)
    assert count_params(model) == params == 2_761_928
    half = prune(
        model, model.components.mask_from_keep([c for c in model.components.names if c.endswith(("H0", "H1", "C0"))])
    )
    assert count_params(half) < params


@pytest.mark.parametrize("keep", ["all", "some", "one layer empty"])
def test_macs_match_torch_flop_counter(keep):
    """count_macs against torch.utils.flop_counter on a real forward (math SDPA, so attention is counted as matmuls)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = VisionTransformer(ViTConfig()).eval()
    names = model.components.names
    chosen = {
        "all": names,
        "some": [c for c in names if c.endswith(("H0", "H1", "C0"))],
        "one layer empty": [c for c in names if not c.startswith("L4.")],
    }[keep]
    pruned = prune(model, model.components.mask_from_keep(chosen)) if keep != "all" else model
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        pruned(torch.randn(1, 3, 64, 64))
    assert count_macs(pruned.config) == counter.get_total_flops() // 2
    if keep == "all":
        assert counter.get_total_flops() // 2 == 189_522_816
