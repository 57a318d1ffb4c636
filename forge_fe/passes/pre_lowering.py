"""Pre-lowering passes: re-verify shapes and give broadcasting operands equal rank (TTIR requires it)."""
from __future__ import annotations

from forge_fe.errors import CompileError
from forge_fe.graph.graph import OP, Graph
from forge_fe.op import OPS

_BROADCASTING = {OPS[n] for n in ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power",
                                 "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
                                 "logical_and", "logical_or", "bitwise_and", "where", "rotary_embedding")}


def verify_shapes(graph: Graph) -> int:
    """Recompute every node's type from its shape rule; a mismatch means a pass broke the graph."""
    for n in graph.nodes:
        if n.kind != OP:
            continue
        t = n.op.shape([i.type for i in n.inputs], n.attrs)
        if t != n.type:
            raise CompileError("pre_lowering", f"node '{n.name}' ({n.op.name}) records type {n.type} "
                               f"but its shape rule gives {t}", "this is a compiler bug: please report it")
    return 0


def equalize_ranks(graph: Graph) -> int:
    """Reshape lower-rank operands of broadcasting ops to the result's rank (leading 1s).

    A constant or parameter operand is reshaped here, once (a numpy view: no copy), instead of by
    a reshape op that every call would run; one reshaped node serves all its readers."""
    count = 0
    reshaped_consts = {}
    for n in list(graph.nodes):
        if n.kind != OP or n.op not in _BROADCASTING:
            continue
        rank = len(n.shape)
        new_inputs = []
        for x in n.inputs:
            if len(x.shape) < rank:
                shape = [1] * (rank - len(x.shape)) + list(x.shape)
                if x.is_const:
                    key = (id(x), rank)
                    if key not in reshaped_consts:
                        c = graph.add_const(f"{x.name}.rank{rank}", x.value.reshape(shape), kind=x.kind, meta=x.meta)
                        c.df = x.df
                        reshaped_consts[key] = c
                    x = reshaped_consts[key]
                else:
                    src = x
                    x = graph.add_op(OPS["reshape"], f"{n.name}.rank", [x], {"shape": shape}, meta=n.meta, before=n)
                    x.df = src.df
                count += 1
            new_inputs.append(x)
        n.inputs = new_inputs
    if reshaped_consts:
        graph.remove_dead()        # constants whose every reader now takes the reshaped node
    return count
