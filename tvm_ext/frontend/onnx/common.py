"""Shared helpers of the ONNX converters: the bottom of :mod:`tvm_ext.frontend.onnx`.

Every converter module (one per op family) imports from here and from nowhere else in
the package; :mod:`.registry` merges their ``CONVERTERS`` tables over TVM's map.  This
module holds the converter base class, :class:`UnsupportedForm` (a refusal made on
purpose), the constant/shape/dtype helpers, and the running-importer hook the
subgraph converters (Scan, Loop) use.  Shapes are static here (forge_fe imports with
concrete input shapes), so masks and index tables that depend only on shapes are built
with numpy as constants.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

OnnxOpConverter = _tvm_onnx.OnnxOpConverter


class UnsupportedForm(ValueError):
    """A converter refuses this instance of its op on purpose (a run-time value where forge_fe
    compiles a constant, an attribute value it does not implement): reported as a forge_fe
    limitation naming the node, not as a TVM importer bug."""


def _shape(x) -> list[int]:
    return [int(d) for d in x.ty.shape.values]


def _dtype(x) -> str:
    return str(x.ty.dtype)


def _const(value, dtype: str):
    return relax.const(np.asarray(value, dtype=dtype), dtype)


def _onnx_dtype_name(elem_type: int) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))


def _const_ints(expr, params, what: str) -> list[int]:
    value = _tvm_onnx.get_constant(expr, params)
    if isinstance(value, tvm.ir.GenericConst):
        return [int(v) for v in value.value.numpy().reshape(-1)]
    if isinstance(value, relax.ShapeExpr) and all(isinstance(d, tirx.IntImm) for d in value.values):
        return [int(d) for d in value.values]
    raise UnsupportedForm(f"{what} must be a constant (it decides the output shape)")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shape_to_tensor(value):
    """A shape value as an int64 tensor: a constant if it is static."""
    if isinstance(value, relax.ShapeExpr) and all(
        isinstance(v, tirx.IntImm) for v in value.values
    ):
        return relax.const(np.array([int(v) for v in value.values], dtype="int64"), "int64")
    return relax.op.shape_to_tensor(value)


def explicit_pads(op: str, attr, x_shape, w_shape):
    """``attr`` with ``auto_pad`` resolved into explicit ``pads`` (shapes are static).

    TVM's Conv converter pads SAME_UPPER / SAME_LOWER through an opaque ``call_tir``
    that neither the device nor forge_fe's CPU fallback can run.  SAME pads a total of
    ``max((ceil(in / s) - 1) * s + (k - 1) * d + 1 - in, 0)``, the odd one at the end
    (SAME_UPPER) or the beginning (SAME_LOWER)."""
    attr = dict(attr)
    mode = attr.pop("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode == "NOTSET":
        return attr
    spatial = x_shape[2:]
    d = len(spatial)
    kernel = list(attr.get("kernel_shape", w_shape[2:]))
    strides, dilations = list(attr.get("strides", [1] * d)), list(attr.get("dilations", [1] * d))
    if mode == "VALID":
        attr["pads"] = [0] * (2 * d)
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max((-(-size // s) - 1) * s + (k - 1) * dil + 1 - size, 0)
                  for size, k, s, dil in zip(spatial, kernel, strides, dilations)]
        small = [t // 2 for t in totals]
        begin = small if mode == "SAME_UPPER" else [t - b for t, b in zip(totals, small)]
        attr["pads"] = begin + [t - b for t, b in zip(totals, begin)]
    else:
        raise UnsupportedForm(f"{op}: attribute auto_pad={mode!r} (expected NOTSET, SAME_UPPER, SAME_LOWER or VALID)")
    return attr


#: the importers whose ``from_onnx`` is running, innermost last (imports are
#: serialized by ``_LOCK``, so one list serves every thread)
_RUNNING_IMPORTERS: list = []


def running_importer():
    """The ``ONNXGraphImporter`` currently importing (see :func:`records_running_importer`)."""
    if not _RUNNING_IMPORTERS:
        raise RuntimeError("no ONNX import is running under patched_convert_map")
    return _RUNNING_IMPORTERS[-1]
