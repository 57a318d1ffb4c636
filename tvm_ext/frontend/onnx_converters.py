"""Fixed and extra converters for TVM's Relax ONNX importer.

TVM 0.27's importer (``tvm.relax.frontend.onnx.onnx_frontend``) looks every
converter up through the module-level function ``_get_convert_map()``.
:func:`patched_convert_map` wraps that function (and the importer's
initializer parsing) for the duration of one import so that:

* the converter classes in :data:`FIXED_CONVERTERS` replace (or add to) TVM's,
  one small class per fix, each with a docstring saying what TVM gets wrong;
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

OnnxOpConverter = _tvm_onnx.OnnxOpConverter


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


# --------------------------------------------------------------------------
# Fixed converters
# --------------------------------------------------------------------------


class ConstantOfShape(OnnxOpConverter):
    """ConstantOfShape whose ``value`` is a 1-element tensor, any output rank.

    TVM broadcasts ``relax.const(value)`` to the requested shape, but ONNX's
    ``value`` attribute is a *1-D, one-element* tensor.  When the requested
    shape is a scalar (an empty shape tensor, as torch's exporter emits for
    BERT's attention-mask arithmetic) ``broadcast_to`` refuses to broadcast a
    rank-1 tensor to rank 0 ("given tensor has ndim 1 while the target shape
    has ndim 0").  It also only folds a constant shape into a constant when the
    output is 1-D.  Here the value is reshaped to a scalar first, and any
    statically known shape becomes a constant tensor (so downstream shape
    arithmetic keeps folding).
    """

    #: above this many elements a static result is built with broadcast_to
    #: instead of being embedded as a constant
    MAX_CONST_ELEMENTS = 1 << 16

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        attr_value = attr.get("value")
        if attr_value is None:
            value = np.zeros((), dtype="float32")
        else:
            value = np.asarray(_tvm_onnx.get_numpy(attr_value))
            if value.size != 1:
                raise ValueError(
                    f"ConstantOfShape 'value' must have exactly one element, got shape {value.shape}"
                )
            value = value.reshape(())
        dtype = str(value.dtype)

        shape = _tvm_onnx.get_constant(inputs[0], params)
        static_shape = None
        if isinstance(shape, tvm.ir.GenericConst):
            static_shape = [int(d) for d in shape.value.numpy().reshape(-1)]
        elif isinstance(shape, relax.ShapeExpr) and all(
            isinstance(d, tirx.IntImm) for d in shape.values
        ):
            static_shape = [int(d) for d in shape.values]

        if static_shape is not None:
            if int(np.prod(static_shape, dtype=np.int64)) <= cls.MAX_CONST_ELEMENTS:
                return relax.const(np.full(static_shape, value, dtype=dtype), dtype)
            return relax.op.broadcast_to(relax.const(value, dtype), relax.ShapeExpr(static_shape))

        if not isinstance(shape, relax.ShapeExpr):
            shape = relax.op.tensor_to_shape(shape)
        return relax.op.broadcast_to(relax.const(value, dtype), shape)


def _shape_values(inp) -> list | None:
    """A 0-d/1-d constant or a ShapeExpr as a list of ints / PrimExprs."""
    if isinstance(inp, relax.ShapeExpr):
        return [int(v) if isinstance(v, tirx.IntImm) else v for v in inp.values]
    if isinstance(inp, tvm.ir.GenericConst):
        array = inp.value.numpy()
        if array.ndim > 1:
            return None
        return array.reshape(-1).tolist()
    return None


class Equal(_tvm_onnx.Equal):
    """Equal of a shape value and a constant compares values, not node types.

    When one input is a ``ShapeExpr`` (the output of ``Shape``) and the other a
    constant, TVM folds the comparison with ``tvm_ffi.structural_equal`` on a
    ``tirx.IntImm`` against a Python int, which is always False.  torch's
    exporter emits ``Where(Equal(shape, -1), ones, shape)`` for every
    ``expand(-1, ...)`` (e.g. BERT's attention mask with dynamic axes), so the
    -1 survives into ``Expand``'s target shape (TVM's Expand happens to read
    -1 as "keep the dim", which hides it there) and any other consumer of the
    comparison gets wrong values silently.  Here static
    dims are compared as integers (with ONNX broadcasting of length-1
    operands); undecidable symbolic dims fall back to a runtime ``equal``.
    """

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        lhs, rhs = inputs[0], inputs[1]
        if isinstance(lhs, relax.ShapeExpr) or isinstance(rhs, relax.ShapeExpr):
            a, b = _shape_values(lhs), _shape_values(rhs)
            if a is not None and b is not None and (len(a) == len(b) or 1 in (len(a), len(b))):
                n = max(len(a), len(b))
                a = a * n if len(a) == 1 else a
                b = b * n if len(b) == 1 else b
                out = []
                for x, y in zip(a, b):
                    if isinstance(x, int) and isinstance(y, int):
                        out.append(x == y)
                    elif tvm_ffi_structural_equal(x, y):
                        out.append(True)
                    else:
                        out = None  # a symbolic dim: decide at run time
                        break
                if out is not None:
                    return relax.const(np.array(out, dtype=bool), "bool")
            tensors = [
                relax.op.shape_to_tensor(t) if isinstance(t, relax.ShapeExpr) else t
                for t in (lhs, rhs)
            ]
            return relax.op.equal(*tensors)
        return super()._impl_v13(bb, inputs, attr, params)


def _static_scalar(x):
    """A static TIR scalar (``T.int64(16)``) as a relax constant; else ``x``."""
    if isinstance(x, (tirx.IntImm, tirx.FloatImm)):
        return relax.const(np.array(x.value, dtype=str(x.ty)), str(x.ty))
    return x


class Range(_tvm_onnx.Range):
    """Range over static scalars taken from a shape is a constant.

    Indexing a static ``Shape`` (``Gather(Shape(x), i)``) yields a TIR integer
    immediate such as ``T.int64(16)``; TVM's Range treats any TIR expression
    as dynamic and emits a symbolic-length ``R.arange`` (``range_len_0``).
    torch's exporter builds BERT's attention mask from such ranges, so the
    mask, and everything broadcast with it, loses its static shape (a later
    ``Expand`` then fails reading ``.value`` of a shape var).  Static
    immediates are turned into constants first so the range folds.
    """

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        fixed = _tvm_onnx.onnx_input([_static_scalar(x) for x in inputs])
        return super()._impl_v12(bb, fixed, attr, params)


# -- high-level Relax ops instead of opaque call_tir ------------------------
#
# TVM lowers the following ONNX ops with ``bb.emit_te(topi...)``, which puts a
# TIR PrimFunc in the module and a ``call_tir`` in ``main``.  The result is
# numerically right but opaque: pattern-based partitioning (``relax.dpl``)
# and our own Relax passes only see "some PrimFunc", so e.g. a ReLU6 (Clip)
# cannot be placed on the device.  Relax has first-class ops for all of them.


def _scalar_or_none(value):
    """A 1-element constant as a Python scalar, None if absent, else the expr."""
    if value is None:
        return None
    if isinstance(value, tvm.ir.GenericConst):
        array = value.value.numpy()
        if array.size == 1:
            return array.reshape(()).item()
    return value


class Clip(_tvm_onnx.Clip):
    """Clip as ``R.clip`` (static bounds) or ``R.maximum``/``R.minimum``.

    TVM emits ``topi.maximum``/``topi.minimum`` through ``emit_te``: two
    opaque ``call_tir``s per Clip (ReLU6 in every MobileNet).  Static bounds
    (attributes before opset 11, constant inputs after) become one
    ``R.clip``; NaN bounds mean "unbounded" as in onnxruntime.
    """

    @classmethod
    def _clip(cls, bb, x, lo, hi):
        dtype = str(x.ty.dtype)
        is_float = _tvm_onnx._relax_dtype_is_floating_point(dtype)
        lo, hi = _scalar_or_none(lo), _scalar_or_none(hi)
        static = all(v is None or isinstance(v, (int, float, bool)) for v in (lo, hi))
        if static:
            if is_float:
                lo = -np.inf if lo is None or np.isnan(lo) else float(lo)
                hi = np.inf if hi is None or np.isnan(hi) else float(hi)
            else:
                info = np.iinfo(np.dtype(dtype))
                lo = info.min if lo is None else int(lo)
                hi = info.max if hi is None else int(hi)
            return relax.op.clip(x, relax.prim_value(lo), relax.prim_value(hi))
        out = x
        if lo is not None:
            lo = lo if not isinstance(lo, (int, float)) else relax.const(lo, dtype)
            lo = cls._sanitize_nan_clip_bound(bb, lo, for_min=True)
            out = bb.normalize(relax.op.maximum(out, lo))
        if hi is not None:
            hi = hi if not isinstance(hi, (int, float)) else relax.const(hi, dtype)
            hi = cls._sanitize_nan_clip_bound(bb, hi, for_min=False)
            out = relax.op.minimum(out, hi)
        return out

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        lo, hi = attr.get("min"), attr.get("max")
        x = inputs[0]
        return cls._clip(
            bb,
            x,
            None if lo is None else relax.const(np.float32(lo), "float32"),
            None if hi is None else relax.const(np.float32(hi), "float32"),
        )

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        return cls._impl_v13(bb, inputs, attr, params)

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        lo = _tvm_onnx.get_constant(inputs[1], params) if inputs[1] is not None else None
        hi = _tvm_onnx.get_constant(inputs[2], params) if inputs[2] is not None else None
        return cls._clip(bb, inputs[0], lo, hi)


class Pad(_tvm_onnx.Pad):
    """Pad as ``R.nn.pad`` instead of ``topi.nn.*pad`` through ``emit_te``.

    Same parsing of pads/axes/value as TVM; ONNX modes map to Relax's
    ``constant``/``reflect``/``replicate`` (edge)/``circular`` (wrap).
    Negative pads (cropping) keep TVM's lowering.
    """

    _MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}

    @classmethod
    def _relax_pad(cls, x, pad_before, pad_after, mode, value):
        if min(pad_before + pad_after, default=0) < 0:
            return None
        width = [int(v) for pair in zip(pad_before, pad_after) for v in pair]
        return relax.op.nn.pad(x, width, pad_mode=cls._MODES[mode], pad_value=float(value))

    @classmethod
    def _lower_pad(cls, bb, inputs, attr, params, allowed_modes):
        pad_before, pad_after, value = cls._parse_pads_and_axes(inputs, params)
        mode = attr.get("mode", b"constant").decode("utf-8")
        if mode in allowed_modes and mode in cls._MODES:
            out = cls._relax_pad(inputs[0], pad_before, pad_after, mode, value)
            if out is not None:
                return out
        return super()._lower_pad(bb, inputs, attr, params, allowed_modes)

    @classmethod
    def _impl_v2(cls, bb, inputs, attr, params):
        pads = list(attr.get("pads", ()))
        mode = attr.get("mode", b"constant").decode("utf-8")
        value = attr.get("value", 0.0)
        half = len(pads) // 2
        if mode in ("constant", "reflect", "edge"):
            out = cls._relax_pad(inputs[0], pads[:half], pads[half:], mode, value)
            if out is not None:
                return out
        return super()._impl_v2(bb, inputs, attr, params)


class Tile(_tvm_onnx.Tile):
    """Tile with constant repeats as ``R.tile`` instead of ``topi.tile`` via
    ``emit_te`` (opaque ``call_tir``)."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        reps = _tvm_onnx.get_constant(inputs[1], params)
        if isinstance(reps, tvm.ir.GenericConst):
            return relax.op.tile(inputs[0], [int(r) for r in reps.value.numpy().reshape(-1)])
        return super()._impl_v13(bb, inputs, attr, params)


def tvm_ffi_structural_equal(x, y) -> bool:
    try:
        return bool(tvm.ir.structural_equal(x, y))
    except Exception:  # noqa: BLE001 - mixed python/TVM values
        return False


#: op_type -> converter class installed over TVM's map while importing
FIXED_CONVERTERS: dict[str, type] = {
    "ConstantOfShape": ConstantOfShape,
    "Equal": Equal,
    "Range": Range,
    "Clip": Clip,
    "Pad": Pad,
    "Tile": Tile,
}


# --------------------------------------------------------------------------
# Guarding every converter, and shape values as tensors
# --------------------------------------------------------------------------


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


def _shape_to_tensor(value):
    """A shape value as an int64 tensor: a constant if it is static."""
    if isinstance(value, relax.ShapeExpr) and all(
        isinstance(v, tirx.IntImm) for v in value.values
    ):
        return relax.const(np.array([int(v) for v in value.values], dtype="int64"), "int64")
    return relax.op.shape_to_tensor(value)


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


def convert_map() -> dict:
    """TVM's converter map with our fixes applied (unguarded)."""
    from .onnx_attention_converters import ATTENTION_CONVERTERS
    from .onnx_extra_converters import EXTRA_CONVERTERS
    from .onnx_linear_attention import LINEAR_ATTENTION_CONVERTERS
    from .onnx_quant_converters import QUANT_CONVERTERS
    from .onnx_rnn_converters import RNN_CONVERTERS
    from .onnx_scan_converters import SCAN_CONVERTERS
    from .onnx_signal_converters import SIGNAL_CONVERTERS
    from .onnx_spatial_converters import SPATIAL_CONVERTERS
    from .onnx_tensor_converters import TENSOR_CONVERTERS

    merged = dict(_ORIGINAL_GET_CONVERT_MAP())
    for converters in (FIXED_CONVERTERS, EXTRA_CONVERTERS, ATTENTION_CONVERTERS, SPATIAL_CONVERTERS, RNN_CONVERTERS,
                       SCAN_CONVERTERS, LINEAR_ATTENTION_CONVERTERS, QUANT_CONVERTERS, TENSOR_CONVERTERS,
                       SIGNAL_CONVERTERS):
        merged.update(converters)
    return merged


_ORIGINAL_GET_CONVERT_MAP = _tvm_onnx._get_convert_map
_LOCK = threading.RLock()


# --------------------------------------------------------------------------
# Fixes to the importer itself (not per-op).  Each wraps one method of
# ONNXGraphImporter: TVM's method runs first, the wrapper corrects the result
# (``from_onnx``'s wrapper only records the running importer).
# --------------------------------------------------------------------------

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


#: the importers whose ``from_onnx`` is running, innermost last (imports are
#: serialized by ``_LOCK``, so one list serves every thread)
_RUNNING_IMPORTERS: list = []


def running_importer():
    """The ``ONNXGraphImporter`` currently importing (see :func:`records_running_importer`)."""
    if not _RUNNING_IMPORTERS:
        raise RuntimeError("no ONNX import is running under patched_convert_map")
    return _RUNNING_IMPORTERS[-1]


def records_running_importer(from_onnx):
    """Make the running importer reachable from converters that convert subgraphs.

    TVM hands a converter the block builder and the node table, not the
    importer; it converts If branches inside the importer itself.  The Scan and
    Loop converters (:mod:`.onnx_scan_converters`) convert their bodies with the
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
      :data:`FIXED_CONVERTERS` (plus ``extra``) replace TVM's, every converter
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
