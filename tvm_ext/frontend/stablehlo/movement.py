"""StableHLO data movement: reshape, transpose, broadcasts, concatenate, static and dynamic slices and
updates, pad, reverse."""
from __future__ import annotations

import numpy as np
from tvm import relax

from .common import R, Unsupported, _fits, int_attr, ints_attr, permute, registrar, reshape_to, static_slice

#: StableHLO op name -> converter, merged by :mod:`.registry`
CONVERTERS: dict = {}
converter = registrar(CONVERTERS)


@converter("stablehlo.reshape")
def reshape(cv, op, ins):
    shape, dtype = cv.result_type(op)
    v = cv.known(ins[0])
    if v is not None and _fits(shape):
        return relax.const(v.reshape(shape), dtype)
    if cv.shape_of(ins[0]) == shape:
        return ins[0]
    return cv.emit(R.reshape(ins[0], shape))


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
