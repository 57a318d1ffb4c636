"""KV-cache writes: `index_copy`, the device form of `cache[:, :, idx] = new` (ttir.fill_cache / ttir.update_cache).

transformers' StaticCache writes a layer's new keys/values with `cache.index_copy_(2, pos, new)`;
torch.export turns that into `index_put(cache, [None, None, pos], new)` and the torch frontend into
a `relax.index_put` whose indices are full aranges on every dim but the sequence dim
(frontend/torch_index_put.py). Two instances have a TTIR op of their own, and they are the
two a decoder needs:

* prefill: `pos` is the constant run 0..C-1: ``ttir.fill_cache(cache, new)`` writes rows
  [0, C) of the sequence dim;
* decode: `pos` is one run-time row: ``ttir.update_cache(cache, new, pos)``.

Math (both): y = x; y[:, :, pos[i], :] = new[:, :, i, :]. Any other index_put stays on the CPU.
The device updates the cache in place (tt-mlir's semantics); the executor keeps that safe by
copying first unless the cache operand is dead after the op (runtime/executor.py).
"""
from __future__ import annotations

import numpy as np
import torch

from forge_fe.op.registry import NotOnDevice, TensorType, defop, static_shape
from forge_fe.ttir import emitter as E

CACHE_AXIS = 2         # TTIR's cache layout: [batch, heads, sequence, head_dim]


def _constant(expr):
    import tvm
    return expr.value.numpy() if isinstance(expr, tvm.ir.expr.Constant) else None


def _is_full_slice(value, dim: int, size: int) -> bool:
    """Is this index the arange of `dim`, laid on axis `dim` (what a `:` becomes)?"""
    if value is None or value.shape[dim] != size or value.size != size:
        return False
    return bool(np.array_equal(value.reshape(-1), np.arange(size)))


def _index_copy_from_relax(call):
    from tvm import relax
    data, indices, new = call.args[0], call.args[1], call.args[2]
    if bool(call.attrs.accumulate):
        raise NotOnDevice("index_put with accumulate=True")
    if not isinstance(indices, relax.Tuple):
        raise NotOnDevice("index_put with a tuple variable of indices")
    shape, new_shape = static_shape(data.ty), static_shape(new.ty)
    fields = list(indices.fields)
    if len(shape) != 4 or len(fields) != 4 or not str(data.ty.dtype).startswith(("float", "bfloat")):
        raise NotOnDevice("index_put other than a float [batch, heads, seq, head_dim] cache write")
    values = [_constant(f) for f in fields]
    written = [d for d in range(4) if not _is_full_slice(values[d], d, shape[d])]
    if written != [CACHE_AXIS]:
        raise NotOnDevice("index_put that does not write whole rows of the sequence dim (dim 2)")
    rows = new_shape[CACHE_AXIS]
    want = tuple(rows if d == CACHE_AXIS else s for d, s in enumerate(shape))
    idx_shape = static_shape(fields[CACHE_AXIS].ty)
    if new_shape != want or idx_shape != tuple(rows if d == CACHE_AXIS else 1 for d in range(4)):
        raise NotOnDevice("index_put whose new rows are broadcast")
    pos = values[CACHE_AXIS]
    if pos is not None:
        if not np.array_equal(pos.reshape(-1), np.arange(rows)):
            raise NotOnDevice("cache write at constant rows other than 0..n-1 (ttir.fill_cache starts at row 0)")
        return [data, new], {"axis": CACHE_AXIS}
    if rows != 1:
        raise NotOnDevice("cache write of several rows at a run-time position (TTIR has fill_cache from row 0 "
                          "and update_cache of one row)")
    return [data, new, fields[CACHE_AXIS]], {"axis": CACHE_AXIS}


def _index_copy_golden(ins, a):
    y, new = ins[0].clone(), ins[1].to(ins[0].dtype)
    pos = torch.arange(new.shape[a["axis"]]) if len(ins) == 2 else ins[2].reshape(-1).long()
    return y.index_copy_(a["axis"], pos, new)


def _index_copy_lower(e, ins, a, out):
    attrs = {"batch_offset": E.I32(0)}
    if len(ins) == 2:
        return e.op("ttir.fill_cache", ins, out.shape, out.elem, attrs, data_format=out.data_format)
    cache, new, pos = ins
    if pos.shape != (1,):
        pos = e.op("ttir.reshape", [pos], (1,), pos.elem, {"shape": E.I32List([1])})
    return e.op("ttir.update_cache", [cache, new, pos], out.shape, out.elem, attrs, data_format=out.data_format)


index_copy = defop(
    "index_copy", shape=lambda ins, a: TensorType(ins[0].shape, ins[0].dtype),
    golden=_index_copy_golden, lower=_index_copy_lower,
    relax=("relax.index_put",), from_relax=_index_copy_from_relax,
    doc="y = x; y[:, :, pos[i], :] = new[:, :, i, :] (a KV-cache write). Inputs (cache, new) write rows "
        "0..n-1 (ttir.fill_cache); (cache, new, pos) write one row at run-time position pos (ttir.update_cache)")
