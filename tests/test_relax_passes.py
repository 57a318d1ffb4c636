"""tvm_ext's Relax passes, each on a small module."""
import numpy as np
import torch
import pytest
import tvm
from tvm import relax

from tvm_ext.passes import run_relax_passes
from tvm_ext.passes.device_forms import DeviceForms
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


def _build_with(shape, fn, dtype="float32"):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, dtype))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(fn(bb, x))
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize("stride, padding, dilation, groups", [(1, (1, 1), 1, 1), (2, (0, 2), 2, 2)])
def test_conv1d_becomes_a_height_one_conv2d(stride, padding, dilation, groups):
    w = np.random.default_rng(1).standard_normal((6, 4 // groups, 3)).astype("float32")
    mod = _build_with((2, 4, 11), lambda bb, x: bb.emit(relax.op.nn.conv1d(
        x, relax.const(w), strides=stride, padding=padding, dilation=dilation, groups=groups)))
    after = DeviceForms()(mod)
    assert "relax.nn.conv1d" not in calls(after) and "relax.nn.conv2d" in calls(after)
    x = np.random.default_rng(2).standard_normal((2, 4, 11)).astype("float32")
    np.testing.assert_allclose(_run(after, x)[0], _run(mod, x)[0], rtol=1e-5, atol=1e-5)


def test_index_tensor_with_constant_indices_becomes_a_row_gather():
    """x[i0, i1] with broadcasting index arrays, a negative index and a trailing dim kept."""
    i0 = relax.const(np.array([[0], [2]], "int64"))            # (2, 1)
    i1 = relax.const(np.array([1, -1, 0], "int64"))            # (3,) -> broadcast (2, 3)
    mod = _build_with((3, 4, 5), lambda bb, x: bb.emit(relax.op.index_tensor(x, relax.Tuple([i0, i1]))))
    after = relax.transform.CanonicalizeBindings()(DeviceForms()(mod))
    assert "relax.index_tensor" not in calls(after) and "relax.take" in calls(after)
    x = np.arange(60, dtype="float32").reshape(3, 4, 5)
    got = _run(after, x)[0]
    # numpy is the reference: TVM's own index_tensor kernel reads out of bounds for negative indices
    np.testing.assert_array_equal(got, x[np.array([[0], [2]]), np.array([1, -1, 0])])


def test_index_tensor_with_run_time_negative_indices_counts_from_the_end():
    """TVM's index_tensor kernel reads out of bounds for i < 0; the rewrite wraps run-time indices."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((3, 4), "float32"))
    i = relax.Var("i", relax.TensorType((3,), "int64"))
    with bb.function("main", [x, i]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.index_tensor(x, relax.Tuple([i]))))
        bb.emit_func_output(out)
    after = DeviceForms()(bb.get())
    vm = relax.VirtualMachine(tvm.compile(after, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    xv, iv = np.arange(12, dtype="float32").reshape(3, 4), np.array([-1, 0, -3])
    np.testing.assert_array_equal(vm["main"](tvm.runtime.tensor(xv), tvm.runtime.tensor(iv)).numpy(), xv[iv])


@pytest.mark.parametrize("op", ["sum", "mean", "conv2d", "matmul"])
def test_float16_reductions_accumulate_in_float32(op):
    """AccumulateInFloat32 (CPU segments): the reduction runs in float32, its result is rounded to
    float16 once, so it is within float16's rounding of the exact value; TVM's float16 accumulation
    is not (checked on the same module)."""
    from tvm_ext.passes.accumulate_in_float32 import AccumulateInFloat32
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, (1, 64, 4, 4)).astype(np.float16)       # sums near 64: float16 ulp 0.03-0.06
    w = rng.uniform(0.5, 1.5, (2, 64, 3, 3)).astype(np.float16)
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(x.shape, "float16"))
    with bb.function("main", [xv]):
        with bb.dataflow():
            if op == "conv2d":
                y = relax.op.nn.conv2d(xv, relax.const(w), padding=(1, 1))
            elif op == "matmul":
                y = relax.op.matmul(relax.op.reshape(xv, (64, 16)), relax.const(x.reshape(16, 64)))
            else:
                y = getattr(relax.op, op)(xv, axis=[1, 2, 3])
            out = bb.emit_output(bb.emit(y))
        bb.emit_func_output(out)
    mod = bb.get()
    x64 = x.astype(np.float64)
    exact = {"sum": x64.sum((1, 2, 3)), "mean": x64.mean((1, 2, 3)),
             "matmul": x64.reshape(64, 16) @ x64.reshape(16, 64),
             "conv2d": torch.nn.functional.conv2d(torch.from_numpy(x64), torch.from_numpy(w.astype(np.float64)),
                                                  padding=1).numpy()}[op]

    def run(m):
        ex = tvm.compile(m, target="llvm")
        return relax.VirtualMachine(ex, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()

    wide = AccumulateInFloat32()(mod)
    assert wide["main"].ret_ty.dtype == "float16"
    ours = run(wide)
    ulp = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64)
    # one rounding to nearest, of a float32 sum (whose own error, ~1e-6 relative, may tip a value
    # lying on a float16 midpoint)
    assert np.all(np.abs(ours - exact) <= ulp / 2 + 1e-5 * np.abs(exact))
    if op != "mean":                                                # (TVM's mean divides a float16 sum)
        assert np.any(np.abs(run(mod) - exact) > ulp)               # float16 accumulation: more than one
