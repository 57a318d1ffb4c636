"""StableHLO gather and scatter, as row gathers (``take``) and ``scatter_elements`` on flattened
indices."""
from __future__ import annotations

import numpy as np
from tvm import relax

from .common import R, Unsupported, _single_reducer, ints_attr, permute, registrar, reshape_to, static_slice

#: StableHLO op name -> converter, merged by :mod:`.registry`
CONVERTERS: dict = {}
converter = registrar(CONVERTERS)


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
