"""`compile` and CompiledModel: what `forge_fe.compile` returns and `forge_fe.load` restores.

It owns a Binary and an Executor; calling it checks the inputs against the
compiled input descriptors, runs the binary, and rebuilds the framework's
output structure (torch in -> torch out, numpy otherwise).
"""
from __future__ import annotations

import numpy as np
import torch

from forge_fe import binary as binio
from forge_fe.frontend import structure
from forge_fe.binary import model as bm
from forge_fe.config import CompilerConfig
from forge_fe.errors import CompileStopped, InputError
from forge_fe.compiler.report import CompileReport
from forge_fe.device.executor import TORCH_DTYPE, Executor, to_numpy, to_torch


def _dtype_name(x) -> str:
    if isinstance(x, torch.Tensor):
        return str(x.dtype).replace("torch.", "")
    return str(np.asarray(x).dtype)


class CompiledModel:
    def __init__(self, binary: bm.Binary | None, report: CompileReport, context=None, mesh=None):
        self.binary = binary
        self.report = report
        self.mesh = mesh                # the runtime's mesh (forge_fe.load(..., mesh=)); None: the binary's own
        self.context = context          # the CompileContext (artifacts of every stage); None when loaded
        self._executor = None
        meta = structure.loads(binary.output_structure) if binary else {}
        self._tree = meta.get("tree")
        #: tree of structured inputs (a dict for a keras-hub model), None when inputs are positional tensors;
        #: binary.inputs lists the leaves in this tree's order
        self.inputs_tree = meta.get("inputs_tree")
        self._out_dtypes = meta.get("dtypes", [])
        self.torch_io = meta.get("torch_io", False)
        self._trainer = None            # training binaries: forge_fe.device.training.Trainer
        if meta.get("training"):
            from forge_fe.device.training import Trainer
            self._trainer = Trainer(self, meta["training"])
            optimizer = getattr(context, "optimizer", None)
            if optimizer is not None:
                optimizer.attach(self)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = Executor(self.binary, mesh=self.mesh)
        return self._executor

    @property
    def ttir(self) -> str:
        return self.binary.debug.get("ttir.mlir", "") if self.binary else ""

    def _check_inputs(self, inputs) -> list[torch.Tensor]:
        descs = self.binary.inputs
        if self.inputs_tree is not None:
            try:
                inputs = structure.flatten_like(self.inputs_tree, inputs)
            except ValueError as exc:
                raise InputError(f"model '{self.binary.model_name}': {exc}",
                                 "pass inputs with the structure of the sample inputs") from None
        if len(inputs) != len(descs):
            raise InputError(f"model '{self.binary.model_name}' takes {len(descs)} inputs "
                             f"({', '.join(d.name for d in descs)}), got {len(inputs)}",
                             "pass the inputs positionally, in the order of the sample inputs")
        out = []
        for i, (x, d) in enumerate(zip(inputs, descs)):
            if not isinstance(x, (torch.Tensor, np.ndarray)):
                x = np.asarray(x)
            shape = tuple(x.shape)
            if shape != tuple(d.shape):
                raise InputError(f"input {i} ('{d.name}') has shape {list(shape)}, the model was compiled for "
                                 f"{list(d.shape)}", "recompile with sample inputs of the new shape")
            if _dtype_name(x) != d.dtype:
                raise InputError(f"input {i} ('{d.name}') has dtype {_dtype_name(x)}, the model was compiled for "
                                 f"{d.dtype}", f"convert it, e.g. x.astype('{d.dtype}') / x.to(torch.{d.dtype})")
            out.append(to_torch(x, f"input {i} ('{d.name}')"))
        return out

    def __call__(self, *inputs):
        if self.binary is None:
            raise CompileStopped("runtime", f"compilation stopped after stage '{self.report.stopped_after}'; "
                                 "there is no binary to run", "compile with CompileDepth.FULL to run the model")
        if self._trainer is not None and torch.is_grad_enabled():
            from forge_fe.device.training import DeviceFunction
            ins = self._check_inputs(inputs)
            self._trainer.check_inputs(ins)
            outs = DeviceFunction.apply(self._trainer, len(ins), *ins, *self._trainer.params.values())
        elif self._trainer is not None:
            outs = self._trainer.forward(self._check_inputs(inputs), list(self._trainer.params.values()))[0]
        else:
            with torch.no_grad():
                outs = self.executor.run(self._check_inputs(inputs))
        fixed = []
        for i, o in enumerate(outs):
            want = self._out_dtypes[i] if i < len(self._out_dtypes) else None
            if want and TORCH_DTYPE.get(want) is not None and o.dtype != TORCH_DTYPE[want]:
                o = o.to(TORCH_DTYPE[want])
            fixed.append(o if self.torch_io else to_numpy(o))
        if self._tree:
            return structure.unflatten(self._tree, fixed)
        return fixed[0] if len(fixed) == 1 else tuple(fixed)

    # ---- training (models compiled with training=True) ----
    def _training(self, what: str):
        if self._trainer is None:
            raise CompileStopped("runtime", f"{what} needs a model compiled with training=True",
                                 "forge_fe.compile(model, inputs, training=True, optimizer=...)")
        return self._trainer

    def named_parameters(self):
        """(torch name, tensor) of every trained parameter; gradients land in their `.grad`."""
        return iter(self._training("named_parameters()").params.items())

    def parameters(self):
        return iter(self._training("parameters()").params.values())

    def state_dict(self) -> dict:
        """The current parameters under the torch model's names (copies)."""
        return {n: p.detach().clone() for n, p in self._training("state_dict()").params.items()}

    def load_state_dict(self, state: dict, strict: bool = True):
        """Set parameters from `state` (torch names -> tensors or arrays)."""
        params = self._training("load_state_dict()").params
        unexpected = sorted(set(state) - set(params))
        missing = sorted(set(params) - set(state))
        if strict and (unexpected or missing):
            raise InputError(f"load_state_dict: missing parameters {missing[:5]}, unexpected keys {unexpected[:5]}",
                             "pass strict=False to load a subset or to skip extra keys (e.g. batch-norm buffers)")
        for n in params:
            if n not in state:
                continue
            value = to_torch(state[n], f"state_dict entry '{n}'")
            if tuple(value.shape) != tuple(params[n].shape):
                raise InputError(f"load_state_dict: '{n}' has shape {list(value.shape)}, the model's parameter "
                                 f"has {list(params[n].shape)}", "load weights of the compiled model's architecture")
            with torch.no_grad():
                params[n].copy_(value.to(params[n].dtype))

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def save(self, path: str):
        if self.binary is None:
            raise CompileStopped("binary", "compilation stopped early; there is no binary to save")
        binio.write(self.binary, path)

    def __repr__(self):
        return f"<CompiledModel {self.report.model_name}: {self.report.summary()}>"


def model_from_binary(b, mesh=None) -> CompiledModel:
    """A CompiledModel over a Binary read from a file (its report rebuilt from the debug sections)."""
    import json
    placement = json.loads(b.debug.get("placement.json", "[]"))
    perf = json.loads(b.debug.get("perf.json", "{}"))
    report = CompileReport(b.model_name, "binary", placement=placement, perf=perf,
                           numerics_notes=json.loads(b.debug.get("numerics_notes.json", "[]")),
                           segments=[f"{s.kind}:{(b.programs if s.kind == 'device' else b.cpu_segments)[s.index].name}"
                                     for s in b.plan], mesh=json.loads(b.debug.get("mesh.json", "{}")))
    return CompiledModel(b, report, mesh=mesh)


def compile(model, sample_inputs, module_name=None, compiler_cfg: CompilerConfig | None = None,
            training: bool = False, optimizer=None, progress=None) -> CompiledModel:
    """Compile `model` for the emulated device, using `sample_inputs` for shapes and dtypes.

    Returns a CompiledModel; with a `compile_depth` short of FULL, it holds the
    artifacts up to that stage and refuses to run."""
    import json

    from forge_fe.compiler.pipeline import CompileContext, run_pipeline
    from forge_fe.compiler.report import placement_rows

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
