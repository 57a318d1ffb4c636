"""Lower a Forge graph to one TTIR function (text) and the matching binary Program.

Parameters and constants become function arguments tagged
`#ttcore.argument_type<parameter|constant>` whose values travel in the binary;
activations are `<input>` arguments and const-eval results `<constant>` ones.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from forge_fe.errors import CompileError
from forge_fe.frontend import is_shape_only
from forge_fe.graph.graph import INPUT, OP, Graph
from forge_fe.op.registry import OutInfo
from forge_fe.ttir.emitter import Emitter, device_dtype, element_type

_NP = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "int32": np.int32}


def to_device_array(value: np.ndarray, dtype: str, df=None) -> np.ndarray:
    """A constant as the device stores it (int64 -> int32, bool -> bf16 0/1, ...)."""
    return np.asarray(np.asarray(value).astype(_NP[device_dtype(dtype, df)], copy=False), order="C")


def lower_graph(graph: Graph, func_name: str, private: bool = False):
    """Returns (binary Program, MLIR function text)."""
    missing = sorted({f"{n.op.name} (node '{n.name}')" for n in graph.nodes if n.kind == OP and n.op.lower is None})
    if missing:
        raise CompileError("lower_to_ttir", "ops without a TTIR lowering: " + ", ".join(missing),
                           "force them to the CPU with CompilerConfig(cpu_fallback_ops=...) or add a lowering")
    e = Emitter(func_name)
    vals = {}
    for n in graph.inputs:
        kind = "constant" if n.meta.get("consteval") else "input"   # const-eval results are load-time constants
        kind = "parameter" if n.meta.get("trainable") else kind       # trained weights (training programs)
        vals[n] = e.argument(n.name, n.shape, element_type(n.dtype, n.df), kind, n.df.name)
    for n in graph.nodes:
        if n.kind == INPUT:
            continue
        if n.is_const:
            # a meta-device model's stand-ins have no values: planning lowers it for the perf model only
            value = None if is_shape_only(n.value) else to_device_array(n.value, n.dtype, n.df)
            vals[n] = e.argument(n.name, n.shape, element_type(n.dtype, n.df), n.kind, n.df.name, value=value)
            continue
        e.loc = n.name
        out = OutInfo(tuple(n.shape), element_type(n.dtype, n.df), n.df.name)
        try:
            vals[n] = n.op.lower(e, [vals[i] for i in n.inputs], n.attrs, out)
        except Exception as exc:
            raise CompileError("lower_to_ttir", f"lowering op '{n.op.name}' (node '{n.name}', "
                               f"from {n.meta.get('framework_name', 'the model')}) failed: {exc}") from exc
    e.loc = ""
    e.ret([vals[o] for o in graph.outputs])
    return e.program(private=private), e.text()
