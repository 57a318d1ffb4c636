"""Every op in the registry: its rules exist, and its TTIR lowering run on the emulated
device matches its golden rule (the two are written independently)."""
import numpy as np
import pytest
import torch

from forge_fe.graph.graph import Graph
from forge_fe.op import OPS
from forge_fe.device.program import DeviceProgram
from forge_fe.compiler.lower_ttir import lower_graph

F32 = "float32"

# op name -> (input specs [(shape, dtype)], attrs). Ints are index/int tensors.
CASES = {
    **{u: ([((2, 3, 4), F32)], {}) for u in ("relu", "sigmoid", "tanh", "exp", "neg", "abs", "erf", "sin",
                                            "cos", "floor", "ceil", "sign", "silu")},
    "log": ([((2, 3, 4), F32)], {}), "sqrt": ([((2, 3, 4), F32)], {}), "rsqrt": ([((2, 3, 4), F32)], {}),
    "reciprocal": ([((2, 3, 4), F32)], {}),
    "gelu": ([((2, 3, 4), F32)], {"approximate": "none"}),
    "leaky_relu": ([((2, 3, 4), F32)], {"alpha": 0.1}),
    "clip": ([((2, 3, 4), F32)], {"min": -0.5, "max": 0.5}),
    "logical_not": ([((2, 3), "bool")], {}),
    "cast": ([((2, 3), F32)], {"dtype": "int32"}),
    **{b: ([((2, 3, 4), F32), ((3, 1), F32)], {}) for b in ("add", "subtract", "multiply", "divide", "maximum",
                                                           "minimum", "equal", "not_equal", "greater",
                                                           "greater_equal", "less", "less_equal")},
    "power": ([((2, 3), F32), ((2, 3), F32)], {}),
    "logical_and": ([((2, 3), "bool"), ((2, 3), "bool")], {}),
    "logical_or": ([((2, 3), "bool"), ((2, 3), "bool")], {}),
    "bitwise_and": ([((2, 3), "bool"), ((2, 3), "bool")], {}),
    "where": ([((2, 3), "bool"), ((2, 3), F32), ((1, 3), F32)], {}),
    "conv2d": ([((1, 4, 9, 9), F32), ((6, 2, 3, 3), F32), ((6,), F32)],
               {"stride": [2, 1], "padding": [1, 0, 2, 1], "dilation": [1, 2], "groups": 2}),
    "conv_transpose2d": ([((1, 4, 5, 5), F32), ((4, 3, 3, 3), F32), ((6,), F32)],
                         {"stride": [2, 1], "padding": [1, 0, 2, 1], "output_padding": [1, 0], "dilation": [1, 2],
                          "groups": 2}),
    "conv_transpose2d_symmetric": ([((2, 3, 4, 4), F32), ((3, 5, 2, 2), F32)],
                                   {"stride": [2, 2], "padding": [0, 0, 0, 0], "output_padding": [0, 0],
                                    "dilation": [1, 1], "groups": 1}),
    "max_pool2d": ([((1, 3, 9, 9), F32)], {"kernel": [3, 3], "stride": [2, 2], "dilation": [1, 1],
                                          "padding": [1, 1, 1, 1], "ceil_mode": False}),
    "avg_pool2d": ([((1, 3, 8, 8), F32)], {"kernel": [2, 2], "stride": [2, 2], "dilation": [1, 1],
                                          "padding": [0, 0, 0, 0], "ceil_mode": False, "count_include_pad": True}),
    "global_avg_pool2d": ([((2, 3, 5, 5), F32)], {}),
    "matmul": ([((2, 1, 4, 5), F32), ((3, 5, 6), F32)], {}),
    "linear": ([((4, 5), F32), ((6, 5), F32), ((6,), F32)], {"transpose_b": True}),
    "softmax": ([((2, 3, 7), F32)], {"dim": -1}),
    "log_softmax": ([((2, 7), F32)], {"dim": 1}),
    "layer_norm": ([((2, 3, 8), F32), ((8,), F32), ((8,), F32)], {"normalized_shape": [8], "epsilon": 1e-5}),
    "rms_norm": ([((2, 3, 8), F32), ((8,), F32)], {"normalized_shape": [8], "epsilon": 1e-5}),
    "rms_norm_unweighted": ([((2, 3, 8), F32)], {"normalized_shape": [8], "epsilon": 1e-6}),
    "rotary_embedding": ([((2, 3, 4, 8), F32), ((1, 1, 4, 8), F32), ((2, 1, 4, 8), F32)], {}),
    "reshape": ([((2, 3, 4), F32)], {"shape": [6, 4]}),
    "permute": ([((2, 3, 4), F32)], {"perm": [2, 0, 1]}),
    "concat": ([((2, 3), F32), ((2, 5), F32)], {"dim": 1}),
    "slice": ([((4, 6), F32)], {"begins": [1, 0], "ends": [4, 6], "steps": [1, 2]}),
    "broadcast": ([((3, 1), F32)], {"shape": [2, 3, 4]}),
    "take": ([((10, 4), F32), ((2, 3), "int64")], {"axis": 0}),
    "take_static_index": ([((2, 5, 4), F32)], {"axis": 1, "index": 3}),
    "take_inner_axis": ([((2, 10, 3), F32), ((1, 2), "int64")], {"axis": 1}),
    "take_last_axis": ([((2, 3, 10), F32), ((4,), "int64")], {"axis": 2}),
    "repeat": ([((2, 3), F32)], {"repeats": [2, 1]}),
    "index_copy": ([((2, 3, 8, 4), F32), ((2, 3, 5, 4), F32)], {"axis": 2}),                      # fill_cache
    "index_copy_update": ([((2, 3, 12, 4), F32), ((2, 3, 1, 4), F32), ((1, 1, 1, 1), "int64")], {"axis": 2}),
    "sum": ([((2, 3, 4), F32)], {"dims": [0, 2], "keep_dim": True}),
    "mean": ([((2, 3, 4), F32)], {"dims": [1], "keep_dim": False}),
    "max": ([((2, 3, 4), F32)], {"dims": [1, 2], "keep_dim": False}),
    "min": ([((2, 3, 4), F32)], {"dims": [2], "keep_dim": True}),
    "prod": ([((2, 3, 4), F32)], {"dims": [2], "keep_dim": False}),
    # gradient ops (training)
    "conv2d_input_grad": ([((1, 6, 5, 6), F32), ((6, 4, 3, 3), F32)],
                          {"stride": [2, 1], "padding": [1, 0, 2, 1], "dilation": [1, 2], "groups": 1,
                           "input_shape": [1, 4, 9, 9]}),
    "conv2d_weight_grad": ([((1, 4, 9, 9), F32), ((1, 6, 5, 6), F32)],
                           {"stride": [2, 1], "padding": [1, 0, 2, 1], "dilation": [1, 2], "groups": 1,
                            "weight_shape": [6, 4, 3, 3]}),
    "max_pool2d_grad": ([((1, 3, 9, 9), F32), ((1, 3, 5, 5), F32)],
                        {"kernel": [3, 3], "stride": [2, 2], "dilation": [1, 1], "padding": [1, 1, 1, 1],
                         "ceil_mode": False}),
    "embedding_grad": ([((2, 3), "int64"), ((10, 4), F32), ((2, 3, 4), F32)], {}),
}
# Ops that are always decomposed before lowering (checked through their decomposition instead).
DECOMPOSED = {"batch_norm"}
# Multi-chip ops act on every chip's values at once: tests/test_mesh.py runs them on an emulated mesh.
MESH_OPS = {"mesh_shard", "all_reduce", "all_gather", "reduce_scatter", "mesh_partition"}


def op_of(case: str):
    """The op a case exercises: its name, or the longest op name it extends ("take_static_index")."""
    for name in sorted(OPS, key=len, reverse=True):
        if case == name or case.startswith(name + "_"):
            return OPS[name]
    raise KeyError(case)


def _sample(shape, dtype, rng, positive):
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if dtype.startswith("int"):
        return rng.integers(0, 10, shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    return np.abs(x) + 0.1 if positive else x


def test_every_op_has_its_rules():
    for op in OPS.values():
        assert op.shape is not None and op.golden is not None, op.name
        assert op.lower is not None or op.decompose is not None, f"{op.name} can neither lower nor decompose"
        if op.relax:
            assert op.from_relax is not None, f"{op.name} claims Relax ops but has no from_relax rule"


def test_every_lowered_op_has_a_case():
    lowered = {n for n, op in OPS.items() if op.lower is not None}
    assert lowered - set(CASES) - MESH_OPS == set(), "add a case to CASES for each new op"


@pytest.mark.parametrize("name", sorted(CASES))
def test_lowering_matches_golden(name, rng):
    op = op_of(name)
    specs, attrs = CASES[name]
    positive = name in ("log", "sqrt", "rsqrt", "power", "reciprocal")
    values = [_sample(s, d, rng, positive) for s, d in specs]
    g = Graph(f"test_{name}")
    ins = [g.add_input(f"in{i}", v.shape, str(v.dtype)) for i, v in enumerate(values)]
    g.outputs = [g.add_op(op, name, ins, attrs)]
    from forge_fe.passes.pre_lowering import equalize_ranks
    equalize_ranks(g)
    g.toposort()
    prog, text = lower_graph(g, "main")
    assert '"ttir.' in text
    got = DeviceProgram(prog).run([torch.from_numpy(v) for v in values])[0]
    want = op.golden([torch.from_numpy(v) for v in values], attrs)
    assert tuple(got.shape) == tuple(want.shape) == g.outputs[0].shape
    got = got.float().numpy() if got.dtype != torch.int32 else got.numpy()
    want = want.float().numpy() if want.dtype.is_floating_point or want.dtype == torch.bool else want.numpy()
    # fp32 kernels vs fp32 golden: differences are only reassociation rounding.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_norm_decomposition_matches_golden(rng):
    from forge_fe.passes.post_initial import decompose
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    stats = [rng.random(3).astype(np.float32) + 0.5 for _ in range(4)]
    g = Graph("bn")
    xi = g.add_input("x", x.shape, "float32")
    consts = [g.add_const(f"w{i}", s) for i, s in enumerate(stats)]
    g.outputs = [g.add_op(OPS["batch_norm"], "bn", [xi] + consts, {"epsilon": 1e-5})]
    want = OPS["batch_norm"].golden([torch.from_numpy(x)] + [torch.from_numpy(s) for s in stats], {"epsilon": 1e-5})
    assert decompose(g) == 1
    assert all(n.op is not OPS["batch_norm"] for n in g.op_nodes())
    from forge_fe.passes.pre_lowering import equalize_ranks
    equalize_ranks(g)
    g.toposort()
    prog, _ = lower_graph(g, "main")
    got = DeviceProgram(prog).run([torch.from_numpy(x)])[0]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
