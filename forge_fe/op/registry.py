"""The op registry: one `OpDef` per Forge op, carrying every rule the compiler needs.

An OpDef is the single place an op is defined (JAX-primitive style):

* ``shape(in_types, attrs) -> TensorType``   output shape/dtype
* ``golden(in_tensors, attrs) -> torch.Tensor`` reference math (eager mode, consteval, verify)
* ``lower(emitter, in_values, attrs, out) -> Value``  TTIR emission
* ``relax`` + ``from_relax(call) -> (tensor_args, attrs)``  which Relax ops import to it,
  raising `NotOnDevice(reason)` when an instance can't run on the device
* ``decompose(graph, node) -> Node | None``  rewrite into simpler ops (post-initial-graph)
* ``backward``  gradient rule (training)

Calling an OpDef is how the generated Forge module uses it:
``op.add("add_3", a, b)`` evaluates the golden rule on torch tensors (eager) or
records a node when its inputs are graph nodes (tracing).

Registries are dicts keyed by the OpDef object; names are derived from it.

Dependency direction: the graph imports the registry, never the reverse. Ops are defined
(and registered at import) before any graph exists, a graph node holds its OpDef and the
rules are called on nodes, so the graph needs the registry's types; the registry only needs
to recognise a traced value, which it does through :class:`GraphValue`, the base class of
`forge_fe.graph.graph.Node`, defined here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class OutInfo:
    """What a lowering rule needs to know about its result."""
    shape: tuple[int, ...]
    elem: str            # TTIR element type
    data_format: str     # DataFormat name


class GraphValue:
    """Base of graph nodes (`forge_fe.graph.graph.Node`): an OpDef called with one among its
    inputs records a node in that value's graph (`value.graph.add_op`) instead of evaluating."""
    __slots__ = ()


class NotOnDevice(Exception):
    """Raised by `from_relax` (or a constraint) when this instance must run on the CPU."""


@dataclass(eq=False)
class OpDef:
    name: str
    shape: Callable
    golden: Callable
    lower: Callable | None = None
    relax: tuple[str, ...] = ()
    from_relax: Callable | None = None
    decompose: Callable | None = None
    backward: Callable | None = None
    doc: str = ""

    def __repr__(self):
        return f"OpDef({self.name})"

    def __call__(self, name: str, *inputs, **attrs):
        for x in inputs:
            if isinstance(x, GraphValue):
                return x.graph.add_op(self, name, list(inputs), attrs)
        return self.golden(list(inputs), attrs)


OPS: dict[str, OpDef] = {}
RELAX_TO_OP: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    assert op.name not in OPS, f"op {op.name} registered twice"
    OPS[op.name] = op
    for r in op.relax:
        assert r not in RELAX_TO_OP, f"relax op {r} claimed by {RELAX_TO_OP[r].name} and {op.name}"
        RELAX_TO_OP[r] = op
    return op


def defop(name: str, **rules) -> OpDef:
    return register(OpDef(name=name, **rules))


# ---- shared rule helpers ----------------------------------------------------------

def same_as_first(ins, attrs) -> TensorType:
    return ins[0]


def broadcast_shape(*shapes) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def simple_lower(ttir_name: str, attrs_fn: Callable | None = None) -> Callable:
    """Lowering for ops that map 1:1 onto a TTIR op."""
    def lower(e, ins, attrs, out: OutInfo):
        return e.op(ttir_name, ins, out.shape, out.elem, attrs_fn(attrs) if attrs_fn else None,
                    data_format=out.data_format)
    return lower


def relax_tensor_args(call) -> list:
    """The tensor-typed arguments of a Relax call (its Forge inputs)."""
    from tvm import relax
    return [a for a in call.args if isinstance(a.ty, relax.TensorType)]


def relax_attrs(fn: Callable | None = None) -> Callable:
    """from_relax rule: all tensor args are inputs; `fn(call)` extracts attrs."""
    def from_relax(call):
        return relax_tensor_args(call), (fn(call) if fn else {})
    return from_relax


def ints(xs) -> list[int]:
    return [int(x) for x in xs]


def static_shape(ty) -> tuple[int, ...]:
    """Static shape of a Relax TensorType (TVM 0.27 spells StructInfo as `.ty`)."""
    from tvm import relax
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise NotOnDevice("result has no static shape")
    try:
        return tuple(int(d) for d in ty.shape.values)
    except (TypeError, AttributeError):
        raise NotOnDevice("result has a symbolic shape")
