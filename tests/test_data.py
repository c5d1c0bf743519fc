import io
import zipfile

import pytest
import torch
from PIL import Image

from vitcore.data import BUNDLED_DATA, DataError, decode_image, load_split, make_subset
from vitcore.images import ImageError, load_rgb


def extract(zip_path, dest):
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(dest)
    return dest / "tiny-imagenet-200"


def test_bundled_subsets_have_every_class():
    for split in ("train", "val"):
        data = load_split(None, split)
        assert len(data.wnids) == 200 and len(data) == 2000
        assert torch.bincount(data.labels, minlength=200).eq(10).all()
        assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (3, 64, 64)
    train, val = load_split(None, "train"), load_split(None, "val")
    assert not set(train.files) & set(val.files)  # discovery images are never eval images


def test_zip_and_folder_give_identical_tensors(tmp_path):
    folder = extract(BUNDLED_DATA, tmp_path)
    for split in ("train", "val"):
        a, b = load_split(BUNDLED_DATA, split), load_split(folder, split)
        assert a.files == b.files and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert load_split(tmp_path, "val").files == a.files  # the folder above tiny-imagenet-200/ works too


def test_cache_is_used_and_clearable(tmp_path, monkeypatch):
    from vitcore import data as data_mod

    monkeypatch.setenv("VITCORE_CACHE", str(tmp_path / "c"))
    load_split(None, "val")
    assert len(list((tmp_path / "c").glob("*.safetensors"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data_mod, "_decode_split", boom)
    assert len(load_split(None, "val")) == 2000
    assert data_mod.clear_cache() == 1


def test_grayscale_becomes_rgb():
    buf = io.BytesIO()
    Image.new("L", (64, 64), 77).save(buf, "JPEG")
    t = decode_image(buf.getvalue())
    assert t.shape == (3, 64, 64) and t.dtype == torch.uint8
    assert (t[0] == t[1]).all() and (t[1] == t[2]).all()


def test_upload_modes_and_bad_images():
    for mode in ("RGBA", "CMYK", "I;16", "P", "LA"):
        buf = io.BytesIO()
        Image.new(mode, (20, 10)).save(buf, "PNG" if mode != "CMYK" else "JPEG")
        assert load_rgb(buf.getvalue()).mode == "RGB"
    with pytest.raises(ImageError, match="not an image"):
        load_rgb(b"hello, this is text")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "JPEG")
    with pytest.raises(ImageError, match="truncated"):
        load_rgb(buf.getvalue()[:200])
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, "PNG")  # 100 M pixels, a few KB on disk
    with pytest.raises(ImageError, match="bomb"):
        load_rgb(bomb.getvalue())


def test_bad_paths_and_layouts(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "nope", "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no wnids.txt"):
        load_split(tmp_path / "empty", "val")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="readable zip"):
        load_split(tmp_path / "junk.zip", "val")
    root = extract(BUNDLED_DATA, tmp_path / "x")
    (root / "val" / "val_annotations.txt").write_text("val_1.JPEG\tn_not_a_class\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="unknown wnid"):
        load_split(root, "val", use_cache=False)
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations"):
        load_split(root, "val", use_cache=False)
    with pytest.raises(DataError, match="unknown split"):
        load_split(root, "test")


def test_make_subset_is_reproducible(tmp_path):
    a = make_subset(BUNDLED_DATA, tmp_path / "a.zip", 2, 3, seed=1)
    make_subset(BUNDLED_DATA, tmp_path / "b.zip", 2, 3, seed=1)
    assert a == {"train": 400, "val": 600}
    assert load_split(tmp_path / "a.zip", "val").files == load_split(tmp_path / "b.zip", "val").files


@pytest.mark.data
@pytest.mark.slow
def test_full_shared_zip_counts(shared_zip):
    assert len(load_split(shared_zip, "val")) == 10000
    train = load_split(shared_zip, "train")
    assert len(train.wnids) == 200 and len(train) == 100_000
