"""StableHLO converters for compute and control flow: dot_general, convolution, reductions,
pooling windows, gather/scatter/sort, and while/if/case (registered into ``CONVERTERS``).

Shared helpers and the elementwise / data-movement converters live in
:mod:`tvm_ext.frontend.stablehlo_ops`.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from tvm_ext.frontend.stablehlo import MAX_UNROLL, Unsupported
from tvm_ext.frontend.stablehlo_ops import (
    R,
    converter,
    enum_attr,
    int_attr,
    ints_attr,
    padding_attr,
    permute,
    reshape_to,
    static_slice,
)

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
    _, dtype = cv.result_type(op)
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


def _linear_index(cv, idx, ivd, dims):
    """Row-major linear index into `dims` from index vectors (along `ivd`), each clamped into range."""
    ishape = list(cv.shape_of(idx))
    ind = permute(cv, idx, [d for d in range(len(ishape)) if d != ivd] + [ivd])
    bshape = [n for d, n in enumerate(ishape) if d != ivd]
    idt = cv.dtype_of(idx)
    linear, stride = None, 1
    for j in reversed(range(len(dims))):
        ij = reshape_to(cv, static_slice(cv, ind, [0] * len(bshape) + [j], bshape + [j + 1]), bshape)
        ij = cv.emit(R.minimum(R.maximum(ij, relax.const(np.zeros((), idt))), relax.const(np.asarray(dims[j] - 1, idt))))
        term = ij if stride == 1 else cv.emit(R.multiply(ij, relax.const(np.asarray(stride, idt))))
        linear = term if linear is None else cv.emit(R.add(linear, term))
        stride *= dims[j]
    return linear


def _point_gather(cv, op, x, idx, dn, sizes, out_shape):
    """x[i, j] with index arrays: one take on x's indexed dims flattened (row-major linear index)."""
    xs = cv.shape_of(x)
    smap, collapsed, offset = list(dn.start_index_map), list(dn.collapsed_slice_dims), list(dn.offset_dims)
    rest = [d for d in range(len(xs)) if d not in smap]
    if list(dn.operand_batching_dims):
        raise Unsupported("batched gather over several indexed dimensions")
    if any(sizes[d] != 1 for d in smap) or any(sizes[d] != xs[d] for d in rest):
        raise Unsupported("gather of partial slices over several indexed dimensions")
    linear = _linear_index(cv, idx, dn.index_vector_dim, [xs[d] for d in smap])
    bshape = list(cv.shape_of(linear))
    flat = reshape_to(cv, permute(cv, x, smap + rest), [int(np.prod([xs[d] for d in smap]))] + [xs[d] for d in rest])
    y = cv.emit(R.take(flat, linear, axis=0, mode="clip"), "take")
    labels = [("b", j) for j in range(len(bshape))] + [("x", d) for d in rest]
    return _arrange_gather_output(cv, y, labels, out_shape, offset, collapsed, len(xs), smap)


_SCATTER_REDUCTION = {"update": "update", "add": "add", "multiply": "mul", "maximum": "max", "minimum": "min"}


@converter("stablehlo.scatter")
def scatter(cv, op, ins):
    """x.at[idx].set/add/...: rows along one axis (or points over several, flattened into one axis),
    as scatter_elements with broadcast indices."""
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
    if list(dn.input_batching_dims) or sorted(inserted) != sorted(smap):
        raise Unsupported("scatter other than x.at[indices] (batched, or of partial windows)")
    xs, us = cv.shape_of(x), cv.shape_of(upd)
    rest = [d for d in range(len(xs)) if d not in smap]
    if [us[p] for p in window] != [xs[d] for d in rest]:
        raise Unsupported("scatter of partial windows")
    batch_pos = [p for p in range(len(us)) if p not in window]
    nb = int(np.prod([us[p] for p in batch_pos]))
    reduction = _SCATTER_REDUCTION[kind]
    if len(smap) == 1:
        axis = smap[0]
        ind, _ = _index_batch(cv, idx, dn.index_vector_dim)
        return _scatter_rows(cv, x, reshape_to(cv, ind, [nb]), upd, window, batch_pos, axis, reduction)
    # Points over several dims: scatter rows of x viewed as [prod(indexed dims), rest...].
    xp = permute(cv, x, smap + rest)
    flat = reshape_to(cv, xp, [int(np.prod([xs[d] for d in smap]))] + [xs[d] for d in rest])
    linear = _linear_index(cv, idx, dn.index_vector_dim, [xs[d] for d in smap])
    y = _scatter_rows(cv, flat, reshape_to(cv, linear, [nb]), upd, window, batch_pos, 0, reduction)
    y = reshape_to(cv, y, [xs[d] for d in smap + rest])
    order = smap + rest
    return permute(cv, y, [order.index(d) for d in range(len(xs))])


def _scatter_rows(cv, x, ind, upd, window, batch_pos, axis, reduction):
    """x[..., ind[b], ...] (op)= upd: updates permuted to x's dim order with the batch at `axis`."""
    xs = cv.shape_of(x)
    nb = cv.shape_of(ind)[0]
    u = permute(cv, upd, window[:axis] + batch_pos + window[axis:])
    target = list(xs[:axis]) + [nb] + list(xs[axis + 1:])
    u = reshape_to(cv, u, target)
    ind = reshape_to(cv, ind, [nb if i == axis else 1 for i in range(len(xs))])
    known = cv.known(ind)
    if known is None or known.min() < 0 or known.max() >= xs[axis]:
        ind, u = _drop_out_of_bounds(cv, x, ind, u, axis, reduction)
    ind = cv.emit(R.broadcast_to(ind, target))
    return cv.emit(R.scatter_elements(x, ind, u, axis=axis, reduction=reduction), "scatter")


def _drop_out_of_bounds(cv, x, ind, u, axis, reduction):
    """XLA skips updates whose index is out of bounds: clamp those indices and make their
    update a no-op (the reduction's identity, or the current value for a plain set)."""
    n, idt, dt = cv.shape_of(x)[axis], cv.dtype_of(ind), cv.dtype_of(x)
    valid = cv.emit(R.logical_and(R.greater_equal(ind, relax.const(np.asarray(0, idt))),
                                  R.less(ind, relax.const(np.asarray(n, idt)))))
    ind = cv.emit(R.minimum(R.maximum(ind, relax.const(np.asarray(0, idt))), relax.const(np.asarray(n - 1, idt))))
    if reduction == "update":
        keep = cv.emit(R.gather_elements(x, cv.emit(R.broadcast_to(ind, cv.shape_of(u))), axis))
    else:
        info = np.finfo(dt) if dt.startswith(("float", "bfloat")) else np.iinfo(dt)
        identity = {"add": 0, "mul": 1, "max": info.min, "min": info.max}[reduction]
        keep = relax.const(np.asarray(identity, dt))
    return ind, cv.emit(R.where(valid, u, keep))


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
    """lax.cond: the taken branch for a constant predicate; else both branches and a select
    (StableHLO is pure, so computing the untaken branch only costs time)."""
    pred = cv.known(ins[0])
    if pred is not None:
        return cv.convert_block(op.regions[0 if bool(pred.reshape(())) else 1].blocks[0], [])
    taken = cv.convert_block(op.regions[0].blocks[0], [])
    other = cv.convert_block(op.regions[1].blocks[0], [])
    return [cv.emit(R.where(ins[0], a, b), "cond") for a, b in zip(taken, other)]


@converter("stablehlo.case")
def case(cv, op, ins):
    """lax.switch: out-of-range indices take the last branch, as in StableHLO."""
    n = len(op.regions)
    index = cv.known(ins[0])
    if index is not None:
        i = int(index.reshape(()))
        return cv.convert_block(op.regions[i if 0 <= i < n else n - 1].blocks[0], [])
    results = cv.convert_block(op.regions[n - 1].blocks[0], [])
    idt = cv.dtype_of(ins[0])
    for i in reversed(range(n - 1)):
        branch = cv.convert_block(op.regions[i].blocks[0], [])
        hit = cv.emit(R.equal(ins[0], relax.const(np.asarray(i, idt))))
        results = [cv.emit(R.where(hit, a, b), "switch") for a, b in zip(branch, results)]
    return results
