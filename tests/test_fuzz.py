"""Differential fuzzing: random ONNX graphs against onnxruntime, random torch modules against eager.

A case passes when forge_fe's outputs match the framework's within the dtype's tolerance, or
when forge_fe refuses the model with a ForgeError naming an op (tests/differential.py). The
default run tries a fixed, small number of examples, derandomized so CI repeats them exactly;
`pytest -m fuzz` runs the long budget (FORGE_FE_FUZZ_EXAMPLES per strategy, default 1000) with
fresh random examples. docs/reliability.md records what the long runs found.
"""
import os

import pytest
from hypothesis import HealthCheck, given, settings

import differential
from onnx_graph_strategy import onnx_graphs
from torch_module_strategy import torch_modules

LONG = int(os.environ.get("FORGE_FE_FUZZ_EXAMPLES", "1000"))
QUICK = dict(derandomize=True, database=None, deadline=None, print_blob=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
FUZZ = dict(QUICK, derandomize=False)


def check_onnx(case):
    model, feeds = case
    differential.onnx_case(model, feeds)


def check_torch(case):
    module, inputs = case
    differential.torch_case(module, inputs)


@settings(max_examples=30, **QUICK)
@given(onnx_graphs())
def test_random_onnx_graphs_match_onnxruntime(case):
    check_onnx(case)


@settings(max_examples=6, **QUICK)
@given(torch_modules())
def test_random_torch_modules_match_eager(case):
    check_torch(case)


@pytest.mark.fuzz
@pytest.mark.timeout(0)
@settings(max_examples=LONG, **FUZZ)
@given(onnx_graphs())
def test_fuzz_onnx_graphs_long(case):
    check_onnx(case)


@pytest.mark.fuzz
@pytest.mark.timeout(0)
@settings(max_examples=LONG, **FUZZ)
@given(torch_modules())
def test_fuzz_torch_modules_long(case):
    check_torch(case)


# ---- regressions: what the long runs found (docs/reliability.md) ----------------------------

def _onnx(nodes, inputs, outputs, inits=()):
    from onnx import helper, numpy_helper
    info = lambda name, dtype, shape: helper.make_tensor_value_info(name, dtype, shape)
    g = helper.make_graph(nodes, "regression", [info(*i) for i in inputs], [info(*o) for o in outputs],
                          [numpy_helper.from_array(a, n) for n, a in inits])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_regression_permute_not_sunk_through_a_broadcast_to_more_dims(dtype):
    """transpose(x) * x - reshape(transpose(x), [1, 1, 1]) with x of shape [1, 1]: sink_permutes moved
    the [1, 0] permute below the subtract (its operands are single values), whose result has 3 dims;
    the device refused the 2-axis permute of a 3-d tensor."""
    import numpy as np
    from onnx import TensorProto, helper
    t = {"float32": TensorProto.FLOAT, "int32": TensorProto.INT32}[dtype]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]), helper.make_node("Mul", ["t", "x"], ["m"]),
             helper.make_node("Reshape", ["t", "s"], ["r"]), helper.make_node("Sub", ["m", "r"], ["out"])]
    model = _onnx(nodes, [("x", t, [1, 1])], [("out", t, [1, 1, 1])], [("s", np.array([1, 1, 1], np.int64))])
    assert differential.onnx_case(model, {"x": np.array([[3]], dtype)})[0] == differential.Outcome.MATCH


def test_regression_float16_selu():
    """TVM's Selu converter built float32 constants, so a float16 Selu failed to import."""
    import numpy as np
    from onnx import TensorProto, helper
    model = _onnx([helper.make_node("Selu", ["x"], ["y"], alpha=1.5, gamma=1.1)], [("x", TensorProto.FLOAT16, [2, 8])],
                  [("y", TensorProto.FLOAT16, [2, 8])])
    x = np.linspace(-4, 4, 16).astype(np.float16).reshape(2, 8)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    assert differential.onnx_case(model, {"x": x})[0] == differential.Outcome.MATCH


def test_regression_reduce_max_over_outer_axes_propagates_nan():
    """ReduceMax over axes [0, 2] of a tensor holding a NaN: onnxruntime drops the NaN there (over the
    last axis it keeps it); forge_fe gives NaN, as numpy and ONNX's reference implementation do.
    The fuzzer's judge accepts either reference where the inputs carry NaN (tests/differential.py)."""
    import numpy as np
    import forge_fe
    from onnx import TensorProto, helper
    model = _onnx([helper.make_node("ReduceMax", ["x"], ["y"], axes=[0, 2], keepdims=1)],
                  [("x", TensorProto.FLOAT, [4, 2, 2])], [("y", TensorProto.FLOAT, [1, 2, 1])])
    x = np.arange(16, dtype=np.float32).reshape(4, 2, 2)
    x[2, 1, 1] = np.nan
    ours = np.asarray(forge_fe.compile(model, [x])(x))
    np.testing.assert_array_equal(ours, np.max(x, axis=(0, 2), keepdims=True))
    assert differential.onnx_case(model, {"x": x})[0] == differential.Outcome.MATCH


def test_regression_float16_computed_in_float32_is_reported():
    """Mul of float16 values, cast to float32: onnxruntime rounds the product to float16 first, the
    device (float16 carried in float32) does not. A deliberate difference: reported in the
    compile report's numerics notes, and the result is within float16's tolerance."""
    import numpy as np
    import forge_fe
    from framework_compare import TOLERANCE, mismatch
    from onnx import TensorProto, helper
    model = _onnx([helper.make_node("Mul", ["x", "y"], ["m"]), helper.make_node("Cast", ["m"], ["c"], to=1)],
                  [("x", TensorProto.FLOAT16, [8]), ("y", TensorProto.FLOAT16, [8])], [("c", TensorProto.FLOAT, [8])])
    rng = np.random.default_rng(0)
    x, y = (rng.uniform(-3, 3, 8).astype(np.float16) for _ in range(2))
    cm = forge_fe.compile(model, [x, y])
    assert any(n.startswith("float16 is computed as float32") for n in cm.report.numerics_notes)
    assert mismatch(cm(x, y), (x * y).astype(np.float32), rtol=TOLERANCE["float16"][0],
                    atol=TOLERANCE["float16"][1]) is None
