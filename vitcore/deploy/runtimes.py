"""A model in the runtime it is deployed with: PyTorch eager, torch.compile, a torch.export program, onnxruntime
(fp32 or int8). Each gives one callable from normalized pixels to logits, and the size of the file it runs from."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import checkpoint_bytes
from ..model import VisionTransformer
from .formats import DeployError, export_program, onnx_model

# runtime -> the format it runs from
RUNTIMES = {
    "pytorch-eager": "safetensors zip",
    "torch-compile": "safetensors zip",
    "torch-export": "torch.export program",
    "onnxruntime-fp32": "ONNX fp32",
    "onnxruntime-int8": "ONNX int8 (dynamic)",
    "onnxruntime-int8-weights": "ONNX int8 (weights only)",
    "onnxruntime-int8-static": "ONNX int8 (static, calibrated)",
}


@dataclass
class Deployed:
    """One model in one runtime."""

    runtime: str
    run: Callable[[Tensor], Tensor]  # normalized pixels [B, 3, H, W] -> logits [B, classes]
    file_bytes: int  # size of what the runtime loads (the weights file, the program, the ONNX graph)


def _ort_session(data: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def run(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(["logits"], {"pixels": np.ascontiguousarray(x.numpy())})[0])

    return run


def _torch_runner(fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def run(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return fn(x)

    return run


def deploy(model: VisionTransformer, runtime: str, threads: int = 1, calibration: Tensor | None = None) -> Deployed:
    """``model`` made ready to run in ``runtime`` (see ``RUNTIMES``); the model itself is not changed.

    ``calibration``: normalized pixels for static int8 quantization."""
    if runtime not in RUNTIMES:
        raise DeployError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if model.training:
        raise DeployError("deploy a model in eval mode")
    if runtime == "pytorch-eager":
        return Deployed(runtime, _torch_runner(model), len(checkpoint_bytes(model, {})[0]))
    if runtime == "torch-compile":
        compiled = torch.compile(model, dynamic=False)
        return Deployed(runtime, _torch_runner(compiled), len(checkpoint_bytes(model, {})[0]))
    if runtime == "torch-export":
        data = export_program(model)
        program = torch.export.load(io.BytesIO(data)).module()  # our own program, just written
        return Deployed(runtime, _torch_runner(program), len(data))
    quantize = None if runtime == "onnxruntime-fp32" else runtime.removeprefix("onnxruntime-")
    data = onnx_model(model, quantize, calibration)
    return Deployed(runtime, _ort_session(data, threads), len(data))
