"""ONNX converters: LinearAttention and CausalConvWithState (opset 27)."""
from __future__ import annotations

LINEAR_ATTENTION_CONVERTERS: dict[str, type] = {}
