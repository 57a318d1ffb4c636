"""The roofline performance model (forge_fe.device.perf_model) on small hand-built programs."""
import math

import pytest
import torch

from forge_fe.device import perf_model as pm
from forge_fe.binary import model as bm
from forge_fe.compiler.binary_builder import ARCHS
from forge_fe.config import MathFidelity
from forge_fe.device.kernels import KERNELS

WH, BH = ARCHS["wormhole_b0"], ARCHS["blackhole"]
OVERHEAD = pm.OP_OVERHEAD_S["wormhole_b0"]      # launch cost of one device op
BF16 = ("bfloat16", "Float16_b")
FP32 = ("float32", "Float32")


def tensor(shape, kind=BF16, name="t"):
    return bm.TensorDesc(name, tuple(shape), kind[0], kind[1])


def one_op(name, ins, out, attrs=None):
    """A program with one op: `ins` (TensorDescs) -> `out`."""
    ts = list(ins) + [out]
    n = len(ins)
    return bm.Program("p", ts, list(range(n)), [n], [bm.Op(name, list(range(n)), [n], attrs or {}, "op0")])


def estimate(prog, system=WH, fidelity=MathFidelity.HiFi4):
    return pm.estimate_program(prog, system, fidelity)


def matmul(m, k, n, a=BF16, b=BF16, out=BF16):
    return one_op("ttir.matmul", [tensor((m, k), a), tensor((k, n), b)], tensor((m, n), out),
                  {"transpose_a": False, "transpose_b": False})


def add(shape, kind=BF16):
    return one_op("ttir.add", [tensor(shape, kind), tensor(shape, kind)], tensor(shape, kind))


def test_bytes_per_element():
    assert pm.bytes_per_element("Float32", "float32") == 4
    assert pm.bytes_per_element("Float16_b", "bfloat16") == 2
    assert pm.bytes_per_element("Bfp8_b", "bfloat16") == (1024 + 64) / 1024
    assert pm.bytes_per_element("Bfp4_b", "bfloat16") == (512 + 64) / 1024
    assert pm.bytes_per_element("Float32", "int32") == 4
    assert pm.bytes_per_element("Float32", "bfloat16") == 2     # a bf16 tensor under the default format
    with pytest.raises(ValueError, match="unknown data format"):
        pm.bytes_per_element("Float8", "float32")


def test_matmul_1024_cube_from_first_principles():
    (e,) = estimate(matmul(1024, 1024, 1024))
    tile_matmuls = 32 ** 3                              # (1024/32)^3
    cycles = tile_matmuls * 64                          # HiFi4: 4 phases x 16 cycles
    dram = 3 * 1024 * 1024 * 2                          # A, B read + C written, bf16
    assert e.flops == 2 * 1024 ** 3
    assert e.compute_cycles == cycles
    assert e.cores == 64                                # 8x8 grid, 1024 output tiles
    assert e.dram_bytes == dram
    assert e.time_s == pytest.approx(max(dram / 288e9, cycles / (64 * 1e9)) / 0.7 + OVERHEAD)
    assert e.roofline_s == pytest.approx(max(dram / 288e9, cycles / (64 * 1e9)))
    assert e.bound == "compute" and e.rule == "matmul"


def test_fidelity_scales_compute_exactly():
    prog = matmul(4096, 4096, 4096)                     # compute bound even at LoFi
    hifi4, hifi2, lofi = (estimate(prog, fidelity=f)[0]
                          for f in (MathFidelity.HiFi4, MathFidelity.HiFi2, MathFidelity.LoFi))
    assert all(e.bound == "compute" for e in (hifi4, hifi2, lofi))
    assert hifi4.compute_cycles == 2 * hifi2.compute_cycles == 4 * lofi.compute_cycles
    assert hifi4.time_s - OVERHEAD == pytest.approx(2 * (hifi2.time_s - OVERHEAD))
    assert hifi4.time_s - OVERHEAD == pytest.approx(4 * (lofi.time_s - OVERHEAD))


def test_float32_matmul_runs_at_hifi4_whatever_the_fidelity():
    lofi = estimate(matmul(512, 512, 512, FP32, FP32, FP32), fidelity=MathFidelity.LoFi)[0]
    hifi4 = estimate(matmul(512, 512, 512, FP32, FP32, FP32), fidelity=MathFidelity.HiFi4)[0]
    assert lofi.compute_cycles == hifi4.compute_cycles == 16 ** 3 * 64


@pytest.mark.parametrize("fmt", ["Bfp8_b", "Bfp4_b"])
def test_block_float_weights_shrink_dram_bytes(fmt):
    bf16 = estimate(matmul(1024, 1024, 1024))[0]
    bfp = estimate(matmul(1024, 1024, 1024, b=("bfloat16", fmt)))[0]
    weight_elems = 1024 * 1024
    assert bf16.dram_bytes - bfp.dram_bytes == pytest.approx(weight_elems * (2 - pm.BYTES_PER_ELEMENT[fmt]))
    assert bfp.compute_cycles == bf16.compute_cycles    # same engine, same rate


def test_large_add_is_memory_bound_and_scales_with_bytes():
    (small,) = estimate(add((8192, 8192)))
    (big,) = estimate(add((16384, 8192)))
    (wide,) = estimate(add((8192, 8192), FP32))
    assert small.bound == big.bound == wide.bound == "memory"
    assert small.dram_bytes == 3 * 8192 * 8192 * 2
    assert small.time_s == pytest.approx(small.dram_bytes / 288e9 / 0.7 + OVERHEAD)
    assert big.time_s - OVERHEAD == pytest.approx(2 * (small.time_s - OVERHEAD))
    assert wide.time_s - OVERHEAD == pytest.approx(2 * (small.time_s - OVERHEAD))
    assert not small.fits_l1                            # 384 MiB over 64 cores
    assert estimate(add((32, 32)))[0].fits_l1


def test_blackhole_is_faster_than_wormhole():
    for prog in (matmul(2048, 2048, 2048), add((4096, 4096)), matmul(64, 64, 64)):
        wh = pm.summarize(estimate(prog, WH), WH)
        bh = pm.summarize(estimate(prog, BH), BH)
        assert bh["arch"] == "blackhole"
        assert bh["estimated_latency_s"] < wh["estimated_latency_s"]
    (e,) = estimate(matmul(2048, 2048, 2048), BH)
    assert e.cores == 110                               # 11x10 grid


def test_tile_padding_a_row_costs_a_full_tile():
    (row,) = estimate(add((1, 1, 1, 768)))
    (block,) = estimate(add((32, 768)))
    assert row.dram_bytes == block.dram_bytes == 3 * 32 * 768 * 2
    assert row.compute_cycles == block.compute_cycles == 24 * pm.TILE_CYCLES["add"]
    assert row.time_s == block.time_s
    assert row.flops < block.flops                      # useful math is not padded


def test_small_matmul_uses_only_its_output_tiles_but_roofline_uses_the_grid():
    (e,) = estimate(matmul(64, 64, 64))
    assert e.cores == 4                                 # 2x2 output tiles
    assert e.compute_cycles == 8 * 64
    assert e.roofline_s == pytest.approx(max(e.dram_bytes / 288e9, e.compute_cycles / (64 * 1e9)))


def conv(cin, cout, k=3, groups=1, hw=56, stride=1, pad=None):
    pad = (k // 2) if pad is None else pad
    x, w = tensor((1, hw, hw, cin)), tensor((cout, cin // groups, k, k))
    oh = (hw + 2 * pad - k) // stride + 1
    return one_op("ttir.conv2d", [x, w], tensor((1, oh, oh, cout)),
                  {"stride": [stride, stride], "padding": [pad] * 4, "dilation": [1, 1], "groups": groups})


def gemm_cycles(m, k, n, phases=4):
    return math.ceil(m / 32) * math.ceil(k / 32) * math.ceil(n / 32) * pm.MATMUL_TILE_CYCLES_PER_PHASE * phases


def test_1x1_conv_is_a_plain_gemm():
    """TTNN's use_matmul_for_1x1_conv: 1x1, stride 1, no padding -> a matmul, no tilize, no halo."""
    (e,) = estimate(conv(64, 256, k=1))
    m, k, n = 56 * 56, 64, 256
    assert e.flops == 2 * m * k * n
    assert e.compute_cycles == gemm_cycles(m, k, n)
    assert e.cores == 64
    assert e.time_s == pytest.approx(max(e.dram_bytes / WH.dram_bandwidth, e.compute_cycles / (64 * WH.clock_hz))
                                     / pm.UTILIZATION + OVERHEAD)


def test_sliding_window_conv_tilizes_its_activation_and_launches_a_halo():
    """A 3x3 conv: the GEMM, plus a tilize pass per im2col activation tile (M x K tiles) in the conv kernel,
    plus the halo op: an untilize pass per input tile and a second launch."""
    (e,) = estimate(conv(64, 64))
    m, k, n = 56 * 56, 64 * 9, 64
    act_tiles = math.ceil(m / 32) * math.ceil(k / 32)
    input_tiles = math.ceil(56 * 56 / 32) * math.ceil(64 / 32)
    assert e.compute_cycles == gemm_cycles(m, k, n) + act_tiles * pm.TILE_CYCLES["tilize"] \
        + input_tiles * pm.TILE_CYCLES["untilize"]
    assert e.time_s == pytest.approx(max(e.dram_bytes / WH.dram_bandwidth, e.compute_cycles / (64 * WH.clock_hz))
                                     / pm.UTILIZATION + 2 * OVERHEAD)
    # stride 2 or padding also leave the matmul path, even for a 1x1 kernel
    (s2,) = estimate(conv(64, 64, k=1, stride=2))
    assert s2.compute_cycles > gemm_cycles(28 * 28, 64, 64)


def test_depthwise_conv_costs_the_dense_conv_of_its_block_diagonal_weight():
    """TTNN expands a grouped weight to a zero-filled [Cout, Cin, KH, KW]
    (convert_conv_weight_tensor_to_grouped_layout): a depthwise conv runs, and reads from DRAM, exactly
    what the dense conv of the same shape does."""
    for c in (64, 144):
        (dw,) = estimate(conv(c, c, groups=c))
        (dense,) = estimate(conv(c, c))
        assert dw.compute_cycles == dense.compute_cycles
        assert dw.dram_bytes == dense.dram_bytes
        assert dw.flops * c == dense.flops                  # the useful math is 1/C of it
    # so the matrix-engine work grows with C^2 (K and N both scale with C), not with C
    def gemm_part(c):
        (e,) = estimate(conv(c, c, groups=c))
        mt, kt = math.ceil(56 * 56 / 32), math.ceil(c * 9 / 32)
        return e.compute_cycles - mt * kt * pm.TILE_CYCLES["tilize"] \
            - mt * math.ceil(c / 32) * pm.TILE_CYCLES["untilize"]
    assert gemm_part(128) == 4 * gemm_part(64)
    # grouped (not depthwise) convs too: groups=4 costs the dense conv
    (g4,) = estimate(conv(128, 128, groups=4))
    (d,) = estimate(conv(128, 128))
    assert g4.compute_cycles == d.compute_cycles


def test_reductions_softmax_and_norm_pass_counts():
    (s,) = estimate(one_op("ttir.sum", [tensor((64, 1024))], tensor((64, 1)), {"dim_arg": [-1], "keep_dim": True}))
    assert s.compute_cycles == 64 * pm.TILE_CYCLES["reduce_cols"]
    # global average pool in NHWC: W is the tile-row dim, H an outer dim (one add pass)
    (m,) = estimate(one_op("ttir.mean", [tensor((1, 7, 7, 2048))], tensor((1, 1, 1, 2048)),
                           {"dim_arg": [1, 2], "keep_dim": True}))
    assert m.compute_cycles == 7 * 64 * (pm.TILE_CYCLES["reduce_rows"] + pm.TILE_CYCLES["add"])
    # softmax keeps a row of tiles on one core
    (one_row,) = estimate(one_op("ttir.softmax", [tensor((1, 32, 32000))], tensor((1, 32, 32000)), {"dimension": -1}))
    (many,) = estimate(one_op("ttir.softmax", [tensor((8, 512, 512))], tensor((8, 512, 512)), {"dimension": -1}))
    assert one_row.cores == 1 and many.cores == 64
    assert one_row.bound == "compute"
    ln = one_op("ttir.layer_norm", [tensor((128, 768)), tensor((768,)), tensor((768,))], tensor((128, 768)),
                {"normalized_shape": [768], "epsilon": 1e-5})
    (e,) = estimate(ln)
    assert e.cores == 4 and e.compute_cycles > 24 * 4 * pm.TILE_CYCLES["reduce_cols"]


def test_slice_and_embedding_read_only_what_they_use():
    (sl,) = estimate(one_op("ttir.slice_static", [tensor((4096, 4096))], tensor((32, 4096)),
                            {"begins": [0, 0], "ends": [32, 4096], "step": [1, 1]}))
    assert sl.dram_bytes == 2 * 32 * 4096 * 2
    idx = bm.TensorDesc("idx", (1, 16), "int32", "Float32")
    (emb,) = estimate(one_op("ttir.embedding", [idx, tensor((50000, 768))], tensor((1, 16, 768))))
    assert emb.dram_bytes == 32 * 32 * 4 + 2 * (32 * 768 * 2)
    assert emb.bound == "memory"


def test_permute_of_the_last_two_dims_adds_a_transpose():
    x = tensor((4, 8, 256, 256))                        # 2048 tiles
    (swap,) = estimate(one_op("ttir.permute", [x], tensor((4, 8, 256, 256)), {"permutation": [0, 1, 3, 2]}))
    (outer,) = estimate(one_op("ttir.permute", [x], tensor((8, 4, 256, 256)), {"permutation": [1, 0, 2, 3]}))
    assert outer.compute_cycles == 2048 * pm.TILE_CYCLES["datacopy"]
    assert swap.compute_cycles == 2048 * (pm.TILE_CYCLES["datacopy"] + pm.TILE_CYCLES["transpose"])
    assert swap.bound == outer.bound == "memory"


def test_summarize_totals():
    ts = [tensor((256, 1024)), tensor((1024, 1024)), tensor((256, 1024)), tensor((256, 1024)),
          tensor((256, 1024)), tensor((1024, 256))]
    ops = [bm.Op("ttir.matmul", [0, 1], [2], {}, "mm"), bm.Op("ttir.add", [2, 0], [3], {}, "add"),
           bm.Op("ttir.softmax", [3], [4], {"dimension": -1}, "sm"),
           bm.Op("ttir.permute", [4], [5], {"permutation": [1, 0]}, "perm")]
    ests = estimate(bm.Program("p", ts, [0, 1], [5], ops))
    s = pm.summarize(ests, WH)
    assert s["arch"] == "wormhole_b0"
    assert s["estimated_latency_s"] == pytest.approx(sum(e.time_s for e in ests))
    assert s["estimated_latency_s"] >= s["roofline_latency_s"] > 0
    assert 0 < s["utilization"] <= 1
    assert s["compute_bound_ops"] + s["memory_bound_ops"] + s["noc_bound_ops"] + s["free_ops"] == len(s["ops"]) == 4
    assert s["free_ops"] == 1                           # the add streams into the softmax
    assert [o["loc"] for o in s["ops"]] == ["mm", "add", "sm", "perm"]
    assert s["default_modeled_ops"] == []


def test_unknown_op_gets_the_documented_default_and_is_reported():
    (e,) = estimate(one_op("ttir.mystery", [tensor((64, 64))], tensor((64, 64))))
    assert e.rule == "default" and e.bound == "memory"
    assert pm.summarize([e], WH)["default_modeled_ops"] == ["ttir.mystery"]


def test_estimate_binary_reads_fidelity_from_compute_config():
    prog = matmul(1024, 1024, 1024)
    b = bm.Binary("0", WH, [prog, bm.Program("ce", [], [], [], [], private=True)], [], [], [], [],
                  compute_config={"math_fidelity": "LoFi"})
    res = pm.estimate_binary(b)
    assert list(res) == ["p"]                           # const-eval programs are left out
    assert res["p"]["ops"][0]["compute_cycles"] == 32 ** 3 * 16


# ---- every op the emulated device runs has an explicit cost rule ---------------------

_X = ((2, 64, 96), "float32")
_NHWC = ((1, 16, 16, 8), "float32")
_POOL = {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "dilation": [1, 1], "ceil_mode": False}
_BINARY = {"add", "subtract", "multiply", "maximum", "minimum", "pow", "div", "eq", "ne", "gt", "ge", "lt",
           "le", "logical_and", "logical_or"}
SPECS = {   # op -> (input (shape, dtype) list, attrs); unlisted ops are unary on _X
    **{f"ttir.{n}": ([_X, _X], {}) for n in _BINARY},
    "ttir.where": ([_X, _X, _X], {}),
    "ttir.gelu": ([_X], {"approximate": "none"}),
    "ttir.leaky_relu": ([_X], {"parameter": 0.01}),
    "ttir.clamp_scalar": ([_X], {"min": -1.0, "max": 1.0}),
    "ttir.reshape": ([_X], {"shape": [2, 96, 64]}),
    "ttir.permute": ([_X], {"permutation": [0, 2, 1]}),
    "ttir.transpose": ([_X], {"dim0": -2, "dim1": -1}),
    "ttir.concat": ([_X, _X], {"dim": 1}),
    "ttir.slice_static": ([_X], {"begins": [0, 0, 0], "ends": [2, 32, 96], "step": [1, 1, 1]}),
    "ttir.broadcast": ([((1, 64, 96), "float32")], {"broadcast_dimensions": [4, 1, 1]}),
    "ttir.repeat": ([_X], {"repeat_dimensions": [1, 2, 1]}),
    "ttir.embedding": ([((1, 16), "int32"), ((1000, 256), "float32")], {}),
    **{f"ttir.{n}": ([_X], {"dim_arg": [-1], "keep_dim": True}) for n in ("sum", "mean", "max", "min", "prod")},
    "ttir.matmul": ([((2, 64, 128), "float32"), ((2, 128, 96), "float32")],
                    {"transpose_a": False, "transpose_b": False}),
    "ttir.linear": ([((64, 128), "float32"), ((96, 128), "float32"), ((96,), "float32")],
                    {"transpose_a": False, "transpose_b": True}),
    "ttir.softmax": ([_X], {"dimension": -1}),
    "ttir.layer_norm": ([_X, ((96,), "float32"), ((96,), "float32")], {"normalized_shape": [96], "epsilon": 1e-5}),
    "ttir.rms_norm": ([_X, ((96,), "float32")], {"normalized_shape": [96], "epsilon": 1e-5}),
    "ttir.rotary_embedding": ([_X, ((1, 64, 96), "float32"), ((1, 64, 96), "float32")], {}),
    "ttir.conv2d": ([_NHWC, ((16, 8, 3, 3), "float32")],
                    {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}),
    "ttir.max_pool2d": ([_NHWC], _POOL),
    "ttir.avg_pool2d": ([_NHWC], dict(_POOL, count_include_pad=True)),
    # gradient ops (training)
    "ttir.conv_transpose2d": ([_NHWC, ((8, 4, 3, 3), "float32")],
                              {"stride": [2, 2], "padding": [0, 0], "output_padding": [1, 1], "dilation": [1, 1],
                               "groups": 1}),
    "ttir.max_pool2d_grad": ([_NHWC, ((1, 8, 8, 8), "float32")], _POOL),
    "ttir.embedding_backward": ([((1, 16), "int32"), ((1000, 256), "float32"), ((1, 16, 256), "float32")], {}),
    "ttir.fill_cache": ([((1, 2, 64, 16), "float32"), ((1, 2, 8, 16), "float32")], {"batch_offset": 0}),
    "ttir.update_cache": ([((1, 2, 128, 16), "float32"), ((1, 2, 1, 16), "float32"), ((1,), "int32")],
                          {"batch_offset": 0}),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_kernel_has_a_cost_rule(name):
    assert name in pm.RULES, f"{name} runs on the emulated device but has no cost rule"
    ins, attrs = SPECS.get(name, ([_X], {}))
    # The runtime's own kernel gives the output shape, so the specs stay plausible.
    values = [torch.randint(0, 100, s, dtype=torch.int32) if d == "int32" else torch.rand(s) + 0.5 for s, d in ins]
    out = KERNELS[name](values, attrs)
    descs = [bm.TensorDesc(f"in{i}", s, d, "Float32") for i, (s, d) in enumerate(ins)]
    prog = one_op(name, descs, bm.TensorDesc("out", tuple(out.shape), "float32", "Float32"), attrs)
    for system in (WH, BH):
        (e,) = estimate(prog, system)
        assert e.rule == pm.RULES[name][0]
        assert e.dram_bytes > 0 and e.compute_cycles > 0 and 1 <= e.cores <= pm.grid_cores(system)
        assert math.isfinite(e.time_s) and e.time_s >= e.roofline_s > 0
        assert e.bound in ("compute", "memory", "noc")


# ---- program-level placement (forge_fe.device.perf_program): fusion, L1 residency, sharding, views ----

from forge_fe.device import perf_program as pp  # noqa: E402


def chain(ops, ts, inputs, outputs):
    return bm.Program("p", ts, inputs, outputs, [bm.Op(n, i, o, a, f"op{k}") for k, (n, i, o, a) in enumerate(ops)])


def test_activation_after_matmul_runs_inside_it():
    ts = [tensor((256, 1024)), tensor((1024, 1024)), tensor((256, 1024)), tensor((256, 1024))]
    prog = chain([("ttir.matmul", [0, 1], [2], {}), ("ttir.relu", [2], [3], {})], ts, [0, 1], [3])
    mm, relu = estimate(prog)
    alone = pm.estimate_op(0, prog.ops[0], prog, WH)
    relu_alone = pm.estimate_op(1, prog.ops[1], prog, WH)
    assert relu.bound == "fused" and relu.time_s == 0 and relu.fused_into == 0
    assert mm.compute_cycles == alone.compute_cycles + relu_alone.compute_cycles
    assert not mm.out_l1 and mm.dram_bytes == alone.dram_bytes   # the chain's result is the program output


def test_intermediate_stays_in_l1_until_it_does_not_fit():
    def two_adds(shape):
        ts = [tensor(shape), tensor(shape), tensor(shape), tensor(shape)]
        return chain([("ttir.add", [0, 1], [2], {}), ("ttir.add", [2, 1], [3], {})], ts, [0, 1], [3])
    small = estimate(two_adds((256, 1024)))
    size = 256 * 1024 * 2
    assert small[0].out_l1 and small[0].dram_bytes == 2 * size      # x, y read; result kept in L1
    assert small[1].l1_inputs == 1 and small[1].dram_bytes == 2 * size   # y read, output written
    big = estimate(two_adds((8192, 8192)))                           # 2 MiB per core: over the budget
    assert not big[0].out_l1 and big[1].l1_inputs == 0
    assert big[0].dram_bytes == big[1].dram_bytes == 3 * 8192 * 8192 * 2


def test_reshape_is_free_when_it_is_a_view_and_a_copy_otherwise():
    view = one_op("ttir.reshape", [tensor((8, 128, 768))], tensor((1024, 768)), {"shape": [1024, 768]})
    heads = one_op("ttir.reshape", [tensor((8, 128, 768))], tensor((8, 128, 12, 64)), {"shape": [8, 128, 12, 64]})
    odd = one_op("ttir.reshape", [tensor((8, 197, 768))], tensor((8, 197, 24, 32)), {"shape": [8, 197, 24, 32]})
    (v,), (h,), (o,) = estimate(view), estimate(heads), estimate(odd)
    assert v.bound == "view" and v.time_s == 0
    assert h.compute_cycles == pm.tiles((8, 128, 12, 64)) * pm.TILE_CYCLES["datacopy"]
    odd_out = bm.TensorDesc("o", (8, 197, 24, 33), "bfloat16", "Float16_b")
    (u,) = estimate(one_op("ttir.reshape", [tensor((8, 197, 792))], odd_out, {"shape": [8, 197, 24, 33]}))
    assert u.compute_cycles == 3 * pm.tiles(odd_out.shape) * pm.TILE_CYCLES["datacopy"]
    assert o.compute_cycles == pm.tiles((8, 197, 24, 32)) * pm.TILE_CYCLES["datacopy"]


def test_sharding_uses_the_most_cores():
    assert pp.sharding((16 * 56 * 56, 64), WH.grid)[:2] == ("height", 64)     # tall CNN activation
    assert pp.sharding((32, 4096), WH.grid)[:2] == ("width", 64)              # one row of tiles (decode)
    assert pp.sharding((1024, 1024), WH.grid) == ("block", 64, (8, 8))
    assert pp.sharding((64, 64), WH.grid)[1] == 4


def test_height_sharded_matmul_waits_for_its_multicast_weights():
    # one tile row per core (A in Bfp4_b, so DRAM is not the bound): each core still receives
    # all of B (4096 x 224, bf16) over the NoC
    (e,) = estimate(matmul(2048, 4096, 224, a=("bfloat16", "Bfp4_b")), fidelity=MathFidelity.LoFi)
    b_tiles = (4096 // 32) * (224 // 32)
    assert e.bound == "noc"
    assert e.time_s == pytest.approx(b_tiles * 2048 / pm.NOC_BYTES_PER_CYCLE / 1e9 / 0.7 + OVERHEAD)


def test_scale_and_mask_stream_into_the_softmax():
    ts = [tensor((8, 512, 512)), tensor((8, 512, 512)), tensor((8, 512, 512)), tensor((8, 512, 512)),
          tensor((8, 512, 512))]
    prog = chain([("ttir.multiply", [0, 1], [2], {}), ("ttir.add", [2, 1], [3], {}),
                  ("ttir.softmax", [3], [4], {"dimension": -1})], ts, [0, 1], [4])
    mul, add, sm = estimate(prog)
    assert mul.bound == add.bound == "fused" and mul.fused_into == add.fused_into == 2
    alone = [pm.estimate_op(i, op, prog, WH) for i, op in enumerate(prog.ops)]
    assert sm.compute_cycles == sum(e.compute_cycles for e in alone)
    size = 8 * 512 * 512 * 2
    assert mul.dram_bytes == 2 * size and add.dram_bytes == size   # their operands; no result written


def test_softmax_runs_exp_in_approximate_mode_and_exp_alone_does_not():
    """TTNN's softmax defaults to math_approx_mode=True (exp_tile<EXP_APPROX>); ttnn.exp is precise."""
    shape = (8, 512, 512)
    (sm,) = estimate(one_op("ttir.softmax", [tensor(shape)], tensor(shape), {"dimension": -1}))
    (ex,) = estimate(one_op("ttir.exp", [tensor(shape)], tensor(shape)))
    n, rows = 8 * 16 * 16, 8 * 16
    T = pm.TILE_CYCLES
    passes = T["reduce_cols"] + T["subtract"] + T["exp_approx"] + T["reduce_cols"] + T["multiply"]
    assert sm.compute_cycles == n * passes + rows * T["reciprocal_approx"]
    assert ex.compute_cycles == n * T["exp"]
    assert T["exp_approx"] < T["exp"] and T["reciprocal_approx"] < T["reciprocal"]


def test_cache_write_cost_does_not_grow_with_the_cache():
    """update_cache writes one row in place: a 64-row and a 4096-row cache cost the same."""
    def cost(rows):
        descs = [bm.TensorDesc("cache", (1, 8, rows, 64), "float32", "Float32"),
                 bm.TensorDesc("new", (1, 8, 1, 64), "float32", "Float32"), bm.TensorDesc("pos", (1,), "int32")]
        (e,) = estimate(one_op("ttir.update_cache", descs, bm.TensorDesc("out", (1, 8, rows, 64), "float32"), {}), WH)
        return e.dram_bytes, e.compute_cycles
    assert cost(64) == cost(4096)
