"""The app on a timm ViT and a labelled image folder: every page opens and the main actions run (AppTest)."""

import pytest
import torch
from conftest import ROOT
from PIL import Image
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow
timm = pytest.importorskip("timm")
APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def own_vit(tmp_path_factory):
    """A small timm ViT with ImageNet's classes (random weights) as a local timm folder, and a 3-class folder."""
    from timm.models import save_for_hf

    root = tmp_path_factory.mktemp("own_vit")
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3
    )
    save_for_hf(model, str(root / "model"), safe_serialization=True)
    g = torch.Generator().manual_seed(0)
    for name in ("goldfish", "tench", "great_white_shark"):
        (root / "images" / name).mkdir(parents=True)
        for i in range(6):
            pixels = torch.randint(0, 256, (48, 40, 3), generator=g, dtype=torch.uint8)
            Image.fromarray(pixels.numpy()).save(root / "images" / name / f"{i}.jpg")
    return root / "model", root / "images"


def app_on(own_vit, monkeypatch) -> AppTest:
    """A session that chose the timm model and the folder by their paths on the server."""
    monkeypatch.setenv("VITCORE_ALLOW_SERVER_PATHS", "1")
    model, images = own_vit
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["model_source"] = "Path on this machine"
    at.session_state["model_path"] = str(model)
    at.session_state["data_path"] = str(images)
    at.run()
    return at


def test_every_page_opens_on_a_timm_model_and_an_image_folder(own_vit, monkeypatch):
    from ui.shell import PAGES

    at = app_on(own_vit, monkeypatch)
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    state = at.session_state["app"]
    assert state.ckpt.model.config.image_size == 32 and state.ckpt.model.config.num_classes == 1000
    assert len(state.eval_set) == 9 and state.data_key == str(own_vit[1])
    for path, title in PAGES:
        at.switch_page(path)
        at.run()
        assert not at.exception, (title, [e.value for e in at.exception])


def test_a_circuit_run_pruning_fine_tuning_and_export_on_a_timm_model(own_vit, monkeypatch, tmp_path):
    from test_app import media_bytes

    from vitcore.model_sources import load_model

    at = app_on(own_vit, monkeypatch)
    at.switch_page("pages/circuits.py")
    at.run()
    assert len(at.multiselect(key="class_pick").options) == 3  # the folder's classes, not the model's 1000
    at.multiselect(key="class_pick").select("goldfish, Carassius auratus (n01443537)")
    at.selectbox(key="method").set_value("eap")
    at.run()
    at.button(key="run_circuit").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    state = at.session_state["app"]
    assert state.results and len(state.results[-1].scores) == len(state.ckpt.model.components)
    at.button(key="attr_run").click().run()  # integrated gradients and LRP maps at the model's 32x32
    assert not at.exception, [e.value for e in at.exception]
    _, maps, lrp_maps = at.session_state["app"].attribution
    assert maps["full model"].pixels.shape[-2:] == (32, 32) and set(lrp_maps) == set(maps)
    at.switch_page("pages/prune.py")
    at.run()
    at.number_input(key="ft_steps").set_value(5).run()
    at.button(key="ft_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("→" in s.value for s in list(at.success) + list(at.warning)), [e.value for e in at.error]
    at.switch_page("pages/export.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (tmp_path / "m.zip").write_bytes(media_bytes(at.download_button(key="dl_zip").proto.url))
    exported = load_model(tmp_path / "m.zip")  # a vitcore checkpoint of the pruned, fine-tuned timm model
    assert exported.model.config.image_size == 32 and exported.wnids == state.ckpt.wnids
    assert exported.info["provenance"]["finetuned"] is True
    assert exported.info["source"]["kind"] == "timm-folder"  # where the pruned model came from
    assert exported.info["preprocessing"] == state.ckpt.info["preprocessing"]


def test_an_operator_preloads_a_timm_model_and_folder_for_everyone(own_vit, monkeypatch):
    from ui.resources import shared_checkpoint
    from ui.sidebar import PRELOADED
    from ui.warmup import warm_preloaded

    model, images = own_vit
    monkeypatch.setenv("VITCORE_PRELOAD", str(model))
    monkeypatch.setenv("VITCORE_PRELOAD_DATA", str(images))
    monkeypatch.delenv("VITCORE_ALLOW_SERVER_PATHS", raising=False)
    source = warm_preloaded()  # what serve.py's start-up does
    assert source is not None and source.checkpoint == str(model) and source.data == str(images)
    warmed = shared_checkpoint(str(model))
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["model_source"] = PRELOADED  # offered without server paths: the operator chose it
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    state = at.session_state["app"]
    assert state.ckpt is warmed and state.data_key == str(images) and len(state.eval_set) == 9


def test_features_page_on_a_timm_model_with_an_sae_trained_by_the_cli(own_vit, monkeypatch, tmp_path, capsys):
    """A brought model has no shipped SAE: the page says how to train one; the CLI trains it on the folder, and
    the uploaded file gives the page's views."""
    from vitcore.cli import main

    model, images = own_vit
    at = app_on(own_vit, monkeypatch)
    at.switch_page("pages/features.py")
    at.run()
    assert any("python -m vitcore features train" in i.value for i in at.info), [i.value for i in at.info]
    argv = ["features", "train", "--model", str(model), "--data", str(images), "--layers", "1", "--out", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    at.file_uploader(key="sae_file").upload("L1.safetensors", (tmp_path / "L1.safetensors").read_bytes()).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert any(s.value.startswith("Feature ") and "at layer 1" in s.value for s in at.subheader)
