"""Our fixes installed into TVM's Relax ONNX importer for the duration of one import.

TVM 0.27's importer (``tvm.relax.frontend.onnx.onnx_frontend``) looks every
converter up through the module-level function ``_get_convert_map()``.
:func:`patched_convert_map` wraps that function (and the importer's
initializer parsing) for the duration of one import so that:

* the converter table of :func:`.registry.convert_map` (our converter modules,
  one per op family, merged over TVM's map) replaces TVM's;
* three importer methods are wrapped (:data:`IMPORTER_FIXES`): integer/bool
  initializers (shape tensors, indices, masks) are imported as constants, not
  weight parameters, initializers also listed as graph inputs are not
  duplicated as inputs, and the running importer is recorded for the
  converters that convert subgraphs (Scan, Loop);
* every converter call is guarded: an exception inside TVM (in the converter
  itself or in the type inference of the expression it built) is re-raised as
  :class:`ConverterFailure`, which names the ONNX node that caused it; and
  shape values that flow into ops TVM only accepts tensors for become int64
  tensors (:func:`nodes_needing_tensor_outputs`).

Nothing in site-packages is edited and the original functions are restored
when the context manager exits.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import _RUNNING_IMPORTERS, _shape_to_tensor
from .registry import convert_map



class ConverterFailure(Exception):
    """A TVM converter raised while converting one ONNX node."""

    def __init__(self, op_type: str, node_name: str, cause: BaseException):
        self.op_type = op_type
        self.node_name = node_name
        self.cause = cause
        super().__init__(f"{op_type} node '{node_name}': {_one_line(cause)}")


def _one_line(err: BaseException, limit: int = 600) -> str:
    """An exception as ``Type: message`` on one line (tracebacks dropped)."""
    lines = []
    for line in str(err).splitlines():
        line = line.strip()
        if not line or line.startswith(("Traceback", "File ", "^")) or set(line) <= {"^", "~"}:
            continue
        lines.append(line)
    msg = " ".join(lines) or repr(err)
    if len(msg) > limit:
        msg = msg[: limit - 3] + "..."
    name = type(err).__name__
    return msg if msg.startswith(name) else f"{name}: {msg}"


#: ops whose TVM converters accept ``ShapeExpr`` inputs: the list hard-coded in
#: TVM 0.27's ``ONNXGraphImporter._construct_nodes``
SHAPE_COMPATIBLE_OPS = frozenset(
    {
        "Reshape", "Resize", "ConstantOfShape", "Gather", "Slice", "Shape", "Expand",
        "Concat", "Equal", "Where", "Cast", "CastLike", "Squeeze",
    }
)  # fmt: skip


def nodes_needing_tensor_outputs(graph) -> frozenset[str]:
    """Names of nodes whose output must not stay a ``ShapeExpr``.

    Shape values as tensors for the ops that cannot take shapes:
    TVM's ``Shape`` converter returns a ``relax.ShapeExpr`` (and ``Concat``,
    ``Slice``, ``Gather`` ... keep returning shapes), but its importer refuses
    any node outside a fixed list that receives one ("Node X cannot handle
    ShapeExpr inputs"): ``Add``/``Mul``/``Div`` on a shape, ``Tile``,
    ``Unsqueeze`` ... all fail, and a shape returned as a graph output is not
    a tensor.  The guarded converters turn the outputs of the nodes listed
    here into int64 tensors (constants when the shape is static).
    """
    consumers: dict[str, set[str]] = {}
    producer: dict[str, str] = {}

    def walk(g):
        for node in g.node:
            for out in node.output:
                producer[out] = node.name
            for inp in node.input:
                consumers.setdefault(inp, set()).add(node.op_type)
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    walk(sub)
                    # a branch's outputs become the If's results: keep them tensors
                    for out in sub.output:
                        consumers.setdefault(out.name, set()).add("<graph output>")

    walk(graph)
    for out in graph.output:
        consumers.setdefault(out.name, set()).add("<graph output>")
    needing = set()
    for value, ops in consumers.items():
        if value in producer and not ops <= SHAPE_COMPATIBLE_OPS:
            needing.add(producer[value])
    return frozenset(needing)


#: constant results up to this many elements are folded while importing
MAX_FOLDED_ELEMENTS = 1 << 16


def _fold_if_constant(bb, out):
    """A converter's result computed only from constants, as a constant.

    TVM's converters build ops on constants without folding them (shape
    arithmetic in ONNX function bodies: ``Where``/``Concat`` of shape pieces
    that then feed a ``Reshape``/``Expand``).  Left as ops, the consumer sees
    a runtime tensor and emits a dynamic ``tensor_to_shape``; folded, it sees
    the static shape.  Evaluated with the forge op registry's golden rules
    (ops it lacks are left alone).
    """
    if not isinstance(out, relax.Call) or not isinstance(out.ty, relax.TensorType):
        return out
    if isinstance(out.op, tvm.ir.Op) and out.op.name == "relax.size":
        # the element count of a static-shaped tensor
        in_shape = out.args[0].ty.shape
        if in_shape is not None and all(isinstance(d, tirx.IntImm) for d in in_shape.values):
            count = int(np.prod([int(d) for d in in_shape.values], dtype=np.int64))
            return relax.const(np.array(count, dtype=str(out.ty.dtype)), str(out.ty.dtype))
    shape = out.ty.shape
    if shape is None or not all(isinstance(d, tirx.IntImm) for d in shape.values):
        return out
    if int(np.prod([int(d) for d in shape.values], dtype=np.int64)) > MAX_FOLDED_ELEMENTS:
        return out
    from tvm_ext.passes.fold_constant_ops import _const_args, fold_value

    lookup = bb.lookup_binding
    try:
        if not _const_args(out, lookup):
            return out
        value = fold_value(out, lookup)
    except Exception:  # noqa: BLE001 - folding is an optimization; keep the op
        return out
    if value is None:
        return out
    return relax.const(value, str(value.dtype))


class _GuardedConverter:
    """Stands in for a converter class in the map.

    Names the ONNX node on failure (:class:`ConverterFailure`) and turns shape
    outputs into tensors for nodes in ``tensor_output_nodes``.
    """

    def __init__(self, op_type: str, converter_cls: type, tensor_output_nodes=frozenset()):
        self.op_type = op_type
        self.converter_cls = converter_cls
        self.tensor_output_nodes = tensor_output_nodes

    def get_converter(self, opset: int):
        impl = self.converter_cls.get_converter(opset)
        op_type = self.op_type
        tensor_output_nodes = self.tensor_output_nodes

        def convert(bb, inputs, attr, params):
            name = attr.get("tvm_custom", {}).get("name", "") if isinstance(attr, dict) else ""
            try:
                out = impl(bb, inputs, attr, params)
                # TVM normalizes (runs type inference) after the converter
                # returns; do it here so its errors are attributed too.
                if isinstance(out, relax.Expr):
                    out = bb.normalize(out)
                    if name in tensor_output_nodes and isinstance(out.ty, relax.ShapeType):
                        out = bb.normalize(_shape_to_tensor(out))
                    out = _fold_if_constant(bb, out)
                return out
            except ConverterFailure:
                raise
            except Exception as err:  # noqa: BLE001 - re-raised with context
                raise ConverterFailure(op_type, name, err) from err

        return convert


_LOCK = threading.RLock()


#: initializers of these element types are shape tensors, indices and masks,
#: not weights: they are imported as constants (see constant_int_initializers)
CONSTANT_INITIALIZER_DTYPES = ("int64", "int32", "bool")


def is_constant_initializer(init) -> bool:
    """True for an ONNX initializer that is imported as a constant, not a weight."""
    dtype = _tvm_onnx.get_type(init.data_type) if init.data_type else ""
    return dtype in CONSTANT_INITIALIZER_DTYPES


def constant_int_initializers(parse_graph_initializers):
    """Integer/bool initializers become constants under ``keep_params_in_input``.

    With ``keep_params_in_input=True`` TVM turns *every* initializer into a
    function parameter.  Exporters (torch's dynamo exporter in particular)
    store shape tensors, gather indices and masks as initializers, and most
    converters only fold shape arithmetic on constants: ``Expand`` with an
    initializer as its shape yields a symbolic-shaped result (``x_0, x_1``)
    and a later ``Reshape`` with a -1 then fails ("Reshape expects the input
    tensor to have known shape").  Such tensors are not weights, so they are
    bound as constants; floating-point initializers stay parameters.
    (Wraps ``ONNXGraphImporter._parse_graph_initializers``.)
    """

    def parse(self, graph):
        parse_graph_initializers(self, graph)
        if not self._keep_params_in_input:
            return
        for init in graph.initializer:
            if not is_constant_initializer(init):
                continue
            var_name = init.name.removeprefix("onnx::")  # TVM's own naming rule
            entry = self._params.pop(var_name, None)
            if entry is not None:
                array = entry[1]
                self._nodes[init.name] = relax.const(array, str(array.dtype))

    return parse


def initializers_listed_as_inputs(parse_graph_input):
    """Initializers that are also listed in ``graph.input`` are weights only.

    Older exporters (torch ``keep_initializers_as_inputs=True``, opset <= 8
    tools) list every initializer in ``graph.input`` too.  TVM skips creating
    an input for them but still records them in ``self._inputs``, so with
    ``keep_params_in_input=True`` each weight appears *twice* in ``main``'s
    parameters (once as an "input", once as a param) and the param list no
    longer lines up with the detached values.  Keep only real inputs.
    (Wraps ``ONNXGraphImporter._parse_graph_input``.)
    """

    def parse(self, graph):
        parse_graph_input(self, graph)
        real = set(self._input_names)
        self._inputs = {k: v for k, v in self._inputs.items() if k in real}

    return parse


def records_running_importer(from_onnx):
    """Make the running importer reachable from converters that convert subgraphs.

    TVM hands a converter the block builder and the node table, not the
    importer; it converts If branches inside the importer itself.  The Scan and
    Loop converters (:mod:`.scan`) convert their bodies with the
    importer's own ``_convert_subgraph`` (as TVM does for If), reached through
    :func:`running_importer`.  (Wraps ``ONNXGraphImporter.from_onnx``.)
    """

    def run(self, graph, opset):
        _RUNNING_IMPORTERS.append(self)
        try:
            return from_onnx(self, graph, opset)
        finally:
            _RUNNING_IMPORTERS.pop()

    return run


#: method name on ONNXGraphImporter -> wrapper factory
IMPORTER_FIXES = {
    "_parse_graph_initializers": constant_int_initializers,
    "_parse_graph_input": initializers_listed_as_inputs,
    "from_onnx": records_running_importer,
}


@contextlib.contextmanager
def patched_convert_map(
    extra: dict[str, type] | None = None, tensor_output_nodes: frozenset[str] = frozenset()
):
    """Install our fixes into TVM's ONNX importer while the block runs.

    * wraps ``onnx_frontend._get_convert_map`` so that the converters in
      :func:`.registry.convert_map` (plus ``extra``) replace TVM's, every converter
      guarded so that failures name their ONNX node (:class:`ConverterFailure`)
      and the nodes in ``tensor_output_nodes`` (see
      :func:`nodes_needing_tensor_outputs`) return tensors, not shapes;
    * wraps the ``ONNXGraphImporter`` methods listed in :data:`IMPORTER_FIXES`.

    Everything is restored on exit.  Holds a lock so that concurrent imports
    in threads do not see each other's patches half-applied.
    """
    with _LOCK:
        importer = _tvm_onnx.ONNXGraphImporter
        previous_map = _tvm_onnx._get_convert_map
        previous_methods = {name: importer.__dict__[name] for name in IMPORTER_FIXES}
        merged = convert_map()
        if extra:
            merged.update(extra)
        guarded = {
            op: _GuardedConverter(op, cls, tensor_output_nodes) for op, cls in merged.items()
        }

        def _get_convert_map():
            return guarded

        try:
            _tvm_onnx._get_convert_map = _get_convert_map
            for name, fix in IMPORTER_FIXES.items():
                setattr(importer, name, fix(previous_methods[name]))
            yield guarded
        finally:
            _tvm_onnx._get_convert_map = previous_map
            for name, method in previous_methods.items():
                setattr(importer, name, method)
