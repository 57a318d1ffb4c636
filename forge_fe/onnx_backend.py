"""An `onnx.backend.base.Backend` on top of forge_fe, so ONNX's conformance suite can drive it.

    rep = ForgeBackend.prepare(model)      # checks the model; compiles nothing yet
    outs = rep.run([x, y])                 # compiles for these inputs (cached), then runs

forge_fe compiles for static shapes, so the model is compiled lazily at ``run()``
for the shapes and dtypes of the inputs given there.  Inputs whose *values*
decide shapes or axes (a Reshape's ``shape``, a Reduce's ``axes``, Resize's
``scales``/``sizes``, TopK's ``k`` ...; see :data:`SHAPE_DECIDING_INPUTS`) are
specialized: their values are baked into the model as constants before
compiling.  The compiled model is cached per (input shapes, dtypes, values of
the specialized inputs): calling ``run()`` again with other values of those
inputs compiles again.  forge_fe errors (`ForgeError`) propagate unchanged.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep

import forge_fe
from forge_fe.errors import FrontendError, InputError

#: op_type -> positions of inputs whose values decide the output's shape (or
#: the axes an op works on).  A graph input feeding one of these positions is
#: specialized to its run-time value.
SHAPE_DECIDING_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3), "Squeeze": (1,), "Unsqueeze": (1,),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,),
    "ReduceL1": (1,), "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,),
    "ReduceSumSquare": (1,), "Resize": (1, 2, 3), "Upsample": (1,), "TopK": (1,), "OneHot": (1,),
    "Split": (1,), "SplitToSequence": (1,), "CenterCropPad": (1, 2), "CumSum": (1,), "CumProd": (1,),
    "Trilu": (1,), "AffineGrid": (1,), "Col2Im": (1, 2), "MaxUnpool": (2,), "Compress": (1,),
    "DFT": (1, 2), "STFT": (1, 3), "HannWindow": (0,), "HammingWindow": (0,),
    "BlackmanWindow": (0,), "MelWeightMatrix": (0, 1, 2, 3, 4), "EyeLike": (), "RandomNormalLike": (),
    "NonMaxSuppression": (2, 3, 4), "SequenceAt": (1,), "SequenceErase": (1,), "SequenceInsert": (2,),
}  # fmt: skip

#: ops that pass a value through unchanged (in value, not necessarily dtype):
#: a graph input reaching a shape-deciding position through them is specialized too
_PASS_THROUGH = {"Cast", "Identity", "Concat", "Unsqueeze", "Squeeze", "Neg", "Abs"}

#: op_type -> positions of inputs whose values decide how many times the op runs its body (a
#: Loop's trip count and condition; forge_fe unrolls it at import time): every graph input they
#: are computed from, through any op, is specialized
TRIP_DECIDING_INPUTS: dict[str, tuple[int, ...]] = {"Loop": (0, 1)}


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The model's runtime inputs: graph inputs that are not initializers."""
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def sample_inputs(model: onnx.ModelProto, seed: int = 0) -> list[np.ndarray]:
    """Arrays matching each runtime input's declared shape and dtype (symbolic dims become 1)."""
    rng = np.random.default_rng(seed)
    out = []
    for vi in graph_inputs(model):
        t = vi.type
        if not t.HasField("tensor_type"):
            raise FrontendError(f"input '{vi.name}' has type {t.WhichOneof('value')}; only tensor inputs "
                                f"are supported", "sequence, map and optional inputs are not supported yet")
        dtype = helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type)
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.tensor_type.shape.dim]
        if np.issubdtype(dtype, np.floating):
            out.append(rng.standard_normal(shape).astype(dtype))
        else:
            out.append(np.zeros(shape, dtype=dtype))
    return out


def _walk_nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _walk_nodes(sub)


def shape_deciding_inputs(model: onnx.ModelProto) -> list[str]:
    """Names of the runtime inputs whose values decide shapes (see :data:`SHAPE_DECIDING_INPUTS`)."""
    producers = {}
    wanted: set[str] = set()
    trip_deciding: set[str] = set()
    nodes = list(_walk_nodes(model.graph))
    for node in nodes:
        for out in node.output:
            producers[out] = node
        for positions, names in ((SHAPE_DECIDING_INPUTS, wanted), (TRIP_DECIDING_INPUTS, trip_deciding)):
            for pos in positions.get(node.op_type, ()):
                if pos < len(node.input) and node.input[pos]:
                    names.add(node.input[pos])
    seen = (_upstream(wanted, producers, lambda node: node.op_type in _PASS_THROUGH)
            | _upstream(trip_deciding, producers, lambda node: True))
    return [vi.name for vi in graph_inputs(model) if vi.name in seen]


def _upstream(names: set[str], producers: dict, follow) -> set[str]:
    """``names`` and every value they are computed from through the producers ``follow`` accepts."""
    stack, seen = list(names), set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is not None and follow(node):
            stack.extend(i for i in node.input if i)
    return seen


def specialize(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs in ``values`` are constants with those values."""
    fresh = onnx.ModelProto()
    fresh.CopyFrom(model)
    graph = fresh.graph
    keep = [vi for vi in graph.input if vi.name not in values]
    del graph.input[:]
    graph.input.extend(keep)
    constants = [helper.make_node("Constant", [], [name], name=f"specialized_{name}",
                                  value=numpy_helper.from_array(np.asarray(value), name))
                 for name, value in values.items()]
    nodes = constants + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return fresh


# -- dtypes forge_fe does not carry (float8, float4, int4/int2 ...) ------------------------------
#
# Neither the device nor TVM's host code carries these; values of such a type are carried in a
# wider type that holds every one of them exactly.  A graph input of such a type is widened on the
# host before it enters the compiled model; a graph output declared with such a type is computed in
# a carrier type and narrowed on the host by :func:`narrow`, whose rules are forge_fe's own (they
# must not depend on the installed ml_dtypes: its int4 conversions changed between 0.5 and 0.7).
_T = onnx.TensorProto
NARROW_DTYPES: dict[int, int] = {
    _T.FLOAT8E4M3FN: _T.FLOAT, _T.FLOAT8E4M3FNUZ: _T.FLOAT, _T.FLOAT8E5M2: _T.FLOAT,
    _T.FLOAT8E5M2FNUZ: _T.FLOAT, _T.FLOAT4E2M1: _T.FLOAT,
    _T.INT4: _T.INT8, _T.INT2: _T.INT8, _T.UINT4: _T.UINT8, _T.UINT2: _T.UINT8,
}  # fmt: skip
#: sub-byte integer types: (bits, signed)
NARROW_INTS = {_T.INT4: (4, True), _T.UINT4: (4, False), _T.INT2: (2, True), _T.UINT2: (2, False)}
#: producers whose narrow output is a Cast of the carrier value (or the value itself)
_NARROWABLE_PRODUCERS = {"Cast", "CastLike", "Identity"}
_SATURATING = {_T.FLOAT8E4M3FN, _T.FLOAT8E4M3FNUZ, _T.FLOAT8E5M2, _T.FLOAT8E5M2FNUZ}
_FLOATS = {_T.FLOAT, _T.FLOAT16, _T.BFLOAT16, _T.DOUBLE} | set(_SATURATING) | {_T.FLOAT4E2M1}


def narrow_int(array: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Values of ``array`` as a ``bits``-bit integer, in an int8/uint8 array.

    The rules (ONNX's Cast, docs/onnx_conformance.md):

    * from an integer type: the higher bits are discarded and the rest read in two's complement
      (the Cast spec for fixed point -> fixed point: 200 (int16) -> -56 (int8); 9 -> int4 is -7);
    * from a floating type: rounded to the nearest integer, ties to even (ONNX's int4 note), and a
      value outside the type's range -- NaN and +-Inf included -- becomes 0.  The spec leaves an
      out-of-range float -> integer cast undefined; 0 is what the node suite's reference data hold
      (``test_cast_FLOAT_to_INT4``: -9 -> 0, 8 -> 0; ``..._to_UINT4``: -1 -> 0).
    """
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    a = np.asarray(array)
    if a.dtype.kind in "iub":
        v = a.astype(np.int64) & ((1 << bits) - 1)
        if signed:
            v = np.where(v > hi, v - (1 << bits), v)
    else:
        with np.errstate(invalid="ignore"):
            r = np.rint(a.astype(np.float64))
            v = np.where(np.isfinite(r) & (r >= lo) & (r <= hi), r, 0)
    return v.astype(np.int8 if signed else np.uint8)


def narrow(array: np.ndarray, elem_type: int, saturate: bool) -> np.ndarray:
    """``array`` (in its carrier type) as ONNX type ``elem_type``."""
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    if elem_type in NARROW_INTS:
        # every value is in range now, and an in-range conversion is exact in any ml_dtypes
        return narrow_int(array, *NARROW_INTS[elem_type]).astype(dtype)
    if saturate:
        import ml_dtypes
        top = float(ml_dtypes.finfo(dtype).max)
        array = np.where(np.isnan(array), array, np.clip(array, -top, top))
    return np.asarray(array).astype(dtype)


def _elem_type(vi: onnx.ValueInfoProto) -> int:
    return vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0


def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every value ONNX's shape inference can type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:   # a model shape inference refuses still has its declared types
        inferred = model
    g = inferred.graph
    types = {vi.name: _elem_type(vi) for vi in list(g.input) + list(g.value_info) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _cast_target(node: onnx.NodeProto, types: dict[str, int]) -> int | None:
    """The type a Cast (its ``to``) or CastLike (its second input's type) converts to."""
    if node.op_type == "Cast":
        return next(helper.get_attribute_value(a) for a in node.attribute if a.name == "to")
    if node.op_type == "CastLike":
        return types.get(node.input[1])
    return None


def carry_narrow_dtypes(model: onnx.ModelProto):
    """(model, {output name: (narrow type, saturate)}): ``model`` rewritten to carry the types of
    :data:`NARROW_DTYPES` in carrier types; the dict says which outputs to narrow on the host.

    A cast to a sub-byte integer type keeps its source's kind in the carrier (float32 for a float
    source, int32 for an integer one), because :func:`narrow_int` treats the two differently.
    Unchanged (and an empty dict) when the model has none."""
    outputs = {vi.name: _elem_type(vi) for vi in model.graph.output}
    inputs = [vi for vi in model.graph.input if _elem_type(vi) in NARROW_DTYPES]
    narrow_out = {n: t for n, t in outputs.items() if t in NARROW_DTYPES}
    types = _value_types(model) if inputs or narrow_out or any(
        n.op_type in ("Cast", "CastLike") for n in model.graph.node) else {}
    casts = [n for n in model.graph.node if _cast_target(n, types) in NARROW_DTYPES]
    if not inputs and not casts and not narrow_out:
        return model, {}
    fresh = onnx.ModelProto()
    fresh.CopyFrom(model)
    graph = fresh.graph
    producers = {o: n for n in graph.node for o in n.output}
    consumers = {i for n in graph.node for i in n.input}
    plan = {}
    for name, t in narrow_out.items():
        node = producers.get(name)
        if node is not None and node.op_type not in _NARROWABLE_PRODUCERS:
            raise FrontendError(f"output '{name}' is {helper.tensor_dtype_to_string(t)} computed by "
                                f"{node.op_type} node '{node.name or node.output[0]}'; forge_fe carries that type only through "
                                f"Cast/CastLike/Identity", "compute it in float32/int8 and cast last")
        saturate = True
        if node is not None and node.op_type in ("Cast", "CastLike"):
            sat = [a for a in node.attribute if a.name == "saturate"]
            saturate = bool(helper.get_attribute_value(sat[0])) if sat else True
        plan[name] = (t, saturate and t in _SATURATING)
    carried: dict[str, int] = {}   # output of a rewritten cast -> its carrier type
    for node in graph.node:
        target = _cast_target(node, types)
        if target not in NARROW_DTYPES:
            continue
        if node.output[0] in consumers:
            raise FrontendError(
                f"{node.op_type} '{node.name or node.output[0]}' to {helper.tensor_dtype_to_string(target)} "
                f"feeds other nodes; forge_fe carries that type only into graph outputs",
                "keep float8/int4 values at the model's boundary")
        carrier = NARROW_DTYPES[target]
        if target in NARROW_INTS:
            carrier = _T.FLOAT if types.get(node.input[0]) in _FLOATS else _T.INT32
        sat = [helper.make_attribute("saturate", a.i) for a in node.attribute
               if a.name == "saturate" and target not in NARROW_INTS]
        node.op_type = "Cast"   # a CastLike becomes the Cast it stands for
        del node.input[1:]
        del node.attribute[:]
        node.attribute.extend([helper.make_attribute("to", carrier)] + sat)
        carried[node.output[0]] = carrier
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        t = _elem_type(vi)
        if vi.name in carried:
            vi.type.tensor_type.elem_type = carried[vi.name]
        elif t in NARROW_DTYPES:
            vi.type.tensor_type.elem_type = NARROW_DTYPES[t]
    return fresh, plan


def _widen(array: np.ndarray) -> np.ndarray:
    """A narrow-typed input array in its carrier type."""
    for t, carrier in NARROW_DTYPES.items():
        if array.dtype == helper.tensor_dtype_to_np_dtype(t):
            return array.astype(helper.tensor_dtype_to_np_dtype(carrier))
    return array


class ForgeBackendRep(BackendRep):
    """Compiles on first ``run()`` for the inputs given; one compiled model per input signature."""

    def __init__(self, model: onnx.ModelProto, **compile_kwargs):
        self.input_names = [vi.name for vi in graph_inputs(model)]
        self.output_names = [vi.name for vi in model.graph.output]
        self.model, self.narrowed_outputs = carry_narrow_dtypes(model)
        self.specialized = shape_deciding_inputs(model)
        self.compile_kwargs = compile_kwargs
        self._compiled: dict = {}

    def _key(self, arrays: dict[str, np.ndarray]):
        key = []
        for name in self.input_names:
            a = arrays[name]
            key.append((name, a.shape, str(a.dtype), a.tobytes() if name in self.specialized else None))
        return tuple(key)

    def compiled_for(self, arrays: dict[str, np.ndarray]):
        """The compiled model for these inputs (compiling it on first use)."""
        key = self._key(arrays)
        if key not in self._compiled:
            model = self.model
            if self.specialized:
                model = specialize(model, {n: arrays[n] for n in self.specialized})
            rest = [arrays[n] for n in self.input_names if n not in self.specialized]
            self._compiled[key] = forge_fe.compile(model, rest, **self.compile_kwargs)
        return self._compiled[key]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            arrays = {n: inputs[n] for n in self.input_names if n in inputs}
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            arrays = dict(zip(self.input_names, inputs))
        missing = [n for n in self.input_names if n not in arrays]
        if missing:
            raise InputError(f"the model takes inputs {self.input_names}; missing {missing}",
                             "pass one array per graph input, in order or by name")
        for name, value in arrays.items():
            if isinstance(value, np.generic):  # 0-d inputs arrive as numpy scalars
                arrays[name] = value = np.asarray(value)
            if not isinstance(value, np.ndarray):
                raise InputError(f"input '{name}' is a {type(value).__name__}, not a tensor",
                                 "sequence, map and optional inputs are not supported")
        arrays = {n: _widen(a) for n, a in arrays.items()}
        compiled = self.compiled_for(arrays)
        rest = [arrays[n] for n in self.input_names if n not in self.specialized]
        res = compiled(*rest)
        outs = [np.asarray(r) for r in res] if isinstance(res, (tuple, list)) else [np.asarray(res)]
        for i, name in enumerate(self.output_names[:len(outs)]):
            if name in self.narrowed_outputs:
                outs[i] = narrow(outs[i], *self.narrowed_outputs[name])
        return outs


class ForgeBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> ForgeBackendRep:
        super().prepare(model, device, **kwargs)
        for vi in graph_inputs(model):
            kind = vi.type.WhichOneof("value")
            if kind != "tensor_type":
                raise FrontendError(f"input '{vi.name}' has type {kind}; only tensor inputs are supported",
                                    "sequence, map and optional inputs are not supported yet")
        return ForgeBackendRep(model, **kwargs)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper() == "CPU"


prepare = ForgeBackend.prepare
run_model = ForgeBackend.run_model
supports_device = ForgeBackend.supports_device
