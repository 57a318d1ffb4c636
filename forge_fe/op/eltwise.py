"""Elementwise ops: unary, binary (numpy broadcasting), where, cast.

Most are one line thanks to the `unary`/`binary` family factories.
"""
from __future__ import annotations

import torch

from forge_fe.op.registry import (NotOnDevice, TensorType, broadcast_shape, defop, relax_attrs,
                                  relax_tensor_args, same_as_first, simple_lower)
from forge_fe.ttir import emitter as E

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32,
                "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}


def torch_dtype(dtype: str) -> torch.dtype:
    return TORCH_DTYPES[dtype]


# ---- unary --------------------------------------------------------------------------

def unary(name, fn, relax=(), ttir=None, attrs_fn=None, from_relax=None, doc=""):
    """y = fn(x) elementwise; lowers to `ttir.<name>` unless told otherwise."""
    return defop(name, shape=same_as_first, golden=lambda ins, a: fn(ins[0], **a),
                 lower=simple_lower(ttir or f"ttir.{name}", attrs_fn), relax=relax,
                 from_relax=from_relax or relax_attrs(), doc=doc)


relu = unary("relu", lambda x: torch.relu(x), relax=("relax.nn.relu",))
sigmoid = unary("sigmoid", torch.sigmoid, relax=("relax.sigmoid",))
tanh = unary("tanh", torch.tanh, relax=("relax.tanh",))
exp = unary("exp", torch.exp, relax=("relax.exp",))
log = unary("log", torch.log, relax=("relax.log",))
sqrt = unary("sqrt", torch.sqrt, relax=("relax.sqrt",))
rsqrt = unary("rsqrt", torch.rsqrt, relax=("relax.rsqrt",))
neg = unary("neg", torch.neg, relax=("relax.negative",))
abs_ = unary("abs", torch.abs, relax=("relax.abs",))
erf = unary("erf", torch.erf, relax=("relax.erf",))
sin = unary("sin", torch.sin, relax=("relax.sin",))
cos = unary("cos", torch.cos, relax=("relax.cos",))
floor = unary("floor", torch.floor, relax=("relax.floor",))
ceil = unary("ceil", torch.ceil, relax=("relax.ceil",))
sign = unary("sign", torch.sign, relax=("relax.sign",))
reciprocal = unary("reciprocal", torch.reciprocal)
logical_not = unary("logical_not", torch.logical_not, relax=("relax.logical_not",))
silu = unary("silu", torch.nn.functional.silu, relax=("relax.nn.silu",))
gelu = unary("gelu", lambda x, approximate="none": torch.nn.functional.gelu(x, approximate=approximate),
             relax=("relax.nn.gelu", "relax.nn.gelu_tanh"),
             attrs_fn=lambda a: {"approximate": E.Str("tanh")} if a.get("approximate") == "tanh" else {},
             from_relax=lambda c: (relax_tensor_args(c),
                                   {"approximate": "tanh" if c.op.name.endswith("tanh") else "none"}),
             doc="gelu(x) = x * Phi(x); 'tanh' uses the tanh approximation")
leaky_relu = unary("leaky_relu", lambda x, alpha: torch.nn.functional.leaky_relu(x, alpha),
                   relax=("relax.nn.leakyrelu",), attrs_fn=lambda a: {"parameter": E.F32(a["alpha"])},
                   from_relax=lambda c: (relax_tensor_args(c), {"alpha": float(c.attrs.alpha)}))


def _clip_from_relax(call):
    lo, hi = call.args[1], call.args[2]
    try:
        return relax_tensor_args(call), {"min": float(lo.value), "max": float(hi.value)}
    except AttributeError:
        raise NotOnDevice("clip bounds are not static")


clip = unary("clip", lambda x, min, max: torch.clamp(x, min, max), relax=("relax.clip",),
             ttir="ttir.clamp_scalar", attrs_fn=lambda a: {"min": E.F32(a["min"]), "max": E.F32(a["max"])},
             from_relax=_clip_from_relax)


# ---- cast ---------------------------------------------------------------------------

cast = defop(
    "cast", shape=lambda ins, a: TensorType(ins[0].shape, a["dtype"]),
    golden=lambda ins, a: ins[0].to(torch_dtype(a["dtype"])),
    lower=simple_lower("ttir.typecast"), relax=("relax.astype",),
    from_relax=relax_attrs(lambda c: {"dtype": str(c.attrs.dtype)}),
    doc="Convert element type. On the device int64 is si32 and bool is bf16 0/1.")


# ---- binary -------------------------------------------------------------------------

def _binary_shape(out_dtype=None):
    def shape(ins, a):
        return TensorType(broadcast_shape(ins[0].shape, ins[1].shape), out_dtype or ins[0].dtype)
    return shape


def binary(name, fn, relax=(), ttir=None, out_dtype=None, doc=""):
    """z = fn(x, y) elementwise with numpy broadcasting."""
    return defop(name, shape=_binary_shape(out_dtype), golden=lambda ins, a: fn(ins[0], ins[1]),
                 lower=simple_lower(ttir or f"ttir.{name}"), relax=relax, from_relax=relax_attrs(), doc=doc)


add = binary("add", torch.add, relax=("relax.add",))
subtract = binary("subtract", torch.sub, relax=("relax.subtract",))
multiply = binary("multiply", torch.mul, relax=("relax.multiply",))
divide = binary("divide", lambda x, y: torch.div(x, y) if x.is_floating_point() else torch.div(x, y, rounding_mode="trunc"),
                relax=("relax.divide",), ttir="ttir.div")
maximum = binary("maximum", torch.maximum, relax=("relax.maximum",))
minimum = binary("minimum", torch.minimum, relax=("relax.minimum",))
power = binary("power", torch.pow, relax=("relax.power",), ttir="ttir.pow")
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
    doc="where(c, x, y) = x if c else y, broadcasting all three")
