"""Shared helpers of the StableHLO converters: the bottom of :mod:`tvm_ext.frontend.stablehlo`.

Converter modules (one per op family) import from here and from nowhere else in the package.
A converter is ``convert(importer, op, inputs) -> relax expr | [relax exprs]``; each family
module registers its converters into its own ``CONVERTERS`` table with the decorator
:func:`registrar` makes, and :mod:`.registry` merges the tables.  Converters prefer the Relax
spellings the forge op registry places on the device (relax.matmul, relax.nn.conv2d NCHW/OIHW,
permute_dims, strided_slice, concat, reductions, eltwise ops) and raise :class:`Unsupported`
with the reason for an instance they cannot translate.
"""

from __future__ import annotations

import re

import numpy as np
from tvm import relax

R = relax.op


#: results of constant operands up to this many elements are computed at import time
FOLD_LIMIT = 4096


#: while loops are unrolled up to this many iterations
MAX_UNROLL = 1024


_MLIR_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64", "i1": "bool",
                "i8": "int8", "i16": "int16", "i32": "int32", "i64": "int64", "ui8": "uint8",
                "ui16": "uint16", "ui32": "uint32", "ui64": "uint64"}


class Unsupported(Exception):
    """A converter refuses this instance of an op (the message says why)."""


def tensor_type(t) -> tuple[tuple[int, ...], str]:
    from jaxlib.mlir import ir
    rt = ir.RankedTensorType(t)
    if not rt.has_static_shape:
        raise Unsupported(f"dynamic shape {t}")
    return tuple(int(d) for d in rt.shape), mlir_dtype(rt.element_type)


def mlir_dtype(elem) -> str:
    name = str(elem)
    if name not in _MLIR_DTYPES:
        raise Unsupported(f"element type {name}")
    return _MLIR_DTYPES[name]


def dense_to_numpy(attr, shape, dtype) -> np.ndarray:
    from jaxlib.mlir import ir
    np_dtype = _np_dtype(dtype)
    if attr.is_splat:
        v = attr.get_splat_value()
        if isinstance(v, ir.BoolAttr):
            scalar = ir.BoolAttr(v).value
        elif isinstance(v, ir.IntegerAttr):
            scalar = ir.IntegerAttr(v).value
        else:
            scalar = ir.FloatAttr(v).value
        return np.full(shape, scalar, dtype=np_dtype)
    try:
        arr = np.array(attr)
    except Exception:  # noqa: BLE001 - element types numpy's buffer protocol lacks (bf16, f16)
        return _dense_from_text(str(attr), shape, np_dtype)
    if arr.dtype == np.bool_ or dtype == "bool":
        arr = arr.astype(np.bool_)
    return np.asarray(arr).astype(np_dtype, copy=False).reshape(shape)


def _dense_from_text(text: str, shape, np_dtype) -> np.ndarray:
    """Values of `dense<...> : tensor<...>` from its printed form: raw hex bytes or a value list."""
    body = text[text.index("<") + 1:text.rindex("> :")].strip()
    if body.startswith('"0x'):
        return np.frombuffer(bytes.fromhex(body[3:-1]), dtype=np_dtype).reshape(shape).copy()
    bits = np.dtype(f"uint{8 * np.dtype(np_dtype).itemsize}")
    values = []
    for tok in re.findall(r"0x[0-9A-Fa-f]+|[-+]?(?:inf|nan|\d+\.?\d*(?:[eE][-+]?\d+)?)", body):
        if tok.startswith("0x"):          # a NaN or other special value spelled as its bit pattern
            values.append(np.array(int(tok, 16), dtype=bits).view(np_dtype))
        else:
            values.append(np.asarray(float(tok)).astype(np_dtype))
    return np.array(values, dtype=np_dtype).reshape(shape)


def _np_dtype(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes
        return ml_dtypes.bfloat16
    return np.dtype(dtype)


def _ir():
    from jaxlib.mlir import ir
    return ir


def ints_attr(op, name, default=None):
    """A DenseI64ArrayAttr / DenseIntElementsAttr / ArrayAttr of ints as a list (default if absent)."""
    ir = _ir()
    if name not in op.attributes:
        return default
    a = op.attributes[name]
    if isinstance(a, ir.DenseI64ArrayAttr):
        return [int(x) for x in ir.DenseI64ArrayAttr(a)]
    if isinstance(a, ir.DenseBoolArrayAttr):
        return [bool(x) for x in ir.DenseBoolArrayAttr(a)]
    if isinstance(a, ir.DenseIntElementsAttr):
        return [int(x) for x in np.array(ir.DenseIntElementsAttr(a)).reshape(-1)]
    if isinstance(a, ir.ArrayAttr):
        return [ir.IntegerAttr(x).value for x in ir.ArrayAttr(a)]
    raise Unsupported(f"attribute {name} = {a} is not an int array")


def int_attr(op, name, default=None):
    ir = _ir()
    if name not in op.attributes:
        return default
    return ir.IntegerAttr(op.attributes[name]).value


def padding_attr(op, rank):
    pad = ints_attr(op, "padding")
    if pad is None:
        return [(0, 0)] * rank
    return [(pad[2 * i], pad[2 * i + 1]) for i in range(rank)]


def enum_attr(op, name):
    """The keyword of an enum attribute: #stablehlo<comparison_direction GT> -> 'GT'."""
    if name not in op.attributes:
        return None
    return str(op.attributes[name]).rstrip(">").split()[-1]


def _np(dtype):
    return _np_dtype(dtype)


def _fits(shape):
    return int(np.prod(shape)) <= FOLD_LIMIT


def permute(cv, x, perm, hint=None):
    perm = [int(p) for p in perm]
    if perm == sorted(perm):
        return x
    v = cv.known(x)
    if v is not None and v.size <= FOLD_LIMIT:
        return relax.const(np.transpose(v, perm), str(v.dtype) if v.dtype != np.bool_ else "bool")
    return cv.emit(R.permute_dims(x, perm), hint)


def reshape_to(cv, x, shape, hint=None):
    shape = tuple(int(d) for d in shape)
    if cv.shape_of(x) == shape:
        return x
    return cv.emit(R.reshape(x, shape), hint)


def static_slice(cv, x, starts, limits, strides=None, hint="slice"):
    in_shape = cv.shape_of(x)
    strides = strides or [1] * len(in_shape)
    axes = [i for i, (s, l, st, n) in enumerate(zip(starts, limits, strides, in_shape)) if (s, l, st) != (0, n, 1)]
    if not axes:
        return x
    v = cv.known(x)
    if v is not None:
        out = v[tuple(slice(s, l, st) for s, l, st in zip(starts, limits, strides))]
        if out.size <= FOLD_LIMIT:
            return relax.const(out.copy(), str(v.dtype) if v.dtype != np.bool_ else "bool")
    return cv.emit(R.strided_slice(x, axes, [starts[i] for i in axes], [limits[i] for i in axes],
                                   [strides[i] for i in axes]), hint)


# ---- reducer bodies (reduce, reduce_window, scatter) ---------------------------------

def _body_ops(op):
    return [o for o in op.regions[0].blocks[0].operations]


def _single_reducer(op):
    """'add'/'maximum'/... when the reducer body is one binary op on its two arguments."""
    body = _body_ops(op)
    if len(body) == 2 and body[1].operation.name == "stablehlo.return":
        args = list(op.regions[0].blocks[0].arguments)
        inner = body[0]
        if list(inner.operands) in (args, args[::-1]) and inner.results[0] == body[1].operands[0]:
            return inner.operation.name.split(".")[-1]
    if len(body) == 1:   # returns one of its arguments (scatter's 'set')
        args = list(op.regions[0].blocks[0].arguments)
        ret = body[0].operands[0]
        if ret == args[-1]:
            return "update"
    return None


def registrar(table: dict):
    """A decorator factory: ``@converter("stablehlo.x", ...)`` enters the function into ``table``
    under each name (a family module's own ``CONVERTERS``)."""
    def converter(*names):
        def deco(fn):
            for n in names:
                assert n not in table, f"StableHLO op {n} has two converters"
                table[n] = fn
            return fn
        return deco
    return converter
