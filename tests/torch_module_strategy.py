"""A hypothesis strategy for random torch modules (1 to 12 ops), for differential fuzzing against eager.

A module is a small program: a list of steps, each an op applied to earlier values (the inputs
or earlier results), run by `ProgramModule.forward`. torch.export traces that loop into a flat
graph, so forge_fe sees an ordinary model. Layers with weights (Conv2d, Linear, BatchNorm2d,
LayerNorm) are submodules with torch's own random initialization under a drawn seed. Shapes
follow the ONNX strategy's rules (tests/onnx_graph_strategy.py): rank 1-4, dims 1-5, broadcast
partners with dims dropped or set to 1.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import strategies as st

from onnx_graph_strategy import broadcast_partner, broadcasts_to

FLOAT = torch.float32


class ProgramModule(nn.Module):
    """forward runs `steps`: (name, fn(module, *args) -> tensor, argument indices into the values)."""

    def __init__(self):
        super().__init__()
        self.steps = []
        self.outputs = []
        self.layers = nn.ModuleList()
        self.consts = nn.ParameterList()

    def forward(self, *inputs):
        values = list(inputs)
        for _, fn, args in self.steps:
            values.append(fn(*[values[i] for i in args]))
        out = tuple(values[i] for i in self.outputs)
        return out[0] if len(out) == 1 else out

    def describe(self) -> str:
        return "; ".join(f"v{i + self.n_inputs} = {name}({', '.join(f'v{a}' for a in args)})"
                         for i, (name, _, args) in enumerate(self.steps)) + f" -> {self.outputs}"


class Builder:
    def __init__(self, draw, module, shapes, dtype):
        self.draw, self.m = draw, module
        self.shapes = list(shapes)          # shape of each value
        self.dtype = dtype

    def add(self, name, fn, args, shape):
        self.m.steps.append((name, fn, list(args)))
        self.shapes.append(tuple(shape))

    def layer(self, module):
        self.m.layers.append(module)
        return module

    def const(self, shape, low=-2.0, high=2.0):
        """A constant operand (a frozen parameter, so torch.export keeps it as a weight)."""
        if self.dtype.is_floating_point:
            t = torch.empty(shape).uniform_(low, high)
        else:
            t = torch.randint(int(low), int(high) + 1, shape, dtype=self.dtype)
        p = nn.Parameter(t.to(self.dtype), requires_grad=False)
        self.m.consts.append(p)
        return p


# ---- ops: (builder, index of the value) -> None; each appends one or more steps ----------

UNARY = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "neg": torch.neg, "abs": torch.abs,
         "gelu": F.gelu, "silu": F.silu, "exp": torch.exp, "floor": torch.floor, "erf": torch.erf,
         "hardtanh": F.hardtanh, "elu": F.elu, "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
         "sqrt_abs": lambda x: torch.sqrt(x.abs() + 1), "log_abs": lambda x: torch.log(x.abs() + 1),
         "clamp": lambda x: torch.clamp(x, -1.0, 1.5), "square": torch.square, "softplus": F.softplus}
INT_UNARY = {"neg": torch.neg, "abs": torch.abs}


def op_unary(b, i):
    table = UNARY if b.dtype.is_floating_point else INT_UNARY
    name = b.draw(st.sampled_from(sorted(table)))
    b.add(name, table[name], [i], b.shapes[i])


BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "maximum": torch.maximum, "minimum": torch.minimum}


def op_binary(b, i):
    shape = b.shapes[i]
    name = b.draw(st.sampled_from(sorted(BINARY) + (["div"] if b.dtype.is_floating_point else [])))
    partners = [j for j, s in enumerate(b.shapes) if j != i and broadcasts_to(s, shape)]
    if name == "div":
        c = b.const(broadcast_partner(b.draw, shape), 0.5, 2.0)
        b.add("div_const", lambda x, c=c: x / c, [i], shape)
    elif name == "mul" and not b.dtype.is_floating_point or not partners or b.draw(st.booleans()):
        c = b.const(broadcast_partner(b.draw, shape), -3, 3)
        b.add(f"{name}_const", lambda x, c=c, f=BINARY[name]: f(x, c), [i], shape)
    else:
        j = b.draw(st.sampled_from(partners))
        b.add(name, BINARY[name], [i, j], shape)


def op_where(b, i):
    shape = b.shapes[i]
    c = b.const(broadcast_partner(b.draw, shape))
    b.add("where_gt0", lambda x, c=c: torch.where(x > 0, x, c), [i], shape)


def op_reduce(b, i):
    shape = b.shapes[i]
    names = ["sum", "amax_dim"] + (["mean"] if b.dtype.is_floating_point else [])
    name = b.draw(st.sampled_from(names))
    dim = b.draw(st.integers(-len(shape), len(shape) - 1))
    keep = b.draw(st.booleans()) or len(shape) == 1
    out = tuple(1 if k == dim % len(shape) else d for k, d in enumerate(shape)) if keep else \
        tuple(d for k, d in enumerate(shape) if k != dim % len(shape))
    fn = {"sum": lambda x: x.sum(dim, keepdim=keep), "mean": lambda x: x.mean(dim, keepdim=keep),
          "amax_dim": lambda x: x.max(dim, keepdim=keep).values}[name]
    b.add(f"{name}({dim}, keep={keep})", fn, [i], out)


def op_softmax(b, i):
    if not b.dtype.is_floating_point:
        return
    dim = b.draw(st.integers(-len(b.shapes[i]), len(b.shapes[i]) - 1))
    log = b.draw(st.booleans())
    b.add(f"{'log_' if log else ''}softmax({dim})",
          (lambda x: torch.log_softmax(x, dim)) if log else (lambda x: torch.softmax(x, dim)), [i], b.shapes[i])


def op_permute(b, i):
    shape = b.shapes[i]
    if len(shape) < 2:
        return
    perm = b.draw(st.permutations(range(len(shape))))
    b.add(f"permute{tuple(perm)}", lambda x: x.permute(*perm), [i], [shape[p] for p in perm])


def op_reshape(b, i):
    n = int(np.prod(b.shapes[i]))
    a = b.draw(st.sampled_from([f for f in range(1, n + 1) if n % f == 0]))
    shape = b.draw(st.sampled_from([(n,), (a, n // a), (1, a, n // a)]))
    b.add(f"reshape{shape}", lambda x: x.reshape(shape), [i], shape)


def op_cat(b, i):
    shape = b.shapes[i]
    dim = b.draw(st.integers(0, len(shape) - 1))
    same = [j for j, s in enumerate(b.shapes) if len(s) == len(shape)
            and all(x == y for k, (x, y) in enumerate(zip(s, shape)) if k != dim)]
    j = b.draw(st.sampled_from(same))
    out = tuple(d + (b.shapes[j][dim] if k == dim else 0) for k, d in enumerate(shape))
    b.add(f"cat(dim={dim})", lambda x, y: torch.cat([x, y], dim), [i, j], out)


def op_slice(b, i):
    shape = b.shapes[i]
    dim = b.draw(st.integers(0, len(shape) - 1))
    if shape[dim] < 2:
        return
    start = b.draw(st.integers(0, shape[dim] - 1))
    step = b.draw(st.sampled_from([1, 2]))
    size = len(range(start, shape[dim], step))
    index = (slice(None),) * dim + (slice(start, None, step),)
    b.add(f"slice(dim={dim}, {start}::{step})", lambda x: x[index], [i],
          tuple(size if k == dim else d for k, d in enumerate(shape)))


def op_unsqueeze(b, i):
    shape = b.shapes[i]
    ones = [k for k, d in enumerate(shape) if d == 1]
    if ones and len(shape) > 1 and b.draw(st.booleans()):
        k = b.draw(st.sampled_from(ones))
        b.add(f"squeeze({k})", lambda x: x.squeeze(k), [i], shape[:k] + shape[k + 1:])
    elif len(shape) < 4:
        k = b.draw(st.integers(0, len(shape)))
        b.add(f"unsqueeze({k})", lambda x: x.unsqueeze(k), [i], shape[:k] + (1,) + shape[k:])


def op_linear(b, i):
    if not b.dtype.is_floating_point:
        return
    shape = b.shapes[i]
    n = b.draw(st.integers(1, 6))
    lin = b.layer(nn.Linear(shape[-1], n, bias=b.draw(st.booleans())))
    relu = b.draw(st.booleans())
    b.add(f"linear({n}{', relu' if relu else ''})", (lambda x: torch.relu(lin(x))) if relu else lin, [i],
          shape[:-1] + (n,))


def op_conv(b, i):
    shape = b.shapes[i]
    if len(shape) != 4 or not b.dtype.is_floating_point:
        return
    n, c, h, w = shape
    k = b.draw(st.integers(1, min(3, h, w)))
    s, p = b.draw(st.integers(1, 2)), b.draw(st.integers(0, k // 2))
    groups = b.draw(st.sampled_from([1, c]))
    oc = c * b.draw(st.integers(1, 2)) if groups == c else b.draw(st.integers(1, 4))
    conv = b.layer(nn.Conv2d(c, oc, k, s, p, groups=groups, bias=b.draw(st.booleans())))
    post = b.draw(st.sampled_from(["", "relu", "bn_relu"]))
    bn = b.layer(nn.BatchNorm2d(oc)) if post == "bn_relu" else None
    if bn is not None:
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    fn = {"": conv, "relu": lambda x: torch.relu(conv(x)), "bn_relu": lambda x: torch.relu(bn(conv(x)))}[post]
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    b.add(f"conv2d({oc}, k={k}, s={s}, p={p}, g={groups}{', ' + post if post else ''})", fn, [i], (n, oc, oh, ow))


def op_pool(b, i):
    shape = b.shapes[i]
    if len(shape) != 4 or not b.dtype.is_floating_point:
        return
    n, c, h, w = shape
    name = b.draw(st.sampled_from(["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"]))
    if name == "adaptive_avg_pool2d":
        b.add(name, lambda x: F.adaptive_avg_pool2d(x, 1), [i], (n, c, 1, 1))
        return
    k = b.draw(st.integers(1, min(3, h, w)))
    s, p = b.draw(st.integers(1, 2)), b.draw(st.integers(0, k // 2))
    fn = getattr(F, name)
    b.add(f"{name}(k={k}, s={s}, p={p})", lambda x: fn(x, k, s, p), [i],
          (n, c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1))


def op_layer_norm(b, i):
    shape = b.shapes[i]
    if not b.dtype.is_floating_point:
        return
    norm = b.layer(nn.LayerNorm(shape[-1]))
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    b.add("layer_norm", norm, [i], shape)


OPS = [op_unary, op_unary, op_binary, op_binary, op_where, op_reduce, op_softmax, op_permute, op_reshape, op_cat,
       op_slice, op_unsqueeze, op_linear, op_conv, op_conv, op_pool, op_layer_norm]


@st.composite
def torch_modules(draw, max_ops: int = 12):
    """(module, inputs): a random eval-mode module of 1..max_ops ops and inputs for it."""
    torch.manual_seed(draw(st.integers(0, 2 ** 31 - 1)))
    dtype = draw(st.sampled_from([torch.float32] * 5 + [torch.int32, torch.int64]))
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.sampled_from([1, 1, 2, 3, 4, 5])) for _ in range(rank))
    shapes = [shape] + ([broadcast_partner(draw, shape)] if draw(st.booleans()) else [])
    m = ProgramModule()
    m.n_inputs = len(shapes)
    b = Builder(draw, m, shapes, dtype)
    target = draw(st.integers(1, max_ops))
    while len(m.steps) < target:
        i = draw(st.sampled_from(range(max(0, len(b.shapes) - 4), len(b.shapes))))
        draw(st.sampled_from(OPS))(b, i)
        if int(np.prod(b.shapes[-1])) > 4096:
            return draw(st.nothing())
    m.outputs = [len(b.shapes) - 1]
    if len(b.shapes) - 1 > m.n_inputs and draw(st.booleans()):
        m.outputs.append(draw(st.integers(m.n_inputs, len(b.shapes) - 2)))
    inputs = []
    for s in shapes:
        inputs.append(torch.empty(s).uniform_(-3, 3) if dtype.is_floating_point
                      else torch.randint(-3, 4, s, dtype=dtype))
    return m.eval(), inputs
