"""from_timm / to_timm against timm's own VisionTransformer (timm is a dev dependency)."""

import pytest
import torch

from vitcore.config import ViTConfig
from vitcore.model import VisionTransformer
from vitcore.timm_compat import TimmConversionError, from_timm, to_timm

tvit = pytest.importorskip("timm.models.vision_transformer")


def _timm_vit(**kw):
    torch.manual_seed(0)
    args = dict(
        img_size=64,
        patch_size=8,
        num_classes=200,
        embed_dim=192,
        depth=9,
        num_heads=12,
        mlp_ratio=2.0,
        qkv_bias=True,
        global_pool="token",
    )
    model = tvit.VisionTransformer(**{**args, **kw}).eval()
    with torch.no_grad():  # timm zero-initialises the head and biases: randomise everything so that a mix-up shows
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


def test_random_timm_model_converts_with_identical_logits():
    timm_model = _timm_vit()
    ours = from_timm(timm_model)
    assert ours.config.heads == [12] * 9 and ours.config.mlp_widths == [384] * 9 and ours.config.norm_eps == 1e-6
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), timm_model(x), atol=1e-5, rtol=1e-5)


def test_state_dict_converts_and_round_trips_through_to_timm():
    timm_model = _timm_vit(depth=3)
    ours = from_timm(timm_model.state_dict(), num_heads=12)
    back = to_timm(ours)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = timm_model(x)
        assert torch.allclose(ours(x), ref, atol=1e-5, rtol=1e-5)
        assert torch.allclose(back(x), ref, atol=1e-5, rtol=1e-5)


def test_our_model_to_timm_keeps_logits_and_pruned_models_are_refused():
    ours = VisionTransformer(ViTConfig.uniform(depth=2)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(to_timm(ours)(x), ours(x), atol=1e-5, rtol=1e-5)
    uneven = VisionTransformer(ViTConfig(heads=[12, 6], mlp_widths=[384, 384]))
    with pytest.raises(TimmConversionError, match="uneven"):
        to_timm(uneven)


def test_unsupported_timm_variants_are_refused():
    with pytest.raises(TimmConversionError, match="'avg' pooling"):
        from_timm(_timm_vit(depth=1, global_pool="avg"))
    with pytest.raises(TimmConversionError, match="q/k norm"):  # layer scale converts now: tests/test_model_sources.py
        from_timm(_timm_vit(depth=1, qk_norm=True))
