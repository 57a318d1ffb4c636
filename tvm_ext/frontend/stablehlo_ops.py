"""One converter per StableHLO op: ``convert(importer, op, inputs) -> relax expr | [relax exprs]``.

This file holds the registry, shared helpers, constants/calls, elementwise and
data-movement ops; :mod:`tvm_ext.frontend.stablehlo_compute` the rest.
Converters prefer the Relax spellings the forge op registry places on the device
(relax.matmul, relax.nn.conv2d NCHW/OIHW, permute_dims, strided_slice, concat,
reductions, eltwise ops) and raise :class:`Unsupported` with the reason for an
instance they cannot translate. Elementwise ops on small constants are computed
with numpy at import time, so loop counters and slice starts stay static.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from tvm_ext.frontend.stablehlo import (
    FOLD_LIMIT,
    Unsupported,
    dense_to_numpy,
)

R = relax.op
CONVERTERS: dict = {}
#: ops whose regions the converter reads itself (their bodies are not imported op by op)
REGION_OWNED = {"stablehlo.reduce", "stablehlo.reduce_window", "stablehlo.scatter", "stablehlo.sort",
                "stablehlo.select_and_scatter"}


def converter(*names):
    def deco(fn):
        for n in names:
            CONVERTERS[n] = fn
        return fn
    return deco


# ---- attribute helpers -----------------------------------------------------------------

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
    from tvm_ext.frontend.stablehlo import _np_dtype
    return _np_dtype(dtype)


def _fits(shape):
    return int(np.prod(shape)) <= FOLD_LIMIT


# ---- constants, plumbing, calls ------------------------------------------------------

@converter("stablehlo.constant")
def constant(cv, op, ins):
    if op in cv.const_params:
        return cv.const_params[op]
    shape, dtype = cv.result_type(op)
    return relax.const(dense_to_numpy(op.attributes["value"], shape, dtype), dtype)


@converter("stablehlo.iota")
def iota(cv, op, ins):
    shape, dtype = cv.result_type(op)
    dim = int_attr(op, "iota_dimension")
    line = np.arange(shape[dim]).reshape([-1 if i == dim else 1 for i in range(len(shape))])
    return relax.const(np.broadcast_to(line, shape).astype(_np(dtype)), dtype)


@converter("func.call", "call")
def call(cv, op, ins):
    return cv.call_function(_ir().FlatSymbolRefAttr(op.attributes["callee"]).value, ins)


#: composites with a direct Relax op; any other composite is inlined from its decomposition
_COMPOSITES = {"chlo.erf": R.erf, "chlo.tan": R.tan}


@converter("stablehlo.composite")
def composite(cv, op, ins):
    name = _ir().StringAttr(op.attributes["name"]).value
    if name in _COMPOSITES and len(ins) == 1:
        return cv.emit(_COMPOSITES[name](ins[0]), name.split(".")[-1])
    return cv.call_function(_ir().FlatSymbolRefAttr(op.attributes["decomposition"]).value, ins)


@converter("stablehlo.optimization_barrier")
def identity_all(cv, op, ins):
    return list(ins)


@converter("stablehlo.tuple")
def make_tuple(cv, op, ins):
    return [ins]


@converter("stablehlo.get_tuple_element")
def get_tuple_element(cv, op, ins):
    return ins[0][int_attr(op, "index")]


#: custom_call targets that only annotate their operand
_IDENTITY_TARGETS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape", "annotate_device_placement",
                     "LayoutConstraint", "X64Combine"}


@converter("stablehlo.custom_call")
def custom_call(cv, op, ins):
    target = _ir().StringAttr(op.attributes["call_target_name"]).value
    if target in _IDENTITY_TARGETS and len(ins) == 1:
        return ins[0]
    if target == "shape_assertion":
        return []
    if target in ("mhlo.topk", "TopK"):
        return _top_k(cv, op, ins)
    raise Unsupported(f"custom_call target '{target}' has no converter")


def _top_k(cv, op, ins):
    (shape, _), (_, idx_dtype) = cv.result_type(op, 0), cv.result_type(op, 1)
    k = shape[-1]
    out = cv.emit(R.topk(ins[0], k, axis=-1, ret_type="both", largest=True, dtype=idx_dtype), "topk")
    return [cv.emit(relax.TupleGetItem(out, 0)), cv.emit(relax.TupleGetItem(out, 1))]


# ---- elementwise ---------------------------------------------------------------------

def _trunc_div(a, b):
    if np.issubdtype(a.dtype, np.integer):
        q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
        return (np.sign(a) * np.sign(b) * q).astype(a.dtype)
    return a / b


def _trunc_rem(a, b):
    return np.fmod(a, b) if not np.issubdtype(a.dtype, np.integer) else (a - _trunc_div(a, b) * b).astype(a.dtype)


def elementwise(relax_fn, numpy_fn=None):
    """Converter for an n-ary elementwise op; folded with numpy when every operand is a small constant."""
    def convert(cv, op, ins):
        shape, dtype = cv.result_type(op)
        if numpy_fn is not None and _fits(shape):
            vals = [cv.known(x) for x in ins]
            if all(v is not None for v in vals):
                return relax.const(np.asarray(numpy_fn(*vals)).astype(_np(dtype)), dtype)
        return cv.emit(relax_fn(*ins) if not getattr(relax_fn, "wants_op", False) else relax_fn(cv, op, *ins))
    return convert


def _by_dtype(bool_fn, int_fn):
    """An op whose Relax spelling depends on the operand type (logical for i1, bitwise otherwise)."""
    def fn(cv, op, *ins):
        return bool_fn(*ins) if cv.dtype_of(ins[0]) == "bool" else int_fn(*ins)
    fn.wants_op = True
    return fn


def _round_half_even(x):
    # TVM's round is half away from zero; ties go to the even neighbour: 2 * round(x / 2).
    r = R.round(x)
    c = lambda v: relax.const(np.asarray(v, dtype=str(x.ty.dtype)))
    tie = R.equal(R.abs(R.subtract(x, R.floor(x))), c(0.5))
    return R.where(tie, R.multiply(c(2.0), R.round(R.multiply(x, c(0.5)))), r)


def _cbrt(x):
    dt = str(x.ty.dtype)
    return R.multiply(R.sign(x), R.power(R.abs(x), relax.const(np.asarray(1 / 3, dtype=dt))))


def _expm1(x):
    return R.subtract(R.exp(x), relax.const(np.asarray(1, dtype=str(x.ty.dtype))))


def _log1p(x):
    return R.log(R.add(x, relax.const(np.asarray(1, dtype=str(x.ty.dtype)))))


_UNARY = {
    "abs": (R.abs, np.abs), "negate": (R.negative, np.negative), "exponential": (R.exp, np.exp),
    "log": (R.log, np.log), "sqrt": (R.sqrt, np.sqrt), "rsqrt": (R.rsqrt, lambda x: 1 / np.sqrt(x)),
    "tanh": (R.tanh, np.tanh), "logistic": (R.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "sine": (R.sin, np.sin), "cosine": (R.cos, np.cos), "tan": (R.tan, np.tan),
    "floor": (R.floor, np.floor), "ceil": (R.ceil, np.ceil), "sign": (R.sign, np.sign),
    "round_nearest_afz": (R.round, lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5)),
    "round_nearest_even": (_round_half_even, np.round), "cbrt": (_cbrt, np.cbrt),
    "exponential_minus_one": (_expm1, np.expm1), "log_plus_one": (_log1p, np.log1p),
    "is_finite": (R.isfinite, np.isfinite),
    "not": (_by_dtype(R.logical_not, R.bitwise_not), lambda x: ~x),
}
_BINARY = {
    "add": (R.add, np.add), "subtract": (R.subtract, np.subtract), "multiply": (R.multiply, np.multiply),
    "divide": (R.divide, _trunc_div), "maximum": (R.maximum, np.maximum), "minimum": (R.minimum, np.minimum),
    "power": (R.power, np.power), "remainder": (R.mod, _trunc_rem), "atan2": (R.atan2, np.arctan2),
    "and": (_by_dtype(R.logical_and, R.bitwise_and), np.bitwise_and),
    "or": (_by_dtype(R.logical_or, R.bitwise_or), np.bitwise_or),
    "xor": (_by_dtype(R.logical_xor, R.bitwise_xor), np.bitwise_xor),
    "shift_left": (R.left_shift, np.left_shift), "shift_right_arithmetic": (R.right_shift, np.right_shift),
}
for _name, (_relax_fn, _np_fn) in {**_UNARY, **_BINARY}.items():
    CONVERTERS[f"stablehlo.{_name}"] = elementwise(_relax_fn, _np_fn)
# chlo ops that appear when a module was not legalized to pure StableHLO
CONVERTERS["chlo.erf"] = elementwise(R.erf)
CONVERTERS["chlo.tan"] = elementwise(R.tan)

_COMPARE = {"EQ": (R.equal, np.equal), "NE": (R.not_equal, np.not_equal), "GT": (R.greater, np.greater),
            "GE": (R.greater_equal, np.greater_equal), "LT": (R.less, np.less), "LE": (R.less_equal, np.less_equal)}


@converter("stablehlo.compare")
def compare(cv, op, ins):
    direction = enum_attr(op, "comparison_direction")
    relax_fn, np_fn = _COMPARE[direction]
    if direction == "NE" and cv.dtype_of(ins[0]).startswith(("float", "bfloat")):
        # TVM lowers not_equal to an *ordered* compare (NaN != NaN is false): x != x is jnp.isnan.
        relax_fn = lambda a, b: R.logical_not(R.equal(a, b))
    if cv.dtype_of(ins[0]) == "bool" and any(cv.known(x) is None for x in ins):
        # TVM's LLVM codegen emits a float compare for i1 operands: compare them as int8.
        ins = [cv.emit(R.astype(x, "int8")) for x in ins]
    return elementwise(relax_fn, np_fn)(cv, op, ins)


@converter("stablehlo.select")
def select(cv, op, ins):
    return elementwise(R.where, np.where)(cv, op, ins)


@converter("stablehlo.clamp")
def clamp(cv, op, ins):
    lo, x, hi = ins
    shape, dtype = cv.result_type(op)
    lo_v, hi_v = cv.known(lo), cv.known(hi)
    if cv.known(x) is not None and lo_v is not None and hi_v is not None and _fits(shape):
        return relax.const(np.clip(cv.known(x), lo_v, hi_v).astype(_np(dtype)), dtype)
    if lo_v is not None and hi_v is not None and lo_v.size == 1 and hi_v.size == 1 and dtype.startswith("float"):
        return cv.emit(R.clip(x, float(lo_v.reshape(())), float(hi_v.reshape(()))))
    return cv.emit(R.maximum(R.minimum(x, hi), lo))


@converter("stablehlo.convert")
def convert(cv, op, ins):
    shape, dtype = cv.result_type(op)
    v = cv.known(ins[0])
    if v is not None and _fits(shape):
        return relax.const((v != 0) if dtype == "bool" else v.astype(_np(dtype)), dtype)
    if cv.dtype_of(ins[0]) == dtype:
        return ins[0]
    if dtype == "bool":     # x != 0, spelled NaN-safe (TVM's float not_equal is ordered: NaN -> false)
        zero = relax.const(np.zeros((), _np(cv.dtype_of(ins[0]))))
        return cv.emit(R.logical_not(R.equal(ins[0], zero)))
    return cv.emit(R.astype(ins[0], dtype))


#: (exponent bits, mantissa bits) of the float types reduce_precision can round through
_PRECISION_TYPES = {(8, 7): "bfloat16", (5, 10): "float16"}


@converter("stablehlo.reduce_precision")
def reduce_precision(cv, op, ins):
    bits = (int_attr(op, "exponent_bits"), int_attr(op, "mantissa_bits"))
    dtype = cv.dtype_of(ins[0])
    if bits == {"float32": (8, 23), "bfloat16": (8, 7), "float16": (5, 10)}.get(dtype):
        return ins[0]
    if bits not in _PRECISION_TYPES:
        raise Unsupported(f"rounding to {bits[0]} exponent / {bits[1]} mantissa bits (bf16 and f16 are supported)")
    return cv.emit(R.astype(R.astype(ins[0], _PRECISION_TYPES[bits]), dtype))


# ---- data movement -------------------------------------------------------------------

@converter("stablehlo.reshape")
def reshape(cv, op, ins):
    shape, dtype = cv.result_type(op)
    v = cv.known(ins[0])
    if v is not None and _fits(shape):
        return relax.const(v.reshape(shape), dtype)
    if cv.shape_of(ins[0]) == shape:
        return ins[0]
    return cv.emit(R.reshape(ins[0], shape))


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


@converter("stablehlo.transpose")
def transpose(cv, op, ins):
    return permute(cv, ins[0], ints_attr(op, "permutation"))


@converter("stablehlo.broadcast_in_dim")
def broadcast_in_dim(cv, op, ins):
    shape, dtype = cv.result_type(op)
    dims = ints_attr(op, "broadcast_dimensions")
    x = ins[0]
    v = cv.known(x)
    if v is not None and _fits(shape):
        v = np.transpose(v, np.argsort(dims)) if len(dims) > 1 else v
        v = v.reshape(_expand_shape(v.shape, sorted(dims), len(shape)))
        return relax.const(np.broadcast_to(v, shape).copy(), dtype)
    order = [int(i) for i in np.argsort(dims)]
    x = permute(cv, x, order)
    sorted_dims = sorted(dims)
    x = reshape_to(cv, x, _expand_shape(cv.shape_of(x), sorted_dims, len(shape)))
    if cv.shape_of(x) == tuple(shape):
        return x
    return cv.emit(R.broadcast_to(x, shape))


def _expand_shape(in_shape, sorted_dims, rank):
    out = [1] * rank
    for d, n in zip(sorted_dims, in_shape):
        out[d] = n
    return tuple(out)


@converter("stablehlo.broadcast")
def broadcast(cv, op, ins):
    shape, _ = cv.result_type(op)
    return cv.emit(R.broadcast_to(ins[0], shape))


@converter("stablehlo.concatenate")
def concatenate(cv, op, ins):
    shape, dtype = cv.result_type(op)
    axis = int_attr(op, "dimension")
    vals = [cv.known(x) for x in ins]
    if all(v is not None for v in vals) and _fits(shape):
        return relax.const(np.concatenate(vals, axis=axis), dtype)
    ins = [x for x in ins if cv.shape_of(x)[axis] > 0]
    if len(ins) == 1:
        return ins[0]
    return cv.emit(R.concat(ins, axis=axis))


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


@converter("stablehlo.slice")
def slice_(cv, op, ins):
    return static_slice(cv, ins[0], ints_attr(op, "start_indices"), ints_attr(op, "limit_indices"),
                        ints_attr(op, "strides"))


def _clamped_starts(cv, op, x, starts, sizes):
    """Static starts clamped as XLA does (so the slice stays in bounds), or None if any is dynamic."""
    vals = [cv.known(s) for s in starts]
    if any(v is None for v in vals):
        return None
    shape = cv.shape_of(x)
    return [int(min(max(int(v.reshape(())), 0), n - k)) for v, n, k in zip(vals, shape, sizes)]


@converter("stablehlo.dynamic_slice")
def dynamic_slice(cv, op, ins):
    x, starts = ins[0], ins[1:]
    sizes = ints_attr(op, "slice_sizes")
    shape = cv.shape_of(x)
    static = _clamped_starts(cv, op, x, starts, sizes)
    if static is not None:
        return static_slice(cv, x, static, [s + k for s, k in zip(static, sizes)], hint="dynamic_slice")
    # A runtime start: gather the window's indices (start clamped into range) with take.
    for axis, (start, n, k) in enumerate(zip(starts, shape, sizes)):
        if k == n:
            continue
        if cv.known(start) is not None:
            s = int(min(max(int(cv.known(start).reshape(())), 0), n - k))
            x = static_slice(cv, x, [s if i == axis else 0 for i in range(len(shape))],
                             [s + k if i == axis else d for i, d in enumerate(cv.shape_of(x))])
            continue
        idt = cv.dtype_of(start)
        s = cv.emit(R.minimum(R.maximum(start, relax.const(np.zeros((), idt))), relax.const(np.asarray(n - k, idt))))
        idx = cv.emit(R.add(s, relax.const(np.arange(k, dtype=idt))))
        x = cv.emit(R.take(x, idx, axis=axis, mode="clip"))
    return x


@converter("stablehlo.dynamic_update_slice")
def dynamic_update_slice(cv, op, ins):
    x, update, starts = ins[0], ins[1], ins[2:]
    sizes = cv.shape_of(update)
    static = _clamped_starts(cv, op, x, starts, sizes)
    if static is None:
        return _update_dynamic(cv, x, update, starts, sizes)
    return _update_static(cv, x, update, static, sizes)


def _update_dynamic(cv, x, update, starts, sizes):
    """A run-time start (a KV-cache write at position `pos`): move the update into place with a take
    per axis (index clip(i - start, 0, k - 1)) and select it where i lies in [start, start + k)."""
    shape = cv.shape_of(x)
    mask, moved = None, update
    for axis, (start, n, k) in enumerate(zip(starts, shape, sizes)):
        if k == n:
            continue
        idt = cv.dtype_of(start)
        c = lambda v, t=idt: relax.const(np.asarray(v, t))
        s = cv.emit(R.minimum(R.maximum(start, c(0)), c(n - k)))
        pos = relax.const(np.arange(n, dtype=idt).reshape([n if d == axis else 1 for d in range(len(shape))]))
        src = cv.emit(R.minimum(R.maximum(R.subtract(pos, s), c(0)), c(k - 1)))
        moved = cv.emit(R.take(moved, R.reshape(src, [n]), axis=axis, mode="clip"))
        inside = cv.emit(R.logical_and(R.greater_equal(pos, s), R.less(pos, R.add(s, c(k)))))
        mask = inside if mask is None else cv.emit(R.logical_and(mask, inside))
    if mask is None:
        return update
    return cv.emit(R.where(mask, moved, x), "dynamic_update_slice")


def _update_static(cv, x, update, starts, sizes):
    """x with x[starts : starts+sizes] = update, as slices and concats (device ops)."""
    shape = cv.shape_of(x)
    dims = [i for i, (s, k, n) in enumerate(zip(starts, sizes, shape)) if (s, k) != (0, n)]
    if not dims:
        return update
    d = dims[0]
    s, k = starts[d], sizes[d]
    full = lambda a, b: ([a if i == d else 0 for i in range(len(shape))],
                         [b if i == d else n for i, n in enumerate(shape)])
    mid = static_slice(cv, x, *full(s, s + k))
    mid = _update_static(cv, mid, update, [0 if i == d else starts[i] for i in range(len(shape))], sizes)
    parts = []
    if s > 0:
        parts.append(static_slice(cv, x, *full(0, s)))
    parts.append(mid)
    if s + k < shape[d]:
        parts.append(static_slice(cv, x, *full(s + k, shape[d])))
    return parts[0] if len(parts) == 1 else cv.emit(R.concat(parts, axis=d), "dynamic_update_slice")


@converter("stablehlo.pad")
def pad(cv, op, ins):
    x, value = ins
    lo, hi, interior = ints_attr(op, "edge_padding_low"), ints_attr(op, "edge_padding_high"), ints_attr(op, "interior_padding")
    if any(interior):
        raise Unsupported("interior padding")
    pv = cv.known(value)
    if pv is None:
        raise Unsupported("a padding value known only at run time")
    shape = cv.shape_of(x)
    # Negative padding crops.
    if any(p < 0 for p in lo + hi):
        x = static_slice(cv, x, [max(-p, 0) for p in lo], [n - max(-p, 0) for n, p in zip(shape, hi)])
        lo, hi = [max(p, 0) for p in lo], [max(p, 0) for p in hi]
    if not any(lo + hi):
        return x
    width = [w for pair in zip(lo, hi) for w in pair]
    return cv.emit(R.nn.pad(x, width, "constant", float(pv.reshape(()))))


@converter("stablehlo.reverse")
def reverse(cv, op, ins):
    x = ins[0]
    for d in ints_attr(op, "dimensions"):
        x = cv.emit(R.flip(x, d))
    return x


# The compute and control-flow converters register themselves into CONVERTERS.
from tvm_ext.frontend import stablehlo_compute  # noqa: F401
