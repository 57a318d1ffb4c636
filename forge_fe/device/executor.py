"""Execute a forge_fe Binary: device programs on the emulated device, CPU segments via TVM.

The executor only reads the Binary (forge_fe.binary.model); it never touches the
compiler's graphs or the original model, so a binary loaded in a fresh process
runs the same way. A program of a binary compiled for a mesh runs on the emulated mesh
(forge_fe.device.mesh_runtime).
"""
from __future__ import annotations

import os
import tempfile
import threading
from time import perf_counter

import numpy as np
import torch

from forge_fe.binary import model as bm
from forge_fe.device.mesh_runtime import MeshProgram, check_runtime_mesh
from forge_fe.device.program import TORCH_DTYPE, DeviceProgram, to_numpy, to_torch, torch_dtype  # noqa: F401
from forge_fe.errors import RuntimeFailure


class CpuSegment:
    """A TVM-compiled host segment; the shared object is written to a temp file and loaded.

    TVM's Relax VM keeps its registers in the VM object, so two threads calling one VM corrupt
    each other's frames (wrong results, "reg < frame->register_file.size()" failures): each
    thread gets its own VM over the one loaded library."""

    def __init__(self, seg: bm.CpuSegment):
        import tvm
        from tvm import relax
        from forge_fe.device import cpu_builtins  # noqa: F401  (host functions segments call by name)
        self.seg = seg
        fd, path = tempfile.mkstemp(suffix=".so", prefix=f"forge_fe_{seg.name}_")
        with os.fdopen(fd, "wb") as f:
            f.write(seg.library)
        try:
            lib = tvm.runtime.load_module(path)
        finally:
            os.unlink(path)   # the loader keeps its own mapping
        self._lib = lib
        self._per_thread = threading.local()
        self._tvm, self._relax = tvm, relax
        self.vm                               # built now, so a broken library fails at load time

    @property
    def vm(self):
        vm = getattr(self._per_thread, "vm", None)
        if vm is None:
            vm = self._per_thread.vm = self._relax.VirtualMachine(self._lib, self._tvm.cpu())
        return vm

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        try:
            args = []
            for x, desc in zip(inputs, self.seg.inputs):
                want = torch_dtype(desc.dtype, f"CPU segment '{self.seg.name}' input '{desc.name}'")
                x = x.to(want) if x.dtype != want else x
                args.append(self._tvm.runtime.tensor(np.asarray(to_numpy(x), order="C")))   # bf16 via ml_dtypes
            out = self.vm[self.seg.entry](*args)
            outs = list(out) if not hasattr(out, "numpy") else [out]
            return [to_torch(o.numpy(), f"CPU segment '{self.seg.name}' output") for o in outs]
        except RuntimeFailure:
            raise
        except Exception as exc:
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise RuntimeFailure(f"CPU segment '{self.seg.name}' failed in TVM: {msg}",
                                 "force fewer ops to the CPU, or report the model") from exc


def _stable_inputs(binary: bm.Binary) -> dict[int, set[int]]:
    """Per device program: positions of its inputs that are the same tensor every call (plan
    constants and results of private, const-eval, programs, which run once)."""
    fixed = set(binary.constants)
    out: dict[int, set[int]] = {}
    for step in binary.plan:
        if step.kind != "device":
            continue
        here = {i for i, n in enumerate(step.inputs) if n in fixed}
        out[step.index] = here if step.index not in out else out[step.index] & here   # stable in every run
        if binary.programs[step.index].private:
            fixed.update(step.outputs)
    return out


class Executor:
    def __init__(self, binary: bm.Binary, mesh=None):
        """`mesh`: the mesh this runtime has (a system name or shape); a binary compiled for another
        one is refused. None: the binary's own mesh (the emulator builds whatever it asks for)."""
        self.binary = binary
        shared: dict = {}
        if binary.mesh or mesh is not None:
            check_runtime_mesh(binary, mesh)
        if binary.mesh and binary.mesh["shape"] != [1, 1]:
            self.programs = [MeshProgram(p, binary.compute_config, binary.mesh["shape"], shared)
                             for p in binary.programs]
        else:
            stable = _stable_inputs(binary)
            self.programs = [DeviceProgram(p, binary.compute_config, shared, stable.get(i, ()))
                             for i, p in enumerate(binary.programs)]
        self.cpu = [CpuSegment(s) for s in binary.cpu_segments]
        self.constants = {k: to_torch(v, f"plan constant '{k}'") for k, v in binary.constants.items()}
        self._cached: dict[str, torch.Tensor] = {}     # results of private (const-eval) programs
        self.profiler = None    # a forge_fe.device.profile.Profiler to time every op into, or None

    def run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        env = self.run_env(inputs)
        return [env[n] for n in self.binary.outputs]

    def run_env(self, inputs: list[torch.Tensor], overrides: dict | None = None) -> dict:
        """Run the plan; returns every plan value. `overrides` replace plan constants (the current
        parameters of a model being trained)."""
        env = dict(self.constants)
        env.update(overrides or {})
        env.update(self._cached)
        for desc, x in zip(self.binary.inputs, inputs):
            env[desc.name] = x
        return self.run_steps(self.binary.plan, env)

    def _run_device(self, prog, inputs):
        """A device program, timed op by op while a profiler is attached (a program type with
        its own run, e.g. a mesh program, is timed as one row)."""
        if self.profiler is None:
            return prog.run(inputs)
        if type(prog).run is DeviceProgram.run:
            return prog.run(inputs, self.profiler)
        t0 = perf_counter()
        outs = prog.run(inputs)
        self.profiler.record("device", f"program {type(prog).__name__}", prog.prog.name, perf_counter() - t0)
        return outs

    def run_steps(self, steps, env: dict) -> dict:
        """Run these plan steps over `env` (plan value name -> tensor), adding their outputs to it."""
        for step in steps:
            if step.kind == "device":
                prog = self.programs[step.index]
                if prog.prog.private and all(o in self._cached for o in step.outputs):
                    env.update((o, self._cached[o]) for o in step.outputs)
                    continue
                outs = self._run_device(prog, [env[n] for n in step.inputs])
                if prog.prog.private:
                    self._cached.update(zip(step.outputs, outs))
            else:
                t0 = perf_counter()
                seg = self.cpu[step.index]
                outs = seg.run([env[n] for n in step.inputs])
                if self.profiler is not None:
                    self.profiler.record("cpu", "tvm segment", seg.seg.name, perf_counter() - t0)
            env.update(zip(step.outputs, outs))
        return env
