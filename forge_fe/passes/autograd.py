"""Autograd: extend a Forge graph with its backward graph, from each op's `backward` rule.

Reverse-mode differentiation (JAX's `backward_pass`, tt-forge-fe's autograd):
walk the graph from the outputs back, give every node its gradient dL/dnode
(the sum over its users of what their rules send back) and let the node's rule
turn it into gradients of its inputs. The result is one *joint* graph:

    inputs:  activations, const-eval results, parameters, one gradient per output
    outputs: the forward outputs, then dL/dparameter for every parameter the outputs depend on

Parameters become graph inputs (they change every optimizer step, so they can't
be baked-in constants). Passes after this one rewrite the joint graph as a whole
(layouts, rank equalizing), and `graph_split` cuts it into the forward program
(which also returns the intermediates backward needs) and the backward program.

A backward rule is `rule(ctx: GradContext) -> [grad of input i, or None]`; it builds
its nodes through `ctx.op` from Forge ops, so backward lowers to TTIR like forward.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forge_fe.errors import CompileError
from forge_fe.graph.graph import INPUT, OP, PARAMETER, Graph, Node


@dataclass
class GradContext:
    """What a backward rule sees: the forward node, its output gradient, and a node builder."""
    graph: Graph
    node: Node                 # the forward node being differentiated
    grad: Node                 # dL/d(node)
    needs: list[bool]          # needs[i]: does input i want a gradient

    @property
    def x(self) -> list[Node]:
        return self.node.inputs

    @property
    def y(self) -> Node:
        return self.node

    def op(self, opdef, *inputs, **attrs) -> Node:
        """Add a backward node computing opdef(inputs, attrs); named after the forward node."""
        n = self.graph.add_op(opdef, f"{self.node.name}.bwd.{opdef.name}", list(inputs), attrs,
                              meta=dict(self.node.meta, backward=True))
        if n.dtype.startswith("float"):
            n.df = self.grad.df
        return n

    def const(self, value, dtype: str | None = None) -> Node:
        """A scalar constant in the gradient's dtype."""
        dtype = dtype or self.grad.dtype
        return self.graph.add_const(f"{self.node.name}.bwd.c", np.array(value, dtype=dtype))

    def unbroadcast(self, g: Node, shape) -> Node:
        """Sum g over the dims that numpy broadcasting added or stretched to reach g's shape."""
        from forge_fe.op import OPS
        shape = tuple(shape)
        if tuple(g.shape) == shape:
            return g
        lead = len(g.shape) - len(shape)
        dims = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1]
        if dims:
            g = self.op(OPS["sum"], g, dims=dims, keep_dim=True)
        return self.op(OPS["reshape"], g, shape=list(shape)) if tuple(g.shape) != shape else g


@dataclass
class Autograd:
    """What the autograd pass made of a graph (the graph's inputs/outputs hold the nodes)."""
    num_outputs: int                                   # forward outputs come first in graph.outputs
    params: list[Node] = field(default_factory=list)   # parameter inputs, in graph order
    grad_inputs: list[Node] = field(default_factory=list)   # dL/d(output i) inputs (None: no gradient)
    grad_params: list[str] = field(default_factory=list)    # names of params whose grads follow the outputs
    grad_acts: list[int] = field(default_factory=list)      # graph.inputs indices of activations whose grads follow
    no_grad_acts: list[int] = field(default_factory=list)   # activations whose gradient can't be computed


def _floating(n: Node) -> bool:
    return n.dtype.startswith("float")


def _depends_on(graph: Graph, roots) -> set[Node]:
    out = set(roots)
    for n in graph.nodes:
        if n.kind == OP and _floating(n) and any(i in out for i in n.inputs):
            out.add(n)
    return out


def _ancestors(nodes) -> set[Node]:
    seen, stack = set(), list(nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.inputs)
    return seen


def build_backward(graph: Graph, frozen=frozenset()) -> Autograd:
    """Turn parameters into inputs and append the backward graph; see the module docstring.
    Parameters named in `frozen` (requires_grad=False in torch) stay constants of the forward program."""
    params = [n for n in graph.nodes if n.kind == PARAMETER and _floating(n) and n.name not in frozen]
    if not params:
        raise CompileError("autograd", f"graph '{graph.name}' has no trainable parameters, so there is nothing to train",
                           "training needs a model with floating-point parameters that require gradients "
                           "(torch.nn.Parameter); compile with training=False for inference")
    # Floating-point activations get gradients too (a torch model may feed the compiled one).
    acts = [n for n in graph.inputs if _floating(n) and not n.meta.get("consteval")]
    for p in params:
        p.kind = INPUT
        p.meta = dict(p.meta, trainable=True)
        graph.inputs.append(p)

    from_params = _depends_on(graph, params)
    from_act = {a: _depends_on(graph, [a]) for a in acts}
    requires = from_params.union(*from_act.values())
    live = _ancestors(graph.outputs)
    missing = sorted({f"{n.op.name} (node '{n.name}', from {n.meta.get('framework_name', n.name)})"
                      for n in graph.nodes if n in from_params and n in live and n.kind == OP and n.op.backward is None})
    if missing:
        raise CompileError("autograd", "ops without a backward rule: " + ", ".join(missing),
                           "add a `backward=` rule to the op's OpDef in forge_fe/op/, or freeze the parameters "
                           "that reach it (train a model whose trainable part avoids these ops)")

    result = Autograd(num_outputs=len(graph.outputs))
    grads: dict[Node, Node] = {}
    for i, o in enumerate(graph.outputs):
        if o in requires:
            g = graph.add_input(f"{o.name}.grad", o.shape, o.dtype)
            g.df = o.df
            g.meta = {"grad_of_output": i}
            grads[o] = g
            result.grad_inputs.append(g)
        else:
            result.grad_inputs.append(None)

    from forge_fe.op import OPS
    blocked = set()     # nodes that only activations reach and whose rule is missing or refuses
    for n in reversed(list(graph.nodes)):
        g = grads.get(n)
        if g is None or n.kind != OP or n not in requires:
            continue
        if n.op.backward is None:
            blocked.add(n)
            continue
        ctx = GradContext(graph, n, g, [i in requires for i in n.inputs])
        try:
            in_grads = n.op.backward(ctx)
        except CompileError:
            raise
        except Exception as exc:
            if n not in from_params:
                blocked.add(n)
                continue
            raise CompileError("autograd", f"backward rule of op '{n.op.name}' failed for node '{n.name}' "
                               f"(from {n.meta.get('framework_name', n.name)}): {type(exc).__name__}: {exc}") from exc
        for x, dx in zip(n.inputs, in_grads):
            if dx is None or x not in requires:
                continue
            if tuple(dx.shape) != tuple(x.shape):
                raise CompileError("autograd", f"backward rule of op '{n.op.name}' gave a gradient of shape "
                                   f"{list(dx.shape)} for input '{x.name}' of shape {list(x.shape)}",
                                   "this is a bug in the op's backward rule: please report it")
            prev = grads.get(x)
            grads[x] = dx if prev is None else ctx.op(OPS["add"], prev, dx)

    for p in params:
        if p in grads:
            graph.outputs.append(grads[p])
            result.grad_params.append(p.name)
    for a in acts:
        if from_act[a] & blocked:
            result.no_grad_acts.append(graph.inputs.index(a))
        elif a in grads:
            graph.outputs.append(grads[a])
            result.grad_acts.append(graph.inputs.index(a))
    result.params = params
    graph.toposort()
    return result


# ---- graph split ---------------------------------------------------------------------

def _clone_into(g: Graph, n: Node, clones: dict, as_input: bool = False) -> Node:
    if as_input:
        c = g.add_input(n.name, n.shape, n.dtype)
        c.meta = dict(n.meta)
    elif n.is_const:
        c = g.add_const(n.name, n.value, kind=n.kind, meta=n.meta)
    else:
        c = g.add_op(n.op, n.name, [clones[i] for i in n.inputs], n.attrs, meta=n.meta)
    c.df = n.df
    clones[n] = c
    return c


def split_forward_backward(graph: Graph, info: Autograd) -> tuple[Graph, Graph]:
    """Cut the joint graph into the forward and backward programs' graphs.

    Forward: every node the forward outputs need; it also returns the forward
    intermediates that backward reads ("saved"). Backward: every other node the
    parameter gradients need; its inputs are saved intermediates, forward inputs
    (activations, parameters, const-eval results) and the output gradients.
    Input/output nodes carry `meta["plan_key"]` telling the binary builder which
    plan value they are: ("input", i) = joint-graph input i, ("output", i) = forward output i,
    ("saved", name). Forward returns its outputs, then the saved values; backward returns
    the gradients of `info.grad_params`, then of the activations `info.grad_acts`."""
    fwd_outputs = graph.outputs[:info.num_outputs]
    grad_outputs = graph.outputs[info.num_outputs:]
    in_fwd = {n for n in _ancestors(fwd_outputs) if n not in graph.inputs}
    in_bwd = {n for n in _ancestors(grad_outputs) if n not in in_fwd and n not in graph.inputs}
    input_index = {n: i for i, n in enumerate(graph.inputs)}
    users = graph.users()
    read_by_bwd = lambda n: n in grad_outputs or any(u in in_bwd for u in users[n])
    # Forward intermediates that backward reads are returned by forward ("saved"); constants are cloned.
    output_index = {n: i for i, n in reversed(list(enumerate(fwd_outputs)))}
    saved = [n for n in graph.nodes if n in in_fwd and not n.is_const and n not in output_index and read_by_bwd(n)]

    fwd = Graph(f"{graph.name}_forward")
    clones: dict[Node, Node] = {}
    for n in graph.inputs:
        if n.meta.get("grad_of_output") is None:
            _clone_into(fwd, n, clones, as_input=True).meta["plan_key"] = ("input", input_index[n])
    for n in graph.nodes:
        if n in in_fwd:
            _clone_into(fwd, n, clones)
    fwd.outputs = [clones[o] for o in fwd_outputs] + [clones[n] for n in saved]   # outputs, then saved
    fwd.remove_dead()

    bwd = Graph(f"{graph.name}_backward")
    clones = {}
    for n in graph.inputs + list(output_index) + saved:
        if read_by_bwd(n) and n not in clones:
            c = _clone_into(bwd, n, clones, as_input=True)
            c.meta["plan_key"] = (("input", input_index[n]) if n in input_index else
                                  ("output", output_index[n]) if n in output_index else ("saved", n.name))
    for n in graph.nodes:
        if n in in_bwd:
            if n.is_const:
                _clone_into(bwd, n, clones)
            elif n.kind == OP:
                for i in n.inputs:
                    if i not in clones and i.is_const:
                        _clone_into(bwd, i, clones)
                _clone_into(bwd, n, clones)
    bwd.outputs = [clones[o] for o in grad_outputs]
    return fwd, bwd
