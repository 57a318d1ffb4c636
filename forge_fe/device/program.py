"""One device program on the emulated device: its ops bound to kernels once, run in order.

Tensor conversions at the device boundary (dtype names, numpy <-> torch) live here too, since
every runner of device programs (the executor, the mesh runtime) needs them.
"""
from __future__ import annotations

from time import perf_counter
from typing import NamedTuple

import numpy as np
import torch

from forge_fe.binary import model as bm
from forge_fe.config import DataFormat, MathFidelity
from forge_fe.device import numerics, parallel
from forge_fe.device.kernels import (FACTORIES, FIDELITY_OPS, FUSIONS, IN_PLACE_OPS, KERNELS, PACKER_ACTIVATIONS,
                                     STABLE_WEIGHT_FACTORIES, make_fidelity_kernel)
from forge_fe.errors import RuntimeFailure


TORCH_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int32": torch.int32,
               "int64": torch.int64, "bool": torch.bool, "float16": torch.float16, "float64": torch.float64,
               "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
               "uint16": torch.uint16, "uint32": torch.uint32, "uint64": torch.uint64}


def torch_dtype(name: str, where: str) -> torch.dtype:
    dtype = TORCH_DTYPE.get(name)
    if dtype is None:
        raise RuntimeFailure(f"{where}: dtype {name} is not supported by the forge_fe runtime",
                             f"supported: {', '.join(sorted(TORCH_DTYPE))}")
    return dtype


def to_torch(x, what: str = "value") -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    a = np.asarray(x)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    if not a.flags.writeable:
        a = a.copy()
    try:
        return torch.from_numpy(np.asarray(a, order="C"))
    except TypeError as exc:   # ml_dtypes float8 / int4 ... have no torch counterpart
        raise RuntimeFailure(f"{what} has dtype {a.dtype.name}, which the forge_fe runtime cannot carry",
                             f"supported: {', '.join(sorted(TORCH_DTYPE))}") from exc


def to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:   # numpy has no bfloat16; ml_dtypes does
        import ml_dtypes
        return t.detach().contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.detach().numpy()


class KernelStep(NamedTuple):
    """One executable step: kernel, operand slots, result slot, and what to do with the result."""
    fn: object
    inputs: list
    out: int
    attrs: dict
    dtype: torch.dtype
    fmt: object          # DataFormat to quantize the result to, or None
    free: list           # slots whose last reader this is
    op: bm.Op


# Ops whose results are elements of their inputs (moved, selected or compared, never computed):
# when every float operand already holds bfloat16 values, so does the result, and rounding it again
# would be an identity pass over memory. Block float is excluded: moving values regroups its blocks.
VALUE_PRESERVING = {"ttir.reshape", "ttir.permute", "ttir.transpose", "ttir.slice_static", "ttir.broadcast",
                    "ttir.repeat", "ttir.concat", "ttir.embedding", "ttir.relu", "ttir.neg", "ttir.abs",
                    "ttir.maximum", "ttir.minimum", "ttir.max", "ttir.min", "ttir.where", "ttir.max_pool2d"}


def _format(desc: bm.TensorDesc):
    """The data format a tensor must be quantized to on the device, or None if nothing to do."""
    if desc.data_format in ("", "Float32") or desc.dtype not in ("float32", "bfloat16"):
        return None
    return DataFormat[desc.data_format]


class DeviceProgram:
    """A device program prepared for repeated execution.

    Numerics: floating-point tensors are held as float32 that carry exactly the values
    their data format can represent (each op's result is quantized to its tensor's
    format); matmul/linear/conv on low-precision operands below HiFi4, or without fp32
    accumulation, run through forge_fe.device.numerics' fidelity emulation."""

    mesh_kernels: dict = {}      # ops that act on every chip's values at once (forge_fe.device.mesh_runtime)

    def __init__(self, prog: bm.Program, compute: dict | None = None, shared: dict | None = None,
                 stable_inputs=()):
        """`stable_inputs`: positions of inputs that are the same tensor every call (const-eval
        results, plan constants): kernels may prepare them once (STABLE_WEIGHT_FACTORIES)."""
        self.prog = prog
        self._stable = set(prog.constants) | {prog.inputs[i] for i in stable_inputs}
        compute = compute or {}
        self.fidelity = MathFidelity[compute.get("math_fidelity", "HiFi4")]
        self.fp32_acc = bool(compute.get("fp32_dest_acc_en", True))
        missing = sorted({op.name for op in prog.ops if op.name not in KERNELS and op.name not in self.mesh_kernels})
        if missing:
            raise RuntimeFailure(f"program '{prog.name}' uses ops the emulated device does not implement: "
                                 f"{', '.join(missing)}", "the binary was made by a newer forge_fe; recompile")
        self.dtypes = [torch.float32 if t.dtype in ("float32", "bfloat16") else
                       torch_dtype(t.dtype, f"program '{prog.name}' tensor '{t.name}'") for t in prog.tensors]
        self.formats = [_format(t) for t in prog.tensors]
        self._stored_inputs: dict = {}
        self._returned: dict = {}       # id of each output of the last call -> its version then
        self.slots: list = [None] * len(prog.tensors)
        # Programs of one binary may hold the same array (an LM's prefill and decode weights):
        # `shared` converts each array once per dtype and format.
        shared = {} if shared is None else shared
        for idx, value in prog.constants.items():
            key = (id(value), self.dtypes[idx], self.formats[idx])
            if key not in shared:
                shared[key] = (value, self._store(to_torch(value), idx))   # value kept: its id stays unique
            self.slots[idx] = shared[key][1]
        ops = self._fuse(prog.ops)
        # Free each intermediate after its last reader so peak memory stays at the live set.
        last_use = {}
        for i, (op, _) in enumerate(ops):
            for t in op.inputs:
                last_use[t] = i
        keep = set(prog.outputs) | set(prog.constants)
        #: input positions whose tensors the caller hands over: in-place ops may write them (see donate)
        self.donated: set[int] = set()
        self.steps = []
        for i, (op, fn) in enumerate(ops):
            free = [t for t in op.inputs if last_use.get(t) == i and t not in keep]
            out, fmt = op.outputs[0], self.formats[op.outputs[0]]
            if self._already_representable(op):
                fmt = None
            if op.name in IN_PLACE_OPS:
                fn = self._in_place(op, fn, free)
                if self.formats[op.inputs[0]] == self.formats[op.inputs[1]] == fmt:
                    fmt = None          # cache and rows already hold values of the result's format
            self.steps.append(KernelStep(fn, op.inputs, out, op.attrs, self.dtypes[out], fmt, free, op))

    def _already_representable(self, op) -> bool:
        """Are this op's results bfloat16 values without rounding (VALUE_PRESERVING on bf16 operands)?"""
        bf16 = DataFormat.Float16_b
        if op.name not in VALUE_PRESERVING or self.formats[op.outputs[0]] is not bf16:
            return False
        floats = [t for t in op.inputs if self.dtypes[t] == torch.float32]
        return bool(floats) and all(self.formats[t] is bf16 for t in floats)

    def donate(self, positions):
        """Let in-place ops (cache writes) update these program inputs instead of a copy: the caller
        keeps the outputs and no longer reads the inputs (a KV cache carried across decode steps)."""
        self.donated = set(positions)

    def _in_place(self, op, fn, free):
        """An in-place kernel writes its operand 0 only if nothing reads that tensor afterwards."""
        t = op.inputs[0]
        if t not in free:
            return lambda ins, a: fn([ins[0].clone()] + ins[1:], a)
        if t not in self.prog.inputs:
            return fn
        pos = self.prog.inputs.index(t)
        return lambda ins, a: fn(ins if pos in self.donated else [ins[0].clone()] + ins[1:], a)

    def _store(self, x: torch.Tensor, idx: int) -> torch.Tensor:
        if x.dtype == torch.int64 and self.dtypes[idx] == torch.int32:
            self._check_int32_range(x, idx)
        x = x if x.dtype == self.dtypes[idx] else x.to(self.dtypes[idx])
        fmt = self.formats[idx]
        return numerics.quantize(x, fmt) if fmt is not None else x

    def _check_int32_range(self, x: torch.Tensor, idx: int):
        """The device computes int64 as int32 (DESIGN.md); a value that does not fit is refused
        rather than wrapped into a silently wrong result."""
        if x.numel() == 0:
            return
        lo, hi = int(x.min()), int(x.max())
        if lo < -2 ** 31 or hi >= 2 ** 31:
            readers = [f"{op.name} at {op.loc}" for op in self.prog.ops if idx in op.inputs][:2]
            raise RuntimeFailure(
                f"program '{self.prog.name}' input '{self.prog.tensors[idx].name}' (read by "
                f"{', '.join(readers) or 'no op'}) holds the int64 value "
                f"{lo if lo < -2 ** 31 else hi}, outside the device's int32 range (the device computes int64 "
                "as int32)", "pass values in [-2^31, 2^31), or keep the ops that read it on the CPU with "
                "CompilerConfig(cpu_fallback_ops=...)")

    def _low_precision(self, op) -> bool:
        """Does this op's math depend on fidelity/accumulation (reduced-precision operands)?"""
        if op.name not in FIDELITY_OPS or (self.fidelity == MathFidelity.HiFi4 and self.fp32_acc):
            return False
        return any(self.formats[t] is not None for t in op.inputs[:2])

    def _fuse(self, ops):
        """Pair each op with its kernel, replacing chains listed in FUSIONS by one fused op.

        A chain is op -> its output's sole reader -> ...; the fused op runs at the position
        of the chain's last op, when every input of every member is available. A member must
        keep the shape of what it continues: the kernels apply it as an elementwise epilogue,
        so an add that broadcasts the producer's result up (a [1,1,1,C] context added to a
        [1,H,W,C] map) is not fused."""
        readers = {}
        for op in ops:
            for t in op.inputs:
                readers[t] = readers.get(t, []) + [op]
        outputs = set(self.prog.outputs)
        longest = max((len(k) for k in FUSIONS), default=0)
        fused_at, member = {}, set()
        for op in ops:
            if id(op) in member:
                continue
            chain = [op]
            while len(chain) < longest:
                out = chain[-1].outputs[0]
                nxt = readers.get(out, [])
                if len(nxt) != 1 or out in outputs or nxt[0].inputs.count(out) != 1 or id(nxt[0]) in member:
                    break   # a member of an earlier chain (e.g. the other conv into a residual add) is taken
                if self.prog.tensors[nxt[0].outputs[0]].shape != self.prog.tensors[out].shape:
                    break
                if self.formats[out] is not None and nxt[0].name not in PACKER_ACTIVATIONS:
                    break   # the device rounds `out` before its reader sees it: fusing would skip that
                chain.append(nxt[0])
            if self._low_precision(op) or (op.name in STABLE_WEIGHT_FACTORIES and not self._stable_weight(op)):
                chain = [op]      # fidelity emulation runs op by op; a product's epilogue needs its weight stable
            while len(chain) > 1 and tuple(o.name for o in chain) not in FUSIONS:
                chain.pop()
            if len(chain) > 1:
                extra = [t for o in chain[1:] for t in o.inputs if t != chain[chain.index(o) - 1].outputs[0]]
                fused = bm.Op("+".join(o.name for o in chain), op.inputs + extra, chain[-1].outputs, op.attrs, op.loc)
                fused_at[id(chain[-1])] = (fused, FUSIONS[tuple(o.name for o in chain)](*chain))
                member.update(id(o) for o in chain)
        result = []
        for op in ops:
            if id(op) in fused_at:
                result.append(fused_at[id(op)])
            elif id(op) not in member:
                result.append((op, self._kernel(op)))
        return result

    def run(self, inputs: list[torch.Tensor], profiler=None) -> list[torch.Tensor]:
        slots = self._bind(inputs)
        with parallel.intra_op():      # large ops split over the device's pool, torch on one thread
            for step in self.steps:
                self._exec(step, slots, profiler)
                for t in step.free:
                    slots[t] = None
        outs = [slots[i] for i in self.prog.outputs]
        # An output that is a stored input written in place (a donated KV cache) comes back next call.
        self._returned = {id(t): t._version for t in outs}
        return outs

    def _bind(self, inputs: list[torch.Tensor]) -> list:
        """The slots with constants and `inputs` stored in their formats."""
        slots = list(self.slots)
        for idx, x in zip(self.prog.inputs, inputs):
            # Const-eval results arrive as the same tensor every call: quantize them once.
            seen = self._stored_inputs.get(idx)
            if seen is not None and seen[0] is x and seen[2] == x._version:   # unchanged since last call
                slots[idx] = seen[1]
            elif seen is not None and seen[1] is x and self._returned.get(id(x)) == x._version:
                slots[idx] = x          # what this slot held, returned by the last call, untouched since
            else:
                slots[idx] = self._store(x, idx)
                self._stored_inputs[idx] = (x, slots[idx], x._version)
        return slots

    def _exec(self, step: KernelStep, slots: list, profiler=None):
        fn, ins, out, attrs, dtype, fmt, free, op = step
        t0 = perf_counter() if profiler is not None else 0.0
        try:
            y = fn([slots[i] for i in ins], attrs)
        except Exception as exc:
            raise RuntimeFailure(f"device op {op.name} at {op.loc or '?'} in program '{self.prog.name}' "
                                 f"failed: {exc}") from exc
        if y.dtype != dtype:
            y = y.to(dtype)
        if profiler is not None:
            t1 = perf_counter()
            profiler.record("device", op.name, op.loc, t1 - t0)
        slots[out] = numerics.quantize(y, fmt) if fmt is not None else y
        if profiler is not None and fmt is not None:
            profiler.record("device", f"quantize to {fmt.name}", op.loc, perf_counter() - t1)

    def _stable_weight(self, op) -> bool:
        return len(op.inputs) > 1 and op.inputs[1] in self._stable

    def _kernel(self, op):
        if op.name in self.mesh_kernels:
            return self.mesh_kernels[op.name]
        if self._low_precision(op):
            return make_fidelity_kernel(op.name, self.fidelity, self.fp32_acc)
        if op.name in STABLE_WEIGHT_FACTORIES and self._stable_weight(op):
            return STABLE_WEIGHT_FACTORIES[op.name]()
        return FACTORIES[op.name]() if op.name in FACTORIES else KERNELS[op.name]
