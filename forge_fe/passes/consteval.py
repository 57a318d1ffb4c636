"""Consteval: move subgraphs fed only by weights/constants into a separate graph.

The const-eval graph becomes a private device program that the runtime runs once
when the binary is loaded and caches; the main graph takes its results as inputs.
Training must never fold trainable parameters: pass `frozen_only=True` there.
"""
from __future__ import annotations

from forge_fe.graph.graph import OP, PARAMETER, Graph, Node
from forge_fe.passes.post_initial import const_derived


def split_consteval(graph: Graph, frozen_only: bool = False) -> Graph | None:
    """Returns the const-eval graph (or None) and rewires `graph` to take its outputs as inputs."""
    folded = {n for n in const_derived(graph) if n.kind == OP}
    if frozen_only:
        folded = {n for n in folded if not _reaches_parameter(n)}
    if not folded:
        return None
    users = graph.users()
    boundary = [n for n in graph.nodes if n in folded and
                (n in graph.outputs or any(u not in folded for u in users[n]))]
    ce = Graph(f"{graph.name}_const_eval")
    clones: dict[Node, Node] = {}
    for n in graph.nodes:   # topological order: inputs are cloned before their users
        if n in folded:
            c = ce.add_op(n.op, n.name, [clones[i] for i in n.inputs], n.attrs, meta=n.meta)
        elif n.is_const and any(u in folded for u in users[n]):
            c = ce.add_const(n.name, n.value, kind=n.kind, meta=n.meta)
        else:
            continue
        c.df = n.df
        clones[n] = c
    ce.outputs = [clones[n] for n in boundary]
    # In the main graph, each boundary node becomes an input supplied by const-eval.
    replaced = {}
    for n in boundary:
        inp = graph.add_input(f"{n.name}.ce", n.shape, n.dtype)
        inp.meta = dict(n.meta, consteval=True)
        inp.df = n.df
        replaced[n] = inp
    graph.replace_uses(replaced)        # one walk for all of them (a walk per weight is quadratic)
    graph.remove_dead()
    graph.nodes.sort(key=lambda n: 0 if n.kind == "input" else 1)  # inputs first, order kept otherwise
    return ce


def _reaches_parameter(n: Node) -> bool:
    stack, seen = [n], set()
    while stack:
        x = stack.pop()
        if x.kind == PARAMETER:
            return True
        if x in seen:
            continue
        seen.add(x)
        stack.extend(x.inputs)
    return False

