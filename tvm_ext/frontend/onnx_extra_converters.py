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
            raise ValueError("string constants are not supported (no string tensors in Relax)")
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
# Attention (ai.onnx opset 23/24)
# --------------------------------------------------------------------------


class Attention(OnnxOpConverter):
    """ONNX's Attention (opset 23): scaled dot-product attention with optional
    mask, KV cache, causal masking, GQA, softcap and the ``qk_matmul_output``
    output.  (TVM's ``Attention`` converter is the com.microsoft contrib op,
    whose attributes differ: it fails with ``KeyError: 'num_heads'``.)

    Semantics follow the ONNX reference implementation: the scale is applied
    as sqrt(scale) to both Q and K, a boolean mask means "attend", masks
    shorter than the key sequence are padded with "masked", causal masking is
    bottom-right aligned (offset by the past length), and fully masked rows
    give zeros, not NaN.
    """

    @classmethod
    def _heads_first(cls, bb, x, num_heads):
        """(B, S, H*hs) -> (B, H, S, hs); 4-D inputs are already heads-first."""
        if len(_shape(x)) == 4:
            return x
        b, s, hidden = _shape(x)
        x = bb.normalize(relax.op.reshape(x, (b, s, num_heads, hidden // num_heads)))
        return bb.normalize(relax.op.permute_dims(x, [0, 2, 1, 3]))

    @classmethod
    def _mask_bias(cls, bb, mask, kv_len, dtype):
        """attn_mask as an additive bias of ``dtype`` (bool True -> 0, False -> -inf),
        padded with -inf up to ``kv_len`` keys."""
        if _dtype(mask) == "bool":
            mask = relax.op.where(mask, _const(0, dtype), _const(-np.inf, dtype))
        elif _dtype(mask) != dtype:
            mask = relax.op.astype(mask, dtype)
        mask = bb.normalize(mask)
        shape = _shape(mask)
        if shape[-1] < kv_len:
            pad = [0, 0] * (len(shape) - 1) + [0, kv_len - shape[-1]]
            mask = bb.normalize(relax.op.nn.pad(mask, pad, pad_value=float("-inf")))
        return mask

    @classmethod
    def _position_bias(cls, bb, q_len, kv_len, offset, dtype, allowed_fn):
        """-inf where ``allowed_fn(diff)`` is False, with diff = (i + offset) - j.

        ``offset`` is an int (the same for every batch: a constant (q, kv)
        bias) or a (B,) int64 expression (per batch: a (B, 1, q, kv) bias)."""
        i = np.arange(q_len).reshape(q_len, 1)
        j = np.arange(kv_len).reshape(1, kv_len)
        if isinstance(offset, int):
            allowed = allowed_fn(i + offset - j)
            return _const(np.where(allowed, 0, -np.inf), dtype)
        b = _shape(offset)[0]
        off = relax.op.reshape(offset, (b, 1, 1))
        diff = bb.normalize(relax.op.subtract(relax.op.add(_const(i, "int64"), off), _const(j, "int64")))
        allowed = bb.normalize(allowed_fn(diff, relax=True))
        bias = relax.op.where(allowed, _const(0, dtype), _const(-np.inf, dtype))
        return bb.normalize(relax.op.reshape(bias, (b, 1, q_len, kv_len)))

    @classmethod
    def _impl_v23(cls, bb, inputs, attr, params):
        q, k, v = inputs[0], inputs[1], inputs[2]
        mask, past_key, past_value = inputs[3], inputs[4], inputs[5]
        nonpad = inputs[6]
        dtype = _dtype(q)
        rank = len(_shape(q))
        is_causal = bool(attr.get("is_causal", 0))
        mode = int(attr.get("qk_matmul_output_mode", 0))
        softcap = attr.get("softcap")
        left, right = int(attr.get("left_window_size", -1)), int(attr.get("right_window_size", -1))
        if rank == 3:
            if "q_num_heads" not in attr or "kv_num_heads" not in attr:
                raise ValueError("3-D Q/K/V need the q_num_heads and kv_num_heads attributes")
            q = cls._heads_first(bb, q, int(attr["q_num_heads"]))
            k = cls._heads_first(bb, k, int(attr["kv_num_heads"]))
            v = cls._heads_first(bb, v, int(attr["kv_num_heads"]))
        batch, q_heads, q_len, head_size = _shape(q)

        scale = attr.get("scale")
        scale = 1 / np.sqrt(head_size) if scale is None else float(scale)
        sqrt_scale = _const(np.sqrt(np.float64(scale)), dtype)

        present_key, present_value = k, v
        if past_key is not None:
            present_key = bb.normalize(relax.op.concat([past_key, k], axis=2))
        if past_value is not None:
            present_value = bb.normalize(relax.op.concat([past_value, v], axis=2))
        k, v = present_key, present_value
        kv_heads, kv_len = _shape(k)[1], _shape(k)[2]

        # additive bias: mask, causal frontier, sliding window, padding
        bias = None
        if mask is not None:
            bias = cls._mask_bias(bb, mask, kv_len, dtype)
        if past_key is None and nonpad is not None:
            offset = bb.normalize(relax.op.subtract(nonpad, _const(q_len, _dtype(nonpad))))
            if _dtype(offset) != "int64":
                offset = bb.normalize(relax.op.astype(offset, "int64"))
        else:
            offset = _shape(past_key)[2] if past_key is not None else 0

        def add(a, b):
            return b if a is None else bb.normalize(relax.op.add(a, b))

        if is_causal:
            bias = add(bias, cls._position_bias(
                bb, q_len, kv_len, offset, dtype,
                lambda d, relax=False: relax_op_ge(d, 0) if relax else d >= 0))
        if left >= 0 or right >= 0:
            def window(d, relax=False):
                conds = []
                if left >= 0:
                    conds.append(relax_op_le(d, left) if relax else d <= left)
                if right >= 0:
                    conds.append(relax_op_ge(d, -right) if relax else d >= -right)
                if relax:
                    return conds[0] if len(conds) == 1 else tvm.relax.op.logical_and(*conds)
                return np.logical_and.reduce(conds)
            bias = add(bias, cls._position_bias(bb, q_len, kv_len, offset, dtype, window))
        if nonpad is not None:
            keys = _const(np.arange(kv_len).reshape(1, kv_len), "int64")
            lengths = relax.op.reshape(relax.op.astype(nonpad, "int64"), (batch, 1))
            valid = relax.op.less(keys, lengths)
            pad_bias = relax.op.where(valid, _const(0, dtype), _const(-np.inf, dtype))
            bias = add(bias, bb.normalize(relax.op.reshape(pad_bias, (batch, 1, 1, kv_len))))

        if q_heads != kv_heads and q_heads % kv_heads == 0:
            reps = q_heads // kv_heads
            k = bb.normalize(relax.op.repeat(k, reps, axis=1))
            v = bb.normalize(relax.op.repeat(v, reps, axis=1))

        qk = relax.op.matmul(
            relax.op.multiply(q, sqrt_scale),
            relax.op.permute_dims(relax.op.multiply(k, sqrt_scale), [0, 1, 3, 2]),
        )
        qk = bb.normalize(qk)
        if softcap is not None and float(softcap) > 0:
            cap = _const(float(softcap), dtype)
            qk = bb.normalize(relax.op.multiply(relax.op.tanh(relax.op.divide(qk, cap)), cap))
        scores = qk if bias is None else bb.normalize(relax.op.add(qk, bias))
        qk_out = scores if mode == 2 else qk

        precision = attr.get("softmax_precision")
        if precision is not None:
            scores = bb.normalize(relax.op.astype(scores, _onnx_dtype_name(int(precision))))
        probs = bb.normalize(relax.op.nn.softmax(scores, axis=-1))
        if bias is not None:
            # rows where every key is masked attend to nothing: zeros, not NaN
            row_max = relax.op.max(bias, axis=-1, keepdims=True)
            masked = relax.op.equal(row_max, _const(-np.inf, dtype))
            probs = bb.normalize(relax.op.where(masked, _const(0, _dtype(probs)), probs))
        if mode == 3:
            qk_out = probs
        if _dtype(qk_out) != dtype:
            qk_out = relax.op.astype(qk_out, dtype)
        if _dtype(probs) != dtype:
            probs = bb.normalize(relax.op.astype(probs, dtype))

        y = bb.normalize(relax.op.matmul(probs, v))
        if rank == 3:
            y = bb.normalize(relax.op.permute_dims(y, [0, 2, 1, 3]))
            y = bb.normalize(relax.op.reshape(y, (batch, q_len, -1)))
        return relax.Tuple([y, present_key, present_value, bb.normalize(qk_out)])


def relax_op_ge(a, value):
    return relax.op.greater_equal(a, _const(value, "int64"))


def relax_op_le(a, value):
    return relax.op.less_equal(a, _const(value, "int64"))


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
    raise ValueError(f"unknown reduction '{reduction}' (expected none, sum or mean)")


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
            raise ValueError(f"LpNormalization p={p}: only p=1 and p=2 are defined")
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
            raise ValueError(f"{cls.__name__} size must be a constant (it decides the output shape)")
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
# Sequence reversal and rotary embeddings
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


class RotaryEmbedding(OnnxOpConverter):
    """RotaryEmbedding (opset 23): rotate the first ``rotary_embedding_dim``
    features of every head by the cos/sin caches (optionally indexed by
    ``position_ids``), halves or interleaved pairs."""

    @classmethod
    def _impl_v23(cls, bb, inputs, attr, params):
        x, cos, sin, pos = inputs[0], inputs[1], inputs[2], inputs[3]
        shape = _shape(x)
        interleaved = bool(attr.get("interleaved", 0))
        if len(shape) == 4:  # (B, H, S, D) -> (B, S, H, D)
            x = bb.normalize(relax.op.permute_dims(x, [0, 2, 1, 3]))
        else:
            heads = int(attr.get("num_heads", 0))
            if heads <= 0:
                raise ValueError("3-D input needs the num_heads attribute")
            b, s, hidden = shape
            x = bb.normalize(relax.op.reshape(x, (b, s, heads, hidden // heads)))
        b, s, h, d = _shape(x)
        rot = int(attr.get("rotary_embedding_dim", 0)) or d
        if pos is not None:
            cos = relax.op.take(cos, pos, axis=0)
            sin = relax.op.take(sin, pos, axis=0)
        cos = bb.normalize(relax.op.expand_dims(cos, 2))
        sin = bb.normalize(relax.op.expand_dims(sin, 2))
        x_rot = bb.normalize(relax.op.strided_slice(x, [3], [0], [rot]))
        if interleaved:
            x1 = relax.op.strided_slice(x_rot, [3], [0], [rot], [2])
            x2 = relax.op.strided_slice(x_rot, [3], [1], [rot], [2])
        else:
            x1 = relax.op.strided_slice(x_rot, [3], [0], [rot // 2])
            x2 = relax.op.strided_slice(x_rot, [3], [rot // 2], [rot])
        x1, x2 = bb.normalize(x1), bb.normalize(x2)
        real = relax.op.subtract(relax.op.multiply(cos, x1), relax.op.multiply(sin, x2))
        imag = relax.op.add(relax.op.multiply(sin, x1), relax.op.multiply(cos, x2))
        if interleaved:
            pair = relax.op.stack([real, imag], axis=4)
            rotated = relax.op.reshape(pair, (b, s, h, rot))
        else:
            rotated = relax.op.concat([real, imag], axis=3)
        parts = [bb.normalize(rotated)]
        if rot < d:
            parts.append(bb.normalize(relax.op.strided_slice(x, [3], [rot], [d])))
        out = bb.normalize(relax.op.concat(parts, axis=3)) if len(parts) > 1 else parts[0]
        if len(shape) == 4:
            return relax.op.permute_dims(out, [0, 2, 1, 3])
        return relax.op.reshape(out, shape)


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
            raise ValueError(f"BitShift direction must be LEFT or RIGHT, got {direction!r}")
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
    raise ValueError(f"{what} must be a constant (it decides the output shape)")


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
        raise ValueError(f"Resize coordinate_transformation_mode {coord!r} is not defined")
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
            raise ValueError("Resize needs scales or sizes")
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
                raise ValueError(f"Resize input {i} must be a constant")
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
            raise ValueError(f"SpaceToDepth mode must be DCR or CRD, got {mode!r}")
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
                raise ValueError(f"ConvTranspose output_shape {out} is inconsistent with the input size {spatial}: "
                                 f"axis {i} would need output_padding {out_pad[i] + extra[i]} >= stride {strides[i]}")
        attr = {k: v for k, v in attr.items() if k not in ("output_shape", "auto_pad")}
        attr["pads"] = begin + end
        attr["output_padding"] = [p + e for p, e in zip(out_pad, extra)]
        return super()._impl_v1(bb, inputs, attr, params)


class NonMaxSuppression(_tvm_onnx.NonMaxSuppression):
    """NonMaxSuppression that suppresses only boxes whose IoU is strictly above the threshold.

    TVM's NMS suppresses at ``iou >= threshold`` (and skips NMS entirely for a threshold of 0);
    ONNX suppresses at ``iou > threshold``.  For float32 IoUs, ``iou > t`` is exactly
    ``iou >= nextafter(t, inf)``, so the (constant) threshold is moved up one ulp.  A missing
    threshold is 0, as in ONNX (TVM would use 0.5)."""

    @classmethod
    def _impl_v10(cls, bb, inputs, attr, params):
        fixed = list(inputs) + [None] * (5 - len(inputs))
        thr = fixed[3]
        value = _tvm_onnx.get_constant(thr, params) if thr is not None else None
        if thr is None or isinstance(value, tvm.ir.GenericConst):
            t = value.value.numpy().reshape(-1) if thr is not None else np.zeros(0)
            t = np.float32(t[0]) if t.size else np.float32(0)
            fixed[3] = _const([np.nextafter(t, np.float32(np.inf))], "float32")
        return super()._impl_v10(bb, _tvm_onnx.onnx_input(fixed), attr, params)


def explicit_pads(op: str, attr, x_shape, w_shape):
    """``attr`` with ``auto_pad`` resolved into explicit ``pads`` (shapes are static).

    TVM's Conv converter pads SAME_UPPER / SAME_LOWER through an opaque ``call_tir``
    that neither the device nor forge_fe's CPU fallback can run.  SAME pads a total of
    ``max((ceil(in / s) - 1) * s + (k - 1) * d + 1 - in, 0)``, the odd one at the end
    (SAME_UPPER) or the beginning (SAME_LOWER)."""
    attr = dict(attr)
    mode = attr.pop("auto_pad", b"NOTSET")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode == "NOTSET":
        return attr
    spatial = x_shape[2:]
    d = len(spatial)
    kernel = list(attr.get("kernel_shape", w_shape[2:]))
    strides, dilations = list(attr.get("strides", [1] * d)), list(attr.get("dilations", [1] * d))
    if mode == "VALID":
        attr["pads"] = [0] * (2 * d)
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max((-(-size // s) - 1) * s + (k - 1) * dil + 1 - size, 0)
                  for size, k, s, dil in zip(spatial, kernel, strides, dilations)]
        small = [t // 2 for t in totals]
        begin = small if mode == "SAME_UPPER" else [t - b for t, b in zip(totals, small)]
        attr["pads"] = begin + [t - b for t, b in zip(totals, begin)]
    else:
        raise ValueError(f"{op}: attribute auto_pad={mode!r} (expected NOTSET, SAME_UPPER, SAME_LOWER or VALID)")
    return attr

class Conv(_tvm_onnx.Conv):
    """Conv with ``auto_pad`` resolved into explicit pads first (see :func:`explicit_pads`)."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        attr = explicit_pads("Conv", attr, _shape(inputs[0]), _shape(inputs[1]))
        return super()._impl_v11(bb, inputs, attr, params)


#: op_type -> converter class, merged over TVM's map (see onnx_converters.convert_map)
EXTRA_CONVERTERS: dict[str, type] = {
    "Conv": Conv,
    "Constant": Constant,
    "Concat": Concat,
    "Attention": Attention,
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
    "RotaryEmbedding": RotaryEmbedding,
    "IsInf": IsInf,
    "BitShift": BitShift,
    "CenterCropPad": CenterCropPad,
    "OneHot": OneHot,
    "EyeLike": EyeLike,
    "Elu": Elu,
    "CumSum": CumSum,
    "CumProd": CumProd,
    "Resize": Resize,
    "Mod": Mod,
    "BatchNormalization": BatchNormalization,
    "SpaceToDepth": SpaceToDepth,
    "ConvTranspose": ConvTranspose,
    "NonMaxSuppression": NonMaxSuppression,
}
