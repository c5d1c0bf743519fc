import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_ZIP = ROOT.parent / "shared" / "data" / "tiny-imagenet-200.zip"

from vitcore import VisionTransformer, ViTConfig  # noqa: E402

torch.set_num_threads(int(os.environ.get("VITCORE_TEST_THREADS", min(2, os.cpu_count() or 1))))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path_factory.getbasetemp() / "vitcore-cache"))


def tiny_config(**kw) -> ViTConfig:
    base = dict(
        image_size=16,
        patch_size=4,
        dim=24,
        head_dim=4,
        heads=[3, 2, 3],
        mlp_widths=[16, 24, 8],
        num_classes=5,
        chunk_size=8,
    )
    base.update(kw)
    return ViTConfig(**base)


def tiny_model(seed: int = 0, **kw) -> VisionTransformer:
    torch.manual_seed(seed)
    model = VisionTransformer(tiny_config(**kw)).eval()
    with torch.no_grad():  # larger weights than the init so that every component matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.fixture
def model():
    return tiny_model()


@pytest.fixture
def shared_zip():
    if not SHARED_ZIP.exists():
        pytest.skip("full Tiny ImageNet zip not present")
    return SHARED_ZIP


def tiny_imageset(n_per_class: int = 6, classes: int = 5, size: int = 16, seed: int = 0):
    from vitcore.data import ImageSet

    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    # class-dependent colour offsets so the classes differ
    base = torch.randint(0, 256, (classes, 3, 1, 1), generator=gen)
    noise = torch.randint(-60, 60, (len(labels), 3, size, size), generator=gen)
    images = (base[labels] + noise).clamp(0, 255).to(torch.uint8)
    wnids = [f"n{i:08d}" for i in range(classes)]
    return ImageSet(
        images, labels, wnids, [f"class {i}" for i in range(classes)], [f"img{i}.JPEG" for i in range(len(labels))]
    )


@pytest.fixture
def tiny_task():
    """The tiny model, its image set, and a task over the set's first two classes."""
    from vitcore.circuits import build_task

    model = tiny_model()
    data = tiny_imageset()
    return model, data, build_task(model, data, data.wnids[:2])
