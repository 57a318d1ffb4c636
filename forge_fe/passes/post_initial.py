"""Post-initial-graph passes: decompositions, no-op removal, folds into conv/matmul.

Each pass is `fn(graph) -> int` (number of rewrites), small and testable alone.
"""
from __future__ import annotations

import math

from forge_fe.graph.graph import OP, Graph, Node
from forge_fe.op import OPS

op = OPS  # registry lookup: op["conv2d"] is the OpDef


def const_derived(graph: Graph) -> set[Node]:
    """Nodes computable from parameters and constants alone."""
    out = set()
    for n in graph.nodes:
        if n.is_const or (n.kind == OP and n.inputs and all(i in out for i in n.inputs)):
            out.add(n)
    return out


def decompose(graph: Graph) -> int:
    """Replace every op that has a `decompose` rule by the ops it returns."""
    replaced = {}
    for n in list(graph.nodes):
        if n.kind == OP and n.op.decompose is not None:
            new = n.op.decompose(graph, n)
            if new is not None:
                replaced[n] = new
    graph.replace_uses(replaced)
    graph.remove_dead()
    return len(replaced)


def remove_noops(graph: Graph) -> int:
    """reshape/broadcast to the same shape, cast to the same dtype, identity permutes; a reshape of a
    reshape reads the first one's input (transformers' decode steps chain several per projection)."""
    replaced, chained = {}, 0
    for n in list(graph.nodes):
        if n.kind != OP or not n.inputs:
            continue
        while n.op is op["reshape"] and n.inputs[0].kind == OP and n.inputs[0].op is op["reshape"]:
            n.inputs = [n.inputs[0].inputs[0]]
            chained += 1
        x = n.inputs[0]
        same = n.shape == x.shape and n.dtype == x.dtype
        if same and n.op in (op["reshape"], op["broadcast"], op["cast"]) or \
                (n.op is op["permute"] and list(n.attrs["perm"]) == sorted(n.attrs["perm"])):
            replaced[n] = x
    graph.replace_uses(replaced)
    graph.remove_dead()
    return len(replaced) + chained


def _single_user(users, n):
    return len(users[n]) == 1 and n not in n.graph.outputs


def _channel_vector(v: Node, channels: int, rank: int) -> bool:
    """True if v broadcasts as a per-channel vector along axis 1 of a rank-`rank` tensor."""
    s = (1,) * (rank - len(v.shape)) + tuple(v.shape)
    return len(s) == rank and s[1] == channels and all(d == 1 for i, d in enumerate(s) if i != 1)


def fold_into_conv(graph: Graph) -> int:
    """conv2d(x, W, b) * s -> conv2d(x, W * s[:,None,None,None], b * s);  conv2d(x, W, b) + t -> conv2d(x, W, b + t).

    s and t must be per-output-channel and weight-derived (e.g. a decomposed batch
    norm or a bias add), so the new weight and bias fold away in consteval."""
    count = 0
    changed = True
    while changed:
        changed = False
        consts = const_derived(graph)
        users = graph.users()
        for n in list(graph.nodes):
            if n.kind != OP or n.op not in (op["multiply"], op["add"]):
                continue
            for conv, other in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
                if conv.kind == OP and conv.op is op["conv2d"] and other in consts and _single_user(users, conv) \
                        and other.dtype == conv.dtype and _channel_vector(other, conv.shape[1], 4) \
                        and n.shape == conv.shape:
                    _rewrite_conv(graph, n, conv, other)
                    graph.remove_dead()   # the replaced pair must not match again
                    count += 1
                    changed = True
                    break
            if changed:
                break
    graph.remove_dead()
    return count


def _rewrite_conv(graph, n, conv, v):
    c = conv.shape[1]
    mk = lambda o, name, ins, **a: graph.add_op(op[o], f"{conv.name}.{name}", ins, a, meta=conv.meta, before=n)
    vec = mk("reshape", "vec", [v], shape=[c])
    x, w = conv.inputs[0], conv.inputs[1]
    bias = conv.inputs[2] if len(conv.inputs) > 2 else None
    if n.op is op["multiply"]:
        w = mk("multiply", "w_scaled", [w, mk("reshape", "w_scale", [vec], shape=[c, 1, 1, 1])])
        bias = mk("multiply", "b_scaled", [bias, vec]) if bias is not None else None
    else:
        bias = mk("add", "b_shifted", [bias, vec]) if bias is not None else vec
    graph.release_name(conv.name)
    new = graph.add_op(op["conv2d"], conv.name, [x, w] + ([bias] if bias is not None else []), conv.attrs,
                       meta=conv.meta, before=n)
    graph.replace_all_uses(n, new)



def fold_reshapes_into_matmul(graph: Graph) -> int:
    """matmul/linear(reshape(x [..., K] -> [P, K]), W [K, N]) -> matmul(x, W) [..., N] (and a reshape to
    [P, N] that the reshape back to [..., N] around it cancels, `remove_noops`): torch.export spells
    every linear on a 3-D activation as view -> mm -> view, two data-movement ops per projection
    where the device's matmul takes the batch dims as they are."""
    replaced = {}
    users = graph.users()
    for mm in [n for n in graph.nodes if n.kind == OP and n.op in (op["matmul"], op["linear"])]:
        r, w = mm.inputs[:2]
        if r.kind != OP or r.op is not op["reshape"] or len(r.shape) != 2 or len(w.shape) != 2 \
                or mm.attrs.get("transpose_a"):
            continue
        x = r.inputs[0]
        if len(x.shape) < 3 or x.shape[-1] != r.shape[-1]:
            # x's trailing dims merge into K (attention heads into the hidden size): take the batch
            # dims of the reshape back that reads the product, when that is its one reader
            readers = users.get(mm, [])
            back = readers[0] if len(readers) == 1 and mm not in graph.outputs else None
            if back is None or back.op is not op["reshape"] or len(back.shape) < 3 or back.shape[-1] != mm.shape[-1]:
                continue
            x = graph.add_op(op["reshape"], f"{r.name}.batched", [x], {"shape": list(back.shape[:-1]) + [r.shape[-1]]},
                             meta=r.meta, before=mm, df=r.df)
        graph.release_name(mm.name)
        folded = graph.add_op(mm.op, mm.name, [x] + mm.inputs[1:], mm.attrs, meta=mm.meta, before=mm, df=mm.df)
        flat = graph.add_op(op["reshape"], f"{mm.name}.flat", [folded], {"shape": list(mm.shape)}, meta=mm.meta,
                            before=mm, df=mm.df)
        replaced[mm] = flat
    graph.replace_uses(replaced)
    graph.remove_dead()
    return len(replaced)


def fold_transpose_into_matmul(graph: Graph) -> int:
    """matmul(a, [reshape of] permute(t, last two dims swapped)) -> matmul(a, t, transpose_b): the
    device reads B transposed as it is (attention's Q @ K^T), where a reshape of the permuted tensor
    is a copy of K every call. Only for computed B: a weight's transpose is const-eval'd once."""
    consts = const_derived(graph)
    replaced = {}
    for mm in [n for n in graph.nodes if n.kind == OP and n.op is op["matmul"] and len(n.inputs) == 2]:
        a, b = mm.inputs
        if mm.attrs.get("transpose_b") or mm.attrs.get("transpose_a") or b in consts:
            continue
        p = b.inputs[0] if b.kind == OP and b.op is op["reshape"] and b.shape[-2:] == b.inputs[0].shape[-2:] else b
        scales = []          # multiplies by one value between the permute and the matmul (a score scale)
        while p.kind == OP and p.op is op["multiply"] and len(p.inputs) == 2 and math.prod(p.inputs[1].shape) == 1 \
                and p.inputs[0].shape == p.shape:
            scales.append(p)
            p = p.inputs[0]
        if p.kind != OP or p.op is not op["permute"] or len(p.shape) < 2:
            continue
        rank = len(p.shape)
        if list(p.attrs["perm"]) != list(range(rank - 2)) + [rank - 1, rank - 2]:
            continue
        t = p.inputs[0]
        for m in reversed(scales):
            t = graph.add_op(op["multiply"], f"{m.name}.untransposed", [t, m.inputs[1]], m.attrs, meta=m.meta,
                             before=mm, df=m.df)
        if list(t.shape[:-2]) != list(b.shape[:-2]):
            t = graph.add_op(op["reshape"], f"{b.name}.untransposed", [t],
                             {"shape": list(b.shape[:-2]) + list(t.shape[-2:])}, meta=b.meta, before=mm, df=b.df)
        graph.release_name(mm.name)
        new = graph.add_op(op["matmul"], mm.name, [a, t], dict(mm.attrs, transpose_b=True), meta=mm.meta, before=mm,
                           df=mm.df)
        replaced[mm] = new
    graph.replace_uses(replaced)
    graph.remove_dead()
    return len(replaced)


def fuse_sibling_matmuls(graph: Graph) -> int:
    """matmul/linear(x, W_i [K, N_i] [, b_i]) for n >= 2 products of one activation x with weight-derived
    W_i, when x is one row -> one product with concat(W_i) (and concat(b_i)), and a slice of its result
    per former product: a decode step's q/k/v projections and SwiGLU's gate/up as the fused QKV and
    gate-up matmuls that tt-metal's LLM decode programs run. The concat is const-eval'd once. A
    one-row product streams its weight at a bandwidth that grows with its size, so the fused product
    takes less time than those it replaces (docs/kernels.md, item 6); products of many rows are
    compute-bound and measured no faster fused, so they are left alone. Not for training (trainable
    weights would be concatenated on every step) nor meshes (tensor-parallel shardings split each W_i
    alone)."""
    consts = const_derived(graph)
    groups = {}
    for n in graph.nodes:
        if n.kind != OP or n.op not in (op["matmul"], op["linear"]) or n.attrs.get("transpose_a") \
                or n.attrs.get("transpose_b") or n.inputs[0] in consts or math.prod(n.shape[:-1]) != 1:
            continue
        w, b = n.inputs[1], (n.inputs[2] if len(n.inputs) > 2 else None)
        if w not in consts or len(w.shape) != 2 or (b is not None and (b not in consts or len(b.shape) != 1)):
            continue
        key = (n.inputs[0], n.op, n.df, w.df, w.dtype, b is None or (b.df, b.dtype),
               tuple(sorted((k, repr(v)) for k, v in n.attrs.items())))
        groups.setdefault(key, []).append(n)
    replaced = {}
    for members in (m for m in groups.values() if len(m) > 1):
        first = members[0]
        weights = [m.inputs[1] for m in members]
        ins = [first.inputs[0], graph.add_op(op["concat"], f"{first.name}.fused_weight", weights, {"dim": 1},
                                             meta=first.meta, before=first, df=weights[0].df)]
        if first.op is op["linear"]:
            biases = [m.inputs[2] for m in members]
            ins.append(graph.add_op(op["concat"], f"{first.name}.fused_bias", biases, {"dim": 0}, meta=first.meta,
                                    before=first, df=biases[0].df))
        fused = graph.add_op(first.op, f"{first.name}.fused", ins, first.attrs, meta=first.meta, before=first,
                             df=first.df)
        start = 0
        for m in members:
            rank, width = len(m.shape), m.shape[-1]
            graph.release_name(m.name)
            replaced[m] = graph.add_op(op["slice"], m.name, [fused],
                                       {"begins": [0] * (rank - 1) + [start], "ends": list(m.shape[:-1]) + [start + width],
                                        "steps": [1] * rank}, meta=m.meta, before=first, df=m.df)
            start += width
    if not replaced:
        return 0
    graph.replace_uses(replaced)
    graph.remove_dead()
    graph.toposort()                # a later member's weight may be computed after the first member
    return len(replaced)


def fuse_linear(graph: Graph) -> int:
    """matmul(x, W) + b -> linear(x, W, b) when b is a weight-derived vector over the last dim."""
    replaced = {}
    consts = const_derived(graph)
    users = graph.users()
    for n in list(graph.nodes):
        if n.kind != OP or n.op is not op["add"]:
            continue
        for mm, b in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
            if mm.kind == OP and mm.op is op["matmul"] and b in consts and _single_user(users, mm) \
                    and all(d == 1 for d in b.shape[:-1]) and b.shape[-1:] == mm.shape[-1:] and n.shape == mm.shape:
                if len(b.shape) != 1:
                    b = graph.add_op(op["reshape"], f"{b.name}.vec", [b], {"shape": [b.shape[-1]]}, before=n)
                graph.release_name(mm.name)
                replaced[n] = graph.add_op(op["linear"], mm.name, mm.inputs + [b], mm.attrs, meta=mm.meta, before=n)
                break
    graph.replace_uses(replaced)
    graph.remove_dead()
    return len(replaced)


def apply_data_formats(graph: Graph, default_df=None, overrides: dict | None = None) -> int:
    """Give every floating-point tensor its device data format.

    Lookup order: the node's name, then its op type, then "weights" for parameters,
    constants and anything computed from them alone, then `default_df`. Integer and
    boolean tensors keep their own formats."""
    overrides = overrides or {}
    if default_df is None and not overrides:
        return 0
    weights = const_derived(graph)
    count = 0
    for n in graph.nodes:
        if not n.dtype.startswith("float"):
            continue
        df = overrides.get(n.name)
        if df is None and n.op is not None:
            df = overrides.get(n.op.name)
        if df is None and n in weights:
            df = overrides.get("weights")
        df = df or default_df
        if df is not None:
            n.df = df
            count += 1
    return count
