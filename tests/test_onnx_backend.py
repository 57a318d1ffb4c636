"""A fast slice of ONNX's backend node conformance suite through forge_fe.onnx_backend.ForgeBackend.

The whole suite (and onnxruntime / plain TVM side by side) is benchmarks/onnx_conformance.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from forge_fe.errors import ForgeError
from forge_fe.onnx_backend import ForgeBackend, sample_inputs

# A fast, hand-picked slice; the whole suite is tests/test_onnx_node_suite.py.
PASSING = [
    "test_relu",
    "test_add_bcast",
    "test_matmul_2d",
    "test_matmul_3d",
    "test_conv_with_strides_padding",
    "test_convtranspose",
    "test_softmax_axis_1",
    "test_gemm_default_no_bias",
    "test_transpose_default",
    "test_concat_2d_axis_0",
    "test_concat_3d_axis_negative_1",
    "test_averagepool_2d_default",
    "test_maxpool_2d_default",
    "test_globalaveragepool",
    "test_batchnorm_example",
    "test_instancenorm_example",
    "test_where_example",
    "test_reduce_max_default_axes_keepdim_example",
    "test_argmax_default_axis_example",
    "test_split_equal_parts_1d_opset18",
    "test_gelu_default_1",
    "test_div_bcast",
    "test_flatten_axis1",
]

# Unsupported by design (a random op); the error must be a ForgeError naming the op.
UNSUPPORTED = ("test_bernoulli", "Bernoulli")


@pytest.fixture(scope="module")
def cases():
    from onnx.backend.test.loader import load_model_tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in load_model_tests(kind="node")}


def _np(v):
    return numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v


@pytest.mark.parametrize("name", PASSING)
def test_node_case_passes(cases, name):
    case = cases[name]
    rep = ForgeBackend.prepare(case.model, "CPU")
    for inputs, refs in case.data_sets:
        outs = rep.run([_np(x) for x in inputs])
        assert len(outs) == len(refs)
        for got, ref in zip(outs, refs):
            ref = _np(ref)
            assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, got.dtype, ref.shape, ref.dtype)
            np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-5)


def test_unsupported_op_is_a_forge_error(cases):
    name, op = UNSUPPORTED
    inputs = [_np(x) for x in cases[name].data_sets[0][0]]
    rep = ForgeBackend.prepare(cases[name].model)  # compiles lazily, at run()
    with pytest.raises(ForgeError) as ei:
        rep.run(inputs)
    msg = str(ei.value)
    assert op in msg and msg.startswith("[forge_fe:"), msg
    assert "Traceback" not in msg


def test_backend_basics(cases):
    model = cases["test_add_bcast"].model
    assert ForgeBackend.supports_device("CPU")
    xs = sample_inputs(model)
    assert [x.shape for x in xs] == [(3, 4, 5), (5,)] and all(x.dtype == np.float32 for x in xs)


# ---------------------------------------------------------------- model formats (issue 4 bullets)
#
# Each model is compiled with forge_fe.compile and its outputs checked against onnxruntime's on the
# same inputs (forge_fe.verify runs the ONNX golden, which is onnxruntime).

import forge_fe  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402


def _small_cnn(opset: int = 13, batch="N") -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Softmax, with a symbolic batch dim."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.standard_normal((64, 5)).astype(np.float32) * 0.1, "fc_w"),
        numpy_helper.from_array(rng.standard_normal((5,)).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["g"]),
        helper.make_node("Softmax", ["g"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def _x(batch=2):
    return np.random.default_rng(1).standard_normal((batch, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("opset", list(range(7, 24)))
def test_model_across_opsets_via_version_converter(opset):
    from onnx import version_converter
    # written at opset 7 (the oldest the importer supports) and converted up
    model = _small_cnn(7)
    if opset != 7:
        model = version_converter.convert_version(model, opset)
    assert model.opset_import[0].version == opset
    cm = forge_fe.compile(model, [_x()])
    forge_fe.verify([_x()], model, cm, rtol=1e-4, atol=1e-5)


def test_initializers_listed_as_graph_inputs():
    model = _small_cnn()
    model.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                             for t in model.graph.initializer)
    cm = forge_fe.compile(model, [_x()])  # the weights are not inputs: one sample input is enough
    forge_fe.verify([_x()], model, cm, rtol=1e-4, atol=1e-5)


def test_external_data_model(tmp_path):
    model = _small_cnn()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="cnn.weights", size_threshold=0)
    assert (tmp_path / "cnn.weights").exists()
    assert all(t.data_location == TensorProto.EXTERNAL for t in onnx.load(str(path), load_external_data=False)
               .graph.initializer)
    cm = forge_fe.compile(str(path), [_x()])
    forge_fe.verify([_x()], str(path), cm, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_symbolic_batch_dim_takes_the_sample_inputs_batch(batch):
    model = _small_cnn(batch="batch")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    cm = forge_fe.compile(model, [_x(batch)])
    out = cm(_x(batch))
    assert out.shape == (batch, 5)
    forge_fe.verify([_x(batch)], model, cm, rtol=1e-4, atol=1e-5)


def test_shape_inputs_are_specialized_and_recompiled_per_value():
    """A Reshape whose shape is a graph input: compiled for the value given to run(), again for a new one."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    rep = ForgeBackend.prepare(model)
    assert rep.specialized == ["shape"]
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    (a,) = rep.run([x, np.array([3, 4])])
    (b,) = rep.run([x, np.array([4, -1])])
    np.testing.assert_array_equal(a, x.reshape(3, 4))
    np.testing.assert_array_equal(b, x.reshape(4, 3))
    assert len(rep._compiled) == 2


# -- casts to 2- and 4-bit integers: forge_fe's own rules, whatever ml_dtypes is installed ---------

def test_narrow_int_from_floats_rounds_half_even_and_zeroes_out_of_range():
    from forge_fe.onnx_backend import narrow_int
    x = np.array([-9.0, -8.0, -8.5, -7.5, -0.5, 0.5, 1.5, 2.5, 6.6, 7.0, 7.4, 7.5, 8.0,
                  np.nan, np.inf, -np.inf], np.float32)
    # worked by hand: rint (ties to even), then outside [-8, 7] -> 0 (NaN/Inf too)
    want = [0, -8, -8, -8, 0, 0, 2, 2, 7, 7, 7, 0, 0, 0, 0, 0]
    assert narrow_int(x, 4, signed=True).tolist() == want
    # uint4 is [0, 15]: -1 -> 0, 15.4 -> 15, 15.5 -> 16 (even) -> out of range -> 0
    u = np.array([-1.0, -0.4, 0.0, 14.5, 15.4, 15.5, 16.0], np.float16)
    assert narrow_int(u, 4, signed=False).tolist() == [0, 0, 0, 14, 15, 0, 0]
    # int2 is [-2, 1]; uint2 [0, 3]
    t = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0], np.float32)
    assert narrow_int(t, 2, signed=True).tolist() == [0, -2, -1, 0, 1, 0, 0]
    assert narrow_int(t, 2, signed=False).tolist() == [0, 0, 0, 0, 1, 2, 3]


def test_narrow_int_from_integers_discards_high_bits():
    from forge_fe.onnx_backend import narrow_int
    x = np.array([-9, -8, 7, 8, 9, 15, 16, 200, -56], np.int32)
    # two's complement of the low 4 bits: -9 = ...10111 -> 0111 = 7; 8 = 1000 -> -8; 200 = 1100_1000 -> -8
    assert narrow_int(x, 4, signed=True).tolist() == [7, -8, 7, -8, -7, -1, 0, -8, -8]
    assert narrow_int(x, 4, signed=False).tolist() == [7, 8, 7, 8, 9, 15, 0, 8, 8]
    assert narrow_int(np.array([3, 4, 5, -1], np.int64), 2, signed=True).tolist() == [-1, 0, 1, -1]


@pytest.mark.parametrize("to,src", [(onnx.TensorProto.INT4, np.float32), (onnx.TensorProto.UINT4, np.float16),
                                    (onnx.TensorProto.INT2, np.float32), (onnx.TensorProto.INT4, np.int32)])
def test_cast_to_subbyte_int_through_the_backend(to, src):
    """A whole model: the device computes in the carrier type, the host narrows with narrow_int."""
    from onnx import helper
    from forge_fe.onnx_backend import NARROW_INTS, narrow_int
    x = np.array([-9, -3, -1, 0, 1, 2, 3, 5, 7, 8, 12, 14, 16, 200], src)
    if src != np.int32:
        x = (x + np.array([0.0, 0.5] * 7, src)).astype(src)   # ties: -2.5 -> -2, 1.5 -> 2 ...
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(src))
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=to)], "g",
                              [helper.make_tensor_value_info("x", elem, [x.size])],
                              [helper.make_tensor_value_info("y", to, [x.size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    (y,) = ForgeBackend.prepare(model).run([x])
    assert y.dtype == helper.tensor_dtype_to_np_dtype(to)
    np.testing.assert_array_equal(y.astype(np.int32), narrow_int(x, *NARROW_INTS[to]).astype(np.int32))
