"""Deploying a (pruned) model: int8 ONNX, torch.export programs, runtimes, the deployment table, a standalone script."""

from .formats import QUANTIZE_MODES, DeployError, export_program, onnx_model, quantize_onnx
from .runtimes import RUNTIMES, Deployed, deploy

__all__ = [
    "QUANTIZE_MODES",
    "RUNTIMES",
    "DeployError",
    "Deployed",
    "deploy",
    "export_program",
    "onnx_model",
    "quantize_onnx",
]
