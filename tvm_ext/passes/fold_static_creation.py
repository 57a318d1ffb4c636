"""FoldStaticCreation: tensor-creation ops with a static result become constants.

Exporters emit `arange`, `full`, `zeros_like` ... for masks and position ids.
With static shapes their values are known at compile time; making them
constants lets FoldConstant fold what depends on them, so the device never
sees creation ops and masks become weights-like constants.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

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


@mutator
class _Folder(PyExprMutator):
    def __init__(self, mod):
        super().__init__(mod)
        self.mod = mod

    def visit_call_(self, call):
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.Op):
            value = creation_value(call)
            if value is not None:
                return relax.const(value, str(value.dtype))
        return call

    def run(self):
        for gv, func in self.mod.functions.items():
            if isinstance(func, relax.Function):
                self.builder_.update_func(gv, self.visit_expr(func))
        return self.builder_.get()


@tvm.transform.module_pass(opt_level=0, name="FoldStaticCreation")
class FoldStaticCreation:
    def transform_module(self, mod, ctx):
        return _Folder(mod).run()
