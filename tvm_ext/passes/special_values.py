"""SpecialValueForms: ops whose TVM lowering mishandles NaN / Inf become forms that follow the frameworks.

* ``argmax`` / ``argmin`` on floats: TVM's reduction compares with ``>`` / ``<``, which a NaN
  never wins, so a NaN is skipped. torch, numpy and onnxruntime return the index of the first
  NaN. Rewritten as ``where(any(isnan(x)), argmax(isnan(x)), argmax(x))`` along the same axis.
* ``argmax`` / ``argmin`` of any dtype: TVM's reduction starts from (-1, the dtype's lowest /
  highest value), so a slice that is all -inf (argmax) or all +inf (argmin), or all INT_MIN /
  INT_MAX, never beats it and returns index -1. The frameworks return the first index, 0:
  ``maximum(argmax(x), 0)``.
* ``topk`` with ``k = 1`` on floats (torch's ``max(dim)`` / ``min(dim)``): TVM's sort does not
  order NaN, so the NaN-free maximum came back. torch's max(dim) returns NaN and its index when a
  NaN is present: rewritten as ``max(x)`` (the device's reduction propagates NaN) with the
  NaN-aware argmax above.
* ``floor_mod`` on floats (torch ``remainder``, TF ``FloorMod``): TVM lowers it to
  ``x - floor(x / y) * y``, which is NaN for an infinite divisor, and loses every digit when
  ``x / y`` is large. torch and TF compute ``r = fmod(x, y)`` (exact), then ``r + y`` where
  a nonzero ``r`` has the other sign than ``y``; so does this form (``relax.mod`` is C fmod).

Both stay on the CPU as before (the device has no argmax or fmod).
"""
from __future__ import annotations

from tvm import relax

from tvm_ext.passes.rewrite import constant_folding_pass


def _is_float(expr) -> bool:
    ty = expr.ty
    return isinstance(ty, relax.TensorType) and str(ty.dtype).startswith(("float", "bfloat"))


def _const(value, dtype):
    import numpy as np
    return relax.const(np.array(value, dtype=dtype), dtype)


def nan_first_arg_extremum(call):
    x = call.args[0]
    axis = None if call.attrs.axis is None else int(call.attrs.axis)
    keep = bool(call.attrs.keepdims)
    # -1: nothing beat the start value (relax's argmax/argmin give int64)
    index = relax.op.maximum(call, _const(0, str(getattr(call.ty, "dtype", "int64"))))
    if not _is_float(x):
        return index
    nan = relax.op.astype(relax.op.isnan(x), "int32")
    first_nan = relax.op.argmax(nan, axis, keep)          # first index of the largest: the first NaN
    any_nan = relax.op.greater(relax.op.max(nan, axis, keep), _const(0, "int32"))
    return relax.op.where(any_nan, first_nan, index)


def top1_as_extremum(call):
    a = call.attrs
    if int(a.k) != 1:
        return None
    x, axis, largest = call.args[0], int(a.axis), bool(a.largest)
    value = (relax.op.max if largest else relax.op.min)(x, axis, True)
    arg = relax.op.argmax(x, axis, True) if largest else relax.op.argmin(x, axis, True)
    index = relax.op.astype(nan_first_arg_extremum(arg), str(a.dtype))
    parts = {"both": lambda: relax.Tuple([value, index]), "values": lambda: value, "indices": lambda: index}
    return parts[str(a.ret_type)]()


def fmod_based_floor_mod(call):
    x, y = call.args
    dtype = str(x.ty.dtype)
    zero = _const(0, dtype)
    r = relax.op.mod(x, y)
    other_sign = relax.op.logical_and(relax.op.not_equal(r, zero),
                                      relax.op.not_equal(relax.op.less(r, zero), relax.op.less(y, zero)))
    return relax.op.where(other_sign, relax.op.add(r, y), r)


RULES = {
    "relax.argmax": nan_first_arg_extremum,
    "relax.argmin": nan_first_arg_extremum,
    "relax.topk": top1_as_extremum,
    "relax.floor_mod": fmod_based_floor_mod,
}


#: rules that apply to integer operands too
ANY_DTYPE = {"relax.argmax", "relax.argmin"}


def special_value_form(call, lookup):
    rule = RULES.get(call.op.name)
    if rule is None or not (_is_float(call.args[0]) or call.op.name in ANY_DTYPE):
        return None
    return rule(call)


SpecialValueForms = constant_folding_pass("SpecialValueForms", special_value_form)
