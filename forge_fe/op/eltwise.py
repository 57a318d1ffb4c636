"""Elementwise ops: unary, binary (numpy broadcasting), where, cast.

Most are one line thanks to the `unary`/`binary` family factories.
"""
from __future__ import annotations

import numpy as np
import torch

from forge_fe.device.numerics import integer_division
from forge_fe.op.registry import (NotOnDevice, TensorType, broadcast_shape, defop, relax_attrs,
                                  relax_tensor_args, same_as_first, simple_lower)
from forge_fe.ttir import emitter as E

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
                "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}


def torch_dtype(dtype: str) -> torch.dtype:
    return TORCH_DTYPES[dtype]


# ---- unary --------------------------------------------------------------------------

def unary(name, fn, relax=(), ttir=None, attrs_fn=None, from_relax=None, backward=None, doc=""):
    """y = fn(x) elementwise; lowers to `ttir.<name>` unless told otherwise.

    `backward(d, x, y, g) -> dL/dx` builds the input gradient from ops (`d.op`, `d.const`)."""
    rule = (lambda d: [backward(d, d.x[0], d.y, d.grad)]) if backward else None
    return defop(name, shape=same_as_first, golden=lambda ins, a: fn(ins[0], **a),
                 lower=simple_lower(ttir or f"ttir.{name}", attrs_fn), relax=relax,
                 from_relax=from_relax or relax_attrs(), backward=rule, doc=doc)


def _mul(d, *xs):
    out = xs[0]
    for x in xs[1:]:
        out = d.op(multiply, out, x)
    return out


def _where_positive(d, x, g, otherwise):
    return d.op(where, d.op(greater, x, d.const(0.0, x.dtype)), g, otherwise)


def _gelu_grad(d, x, y, g):
    """exact: Phi(x) + x * phi(x); tanh: 0.5(1+t) + 0.5 x (1-t^2) c (1 + 3k x^2), t = tanh(c(x + k x^3))."""
    c = lambda v: d.const(v)
    if d.node.attrs.get("approximate") == "tanh":
        k, s = 0.044715, float(np.sqrt(2 / np.pi))
        x2 = _mul(d, x, x)
        t = d.op(tanh, _mul(d, c(s), d.op(add, x, _mul(d, c(k), x2, x))))
        one_t = d.op(add, c(0.5), _mul(d, c(0.5), t))
        inner = _mul(d, c(0.5 * s), x, d.op(subtract, c(1.0), _mul(d, t, t)), d.op(add, c(1.0), _mul(d, c(3 * k), x2)))
        return _mul(d, g, d.op(add, one_t, inner))
    cdf = d.op(add, c(0.5), _mul(d, c(0.5), d.op(erf, _mul(d, x, c(float(1 / np.sqrt(2)))))))
    pdf = _mul(d, d.op(exp, _mul(d, c(-0.5), x, x)), c(float(1 / np.sqrt(2 * np.pi))))
    return _mul(d, g, d.op(add, cdf, _mul(d, x, pdf)))


def _silu_grad(d, x, y, g):
    """s (1 + x (1 - s)), s = sigmoid(x)"""
    s = d.op(sigmoid, x)
    return _mul(d, g, s, d.op(add, d.const(1.0), _mul(d, x, d.op(subtract, d.const(1.0), s))))


relu = unary("relu", lambda x: torch.relu(x), relax=("relax.nn.relu",),
             backward=lambda d, x, y, g: _where_positive(d, x, g, d.const(0.0)))
sigmoid = unary("sigmoid", torch.sigmoid, relax=("relax.sigmoid",),
                backward=lambda d, x, y, g: _mul(d, g, y, d.op(subtract, d.const(1.0), y)))
tanh = unary("tanh", torch.tanh, relax=("relax.tanh",),
             backward=lambda d, x, y, g: _mul(d, g, d.op(subtract, d.const(1.0), _mul(d, y, y))))
exp = unary("exp", torch.exp, relax=("relax.exp",), backward=lambda d, x, y, g: _mul(d, g, y))
log = unary("log", torch.log, relax=("relax.log",), backward=lambda d, x, y, g: d.op(divide, g, x))
sqrt = unary("sqrt", torch.sqrt, relax=("relax.sqrt",),
             backward=lambda d, x, y, g: d.op(divide, _mul(d, g, d.const(0.5)), y))
rsqrt = unary("rsqrt", torch.rsqrt, relax=("relax.rsqrt",),
              backward=lambda d, x, y, g: _mul(d, g, d.const(-0.5), y, y, y))
neg = unary("neg", torch.neg, relax=("relax.negative",), backward=lambda d, x, y, g: d.op(neg, g))
abs_ = unary("abs", torch.abs, relax=("relax.abs",), backward=lambda d, x, y, g: _mul(d, g, d.op(sign, x)))
erf = unary("erf", torch.erf, relax=("relax.erf",),
            backward=lambda d, x, y, g: _mul(d, g, d.const(float(2 / np.sqrt(np.pi))),
                                             d.op(exp, d.op(neg, _mul(d, x, x)))))
sin = unary("sin", torch.sin, relax=("relax.sin",), backward=lambda d, x, y, g: _mul(d, g, d.op(cos, x)))
cos = unary("cos", torch.cos, relax=("relax.cos",),
            backward=lambda d, x, y, g: d.op(neg, _mul(d, g, d.op(sin, x))))
# Piecewise-constant functions: zero gradient almost everywhere (as torch).
floor = unary("floor", torch.floor, relax=("relax.floor",), backward=lambda d, x, y, g: None)
ceil = unary("ceil", torch.ceil, relax=("relax.ceil",), backward=lambda d, x, y, g: None)
sign = unary("sign", torch.sign, relax=("relax.sign",), backward=lambda d, x, y, g: None)
reciprocal = unary("reciprocal", torch.reciprocal, backward=lambda d, x, y, g: d.op(neg, _mul(d, g, y, y)))
logical_not = unary("logical_not", torch.logical_not, relax=("relax.logical_not",))
silu = unary("silu", torch.nn.functional.silu, relax=("relax.nn.silu",), backward=_silu_grad)
gelu = unary("gelu", lambda x, approximate="none": torch.nn.functional.gelu(x, approximate=approximate),
             relax=("relax.nn.gelu", "relax.nn.gelu_tanh"),
             attrs_fn=lambda a: {"approximate": E.Str("tanh")} if a.get("approximate") == "tanh" else {},
             from_relax=lambda c: (relax_tensor_args(c),
                                   {"approximate": "tanh" if c.op.name.endswith("tanh") else "none"}),
             backward=_gelu_grad, doc="gelu(x) = x * Phi(x); 'tanh' uses the tanh approximation")
leaky_relu = unary("leaky_relu", lambda x, alpha: torch.nn.functional.leaky_relu(x, alpha),
                   relax=("relax.nn.leakyrelu",), attrs_fn=lambda a: {"parameter": E.F32(a["alpha"])},
                   from_relax=lambda c: (relax_tensor_args(c), {"alpha": float(c.attrs.alpha)}),
                   backward=lambda d, x, y, g: _where_positive(d, x, g, _mul(d, g, d.const(d.node.attrs["alpha"]))))


def _clip_from_relax(call):
    lo, hi = call.args[1], call.args[2]
    try:
        return relax_tensor_args(call), {"min": float(lo.value), "max": float(hi.value)}
    except AttributeError:
        raise NotOnDevice("clip bounds are not static")


def _clip_grad(d, x, y, g):
    """g where min <= x <= max, else 0"""
    a = d.node.attrs
    inside = d.op(logical_and, d.op(greater_equal, x, d.const(a["min"], x.dtype)),
                  d.op(less_equal, x, d.const(a["max"], x.dtype)))
    return d.op(where, inside, g, d.const(0.0))


clip = unary("clip", lambda x, min, max: torch.clamp(x, min, max), relax=("relax.clip",),
             ttir="ttir.clamp_scalar", attrs_fn=lambda a: {"min": E.F32(a["min"]), "max": E.F32(a["max"])},
             from_relax=_clip_from_relax, backward=_clip_grad)


# ---- cast ---------------------------------------------------------------------------

cast = defop(
    "cast", shape=lambda ins, a: TensorType(ins[0].shape, a["dtype"]),
    golden=lambda ins, a: ins[0].to(torch_dtype(a["dtype"])),
    lower=simple_lower("ttir.typecast"), relax=("relax.astype",),
    from_relax=relax_attrs(lambda c: {"dtype": str(c.attrs.dtype)}),
    backward=lambda d: [d.op(cast, d.grad, dtype=d.x[0].dtype)],
    doc="Convert element type. On the device int64 is si32 and bool is bf16 0/1.")


# ---- binary -------------------------------------------------------------------------

def _binary_shape(out_dtype=None):
    def shape(ins, a):
        return TensorType(broadcast_shape(ins[0].shape, ins[1].shape), out_dtype or ins[0].dtype)
    return shape


def binary(name, fn, relax=(), ttir=None, out_dtype=None, backward=None, doc=""):
    """z = fn(x, y) elementwise with numpy broadcasting.

    `backward(d, x, y, z, g) -> (dL/dx, dL/dy)` at z's shape; the rule sums them back to x's and
    y's shapes over the broadcast dims."""
    def rule(d):
        (x, y), needs = d.x, d.needs
        gx, gy = backward(d, x, y, d.y, d.grad)
        return [d.unbroadcast(gx, x.shape) if needs[0] and gx is not None else None,
                d.unbroadcast(gy, y.shape) if needs[1] and gy is not None else None]
    return defop(name, shape=_binary_shape(out_dtype), golden=lambda ins, a: fn(ins[0], ins[1]),
                 lower=simple_lower(ttir or f"ttir.{name}"), relax=relax, from_relax=relax_attrs(),
                 backward=rule if backward else None, doc=doc)


def _select_grad(d, first_wins, g):
    """Send g to the operand the condition picks."""
    zero = d.const(0.0)
    return d.op(where, first_wins, g, zero), d.op(where, first_wins, zero, g)


def _extremum_grad(d, x, y, first_wins_op, g):
    """g goes to the winner of maximum/minimum; a tie splits it evenly (as torch does)."""
    zero, half = d.const(0.0), d.op(multiply, g, d.const(0.5))
    wins, tie = d.op(first_wins_op, x, y), d.op(equal, x, y)
    return (d.op(where, wins, g, d.op(where, tie, half, zero)),
            d.op(where, wins, zero, d.op(where, tie, half, g)))


add = binary("add", torch.add, relax=("relax.add",), backward=lambda d, x, y, z, g: (g, g))
subtract = binary("subtract", torch.sub, relax=("relax.subtract",),
                  backward=lambda d, x, y, z, g: (g, d.op(neg, g)))
multiply = binary("multiply", torch.mul, relax=("relax.multiply",),
                  backward=lambda d, x, y, z, g: (d.op(multiply, g, y), d.op(multiply, g, x)))
divide = binary("divide", lambda x, y: torch.div(x, y) if x.is_floating_point() else integer_division(x, y, "trunc"),
                relax=("relax.divide",), ttir="ttir.div",
                backward=lambda d, x, y, z, g: (d.op(divide, g, y), d.op(neg, d.op(divide, d.op(multiply, g, z), y))))
maximum = binary("maximum", torch.maximum, relax=("relax.maximum",),
                 backward=lambda d, x, y, z, g: _extremum_grad(d, x, y, greater, g))
minimum = binary("minimum", torch.minimum, relax=("relax.minimum",),
                 backward=lambda d, x, y, z, g: _extremum_grad(d, x, y, less, g))
power = binary("power", torch.pow, relax=("relax.power",), ttir="ttir.pow",
               backward=lambda d, x, y, z, g: (
                   d.op(multiply, g, d.op(multiply, y, d.op(power, x, d.op(subtract, y, d.const(1.0, y.dtype))))),
                   d.op(multiply, g, d.op(multiply, z, d.op(log, x))) if d.needs[1] else None))
equal = binary("equal", torch.eq, relax=("relax.equal",), ttir="ttir.eq", out_dtype="bool")
not_equal = binary("not_equal", torch.ne, relax=("relax.not_equal",), ttir="ttir.ne", out_dtype="bool")
greater = binary("greater", torch.gt, relax=("relax.greater",), ttir="ttir.gt", out_dtype="bool")
greater_equal = binary("greater_equal", torch.ge, relax=("relax.greater_equal",), ttir="ttir.ge", out_dtype="bool")
less = binary("less", torch.lt, relax=("relax.less",), ttir="ttir.lt", out_dtype="bool")
less_equal = binary("less_equal", torch.le, relax=("relax.less_equal",), ttir="ttir.le", out_dtype="bool")
logical_and = binary("logical_and", torch.logical_and, relax=("relax.logical_and",), out_dtype="bool")
logical_or = binary("logical_or", torch.logical_or, relax=("relax.logical_or",), out_dtype="bool")


def _bitwise_and_from_relax(call):
    if any(str(a.ty.dtype) != "bool" for a in relax_tensor_args(call)):
        raise NotOnDevice("bitwise_and on integers is not a device op")
    return relax_tensor_args(call), {}


bitwise_and = defop("bitwise_and", shape=_binary_shape("bool"),
                    golden=lambda ins, a: torch.logical_and(ins[0], ins[1]),
                    lower=simple_lower("ttir.logical_and"), relax=("relax.bitwise_and",),
                    from_relax=_bitwise_and_from_relax, doc="bitwise and of booleans = logical and")


# ---- ternary ------------------------------------------------------------------------

where = defop(
    "where",
    shape=lambda ins, a: TensorType(broadcast_shape(*(i.shape for i in ins)), ins[1].dtype),
    golden=lambda ins, a: torch.where(ins[0].bool(), ins[1], ins[2]),
    lower=simple_lower("ttir.where"), relax=("relax.where",), from_relax=relax_attrs(),
    backward=lambda d: [None] + [d.unbroadcast(gi, xi.shape) if need else None for gi, xi, need in zip(
        _select_grad(d, d.x[0], d.grad), d.x[1:], d.needs[1:])],
    doc="where(c, x, y) = x if c else y, broadcasting all three")
