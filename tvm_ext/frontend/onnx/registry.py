"""The ONNX op table: op_type -> converter class, our converter modules merged over TVM's map.

The top of the package's converter side: it imports every converter module (one per op
family, each exporting ``CONVERTERS``) and nothing imports it but :mod:`.patch`, which
installs the merged table into TVM's importer for one import.  The tables are read on every
call, so a test can swap one converter in a family's table.  Two families claiming one op
is a bug, refused here.
"""

from __future__ import annotations

from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from . import (
    attention, creation, elementwise, linear_attention, movement, normalization, quant, rnn, scan, signal,
    spatial, tensor,
)

#: converter modules, one per op family
FAMILIES = (creation, elementwise, movement, normalization, tensor, spatial, attention, linear_attention, rnn,
            scan, signal, quant)

_ORIGINAL_GET_CONVERT_MAP = _tvm_onnx._get_convert_map


def convert_map() -> dict:
    """TVM's converter map with our converters over it (unguarded)."""
    merged = dict(_ORIGINAL_GET_CONVERT_MAP())
    ours: dict[str, str] = {}
    for family in FAMILIES:
        for op_type, converter in family.CONVERTERS.items():
            if op_type in ours:
                raise AssertionError(f"ONNX op {op_type} has converters in {ours[op_type]} and {family.__name__}")
            ours[op_type] = family.__name__
            merged[op_type] = converter
    return merged
