"""tvm_ext's Relax passes, each on a small module."""
import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_ext.passes import run_relax_passes
from tvm_ext.passes.fold_constant_ops import FoldConstantOps, has_constant_calls
from tvm_ext.passes.fold_static_creation import FoldStaticCreation
from tvm_ext.passes.split_to_slices import SplitToSlices


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


def _run(mod, x):
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x))
    return [o.numpy() for o in out] if not hasattr(out, "numpy") else [out.numpy()]


@pytest.mark.parametrize("indices_or_sections", [2, [1, 3]], ids=["sections", "indices"])
def test_split_becomes_slices_with_the_same_pieces(indices_or_sections):
    def body(bb, x):
        parts = bb.emit(relax.op.split(x, indices_or_sections, axis=1))
        return bb.emit(relax.Tuple([relax.TupleGetItem(parts, i) for i in range(len(parts.ty.fields))]))
    mod = build(body)
    after = relax.transform.CanonicalizeBindings()(SplitToSlices()(mod))
    assert "relax.split" not in calls(after) and "relax.strided_slice" in calls(after)
    x = np.arange(8, dtype="float32").reshape(2, 4)
    want, got = _run(mod, x), _run(after, x)
    assert [w.shape for w in want] == [g.shape for g in got]
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


def test_cumsum_and_index_tensor_on_constants_fold():
    mask = np.array([[True, False, True, True]])
    def body(bb, x):
        c = bb.emit(relax.op.cumsum(relax.const(mask), axis=1, dtype="int64", exclusive=False))
        e = bb.emit(relax.op.cumsum(relax.const(mask), axis=1, dtype="int64", exclusive=True))
        rows, cols = relax.const(np.array([0, 0], "int64")), relax.const(np.array([3, 1], "int64"))
        picked = bb.emit(relax.op.index_tensor(c, relax.Tuple([rows, cols])))
        return bb.emit(relax.Tuple([c, e, picked]))
    mod = FoldConstantOps()(build(body))
    assert not calls(mod), "every call on constants folds"
    inclusive, exclusive, picked = _run(mod, np.zeros((2, 4), "float32"))
    np.testing.assert_array_equal(inclusive, np.cumsum(mask, axis=1))
    np.testing.assert_array_equal(exclusive, np.cumsum(mask, axis=1) - mask)
    np.testing.assert_array_equal(picked, np.cumsum(mask, axis=1)[[0, 0], [3, 1]])
