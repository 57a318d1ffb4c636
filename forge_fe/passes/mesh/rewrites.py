"""Rewrites the sharding pass wants before it runs (each a small graph -> count pass).

Both keep the program's meaning; they only give the pass shapes it can split without traffic.
"""
from __future__ import annotations

from forge_fe.graph.graph import OP, Graph, Node
from forge_fe.op import OPS


def split_fused_projections(graph: Graph) -> int:
    """matmul/linear(x, W) whose result (through reshapes that keep the last dim) is only cut into
    contiguous slices along that dim -> one matmul per slice with W (and the bias) sliced.

    GPT-2's fused QKV (`c_attn`, a [in, 3*out] Conv1D weight split into q, k, v) becomes three
    column-parallel projections instead of one whose contiguous split over the chips would mix
    q, k and v. W must be a constant of this graph; the slices are views, so no copy is made."""
    count = 0
    users = graph.users()
    for n in list(graph.op_nodes()):
        if n.op not in (OPS["matmul"], OPS["linear"]) or n.attrs.get("transpose_b") or len(n.shape) < 2:
            continue
        w = n.inputs[1]
        bias = n.inputs[2] if len(n.inputs) > 2 else None
        if not w.is_const or len(w.shape) != 2 or len(users[w]) != 1 or (bias is not None and not bias.is_const):
            continue
        chain, tail = [], n
        while len(users[tail]) == 1 and users[tail][0].op is OPS["reshape"] and \
                users[tail][0].shape[-1] == tail.shape[-1] and tail not in graph.outputs:
            tail = users[tail][0]
            chain.append(tail)
        cuts = users[tail]
        width = n.shape[-1]
        if tail in graph.outputs or len(cuts) < 2 or not all(_last_dim_cut(c, tail) for c in cuts):
            continue
        spans = sorted((c.attrs["begins"][-1], min(c.attrs["ends"][-1], width)) for c in cuts)
        if spans[0][0] != 0 or spans[-1][1] != width or any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
            continue
        for c in cuts:
            lo, hi = c.attrs["begins"][-1], min(c.attrs["ends"][-1], width)
            tag = f"[{lo}:{hi}]"
            wi = graph.add_const(w.name + tag, w.value[:, lo:hi], kind=w.kind,
                                 meta=dict(w.meta, framework_name=w.meta.get("framework_name", w.name) + tag))
            wi.df = w.df
            ins = [n.inputs[0], wi]
            if bias is not None:
                bi = graph.add_const(bias.name + tag, bias.value[..., lo:hi], kind=bias.kind,
                                     meta=dict(bias.meta, framework_name=bias.meta.get("framework_name", bias.name) + tag))
                bi.df = bias.df
                ins.append(bi)
            y = graph.add_op(n.op, f"{n.name}{tag}", ins, n.attrs, meta=n.meta, before=c)
            y.df = n.df
            for r in chain:
                y = graph.add_op(OPS["reshape"], f"{r.name}{tag}", [y], {"shape": list(r.shape[:-1]) + [hi - lo]},
                                 meta=r.meta, before=c)
                y.df = r.df
            graph.replace_all_uses(c, y)
        count += 1
        users = graph.users()
    if count:
        graph.remove_dead()
        graph.toposort()
    return count


def _last_dim_cut(c: Node, x: Node) -> bool:
    if c.kind != OP or c.op is not OPS["slice"]:
        return False
    a, r = c.attrs, len(x.shape)
    return a["steps"][-1] == 1 and all(a["begins"][d] == 0 and a["ends"][d] >= x.shape[d] and a["steps"][d] == 1
                                       for d in range(r - 1))


def unflatten_batched_matmul(graph: Graph) -> int:
    """reshape(A: [*lead, M, K] -> [L, M, K]) @ reshape(B: [*lead, K, N] -> [L, K, N]) -> reshape to
    [*lead, M, N]  ==>  A @ B (matmul broadcasts batch dims).

    Attention written with bmm flattens (batch, heads) into one dim; with heads split over the
    chips and the batch whole (or split over the other axis), that merged dim is no longer one
    contiguous split, and the pass would have to gather the heads. Keeping the dims apart avoids it."""
    count = 0
    users = graph.users()
    for m in list(graph.op_nodes()):
        if m.op is not OPS["matmul"] or len(m.shape) != 3 or len(users[m]) != 1:
            continue
        a, b, back = m.inputs[0], m.inputs[1], users[m][0]
        if not all(x.kind == OP and x.op is OPS["reshape"] for x in (a, b)) or back.op is not OPS["reshape"]:
            continue
        A, B = a.inputs[0], b.inputs[0]
        lead = tuple(A.shape[:-2])
        if len(lead) < 2 or tuple(B.shape[:-2]) != lead or tuple(back.shape) != lead + tuple(m.shape[-2:]) \
                or tuple(A.shape[-2:]) != tuple(a.shape[-2:]) or tuple(B.shape[-2:]) != tuple(b.shape[-2:]) \
                or m in graph.outputs:
            continue
        graph.release_name(back.name)
        new = graph.add_op(OPS["matmul"], back.name, [A, B], m.attrs, meta=m.meta, before=back)
        new.df = back.df
        graph.replace_all_uses(back, new)
        count += 1
    if count:
        graph.remove_dead()
        graph.toposort()
    return count
