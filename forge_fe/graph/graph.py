"""The Forge graph: a DAG of op nodes over inputs, parameters and constants.

Nodes are kept in topological order (`Graph.nodes`). Each node carries its
output type, its data format and a `meta` dict (framework name, source
location) that every pass preserves when it rewrites the node.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from forge_fe.config import DataFormat
from forge_fe.errors import CompileError
from forge_fe.op.registry import GraphValue, OpDef, TensorType

INPUT, PARAMETER, CONSTANT, OP = "input", "parameter", "constant", "op"


@dataclass(eq=False)
class Node(GraphValue):
    graph: "Graph"
    name: str
    kind: str
    type: TensorType
    op: OpDef | None = None
    inputs: list["Node"] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)
    value: np.ndarray | None = None          # parameters and constants
    df: DataFormat = DataFormat.Float32
    meta: dict = field(default_factory=dict)

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def is_const(self) -> bool:
        return self.kind in (PARAMETER, CONSTANT)

    def __repr__(self):
        what = self.op.name if self.op else self.kind
        return f"%{self.name} = {what}({', '.join('%' + i.name for i in self.inputs)}) : {list(self.shape)} {self.dtype}"


class Graph:
    def __init__(self, name: str):
        self.name = name
        self.nodes: list[Node] = []
        self.inputs: list[Node] = []
        self.outputs: list[Node] = []
        self._names: set[str] = set()
        self._uniq = itertools.count()

    # ---- construction ----
    def _unique(self, name: str) -> str:
        while name in self._names:
            name = f"{name}_{next(self._uniq)}"
        self._names.add(name)
        return name

    def release_name(self, name: str):
        """Let a rewrite give its replacement node the name of the node it replaces."""
        self._names.discard(name)

    def add_input(self, name, shape, dtype) -> Node:
        n = Node(self, self._unique(name), INPUT, TensorType(tuple(shape), dtype))
        self.nodes.append(n)
        self.inputs.append(n)
        return n

    def add_const(self, name, value: np.ndarray, kind=CONSTANT, meta=None) -> Node:
        value = np.asarray(value)
        n = Node(self, self._unique(name), kind, TensorType(tuple(value.shape), str(value.dtype)),
                 value=value, meta=dict(meta or {}))
        self.nodes.insert(0, n)   # no inputs: first keeps `nodes` topologically sorted
        return n

    def add_op(self, op: OpDef, name: str, inputs: list, attrs: dict, meta=None, before: Node | None = None,
               df: DataFormat | None = None) -> Node:
        """A new op node (before `before`, else at the end); `df`: its data format, for rewrites that
        replace nodes whose formats are already assigned."""
        ins = [x if isinstance(x, Node) else self.add_const(f"{name}_c", np.asarray(x)) for x in inputs]
        try:
            out_type = op.shape([i.type for i in ins], attrs)
        except Exception as exc:
            raise CompileError("initial_graph", f"shape rule of op '{op.name}' failed for node '{name}' "
                               f"with inputs {[list(i.shape) for i in ins]} and attrs {attrs}: {exc}") from exc
        n = Node(self, self._unique(name), OP, out_type, op=op, inputs=ins, attrs=dict(attrs),
                 meta=dict(meta or {}))
        if df is not None:
            n.df = df
        if before is None:
            self.nodes.append(n)
        else:
            self.nodes.insert(self.nodes.index(before), n)
        return n

    # ---- queries and rewriting ----
    def users(self) -> dict[Node, list[Node]]:
        users = {n: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                users[i].append(n)
        return users

    def replace_all_uses(self, old: Node, new: Node):
        for n in self.nodes:
            n.inputs = [new if i is old else i for i in n.inputs]
        self.outputs = [new if o is old else o for o in self.outputs]

    def replace_uses(self, mapping: dict):
        """replace_all_uses for many nodes in one walk over the graph (old node -> new node; a
        replacement that is itself replaced is followed to the end of the chain). Passes that
        rewrite many nodes collect the mapping and call this once: a walk per rewrite is quadratic."""
        if not mapping:
            return

        def final(v):
            while v in mapping:
                v = mapping[v]
            return v
        for n in self.nodes:
            if any(i in mapping for i in n.inputs):
                n.inputs = [final(i) for i in n.inputs]
        self.outputs = [final(o) for o in self.outputs]

    def remove_dead(self):
        live = set(self.outputs) | set(self.inputs)
        for n in reversed(self.nodes):
            if n in live:
                live.update(n.inputs)
        self.nodes = [n for n in self.nodes if n in live]

    def toposort(self):
        """Restore topological order after rewrites that insert nodes."""
        order, seen = [], set()
        for root in self.nodes:
            stack = [(root, False)]
            while stack:
                n, done = stack.pop()
                if done:
                    order.append(n)
                    continue
                if n in seen:
                    continue
                seen.add(n)
                stack.append((n, True))
                stack.extend((i, False) for i in reversed(n.inputs) if i not in seen)
        self.nodes = order

    def op_nodes(self):
        return [n for n in self.nodes if n.kind == OP]

    def dump(self) -> str:
        lines = [f"graph {self.name}(" + ", ".join(f"%{i.name}: {list(i.shape)} {i.dtype}" for i in self.inputs) + ")"]
        for n in self.nodes:
            if n.kind == INPUT:
                continue
            if n.is_const:
                lines.append(f"  %{n.name} = {n.kind} : {list(n.shape)} {n.dtype}")
            else:
                attrs = f" {n.attrs}" if n.attrs else ""
                df = "" if n.df is DataFormat.Float32 else f" df={n.df.name}"
                lines.append(f"  {n!r}{attrs}{df}")
        lines.append("  return " + ", ".join("%" + o.name for o in self.outputs))
        return "\n".join(lines) + "\n"
