"""Ops that only backward graphs use: the input/weight gradients of conv2d, max-pool and
embedding backward. Each is a full OpDef (shape, golden, TTIR lowering), made by the
backward rules of conv2d, max_pool2d and take (forge_fe/op/nn.py, tensor.py).

TTIR spellings: `ttir.conv_transpose2d` (input gradient; NHWC input, weight
(in, out/groups, kH, kW)) and `ttir.embedding_backward` (indices, table, grad) are
tt-mlir ops. tt-mlir has no max-pool backward op (its frontends lower it through
`max_pool2d_with_indices` and a scatter), so forge_fe emits `ttir.max_pool2d_grad`
(NHWC, max_pool2d's attributes, operands (input, output grad)): a forge_fe extension
op that our emulated device implements. The weight gradient of conv2d needs no new
TTIR op: it is a conv2d with batch and channels swapped, per group (see `_conv2d_weight_grad_lower`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from forge_fe.op.layout import NCHW_TO_NHWC, NHWC_TO_NCHW, _permute
from forge_fe.op.registry import TensorType, defop
from forge_fe.ttir import emitter as E


def _padded(size, pad_lo, pad_hi):
    return size + pad_lo + pad_hi


def _slice(e, v, begins, ends):
    shape = tuple(b - a for a, b in zip(begins, ends))
    if shape == v.shape:
        return v
    return e.op("ttir.slice_static", [v], shape, v.elem, {"begins": E.I32List(begins), "ends": E.I32List(ends),
                                                          "step": E.I32List([1] * len(shape))})


# ---- conv2d input gradient ---------------------------------------------------------

def _transposed_output_padding(a, in_hw, out_hw, k_hw):
    """output_padding that makes conv_transpose2d (padding 0) produce the padded input size."""
    t, l, b, r = a["padding"]
    return [_padded(in_hw[i], (t, l)[i], (b, r)[i]) - ((out_hw[i] - 1) * a["stride"][i]
                                                      + a["dilation"][i] * (k_hw[i] - 1) + 1) for i in range(2)]


def _conv2d_input_grad_golden(ins, a):
    g, w = ins
    n, c, h, wd = a["input_shape"]
    t, l, b, r = a["padding"]
    out_pad = _transposed_output_padding(a, (h, wd), g.shape[2:], w.shape[2:])
    dx = F.conv_transpose2d(g, w, None, a["stride"], 0, out_pad, a["groups"], a["dilation"])
    return dx[:, :, t:t + h, l:l + wd]


def _conv2d_input_grad_lower(e, ins, a, out):
    g, w = ins
    n, c, h, wd = a["input_shape"]
    t, l, b, r = a["padding"]
    out_pad = _transposed_output_padding(a, (h, wd), g.shape[2:], w.shape[2:])
    padded = (n, _padded(h, t, b), _padded(wd, l, r), c)
    dx = e.op("ttir.conv_transpose2d", [_permute(e, g, NCHW_TO_NHWC), w], padded, out.elem, {
        "stride": E.I32Array(a["stride"]), "padding": E.I32Array([0, 0]), "output_padding": E.I32Array(out_pad),
        "dilation": E.I32Array(a["dilation"]), "groups": E.I32(a["groups"])}, data_format=out.data_format)
    dx = _slice(e, dx, [0, t, l, 0], [n, t + h, l + wd, c])
    return _permute(e, dx, NHWC_TO_NCHW)


conv2d_input_grad = defop(
    "conv2d_input_grad", shape=lambda ins, a: TensorType(tuple(a["input_shape"]), ins[0].dtype),
    golden=_conv2d_input_grad_golden, lower=_conv2d_input_grad_lower,
    doc="dL/dx of y = conv2d(x, w): conv_transpose2d(dL/dy, w) over the padded input, cropped to x "
        "(inputs: grad NCHW, weight OIHW; attrs: conv2d's plus input_shape)")


# ---- conv2d weight gradient --------------------------------------------------------

def _conv2d_weight_grad_golden(ins, a):
    x, g = ins
    t, l, b, r = a["padding"]
    x = F.pad(x, (l, r, t, b))
    return torch.nn.grad.conv2d_weight(x, a["weight_shape"], g, a["stride"], 0, a["dilation"], a["groups"])


def _conv2d_weight_grad_lower(e, ins, a, out):
    """dW[o,c,i,j] = sum_{n,y,x} g[n,o,y,x] * xpad[n,c,y*s+i*d,x*s+j*d]: a conv2d whose batch is
    x's channels and whose channels are x's batch, with stride and dilation swapped. Grouped
    convolutions do that per group (channel slices of x and g) and concatenate the results."""
    x, g = ins
    o, cg, kh, kw = a["weight_shape"]
    groups = a["groups"]
    if groups == 1:
        return _weight_grad_one_group(e, x, g, a, out)
    og = o // groups
    n, _, h, w = x.shape
    parts = []
    for k in range(groups):
        xs = _slice(e, x, [0, k * cg, 0, 0], [n, (k + 1) * cg, h, w])
        gs = _slice(e, g, [0, k * og, 0, 0], [n, (k + 1) * og, g.shape[2], g.shape[3]])
        parts.append(_weight_grad_one_group(e, xs, gs, a, out))
    return e.op("ttir.concat", parts, (o, cg, kh, kw), out.elem, {"dim": E.SI32(0)}, data_format=out.data_format)


def _weight_grad_one_group(e, x, g, a, out):
    c, o = x.shape[1], g.shape[1]
    kh, kw = a["weight_shape"][2:]
    xt = _permute(e, x, (1, 2, 3, 0))                       # (C, H, W, N): NHWC with batch C, channels N
    gt = _permute(e, g, (1, 0, 2, 3))                       # (O, N, Ho, Wo): OIHW with in-channels N
    t, l, b, r = a["padding"]
    h, w = x.shape[2], x.shape[3]
    span = [_padded(h, t, b), _padded(w, l, r)]
    k_out = [(span[i] - a["stride"][i] * (g.shape[2 + i] - 1) - 1) // a["dilation"][i] + 1 for i in range(2)]
    dw = e.op("ttir.conv2d", [xt, gt], (c, k_out[0], k_out[1], o), out.elem, {
        "stride": E.I32Array(a["dilation"]), "padding": E.I32Array(a["padding"]),
        "dilation": E.I32Array(a["stride"]), "groups": E.I32(1),
        "operandSegmentSizes": E.I32Array([1, 1, 0])}, data_format=out.data_format)
    dw = _slice(e, dw, [0, 0, 0, 0], [c, kh, kw, o])
    return _permute(e, dw, (3, 0, 1, 2))


conv2d_weight_grad = defop(
    "conv2d_weight_grad", shape=lambda ins, a: TensorType(tuple(a["weight_shape"]), ins[0].dtype),
    golden=_conv2d_weight_grad_golden,
    lower=_conv2d_weight_grad_lower,
    doc="dL/dw of y = conv2d(x, w) (inputs: x NCHW, grad NCHW; attrs: conv2d's plus weight_shape)")


# ---- max_pool2d gradient -----------------------------------------------------------

def max_pool2d_grad_nchw(x, g, a):
    """Route each output gradient to the (first) maximum of its window; overlapping windows add."""
    t, l, b, r = a["padding"]
    xp = F.pad(x, (l, r, t, b), value=float("-inf")) if (t, l) != (b, r) else x
    pad = (0, 0) if (t, l) != (b, r) else (t, l)
    _, idx = F.max_pool2d(xp, a["kernel"], a["stride"], pad, a["dilation"], ceil_mode=a["ceil_mode"],
                          return_indices=True)
    dx = torch.ops.aten.max_pool2d_with_indices_backward(g, xp, a["kernel"], a["stride"], list(pad),
                                                         a["dilation"], a["ceil_mode"], idx)
    if (t, l) != (b, r):
        dx = dx[:, :, t:t + x.shape[2], l:l + x.shape[3]]
    return dx


def _max_pool2d_grad_lower(e, ins, a, out):
    x, g = (_permute(e, v, NCHW_TO_NHWC) for v in ins)
    dx = e.op("ttir.max_pool2d_grad", [x, g], x.shape, out.elem, {
        "kernel": E.I32Array(a["kernel"]), "stride": E.I32Array(a["stride"]),
        "dilation": E.I32Array(a["dilation"]), "padding": E.I32Array(a["padding"]),
        "ceil_mode": E.Bool(a["ceil_mode"])}, data_format=out.data_format)
    return _permute(e, dx, NHWC_TO_NCHW)


max_pool2d_grad = defop(
    "max_pool2d_grad", shape=lambda ins, a: ins[0], golden=lambda ins, a: max_pool2d_grad_nchw(ins[0], ins[1], a),
    lower=_max_pool2d_grad_lower,
    doc="dL/dx of y = max_pool2d(x): each window's output gradient goes to its maximum "
        "(inputs: x NCHW, grad NCHW; attrs: max_pool2d's)")


# ---- embedding gradient ------------------------------------------------------------

def embedding_grad_golden(idx, g, rows):
    d = g.shape[-1]
    out = torch.zeros((rows, d), dtype=g.dtype)
    return out.index_add_(0, idx.reshape(-1).long(), g.reshape(-1, d))


embedding_grad = defop(
    "embedding_grad", shape=lambda ins, a: TensorType(ins[1].shape, ins[2].dtype),
    golden=lambda ins, a: embedding_grad_golden(ins[0], ins[2], ins[1].shape[0]),
    lower=lambda e, ins, a, out: e.op("ttir.embedding_backward", ins, out.shape, out.elem,
                                      data_format=out.data_format),
    doc="dL/dtable of y = table[idx]: rows of the output gradient added at their indices "
        "(inputs: indices, table (for its shape), grad)")
