"""StableHLO elementwise ops and constants: constant, iota, the unary/binary arithmetic and logic
ops (folded with numpy when every operand is a small constant, so loop counters and slice starts
stay static), compare, select, clamp, convert, reduce_precision and chlo's leftovers."""
from __future__ import annotations

import numpy as np
from tvm import relax

from .common import R, Unsupported, _fits, _ir, _np, dense_to_numpy, enum_attr, int_attr, registrar

#: StableHLO op name -> converter, merged by :mod:`.registry`
CONVERTERS: dict = {}
converter = registrar(CONVERTERS)


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


#: composites with a direct Relax op; any other composite is inlined from its decomposition
_COMPOSITES = {"chlo.erf": R.erf, "chlo.tan": R.tan}


@converter("stablehlo.composite")
def composite(cv, op, ins):
    name = _ir().StringAttr(op.attributes["name"]).value
    if name in _COMPOSITES and len(ins) == 1:
        return cv.emit(_COMPOSITES[name](ins[0]), name.split(".")[-1])
    return cv.call_function(_ir().FlatSymbolRefAttr(op.attributes["decomposition"]).value, ins)


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
