"""The TFLite road: concrete function -> TFLite flatbuffer (float, builtin ops) -> TVM's
relax.frontend.tflite, through a subclass of its OperatorConverter.

Weights stay weights: variables the converter keeps as resources become Relax params named
after the variable (Keras paths such as `conv1_conv/kernel`); constants it froze become
params too, named after the variable whose value they hold (also when stored transposed),
else after their TFLite tensor. Convolution kernels are permuted to OIHW at the weight; the
activations stay NHWC.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np

from forge_fe.errors import FrontendError
from forge_fe.frontend.tf_relax import reordered_outputs, simplify_layouts, source_of


def _concrete_function(fn, arrays, names):
    import tensorflow as tf
    specs = [tf.TensorSpec(a.shape, tf.as_dtype(a.dtype), name=n) for a, n in zip(arrays, names)]
    try:
        return tf.function(lambda *xs: fn(*xs), autograph=False).get_concrete_function(*specs)
    except Exception as exc:
        raise FrontendError(f"TensorFlow could not trace the model on inputs "
                            f"{[(list(a.shape), str(a.dtype)) for a in arrays]}: {str(exc).strip().splitlines()[-1]}",
                            "check the sample inputs against the model's call signature") from exc


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
                        sources[var.name] = source_of(tfl.get_tensor_name(self.subgraph, outs[0].tensor_idx),
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


def _from_tflite(buf: bytes, arrays, cf, input_names, layer_names, output_order, keras_paths):
    import tflite
    from tvm.relax.frontend.tflite import tflite_frontend as tfl

    model = tflite.Model.GetRootAsModel(buf, 0)
    sub = model.Subgraphs(0)
    if model.SubgraphsLength() > 1:
        # WHILE/IF bodies: TVM imports them as recursive Relax functions, which neither side can run.
        converter = tfl.OperatorConverter(model, sub, tfl.ExprTable(), None)
        flow = sorted({converter.get_op_code_str(sub.Operators(i)) for i in range(sub.OperatorsLength())}
                      & {"WHILE", "IF", "CALL_ONCE", "STABLEHLO_WHILE", "STABLEHLO_CASE"})
        raise FrontendError(f"the TFLite model has control flow ({', '.join(flow) or 'subgraphs'})",
                            "the device runs straight-line graphs: give loops a static trip count (the StableHLO "
                            "road unrolls them) or unroll them in the model")
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
    return simplify_layouts(mod), weights, sources


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

    body, ret_ty = reordered_outputs(Rename().visit_expr(func.body), func.ret_ty, returned)
    params = [renamed[p] for p in user] + list(weights.params.values())
    main = relax.Function(params, body, ret_ty, func.is_pure, func.attrs).without_attr("params")
    mod = mod.__class__({})
    mod["main"] = main
    return relax.transform.Normalize()(mod)


def tflite_road(fn, trackable, arrays, names, output_order, keras_paths, layer_names):
    """(Relax module, params, weight names, sources) of `fn` traced on `arrays`."""
    cf = _concrete_function(fn, arrays, names)
    # With a trackable owner, TFLite keeps variables as resources named by their shared names; those
    # collide in subclassed Keras models ('model/kernel' for every layer): then let it freeze them.
    shared = [getattr(v, "_shared_name", v.name) for v in cf.variables]
    buf = _to_tflite(cf, trackable if len(set(shared)) == len(shared) else None)
    mod, weights, sources = _from_tflite(buf, arrays, cf, names, layer_names, output_order, keras_paths)
    return mod, weights.values, weights.weight_names, sources
