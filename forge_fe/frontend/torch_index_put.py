"""aten.index_put with `None` (full-slice) and omitted trailing indices, imported exactly.

torch's `x[:, :, idx] = v` and `x.index_copy_(2, idx, v)` (how transformers' StaticCache
writes a KV cache) reach the importer as `index_put(x, [None, None, idx], v)`. TVM's
converter (0.27) indexes only `len(indices)` dims and reshapes every `None` to
`[n, 1, ...]`, so `relax.index_put` refuses the call or, with several `None`s,
broadcasts them against each other. torch's rule, reproduced here: the advanced
(tensor) indices broadcast together to a shape `b`; when they are adjacent, the
indexed result has the data's dims before them, then `b`, then the dims after;
otherwise `b` comes first and the sliced dims follow in order. Each sliced dim `i`
becomes `arange(n_i)` placed on its result axis, each tensor index is placed on
the `b` axes, so all indices broadcast to the indexed shape, which is what
`relax.index_put` needs (one index per data dim).
"""
from __future__ import annotations

import numpy as np


def full_rank_indices(bb, data_shape: list[int], indices: list) -> list:
    """One Relax index per data dim, broadcasting to the indexed shape (see the module doc)."""
    from tvm import relax
    rank = len(data_shape)
    indices = list(indices) + [None] * (rank - len(indices))
    adv = [i for i, idx in enumerate(indices) if idx is not None]
    b = list(np.broadcast_shapes(*[tuple(int(d) for d in indices[i].ty.shape.values) for i in adv]))
    adjacent = adv == list(range(adv[0], adv[-1] + 1))
    sliced = [i for i in range(rank) if indices[i] is None]
    if adjacent:   # result axes: sliced dims before, b, sliced dims after
        b_at = adv[0]
        pos = {i: (i if i < b_at else i - len(adv) + len(b)) for i in sliced}
    else:          # result axes: b, then the sliced dims in order
        b_at = 0
        pos = {i: len(b) + k for k, i in enumerate(sliced)}
    out_rank = len(sliced) + len(b)
    result = []
    for i, idx in enumerate(indices):
        if idx is None:
            shape = [1] * out_rank
            shape[pos[i]] = data_shape[i]
            idx = bb.emit(relax.op.arange(0, data_shape[i], 1, "int64"))
        else:
            ishape = [int(d) for d in idx.ty.shape.values]
            shape = [1] * b_at + [1] * (len(b) - len(ishape)) + ishape + [1] * (out_rank - b_at - len(b))
        result.append(bb.emit(relax.op.reshape(idx, shape)))
    return result
