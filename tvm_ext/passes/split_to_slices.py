"""SplitToSlices: `relax.split` with a static input shape becomes one `strided_slice` per piece.

The device has slices but no tuple-returning split; torch's `chunk`/`split` (GPT-2's
fused QKV projection) and ONNX Split would otherwise put a CPU segment in every layer.
The split's tuple becomes a tuple of slices, and CanonicalizeBindings forwards each
`TupleGetItem` to its slice.
"""
from __future__ import annotations

import tvm
from tvm import relax

from tvm_ext.passes.rewrite import constant_folding_pass, static_shape


def split_bounds(dim: int, indices_or_sections) -> list[tuple[int, int]] | None:
    """[(begin, end)] of each piece along the split axis, as relax.split defines them."""
    if isinstance(indices_or_sections, tvm.ir.prim.expr.IntImm):
        n = int(indices_or_sections)
        if n <= 0 or dim % n:
            return None
        step = dim // n
        return [(i * step, (i + 1) * step) for i in range(n)]
    cuts = [min(max(int(i), 0), dim) for i in indices_or_sections]
    edges = [0] + cuts + [dim]
    return [(b, max(b, e)) for b, e in zip(edges[:-1], edges[1:])]


def slices_of_split(call, lookup):
    """The tuple of slices a static `relax.split` call is, or None to keep it."""
    if call.op.name != "relax.split":
        return None
    x = call.args[0]
    shape = static_shape(x)
    if shape is None:
        return None  # symbolic dims: leave it to the CPU
    axis = int(call.attrs.axis) % len(shape)
    bounds = split_bounds(shape[axis], call.attrs.indices_or_sections)
    if bounds is None:
        return None
    # The builder normalizes the nested calls into one binding per slice.
    return relax.Tuple([relax.op.strided_slice(x, [axis], [b], [e], assume_inbound=True) for b, e in bounds])


SplitToSlices = constant_folding_pass("SplitToSlices", slices_of_split)
