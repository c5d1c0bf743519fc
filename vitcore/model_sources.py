"""Where a model comes from, loaded as a :class:`~vitcore.checkpoint.Checkpoint` that says so.

A source is one of: nothing (the shipped model); a vitcore checkpoint (a folder or zip whose ``config.json``
has a ``model`` section); a local timm model folder as timm writes it for the Hugging Face Hub
(``config.json`` naming an ``architecture``, and ``model.safetensors``); or a timm model name
(``timm:vit_tiny_patch16_224``, or a bare name timm knows), which timm downloads on a machine with internet,
or reads from a local ``weights`` file (safetensors, or ``.pth``/``.bin``, which timm reads with
``weights_only=True``). A timm model is built on the meta device first: an unsupported architecture is refused
in one line naming the feature (:func:`vitcore.timm_compat.unsupported_features`), and an implausible size
before anything is allocated.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CONFIG, WEIGHTS, Checkpoint, checkpoint_bytes, load_checkpoint, read_member, read_zip_parts
from .errors import VitcoreError, parse_json, read_json_object
from .timm_compat import TimmConversionError, from_timm, unsupported_features

TIMM_PREFIX = "timm:"
MAX_TIMM_PARAMETERS = 1_000_000_000  # ViT-H/14 has 632 M; a config asking for more is refused before it is built
MAX_CONFIG_BYTES = 2**20
CHUNKS_PER_LAYER = 16  # a timm model's MLPs are split into this many neuron chunks per layer (components)


class ModelSourceError(VitcoreError):
    """A model source that does not exist, cannot be read, or names a model this app cannot represent."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ModelSourceError("timm models need timm: pip install timm") from None
    return timm


def _read_config(folder: Path) -> dict:
    return read_json_object(folder / CONFIG, MAX_CONFIG_BYTES, "model config", ModelSourceError)


def source_kind(source: str | Path | None) -> str:
    """``shipped``, ``checkpoint``, ``timm-folder`` or ``timm-name``; a source that is none of them is refused."""
    if source is None:
        return "shipped"
    text = str(source)
    if text.startswith(TIMM_PREFIX):
        return "timm-name"
    path = Path(text)
    if path.is_dir() and (path / CONFIG).is_file():
        config = _read_config(path)
        return "timm-folder" if "architecture" in config and "model" not in config else "checkpoint"
    if path.exists():
        return "checkpoint"
    try:
        if _timm().is_model(text):
            return "timm-name"
    except ModelSourceError:
        pass
    raise ModelSourceError(f"{text}: no such checkpoint file or folder, and not a timm model name")


def load_model(source: str | Path | None = None, weights: str | Path | None = None) -> Checkpoint:
    """The model of ``source`` (see the module's docstring) as a checkpoint; ``weights`` only with a timm name."""
    kind = source_kind(source)
    if weights is not None and kind != "timm-name":
        raise ModelSourceError("a weights file goes with a timm model name (timm:NAME), not with a checkpoint")
    if kind in ("shipped", "checkpoint"):
        return load_checkpoint(source)
    if kind == "timm-folder":
        folder = Path(str(source))
        files = [folder / WEIGHTS] if (folder / WEIGHTS).exists() else list(folder.glob("pytorch_model.bin"))
        return _timm_checkpoint(
            f"local-dir:{folder}",
            None,
            str(folder),
            {"kind": "timm-folder", "path": str(folder), "architecture": _read_config(folder)["architecture"]},
            files[0] if files else None,
        )
    name = str(source).removeprefix(TIMM_PREFIX)
    overlay = None
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise ModelSourceError(f"{weights}: no such weights file")
        overlay = {"file": str(weights)}
    info = {"kind": "timm-name", "name": name, "weights": str(weights) if weights else "timm's pretrained weights"}
    return _timm_checkpoint(name, overlay, f"timm model {name}", info, weights)


def _timm_checkpoint(
    name: str, overlay: dict | None, label: str, source_info: dict, weights_file: Path | None
) -> Checkpoint:
    timm = _timm()
    try:
        with torch.device("meta"):  # the architecture and its size, with nothing allocated
            probe = timm.create_model(name, pretrained=False)
    except (RuntimeError, ValueError, KeyError, TypeError, OSError) as e:
        raise ModelSourceError(f"{label}: timm cannot build it ({_first_line(e)})") from e
    problems = unsupported_features(probe)
    if problems:
        raise ModelSourceError(f"{label} is not supported: it has {'; '.join(problems)}")
    parameters = sum(p.numel() for p in probe.parameters())
    if parameters > MAX_TIMM_PARAMETERS:
        raise ModelSourceError(f"{label}: {parameters:,} parameters, more than the {MAX_TIMM_PARAMETERS:,} allowed")
    if weights_file is not None and weights_file.stat().st_size > 4 * parameters + 2**24:
        raise ModelSourceError(
            f"{weights_file}: {weights_file.stat().st_size:,} bytes, more than {parameters:,} float32 weights need"
        )
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay).eval()
    except Exception as e:  # noqa: BLE001 - any failure of timm's loaders (safetensors, torch.load, the Hub) is one line
        raise ModelSourceError(f"{label}: timm could not load its weights ({_first_line(e)})") from e
    return checkpoint_from_timm(model, source_info)


def read_zip(source: Path | io.BytesIO, label: str) -> tuple[bytes, bytes, str]:
    """``model.safetensors`` and ``config.json`` of an uploaded zip, and its kind: ``checkpoint`` (a vitcore zip) or
    ``timm-folder`` (a timm folder zipped). Every member is refused by its declared size before it is inflated;
    a timm model's weights are bounded again by its parameters when it is built (:func:`load_model`)."""
    try:
        with zipfile.ZipFile(source) as z:
            by_base = {Path(n).name: n for n in z.namelist() if n.count("/") <= 1}
            if CONFIG not in by_base:
                raise ModelSourceError(f"{label} lacks {CONFIG}")
            config = read_member(z, by_base[CONFIG], CONFIG, label)
            parsed = parse_json(config, f"{label}: {CONFIG}", ModelSourceError)
            if not (isinstance(parsed, dict) and "architecture" in parsed and "model" not in parsed):
                weights, config = read_zip_parts(source, label)
                return weights, config, "checkpoint"
            if WEIGHTS not in by_base:
                raise ModelSourceError(f"{label} is a timm model without {WEIGHTS}")
            return read_member(z, by_base[WEIGHTS], WEIGHTS, label), config, "timm-folder"
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelSourceError(f"{label} is not a readable zip ({e})") from e


def timm_classes(model: Any) -> dict[str, list[str]]:
    """The class ids and names of a timm model's outputs: ImageNet's synsets and descriptions for a model whose
    outputs are an ImageNet subset (timm's own mapping), otherwise ``class_0`` … in output order."""
    n = int(model.num_classes)
    try:
        from timm.data.imagenet_info import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        if subset:
            info = ImageNetInfo(subset)
            wnids = list(info.label_names())
            if len(wnids) == n:
                return {"wnids": wnids, "names": [info.index_to_description(i) for i in range(n)]}
    except (ImportError, ValueError, KeyError, AssertionError, OSError):
        pass
    ids = [f"class_{i}" for i in range(n)]
    return {"wnids": ids, "names": list(ids)}


def checkpoint_from_timm(model: Any, source: dict[str, Any]) -> Checkpoint:
    """A supported timm ViT as a checkpoint: the converted model, its classes, its preprocessing (timm's data
    config: input size, interpolation, crop, mean and std) and where it came from."""
    from timm.data.config import resolve_data_config

    side = int(model.patch_embed.img_size[0])  # the model's own size, whatever its pretrained config says
    data = resolve_data_config({"input_size": (3, side, side)}, model=model)
    widths = [blk.mlp.fc1.out_features for blk in model.blocks]
    try:
        vit = from_timm(
            model,
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            chunk_size=max(1, math.ceil(max(widths) / CHUNKS_PER_LAYER)),
        )
    except TimmConversionError as e:
        raise ModelSourceError(str(e)) from e
    preprocessing = {
        "input_size": list(data["input_size"]),
        "interpolation": data.get("interpolation", "bicubic"),
        "crop_pct": float(data.get("crop_pct", 1.0)),
        "crop_mode": data.get("crop_mode", "center"),
        "mean": list(data["mean"]),
        "std": list(data["std"]),
    }
    info: dict[str, Any] = {"classes": timm_classes(model), "source": source, "preprocessing": preprocessing}
    weights, config = checkpoint_bytes(vit, info)
    return Checkpoint(vit, json.loads(config), hashlib.sha256(weights).hexdigest())
