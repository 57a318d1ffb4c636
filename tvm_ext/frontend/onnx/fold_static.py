"""Fold what the static input shapes make constant, before TVM imports the graph.

Exporters compute shapes at run time: ``Shape -> Gather -> Div -> Concat -> Reshape`` (ShuffleNet's
channel shuffle), ``ConstantOfShape`` + ``ScatterND`` of a shape-derived mask (Swin's shifted
windows). With every input shape fixed these are constants, but TVM's importer folds only part of
them (a ``Shape`` result stays a ``ShapeExpr`` through a fixed list of ops, and arithmetic on it
becomes a tensor computed at run time), so a ``Reshape`` receives a computed shape, its result has
unknown dims and later converters fail on them. Here each top-level node that depends only on
constants and static shapes is evaluated once with onnx's reference evaluator, and the values the
rest of the graph reads become Constant nodes.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: larger results stay computations (folding them would add weights the model does not have)
MAX_FOLDED_ELEMENTS = 1 << 16
#: a different value on every run: never constants
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                               "Multinomial", "Bernoulli", "Dropout"})


def _shape_value(node: onnx.NodeProto, shape: tuple) -> np.ndarray:
    """Shape (with opset 15's start/end) or Size of a value of static `shape`."""
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    rank = len(shape)
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    return np.array(shape[slice(max(start + rank, 0) if start < 0 else start,
                                max(end + rank, 0) if end < 0 else end)], dtype=np.int64)


def _foldable(node: onnx.NodeProto) -> bool:
    return (node.domain in ("", "ai.onnx") and node.op_type not in _NONDETERMINISTIC
            and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute))


def _read_names(graph: onnx.GraphProto) -> set[str]:
    """Every value name a node reads, subgraphs included (a branch may read an outer value)."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for a in node.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                names |= _read_names(sub)
    return names


def fold_static_subgraphs(model: onnx.ModelProto, input_shapes: Mapping[str, tuple]) -> onnx.ModelProto:
    """`model` with every top-level node that computes a constant (under `input_shapes`) replaced by
    its value.

    One pass in graph order: a node whose inputs are all known is evaluated; any other node's output
    types come from onnx's per-node shape inference, given the known values (so a Pad whose pads
    were just folded has a static shape, and a Shape read from it folds too). Nodes producing a graph
    output stay (the output keeps its node). The caller's proto is not modified; it is returned as
    is when nothing folds."""
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    if not any(n.op_type in ("Shape", "Size") for n in g.node):
        return model                     # TVM folds constant-only subgraphs itself
    opset = {o.domain or "": o.version for o in model.opset_import}
    types: dict[str, tuple[int, tuple | None]] = {}      # value -> (elem_type, static shape or None)
    small: dict[str, onnx.TensorProto] = {}
    for init in g.initializer:
        types[init.name] = (init.data_type, tuple(init.dims))
        if int(np.prod(init.dims, dtype=np.int64)) <= MAX_FOLDED_ELEMENTS:
            small[init.name] = init
    for vi in g.input:
        if vi.name not in types:
            shape = input_shapes.get(vi.name)
            types[vi.name] = (vi.type.tensor_type.elem_type, tuple(int(d) for d in shape) if shape is not None else None)
    graph_outputs = {o.name for o in g.output}
    known: dict[str, np.ndarray] = {}
    folded: list[int] = []

    def value(name):
        if name not in known and name in small:
            known[name] = numpy_helper.to_array(small[name])
        return known.get(name)

    def infer(node):
        """Output types of a node that stays, from its inputs' types and known values."""
        try:
            schema = onnx.defs.get_schema(node.op_type, opset.get(node.domain or "", 1), node.domain)
            ins = {n: helper.make_tensor_type_proto(*types[n]) for n in node.input if n}
            data = {n: numpy_helper.from_array(value(n), n) for n in node.input if n and value(n) is not None}
            outs = onnx.shape_inference.infer_node_outputs(schema, node, ins, data, opset_imports=model.opset_import,
                                                            ir_version=model.ir_version)
        except Exception:  # noqa: BLE001 - unknown op, subgraph, missing input type: shapes unknown
            return
        for n, t in outs.items():
            tt = t.tensor_type
            static = tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim)
            types[n] = (tt.elem_type, tuple(int(d.dim_value) for d in tt.shape.dim) if static else None)

    for i, node in enumerate(g.node):
        results = None
        if _foldable(node) and not graph_outputs.intersection(node.output):
            source = types.get(node.input[0], (0, None))[1] if node.input else None
            if node.op_type in ("Shape", "Size") and source is not None:
                results = [_shape_value(node, source)]
            else:
                args = [value(n) if n else None for n in node.input]
                if all(a is not None for n, a in zip(node.input, args) if n):
                    try:
                        results = ReferenceEvaluator(node).run(None, {n: a for n, a in zip(node.input, args) if n})
                    except Exception:  # noqa: BLE001 - the reference cannot run it: TVM's converter will
                        results = None
            if results is not None and any(np.asarray(r).size > MAX_FOLDED_ELEMENTS for r in results):
                results = None
        if results is None:
            infer(node)
            continue
        for n, r in zip(node.output, results):
            if n:
                r = np.asarray(r)
                known[n] = r
                types[n] = (helper.np_dtype_to_tensor_dtype(r.dtype), r.shape)
        folded.append(i)
    if not folded:
        return model

    # Constant nodes, not initializers: TVM makes initializers weight parameters, constants stay
    # constants (which its converters read as shapes, pads, axes).
    out = onnx.ModelProto()
    out.CopyFrom(model)
    folded_set = set(folded)
    kept = [n for i, n in enumerate(out.graph.node) if i not in folded_set]
    kept_graph = helper.make_graph(kept, "kept", [], [])
    produced = {o for i in folded for o in g.node[i].output}
    constants = [helper.make_node("Constant", [], [name], name=f"{name}__folded",
                                  value=numpy_helper.from_array(known[name], name))
                 for name in sorted(_read_names(kept_graph) & produced)]
    del out.graph.node[:]
    out.graph.node.extend(constants + kept)
    return out
