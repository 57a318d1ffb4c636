"""Multi-chip meshes (docs/mesh.md): systems, shardings, the sharding pass, the emulated mesh
runtime, the per-chip memory plan and the ethernet link model.

    cfg = forge_fe.CompilerConfig(mesh="t3k")                  # or mesh_shape=(2, 4), shard_specs={...}
    cm = forge_fe.compile(model, inputs, compiler_cfg=cfg)
    cm.report.to_dict()["mesh"]                                # shardings, collectives, per-chip bytes, times
    forge_fe.mesh.plan(meta_model, inputs, mesh="n150")        # shape-only: a model on the meta device
"""
from forge_fe.passes.mesh.sharding import Sharding  # noqa: F401
from forge_fe.systems import SYSTEMS, Mesh, resolve_mesh  # noqa: F401


def plan(model, sample_inputs, mesh=None, mesh_shape=None, **config):
    """The mesh report of `model` without building a binary (see forge_fe.mesh.planning.plan)."""
    from forge_fe.mesh.planning import plan as _plan
    return _plan(model, sample_inputs, mesh=mesh, mesh_shape=mesh_shape, **config)
