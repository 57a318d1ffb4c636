"""Converters for ONNX ops TVM 0.27's Relax importer lacks or gets wrong, written in Relax.

Each class is one ONNX op (per-opset ``_impl_vN`` like TVM's own converters);
:data:`EXTRA_CONVERTERS` is merged into the importer's map by
:mod:`tvm_ext.frontend.onnx_converters`.  Shapes are static here (forge_fe
imports with concrete input shapes), so masks and index tables that depend only
on shapes are built with numpy as constants.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

OnnxOpConverter = _tvm_onnx.OnnxOpConverter


class UnsupportedForm(ValueError):
    """A converter refuses this instance of its op on purpose (a run-time value where forge_fe
    compiles a constant, an attribute value it does not implement): reported as a forge_fe
    limitation naming the node, not as a TVM importer bug."""


def _shape(x) -> list[int]:
    return [int(d) for d in x.ty.shape.values]


def _dtype(x) -> str:
    return str(x.ty.dtype)


def _const(value, dtype: str):
    return relax.const(np.asarray(value, dtype=dtype), dtype)


def _onnx_dtype_name(elem_type: int) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))


# --------------------------------------------------------------------------
# Constant with value_* attributes
# --------------------------------------------------------------------------


class Constant(_tvm_onnx.Constant):
    """Constant given by ``value_float(s)``/``value_int(s)``/``value_string(s)``.

    TVM only reads the ``value`` tensor attribute; opset >= 12 also allows the
    scalar/list spellings (the suite's ``_expanded`` function bodies use them).
    ONNX types them float32 / int64.
    """

    _SPELLINGS = {"value_float": "float32", "value_floats": "float32",
                  "value_int": "int64", "value_ints": "int64"}  # fmt: skip

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        for key, dtype in cls._SPELLINGS.items():
            if key in attr:
                return _const(np.asarray(attr[key]), dtype)
        if "value_string" in attr or "value_strings" in attr:
            raise UnsupportedForm("string constants are not supported (no string tensors in Relax)")
        return super()._impl_v13(bb, inputs, attr, params)


# --------------------------------------------------------------------------
# Concat of shapes and tensors
# --------------------------------------------------------------------------


class Concat(_tvm_onnx.Concat):
    """Concat of a mix of shape values (``Shape`` outputs) and int64 tensors.

    TVM concatenates shapes as shapes only when *every* input is shape-like;
    otherwise it hands the ShapeExprs to ``relax.concat`` unchanged, which
    refuses them.  Shapes become int64 tensors first (constants when static).
    """

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        shapes = [isinstance(x, relax.Expr) and isinstance(x.ty, relax.ShapeType) for x in inputs]
        if any(shapes) and not all(shapes):
            from .onnx_converters import _shape_to_tensor

            fixed = [bb.normalize(_shape_to_tensor(x)) if s else x for x, s in zip(inputs, shapes)]
            if all(isinstance(x, tvm.ir.GenericConst) for x in fixed):
                arrays = [x.value.numpy() for x in fixed]
                return relax.const(np.concatenate(arrays, axis=attr.get("axis", 0)))
            return relax.op.concat(fixed, axis=attr.get("axis", 0))
        return super()._impl_v13(bb, inputs, attr, params)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


def _nll(bb, log_prob, target, weight, reduction: str, ignore_index):
    """-log_prob[n, target[n, d...], d...] with weights / ignore_index, then the reduction."""
    dtype = _dtype(log_prob)
    tdt = _dtype(target)
    valid = None
    safe = target
    if ignore_index is not None:
        valid = bb.normalize(relax.op.not_equal(target, _const(ignore_index, tdt)))
        safe = bb.normalize(relax.op.where(valid, target, _const(0, tdt)))
    picked = relax.op.gather_elements(log_prob, relax.op.expand_dims(safe, 1), axis=1)
    loss = bb.normalize(relax.op.negative(relax.op.squeeze(picked, [1])))
    gw = None
    if weight is not None:
        classes = _shape(weight)[0]
        idx = relax.op.clip(safe, relax.prim_value(0), relax.prim_value(classes - 1))
        gw = relax.op.take(weight, idx, axis=0)
        if valid is not None:
            gw = relax.op.where(valid, gw, _const(0, dtype))
        gw = bb.normalize(gw)
    elif valid is not None:
        gw = bb.normalize(relax.op.astype(valid, dtype))
    if gw is not None:
        loss = bb.normalize(relax.op.multiply(loss, gw))
    if reduction == "none":
        return loss
    if reduction == "sum":
        return relax.op.sum(loss)
    if reduction == "mean":
        if gw is not None:
            return relax.op.divide(relax.op.sum(loss), relax.op.sum(gw))
        return relax.op.mean(loss)
    raise UnsupportedForm(f"unknown reduction '{reduction}' (expected none, sum or mean)")


def _reduction(attr) -> str:
    red = attr.get("reduction", b"mean")
    return red.decode() if isinstance(red, bytes) else str(red)


class NegativeLogLikelihoodLoss(OnnxOpConverter):
    """NegativeLogLikelihoodLoss (opset 12/13/22) with weights and ignore_index."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        return _nll(bb, inputs[0], inputs[1], inputs[2], _reduction(attr), attr.get("ignore_index"))


class SoftmaxCrossEntropyLoss(OnnxOpConverter):
    """SoftmaxCrossEntropyLoss (opset 12/13): log_softmax over axis 1, then the NLL
    loss; the optional second output is the log-probabilities."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        log_prob = bb.normalize(relax.op.nn.log_softmax(inputs[0], axis=1))
        loss = _nll(bb, log_prob, inputs[1], inputs[2], _reduction(attr), attr.get("ignore_index"))
        return relax.Tuple([bb.normalize(loss), log_prob])


# --------------------------------------------------------------------------
# Normalizations
# --------------------------------------------------------------------------


def _stash(bb, x, attr):
    """x in the stash type (float32 unless ``stash_type`` says otherwise)."""
    stash = _onnx_dtype_name(int(attr.get("stash_type", 1)))
    return (bb.normalize(relax.op.astype(x, stash)) if _dtype(x) != stash else x), stash


class LayerNormalization(_tvm_onnx.LayerNormalization):
    """LayerNormalization whose optional Mean / InvStdDev outputs are used.

    TVM returns 0-d placeholders for them; ONNX wants the statistics with the
    normalized axes kept as 1.  When they are requested the op is spelled out
    (in the stash type); otherwise TVM's ``R.nn.layer_norm`` stays (a device op).
    """

    @classmethod
    def _impl_v17(cls, bb, inputs, attr, params):
        if attr.get("tvm_custom", {}).get("num_outputs", 1) == 1:
            return super()._impl_v17(bb, inputs, attr, params)
        x, scale, bias = inputs[0], inputs[1], inputs[2]
        rank = len(_shape(x))
        axis = int(attr.get("axis", -1)) % rank
        axes = list(range(axis, rank))
        eps = float(attr.get("epsilon", 1e-5))
        xs, stash = _stash(bb, x, attr)
        mean = bb.normalize(relax.op.mean(xs, axes, keepdims=True))
        centered = bb.normalize(relax.op.subtract(xs, mean))
        var = relax.op.mean(relax.op.multiply(centered, centered), axes, keepdims=True)
        inv_std = bb.normalize(relax.op.rsqrt(relax.op.add(var, _const(eps, stash))))
        y = bb.normalize(relax.op.astype(relax.op.multiply(centered, inv_std), _dtype(x)))
        y = relax.op.multiply(y, scale)
        if bias is not None:
            y = relax.op.add(y, bias)
        return relax.Tuple([bb.normalize(y), mean, inv_std])


class RMSNormalization(OnnxOpConverter):
    """RMSNormalization (opset 23) over ``axis..rank-1`` in the stash type.

    TVM's ``R.nn.rms_norm`` fails to legalize when the scale has fewer dims
    than the normalized axes (axis=0 cases); spelled out it always works."""

    @classmethod
    def _impl_v23(cls, bb, inputs, attr, params):
        x, scale = inputs[0], inputs[1]
        rank = len(_shape(x))
        axes = list(range(int(attr.get("axis", -1)) % rank, rank))
        eps = float(attr.get("epsilon", 1e-5))
        xs, stash = _stash(bb, x, attr)
        ms = relax.op.mean(relax.op.multiply(xs, xs), axes, keepdims=True)
        y = relax.op.multiply(xs, relax.op.rsqrt(relax.op.add(ms, _const(eps, stash))))
        y = bb.normalize(relax.op.astype(y, _dtype(x)) if stash != _dtype(x) else y)
        return relax.op.multiply(y, scale)


class LpNormalization(OnnxOpConverter):
    """x / ||x||_p along ``axis`` (p = 1 or 2); a zero norm gives 0."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        axis, p = int(attr.get("axis", -1)), int(attr.get("p", 2))
        if p == 1:
            norm = relax.op.sum(relax.op.abs(x), axis, keepdims=True)
        elif p == 2:
            norm = relax.op.sqrt(relax.op.sum(relax.op.multiply(x, x), axis, keepdims=True))
        else:
            raise UnsupportedForm(f"LpNormalization p={p}: only p=1 and p=2 are defined")
        norm = bb.normalize(norm)
        zero = _const(0, _dtype(x))
        safe = relax.op.where(relax.op.equal(norm, zero), _const(1, _dtype(x)), norm)
        return relax.op.where(relax.op.equal(norm, zero), zero, relax.op.divide(x, safe))


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------


def _swish(x, alpha: float):
    return relax.op.multiply(x, relax.op.sigmoid(relax.op.multiply(x, _const(alpha, _dtype(x)))))


class Celu(OnnxOpConverter):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        x = inputs[0]
        dt = _dtype(x)
        alpha = _const(float(attr.get("alpha", 1.0)), dt)
        neg = relax.op.multiply(alpha, relax.op.subtract(relax.op.exp(relax.op.divide(x, alpha)), _const(1, dt)))
        return relax.op.add(relax.op.maximum(x, _const(0, dt)), relax.op.minimum(neg, _const(0, dt)))


class Swish(OnnxOpConverter):
    """x * sigmoid(alpha * x)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return _swish(inputs[0], float(attr.get("alpha", 1.0)))


class SwiGLU(OnnxOpConverter):
    """Swish_alpha(A) * B (equal shapes)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        return relax.op.multiply(_swish(inputs[0], float(attr.get("alpha", 1.0))), inputs[1])


class Pow(_tvm_onnx.Pow):
    """Pow whose exponent has another dtype than the base (ONNX allows it; the
    result has the base's dtype).  TVM refuses mixed dtypes."""

    @classmethod
    def _impl_v7(cls, bb, inputs, attr, params):
        base, exp = inputs[0], inputs[1]
        bt, et = _dtype(base), _dtype(exp)
        if bt == et:
            return super()._impl_v7(bb, inputs, attr, params)
        if _tvm_onnx._relax_dtype_is_floating_point(bt):
            return relax.op.power(base, relax.op.astype(exp, bt))
        work = et if _tvm_onnx._relax_dtype_is_floating_point(et) else "float64"
        out = relax.op.power(relax.op.astype(base, work), relax.op.astype(exp, work))
        return relax.op.astype(out, bt)


class Einsum(OnnxOpConverter):
    """Einsum as ``R.einsum`` (TVM emits an opaque TIR function the partitioner cannot place)."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        eq = attr["equation"]
        eq = eq.decode() if isinstance(eq, bytes) else eq
        return relax.op.einsum(list(inputs), eq.replace(" ", ""))


# --------------------------------------------------------------------------
# Windows (their size is a compile-time value: the results are constants)
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Sequence reversal
# --------------------------------------------------------------------------


class ReverseSequence(OnnxOpConverter):
    """Reverse the first ``sequence_lens[b]`` steps of every batch entry:
    a gather along the time axis with index ``len - 1 - t`` where ``t < len``."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        data, lens = inputs[0], inputs[1]
        shape = _shape(data)
        batch_axis, time_axis = int(attr.get("batch_axis", 1)), int(attr.get("time_axis", 0))
        steps = shape[time_axis]
        t_shape = [1] * len(shape)
        t_shape[time_axis] = steps
        b_shape = [1] * len(shape)
        b_shape[batch_axis] = shape[batch_axis]
        t = _const(np.arange(steps).reshape(t_shape), "int64")
        n = bb.normalize(relax.op.reshape(relax.op.astype(lens, "int64"), b_shape))
        rev = relax.op.subtract(relax.op.subtract(n, _const(1, "int64")), t)
        idx = relax.op.where(relax.op.less(t, n), rev, t)
        idx = bb.normalize(relax.op.broadcast_to(idx, shape))
        return relax.op.gather_elements(data, idx, axis=time_axis)


# --------------------------------------------------------------------------
# Elementwise edge cases
# --------------------------------------------------------------------------


class IsInf(OnnxOpConverter):
    """IsInf honouring ``detect_positive`` / ``detect_negative`` (TVM ignores both)."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x = inputs[0]
        pos, neg = int(attr.get("detect_positive", 1)), int(attr.get("detect_negative", 1))
        inf = bb.normalize(relax.op.isinf(x))
        if pos and neg:
            return inf
        if not pos and not neg:
            return relax.op.zeros(x.ty.shape, "bool")
        zero = _const(0, _dtype(x))
        sign = relax.op.greater(x, zero) if pos else relax.op.less(x, zero)
        return relax.op.logical_and(inf, sign)


class Mod(_tvm_onnx.Mod):
    """Mod with ``fmod=0`` on floats as numpy's ``mod`` (the result takes the divisor's sign).

    TVM lowers it to ``floor_mod`` = ``x - floor(x / y) * y``, which gives NaN for infinite
    divisors (``-3 mod inf`` is ``inf``, ``3 mod inf`` is 3) and loses signed zeros.  Here it is
    C ``fmod`` (``R.mod``), then ``+ y`` where a nonzero remainder's sign differs from y's, and
    a zero remainder takes y's sign, as numpy's ``npy_divmod`` does."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x, y = inputs[0], inputs[1]
        floats = all(isinstance(v, relax.Expr) and isinstance(v.ty, relax.TensorType)
                     and _tvm_onnx._relax_dtype_is_floating_point(_dtype(v)) for v in (x, y))
        if int(attr.get("fmod", 0)) != 0 or not floats:
            return super()._impl_v10(bb, inputs, attr, params)
        dt = _dtype(x)
        if isinstance(x, tvm.ir.GenericConst) and isinstance(y, tvm.ir.GenericConst):
            return _const(np.mod(x.value.numpy(), y.value.numpy()), dt)
        zero = _const(0, dt)
        r = bb.normalize(relax.op.mod(x, y))
        y_neg = bb.normalize(relax.op.less(y, zero))
        wrong_sign = relax.op.logical_and(relax.op.not_equal(r, zero),
                                          relax.op.not_equal(relax.op.less(r, zero), y_neg))
        r2 = bb.normalize(relax.op.where(wrong_sign, relax.op.add(r, y), r))
        signed_zero = relax.op.where(y_neg, _const(-0.0, dt), zero)
        return relax.op.where(relax.op.equal(r2, zero), signed_zero, r2)


class BitShift(OnnxOpConverter):
    """BitShift with shift amounts outside [0, bits): LEFT gives 0, RIGHT fills with the sign
    (-1 for negative signed values, else 0), as the ONNX suite expects; TVM's shifts are undefined there."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x, amount = inputs[0], inputs[1]
        dt = _dtype(x)
        direction = attr.get("direction", b"LEFT")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        bits = np.iinfo(np.dtype(dt)).bits
        zero = _const(0, dt)
        in_range = bb.normalize(relax.op.logical_and(relax.op.greater_equal(amount, zero),
                                                     relax.op.less(amount, _const(bits, dt))))
        safe = bb.normalize(relax.op.where(in_range, amount, zero))
        if direction == "LEFT":
            shifted, fill = relax.op.left_shift(x, safe), zero
        elif direction == "RIGHT":
            shifted = relax.op.right_shift(x, safe)
            signed = np.issubdtype(np.dtype(dt), np.signedinteger)
            fill = relax.op.where(relax.op.less(x, zero), _const(-1, dt), zero) if signed else zero
        else:
            raise UnsupportedForm(f"BitShift direction must be LEFT or RIGHT, got {direction!r}")
        return relax.op.where(in_range, shifted, fill)


# --------------------------------------------------------------------------
# Shape-driven ops (their shape inputs are constants once imported)
# --------------------------------------------------------------------------


def _const_ints(expr, params, what: str) -> list[int]:
    value = _tvm_onnx.get_constant(expr, params)
    if isinstance(value, tvm.ir.GenericConst):
        return [int(v) for v in value.value.numpy().reshape(-1)]
    if isinstance(value, relax.ShapeExpr) and all(isinstance(d, tirx.IntImm) for d in value.values):
        return [int(d) for d in value.values]
    raise UnsupportedForm(f"{what} must be a constant (it decides the output shape)")


class OneHot(OnnxOpConverter):
    """OneHot with runtime ``values`` (TVM wants them constant): negative indices wrap once,
    out-of-range ones match nothing."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        idx, values = inputs[0], inputs[2]
        (depth,) = _const_ints(inputs[1], params, "OneHot depth")[:1]
        rank = len(_shape(idx))
        axis = int(attr.get("axis", -1))
        axis = axis + rank + 1 if axis < 0 else axis
        it = _dtype(idx)
        idx = bb.normalize(relax.op.where(relax.op.less(idx, _const(0, it)),
                                          relax.op.add(idx, _const(depth, it)), idx))
        classes = np.arange(depth).reshape([1] * axis + [depth] + [1] * (rank - axis))
        hit = relax.op.equal(relax.op.expand_dims(idx, axis), _const(classes, it))
        off = bb.normalize(relax.op.take(values, _const(0, "int64"), axis=0))
        on = bb.normalize(relax.op.take(values, _const(1, "int64"), axis=0))
        return relax.op.where(hit, on, off)


class EyeLike(OnnxOpConverter):
    """EyeLike as a constant (its value depends only on the static shape), in ``dtype`` if given."""

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        rows, cols = _shape(inputs[0])
        dtype = _onnx_dtype_name(int(attr["dtype"])) if "dtype" in attr else _dtype(inputs[0])
        return _const(np.eye(rows, cols, int(attr.get("k", 0)), dtype=dtype), dtype)


class Elu(OnnxOpConverter):
    """Elu in the input's dtype (TVM builds its constants as float32, which float16 inputs refuse)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        dt = _dtype(x)
        alpha = _const(float(attr.get("alpha", 1.0)), dt)
        neg = relax.op.multiply(alpha, relax.op.subtract(relax.op.exp(x), _const(1, dt)))
        return relax.op.where(relax.op.greater(x, _const(0, dt)), x, neg)


class CumSum(OnnxOpConverter):
    """CumSum / CumProd with ``exclusive`` and ``reverse`` as Relax scans (reverse = flip, scan, flip;
    TVM's CumSum reverses through an opaque TIR function and there is no CumProd converter)."""

    scan = staticmethod(relax.op.cumsum)

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        x = inputs[0]
        (axis,) = _const_ints(inputs[1], params, f"{cls.__name__} axis")[:1]
        axis %= len(_shape(x))
        reverse = bool(attr.get("reverse", 0))
        if reverse:
            x = bb.normalize(relax.op.flip(x, axis))
        out = bb.normalize(cls.scan(x, axis, exclusive=bool(attr.get("exclusive", 0))))
        return relax.op.flip(out, axis) if reverse else out


class CumProd(CumSum):
    scan = staticmethod(relax.op.cumprod)


# --------------------------------------------------------------------------
# TVM converters with a wrong attribute convention
# --------------------------------------------------------------------------


class BatchNormalization(_tvm_onnx.BatchNormalization):
    """Training-mode BatchNormalization whose running statistics use ONNX's momentum.

    ONNX: ``running = running * momentum + batch * (1 - momentum)``; TVM's ``batch_norm``
    (like torch) weights the *batch* statistic by ``momentum``, so it gets ``1 - momentum``."""

    @classmethod
    def _impl_v15(cls, bb, inputs, attr, params):
        if int(attr.get("training_mode", 0)):
            attr = dict(attr, momentum=1.0 - float(attr.get("momentum", 0.9)))
        return super()._impl_v15(bb, inputs, attr, params)


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


#: op_type -> converter class, merged over TVM's map (see onnx_converters.convert_map)
EXTRA_CONVERTERS: dict[str, type] = {
    "Constant": Constant,
    "Concat": Concat,
    "NegativeLogLikelihoodLoss": NegativeLogLikelihoodLoss,
    "SoftmaxCrossEntropyLoss": SoftmaxCrossEntropyLoss,
    "LayerNormalization": LayerNormalization,
    "RMSNormalization": RMSNormalization,
    "LpNormalization": LpNormalization,
    "Celu": Celu,
    "Swish": Swish,
    "SwiGLU": SwiGLU,
    "Pow": Pow,
    "Einsum": Einsum,
    "HannWindow": HannWindow,
    "HammingWindow": HammingWindow,
    "BlackmanWindow": BlackmanWindow,
    "ReverseSequence": ReverseSequence,
    "IsInf": IsInf,
    "BitShift": BitShift,
    "OneHot": OneHot,
    "EyeLike": EyeLike,
    "Elu": Elu,
    "CumSum": CumSum,
    "CumProd": CumProd,
    "Mod": Mod,
    "BatchNormalization": BatchNormalization,
    "NonMaxSuppression": NonMaxSuppression,
}
