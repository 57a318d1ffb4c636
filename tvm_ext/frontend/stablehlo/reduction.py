"""StableHLO reductions: reduce (single reducers, arg-max/min pairs, cumulative forms), pooling
windows (reduce_window) and sort."""
from __future__ import annotations

import numpy as np
from tvm import relax

from .common import (
    R, Unsupported, _body_ops, _single_reducer, enum_attr, int_attr, ints_attr, padding_attr, permute,
    registrar, reshape_to, static_slice,
)

#: StableHLO op name -> converter, merged by :mod:`.registry`
CONVERTERS: dict = {}
converter = registrar(CONVERTERS)


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
    kw = {"pool_size": [window[d] for d in sp], "strides": [strides[d] for d in sp],
          "dilation": [dil[d] for d in sp], "padding": [pads[d][0] for d in sp] + [pads[d][1] for d in sp],
          "layout": layout}
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
