"""AccumulateInFloat32: float16 matmuls, convolutions and sums in a CPU segment accumulate in float32.

TVM's host code for a float16 `matmul` adds the products in float16, rounding every partial sum:
a dot product of five values near 2 was 0.0012 off (fuzzing: cos of it, near pi/2, was -0.0151
where onnxruntime, which accumulates in float32, gave -0.0163). The device carries float16 in
float32 (a numerics note), so the CPU segments do what the device does: the reduction runs in
float32 and its result is rounded to float16 once.
"""
from __future__ import annotations

from tvm import relax

from tvm_ext.passes.rewrite import constant_folding_pass


def _is_float16(expr) -> bool:
    ty = expr.ty
    return isinstance(ty, relax.TensorType) and str(ty.dtype) == "float16"


def _wide(x):
    return relax.op.astype(x, "float32")


def accumulate_in_float32(call, lookup):
    name = call.op.name
    if not (_is_float16(call) and all(_is_float16(a) for a in call.args if isinstance(a.ty, relax.TensorType))):
        return None
    if name == "relax.matmul":
        wide = relax.op.matmul(_wide(call.args[0]), _wide(call.args[1]), out_dtype="float32")
    elif name in ("relax.sum", "relax.mean"):
        wide = relax.Call(call.op, [_wide(call.args[0])], call.attrs)
    elif name == "relax.nn.conv2d":
        a = call.attrs
        wide = relax.op.nn.conv2d(_wide(call.args[0]), _wide(call.args[1]), a.strides, a.padding, a.dilation,
                                  a.groups, a.data_layout, a.kernel_layout, a.out_layout, out_dtype="float32")
    else:
        return None
    return relax.op.astype(wide, "float16")


AccumulateInFloat32 = constant_folding_pass("AccumulateInFloat32", accumulate_in_float32)
