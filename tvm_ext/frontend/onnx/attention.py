"""ONNX's attention-family ops TVM 0.27 lacks: Attention (opset 23/24) and RotaryEmbedding."""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .common import (
    OnnxOpConverter, UnsupportedForm, _const, _dtype, _onnx_dtype_name, _shape,
)


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
                raise UnsupportedForm("3-D Q/K/V need the q_num_heads and kv_num_heads attributes")
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
                raise UnsupportedForm("3-D input needs the num_heads attribute")
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


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {"Attention": Attention, "RotaryEmbedding": RotaryEmbedding}
