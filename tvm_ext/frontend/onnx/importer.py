"""ONNX -> Relax import for forge_fe.

``from_onnx`` validates the model and the user's input description, then runs
TVM's Relax ONNX importer with our converter fixes installed
(:mod:`tvm_ext.frontend.onnx.patch`, :mod:`tvm_ext.frontend.onnx.registry`) and returns the module with its
weights detached::

    mod, params = from_onnx("model.onnx", {"x": (1, 3, 224, 224)}, {"x": "float32"})

``mod["main"]`` takes the graph inputs (graph order, initializers that are
also listed as graph inputs excluded: those are weights) followed by one
parameter per weight; ``params`` maps each weight parameter's name to its
numpy value.  Every failure is a :class:`forge_fe.errors.FrontendError`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator, Mapping

import numpy as np
import onnx
import onnx.inliner
import tvm
from tvm import relax
from tvm.relax.frontend import detach_params
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from forge_fe.errors import FrontendError

from .common import UnsupportedForm
from .fold_static import fold_static_subgraphs
from .patch import ConverterFailure, _one_line, nodes_needing_tensor_outputs, patched_convert_map
from .registry import convert_map

__all__ = ["from_onnx"]

#: ops TVM's importer handles itself, outside the converter map
_BUILTIN_OPS = {"If", "Constant"}

_REPORT_HINT = (
    "this is a bug or gap in TVM's ONNX importer; please report it with the model "
    "(a fix belongs in a converter module of tvm_ext/frontend/onnx/), or re-export the model "
    "with a different opset"
)


def from_onnx(
    model: onnx.ModelProto | str | os.PathLike,
    input_shapes: Mapping[str, tuple],
    input_dtypes: Mapping[str, str],
) -> tuple[tvm.IRModule, dict[str, np.ndarray]]:
    """Import an ONNX model into a Relax IRModule with static input shapes.

    Parameters
    ----------
    model:
        An ``onnx.ModelProto`` or a path to an ``.onnx`` file (external data
        next to it is loaded too).
    input_shapes:
        Concrete shape of every graph input (symbolic dims in the model are
        replaced by these).
    input_dtypes:
        Element type per graph input (``"float32"``, ``"int64"`` ...); inputs
        left out use the type declared in the model.

    Returns
    -------
    (mod, params):
        ``mod["main"]`` takes the graph inputs followed by the weights;
        ``params`` maps each weight parameter's name to its value.
    """
    model, path = _load(model)
    _check_model(model, path)
    model = _prepare(model)

    opsets = _opsets(model)
    _check_supported_ops(model, opsets)
    shapes, dtypes = _resolve_inputs(model.graph, input_shapes or {}, input_dtypes or {})
    model = _prepare(fold_static_subgraphs(model, shapes))   # the folded Constant nodes are named too

    tensor_nodes = nodes_needing_tensor_outputs(model.graph)
    with patched_convert_map(tensor_output_nodes=tensor_nodes), _quiet_stdout():
        try:
            with warnings.catch_warnings():
                # our own check_model already ran; TVM repeats it and warns
                warnings.filterwarnings("ignore", message=".*", module=r"tvm\.relax\.frontend")
                mod = _tvm_onnx.from_onnx(
                    model,
                    shape_dict=shapes,
                    dtype_dict=dtypes,
                    keep_params_in_input=True,
                )
        except ConverterFailure as err:
            if isinstance(err.cause, UnsupportedForm):   # a forge_fe limitation, said on purpose
                raise FrontendError(
                    f"{err.op_type} node '{err.node_name}' (opset {opsets.get('', '?')}): {err.cause}",
                    "forge_fe does not take this form of the op (the message says which input or "
                    "attribute): make that input a constant (an initializer) or use a supported value",
                ) from err.cause
            raise FrontendError(
                f"TVM's ONNX importer failed on {err.op_type} node '{err.node_name}' "
                f"(opset {opsets.get('', '?')}): {_one_line(err.cause)}",
                _REPORT_HINT,
            ) from err.cause
        except FrontendError:
            raise
        except Exception as err:  # noqa: BLE001 - anything TVM raises
            raise FrontendError(
                f"TVM's ONNX importer failed: {_one_line(err)}", _REPORT_HINT
            ) from err

    mod, detached = detach_params(mod)
    main = mod["main"]
    n_inputs = int(main.attrs["num_input"])
    weight_vars = list(main.params)[n_inputs:]
    values = list(detached.get("main", []))
    if len(weight_vars) != len(values):  # pragma: no cover - TVM invariant
        raise FrontendError(
            f"TVM's ONNX importer returned {len(values)} weight values for "
            f"{len(weight_vars)} weight parameters",
            _REPORT_HINT,
        )
    mod, weight_vars, values = _drop_unused_weights(mod, n_inputs, weight_vars, values)
    _warn_if_dynamic(mod)
    params = {}
    for var, value in zip(weight_vars, values):
        params[_var_name(var)] = value.numpy()
    return mod, params


def _warn_if_dynamic(mod: tvm.IRModule) -> None:
    """Inputs are static, so symbolic dims left in ``main`` are data-dependent
    (NonZero, Unique, a Reshape/TopK fed by a runtime tensor ...)."""
    names = sorted({str(v) for v in relax.analysis.defined_symbolic_vars(mod["main"])})
    if names:
        warnings.warn(
            "the imported ONNX graph has data-dependent shapes "
            f"(symbolic dims {', '.join(names)}); those parts cannot run on the device",
            stacklevel=3,
        )


def _drop_unused_weights(mod, n_inputs, weight_vars, values):
    """Remove weight parameters the body no longer uses.

    TVM's converters read shape-like initializers (Resize scales, Pad values,
    ...) as constants through ``get_constant`` but leave their parameter in
    ``main``'s signature; such a parameter is dead and is not a weight.
    """
    main = mod["main"]
    used = set(relax.analysis.free_vars(main.body))
    keep = [i for i, var in enumerate(weight_vars) if var in used]
    if len(keep) == len(weight_vars):
        return mod, weight_vars, values
    weight_vars = [weight_vars[i] for i in keep]
    values = [values[i] for i in keep]
    new_main = relax.Function(
        list(main.params)[:n_inputs] + weight_vars,
        main.body,
        main.ret_ty,
        main.is_pure,
        main.attrs,
        main.span,
    )
    mod["main"] = new_main
    return mod, weight_vars, values


# --------------------------------------------------------------------------
# Loading and checking
# --------------------------------------------------------------------------


def _load(model) -> tuple[onnx.ModelProto, str | None]:
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FrontendError(
                f"ONNX model file not found: {path!r}",
                "pass an existing .onnx path or an onnx.ModelProto",
            )
        try:
            return onnx.load(path), path
        except Exception as err:  # noqa: BLE001 - DecodeError, missing external data ...
            raise FrontendError(
                f"could not read ONNX model {path!r}: {_one_line(err)}",
                "is this an ONNX file? external data files must sit where the model says",
            ) from err
    raise FrontendError(
        f"from_onnx expects an onnx.ModelProto or a path, got {type(model).__name__}",
    )


_PROTOBUF_LIMIT = 2**31 - 1


def _check_model(model: onnx.ModelProto, path: str | None) -> None:
    if path is None and model.ByteSize() > _PROTOBUF_LIMIT:
        # only the path form of the checker handles models above 2 GB
        warnings.warn(
            "ONNX model above protobuf's 2 GB limit passed in memory: onnx.checker skipped "
            "(pass a path to have it checked)",
            stacklevel=3,
        )
        return
    try:
        onnx.checker.check_model(path if path is not None else model)
    except Exception as err:  # noqa: BLE001 - ValidationError and friends
        msg = " ".join(str(err).split())
        raise FrontendError(
            f"malformed ONNX model: onnx.checker.check_model says: {msg}",
            "fix the model or re-export it from its framework (torch.onnx.export(dynamo=True) "
            "below opset 18 down-converts its graph and can emit invalid nodes: try "
            "opset_version=18)",
        ) from err


def _prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy-on-need fixes of the model proto that TVM's importer needs.

    * model-local functions (which TVM does not expand) are inlined;
    * unnamed (or duplicate-named) nodes get a unique name, so errors can say
      which node failed and per-node fixes can find their node;
    * initializers whose names collide once TVM strips the ``onnx::`` prefix
      are renamed, so every weight parameter has a distinct name.
    The caller's proto is never modified.
    """
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
        copied = True
    else:
        copied = False

    def writable() -> onnx.ModelProto:
        nonlocal model, copied
        if not copied:
            fresh = onnx.ModelProto()
            fresh.CopyFrom(model)
            model, copied = fresh, True
        return model

    names = [n.name for n in _all_nodes(model.graph)]
    if not all(names) or len(set(names)) != len(names):
        taken = set(filter(None, names))
        seen: set[str] = set()
        for i, node in enumerate(_all_nodes(writable().graph)):
            if node.name and node.name not in seen:
                seen.add(node.name)
                continue
            base = node.name or node.op_type
            k = i
            while f"{base}_{k}" in taken:
                k += 1
            node.name = f"{base}_{k}"
            taken.add(node.name)
            seen.add(node.name)

    renames = _colliding_initializer_names(model.graph)
    if renames:
        _rename_values(writable().graph, renames)
    return model


def _colliding_initializer_names(graph: onnx.GraphProto) -> dict[str, str]:
    taken: set[str] = set()
    all_names = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    renames = {}
    # names without the onnx:: prefix keep theirs; prefixed ones yield
    for init in sorted(graph.initializer, key=lambda t: t.name.startswith("onnx::")):
        short = init.name.removeprefix("onnx::")
        if short in taken:
            k = 1
            while f"{short}_{k}" in taken or f"{short}_{k}" in all_names:
                k += 1
            renames[init.name] = f"{short}_{k}"
            short = f"{short}_{k}"
        taken.add(short)
    return renames


def _rename_values(graph: onnx.GraphProto, renames: dict[str, str]) -> None:
    for init in graph.initializer:
        init.name = renames.get(init.name, init.name)
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        vi.name = renames.get(vi.name, vi.name)
    for node in _all_nodes(graph):
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph``, including those of subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_nodes(g)


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    opsets = {}
    for imp in model.opset_import:
        domain = "" if imp.domain in ("", "ai.onnx") else imp.domain
        opsets[domain] = imp.version
    return opsets


def _check_supported_ops(model: onnx.ModelProto, opsets: dict[str, int]) -> None:
    """Raise one error listing every op (subgraphs included) without a converter."""
    known = convert_map().keys() | _BUILTIN_OPS
    missing: dict[tuple[str, str], int] = {}
    for node in _all_nodes(model.graph):
        if node.op_type not in known:
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            missing[(domain, node.op_type)] = missing.get((domain, node.op_type), 0) + 1
    if not missing:
        return
    parts = []
    for (domain, op), count in missing.items():
        version = opsets.get(domain, "?")
        where = f"opset {version}" if not domain else f"{domain} opset {version}"
        name = op if not domain else f"{domain}.{op}"
        parts.append(f"{name} ({where}{', %d nodes' % count if count > 1 else ''})")
    raise FrontendError(
        "unsupported ONNX ops: " + ", ".join(parts),
        "TVM's ONNX importer has no converter for these; re-export with a different "
        "opset or without these ops, or add a converter class to "
        "a converter module of tvm_ext/frontend/onnx/ (its table is merged in registry.py)",
    )


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def _declared(vi: onnx.ValueInfoProto) -> tuple[list | None, str | None]:
    """(dims or None if rank unknown, dtype or None) declared for a graph input."""
    tt = vi.type.tensor_type
    dtype = _tvm_onnx.get_type(tt.elem_type) if tt.elem_type else None
    if not tt.HasField("shape"):
        return None, dtype
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
    return dims, dtype


def _resolve_inputs(graph, input_shapes, input_dtypes):
    weights = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in weights]
    names = [vi.name for vi in inputs]

    for what, given in (("input_shapes", input_shapes), ("input_dtypes", input_dtypes)):
        unknown = [n for n in given if n not in names]
        if unknown:
            as_weight = [n for n in unknown if n in weights]
            extra = (
                f" ({', '.join(map(repr, as_weight))} is a weight: an initializer also "
                "listed as a graph input)"
                if as_weight
                else ""
            )
            raise FrontendError(
                f"{what} names {', '.join(map(repr, unknown))} which the ONNX graph does not "
                f"have as inputs{extra}; the graph's inputs are: {', '.join(map(repr, names))}",
                "use the graph's input names (see model.graph.input)",
            )

    missing = [n for n in names if n not in input_shapes]
    if missing:
        raise FrontendError(
            f"no shape given for ONNX graph inputs: {', '.join(map(repr, missing))} "
            f"(the graph's inputs are: {', '.join(map(repr, names))})",
            "pass a concrete shape for every graph input in input_shapes",
        )

    shapes, dtypes = {}, {}
    for vi in inputs:
        name = vi.name
        declared_dims, declared_dtype = _declared(vi)
        raw = input_shapes[name]
        try:
            shape = [int(d) for d in raw]
            if any(d < 0 or d != raw_d for d, raw_d in zip(shape, raw)):
                raise ValueError
        except (TypeError, ValueError):
            raise FrontendError(
                f"input_shapes[{name!r}] = {raw!r} is not a tuple of non-negative ints",
                "shapes must be static",
            ) from None
        if declared_dims is not None:
            if len(declared_dims) != len(shape):
                raise FrontendError(
                    f"input {name!r} has rank {len(declared_dims)} in the ONNX graph "
                    f"(dims {declared_dims}) but input_shapes gives {tuple(shape)}"
                )
            clash = [
                i for i, (d, s) in enumerate(zip(declared_dims, shape)) if isinstance(d, int) and d != s
            ]
            if clash:
                raise FrontendError(
                    f"input {name!r} is declared with dims {declared_dims} in the ONNX graph "
                    f"but input_shapes gives {tuple(shape)} (dims {clash} differ)"
                )
        shapes[name] = shape

        dtype = input_dtypes.get(name)
        if dtype is None:
            dtype = declared_dtype
        if dtype is None:
            raise FrontendError(
                f"no dtype for ONNX graph input {name!r} and the graph declares none",
                "pass it in input_dtypes",
            )
        dtype = _dtype_name(dtype, name)
        if declared_dtype is not None and dtype != declared_dtype:
            raise FrontendError(
                f"input {name!r} is {declared_dtype} in the ONNX graph but input_dtypes gives {dtype}"
            )
        dtypes[name] = dtype
    return shapes, dtypes


def _dtype_name(dtype, name: str) -> str:
    try:
        if isinstance(dtype, str):
            return str(tvm.runtime.DataType(dtype))
        return str(np.dtype(dtype))
    except Exception:  # noqa: BLE001
        raise FrontendError(f"input_dtypes[{name!r}] = {dtype!r} is not a dtype") from None


# --------------------------------------------------------------------------
# Misc
# --------------------------------------------------------------------------


def _var_name(var: relax.Var) -> str:
    name = getattr(var, "name", None)
    if name is None:  # older TVM spelling
        name = var.name_hint
    return str(name)


@contextlib.contextmanager
def _quiet_stdout():
    """TVM prints every failing node with its (huge) inputs to stdout before
    re-raising; keep that out of the user's terminal.  On success whatever was
    printed is passed through."""
    buf = io.StringIO()
    ok = False
    try:
        with contextlib.redirect_stdout(buf):
            yield
        ok = True
    finally:
        if ok and buf.getvalue():
            sys.stdout.write(buf.getvalue())
