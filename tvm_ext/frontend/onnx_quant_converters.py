"""ONNX converters: quantized ops TVM lacks (QLinearMatMul, ConvInteger ...)."""
from __future__ import annotations

QUANT_CONVERTERS: dict[str, type] = {}
