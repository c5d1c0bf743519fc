"""Labelled image folders for any model: class mapping, timm's preprocessing, splits, bad input, every method runs."""

import zipfile

import pytest
import torch
from PIL import Image

from vitcore.data import DataError, normalize
from vitcore.image_folder import load_image_folder, preprocess
from vitcore.model_sources import load_model

timm = pytest.importorskip("timm")
from timm.models import save_for_hf  # noqa: E402


def _image(seed: int, size=(80, 60), mode="RGB") -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], len(mode)), generator=g, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), mode)


def _folder(root, classes, per_class=4, fmt="JPEG"):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _image(10 * c + i, (70 + 9 * i, 50 + 7 * c)).save(root / name / f"{i}.{fmt.lower()}", fmt)
    return root


@pytest.fixture(scope="module")
def tiny_timm(tmp_path_factory):
    """A small timm ViT with ImageNet's 1000 classes (random weights), as a local timm folder."""
    torch.manual_seed(0)
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3
    ).eval()
    folder = tmp_path_factory.mktemp("tiny_timm")
    save_for_hf(model, str(folder), safe_serialization=True)
    return model, load_model(folder)


def test_folders_named_by_class_name_or_synset_map_to_the_models_outputs(tmp_path, tiny_timm):
    _, ckpt = tiny_timm
    _folder(tmp_path, ["goldfish", "n01440764", "great_white_shark"])  # ImageNet classes 1, 0 and 2
    discovery, eval_set = load_image_folder(tmp_path, ckpt)
    assert discovery.wnids == ckpt.wnids and len(discovery.wnids) == 1000
    assert sorted(set(discovery.labels.tolist())) == [0, 1, 2] and len(discovery) == len(eval_set) == 6
    gold = [f for f, label in zip(eval_set.files, eval_set.labels.tolist()) if label == 1]
    assert gold and all(f.startswith("goldfish/") for f in gold)
    assert discovery.images.shape[1:] == (3, 32, 32)


def test_preprocessing_equals_timms_own_eval_transform(tiny_timm):
    from timm.data import create_transform, resolve_data_config

    model, ckpt = tiny_timm
    transform = create_transform(**resolve_data_config({"input_size": (3, 32, 32)}, model=model))
    assert ckpt.info["preprocessing"]["input_size"] == [3, 32, 32]
    for img in (_image(1, (97, 61)), _image(2, (40, 90)), _image(3, (32, 32))):
        ours = normalize(preprocess(img, 32, ckpt.info["preprocessing"])[None], ckpt.model.config)[0]
        assert torch.allclose(ours, transform(img), atol=1e-5)


def test_a_mapping_file_train_val_layout_and_a_zip(tmp_path, tiny_timm):
    _, ckpt = tiny_timm
    root = tmp_path / "data"
    for split in ("train", "val"):
        _folder(root / split, ["cats", "dogs"], per_class=2)
    (tmp_path / "map.json").write_text('{"cats": 281, "dogs": "n02085620"}')
    discovery, eval_set = load_image_folder(root, ckpt, mapping=tmp_path / "map.json")
    assert all(f.startswith("train/") for f in discovery.files) and all(f.startswith("val/") for f in eval_set.files)
    assert sorted(set(eval_set.labels.tolist())) == [151, 281]
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(root.rglob("*.jpeg")):
            z.write(p, "data/" + p.relative_to(root).as_posix())
    zipped = load_image_folder(archive, ckpt, mapping=tmp_path / "map.json")[1]
    assert torch.equal(zipped.images, eval_set.images) and zipped.files == eval_set.files


def test_bad_folders_fail_in_one_line(tmp_path, tiny_timm):
    _, ckpt = tiny_timm
    with pytest.raises(DataError, match="matches none of the model's 1000 classes"):
        load_image_folder(_folder(tmp_path / "a", ["goldfish", "my holiday"]), ckpt)
    bad = _folder(tmp_path / "b", ["goldfish", "tench"])
    (bad / "tench" / "9.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="not an image file") as e:
        load_image_folder(bad, ckpt)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="no images"):
        load_image_folder((tmp_path / "empty").joinpath(), ckpt) if (tmp_path / "empty").mkdir() is None else None
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("goldfish/0.jpg", b"\0" * (8 * 2**20))  # deflates a thousandfold
        z.writestr("goldfish/1.jpg", b"\0" * 10)
    with pytest.raises(DataError, match="refused before inflating"):
        load_image_folder(bomb, ckpt)


def test_every_method_runs_on_a_timm_model_and_a_folder(tmp_path, tiny_timm):
    from vitcore.circuits import METHODS, discover

    _, ckpt = tiny_timm
    discovery, _ = load_image_folder(_folder(tmp_path, ["goldfish", "tench", "great_white_shark"], 6), ckpt)
    for method in METHODS:
        result = discover(ckpt.model, discovery, ["n01443537"], method, n_images=3, n_steps=4, steps=20)
        assert len(result.scores) == len(ckpt.model.components) and torch.isfinite(torch.tensor(result.scores)).all()


def test_the_cli_evaluates_a_timm_model_on_an_image_folder(tmp_path, tiny_timm, capsys):
    import json

    from vitcore.cli import main

    model, ckpt = tiny_timm
    folder = _folder(tmp_path / "images", ["goldfish", "tench"], 4)
    assert main(["evaluate", "--model", str(ckpt.info["source"]["path"]), "--data", str(folder), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    _, eval_set = load_image_folder(folder, ckpt)
    with torch.inference_mode():  # timm's own forward on the same preprocessed images
        expected = (model(normalize(eval_set.images, ckpt.model.config)).argmax(1) == eval_set.labels).float().mean()
    assert printed["top1"] == pytest.approx(float(expected))
    assert main(["evaluate", "--model", "timm:deit_tiny_distilled_patch16_224"]) == 2
    assert "distillation token" in capsys.readouterr().err


def test_a_worker_source_loads_a_timm_folder_and_an_image_folder(tmp_path, tiny_timm):
    from vitcore.compute.figures import Source

    _, ckpt = tiny_timm
    folder = _folder(tmp_path / "images", ["goldfish", "tench"], 4)
    source = Source(ckpt.info["source"]["path"], ckpt.sha256, str(folder), str(folder))
    discovery, eval_set = load_image_folder(folder, ckpt)
    assert torch.equal(source.eval_set().images, eval_set.images) and source.eval_set().files == eval_set.files
    assert torch.equal(source.discovery_set().labels, discovery.labels)
    x = normalize(eval_set.images, ckpt.model.config)
    with torch.inference_mode():  # the same weights, loaded again from the folder (the checksum is checked too)
        assert torch.allclose(source.base()(x), ckpt.model(x), atol=1e-6)


def test_the_cli_atlas_covers_the_folders_classes_only(tmp_path, tiny_timm, capsys):
    from vitcore.cli import main

    _, ckpt = tiny_timm
    folder = _folder(tmp_path / "images", ["goldfish", "tench"], 4)
    model = str(ckpt.info["source"]["path"])
    argv = ["atlas", "--model", model, "--data", str(folder), "--methods", "eap", "--backend", "local"]
    assert main([*argv, "--out", str(tmp_path / "atlas")]) == 0
    done = sorted(p.name for p in (tmp_path / "atlas" / "results" / "eap").glob("*.json"))
    assert done == ["n01440764.json", "n01443537.json"]  # tench and goldfish, not the model's other 998 classes
    assert main(["circuits", "--model", model, "--data", str(folder), "--method", "eap", "--classes", "n01491361"]) == 2
    assert "none of their images in the data" in capsys.readouterr().err


@pytest.mark.parametrize("size", [(300, 180), (97, 211), (64, 64), (1000, 999)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_a_timm_models_input_is_torchvisions_eval_transform(size, interpolation):
    """Against torchvision itself: Resize(floor(size / crop_pct)) then CenterCrop(size), as timm's eval transform."""
    from torchvision import transforms

    from vitcore.pil_preprocess import model_input

    gen = torch.Generator().manual_seed(sum(size))
    img = Image.fromarray((torch.rand(*size[::-1], 3, generator=gen) * 255).to(torch.uint8).numpy())
    mode = {"bicubic": transforms.InterpolationMode.BICUBIC, "bilinear": transforms.InterpolationMode.BILINEAR}
    reference = transforms.Compose([transforms.Resize(73, mode[interpolation]), transforms.CenterCrop(64)])(img)
    ours = model_input(img, 64, {"crop_pct": 0.875, "interpolation": interpolation})
    assert ours.size == (64, 64) and ours.tobytes() == reference.tobytes()
