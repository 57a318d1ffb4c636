"""tvm_ext's Relax passes, each on a small module."""
import numpy as np
import tvm
from tvm import relax

from tvm_ext.passes import run_relax_passes
from tvm_ext.passes.fold_constant_ops import FoldConstantOps, has_constant_calls
from tvm_ext.passes.fold_static_creation import FoldStaticCreation


def build(fn):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((2, 4), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(fn(bb, x))
        bb.emit_func_output(out)
    return bb.get()


def calls(mod):
    return [b.value.op.name for b in mod["main"].body.blocks[0].bindings if isinstance(b.value, relax.Call)]


def test_static_creation_becomes_constants_and_folds():
    def body(bb, x):
        pos = bb.emit(relax.op.arange(0, 4, 1, "float32"))              # static: becomes a constant
        scaled = bb.emit(relax.op.multiply(pos, relax.const(2.0)))      # then folds with the golden rule
        return bb.emit(relax.op.add(x, scaled))
    mod = FoldStaticCreation()(build(body))
    assert "relax.arange" not in calls(mod) and has_constant_calls(mod)
    mod = FoldConstantOps()(mod)
    assert calls(mod) == ["relax.add"] and not has_constant_calls(mod)
    add = next(b.value for b in mod["main"].body.blocks[0].bindings if isinstance(b.value, relax.Call))
    bound = relax.analysis.get_var2val(mod["main"])
    folded = add.args[1] if isinstance(add.args[1], tvm.ir.expr.Constant) else bound[add.args[1]]
    np.testing.assert_allclose(folded.value.numpy(), np.arange(4) * 2.0)


def test_pipeline_keeps_results():
    def body(bb, x):
        mask = bb.emit(relax.op.full_like(x, relax.const(1.0)))
        return bb.emit(relax.op.multiply(x, bb.emit(relax.op.add(mask, relax.const(0.5)))))
    mod = build(body)
    before = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    after_mod = run_relax_passes(mod)
    after = relax.VirtualMachine(tvm.compile(after_mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_allclose(after["main"](tvm.runtime.tensor(x)).numpy(),
                               before["main"](tvm.runtime.tensor(x)).numpy(), rtol=1e-6)
    assert calls(after_mod) == ["relax.multiply"]
