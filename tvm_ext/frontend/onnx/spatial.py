"""ONNX spatial ops TVM 0.27 gets wrong or lacks: Conv/ConvTranspose padding rules
(``auto_pad``, ``output_shape``), Resize (linear/cubic/antialias as interpolation matrices),
CenterCropPad and SpaceToDepth's CRD mode."""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import OnnxOpConverter, UnsupportedForm, _const, _const_ints, _dtype, _shape, explicit_pads


class Conv(_tvm_onnx.Conv):
    """Conv with ``auto_pad`` resolved into explicit pads first (see :func:`explicit_pads`)."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        attr = explicit_pads("Conv", attr, _shape(inputs[0]), _shape(inputs[1]))
        return super()._impl_v11(bb, inputs, attr, params)


class SpaceToDepth(_tvm_onnx.SpaceToDepth):
    """SpaceToDepth with ``mode`` (opset 28): CRD orders the output channels (c, bh, bw);
    TVM ignores the attribute and always does DCR (bh, bw, c)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        mode = attr.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "DCR":
            return super()._impl_v1(bb, inputs, attr, params)
        if mode != "CRD":
            raise UnsupportedForm(f"SpaceToDepth mode must be DCR or CRD, got {mode!r}")
        bs = int(attr["blocksize"])
        b, c, h, w = _shape(inputs[0])
        x = relax.op.reshape(inputs[0], (b, c, h // bs, bs, w // bs, bs))
        x = relax.op.permute_dims(x, [0, 1, 3, 5, 2, 4])
        return relax.op.reshape(x, (b, c * bs * bs, h // bs, w // bs))


class ConvTranspose(_tvm_onnx.ConvTranspose):
    """ConvTranspose with the ``output_shape`` attribute, which TVM ignores.

    Per the spec, ``total = stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - out``
    is split into pads (SAME_UPPER: the smaller half first, otherwise the larger half first;
    ``auto_pad`` does not change the rule).  A negative total (output larger than the
    convolution reaches) extends the output at the end as output_padding, as onnxruntime and
    the reference do (both refuse an extension that reaches the stride)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        if "output_shape" not in attr:
            return super()._impl_v1(bb, inputs, attr, params)
        x, w = inputs[0], inputs[1]
        spatial = _shape(x)[2:]
        n = len(spatial)
        out = [int(v) for v in attr["output_shape"]][-n:]  # spatial dims (some exporters give N, C too)
        kernel = [int(v) for v in attr.get("kernel_shape", _shape(w)[2:])]
        strides = [int(v) for v in attr.get("strides", [1] * n)]
        dilations = [int(v) for v in attr.get("dilations", [1] * n)]
        out_pad = [int(v) for v in attr.get("output_padding", [0] * n)]
        auto_pad = attr.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        begin, end, extra = [], [], []
        for i in range(n):
            total = strides[i] * (spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 - out[i]
            first = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(max(first, 0))
            end.append(max(total - first, 0))
            extra.append(max(-total, 0))
            if extra[i] and out_pad[i] + extra[i] >= strides[i]:  # onnxruntime and the reference refuse it too
                raise UnsupportedForm(f"ConvTranspose output_shape {out} is inconsistent with the input size {spatial}: "
                                 f"axis {i} would need output_padding {out_pad[i] + extra[i]} >= stride {strides[i]}")
        attr = {k: v for k, v in attr.items() if k not in ("output_shape", "auto_pad")}
        attr["pads"] = begin + end
        attr["output_padding"] = [p + e for p, e in zip(out_pad, extra)]
        return super()._impl_v1(bb, inputs, attr, params)


class CenterCropPad(OnnxOpConverter):
    """Center crop (slice) or zero-pad every listed axis to ``shape`` (floor of half the difference first)."""

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        x = inputs[0]
        dims = _shape(x)
        target = _const_ints(inputs[1], params, "CenterCropPad shape")
        axes = [a % len(dims) for a in attr.get("axes", range(len(dims)))]
        begin, end, pad = [], [], [0] * (2 * len(dims))
        crop_axes = []
        for a, t in zip(axes, target):
            if t < dims[a]:
                start = (dims[a] - t) // 2
                crop_axes.append(a)
                begin.append(start)
                end.append(start + t)
            elif t > dims[a]:
                before = (t - dims[a]) // 2
                pad[2 * a], pad[2 * a + 1] = before, t - dims[a] - before
        if crop_axes:
            x = bb.normalize(relax.op.strided_slice(x, crop_axes, begin, end))
        if any(pad):
            x = relax.op.nn.pad(x, pad, pad_value=0.0)
        return x


def _resize_coeffs(mode: str, ratio: np.ndarray, scale: float, antialias: bool, a: float) -> np.ndarray:
    """Interpolation weights (len(ratio), taps) for the neighbours of each output point, as in
    onnx's reference ``op_resize.py``; antialias stretches the kernel by 1 / scale when
    downsampling and normalizes it."""
    r = ratio[:, None]
    if antialias:
        s = min(scale, 1.0)
        if mode == "linear":
            start = int(np.floor(-1 / s) + 1)
            args = (np.arange(start, 2 - start) - r) * s
            c = np.clip(1 - np.abs(args), 0, 1)
        else:
            start = int(np.floor(-2 / s) + 1)
            x = np.abs(s * (np.arange(start, 2 - start) - r))
            c = np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                         np.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, 0.0))
        return c / c.sum(axis=1, keepdims=True)
    if mode == "linear":
        return np.concatenate([1 - r, r], axis=1)
    t = 1 - r
    return np.concatenate([
        ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
        ((a + 2) * r - (a + 3)) * r * r + 1,
        ((a + 2) * t - (a + 3)) * t * t + 1,
        ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a], axis=1)


def _resize_matrix(in_w: int, out_w: int, scale: float, attr, roi):
    """Resize along one axis as ``y = M @ x + bias``: M is (out_w, in_w), bias is None or the
    extrapolation value at the rows tf_crop_and_resize maps outside the input.  Coordinates,
    neighbours (edge-clamped) and weights follow onnx's reference ``_interpolate_1d_along_axis``."""
    def get(key, default):
        v = attr.get(key, default)
        return v.decode() if isinstance(v, bytes) else v

    coord, mode = get("coordinate_transformation_mode", "half_pixel"), get("mode", "nearest")
    out_f = scale * in_w
    y = np.arange(out_w, dtype=np.float64)
    outside = None
    if coord == "align_corners":
        x = np.zeros(out_w) if out_f == 1 else y * (in_w - 1) / (out_f - 1)
    elif coord == "asymmetric":
        x = y / scale
    elif coord == "tf_crop_and_resize":
        lo, hi = (0.0, 1.0) if roi is None else (float(roi[0]), float(roi[1]))
        x = np.full(out_w, (hi - lo) * (in_w - 1) / 2) if out_f == 1 else y * (hi - lo) * (in_w - 1) / (out_f - 1)
        x = x + lo * (in_w - 1)
        outside = (x < 0) | (x > in_w - 1)
    elif coord == "pytorch_half_pixel":
        x = np.full(out_w, -0.5) if out_f == 1 else (y + 0.5) / scale - 0.5
    elif coord == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif coord == "half_pixel_symmetric":
        x = in_w / 2 * (1 - out_w / out_f) + (y + 0.5) / scale - 0.5
    else:
        raise UnsupportedForm(f"Resize coordinate_transformation_mode {coord!r} is not defined")
    x_int = np.floor(x)
    ratio = np.where(x == x_int, 1.0, x - x_int)  # an integer coordinate takes its left neighbour
    coeffs = _resize_coeffs(mode, ratio, scale, bool(attr.get("antialias", 0)), float(attr.get("cubic_coeff_a", -0.75)))
    n = coeffs.shape[1]
    pad = int(np.ceil(n / 2))
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        offset = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        offset = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    idx = (p + offset)[:, None] + np.arange(n)[None, :] - pad
    if int(attr.get("exclude_outside", 0)):
        coeffs = np.where((idx < 0) | (idx >= in_w), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    m = np.zeros((out_w, in_w))
    np.add.at(m, (np.repeat(np.arange(out_w), n), np.clip(idx, 0, in_w - 1).reshape(-1)), coeffs.reshape(-1))
    bias = None
    if outside is not None and outside.any():
        m[outside] = 0
        bias = np.where(outside, float(attr.get("extrapolation_value", 0.0)), 0.0)
    return m, bias


class Resize(_tvm_onnx.Resize):
    """Resize.  Linear and cubic modes on float data with constant scales/sizes are separable
    per-axis interpolation matrices, applied as matmuls (exact, and they run on the device):
    TVM's resize2d computes coordinates from the size ratio instead of the given scale, has no
    antialias and no half_pixel_symmetric, and divides by zero for 1-pixel align_corners.  The
    weights follow onnx's reference, so non-finite inputs spread NaN across each output's
    whole row/column (0 * inf).

    Otherwise (nearest) TVM's converter runs, after resolving the ``axes`` attribute and
    ``keep_aspect_ratio_policy`` (opset 18+), which TVM does not read, into full-rank
    constants (unlisted axes keep their size, roi 0..1; ``not_larger``/``not_smaller`` scale
    all listed axes by the min/max ratio, sizes rounded half up)."""

    @classmethod
    def _separable(cls, bb, inputs, attr, params):
        """The matmul form, or None when it does not apply (mode, dtype, non-constant inputs)."""
        x = inputs[0]
        mode = attr.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode not in ("linear", "cubic") or not _tvm_onnx._relax_dtype_is_floating_point(_dtype(x)):
            return None
        dims = _shape(x)
        rank = len(dims)
        given = []
        for i in (1, 2, 3):
            value = None if inputs[i] is None else _tvm_onnx.get_constant(inputs[i], params)
            if inputs[i] is not None and not isinstance(value, tvm.ir.GenericConst):
                return None
            array = None if value is None else value.value.numpy().reshape(-1).astype(np.float64)
            given.append(array if array is not None and array.size else None)
        roi, scales, sizes = given
        axes = [a % rank for a in attr.get("axes", range(rank))]
        # per-axis scale and output size as in the reference's _interpolate_nd
        scale, out = [1.0] * rank, list(dims)
        if roi is not None:
            full = [0.0] * rank + [1.0] * rank
            for k, a in enumerate(axes):
                full[a], full[rank + a] = roi[k], roi[len(axes) + k]
            roi = full
        if sizes is not None:
            for k, a in enumerate(axes):
                out[a] = int(sizes[k])
                scale[a] = out[a] / dims[a]
            policy = attr.get("keep_aspect_ratio_policy", b"stretch")
            policy = policy.decode() if isinstance(policy, bytes) else policy
            if policy != "stretch":
                common = (min if policy == "not_larger" else max)(scale[a] for a in axes)
                for a in axes:
                    scale[a], out[a] = common, int(common * dims[a] + 0.5)
        elif scales is not None:
            for k, a in enumerate(axes):
                scale[a] = float(scales[k])
                out[a] = int(scale[a] * dims[a])
        else:
            raise UnsupportedForm("Resize needs scales or sizes")
        dtype = _dtype(x)
        work = dtype if dtype in ("float32", "float64") else "float32"
        y = bb.normalize(relax.op.astype(x, work)) if work != dtype else x
        for a in axes:
            trivial_roi = roi is None or (np.isclose(roi[a], 0.0) and np.isclose(roi[a + rank], 1.0))
            if np.isclose(scale[a], 1.0) and out[a] == dims[a] and trivial_roi:
                continue  # identity along this axis (the reference skips it too)
            m, bias = _resize_matrix(dims[a], out[a], scale[a], attr, None if roi is None else roi[a::rank])
            if a == rank - 2:
                y = bb.normalize(relax.op.matmul(_const(m, work), y))
            else:
                perm = [d for d in range(rank) if d != a] + [a]
                if a != rank - 1:
                    y = bb.normalize(relax.op.permute_dims(y, perm))
                y = bb.normalize(relax.op.matmul(y, _const(m.T, work)))
                if a != rank - 1:
                    y = bb.normalize(relax.op.permute_dims(y, [int(i) for i in np.argsort(perm)]))
            if bias is not None:
                shape = [1] * rank
                shape[a] = out[a]
                y = bb.normalize(relax.op.add(y, _const(bias.reshape(shape), work)))
        return relax.op.astype(y, dtype) if work != dtype else y

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        separable = cls._separable(bb, inputs, attr, params)
        if separable is not None:
            return separable
        policy = attr.get("keep_aspect_ratio_policy", b"stretch")
        policy = policy.decode() if isinstance(policy, bytes) else policy
        if "axes" not in attr and policy == "stretch":
            return super()._impl_v18(bb, inputs, attr, params)
        dims = _shape(inputs[0])
        rank = len(dims)
        axes = [a % rank for a in attr.get("axes", range(rank))]

        def const(i, dtype):
            if inputs[i] is None:
                return None
            value = _tvm_onnx.get_constant(inputs[i], params)
            if not isinstance(value, tvm.ir.GenericConst):
                raise UnsupportedForm(f"Resize input {i} must be a constant")
            array = value.value.numpy().reshape(-1).astype(dtype)
            return array if array.size else None

        roi, scales, sizes = const(1, "float32"), const(2, "float32"), const(3, "int64")
        fixed = list(inputs)
        if roi is not None:
            full = np.array([0.0] * rank + [1.0] * rank, dtype="float32")
            for k, a in enumerate(axes):
                full[a], full[rank + a] = roi[k], roi[len(axes) + k]
            fixed[1] = _const(full, "float32")
        if scales is not None:
            full = np.ones(rank, dtype="float32")
            full[axes] = scales
            fixed[2] = _const(full, "float32")
        if sizes is not None:
            full = np.array(dims, dtype="int64")
            ratios = [sizes[k] / dims[a] for k, a in enumerate(axes)]
            for k, a in enumerate(axes):
                if policy == "stretch":
                    full[a] = sizes[k]
                else:
                    r = min(ratios) if policy == "not_larger" else max(ratios)
                    full[a] = int(np.floor(dims[a] * r + 0.5))
            fixed[3] = _const(full, "int64")
        attr = {k: v for k, v in attr.items() if k not in ("axes", "keep_aspect_ratio_policy")}
        return super()._impl_v18(bb, _tvm_onnx.onnx_input(fixed), attr, params)


class NonMaxSuppression(_tvm_onnx.NonMaxSuppression):
    """NonMaxSuppression that suppresses only boxes whose IoU is strictly above the threshold.

    TVM's NMS suppresses at ``iou >= threshold`` (and skips NMS entirely for a threshold of 0);
    ONNX suppresses at ``iou > threshold``.  For float32 IoUs, ``iou > t`` is exactly
    ``iou >= nextafter(t, inf)``, so the (constant) threshold is moved up one ulp.  A missing
    threshold is 0, as in ONNX (TVM would use 0.5)."""

    _SCALARS = {2: "max_output_boxes_per_class", 3: "iou_threshold", 4: "score_threshold"}

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        fixed = list(inputs) + [None] * (5 - len(inputs))
        for k, what in cls._SCALARS.items():   # TVM would silently use its defaults for run-time values
            if fixed[k] is not None and not isinstance(_tvm_onnx.get_constant(fixed[k], params), tvm.ir.GenericConst):
                raise UnsupportedForm(f"NonMaxSuppression with a run-time {what} is not supported: give it as an "
                                 "initializer or Constant")
        thr = fixed[3]
        value = _tvm_onnx.get_constant(thr, params) if thr is not None else None
        if thr is None or isinstance(value, tvm.ir.GenericConst):
            t = value.value.numpy().reshape(-1) if thr is not None else np.zeros(0)
            t = np.float32(t[0]) if t.size else np.float32(0)
            fixed[3] = _const([np.nextafter(t, np.float32(np.inf))], "float32")
        return super()._impl_v10(bb, _tvm_onnx.onnx_input(fixed), attr, params)


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "Conv": Conv, "ConvTranspose": ConvTranspose, "Resize": Resize, "CenterCropPad": CenterCropPad,
    "SpaceToDepth": SpaceToDepth, "NonMaxSuppression": NonMaxSuppression,
}
