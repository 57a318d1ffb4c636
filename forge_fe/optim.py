"""Optimizers whose update runs as a compiled device program (the binary's optimizer program).

    opt = forge_fe.optim.Adam(learning_rate=1e-3)
    cm = forge_fe.compile(model, [x], training=True, optimizer=opt)
    loss_fn(cm(x), y).backward()     # gradients land in cm.parameters()' .grad
    opt.step()                       # runs the optimizer program on the emulated device
    opt.zero_grad()

Each optimizer builds its update as a Forge graph at compile time (`build_graph`), one
subgraph per parameter: inputs are the parameter, its gradient, its state tensors and a few
per-step scalars the host computes (learning rate, bias corrections); outputs are the new
parameter and state. The math follows torch.optim's single-tensor implementations, with
torch's argument names (momentum, dampening, nesterov, betas, eps, weight_decay). Parameters
and optimizer state are kept in float32 (master weights), whatever the device data format.
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch

from forge_fe.errors import ForgeError
from forge_fe.graph.graph import Graph, Node


class Optimizer:
    STATE: tuple[str, ...] = ()          # state tensors per parameter (zeros at the start)
    SCALARS: tuple[str, ...] = ()        # per-step host scalars, inputs of the program

    def __init__(self, learning_rate: float | None = None, lr: float | None = None):
        rate = learning_rate if learning_rate is not None else lr
        if rate is None or not rate > 0:
            raise ForgeError("optimizer", f"{type(self).__name__} needs a positive learning_rate, got {rate}",
                             f"e.g. forge_fe.optim.{type(self).__name__}(learning_rate=0.01)")
        self.learning_rate = float(rate)
        self.step_count = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self._model = None

    # ---- compile time ----
    def config(self) -> dict:
        return {"type": type(self).__name__, **{k: v for k, v in vars(self).items()
                                                 if not k.startswith("_") and k not in ("state", "step_count")}}

    def build_graph(self, params: list[tuple[str, tuple, str]], name: str = "optimizer") -> Graph:
        """The optimizer program's graph. Inputs/outputs carry meta["plan_name"]:
        param:<name>, grad:<name>, state:<name>:<state>, scalar:<scalar>."""
        g = Graph(name)
        scalars = {}
        for s in self.SCALARS:
            scalars[s] = g.add_input(f"scalar.{s}", (), "float32")
            scalars[s].meta["plan_name"] = f"scalar:{s}"
        outputs = []
        for pname, shape, dtype in params:
            p = g.add_input(f"{pname}", shape, "float32")
            p.meta["plan_name"] = f"param:{pname}"
            grad = g.add_input(f"{pname}.grad", shape, "float32")
            grad.meta["plan_name"] = f"grad:{pname}"
            state = {}
            for s in self.STATE:
                state[s] = g.add_input(f"{pname}.{s}", shape, "float32")
                state[s].meta["plan_name"] = f"state:{pname}:{s}"
            new_p, new_state = self.update(_Builder(g, pname), p, grad, state, scalars)
            new_p.meta = dict(new_p.meta, plan_name=f"param:{pname}")
            outputs.append(new_p)
            for s in self.STATE:
                new_state[s].meta = dict(new_state[s].meta, plan_name=f"state:{pname}:{s}")
                outputs.append(new_state[s])
        g.outputs = outputs
        return g

    def update(self, b: "_Builder", p: Node, g: Node, state: dict, scalars: dict):
        raise NotImplementedError

    def scalars(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    # ---- run time ----
    def attach(self, model):
        """Make this optimizer update `model`'s parameters (compile does it; call it yourself for a model
        loaded with forge_fe.load). The binary's optimizer program must be this optimizer's."""
        compiled = (model._trainer.meta.get("optimizer_config") if model._trainer is not None else None)
        mine = {k: v for k, v in json.loads(json.dumps(self.config())).items() if k != "learning_rate"}
        if compiled is None or {k: v for k, v in compiled.items() if k != "learning_rate"} != mine:
            raise ForgeError("optimizer", f"the model's binary has no optimizer program for {mine}"
                             + (f" (it has one for {compiled})" if compiled else ""),
                             "compile with forge_fe.compile(..., training=True, optimizer=<this optimizer>)")
        self._model = model
        self.state = {n: {s: torch.zeros_like(p, dtype=torch.float32) for s in self.STATE}
                      for n, p in model.named_parameters()}

    def zero_grad(self, set_to_none: bool = True):
        if self._model is not None:
            for p in self._model.parameters():
                p.grad = None if set_to_none else (torch.zeros_like(p) if p.grad is not None else None)

    def step(self):
        """One update of every parameter that has a gradient, by the compiled optimizer program."""
        if self._model is None:
            raise ForgeError("optimizer", f"this {type(self).__name__} is not attached to a compiled model",
                             "pass it to forge_fe.compile(model, inputs, training=True, optimizer=opt)")
        self.step_count += 1
        self._model._trainer.optimizer_step(self, self.scalars(self.step_count))


class _Builder:
    """Adds the update's ops for one parameter (names prefixed by the parameter's name)."""

    def __init__(self, graph: Graph, prefix: str):
        from forge_fe.op import OPS
        self.g, self.prefix, self.ops = graph, prefix, OPS

    def _op(self, name, *xs):
        ins = [x if isinstance(x, Node) else self.g.add_const(f"{self.prefix}.c", np.array(x, np.float32)) for x in xs]
        return self.g.add_op(self.ops[name], f"{self.prefix}.{name}", ins, {})

    def add(self, a, b): return self._op("add", a, b)
    def sub(self, a, b): return self._op("subtract", a, b)
    def mul(self, a, b): return self._op("multiply", a, b)
    def div(self, a, b): return self._op("divide", a, b)
    def sqrt(self, a): return self._op("sqrt", a)


class SGD(Optimizer):
    """torch.optim.SGD: g += wd p; buf = momentum buf + (1 - dampening) g (buf = g at step 1);
    g = g + momentum buf if nesterov else buf; p -= lr g."""
    SCALARS = ("lr", "grad_scale")

    def __init__(self, learning_rate: float | None = None, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, lr: float | None = None):
        super().__init__(learning_rate, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ForgeError("optimizer", "Nesterov momentum requires a momentum and zero dampening",
                             "as torch.optim.SGD")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)
        self.STATE = ("momentum_buffer",) if self.momentum else ()

    def update(self, b, p, g, state, s):
        if self.weight_decay:
            g = b.add(g, b.mul(p, self.weight_decay))
        new_state = {}
        if self.momentum:
            buf = b.add(b.mul(state["momentum_buffer"], self.momentum), b.mul(g, s["grad_scale"]))
            new_state["momentum_buffer"] = buf
            g = b.add(g, b.mul(buf, self.momentum)) if self.nesterov else buf
        return b.sub(p, b.mul(g, s["lr"])), new_state

    def scalars(self, step):
        # the zero-initialized buffer times momentum plus g is torch's buf = g at the first step
        return {"lr": self.learning_rate, "grad_scale": 1.0 if step == 1 else 1.0 - self.dampening}


class Adam(Optimizer):
    """torch.optim.Adam: g += wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    STATE = ("exp_avg", "exp_avg_sq")
    SCALARS = ("step_size", "inv_sqrt_bc2")
    decoupled = False

    def __init__(self, learning_rate: float | None = None, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, lr: float | None = None):
        super().__init__(learning_rate, lr)
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)
        if self.decoupled:
            self.SCALARS = Adam.SCALARS + ("decay",)

    def update(self, b, p, g, state, s):
        b1, b2 = self.betas
        if self.weight_decay and not self.decoupled:
            g = b.add(g, b.mul(p, self.weight_decay))
        if self.decoupled:          # AdamW: p *= 1 - lr wd, before the Adam step
            p = b.mul(p, s["decay"])
        m = b.add(b.mul(state["exp_avg"], b1), b.mul(g, 1 - b1))
        v = b.add(b.mul(state["exp_avg_sq"], b2), b.mul(b.mul(g, g), 1 - b2))
        denom = b.add(b.mul(b.sqrt(v), s["inv_sqrt_bc2"]), self.eps)
        return b.sub(p, b.mul(b.div(m, denom), s["step_size"])), {"exp_avg": m, "exp_avg_sq": v}

    def scalars(self, step):
        b1, b2 = self.betas
        out = {"step_size": self.learning_rate / (1 - b1 ** step), "inv_sqrt_bc2": 1 / math.sqrt(1 - b2 ** step)}
        if self.decoupled:
            out["decay"] = 1 - self.learning_rate * self.weight_decay
        return out


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay (p *= 1 - lr wd); default wd 1e-2."""
    decoupled = True

    def __init__(self, learning_rate: float | None = None, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, lr: float | None = None):
        super().__init__(learning_rate, betas, eps, weight_decay, lr)
