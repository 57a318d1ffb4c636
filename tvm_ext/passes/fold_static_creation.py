"""FoldStaticCreation: tensor-creation ops with a static result become constants.

Exporters emit `arange`, `full`, `zeros_like` ... for masks and position ids.
With static shapes their values are known at compile time; making them
constants lets FoldConstant fold what depends on them, so the device never
sees creation ops and masks become weights-like constants.
"""
from __future__ import annotations

import numpy as np
from tvm import relax

from tvm_ext.passes.rewrite import constant_folding_pass

_LIKE = {"relax.zeros_like": 0, "relax.ones_like": 1}
_NEW = {"relax.zeros": 0, "relax.ones": 1}


def _scalar(expr):
    """Python value of a constant / PrimValue argument, or None if not static."""
    value = getattr(expr, "value", None)
    for _ in range(2):   # Constant -> runtime tensor, PrimValue -> IntImm/FloatImm -> number
        if hasattr(value, "numpy"):
            return value.numpy().item()
        if isinstance(value, (int, float, bool)):
            return value
        value = getattr(value, "value", None)
    return None


def creation_value(call) -> np.ndarray | None:
    """The value a creation op produces, or None if it is not static."""
    ty = call.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    try:
        shape = tuple(int(d) for d in ty.shape.values)
    except TypeError:
        return None
    dtype = str(ty.dtype)
    name = call.op.name
    if name == "relax.arange":
        start, end, step = (_scalar(a) for a in call.args[:3])
        if None in (start, end, step):
            return None
        return np.arange(start, end, step).astype(dtype).reshape(shape)
    if name in _LIKE or name in _NEW:
        fill = _LIKE.get(name, _NEW.get(name))
    elif name in ("relax.full", "relax.full_like"):
        fill = _scalar(call.args[1])
        if fill is None:
            return None
    else:
        return None
    return np.full(shape, fill, dtype=dtype)


FoldStaticCreation = constant_folding_pass("FoldStaticCreation", lambda call, lookup: creation_value(call))


def static_shape_of(call):
    """shape_of(x) for a statically shaped x is a known shape: return it as a ShapeExpr."""
    if call.op.name != "relax.shape_of":
        return None
    ty = call.args[0].ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    try:
        return relax.ShapeExpr([int(d) for d in ty.shape.values])
    except TypeError:
        return None


# Shape computations (ONNX Shape -> Gather -> Reshape ...) then fold like any constant.
FoldShapeOf = constant_folding_pass("FoldShapeOf", lambda call, lookup: static_shape_of(call))
