"""The compile pipeline: one list of named stages (DESIGN.md's table), run in order.

Each stage is a function `stage(ctx)` that reads and extends the CompileContext
and may write its artifact to the dump directory. `CompileDepth` stops after
any stage. Errors raised inside a stage that are not already forge_fe errors
are wrapped with the stage's name, so every failure is attributed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from forge_fe.compiler import codegen
from forge_fe.binary import model as bm
from forge_fe.config import CompileDepth, CompilerConfig
from forge_fe.errors import CompileError, ForgeError
from forge_fe.frontend import ImportedModel, import_model
from forge_fe.graph.graph import Graph
from forge_fe.passes import attention, consteval, fuse, layout, post_initial, pre_lowering
from forge_fe.ttir.emitter import module_text
from forge_fe.compiler.lower_ttir import lower_graph


@dataclass
class DeviceUnit:
    """One device segment as it moves through the Forge stages."""
    name: str
    segment: object = None                 # tvm_ext.partition.Segment (None for a ForgeModule input)
    module: object = None                  # ForgeModule instance
    graph: Graph | None = None
    consteval: Graph | None = None
    programs: list = field(default_factory=list)   # [(program name, graph, private)]
    lowered: list = field(default_factory=list)    # [(binary Program, graph)] after lower_to_ttir
    out_names: list = field(default_factory=list)  # plan value names of the forward program's outputs
    autograd: object = None                # passes.autograd.Autograd (training)
    saved: list = field(default_factory=list)      # names of forward values the backward program reads


@dataclass
class CompileContext:
    model: object
    sample_inputs: list
    cfg: CompilerConfig
    module_name: str | None
    training: bool = False
    optimizer: object = None               # forge_fe.optim.Optimizer (training)
    imported: ImportedModel | None = None
    mod: object = None
    partition: object = None
    generated: codegen.GeneratedModule | None = None
    units: list[DeviceUnit] = field(default_factory=list)
    ttir_text: str = ""
    binary: bm.Binary | None = None
    timings: dict[str, float] = field(default_factory=dict)
    stopped_after: str | None = None
    perf: dict = field(default_factory=dict)     # performance-model summary (forge_fe.device.perf_model)
    mesh: dict = field(default_factory=dict)     # multi-chip: shardings, memory plan, link model (forge_fe.mesh)
    artifacts: dict[str, str] = field(default_factory=dict)   # artifact name -> path

    def dump(self, name: str, data):
        """Write an artifact to the dump directory. `data` may be a function making it, so that
        text costing a whole-module walk (TVMScript, graph dumps) is only made when asked for."""
        if not self.cfg.dump_dir:
            return
        if callable(data):
            data = data()
        os.makedirs(self.cfg.dump_dir, exist_ok=True)
        path = os.path.join(self.cfg.dump_dir, name)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        self.artifacts[name] = path

    @property
    def name(self) -> str:
        return self.imported.name if self.imported else (self.module_name or "model")


# ---- stages -------------------------------------------------------------------------

def stage_import(ctx):
    ctx.imported = import_model(ctx.model, ctx.sample_inputs, ctx.module_name, training=ctx.training)
    ctx.mod = ctx.imported.mod
    if ctx.mod is not None:
        ctx.dump("01_relax_imported.py", lambda: ctx.mod.script(show_meta=False))


def stage_relax_passes(ctx):
    if ctx.mod is None:
        return
    from tvm_ext.passes import run_relax_passes
    ctx.mod = run_relax_passes(ctx.mod)
    ctx.dump("02_relax_passes.py", lambda: ctx.mod.script(show_meta=False))


def stage_partition(ctx):
    from forge_fe.compiler.report import placement_table
    if ctx.mod is None:
        ctx.units = [DeviceUnit("device_0", module=ctx.imported.forge_module)]
        return
    from tvm_ext.partition import partition
    ctx.partition = partition(ctx.mod, ctx.cfg.cpu_fallback_ops)
    ctx.dump("03_partition.py", lambda: ctx.partition.module.script(show_meta=False))
    ctx.dump("03_placement.txt", lambda: placement_table(ctx.partition.placements))


def stage_generate_forge_module(ctx):
    if ctx.partition is None:
        return
    imp = ctx.imported
    device = [s for s in ctx.partition.segments if s.kind == "device"]
    by_var = {p: imp.weight_names.get(p.name, p.name) for p in ctx.partition.main_params
              if p.name in imp.params}
    values = {imp.weight_names.get(k, k): v for k, v in imp.params.items()}
    stem = f"{codegen.py_ident(ctx.name)}_forge_module"
    ctx.generated = codegen.generate(ctx.name, device, by_var, values, stem, imp.sources)
    # Not numbered like the other artifacts: the .py finds its weights by this file stem.
    ctx.dump(f"{stem}.py", ctx.generated.source)
    if ctx.cfg.dump_dir and not imp.shape_only:
        from safetensors.numpy import save_file
        path = os.path.join(ctx.cfg.dump_dir, f"{stem}.safetensors")
        save_file(ctx.generated.weights, path)
        ctx.artifacts[f"{stem}.safetensors"] = path
    # The pipeline runs the generated code itself, so the artifact is what gets compiled.
    gen = codegen.load_source(ctx.generated.source, stem)
    for seg, cls in zip(device, ctx.generated.classes):
        m = getattr(gen, cls)()
        m.set_weights(ctx.generated.weights, prefix=f"{cls}.")
        ctx.units.append(DeviceUnit(seg.name, segment=seg, module=m))


def stage_initial_graph(ctx):
    for u in ctx.units:
        if u.segment is not None:
            specs = [(v.name, tuple(int(d) for d in v.ty.shape.values), str(v.ty.dtype))
                     for v in u.segment.inputs if v.name not in ctx.imported.params]
        else:
            specs = ctx.imported.input_specs
        u.graph = u.module.trace(specs)
    _dump_graphs(ctx, "05_initial_graph.txt")


def stage_post_initial_graph(ctx):
    for u in ctx.units:
        g = u.graph
        post_initial.decompose(g)
        post_initial.remove_noops(g)
        fuse.fuse_gelu_tanh(g)             # GPT-2's spelled-out GELU -> one gelu op
        fuse.fuse_silu(g)                  # x * sigmoid(x) (SwiGLU's gate) -> one silu op
        fuse.fuse_rms_norm(g)              # Llama's six-op RMSNorm -> one rms_norm op
        fuse.fold_masked_row_test(g)       # softmax's all-masked-row guard -> max(x) == -inf
        fuse.fuse_rotary_embedding(g)      # RoPE's x*cos + rotate_half(x)*sin -> one rotary_embedding op
        post_initial.fold_into_conv(g)
        post_initial.fuse_linear(g)
        post_initial.apply_data_formats(g, ctx.cfg.default_df_override, ctx.cfg.df_overrides)
        attention.group_kv_heads(g)        # GQA: matmul per KV head instead of a repeated KV cache
        post_initial.fold_reshapes_into_matmul(g)    # view -> mm -> view: the matmul takes the batch dims
        post_initial.fold_transpose_into_matmul(g)   # Q @ K^T reads K as it is (transpose_b)
        if not ctx.training and ctx.cfg.mesh_description() is None:
            post_initial.fuse_sibling_matmuls(g)     # a decode step's q/k/v and gate/up: one product each
        post_initial.remove_noops(g)       # the reshapes these leave meet the ones around them
    _dump_graphs(ctx, "06_post_initial_graph.txt")


def stage_consteval(ctx):
    if not ctx.cfg.enable_consteval:
        return
    for u in ctx.units:
        # Training: trainable parameters change every step, so only frozen weights fold.
        u.consteval = consteval.split_consteval(u.graph, frozen_only=ctx.training)
    _dump_graphs(ctx, "07_consteval.txt", consteval=True)


def stage_autograd(ctx):
    if not ctx.training:
        if ctx.optimizer is not None:
            raise CompileError("autograd", "optimizer= needs training=True",
                               "forge_fe.compile(model, inputs, training=True, optimizer=opt)")
        return
    from forge_fe.passes import autograd
    if ctx.imported.framework != "pytorch":
        raise CompileError("autograd", f"training supports PyTorch models; this is a {ctx.imported.framework} model",
                           "train the PyTorch version of the model, or compile this one with training=False")
    cpu = [s.name for s in ctx.partition.segments if s.kind != "device"] if ctx.partition is not None else []
    if cpu or len(ctx.units) != 1:
        ops = sorted({f"{p.op} ({p.reason})" for p in ctx.partition.placements if p.where != "device"}) \
            if ctx.partition else []
        raise CompileError("autograd", f"training needs the whole model on the device, but {len(cpu)} segment(s) "
                           f"run on the CPU ({', '.join(cpu)}; ops: {', '.join(ops) or '-'})",
                           "remove these ops from cpu_fallback_ops, or train a model whose ops the device supports "
                           "(the placement report, 03_placement.txt, says why each op fell back)")
    for u in ctx.units:
        u.autograd = autograd.build_backward(u.graph, frozen=ctx.imported.frozen)
    _dump_graphs(ctx, "08_autograd.txt")


def stage_post_autograd(ctx):
    # Decompositions and no-op removal over the joint forward + backward graph.
    for u in ctx.units:
        if u.autograd is not None:
            post_initial.decompose(u.graph)
            post_initial.remove_noops(u.graph)
    _dump_graphs(ctx, "09_post_autograd.txt")


def stage_pre_lowering(ctx):
    for u in ctx.units:
        layout.channels_last(u.graph)      # conv/pool run NHWC on the device ...
        layout.sink_permutes(u.graph)      # ... and the permutes between them cancel
        for g in filter(None, (u.consteval, u.graph)):
            pre_lowering.equalize_ranks(g)
            g.toposort()
            pre_lowering.verify_shapes(g)
    _dump_graphs(ctx, "10_pre_lowering.txt", consteval=True)


def stage_graph_split(ctx):
    for u in ctx.units:
        if u.consteval is not None:
            u.programs.append((f"{u.name}_const_eval", u.consteval, True))
        if u.autograd is None:
            u.programs.append((f"{u.name}_forward", u.graph, False))
            continue
        from forge_fe.passes import autograd
        fwd, bwd = autograd.split_forward_backward(u.graph, u.autograd)
        u.saved = [o.name for o in fwd.outputs[u.autograd.num_outputs:]]
        u.programs += [(f"{u.name}_forward", fwd, False), (f"{u.name}_backward", bwd, False)]
        if ctx.optimizer is not None:
            params = [(p.name, p.shape, p.dtype) for p in u.autograd.params if p.name in u.autograd.grad_params]
            opt = ctx.optimizer.build_graph(params, f"{u.name}_optimizer")
            pre_lowering.equalize_ranks(opt)
            opt.toposort()
            pre_lowering.verify_shapes(opt)
            u.programs.append((f"{u.name}_optimizer", opt, False))
    ctx.dump("11_graph_split.txt", lambda: "\n".join(f"{u.name}: " + ", ".join(
        f"{n}{' (private)' if p else ''} [{len(g.op_nodes())} ops]" for n, g, p in u.programs) for u in ctx.units) + "\n")


def stage_shard(ctx):
    from forge_fe.compiler.binary_builder import ARCHS
    from forge_fe.passes.mesh.stage import shard
    if ctx.cfg.arch in ARCHS:      # an unknown arch is refused by the binary stage, naming the choices
        shard(ctx, ARCHS[ctx.cfg.arch].dram_size)
    if ctx.imported is not None and ctx.imported.shape_only and ctx.cfg.compile_depth > CompileDepth.SHARD:
        raise CompileError("shard", f"model '{ctx.name}' has its weights on the meta device (shapes only): it can "
                           "be planned but not compiled to a binary",
                           "use forge_fe.mesh.plan(model, inputs, mesh=...) (or compile_depth=CompileDepth.SHARD), "
                           "or build the model with real weights")


def stage_lower_to_ttir(ctx):
    funcs = []
    for u in ctx.units:
        lowered = []
        for name, g, private in u.programs:
            prog, text = lower_graph(g, name, private)
            lowered.append((prog, g))
            funcs.append(text)
        u.lowered = lowered
    mesh = ctx.cfg.mesh_description()
    attrs = {"ttcore.meshes": f'#ttcore.meshes<[<"mesh" = {mesh.shape[0]}x{mesh.shape[1]}>]>'} if mesh else None
    ctx.ttir_text = module_text(codegen.py_ident(ctx.name), funcs, attrs)
    ctx.dump("12_ttir.mlir", ctx.ttir_text)


def stage_binary(ctx):
    import json
    from forge_fe.device import perf_model
    from forge_fe.compiler.binary_builder import build_binary
    ctx.binary = build_binary(ctx)
    # The performance model's estimate for the programs that run per call (not const-eval).
    estimates = []
    for prog in ctx.binary.programs:
        if not prog.private:
            estimates += perf_model.estimate_program(prog, ctx.binary.system, ctx.cfg.math_fidelity)
    ctx.perf = perf_model.summarize(estimates, ctx.binary.system)
    ctx.binary.debug["perf.json"] = json.dumps(ctx.perf)
    from forge_fe.compiler.report import device_numerics_notes
    ctx.binary.debug["numerics_notes.json"] = json.dumps(device_numerics_notes(
        [g for u in ctx.units for _, g in u.lowered]))
    if ctx.mesh:
        from forge_fe.device.mesh_perf import mesh_perf
        ctx.binary.mesh = {k: ctx.mesh[k] for k in ("shape", "system", "arch", "axes")}
        ctx.mesh.update(mesh_perf(ctx.binary.programs, ctx.binary.system, ctx.cfg.mesh_description(),
                                  ctx.cfg.math_fidelity))
        ctx.binary.debug["mesh.json"] = json.dumps(ctx.mesh)
    if ctx.cfg.dump_dir:
        from forge_fe import binary as binio
        os.makedirs(ctx.cfg.dump_dir, exist_ok=True)
        path = os.path.join(ctx.cfg.dump_dir, "13_model.ttb")
        binio.write(ctx.binary, path)
        ctx.artifacts["13_model.ttb"] = path


# The pipeline (DESIGN.md): (CompileDepth, stage name, function). Order is execution order.
STAGES = [
    (CompileDepth.IMPORT, "import", stage_import),                                 # framework -> Relax
    (CompileDepth.RELAX_PASSES, "relax_passes", stage_relax_passes),               # tvm_ext Relax pipeline
    (CompileDepth.PARTITION, "partition", stage_partition),                        # device / CPU segments
    (CompileDepth.GENERATE_FORGE_MODULE, "generate_forge_module", stage_generate_forge_module),
    (CompileDepth.INITIAL_GRAPH, "initial_graph", stage_initial_graph),            # trace ForgeModules
    (CompileDepth.POST_INITIAL_GRAPH, "post_initial_graph", stage_post_initial_graph),
    (CompileDepth.CONSTEVAL, "consteval", stage_consteval),
    (CompileDepth.AUTOGRAD, "autograd", stage_autograd),
    (CompileDepth.POST_AUTOGRAD, "post_autograd", stage_post_autograd),
    (CompileDepth.PRE_LOWERING, "pre_lowering", stage_pre_lowering),
    (CompileDepth.GRAPH_SPLIT, "graph_split", stage_graph_split),
    (CompileDepth.SHARD, "shard", stage_shard),                                    # multi-chip: SPMD programs
    (CompileDepth.LOWER_TO_TTIR, "lower_to_ttir", stage_lower_to_ttir),
    (CompileDepth.BINARY, "binary", stage_binary),
]


def run_pipeline(ctx: CompileContext, progress=None) -> CompileContext:
    from forge_fe.frontend.imported import frozen_heap
    with frozen_heap():   # gc walks only what the compile allocates, not the framework's heap
        return _run_stages(ctx, progress)


def _run_stages(ctx: CompileContext, progress) -> CompileContext:
    for depth, name, fn in STAGES:
        t0 = time.perf_counter()
        try:
            fn(ctx)
        except ForgeError:
            raise
        except Exception as exc:
            raise CompileError(name, f"stage '{name}' failed: {type(exc).__name__}: {exc}",
                               f"set CompilerConfig(dump_dir=...) to inspect the artifacts up to '{name}'") from exc
        ctx.timings[name] = time.perf_counter() - t0
        if progress:
            progress(name, ctx.timings[name])
        if ctx.cfg.compile_depth <= depth:
            ctx.stopped_after = name
            break
    return ctx


def _dump_graphs(ctx, filename, consteval=False):
    if not ctx.cfg.dump_dir:
        return
    parts = []
    for u in ctx.units:
        if consteval and u.consteval is not None:
            parts.append(u.consteval.dump())
        if u.graph is not None:
            parts.append(u.graph.dump())
    ctx.dump(filename, "\n".join(parts))
