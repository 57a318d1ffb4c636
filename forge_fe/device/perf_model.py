"""Performance model of the emulated device: a per-op roofline, as tt-mlir estimates ops.

For every TTIR op of a device program it estimates

    memory_s  = dram_bytes / system.dram_bandwidth
    compute_s = compute_cycles / (cores * system.clock_hz)
    time_s    = max(memory_s, compute_s) / 0.7          (tt-mlir's utilization derate)
    roofline_s = max(memory_s, compute_cycles / (grid_cores * clock_hz))   (lower bound)

and a program's latency is the sum over its ops (ops run one after another; no
overlap between ops is modeled). Hardware numbers come from DESIGN.md ("Hardware
numbers for the emulator and performance model") through `SystemDesc`: grid,
clock, DRAM bandwidth, L1 size. Nothing here is tied to one chip.

Assumptions (each is a choice made for a first-order model; calibrate on silicon):

* Tiles are 32x32. Every tensor's last two dims are padded up to multiples of 32,
  for bytes and for compute: a 1x768 row costs a full 32x768 block of tiles. A
  rank-1 tensor [W] is one row [1, W]; a scalar is one tile.
* DRAM bytes = every input operand read once + every output written once, in
  its own data format, tile-padded. Weights and constants live in DRAM and are
  read on every run. An operand used twice by one op (x * x) is read twice, as
  two reader streams would. Two exceptions, since the device reads only what it
  needs: `slice_static` reads the slice, not the whole input, and `embedding`
  reads the gathered rows, not the whole table.
* Compute cores: Wormhole n150 has 72 Tensix cores enabled of 80, but the
  compute grid programs use is 8x8 = 64; we use grid[0] * grid[1] cores. An op
  uses min(grid cores, its units of independent work): output tiles for
  matmul/conv/eltwise/data movement, rows of tiles for softmax/layer_norm.
  Work is assumed perfectly balanced (65 tiles on 64 cores cost 65/64, not 2).
* Matrix engine (source: tt-metal tech_reports/matrix_engine/matrix_engine.md):
  8x16 @ 16x16 per cycle = 2048 multiply-accumulates per cycle at LoFi, so a
  32x32x32 tile matmul (32768 MACs) takes 16 cycles per fidelity phase:
  16/32/48/64 cycles for LoFi/HiFi2/HiFi3/HiFi4 (DESIGN.md). Tenstorrent's Buda
  op model measured 15.5 cycles per tile (fp16) and 14.2 (bfp8) on Wormhole B0,
  so 16 holds up. Bfp8_b/Bfp4_b operands run through the same engine at the
  same rate (they only shrink DRAM bytes). Float32 (and int32) operands need
  all mantissa slices, so they are modeled at HiFi4 whatever the configured
  fidelity.
* conv2d is an implicit GEMM as TTNN runs it (see `_conv2d`): M = N*OH*OW, K = Cin*KH*KW (a grouped or
  depthwise conv runs as the dense conv of its zero-filled block-diagonal weight), N = Cout; a conv that
  is not a plain 1x1 matmul also tilizes its im2col activation (M x K tiles) and launches a halo op (one
  untilize pass over its input tiles).
* Other engines use `TILE_CYCLES`: cycles per 32x32 tile on one core. The
  measured entries come from Tenstorrent's Buda backend op model for Wormhole B0
  (tenstorrent/tt-budabackend, perf_lib/op_model/params/wormhole_b0/params_v3.yaml,
  "base" tile_weight, rounded); they include unpack and pack, which is why an
  add costs ~50 cycles although the FPU alone does 8x16 elements per cycle
  (8 cycles per tile). Entries marked "est." were not measured there and are
  derived as their comments say. Blackhole uses the same per-tile numbers (the
  tech report says its matrix engine numbers apply to both).
* Fidelity on the FPU (tech report): add/sub/max ignore it; eltwise multiply and
  reduce sum/avg run one pass per phase (8 and 4 cycles per tile per phase). We
  take max(measured per-tile cost, phases x FPU math), so fidelity only matters
  when the math, not unpack/pack, is the bottleneck (never for those ops at
  HiFi4: 32 < 55 cycles). SFPU ops ignore fidelity.
* Reductions, softmax and layer_norm are a few passes over the tiles (see
  `_reduce_tile_cycles`, `_softmax`, `_layer_norm` for the pass counts).
* Pooling makes kernel_h*kernel_w passes over the output tiles (one FPU
  reduce/max-pool pass each).
* Data movement (reshape, permute, slice, concat, broadcast, repeat, embedding,
  typecast) costs one datacopy (unpack + pack) per output tile, so it is memory
  bound; a permute/transpose that moves either of the last two dims adds a
  transpose_xy per tile.
* `fits_l1`: whether the op's tensors, evenly sharded over its cores
  ((input bytes + output bytes) / cores), fit in `system.l1_size`, which already
  is the usable L1 (1464 KB of 1.5 MB). Informational only; spilling is not
  priced.
* An op name without a rule gets the data-movement default and is reported as
  `rule == "default"` (and in `summarize(...)["default_modeled_ops"]`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from forge_fe.binary import model as bm
from forge_fe.config import MathFidelity

TILE = 32
TILE_ELEMS = TILE * TILE
UTILIZATION = 0.7            # tt-mlir's derate of the roofline

# Bytes per element of each device storage format. Block-float tiles carry one
# shared 8-bit exponent per 16 values: 64 exponent bytes per 1024-value tile.
BYTES_PER_ELEMENT = {
    "Float32": 4.0,
    "Float16_b": 2.0,
    "Bfp8_b": (1024 + 64) / 1024,
    "Bfp4_b": (512 + 64) / 1024,
}
_INT_DTYPES = {"int32", "int64", "int16", "int8", "uint8", "uint32"}   # all si32/ui32 on the device
_HALF_DTYPES = {"bfloat16", "float16", "bool"}                          # bf16 on the device

MATMUL_TILE_CYCLES_PER_PHASE = 16     # 32x32x32 tile matmul, one fidelity phase
FPU_ELTWISE_CYCLES_PER_PHASE = 8      # 8x16 elements per cycle -> 8 cycles per tile
FPU_REDUCE_CYCLES_PER_PHASE = 4       # 16x16 reduce per cycle -> 4 cycles per tile

# Cycles per 32x32 tile on one core. Measured values: Buda op model, Wormhole B0
# (see module docstring); "est." values are estimates to calibrate.
TILE_CYCLES = {
    # FPU eltwise and data paths
    "datacopy": 56,        # nop / datacopy: unpack + pack of one tile
    "add": 50,
    "subtract": 50,
    "multiply": 55,
    "transpose": 56,       # est.: one more FPU datacopy pass with transpose_xy
    "tilize": 56,          # est.: tilize_block, one unpack + pack of a row-major tile, like datacopy
    "untilize": 56,        # est.: pack_untilize, one unpack + pack of a tile, like datacopy
    "reduce_rows": 59,     # reduce over dim -2 (Buda "reduce r")
    "reduce_cols": 91,     # reduce over dim -1 (Buda "reduce c")
    # SFPU (vector engine) eltwise
    "maximum": 334,
    "minimum": 334,        # est.: same compare-select routine as maximum
    "compare": 334,        # est.: eq/ne/gt/ge/lt/le, logical and/or: a compare-select like maximum
    "where": 334,          # est.: ternary select, like maximum
    "abs": 171,
    "simple_unary": 171,   # est.: relu, neg, sign, floor, ceil, logical_not: a few SFPU instructions, like abs
    "clamp": 204,          # est.: two compare-selects on one operand, like square/tanh
    "square": 204,
    "tanh": 204,
    "sigmoid": 266,
    "gelu": 270,
    "erf": 270,            # est.: a polynomial like gelu's
    "leaky_relu": 322,
    "silu": 321,           # est.: sigmoid + multiply
    "log": 718,
    "sqrt": 910,
    "rsqrt": 910,          # est.: one SFPU routine like sqrt
    "reciprocal": 910,
    "reciprocal_approx": 781,   # approximate mode (Buda "reciprocal: approx")
    "sin": 910,
    "cos": 1548,
    "exp": 1771,           # precise mode (ttnn.exp's default; the emulator computes exact exp)
    "exp_approx": 813,     # approximate mode (Buda "exp: approx"), what TTNN's softmax runs by default
    "div": 965,            # est.: reciprocal + multiply
    "pow": 2544,           # est.: exp(y * log x) = log + multiply + exp
    "prod_inner": 275,     # est.: 5 halving multiply passes inside a tile (log2 32)
}


def bytes_per_element(data_format, dtype: str) -> float:
    """Device bytes per element: Float32 4, Float16_b 2, Bfp8_b 1088/1024, Bfp4_b 576/1024.

    Integer tensors are int32 on the device (4 bytes) whatever their format; a
    16-bit dtype (bfloat16, or bool, which the device holds as bf16) under the
    default "Float32" format is 2 bytes."""
    if dtype in _INT_DTYPES:
        return 4.0
    fmt = getattr(data_format, "name", data_format)
    try:
        bpe = BYTES_PER_ELEMENT[fmt]
    except KeyError:
        raise ValueError(f"unknown data format {fmt!r}; expected one of {sorted(BYTES_PER_ELEMENT)}") from None
    if fmt == "Float32" and dtype in _HALF_DTYPES:
        return 2.0
    return bpe


def tiles(shape) -> int:
    """Number of 32x32 tiles of a tensor once its last two dims are padded to 32."""
    shape = [int(d) for d in shape]
    if not shape:
        return 1
    if len(shape) == 1:
        shape = [1] + shape
    return math.prod(shape[:-2]) * -(-shape[-2] // TILE) * -(-shape[-1] // TILE)


def tensor_bytes(t: bm.TensorDesc, shape=None) -> float:
    """DRAM bytes of a tile-padded tensor (of `shape` if given) in `t`'s format."""
    return tiles(t.shape if shape is None else shape) * TILE_ELEMS * bytes_per_element(t.data_format, t.dtype)


def _wide(t: bm.TensorDesc) -> bool:
    """Float32 or integer data: the matrix engine needs all four phases for it."""
    return t.dtype in _INT_DTYPES or (bytes_per_element(t.data_format, t.dtype) == 4.0)


def _tiles_along(shape, dim: int) -> int:
    rank = len(shape)
    if rank <= 1 or dim == rank - 1:
        return -(-int(shape[-1]) // TILE) if shape else 1
    if dim == rank - 2:
        return -(-int(shape[-2]) // TILE)
    return int(shape[dim])


# ---- rules ------------------------------------------------------------------------

@dataclass
class OpContext:
    """What a cost rule sees: the op, its tensor descriptors and the configured fidelity."""
    op: bm.Op
    ins: list[bm.TensorDesc]
    outs: list[bm.TensorDesc]
    fidelity: int

    @property
    def attrs(self) -> dict:
        return self.op.attrs or {}

    @property
    def out(self) -> bm.TensorDesc:
        return self.outs[0]

    def phases(self, operands=None) -> int:
        """Fidelity phases: the configured ones, or 4 when an operand is Float32/int."""
        operands = self.ins if operands is None else operands
        return 4 if any(_wide(t) for t in operands) else self.fidelity


@dataclass
class Cost:
    """A rule's answer. `parallel` = units of independent work (cores = min(grid, parallel));
    `dram_bytes` overrides the default inputs-read + outputs-written count when set."""
    flops: float
    cycles: float
    parallel: int
    dram_bytes: float | None = None
    #: DRAM bytes read per input when that input is in DRAM (default: its tile-padded size)
    operand_bytes: list | None = None
    #: (batch, M tiles, K tiles, N tiles, bytes per A tile, bytes per B tile) of a matrix-engine op
    gemm: tuple | None = None
    #: cycles (summed over cores, as `cycles`) of helper device ops TTNN launches before this one on the
    #: same cores (conv2d's halo), and how many such launches
    aux_cycles: float = 0.0
    aux_launches: int = 0


RULES: dict[str, tuple[str, Callable[[OpContext], Cost]]] = {}


def rule(family: str, *names: str):
    def reg(fn):
        for n in names:
            RULES[n] = (family, fn)
        return fn
    return reg


def _fpu(measured: float, per_phase: float, phases: int) -> float:
    """Per-tile cycles of an FPU op: unpack/pack bound (measured) unless the phases' math is slower."""
    return max(measured, per_phase * phases)


def _eltwise(names, cycles_key: str, per_phase: float = 0.0, flops_per_elem: float = 1.0):
    """Eltwise family: per output tile one pass costing TILE_CYCLES[cycles_key]."""
    def cost(c: OpContext) -> Cost:
        n = tiles(c.out.shape)
        per_tile = _fpu(TILE_CYCLES[cycles_key], per_phase, c.phases()) if per_phase else TILE_CYCLES[cycles_key]
        return Cost(flops_per_elem * math.prod(c.out.shape), n * per_tile, n)
    rule("eltwise", *names)(cost)


_eltwise(["ttir.add", "ttir.subtract"], "add")
_eltwise(["ttir.multiply"], "multiply", per_phase=FPU_ELTWISE_CYCLES_PER_PHASE)
for _name, _key in {
    "maximum": "maximum", "minimum": "minimum", "div": "div", "pow": "pow",
    "eq": "compare", "ne": "compare", "gt": "compare", "ge": "compare", "lt": "compare", "le": "compare",
    "logical_and": "compare", "logical_or": "compare", "where": "where",
    "relu": "simple_unary", "neg": "simple_unary", "sign": "simple_unary", "floor": "simple_unary",
    "ceil": "simple_unary", "logical_not": "simple_unary", "abs": "abs", "clamp_scalar": "clamp",
    "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu", "erf": "erf", "leaky_relu": "leaky_relu",
    "silu": "silu", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt",
    "reciprocal": "reciprocal", "sin": "sin", "cos": "cos",
}.items():
    _eltwise([f"ttir.{_name}"], _key)


# -- matmul / linear / conv2d: the matrix engine

def _gemm_cost(c: OpContext, batch: int, m: int, k: int, n: int, operands) -> Cost:
    mt, kt, nt = (-(-x // TILE) for x in (m, k, n))
    out_tiles = batch * mt * nt
    cycles = batch * mt * kt * nt * MATMUL_TILE_CYCLES_PER_PHASE * c.phases(operands)
    tile_bytes = [TILE_ELEMS * bytes_per_element(t.data_format, t.dtype) for t in operands]
    return Cost(2.0 * batch * m * n * k, cycles, out_tiles, gemm=(batch, mt, kt, nt, *tile_bytes))


def _with_bias(cost: Cost, c: OpContext, bias_index: int) -> Cost:
    """A bias operand costs one fused add pass over the output tiles."""
    if len(c.ins) > bias_index:
        cost.cycles += cost.parallel * TILE_CYCLES["add"]
        cost.flops += math.prod(c.out.shape)
    return cost


@rule("matmul", "ttir.matmul", "ttir.linear")
def _matmul(c: OpContext) -> Cost:
    """[..., M, K] @ [..., K, N]: ceil(M/32)*ceil(K/32)*ceil(N/32) tile matmuls per batch."""
    a, b = list(c.ins[0].shape), list(c.ins[1].shape)
    a = [1] + a if len(a) == 1 else a
    b = b + [1] if len(b) == 1 else b
    if c.attrs.get("transpose_a"):
        a[-2], a[-1] = a[-1], a[-2]
    if c.attrs.get("transpose_b"):
        b[-2], b[-1] = b[-1], b[-2]
    try:
        batch = math.prod(np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])))
    except ValueError:
        batch = math.prod(c.out.shape[:-2])
    cost = _gemm_cost(c, batch, a[-2], a[-1], b[-1], c.ins[:2])
    return _with_bias(cost, c, 2) if c.op.name == "ttir.linear" else cost


def _is_matmul_conv(kh: int, kw: int, attrs: dict, groups: int) -> bool:
    """TTNN runs a conv as a plain matmul on its (already tiled) input only when it is 1x1, stride 1,
    unpadded, undilated and ungrouped (tt-metal ttnn/cpp/ttnn/operations/conv/conv2d/conv2d_utils.cpp,
    use_matmul_for_1x1_conv, read at commit c2aaf71d37f3); every other conv goes through the sliding-window
    path: a halo op, then the conv kernel, which tilizes its im2col activation blocks."""
    stride = list(attrs.get("stride", [1, 1]))
    padding = list(attrs.get("padding", [0, 0, 0, 0]))
    dilation = list(attrs.get("dilation", [1, 1]))
    return kh == 1 and kw == 1 and groups == 1 and all(int(v) == 1 for v in stride + dilation) \
        and all(int(v) == 0 for v in padding)


@rule("conv", "ttir.conv2d")
def _conv2d(c: OpContext) -> Cost:
    """Implicit GEMM as TTNN runs it: M = N*OH*OW (NHWC output), K = Cin*KH*KW, N = Cout.

    Grouped convs (depthwise included) run as ONE dense conv: TTNN's prepare_conv2d_weights expands the
    [Cout, Cin/groups, KH, KW] weight to a zero-filled block-diagonal [Cout, Cin, KH, KW]
    (convert_conv_weight_tensor_to_grouped_layout, called from prepare_conv_weights_internal "if groups > 1";
    tt-metal ttnn/cpp/ttnn/operations/conv/conv2d/prepare_conv2d_weights.cpp at c2aaf71d37f3), so K is the
    full Cin*KH*KW and the weight in DRAM is the dense matrix. A depthwise 3x3 over C channels costs the
    matmul of a dense C->C 3x3 conv (tt-metal issue #25523 proposes a pool-based depthwise kernel instead).

    Every conv that is not a plain 1x1 matmul (`_is_matmul_conv`) adds the sliding-window costs:
    * the conv compute kernel tilizes each im2col activation block before the matmul (tilize_in in
      ttnn/cpp/ttnn/operations/conv/conv2d/device/kernels/conv_bmm_tilize_col_major_out_blocks.cpp):
      one unpack+pack pass per activation tile, M x K tiles;
    * the halo op (ttnn::halo, called in conv/conv2d/conv2d.cpp before the conv micro-op) is a second launch that
      untilizes the input shard and gathers the overlapping rows and padding: one pass per input tile."""
    n, oh, ow, cout = c.out.shape
    _, cin_g, kh, kw = c.ins[1].shape
    groups = int(c.attrs.get("groups", 1))
    k = cin_g * groups * kh * kw
    m = n * oh * ow
    cost = _gemm_cost(c, 1, m, k, cout, c.ins[:2])
    cost.flops = 2.0 * m * cout * cin_g * kh * kw          # useful math: the block diagonal only
    # The weight lives in DRAM as its (K x N) GEMM matrix, tiled as such: padding OIHW's
    # last two dims (KH, KW) to 32x32 would count a 1x1 kernel 1024 times over.
    w = c.ins[1]
    cost.operand_bytes = [tensor_bytes(c.ins[0]), tensor_bytes(w, (k, cout))] + \
        [tensor_bytes(t) for t in c.ins[2:]]
    cost = _with_bias(cost, c, 2)
    if not _is_matmul_conv(kh, kw, c.attrs, groups):
        _, mt, kt, _, _, _ = cost.gemm
        cost.cycles += mt * kt * TILE_CYCLES["tilize"]
        cost.aux_cycles = tiles((math.prod(c.ins[0].shape[:-1]), c.ins[0].shape[-1])) * TILE_CYCLES["untilize"]
        cost.aux_launches = 1
    return cost


# -- reductions, softmax, layer_norm: passes over the tiles

def _norm_dims(dims, rank: int) -> list[int]:
    if dims is None:
        return list(range(rank))
    dims = [dims] if isinstance(dims, int) else list(dims)
    return sorted({d % rank for d in dims}) if rank else []


def _reduce_tile_cycles(kind: str, dims: list[int], rank: int, phases: int) -> float:
    """Cycles per input tile of a reduction over `dims`: one pass per kind of reduced dim.

    dim -1: FPU reduce (91, measured); dim -2: FPU reduce (59, measured); sum/mean
    reduces run one pass per fidelity phase on the FPU (4 cycles/tile/phase, not
    binding). Outer dims fold tile by tile with the combining eltwise op (add 50,
    maximum 334, multiply 55). prod has no FPU reduce: inside a tile it halves
    five times with multiplies (est. 275)."""
    combine = {"sum": "add", "max": "maximum", "prod": "multiply"}[kind]
    cycles = 0.0
    for inner, key in ((rank - 1, "reduce_cols"), (rank - 2, "reduce_rows")):
        if inner >= 0 and inner in dims:
            if kind == "prod":
                cycles += TILE_CYCLES["prod_inner"]
            elif kind == "sum":
                cycles += _fpu(TILE_CYCLES[key], FPU_REDUCE_CYCLES_PER_PHASE, phases)
            else:
                cycles += TILE_CYCLES[key]
    if any(d < rank - 2 for d in dims):
        cycles += TILE_CYCLES[combine]
    return cycles


def _reduction(kind: str):
    def cost(c: OpContext) -> Cost:
        x = c.ins[0]
        rank = len(x.shape)
        dims = _norm_dims(c.attrs.get("dim_arg"), rank)
        n_in = tiles(x.shape)
        if not dims:                                     # nothing to reduce: a copy
            return Cost(0.0, n_in * TILE_CYCLES["datacopy"], n_in)
        per_tile = _reduce_tile_cycles(kind, dims, rank, c.phases())
        return Cost(float(math.prod(x.shape)), n_in * per_tile, max(1, tiles(c.out.shape)))
    return cost


rule("reduce", "ttir.sum", "ttir.mean")(_reduction("sum"))
rule("reduce", "ttir.max", "ttir.min")(_reduction("max"))
rule("reduce", "ttir.prod")(_reduction("prod"))


@rule("softmax", "ttir.softmax")
def _softmax(c: OpContext) -> Cost:
    """Stable softmax: per input tile max-reduce, subtract, exp, sum-reduce, multiply
    (5 passes); per row of tiles one reciprocal. Each row of tiles stays on one core.

    exp and the reciprocal run in the SFPU's approximate mode: every ttnn softmax entry point builds its
    compute config with init_device_compute_kernel_config(arch, config, MathFidelity::HiFi4,
    /*default_approx_mode=*/true, ...) (tt-metal ttnn/cpp/ttnn/operations/normalization/softmax/device/
    softmax_device_operation.cpp at 001a9c01f6ea) and the kernels call exp_tile<EXP_APPROX>
    (kernels/attention/compute/softmax_sharded.cpp). Approximate exp costs 813 cycles per tile against
    1771 precise (Buda op model, params_v3.yaml "exp: approx")."""
    x = c.ins[0]
    rank = len(x.shape)
    d = int(c.attrs.get("dimension", -1)) % max(rank, 1)
    n = tiles(x.shape)
    rows = max(1, n // max(1, _tiles_along(x.shape, d)))
    per_tile = (_reduce_tile_cycles("max", [d], rank, c.phases()) + TILE_CYCLES["subtract"]
                + TILE_CYCLES["exp_approx"] + _reduce_tile_cycles("sum", [d], rank, c.phases())
                + TILE_CYCLES["multiply"])
    return Cost(5.0 * math.prod(x.shape), n * per_tile + rows * TILE_CYCLES["reciprocal_approx"], rows)


@rule("layer_norm", "ttir.layer_norm")
def _layer_norm(c: OpContext) -> Cost:
    """Per input tile: sum-reduce (mean), subtract, square, sum-reduce (var), multiply by
    1/std, then multiply by gamma and add beta when given (5 to 7 passes); per row of
    tiles: add eps and rsqrt. Each row of tiles stays on one core."""
    x = c.ins[0]
    rank = len(x.shape)
    n_norm = len(c.attrs.get("normalized_shape") or [x.shape[-1]])
    dims = list(range(rank - n_norm, rank))
    n = tiles(x.shape)
    rows = max(1, n // max(1, tiles(x.shape[rank - n_norm:])))
    reduce = _reduce_tile_cycles("sum", dims, rank, c.phases())
    per_tile = 2 * reduce + TILE_CYCLES["subtract"] + 2 * TILE_CYCLES["multiply"]
    per_tile += TILE_CYCLES["multiply"] if len(c.ins) > 1 else 0
    per_tile += TILE_CYCLES["add"] if len(c.ins) > 2 else 0
    per_row = TILE_CYCLES["add"] + TILE_CYCLES["rsqrt"]
    return Cost(8.0 * math.prod(x.shape), n * per_tile + rows * per_row, rows)


@rule("rms_norm", "ttir.rms_norm")
def _rms_norm(c: OpContext) -> Cost:
    """Per input tile: square, sum-reduce (mean of squares), multiply by the row's rsqrt, and by
    gamma when given (3 to 4 passes); per row of tiles: add eps and rsqrt. Rows stay on one core."""
    x = c.ins[0]
    rank = len(x.shape)
    n_norm = len(c.attrs.get("normalized_shape") or [x.shape[-1]])
    n = tiles(x.shape)
    rows = max(1, n // max(1, tiles(x.shape[rank - n_norm:])))
    per_tile = _reduce_tile_cycles("sum", list(range(rank - n_norm, rank)), rank, c.phases()) \
        + 2 * TILE_CYCLES["multiply"] + (TILE_CYCLES["multiply"] if len(c.ins) > 1 else 0)
    return Cost(4.0 * math.prod(x.shape), n * per_tile + rows * (TILE_CYCLES["add"] + TILE_CYCLES["rsqrt"]), rows)



@rule("rotary_embedding", "ttir.rotary_embedding")
def _rotary_embedding(c: OpContext) -> Cost:
    """Per output tile: the rotate-half (tt-metal's rotary_embedding_llama runs it as a tile matmul
    by a fixed permutation matrix, a multiply-sized FPU pass), x*cos, rot*sin and their sum."""
    n = tiles(c.out.shape)
    return Cost(4.0 * math.prod(c.out.shape), n * (3 * TILE_CYCLES["multiply"] + TILE_CYCLES["add"]), n)

# -- pooling

def _pool(kind: str):
    def cost(c: OpContext) -> Cost:
        """kernel_h*kernel_w passes over the output tiles of the [N*OH*OW, C] output,
        each one FPU reduce/max-pool pass (59 cycles/tile; avg also per fidelity phase)."""
        n, oh, ow, ch = c.out.shape
        kh, kw = c.attrs.get("kernel", [1, 1])
        out_tiles = -(-(n * oh * ow) // TILE) * -(-ch // TILE)
        per_pass = TILE_CYCLES["reduce_rows"]
        if kind == "avg":
            per_pass = _fpu(per_pass, FPU_REDUCE_CYCLES_PER_PHASE, c.phases())
        return Cost(float(n * oh * ow * ch * kh * kw), out_tiles * kh * kw * per_pass, out_tiles)
    return cost


rule("pool", "ttir.max_pool2d")(_pool("max"))
rule("pool", "ttir.avg_pool2d")(_pool("avg"))


# -- data movement: memory bound

def _moves_last_two(perm) -> bool:
    rank = len(perm)
    return rank >= 2 and (perm[-1] != rank - 1 or perm[-2] != rank - 2)


def _datacopy(c: OpContext, transpose: bool = False) -> Cost:
    n = tiles(c.out.shape)
    per_tile = TILE_CYCLES["datacopy"] + (TILE_CYCLES["transpose"] if transpose else 0)
    return Cost(0.0, n * per_tile, n)


@rule("data_movement", "ttir.concat", "ttir.broadcast", "ttir.repeat", "ttir.typecast")
def _copy(c: OpContext) -> Cost:
    """One datacopy (unpack + pack) per output tile; DRAM read + write of the tensors."""
    return _datacopy(c)


@rule("data_movement", "ttir.reshape")
def _reshape(c: OpContext) -> Cost:
    """Tiled tensors: a reshape keeping the last dim and the tile rows is metadata (no cycles, no
    bytes); one between tile-aligned last dims (splitting heads: [.., 768] -> [.., 12, 64]) re-tiles
    in one datacopy pass; any other is untilize + row-major reshape + tilize, three passes."""
    from forge_fe.device.perf_program import is_view_reshape
    if is_view_reshape(c.ins[0].shape, c.out.shape):
        return Cost(0.0, 0.0, 1, dram_bytes=0.0, operand_bytes=[0.0])
    cost = _datacopy(c)
    aligned = all(t.shape and int(t.shape[-1]) % TILE == 0 for t in (c.ins[0], c.out))
    cost.cycles *= 1 if aligned else 3
    return cost


@rule("data_movement", "ttir.permute")
def _permute(c: OpContext) -> Cost:
    """Moving whole tiles is a copy; moving either of the last two dims transposes each tile."""
    return _datacopy(c, _moves_last_two(list(c.attrs.get("permutation", []))))


@rule("data_movement", "ttir.transpose")
def _transpose(c: OpContext) -> Cost:
    rank = len(c.ins[0].shape)
    dims = {int(c.attrs.get("dim0", -2)) % rank, int(c.attrs.get("dim1", -1)) % rank} if rank else set()
    return _datacopy(c, bool(dims & {rank - 1, rank - 2}) and len(dims) == 2)


@rule("data_movement", "ttir.slice_static")
def _slice(c: OpContext) -> Cost:
    """Reads only the slice (the output's shape, in the input's format), then writes it."""
    cost = _datacopy(c)
    cost.operand_bytes = [tensor_bytes(c.ins[0], c.out.shape)]
    return cost


@rule("data_movement", "ttir.embedding")
def _embedding(c: OpContext) -> Cost:
    """Reads the indices and the gathered rows (not the whole table), writes the output."""
    idx, table = c.ins[0], c.ins[1]
    cost = _datacopy(c)
    cost.operand_bytes = [tensor_bytes(idx), tensor_bytes(table, c.out.shape)]
    return cost


@rule("data_movement", "ttir.fill_cache", "ttir.update_cache")
def _cache_write(c: OpContext) -> Cost:
    """A KV-cache write updates the cache in place: it reads and writes only the new rows."""
    new = c.ins[1]
    n = tiles(new.shape)
    return Cost(0.0, n * TILE_CYCLES["datacopy"], n, dram_bytes=2 * tensor_bytes(new))


# Multi-chip ops: the single-chip roofline leaves them to the link model (forge_fe.device.mesh_perf):
# zero compute, zero DRAM traffic here.
@rule("collective", "ttir.mesh_shard", "ttir.mesh_partition", "ttir.all_reduce", "ttir.all_gather",
      "ttir.reduce_scatter")
def _priced_by_links(c: OpContext) -> Cost:
    return Cost(0.0, 0.0, 1, dram_bytes=0.0)


# -- gradients (training; forge_fe/op/grad.py)

@rule("conv", "ttir.conv_transpose2d")
def _conv_transpose2d(c: OpContext) -> Cost:
    """Each input pixel times the (Cin/groups x Cout/groups*KH*KW) weight: GEMM with M = N*IH*IW,
    K = Cin/groups, N = Cout*KH*KW (the scatter form; no multiplies by inserted zeros)."""
    n, ih, iw, cin = c.ins[0].shape
    _, cout_g, kh, kw = c.ins[1].shape
    groups = int(c.attrs.get("groups", 1))
    return _with_bias(_gemm_cost(c, 1, n * ih * iw, cin // groups, cout_g * groups * kh * kw, c.ins[:2]), c, 2)


# max-pool backward: one pass per window position over the input-sized gradient, as the pool itself
rule("pool", "ttir.max_pool2d_grad")(_pool("max"))


@rule("data_movement", "ttir.embedding_backward")
def _embedding_backward(c: OpContext) -> Cost:
    """Scatter-add of the gradient rows into the table: reads indices and gradient, writes the table."""
    idx, grad = c.ins[0], c.ins[2]
    n = tiles(grad.shape)
    cost = Cost(float(math.prod(grad.shape)), n * (TILE_CYCLES["datacopy"] + TILE_CYCLES["add"]), n)
    cost.dram_bytes = tensor_bytes(idx) + tensor_bytes(grad) + tensor_bytes(c.out)
    return cost


DEFAULT_RULE = ("default", _copy)


# ---- estimates --------------------------------------------------------------------

@dataclass
class OpEstimate:
    index: int
    op: str
    loc: str
    flops: float            # useful math (2*M*N*K for matmul; unpadded elements)
    dram_bytes: float       # DRAM bytes read + written: operands and result not resident in L1
    compute_cycles: float   # engine cycles on ONE core (plus those of the activations fused into it)
    cores: int              # cores the op runs on: min(units of work, cores of its result's sharding)
    time_s: float           # max(dram_bytes / bw, per-core cycles / clock) / 0.7 + launch overhead
    roofline_s: float       # max(dram_bytes / bw, compute_cycles / (grid cores * clock))
    bound: str              # "compute", "memory", "noc" (operand multicast), or "fused"/"view" (free)
    fits_l1: bool           # (input + output bytes) / cores <= L1 (usable); informational
    rule: str = ""          # cost family used ("matmul", "eltwise", ..., "default" for unknown ops)
    l1_inputs: int = 0      # operands read from L1 (sharded activations) instead of DRAM
    out_l1: bool = False    # result kept in L1
    sharding: str = ""      # height / width / block / interleaved (result in DRAM)
    fused_into: int | None = None   # index of the op this one runs inside (its cost is there)


def grid_cores(system: bm.SystemDesc) -> int:
    return int(system.grid[0]) * int(system.grid[1])


#: fixed cost of one launched device op (kernel dispatch, program switch, semaphores), seconds.
#: Calibrated against tt-metal's published per-model figures (benchmarks/perf_calibration.py,
#: docs/numerics.md); fused activations and view reshapes launch nothing.
OP_OVERHEAD_S = {"wormhole_b0": 4e-6, "blackhole": 3e-6}
DEFAULT_OP_OVERHEAD_S = 4e-6
#: bytes per cycle one core receives over the NoC (multicast matmul operands; Tensix NoC: 32 B/cycle)
NOC_BYTES_PER_CYCLE = 32.0


def _op_cost(index: int, op: bm.Op, program: bm.Program, fidelity) -> tuple[OpContext, str, Cost]:
    ctx = OpContext(op, [program.tensors[i] for i in op.inputs], [program.tensors[i] for i in op.outputs],
                    int(fidelity))
    family, fn = RULES.get(op.name, DEFAULT_RULE)
    try:
        return ctx, family, fn(ctx)
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"perf model: cannot estimate op {index} {op.name} ({op.loc or 'no loc'}): {exc}") from exc


def _noc_cycles(cost: Cost, scheme: str, core_grid) -> float:
    """Cycles one core spends receiving the matmul operands it does not hold: height-sharded, its
    rows of A are local and all of B is multicast to it; block-sharded, its row block of A comes
    along the core row and its column block of B down the core column; width-sharded, all of A."""
    if cost.gemm is None:
        return 0.0
    batch, mt, kt, nt, a_tile, b_tile = cost.gemm
    cr, cc = max(1, core_grid[0]), max(1, core_grid[1])
    if batch > 1:        # batched (attention) matmuls: whole problems spread over the cores
        return batch * kt * (mt * a_tile + nt * b_tile) / (cr * cc) / NOC_BYTES_PER_CYCLE
    a = {"height": 0, "width": mt}.get(scheme, -(-mt // cr))
    b = {"height": nt, "width": -(-nt // (cr * cc))}.get(scheme, -(-nt // cc))
    return kt * (a * a_tile + b * b_tile) / NOC_BYTES_PER_CYCLE


def _finish(index, op, ctx, family, cost, system, place=None, extra_cycles=0.0) -> OpEstimate:
    from forge_fe.device.perf_program import sharding
    io_bytes = sum(tensor_bytes(t) for t in ctx.ins) + sum(tensor_bytes(t) for t in ctx.outs)
    grid = grid_cores(system)
    overhead = OP_OVERHEAD_S.get(system.arch, DEFAULT_OP_OVERHEAD_S)
    cycles = cost.cycles + extra_cycles
    if place is None:                         # the op alone: operands and result in DRAM
        dram = io_bytes if cost.dram_bytes is None else cost.dram_bytes
        if cost.operand_bytes is not None and cost.dram_bytes is None:
            dram = sum(cost.operand_bytes) + sum(tensor_bytes(t) for t in ctx.outs)
        l1_inputs, out_l1, scheme, fused_into = 0, False, "interleaved", None
        shard, out_cores, core_grid = sharding(ctx.out.shape, system.grid) if ctx.outs else ("", grid, (1, 1))
    else:
        if cost.dram_bytes is not None and cost.operand_bytes is None:
            dram = cost.dram_bytes            # the rule counted its own traffic (in-place cache writes)
        else:
            operand = cost.operand_bytes or [tensor_bytes(t) for t in ctx.ins]
            dram = sum(b for b, in_l1 in zip(operand, place.in_l1) if not in_l1)
            if not (place.out_l1 or place.view or place.prologue):
                dram += sum(tensor_bytes(t) for t in ctx.outs)
        l1_inputs, out_l1, scheme, fused_into = sum(place.in_l1), place.out_l1, place.scheme, place.fused_into
        shard, out_cores, core_grid = sharding(ctx.out.shape, system.grid) if ctx.outs else ("", grid, (1, 1))
        if place.prologue:      # reads its other operands, writes nothing, launches nothing; cycles in the consumer
            return OpEstimate(index, op.name, op.loc, float(cost.flops), float(dram), 0.0, 0, 
                              dram / system.dram_bandwidth / UTILIZATION, dram / system.dram_bandwidth, "fused",
                              True, family, l1_inputs, False, scheme, fused_into)
        if place.fused_into is not None or place.view:
            bound = "fused" if place.fused_into is not None else "view"
            return OpEstimate(index, op.name, op.loc, float(cost.flops), 0.0, 0.0, 0, 0.0, 0.0, bound,
                              True, family, l1_inputs, out_l1, scheme, fused_into)
    cores = max(1, min(grid, int(cost.parallel), out_cores))
    memory_s = dram / system.dram_bandwidth
    compute_s = cycles / (cores * system.clock_hz)
    noc_s = _noc_cycles(cost, shard, core_grid) / system.clock_hz
    busy = max(memory_s, compute_s, noc_s)
    bound = "memory" if busy == memory_s and memory_s >= compute_s else ("noc" if busy == noc_s and
                                                                         noc_s > compute_s else "compute")
    # helper ops TTNN launches first (conv2d's halo): their own cycles on the same cores, their own launches
    aux_s = cost.aux_cycles / (cores * system.clock_hz)
    return OpEstimate(
        index=index, op=op.name, loc=op.loc, flops=float(cost.flops), dram_bytes=float(dram),
        compute_cycles=float(cycles + cost.aux_cycles), cores=cores,
        time_s=(busy + aux_s) / UTILIZATION + overhead * (1 + cost.aux_launches),
        roofline_s=max(memory_s, (cycles + cost.aux_cycles) / (grid * system.clock_hz)),
        bound=bound, fits_l1=io_bytes / cores <= system.l1_size, rule=family,
        l1_inputs=l1_inputs, out_l1=out_l1, sharding=scheme, fused_into=fused_into)


def estimate_op(index: int, op: bm.Op, program: bm.Program, system: bm.SystemDesc,
                fidelity: MathFidelity = MathFidelity.HiFi4) -> OpEstimate:
    """One op on its own: its operands and result in DRAM (no placement, no fusion)."""
    ctx, family, cost = _op_cost(index, op, program, fidelity)
    return _finish(index, op, ctx, family, cost, system)


def estimate_program(program: bm.Program, system: bm.SystemDesc,
                     fidelity: MathFidelity = MathFidelity.HiFi4) -> list[OpEstimate]:
    """One estimate per op of `program`, in program order, with the program's placement
    (forge_fe.device.perf_program: fusion, L1 residency, sharding). Fused activations and view
    reshapes get zero time; a fused activation's cycles are counted in the op it runs inside.
    (Stable entry point: the multi-chip model calls it per chip.)"""
    from forge_fe.device.perf_program import plan_program
    places = plan_program(program, system, tensor_bytes)
    costs = [_op_cost(i, op, program, fidelity) for i, op in enumerate(program.ops)]
    extra = [0.0] * len(costs)
    for i, p in enumerate(places):
        if p.fused_into is not None:
            extra[p.fused_into] += costs[i][2].cycles
    return [_finish(i, op, *costs[i], system, places[i], extra[i]) for i, op in enumerate(program.ops)]


def summarize(estimates: list[OpEstimate], system: bm.SystemDesc) -> dict:
    """Program totals: latency is the sum over ops (no overlap); utilization = roofline / estimate."""
    est = sum(e.time_s for e in estimates)
    roof = sum(e.roofline_s for e in estimates)
    return {
        "arch": system.arch,
        "estimated_latency_s": est,
        "roofline_latency_s": roof,
        "utilization": roof / est if est > 0 else 1.0,
        "compute_bound_ops": sum(e.bound == "compute" for e in estimates),
        "memory_bound_ops": sum(e.bound == "memory" for e in estimates),
        "noc_bound_ops": sum(e.bound == "noc" for e in estimates),
        "free_ops": sum(e.bound in ("fused", "view") for e in estimates),   # fused activations, view reshapes
        "l1_resident_results": sum(e.out_l1 for e in estimates),
        "total_flops": sum(e.flops for e in estimates),
        "total_dram_bytes": sum(e.dram_bytes for e in estimates),
        "default_modeled_ops": sorted({e.op for e in estimates if e.rule == "default"}),
        "ops": [asdict(e) for e in estimates],
    }


def estimate_binary(binary: bm.Binary, fidelity: MathFidelity | None = None) -> dict:
    """Summaries of a binary's run-time device programs (const-eval programs run once at
    load and are left out), on `binary.system`, at the fidelity in its compute_config
    unless one is given."""
    if fidelity is None:
        fidelity = MathFidelity[(binary.compute_config or {}).get("math_fidelity", "HiFi4")]
    return {p.name: summarize(estimate_program(p, binary.system, fidelity), binary.system)
            for p in binary.programs if not p.private}
