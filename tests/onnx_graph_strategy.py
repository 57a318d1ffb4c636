"""A hypothesis strategy for random valid ONNX graphs of 1 to 12 nodes, for differential fuzzing.

Each graph starts from one or two runtime inputs (rank 1-4, dims 1-5, size-1 dims often) of
one dtype (float32 mostly; float16, int32, int64), then grows node by node: each node is drawn
from the ops forge_fe supports (they all pass ONNX's node suite), applied to values already in
the graph, with random attributes. Second operands of binary ops are earlier values or new
initializers of a broadcast-compatible shape (dims dropped or set to 1), so broadcasting is
exercised both ways. The outputs are the last value plus, sometimes, an earlier one.

Values are drawn so the graph is well-conditioned enough to compare at a dtype's tolerance:
divisors and Pow bases are initializers away from zero, integer data stays small. NaN and
infinities are exercised separately: a graph's inputs may carry injected special values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ONNX_DTYPE = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int32": TensorProto.INT32,
              "int64": TensorProto.INT64, "bool": TensorProto.BOOL}
FLOATS = ("float32", "float16")


@dataclass
class Value:
    name: str
    shape: tuple
    dtype: str


@dataclass
class Graph:
    """A graph under construction; `build()` makes the checked ModelProto."""
    rng: np.random.Generator
    specials: bool = False          # inputs will carry NaN / inf / -0.0
    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    pool: list = field(default_factory=list)
    count: int = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def node(self, op: str, ins: list, shape, dtype, **attrs) -> Value:
        out = Value(self.name(op.lower()), tuple(shape), dtype)
        self.nodes.append(helper.make_node(op, [getattr(i, "name", i) for i in ins], [out.name],
                                           name=f"n{len(self.nodes)}_{op}", **attrs))
        self.pool.append(out)
        return out

    def const(self, array: np.ndarray, prefix="w") -> Value:
        v = Value(self.name(prefix), array.shape, str(array.dtype))
        self.inits.append(numpy_helper.from_array(array, v.name))
        return v

    def build(self, outputs: list) -> onnx.ModelProto:
        vi = lambda v: helper.make_tensor_value_info(v.name, ONNX_DTYPE[v.dtype], list(v.shape))
        g = helper.make_graph(self.nodes, "fuzz", [vi(v) for v in self.inputs], [vi(v) for v in outputs],
                              self.inits)
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def data(rng, shape, dtype, low=-3.0, high=3.0):
    if dtype in FLOATS:
        return rng.uniform(low, high, size=shape).astype(dtype)
    return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)


def broadcast_partner(draw, shape):
    """A shape that broadcasts with `shape` to `shape`: leading dims dropped, others set to 1."""
    drop = draw(st.integers(0, len(shape) - 1))
    return tuple(d if draw(st.booleans()) else 1 for d in shape[drop:])


def broadcasts_to(small, shape) -> bool:
    return len(small) <= len(shape) and all(a in (1, b) for a, b in zip(small[::-1], shape[::-1]))


# ---- ops: each takes (draw, graph, value) and returns the new Value, or None if it does not apply ----

UNARY_FLOAT = ["Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Erf", "Exp", "Floor", "Ceil", "Sin", "Cos",
               "Softsign", "Softplus"]
UNARY_INT = ["Neg", "Abs"]


def op_unary(draw, g, v):
    choices = UNARY_FLOAT if v.dtype in FLOATS else UNARY_INT
    op = draw(st.sampled_from(choices))
    return g.node(op, [v], v.shape, v.dtype)


def op_activation(draw, g, v):
    if v.dtype not in FLOATS:
        return None
    # Celu is float32-only in ONNX's type constraints
    op = draw(st.sampled_from(["LeakyRelu", "Elu", "HardSigmoid", "Selu", "HardSwish"]
                              + (["Celu"] if v.dtype == "float32" else [])))
    attrs = {}
    if op in ("LeakyRelu", "Elu", "Celu"):
        attrs["alpha"] = draw(st.sampled_from([0.01, 0.1, 0.5, 1.0, 2.0]))
    return g.node(op, [v], v.shape, v.dtype, **attrs)


def op_sqrt_log(draw, g, v):
    """Sqrt / Log of |x| + 1 (no NaN from the domain; special inputs still reach them)."""
    if v.dtype not in FLOATS:
        return None
    a = g.node("Abs", [v], v.shape, v.dtype)
    a = g.node("Add", [a, g.const(np.ones((1,), v.dtype), "one")], v.shape, v.dtype)
    return g.node(draw(st.sampled_from(["Sqrt", "Log", "Reciprocal"])), [a], v.shape, v.dtype)


def op_clip(draw, g, v):
    if v.dtype not in FLOATS:
        return None
    lo = draw(st.sampled_from([-1.0, -0.5, 0.0]))
    hi = draw(st.sampled_from([0.5, 1.0, 6.0]))
    return g.node("Clip", [v, g.const(np.array(lo, v.dtype), "lo"), g.const(np.array(hi, v.dtype), "hi")],
                  v.shape, v.dtype)


def op_binary(draw, g, v):
    op = draw(st.sampled_from(["Add", "Sub", "Mul", "Max", "Min"] + (["Div", "Pow"] if v.dtype in FLOATS else [])))
    partners = [p for p in g.pool if p is not v and p.dtype == v.dtype and broadcasts_to(p.shape, v.shape)]
    if op in ("Div", "Pow") or not partners or draw(st.booleans()):
        shape = broadcast_partner(draw, v.shape)
        if op == "Div":           # divisor away from 0
            w = g.rng.uniform(0.5, 2.0, shape) * g.rng.choice([-1, 1], shape)
        elif op == "Pow":         # Pow(x, small integer): defined for negative x
            w = g.rng.integers(1, 4, shape)
        elif op == "Mul" and v.dtype not in FLOATS:
            w = g.rng.integers(-3, 4, shape)
        else:
            w = data(g.rng, shape, v.dtype)
        other = g.const(np.asarray(w, v.dtype))
    else:
        other = draw(st.sampled_from(partners))
    ins = [v, other] if draw(st.booleans()) or op in ("Div", "Pow") else [other, v]
    return g.node(op, ins, v.shape, v.dtype)


def op_compare_where(draw, g, v):
    op = draw(st.sampled_from(["Greater", "Less", "Equal", "GreaterOrEqual"]))
    t = g.const(np.zeros(broadcast_partner(draw, v.shape), v.dtype), "t")
    c = g.node(op, [v, t], v.shape, "bool")
    g.pool.remove(c)                   # booleans feed Where only
    other = g.const(data(g.rng, broadcast_partner(draw, v.shape), v.dtype))
    return g.node("Where", [c, v, other], v.shape, v.dtype)


def op_reduce(draw, g, v):
    ops = ["ReduceSum", "ReduceMax", "ReduceMin"] + (["ReduceMean", "ReduceL2", "ReduceLogSumExp"]
                                                    if v.dtype in FLOATS else [])
    op = draw(st.sampled_from(ops))
    rank = len(v.shape)
    axes = sorted(draw(st.sets(st.integers(0, rank - 1), min_size=1, max_size=rank)))
    keep = draw(st.booleans()) or len(axes) == rank
    shape = tuple(1 if i in axes else d for i, d in enumerate(v.shape)) if keep else \
        tuple(d for i, d in enumerate(v.shape) if i not in axes)
    signed = [a - rank if draw(st.booleans()) else a for a in axes]
    if op == "ReduceSum":             # opset 13: axes is an input
        return g.node(op, [v, g.const(np.array(signed, np.int64), "axes")], shape, v.dtype, keepdims=int(keep))
    return g.node(op, [v], shape, v.dtype, axes=signed, keepdims=int(keep))


def op_softmax(draw, g, v):
    if v.dtype not in FLOATS:
        return None
    axis = draw(st.integers(-len(v.shape), len(v.shape) - 1))
    return g.node(draw(st.sampled_from(["Softmax", "LogSoftmax"])), [v], v.shape, v.dtype, axis=axis)


def op_transpose(draw, g, v):
    if len(v.shape) < 2:
        return None
    perm = draw(st.permutations(range(len(v.shape))))
    return g.node("Transpose", [v], [v.shape[p] for p in perm], v.dtype, perm=list(perm))


def op_reshape(draw, g, v):
    n = int(np.prod(v.shape))
    factors = [f for f in range(1, n + 1) if n % f == 0]
    a = draw(st.sampled_from(factors))
    shape = draw(st.sampled_from([(n,), (a, n // a), (1, a, n // a), (n // a, 1, a)]))
    spec = list(shape)
    if draw(st.booleans()):
        spec[draw(st.integers(0, len(spec) - 1))] = -1
    return g.node("Reshape", [v, g.const(np.array(spec, np.int64), "shape")], shape, v.dtype)


def op_unsqueeze_squeeze(draw, g, v):
    ones = [i for i, d in enumerate(v.shape) if d == 1]
    if ones and len(v.shape) > 1 and draw(st.booleans()):
        axis = draw(st.sampled_from(ones))
        shape = tuple(d for i, d in enumerate(v.shape) if i != axis)
        return g.node("Squeeze", [v, g.const(np.array([axis], np.int64), "axes")], shape, v.dtype)
    if len(v.shape) >= 4:
        return None
    axis = draw(st.integers(0, len(v.shape)))
    shape = v.shape[:axis] + (1,) + v.shape[axis:]
    return g.node("Unsqueeze", [v, g.const(np.array([axis], np.int64), "axes")], shape, v.dtype)


def op_concat(draw, g, v):
    axis = draw(st.integers(0, len(v.shape) - 1))
    same = [p for p in g.pool if p.dtype == v.dtype and len(p.shape) == len(v.shape)
            and all(a == b for i, (a, b) in enumerate(zip(p.shape, v.shape)) if i != axis)]
    other = draw(st.sampled_from(same))
    shape = tuple(d + (other.shape[axis] if i == axis else 0) for i, d in enumerate(v.shape))
    return g.node("Concat", [v, other], shape, v.dtype, axis=axis - len(v.shape) * draw(st.booleans()))


def op_slice(draw, g, v):
    axis = draw(st.integers(0, len(v.shape) - 1))
    d = v.shape[axis]
    if d < 2:
        return None
    step = draw(st.sampled_from([1, 1, 2, -1]))
    if step > 0:
        start = draw(st.integers(0, d - 1))
        end = draw(st.integers(start + 1, d))
        size = len(range(start, end, step))
    else:
        start, end = d - 1, -d - 1             # the whole axis, reversed
        size = d
    shape = tuple(size if i == axis else s for i, s in enumerate(v.shape))
    consts = [g.const(np.array([x], np.int64), n) for x, n in ((start, "starts"), (end, "ends"), (axis, "axes"),
                                                             (step, "steps"))]
    return g.node("Slice", [v] + consts, shape, v.dtype)


def op_matmul(draw, g, v):
    if v.dtype not in FLOATS:
        return None
    k = v.shape[-1]
    n = draw(st.integers(1, 6))
    if len(v.shape) == 2 and draw(st.booleans()):
        trans = draw(st.booleans())
        w = g.const(data(g.rng, (n, k) if trans else (k, n), v.dtype, -1, 1))
        ins = [v, w] + ([g.const(data(g.rng, draw(st.sampled_from([(n,), (1, n)])), v.dtype))]
                        if draw(st.booleans()) else [])
        return g.node("Gemm", ins, (v.shape[0], n), v.dtype, transB=int(trans),
                      alpha=draw(st.sampled_from([1.0, 0.5])))
    w = g.const(data(g.rng, (k, n), v.dtype, -1, 1))
    return g.node("MatMul", [v, w], v.shape[:-1] + (n,), v.dtype)


def _conv_out(d, k, s, p):
    return (d + 2 * p - k) // s + 1


def op_conv(draw, g, v):
    if v.dtype != "float32" or len(v.shape) != 4:
        return None
    n, c, h, w = v.shape
    k = draw(st.integers(1, min(3, h, w)))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    groups = draw(st.sampled_from([1, c]))
    oc = c * draw(st.integers(1, 2)) if groups == c else draw(st.integers(1, 4))
    weight = g.const(data(g.rng, (oc, c // groups, k, k), "float32", -1, 1))
    ins = [v, weight] + ([g.const(data(g.rng, (oc,), "float32"))] if draw(st.booleans()) else [])
    return g.node("Conv", ins, (n, oc, _conv_out(h, k, s, p), _conv_out(w, k, s, p)), "float32",
                  kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, group=groups)


def op_pool(draw, g, v):
    if v.dtype != "float32" or len(v.shape) != 4:
        return None
    n, c, h, w = v.shape
    op = draw(st.sampled_from(["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"]))
    if op.startswith("Global"):
        return g.node(op, [v], (n, c, 1, 1), "float32")
    k = draw(st.integers(1, min(3, h, w)))
    s = draw(st.integers(1, 2))
    p = draw(st.integers(0, k // 2))
    return g.node(op, [v], (n, c, _conv_out(h, k, s, p), _conv_out(w, k, s, p)), "float32",
                  kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)


def op_norm(draw, g, v):
    if v.dtype != "float32" or len(v.shape) < 2:
        return None
    if len(v.shape) == 4 and draw(st.booleans()):
        c = v.shape[1]
        scale, bias, mean = (g.const(data(g.rng, (c,), "float32")) for _ in range(3))
        var = g.const(g.rng.uniform(0.5, 2.0, (c,)).astype(np.float32))
        return g.node("BatchNormalization", [v, scale, bias, mean, var], v.shape, "float32")
    axis = draw(st.integers(-1, -1) | st.integers(1, len(v.shape) - 1))
    norm = v.shape[axis:]
    return g.node("LayerNormalization", [v, g.const(data(g.rng, norm, "float32")),
                                         g.const(data(g.rng, norm, "float32"))], v.shape, "float32", axis=axis)


def op_cast(draw, g, v):
    # NaN / inf -> integer is undefined in ONNX (onnxruntime: INT_MIN): not compared
    ints = () if g.specials else ("int32", "int64")
    to = draw(st.sampled_from([d for d in ("float32",) + ints if d != v.dtype] or ["float32"]))
    if to == v.dtype:
        return None
    src = v
    if v.dtype in FLOATS and to not in FLOATS:      # float -> int casts truncate: keep values integral
        src = g.node("Floor", [v], v.shape, v.dtype)
    return g.node("Cast", [src], v.shape, to, to=ONNX_DTYPE[to])


OPS = [op_unary, op_unary, op_activation, op_sqrt_log, op_clip, op_binary, op_binary, op_binary,
       op_compare_where, op_reduce, op_softmax, op_transpose, op_reshape, op_unsqueeze_squeeze, op_concat,
       op_slice, op_matmul, op_conv, op_conv, op_pool, op_norm, op_cast]

SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0], np.float32)


@st.composite
def onnx_graphs(draw, max_nodes: int = 12, specials: bool = True):
    """(model, feeds): a valid ONNX model of 1..max_nodes nodes and inputs for it."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = draw(st.sampled_from(["float32"] * 6 + ["float16", "int32", "int64"]))
    g = Graph(rng, specials=specials and dtype in FLOATS and draw(st.integers(0, 4)) == 0)
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.sampled_from([1, 1, 2, 3, 4, 5])) for _ in range(rank))
    g.inputs.append(Value("x", shape, dtype))
    if draw(st.booleans()):
        g.inputs.append(Value("y", broadcast_partner(draw, shape) if draw(st.booleans()) else shape, dtype))
    g.pool.extend(g.inputs)
    target = draw(st.integers(1, max_nodes))
    while len(g.nodes) < target:
        v = draw(st.sampled_from(g.pool[-4:]))          # mostly chains, sometimes branches
        made = draw(st.sampled_from(OPS))(draw, g, v)
        if made is not None and int(np.prod(made.shape)) > 4096:
            return draw(st.nothing())
    last = g.pool[-1]
    outputs = [last]
    extra = [p for p in g.pool if p not in g.inputs and p is not last]
    if extra and draw(st.booleans()):
        outputs.append(draw(st.sampled_from(extra)))
    model = g.build(outputs)
    feeds = {}
    for v in g.inputs:
        x = data(rng, v.shape, v.dtype)
        if g.specials:
            idx = rng.integers(0, x.size, size=draw(st.integers(1, 3)))
            x.reshape(-1)[idx] = rng.choice(SPECIALS, size=idx.size)
        feeds[v.name] = x
    return model, feeds
