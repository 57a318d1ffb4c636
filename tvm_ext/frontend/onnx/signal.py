"""Converters for ONNX's signal ops (DFT, STFT, MelWeightMatrix), which TVM 0.27's Relax importer lacks.

Shapes are static in forge_fe, so a DFT is a matmul with a constant matrix of cosines and sines
(built in float64 with numpy, then cast): plain Relax ops the device runs.  With ``n`` the DFT
length, ``theta[t, k] = 2 pi t k / n`` and ``s = -1`` (forward) or ``+1`` (inverse, which also
scales by ``1/n``), the real and imaginary parts are

    Y_re[k] = sum_t X_re[t] cos(theta) - s X_im[t] sin(theta)
    Y_im[k] = sum_t s X_re[t] sin(theta) + X_im[t] cos(theta)

The signal axis and the (re, im) axis are flattened together, so both lines are one matmul with
the block matrix ``[[C, s S], [-s S, C]]`` (rows: input (t, re/im), columns: output (k, re/im)).
Rows ``t >= n`` are zero (truncation to ``dft_length``); zero-padding needs no rows at all.

:data:`CONVERTERS` is merged into the importer's map by
:mod:`tvm_ext.frontend.onnx.registry`.
"""

from __future__ import annotations

import math

import numpy as np
import tvm
from tvm import relax

from .common import (
    OnnxOpConverter, UnsupportedForm, _const, _const_ints, _dtype, _onnx_dtype_name, _shape, _tvm_onnx,
)


def _scalar(expr, params, what: str) -> int:
    values = _const_ints(expr, params, what)
    if len(values) != 1:
        raise UnsupportedForm(f"{what} must be a scalar, got {len(values)} values")
    return values[0]


def _cos_sin(n: int, t: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi t k / n for the grid t x k, the phase reduced mod n first (so large
    t * k lose no precision) and multiples of a quarter turn exact (cos(pi/2) is 0, not 6e-17)."""
    j = np.outer(t, k) % n
    theta = 2.0 * np.pi * j / n
    cos, sin = np.cos(theta), np.sin(theta)
    quarter = (4 * j) % n == 0
    q = (4 * j // n) % 4
    cos = np.where(quarter, np.array([1.0, 0.0, -1.0, 0.0])[q], cos)
    sin = np.where(quarter, np.array([0.0, 1.0, 0.0, -1.0])[q], sin)
    return cos, sin


def dft_matrix(length: int, n: int, in_channels: int, inverse: bool, onesided: bool) -> np.ndarray:
    """The float64 [length * in_channels, bins * out_channels] matrix of one DFT along an axis of
    ``length`` input samples: row ``t * in_channels + ci``, column ``k * out_channels + co``
    (ci/co 0 = re, 1 = im).

    Forward: ``bins`` = n (``n // 2 + 1`` when onesided), complex output.  Inverse: complex output
    of n samples; onesided inverse (IRFFT) takes the ``n // 2 + 1`` non-redundant bins of a
    Hermitian spectrum and returns the real signal ``x[t] = 1/n sum_k w_k (X_re cos - X_im sin)``,
    with ``w_k = 2`` for the bins that stand for a conjugate pair, 1 for DC and (n even) Nyquist,
    whose imaginary parts drop out as numpy.fft.irfft drops them."""
    if inverse and onesided:
        bins, out_channels = n, 1
        used = min(length, n // 2 + 1)   # the input bins irfft reads (the rest is cut off)
        k = np.arange(length)
        cos, sin = _cos_sin(n, k, np.arange(n))                 # [input bin k, output sample t]
        weight = np.where((k == 0) | (2 * k == n), 1.0, 2.0) * (k < used) / n
        m = np.zeros((length, in_channels, bins, out_channels))
        m[:, 0, :, 0] = weight[:, None] * cos
        if in_channels == 2:
            m[:, 1, :, 0] = -weight[:, None] * sin
        return m.reshape(length * in_channels, bins * out_channels)
    bins = n // 2 + 1 if onesided else n
    sign = 1.0 if inverse else -1.0
    scale = 1.0 / n if inverse else 1.0
    t = np.arange(length)
    cos, sin = _cos_sin(n, t, np.arange(bins))
    kept = (t < n)[:, None] * scale                              # truncation to n samples
    cos, sin = cos * kept, sin * kept
    m = np.zeros((length, in_channels, bins, 2))
    m[:, 0, :, 0], m[:, 0, :, 1] = cos, sign * sin
    if in_channels == 2:
        m[:, 1, :, 0], m[:, 1, :, 1] = -sign * sin, cos
    return m.reshape(length * in_channels, bins * 2)


def _work_dtype(dtype: str, op: str) -> str:
    if dtype in ("float32", "float64"):
        return dtype
    if dtype in ("float16", "bfloat16"):
        return "float32"        # sums of many products: accumulate in float32, cast back
    raise UnsupportedForm(f"{op} input must be a float tensor, got {dtype}")


def _dft_last_two(bb, x, n: int, inverse: bool, onesided: bool, op: str, window=None):
    """DFT of ``x`` [..., length, channels] along axis -2, optionally times ``window`` [length]
    first: [..., bins, out_channels] in x's dtype (one matmul with the constant matrix)."""
    dtype = _dtype(x)
    *lead, length, channels = _shape(x)
    work = _work_dtype(dtype, op)
    if work != dtype:
        x = bb.normalize(relax.op.astype(x, work))
    if window is not None:
        if _dtype(window) != work:
            window = bb.normalize(relax.op.astype(window, work))
        x = bb.normalize(relax.op.multiply(x, relax.op.reshape(window, [length, 1])))
    m = dft_matrix(length, n, channels, inverse, onesided)
    out_channels = 1 if inverse and onesided else 2
    bins = m.shape[1] // out_channels
    flat = bb.normalize(relax.op.reshape(x, lead + [length * channels]))
    y = bb.normalize(relax.op.matmul(flat, _const(m.astype(work), work)))
    y = bb.normalize(relax.op.reshape(y, lead + [bins, out_channels]))
    return relax.op.astype(y, dtype) if work != dtype else y


class DFT(OnnxOpConverter):
    """DFT (opset 17: ``axis`` attribute, default 1; opset 20: ``axis`` input, default -2) of a real
    ([..., 1]) or complex ([..., 2]) input along ``axis``: the signal is truncated or zero-padded
    to ``dft_length`` (default: the axis length, 2 * (length - 1) for IRFFT), then multiplied by
    the constant DFT matrix (see :func:`dft_matrix`; the axis is moved next to the re/im axis and
    back).  ``onesided`` forward returns the ``n // 2 + 1`` non-redundant bins; ``onesided``
    inverse is the IRFFT (real output, last dim 1)."""

    @classmethod
    def _convert(cls, bb, x, dft_length, axis: int, attr, params):
        dims = _shape(x)
        rank = len(dims)
        if rank < 2 or dims[-1] not in (1, 2):
            raise UnsupportedForm(f"DFT input must end in a dimension of 1 (real) or 2 (complex), got shape {dims}")
        if not -rank <= axis <= rank - 2 or axis == -1:
            raise UnsupportedForm(f"DFT axis {axis} is out of range for a rank-{rank} input (the last dim is re/im)")
        axis %= rank
        inverse, onesided = bool(attr.get("inverse", 0)), bool(attr.get("onesided", 0))
        length = dims[axis]
        if dft_length is None:
            n = 2 * (length - 1) if inverse and onesided else length
        else:
            n = _scalar(dft_length, params, "DFT dft_length")
        if n < 1:
            raise UnsupportedForm(f"DFT dft_length must be positive, got {n}")
        perm = [d for d in range(rank - 1) if d != axis] + [axis, rank - 1]
        moved = perm != list(range(rank))
        if moved:
            x = bb.normalize(relax.op.permute_dims(x, perm))
        y = _dft_last_two(bb, x, n, inverse, onesided, "DFT")
        if moved:
            y = relax.op.permute_dims(bb.normalize(y), [int(i) for i in np.argsort(perm)])
        return y

    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        dft_length = inputs[1] if len(inputs) > 1 else None
        return cls._convert(bb, inputs[0], dft_length, int(attr.get("axis", 1)), attr, params)

    @classmethod
    def _impl_v20(cls, bb, inputs, attr, params):
        dft_length = inputs[1] if len(inputs) > 1 else None
        axis = -2
        if len(inputs) > 2 and inputs[2] is not None:
            axis = _scalar(inputs[2], params, "DFT axis")
        return cls._convert(bb, inputs[0], dft_length, axis, attr, params)


def _frames(bb, x, step: int, length: int, count: int):
    """[batch, signal, c] -> [batch, count, length, c], frame f = x[:, f * step : f * step + length].

    With g = gcd(step, length) the signal is cut into blocks of g samples; frame f is blocks
    f * step / g ... + length / g - 1, so the frames are length / g strided slices of the blocks
    (block j of every frame), concatenated: no gather, and few slices for the usual hops."""
    batch, _, channels = _shape(x)
    g = math.gcd(step, length)
    hop, per_frame = step // g, length // g
    blocks = (count - 1) * hop + per_frame
    x = relax.op.strided_slice(x, axes=[1], begin=[0], end=[blocks * g])
    x = bb.normalize(relax.op.reshape(x, [batch, blocks, g * channels]))
    parts = [bb.normalize(relax.op.strided_slice(x, axes=[1], begin=[j], end=[j + (count - 1) * hop + 1],
                                                 strides=[hop]))
             for j in range(per_frame)]          # block j of every frame: [batch, count, g * c]
    y = parts[0] if len(parts) == 1 else bb.normalize(relax.op.concat(parts, axis=2))
    return bb.normalize(relax.op.reshape(y, [batch, count, length, channels]))


class STFT(OnnxOpConverter):
    """STFT (opset 17) of a [batch, signal, 1 or 2] signal: frames of ``frame_length`` samples
    every ``frame_step`` (``1 + (signal - frame_length) // frame_step`` of them; see
    :func:`_frames`), times the window (all ones when absent), then the DFT matrix along the
    frame: [batch, frames, bins, 2], ``frame_length // 2 + 1`` bins when ``onesided`` (default)."""

    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        x = inputs[0]
        window = inputs[2] if len(inputs) > 2 else None
        frame_length = inputs[3] if len(inputs) > 3 else None
        dims = _shape(x)
        if len(dims) != 3 or dims[-1] not in (1, 2):
            raise UnsupportedForm(f"STFT signal must be [batch, signal_length, 1 or 2], got shape {dims}")
        step = _scalar(inputs[1], params, "STFT frame_step")
        if frame_length is not None:
            length = _scalar(frame_length, params, "STFT frame_length")
            if window is not None and _shape(window) != [length]:
                raise UnsupportedForm(f"STFT window has shape {_shape(window)}, frame_length is {length}")
        else:
            length = _shape(window)[0] if window is not None else dims[1]
        if window is not None and len(_shape(window)) != 1:
            raise UnsupportedForm(f"STFT window must be 1-D, got shape {_shape(window)}")
        if step < 1 or not 1 <= length <= dims[1]:
            raise UnsupportedForm(f"STFT needs frame_step >= 1 and 1 <= frame_length <= signal length {dims[1]}, "
                             f"got frame_step {step}, frame_length {length}")
        count = 1 + (dims[1] - length) // step
        frames = _frames(bb, x, step, length, count)
        return _dft_last_two(bb, frames, length, False, bool(attr.get("onesided", 1)), "STFT", window)


def _const_scalar(expr, params, what: str) -> np.generic:
    value = _tvm_onnx.get_constant(expr, params)
    if not isinstance(value, tvm.ir.GenericConst):
        raise UnsupportedForm(f"{what} must be a constant (MelWeightMatrix is built at compile time)")
    array = value.value.numpy()
    if array.size != 1:
        raise UnsupportedForm(f"{what} must be a scalar, got shape {array.shape}")
    return array.reshape(())[()]


def mel_weight_matrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz) -> np.ndarray:
    """onnx's reference (``onnx/reference/ops/op_mel_weight_matrix.py``) step by step, in float64
    except where the reference's numpy scalar inputs keep their own dtype: triangles with peak 1
    between mel-spaced edges ``700 (10^(m / 2595) - 1)``, mapped to DFT bins by
    ``floor((dft_length + 1) f / sample_rate)``.  [dft_length // 2 + 1, num_mel_bins]."""
    num_spectrogram_bins = dft_length // 2 + 1
    frequency_bins = np.arange(0, num_mel_bins + 2)
    low_frequency_mel = 2595 * np.log1p(lower_edge_hertz / 700) / np.log(10)
    high_frequency_mel = 2595 * np.log1p(upper_edge_hertz / 700) / np.log(10)
    mel_step = (high_frequency_mel - low_frequency_mel) / frequency_bins.shape[0]
    frequency_bins = frequency_bins * mel_step + low_frequency_mel
    frequency_bins = 700 * np.expm1(frequency_bins / 2595 * np.log(10))
    frequency_bins = (((dft_length + 1) * frequency_bins) // sample_rate).astype(int)
    output = np.zeros((num_spectrogram_bins, num_mel_bins))
    for i in range(num_mel_bins):
        low, center, high = (int(v) for v in frequency_bins[i:i + 3])
        if center == low:
            output[center, i] = 1
        else:
            for j in range(low, center + 1):
                output[j, i] = float(j - low) / float(center - low)
        if high > center:
            for j in range(center, high):
                output[j, i] = float(high - j) / float(high - center)
    return output


class MelWeightMatrix(OnnxOpConverter):
    """MelWeightMatrix (opset 17): every input is a compile-time constant, so the matrix is
    computed in numpy exactly as onnx's reference does (:func:`mel_weight_matrix`) and returned
    as a constant of ``output_datatype`` (default float32)."""

    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        names = ("num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz")
        values = [_const_scalar(x, params, f"MelWeightMatrix {name}") for x, name in zip(inputs, names)]
        if len(values) != 5:
            raise UnsupportedForm("MelWeightMatrix needs all five inputs")
        num_mel_bins, dft_length, sample_rate = values[:3]
        if num_mel_bins < 1 or dft_length < 1 or sample_rate < 1:
            raise UnsupportedForm("MelWeightMatrix num_mel_bins, dft_length and sample_rate must be positive")
        try:
            output = mel_weight_matrix(*values)
        except IndexError as err:  # an edge beyond the spectrum (upper_edge_hertz above sample_rate / 2)
            raise UnsupportedForm(f"MelWeightMatrix upper_edge_hertz {values[4]} maps beyond the "
                             f"{dft_length // 2 + 1} DFT bins") from err
        dtype = _onnx_dtype_name(int(attr.get("output_datatype", 1)))
        return _const(output.astype(dtype), dtype)


class _Window(OnnxOpConverter):
    @classmethod
    def _values(cls, n, denom):
        raise NotImplementedError

    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        size = _tvm_onnx.get_constant(inputs[0], params)
        if not isinstance(size, tvm.ir.GenericConst):
            raise UnsupportedForm(f"{cls.__name__} size must be a constant (it decides the output shape)")
        size = int(size.value.numpy().reshape(()))
        periodic = int(attr.get("periodic", 1))
        dtype = _onnx_dtype_name(int(attr.get("output_datatype", 1)))
        n = np.arange(size, dtype=np.float64)
        denom = size if periodic == 1 else size - 1
        return _const(cls._values(n, denom).astype(dtype), dtype)


class HannWindow(_Window):
    @classmethod
    def _values(cls, n, denom):
        return np.sin(n * np.pi / denom) ** 2


class HammingWindow(_Window):
    @classmethod
    def _values(cls, n, denom):
        alpha = 25.0 / 46.0
        return alpha - (1 - alpha) * np.cos(n * 2 * np.pi / denom)


class BlackmanWindow(_Window):
    @classmethod
    def _values(cls, n, denom):
        return 0.42 - 0.5 * np.cos(n * 2 * np.pi / denom) + 0.08 * np.cos(n * 4 * np.pi / denom)


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "HannWindow": HannWindow, "HammingWindow": HammingWindow, "BlackmanWindow": BlackmanWindow,
    "DFT": DFT,
    "STFT": STFT,
    "MelWeightMatrix": MelWeightMatrix,
}
