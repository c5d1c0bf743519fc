"""Labelled image folders as data: ``class_name/*.jpg`` in a folder or a zip, for any model.

The folder names are mapped to the model's output classes (its class ids, such as ImageNet synsets, or its
class names; a mapping file; or, failing both, the folders in sorted order when there are as many as the
model has classes). Images are preprocessed as the model expects: for a timm model as its data config says
(resize the shorter side to ``size / crop_pct``, then crop the centre), otherwise resized and centre-cropped
to the model's size. A folder with ``train/`` and ``val/`` inside gives the discovery and eval images; any
other is split per class (sorted files: the first part for discovery, the rest for eval).

Every file is checked by its size before it is read (a zip member by its declared size, before inflating),
every image by its pixel count before it is decoded, and the whole decoded set against a memory budget.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from PIL import Image

from .checkpoint import Checkpoint
from .data import DataError, ImageSet, check_classes, is_tiny_imagenet, load_split
from .errors import read_json_object
from .images import ImageError, load_rgb, to_model_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_IMAGE_BYTES = 32 * 2**20
MAX_COMPRESSION = 200  # a zipped JPEG or PNG barely deflates; a bomb deflates by orders of magnitude more
MAX_DECODED_BYTES = 1 * 2**30  # the decoded images of both splits, uint8 at the model's size
MAX_MAPPING_BYTES = 2**20


class _Files:
    """The image files of a folder or a zip as (relative path parts, reader)."""

    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            raise DataError(f"data path {path} does not exist")
        self.zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.entries = sorted(
                p.relative_to(path).parts for p in path.rglob("*") if p.is_file() and not p.is_symlink()
            )
        else:
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"{path} is neither a folder nor a readable zip ({e})") from e
            self.entries = sorted(PurePosixPath(n).parts for n in self.zip.namelist() if not n.endswith("/"))
        self.entries = [e for e in self.entries if not any(part.startswith((".", "__MACOSX")) for part in e)]
        tops = {e[0] for e in self.entries}
        if len(tops) == 1 and all(len(e) > 2 for e in self.entries):  # one folder wrapping everything
            self.strip = 1
        else:
            self.strip = 0

    def images(self) -> list[tuple[str, ...]]:
        return [e[self.strip :] for e in self.entries if e[-1].lower().endswith(IMAGE_SUFFIXES)]

    def read(self, parts: tuple[str, ...]) -> bytes:
        full = self.entries[0][: self.strip] + parts
        name = "/".join(full)
        if self.zip is not None:
            info = self.zip.getinfo(name)
            if info.file_size > MAX_IMAGE_BYTES or info.file_size > MAX_COMPRESSION * max(info.compress_size, 1):
                raise DataError(f"{self.path}: {name} inflates to {info.file_size:,} bytes (refused before inflating)")
            with self.zip.open(info) as f:
                data = f.read(MAX_IMAGE_BYTES + 1)
        else:
            file = self.path.joinpath(*full)
            if file.stat().st_size > MAX_IMAGE_BYTES:
                raise DataError(f"{file}: {file.stat().st_size:,} bytes is over the {MAX_IMAGE_BYTES:,} byte limit")
            data = file.read_bytes()
        if len(data) > MAX_IMAGE_BYTES:
            raise DataError(f"{self.path}: {name} holds more than {MAX_IMAGE_BYTES:,} bytes")
        return data


def _normal(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A mapping file: a JSON object from folder name to the model's class (an index, a class id or a name)."""
    return read_json_object(path, MAX_MAPPING_BYTES, "mapping file (folder name -> class)", DataError)


def class_indices(folders: list[str], ckpt: Checkpoint, mapping: dict[str, Any] | None = None) -> dict[str, int]:
    """Each folder's index among the model's outputs (see the module's docstring); one line naming a folder that
    matches nothing."""
    n = ckpt.model.config.num_classes
    ids = ckpt.wnids or [str(i) for i in range(n)]
    names = ckpt.names or ids
    by_id = {w: i for i, w in enumerate(ids)}
    by_name: dict[str, int] = {}
    for i, name in enumerate(names):
        for alias in [name, *name.split(",")]:
            by_name.setdefault(_normal(alias), i)

    def find(key: Any) -> int | None:
        if isinstance(key, int) and not isinstance(key, bool):
            return key if 0 <= key < n else None
        key = str(key)
        return by_id.get(key, by_name.get(_normal(key)))

    found = {f: find(mapping[f] if mapping and f in mapping else f) for f in folders}
    if mapping is None and all(i is None for i in found.values()) and len(folders) == n:
        return {f: i for i, f in enumerate(sorted(folders))}  # no folder names a class: the folders in order
    missing = [f for f, i in found.items() if i is None]
    if missing:
        raise DataError(
            f"folder {missing[0]!r}{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} matches none of "
            f"the model's {n} classes by id or name; give a mapping file (folder -> class index, id or name)"
        )
    return {f: int(i) for f, i in found.items() if i is not None}


def preprocess(img: Image.Image, size: int, preprocessing: dict[str, Any] | None = None) -> torch.Tensor:
    """An RGB image as the model sees it, uint8 ``[3, size, size]``: timm's eval transform when the checkpoint
    records one (shorter side to ``size / crop_pct``, centre crop), otherwise the app's (shorter side to
    ``size``, centre crop)."""
    img = to_model_size(img, size, preprocessing)
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)


def _by_split(files: list[tuple[str, ...]], eval_fraction: float) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(split, class folder, file) for every image: ``train/``+``val/`` folders, or each class split in two."""
    splits = {f[0] for f in files if len(f) == 3}
    if {"train", "val"} <= splits:
        for f in files:
            if len(f) == 3 and f[0] in ("train", "val"):
                yield ("discovery" if f[0] == "train" else "eval"), f[1], f
        return
    by_class: dict[str, list[tuple[str, ...]]] = {}
    for f in files:
        if len(f) == 2:
            by_class.setdefault(f[0], []).append(f)
    for folder, items in sorted(by_class.items()):
        n_eval = max(1, round(len(items) * eval_fraction)) if len(items) > 1 else 0
        for i, f in enumerate(sorted(items)):
            yield ("discovery" if i < len(items) - n_eval else "eval"), folder, f


def load_image_folder(
    path: str | Path, ckpt: Checkpoint, mapping: str | Path | dict | None = None, eval_fraction: float = 0.5
) -> tuple[ImageSet, ImageSet]:
    """The discovery and eval images of a labelled folder or zip, at ``ckpt``'s input size, with labels indexing the
    model's classes (``ImageSet.wnids`` are the model's)."""
    files = _Files(Path(path))
    items = list(_by_split(files.images(), eval_fraction))
    if not items:
        raise DataError(f"{path}: no images in class folders (expected class_name/*.jpg, or train/ and val/)")
    size = ckpt.model.config.image_size
    if len(items) * 3 * size * size > MAX_DECODED_BYTES:
        raise DataError(
            f"{path}: {len(items):,} images at {size}x{size} need more than {MAX_DECODED_BYTES // 2**20} MiB decoded"
        )
    table = read_mapping(mapping) if isinstance(mapping, (str, Path)) else mapping
    index = class_indices(sorted({folder for _, folder, _ in items}), ckpt, table)
    pre = ckpt.info.get("preprocessing")
    out: dict[str, tuple[list[torch.Tensor], list[int], list[str]]] = {"discovery": ([], [], []), "eval": ([], [], [])}
    for split, folder, f in items:
        name = "/".join(f)
        try:
            image = preprocess(load_rgb(files.read(f), name=name), size, pre)
        except ImageError as e:
            raise DataError(f"{path}: {e}") from e
        images, labels, names = out[split]
        images.append(image)
        labels.append(index[folder])
        names.append(name)
    ids = ckpt.wnids or [str(i) for i in range(ckpt.model.config.num_classes)]
    class_names = ckpt.names or ids
    sets = []
    for split in ("discovery", "eval"):
        images, labels, names = out[split]
        if not images:
            raise DataError(f"{path}: no {split} images (each class needs at least two, or train/ and val/)")
        sets.append(ImageSet(torch.stack(images), torch.tensor(labels), list(ids), list(class_names), names))
    return sets[0], sets[1]


_FOLDERS: dict[tuple[str, str, str], tuple[ImageSet, ImageSet]] = {}  # the last folder loaded, both splits


def load_data(path: str | Path | None, ckpt: Checkpoint, split: str, **kwargs: Any) -> ImageSet:
    """A split (``train``: discovery images, ``val``: eval images) of the data at ``path`` for ``ckpt``: Tiny
    ImageNet's layout (default: the bundled subsets), refused unless its classes are the model's; or a labelled
    image folder, mapped to the model's classes (``VITCORE_CLASS_MAP`` names a mapping file). ``kwargs`` go to
    :func:`vitcore.data.load_split`."""
    if path is not None and not is_tiny_imagenet(path):
        mapping = os.environ.get("VITCORE_CLASS_MAP") or None
        key = (str(path), ckpt.sha256, str(mapping))
        if key not in _FOLDERS:
            _FOLDERS.clear()  # one folder at a time: both of its splits
            _FOLDERS[key] = load_image_folder(path, ckpt, mapping=mapping)
        return _FOLDERS[key][0 if split == "train" else 1]
    data = load_split(path, split, **kwargs)
    check_classes(ckpt.wnids, ckpt.model.config.num_classes, data)
    return data
