"""ONNX frontend: onnx.ModelProto or .onnx path -> tvm_ext.frontend.from_onnx (TVM's importer with our fixes).

Sample inputs are given positionally in graph-input order (or as a dict by name);
their shapes make every dimension static. The golden is onnxruntime.
"""
from __future__ import annotations

import os

import numpy as np

from forge_fe.errors import FrontendError
from forge_fe.frontend.imported import ImportedModel


def _load(model):
    import onnx
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise FrontendError(f"ONNX file '{model}' does not exist")
        try:
            return onnx.load(str(model), load_external_data=True), str(model)
        except Exception as exc:
            raise FrontendError(f"'{model}' is not a readable ONNX model: {exc}") from exc
    return model, None


def _as_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def import_onnx(model, sample_inputs, module_name=None) -> ImportedModel:
    from onnx import helper
    from tvm_ext.frontend import from_onnx

    proto, path = _load(model)
    init_names = {i.name for i in proto.graph.initializer}
    graph_inputs = [i.name for i in proto.graph.input if i.name not in init_names]
    if isinstance(sample_inputs, dict):
        missing = [n for n in graph_inputs if n not in sample_inputs]
        if missing:
            raise FrontendError(f"sample inputs lack {missing}; the model's inputs are {graph_inputs}")
        arrays = [_as_numpy(sample_inputs[n]) for n in graph_inputs]
    else:
        arrays = [_as_numpy(x) for x in sample_inputs]
        if len(arrays) != len(graph_inputs):
            raise FrontendError(f"the model takes {len(graph_inputs)} inputs ({', '.join(graph_inputs)}), "
                                f"got {len(arrays)} sample inputs", "pass them in graph-input order or as a dict")
    shapes = {n: tuple(a.shape) for n, a in zip(graph_inputs, arrays)}
    dtypes = {n: str(a.dtype) for n, a in zip(graph_inputs, arrays)}
    mod, params = from_onnx(path or proto, shapes, dtypes)

    main_params = mod["main"].params
    user = main_params[:len(graph_inputs)]
    input_specs = [(p.name, tuple(int(d) for d in p.ty.shape.values), str(p.ty.dtype)) for p in user]
    out_dtypes = [str(helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)) for o in proto.graph.output]
    n_out = len(proto.graph.output)
    spec = {"t": "leaf"} if n_out == 1 else {"t": "tuple", "children": [{"t": "leaf"}] * n_out}

    name = module_name or (os.path.splitext(os.path.basename(path))[0] if path else (proto.graph.name or "onnx_model"))
    return ImportedModel(framework="onnx", name=name, mod=mod, params=params,
                         weight_names={k: k for k in params}, input_specs=input_specs,
                         output_structure=spec, output_dtypes=out_dtypes, torch_io=False)
