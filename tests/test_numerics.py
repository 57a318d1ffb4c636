"""forge_fe.device.numerics: bf16 / block-float formats and math-fidelity matmul emulation."""

import ml_dtypes
import numpy as np
import pytest
import torch

from forge_fe.device import numerics as N
from forge_fe.config import DataFormat, MathFidelity

BFP = [(DataFormat.Bfp8_b, 7), (DataFormat.Bfp4_b, 3)]
ALL_DF = list(DataFormat)
F32_MIN_NORMAL = 2.0 ** -126


def f32(bits):
    """float32 tensor from uint32 bit patterns."""
    return torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.float32).copy())


def bits_of(t):
    return t.contiguous().numpy().view(np.uint32)


def bf16_ref(x: torch.Tensor) -> np.ndarray:
    return x.numpy().astype(ml_dtypes.bfloat16).astype(np.float32)


def assert_same_bits(got, want):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all(), "NaN positions differ"
    g, w = got.view(np.uint32)[~nan], want.view(np.uint32)[~nan]
    bad = np.flatnonzero(g != w)
    assert bad.size == 0, f"{bad.size} mismatches, e.g. {g[bad[:4]]} vs {w[bad[:4]]}"


def random_bits(n, seed=0):
    return np.random.default_rng(seed).integers(0, 2 ** 32, size=n, dtype=np.uint64).astype(np.uint32)


# ---- bfloat16 ---------------------------------------------------------------------------

BF16_HAND = {
    # value bits      -> expected bf16 bits (as float32 bits)
    0x3F800000: 0x3F800000,  # 1.0 exact
    0x3F808000: 0x3F800000,  # 1 + 2^-8: tie between 1 and 1+2^-7, rounds to even (1.0)
    0x3F818000: 0x3F820000,  # 1 + 3*2^-8: tie between 1+2^-7 (odd) and 1+2^-6, rounds up to even
    0x3F80C000: 0x3F810000,  # 1 + 3*2^-9: above the half-way point, rounds up to 1 + 2^-7
    0x3F807FFF: 0x3F800000,  # just below the tie: down
    0x3F808001: 0x3F810000,  # just above the tie: up
    0x7F7F0000: 0x7F7F0000,  # max finite bf16
    0x7F7F7FFF: 0x7F7F0000,  # below the tie above max finite: stays finite
    0x7F7F8000: 0x7F800000,  # tie with odd max finite: rounds up to +inf
    0x7F7FFFFF: 0x7F800000,  # float32 max: +inf
    0xFF7FFFFF: 0xFF800000,  # -float32 max: -inf
    0x80000000: 0x80000000,  # -0.0 keeps its sign
    0x00000001: 0x00000000,  # smallest subnormal: to +0
    0x00008000: 0x00000000,  # subnormal tie, even: down
    0x00018000: 0x00020000,  # subnormal tie, odd: up
    0x007FFFFF: 0x00800000,  # largest subnormal rounds up to the smallest normal
    0x7F800000: 0x7F800000,  # +inf
    0xFF800000: 0xFF800000,  # -inf
}


def test_bf16_hand_cases():
    src = np.array(list(BF16_HAND), dtype=np.uint32)
    want = np.array(list(BF16_HAND.values()), dtype=np.uint32).view(np.float32)
    got = N.round_bf16(f32(src)).numpy()
    assert_same_bits(got, want)
    assert_same_bits(got, bf16_ref(f32(src)))
    nan = N.round_bf16(torch.tensor([float("nan"), -float("nan")]))
    assert torch.isnan(nan).all()


def test_bf16_bit_identical_to_ml_dtypes_random_patterns():
    # 2^20 uniformly random bit patterns: every exponent, subnormals, inf/nan payloads.
    x = f32(random_bits(1 << 20))
    with np.errstate(invalid="ignore"):
        want = bf16_ref(x)
    assert_same_bits(N.round_bf16(x).numpy(), want)
    # The integer reference formulation agrees too.
    assert_same_bits(N._round_bf16_bits(x).numpy(), want)


def test_bf16_all_ties_and_neighbours():
    # Every high half with low half = tie, tie +- 1: the cases a wrong rounding mode breaks.
    hi = np.arange(0, 1 << 16, dtype=np.uint32) << 16
    src = np.concatenate([hi | 0x8000, hi | 0x7FFF, hi | 0x8001, hi | 0xFFFF, hi])
    x = f32(src)
    with np.errstate(invalid="ignore"):
        want = bf16_ref(x)
    assert_same_bits(N.round_bf16(x).numpy(), want)


def test_bf16_relative_error_bound():
    x = torch.randn(100_000) * torch.exp2(torch.randint(-100, 100, (100_000,)).float())
    y = N.round_bf16(x)
    assert ((y - x).abs() <= x.abs() * 2.0 ** -8).all()


def test_bf16_keeps_dtype():
    x = torch.randn(10, dtype=torch.bfloat16)
    assert N.round_bf16(x).dtype == torch.bfloat16
    assert torch.equal(N.quantize(x, DataFormat.Float16_b), x)


# ---- block floating point: reference port of tt-metal convert_u32_to_bfp --------------------

def ref_bfp_block(bits16, w):
    """Scalar port of tt-metal's convert_u32_to_bfp (is_exp_a=false, RNE, clamp) +
    unpack, with forge_fe's documented flush-to-zero of subnormal inputs/results."""
    bits16 = [int(b) for b in bits16]
    exps = [(b >> 23) & 0xFF for b in bits16]
    shared = max(exps)
    out = []
    for b, e in zip(bits16, exps):
        if e == 0:                              # zero or subnormal (flushed)
            out.append(0.0)
            continue
        m = ((1 << 23) | (b & 0x7FFFFF)) >> (shared - e)
        s = 24 - w
        rnd, q = m & ((1 << s) - 1), m >> s
        tie = 1 << (s - 1)
        if rnd > tie or (rnd == tie and q & 1):
            q += 1
        q = min(q, (1 << w) - 1)
        v = q * 2.0 ** (shared - 127 - (w - 1))
        if v < F32_MIN_NORMAL:
            v = 0.0
        elif b >> 31:
            v = -v
        out.append(v)
    return np.array(out, dtype=np.float64).astype(np.float32)  # > f32 max -> inf


def ref_bfp(x: torch.Tensor, w):
    rows = bits_of(x).reshape(-1, 16)
    return np.concatenate([ref_bfp_block(r, w) for r in rows]).reshape(x.shape)


def bfp_test_data(seed=0, blocks=400):
    g = torch.Generator().manual_seed(seed)
    n = blocks * 16
    # Spread of exponents inside a block (so shifts of 0..40 occur), random signs, zeros.
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-20, 20, (n,), generator=g).float())
    x[torch.rand(n, generator=g) < 0.05] = 0.0
    bf = N.round_bf16(torch.randn(n, generator=g) * 3)            # bf16 inputs
    # Constructed ties: block max 1.0, then k + 1/2 steps of the bfp8 and bfp4 grids,
    # plus the same with sticky bits below the 24-bit grid shift.
    ties = []
    for step in (2.0 ** -6, 2.0 ** -2):
        for k in range(0, 15):
            blk = [1.0] + [(k + 0.5) * step * s for s in (1, -1, 0.5, 0.25)] * 3 + [0.0, 0.0, 0.0]
            ties.append(blk)
    ties = torch.tensor(ties, dtype=torch.float32).reshape(-1)
    # fp32 values with low-order bits that the exponent shift drops (no sticky bit).
    sticky = torch.tensor([2.0 ** 10] + [1.0 + 2.0 ** -23 * k for k in range(15)])
    huge = torch.tensor([3.0e38, -3.3e38, 1.0, 2.0 ** 127, 1.7e38, -1.0e30] + [0.0] * 10)
    tiny = torch.tensor([2.0 ** -120, 2.0 ** -126, 1e-40, -3e-39, 2.0 ** -125] + [2.0 ** -124] * 11)
    return torch.cat([x, bf, ties, sticky, huge, tiny])


@pytest.mark.parametrize("df,w", BFP)
def test_bfp_matches_tt_metal_reference(df, w):
    x = bfp_test_data()
    assert_same_bits(N.quantize(x, df).numpy(), ref_bfp(x, w))


@pytest.mark.parametrize("df,w", BFP)
def test_bfp_matches_reference_random_bit_patterns(df, w):
    bits = random_bits(16 * 2000, seed=1)
    x = f32(bits)
    x = x[~torch.isnan(x)][: 16 * 1800]
    assert_same_bits(N.quantize(x, df).numpy(), ref_bfp(x, w))


def test_bfp_hand_cases():
    q8 = lambda v: N.quantize(torch.tensor(v, dtype=torch.float32), DataFormat.Bfp8_b).tolist()
    q4 = lambda v: N.quantize(torch.tensor(v, dtype=torch.float32), DataFormat.Bfp4_b).tolist()
    # Block max 1.0 -> E = 127, bfp8 step 2^-6, bfp4 step 2^-2.
    # Powers of two down to the step are exact in bfp8: q = 64, 32, 16, ..., 1.
    exact = [1.0, 0.5, 0.25, 0.125, 2 ** -4, 2 ** -5, 2 ** -6, -0.5]
    assert q8(exact) == exact
    # 2^-7 is half a step: a tie between q=0 (even) and q=1 -> 0.
    assert q8([1.0, 2 ** -7]) == [1.0, 0.0]
    # 1 + 2^-7: q = 64.5 -> tie, 64 is even -> 1.0; 1 + 3*2^-7: q = 65.5 -> 66 -> 1 + 2^-5.
    assert q8([1.0 + 2 ** -7, 1.0 + 3 * 2 ** -7, -(1.0 + 3 * 2 ** -7)]) == [1.0, 1.03125, -1.03125]
    # Above the tie (fp32 input 1 + 2^-7 + 2^-20): rounds up to 65/64.
    assert q8([1.0 + 2 ** -7 + 2 ** -20]) == [65 / 64]
    # bf16 1.9921875 (8 significant bits): q = 127.5 -> 128 overflows 7 bits -> clamped to
    # 127 -> 1.984375 (the exponent is not bumped). bfp8 is not a superset of bf16.
    assert q8([1.9921875]) == [1.984375]
    # bfp4, block [256, 1.0]: E = 135, step 2^(8-2) = 64; 1.0 is 1/64 of a step -> 0.
    assert q4([256.0, 1.0]) == [256.0, 0.0]
    # bfp4 grid 0, 64, ..., 448: 352 = 5.5 steps -> tie -> 6 (even) -> 384; 320 exact;
    # 288 = 4.5 steps -> 4 -> 256; 1.875 alone: q = 7.5 -> 8 -> clamped to 7 -> 1.75.
    assert q4([256.0, 352.0, 320.0, 288.0, 448.0]) == [256.0, 384.0, 320.0, 256.0, 448.0]
    assert q4([1.875]) == [1.75]
    # bfp4 keeps 3 significant bits of the max: 1.3 -> q = 5.2 -> 5 -> 1.25.
    assert q4([1.3, -0.6]) == [1.25, -0.5]


def test_bfp_specials():
    q = lambda v, df=DataFormat.Bfp8_b: N.quantize(torch.tensor(v, dtype=torch.float32), df)
    assert torch.equal(q([0.0] * 16), torch.zeros(16))
    # A tiny negative value that rounds to zero comes back as +0.0 (sign dropped).
    y = q([1.0, -2.0 ** -10])
    assert bits_of(y)[1] == 0
    # inf stays inf; NaN stays NaN.
    y = q([float("inf"), float("nan"), -float("inf")])
    assert y[0] == float("inf") and torch.isnan(y[1]) and y[2] == -float("inf")
    # Subnormal inputs are flushed.
    assert q([1e-40, -1e-39]).tolist() == [0.0, 0.0]
    # Scalars and empty tensors.
    assert N.quantize(torch.tensor(3.3), DataFormat.Bfp4_b).item() == 3.5
    assert N.quantize(torch.zeros(0, 5), DataFormat.Bfp8_b).shape == (0, 5)


# ---- properties ---------------------------------------------------------------------------

def rand_x(shape=(8, 4, 96), seed=0, spread=30):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    return x * torch.exp2(torch.randint(-spread, spread, shape, generator=g).float())


@pytest.mark.parametrize("df", ALL_DF)
def test_idempotent(df):
    for x in (rand_x(), rand_x(spread=3), torch.randn(5, 37) * 1e-37, torch.randn(3, 50) * 1e37):
        y = N.quantize(x, df)
        assert_same_bits(N.quantize(y, df).numpy(), y.numpy())


@pytest.mark.parametrize("df,w", BFP)
def test_bfp_representable_values_unchanged(df, w):
    # Build values on the grid: q in [-(2^w-1), 2^w-1], block max |q| >= 2^(w-1) so the
    # shared exponent is the one we picked.
    g = torch.Generator().manual_seed(3)
    qmax = (1 << w) - 1
    q = torch.randint(-qmax, qmax + 1, (200, 16), generator=g)
    q[:, 0] = torch.randint(1 << (w - 1), qmax + 1, (200,), generator=g)
    e = torch.randint(-60, 60, (200, 1), generator=g)
    x = q.float() * torch.exp2((e - (w - 1)).float())
    assert torch.equal(N.quantize(x, df), x)


@pytest.mark.parametrize("df", ALL_DF)
def test_sign_symmetry(df):
    x = rand_x()
    assert torch.equal(N.quantize(-x, df), -N.quantize(x, df))


@pytest.mark.parametrize("df,w", BFP)
def test_bfp_error_bounds(df, w):
    x = rand_x(spread=6).reshape(-1, 16)
    y = N.quantize(x, df)
    e = (x.abs().amax(-1, keepdim=True).view(torch.int32) >> 23) - 127     # unbiased shared exp
    step = torch.exp2((e - (w - 1)).float())
    err = (y - x).abs()
    # Never more than one grid step (clamped values near 2^(e+1)), half a step otherwise.
    assert (err <= step).all()
    clamped = x.abs() > ((1 << w) - 1) * step
    assert (err[~clamped] <= step.expand_as(x)[~clamped] / 2).all()
    # The block max keeps w significant bits: relative error < 2^-(w-1).
    i = x.abs().argmax(-1, keepdim=True)
    assert ((y.gather(-1, i) - x.gather(-1, i)).abs() <= x.gather(-1, i).abs() * 2.0 ** -(w - 1)).all()


@pytest.mark.parametrize("df", [DataFormat.Bfp8_b, DataFormat.Bfp4_b])
def test_blocks_independent_and_along_last_dim(df):
    x = rand_x((4, 64), spread=4)
    y = N.quantize(x, df)
    x2 = x.clone()
    x2[:, 16:32] *= 1000.0                      # change one block per row
    y2 = N.quantize(x2, df)
    keep = torch.ones(64, dtype=torch.bool)
    keep[16:32] = False
    assert torch.equal(y[:, keep], y2[:, keep])
    # Each block quantizes as if alone.
    for j in range(0, 64, 16):
        assert torch.equal(y[:, j:j + 16], N.quantize(x[:, j:j + 16], df))
    # Blocks run along the last dim: transposing changes the result.
    sq = rand_x((16, 16), spread=6)
    assert not torch.equal(N.quantize(sq, df), N.quantize(sq.T.contiguous(), df).T)
    # Non-contiguous input blocks by its logical last dim.
    assert torch.equal(N.quantize(sq.T, df), N.quantize(sq.T.contiguous(), df))


@pytest.mark.parametrize("df", [DataFormat.Bfp8_b, DataFormat.Bfp4_b])
def test_bfp_padding_crop(df):
    x = rand_x((3, 37), spread=4)
    y = N.quantize(x, df)
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (0, 11))
    assert torch.equal(y, N.quantize(padded, df)[:, :37])


def test_quantize_dispatch():
    x = rand_x()
    assert N.quantize(x, DataFormat.Float32) is x
    assert torch.equal(N.quantize(x, DataFormat.Float16_b), N.round_bf16(x))
    assert torch.equal(N.quantize(x, "Bfp8_b"), N.quantize_bfp(x, 7))
    assert torch.equal(N.quantize(x, DataFormat.Bfp4_b), N.quantize_bfp(x, 3))
    assert N.quantize(x.to(torch.bfloat16), DataFormat.Bfp8_b).dtype == torch.bfloat16


# ---- math fidelity ---------------------------------------------------------------------------

FIDS = list(MathFidelity)


def isa_phase_sum(a: torch.Tensor, b: torch.Tensor, fidelity) -> np.ndarray:
    """Literal ISA functional model (SrcAFidelityBits/SrcBFidelityBits): a is in0 -> SrcB,
    b is in1 -> SrcA; phase p uses SrcA slice (p & 1) and SrcB slice (p & 2). Summed in f64."""
    def slice_(x, hi_mask, rest_mask, lo):
        u = bits_of(x)
        if not lo:
            return (u & hi_mask).view(np.float32).astype(np.float64)
        return x.numpy().astype(np.float64) - (u & rest_mask).view(np.float32).astype(np.float64)
    total = 0.0
    for phase in range(int(fidelity)):
        sa = slice_(b, 0xFFF80000, 0xFFF83FFF, phase & 1)
        sb = slice_(a, 0xFFFE0000, 0xFFFE1FFF, phase & 2)
        total = total + sb @ sa
    return total


@pytest.mark.parametrize("fid", FIDS)
@pytest.mark.parametrize("df", [DataFormat.Float16_b, DataFormat.Float32])
def test_fidelity_terms_equal_isa_phases(fid, df):
    g = torch.Generator().manual_seed(5)
    a = N.quantize(torch.randn(24, 40, generator=g), df)
    b = N.quantize(torch.randn(40, 16, generator=g), df)
    merged = sum(x.double() @ y.double() for x, y in N.fidelity_terms(a, b, fid)).numpy()
    np.testing.assert_allclose(merged, isa_phase_sum(a, b, fid), rtol=0, atol=1e-12)


def test_operand_roles_srcb_7bit_srca_5bit():
    one = torch.ones(1, 1)
    a7 = torch.tensor([[1.0 + 2 ** -6]])    # 6th fraction bit: inside SrcB's LoFi slice
    b5 = torch.tensor([[1.0 + 2 ** -5]])    # 5th fraction bit: outside SrcA's LoFi slice
    assert N.matmul(a7, one, MathFidelity.LoFi).item() == 1.0 + 2 ** -6
    assert N.matmul(one, b5, MathFidelity.LoFi).item() == 1.0
    assert N.matmul(one, b5, MathFidelity.HiFi2).item() == 1.0 + 2 ** -5     # + SrcA LSBs
    a8 = torch.tensor([[1.0 + 2 ** -7]])    # 7th fraction bit: SrcB LSB slice
    assert N.matmul(a8, one, MathFidelity.HiFi2).item() == 1.0
    assert N.matmul(a8, one, MathFidelity.HiFi3).item() == 1.0 + 2 ** -7     # + SrcB LSBs
    # HiFi3 misses only lo x lo.
    assert N.matmul(a8, b5 + 2 ** -7, MathFidelity.HiFi3).item() == (1 + 2 ** -7) * (1 + 2 ** -5 + 2 ** -7) - 2 ** -7 * (2 ** -5 + 2 ** -7)
    assert N.matmul(a8, b5, MathFidelity.HiFi4).item() == (1 + 2 ** -7) * (1 + 2 ** -5)


def mm_data(m=64, k=256, n=48, seed=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)


def test_hifi4_fp32_acc_is_bf16_matmul():
    a, b = mm_data()
    ref = torch.matmul(N.round_bf16(a), N.round_bf16(b))
    got = N.matmul(a, b, MathFidelity.HiFi4, fp32_dest_acc=True)
    scale = torch.matmul(N.round_bf16(a).abs(), N.round_bf16(b).abs())
    assert ((got - ref).abs() <= 1e-6 * scale).all()


def fidelity_errors(df, m=64, k=256, n=48):
    """Mean relative error of each fidelity vs the float64 product of the quantized operands."""
    a, b = mm_data(m, k, n)
    ref = N.quantize(a, df).double() @ N.quantize(b, df).double()
    errs = {}
    for fid in FIDS:
        got = N.matmul(a, b, fid, df=df).double()
        errs[fid] = ((got - ref).abs().mean() / ref.abs().mean()).item()
    print(df.name, {f.name: f"{e:.2e}" for f, e in errs.items()})
    return [errs[f] for f in FIDS]


@pytest.mark.parametrize("df", [DataFormat.Float16_b, DataFormat.Float32])
def test_error_falls_with_fidelity(df):
    lo, h2, h3, h4 = fidelity_errors(df)
    assert lo > h2 > h3 >= h4
    assert lo > 4 * h4 and lo > 4 * h2
    if df is DataFormat.Float16_b:
        assert h4 < 1e-6                    # bf16 x bf16 products are exact
    else:
        assert h4 < 2.0 ** -8               # TF32 source registers (truncated)


def test_fidelity_vs_block_float():
    # bfp8 magnitudes have 7 bits: in0 fits SrcB's 7-bit slice, in1 needs SrcA's two
    # slices -> HiFi2 is already exact; bfp4 (3 bits) fits both hi slices -> LoFi exact.
    lo, h2, h3, h4 = fidelity_errors(DataFormat.Bfp8_b)
    assert lo > 1e-3 and max(h2, h3, h4) < 1e-6
    assert max(fidelity_errors(DataFormat.Bfp4_b)) < 1e-6


def test_bf16_dest_accumulation():
    a, b = mm_data(k=1024)
    y = N.matmul(a, b, MathFidelity.HiFi4, fp32_dest_acc=False)
    assert torch.equal(N.round_bf16(y), y)
    ref = N.round_bf16(a).double() @ N.round_bf16(b).double()
    e32 = (N.matmul(a, b, MathFidelity.HiFi4).double() - ref).abs().mean()
    e16 = (y.double() - ref).abs().mean()
    assert e16 > 10 * e32
    # Rounding the running sum per tile is worse than rounding the result once.
    assert e16 > (N.round_bf16(ref.float()).double() - ref).abs().mean()


def test_matmul_shapes():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 3, 5, 40, generator=g), torch.randn(40, 7, generator=g)
    for fid in FIDS:
        for acc in (True, False):
            y = N.matmul(a, b, fid, acc)
            assert y.shape == (2, 3, 5, 7) and y.dtype == torch.float32
    v = torch.randn(40, generator=g)
    assert N.matmul(v, b, MathFidelity.HiFi4).shape == (7,)
    assert N.matmul(a, v, MathFidelity.HiFi2, False).shape == (2, 3, 5)
    assert N.matmul(v, v, MathFidelity.LoFi).shape == ()


def test_fidelity_terms_with_conv():
    g = torch.Generator().manual_seed(4)
    x = N.round_bf16(torch.randn(1, 8, 10, 10, generator=g))
    w = N.round_bf16(torch.randn(4, 8, 3, 3, generator=g))
    F = torch.nn.functional
    ref = F.conv2d(x.double(), w.double())
    errs = []
    for fid in FIDS:
        y = sum(F.conv2d(p, q) for p, q in N.fidelity_terms(x, w, fid))
        errs.append(((y.double() - ref).abs().mean() / ref.abs().mean()).item())
    assert errs[0] > errs[1] > errs[2] >= errs[3] and errs[3] < 1e-6
