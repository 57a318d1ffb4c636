"""The emulated device's executor: fusion of conv chains must not change results."""
import numpy as np
import torch

from forge_fe.graph.graph import Graph
from forge_fe.op import OPS
from forge_fe.passes import layout
from forge_fe.device import kernels
from forge_fe.device.program import DeviceProgram
from forge_fe.compiler.lower_ttir import lower_graph


def residual_block(rng):
    """relu(conv_a(x) + conv_b(x)): two convs feeding one add, the shape that broke fusion once."""
    g = Graph("block")
    x = g.add_input("x", (1, 4, 8, 8), "float32")
    weights = [rng.standard_normal((6, 4, k, k)).astype(np.float32) for k in (3, 1)]
    w = [g.add_const(f"w{i}", v) for i, v in enumerate(weights)]
    attrs = {"stride": [1, 1], "dilation": [1, 1], "groups": 1}
    a = g.add_op(OPS["conv2d"], "conv_a", [x, w[0]], dict(attrs, padding=[1, 1, 1, 1]))
    b = g.add_op(OPS["conv2d"], "conv_b", [x, w[1]], dict(attrs, padding=[0, 0, 0, 0]))
    g.outputs = [g.add_op(OPS["relu"], "relu", [g.add_op(OPS["add"], "add", [a, b], {})], {})]
    layout.channels_last(g)
    layout.sink_permutes(g)
    return g, [torch.from_numpy(v) for v in weights]


def test_layout_passes_leave_only_boundary_permutes(rng):
    g, _ = residual_block(rng)
    perms = [n for n in g.op_nodes() if n.op is OPS["permute"]]
    assert len(perms) == 2      # into NHWC once, back to NCHW once


def test_fused_conv_chain_matches_unfused(rng, monkeypatch):
    g, (w0, w1) = residual_block(rng)
    prog, _ = lower_graph(g, "main")
    x = torch.from_numpy(rng.standard_normal((1, 4, 8, 8)).astype(np.float32))
    fused = DeviceProgram(prog)
    assert any(s.op.name == "ttir.conv2d+ttir.add+ttir.relu" for s in fused.steps)
    got = fused.run([x])[0]
    monkeypatch.setattr(kernels, "FUSIONS", {})
    monkeypatch.setattr(kernels, "FACTORIES", {})
    from forge_fe.device import program
    monkeypatch.setattr(program, "FUSIONS", {})
    monkeypatch.setattr(program, "FACTORIES", {})
    plain = DeviceProgram(prog)
    assert all("+" not in s.op.name for s in plain.steps)
    want = plain.run([x])[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # and both agree with the golden rules of the original ops
    ref = torch.relu(torch.nn.functional.conv2d(x, w0, padding=1) + torch.nn.functional.conv2d(x, w1))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_conv_into_a_broadcasting_add_is_not_fused(rng):
    """Global context (gcresnet): a 1x1 conv of the pooled map, [1,1,1,C] in NHWC, added to the
    [1,H,W,C] map. The fused kernels add in place on the conv's result, so the add stays its own op."""
    g = Graph("context")
    x = g.add_input("x", (1, 4, 8, 8), "float32")
    ctx = g.add_input("ctx", (1, 4, 1, 1), "float32")
    weights = [rng.standard_normal((4, 4, 1, 1)).astype(np.float32) for _ in range(2)]
    w = [g.add_const(f"w{i}", v) for i, v in enumerate(weights)]
    attrs = {"stride": [1, 1], "dilation": [1, 1], "groups": 1, "padding": [0, 0, 0, 0]}
    c = g.add_op(OPS["conv2d"], "conv_ctx", [ctx, w[1]], attrs)     # first: the chain walk meets it first
    fmap = g.add_op(OPS["conv2d"], "conv_map", [x, w[0]], attrs)
    g.outputs = [g.add_op(OPS["relu"], "relu", [g.add_op(OPS["add"], "add", [c, fmap], {})], {})]
    layout.channels_last(g)
    layout.sink_permutes(g)
    prog, _ = lower_graph(g, "main")
    dp = DeviceProgram(prog)
    fused = [s for s in dp.steps if "+" in s.op.name]
    assert all(prog.tensors[s.op.inputs[0]].shape == (1, 8, 8, 4) for s in fused)   # only the map's conv
    xs = [torch.from_numpy(rng.standard_normal(s).astype(np.float32)) for s in ((1, 4, 8, 8), (1, 4, 1, 1))]
    got = dp.run(xs)[0]
    conv = torch.nn.functional.conv2d
    ref = torch.relu(conv(xs[1], torch.from_numpy(weights[1])) + conv(xs[0], torch.from_numpy(weights[0])))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
