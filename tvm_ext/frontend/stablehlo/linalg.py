"""StableHLO dot_general and convolution as Relax matmul / conv (NCHW/OIHW), permuting operands
into the layouts the device runs."""
from __future__ import annotations

import numpy as np

from .common import (
    R, Unsupported, int_attr, ints_attr, padding_attr, permute, registrar, reshape_to, static_slice,
)

#: StableHLO op name -> converter, merged by :mod:`.registry`
CONVERTERS: dict = {}
converter = registrar(CONVERTERS)


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
