"""ONNX ops that create tensors from attributes and shapes: Constant (``value_*`` spellings),
ConstantOfShape, Range, EyeLike and OneHot.  Their shape inputs are constants once imported, so the
results are constants or plain Relax ops."""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import OnnxOpConverter, UnsupportedForm, _const, _const_ints, _dtype, _onnx_dtype_name, _shape


class Constant(_tvm_onnx.Constant):
    """Constant given by ``value_float(s)``/``value_int(s)``/``value_string(s)``.

    TVM only reads the ``value`` tensor attribute; opset >= 12 also allows the
    scalar/list spellings (the suite's ``_expanded`` function bodies use them).
    ONNX types them float32 / int64.
    """

    _SPELLINGS = {"value_float": "float32", "value_floats": "float32",
                  "value_int": "int64", "value_ints": "int64"}  # fmt: skip

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        for key, dtype in cls._SPELLINGS.items():
            if key in attr:
                return _const(np.asarray(attr[key]), dtype)
        if "value_string" in attr or "value_strings" in attr:
            raise UnsupportedForm("string constants are not supported (no string tensors in Relax)")
        return super()._impl_v13(bb, inputs, attr, params)


class ConstantOfShape(OnnxOpConverter):
    """ConstantOfShape whose ``value`` is a 1-element tensor, any output rank.

    TVM broadcasts ``relax.const(value)`` to the requested shape, but ONNX's
    ``value`` attribute is a *1-D, one-element* tensor.  When the requested
    shape is a scalar (an empty shape tensor, as torch's exporter emits for
    BERT's attention-mask arithmetic) ``broadcast_to`` refuses to broadcast a
    rank-1 tensor to rank 0 ("given tensor has ndim 1 while the target shape
    has ndim 0").  It also only folds a constant shape into a constant when the
    output is 1-D.  Here the value is reshaped to a scalar first, and any
    statically known shape becomes a constant tensor (so downstream shape
    arithmetic keeps folding).
    """

    #: above this many elements a static result is built with broadcast_to
    #: instead of being embedded as a constant
    MAX_CONST_ELEMENTS = 1 << 16

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        attr_value = attr.get("value")
        if attr_value is None:
            value = np.zeros((), dtype="float32")
        else:
            value = np.asarray(_tvm_onnx.get_numpy(attr_value))
            if value.size != 1:
                raise ValueError(
                    f"ConstantOfShape 'value' must have exactly one element, got shape {value.shape}"
                )
            value = value.reshape(())
        dtype = str(value.dtype)

        shape = _tvm_onnx.get_constant(inputs[0], params)
        static_shape = None
        if isinstance(shape, tvm.ir.GenericConst):
            static_shape = [int(d) for d in shape.value.numpy().reshape(-1)]
        elif isinstance(shape, relax.ShapeExpr) and all(
            isinstance(d, tirx.IntImm) for d in shape.values
        ):
            static_shape = [int(d) for d in shape.values]

        if static_shape is not None:
            if int(np.prod(static_shape, dtype=np.int64)) <= cls.MAX_CONST_ELEMENTS:
                return relax.const(np.full(static_shape, value, dtype=dtype), dtype)
            return relax.op.broadcast_to(relax.const(value, dtype), relax.ShapeExpr(static_shape))

        if not isinstance(shape, relax.ShapeExpr):
            shape = relax.op.tensor_to_shape(shape)
        return relax.op.broadcast_to(relax.const(value, dtype), shape)


def _static_scalar(x):
    """A static TIR scalar (``T.int64(16)``) as a relax constant; else ``x``."""
    if isinstance(x, (tirx.IntImm, tirx.FloatImm)):
        return relax.const(np.array(x.value, dtype=str(x.ty)), str(x.ty))
    return x


class Range(_tvm_onnx.Range):
    """Range over static scalars taken from a shape is a constant.

    Indexing a static ``Shape`` (``Gather(Shape(x), i)``) yields a TIR integer
    immediate such as ``T.int64(16)``; TVM's Range treats any TIR expression
    as dynamic and emits a symbolic-length ``R.arange`` (``range_len_0``).
    torch's exporter builds BERT's attention mask from such ranges, so the
    mask, and everything broadcast with it, loses its static shape (a later
    ``Expand`` then fails reading ``.value`` of a shape var).  Static
    immediates are turned into constants first so the range folds.
    """

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        fixed = _tvm_onnx.onnx_input([_static_scalar(x) for x in inputs])
        return super()._impl_v12(bb, fixed, attr, params)


class OneHot(OnnxOpConverter):
    """OneHot with runtime ``values`` (TVM wants them constant): negative indices wrap once,
    out-of-range ones match nothing."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        idx, values = inputs[0], inputs[2]
        (depth,) = _const_ints(inputs[1], params, "OneHot depth")[:1]
        rank = len(_shape(idx))
        axis = int(attr.get("axis", -1))
        axis = axis + rank + 1 if axis < 0 else axis
        it = _dtype(idx)
        idx = bb.normalize(relax.op.where(relax.op.less(idx, _const(0, it)),
                                          relax.op.add(idx, _const(depth, it)), idx))
        classes = np.arange(depth).reshape([1] * axis + [depth] + [1] * (rank - axis))
        hit = relax.op.equal(relax.op.expand_dims(idx, axis), _const(classes, it))
        off = bb.normalize(relax.op.take(values, _const(0, "int64"), axis=0))
        on = bb.normalize(relax.op.take(values, _const(1, "int64"), axis=0))
        return relax.op.where(hit, on, off)


class EyeLike(OnnxOpConverter):
    """EyeLike as a constant (its value depends only on the static shape), in ``dtype`` if given."""

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        rows, cols = _shape(inputs[0])
        dtype = _onnx_dtype_name(int(attr["dtype"])) if "dtype" in attr else _dtype(inputs[0])
        return _const(np.eye(rows, cols, int(attr.get("k", 0)), dtype=dtype), dtype)


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "Constant": Constant, "ConstantOfShape": ConstantOfShape, "Range": Range, "OneHot": OneHot, "EyeLike": EyeLike,
}
