"""Post-initial-graph passes: decompositions, no-op removal, folds into conv/matmul.

Each pass is `fn(graph) -> int` (number of rewrites), small and testable alone.
"""
from __future__ import annotations

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
