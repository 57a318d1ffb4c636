"""Data-movement ops: reshape, permute, concat, slice, broadcast, take (gather/embedding), repeat."""
from __future__ import annotations

import numpy as np
import torch

from forge_fe.op.registry import (NotOnDevice, TensorType, defop, ints, norm_axis, relax_tensor_args,
                                  static_shape)
from forge_fe.ttir import emitter as E


def _result_shape_from_relax(call):
    """For ops whose Relax args spell the result shape in many ways: read the result type."""
    return [relax_tensor_args(call)[0]], {"shape": list(static_shape(call.ty))}


reshape = defop(
    "reshape", shape=lambda ins, a: TensorType(tuple(a["shape"]), ins[0].dtype),
    golden=lambda ins, a: ins[0].reshape(a["shape"]),
    lower=lambda e, ins, a, out: e.op("ttir.reshape", ins, out.shape, out.elem, {"shape": E.I32List(a["shape"])},
                                      data_format=out.data_format),
    relax=("relax.reshape", "relax.expand_dims", "relax.squeeze", "relax.flatten"),
    from_relax=_result_shape_from_relax, backward=lambda d: [d.op(reshape, d.grad, shape=list(d.x[0].shape))])


def _permute_from_relax(call):
    rank = call.args[0].ty.ndim
    axes = call.attrs.axes
    perm = list(reversed(range(rank))) if axes is None else [norm_axis(int(x), rank) for x in axes]
    return relax_tensor_args(call), {"perm": perm}


permute = defop(
    "permute", shape=lambda ins, a: TensorType(tuple(ins[0].shape[p] for p in a["perm"]), ins[0].dtype),
    golden=lambda ins, a: ins[0].permute(a["perm"]),
    lower=lambda e, ins, a, out: e.op("ttir.permute", ins, out.shape, out.elem,
                                      {"permutation": E.I64Array(a["perm"])}, data_format=out.data_format),
    relax=("relax.permute_dims",), from_relax=_permute_from_relax,
    backward=lambda d: [d.op(permute, d.grad, perm=[int(i) for i in np.argsort(d.node.attrs["perm"])])])


def _concat_shape(ins, a):
    d = a["dim"]
    shape = list(ins[0].shape)
    shape[d] = sum(i.shape[d] for i in ins)
    return TensorType(tuple(shape), ins[0].dtype)


def _concat_from_relax(call):
    from tvm import relax
    tup = call.args[0]
    if not isinstance(tup, relax.Tuple):
        raise NotOnDevice("concat of a tuple variable")
    rank = tup.fields[0].ty.ndim
    return list(tup.fields), {"dim": norm_axis(int(call.attrs.axis), rank)}


def _concat_grad(d):
    """Each input's gradient is its slice of g along dim."""
    dim, grads, start = d.node.attrs["dim"], [], 0
    for x, need in zip(d.x, d.needs):
        begins, ends = [0] * len(x.shape), list(d.grad.shape)
        begins[dim], ends[dim] = start, start + x.shape[dim]
        start += x.shape[dim]
        grads.append(d.op(slice_, d.grad, begins=begins, ends=ends, steps=[1] * len(x.shape)) if need else None)
    return grads


concat = defop(
    "concat", shape=_concat_shape, golden=lambda ins, a: torch.cat(ins, a["dim"]), backward=_concat_grad,
    lower=lambda e, ins, a, out: e.op("ttir.concat", ins, out.shape, out.elem, {"dim": E.SI32(a["dim"])},
                                      data_format=out.data_format),
    relax=("relax.concat",), from_relax=_concat_from_relax)


def _slice_shape(ins, a):
    return TensorType(tuple(len(range(b, e, s)) for b, e, s in zip(a["begins"], a["ends"], a["steps"])),
                      ins[0].dtype)


def _slice_golden(ins, a):
    return ins[0][tuple(slice(b, e, s) for b, e, s in zip(a["begins"], a["ends"], a["steps"]))]


def _slice_from_relax(call):
    """relax.strided_slice(x, axes, begin, end, strides): normalize to full per-dim begins/ends/steps."""
    x = call.args[0]
    shape = static_shape(x.ty)
    try:
        axes, begin, end = (ints(v.values if hasattr(v, "values") else v.fields) for v in call.args[1:4])
        strides = ints(call.args[4].values if hasattr(call.args[4], "values") else call.args[4].fields) \
            if len(call.args) > 4 else [1] * len(axes)
    except (TypeError, AttributeError):
        raise NotOnDevice("strided_slice with non-static bounds")
    begins, ends, steps = [0] * len(shape), list(shape), [1] * len(shape)
    for ax, b, e, s in zip(axes, begin, end, strides):
        ax = norm_axis(ax, len(shape))
        if s <= 0:
            raise NotOnDevice("strided_slice with a negative step")
        b, e, _ = slice(b, e, s).indices(shape[ax])
        begins[ax], ends[ax], steps[ax] = b, e, s
    return [x], {"begins": begins, "ends": ends, "steps": steps}


def _pad_with_zeros(d, g, shape, begins, ends):
    """g placed at [begins:ends] of a zero tensor of `shape` (a concat with zeros per padded dim)."""
    for dim, (b, e) in enumerate(zip(begins, ends)):
        parts = []
        for width in (b, shape[dim] - e):
            zshape = list(g.shape)
            zshape[dim] = width
            parts.append(d.graph.add_const(f"{d.node.name}.bwd.zeros", np.zeros(zshape, g.dtype)) if width else None)
        if parts[0] is not None or parts[1] is not None:
            g = d.op(concat, *[p for p in (parts[0], g, parts[1]) if p is not None], dim=dim)
    return g


def _slice_grad(d):
    """Unit-step slices: g padded back to x's shape with zeros."""
    a, x = d.node.attrs, d.x[0]
    if any(s != 1 for s in a["steps"]):
        raise NotImplementedError("the backward of a strided slice (step > 1) is not implemented")
    return [_pad_with_zeros(d, d.grad, x.shape, a["begins"], a["ends"])]


slice_ = defop(
    "slice", shape=_slice_shape, golden=_slice_golden, backward=_slice_grad,
    lower=lambda e, ins, a, out: e.op("ttir.slice_static", ins, out.shape, out.elem,
                                      {"begins": E.I32List(a["begins"]), "ends": E.I32List(a["ends"]),
                                       "step": E.I32List(a["steps"])}, data_format=out.data_format),
    relax=("relax.strided_slice",), from_relax=_slice_from_relax)


def _broadcast_lower(e, ins, a, out):
    x = ins[0]
    if len(x.shape) < len(out.shape):   # TTIR broadcast needs equal ranks
        shape = (1,) * (len(out.shape) - len(x.shape)) + tuple(x.shape)
        x = e.op("ttir.reshape", [x], shape, x.elem, {"shape": E.I32List(shape)})
    mult = [o if i == 1 else 1 for i, o in zip(x.shape, out.shape)]
    return e.op("ttir.broadcast", [x], out.shape, out.elem, {"broadcast_dimensions": E.I64Array(mult)},
                data_format=out.data_format)


broadcast = defop(
    "broadcast", shape=lambda ins, a: TensorType(tuple(a["shape"]), ins[0].dtype),
    golden=lambda ins, a: ins[0].broadcast_to(a["shape"]), lower=_broadcast_lower,
    backward=lambda d: [d.unbroadcast(d.grad, d.x[0].shape)],
    relax=("relax.broadcast_to",), from_relax=_result_shape_from_relax,
    doc="numpy-style broadcast to `shape`")


def _take_shape(ins, a):
    x = ins[0]
    ax = a["axis"]
    if "index" in a:                       # static scalar index: the axis disappears
        return TensorType(x.shape[:ax] + x.shape[ax + 1:], x.dtype)
    idx = ins[1]
    return TensorType(x.shape[:ax] + idx.shape + x.shape[ax + 1:], x.dtype)


def _take_golden(ins, a):
    x = ins[0]
    if "index" in a:
        return x.select(a["axis"], a["index"])
    idx = ins[1]
    return torch.index_select(x, a["axis"], idx.reshape(-1).long()).reshape(
        x.shape[:a["axis"]] + idx.shape + x.shape[a["axis"] + 1:])


def _take_from_relax(call):
    import tvm
    x, idx = call.args[0], call.args[1]
    axis = 0 if call.attrs.axis is None else norm_axis(int(call.attrs.axis), x.ty.ndim)
    if isinstance(idx, tvm.ir.expr.Constant) and idx.ty.ndim == 0:
        i = int(idx.value.numpy())
        size = static_shape(x.ty)[axis]
        if not -size <= i < size:
            raise NotOnDevice(f"take index {i} out of range for size {size}")
        return [x], {"axis": axis, "index": i % size}
    if not str(idx.ty.dtype).startswith(("int", "uint")):
        raise NotOnDevice("take with non-integer indices")
    return [x, idx], {"axis": axis}


def _take_lower(e, ins, a, out):
    if "index" in a:                       # x[..., i, ...]: a static slice, then drop the axis
        x, ax, i = ins[0], a["axis"], a["index"]
        begins = [0] * len(x.shape)
        ends = list(x.shape)
        begins[ax], ends[ax] = i, i + 1
        sliced_shape = tuple(1 if d == ax else s for d, s in enumerate(x.shape))
        y = e.op("ttir.slice_static", [x], sliced_shape, out.elem,
                 {"begins": E.I32List(begins), "ends": E.I32List(ends), "step": E.I32List([1] * len(x.shape))})
        return e.op("ttir.reshape", [y], out.shape, out.elem, {"shape": E.I32List(list(out.shape))},
                    data_format=out.data_format)
    x, idx = ins
    ax = a["axis"]
    if len(x.shape) == 2 and ax == 0:
        return e.op("ttir.embedding", [idx, x], out.shape, out.elem, data_format=out.data_format)
    # Any other axis: gather rows of a 2-D view (axis first, the other dims flattened), then put
    # the dims back: x[..., idx, ...] = permute(reshape(embedding(idx, rows), idx + others)).
    others = [d for d in range(len(x.shape)) if d != ax]
    rows = (x.shape[ax], int(np.prod([x.shape[d] for d in others], dtype=np.int64)))
    t = x if ax == 0 else e.op("ttir.permute", [x], [x.shape[ax]] + [x.shape[d] for d in others], x.elem,
                               {"permutation": E.I64Array([ax] + others)})
    t = e.op("ttir.reshape", [t], rows, x.elem, {"shape": E.I32List(rows)})
    t = e.op("ttir.embedding", [idx, t], tuple(idx.shape) + rows[1:], x.elem)
    gathered = tuple(idx.shape) + tuple(x.shape[d] for d in others)
    t = e.op("ttir.reshape", [t], gathered, x.elem, {"shape": E.I32List(gathered)})
    k = len(idx.shape)                  # gathered dims: idx's, then the others; wanted: before, idx's, after
    perm = list(range(k, k + ax)) + list(range(k)) + list(range(k + ax, len(gathered)))
    if perm == list(range(len(gathered))):
        return e.op("ttir.reshape", [t], out.shape, out.elem, {"shape": E.I32List(list(out.shape))},
                    data_format=out.data_format)
    return e.op("ttir.permute", [t], out.shape, out.elem, {"permutation": E.I64Array(perm)},
                data_format=out.data_format)


def _take_grad(d):
    """Embedding: the rows of g added at their indices (ttir.embedding_backward)."""
    from forge_fe.op.grad import embedding_grad
    if "index" in d.node.attrs:          # x.select(axis, i): g goes back into row i, zeros elsewhere
        x, ax, i = d.x[0], d.node.attrs["axis"], d.node.attrs["index"]
        kept = [1 if k == ax else s for k, s in enumerate(x.shape)]
        begins, ends = [0] * len(kept), list(kept)
        begins[ax], ends[ax] = i, i + 1
        return [_pad_with_zeros(d, d.op(reshape, d.grad, shape=kept), x.shape, begins, ends)]
    table, idx = d.x
    if len(table.shape) != 2 or d.node.attrs["axis"] != 0:
        raise NotImplementedError("the backward of take along an axis other than the rows of a 2-D table")
    return [d.op(embedding_grad, idx, table, d.grad), None]


take = defop("take", shape=_take_shape, golden=_take_golden, lower=_take_lower,
             relax=("relax.take",), from_relax=_take_from_relax, backward=_take_grad,
             doc="y[i..., :] = table[idx[i...], :] (embedding lookup, ttir.embedding); along another axis, "
                 "the same lookup in a 2-D view with that axis first; with a constant scalar index, "
                 "y = x.select(axis, index) (a static slice)")


def _repeat_from_relax(call):
    reps = ints(call.attrs.repeats)
    rank = call.args[0].ty.ndim
    reps = [1] * (rank - len(reps)) + reps
    if len(reps) != rank:
        raise NotOnDevice("tile that adds dimensions")
    return relax_tensor_args(call), {"repeats": reps}


repeat = defop(
    "repeat", shape=lambda ins, a: TensorType(tuple(d * r for d, r in zip(ins[0].shape, a["repeats"])), ins[0].dtype),
    golden=lambda ins, a: ins[0].repeat(a["repeats"]),
    lower=lambda e, ins, a, out: e.op("ttir.repeat", ins, out.shape, out.elem,
                                      {"repeat_dimensions": E.I64Array(a["repeats"])}, data_format=out.data_format),
    relax=("relax.tile",), from_relax=_repeat_from_relax)

