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

# Chosen from cases that pass today (benchmarks/onnx_conformance.py). Cases one might expect here
# but that fail today, see docs/onnx_conformance.md: test_reshape_* (shape given as an input),
# test_gather_0 (relax.shape_of left for the partitioner), test_layer_normalization_* (Mean /
# InvStdDev outputs come back 0-d), test_reduce_mean_default_axes_keepdims_example (axes input).
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

# Fails today: no converter for Col2Im; the error must be a ForgeError naming the op.
UNSUPPORTED = ("test_col2im", "Col2Im")


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
    with pytest.raises(ForgeError) as ei:
        ForgeBackend.prepare(cases[name].model)
    msg = str(ei.value)
    assert op in msg and msg.startswith("[forge_fe:"), msg
    assert "Traceback" not in msg


def test_backend_basics(cases):
    model = cases["test_add_bcast"].model
    assert ForgeBackend.supports_device("CPU")
    xs = sample_inputs(model)
    assert [x.shape for x in xs] == [(3, 4, 5), (5,)] and all(x.dtype == np.float32 for x in xs)
