"""Export of a (pruned, fine-tuned) model: checkpoint zip with provenance, and ONNX."""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import zip_bytes
from ..model import VisionTransformer
from .standalone import PREDICT_PY


def provenance(
    base_sha256: str,
    method: str | None,
    classes: list[str],
    corruption: str | None,
    setting: dict[str, Any],
    kept: list[str],
    finetuned: bool,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record an exported config.json carries."""
    return {
        "base_sha256": base_sha256,
        "method": method,
        "classes": classes,
        "corruption": corruption,
        "setting": setting,
        "kept_components": kept,
        "finetuned": finetuned,
        **extra,
    }


def export_zip(
    model: VisionTransformer, info: dict[str, Any], path: str | Path | None = None, standalone: bool = True
) -> bytes:
    """The checkpoint zip (``model.safetensors`` + ``config.json``); with ``standalone``, also ``model.onnx`` and
    ``predict.py``, which runs it with onnxruntime alone. Written to ``path`` if given."""
    data = zip_bytes(model, info)
    if standalone:
        buf = io.BytesIO(data)
        with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("model.onnx", onnx_bytes(model))
            z.writestr("predict.py", PREDICT_PY)
        data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def onnx_bytes(model: VisionTransformer, opset: int = 18, exporter: str = "dynamo") -> bytes:
    """ONNX graph of ``model`` with a dynamic batch dimension.

    ``exporter="dynamo"``: torch.export's exporter with onnxscript's optimizer, far fewer nodes than the
    TorchScript exporter (constant attention scales, no shape arithmetic), which is what a batch-1 forward in
    onnxruntime spends its time on besides the matrix products (docs/results/deploy.md); it falls back to the
    TorchScript exporter, whose node names follow the module paths (``/blocks.3/mlp/fc2/MatMul``)."""
    if model.training:
        raise ValueError("export a model in eval mode (dropout and drop path would be traced)")
    cfg = model.config
    x = torch.randn(2, cfg.in_chans, cfg.image_size, cfg.image_size)
    if exporter == "torchscript":
        return _torchscript_onnx(model, x, opset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model,
                (x,),
                input_names=["pixels"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                opset_version=opset,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
            if program is not None:
                return program.model_proto.SerializeToString()
        except Exception:  # an exporter failure falls back to the TorchScript exporter below
            pass
    return _torchscript_onnx(model, x, opset)


def _torchscript_onnx(model: VisionTransformer, x: torch.Tensor, opset: int) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            buf,  # pyright: ignore[reportArgumentType]  (a file object is accepted, as torch.onnx.export documents)
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buf.getvalue()


def export_onnx(model: VisionTransformer, path: str | Path | None = None) -> bytes:
    data = onnx_bytes(model)
    if path is not None:
        Path(path).write_bytes(data)
    return data


def onnx_logits(data: bytes, pixels: torch.Tensor) -> torch.Tensor:
    """Run an exported ONNX model with onnxruntime on normalized pixels."""
    import onnxruntime as ort

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(["logits"], {"pixels": pixels.numpy()})[0])
