"""TensorFlow / Keras frontend: model -> concrete function -> TFLite (float) -> relax.frontend.tflite.

Accepted models: `keras.Model` (Sequential, functional, subclassed), a `tf.Module` whose
`__call__` (or only tf.function) is the entry point, a bare `tf.function`, and a SavedModel
directory. Sample inputs give every shape statically. Why TFLite and not StableHLO, with
the measurements, is in docs/frontend_tf.md.

Weights stay weights: variables the converter keeps as resources become Relax params
named after the variable (keras paths such as `conv1_conv/kernel`); constants the
converter froze are lifted into params too, named after the variable whose value they
are, else after their TFLite tensor. Keras is NHWC and so are the device's conv/pool:
kernels are only permuted to OIHW (a weight-only permute that const-eval folds), the
activations are never transposed.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import re

import numpy as np

from forge_fe import structure
from forge_fe.errors import FrontendError
from forge_fe.frontend import ImportedModel

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
    except Exception:       # subclassed models have no symbolic inputs
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

def _as_arrays(sample_inputs) -> list[np.ndarray]:
    if isinstance(sample_inputs, dict):
        raise FrontendError("TensorFlow sample inputs are positional", "pass a list of arrays in call order")
    out = []
    for i, x in enumerate(sample_inputs):
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        elif hasattr(x, "numpy") and not isinstance(x, np.ndarray):
            x = x.numpy()
        if not isinstance(x, (np.ndarray, np.generic)):
            raise FrontendError(f"sample input {i} is a {type(x).__name__}, expected a numpy array or tf.Tensor")
        out.append(np.asarray(x))
    if not out:
        raise FrontendError("no sample inputs were given", "pass one array per model input, e.g. [x]")
    return out


def _to_numpy(out):
    import tensorflow as tf
    return tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else np.asarray(t), out)


def _tf_flatten(out) -> list:
    import tensorflow as tf
    return tf.nest.flatten(out)


def _run(fn, arrays):
    import tensorflow as tf
    return _to_numpy(fn(*[tf.constant(a) for a in arrays]))


# ---- TFLite conversion -----------------------------------------------------------------------

def _concrete_function(fn, arrays, names):
    import tensorflow as tf
    specs = [tf.TensorSpec(a.shape, tf.as_dtype(a.dtype), name=_input_name(names, i)) for i, a in enumerate(arrays)]
    try:
        return tf.function(lambda *xs: fn(*xs), autograph=False).get_concrete_function(*specs)
    except Exception as exc:
        raise FrontendError(f"TensorFlow could not trace the model on inputs "
                            f"{[(list(a.shape), str(a.dtype)) for a in arrays]}: {str(exc).strip().splitlines()[-1]}",
                            "check the sample inputs against the model's call signature") from exc


def _input_name(names, i) -> str:
    name = names[i] if i < len(names) and names[i] else f"input_{i}"
    return re.sub(r"\W", "_", name)


_UNSUPPORTED_TF_OP = re.compile(r"'(tf\.\w+)' op is neither a custom op nor a flex op")


def _to_tflite(cf, trackable) -> bytes:
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_concrete_functions([cf], trackable)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]   # float, no Flex (TVM can't run it)
    try:
        return converter.convert()
    except Exception as exc:
        ops = sorted(set(_UNSUPPORTED_TF_OP.findall(str(exc))))
        if ops:
            raise FrontendError(f"TensorFlow ops with no TFLite builtin: {', '.join(ops)}",
                                "rewrite those parts of the model with supported ops "
                                "(https://www.tensorflow.org/mlir/tfl_ops)") from exc
        raise FrontendError(f"the TFLite converter failed: {str(exc).strip().splitlines()[0]}",
                            "the model must convert with tf.lite.TFLiteConverter (builtin ops only)") from exc


# ---- TFLite -> Relax -------------------------------------------------------------------------

def _digest(a: np.ndarray) -> tuple:
    return a.shape, str(a.dtype), hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


class _Weights:
    """The variables of the traced function, and the Relax params made for them."""

    def __init__(self, cf, keras_paths: dict):
        self.by_shared, self.by_value = {}, {}
        for v in cf.variables:
            name = keras_paths.get(id(v)) or v.name.rsplit(":", 1)[0]
            value = v.numpy()
            self.by_shared[getattr(v, "_shared_name", name)] = (name, value)
            digest = _digest(value)
            # Equal values (two zero-initialized biases ...) can't tell their variables apart.
            self.by_value[digest] = None if digest in self.by_value else (name, value)
        self.params = {}            # framework name -> relax.Var
        self.values = {}            # relax var name -> numpy value
        self.weight_names = {}      # relax var name -> framework name

    def frozen(self, value: np.ndarray):
        """The variable a constant the converter froze holds, as (name, value, axes) with
        value.transpose(axes) == the constant (FULLY_CONNECTED stores a Dense kernel transposed)."""
        if value.size < 2 or value.min() == value.max():    # uniform values say nothing of their origin
            return None
        for axes in ([None, (1, 0)] if value.ndim == 2 else [None]):
            hit = self.by_value.get(_digest(value if axes is None else value.transpose(axes)))
            if hit is not None:
                return hit[0], hit[1], axes
        return None

    def param(self, name: str, value: np.ndarray):
        from tvm import relax
        if name not in self.params:
            var_name = re.sub(r"\W", "_", name)
            while var_name in self.values:
                var_name += "_"
            var = relax.Var(var_name, relax.TensorType(value.shape, str(value.dtype)))
            self.params[name], self.values[var_name], self.weight_names[var_name] = var, value, name
        return self.params[name]


def _source(tensor_name: str, layer_names: set) -> str:
    """The Keras layer a TFLite tensor comes from ('functional_1/conv1_conv_1/convolution' -> 'conv1_conv'),
    else its op path without the function's scope."""
    parts = tensor_name.split(";")[0].split("/")
    for part in parts:
        for cand in (part, re.sub(r"_\d+$", "", part)):
            if cand in layer_names:
                return cand
    return "/".join(parts[1:]) or parts[0]


def _converter_class(weights: _Weights, sources: dict, layer_names: set):
    """TVM's TFLite OperatorConverter, reading variables as params and recording each op's origin."""
    from tvm import relax
    from tvm.relax.frontend.tflite import tflite_frontend as tfl

    class Converter(tfl.OperatorConverter):
        def __init__(self, model, subgraph, exp_tab, bb):
            super().__init__(model, subgraph, exp_tab, bb)
            make_const = exp_tab.new_const

            def new_const(value, shape=None, dtype="float32", source_name=None):
                value = np.asarray(value)
                if source_name is None or value.size < 2 or not np.issubdtype(value.dtype, np.floating):
                    return make_const(value, shape, dtype, source_name)
                hit = weights.frozen(value)
                if hit is None:      # a constant of the model's own (or folded from several)
                    src = source_name.decode() if isinstance(source_name, bytes) else str(source_name)
                    return weights.param(src, value)
                name, var_value, axes = hit
                var = weights.param(name, var_value)
                return var if axes is None else relax.op.permute_dims(var, axes)

            exp_tab.new_const = new_const
            for op_code, convert in list(self.convert_map.items()):
                self.convert_map[op_code] = self._tracking(convert)

        def convert_read_variable(self, op):
            handle = self.get_input_tensors(op)[0]
            _, shared = self._get_resource_key_for_handle(handle, "READ_VARIABLE")
            if shared not in weights.by_shared:
                return super().convert_read_variable(op)
            name, value = weights.by_shared[shared]
            return weights.param(name, value)

        def flatten_to_nd(self, x, nd=3):
            # TVM's BATCH_MATMUL passes an un-normalized broadcast_to here, whose type is unknown yet.
            return super().flatten_to_nd(self.bb.normalize(x), nd)

        def _tracking(self, convert):
            def run(op):
                ret = _oihw_kernels(convert(op=op))
                if isinstance(ret, relax.Call):
                    var = self.bb.emit(ret)
                    outs = self.get_output_tensors(op)
                    if outs:
                        sources[var.name] = _source(tfl.get_tensor_name(self.subgraph, outs[0].tensor_idx),
                                                    layer_names)
                    return var
                return ret
            return run

    return Converter


def _oihw_kernels(expr):
    """conv2d(x, w: HWIO/HWOI) -> conv2d(x, permute_dims(w): OIHW) in a converter's not yet emitted result.

    The device's kernel layout; only the weight moves (const-eval folds the permute), the
    activations stay NHWC."""
    from tvm import relax
    if not isinstance(expr, relax.Call):
        return expr
    args = [_oihw_kernels(a) for a in expr.args]
    at = expr.attrs
    if getattr(expr.op, "name", "") == "relax.nn.conv2d" and str(at.kernel_layout) != "OIHW":
        layout = str(at.kernel_layout)
        kernel = relax.op.permute_dims(args[1], [layout.index(c) for c in "OIHW"])
        return relax.op.nn.conv2d(args[0], kernel, strides=at.strides, padding=at.padding, dilation=at.dilation,
                                  groups=at.groups, data_layout=at.data_layout, kernel_layout="OIHW",
                                  out_layout=at.out_layout, out_dtype=at.out_dtype)
    if any(not a.same_as(b) for a, b in zip(args, expr.args)):
        return relax.Call(expr.op, args, expr.attrs, expr.ty_args)
    return expr


def _fold_layout_plumbing(call, lookup):
    """What TFLite + TVM's importer leave between Keras and the device's layouts:

    * permute_dims(permute_dims(w, a), b) -> permute_dims(w, a[b]) (kernels go HWIO -> OHWI -> HWIO
      -> OIHW), dropped when the composition is the identity;
    * conv2d(pad(x, zeros), padding p) -> conv2d(x, padding p + pad) (Keras ZeroPadding2D before a conv);
    * max_pool2d(pad(relu(x), zeros)) -> max_pool2d(relu(x), padding=pad)."""
    from tvm import relax
    from tvm_ext.partition import op_name
    name = op_name(call)
    arg = call.args[0]
    inner = lookup(arg) if isinstance(arg, relax.Var) else None
    if not isinstance(inner, relax.Call) or not isinstance(inner.op, type(call.op)):
        return None
    if name == "relax.permute_dims" and op_name(inner) == "relax.permute_dims":
        rank = len(arg.ty.shape)
        a = list(range(rank))[::-1] if inner.attrs.axes is None else [int(d) for d in inner.attrs.axes]
        b = list(range(rank))[::-1] if call.attrs.axes is None else [int(d) for d in call.attrs.axes]
        composed = [a[d] for d in b]
        return inner.args[0] if composed == sorted(composed) else relax.op.permute_dims(inner.args[0], composed)
    if name == "relax.nn.conv2d" and op_name(inner) == "relax.nn.pad" and str(call.attrs.data_layout) == "NHWC":
        pw = [int(d) for d in inner.attrs.pad_width]
        if str(inner.attrs.pad_mode) != "constant" or float(inner.attrs.pad_value) != 0.0 or any(pw[:2] + pw[6:]):
            return None
        at = call.attrs
        t, l, b, r = [int(d) for d in at.padding] if len(at.padding) == 4 else [int(at.padding[0]), int(at.padding[1])] * 2
        return relax.op.nn.conv2d(inner.args[0], call.args[1], strides=at.strides,
                                  padding=[t + pw[2], l + pw[4], b + pw[3], r + pw[5]], dilation=at.dilation,
                                  groups=at.groups, data_layout=at.data_layout, kernel_layout=at.kernel_layout,
                                  out_layout=at.out_layout, out_dtype=at.out_dtype)
    if name == "relax.nn.max_pool2d" and op_name(inner) == "relax.nn.pad" and _pads_nonnegative(inner, lookup):
        # Keras ResNets zero-pad a ReLU output before max pooling: every window keeps a real value
        # >= 0, so zero padding and the pool's own (-inf) padding give the same maximum.
        pw, at = [int(d) for d in inner.attrs.pad_width], call.attrs
        k = [int(d) for d in at.pool_size]
        if str(at.layout) != "NHWC" or any(pw[:2] + pw[6:]) or max(pw[2:4]) >= k[0] or max(pw[4:6]) >= k[1] \
                or any(int(d) for d in at.padding):
            return None
        return relax.op.nn.max_pool2d(inner.args[0], at.pool_size, at.strides, [pw[2], pw[4], pw[3], pw[5]],
                                      at.dilation, at.ceil_mode, at.count_include_pad, at.layout, at.out_layout)
    return None


def _pads_nonnegative(pad, lookup) -> bool:
    from tvm import relax
    from tvm_ext.partition import op_name
    src = lookup(pad.args[0]) if isinstance(pad.args[0], relax.Var) else None
    return (str(pad.attrs.pad_mode) == "constant" and float(pad.attrs.pad_value) == 0.0
            and isinstance(src, relax.Call) and op_name(src) == "relax.nn.relu")


def _simplify_layouts(mod):
    from tvm import relax
    from tvm_ext.passes.rewrite import constant_folding_pass
    mod = constant_folding_pass("FoldLayoutPlumbing", _fold_layout_plumbing)()(mod)
    return relax.transform.DeadCodeElimination(["main"])(mod)


def _from_tflite(buf: bytes, arrays, cf, input_names, layer_names, output_order, keras_paths):
    import tflite
    from tvm.relax.frontend.tflite import tflite_frontend as tfl

    model = tflite.Model.GetRootAsModel(buf, 0)
    sub = model.Subgraphs(0)
    tfl_inputs = [tfl.get_tensor_name(sub, i) for i in sub.InputsAsNumpy()]
    if len(tfl_inputs) != len(arrays):
        raise FrontendError(f"the converted model has {len(tfl_inputs)} inputs, {len(arrays)} sample inputs were given")
    # The converter may reorder inputs and outputs; its tensor names say which is which.
    by_name = {n: i for i, n in enumerate(input_names)}
    input_index = [by_name.get(re.sub(r"^serving_default_|:0$", "", n)) for n in tfl_inputs]
    if sorted(input_index, key=str) != list(range(len(arrays))):
        input_index = list(range(len(arrays)))
    flat_index = [_flat_output_index(tfl.get_tensor_name(sub, i)) for i in sub.OutputsAsNumpy()]
    if sorted(flat_index, key=str) != list(range(len(flat_index))):
        flat_index = list(range(len(flat_index)))
    returned = [flat_index.index(k) for k in output_order]    # output i of ours is the converter's returned[i]
    weights, sources = _Weights(cf, keras_paths), {}
    try:
        mod = tfl.from_tflite(model, {n: tuple(arrays[k].shape) for n, k in zip(tfl_inputs, input_index)},
                              {n: str(arrays[k].dtype) for n, k in zip(tfl_inputs, input_index)},
                              op_converter=_converter_class(weights, sources, layer_names))
    except Exception as exc:
        text = str(exc).strip()
        unsupported = re.search(r"operators are not supported[^:]*:\s*(.*)", text)
        if unsupported:
            raise FrontendError(f"TFLite ops TVM's importer does not support: {unsupported.group(1).strip()}",
                                "rewrite those parts of the model, or report the op") from exc
        raise FrontendError(f"TVM's TFLite importer failed: {text.splitlines()[-1] if text else type(exc).__name__}",
                            "the op being converted is named above; report it with the model") from exc
    mod = _with_params(mod, weights, [input_index.index(i) for i in range(len(arrays))], input_names, returned)
    sources = _spread_sources(mod, sources)
    return _simplify_layouts(mod), weights, sources


def _spread_sources(mod, sources: dict) -> dict:
    """A converter emits helper bindings just before the var it returns: they share its source."""
    spread, pending = {}, []
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            pending.append(b.var.name)
            if b.var.name in sources:
                spread.update((n, sources[b.var.name]) for n in pending)
                pending = []
    return spread


def _flat_output_index(tensor_name: str):
    """Position of a converted output in tf.nest.flatten(outputs): 'StatefulPartitionedCall:2' or 'Identity_2'."""
    m = re.fullmatch(r"StatefulPartitionedCall(?:_\d+)?:(\d+)|Identity(?:_(\d+))?(?::0)?", tensor_name)
    if m is None:
        return None
    return int(m.group(1) or m.group(2) or 0)


def _with_params(mod, weights: _Weights, param_order, input_names, returned):
    """main(the user's inputs in call order and named as the user's args, then the weights) returning
    outputs in the model's own order, without the importer's constant list."""
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    func = mod["main"]
    user = [func.params[k] for k in param_order]
    renamed = {p: relax.Var(n, p.ty) for p, n in zip(user, input_names)}

    @mutator
    class Rename(PyExprMutator):
        def visit_var_(self, var):
            return renamed.get(var, var)

    body, ret_ty = _reordered_outputs(Rename().visit_expr(func.body), func.ret_ty, returned)
    params = [renamed[p] for p in user] + list(weights.params.values())
    main = relax.Function(params, body, ret_ty, func.is_pure, func.attrs).without_attr("params")
    mod = mod.__class__({})
    mod["main"] = main
    return relax.transform.Normalize()(mod)


def _reordered_outputs(body, ret_ty, returned):
    """(body, type) returning the outputs `returned[0], returned[1], ...` of `body`'s tuple."""
    import tvm
    from tvm import relax
    if len(returned) < 2 or returned == sorted(returned):
        return body, ret_ty
    out = body.body
    return (relax.SeqExpr(body.blocks, relax.Tuple([relax.TupleGetItem(out, k) for k in returned])),
            tvm.ir.type.TupleType([ret_ty.fields[k] for k in returned]))


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
    body, ret_ty = _reordered_outputs(main.body, main.ret_ty, output_order)
    if body is not main.body:
        mod["main"] = relax.Function(main.params, body, ret_ty, main.is_pure, main.attrs)
        mod = relax.transform.Normalize()(mod)
    sources = {k: _source(v, layer_names) for k, v in shlo_sources.items()}
    return _simplify_layouts(mod), params, weight_names, sources


def golden_outputs(model, inputs):
    """The framework's own outputs (numpy, in its structure), for forge_fe.verify."""
    fn, owner, _, _ = _resolve(model)      # a loaded SavedModel's functions die with their owner: keep it
    return _run(fn, _as_arrays(inputs))


# ---- entry ------------------------------------------------------------------------------------

def _tflite_road(fn, trackable, arrays, names, output_order, keras_paths, layer_names):
    cf = _concrete_function(fn, arrays, names)
    # With a trackable owner, TFLite keeps variables as resources named by their shared names; those
    # collide in subclassed Keras models ('model/kernel' for every layer): then let it freeze them.
    shared = [getattr(v, "_shared_name", v.name) for v in cf.variables]
    buf = _to_tflite(cf, trackable if len(set(shared)) == len(shared) else None)
    mod, weights, sources = _from_tflite(buf, arrays, cf, names, layer_names, output_order, keras_paths)
    return mod, weights.values, weights.weight_names, sources


def import_tf(model, sample_inputs, module_name=None, road=None) -> ImportedModel:
    """Import a TF model. `road`: 'tflite', 'stablehlo', or 'auto' (default; also settable with the
    FORGE_FE_TF_ROAD environment variable): TFLite, and StableHLO when TFLite can't take the model."""
    arrays = _as_arrays(sample_inputs)
    fn, trackable, name, arg_names = _resolve(model)
    try:
        golden_out = _run(fn, arrays)
    except Exception as exc:
        raise FrontendError(f"the model failed on its sample inputs "
                            f"{[(list(a.shape), str(a.dtype)) for a in arrays]}: {str(exc).strip().splitlines()[-1]}",
                            "check the sample inputs' count, shapes and dtypes against the model's call") from exc
    names = [_input_name(arg_names, i) for i in range(len(arrays))]
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
                mod, params, weight_names, sources = _tflite_road(fn, trackable, arrays, names, output_order,
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

    def golden(*xs, _owner=trackable):      # keeps a loaded SavedModel (and its variables) alive
        return _run(fn, _as_arrays(xs))

    return ImportedModel(framework="tensorflow", name=module_name or name, mod=mod, params=params,
                         weight_names=weight_names, input_specs=input_specs, golden=golden,
                         output_structure=spec, output_dtypes=[str(x.dtype) for x in leaves], torch_io=False,
                         sources=sources)
