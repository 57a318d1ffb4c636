"""Layout passes: run convolution and pooling channels-last, as the device does.

`channels_last` turns every NCHW conv/pool into its NHWC form between explicit
permutes; `sink_permutes` then moves permutes down through elementwise ops and
reductions and cancels inverse pairs, so a ResNet runs NHWC from the first conv
to the final pooling with no data movement in between. Both are `fn(graph) -> int`.
"""
from __future__ import annotations

from forge_fe.graph.graph import OP, Graph, Node
from forge_fe.op import OPS

LAYOUT_OPS = {OPS[n] for n in ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d")}
UNARY = {OPS[n] for n in ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "neg", "abs", "erf", "sin",
                         "cos", "floor", "ceil", "sign", "reciprocal", "logical_not", "silu", "gelu",
                         "leaky_relu", "clip", "cast")}
BINARY = {OPS[n] for n in ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "equal",
                          "not_equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
                          "logical_or", "bitwise_and")}
REDUCE = {OPS[n] for n in ("sum", "mean", "max", "min", "prod")}
PERMUTE = OPS["permute"]
TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


def channels_last(graph: Graph) -> int:
    count = 0
    to_nhwc = {}    # one permute per tensor, however many convs read it
    for n in list(graph.nodes):
        if n.kind == OP and n.op in LAYOUT_OPS and n.attrs.get("layout", "NCHW") == "NCHW":
            x = to_nhwc.get(n.inputs[0])
            if x is None:
                x = graph.add_op(PERMUTE, f"{n.name}.to_nhwc", [n.inputs[0]], {"perm": TO_NHWC}, meta=n.meta,
                                 before=n)
                x.df = n.inputs[0].df
                to_nhwc[n.inputs[0]] = x
            graph.release_name(n.name)
            y = graph.add_op(n.op, n.name, [x] + n.inputs[1:], dict(n.attrs, layout="NHWC"), meta=n.meta, before=n)
            out = graph.add_op(PERMUTE, f"{n.name}.to_nchw", [y], {"perm": TO_NCHW}, meta=n.meta, before=n)
            y.df = out.df = n.df          # the data format survives the layout change
            graph.replace_all_uses(n, out)
            count += 1
    graph.remove_dead()
    return count


def _is_permute(n: Node) -> bool:
    return n.kind == OP and n.op is PERMUTE


def _numel(n: Node) -> int:
    k = 1
    for d in n.shape:
        k *= d
    return k


def _rewrite(graph, n, op, inputs, attrs, perm):
    """Replace n by permute(op(inputs), perm), keeping n's name on the moved op."""
    graph.release_name(n.name)
    moved = graph.add_op(op, n.name, inputs, attrs, meta=n.meta, before=n)
    moved.df = n.df
    out = graph.add_op(PERMUTE, f"{n.name}.perm", [moved], {"perm": perm}, meta=n.meta, before=n)
    out.df = n.df
    graph.replace_all_uses(n, out)


def _sink_one(graph: Graph, n: Node) -> bool:
    ins = n.inputs
    if n.op in UNARY and _is_permute(ins[0]):
        _rewrite(graph, n, n.op, [ins[0].inputs[0]] + ins[1:], n.attrs, ins[0].attrs["perm"])
        return True
    if n.op in BINARY:
        perms = [i.attrs["perm"] for i in ins if _is_permute(i)]
        # the other operands must be single values (any layout is theirs); a permuted operand must
        # have the result's rank, or the perm would be applied to a broadcast result of more dims
        if perms and all(p == perms[0] for p in perms) and all(
                len(i.shape) == len(n.shape) if _is_permute(i) else _numel(i) == 1 for i in ins):
            new_ins = [i.inputs[0] if _is_permute(i) else i for i in ins]
            _rewrite(graph, n, n.op, new_ins, n.attrs, perms[0])
            return True
    if n.op in REDUCE and _is_permute(ins[0]):
        perm = ins[0].attrs["perm"]
        dims = sorted(perm[d] for d in n.attrs["dims"])
        attrs = dict(n.attrs, dims=dims)
        if n.attrs["keep_dim"]:
            _rewrite(graph, n, n.op, [ins[0].inputs[0]], attrs, perm)
            return True
        rest = [perm[i] for i in range(len(perm)) if i not in n.attrs["dims"]]
        if rest == sorted(rest):   # kept dims stay in order: no permute needed after
            graph.release_name(n.name)
            new = graph.add_op(n.op, n.name, [ins[0].inputs[0]], attrs, meta=n.meta, before=n)
            new.df = n.df
            graph.replace_all_uses(n, new)
            return True
    if _is_permute(n) and _is_permute(ins[0]):
        inner, outer = ins[0].attrs["perm"], n.attrs["perm"]
        composed = [inner[i] for i in outer]
        src = ins[0].inputs[0]
        if composed == sorted(composed):
            graph.replace_all_uses(n, src)
        else:
            graph.release_name(n.name)
            composed_node = graph.add_op(PERMUTE, n.name, [src], {"perm": composed}, meta=n.meta, before=n)
            composed_node.df = n.df
            graph.replace_all_uses(n, composed_node)
        return True
    return False


def sink_permutes(graph: Graph) -> int:
    """Push permutes past elementwise ops and reductions; fold permute chains; drop identities."""
    count = 0
    changed = True
    while changed:
        changed = False
        replaced = set()       # rewritten nodes are dead; later inputs may still point at them this sweep
        for n in list(graph.nodes):
            if n.kind == OP and n not in replaced and not any(i in replaced for i in n.inputs) \
                    and _sink_one(graph, n):
                replaced.add(n)
                count += 1
                changed = True
        graph.remove_dead()
    return count
