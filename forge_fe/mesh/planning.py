"""Plan a model on meshes without building a binary: shardings, per-chip memory, compute and link time.

The model may live on torch's meta device (`with torch.device("meta"): model = Llama(config)`):
the torch frontend then imports shapes only (every weight a zero-stride stand-in, no memory), and
the per-chip programs are lowered without constant values, which the performance model does not
need. This is how a Llama-3-8B is planned on a small machine (docs/mesh.md). The model is imported
once and partitioned for every mesh asked for.
"""
from __future__ import annotations

from forge_fe.config import CompileDepth, CompilerConfig
from forge_fe.errors import ForgeError
from forge_fe.device.mesh_perf import mesh_perf
from forge_fe.compiler.lower_ttir import lower_graph


def plan(model, sample_inputs, mesh=None, mesh_shape=None, **config):
    """The report's 'mesh' section (plus compute/link time) for `model` on `mesh`: a system name,
    a shape, or a list of them (then a list of reports, one per mesh, from one import).
    `config`: other CompilerConfig fields (default_df_override, shard_specs ...)."""
    from forge_fe.compiler.binary_builder import ARCHS
    from forge_fe.passes.mesh.stage import global_units, shard_for
    from forge_fe.compiler.pipeline import CompileContext, run_pipeline
    if mesh is None and mesh_shape is None:
        raise ForgeError("shard", "plan() needs a mesh", "e.g. forge_fe.mesh.plan(model, inputs, mesh='t3k')")
    many = isinstance(mesh, (list, tuple))
    configs = [CompilerConfig(mesh=m, compile_depth=CompileDepth.GRAPH_SPLIT, **config) for m in mesh] if many \
        else [CompilerConfig(mesh=mesh, mesh_shape=mesh_shape, compile_depth=CompileDepth.GRAPH_SPLIT, **config)]
    if len({c.arch for c in configs}) != 1:
        raise ForgeError("shard", f"plan() meshes {list(mesh)} mix architectures", "plan one arch at a time")
    inputs = list(sample_inputs) if isinstance(sample_inputs, (list, tuple)) else [sample_inputs]
    ctx = run_pipeline(CompileContext(model=model, sample_inputs=inputs, cfg=configs[0], module_name=None))
    ctx.training = False
    units = global_units(ctx)
    reports = []
    for cfg in configs:
        m = cfg.mesh_description()
        result, mp, report = shard_for(m, units, cfg.shard_specs, ARCHS[m.arch].dram_size)
        programs = [lower_graph(g, name, private)[0] for progs in result["programs"].values()
                    for name, g, private in progs]
        report.update(mesh_perf(programs, ARCHS[cfg.arch], m, cfg.math_fidelity))
        report["shape_only"] = bool(ctx.imported and ctx.imported.shape_only)
        reports.append(report)
    return reports if many else reports[0]
