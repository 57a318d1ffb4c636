"""Layout helpers shared by the NCHW ops and their gradient ops: the permutations between the
framework's NCHW and the device's NHWC, the TTIR permute, and the `layout_aware` family factory.

Below both `nn.py` (conv/pool ops) and `grad.py` (their backward ops), so each can import it
while `nn` imports `grad` for its backward rules without a loop.
"""
from __future__ import annotations

from forge_fe.op.registry import TensorType
from forge_fe.ttir import emitter as E

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def _permute(e, v, perm):
    return e.op("ttir.permute", [v], tuple(v.shape[p] for p in perm), v.elem,
                {"permutation": E.I64Array(list(perm))})


def _to_nchw(t):
    return TensorType((t.shape[0], t.shape[3], t.shape[1], t.shape[2]), t.dtype)


def _to_nhwc(t):
    return TensorType((t.shape[0], t.shape[2], t.shape[3], t.shape[1]), t.dtype)


def layout_aware(shape_rule, golden_rule, core_lower):
    """Rules for an op that takes NCHW (framework) or, with layout="NHWC", channels-last input.

    `shape_rule`/`golden_rule` are written for NCHW; `core_lower(e, ins, a, nhwc_shape, out)` emits
    the NHWC device op. NCHW instances lower with permutes around it; the channels_last pass
    (passes/layout.py) rewrites them to NHWC so those permutes cancel across the graph."""
    def shape(ins, a):
        if a.get("layout") == "NHWC":
            return _to_nhwc(shape_rule([_to_nchw(ins[0])] + list(ins[1:]), a))
        return shape_rule(ins, a)

    def golden(ins, a):
        if a.get("layout") == "NHWC":
            return golden_rule([ins[0].permute(NHWC_TO_NCHW)] + list(ins[1:]), a).permute(NCHW_TO_NHWC)
        return golden_rule(ins, a)

    def lower(e, ins, a, out):
        if a.get("layout") == "NHWC":
            return core_lower(e, ins, a, out.shape, out)
        n, c, h, w = out.shape
        y = core_lower(e, [_permute(e, ins[0], NCHW_TO_NHWC)] + list(ins[1:]), a, (n, h, w, c), out)
        return _permute(e, y, NHWC_TO_NCHW)
    return dict(shape=shape, golden=golden, lower=lower)
