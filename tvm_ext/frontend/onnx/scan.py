"""ONNX converters: Scan and Loop with static trip counts, unrolled.

TVM 0.27's Relax importer has neither op.  forge_fe compiles static shapes, so
the number of iterations is known at import time (Scan: the scan inputs' length
along their axis; Loop: a constant trip count and a condition that folds to a
constant), and each op is unrolled into ordinary Relax ops:

* per iteration the body graph is converted by the importer itself
  (``ONNXGraphImporter._convert_subgraph``, which TVM uses for If branches,
  reached through :func:`~.common.running_importer`) with the body's
  inputs bound to the current values; body nodes may read values of the
  enclosing graphs by name, as ONNX allows;
* state (Scan) and loop-carried (Loop) values flow from one iteration's outputs
  to the next one's inputs;
* scan-input elements are ``strided_slice`` + ``squeeze``, scan outputs are
  stacked with ``expand_dims`` + ``concat`` (ops the device runs).
"""
from __future__ import annotations

import numpy as np
import onnx
import tvm
from tvm import relax

from .common import OnnxOpConverter, UnsupportedForm, _const, _shape, running_importer

#: a Loop unrolled to more iterations than this is refused (a while-loop whose
#: condition folds to true forever would never end; a huge unroll is no model)
MAX_LOOP_TRIPS = 4096

_RUNTIME_LOOP = "Loop with a run-time {what} is not supported: forge_fe compiles static shapes"


def _convert_body(bb, body: onnx.GraphProto, values: list) -> list:
    """One iteration: the body graph's outputs with its inputs bound, in order, to ``values``.

    The bindings shadow same-named outer values only while the body is
    converted; the importer's node table is restored afterwards.
    """
    importer = running_importer()
    outer = importer._nodes
    importer._nodes = {**outer, **{vi.name: v for vi, v in zip(body.input, values)}}
    try:
        result = importer._convert_subgraph(bb, body)
    finally:
        importer._nodes = outer
    outputs = list(result.fields) if len(body.output) > 1 else [result]
    return [bb.normalize(out) for out in outputs]


def _element(bb, x, axis: int, index: int):
    """``x`` at ``index`` along ``axis``, that axis dropped."""
    sliced = relax.op.strided_slice(x, [axis], [index], [index + 1])
    return bb.normalize(relax.op.squeeze(sliced, [axis]))


def _stack(bb, items: list, axis: int):
    """The equally shaped ``items`` stacked along a new ``axis``."""
    expanded = [bb.normalize(relax.op.expand_dims(x, axis)) for x in items]
    return expanded[0] if len(expanded) == 1 else bb.normalize(relax.op.concat(expanded, axis))


def _node_outputs(values: list):
    """A converter's result: one expr, or a tuple the importer binds to the node's outputs."""
    return values[0] if len(values) == 1 else relax.Tuple(values)


def _per_item(values, count: int, default: int) -> list[int]:
    """An optional per-input/output int attribute as a full list (missing entries: default)."""
    values = list(values or ())
    return values + [default] * (count - len(values))


def _static_value(bb, expr):
    """The numpy value of a constant (or a var bound to one), else None."""
    if isinstance(expr, relax.Var):
        expr = bb.lookup_binding(expr) or expr
    if isinstance(expr, tvm.ir.GenericConst):
        return expr.value.numpy()
    return None


# --------------------------------------------------------------------------
# Scan
# --------------------------------------------------------------------------


def _scan(bb, body, states: list, scans: list, in_axes, in_dirs, out_axes, out_dirs):
    """Unrolled Scan (opset 9 semantics): (final states, stacked scan outputs).

    Reverse inputs are read from their end; a reverse output is stacked last
    iteration first.  Output axes count in the stacked output's rank.
    """
    lengths = {_shape(x)[axis] for x, axis in zip(scans, in_axes)}
    if len(lengths) != 1:
        raise UnsupportedForm(f"Scan inputs have different lengths along their scan axes: {sorted(lengths)}")
    (length,) = lengths
    n_scan_outputs = len(body.output) - len(states)
    if length == 0 and n_scan_outputs:
        raise UnsupportedForm("Scan over zero-length inputs with scan outputs is not supported "
                         "(the element shapes are unknown without running the body)")
    collected = [[] for _ in range(n_scan_outputs)]
    for t in range(length):
        elements = [_element(bb, x, axis, length - 1 - t if reverse else t)
                    for x, axis, reverse in zip(scans, in_axes, in_dirs)]
        outputs = _convert_body(bb, body, states + elements)
        states = outputs[: len(states)]
        for items, out in zip(collected, outputs[len(states):]):
            items.append(out)
    stacked = []
    for items, axis, reverse in zip(collected, out_axes, out_dirs):
        rank = len(_shape(items[0])) + 1
        stacked.append(_stack(bb, items[::-1] if reverse else items, axis % rank))
    return states, stacked


class Scan(OnnxOpConverter):
    """Scan unrolled over the (static) length of its scan inputs.

    Opset 9+: inputs are N states then ``num_scan_inputs`` scan inputs, read
    along ``scan_input_axes`` in ``scan_input_directions``; the body returns N
    new states and K scan-output elements, stacked along ``scan_output_axes``
    in ``scan_output_directions``.  Opset 8 has a batch axis 0 on every input
    and output, scans axis 1 in ``directions``, and an optional
    ``sequence_lens`` (only full-length sequences are supported).
    """

    @classmethod
    def _impl_v8(cls, bb, inputs, attr, params):
        body, m, inputs = attr["body"], attr["num_scan_inputs"], list(inputs)
        lens, states, scans = inputs[0], inputs[1:-m], inputs[-m:]
        cls._check_full_length(bb, lens, _shape(scans[0])[1])
        n_out = len(body.output) - len(states)
        in_dirs = _per_item(attr.get("directions"), m, 0)
        finals, outs = [], []
        for b in range(_shape(scans[0])[0]):
            batch_states = [_element(bb, x, 0, b) for x in states]
            batch_scans = [_element(bb, x, 0, b) for x in scans]
            final, out = _scan(bb, body, batch_states, batch_scans, [0] * m, in_dirs,
                               [0] * n_out, [0] * n_out)
            finals.append(final)
            outs.append(out)
        per_output = [list(column) for column in zip(*finals)] + [list(column) for column in zip(*outs)]
        return _node_outputs([_stack(bb, items, 0) for items in per_output])

    @staticmethod
    def _check_full_length(bb, lens, length: int) -> None:
        if lens is None:
            return
        value = _static_value(bb, lens)
        if value is None or not np.all(value == length):
            raise UnsupportedForm(f"Scan sequence_lens must be absent or all {length} (the full "
                             f"sequence length): shorter sequences are not supported")

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        body, m, inputs = attr["body"], attr["num_scan_inputs"], list(inputs)
        states, scans = inputs[:-m], inputs[-m:]
        n_out = len(body.output) - len(states)
        in_axes = [axis % len(_shape(x)) for x, axis in
                   zip(scans, _per_item(attr.get("scan_input_axes"), m, 0))]
        final, outs = _scan(
            bb, body, states, scans, in_axes,
            _per_item(attr.get("scan_input_directions"), m, 0),
            _per_item(attr.get("scan_output_axes"), n_out, 0),
            _per_item(attr.get("scan_output_directions"), n_out, 0),
        )
        return _node_outputs(final + outs)


# --------------------------------------------------------------------------
# Loop
# --------------------------------------------------------------------------


class Loop(OnnxOpConverter):
    """Loop unrolled when its trip count and condition are known at import time.

    ``M`` (optional) must be a constant; the condition, the ``cond`` input
    (absent: true) and then each iteration's ``cond_out``, must fold to a
    constant (it is computed from constants: the iteration number is one).
    The loop runs while ``i < M`` and the condition holds; ``cond_out`` ends it
    even when the ``cond`` input is absent, as onnxruntime does.  Outputs: the
    final loop-carried values, then each scan output's per-iteration values
    stacked along a new axis 0.
    """

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        body = attr["body"]
        carried = list(inputs[2:])
        trips = cls._trip_count(bb, inputs[0])
        cond = True if inputs[1] is None else cls._condition(bb, inputs[1])
        collected = [[] for _ in range(len(body.output) - 1 - len(carried))]
        i = 0
        while cond and (trips is None or i < trips):
            if i == MAX_LOOP_TRIPS:
                raise UnsupportedForm(f"Loop runs more than {MAX_LOOP_TRIPS} iterations: too many to unroll")
            iteration = [_const(i, "int64"), _const(cond, "bool")]
            outputs = _convert_body(bb, body, iteration + carried)
            cond = cls._condition(bb, outputs[0])
            carried = outputs[1: 1 + len(carried)]
            for items, out in zip(collected, outputs[1 + len(carried):]):
                items.append(out)
            i += 1
        if collected and i == 0:
            raise UnsupportedForm("Loop runs zero iterations and has scan outputs: empty scan outputs "
                             "are not supported (their element shapes are unknown)")
        return _node_outputs(carried + [_stack(bb, items, 0) for items in collected])

    @staticmethod
    def _trip_count(bb, m) -> int | None:
        if m is None:
            return None
        value = _static_value(bb, m)
        if value is None:
            raise UnsupportedForm(_RUNTIME_LOOP.format(what="trip count (M is not a constant)"))
        return int(value.reshape(()))

    @staticmethod
    def _condition(bb, cond) -> bool:
        value = _static_value(bb, cond)
        if value is None:
            raise UnsupportedForm(_RUNTIME_LOOP.format(what="condition (it does not fold to a constant)"))
        return bool(value.reshape(()))


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {"Scan": Scan, "Loop": Loop}
