"""Run one model through forge_fe and through its framework, and judge the outcome (fuzzing).

A case passes when forge_fe's outputs match the framework's (tests/framework_compare.py), or
when forge_fe refuses the model with a ForgeError whose message names an op of the model.
Anything else (another exception, a mismatch, a refusal that does not say which op) fails.
"""
from __future__ import annotations

import re

import numpy as np
import onnx

import forge_fe
from forge_fe.errors import ForgeError
from framework_compare import TOLERANCE, mismatch


class Outcome:
    MATCH = "match"
    REFUSED = "refused"


def _names_an_op(message: str, op_names) -> bool:
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", message)}
    flat = {w.rsplit(".", 1)[-1] for w in words}
    return any(n.lower() in words or n.lower() in flat for n in op_names)


def judge(run_forge, golden, op_names, allow=None, tolerance=None) -> tuple[str, str]:
    """(outcome, detail). `run_forge()` compiles and runs; `golden` are the framework's outputs.
    `allow(index, ours, golden) -> bool` may accept a known, documented framework quirk;
    `tolerance` (rtol, atol) replaces the outputs' dtype's."""
    try:
        ours = run_forge()
    except ForgeError as exc:
        text = str(exc)
        assert _names_an_op(text, op_names), f"forge_fe refused the model without naming an op:\n{text}"
        return Outcome.REFUSED, text.splitlines()[0]
    ours = list(ours) if isinstance(ours, (list, tuple)) else [ours]
    assert len(ours) == len(golden), f"{len(ours)} outputs, the framework gives {len(golden)}"
    for i, (o, g) in enumerate(zip(ours, golden)):
        msg = mismatch(o, g, rtol=tolerance and tolerance[0], atol=tolerance and tolerance[1])
        if msg and not (allow and allow(i, np.asarray(o), np.asarray(g))):
            raise AssertionError(f"output {i}: {msg}")
    return Outcome.MATCH, ""


def onnx_case(model, feeds) -> tuple[str, str]:
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    golden = sess.run(None, feeds)
    ops = {n.op_type for n in model.graph.node} | {n.name for n in model.graph.node}
    max_pool = any(n.op_type in ("MaxPool", "GlobalMaxPool") for n in model.graph.node)
    specials = any(np.asarray(v).dtype.kind == "f" and not np.all(np.isfinite(v)) for v in feeds.values())
    reference = []

    def onnx_reference(i):
        if not reference:
            from onnx.reference import ReferenceEvaluator
            with np.errstate(all="ignore"):
                reference.extend(ReferenceEvaluator(model).run(None, feeds))
        return reference[i]

    def framework_quirk(i, ours, gold):
        # onnxruntime's ReduceMax/ReduceMin (and its MaxPool, depending on where the NaN sits in
        # the window) drop a NaN; forge_fe propagates it, as torch and numpy do. Where the inputs
        # carry NaN or inf, a result equal to ONNX's own reference implementation (numpy) is
        # accepted too. The reference's pools skip NaN, so MaxPool has its rule below.
        if specials and mismatch(ours, onnx_reference(i)) is None:
            return True
        return max_pool and not np.any(np.isnan(gold) & ~np.isnan(ours)) and \
            mismatch(np.where(np.isnan(ours), gold, ours), gold) is None

    def run():
        cm = forge_fe.compile(model, list(feeds.values()))
        return cm(*feeds.values())
    # the device computes float16 in float32 (a numerics note): a float16 value cast to float32
    # differs from the framework's by float16's rounding, so such graphs compare at its tolerance
    half = any(np.asarray(v).dtype == np.float16 for v in feeds.values()) or \
        any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    return judge(run, golden, ops, framework_quirk, TOLERANCE["float16"] if half else None)


def torch_case(module, inputs) -> tuple[str, str]:
    import torch
    with torch.no_grad():
        golden = module(*inputs)
    golden = list(golden) if isinstance(golden, tuple) else [golden]
    # a refusal may name the torch op (step name), its aten name or the Relax op it imports to
    ops = {w for name, _, _ in module.steps for w in re.findall(r"[a-z_0-9]+", name.split("(")[0])}
    ops |= {"aten", "relax", "conv2d", "linear", "matmul", "batch_norm", "layer_norm"}

    def run():
        return forge_fe.compile(module, list(inputs))(*inputs)
    return judge(run, golden, ops)
