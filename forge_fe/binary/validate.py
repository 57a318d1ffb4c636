"""Structural checks of a decoded Binary, run by the reader after the envelope checks.

The checksum catches corruption of the bytes. These checks catch a file that is well formed
but does not hang together (written by a broken tool, or programs exchanged between files
and re-checksummed), before the runtime indexes out of range or runs a program on operands
of the wrong shape:

* every plan step names an existing program / CPU segment and passes it as many values as it
  takes and returns; every value a step reads is a model input, a plan constant or an
  earlier step's output; every model output is one of those;
* a value's shape where it is made (model input, constant, program output) equals its shape
  where it is read (program or CPU segment input), dims decided at run time (-1) aside;
* inside a device program, tensor indices are in range, each op reads tensors that are
  inputs, constants or outputs of earlier ops, and constants have their descriptor's size;
* names the runtime looks up are known: tensor dtypes and data formats, the math fidelity;
* the output structure is a tree of known node kinds with one leaf per model output, and every
  ``*.json`` debug entry is JSON (the loader reads the placement and performance reports).
"""
from __future__ import annotations

import json

import numpy as np

from forge_fe.errors import BinaryFormatError

from .model import DTYPES, Binary, Program


def _shape_agrees(made: tuple, read: tuple) -> bool:
    return len(made) == len(read) and all(a == b or a == -1 or b == -1 for a, b in zip(made, read))


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, message: str):
        raise BinaryFormatError(f"{self.source}: {message}",
                                "the file does not hang together: recompile the model, or restore the file")

    def program(self, p: Program):
        n = len(p.tensors)
        for what, idxs in (("input", p.inputs), ("output", p.outputs), ("constant", list(p.constants))):
            bad = [i for i in idxs if not 0 <= i < n]
            if bad:
                self.fail(f"program '{p.name}' names {what} tensor {bad[0]}, but it has {n} tensors")
        for i, value in p.constants.items():      # sizes: a 0-d constant may be stored as [1]
            if np.size(value) != int(np.prod(p.tensors[i].shape, dtype=np.int64)):
                self.fail(f"program '{p.name}' constant {i} has shape {list(np.shape(value))}, its descriptor "
                          f"says {list(p.tensors[i].shape)}")
        ready = set(p.inputs) | set(p.constants)
        for k, op in enumerate(p.ops):
            for t in op.inputs + op.outputs:
                if not 0 <= t < n:
                    self.fail(f"program '{p.name}' op {k} ({op.name}) names tensor {t}, but it has {n} tensors")
            missing = [t for t in op.inputs if t not in ready]
            if missing:
                self.fail(f"program '{p.name}' op {k} ({op.name}) reads tensor {missing[0]} before anything "
                          "writes it")
            ready.update(op.outputs)
        unwritten = [t for t in p.outputs if t not in ready]
        if unwritten:
            self.fail(f"program '{p.name}' returns tensor {unwritten[0]}, which nothing writes")

    def plan(self, b: Binary):
        made: dict[str, tuple] = {d.name: tuple(d.shape) for d in b.inputs}
        made.update({name: tuple(np.shape(v)) for name, v in b.constants.items()})
        for k, step in enumerate(b.plan):
            callees = b.programs if step.kind == "device" else b.cpu_segments
            if not 0 <= step.index < len(callees):
                self.fail(f"plan step {k} runs {step.kind} {step.index}, but the file has {len(callees)}")
            callee = callees[step.index]
            if step.kind == "device":
                ins = [tuple(callee.tensors[i].shape) for i in callee.inputs]
                outs = [tuple(callee.tensors[i].shape) for i in callee.outputs]
            else:
                ins = [tuple(d.shape) for d in callee.inputs]
                outs = [tuple(d.shape) for d in callee.outputs]
            if len(step.inputs) != len(ins) or len(step.outputs) != len(outs):
                self.fail(f"plan step {k} passes {len(step.inputs)} values to {step.kind} '{callee.name}' and "
                          f"takes {len(step.outputs)} back, but it has {len(ins)} inputs and {len(outs)} outputs")
            for name, shape in zip(step.inputs, ins):
                if name not in made:
                    self.fail(f"plan step {k} ('{callee.name}') reads '{name}', which no input, constant or "
                              "earlier step makes")
                if not _shape_agrees(made[name], shape):
                    self.fail(f"plan step {k} ('{callee.name}') reads '{name}' as {list(shape)}, but it is made "
                              f"as {list(made[name])}")
            made.update(zip(step.outputs, outs))
        for name in b.outputs:
            if name not in made:
                self.fail(f"model output '{name}' is made by no input, constant or step")


    def names(self, b: Binary):
        from forge_fe.config import DataFormat, MathFidelity
        formats = {f.name for f in DataFormat} | {""}
        descs = [(f"model input '{d.name}'", d) for d in b.inputs]
        descs += [(f"program '{p.name}' tensor '{t.name}'", t) for p in b.programs for t in p.tensors]
        descs += [(f"CPU segment '{s.name}' tensor '{t.name}'", t) for s in b.cpu_segments
                  for t in s.inputs + s.outputs]
        for what, d in descs:
            if d.dtype not in DTYPES:
                self.fail(f"{what} has unknown dtype {d.dtype!r}")
            if d.data_format not in formats:
                self.fail(f"{what} has unknown data format {d.data_format!r}")
        fidelity = b.compute_config.get("math_fidelity", "HiFi4")
        if fidelity not in {f.name for f in MathFidelity}:
            self.fail(f"unknown math fidelity {fidelity!r}")

    def json_sections(self, b: Binary):
        try:
            meta = json.loads(b.output_structure) if b.output_structure else {}
        except ValueError as e:
            self.fail(f"the output structure is not JSON ({e})")
        tree = meta.get("tree") if isinstance(meta, dict) else None
        if tree is not None and _leaves(tree) != len(b.outputs):
            self.fail(f"the output structure does not describe the model's {len(b.outputs)} outputs")
        for key, text in b.debug.items():
            if key.endswith(".json"):
                try:
                    json.loads(text)
                except ValueError as e:
                    self.fail(f"debug section '{key}' is not JSON ({e})")


def _leaves(node) -> int | None:
    """Leaves of an output-structure tree (forge_fe.structure), or None if it is not one."""
    if not isinstance(node, dict):
        return None
    if node.get("t") == "leaf":
        return 1
    children = node.get("children")
    if node.get("t") not in ("dict", "tuple", "list", "namedtuple") or not isinstance(children, list):
        return None
    if node["t"] == "dict" and (not isinstance(node.get("keys"), list) or len(node["keys"]) != len(children)):
        return None
    counts = [_leaves(c) for c in children]
    return None if None in counts else sum(counts)


def check_binary(b: Binary, source: str) -> Binary:
    """Raise BinaryFormatError naming `source` and the first inconsistency; return `b`."""
    c = _Checker(source)
    for p in b.programs:
        c.program(p)
    c.plan(b)
    c.names(b)
    c.json_sections(b)
    return b
