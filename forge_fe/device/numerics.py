"""The device's number formats and math fidelity, emulated with vectorised torch ops.

Every function takes and returns float32 tensors that hold exactly the values the
device would hold (no Python loops over elements). The emulated runtime stores each
tensor as float32 and calls :func:`quantize` to snap it to its data format; matmul,
linear and conv go through :func:`fidelity_terms` / :func:`matmul`.

Formats (``forge_fe.config.DataFormat``)
-----------------------------------------
``Float32``
    IEEE float32; :func:`quantize` is the identity.
``Float16_b`` (bfloat16: 1 sign, 8 exponent, 7 fraction bits)
    :func:`round_bf16`: round to nearest, ties to even, on the float32 bit pattern
    (add ``0x7fff + lsb``, clear the low 16 bits). Infinities stay, overflow past the
    largest bf16 (``0x7f7f``) goes to inf, subnormals round like any other value, NaN
    stays NaN. Implemented with torch's float32 -> bfloat16 cast, which the tests show
    bit-identical to ``ml_dtypes.bfloat16`` (2^20 random bit patterns, every tie
    pattern, edge cases) and to the integer formulation ``_round_bf16_bits``.
``Bfp8_b`` / ``Bfp4_b`` (block floating point)
    :func:`quantize_bfp`. Blocks are 16 consecutive values along the last dimension: a
    32x32 tile is four 16x16 faces, and each 16-value face row shares one 8-bit
    exponent (biased like float32). Each value is a sign bit plus ``W`` magnitude bits
    (``W`` = 7 for Bfp8_b, 3 for Bfp4_b). There is no hidden bit: the magnitude is an
    integer ``q`` in ``[0, 2**W - 1]`` and the value is::

        (-1)**s * q * 2**(E - 127 - (W - 1))        E = max biased exponent in the block

    so the block's largest element keeps ``W`` significant bits (hidden bit + 6
    fraction bits for bfp8, hidden bit + 2 for bfp4) and an element whose exponent is
    ``d`` smaller keeps ``W - d`` bits. A bfp8 tile is 1024 + 64 bytes. Note that
    bfp8 is *not* a superset of bf16 (bf16 has 8 significant bits).

    Rounding follows tt-metal's host packer, ``convert_u32_to_bfp`` in
    ``tt_metal/impl/data_format/blockfloat_common.cpp`` (used by
    ``pack_fp32_vec_as_bfp8_tiles`` / ``pack_as_bfp_tiles`` with
    ``truncate_bfp_mantissa = false``), step by step:

    1. shared exponent ``E`` = max of the raw float32 exponent fields of the 16 inputs
       (the input is *not* rounded to bf16 first; for inputs that are already bf16 -
       the usual case - this makes no difference);
    2. the 24-bit significand ``1.f`` of each value is shifted right by ``E - e``
       (bits shifted out are dropped, they do not act as a sticky bit);
    3. the result is rounded to its top ``W`` bits, round-to-nearest-**even** on the
       remaining ``24 - W`` bits;
    4. a round-up that overflows ``2**W - 1`` is **clamped** (saturates) rather than
       carried into the exponent: e.g. bf16 1.9921875 alone in a block becomes
       127/64 = 1.984375 in bfp8, and 1.875 becomes 1.75 in bfp4. Errors are therefore
       at most half a step ``2**(E-127-(W-1))`` except for such clamped values (less
       than one step);
    5. a zero magnitude drops the sign (``-tiny`` -> ``+0.0``).

    Deliberate differences from that host code, chosen to match the device's
    flush-to-zero behaviour: float32 subnormal inputs are flushed to zero (the host
    code would wrongly give them a hidden bit) and results that would be float32
    subnormals (only possible when ``E < W``) are flushed to zero, which keeps the
    operation idempotent. NaN inputs stay NaN; an inf sets ``E = 255`` and stays inf,
    and the other values in its block are then mostly crushed to zero (as on the host).

    The on-device *packer* (Dst -> L1) differs slightly: per the Wormhole ISA notes
    (tt-isa-documentation, Packers/FormatConversion.md) it first converts to bf16, then
    rounds to BFP8 with ties *away from zero* (or stochastically), and makes BFP4 by
    truncating the BFP8 result. The emulator uses the host-packer rule above for every
    tensor; the two agree except on exact ties and on bfp4 values that the device would
    truncate.

Math fidelity (``forge_fe.config.MathFidelity``)
------------------------------------------------
The Wormhole/Blackhole matrix engine multiplies 5-bit x 7-bit significand slices:
``MVMUL`` computes ``Dst += SrcB @ SrcA`` and tt-metal's matmul LLK unpacks
``in0 -> SrcB`` and ``in1 -> SrcA`` (``llk_unpack_AB_matmul``: "In0 -> srcB,
In1 -> srcA"). So for ``C = a @ b``, ``a`` (activations, in0) is the 7-bit SrcB
operand and ``b`` (weights, in1) is the 5-bit SrcA operand. The ISA functional model
(tt-isa-documentation, ELWMUL.md ``SrcAFidelityBits`` / ``SrcBFidelityBits``) splits the
operands with float32 bit masks:

* SrcA (``b``): ``hi = bits & 0xfff80000`` (sign, exponent, hidden bit + 4 fraction
  bits), ``lo = x - (x with bits 18..14 cleared)`` (the next 5 fraction bits);
* SrcB (``a``): ``hi = bits & 0xfffe0000`` (hidden bit + 6 fraction bits),
  ``lo`` = fraction bits 16..13 (the next 4).

Fidelity phase 0 multiplies ``A.hi * B.hi``, phase 1 ``A.lo * B.hi``, phase 2
``A.hi * B.lo``, phase 3 ``A.lo * B.lo``; LoFi/HiFi2/HiFi3/HiFi4 run phases 0..0/1/2/3
(tt-metal tech_reports/matrix_engine: "HiFi2 -> SrcA next 4 bits of LSBs x SrcB 6 MSB,
HiFi3 -> SrcA MSBs x SrcB next 6 LSBs, HiFi4 -> both LSBs"). In ``a @ b`` terms:

=========  ==============================================================
LoFi       ``a_hi @ b_hi``
HiFi2      ``+ a_hi @ b_lo``           (b now complete for bf16 operands)
HiFi3      ``+ a_lo @ b_hi``
HiFi4      ``+ a_lo @ b_lo``           (exact bf16 x bf16 products)
=========  ==============================================================

(tt-metal's report says SrcA's second slice is "the next 4 bits"; the ISA model's mask
takes 5, bits 18..14. They differ only for TF32 operands; this module follows the ISA.)
For bf16 operands ``b_lo`` holds 3 bits and ``a_lo`` 1 bit, so the error falls
LoFi >> HiFi2 > HiFi3 > HiFi4 = 0 (apart from accumulation). Block-float operands have
fewer bits: with Bfp8_b operands HiFi2 is already exact (7-bit magnitudes fit SrcB's
first slice and SrcA's two), with Bfp4_b operands LoFi is. With Float32 operands the
source registers hold TF32 (low 13 fraction bits dropped), and SrcA also ignores the
TF32 LSB; the masks above reproduce that. (The hardware also flushes denormal
operands; :func:`fidelity_terms` does not, which only matters for ~2**-126 results.)

:func:`fidelity_terms` returns the included partial products merged algebraically
(``a_hi@b_hi + a_hi@b_lo = a_hi@(b_hi+b_lo)``), so LoFi, HiFi2 and HiFi4 cost one GEMM
and HiFi3 two; the sum is exactly the same real number, only float32 rounding order
differs. Because the split is elementwise it applies to any bilinear op: conv kernels
use ``F.conv2d(x_part, w_part)`` over the same terms, eltwise mul uses ``x_part*y_part``.

Accumulation: with ``fp32_dest_acc`` the Dst register is float32 and products are summed
in float32 (torch's GEMM order, not the hardware's). Without it Dst is bf16: every
``MVMUL`` (16 values of K) adds into Dst and rounds to bf16. :func:`matmul` approximates
that by accumulating 32-wide K tiles (one tile) in float32 and rounding the running sum
to bf16 (round-to-nearest-even) after each tile, i.e. rounding steps happen per tile
rather than per 16-wide face step and per fidelity phase.

Sources: tt-metal ``tt_metal/impl/data_format/blockfloat_common.cpp``,
``tech_reports/matrix_engine/matrix_engine.md``, ``llk_unpack_AB_matmul`` api header;
jasondavies/tt-isa-documentation ``WormholeB0/TensixTile/TensixCoprocessor/{MVMUL,
ELWMUL,SrcASrcB}.md`` and ``Packers/FormatConversion.md``; DESIGN.md "Hardware numbers".
"""
from __future__ import annotations

import torch

from forge_fe.config import DataFormat, MathFidelity

__all__ = [
    "BFP_BLOCK", "MANTISSA_BITS", "round_bf16", "quantize_bfp", "quantize",
    "fidelity_terms", "matmul", "integer_division",
]

BFP_BLOCK = 16                       # values sharing one exponent (a 16x16 face row)
ACC_TILE = 32                        # K-width of one bf16 Dst accumulation step (one tile)
MANTISSA_BITS = {DataFormat.Bfp8_b: 7, DataFormat.Bfp4_b: 3}

_F32_MIN_NORMAL = 2.0 ** -126

# SrcA (5-bit) / SrcB (7-bit) masks from the ISA functional model.
_SRCA_HI = 0xFFF80000 - (1 << 32)    # sign, exponent, hidden + 4 fraction bits
_SRCA_ALL = 0xFFFFC000 - (1 << 32)   # hi + next 5 fraction bits (bits 18..14)
_SRCB_HI = 0xFFFE0000 - (1 << 32)    # sign, exponent, hidden + 6 fraction bits
_SRCB_ALL = 0xFFFFE000 - (1 << 32)   # hi + next 4 fraction bits (bits 16..13) = TF32


def _as_f32(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    return x if x.dtype == torch.float32 else x.to(torch.float32)


def _restore(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Return float32 results in the caller's floating dtype (lossless for bf16/f64)."""
    if like.dtype != torch.float32 and like.dtype.is_floating_point:
        return y.to(like.dtype)
    return y


# ---- bfloat16 -------------------------------------------------------------------------

def round_bf16(x: torch.Tensor) -> torch.Tensor:
    """float32 -> nearest bfloat16 value (round-to-nearest-even), returned as float32.

    Bit-identical to ``ml_dtypes.bfloat16`` conversion for finite values, infinities and
    subnormals; NaN stays NaN. Implemented as torch's own float32 -> bfloat16 cast
    (c10 ``round_to_nearest_even``), which tests/test_numerics.py checks bit for bit
    against ml_dtypes on 2^20 random bit patterns and the edge cases; it is ~7x faster
    than the equivalent integer formulation (:func:`_round_bf16_bits`)."""
    xf = _as_f32(x)
    return _restore(xf.to(torch.bfloat16).to(torch.float32), x)


def _round_bf16_bits(x: torch.Tensor) -> torch.Tensor:
    """Reference integer formulation of :func:`round_bf16`: add ``0x7fff + lsb`` to the
    float32 bit pattern and clear the low 16 bits; NaN passes through unchanged."""
    xf = _as_f32(x).contiguous()
    bits = xf.view(torch.int32)
    lsb = (bits >> 16) & 1
    # int32 add wraps only for positive NaN patterns, which are replaced below.
    y = ((bits + (0x7FFF + lsb)) & -65536).view(torch.float32)   # -65536 == 0xFFFF0000
    return torch.where(torch.isnan(xf), xf, y)


# ---- block floating point ---------------------------------------------------------------

def _pow2(k: torch.Tensor) -> torch.Tensor:
    """2.0**k (float32, exact) for an integer tensor k in [-149, 127]."""
    k = k.to(torch.int32)
    normal = ((k.clamp(min=-126) + 127) << 23).view(torch.float32)
    sub = (torch.ones_like(k) << (k + 149).clamp(0, 22)).view(torch.float32)   # 2**(k) subnormal
    return torch.where(k >= -126, normal, sub)


def quantize_bfp(x: torch.Tensor, mantissa_bits: int) -> torch.Tensor:
    """Round to block floating point with ``mantissa_bits`` magnitude bits (7 = Bfp8_b,
    3 = Bfp4_b) and one shared 8-bit exponent per 16 consecutive values along the last
    dimension (the last dim is zero-padded to a multiple of 16 for blocking; padding
    zeros never raise a block's exponent).

    Value = ``sign * q * 2**(E - 127 - (mantissa_bits - 1))``, ``E`` the block's max
    biased exponent, ``q`` the significand shifted right by the exponent difference
    (shifted-out bits dropped) and then **rounded to nearest, ties to even**, clamped at
    ``2**mantissa_bits - 1`` (no carry into the exponent) - tt-metal's
    ``convert_u32_to_bfp``. Subnormal inputs/results are flushed to zero, zero
    magnitudes are +0.0, NaN stays NaN. See the module docstring.

    Computed in float arithmetic (every step exact): ``t = trunc(|x| * 2**(150-E))`` is
    the shifted 24-bit significand, ``q = round_half_even(t * 2**-(24-W))``."""
    w = int(mantissa_bits)
    if not 1 <= w <= 23:
        raise ValueError(f"mantissa_bits must be in 1..23, got {mantissa_bits}")
    xf = _as_f32(x)
    if xf.numel() == 0:
        return _restore(xf.clone(), x)
    shape = xf.shape
    if xf.dim() == 0:
        xf = xf.reshape(1)
    n = xf.shape[-1]
    pad = (-n) % BFP_BLOCK
    if pad:
        xf = torch.nn.functional.pad(xf, (0, pad))
    xb = xf.reshape(*xf.shape[:-1], -1, BFP_BLOCK)

    a = xb.abs()
    ia = a.view(torch.int32)
    amax = ia.amax(dim=-1, keepdim=True)                 # |x| bits order like |x|; NaN is max
    e = amax >> 23                                       # shared biased exponent, 0..255
    # Subnormal inputs can only reach a nonzero q, and results can only be subnormal,
    # when 0 < E <= W: flush those cases only then (keeps the common path short).
    tiny = bool(((e > 0) & (e <= w)).any())
    if tiny:
        a.masked_fill_(a < _F32_MIN_NORMAL, 0.0)
    # t = |x| / 2**(E-150) is the 24-bit significand on the block's grid; floor drops the
    # bits the host code shifts out (|x| >= 0, so floor == trunc). 2**(150-E) is a
    # normal float iff E >= 23; all-zero blocks (E = 0) scale by 1.
    k = torch.where(e == 0, 0, 150 - e)
    if bool((k > 127).any()):
        k1 = torch.div(k, 2, rounding_mode="floor")
        a.mul_(_pow2(k1)).mul_(_pow2(k - k1))
    else:
        a.mul_(_pow2(k))
    a.floor_().mul_(2.0 ** -(24 - w)).round_().clamp_(max=float((1 << w) - 1))   # q, RNE
    a.mul_(_pow2(e - (127 + w - 1)))                     # q * step: exact or subnormal
    if tiny:
        a.masked_fill_(a < _F32_MIN_NORMAL, 0.0)         # flush subnormal results
    y = a.copysign_(xb).add_(0.0)                        # -0.0 + 0.0 = +0.0: zeros lose the sign
    nan = (e == 255) & ((amax & 0x7FFFFF) != 0)
    if bool(nan.any()):
        y = torch.where(torch.isnan(xb), xb, y)
    y = y.reshape(*xf.shape[:-1], -1)
    if pad:
        y = y[..., :n]
    return _restore(y.reshape(shape), x)


def quantize(x: torch.Tensor, df: DataFormat) -> torch.Tensor:
    """Snap ``x`` to the values data format ``df`` can hold (Float32: identity)."""
    if not isinstance(df, DataFormat):
        df = DataFormat[df]
    if df is DataFormat.Float32:
        return x
    if df is DataFormat.Float16_b:
        return round_bf16(x)
    return quantize_bfp(x, MANTISSA_BITS[df])


# ---- math fidelity -----------------------------------------------------------------------

def _mask(x: torch.Tensor, m: int) -> torch.Tensor:
    return (x.contiguous().view(torch.int32) & m).view(torch.float32)


def fidelity_terms(a: torch.Tensor, b: torch.Tensor, fidelity: MathFidelity) -> list:
    """The partial products the matrix engine sums at ``fidelity``, as ``(a_part, b_part)``
    pairs: the emulated product is ``sum(op(a_part, b_part))`` for any bilinear ``op``
    (``torch.matmul``, ``F.conv2d``, ``*``). ``a`` is the in0/SrcB operand (7-bit slices,
    activations), ``b`` the in1/SrcA operand (5-bit slices, weights). Terms are merged
    algebraically (see module docstring): 1 term for LoFi/HiFi2/HiFi4, 2 for HiFi3.
    Operands are not quantized here (call :func:`quantize` first); bits below TF32 are
    dropped, as the source registers do. Denormal operands are *not* flushed (the
    hardware flushes them; doing it here would cost more than the masks, and it only
    changes results of magnitude ~2**-126)."""
    fid = MathFidelity(int(fidelity))
    a = _as_f32(a)
    b = _as_f32(b)
    a_hi = _mask(a, _SRCB_HI)
    b_hi = _mask(b, _SRCA_HI)
    if fid is MathFidelity.LoFi:
        return [(a_hi, b_hi)]
    b_all = _mask(b, _SRCA_ALL)
    if fid is MathFidelity.HiFi2:
        return [(a_hi, b_all)]                           # a_hi @ (b_hi + b_lo)
    a_all = _mask(a, _SRCB_ALL)
    if fid is MathFidelity.HiFi3:
        return [(a_hi, b_all), (a_all - a_hi, b_hi)]     # + a_lo @ b_hi
    return [(a_all, b_all)]                              # all four phases


def _mm_terms(terms, k0=None, k1=None, acc=None):
    """acc + sum of the terms' matmuls (over K slice [k0, k1) if given); 2-D operands
    accumulate in place with addmm_ (no extra pass over the output)."""
    for ta, tb in terms:
        if k0 is not None:
            ta, tb = ta[..., k0:k1], tb[..., k0:k1, :]
        if acc is None:
            acc = torch.matmul(ta, tb)
        elif ta.dim() == 2 and tb.dim() == 2:
            acc.addmm_(ta, tb)
        else:
            acc = acc + torch.matmul(ta, tb)         # may broadcast to a larger shape
    return acc


def matmul(a: torch.Tensor, b: torch.Tensor, fidelity: MathFidelity,
           fp32_dest_acc: bool = True, df: DataFormat = DataFormat.Float16_b) -> torch.Tensor:
    """``a @ b`` as the matrix engine computes it (torch.matmul broadcasting semantics).

    Operands are quantized to ``df`` (bfp blocks run along each operand's last dim, as in
    its tiles), split into the significand slices ``fidelity`` includes
    (:func:`fidelity_terms`; ``a`` is the 7-bit SrcB/in0 operand, ``b`` the 5-bit
    SrcA/in1 one) and each partial product is a float32 GEMM. ``fp32_dest_acc=True``
    sums in float32; ``False`` emulates the bf16 Dst register by rounding the running
    sum to bf16 after every 32-wide K tile (the hardware rounds per 16-wide MVMUL and
    per fidelity phase, so the per-tile accumulation order is approximated). The result
    is float32 (bf16-representable when ``fp32_dest_acc`` is False)."""
    a = quantize(_as_f32(a), df)
    b = quantize(_as_f32(b), df)
    squeeze = []
    if a.dim() == 1:
        a, squeeze = a.unsqueeze(0), squeeze + [-2]
    if b.dim() == 1:
        b, squeeze = b.unsqueeze(-1), squeeze + [-1]
    terms = fidelity_terms(a, b, fidelity)
    k = a.shape[-1]
    if fp32_dest_acc:
        out = _mm_terms(terms)
    else:
        out = None
        for k0 in range(0, k, ACC_TILE):
            out = round_bf16(_mm_terms(terms, k0, k0 + ACC_TILE, out))
        if out is None:                                  # K == 0
            out = _mm_terms(terms)
    for d in squeeze:
        out = out.squeeze(d)
    return out


# ---- integer arithmetic ------------------------------------------------------------------

def integer_division(x: torch.Tensor, y: torch.Tensor, rounding: str) -> torch.Tensor:
    """x / y on integer tensors as the frameworks define it, without the host's trap.

    rounding: "trunc" (C division, ONNX Div), "floor" (Python //), "fmod" (C %, sign of x) or
    "remainder" (Python %, sign of y). A zero divisor raises ZeroDivisionError, as torch and
    onnxruntime refuse it; INT_MIN / -1 wraps to INT_MIN (two's complement, as numpy), where
    the x86 division instruction would kill the process with SIGFPE."""
    if bool((y == 0).any()):
        raise ZeroDivisionError("integer division by zero")
    minus_one = y == -1
    safe = torch.where(minus_one, torch.ones_like(y), y)     # x / 1 and x % 1 cannot trap
    if rounding in ("trunc", "floor"):
        q = torch.div(x, safe, rounding_mode=rounding)
        return torch.where(minus_one, torch.neg(q), q)       # -x, wrapping for INT_MIN
    return (torch.fmod if rounding == "fmod" else torch.remainder)(x, safe)   # x % +-1 == 0
