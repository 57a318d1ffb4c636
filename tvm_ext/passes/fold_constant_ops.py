"""FoldConstantOps: evaluate Relax calls whose inputs are all constants with the Forge op's golden rule.

TVM's FoldConstant legalizes and builds each such call through LLVM (tens of
milliseconds per op); masks and position ids in a BERT have dozens of them. The
op registry already holds a reference implementation of every device op, so we
evaluate with it; whatever it doesn't cover is left for TVM's FoldConstant.
"""
from __future__ import annotations

import numpy as np
import torch
import tvm
from tvm import relax

from forge_fe.op import RELAX_TO_OP, NotOnDevice
from tvm_ext.passes.rewrite import constant_folding_pass


def _is_const(a) -> bool:
    return isinstance(a, tvm.ir.expr.Constant)


def _resolve(arg, lookup):
    """The constant an argument is, directly or through a variable bound to one; else None."""
    if _is_const(arg):
        return arg
    bound = lookup(arg) if isinstance(arg, relax.Var) else None
    return bound if _is_const(bound) else None


def _static_shape(arg, lookup):
    """The static ShapeExpr an argument is, directly or through a variable bound to one; else None."""
    if isinstance(arg, relax.Var):
        arg = lookup(arg)
    if isinstance(arg, relax.ShapeExpr) and all(isinstance(v, tvm.ir.prim.expr.IntImm) for v in arg.values):
        return arg
    return None


def _tensor_args(call) -> list:
    """The call's tensor arguments, the fields of a tuple argument included (index_tensor's indices)."""
    out = []
    for a in call.args:
        if isinstance(a.ty, relax.TensorType):
            out.append(a)
        elif isinstance(a, relax.Tuple):
            out.extend(f for f in a.fields if isinstance(f.ty, relax.TensorType))
    return out


def _const_args(call, lookup) -> bool:
    """Every tensor argument is a constant and every shape argument static (and there is one)."""
    tensors = _tensor_args(call)
    shapes = [a for a in call.args if isinstance(a.ty, relax.ShapeType)]
    if not tensors and not shapes:
        return False
    return all(_resolve(a, lookup) is not None for a in tensors) and \
        all(_static_shape(a, lookup) is not None for a in shapes)


def _cumsum(args, call):
    a = call.attrs
    x = args[0].astype(str(call.ty.dtype))
    axis = None if a.axis is None else int(a.axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if a.exclusive:
        out = out - x if axis is not None else out - x.reshape(-1)
    return out


# Ops with no Forge op that exporters still apply to constants (position ids, masks).
# fn(tensor argument values, call); a tuple argument (index_tensor's indices) arrives as a list.
HOST_EVAL = {
    "relax.gather_elements": lambda args, call: np.take_along_axis(args[0], args[1], axis=int(call.attrs.axis)),
    "relax.cumsum": _cumsum,
    "relax.index_tensor": lambda args, call: args[0][tuple(args[1])],
}
# ... and ops on static shapes: fn(call, lookup).
SHAPE_EVAL = {
    "relax.shape_to_tensor": lambda call, lookup: np.array(
        [int(v) for v in _static_shape(call.args[0], lookup).values], dtype="int64"),
}


#: numpy dtypes torch.from_numpy accepts
_TORCH_NUMPY_DTYPES = {"float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool",
                       "complex64", "complex128", "uint16", "uint32", "uint64"}


def fold_value(call, lookup) -> np.ndarray | None:
    """The value of `call` if all its tensor inputs are constants and a Forge op can evaluate it."""
    if not isinstance(call.op, tvm.ir.Op) or not isinstance(call.ty, relax.TensorType):
        return None
    if call.op.name in SHAPE_EVAL:
        return SHAPE_EVAL[call.op.name](call, lookup).astype(str(call.ty.dtype))
    host = HOST_EVAL.get(call.op.name)
    if host is not None:
        def value(a):
            if isinstance(a, relax.Tuple):
                return [value(f) for f in a.fields]
            return _resolve(a, lookup).value.numpy()
        args = [value(a) for a in call.args if isinstance(a.ty, relax.TensorType) or isinstance(a, relax.Tuple)]
        return np.asarray(host(args, call)).astype(str(call.ty.dtype))
    op = RELAX_TO_OP.get(call.op.name)
    if op is None:
        return None
    try:
        args, attrs = op.from_relax(call)
    except NotOnDevice:
        return None
    consts = [_resolve(a, lookup) for a in args]
    if "result_index" in attrs or any(c is None for c in consts):
        return None
    dtypes = [str(c.value.numpy().dtype) for c in consts] + [str(call.ty.dtype)]
    if any(dtype not in _TORCH_NUMPY_DTYPES for dtype in dtypes):
        # bfloat16/float8 (ml_dtypes) have no torch.from_numpy / Tensor.numpy(): TVM folds them
        return None
    value = op.golden([torch.from_numpy(np.array(c.value.numpy())) for c in consts], attrs).numpy()
    want = str(call.ty.dtype)
    return value.astype(want) if str(value.dtype) != want else value


FoldConstantOps = constant_folding_pass(
    "FoldConstantOps", lambda call, lookup: fold_value(call, lookup) if _const_args(call, lookup) else None)


def has_constant_calls(mod) -> bool:
    """Is any op call fed only by constants (directly or through a variable bound to one)?"""
    for func in mod.functions.values():
        if not isinstance(func, relax.Function):
            continue
        bound = relax.analysis.get_var2val(func)
        found = []

        def visit(e):
            if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op) and _const_args(e, bound.get):
                found.append(e)

        relax.analysis.post_order_visit(func, visit)
        if found:
            return True
    return False


@tvm.transform.module_pass(opt_level=0, name="FoldRemainingConstants")
class FoldRemainingConstants:
    """TVM's FoldConstant, run only if constant calls are left: it costs seconds even with nothing to do."""

    def transform_module(self, mod, ctx):
        return relax.transform.FoldConstant()(mod) if has_constant_calls(mod) else mod
