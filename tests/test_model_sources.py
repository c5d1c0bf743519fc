"""Bring your own ViT: timm models by name with a local weights file, local timm folders, and what is refused.

References are timm's own modules: every logit comparison runs timm's forward on the same input."""

import pytest
import torch

from vitcore import load_checkpoint
from vitcore.errors import VitcoreError
from vitcore.model_sources import ModelSourceError, load_model, source_kind
from vitcore.timm_compat import from_timm, to_timm, unsupported_features

timm = pytest.importorskip("timm")
from timm.models import save_for_hf  # noqa: E402
from timm.models.vision_transformer import VisionTransformer as TimmViT  # noqa: E402


def _random_timm(name: str = "vit_tiny_patch16_224", seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    with torch.no_grad():  # timm initialises biases to zero: random ones make a missing bias visible
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def _same_logits(ours, theirs, image_size: int, atol: float = 1e-4) -> None:
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.allclose(ours(x), theirs(x), atol=atol)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from safetensors.torch import save_file

    model = _random_timm()
    path = tmp_path_factory.mktemp("weights") / "vit_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def test_a_timm_name_with_a_local_weights_file_loads_through_timm_with_imagenet_classes(tiny_weights):
    reference, path = tiny_weights
    ckpt = load_model("timm:vit_tiny_patch16_224", weights=path)
    _same_logits(ckpt.model, reference, 224)
    cfg = ckpt.model.config
    assert (cfg.image_size, cfg.patch_size, cfg.dim, cfg.heads, cfg.num_classes) == (224, 16, 192, [3] * 12, 1000)
    assert ckpt.wnids[0] == "n01440764" and ckpt.names[0].startswith("tench") and len(ckpt.names) == 1000
    assert ckpt.info["source"] == {"kind": "timm-name", "name": "vit_tiny_patch16_224", "weights": str(path)}
    pre = ckpt.info["preprocessing"]
    assert pre["input_size"] == [3, 224, 224] and pre["crop_pct"] == pytest.approx(0.9)
    assert list(cfg.mean) == pytest.approx(list(reference.pretrained_cfg["mean"]))


def test_a_local_timm_folder_of_our_shape_loads_and_round_trips_through_to_timm(tmp_path):
    reference = _random_timm(
        img_size=64, patch_size=8, embed_dim=192, depth=9, num_heads=12, mlp_ratio=2.0, num_classes=200
    )
    save_for_hf(reference, str(tmp_path), safe_serialization=True)
    assert source_kind(tmp_path) == "timm-folder"
    ckpt = load_model(tmp_path)
    _same_logits(ckpt.model, reference, 64)
    assert ckpt.model.config.mlp_widths == [384] * 9 and ckpt.info["source"]["kind"] == "timm-folder"
    _same_logits(to_timm(ckpt.model), reference, 64)  # and back to timm


def test_qkv_without_bias_and_layer_scale_convert_to_the_same_function():
    reference = _random_timm(qkv_bias=False, init_values=0.5)
    assert reference.blocks[0].attn.qkv.bias is None and hasattr(reference.blocks[0].ls1, "gamma")
    assert unsupported_features(reference) == []
    ours = from_timm(reference)
    _same_logits(ours, reference, 224)
    _same_logits(to_timm(ours), reference, 224)  # written back without layer scale, with zero qkv bias


def test_pruned_equals_masked_on_a_timm_model(tiny_weights):
    from vitcore.pruning import prune

    ckpt = load_model("timm:vit_tiny_patch16_224", weights=tiny_weights[1])
    mask = ckpt.model.components.ones()
    mask[[0, 5, 40, 100, 200]] = 0
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.allclose(prune(ckpt.model, mask)(x), ckpt.model(x, mask=mask), atol=1e-4)


@pytest.mark.parametrize(
    ("build", "feature"),
    [
        (lambda: timm.create_model("deit_tiny_distilled_patch16_224"), "a distillation token"),
        (lambda: TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=2, reg_tokens=4), "register"),
        (
            lambda: TimmViT(
                img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=2, class_token=False, global_pool="avg"
            ),
            "no class token",
        ),
        (
            lambda: TimmViT(
                img_size=32,
                patch_size=8,
                embed_dim=48,
                depth=1,
                num_heads=2,
                mlp_layer=timm.layers.SwiGLU,
                act_layer=torch.nn.SiLU,
            ),
            "SwiGLU",
        ),
        (lambda: TimmViT(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=2, qk_norm=True), "q/k norm"),
        (lambda: timm.create_model("vit_base_patch16_clip_224"), "a pre-norm"),
    ],
)
def test_unsupported_timm_models_are_refused_naming_the_feature(build, feature):
    with torch.device("meta"):
        model = build()
    problems = unsupported_features(model)
    assert any(feature in p for p in problems), problems


def test_a_refused_timm_name_fails_in_one_line_before_any_download():
    with pytest.raises(ModelSourceError, match="distillation token") as e:
        load_model("timm:deit_tiny_distilled_patch16_224")
    assert "\n" not in str(e.value)


def test_bad_sources_fail_in_one_line(tmp_path, tiny_weights):
    with pytest.raises(ModelSourceError, match="not a timm model name"):
        load_model(tmp_path / "missing")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ModelSourceError, match="could not load its weights") as e:
        load_model("timm:vit_tiny_patch16_224", weights=corrupt)
    assert "\n" not in str(e.value)
    huge = tmp_path / "huge.safetensors"
    with open(huge, "wb") as f:  # sparse: larger than any float32 weights of the model
        f.truncate(4 * 6_000_000 + 2**25)
    with pytest.raises(ModelSourceError, match="more than"):
        load_model("timm:vit_tiny_patch16_224", weights=huge)
    with pytest.raises(ModelSourceError, match="weights file goes with a timm model name"):
        load_model(None, weights=tiny_weights[1])


def test_the_shipped_model_and_vitcore_checkpoints_load_as_before():
    assert load_model(None).sha256 == load_checkpoint(None).sha256


def test_a_zipped_timm_folder_uploads_and_a_bomb_inside_one_is_refused_before_inflating(tmp_path):
    import io
    import zipfile

    from ui.resources import load_upload

    class Upload:  # what Streamlit's file uploader hands the sidebar
        def __init__(self, data: bytes, name: str):
            self.data, self.name = data, name

        def getvalue(self) -> bytes:
            return self.data

    reference = _random_timm(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
    save_for_hf(reference, str(tmp_path / "folder"), safe_serialization=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in sorted((tmp_path / "folder").iterdir()):
            z.write(p, "my-vit/" + p.name)
    ckpt, folder = load_upload(Upload(buf.getvalue(), "my-vit.zip"))
    _same_logits(ckpt.model, reference, 32)
    assert ckpt.info["source"]["kind"] == "timm-folder" and source_kind(folder) == "timm-folder"
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", (tmp_path / "folder" / "config.json").read_bytes())
        z.writestr("model.safetensors", b"\0" * (20 * 2**20))  # deflates a thousandfold: no float weights do
    with pytest.raises(VitcoreError, match="would inflate"):
        load_upload(Upload(bomb.getvalue(), "bomb.zip"))


def test_the_zip_and_onnx_exports_of_a_pruned_timm_model_reproduce_it(tmp_path):
    import io
    import zipfile

    import onnxruntime as ort

    from vitcore.pruning import prune
    from vitcore.pruning.export import export_zip

    reference = _random_timm(img_size=48, patch_size=16, embed_dim=96, depth=3, num_heads=3)
    save_for_hf(reference, str(tmp_path / "folder"), safe_serialization=True)
    ckpt = load_model(tmp_path / "folder")
    mask = ckpt.model.components.ones()
    mask[[0, 4, 7, 20]] = 0
    pruned = prune(ckpt.model, mask)
    info = {k: v for k, v in ckpt.info.items() if k != "model"}
    data = export_zip(pruned, info, tmp_path / "pruned.zip")
    x = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = pruned(x)
        assert torch.allclose(load_model(tmp_path / "pruned.zip").model(x), expected, atol=1e-5)
    onnx = zipfile.ZipFile(io.BytesIO(data)).read("model.onnx")
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert session.get_inputs()[0].shape[1:] == [3, 48, 48]
    assert torch.allclose(torch.from_numpy(logits), expected, atol=1e-4)


@pytest.mark.slow
def test_every_method_runs_on_vit_tiny_at_224(tiny_weights, tmp_path):
    from PIL import Image

    from vitcore.circuits import METHODS, discover
    from vitcore.image_folder import load_image_folder

    ckpt = load_model("timm:vit_tiny_patch16_224", weights=tiny_weights[1])
    g = torch.Generator().manual_seed(0)
    for name in ("goldfish", "tench", "great_white_shark"):
        (tmp_path / name).mkdir()
        for i in range(4):
            pixels = torch.randint(0, 256, (240, 260, 3), generator=g, dtype=torch.uint8)
            Image.fromarray(pixels.numpy()).save(tmp_path / name / f"{i}.jpg")
    discovery, _ = load_image_folder(tmp_path, ckpt)
    assert discovery.images.shape[1:] == (3, 224, 224)
    for method in METHODS:
        result = discover(ckpt.model, discovery, ["n01443537"], method, n_images=2, n_steps=4, steps=20)
        assert len(result.scores) == len(ckpt.model.components) == 228, method
        assert torch.isfinite(torch.tensor(result.scores)).all(), method
