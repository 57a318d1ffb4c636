"""The `shard` pipeline stage: seeds, the sharding pass over every device unit, the memory plan.

Runs after graph_split on each unit's programs ([(name, graph, private)]): the const-eval program
first (its results' shardings seed the forward program's matching inputs), then the forward one.
On a 1x1 mesh nothing is partitioned; the memory plan and fit check still run.
"""
from __future__ import annotations

from collections import Counter

from forge_fe.errors import CompileError, ForgeError
from forge_fe.passes.mesh import memory
from forge_fe.passes.mesh.propagate import Partitioner
from forge_fe.passes.mesh.rewrites import split_fused_projections, unflatten_batched_matmul
from forge_fe.passes.mesh.seeds import check_specs, input_seeds, parameter_seeds
from forge_fe.systems import AXIS_NAMES, Mesh, meshes_of_arch
from forge_fe.passes.pre_lowering import verify_shapes


class MeshMemoryError(ForgeError):
    """A shard of the model does not fit a chip's DRAM."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__("shard", message, hint)


def _split(programs):
    ce = next((g for _, g, private in programs if private), None)
    fw = next(g for _, g, private in programs if not private)
    return ce, fw


def partition(units: list, mesh: Mesh, specs: dict | None) -> dict:
    """Shard every unit's programs for `mesh`. units: [(unit name, programs)]. Returns
    {"programs": {unit: new programs}, "log": [...], "notes": [...], "collectives": Counter,
     "parameters": {framework name: sharding text}}."""
    out = {"programs": {}, "log": [], "notes": [], "collectives": Counter(), "parameters": {}}
    for name, programs in units:
        ce, fw = _split(programs)
        n_ce = len(ce.outputs) if ce is not None else 0
        bridge = {o: fw.inputs[len(fw.inputs) - n_ce + i] for i, o in enumerate(ce.outputs)} if ce else {}
        for o, inp in bridge.items():       # name const-eval results after the weights they are made of
            inp.meta.setdefault("weight_of", _weights_of(o))
        if mesh.size == 1:
            out["programs"][name] = list(programs)
            continue
        split_fused_projections(fw)
        unflatten_batched_matmul(fw)
        graphs = [g for g in (ce, fw) if g is not None]
        seeds = parameter_seeds(graphs, bridge, mesh, specs, out["notes"])
        seeds.update(input_seeds(fw, fw.inputs[:len(fw.inputs) - n_ce], mesh, specs, out["notes"]))
        for n, s in seeds.items():
            if n.kind == "parameter":
                out["parameters"][n.meta.get("framework_name", n.name)] = str(s)
        local = {}
        if ce is not None:
            p = Partitioner(ce, mesh, seeds)
            local[id(ce)] = _checked(p.run())
            seeds.update({bridge[o]: s for o, s in zip(ce.outputs, p.output_shardings)})
            out["log"] += [f"program {ce.name}"] + ["  " + line for line in p.log]
            out["collectives"].update(p.collectives)
        p = Partitioner(fw, mesh, seeds)
        local[id(fw)] = _checked(p.run())
        out["log"] += [f"program {fw.name}"] + ["  " + line for line in p.log]
        out["collectives"].update(p.collectives)
        out["programs"][name] = [(pname, local[id(g)], private) for pname, g, private in programs]
    return out


def _weights_of(n) -> str:
    names, stack, seen = [], [n], set()
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        if x.kind == "parameter":
            names.append(x.meta.get("framework_name", x.name))
        stack.extend(x.inputs)
    return "+".join(sorted(names)) or n.name


def _checked(g):
    verify_shapes(g)
    return g


def plan_memory(programs: dict, dram_size: int) -> memory.MemoryPlan:
    return memory.plan([p for progs in programs.values() for p in progs], dram_size)


def shard_for(mesh: Mesh, units: list, specs: dict | None, dram_size: int):
    """Partition global `units` ([(unit name, programs)]) for `mesh` and plan its memory on chips
    of `dram_size` bytes.
    Returns (partition result, MemoryPlan, the report's 'mesh' section)."""
    result = partition(units, mesh, specs)
    mp = plan_memory(result["programs"], dram_size)
    report = {**mesh.to_json(), **mp.to_json(), "collectives": dict(sorted(result["collectives"].items())),
              "parameters": result["parameters"], "notes": result["notes"]}
    return result, mp, report


def global_units(ctx) -> list:
    names = {n.meta.get("framework_name", n.name) for u in ctx.units for _, g, _ in u.programs for n in g.nodes
             if n.kind in ("parameter", "input")}
    check_specs(ctx.cfg.shard_specs, names)
    return [(u.name, list(u.programs)) for u in ctx.units]


def shard(ctx, dram_size: int):
    """The stage: shard ctx.units for ctx.cfg's mesh, whose chips have `dram_size` bytes of DRAM,
    and fill ctx.mesh (the report's 'mesh' section)."""
    mesh = ctx.cfg.mesh_description()
    if mesh is None:
        return
    if ctx.training:
        raise CompileError("shard", "training on a mesh is not supported (forward programs only)",
                           "compile with training=False, or train on one chip (no mesh)")
    units = global_units(ctx)
    result, mp, ctx.mesh = shard_for(mesh, units, ctx.cfg.shard_specs, dram_size)
    for u in ctx.units:
        u.programs = result["programs"][u.name]
    ctx.dump("11_sharding.txt", _report_text(mesh, result, mp))
    if not mp.fits and ctx.cfg.compile_depth > type(ctx.cfg.compile_depth).SHARD:
        raise _fit_error(ctx, mesh, mp, units, ctx.cfg.shard_specs, dram_size)


def _fit_error(ctx, mesh, mp, units, specs, dram_size) -> MeshMemoryError:
    big = ", ".join(f"'{n}' ({memory.human(b)} per chip)" for n, b in mp.largest_weights())
    fitting = None
    for other in meshes_of_arch(mesh.arch):
        if other.size <= mesh.size:
            continue
        try:
            trial = plan_memory(partition(units, other, specs)["programs"], dram_size)   # same arch
        except ForgeError:
            continue
        if trial.fits:
            fitting = (other, trial)
            break
    message = (f"model '{ctx.name}' needs {memory.human(mp.peak_bytes)} per chip on {mesh.name} "
               f"(weights {memory.human(mp.weight_bytes)}), a {mesh.arch} chip has {memory.human(mp.dram_bytes)} of DRAM; "
               f"the largest tensors are {big}")
    if fitting:
        other, trial = fitting
        message += f"; it fits on {other.name}: {memory.human(trial.peak_bytes)} per chip"
        hint = (f"compile with CompilerConfig(mesh='{other.system.name}', mesh_shape={other.shape}), or a smaller "
                "data format (default_df_override=DataFormat.Float16_b / df_overrides={'weights': DataFormat.Bfp8_b})")
    else:
        hint = ("no " + mesh.arch + " system in forge_fe.mesh.SYSTEMS holds it with these shardings; use a smaller "
                "data format (df_overrides={'weights': DataFormat.Bfp8_b}) or shard more tensors (shard_specs)")
    return MeshMemoryError(message, hint)


def _report_text(mesh: Mesh, result: dict, mp: memory.MemoryPlan) -> str:
    axes = ", ".join(f"axis {AXIS_NAMES[i]}: {mesh.shape[i]} chip{'s' * (mesh.shape[i] > 1)}"
                     + (f" ({a.topology}, {a.links} link{'s' * (a.links > 1)} per neighbour pair)" if mesh.shape[i] > 1 else "")
                     for i, a in enumerate(mesh.axes))
    lines = [f"mesh {mesh.name}: {axes}", "", "parameter shardings (framework dims; '-' = whole):"]
    lines += [f"  {n} {s}" for n, s in sorted(result["parameters"].items())] or ["  (none: every weight replicated)"]
    if result["notes"]:
        lines += ["", "notes:"] + [f"  {n}" for n in result["notes"]]
    lines += [""] + result["log"]
    lines += ["", "collectives: " + (", ".join(f"{k} {v}" for k, v in sorted(result["collectives"].items())) or "none")]
    lines.append(f"per chip: weights {memory.human(mp.weight_bytes)}, peak {memory.human(mp.peak_bytes)} of "
                 f"{memory.human(mp.dram_bytes)} DRAM: {'fits' if mp.fits else 'does NOT fit'}")
    return "\n".join(lines) + "\n"
