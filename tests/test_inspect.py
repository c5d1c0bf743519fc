"""Looking inside components, each view checked against an independent reference: attention patterns against
a softmax recomputed by hand from q and k captured with forward hooks, direct logit attribution against the
logits, the logit lens against the forward, "without it" against the masked model."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, tiny_model

from vitcore import load_checkpoint, load_split
from vitcore.data import normalize
from vitcore.inspect import (
    attention_patterns,
    direct_logit_attribution,
    image_effects,
    logit_lens,
    mean_attention_distance,
    without_components,
)
from vitcore.inspect.report import InspectError, component_report


@pytest.fixture(scope="module")
def shipped():
    model = load_checkpoint(None).model
    val = load_split(None, "val")
    return model, val, normalize(val.images[::67][:30], model.config)  # 30 images across the classes


def test_attention_patterns_equal_a_softmax_of_hooked_q_and_k(shipped):
    model, _, pixels = shipped
    layer = 3
    block = model.layers()[layer]
    captured = {}
    handle = block.attn.qkv.register_forward_hook(lambda mod, inp, out: captured.setdefault("qkv", out.detach()))
    with torch.no_grad():
        model(pixels)
    handle.remove()
    B, T, _ = captured["qkv"].shape
    H, d = block.attn.num_heads, block.attn.head_dim
    q = captured["qkv"][..., : H * d].reshape(B, T, H, d)
    k = captured["qkv"][..., H * d : 2 * H * d].reshape(B, T, H, d)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d**0.5
    by_hand = torch.exp(scores - scores.amax(-1, keepdim=True))
    by_hand = by_hand / by_hand.sum(-1, keepdim=True)
    got = attention_patterns(model, pixels, layer)
    assert got.shape == (B, H, T, T)
    assert torch.allclose(got, by_hand, atol=1e-5)


def test_direct_logit_attribution_sums_to_the_logits(shipped):
    model, _, pixels = shipped
    dla = direct_logit_attribution(model, pixels)
    with torch.no_grad():
        logits = model(pixels)
    assert len(pixels) == 30 and torch.allclose(dla.total(), logits, atol=1e-4), (dla.total() - logits).abs().max()
    assert [h.shape[1] for h in dla.heads] == model.config.heads


def test_the_logit_lens_ends_at_the_logits(shipped):
    model, _, pixels = shipped
    lens = logit_lens(model, pixels)
    with torch.no_grad():
        logits = model(pixels)
    assert lens.shape == (model.config.depth + 1, len(pixels), model.config.num_classes)
    assert torch.allclose(lens[-1], logits, atol=1e-5)


def test_without_it_is_the_masked_model_and_exact_effects_are_the_masked_change(shipped):
    model, _, pixels = shipped
    image = pixels[:1]
    effects = image_effects(model, image, exact=True)
    assert all(p.grad is None for p in model.parameters())  # the shared model is left as it was
    assert abs(effects[0].estimate) >= abs(effects[-1].estimate)  # largest first
    names = [e.name for e in effects[:3]]
    pruned = without_components(model, names)
    space = model.components
    mask = space.ones()
    for n in names:
        mask[space.id(n)] = 0
    with torch.no_grad():
        assert torch.allclose(pruned(image), model(image, mask=mask), atol=1e-4)
        full = model(image)[0]
        target = int(full.argmax())
        one = space.ones()
        one[space.id(names[0])] = 0
        change = float(model(image, mask=one)[0, target] - full[target])
    assert effects[0].exact == pytest.approx(change, abs=1e-4)


def test_mean_attention_distance_matches_a_loop_over_hooked_patterns():
    model = tiny_model().eval()
    pixels = torch.randn(4, 3, 16, 16)
    got = mean_attention_distance(model, pixels)
    side, p = 4, 4
    for layer in range(model.config.depth):
        pattern = attention_patterns(model, pixels, layer)
        for h in range(model.config.heads[layer]):
            total, count = 0.0, 0
            for b in range(4):
                for qi in range(side * side):
                    w = pattern[b, h, 1 + qi, 1:]
                    w = w / w.sum()
                    for ki in range(side * side):
                        dy, dx = (qi // side - ki // side) * p, (qi % side - ki % side) * p
                        total += float(w[ki]) * (dy * dy + dx * dx) ** 0.5
                    count += 1
            assert got[layer, h] == pytest.approx(total / count, rel=1e-4)
    assert torch.isnan(got[1, 2:]).all()  # layer 1 has two heads


def test_a_component_report_and_bad_names(shipped, tmp_path):
    model, val, _ = shipped
    report, strip = component_report(model, val, ["n01443537"], "L3.H5")
    assert report["images"] == 10 and len(report["removal"]) == 8 and len(report["pushes_up"]) == 10
    assert len(report["class_token_attention"]) == 8 and strip.width == 8 * 64 * 4
    chunk, _ = component_report(model, val, ["n01443537"], "L2.C1")
    assert len(chunk["most_active"]) == 8
    pruned = without_components(model, ["L3.H5"])
    for bad, message in ((model, "L3.H99"), (model, "head 5 of layer 3"), (pruned, "L3.H11")):
        with pytest.raises(InspectError):
            component_report(bad, val, ["n01443537"], message)


@pytest.mark.slow
def test_inspect_cli_writes_json_and_png_and_refuses_an_unknown_component(tmp_path):
    run = [sys.executable, "-m", "vitcore", "inspect", "--classes", "n01443537", "--out", str(tmp_path / "r")]
    done = subprocess.run([*run, "--component", "L3.H5"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["component"] == "L3.H5" and (tmp_path / "r" / "views.png").stat().st_size > 1000
    bad = subprocess.run([*run, "--component", "L3.H99"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "L3.H99" in bad.stderr


def test_patch_attention_is_the_query_patch_row_of_the_pattern():
    from vitcore.inspect.attention import attention_patterns, patch_attention

    model = load_checkpoint().model
    pixels = normalize(load_split(None, "val").images[:3], model.config)
    g = model.config.image_size // model.config.patch_size
    row, col = 2, 5
    got = patch_attention(model, pixels, 4, 7, row, col)
    full = attention_patterns(model, pixels, 4)[:, 7]
    token = 1 + row * g + col  # tokens: the class token, then patches row by row
    assert got.shape == (3, g, g)
    assert torch.allclose(got[:, row, col], full[:, token, token])  # its attention to itself sits at its place
    assert torch.allclose(got.flatten(1).sum(1) + full[:, token, 0], torch.ones(3), atol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        patch_attention(model, pixels, 4, 7, g, 0)
