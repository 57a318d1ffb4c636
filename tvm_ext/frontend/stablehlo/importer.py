"""StableHLO -> Relax import for forge_fe (our own; TVM's importer is broken against current jaxlib).

``from_stablehlo`` parses the module with jaxlib's MLIR bindings, inlines private
``func.call``s, folds small constant arithmetic (so loop counters and slice
starts stay static), unrolls ``while`` loops whose trip count is static, and
emits one Relax op (or a short sequence) per StableHLO op::

    mod, params = from_stablehlo(jax.export.export(jax.jit(f))(x).mlir_module())

``mod["main"]`` takes the StableHLO ``main``'s arguments (weight arguments named
in ``weights`` move to the end) followed by one parameter per large non-splat
constant; ``params`` maps every weight parameter's name to its numpy value.
Converters live in the package's op-family modules (:mod:`.elementwise`, :mod:`.movement`,
:mod:`.linalg`, :mod:`.reduction`, :mod:`.indexing`, :mod:`.control`), one function per op,
found through :mod:`.registry`.
Every failure is a :class:`forge_fe.errors.FrontendError` naming the op and its
``loc(...)``; all unsupported ops are listed at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import tvm
from tvm import relax

from forge_fe.errors import FrontendError

from .common import Unsupported, _np_dtype, dense_to_numpy, tensor_type
from .registry import CONVERTERS, REGION_OWNED


__all__ = ["from_stablehlo", "import_stablehlo"]


#: non-splat constants with at least this many elements become weight parameters
LARGE_CONSTANT = 1024


_TERMINATORS = ("func.return", "stablehlo.return", "return")


def from_stablehlo(module, weights: Mapping[int, tuple[str, np.ndarray]] | None = None,
                   input_names: list[str] | None = None):
    """Import a StableHLO module into a Relax IRModule.

    Parameters
    ----------
    module:
        MLIR text, a portable artifact or MLIR bytecode (``bytes``), a jaxlib ``ir.Module``
        or a ``jax.export.Exported``.
    weights:
        ``{main argument index: (name, value)}``: arguments that are weights, not user
        inputs. They become trailing parameters of ``main`` and entries of ``params``.
    input_names:
        Relax names of the remaining (user) arguments, in order; default: their
        ``loc("name")`` in the module, else ``arg{i}``.

    Returns
    -------
    (mod, params):
        ``mod["main"]`` takes the user inputs followed by the weights;
        ``params`` maps each weight parameter's name to its value.
    """
    mod, params, _ = import_stablehlo(module, weights, input_names)
    return mod, params


def import_stablehlo(module, weights=None, input_names=None):
    """`from_stablehlo`, also returning {Relax var name: JAX name stack such as 'Dense_0/dot_general'}."""
    from jaxlib.mlir import ir
    ctx = module.context if isinstance(module, ir.Module) else _new_context()
    with ctx, ir.Location.unknown():
        importer = _Importer(_parse(module, ir), dict(weights or {}), input_names)
        mod = importer.run()
    return mod, importer.params, importer.sources


def _new_context():
    # jax's own context has every dialect jax emits (func, stablehlo, chlo, sdy ...) registered.
    from jax._src.interpreters import mlir as jax_mlir
    return jax_mlir.make_ir_context()


def _parse(module, ir):
    if isinstance(module, ir.Module):
        return module
    if hasattr(module, "mlir_module_serialized"):      # jax.export.Exported
        module = module.mlir_module()
    if isinstance(module, (bytes, bytearray)):
        # A portable artifact (jax.export's mlir_module_serialized: VHLO) or plain MLIR bytecode.
        if b"StableHLO_v" in bytes(module[:64]):
            from jaxlib.mlir.dialects import stablehlo as shlo
            try:
                return shlo.deserialize_portable_artifact(ir.Context.current, bytes(module))
            except Exception as err:
                raise FrontendError(f"could not deserialize the StableHLO artifact: {_first_line(err)}",
                                    "it may come from a newer StableHLO than jaxlib's") from err
        try:
            return ir.Module.parse(bytes(module))
        except Exception as err:
            raise FrontendError(f"could not parse the StableHLO bytecode: {_first_line(err)}",
                                "pass the text of jax.export.export(...).mlir_module()") from err
    if not isinstance(module, str):
        raise FrontendError(f"from_stablehlo expects MLIR text, bytes, an ir.Module or a jax.export.Exported, "
                            f"got {type(module).__name__}")
    try:
        return ir.Module.parse(module)
    except Exception as err:
        raise FrontendError(f"could not parse the StableHLO module: {_first_line(err)}",
                            "the text must be a StableHLO module as jax.export or "
                            "tf.function(...).experimental_get_compiler_ir(...)(stage='stablehlo') prints it") from err


def _first_line(err) -> str:
    text = " ".join(str(err).split())
    return text[:500]


def loc_text(loc) -> str:
    text = str(loc)
    return text if len(text) <= 300 else text[:297] + "..."


def loc_name(loc) -> str:
    """The JAX name stack of a location without jit(...) wrappers: 'Dense_0/dot_general'."""
    m = re.search(r'loc\("([^"]*)"', str(loc))
    if not m:
        return ""
    parts = [p for p in m.group(1).split("/") if p and not re.fullmatch(r"(jit|pjit)\(.*\)|jit:?", p)]
    return "/".join(parts)


def _ident(name: str) -> str:
    name = re.sub(r"\W+", "_", name).strip("_")
    return name if name and not name[0].isdigit() else f"arg_{name}"


class _Importer:
    def __init__(self, module, weights, input_names):
        from jaxlib.mlir import ir
        self.ir = ir
        self.module = module
        self.weights = weights
        self.input_names = input_names
        self.funcs = {}
        for op in module.body.operations:
            if op.operation.name == "func.func":
                self.funcs[ir.StringAttr(op.attributes["sym_name"]).value] = op
        if "main" not in self.funcs:
            publics = [n for n, f in self.funcs.items()
                       if "sym_visibility" not in f.attributes or
                       ir.StringAttr(f.attributes["sym_visibility"]).value == "public"]
            if len(publics) != 1:
                raise FrontendError("the StableHLO module has no 'main' function and no single public function",
                                    f"its functions are: {', '.join(self.funcs) or 'none'}")
            self.funcs["main"] = self.funcs[publics[0]]
        self.env: dict = {}
        self.params: dict[str, np.ndarray] = {}
        self.const_params: dict = {}        # constant op -> relax.Var (large constants)
        self.sources: dict[str, str] = {}
        self.bb = relax.BlockBuilder()
        self._names: set[str] = set()
        self.current = None                 # op being converted (for errors)
        self.call_sites: list = []          # func.call ops being inlined, outermost first

    # ---- entry -------------------------------------------------------------------------

    def run(self):
        main = self.funcs["main"]
        self._check_supported(CONVERTERS, REGION_OWNED)
        block = main.regions[0].blocks[0]
        inputs, weight_vars = [], []
        user_names = list(self.input_names or [])
        for i, arg in enumerate(block.arguments):
            shape, dtype = self._value_type(arg, f"argument {i} of main")
            if i in self.weights:
                name, value = self.weights[i]
                var = relax.Var(self._unique(_ident(name)), relax.TensorType(shape, dtype))
                self.params[var.name] = np.asarray(value)
                weight_vars.append(var)
            else:
                name = user_names.pop(0) if user_names else (_ident(loc_name(arg.location)) if loc_name(arg.location) else f"arg{i}")
                var = relax.Var(self._unique(_ident(name)), relax.TensorType(shape, dtype))
                inputs.append(var)
            self.env[arg] = var
        const_vars = self._make_constant_params()
        with self.bb.function("main", inputs + weight_vars + const_vars):
            with self.bb.dataflow():
                outs = self.convert_block(block)
                outs = [self._materialize(o) for o in outs]
                ret = self.bb.emit_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
            self.bb.emit_func_output(ret)
        mod = self.bb.get()
        mod["main"] = mod["main"].with_attr("num_input", len(inputs))
        return mod

    def _materialize(self, e):
        """Returned values must be bound vars (a returned constant or input is emitted as a copy)."""
        if isinstance(e, tvm.ir.expr.Constant):
            return self.bb.emit(relax.op.add(e, relax.const(np.zeros((), e.value.numpy().dtype))))
        return e

    def _value_type(self, value, what):
        try:
            return tensor_type(value.type)
        except Unsupported as err:
            raise FrontendError(f"{what} has {err}", "forge_fe needs static shapes: export with concrete shapes") from None

    def _unique(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            name = f"{base}_{k}"
            k += 1
        self._names.add(name)
        return name

    # ---- checks ------------------------------------------------------------------------

    def _walk(self, op, skip_regions_of=()):
        for region in op.regions:
            for block in region:
                for inner in block.operations:
                    yield inner
                    if inner.operation.name not in skip_regions_of:
                        yield from self._walk(inner, skip_regions_of)

    def _reachable_funcs(self):
        seen, todo = [], ["main"]
        while todo:
            name = todo.pop()
            if name in seen or name not in self.funcs:
                continue
            seen.append(name)
            for op in self._walk(self.funcs[name]):
                for attr in ("callee", "decomposition"):
                    if attr in op.attributes:
                        todo.append(self.ir.FlatSymbolRefAttr(op.attributes[attr]).value)
        return seen

    def _check_supported(self, converters, region_owned):
        """One error listing every op without a converter, each with its location (for ops in a
        private function, also the call site in main, which points at the user's code)."""
        missing, seen = {}, set()

        def visit(fname, via):
            seen.add(fname)
            for op in self._walk(self.funcs[fname], region_owned):
                name = op.operation.name
                for attr in ("callee", "decomposition"):
                    if attr in op.attributes:
                        callee = self.ir.FlatSymbolRefAttr(op.attributes[attr]).value
                        if callee in self.funcs and callee not in seen:
                            visit(callee, via or loc_text(op.location))
                if name not in converters and name not in _TERMINATORS:
                    where = loc_text(op.location) + (f", called from {via}" if via else "")
                    missing.setdefault(name, []).append(where)

        visit("main", None)
        if missing:
            parts = [f"{name} ({len(locs)}x, first at {locs[0]})" for name, locs in missing.items()]
            raise FrontendError("unsupported StableHLO ops: " + "; ".join(parts),
                                "rewrite that part of the model with other jax.numpy/lax functions, or add a "
                                "converter to an op-family module of tvm_ext/frontend/stablehlo/")

    # ---- large constants -> params -------------------------------------------------------

    def _make_constant_params(self):
        vars_ = []
        for fname in self._reachable_funcs():
            for op in self._walk(self.funcs[fname]):
                if op.operation.name != "stablehlo.constant":
                    continue
                attr = op.attributes["value"]
                shape, dtype = tensor_type(op.results[0].type)
                if attr.is_splat or int(np.prod(shape)) < LARGE_CONSTANT:
                    continue
                name = self._unique(_ident(f"const_{loc_name(op.location) or 'value'}").replace("__", "_"))
                var = relax.Var(name, relax.TensorType(shape, dtype))
                self.params[name] = dense_to_numpy(attr, shape, dtype)
                self.const_params[op] = var
                vars_.append(var)
        return vars_

    # ---- conversion ----------------------------------------------------------------------

    def convert_block(self, block, args=None):
        """Convert the ops of `block` (its arguments bound to `args`); return what it returns."""
        if args is not None:
            for a, v in zip(block.arguments, args):
                self.env[a] = v
        for op in block.operations:
            name = op.operation.name
            if name in _TERMINATORS:
                return [self.env[v] for v in op.operands]
            outer, self.current = self.current, op
            try:
                outs = CONVERTERS[name](self, op, [self.env[v] for v in op.operands])
            except Unsupported as err:
                raise FrontendError(f"StableHLO op {name} at {self._where(op)}: {err}",
                                    "rewrite that part of the model, or extend tvm_ext/frontend/stablehlo/") from None
            except FrontendError:
                raise
            except Exception as err:
                raise FrontendError(f"importing StableHLO op {name} at {self._where(op)} failed: "
                                    f"{_first_line(err)}",
                                    "this is a bug in tvm_ext/frontend/stablehlo/: please report it") from err
            finally:
                self.current = outer
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for r, o in zip(op.results, outs):
                self.env[r] = o
        raise FrontendError("a StableHLO block has no terminator")

    def call_function(self, name: str, args):
        if name not in self.funcs:
            raise Unsupported(f"calls unknown function @{name}")
        self.call_sites.append(self.current)
        try:
            return self.convert_block(self.funcs[name].regions[0].blocks[0], args)
        finally:
            self.call_sites.pop()

    def _where(self, op) -> str:
        """The op's location, and for an op inside a called function the outermost call site."""
        text = loc_text(op.location)
        if self.call_sites and self.call_sites[0] is not None:
            text += f", called from {loc_text(self.call_sites[0].location)}"
        return text

    def emit(self, expr, hint: str | None = None):
        """Bind `expr` (naming the var after the current op) and record its source."""
        op = self.current
        if hint is None and op is not None:
            hint = op.operation.name.split(".")[-1]
        var = self.bb.emit(expr, name_hint=hint or "v")
        if op is not None:
            src = loc_name(op.location)
            if src:
                self.sources[var.name] = src
        return var

    # ---- helpers converters share ---------------------------------------------------------

    def known(self, e):
        """The numpy value of a constant expr, else None."""
        if isinstance(e, tvm.ir.expr.Constant):
            return e.value.numpy()
        return None

    def const(self, value, dtype=None):
        arr = np.asarray(value, dtype=_np_dtype(dtype) if dtype else None)
        return relax.const(arr, str(arr.dtype) if dtype is None else dtype)

    def shape_of(self, e) -> tuple[int, ...]:
        ty = e.ty if hasattr(e, "ty") else None
        if ty is None or not isinstance(ty, relax.TensorType):
            e = self.bb.normalize(e)
            ty = e.ty
        return tuple(int(d) for d in ty.shape.values)

    def dtype_of(self, e) -> str:
        ty = e.ty if isinstance(getattr(e, "ty", None), relax.TensorType) else self.bb.normalize(e).ty
        return str(ty.dtype)

    def result_type(self, op, i=0):
        return tensor_type(op.results[i].type)
