"""An `onnx.backend.base.Backend` on top of forge_fe, so ONNX's conformance suite can drive it.

    rep = ForgeBackend.prepare(model)      # compiles with sample inputs of the declared shapes
    outs = rep.run([x, y])                 # list of numpy arrays, one per graph output

Sample inputs are random floats / zero integers of each graph input's declared
shape and dtype (graph inputs that are also initializers are skipped; symbolic
dims become 1).  forge_fe errors (`ForgeError`) propagate unchanged.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

import forge_fe
from forge_fe.errors import FrontendError


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The model's runtime inputs: graph inputs that are not initializers."""
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def sample_inputs(model: onnx.ModelProto, seed: int = 0) -> list[np.ndarray]:
    """Arrays matching each runtime input's declared shape and dtype."""
    rng = np.random.default_rng(seed)
    out = []
    for vi in graph_inputs(model):
        t = vi.type
        if not t.HasField("tensor_type"):
            raise FrontendError(f"input '{vi.name}' has type {t.WhichOneof('value')}; only tensor inputs "
                                f"are supported", "sequence, map and optional inputs are not supported yet")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type)
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.tensor_type.shape.dim]
        if np.issubdtype(dtype, np.floating):
            out.append(rng.standard_normal(shape).astype(dtype))
        else:
            out.append(np.zeros(shape, dtype=dtype))
    return out


class ForgeBackendRep(BackendRep):
    def __init__(self, compiled, n_outputs: int):
        self.compiled = compiled
        self.n_outputs = n_outputs

    def run(self, inputs, **kwargs):
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        elif isinstance(inputs, dict):
            inputs = list(inputs.values())
        res = self.compiled(*inputs)
        if isinstance(res, (tuple, list)):
            return [np.asarray(r) for r in res]
        return [np.asarray(res)]


class ForgeBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> ForgeBackendRep:
        super().prepare(model, device, **kwargs)
        compiled = forge_fe.compile(model, sample_inputs(model))
        return ForgeBackendRep(compiled, len(model.graph.output))

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device.upper() == "CPU"


prepare = ForgeBackend.prepare
run_model = ForgeBackend.run_model
supports_device = ForgeBackend.supports_device
