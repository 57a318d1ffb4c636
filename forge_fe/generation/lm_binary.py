"""One binary for an LM: the prefill and decode binaries merged, their weights stored once.

Each program is compiled on its own (`forge_fe.compile` of an `LMStep`), which gives one
`Binary` per entry ("prefill_32", "decode"). `merge` concatenates their programs, CPU
segments and plan steps, prefixes every plan value with its entry (`decode/input_ids`),
and shares what the entries have in common:

* constants with equal bytes (every weight: the programs are traced from one model) become
  one array, which the writer serializes once and the executor converts once;
* const-eval programs that are equal op for op over those shared constants (the weight
  transposes and folds each program needs) run once; later entries read the first one's results.

The entries and the order of their steps are recorded in the metadata, so the runtime runs
one entry's steps at a time (`Executor.run_steps`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np

from forge_fe.binary import model as bm


class ConstantPool:
    """Arrays with equal dtype, shape and bytes map to one shared array."""

    def __init__(self):
        self.by_key: dict = {}

    def __call__(self, value) -> np.ndarray:
        arr = np.ascontiguousarray(value)
        key = (arr.dtype.str, arr.shape, hashlib.sha256(arr.reshape(-1).view(np.uint8)).digest())
        return self.by_key.setdefault(key, arr)


def _signature(prog: bm.Program):
    """What makes two const-eval programs compute the same values: ops, tensor types, constants."""
    ops = tuple((o.name, tuple(o.inputs), tuple(o.outputs), json.dumps(o.attrs, sort_keys=True, default=str))
                for o in prog.ops)
    tensors = tuple((t.shape, t.dtype, t.data_format) for t in prog.tensors)
    consts = tuple(sorted((i, id(v)) for i, v in prog.constants.items()))
    return ops, tensors, consts, tuple(prog.inputs), tuple(prog.outputs)


def merge(entries: dict[str, bm.Binary], model_name: str, meta: dict) -> tuple[bm.Binary, dict]:
    """Merge the entries' binaries; returns it and {entry: {steps, inputs, outputs}} (plan names)."""
    pool = ConstantPool()
    programs, cpu_segments, plan, constants, debug, inputs, outputs = [], [], [], {}, {}, [], []
    const_eval: dict = {}              # signature -> its plan step
    layout = {}
    first = next(iter(entries.values()))
    for entry, b in entries.items():
        rename: dict[str, str] = {}

        def name(n, rename=rename, entry=entry):
            return rename.setdefault(n, f"{entry}/{n}")

        steps = []
        for step in b.plan:
            sig = None
            if step.kind == "device":
                prog = b.programs[step.index]
                prog = replace(prog, name=f"{entry}.{prog.name}",
                               constants={i: pool(v) for i, v in prog.constants.items()})
                sig = _signature(prog) if prog.private else None
                if sig is not None and sig in const_eval:      # the same weights folded the same way: reuse the results
                    shared = const_eval[sig]
                    rename.update(zip(step.outputs, plan[shared].outputs))
                    steps.append(shared)
                    continue
                programs.append(prog)
                index = len(programs) - 1
            else:
                cpu_segments.append(replace(b.cpu_segments[step.index],
                                            name=f"{entry}.{b.cpu_segments[step.index].name}"))
                index = len(cpu_segments) - 1
            plan.append(bm.Step(step.kind, index, [name(n) for n in step.inputs], [name(n) for n in step.outputs]))
            if sig is not None:
                const_eval[sig] = len(plan) - 1
            steps.append(len(plan) - 1)
        for k, v in b.constants.items():
            constants[name(k)] = pool(v)
        inputs += [replace(d, name=name(d.name)) for d in b.inputs]
        outputs += [name(o) for o in b.outputs]
        layout[entry] = {"steps": steps, "inputs": [name(d.name) for d in b.inputs],
                         "outputs": [name(o) for o in b.outputs]}
        debug.update({f"{entry}/{k}": v for k, v in b.debug.items()})
    merged = bm.Binary(compiler_version=first.compiler_version, system=first.system, programs=programs,
                       cpu_segments=cpu_segments, plan=plan, inputs=inputs, outputs=outputs, constants=constants,
                       output_structure=json.dumps({"lm": dict(meta, entries=layout)}), debug=debug,
                       model_name=model_name, compute_config=first.compute_config, mesh=first.mesh)
    return merged, layout
