"""Rewrite Relax ops the device lacks into equivalent ones it has (before partitioning).

* ``conv1d`` (NCW, OIW) -> ``conv2d`` over a height-1 image: x[N,C,W] -> [N,C,1,W],
  w[O,I,K] -> [O,I,1,K], stride/dilation (1, s)/(1, d), padding (0, l, 0, r), then drop
  the height again. Whisper's and wav2vec's audio front ends are conv1d.
* ``index_tensor`` (``x[i0, i1, ...]``, numpy advanced indexing) with constant indices ->
  one row gather: x viewed as [prod(indexed dims), prod(rest)], ``take`` of the flat row
  numbers (np.ravel_multi_index of the broadcast indices), reshaped to
  broadcast(index shapes) + rest. ``take`` of table rows is the device's embedding op.
  Run-time indices stay on the CPU, wrapped (i < 0 -> i + n) first: TVM's kernel reads out of
  bounds for negative indices.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tvm_ext.passes.rewrite import constant_folding_pass, static_shape


def conv2d_of_conv1d(call, lookup):
    a = call.attrs
    if a.data_layout != "NCW" or a.kernel_layout != "OIW" or a.out_layout != "NCW":
        return None
    x, w = call.args
    if static_shape(x) is None or static_shape(w) is None:
        return None
    (left, right), (stride,), (dilation,) = [int(p) for p in a.padding], a.strides, a.dilation
    y = relax.op.nn.conv2d(relax.op.expand_dims(x, 2), relax.op.expand_dims(w, 2), strides=(1, int(stride)),
                           padding=(0, left, 0, right), dilation=(1, int(dilation)), groups=int(a.groups),
                           out_dtype=a.out_dtype if a.out_dtype is not None and str(a.out_dtype) else None)
    return relax.op.squeeze(y, [2])


def _constant(expr, lookup):
    if isinstance(expr, relax.Var):
        expr = lookup(expr)
    return expr.value.numpy() if isinstance(expr, tvm.ir.expr.Constant) else None


def take_of_index_tensor(call, lookup):
    x, indices = call.args
    shape = static_shape(x)
    if shape is None or not isinstance(indices, relax.Tuple):
        return None
    idx = [_constant(i, lookup) for i in indices.fields]
    if len(idx) > len(shape):
        return None
    if any(i is None for i in idx):
        return _wrapped_negative_indices(x, indices.fields, shape)
    k = len(idx)
    lead, rest = shape[:k], shape[k:]
    idx = [np.where(i < 0, i + n, i) for i, n in zip(np.broadcast_arrays(*idx), lead)]
    if any(((i < 0) | (i >= n)).any() for i, n in zip(idx, lead)):
        return None  # out of range: let the CPU raise as the framework would
    rows = np.ravel_multi_index(idx, lead).astype("int64")
    width = int(np.prod(rest)) if rest else 1
    table = relax.op.reshape(x, [int(np.prod(lead)), width])
    picked = relax.op.take(table, relax.const(rows, "int64"), axis=0)
    return relax.op.reshape(picked, list(rows.shape) + rest)


REWRITES = {"relax.nn.conv1d": conv2d_of_conv1d, "relax.index_tensor": take_of_index_tensor}


def _wrapped_negative_indices(x, fields, shape):
    """index_tensor with run-time indices stays on the CPU, but TVM's kernel reads out of bounds
    for negative indices (torch and numpy count them from the end): wrap them first."""
    wrapped = []
    for f, n in zip(fields, shape):
        dt = str(f.ty.dtype)
        wrapped.append(relax.op.where(relax.op.less(f, relax.const(0, dt)), relax.op.add(f, relax.const(n, dt)), f))
    return relax.op.index_tensor(x, relax.Tuple(wrapped))


def _device_form(call, lookup):
    rewrite = REWRITES.get(call.op.name)
    return rewrite(call, lookup) if rewrite else None


DeviceForms = constant_folding_pass("DeviceForms", _device_form)
