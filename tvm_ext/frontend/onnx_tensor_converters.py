"""ONNX converters: tensor ops TVM lacks (BitCast, Det, Col2Im, TensorScatter, DeformConv)."""
from __future__ import annotations

TENSOR_CONVERTERS: dict[str, type] = {}
