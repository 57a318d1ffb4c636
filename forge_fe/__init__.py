"""forge_fe: a TVM-based frontend compiler for Tenstorrent-style NPUs.

    cm = forge_fe.compile(model, sample_inputs)
    outs = cm(*inputs)
    forge_fe.verify(inputs, model, cm)
"""
from __future__ import annotations

from forge_fe.config import CompileDepth, CompilerConfig, DataFormat, MathFidelity
from forge_fe.errors import ForgeError
from forge_fe.version import __version__
from forge_fe.compiled import CompiledModel, compile, model_from_binary
from forge_fe.verify import verify
from forge_fe import optim
from forge_fe import mesh
from forge_fe.generation import CompiledLM, compile_lm

__all__ = ["compile", "compile_lm", "load", "verify", "CompiledModel", "CompiledLM", "CompilerConfig", "CompileDepth",
           "DataFormat", "MathFidelity", "ForgeError", "__version__", "optim", "mesh"]


def load(path: str, mesh=None):
    """The CompiledModel (or, for a binary made by compile_lm, the CompiledLM) saved at `path`.
    `mesh` (a system name such as "n300" or a shape "1x8") is the mesh this runtime has: a binary
    compiled for another mesh is refused here, with the mesh it needs."""
    from forge_fe import binary
    from forge_fe.frontend import structure

    b = binary.read(path)
    if mesh is not None or b.mesh:
        from forge_fe.device.mesh_runtime import check_runtime_mesh
        check_runtime_mesh(b, mesh)
    if "lm" in structure.loads(b.output_structure):
        return CompiledLM.from_binary(b)
    return model_from_binary(b, mesh)
