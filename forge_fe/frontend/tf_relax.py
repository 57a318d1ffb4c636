"""Relax helpers both TF roads share: layout clean-ups, output order, source names."""
from __future__ import annotations

import re


def source_of(tensor_name: str, layer_names: set) -> str:
    """The Keras layer a TFLite tensor comes from ('functional_1/conv1_conv_1/convolution' -> 'conv1_conv'),
    else its op path without the function's scope."""
    parts = tensor_name.split(";")[0].split("/")
    for part in parts:
        for cand in (part, re.sub(r"_\d+$", "", part)):
            if cand in layer_names:
                return cand
    return "/".join(parts[1:]) or parts[0]


def _fold_layout_plumbing(call, lookup):
    """What TFLite + TVM's importer leave between Keras and the device's layouts:

    * permute_dims(permute_dims(w, a), b) -> permute_dims(w, a[b]) (kernels go HWIO -> OHWI -> HWIO
      -> OIHW), dropped when the composition is the identity;
    * conv2d(pad(x, zeros), padding p) -> conv2d(x, padding p + pad) (Keras ZeroPadding2D before a conv);
    * max_pool2d(pad(relu(x), zeros)) -> max_pool2d(relu(x), padding=pad)."""
    from tvm import relax

    from tvm_ext.partition import op_name
    name = op_name(call)
    arg = call.args[0]
    inner = lookup(arg) if isinstance(arg, relax.Var) else None
    if not isinstance(inner, relax.Call) or not isinstance(inner.op, type(call.op)):
        return None
    if name == "relax.permute_dims" and op_name(inner) == "relax.permute_dims":
        rank = len(arg.ty.shape)
        a = list(range(rank))[::-1] if inner.attrs.axes is None else [int(d) for d in inner.attrs.axes]
        b = list(range(rank))[::-1] if call.attrs.axes is None else [int(d) for d in call.attrs.axes]
        composed = [a[d] for d in b]
        return inner.args[0] if composed == sorted(composed) else relax.op.permute_dims(inner.args[0], composed)
    if name == "relax.nn.conv2d" and op_name(inner) == "relax.nn.pad" and str(call.attrs.data_layout) == "NHWC":
        pw = [int(d) for d in inner.attrs.pad_width]
        if str(inner.attrs.pad_mode) != "constant" or float(inner.attrs.pad_value) != 0.0 or any(pw[:2] + pw[6:]):
            return None
        at = call.attrs
        t, l, b, r = [int(d) for d in at.padding] if len(at.padding) == 4 else [int(at.padding[0]), int(at.padding[1])] * 2
        return relax.op.nn.conv2d(inner.args[0], call.args[1], strides=at.strides,
                                  padding=[t + pw[2], l + pw[4], b + pw[3], r + pw[5]], dilation=at.dilation,
                                  groups=at.groups, data_layout=at.data_layout, kernel_layout=at.kernel_layout,
                                  out_layout=at.out_layout, out_dtype=at.out_dtype)
    if name == "relax.nn.max_pool2d" and op_name(inner) == "relax.nn.pad" and _pads_nonnegative(inner, lookup):
        # Keras ResNets zero-pad a ReLU output before max pooling: every window keeps a real value
        # >= 0, so zero padding and the pool's own (-inf) padding give the same maximum.
        pw, at = [int(d) for d in inner.attrs.pad_width], call.attrs
        k = [int(d) for d in at.pool_size]
        if str(at.layout) != "NHWC" or any(pw[:2] + pw[6:]) or max(pw[2:4]) >= k[0] or max(pw[4:6]) >= k[1] \
                or any(int(d) for d in at.padding):
            return None
        return relax.op.nn.max_pool2d(inner.args[0], at.pool_size, at.strides, [pw[2], pw[4], pw[3], pw[5]],
                                      at.dilation, at.ceil_mode, at.count_include_pad, at.layout, at.out_layout)
    return None


def _pads_nonnegative(pad, lookup) -> bool:
    from tvm import relax

    from tvm_ext.partition import op_name
    src = lookup(pad.args[0]) if isinstance(pad.args[0], relax.Var) else None
    return (str(pad.attrs.pad_mode) == "constant" and float(pad.attrs.pad_value) == 0.0
            and isinstance(src, relax.Call) and op_name(src) == "relax.nn.relu")


def simplify_layouts(mod):
    from tvm import relax

    from tvm_ext.passes.rewrite import constant_folding_pass
    mod = constant_folding_pass("FoldLayoutPlumbing", _fold_layout_plumbing)()(mod)
    return relax.transform.DeadCodeElimination(["main"])(mod)


def reordered_outputs(body, ret_ty, returned):
    """(body, type) returning the outputs `returned[0], returned[1], ...` of `body`'s tuple."""
    import tvm
    from tvm import relax
    if len(returned) < 2 or returned == sorted(returned):
        return body, ret_ty
    out = body.body
    return (relax.SeqExpr(body.blocks, relax.Tuple([relax.TupleGetItem(out, k) for k in returned])),
            tvm.ir.type.TupleType([ret_ty.fields[k] for k in returned]))
