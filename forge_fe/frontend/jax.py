"""JAX frontend: any JAX-traceable callable -> jax.export (StableHLO) -> tvm_ext.frontend.from_stablehlo.

Arrays the callable closes over (``functools.partial(flax_module.apply, variables)``,
a Flax nnx module's state, any captured jnp array) become weights: ``jax.make_jaxpr``
exposes them as the jaxpr's consts, and exporting ``eval_jaxpr(jaxpr, consts, *xs)``
makes the floating-point ones function arguments, so they reach the Forge module as
named parameters ("params/Dense_0/kernel") instead of constants baked into the graph.
Outputs keep the callable's pytree structure (tuples, lists, dicts); the golden is
the callable itself.
"""
from __future__ import annotations

import functools
import re

import numpy as np

from forge_fe.frontend import structure
from forge_fe.errors import FrontendError
from forge_fe.frontend.imported import ImportedModel


def _as_inputs(sample_inputs) -> tuple[list, dict | None]:
    """The inputs' leaves as jax arrays, and their tree when an argument is a dict/list pytree (else None)."""
    import jax
    import jax.numpy as jnp
    if hasattr(sample_inputs, "shape") and hasattr(sample_inputs, "dtype") or isinstance(sample_inputs, dict):
        sample_inputs = [sample_inputs]
    leaves, tree = structure.flatten_inputs(list(sample_inputs))
    out = []
    for i, x in enumerate(leaves):
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        if not hasattr(x, "shape"):
            try:
                x = np.asarray(x)
            except Exception:  # noqa: BLE001
                raise FrontendError(f"sample input {i} is a {type(x).__name__}, expected an array") from None
        # jax runs in 32-bit mode by default: float64/int64 inputs become float32/int32 there too.
        out.append(jnp.asarray(x, dtype=jax.dtypes.canonicalize_dtype(x.dtype)))
    return out, tree


def _path_name(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def _framework_names(model) -> dict[int, str]:
    """id(array) -> its path in the pytrees the callable closes over ("params/Dense_0/kernel")."""
    import jax
    trees = []
    if isinstance(model, functools.partial):
        trees += [a for a in model.args] + list(model.keywords.values())
        model = model.func
        if hasattr(model, "__self__"):        # partial(module.apply, variables): the bound module
            trees.append(getattr(model.__self__, "variables", None) if _is_bound_linen(model.__self__) else None)
    if _is_bound_linen(model):
        trees.append(model.variables)
    try:
        from flax import nnx
        if isinstance(model, nnx.Module):
            trees.append(nnx.state(model))
    except ImportError:
        pass
    names = {}
    for tree in trees:
        if tree is None:
            continue
        try:
            leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        except Exception:  # noqa: BLE001 - not a pytree
            continue
        for path, leaf in leaves:
            value = getattr(leaf, "value", leaf)    # nnx.Variable -> its array
            # nnx state paths end in the Variable's 'value' field: name the variable, not the field.
            name = _path_name(path).removesuffix("/value")
            names.setdefault(id(value), name)
            names.setdefault(id(leaf), name)
    return names


def _is_bound_linen(obj) -> bool:
    try:
        import flax.linen as nn
    except ImportError:
        return False
    return isinstance(obj, nn.Module) and obj.scope is not None


def _relax_ident(name: str) -> str:
    name = re.sub(r"\W+", "_", name).strip("_")
    return name if name and not name[0].isdigit() else f"w_{name}"


def _input_names(model, n) -> list[str]:
    import inspect
    try:
        params = list(inspect.signature(model).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:n]
    if len(names) == n and len(set(names)) == n:
        return names
    return [f"input_{i}" for i in range(n)]


class _Unrebuildable(Exception):
    """The callable's output has a node forge_fe.frontend.structure cannot rebuild."""


def import_jax(model, sample_inputs, module_name=None) -> ImportedModel:
    import jax

    from tvm_ext.frontend.stablehlo import import_stablehlo

    xs, tree = _as_inputs(sample_inputs)
    # One trace gives the jaxpr and the output structure (in the order the callable builds it:
    # jax's own pytree flattening would sort dict keys).
    traced = {}

    def flat_fn(*args):
        out = model(*(structure.unflatten(tree, list(args)) if tree is not None else args))
        try:
            traced["leaves"], traced["spec"] = structure.flatten(out)
        except TypeError as exc:
            raise _Unrebuildable(str(exc)) from None
        return tuple(traced["leaves"])

    untraceable = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                   jax.errors.TracerIntegerConversionError)
    try:
        closed = jax.make_jaxpr(flat_fn)(*xs)
    except _Unrebuildable as exc:
        raise FrontendError(f"the callable returns something forge_fe cannot rebuild: {exc}",
                            "return arrays in tuples, lists or dicts") from None
    except untraceable as exc:
        raise FrontendError(f"jax could not trace the callable: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                            "the model must be traceable by jax.jit (no Python control flow on array "
                            "values: use jnp.where or lax.cond)") from exc
    except Exception as exc:
        raise FrontendError(f"the JAX callable failed on its sample inputs: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}",
                            "pass sample inputs the callable accepts, positionally; bind Flax variables "
                            "with functools.partial(module.apply, variables)") from exc
    leaves, spec = traced["leaves"], traced["spec"]

    # Floating-point consts are weights; integer/bool consts (index tables, masks) stay in the graph.
    consts = list(closed.consts)
    is_weight = [hasattr(c, "dtype") and np.issubdtype(np.dtype(c.dtype), np.floating) and np.ndim(c) > 0
                 for c in consts]
    weights = [c for c, w in zip(consts, is_weight) if w]

    def with_weights(weight_args, *args):
        it = iter(weight_args)
        full = [next(it) if w else c for c, w in zip(consts, is_weight)]
        return jax.core.eval_jaxpr(closed.jaxpr, full, *args)

    specs = [jax.ShapeDtypeStruct(np.shape(c), c.dtype) for c in weights]
    try:
        # keep_unused: every input stays an argument, so argument i is still weight or input i.
        exported = jax.export.export(jax.jit(with_weights, keep_unused=True))(
            specs, *[jax.ShapeDtypeStruct(x.shape, x.dtype) for x in xs])
    except Exception as exc:
        raise FrontendError(f"jax.export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                            "the callable must be exportable with jax.export") from exc

    framework = _framework_names(model)
    weight_args, weight_names, taken = {}, {}, set()
    for i, c in enumerate(weights):
        fw = framework.get(id(c), f"const_{i}")
        relax_name = _relax_ident(fw)
        while relax_name in taken:
            relax_name += "_"
        taken.add(relax_name)
        weight_args[i] = (relax_name, np.asarray(c))
        weight_names[relax_name] = fw

    names = ([_relax_ident(n) for n in structure.leaf_names(tree)] if tree is not None
             else _input_names(model, len(xs)))
    mod, params, sources = import_stablehlo(exported.mlir_module(), weight_args, names)
    main_params = mod["main"].params
    n_inputs = int(mod["main"].attrs["num_input"])
    input_specs = [(p.name, tuple(int(d) for d in p.ty.shape.values), str(p.ty.dtype)) for p in main_params[:n_inputs]]
    # Large constants the importer turned into params keep their generated names.
    for k in params:
        weight_names.setdefault(k, k)

    name = module_name or _model_name(model)
    return ImportedModel(framework="jax", name=name, mod=mod, params=params, weight_names=weight_names,
                         input_specs=input_specs, output_structure=spec,
                         output_dtypes=[str(np.dtype(l.dtype)) for l in leaves], torch_io=False, sources=sources,
                         input_structure=tree)


def _model_name(model) -> str:
    fn = model.func if isinstance(model, functools.partial) else model
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        return type(owner).__name__
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "jax_model" if name == "<lambda>" else name


def golden_outputs(model, inputs):
    """The callable's own outputs on `inputs` (for forge_fe.verify)."""
    xs, tree = _as_inputs(inputs)
    return model(*(structure.unflatten(tree, xs) if tree is not None else xs))

