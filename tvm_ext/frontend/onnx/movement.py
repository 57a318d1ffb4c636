"""ONNX data-movement ops TVM 0.27 gets wrong or lacks: Concat of shapes and tensors, Pad and Tile
as high-level Relax ops (not opaque ``call_tir``), ReverseSequence, and the cumulative ops along an
axis (CumSum, CumProd)."""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import OnnxOpConverter, _const, _const_ints, _shape, _shape_to_tensor


class Concat(_tvm_onnx.Concat):
    """Concat of a mix of shape values (``Shape`` outputs) and int64 tensors.

    TVM concatenates shapes as shapes only when *every* input is shape-like;
    otherwise it hands the ShapeExprs to ``relax.concat`` unchanged, which
    refuses them.  Shapes become int64 tensors first (constants when static).
    """

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        shapes = [isinstance(x, relax.Expr) and isinstance(x.ty, relax.ShapeType) for x in inputs]
        if any(shapes) and not all(shapes):
            fixed = [bb.normalize(_shape_to_tensor(x)) if s else x for x, s in zip(inputs, shapes)]
            if all(isinstance(x, tvm.ir.GenericConst) for x in fixed):
                arrays = [x.value.numpy() for x in fixed]
                return relax.const(np.concatenate(arrays, axis=attr.get("axis", 0)))
            return relax.op.concat(fixed, axis=attr.get("axis", 0))
        return super()._impl_v13(bb, inputs, attr, params)


class Pad(_tvm_onnx.Pad):
    """Pad as ``R.nn.pad`` instead of ``topi.nn.*pad`` through ``emit_te``.

    Same parsing of pads/axes/value as TVM; ONNX modes map to Relax's
    ``constant``/``reflect``/``replicate`` (edge)/``circular`` (wrap).
    Negative pads (cropping) keep TVM's lowering.
    """

    _MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}

    @classmethod
    def _relax_pad(cls, x, pad_before, pad_after, mode, value):
        if min(pad_before + pad_after, default=0) < 0:
            return None
        width = [int(v) for pair in zip(pad_before, pad_after) for v in pair]
        return relax.op.nn.pad(x, width, pad_mode=cls._MODES[mode], pad_value=float(value))

    @classmethod
    def _lower_pad(cls, bb, inputs, attr, params, allowed_modes):
        pad_before, pad_after, value = cls._parse_pads_and_axes(inputs, params)
        mode = attr.get("mode", b"constant").decode("utf-8")
        if mode in allowed_modes and mode in cls._MODES:
            out = cls._relax_pad(inputs[0], pad_before, pad_after, mode, value)
            if out is not None:
                return out
        return super()._lower_pad(bb, inputs, attr, params, allowed_modes)

    @classmethod
    def _impl_v2(cls, bb, inputs, attr, params):
        pads = list(attr.get("pads", ()))
        mode = attr.get("mode", b"constant").decode("utf-8")
        value = attr.get("value", 0.0)
        half = len(pads) // 2
        if mode in ("constant", "reflect", "edge"):
            out = cls._relax_pad(inputs[0], pads[:half], pads[half:], mode, value)
            if out is not None:
                return out
        return super()._impl_v2(bb, inputs, attr, params)


class Tile(_tvm_onnx.Tile):
    """Tile with constant repeats as ``R.tile`` instead of ``topi.tile`` via
    ``emit_te`` (opaque ``call_tir``)."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        reps = _tvm_onnx.get_constant(inputs[1], params)
        if isinstance(reps, tvm.ir.GenericConst):
            return relax.op.tile(inputs[0], [int(r) for r in reps.value.numpy().reshape(-1)])
        return super()._impl_v13(bb, inputs, attr, params)


class ReverseSequence(OnnxOpConverter):
    """Reverse the first ``sequence_lens[b]`` steps of every batch entry:
    a gather along the time axis with index ``len - 1 - t`` where ``t < len``."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        data, lens = inputs[0], inputs[1]
        shape = _shape(data)
        batch_axis, time_axis = int(attr.get("batch_axis", 1)), int(attr.get("time_axis", 0))
        steps = shape[time_axis]
        t_shape = [1] * len(shape)
        t_shape[time_axis] = steps
        b_shape = [1] * len(shape)
        b_shape[batch_axis] = shape[batch_axis]
        t = _const(np.arange(steps).reshape(t_shape), "int64")
        n = bb.normalize(relax.op.reshape(relax.op.astype(lens, "int64"), b_shape))
        rev = relax.op.subtract(relax.op.subtract(n, _const(1, "int64")), t)
        idx = relax.op.where(relax.op.less(t, n), rev, t)
        idx = bb.normalize(relax.op.broadcast_to(idx, shape))
        return relax.op.gather_elements(data, idx, axis=time_axis)


class CumSum(OnnxOpConverter):
    """CumSum / CumProd with ``exclusive`` and ``reverse`` as Relax scans (reverse = flip, scan, flip;
    TVM's CumSum reverses through an opaque TIR function and there is no CumProd converter)."""

    scan = staticmethod(relax.op.cumsum)

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x = inputs[0]
        (axis,) = _const_ints(inputs[1], params, f"{cls.__name__} axis")[:1]
        axis %= len(_shape(x))
        reverse = bool(attr.get("reverse", 0))
        if reverse:
            x = bb.normalize(relax.op.flip(x, axis))
        out = bb.normalize(cls.scan(x, axis, exclusive=bool(attr.get("exclusive", 0))))
        return relax.op.flip(out, axis) if reverse else out


class CumProd(CumSum):
    scan = staticmethod(relax.op.cumprod)


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "Concat": Concat, "Pad": Pad, "Tile": Tile, "ReverseSequence": ReverseSequence, "CumSum": CumSum,
    "CumProd": CumProd,
}
