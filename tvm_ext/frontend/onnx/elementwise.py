"""ONNX elementwise ops TVM 0.27 lacks or gets wrong: activations (Celu, Elu, Selu, Swish, SwiGLU,
ThresholdedRelu, Gelu at infinities), comparisons and arithmetic edge cases (Equal of shapes, Clip, Pow, Mod, BitShift,
IsInf, Sign of NaN) and float -> integer Cast."""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import OnnxOpConverter, UnsupportedForm, _const, _dtype


def _shape_values(inp) -> list | None:
    """A 0-d/1-d constant or a ShapeExpr as a list of ints / PrimExprs."""
    if isinstance(inp, relax.ShapeExpr):
        return [int(v) if isinstance(v, tirx.IntImm) else v for v in inp.values]
    if isinstance(inp, tvm.ir.GenericConst):
        array = inp.value.numpy()
        if array.ndim > 1:
            return None
        return array.reshape(-1).tolist()
    return None


def tvm_ffi_structural_equal(x, y) -> bool:
    try:
        return bool(tvm.ir.structural_equal(x, y))
    except Exception:  # noqa: BLE001 - mixed python/TVM values
        return False


class Equal(_tvm_onnx.Equal):
    """Equal of a shape value and a constant compares values, not node types.

    When one input is a ``ShapeExpr`` (the output of ``Shape``) and the other a
    constant, TVM folds the comparison with ``tvm_ffi.structural_equal`` on a
    ``tirx.IntImm`` against a Python int, which is always False.  torch's
    exporter emits ``Where(Equal(shape, -1), ones, shape)`` for every
    ``expand(-1, ...)`` (e.g. BERT's attention mask with dynamic axes), so the
    -1 survives into ``Expand``'s target shape (TVM's Expand happens to read
    -1 as "keep the dim", which hides it there) and any other consumer of the
    comparison gets wrong values silently.  Here static
    dims are compared as integers (with ONNX broadcasting of length-1
    operands); undecidable symbolic dims fall back to a runtime ``equal``.
    """

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        lhs, rhs = inputs[0], inputs[1]
        if isinstance(lhs, relax.ShapeExpr) or isinstance(rhs, relax.ShapeExpr):
            a, b = _shape_values(lhs), _shape_values(rhs)
            if a is not None and b is not None and (len(a) == len(b) or 1 in (len(a), len(b))):
                n = max(len(a), len(b))
                a = a * n if len(a) == 1 else a
                b = b * n if len(b) == 1 else b
                out = []
                for x, y in zip(a, b):
                    if isinstance(x, int) and isinstance(y, int):
                        out.append(x == y)
                    elif tvm_ffi_structural_equal(x, y):
                        out.append(True)
                    else:
                        out = None  # a symbolic dim: decide at run time
                        break
                if out is not None:
                    return relax.const(np.array(out, dtype=bool), "bool")
            tensors = [
                relax.op.shape_to_tensor(t) if isinstance(t, relax.ShapeExpr) else t
                for t in (lhs, rhs)
            ]
            return relax.op.equal(*tensors)
        return super()._impl_v13(bb, inputs, attr, params)


def _scalar_or_none(value):
    """A 1-element constant as a Python scalar, None if absent, else the expr."""
    if value is None:
        return None
    if isinstance(value, tvm.ir.GenericConst):
        array = value.value.numpy()
        if array.size == 1:
            return array.reshape(()).item()
    return value


class Clip(_tvm_onnx.Clip):
    """Clip as ``R.clip`` (static bounds) or ``R.maximum``/``R.minimum``.

    TVM emits ``topi.maximum``/``topi.minimum`` through ``emit_te``: two
    opaque ``call_tir``s per Clip (ReLU6 in every MobileNet).  Static bounds
    (attributes before opset 11, constant inputs after) become one
    ``R.clip``; NaN bounds mean "unbounded" as in onnxruntime.
    """

    @classmethod
    def _clip(cls, bb, x, lo, hi):
        dtype = str(x.ty.dtype)
        is_float = _tvm_onnx._relax_dtype_is_floating_point(dtype)
        lo, hi = _scalar_or_none(lo), _scalar_or_none(hi)
        static = all(v is None or isinstance(v, (int, float, bool)) for v in (lo, hi))
        if static:
            if is_float:
                lo = -np.inf if lo is None or np.isnan(lo) else float(lo)
                hi = np.inf if hi is None or np.isnan(hi) else float(hi)
            else:
                info = np.iinfo(np.dtype(dtype))
                lo = info.min if lo is None else int(lo)
                hi = info.max if hi is None else int(hi)
            return relax.op.clip(x, relax.prim_value(lo), relax.prim_value(hi))
        out = x
        if lo is not None:
            lo = lo if not isinstance(lo, (int, float)) else relax.const(lo, dtype)
            lo = cls._sanitize_nan_clip_bound(bb, lo, for_min=True)
            out = bb.normalize(relax.op.maximum(out, lo))
        if hi is not None:
            hi = hi if not isinstance(hi, (int, float)) else relax.const(hi, dtype)
            hi = cls._sanitize_nan_clip_bound(bb, hi, for_min=False)
            out = relax.op.minimum(out, hi)
        return out

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        lo, hi = attr.get("min"), attr.get("max")
        x = inputs[0]
        return cls._clip(
            bb,
            x,
            None if lo is None else relax.const(np.float32(lo), "float32"),
            None if hi is None else relax.const(np.float32(hi), "float32"),
        )

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        return cls._impl_v13(bb, inputs, attr, params)

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        lo = _tvm_onnx.get_constant(inputs[1], params) if inputs[1] is not None else None
        hi = _tvm_onnx.get_constant(inputs[2], params) if inputs[2] is not None else None
        return cls._clip(bb, inputs[0], lo, hi)


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


class Elu(OnnxOpConverter):
    """Elu in the input's dtype (TVM builds its constants as float32, which float16 inputs refuse)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        dt = _dtype(x)
        alpha = _const(float(attr.get("alpha", 1.0)), dt)
        neg = relax.op.multiply(alpha, relax.op.subtract(relax.op.exp(x), _const(1, dt)))
        return relax.op.where(relax.op.greater(x, _const(0, dt)), x, neg)


class Selu(OnnxOpConverter):
    """Selu in the input's dtype (TVM's converter builds float32 constants, which float16 inputs refuse)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        dt = _dtype(x)
        alpha = float(attr.get("alpha", 1.67326319217681884765625))
        gamma = float(attr.get("gamma", 1.05070102214813232421875))
        neg = relax.op.multiply(_const(gamma * alpha, dt), relax.op.subtract(relax.op.exp(x), _const(1, dt)))
        return relax.op.where(relax.op.greater(x, _const(0, dt)), relax.op.multiply(_const(gamma, dt), x), neg)


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


class Sign(OnnxOpConverter):
    """Sign with NaN -> NaN, as onnxruntime and numpy (TVM's ``sign`` gives 0, as torch does)."""

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        x = inputs[0]
        if not _tvm_onnx._relax_dtype_is_floating_point(_dtype(x)):
            return relax.op.sign(x)
        return relax.op.where(relax.op.not_equal(x, x), x, relax.op.sign(x))


class ThresholdedRelu(OnnxOpConverter):
    """x where x > alpha, else 0, as a select (TVM multiplies x by the mask, so NaN and -inf
    give NaN where onnxruntime gives 0)."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        x = inputs[0]
        dt = _dtype(x)
        return relax.op.where(relax.op.greater(x, _const(float(attr.get("alpha", 1.0)), dt)), x, _const(0, dt))


class Gelu(_tvm_onnx.Gelu):
    """Gelu (opset 20, approximate="none") as onnxruntime evaluates it, ``0.5 * x * (1 + erf(x / sqrt 2))``
    in that order: +inf gives +inf and 3e38 stays finite, where torch's vectorized gelu (the device
    kernel, right for torch models) gives NaN and inf."""

    @classmethod
    def _impl_v20(cls, bb, inputs, attr, params):
        approximate = attr.get("approximate", b"none")
        if (approximate.decode() if isinstance(approximate, bytes) else approximate) != "none":
            return super()._impl_v20(bb, inputs, attr, params)
        x = inputs[0]
        dt = _dtype(x)
        half_x = relax.op.multiply(_const(0.5, dt), x)
        phi = relax.op.add(_const(1.0, dt), relax.op.erf(relax.op.multiply(x, _const(float(1 / np.sqrt(2)), dt))))
        return relax.op.multiply(half_x, phi)


class Cast(_tvm_onnx.Cast):
    """Float -> integer Cast as a plain conversion, which truncates like onnxruntime's
    ``static_cast`` (NaN and out-of-range values are undefined in ONNX; the host gives INT_MIN).

    TVM computes it in int64 with a ``mod 2**32`` wrap and maps NaN to 0: five ops, two of them
    on the CPU, and int64 values the int32 device cannot hold."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        x = inputs[0]
        to = str(_tvm_onnx.get_type(attr["to"]))
        if (isinstance(x, relax.Expr) and isinstance(x.ty, relax.TensorType)
                and _tvm_onnx._relax_dtype_is_floating_point(_dtype(x)) and to.startswith(("int", "uint"))):
            return relax.op.astype(x, to)
        return super()._impl_v13(bb, inputs, attr, params)


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "Equal": Equal, "Clip": Clip, "Celu": Celu, "Swish": Swish, "SwiGLU": SwiGLU, "Elu": Elu, "Selu": Selu, "Pow": Pow,
    "IsInf": IsInf, "Mod": Mod, "BitShift": BitShift, "Sign": Sign, "ThresholdedRelu": ThresholdedRelu,
    "Cast": Cast, "Gelu": Gelu,
}
