"""ONNX converters: Scan and Loop with static trip counts, unrolled."""
from __future__ import annotations

SCAN_CONVERTERS: dict[str, type] = {}
