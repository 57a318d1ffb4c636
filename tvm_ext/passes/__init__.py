"""forge_fe's Relax pipeline: one list of named passes, run in order between import and partition.

Each entry is (name, pass factory); `run_relax_passes` verifies the module after
every pass so a broken rewrite is attributed to the pass that made it.
"""
from __future__ import annotations

import tvm
from tvm import relax

from tvm_ext.passes.device_forms import DeviceForms
from tvm_ext.passes.fold_constant_ops import FoldConstantOps, FoldRemainingConstants
from tvm_ext.passes.fold_static_creation import FoldShapeOf, FoldStaticCreation
from tvm_ext.passes.special_values import SpecialValueForms
from tvm_ext.passes.split_to_slices import SplitToSlices

RELAX_PIPELINE = [
    # Put every binding in normal form (explicit types, one call per binding).
    ("normalize", relax.transform.Normalize),
    # Remove trivial aliases and tuple round-trips the importers leave behind.
    ("canonicalize_bindings", relax.transform.CanonicalizeBindings),
    # split with a static shape -> one strided_slice per piece (the device has no split).
    ("split_to_slices", SplitToSlices),
    # shape_of(x) with a static x -> its shape (ONNX shape arithmetic becomes static).
    ("fold_shape_of", FoldShapeOf),
    # arange/full/zeros_like with static shapes -> constants (masks, position ids).
    ("fold_static_creation", FoldStaticCreation),
    # Evaluate calls on constants with the op registry's golden rules (fast) ...
    ("fold_constant_ops", FoldConstantOps),
    # ... and what the registry doesn't cover with TVM (builds each op through LLVM).
    ("fold_constant", FoldRemainingConstants),
    # conv1d -> height-1 conv2d; index_tensor with constant indices -> a row gather (device forms).
    ("device_forms", DeviceForms),
    # argmax/argmin that return the first NaN, float floor_mod by fmod (TVM's forms lose NaN / digits).
    ("special_value_forms", SpecialValueForms),
    # One binding per distinct computation: what each layer recomputes from shared inputs (a
    # transformer's attention mask, its rotary cos/sin) runs once.
    ("eliminate_common_subexpr", relax.transform.EliminateCommonSubexpr),
    # CSE leaves aliases (`gv = lv` for a repeated tuple); the partitioner wants none.
    ("canonicalize_bindings_2", relax.transform.CanonicalizeBindings),
    # Drop what nothing uses (e.g. max_pool indices, unused tuple fields).
    ("dead_code_elimination", lambda: relax.transform.DeadCodeElimination(["main"])),
]


def run_relax_passes(mod: tvm.IRModule, on_pass=None) -> tvm.IRModule:
    from forge_fe.errors import CompileError
    for name, make in RELAX_PIPELINE:
        try:
            mod = make()(mod)
        except Exception as exc:
            raise CompileError("relax_passes", f"Relax pass '{name}' failed: {str(exc).splitlines()[-1]}",
                               "report this with the model; CompileDepth.IMPORT stops before the passes") from exc
        try:
            relax.analysis.well_formed(mod)
        except Exception as exc:
            raise CompileError("relax_passes", f"Relax pass '{name}' produced a malformed module: "
                               f"{str(exc).strip().splitlines()[-1]}", "this is a compiler bug: please report it") from exc
        if on_pass:
            on_pass(name, mod)
    return mod
