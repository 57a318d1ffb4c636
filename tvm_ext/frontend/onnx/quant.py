"""ONNX converters: quantized ops TVM lacks (QLinearMatMul, QLinearConv, ConvInteger).

All three follow ONNX's reference implementation: the quantized operands are
widened to int32 and their zero points subtracted first, so the matmul or
convolution is exact integer arithmetic (int32 accumulation); QLinear* ops then
requantize, ``y = saturate(round_half_even(acc * a_scale * b_scale / y_scale) + y_zp)``.
The requantization is computed in float32 with float16 / bfloat16 scales widened
first, as onnxruntime does.  (numpy's reference multiplies in float64 and, for
float16 scales, forms the scale ratio in float16; it can differ by one step near
ties, onnxruntime and this converter agree exactly.)  TVM 0.27's MatMulInteger
is correct and kept.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import OnnxOpConverter, UnsupportedForm, _const, _dtype, _shape, explicit_pads

#: integer element types of quantized tensors (the float8 types of opset 21 are not supported)
_QUANT_DTYPES = ("int8", "uint8")


def _check_quant(op: str, what: str, x) -> None:
    if _dtype(x) not in _QUANT_DTYPES:
        raise UnsupportedForm(f"{op}: {what} has dtype {_dtype(x)}; only int8 and uint8 are supported")


def _along(bb, t, rank: int, axis: int, op: str, what: str):
    """A per-axis 1-D scale / zero point ``t`` (length > 1) reshaped to broadcast along
    ``axis`` of a rank-``rank`` tensor.  Scalars, 1-element tensors and N-D tensors
    (already in broadcasting shape, e.g. ``[D1, D2, M, 1]``) are returned unchanged."""
    shape = _shape(t)
    if len(shape) != 1 or shape[0] == 1:
        return t
    if not -rank <= axis < rank:
        raise UnsupportedForm(f"{op}: {what} of shape {shape} is per-axis but its tensor has rank {rank}")
    new = [1] * rank
    new[axis] = shape[0]
    return bb.normalize(relax.op.reshape(t, new))


def _centered(bb, q, zero_point, rank: int, axis: int, op: str, what: str):
    """``int32(q) - int32(zero_point)``: the quantized value around its zero point (exact)."""
    q = bb.normalize(relax.op.astype(q, "int32"))
    if zero_point is None:
        return q
    zp = bb.normalize(relax.op.astype(zero_point, "int32"))
    return bb.normalize(relax.op.subtract(q, _along(bb, zp, rank, axis, op, what)))


def _float32(bb, x):
    return x if _dtype(x) == "float32" else bb.normalize(relax.op.astype(x, "float32"))


def _requantize(bb, acc, multiplier, y_zero_point, out_dtype: str):
    """``saturate(round_half_even(acc * multiplier) + y_zero_point)`` in ``out_dtype``.

    ``relax.op.round`` is ties-to-even (TVM's ``topi.round``), as the ONNX spec asks.
    Adding the integer zero point after rounding equals rounding after adding it."""
    y = bb.normalize(relax.op.round(relax.op.multiply(_float32(bb, acc), multiplier)))
    if y_zero_point is not None:
        y = bb.normalize(relax.op.add(y, _float32(bb, y_zero_point)))
    info = np.iinfo(out_dtype)
    y = relax.op.minimum(relax.op.maximum(y, _const(info.min, "float32")), _const(info.max, "float32"))
    return relax.op.astype(bb.normalize(y), out_dtype)


def _scale_ratio(bb, x_scale, w_scale, y_scale):
    """``x_scale * w_scale / y_scale`` in float32 (float16 / bfloat16 scales widened first)."""
    ratio = relax.op.multiply(_float32(bb, x_scale), _float32(bb, w_scale))
    return bb.normalize(relax.op.divide(ratio, _float32(bb, y_scale)))


class QLinearMatMul(OnnxOpConverter):
    """QLinearMatMul (opset 10/21): ``(a - a_zp) @ (b - b_zp)`` in int32, requantized.

    Scales / zero points are per tensor, or per row of ``a`` (``[M]`` or
    ``[..., M, 1]``) and per column of ``b`` (``[N]`` or ``[..., 1, N]``)."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = inputs[:8]
        _check_quant("QLinearMatMul", "a", a)
        _check_quant("QLinearMatMul", "b", b)
        out_dtype = _dtype(y_zp) if y_zp is not None else _dtype(a)
        if out_dtype not in _QUANT_DTYPES:
            raise UnsupportedForm(f"QLinearMatMul: y_zero_point has dtype {out_dtype}; only int8 and uint8 are supported")
        ra, rb = len(_shape(a)), len(_shape(b))
        a_scale = _along(bb, a_scale, ra, -2, "QLinearMatMul", "a_scale")
        b_scale = _along(bb, b_scale, rb, -1, "QLinearMatMul", "b_scale")
        acc = relax.op.matmul(_centered(bb, a, a_zp, ra, -2, "QLinearMatMul", "a_zero_point"),
                              _centered(bb, b, b_zp, rb, -1, "QLinearMatMul", "b_zero_point"),
                              out_dtype="int32")
        ratio = _scale_ratio(bb, a_scale, b_scale, y_scale)
        return _requantize(bb, bb.normalize(acc), ratio, y_zp, out_dtype)


def _conv_int32(bb, op: str, x, w, bias, attr):
    """Convolution of int32 tensors with int32 accumulation, through TVM's Conv converter
    (``pads``, ``strides``, ``dilations``, ``group``; ``auto_pad`` resolved first, as for Conv).
    Padding inserts zeros, which is right here: x is already centred on its zero point."""
    attr = explicit_pads("Conv", attr, _shape(x), _shape(w))
    return bb.normalize(_tvm_onnx.Conv._impl_v11(bb, [x, w, bias], attr, None))


class ConvInteger(OnnxOpConverter):
    """ConvInteger (opset 10): int32 ``conv(x - x_zp, w - w_zp)``; ``w_zp`` per tensor or
    per output channel (``[M]``)."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, w, x_zp, w_zp = inputs[0], inputs[1], inputs[2], inputs[3]
        _check_quant("ConvInteger", "x", x)
        _check_quant("ConvInteger", "w", w)
        rank = len(_shape(w))
        xc = _centered(bb, x, x_zp, rank, 1, "ConvInteger", "x_zero_point")
        wc = _centered(bb, w, w_zp, rank, 0, "ConvInteger", "w_zero_point")
        return _conv_int32(bb, "ConvInteger", xc, wc, None, attr)


class QLinearConv(OnnxOpConverter):
    """QLinearConv (opset 10): int32 ``conv(x - x_zp, w - w_zp) + B``, requantized; ``w``'s
    scale / zero point per tensor or per output channel, ``B`` int32 with scale
    ``x_scale * w_scale`` (so it is added to the accumulator as is)."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp = inputs[:8]
        bias = inputs[8] if len(inputs) > 8 else None
        _check_quant("QLinearConv", "x", x)
        _check_quant("QLinearConv", "w", w)
        out_dtype = _dtype(y_zp) if y_zp is not None else _dtype(x)
        rank = len(_shape(w))
        xc = _centered(bb, x, x_zp, rank, 1, "QLinearConv", "x_zero_point")
        wc = _centered(bb, w, w_zp, rank, 0, "QLinearConv", "w_zero_point")
        if bias is not None and _dtype(bias) != "int32":
            bias = bb.normalize(relax.op.astype(bias, "int32"))
        acc = _conv_int32(bb, "QLinearConv", xc, wc, bias, attr)
        w_scale = _along(bb, w_scale, rank, 1, "QLinearConv", "w_scale")
        return _requantize(bb, acc, _scale_ratio(bb, x_scale, w_scale, y_scale), y_zp, out_dtype)


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "QLinearMatMul": QLinearMatMul,
    "QLinearConv": QLinearConv,
    "ConvInteger": ConvInteger,
}
