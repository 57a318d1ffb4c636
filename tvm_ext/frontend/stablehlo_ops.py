"""One converter per StableHLO op: ``convert(importer, op, inputs) -> relax expr | [relax exprs]``.

Converters prefer the Relax spellings the forge op registry places on the device
(relax.matmul, relax.nn.conv2d NCHW/OIHW, permute_dims, strided_slice, concat,
reductions, eltwise ops) and raise :class:`Unsupported` with the reason for an
instance they cannot translate. Elementwise ops on small constants are computed
with numpy at import time, so loop counters and slice starts stay static.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from tvm_ext.frontend.stablehlo import FOLD_LIMIT, MAX_UNROLL, Unsupported, dense_to_numpy

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
    c = lambda v: relax.const(np.asarray(v, dtype=str(x.ty.dtype)))  # noqa: E731
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
        relax_fn = lambda a, b: R.logical_not(R.equal(a, b))  # noqa: E731
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
    if dtype == "bool":
        return cv.emit(R.not_equal(ins[0], relax.const(np.zeros((), _np(cv.dtype_of(ins[0]))))))
    return cv.emit(R.astype(ins[0], dtype))


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
        raise Unsupported("dynamic_update_slice with a start index known only at run time "
                          "(inside a loop whose trip count is not static?)")
    return _update_static(cv, x, update, static, sizes)


def _update_static(cv, x, update, starts, sizes):
    """x with x[starts : starts+sizes] = update, as slices and concats (device ops)."""
    shape = cv.shape_of(x)
    dims = [i for i, (s, k, n) in enumerate(zip(starts, sizes, shape)) if (s, k) != (0, n)]
    if not dims:
        return update
    d = dims[0]
    s, k = starts[d], sizes[d]
    full = lambda a, b: ([a if i == d else 0 for i in range(len(shape))],  # noqa: E731
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


# ---- dot_general and convolution -----------------------------------------------------

@converter("stablehlo.dot_general", "stablehlo.dot")
def dot_general(cv, op, ins):
    from jaxlib.mlir.dialects import stablehlo as shlo
    lhs, rhs = ins
    ls, rs = cv.shape_of(lhs), cv.shape_of(rhs)
    shape, dtype = cv.result_type(op)
    if op.operation.name == "stablehlo.dot":
        lb, rb, lc, rc = [], [], [len(ls) - 1], [0]
    else:
        dn = shlo.DotDimensionNumbers(op.attributes["dot_dimension_numbers"])
        lb, rb = list(dn.lhs_batching_dimensions), list(dn.rhs_batching_dimensions)
        lc, rc = list(dn.lhs_contracting_dimensions), list(dn.rhs_contracting_dimensions)
    lf = [d for d in range(len(ls)) if d not in lb + lc]
    rf = [d for d in range(len(rs)) if d not in rb + rc]
    out_dtype = dtype if dtype != cv.dtype_of(lhs) else None
    # x[..., K] @ w[K, N] (a Dense layer on any rank) needs no reshapes.
    if not lb and lc == [len(ls) - 1] and len(rs) == 2 and len(ls) >= 2:
        w = rhs if rc == [0] else permute(cv, rhs, [1, 0])
        return cv.emit(R.matmul(lhs, w, out_dtype=out_dtype), "matmul")
    batch = [ls[d] for d in lb]
    m, k, n = (int(np.prod([ls[d] for d in lf])), int(np.prod([ls[d] for d in lc])),
               int(np.prod([rs[d] for d in rf])))
    a = reshape_to(cv, permute(cv, lhs, lb + lf + lc), batch + [m, k])
    b = reshape_to(cv, permute(cv, rhs, rb + rc + rf), batch + [k, n])
    y = cv.emit(R.matmul(a, b, out_dtype=out_dtype), "matmul")
    return reshape_to(cv, y, shape)


_CONV = {1: (R.nn.conv1d, "NCW", "OIW"), 2: (R.nn.conv2d, "NCHW", "OIHW"), 3: (R.nn.conv3d, "NCDHW", "OIDHW")}


@converter("stablehlo.convolution")
def convolution(cv, op, ins):
    from jaxlib.mlir.dialects import stablehlo as shlo
    x, w = ins
    dn = shlo.ConvDimensionNumbers(op.attributes["dimension_numbers"])
    sp = list(dn.input_spatial_dimensions)
    nsp = len(sp)
    if nsp not in _CONV:
        raise Unsupported(f"{nsp} spatial dimensions (1 to 3 are supported)")
    if int_attr(op, "batch_group_count", 1) != 1:
        raise Unsupported("batch_group_count > 1 (a weight-gradient convolution)")
    if any(ints_attr(op, "window_reversal", []) or []):
        raise Unsupported("window_reversal")
    strides = ints_attr(op, "window_strides") or [1] * nsp
    lhs_dil = ints_attr(op, "lhs_dilation") or [1] * nsp
    rhs_dil = ints_attr(op, "rhs_dilation") or [1] * nsp
    pads = padding_attr(op, nsp)
    groups = int_attr(op, "feature_group_count", 1)
    shape, dtype = cv.result_type(op)
    # Framework layout -> N C spatial / O I spatial; the forge layout pass turns NHWC back on the device.
    x = permute(cv, x, [dn.input_batch_dimension, dn.input_feature_dimension] + sp, "to_nchw")
    w = permute(cv, w, [dn.kernel_output_feature_dimension, dn.kernel_input_feature_dimension]
                + list(dn.kernel_spatial_dimensions), "to_oihw")
    for i, f in enumerate(lhs_dil):       # transposed convolution: zeros between input pixels
        if f > 1:
            x = _dilate(cv, x, 2 + i, f)
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        xs = cv.shape_of(x)
        x = static_slice(cv, x, [0, 0] + [max(-lo, 0) for lo, _ in pads],
                         list(xs[:2]) + [n - max(-hi, 0) for n, (_, hi) in zip(xs[2:], pads)])
        pads = [(max(lo, 0), max(hi, 0)) for lo, hi in pads]
    fn, data_layout, kernel_layout = _CONV[nsp]
    padding = [lo for lo, _ in pads] + [hi for _, hi in pads]
    y = cv.emit(fn(x, w, strides=strides, padding=padding, dilation=rhs_dil, groups=groups,
                   data_layout=data_layout, kernel_layout=kernel_layout,
                   out_dtype=dtype if dtype != cv.dtype_of(x) else None), f"conv{nsp}d")
    canon = [dn.output_batch_dimension, dn.output_feature_dimension] + list(dn.output_spatial_dimensions)
    return permute(cv, y, [canon.index(d) for d in range(len(canon))], "from_nchw")


def _dilate(cv, x, axis, f):
    """Insert f-1 zeros between neighbours along `axis`."""
    s = list(cv.shape_of(x))
    n = s[axis]
    y = reshape_to(cv, x, s[:axis + 1] + [1] + s[axis + 1:])
    width = [0] * (2 * len(s) + 2)
    width[2 * (axis + 1) + 1] = f - 1
    y = cv.emit(R.nn.pad(y, width, "constant", 0.0))
    y = reshape_to(cv, y, s[:axis] + [n * f] + s[axis + 1:])
    return static_slice(cv, y, [0] * len(s), s[:axis] + [(n - 1) * f + 1] + s[axis + 1:])


# ---- reductions ----------------------------------------------------------------------

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


_REDUCERS = {"add": (R.sum, R.add, 0), "multiply": (R.prod, R.multiply, 1),
             "maximum": (R.max, R.maximum, -np.inf), "minimum": (R.min, R.minimum, np.inf),
             "and": (R.min, R.logical_and, True), "or": (R.max, R.logical_or, False)}


def _is_identity(v, kind, dtype):
    if v is None or v.size != 1:
        return False
    v = v.reshape(())
    ident = _REDUCERS[kind][2]
    if kind == "maximum" and not dtype.startswith("float"):
        return v == np.iinfo(dtype).min if dtype != "bool" else not v
    if kind == "minimum" and not dtype.startswith("float"):
        return v == np.iinfo(dtype).max if dtype != "bool" else bool(v)
    return v == ident


@converter("stablehlo.reduce")
def reduce(cv, op, ins):
    dims = ints_attr(op, "dimensions")
    n = len(ins) // 2
    if n == 2:
        return _arg_reduce(cv, op, ins, dims)
    if n != 1:
        raise Unsupported(f"variadic reduce over {n} operands")
    x, init = ins
    kind = _single_reducer(op)
    if kind not in _REDUCERS:
        raise Unsupported(f"reducer body {[o.operation.name for o in _body_ops(op)]}")
    reduce_fn, combine, _ = _REDUCERS[kind]
    dtype = cv.dtype_of(x)
    if not dims:
        y = x
    elif kind in ("and", "or"):
        y = cv.emit(R.astype(reduce_fn(R.astype(x, "int32"), dims), "bool"), f"reduce_{kind}")
    else:
        y = cv.emit(reduce_fn(x, dims), f"reduce_{kind}")
    if not _is_identity(cv.known(init), kind, dtype):
        y = cv.emit(combine(y, init))
    return y


def _producer(value):
    """The operation defining `value`, or None for a block argument."""
    owner = value.owner
    return getattr(owner, "operation", owner) if hasattr(owner, "attributes") else None


def _is_iota_along(value, dim):
    owner = _producer(value)
    return owner is not None and owner.name == "stablehlo.iota" and int_attr(owner, "iota_dimension") == dim


def _arg_reduce(cv, op, ins, dims):
    """jnp.argmax/argmin: a two-operand reduce of (values, iota) whose body compares values."""
    x, idx, _, _ = ins
    args = list(op.regions[0].blocks[0].arguments)
    values = {args[0], args[2]}     # reducer args: (acc value, acc index, value, index)
    dirs = {enum_attr(o, "comparison_direction") for o in _body_ops(op)
            if o.operation.name == "stablehlo.compare" and set(o.operands) == values}
    is_iota = len(dims) == 1 and _is_iota_along(op.operands[1], dims[0])
    if not is_iota or len(dirs & {"GT", "LT"}) != 1:
        raise Unsupported("a two-operand reduce other than argmax/argmin")
    is_max = "GT" in dirs
    axis = dims[0]
    values = cv.emit((R.max if is_max else R.min)(x, [axis]), "reduce_max" if is_max else "reduce_min")
    index = cv.emit((R.argmax if is_max else R.argmin)(x, axis), "argmax" if is_max else "argmin")
    idt = cv.dtype_of(idx)
    if cv.dtype_of(index) != idt:
        index = cv.emit(R.astype(index, idt))
    return [values, index]


def _cumulative(cv, x, axis, kind):
    if kind == "add":
        return cv.emit(R.cumsum(x, axis=axis), "cumsum")
    if kind == "multiply":
        return cv.emit(R.cumprod(x, axis=axis), "cumprod")
    # cummax/cummin by doubling: y_i = op(y_i, y_{i-s}) for s = 1, 2, 4 ... (slices, concat, max/min).
    combine = _REDUCERS[kind][1]
    shape = list(cv.shape_of(x))
    n, s, y = shape[axis], 1, x
    while s < n:
        head = static_slice(cv, y, [0] * len(shape), [s if d == axis else k for d, k in enumerate(shape)])
        prev = static_slice(cv, y, [0] * len(shape), [n - s if d == axis else k for d, k in enumerate(shape)])
        tail = static_slice(cv, y, [s if d == axis else 0 for d in range(len(shape))], shape)
        y = cv.emit(R.concat([head, cv.emit(combine(tail, prev))], axis=axis), f"cum_{kind}")
        s *= 2
    return y


_POOL = {1: ("NCW", R.nn.max_pool1d, R.nn.avg_pool1d), 2: ("NCHW", R.nn.max_pool2d, R.nn.avg_pool2d),
         3: ("NCDHW", R.nn.max_pool3d, R.nn.avg_pool3d)}


@converter("stablehlo.reduce_window")
def reduce_window(cv, op, ins):
    if len(ins) != 2:
        raise Unsupported("variadic reduce_window")
    x, init = ins
    shape = cv.shape_of(x)
    rank = len(shape)
    window = ints_attr(op, "window_dimensions")
    strides = ints_attr(op, "window_strides") or [1] * rank
    dil = ints_attr(op, "window_dilations") or [1] * rank
    if any(d != 1 for d in ints_attr(op, "base_dilations") or [1] * rank):
        raise Unsupported("base_dilations (a pooling gradient)")
    pads = padding_attr(op, rank)
    kind = _single_reducer(op)
    if kind not in _REDUCERS:
        raise Unsupported(f"reduce_window with reducer {kind or 'body'}")
    if not _is_identity(cv.known(init), kind, cv.dtype_of(x)):
        raise Unsupported("reduce_window whose init value is not the reducer's identity")
    sp = [d for d in range(rank) if window[d] != 1 or strides[d] != 1 or pads[d] != (0, 0)]
    # jnp.cumsum/cumprod, lax.cummax/cummin: a window as long as the axis, padded in front.
    if (len(sp) == 1 and window[sp[0]] == shape[sp[0]] and pads[sp[0]] == (shape[sp[0]] - 1, 0)
            and strides[sp[0]] == 1 and dil[sp[0]] == 1):
        return _cumulative(cv, x, sp[0], kind)
    if kind not in ("add", "maximum"):
        raise Unsupported(f"reduce_window with reducer {kind} other than a cumulative one")
    if not sp:
        return x
    if len(sp) not in _POOL:
        raise Unsupported(f"pooling over {len(sp)} dimensions")
    others = [d for d in range(rank) if d not in sp]
    xt = permute(cv, x, others + sp, "to_nchw")
    lead = [shape[d] for d in others]
    if len(others) != 2:      # fold the non-window dims into N=1, C=prod
        xt = reshape_to(cv, xt, [1, int(np.prod(lead))] + [shape[d] for d in sp])
    layout, max_pool, avg_pool = _POOL[len(sp)]
    kw = dict(pool_size=[window[d] for d in sp], strides=[strides[d] for d in sp],
              dilation=[dil[d] for d in sp],
              padding=[pads[d][0] for d in sp] + [pads[d][1] for d in sp], layout=layout)
    if kind == "maximum":
        y = cv.emit(max_pool(xt, **kw), "max_pool")
    else:   # sum pool = average pool counting the zero padding, times the window size
        y = cv.emit(avg_pool(xt, count_include_pad=True, **kw), "avg_pool")
        size = int(np.prod([window[d] for d in sp]))
        y = cv.emit(R.multiply(y, relax.const(np.asarray(size, dtype=cv.dtype_of(x)))), "sum_pool")
    out_sp = list(cv.shape_of(y)[2:])
    if len(others) != 2:
        y = reshape_to(cv, y, lead + out_sp)
    order = others + sp
    return permute(cv, y, [order.index(d) for d in range(rank)], "from_nchw")


# ---- gather / scatter / sort ----------------------------------------------------------

def _index_batch(cv, idx, ivd):
    """Indices with the index-vector dim (of size 1) removed."""
    s = list(cv.shape_of(idx))
    if ivd < len(s):
        if s[ivd] != 1:
            raise Unsupported("gather/scatter over more than one indexed dimension")
        s.pop(ivd)
    return reshape_to(cv, idx, s), s


@converter("stablehlo.gather")
def gather(cv, op, ins):
    from jaxlib.mlir.dialects import stablehlo as shlo
    x, idx = ins
    dn = shlo.GatherDimensionNumbers(op.attributes["dimension_numbers"])
    sizes = ints_attr(op, "slice_sizes")
    xs = cv.shape_of(x)
    out_shape, _ = cv.result_type(op)
    smap, collapsed = list(dn.start_index_map), list(dn.collapsed_slice_dims)
    offset = list(dn.offset_dims)
    obatch, ibatch = list(dn.operand_batching_dims), list(dn.start_indices_batching_dims)
    if len(smap) != 1:
        return _point_gather(cv, op, x, idx, dn, sizes, out_shape)
    axis = smap[0]
    ind, bshape = _index_batch(cv, idx, dn.index_vector_dim)
    if obatch:
        # jnp.take_along_axis: every other dim is a batch dim, one element per index.
        if (sorted(obatch + [axis]) == list(range(len(xs))) and list(out_shape) == bshape
                and all(sizes[d] == 1 for d in range(len(xs))) and len(bshape) == len(xs)
                and [d for d in range(len(bshape)) if d not in ibatch] == [axis] and obatch == ibatch):
            return cv.emit(R.gather_elements(x, ind, axis), "take_along_axis")
        raise Unsupported("batched gather other than take_along_axis")
    if sizes[axis] != 1 or any(sizes[d] != xs[d] for d in range(len(xs)) if d != axis):
        raise Unsupported("gather of partial slices")
    y = cv.emit(R.take(x, ind, axis=axis, mode="clip"), "take")
    # take's dims: x[:axis], index batch dims, x[axis+1:]; gather puts x's kept dims at offset_dims.
    kept = [d for d in range(len(xs)) if d != axis]
    labels = [("x", d) for d in kept[:axis]] + [("b", j) for j in range(len(bshape))] + \
             [("x", d) for d in kept[axis:]]
    return _arrange_gather_output(cv, y, labels, out_shape, offset, collapsed, len(xs), [axis])


def _arrange_gather_output(cv, y, labels, out_shape, offset, collapsed, rank, indexed):
    """Permute a take result (dims named by `labels`) into gather's output order, then reshape
    (indexed dims gather keeps as size-1 offset dims reappear in the reshape)."""
    kept_out = [d for d in range(rank) if d not in collapsed]
    out_labels, bi, oi = [], 0, 0
    for pos in range(len(out_shape)):
        if pos in offset:
            d = kept_out[oi]
            oi += 1
            if d not in indexed:
                out_labels.append(("x", d))
        else:
            out_labels.append(("b", bi))
            bi += 1
    y = permute(cv, y, [labels.index(lab) for lab in out_labels])
    return reshape_to(cv, y, out_shape)


def _point_gather(cv, op, x, idx, dn, sizes, out_shape):
    """x[i, j] with index arrays: one take on x's indexed dims flattened (row-major linear index)."""
    xs = cv.shape_of(x)
    smap, collapsed, offset = list(dn.start_index_map), list(dn.collapsed_slice_dims), list(dn.offset_dims)
    rest = [d for d in range(len(xs)) if d not in smap]
    if list(dn.operand_batching_dims):
        raise Unsupported("batched gather over several indexed dimensions")
    if any(sizes[d] != 1 for d in smap) or any(sizes[d] != xs[d] for d in rest):
        raise Unsupported("gather of partial slices over several indexed dimensions")
    ishape = list(cv.shape_of(idx))
    ivd = dn.index_vector_dim
    ind = permute(cv, idx, [d for d in range(len(ishape)) if d != ivd] + [ivd])
    bshape = [n for d, n in enumerate(ishape) if d != ivd]
    idt = cv.dtype_of(idx)
    linear, stride = None, 1
    for j in reversed(range(len(smap))):
        n = xs[smap[j]]
        ij = static_slice(cv, ind, [0] * len(bshape) + [j], bshape + [j + 1])
        ij = reshape_to(cv, ij, bshape)
        ij = cv.emit(R.minimum(R.maximum(ij, relax.const(np.zeros((), idt))), relax.const(np.asarray(n - 1, idt))))
        term = ij if stride == 1 else cv.emit(R.multiply(ij, relax.const(np.asarray(stride, idt))))
        linear = term if linear is None else cv.emit(R.add(linear, term))
        stride *= n
    flat = reshape_to(cv, permute(cv, x, smap + rest), [stride] + [xs[d] for d in rest])
    y = cv.emit(R.take(flat, linear, axis=0, mode="clip"), "take")
    labels = [("b", j) for j in range(len(bshape))] + [("x", d) for d in rest]
    return _arrange_gather_output(cv, y, labels, out_shape, offset, collapsed, len(xs), smap)


_SCATTER_REDUCTION = {"update": "update", "add": "add", "multiply": "mul", "maximum": "max", "minimum": "min"}


@converter("stablehlo.scatter")
def scatter(cv, op, ins):
    """x.at[idx].set/add/...: rows along one axis, as scatter_elements with broadcast indices."""
    from jaxlib.mlir.dialects import stablehlo as shlo
    if len(ins) != 3:
        raise Unsupported("variadic scatter")
    x, idx, upd = ins
    dn = shlo.ScatterDimensionNumbers(op.attributes["scatter_dimension_numbers"])
    kind = _single_reducer(op)
    if kind not in _SCATTER_REDUCTION:
        raise Unsupported(f"scatter with update computation {kind or 'body'}")
    smap, inserted = list(dn.scattered_dims_to_operand_dims), list(dn.inserted_window_dims)
    window = list(dn.update_window_dims)
    if list(dn.input_batching_dims) or len(smap) != 1 or inserted != smap:
        raise Unsupported("scatter other than x.at[indices] along one axis")
    axis = smap[0]
    xs, us = cv.shape_of(x), cv.shape_of(upd)
    ind, bshape = _index_batch(cv, idx, dn.index_vector_dim)
    kept = [d for d in range(len(xs)) if d != axis]
    if [us[p] for p in window] != [xs[d] for d in kept]:
        raise Unsupported("scatter of partial windows")
    nb = int(np.prod(bshape)) if bshape else 1
    # updates -> [x dims before axis, flattened batch, x dims after axis]
    batch_pos = [p for p in range(len(us)) if p not in window]
    u = permute(cv, upd, window[:axis] + batch_pos + window[axis:])
    target = [xs[d] for d in kept[:axis]] + [nb] + [xs[d] for d in kept[axis:]]
    u = reshape_to(cv, u, target)
    ind = reshape_to(cv, ind, [nb])
    ind = reshape_to(cv, ind, [nb if i == axis else 1 for i in range(len(xs))])
    ind = cv.emit(R.broadcast_to(ind, target))
    return cv.emit(R.scatter_elements(x, ind, u, axis=axis, reduction=_SCATTER_REDUCTION[kind]), "scatter")


@converter("stablehlo.sort")
def sort(cv, op, ins):
    """jnp.sort / argsort: a comparator ending in one LT (ascending) or GT (descending) compare."""
    axis = int_attr(op, "dimension")
    body = _body_ops(op)
    ret = _producer(body[-1].operands[0])
    direction = enum_attr(ret, "comparison_direction") if ret is not None and ret.name == "stablehlo.compare" else None
    if direction not in ("LT", "GT"):
        raise Unsupported("sort with a custom comparator")
    descending = direction == "GT"
    x = ins[0]
    if len(ins) == 1:
        return cv.emit(R.sort(x, axis=axis, descending=descending))
    if len(ins) == 2 and _is_iota_along(op.operands[1], axis):
        idt = cv.dtype_of(ins[1])
        order = cv.emit(R.argsort(x, axis=axis, descending=descending, dtype=idt), "argsort")
        values = cv.emit(R.gather_elements(x, order, axis), "sort")
        return [values, order]
    raise Unsupported("sort of several operands other than (values, iota)")


# ---- control flow --------------------------------------------------------------------

@converter("stablehlo.while")
def while_(cv, op, ins):
    """Unrolled: the trip count must follow from constants (lax.scan / fori_loop with static bounds)."""
    cond_block, body_block = op.regions[0].blocks[0], op.regions[1].blocks[0]
    carried = list(ins)
    for _ in range(MAX_UNROLL + 1):
        (pred,) = cv.convert_block(cond_block, carried)
        value = cv.known(pred)
        if value is None:
            raise Unsupported("a while loop whose trip count depends on run-time values "
                              "(use lax.scan or fori_loop with static bounds)")
        if not bool(value.reshape(())):
            return carried
        carried = cv.convert_block(body_block, carried)
    raise Unsupported(f"a while loop of more than {MAX_UNROLL} iterations (unrolled loops are capped)")


@converter("stablehlo.if")
def if_(cv, op, ins):
    pred = cv.known(ins[0])
    if pred is None:
        raise Unsupported("lax.cond on a run-time predicate (use jnp.where)")
    return cv.convert_block(op.regions[0 if bool(pred.reshape(())) else 1].blocks[0], [])


@converter("stablehlo.case")
def case(cv, op, ins):
    index = cv.known(ins[0])
    if index is None:
        raise Unsupported("lax.switch on a run-time index")
    n = len(op.regions)
    i = int(index.reshape(()))
    return cv.convert_block(op.regions[i if 0 <= i < n else n - 1].blocks[0], [])

