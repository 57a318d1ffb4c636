"""Neural-network ops: convolution, pooling, matmul/linear, softmax, normalization.

Forge keeps the framework's NCHW layout for conv/pool; TTIR's conv2d and pools are
NHWC, so their lowering wraps the device op in permutes. On the emulated device a
permute is a strided view, and `passes.lowering` cancels back-to-back pairs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from forge_fe.op.registry import (NotOnDevice, TensorType, defop, ints, norm_axis, relax_attrs,
                                  relax_tensor_args, same_as_first, simple_lower)
from forge_fe.op.layout import layout_aware
from forge_fe.ttir import emitter as E


def _conv_out(size, k, stride, pad_lo, pad_hi, dilation, ceil_mode=False):
    span = size + pad_lo + pad_hi - dilation * (k - 1) - 1
    return (-(-span // stride) if ceil_mode else span // stride) + 1


# ---- conv2d -------------------------------------------------------------------------

def _conv2d_shape(ins, a):
    n, _, h, w = ins[0].shape
    o, _, kh, kw = ins[1].shape
    t, l, b, r = a["padding"]
    return TensorType((n, o, _conv_out(h, kh, a["stride"][0], t, b, a["dilation"][0]),
                       _conv_out(w, kw, a["stride"][1], l, r, a["dilation"][1])), ins[0].dtype)


def _conv2d_golden(ins, a):
    x, w = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    t, l, b, r = a["padding"]
    if (t, l) != (b, r):
        x = F.pad(x, (l, r, t, b))
        t = l = 0
    return F.conv2d(x, w, bias, stride=a["stride"], padding=(t, l), dilation=a["dilation"], groups=a["groups"])


def _conv2d_lower(e, ins, a, shape, out):
    operands = [ins[0], ins[1]]
    if len(ins) > 2:
        bias = ins[2]
        operands.append(e.op("ttir.reshape", [bias], (1, 1, 1, bias.shape[0]), bias.elem,
                             {"shape": E.I32List([1, 1, 1, bias.shape[0]])}))
    return e.op("ttir.conv2d", operands, shape, out.elem, {
        "stride": E.I32Array(a["stride"]), "padding": E.I32Array(a["padding"]),
        "dilation": E.I32Array(a["dilation"]), "groups": E.I32(a["groups"]),
        "operandSegmentSizes": E.I32Array([1, 1, len(operands) - 2])}, data_format=out.data_format)


def _conv2d_from_relax(call):
    at = call.attrs
    if at.data_layout not in ("NCHW", "NHWC") or at.out_layout != at.data_layout or at.kernel_layout != "OIHW":
        raise NotOnDevice(f"conv2d layout {at.data_layout}/{at.kernel_layout} (device lowering takes "
                          "NCHW or NHWC with OIHW)")
    if any(d != 1 for d in ints(at.dilation)) and not str(call.args[0].ty.dtype).startswith(("float", "bfloat")):
        raise NotOnDevice("dilated integer conv2d (ConvInteger / QLinearConv): the device kernel has no "
                          "dilated integer convolution")
    pad = ints(at.padding)
    if len(pad) == 2:
        pad = [pad[0], pad[1], pad[0], pad[1]]
    layout = {"layout": "NHWC"} if at.data_layout == "NHWC" else {}   # channels-last models (Keras) as they are
    return relax_tensor_args(call), {"stride": ints(at.strides), "padding": pad,
                                     "dilation": ints(at.dilation), "groups": int(at.groups), **layout}


def _conv2d_grad(d):
    """dx = conv_transpose2d(g, w); dw = conv2d of x by g (batch as channels); db = sum of g over N, H, W."""
    from forge_fe.op.grad import conv2d_input_grad, conv2d_weight_grad
    from forge_fe.op.reduce import sum_
    (x, w), a, g = d.x[:2], d.node.attrs, d.grad
    if a.get("layout", "NCHW") != "NCHW":
        raise NotImplementedError("conv2d backward runs before the channels-last pass (NCHW)")
    conv = {k: a[k] for k in ("stride", "padding", "dilation", "groups")}
    return [d.op(conv2d_input_grad, g, w, input_shape=list(x.shape), **conv) if d.needs[0] else None,
            d.op(conv2d_weight_grad, x, g, weight_shape=list(w.shape), **conv) if d.needs[1] else None] + \
        [d.unbroadcast(d.op(sum_, g, dims=[0, 2, 3], keep_dim=False), d.x[2].shape)
         if len(d.x) > 2 and d.needs[2] else None]


conv2d = defop("conv2d", **layout_aware(_conv2d_shape, _conv2d_golden, _conv2d_lower), relax=("relax.nn.conv2d",), from_relax=_conv2d_from_relax,
               backward=_conv2d_grad,
               doc="y[n,o] = sum_c,kh,kw x[n,c,..] * w[o,c,kh,kw] (+ bias[o]); NCHW, weight OIHW, "
                   "padding [top, left, bottom, right]")


# ---- conv_transpose2d ------------------------------------------------------------------

def _conv_transpose2d_shape(ins, a):
    n, _, h, w = ins[0].shape
    _, og, kh, kw = ins[1].shape
    t, l, b, r = a["padding"]
    (sh, sw), (dh, dw), (oph, opw) = a["stride"], a["dilation"], a["output_padding"]
    return TensorType((n, og * a["groups"], (h - 1) * sh - t - b + dh * (kh - 1) + oph + 1,
                       (w - 1) * sw - l - r + dw * (kw - 1) + opw + 1), ins[0].dtype)


def _conv_transpose2d_golden(ins, a):
    x, w = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    t, l, b, r = a["padding"]
    if (t, l) == (b, r):
        return F.conv_transpose2d(x, w, bias, a["stride"], (t, l), a["output_padding"], a["groups"], a["dilation"])
    # asymmetric padding crops the unpadded result: rows [t, t + out_h), columns [l, l + out_w)
    full = F.conv_transpose2d(x, w, bias, a["stride"], 0, a["output_padding"], a["groups"], a["dilation"])
    oh, ow = _conv_transpose2d_shape([TensorType(tuple(x.shape), ""), TensorType(tuple(w.shape), "")], a).shape[2:]
    return full[:, :, t:t + oh, l:l + ow]


def _conv_transpose2d_lower(e, ins, a, shape, out):
    """TTIR's conv_transpose2d pads symmetrically ([h, w]); asymmetric padding runs unpadded and
    slices the result. Weight (in, out/groups, kH, kW) as in torch."""
    from forge_fe.op.grad import _slice
    operands = [ins[0], ins[1]]
    if len(ins) > 2:
        bias = ins[2]
        operands.append(e.op("ttir.reshape", [bias], (1, 1, 1, bias.shape[0]), bias.elem,
                             {"shape": E.I32List([1, 1, 1, bias.shape[0]])}))
    t, l, b, r = a["padding"]
    symmetric = (t, l) == (b, r)
    n, oh, ow, c = shape
    full = shape if symmetric else (n, oh + t + b, ow + l + r, c)
    y = e.op("ttir.conv_transpose2d", operands, full, out.elem, {
        "stride": E.I32Array(a["stride"]), "padding": E.I32Array([t, l] if symmetric else [0, 0]),
        "output_padding": E.I32Array(a["output_padding"]), "dilation": E.I32Array(a["dilation"]),
        "groups": E.I32(a["groups"])}, data_format=out.data_format)
    return y if symmetric else _slice(e, y, [0, t, l, 0], [n, t + oh, l + ow, c])


def _conv_transpose2d_from_relax(call):
    at = call.attrs
    if at.data_layout not in ("NCHW", "NHWC") or at.out_layout != at.data_layout or at.kernel_layout != "IOHW":
        raise NotOnDevice(f"conv2d_transpose layout {at.data_layout}/{at.kernel_layout} (device lowering takes "
                          "NCHW or NHWC with IOHW)")
    pad = ints(at.padding)
    if len(pad) == 2:
        pad = [pad[0], pad[1], pad[0], pad[1]]
    layout = {"layout": "NHWC"} if at.data_layout == "NHWC" else {}
    return relax_tensor_args(call), {"stride": ints(at.strides), "padding": pad, "output_padding": ints(at.output_padding),
                                     "dilation": ints(at.dilation), "groups": int(at.groups), **layout}


def _conv_transpose2d_grad(d):
    """y = conv_transpose2d(x, w) is the adjoint of z = conv2d(., w) (same stride, padding, dilation):
    dx = conv2d(g, w); dw = conv2d's weight gradient with g as its input and x as its output
    gradient; db = sum of g over N, H, W."""
    from forge_fe.op.grad import conv2d_weight_grad
    from forge_fe.op.reduce import sum_
    (x, w), a, g = d.x[:2], d.node.attrs, d.grad
    if a.get("layout", "NCHW") != "NCHW":
        raise NotImplementedError("conv_transpose2d backward runs before the channels-last pass (NCHW)")
    conv = {k: a[k] for k in ("stride", "padding", "dilation", "groups")}
    return [d.op(conv2d, g, w, **conv) if d.needs[0] else None,
            d.op(conv2d_weight_grad, g, x, weight_shape=list(w.shape), **conv) if d.needs[1] else None] + \
        [d.unbroadcast(d.op(sum_, g, dims=[0, 2, 3], keep_dim=False), d.x[2].shape)
         if len(d.x) > 2 and d.needs[2] else None]


conv_transpose2d = defop(
    "conv_transpose2d", **layout_aware(_conv_transpose2d_shape, _conv_transpose2d_golden, _conv_transpose2d_lower),
    relax=("relax.nn.conv2d_transpose",), from_relax=_conv_transpose2d_from_relax, backward=_conv_transpose2d_grad,
    doc="y = conv2d's input-adjoint of x by w (+ bias[o]); NCHW, weight IOHW (in, out/groups, kH, kW), "
        "padding [top, left, bottom, right] crops the full result, output_padding extends bottom/right")


# ---- pooling ------------------------------------------------------------------------

def _pool_shape(ins, a):
    n, c, h, w = ins[0].shape
    t, l, b, r = a["padding"]
    return TensorType((n, c, _conv_out(h, a["kernel"][0], a["stride"][0], t, b, a["dilation"][0], a["ceil_mode"]),
                       _conv_out(w, a["kernel"][1], a["stride"][1], l, r, a["dilation"][1], a["ceil_mode"])),
                      ins[0].dtype)


def _max_pool_golden(ins, a):
    t, l, b, r = a["padding"]
    x = ins[0]
    if (t, l) != (b, r):
        x = F.pad(x, (l, r, t, b), value=float("-inf"))
        t = l = 0
    return F.max_pool2d(x, a["kernel"], a["stride"], (t, l), a["dilation"], ceil_mode=a["ceil_mode"])


def _avg_pool_golden(ins, a):
    t, l, b, r = a["padding"]
    x = ins[0]
    if (t, l) != (b, r):
        raise ValueError("asymmetric avg_pool2d padding")
    return F.avg_pool2d(x, a["kernel"], a["stride"], (t, l), ceil_mode=a["ceil_mode"],
                        count_include_pad=a["count_include_pad"])


def _pool_lower(ttir_name):
    def lower(e, ins, a, shape, out):
        attrs = {"kernel": E.I32Array(a["kernel"]), "stride": E.I32Array(a["stride"]),
                 "dilation": E.I32Array(a["dilation"]), "padding": E.I32Array(a["padding"]),
                 "ceil_mode": E.Bool(a["ceil_mode"])}
        if "count_include_pad" in a:
            attrs["count_include_pad"] = E.Bool(a["count_include_pad"])
        return e.op(ttir_name, ins, shape, out.elem, attrs, data_format=out.data_format)
    return lower


def _pool_from_relax(avg):
    def from_relax(call):
        at = call.attrs
        if at.layout not in ("NCHW", "NHWC") or at.out_layout != at.layout:
            raise NotOnDevice(f"pool layout {at.layout}")
        pad = ints(at.padding)
        if len(pad) == 2:
            pad = [pad[0], pad[1], pad[0], pad[1]]
        if avg and (pad[0], pad[1]) != (pad[2], pad[3]):
            raise NotOnDevice("asymmetric avg_pool2d padding")
        if avg and any(d != 1 for d in ints(at.dilation)):
            raise NotOnDevice("dilated avg_pool2d")
        kernel = ints(at.pool_size)
        if any(2 * p > k for p, k in zip(pad, kernel + kernel)):
            # the device pools (like torch's) pad at most half the window
            raise NotOnDevice(f"pool padding {pad} larger than half the window {kernel}")
        attrs = {"kernel": kernel, "stride": ints(at.strides), "dilation": ints(at.dilation),
                 "padding": pad, "ceil_mode": bool(at.ceil_mode)}
        if avg:
            attrs["count_include_pad"] = bool(at.count_include_pad)
        if at.layout == "NHWC":
            attrs["layout"] = "NHWC"
        return relax_tensor_args(call), attrs
    return from_relax


def _max_pool2d_grad(d):
    from forge_fe.op.grad import max_pool2d_grad
    if d.node.attrs.get("layout", "NCHW") != "NCHW":
        raise NotImplementedError("max_pool2d backward runs before the channels-last pass (NCHW)")
    return [d.op(max_pool2d_grad, d.x[0], d.grad, **d.node.attrs)]


max_pool2d = defop("max_pool2d", **layout_aware(_pool_shape, _max_pool_golden, _pool_lower("ttir.max_pool2d")),
                   relax=("relax.nn.max_pool2d",), from_relax=_pool_from_relax(False), backward=_max_pool2d_grad)
def _avg_pool2d_grad(d):
    """dx = conv_transpose2d(g, ones / (kh kw)) per channel (a depthwise conv2d input gradient), when every
    window divides by kh*kw: count_include_pad, or no padding; no ceil_mode."""
    from forge_fe.op.grad import conv2d_input_grad
    x, a = d.x[0], d.node.attrs
    if a.get("layout", "NCHW") != "NCHW":
        raise NotImplementedError("avg_pool2d backward runs before the channels-last pass (NCHW)")
    if a["ceil_mode"] or not (a["count_include_pad"] or not any(a["padding"])):
        raise NotImplementedError("the backward of avg_pool2d with ceil_mode or count_include_pad=False over "
                                  "padding is not implemented")
    c, (kh, kw) = x.shape[1], a["kernel"]
    weight = d.graph.add_const(f"{d.node.name}.bwd.window", np.full((c, 1, kh, kw), 1.0 / (kh * kw), np.float32))
    return [d.op(conv2d_input_grad, d.grad, weight, stride=a["stride"], padding=a["padding"],
                 dilation=a["dilation"], groups=c, input_shape=list(x.shape))]


avg_pool2d = defop("avg_pool2d", **layout_aware(_pool_shape, _avg_pool_golden, _pool_lower("ttir.avg_pool2d")),
                   relax=("relax.nn.avg_pool2d",), from_relax=_pool_from_relax(True), backward=_avg_pool2d_grad)


def _global_pool_from_relax(call):
    at = call.attrs
    if at.layout != "NCHW":
        raise NotOnDevice(f"pool layout {at.layout}")
    if at.output_size is not None and ints(at.output_size) != [1, 1]:
        raise NotOnDevice("adaptive_avg_pool2d with output size other than 1x1")
    return relax_tensor_args(call), {}


def _global_avg_pool_lower(e, ins, a, shape, out):
    # mean over H and W in NHWC keeps channels innermost, as the device reduces.
    return e.op("ttir.mean", ins, shape, out.elem, {"dim_arg": E.I32List([1, 2]), "keep_dim": E.Bool(True)},
                data_format=out.data_format)


global_avg_pool2d = defop(
    "global_avg_pool2d",
    **layout_aware(lambda ins, a: TensorType(ins[0].shape[:2] + (1, 1), ins[0].dtype),
                   lambda ins, a: ins[0].mean(dim=(2, 3), keepdim=True), _global_avg_pool_lower),
    relax=("relax.nn.adaptive_avg_pool2d",), from_relax=_global_pool_from_relax,
    backward=lambda d: [_global_avg_pool_grad(d)],
    doc="y[n,c,0,0] = mean_hw x[n,c,h,w]")


def _global_avg_pool_grad(d):
    """dx[n,c,h,w] = g[n,c,0,0] / (H W)"""
    from forge_fe.op.eltwise import multiply
    from forge_fe.op.tensor import broadcast
    x = d.x[0]
    if d.node.attrs.get("layout", "NCHW") != "NCHW":
        raise NotImplementedError("global_avg_pool2d backward runs before the channels-last pass (NCHW)")
    scaled = d.op(multiply, d.grad, d.const(1.0 / (x.shape[2] * x.shape[3])))
    return d.op(broadcast, scaled, shape=list(x.shape))


# ---- matmul / linear ----------------------------------------------------------------

def _matmul_shape(ins, a):
    sa, sb = list(ins[0].shape), list(ins[1].shape)
    if a.get("transpose_b"):
        sb[-2], sb[-1] = sb[-1], sb[-2]
    if len(sa) == 1 or len(sb) == 1:
        raise ValueError("matmul of vectors is normalized away before the graph")
    if sa[-1] != sb[-2]:
        raise ValueError(f"contracting dims differ: {sa} @ {sb}")
    batch = np.broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    return TensorType(tuple(int(d) for d in batch) + (sa[-2], sb[-1]), ins[0].dtype)


def _matmul_golden(ins, a):
    b = ins[1].transpose(-1, -2) if a.get("transpose_b") else ins[1]
    out = torch.matmul(ins[0], b)
    return out + ins[2] if len(ins) > 2 else out


def _matmul_from_relax(call):
    args = relax_tensor_args(call)
    if any(a.ty.ndim < 2 for a in args):
        raise NotOnDevice("matmul with a 1-D operand")
    return args, {}


def _matmul_grad(d):
    """y = a @ b (+ bias): da = g @ b^T, db = a^T @ g (b^T-stored: db = g^T @ a), dbias = g; each summed
    over the batch dims it was broadcast along."""
    from forge_fe.op.tensor import permute
    (a, b), g = d.x[:2], d.grad
    tb = bool(d.node.attrs.get("transpose_b"))

    def swap(v):   # transpose the last two dims
        return d.op(permute, v, perm=list(range(v.type.rank - 2)) + [v.type.rank - 1, v.type.rank - 2])
    da = d.op(matmul, g, b, transpose_b=not tb) if d.needs[0] else None
    db = (d.op(matmul, swap(g), a) if tb else d.op(matmul, swap(a), g)) if d.needs[1] else None
    grads = [d.unbroadcast(da, a.shape) if da is not None else None,
             d.unbroadcast(db, b.shape) if db is not None else None]
    if len(d.x) > 2:
        grads.append(d.unbroadcast(g, d.x[2].shape) if d.needs[2] else None)
    return grads


matmul = defop("matmul", shape=_matmul_shape, golden=_matmul_golden, backward=_matmul_grad,
               lower=simple_lower("ttir.matmul", lambda a: {"transpose_a": E.Bool(False),
                                                              "transpose_b": E.Bool(a.get("transpose_b", False))}),
               relax=("relax.matmul",), from_relax=_matmul_from_relax,
               doc="y = a @ b (b transposed in its last two dims if transpose_b), batch dims broadcast")

linear = defop("linear", shape=_matmul_shape, golden=_matmul_golden, backward=_matmul_grad,
               lower=simple_lower("ttir.linear", lambda a: {"transpose_a": E.Bool(False),
                                                              "transpose_b": E.Bool(a.get("transpose_b", False))}),
               doc="y = a @ b + bias; made by fusing matmul and a bias add")


# ---- softmax and norms --------------------------------------------------------------

def _softmax_grad(d):
    """dx = y * (g - sum(g * y, dim))"""
    from forge_fe.op.eltwise import multiply, subtract
    from forge_fe.op.reduce import sum_
    y, g = d.y, d.grad
    dim = norm_axis(d.node.attrs["dim"], y.type.rank)
    gy = d.op(multiply, g, y)
    return [d.op(multiply, y, d.op(subtract, g, d.op(sum_, gy, dims=[dim], keep_dim=True)))]


def _log_softmax_grad(d):
    """dx = g - exp(y) * sum(g, dim)"""
    from forge_fe.op.eltwise import exp, multiply, subtract
    from forge_fe.op.reduce import sum_
    y, g = d.y, d.grad
    dim = norm_axis(d.node.attrs["dim"], y.type.rank)
    return [d.op(subtract, g, d.op(multiply, d.op(exp, y), d.op(sum_, g, dims=[dim], keep_dim=True)))]


softmax = defop("softmax", shape=same_as_first, golden=lambda ins, a: torch.softmax(ins[0], a["dim"]),
                backward=_softmax_grad,
                lower=simple_lower("ttir.softmax", lambda a: {"dimension": E.SI32(a["dim"])}),
                relax=("relax.nn.softmax",), from_relax=relax_attrs(lambda c: {"dim": int(c.attrs.axis)}),
                doc="y_i = exp(x_i - max x) / sum_j exp(x_j - max x) along dim")


def _log_softmax_lower(e, ins, a, out):
    """(x - max) - log(sum(exp(x - max))): log(softmax(x)) underflows to -inf once an entry is
    ~104 below the maximum (float32 exp), where the true value is finite."""
    dim = norm_axis(a["dim"], len(out.shape))
    kept = tuple(1 if i == dim else d for i, d in enumerate(out.shape))
    fmt = out.data_format
    red = {"dim_arg": E.I32List([dim]), "keep_dim": E.Bool(True)}
    m = e.op("ttir.max", ins, kept, out.elem, red, data_format=fmt)
    shifted = e.op("ttir.subtract", [ins[0], m], out.shape, out.elem, data_format=fmt)
    total = e.op("ttir.sum", [e.op("ttir.exp", [shifted], out.shape, out.elem, data_format=fmt)], kept, out.elem,
                 red, data_format=fmt)
    return e.op("ttir.subtract", [shifted, e.op("ttir.log", [total], kept, out.elem, data_format=fmt)], out.shape,
                out.elem, data_format=fmt)


log_softmax = defop("log_softmax", shape=same_as_first, golden=lambda ins, a: torch.log_softmax(ins[0], a["dim"]),
                    lower=_log_softmax_lower, relax=("relax.nn.log_softmax",), backward=_log_softmax_grad,
                    from_relax=relax_attrs(lambda c: {"dim": int(c.attrs.axis)}))


def _layer_norm_from_relax(call):
    at = call.attrs
    rank = call.args[0].ty.ndim
    axes = [norm_axis(int(x), rank) for x in at.axes]
    if axes != list(range(rank - len(axes), rank)):
        raise NotOnDevice(f"layer_norm over non-trailing axes {axes}")
    if not (at.center and at.scale):
        raise NotOnDevice("layer_norm without scale/center")
    return relax_tensor_args(call), {"normalized_shape": [int(d) for d in call.args[1].ty.shape.values],
                                     "epsilon": float(at.epsilon)}


def _layer_norm_lower(e, ins, a, out):
    return e.op("ttir.layer_norm", ins, out.shape, out.elem,
                {"normalized_shape": E.I64Array(a["normalized_shape"]), "epsilon": E.F32(a["epsilon"]),
                 "operandSegmentSizes": E.I32Array([1, 1, 1])}, data_format=out.data_format)


def _layer_norm_grad(d):
    """With xhat = (x - mean) * rstd over the normalized dims: dgamma = sum g*xhat, dbeta = sum g,
    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * gamma."""
    from forge_fe.op.eltwise import add, multiply, rsqrt, subtract
    from forge_fe.op.reduce import mean
    (x, gamma, beta), g = d.x, d.grad
    dims = list(range(x.type.rank - len(d.node.attrs["normalized_shape"]), x.type.rank))
    avg = lambda v: d.op(mean, v, dims=dims, keep_dim=True)
    xc = d.op(subtract, x, avg(x))
    rstd = d.op(rsqrt, d.op(add, avg(d.op(multiply, xc, xc)), d.const(d.node.attrs["epsilon"])))
    xhat = d.op(multiply, xc, rstd)
    dxhat = d.op(multiply, g, gamma)
    dx = d.op(multiply, rstd, d.op(subtract, d.op(subtract, dxhat, avg(dxhat)),
                                   d.op(multiply, xhat, avg(d.op(multiply, dxhat, xhat)))))
    return [dx if d.needs[0] else None,
            d.unbroadcast(d.op(multiply, g, xhat), gamma.shape) if d.needs[1] else None,
            d.unbroadcast(g, beta.shape) if d.needs[2] else None]


layer_norm = defop("layer_norm", shape=same_as_first, backward=_layer_norm_grad,
                   golden=lambda ins, a: F.layer_norm(ins[0], a["normalized_shape"], ins[1], ins[2], a["epsilon"]),
                   lower=_layer_norm_lower, relax=("relax.nn.layer_norm",), from_relax=_layer_norm_from_relax,
                   doc="y = (x - mean) / sqrt(var + eps) * gamma + beta over the trailing dims")


def _rms_norm_golden(ins, a):
    x = ins[0]
    dims = tuple(range(x.dim() - len(a["normalized_shape"]), x.dim()))
    y = x * torch.rsqrt(torch.mean(x * x, dims, keepdim=True) + a["epsilon"])
    return y * ins[1] if len(ins) > 1 else y


def _rms_norm_lower(e, ins, a, out):
    return e.op("ttir.rms_norm", ins, out.shape, out.elem,
                {"normalized_shape": E.I64Array(a["normalized_shape"]), "epsilon": E.F32(a["epsilon"]),
                 "operandSegmentSizes": E.I32Array([1, len(ins) - 1, 0])}, data_format=out.data_format)


def _rms_norm_grad(d):
    """With r = rsqrt(mean(x^2) + eps) over the normalized dims and xhat = x * r: dgamma = sum g*xhat,
    dx = r * (dxhat - xhat * mean(dxhat * xhat)), dxhat = g * gamma."""
    from forge_fe.op.eltwise import add, multiply, rsqrt, subtract
    from forge_fe.op.reduce import mean
    x, g = d.x[0], d.grad
    dims = list(range(x.type.rank - len(d.node.attrs["normalized_shape"]), x.type.rank))
    r = d.op(rsqrt, d.op(add, d.op(mean, d.op(multiply, x, x), dims=dims, keep_dim=True),
                         d.const(d.node.attrs["epsilon"])))
    xhat = d.op(multiply, x, r)
    dxhat = d.op(multiply, g, d.x[1]) if len(d.x) > 1 else g
    dx = d.op(multiply, r, d.op(subtract, dxhat, d.op(multiply, xhat, d.op(
        mean, d.op(multiply, dxhat, xhat), dims=dims, keep_dim=True))))
    grads = [dx if d.needs[0] else None]
    if len(d.x) > 1:
        grads.append(d.unbroadcast(d.op(multiply, g, xhat), d.x[1].shape) if d.needs[1] else None)
    return grads


rms_norm = defop("rms_norm", shape=same_as_first, golden=_rms_norm_golden, lower=_rms_norm_lower,
                 backward=_rms_norm_grad,
                 doc="y = x * rsqrt(mean(x^2) + eps) * gamma over the trailing dims (Llama's RMSNorm; "
                     "made by forge_fe.passes.fuse.fuse_rms_norm from its decomposed form)")



def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _rotary_golden(ins, a):
    x, cos, sin = ins
    return x * cos + _rotate_half(x) * sin


def _rotary_grad(d):
    """y = x*cos + R(x)*sin with R(x) = [-x2, x1] (halves of the last dim), a linear map whose
    transpose is -R: dx = g*cos - R(g*sin); dcos = g*x, dsin = g*R(x), each summed over the dims
    cos and sin were broadcast along."""
    from forge_fe.op.eltwise import multiply, neg, subtract
    from forge_fe.op.tensor import concat, slice_
    (x, cos, sin), g = d.x, d.grad

    def rotate_half(v):
        rank, h = v.type.rank, v.shape[-1] // 2
        begins, steps = [0] * rank, [1] * rank
        lo = d.op(slice_, v, begins=begins, ends=list(v.shape[:-1]) + [h], steps=steps)
        hi = d.op(slice_, v, begins=[0] * (rank - 1) + [h], ends=list(v.shape), steps=steps)
        return d.op(concat, d.op(neg, hi), lo, dim=rank - 1)
    dx = d.op(subtract, d.op(multiply, g, cos), rotate_half(d.op(multiply, g, sin))) if d.needs[0] else None
    dcos = d.unbroadcast(d.op(multiply, g, x), cos.shape) if d.needs[1] else None
    dsin = d.unbroadcast(d.op(multiply, g, rotate_half(x)), sin.shape) if d.needs[2] else None
    return [dx, dcos, dsin]


rotary_embedding = defop(
    "rotary_embedding", shape=same_as_first, golden=_rotary_golden, backward=_rotary_grad,
    lower=simple_lower("ttir.rotary_embedding"),
    doc="y = x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1] over the halves of the last dim; "
        "cos and sin broadcast to x (RoPE as Llama-family models spell it; made by "
        "forge_fe.passes.fuse.fuse_rotary_embedding from its decomposed form)")

def _batchnorm_from_relax(call):
    at = call.attrs
    if int(at.axis) != 1:
        raise NotOnDevice(f"batch_norm over axis {int(at.axis)}")
    attrs = {"epsilon": float(at.epsilon), "result_index": 0}
    if bool(at.training):     # a model compiled for training: normalize by the batch's statistics
        attrs["training"] = True
    return relax_tensor_args(call), attrs


def _batchnorm_golden(ins, a):
    x, gamma, beta, mean, var = ins
    if a.get("training"):
        return F.batch_norm(x, None, None, gamma, beta, training=True, eps=a["epsilon"])
    return F.batch_norm(x, mean, var, gamma, beta, training=False, eps=a["epsilon"])


def _batchnorm_training_decompose(graph, node):
    """Training mode: y = (x - m) * rsqrt(v + eps) * gamma + beta with the batch's per-channel mean m and
    (biased) variance v over N, H, W, as torch normalizes in train(); autograd differentiates these ops.
    The running statistics are not updated."""
    from forge_fe.op import eltwise as ew, reduce as rd, tensor as tn
    x, gamma, beta = node.inputs[:3]
    name = node.name
    dims = [0] + list(range(2, x.type.rank))
    bshape = [1, x.shape[1]] + [1] * (x.type.rank - 2)
    add = lambda op, n, *xs, **a: graph.add_op(op, f"{name}.{n}", list(xs), a, meta=node.meta, before=node)
    eps = graph.add_const(f"{name}.eps", np.array(node.attrs["epsilon"], dtype=np.float32))
    xc = add(ew.subtract, "centered", x, add(rd.mean, "mean", x, dims=dims, keep_dim=True))
    var = add(rd.mean, "var", add(ew.multiply, "sq", xc, xc), dims=dims, keep_dim=True)
    xhat = add(ew.multiply, "norm", xc, add(ew.rsqrt, "rstd", add(ew.add, "var_eps", var, eps)))
    y = add(ew.multiply, "mul", xhat, add(tn.reshape, "scale_r", gamma, shape=bshape))
    return add(ew.add, "add", y, add(tn.reshape, "shift_r", beta, shape=bshape))


def _batchnorm_decompose(graph, node):
    """y = x * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s (per channel).

    s and t depend only on weights, so consteval folds them; a following pass folds
    them into the producing conv's weight and bias when there is one."""
    from forge_fe.op import eltwise as ew, tensor as tn
    if node.attrs.get("training"):
        return _batchnorm_training_decompose(graph, node)
    x, gamma, beta, mean, var = node.inputs
    name = node.name
    c = x.shape[1]
    bshape = [c] + [1] * (x.type.rank - 2)
    add = lambda op, n, *xs, **a: graph.add_op(op, f"{name}.{n}", list(xs), a, meta=node.meta, before=node)
    eps = graph.add_const(f"{name}.eps", np.array(node.attrs["epsilon"], dtype=np.float32))
    scale = add(ew.multiply, "scale", gamma, add(ew.rsqrt, "rstd", add(ew.add, "var_eps", var, eps)))
    shift = add(ew.subtract, "shift", beta, add(ew.multiply, "mean_scale", mean, scale))
    y = add(ew.multiply, "mul", x, add(tn.reshape, "scale_r", scale, shape=bshape))
    return add(ew.add, "add", y, add(tn.reshape, "shift_r", shift, shape=bshape))


batch_norm = defop("batch_norm", shape=same_as_first, golden=_batchnorm_golden,
                   relax=("relax.nn.batch_norm",), from_relax=_batchnorm_from_relax,
                   decompose=_batchnorm_decompose,
                   doc="inference batch norm over channel axis 1; always decomposed (see decompose)")
