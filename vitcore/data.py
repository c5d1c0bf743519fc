"""Tiny ImageNet in its official layout, read from a folder or a zip, decoded once into uint8 tensors.

Layout (optionally under a top folder such as ``tiny-imagenet-200/``)::

    wnids.txt, words.txt
    train/<wnid>/images/*.JPEG
    val/images/*.JPEG, val/val_annotations.txt

Decoded splits are cached as safetensors under ``$VITCORE_CACHE`` (default
``~/.cache/vitcore``); ``python -m vitcore data clear-cache`` empties it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor
from torchvision.transforms.v2.functional import pil_to_tensor

from .assets import bundled_data
from .config import ViTConfig
from .errors import VitcoreError
from .images import load_rgb

BUNDLED_DATA = bundled_data()
SPLITS = ("train", "val")
MAX_FILE_BYTES = 64 * 2**20  # any one file of the layout; Tiny ImageNet's largest, words.txt, is a few MB
_CACHE_VERSION = "1"


class DataError(VitcoreError):
    """A data source that is missing, malformed or not in the Tiny ImageNet layout."""


def cache_dir() -> Path:
    return Path(os.environ.get("VITCORE_CACHE", Path.home() / ".cache" / "vitcore"))


def clear_cache() -> int:
    """Delete every cached decoded split; returns how many files were removed."""
    n = 0
    for f in cache_dir().glob("*.safetensors"):
        f.unlink()
        n += 1
    return n


@dataclass
class ImageSet:
    """Decoded images ``[N, 3, 64, 64]`` uint8 with labels indexing ``wnids``."""

    images: Tensor
    labels: Tensor
    wnids: list[str]
    names: list[str]
    files: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: Tensor | Sequence[int]) -> ImageSet:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(
            self.images[index], self.labels[index], self.wnids, self.names, [self.files[i] for i in index.tolist()]
        )

    def chosen(self, wnids: Sequence[str]) -> Tensor:
        """Boolean mask ``[N]`` of the images whose class is one of ``wnids``; unknown wnids raise DataError."""
        ids = torch.tensor([self.class_index(w) for w in wnids], dtype=torch.long)
        return torch.isin(self.labels, ids)

    def of_classes(self, wnids: Sequence[str]) -> ImageSet:
        """Images whose class is one of ``wnids``; unknown wnids raise DataError."""
        return self.subset(torch.nonzero(self.chosen(wnids)).flatten())

    def present(self) -> list[str]:
        """The classes with at least one image here, in the order of ``wnids`` (a folder may hold a few of a
        model's classes)."""
        return [self.wnids[i] for i in sorted(set(self.labels.tolist()))]

    def class_index(self, wnid: str) -> int:
        try:
            return self.wnids.index(wnid)
        except ValueError:
            raise DataError(
                f"unknown class {wnid!r}: not one of the {len(self.wnids)} wnids of this data set"
            ) from None


class _Source:
    """Uniform file access to an extracted folder or a zip, rooted at the layout's top."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"data path {self.path} does not exist")
        self.zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            roots = [self.path, self.path / "tiny-imagenet-200"]
            root = next((r for r in roots if (r / "wnids.txt").is_file()), None)
            if root is None:
                raise DataError(
                    f"{self.path} is not a Tiny ImageNet folder: no wnids.txt in it or in tiny-imagenet-200/"
                )
            self.prefix, self.root = "", root
        else:
            try:
                self.zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"{self.path} is neither a folder nor a readable zip: {e}") from e
            names = [n for n in self.zip.namelist() if n.endswith("wnids.txt") and n.count("/") <= 1]
            if not names:
                raise DataError(f"{self.path} is not a Tiny ImageNet zip: no wnids.txt at its top")
            self.prefix = names[0][: -len("wnids.txt")]
            self._names = set(self.zip.namelist())

    def read(self, rel: str) -> bytes:
        """One file's bytes, refused by its declared size before anything is inflated or read, and again by
        what it actually holds (a zip member may declare less than it inflates to)."""
        try:
            if self.zip is not None:
                info = self.zip.getinfo(self.prefix + rel)
                self._check_size(rel, info.file_size)
                with self.zip.open(info) as f:
                    data = f.read(MAX_FILE_BYTES + 1)
            else:
                path = self.root / rel
                self._check_size(rel, path.stat().st_size)
                with open(path, "rb") as f:
                    data = f.read(MAX_FILE_BYTES + 1)
        except (KeyError, FileNotFoundError) as e:
            raise DataError(f"{self.path}: missing {rel}") from e
        except (OSError, zipfile.BadZipFile, EOFError) as e:
            raise DataError(f"{self.path}: cannot read {rel} ({e})") from e
        self._check_size(rel, len(data))
        return data

    def _check_size(self, rel: str, size: int) -> None:
        if size > MAX_FILE_BYTES:
            raise DataError(
                f"{self.path}: {rel} is {size:,} bytes (inflated), over the limit of {MAX_FILE_BYTES:,} for one file "
                "of the data set"
            )

    def exists(self, rel: str) -> bool:
        if self.zip is not None:
            return self.prefix + rel in self._names
        return (self.root / rel).exists()

    def list(self, folder: str) -> list[str]:
        """Relative paths of the files directly in ``folder``."""
        if self.zip is not None:
            start = self.prefix + folder.rstrip("/") + "/"
            return sorted(
                n[len(self.prefix) :]
                for n in self._names
                if n.startswith(start) and "/" not in n[len(start) :] and n != start
            )
        d = self.root / folder
        return sorted(f"{folder.rstrip('/')}/{p.name}" for p in d.iterdir() if p.is_file()) if d.is_dir() else []

    def fingerprint(self) -> str:
        st = self.path.resolve().stat()
        return f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _text(src: _Source, rel: str) -> str:
    try:
        return src.read(rel).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{src.path}: {rel} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _read_classes(src: _Source) -> tuple[list[str], list[str]]:
    wnids = [w.strip() for w in _text(src, "wnids.txt").splitlines() if w.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"{src.path}: wnids.txt is empty or has duplicates")
    words: dict[str, str] = {}
    if src.exists("words.txt"):
        for line in src.read("words.txt").decode(errors="replace").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.strip()
    names = [words.get(w, w).split(",")[0].strip() or w for w in wnids]
    return wnids, names


def _list_split(src: _Source, split: str, wnids: list[str]) -> list[tuple[str, int]]:
    index = {w: i for i, w in enumerate(wnids)}
    items: list[tuple[str, int]] = []
    if split == "train":
        for wnid in wnids:
            files = [f for f in src.list(f"train/{wnid}/images") if f.upper().endswith(".JPEG")]
            items += [(f, index[wnid]) for f in files]
    elif split == "val":
        if not src.exists("val/val_annotations.txt"):
            raise DataError(f"{src.path}: missing val/val_annotations.txt")
        for n, line in enumerate(_text(src, "val/val_annotations.txt").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in index:
                raise DataError(
                    f"{src.path}: val_annotations.txt line {n} is malformed or names an unknown wnid: {line!r}"
                )
            items.append((f"val/images/{parts[0]}", index[parts[1]]))
    else:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    if not items:
        raise DataError(f"{src.path}: the {split} split has no images")
    return items


def decode_image(data: bytes, size: int = 64, name: str = "image") -> Tensor:
    """Decode image bytes to a ``[3, size, size]`` uint8 RGB tensor (grayscale/RGBA/CMYK converted)."""
    img = load_rgb(data, name=name)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return pil_to_tensor(img)


def _decode_split(src: _Source, split: str, progress: bool) -> ImageSet:
    wnids, names = _read_classes(src)
    items = _list_split(src, split, wnids)
    images = torch.empty(len(items), 3, 64, 64, dtype=torch.uint8)
    iterator: Iterable[tuple[int, tuple[str, int]]] = enumerate(items)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, total=len(items), desc=f"decoding {split}", unit="img", leave=False)
    for i, (rel, _) in iterator:
        images[i] = decode_image(src.read(rel), name=f"{src.path}:{rel}")
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return ImageSet(images, labels, wnids, names, [rel for rel, _ in items])


def load_split(
    path: str | Path | None = None, split: str = "val", use_cache: bool = True, progress: bool = False
) -> ImageSet:
    """Load a split of Tiny ImageNet (folder or zip; default: the bundled subset), decoding once."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    src = _Source(Path(path) if path is not None else BUNDLED_DATA)
    key = hashlib.sha256(f"{_CACHE_VERSION}|{src.fingerprint()}|{split}".encode()).hexdigest()[:20]
    cached = cache_dir() / f"{split}-{key}.safetensors"
    if use_cache and cached.exists():
        try:
            from safetensors import safe_open

            tensors = load_file(cached)
            with safe_open(cached, "pt") as f:
                meta = json.loads(f.metadata()["meta"])
            return ImageSet(tensors["images"], tensors["labels"], meta["wnids"], meta["names"], meta["files"])
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            cached.unlink(missing_ok=True)
    data = _decode_split(src, split, progress)
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        meta = json.dumps({"wnids": data.wnids, "names": data.names, "files": data.files})
        save_file({"images": data.images, "labels": data.labels}, tmp, metadata={"meta": meta})
        os.replace(tmp, cached)
        if progress:
            total = sum(f.stat().st_size for f in cache_dir().glob("*.safetensors"))
            print(
                f"decoded {split} split cached at {cached} ({cached.stat().st_size / 1e6:.0f} MB; the cache holds "
                f"{total / 1e6:.0f} MB; "
                "`python -m vitcore data clear-cache` empties it)",
                file=sys.stderr,
            )
    return data


def is_tiny_imagenet(path: str | Path) -> bool:
    """Whether ``path`` is a folder or zip in Tiny ImageNet's layout (a wnids.txt at its top)."""
    try:
        _Source(Path(path))
    except DataError:
        return False
    return True


def normalize(images: Tensor, config: ViTConfig) -> Tensor:
    """uint8 ``[B, 3, H, W]`` to the float input the model expects."""
    mean = torch.tensor(config.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(config.std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


def make_subset(
    source: str | Path, out: str | Path, per_class_train: int = 10, per_class_val: int = 10, seed: int = 0
) -> dict[str, int]:
    """Write a small subset in the official layout (JPEG bytes copied as-is) to zip ``out``."""
    src = _Source(Path(source))
    wnids, _ = _read_classes(src)
    gen = torch.Generator().manual_seed(seed)
    counts = {"train": 0, "val": 0}
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    top = "tiny-imagenet-200/"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(top + "wnids.txt", "\n".join(wnids) + "\n")
        words = src.read("words.txt").decode(errors="replace").splitlines() if src.exists("words.txt") else []
        wanted = set(wnids)
        z.writestr(top + "words.txt", "\n".join(w for w in words if w.split("\t")[0] in wanted) + "\n")
        for split, per_class in (("train", per_class_train), ("val", per_class_val)):
            items = _list_split(src, split, wnids)
            by_class: dict[int, list[str]] = {}
            for rel, label in items:
                by_class.setdefault(label, []).append(rel)
            chosen: list[tuple[str, int]] = []
            for label in range(len(wnids)):
                files = by_class.get(label, [])
                pick = torch.randperm(len(files), generator=gen)[:per_class].sort().values.tolist()
                chosen += [(files[i], label) for i in pick]
            for rel, _ in chosen:
                z.writestr(top + rel, src.read(rel))
            if split == "val":
                ann = "".join(f"{Path(rel).name}\t{wnids[label]}\t0\t0\t63\t63\n" for rel, label in chosen)
                z.writestr(top + "val/val_annotations.txt", ann)
            counts[split] = len(chosen)
    os.replace(tmp, out)
    return counts


def check_classes(model_wnids: Sequence[str], num_classes: int, data: ImageSet, label: str = "the data set") -> None:
    """Raise DataError in one line unless ``data``'s classes are the model's, in the model's order."""
    if model_wnids and list(model_wnids) != list(data.wnids):
        added = [w for w in data.wnids if w not in set(model_wnids)]
        missing = [w for w in model_wnids if w not in set(data.wnids)]
        what = (
            f"adds {', '.join(added[:3])}{' …' if len(added) > 3 else ''}"
            if added
            else f"lacks {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
            if missing
            else "lists them in another order"
        )
        raise DataError(
            f"the model's classes differ from {label}'s: its wnids.txt {what} ({len(data.wnids)} classes; the model "
            f"has {len(model_wnids)})"
        )
    if len(data.wnids) != num_classes:
        raise DataError(f"{label} has {len(data.wnids)} classes; the model predicts {num_classes}")
