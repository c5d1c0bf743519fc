"""Export formats beyond the checkpoint zip: ONNX (fp32 or int8 through onnxruntime's quantizer) and a
``torch.export`` program."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from ..errors import VitcoreError
from ..model import VisionTransformer
from ..pruning.export import onnx_bytes

# int8: dynamic (weights int8 per channel, activations quantized per batch at run time; the MLPs' output projections,
#   which read GELU's long-tailed outputs, stay fp32); int8-weights: weight-only int8 in blocks of 32 (MatMulNBits),
#   activations fp32 until the int8 kernels; int8-static: QDQ calibrated on discovery images. Their accuracy and speed
#   on the shipped model: docs/results/deploy.md.
QUANTIZE_MODES = ("int8", "int8-weights", "int8-static")
SENSITIVE = ("/mlp/fc2/",)  # ONNX node names (from the module paths) kept in fp32 by int8 and int8-static


class DeployError(VitcoreError):
    """A model or setting that cannot be exported or run in the asked format."""


def _check_exportable(model: VisionTransformer) -> None:
    cfg = model.config
    if sum(cfg.heads) == 0 and sum(cfg.mlp_widths) == 0:
        raise DeployError(
            "every head and every MLP neuron is pruned: the model's output no longer depends on the image; "
            "keep at least one component"
        )


def onnx_model(model: VisionTransformer, quantize: str | None = None, calibration: Tensor | None = None) -> bytes:
    """The model as ONNX (input ``pixels``, output ``logits``, dynamic batch), fp32 or quantized to int8.

    ``quantize``: one of ``QUANTIZE_MODES``; ``"int8-static"`` is calibrated on ``calibration``, normalized
    pixels ``[N, 3, H, W]`` (the discovery images, say)."""
    _check_exportable(model)
    if quantize is None:
        return onnx_bytes(model)
    # the quantizer reads node names (SENSITIVE), which the TorchScript exporter takes from the module paths
    return quantize_onnx(onnx_bytes(model, exporter="torchscript"), quantize, calibration)


def _calibration_reader(pixels: Tensor, batch: int = 32):
    """onnxruntime's calibration reader over normalized pixels, a batch at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"pixels": pixels[i : i + batch].numpy()} for i in range(0, len(pixels), batch)])

        def get_next(self):
            return next(self._batches, None)

    return Reader()


def quantize_onnx(data: bytes, mode: str = "int8", calibration: Tensor | None = None) -> bytes:
    """An fp32 ONNX graph quantized with onnxruntime's quantizer (weights int8, per output channel)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if mode not in QUANTIZE_MODES:
        raise DeployError(f"unknown quantization {mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    if mode == "int8-static" and (calibration is None or len(calibration) == 0):
        raise DeployError("static int8 quantization needs calibration images")
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quant_pre_process(src, pre, skip_symbolic_shape=True)  # shape inference and graph clean-up first, as advised
        proto = onnx.load(str(pre))
        keep_fp32 = [n.name for n in proto.graph.node if any(k in n.name for k in SENSITIVE)]
        if mode == "int8":
            quantize_dynamic(pre, out, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep_fp32)
        elif mode == "int8-weights":
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            quantizer = MatMulNBitsQuantizer(proto, bits=8, block_size=32, is_symmetric=True, accuracy_level=4)
            quantizer.process()
            quantized: onnx.ModelProto = quantizer.model.model  # pyright: ignore[reportAttributeAccessIssue]  (an ONNXModel)
            onnx.save(quantized, str(out))
        else:
            assert calibration is not None
            quantize_static(
                pre,
                out,
                _calibration_reader(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=keep_fp32,
            )
        return out.read_bytes()


def export_program(model: VisionTransformer) -> bytes:
    """The model as a ``torch.export`` program (``torch.export.save`` format) with a dynamic batch dimension."""
    _check_exportable(model)
    cfg = model.config
    x = torch.randn(2, cfg.in_chans, cfg.image_size, cfg.image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    if model.training:
        raise DeployError("export a model in eval mode (dropout and drop path would be traced)")
    with torch.no_grad():
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()
