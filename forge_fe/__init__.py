"""forge_fe: a TVM-based frontend compiler for Tenstorrent-style NPUs.

    cm = forge_fe.compile(model, sample_inputs)
    outs = cm(*inputs)
    forge_fe.verify(inputs, model, cm)
"""
from __future__ import annotations

from forge_fe.config import CompileDepth, CompilerConfig, DataFormat, MathFidelity
from forge_fe.errors import ForgeError
from forge_fe.version import __version__
from forge_fe.compiled import CompiledModel, load
from forge_fe.verify import verify
from forge_fe import optim
from forge_fe import mesh
from forge_fe.generation import CompiledLM, compile_lm

__all__ = ["compile", "compile_lm", "load", "verify", "CompiledModel", "CompiledLM", "CompilerConfig", "CompileDepth",
           "DataFormat", "MathFidelity", "ForgeError", "__version__", "optim", "mesh"]


def compile(model, sample_inputs, module_name=None, compiler_cfg: CompilerConfig | None = None,
            training: bool = False, optimizer=None, progress=None) -> CompiledModel:
    """Compile `model` for the emulated device, using `sample_inputs` for shapes and dtypes.

    Returns a CompiledModel; with a `compile_depth` short of FULL, it holds the
    artifacts up to that stage and refuses to run."""
    import json

    from forge_fe.pipeline import CompileContext, run_pipeline
    from forge_fe.report import CompileReport, placement_rows

    cfg = compiler_cfg or CompilerConfig()
    if isinstance(sample_inputs, tuple):
        sample_inputs = list(sample_inputs)
    elif not isinstance(sample_inputs, list):
        sample_inputs = [sample_inputs]
    ctx = CompileContext(model=model, sample_inputs=sample_inputs, cfg=cfg, module_name=module_name,
                         training=training, optimizer=optimizer)
    run_pipeline(ctx, progress=progress)
    segs = []
    if ctx.binary is not None:
        for s in ctx.binary.plan:
            prog = ctx.binary.programs[s.index] if s.kind == "device" else ctx.binary.cpu_segments[s.index]
            if not getattr(prog, "private", False):
                segs.append(f"{s.kind}:{prog.name}")
    report = CompileReport(ctx.name, ctx.imported.framework if ctx.imported else "?",
                           placement=placement_rows(ctx.partition.placements) if ctx.partition else [],
                           timings=dict(ctx.timings), stopped_after=ctx.stopped_after, segments=segs,
                           artifacts=dict(ctx.artifacts), perf=dict(ctx.perf), mesh=dict(ctx.mesh),
                           numerics_notes=json.loads(ctx.binary.debug.get("numerics_notes.json", "[]"))
                           if ctx.binary else [])
    return CompiledModel(ctx.binary, report, context=ctx)
