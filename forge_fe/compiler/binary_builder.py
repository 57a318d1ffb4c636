"""Assemble the Binary: lowered device programs, TVM-compiled CPU segments and the execution plan.

Plan values are named after the Relax variables that carry them between
segments (made unique); CPU segments read weights from plan-level constants.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import tvm

from forge_fe.frontend import structure
from forge_fe.binary import model as bm
from forge_fe.errors import CompileError
from forge_fe.compiler.report import placement_rows
from forge_fe.version import __version__

HOST_TARGET = {"kind": "llvm"}

ARCHS = {
    "wormhole_b0": bm.SystemDesc("wormhole_b0", (8, 8), 1464 * 1024, 12 * 1024**3, 288e9, 1.0e9),
    "blackhole": bm.SystemDesc("blackhole", (11, 10), 1464 * 1024, 32 * 1024**3, 512e9, 1.35e9),
}


class _Names:
    """Unique plan value names per Relax variable."""

    def __init__(self):
        self.by_var, self.used = {}, set()

    def __call__(self, var) -> str:
        name = self.by_var.get(var)
        if name is None:
            base = name = var.name
            k = 1
            while name in self.used:
                name, k = f"{base}.{k}", k + 1
            self.used.add(name)
            self.by_var[var] = name
        return name


def compile_cpu_segment(seg) -> bytes:
    """tvm.compile the segment's Relax function for the host and return the shared object."""
    from tvm import relax
    from tvm_ext.passes.accumulate_in_float32 import AccumulateInFloat32
    from tvm_ext.passes.guard_integer_division import GuardIntegerDivision
    mod = tvm.IRModule({"main": seg.func.with_attr("global_symbol", "main")})
    try:
        mod = GuardIntegerDivision()(mod)      # no SIGFPE from integer division on the host
        mod = AccumulateInFloat32()(mod)       # float16 reductions as the device computes them
        ex = tvm.compile(mod, target=tvm.target.Target(HOST_TARGET))
    except Exception as exc:
        ops = sorted({b.value.op.name for b in seg.bindings if isinstance(b.value, relax.Call)
                      and isinstance(b.value.op, tvm.ir.Op)})
        raise CompileError("binary", f"TVM could not compile CPU segment {seg.name} (ops: {', '.join(ops)}): "
                           f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
                           "report this op; meanwhile keep it on the device if it has a lowering") from exc
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{seg.name}.so")
        ex.export_library(path)
        with open(path, "rb") as f:
            return f.read()


def _desc(name, ty) -> bm.TensorDesc:
    """A CPU segment's tensor; -1 marks a dim only the run decides (unique, nonzero: those values
    stay on the CPU, since device programs are compiled for static shapes)."""
    if ty.shape is None:
        raise CompileError("binary", f"CPU segment value '{name}' has no known rank",
                           "forge_fe needs a static rank for every value that crosses a segment")
    dims = tuple(int(d) if isinstance(d, tvm.ir.prim.expr.IntImm) else -1 for d in ty.shape.values)
    return bm.TensorDesc(name=name, shape=dims, dtype=str(ty.dtype))


def build_binary(ctx) -> bm.Binary:
    imp = ctx.imported
    system = ARCHS.get(ctx.cfg.arch)
    if system is None:
        raise CompileError("binary", f"unknown arch '{ctx.cfg.arch}'", f"choose one of {sorted(ARCHS)}")
    programs, cpu_segments, plan, constants = [], [], [], {}
    inputs = [bm.TensorDesc(n, tuple(s), d) for n, s, d in imp.input_specs]

    training = {}

    def add_device_programs(unit, activation_names):
        ce_names = []
        for prog, graph in unit.lowered:
            programs.append(prog)
            idx = len(programs) - 1
            if prog.private:
                ce_names = [f"{unit.name}.ce.{o.name}" for o in graph.outputs]
                plan.append(bm.Step("device", idx, [], ce_names))
            elif unit.autograd is None:
                out_names = unit.out_names
                plan.append(bm.Step("device", idx, activation_names + ce_names, out_names))
            else:
                _add_training_program(training, unit, prog, graph, idx, activation_names + ce_names, plan, constants,
                                      list(imp.weight_names.values()))

    if ctx.partition is None:          # a ForgeModule: one device unit, inputs in call order
        unit = ctx.units[0]
        unit.out_names = [f"out{i}" for i in range(len(unit.graph.outputs))]
        add_device_programs(unit, [n for n, _, _ in imp.input_specs])
        outputs = unit.out_names
    else:
        part = ctx.partition
        names = _Names()
        for p in part.main_params:
            if p.name not in imp.params:
                names(p)
        units = {u.name: u for u in ctx.units}
        for seg in part.segments:
            if seg.kind == "device":
                unit = units[seg.name]
                unit.out_names = [names(v) for v in seg.outputs]
                acts = [names(v) for v in seg.inputs if v.name not in imp.params]
                add_device_programs(unit, acts)
            else:
                lib = compile_cpu_segment(seg)
                in_names = []
                for v in seg.inputs:
                    n = names(v)
                    if v.name in imp.params:
                        constants[n] = imp.params[v.name]
                    in_names.append(n)
                cpu_segments.append(bm.CpuSegment(seg.name, lib, [_desc(names(v), v.ty) for v in seg.inputs],
                                                  [_desc(names(v), v.ty) for v in seg.outputs]))
                plan.append(bm.Step("cpu", len(cpu_segments) - 1, in_names, [names(v) for v in seg.outputs]))
        outputs = []
        for i, o in enumerate(part.main_outputs):
            if isinstance(o, tvm.ir.expr.Constant):
                constants[f"output{i}.const"] = o.value.numpy()
                outputs.append(f"output{i}.const")
            else:
                if o.name in imp.params:
                    constants[names(o)] = imp.params[o.name]
                outputs.append(names(o))

    meta = {"tree": imp.output_structure, "dtypes": imp.output_dtypes, "torch_io": imp.torch_io}
    if imp.input_structure is not None:
        meta["inputs_tree"] = imp.input_structure
    if training:
        if ctx.optimizer is not None:
            training["optimizer_config"] = ctx.optimizer.config()
        meta["training"] = training
    debug = {"ttir.mlir": ctx.ttir_text}
    if ctx.partition is not None:
        debug["placement.json"] = json.dumps(placement_rows(ctx.partition.placements))
        if ctx.cfg.dump_dir:   # printing the whole module costs a walk over it: only when artifacts are asked for
            debug["relax.py"] = ctx.mod.script(show_meta=False)
    return bm.Binary(compiler_version=f"forge_fe {__version__} (tvm {tvm.__version__})", system=system,
                     programs=programs, cpu_segments=cpu_segments, plan=plan, inputs=inputs, outputs=outputs,
                     constants={k: np.asarray(v, order="C") for k, v in constants.items()},
                     output_structure=structure.dumps(meta), debug=debug, model_name=ctx.name,
                     compute_config={"math_fidelity": ctx.cfg.math_fidelity.name,
                                     "fp32_dest_acc_en": bool(ctx.cfg.fp32_dest_acc_en)})


def _plan_name(unit, node, joint_inputs: list[str]) -> str:
    """The plan value a training program's input or output node stands for (see passes/autograd.py)."""
    if "plan_name" in node.meta:                       # optimizer programs name their values directly
        return node.meta["plan_name"]
    if node.meta.get("trainable"):
        return f"param:{node.name}"
    if node.meta.get("grad_of_output") is not None:
        return f"{unit.out_names[node.meta['grad_of_output']]}.grad"
    kind, key = node.meta["plan_key"]
    if kind == "input":
        return joint_inputs[key]
    if kind == "output":
        return unit.out_names[key]
    return f"{unit.name}.saved.{key}"


def _add_training_program(training: dict, unit, prog, graph, idx: int, joint_inputs: list[str], plan, constants,
                          framework_order: list[str]):
    """Forward (also a plan step, so calling the model runs it), backward and optimizer programs;
    `training` (stored in the binary's metadata) says which is which and names their values."""
    ins = [_plan_name(unit, n, joint_inputs) for n in graph.inputs]
    if prog.name.endswith("_forward"):
        outs = unit.out_names + [f"{unit.name}.saved.{n}" for n in unit.saved]
        plan.append(bm.Step("device", idx, ins, outs))
        # parameters in the framework's order (state_dict order), not the graph's
        rank = {n: i for i, n in enumerate(framework_order)}
        params = sorted(unit.autograd.params, key=lambda p: rank.get(p.name, len(rank)))
        for p in params:
            constants[f"param:{p.name}"] = p.value      # initial weights; the runtime keeps the current ones
        training["params"] = [{"name": p.name, "plan": f"param:{p.name}", "shape": list(p.shape)} for p in params]
        training["grad_outputs"] = [None if g is None else f"{unit.out_names[i]}.grad"
                                    for i, g in enumerate(unit.autograd.grad_inputs)]
        role = "forward"
    elif prog.name.endswith("_backward"):
        outs = [f"grad:{n}" for n in unit.autograd.grad_params] + \
            [f"{joint_inputs[i]}.input_grad" for i in unit.autograd.grad_acts]
        training["no_input_grad"] = [joint_inputs[i] for i in unit.autograd.no_grad_acts]
        role = "backward"
    else:
        outs = [_plan_name(unit, n, joint_inputs) for n in graph.outputs]
        role = "optimizer"
    training[role] = {"program": idx, "inputs": ins, "outputs": outs}
