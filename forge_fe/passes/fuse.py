"""Fusions of decomposed activations and norms back into the one op the device has for them.

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


def fuse_silu(graph: Graph) -> int:
    """`x * sigmoid(x)` (either order; the sigmoid read by nothing else) -> silu(x): the SwiGLU gate of
    Llama-family MLPs, as transformers spells it after export."""
    users = graph.users()
    replaced = {}
    for n in [n for n in graph.nodes if n.kind == OP and n.op is op["multiply"] and len(n.inputs) == 2]:
        for x, s in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
            if s.kind == OP and s.op is op["sigmoid"] and s.inputs[0] is x and _only_reader(users, s) is n \
                    and n.shape == x.shape and n.dtype == x.dtype:
                replaced[n] = _replacement(graph, n, "silu", [x], {})
                break
    if replaced:
        graph.replace_uses(replaced)
        graph.remove_dead()
    return len(replaced)


def _is_square_of(sq: Node, x: Node) -> bool:
    """sq = x ** 2 or x * x."""
    if sq.kind != OP:
        return False
    if sq.op is op["power"]:
        return sq.inputs[0] is x and _scalar(sq.inputs[1]) == 2.0
    return sq.op is op["multiply"] and sq.inputs[0] is x and sq.inputs[1] is x


def _rms_core(users, n: Node):
    """If n = x * rsqrt(mean(x ** 2, trailing dims, keep_dim) + eps), each intermediate read only by the
    next: (x, eps, number of normalized dims), else None."""
    for x, r in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
        if r.kind != OP or r.op is not op["rsqrt"] or _only_reader(users, r) is not n or n.shape != x.shape:
            continue
        s = r.inputs[0]
        if s.kind != OP or s.op is not op["add"] or _only_reader(users, s) is not r:
            continue
        for m, e in ((s.inputs[0], s.inputs[1]), (s.inputs[1], s.inputs[0])):
            eps = _scalar(e)
            if eps is None or m.kind != OP or m.op is not op["mean"] or _only_reader(users, m) is not s \
                    or not m.attrs.get("keep_dim") or not _is_square_of(m.inputs[0], x) \
                    or _only_reader(users, m.inputs[0]) is not m:
                continue
            rank = len(x.shape)
            dims = sorted(d % rank for d in m.attrs["dims"])
            if dims and dims == list(range(rank - len(dims), rank)):
                return x, eps, len(dims)
    return None


def fuse_rms_norm(graph: Graph) -> int:
    """`x * rsqrt(mean(x**2) + eps)`, then `* gamma` when gamma spans just the normalized dims ->
    rms_norm(x, gamma): Llama's RMSNorm is six ops per use as exported (power, mean, add, rsqrt and two
    multiplies), the device's ttir.rms_norm one (and one rounding of its result instead of five)."""
    users = graph.users()
    replaced = {}
    for n in [n for n in graph.nodes if n.kind == OP and n.op is op["multiply"] and len(n.inputs) == 2]:
        if n in replaced:
            continue
        core = _rms_core(users, n)
        if core is None:
            continue
        x, eps, k = core
        norm_shape = list(x.shape[len(x.shape) - k:])
        out, ins = n, [x]
        scale = _only_reader(users, n)
        if scale is not None and scale.kind == OP and scale.op is op["multiply"] and len(scale.inputs) == 2 \
                and scale.shape == x.shape and scale.dtype == x.dtype:
            gamma = scale.inputs[1] if scale.inputs[0] is n else scale.inputs[0]
            dims = list(gamma.shape)
            while dims and dims[0] == 1 and len(dims) > k:
                dims.pop(0)
            if gamma is not n and dims == norm_shape and gamma.dtype == x.dtype:
                if list(gamma.shape) != norm_shape:
                    gamma = graph.add_op(op["reshape"], f"{gamma.name}.vec", [gamma], {"shape": norm_shape},
                                         before=scale)
                out, ins = scale, [x, gamma]
        replaced[out] = _replacement(graph, out, "rms_norm", ins, {"normalized_shape": norm_shape, "epsilon": eps})
    if replaced:
        graph.replace_uses(replaced)
        graph.remove_dead()
    return len(replaced)


def _replacement(graph: Graph, out: Node, opname: str, ins: list, attrs: dict) -> Node:
    """A new `opname` node that takes over out's name, metadata and data format."""
    graph.release_name(out.name)
    new = graph.add_op(op[opname], out.name, ins, attrs, meta=out.meta, before=out)
    new.df = out.df
    return new


def _through_casts(n: Node) -> Node:
    while n.kind == OP and n.op is op["cast"]:
        n = n.inputs[0]
    return n


def _all_equal_test(n: Node):
    """If n = not(max(not(x == c) as 0/1, dims, keep_dim)), casts allowed between the steps (torch's
    `_safe_softmax` spelling of "every element of the row is c"): (x, c, the max's attrs), else None."""
    if n.kind != OP or n.op is not op["logical_not"] or n.dtype != "bool":
        return None
    mx = _through_casts(n.inputs[0])
    if mx.kind != OP or mx.op is not op["max"]:
        return None
    ne = _through_casts(mx.inputs[0])
    if ne.kind != OP or ne.op is not op["logical_not"]:
        return None
    eq = ne.inputs[0]
    if eq.kind != OP or eq.op is not op["equal"]:
        return None
    x, c = eq.inputs
    if not x.dtype.startswith("float") or _scalar(c) is None or x.shape != eq.shape:
        return None
    return x, c, mx.attrs


def fold_masked_row_test(graph: Graph) -> int:
    """`not(any(not(x == -inf)))` over a row -> `max(x) == -inf`: one reduction of x and a compare of
    its result, where torch's exported softmax guard (`_safe_softmax`: rows masked entirely give 0,
    not NaN) runs five ops over the whole score tensor per attention, two of them through the
    device's bf16 booleans. The same test for any constant c is `all(x == c)`, which is `max(x) == c`
    only for c = -inf (nothing exceeds it; a NaN row is not equal in both forms)."""
    replaced = {}
    for n in [n for n in graph.nodes if n.kind == OP and n.op is op["logical_not"]]:
        match = _all_equal_test(n)
        if match is None or _scalar(match[1]) != float("-inf"):
            continue
        x, c, attrs = match
        mx = graph.add_op(op["max"], f"{n.name}.row_max", [x], attrs, meta=n.meta, before=n, df=x.df)
        replaced[n] = _replacement(graph, n, "equal", [mx, c], {})
    if replaced:
        graph.replace_uses(replaced)
        graph.remove_dead()
    return len(replaced)


def _half_slice(n: Node, x: Node, upper: bool) -> bool:
    """n = x[..., :h] (upper False) or x[..., h:] (upper True), h half of x's last dim."""
    if n.kind != OP or n.op is not op["slice"] or n.inputs[0] is not x:
        return False
    shape, h = list(x.shape), x.shape[-1] // 2
    a = n.attrs
    return list(a["steps"]) == [1] * len(shape) and \
        list(a["begins"]) == [0] * (len(shape) - 1) + [h if upper else 0] and \
        list(a["ends"]) == shape[:-1] + [shape[-1] if upper else h]


def _rotated(n: Node):
    """If n = concat(-x[..., h:], x[..., :h]) along the last dim (transformers' rotate_half): x."""
    rank = len(n.shape)
    if n.kind != OP or n.op is not op["concat"] or len(n.inputs) != 2 or n.attrs["dim"] % rank != rank - 1:
        return None
    neg, lo = n.inputs
    if neg.kind != OP or neg.op is not op["neg"]:
        return None
    x = lo.inputs[0] if lo.kind == OP and lo.inputs else None
    if x is None or x.shape[-1] % 2 or not _half_slice(lo, x, False) or not _half_slice(neg.inputs[0], x, True):
        return None
    return x


def _factors(n: Node):
    """The two operand orders of multiply n, else none."""
    if n.kind != OP or n.op is not op["multiply"] or len(n.inputs) != 2:
        return []
    a, b = n.inputs
    return [(a, b), (b, a)]


def fuse_rotary_embedding(graph: Graph) -> int:
    """`x * cos + rotate_half(x) * sin` -> rotary_embedding(x, cos, sin): RoPE as Llama, Qwen2,
    Mistral, Phi-3 and Gemma apply it to queries and keys, seven ops each per layer as exported (two
    slices, neg, concat, two multiplies, add) and the device's ttir.rotary_embedding one (tt-mlir's
    own TTIR fusing pass makes the same op from the same motif)."""
    replaced = {}
    for n in [n for n in graph.nodes if n.kind == OP and n.op is op["add"] and len(n.inputs) == 2]:
        match = None
        for left, right in ((n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])):
            for rot, sin in _factors(right):
                x = _rotated(rot)
                if x is None:
                    continue
                for xx, cos in _factors(left):   # x is not broadcast up by cos, sin or the add
                    if xx is x and left.shape == right.shape == n.shape == x.shape and n.dtype == x.dtype:
                        match = (x, cos, sin)
        if match is not None:
            replaced[n] = _replacement(graph, n, "rotary_embedding", list(match), {})
    if replaced:
        graph.replace_uses(replaced)
        graph.remove_dead()
    return len(replaced)
