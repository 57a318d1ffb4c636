"""Fusions of decomposed activations back into the one op the device has for them.

Frameworks often spell an activation out in elementwise ops (GPT-2's `NewGELUActivation` is
`0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))`): eight ops, eight passes over the
activations and eight SFPU/FPU kernels on the device, where the device and every CPU runtime
(onnxruntime's FastGelu fusion) run one. Each pass is `fn(graph) -> count`, testable alone.
"""
from __future__ import annotations

import math

from forge_fe.graph.graph import OP, Graph, Node
from forge_fe.op import OPS

op = OPS


def _scalar(n: Node):
    """The float value of a one-element constant, else None."""
    if n.is_const and n.value is not None and n.value.size == 1 and n.dtype.startswith("float"):
        return float(n.value.reshape(()))
    return None


def _with_scalar(n: Node, opname: str, value: float):
    """For `n = opname(other, c)` (either order) with scalar constant c == value: `other`, else None."""
    if n.kind != OP or n.op is not op[opname] or len(n.inputs) != 2:
        return None
    for other, c in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
        v = _scalar(c)
        if v is not None and math.isclose(v, value, rel_tol=1e-5):
            return other
    return None


def _only_reader(users, n: Node):
    r = users.get(n, [])
    return r[0] if len(r) == 1 and n not in n.graph.outputs else None


def _gelu_tanh_input(users, t: Node):
    """If tanh node t is the core of `0.5*x * (1 + tanh(s*(x + k*x**3)))`: (x, the result node)."""
    inner = _with_scalar(t.inputs[0], "multiply", math.sqrt(2 / math.pi))
    if inner is None or inner.kind != OP or inner.op is not op["add"] or _only_reader(users, t.inputs[0]) is None:
        return None
    for x, cubic in ((inner.inputs[0], inner.inputs[1]), (inner.inputs[1], inner.inputs[0])):
        cube = _with_scalar(cubic, "multiply", 0.044715)
        if cube is not None and cube.kind == OP and cube.op is op["power"] and cube.inputs[0] is x \
                and _scalar(cube.inputs[1]) == 3.0:          # x ** 3 (power does not commute)
            break
    else:
        return None
    one_plus = _only_reader(users, t)
    if one_plus is None or _with_scalar(one_plus, "add", 1.0) is not t:
        return None
    out = _only_reader(users, one_plus)
    if out is None or out.kind != OP or out.op is not op["multiply"]:
        return None
    half = out.inputs[1] if out.inputs[0] is one_plus else out.inputs[0]
    if _with_scalar(half, "multiply", 0.5) is not x or out.shape != x.shape or out.dtype != x.dtype:
        return None
    return x, out


def fuse_gelu_tanh(graph: Graph) -> int:
    """`0.5*x * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3)))` -> gelu(x, approximate="tanh")."""
    users = graph.users()
    replaced = {}
    for t in [n for n in graph.nodes if n.kind == OP and n.op is op["tanh"]]:
        match = _gelu_tanh_input(users, t)
        if match is None:
            continue
        x, out = match
        graph.release_name(out.name)
        gelu = graph.add_op(op["gelu"], out.name, [x], {"approximate": "tanh"}, meta=out.meta, before=out)
        gelu.df = out.df
        replaced[out] = gelu
    if replaced:
        graph.replace_uses(replaced)
        graph.remove_dead()
    return len(replaced)
