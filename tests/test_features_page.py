"""The Features page through AppTest: the shipped SAE's view, the lesson's step, suppression checked against a
forward pre-hook, and SAE uploads that are refused in one line."""

from __future__ import annotations

import re

import pytest
import torch
from test_app import GOLDFISH, goto, new_app

from vitcore import load_checkpoint
from vitcore.data import load_split, normalize
from vitcore.features.activations import residuals
from vitcore.features.sae import SAEConfig, TopKSAE, load_sae
from vitcore.features.shipped import saes_for

pytestmark = pytest.mark.slow


def shown_feature(at) -> tuple[int, int]:
    heading = next(s.value for s in at.subheader if s.value.startswith("Feature "))
    latent, layer = re.match(r"Feature (\d+) at layer (\d+):", heading).groups()
    return int(latent), int(layer)


def test_lesson_step_opens_the_features_page_on_its_class_and_suppression_matches_hooks():
    at = goto(new_app(), "lesson")
    at.selectbox(key="lesson_class").set_value(GOLDFISH).run()
    at.button(key="lesson_8").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="features_cls").value == GOLDFISH
    assert any(s.value == "Features that fire most on goldfish" for s in at.subheader)
    latent, layer = shown_feature(at)
    ckpt = load_checkpoint()
    path, config = saes_for(ckpt.sha256)[0]
    assert config.layer == layer
    sae = load_sae(path)
    goldfish = load_split(None, "val").of_classes(["n01443537"])
    x = normalize(goldfish.images, ckpt.model.config)
    with torch.no_grad():  # the feature removed by hand: its write subtracted at every token entering its layer
        z = sae.encode(residuals(ckpt.model, x, [layer])[layer])
        write = z[..., latent : latent + 1] * sae.W_dec[latent] / sae.config.scale
        base = ckpt.model(x).argmax(-1)
        handle = ckpt.model.blocks[layer].register_forward_pre_hook(lambda m, a: (a[0] - write,))
        try:
            removed = ckpt.model(x).argmax(-1)
        finally:
            handle.remove()
    line = next(m.value for m in at.markdown if m.value.startswith(f"On the {len(goldfish)} eval images of goldfish"))
    before, after = (float(v) / 100 for v in re.findall(r"top-1 ([\d.]+)% → ([\d.]+)%", line)[0])
    assert before == pytest.approx(float((base == goldfish.labels).float().mean()), abs=5e-4)
    assert after == pytest.approx(float((removed == goldfish.labels).float().mean()), abs=5e-4)
    assert f"{int((base != removed).sum())} prediction(s) changed" in line
    assert any("rank agreement (Spearman)" in c.value for c in at.caption)


def test_sae_uploads_for_another_model_or_not_an_sae_are_refused_in_one_line(tmp_path):
    at = goto(new_app(), "features")
    at.radio(key="features_sae").set_value("an SAE file of my own…").run()
    ckpt = load_checkpoint()
    other = TopKSAE(SAEConfig(4, ckpt.model.config.dim, 64, 4, 1.0, "0" * 64))
    other.save(tmp_path / "other.safetensors")
    for name, data, words in (
        ("other.safetensors", (tmp_path / "other.safetensors").read_bytes(), "trained on another model"),
        ("notes.safetensors", b"not an sae at all", "not an SAE file"),
    ):
        at.file_uploader(key="sae_file").clear().upload(name, data).run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and words in errors[0] and "\n" not in errors[0], errors


def test_picking_a_feature_from_the_list_or_by_number_shows_that_feature():
    at = goto(new_app(), "features")
    options = at.selectbox(key="features_latent").options
    at.selectbox(key="features_latent").set_value(int(options[2])).run()
    assert shown_feature(at)[0] == int(options[2])
    at.radio(key="features_by").set_value("any, by number").run()
    at.number_input(key="features_any").set_value(5).run()
    assert not at.exception, [e.value for e in at.exception]
    assert shown_feature(at)[0] == 5
    at.radio(key="attr_scope").set_value(at.radio(key="attr_scope").options[1]).run()
    assert any("mean over 10 image(s)" in c.value for c in at.caption), [c.value for c in at.caption]
