"""Training at run time: the binary's forward/backward/optimizer programs behind torch autograd.

`CompiledModel` (training binaries) owns a `Trainer`. Calling the model applies
`DeviceFunction`, a torch.autograd.Function: its forward runs the plan (const-eval
once, then the forward program, which also returns the intermediates backward needs)
with the current parameters; its backward runs the backward program on those
intermediates and the output gradients, and returns the parameter gradients, which
torch accumulates into `.grad` of the model's parameter tensors. `Optimizer.step()`
runs the optimizer program on parameters, gradients and optimizer state and writes
the results back in place.

Value names follow the binary's training metadata (binary_builder._add_training_program):
`param:<name>`, `grad:<name>`, `<output>.grad`, `<unit>.saved.<node>`, `state:<name>:<state>`,
`scalar:<scalar>`.
"""
from __future__ import annotations

import torch

from forge_fe.errors import ForgeError, RuntimeFailure


class DeviceFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, trainer, num_inputs, *args):
        inputs, params = list(args[:num_inputs]), list(args[num_inputs:])
        outs, saved = trainer.forward(inputs, params)
        ctx.trainer, ctx.num_inputs, ctx.saved = trainer, num_inputs, saved
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grad_outputs):
        # ctx (and the saved intermediates) lives as long as torch's graph: retain_graph=True works
        input_grads, param_grads = ctx.trainer.backward(ctx.saved, grad_outputs)
        return (None, None) + tuple(input_grads) + tuple(param_grads)


class Trainer:
    def __init__(self, model, meta: dict):
        self.model = model
        self.meta = meta
        self.params = {p["name"]: torch.nn.Parameter(model.executor.constants[p["plan"]].clone().float())
                       for p in meta["params"]}

    # ---- programs ----
    def _run(self, role: str, env: dict) -> dict:
        step = self.meta[role]
        prog = self.model.executor.programs[step["program"]]
        missing = [n for n in step["inputs"] if n not in env]
        if missing:
            raise RuntimeFailure(f"the {role} program needs values nobody supplied: {', '.join(missing[:5])}",
                                 "this binary's training metadata is inconsistent; recompile")
        outs = prog.run([env[n] for n in step["inputs"]])
        return dict(zip(step["outputs"], outs))

    def check_inputs(self, inputs):
        """Refuse inputs that want a gradient the backward program does not compute (never a silent zero)."""
        for x, desc in zip(inputs, self.model.binary.inputs):
            if x.requires_grad and desc.name in self.meta.get("no_input_grad", []):
                raise RuntimeFailure(f"input '{desc.name}' requires a gradient, but an op between it and the "
                                     "outputs has no backward rule, so the compiled backward does not compute it",
                                     "detach the input (x.detach()) or avoid that op before the first parameter")

    def forward(self, inputs, params):
        overrides = {f"param:{n}": p.detach() for n, p in zip(self.params, params)}
        env = self.model.executor.run_env(inputs, overrides)
        outs = [env[n] for n in self.model.binary.outputs]
        needed = set(self.meta["backward"]["inputs"])
        # an output the backward reads is kept as a copy: the caller may modify the one it gets in place
        saved = {n: v.clone() if n in self.model.binary.outputs else v for n, v in env.items() if n in needed}
        return outs, saved

    def backward(self, saved: dict, grad_outputs) -> list:
        env = dict(saved)
        for name, g in zip(self.meta["grad_outputs"], grad_outputs):
            if name is not None:
                env[name] = torch.zeros(()) if g is None else g.detach().float().contiguous()
        grads = self._run("backward", env)
        return ([grads.get(f"{d.name}.input_grad") for d in self.model.binary.inputs],
                [grads.get(f"grad:{n}") for n in self.params])

    def optimizer_step(self, optimizer, scalars: dict):
        if "optimizer" not in self.meta:
            raise ForgeError("optimizer", "this model was compiled without an optimizer program",
                             "pass optimizer=... to forge_fe.compile(..., training=True), or use a torch.optim "
                             "optimizer on cm.parameters()")
        env = {f"scalar:{k}": torch.tensor(v, dtype=torch.float32) for k, v in scalars.items()}
        names = [n.split(":", 1)[1] for n in self.meta["optimizer"]["inputs"] if n.startswith("param:")]
        with_grad = [n for n in names if self.params[n].grad is not None]
        if not with_grad:
            return                          # nothing to do, as torch.optim skips parameters without .grad
        if len(with_grad) != len(names):
            missing = sorted(set(names) - set(with_grad))
            raise RuntimeFailure(f"parameters without a gradient: {', '.join(missing[:5])}",
                                 "run loss.backward() through the compiled model before opt.step()")
        for n in names:
            p = self.params[n]
            env[f"param:{n}"] = p.detach()
            env[f"grad:{n}"] = p.grad.detach().float()
            for s, t in optimizer.state[n].items():
                env[f"state:{n}:{s}"] = t
        new = self._run("optimizer", env)
        with torch.no_grad():
            for n in names:
                self.params[n].copy_(new[f"param:{n}"])
                for s in optimizer.state[n]:
                    optimizer.state[n][s] = new[f"state:{n}:{s}"].clone()
