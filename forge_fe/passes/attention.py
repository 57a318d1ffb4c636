"""Attention passes: grouped-query attention without copies of the KV cache.

Each pass is `fn(graph) -> int` (number of rewrites), small and testable alone.
"""
from __future__ import annotations

import math

from forge_fe.graph.graph import OP, Graph, Node
from forge_fe.op import OPS

op = OPS


def _expanded_axis(bc: Node):
    """The one axis a broadcast repeats (input 1, output R > 1) and R, else None."""
    s_in, s_out = bc.inputs[0].shape, bc.shape
    if len(s_in) != len(s_out):
        return None
    grown = [i for i, (a, b) in enumerate(zip(s_in, s_out)) if a != b]
    if len(grown) != 1 or s_in[grown[0]] != 1 or grown[0] == 0:
        return None
    return grown[0], s_out[grown[0]]


def _grouped_operand(b: Node):
    """If matmul operand b [N, X, Y] is built from a broadcast that repeats each KV head R times
    (transformers' repeat_kv: `kv[:, :, None].expand(B, G, R, S, D).reshape(B, G*R, S, D)`), then at
    most permutes that keep the head axis and the ones before it, multiplies by a one-element
    tensor, and a reshape merging the batch and head axes into N: (the broadcast, R, the ops
    between the merge and that last reshape). Else None."""
    if b.kind != OP or b.op is not op["reshape"] or len(b.shape) != 3:
        return None
    chain = []
    n = b.inputs[0]
    while n.kind == OP and (n.op is op["permute"] or (n.op is op["multiply"] and _one_element(n.inputs[1])
                                                       and n.inputs[0].shape == n.shape)):
        chain.append(n)
        n = n.inputs[0]
    merge = n
    if merge.kind != OP or merge.op is not op["reshape"]:
        return None
    bc = merge.inputs[0]
    if bc.kind != OP or bc.op is not op["broadcast"]:
        return None
    axis_r = _expanded_axis(bc)
    if axis_r is None:
        return None
    ax, r = axis_r
    head = ax - 1
    s = bc.shape
    # The merge folds (heads G, repeats R) into one head axis; the matrix dims follow it.
    if list(merge.shape) != list(s[:head]) + [s[head] * r] + list(s[ax + 1:]) or len(merge.shape) != head + 3:
        return None
    for p in chain:
        if p.op is op["permute"] and list(p.attrs["perm"][:head + 1]) != list(range(head + 1)):
            return None
    last = b.inputs[0]
    if list(b.shape) != [math.prod(last.shape[:head + 1])] + list(last.shape[head + 1:]):
        return None
    return bc, r, list(reversed(chain))


def _one_element(n: Node) -> bool:
    return math.prod(n.shape) == 1


def group_kv_heads(graph: Graph) -> int:
    """matmul(a [N, M, K], repeat_kv(kv) -> [N, K, S]) -> one matmul per KV head: a as
    [N/R, R*M, K] against the unrepeated kv [N/R, K, S], reshaped back to [N, M, S].

    Grouped-query attention (Llama, Qwen2, Mistral, Gemma, Phi-3 with fewer KV heads than query
    heads) repeats each cached key and value head R times before its two batched matmuls; as
    exported that repeat is a broadcast + reshape, which materializes R copies of the whole KV cache
    per layer and step (and the query scale multiply then runs over all of them). Query heads
    h = g*R + r share KV head g, so the R query heads of a group are R*M rows of one matmul against
    that head: the same dot products, no copy. The ops between the repeat and the matmul (a permute
    to K^T, a scale multiply by one value) commute with it and run on the unrepeated tensor."""
    rewrites = 0
    replaced = {}
    for mm in [n for n in graph.nodes if n.kind == OP and n.op is op["matmul"] and len(n.inputs) == 2]:
        a, b = mm.inputs
        if len(a.shape) != 3 or len(mm.shape) != 3:
            continue
        found = _grouped_operand(b)
        if found is None:
            continue
        bc, r, chain = found
        n, m = a.shape[0], a.shape[1]
        if n != b.shape[0] or n % r:
            continue
        ax = _expanded_axis(bc)[0]
        src = bc.inputs[0]
        kv = graph.add_op(op["reshape"], f"{bc.name}.grouped", [src],
                          {"shape": list(src.shape[:ax]) + list(src.shape[ax + 1:])}, meta=bc.meta, before=mm,
                          df=bc.df)
        for c in chain:
            kv = graph.add_op(c.op, f"{c.name}.grouped", [kv] + c.inputs[1:], c.attrs, meta=c.meta, before=mm, df=c.df)
        kv = graph.add_op(op["reshape"], f"{b.name}.grouped", [kv], {"shape": [n // r] + list(kv.shape[-2:])},
                          meta=b.meta, before=mm, df=b.df)
        rows = graph.add_op(op["reshape"], f"{a.name}.grouped", [a], {"shape": [n // r, r * m, a.shape[2]]},
                            meta=a.meta, before=mm, df=a.df)
        grouped = graph.add_op(op["matmul"], f"{mm.name}.grouped", [rows, kv], mm.attrs, meta=mm.meta, before=mm,
                               df=mm.df)
        graph.release_name(mm.name)
        out = graph.add_op(op["reshape"], mm.name, [grouped], {"shape": list(mm.shape)}, meta=mm.meta, before=mm,
                           df=mm.df)
        replaced[mm] = out
        rewrites += 1
    if replaced:
        graph.replace_uses(replaced)
        graph.remove_dead()
    return rewrites
