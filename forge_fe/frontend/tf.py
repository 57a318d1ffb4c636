"""TensorFlow / Keras frontend: a TF model and sample inputs -> Relax + weights + TF's own golden.

Accepted models: `keras.Model` (Sequential, functional, subclassed), a `tf.Module` whose
`__call__` (or only tf.function) is the entry point, a bare `tf.function`, and a SavedModel
directory. Sample inputs give every shape statically.

Two roads reach Relax (docs/frontend_tf.md has the evidence for the choice):
* TFLite (`tf_tflite.py`), the default: Keras-level ops, NHWC convolutions and pools as the
  device runs them, weights under their Keras names;
* StableHLO via XLA and `tvm_ext.frontend.import_stablehlo`: taken automatically when TFLite
  (or TVM's TFLite importer) can't take the model, or on request (`FORGE_FE_TF_ROAD=stablehlo`).
Keras RNNs are unrolled for the trace on both roads (the device has no loops).
"""
from __future__ import annotations

import contextlib
import inspect
import os
import re

import numpy as np

from forge_fe.frontend import structure
from forge_fe.errors import FrontendError
from forge_fe.frontend.imported import ImportedModel
from forge_fe.frontend.tf_relax import reordered_outputs, simplify_layouts, source_of
from forge_fe.frontend.tf_tflite import tflite_road

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TF's C++ info logs drown the user's output


# ---- the model's entry point ---------------------------------------------------------------

def _is_keras_model(model) -> bool:
    return any(c.__module__.startswith("keras") and c.__name__ == "Model" for c in type(model).__mro__)


def _module_entry(module):
    """The tf.function a tf.Module is called through: __call__, else its only tf.function."""
    if callable(module):
        return module.__call__
    fns = [n for n in dir(module) if not n.startswith("_")
           and hasattr(getattr(module, n, None), "get_concrete_function")]
    if len(fns) == 1:
        return getattr(module, fns[0])
    raise FrontendError(f"the tf.Module {type(module).__name__} has no __call__ and "
                        f"{'no' if not fns else len(fns)} tf.functions ({', '.join(fns)})",
                        "give it a __call__, or pass the tf.function to compile (e.g. module.serve)")


def _resolve(model):
    """(callable taking the inputs positionally, trackable object owning the variables, name, arg names)."""
    import tensorflow as tf
    if isinstance(model, (str, os.PathLike)):
        try:
            loaded = tf.saved_model.load(str(model))
        except Exception as exc:
            raise FrontendError(f"'{model}' is not a loadable SavedModel: {str(exc).splitlines()[0]}") from exc
        for attr in ("serve", "__call__"):
            fn = getattr(loaded, attr, None)
            if fn is not None and hasattr(fn, "get_concrete_function"):
                return fn, loaded, os.path.basename(os.path.normpath(str(model))), _arg_names(fn)
        sig = loaded.signatures.get("serving_default")
        if sig is None:
            raise FrontendError(f"SavedModel '{model}' has no 'serve' or '__call__' function and no "
                                "serving_default signature", "export it with model.export(path) or "
                                "tf.saved_model.save(module, path) with a tf.function __call__")
        names = [s.name for s in sig.structured_input_signature[1].values()]
        return (lambda *xs: sig(**dict(zip(names, xs)))), loaded, os.path.basename(os.path.normpath(str(model))), names
    if _is_keras_model(model):
        names = [i.name for i in getattr(model, "inputs", None) or []] if _is_functional(model) else []
        return _keras_call(model), model, model.name or type(model).__name__, names
    if hasattr(model, "get_concrete_function"):                # a bare tf.function
        return model, None, getattr(model, "__name__", None) or "tf_function", _arg_names(model)
    if isinstance(model, tf.Module):
        fn = _module_entry(model)
        return fn, model, type(model).__name__, _arg_names(fn)
    raise FrontendError(f"unsupported TensorFlow object of type {type(model).__module__}.{type(model).__name__}",
                        "pass a keras.Model, a tf.Module with a tf.function __call__, a tf.function "
                        "or a SavedModel directory")


def _is_functional(model) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):       # subclassed models have no symbolic inputs
        return False


def _keras_call(model):
    def call(*xs):
        return model(xs[0] if len(xs) == 1 else list(xs), training=False)
    return call


def _layer_names(model) -> set:
    if not _is_keras_model(model):
        return set()
    return {layer.name for layer in model._flatten_layers(include_self=False)}


@contextlib.contextmanager
def _unrolled_rnns(model):
    """Keras RNN layers loop with tf.while_loop, which TFLite keeps as a WHILE subgraph and the device
    can't run; with the sequence length static (sample inputs), unrolling is the same math."""
    rnns = [layer for layer in model._flatten_layers() if getattr(layer, "unroll", None) is False] \
        if _is_keras_model(model) else []
    for layer in rnns:
        layer.unroll = True
    try:
        yield
    finally:
        for layer in rnns:
            layer.unroll = False


def _arg_names(fn) -> list[str]:
    py = getattr(fn, "python_function", fn)
    try:
        params = list(inspect.signature(py).parameters.values())
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


# ---- inputs and the framework's outputs ------------------------------------------------------

def _as_arrays(sample_inputs) -> tuple[list[np.ndarray], dict | None]:
    """The inputs' leaves as numpy arrays, and their tree when an input is a dict/list (else None)."""
    if isinstance(sample_inputs, dict):          # a keras model called with a dict of named inputs
        sample_inputs = [sample_inputs]
    leaves, tree = structure.flatten_inputs(list(sample_inputs))
    labels = ([f"sample input '{n}'" for n in structure.leaf_names(tree)] if tree is not None
              else [f"sample input {i}" for i in range(len(leaves))])
    out = []
    for label, x in zip(labels, leaves):
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        elif hasattr(x, "numpy") and not isinstance(x, np.ndarray):
            x = x.numpy()
        if not isinstance(x, (np.ndarray, np.generic)):
            raise FrontendError(f"{label} is a {type(x).__name__}, expected a numpy array or tf.Tensor")
        out.append(np.asarray(x))
    if not out:
        raise FrontendError("no sample inputs were given", "pass one array per model input, e.g. [x]")
    return out, tree


def _flat_entry(fn, tree):
    """`fn` taking the inputs' leaves positionally (both import roads trace a flat signature)."""
    if tree is None:
        return fn
    return lambda *leaves: fn(*structure.unflatten(tree, list(leaves)))


def _to_numpy(out):
    import tensorflow as tf
    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else np.asarray(t), out)


def _tf_flatten(out) -> list:
    import tensorflow as tf
    return tf.nest.flatten(out)


def _run(fn, arrays):
    import tensorflow as tf
    return _to_numpy(fn(*[tf.constant(a) for a in arrays]))


def _input_name(names, i) -> str:
    name = names[i] if i < len(names) and names[i] else f"input_{i}"
    return re.sub(r"\W", "_", name)



# ---- the StableHLO road ---------------------------------------------------------------------

def _stablehlo_road(fn, arrays, names, output_order, keras_paths, layer_names):
    """TF -> XLA's StableHLO (tf.function(jit_compile=True)) -> tvm_ext.frontend.from_stablehlo.

    The module's `main` takes the flat inputs, then the function's captured tensors: variables
    become weights under their (Keras) names, other captured tensors become weights too."""
    import tensorflow as tf
    from tvm import relax

    from tvm_ext.frontend.stablehlo import import_stablehlo

    specs = [tf.TensorSpec(a.shape, tf.as_dtype(a.dtype)) for a in arrays]
    jit = tf.function(lambda *xs: fn(*xs), jit_compile=True, autograph=False)
    try:
        text = jit.experimental_get_compiler_ir(*specs)(stage="stablehlo")
    except Exception as exc:
        raise FrontendError(f"XLA could not lower the model to StableHLO: {str(exc).strip().splitlines()[0]}") from exc
    cf = jit.get_concrete_function(*specs)
    variables = {id(v.handle): v for v in cf.variables}
    weights = {}
    for i, captured in enumerate(cf.captured_inputs):
        v = variables.get(id(captured))
        name = (keras_paths.get(id(v)) or v.name.rsplit(":", 1)[0]) if v is not None else f"captured_{i}"
        weights[len(arrays) + i] = (name, (v if v is not None else captured).numpy())
    mod, params, shlo_sources = import_stablehlo(text, weights, names)
    main = mod["main"]
    weight_vars = main.params[len(arrays):len(arrays) + len(weights)]
    weight_names = {p: p for p in params}
    weight_names.update((var.name, weights[k][0]) for var, k in zip(weight_vars, sorted(weights)))
    body, ret_ty = reordered_outputs(main.body, main.ret_ty, output_order)
    if body is not main.body:
        mod["main"] = relax.Function(main.params, body, ret_ty, main.is_pure, main.attrs)
        mod = relax.transform.Normalize()(mod)
    sources = {k: source_of(v, layer_names) for k, v in shlo_sources.items()}
    return simplify_layouts(mod), params, weight_names, sources


def golden_outputs(model, inputs):
    """The framework's own outputs (numpy, in its structure), for forge_fe.verify."""
    resolved = _resolve(model)      # holds the owner too: a loaded SavedModel's functions die with it
    arrays, tree = _as_arrays(inputs)
    return _run(_flat_entry(resolved[0], tree), arrays)


# ---- entry ------------------------------------------------------------------------------------

def import_tf(model, sample_inputs, module_name=None, road=None) -> ImportedModel:
    """Import a TF model. `road`: 'tflite', 'stablehlo', or 'auto' (default; also settable with the
    FORGE_FE_TF_ROAD environment variable): TFLite, and StableHLO when TFLite can't take the model."""
    arrays, tree = _as_arrays(sample_inputs)
    fn, trackable, name, arg_names = _resolve(model)
    fn = _flat_entry(fn, tree)
    try:
        golden_out = _run(fn, arrays)
    except Exception as exc:
        raise FrontendError(f"the model failed on its sample inputs "
                            f"{[(list(a.shape), str(a.dtype)) for a in arrays]}: {str(exc).strip().splitlines()[-1]}",
                            "check the sample inputs' count, shapes and dtypes against the model's call") from exc
    names = ([re.sub(r"\W", "_", n) for n in structure.leaf_names(tree)] if tree is not None
             else [_input_name(arg_names, i) for i in range(len(arrays))])
    leaves, spec = structure.flatten(golden_out)
    tf_leaves = _tf_flatten(golden_out)
    output_order = [next(k for k, t in enumerate(tf_leaves) if t is leaf) for leaf in leaves]
    keras_paths = {id(v.value): v.path for v in model.variables} if _is_keras_model(model) else {}
    layer_names = _layer_names(model)
    road = road or os.environ.get("FORGE_FE_TF_ROAD", "auto")
    if road not in ("auto", "tflite", "stablehlo"):
        raise FrontendError(f"unknown TF import road '{road}'", "use 'auto', 'tflite' or 'stablehlo'")
    with _unrolled_rnns(model):
        if road == "stablehlo":
            mod, params, weight_names, sources = _stablehlo_road(fn, arrays, names, output_order, keras_paths,
                                                                 layer_names)
        else:
            try:
                mod, params, weight_names, sources = tflite_road(fn, trackable, arrays, names, output_order,
                                                                  keras_paths, layer_names)
            except FrontendError as tflite_error:
                if road == "tflite":
                    raise
                # Ops TFLite (or TVM's TFLite importer) lacks may still lower through XLA.
                try:
                    mod, params, weight_names, sources = _stablehlo_road(fn, arrays, names, output_order,
                                                                         keras_paths, layer_names)
                except FrontendError as shlo_error:
                    raise FrontendError(f"{tflite_error.message}; the StableHLO road failed too: "
                                        f"{shlo_error.message}", tflite_error.hint) from tflite_error
    input_specs = [(n, tuple(a.shape), str(a.dtype)) for n, a in zip(names, arrays)]

    return ImportedModel(framework="tensorflow", name=module_name or name, mod=mod, params=params,
                         weight_names=weight_names, input_specs=input_specs,
                         output_structure=spec, output_dtypes=[str(x.dtype) for x in leaves], torch_io=False,
                         sources=sources, input_structure=tree)
