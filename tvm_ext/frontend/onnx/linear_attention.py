"""ONNX converters: LinearAttention and CausalConvWithState (opset 27), which TVM 0.27's Relax
importer lacks.  Both are the recurrent blocks of Gated DeltaNet / Mamba style models.

Shapes are static in forge_fe, so LinearAttention's recurrence over the sequence is unrolled
into ordinary Relax ops (strided_slice, reshape, multiply, subtract, add, matmul, exp, concat)
that the device can run; CausalConvWithState is one depthwise ``conv1d`` over the input with
its carried state prepended.  Numerics follow ONNX's reference implementations: LinearAttention
computes in float32 whatever the input dtype, CausalConvWithState convolves in the input dtype
and computes the fused SiLU in float32.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from .common import OnnxOpConverter, UnsupportedForm, _const, _dtype, _shape, _text


def _as_float32(bb, x):
    return x if _dtype(x) == "float32" else bb.normalize(relax.op.astype(x, "float32"))


def _cast(bb, x, dtype: str):
    return x if _dtype(x) == dtype else bb.normalize(relax.op.astype(x, dtype))


# --------------------------------------------------------------------------
# LinearAttention
# --------------------------------------------------------------------------


def _step_slices(bb, x, shape) -> list:
    """A packed (B, T, F) tensor as T per-step tensors of shape (B, *shape), F = prod(shape)."""
    batch, steps, _ = _shape(x)
    return [bb.normalize(relax.op.reshape(relax.op.strided_slice(x, [1], [t], [t + 1]), (batch, *shape)))
            for t in range(steps)]


def _recurrent_step(bb, state, q, k, v, gate, beta):
    """One token; per KV head (G query heads share it), with S the (d_k, d_v) state:

    * gated: ``S <- exp(g) * S`` (``gate`` is exp(g), per key dim or per head)
    * delta: ``v <- beta * (v - S^T k)``, the correction reading the (decayed) state
    * ``S <- S + k v^T``; ``o = q^T S`` for each of the G query heads (q pre-scaled)

    ``state`` None is the zero state (nothing to decay or retrieve).  Shapes: state
    (B, H, d_k, d_v), q (B, H, G, d_k), k (B, H, 1, d_k), v (B, H, 1, d_v), gate
    (B, H, d_k | 1, 1), beta (B, H | 1, 1, 1).  Returns (state, o of (B, H, G, d_v)).
    """
    b, h, _, d_k = _shape(k)
    if state is not None and gate is not None:
        state = bb.normalize(relax.op.multiply(state, gate))
    if beta is not None:
        if state is not None:
            v = relax.op.subtract(v, relax.op.matmul(k, state))
        v = bb.normalize(relax.op.multiply(beta, v))
    outer = relax.op.multiply(relax.op.reshape(k, (b, h, d_k, 1)), v)
    state = bb.normalize(outer if state is None else relax.op.add(state, outer))
    return state, bb.normalize(relax.op.matmul(q, state))


class LinearAttention(OnnxOpConverter):
    """LinearAttention (opset 27): the linear / gated / delta / gated_delta recurrences

    * linear:      ``S_t = S_{t-1} + k_t v_t^T``
    * gated:       ``S_t = exp(g_t) S_{t-1} + k_t v_t^T``
    * delta:       ``S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T``
    * gated_delta: ``S_t = exp(g_t) S_{t-1} + beta_t k_t (v_t - exp(g_t) S_{t-1}^T k_t)^T``

    with ``o_t = scale * q_t^T S_t`` (scale 0 means 1/sqrt(d_k)), unrolled token by token as
    the reference runs it (``chunk_size`` is a tuning hint without effect on the result).
    Q/K/V, decay and beta are packed (B, T, H*D); the state is (B, H_kv, d_k, d_v), zeros when
    ``past_state`` is absent.  Query head i reads KV head i // G, G = H_q / H_kv (GQA/MQA): the
    query is viewed as (H_kv, G) heads, so one matmul reads the shared state without repeating
    it.  Decay is per key dim (H_kv*d_k) or per head (H_kv); beta per head (H_kv) or shared (1).
    Computed in float32; ``output`` has the query's dtype, ``present_state`` past_state's (else
    the query's).
    """

    RULES = ("linear", "gated", "delta", "gated_delta")

    @classmethod
    def _config(cls, inputs, attr) -> dict:
        """Validated attributes and head sizes."""
        rule = _text(attr.get("update_rule", b"gated_delta"))
        if rule not in cls.RULES:
            raise UnsupportedForm(f"LinearAttention update_rule '{rule}' is not supported "
                             f"(expected one of {', '.join(cls.RULES)})")
        if "q_num_heads" not in attr or "kv_num_heads" not in attr:
            raise UnsupportedForm("LinearAttention needs the q_num_heads and kv_num_heads attributes")
        hq, hkv = int(attr["q_num_heads"]), int(attr["kv_num_heads"])
        if hq <= 0 or hkv <= 0 or hq % hkv:
            raise UnsupportedForm(f"LinearAttention q_num_heads={hq} must be a positive multiple of "
                             f"kv_num_heads={hkv}")
        query, key, value = inputs[0], inputs[1], inputs[2]
        d_k, d_v = _shape(query)[-1] // hq, _shape(value)[-1] // hkv
        if (_shape(query)[-1] != hq * d_k or _shape(key)[-1] != hkv * d_k
                or _shape(value)[-1] != hkv * d_v):
            raise UnsupportedForm(f"LinearAttention query/key/value last dims {_shape(query)[-1]}, "
                             f"{_shape(key)[-1]}, {_shape(value)[-1]} do not split into "
                             f"q_num_heads={hq} / kv_num_heads={hkv} heads")
        gated, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
        for name, i, needed in (("decay", 4, gated), ("beta", 5, delta)):
            if needed != (inputs[i] is not None):
                raise UnsupportedForm(f"LinearAttention update_rule '{rule}' "
                                 f"{'requires' if needed else 'forbids'} the {name} input")
        scale = float(attr.get("scale", 0.0)) or 1.0 / np.sqrt(d_k)
        return {"hq": hq, "hkv": hkv, "d_k": d_k, "d_v": d_v, "scale": scale}

    @classmethod
    def _gates(cls, bb, decay, hkv, d_k) -> list:
        """Per step exp(decay) as (B, H_kv, d_k | 1, 1), broadcasting over the state's d_v."""
        last = _shape(decay)[-1]
        if last not in (hkv, hkv * d_k):
            raise UnsupportedForm(f"LinearAttention decay last dim {last} must be kv_num_heads ({hkv}) "
                             f"or kv_num_heads * d_k ({hkv * d_k})")
        gate = bb.normalize(relax.op.exp(_as_float32(bb, decay)))
        return _step_slices(bb, gate, (hkv, last // hkv, 1))

    @classmethod
    def _betas(cls, bb, beta, hkv) -> list:
        """Per step beta as (B, H_kv | 1, 1, 1)."""
        last = _shape(beta)[-1]
        if last not in (hkv, 1):
            raise UnsupportedForm(f"LinearAttention beta last dim {last} must be kv_num_heads ({hkv}) or 1")
        return _step_slices(bb, _as_float32(bb, beta), (last, 1, 1))

    @classmethod
    def _impl_v27(cls, bb, inputs, attr, params):
        query, key, value, past, decay, beta = (inputs[i] for i in range(6))
        cfg = cls._config(inputs, attr)
        hq, hkv, d_k, d_v = cfg["hq"], cfg["hkv"], cfg["d_k"], cfg["d_v"]
        batch, steps, _ = _shape(query)
        if past is not None and _shape(past) != [batch, hkv, d_k, d_v]:
            raise UnsupportedForm(f"LinearAttention past_state shape {_shape(past)} is not "
                             f"{[batch, hkv, d_k, d_v]}")

        q = bb.normalize(relax.op.multiply(_as_float32(bb, query), _const(cfg["scale"], "float32")))
        qs = _step_slices(bb, q, (hkv, hq // hkv, d_k))
        ks = _step_slices(bb, _as_float32(bb, key), (hkv, 1, d_k))
        vs = _step_slices(bb, _as_float32(bb, value), (hkv, 1, d_v))
        gates = cls._gates(bb, decay, hkv, d_k) if decay is not None else [None] * steps
        betas = cls._betas(bb, beta, hkv) if beta is not None else [None] * steps

        state = _as_float32(bb, past) if past is not None else None
        outs = []
        for t in range(steps):
            state, o = _recurrent_step(bb, state, qs[t], ks[t], vs[t], gates[t], betas[t])
            outs.append(bb.normalize(relax.op.reshape(o, (batch, 1, hq * d_v))))
        if state is None:  # no tokens and no past: the zero state
            state = _const(np.zeros((batch, hkv, d_k, d_v)), "float32")
        output = outs[0] if len(outs) == 1 else bb.normalize(relax.op.concat(outs, axis=1))
        state_dtype = _dtype(past) if past is not None else _dtype(query)
        return relax.Tuple([_cast(bb, output, _dtype(query)), _cast(bb, state, state_dtype)])


# --------------------------------------------------------------------------
# CausalConvWithState
# --------------------------------------------------------------------------


def _silu_float32(bb, x):
    """x * sigmoid(x), computed in float32 (as the reference does for 16-bit inputs)."""
    xf = _as_float32(bb, x)
    return _cast(bb, bb.normalize(relax.op.multiply(xf, relax.op.sigmoid(xf))), _dtype(x))


class CausalConvWithState(OnnxOpConverter):
    """CausalConvWithState (opset 27): a causal depthwise 1-D convolution with a carried state.

    ``P = concat(past_state or zeros, x)`` along time (B, C, k - 1 + L);
    ``y[b, c, t] = bias[c] + sum_j w[c, 0, j] P[b, c, t + j]``, then SiLU for
    ``activation`` silu/swish; ``present_state`` is the last k - 1 steps of P (so it holds
    past/zero steps too when L < k - 1, and is empty for k = 1).  The convolution is one
    ``conv1d`` with ``groups = C`` and no padding, a depthwise conv on the device.
    """

    ACTIVATIONS = ("none", "silu", "swish")

    @classmethod
    def _impl_v27(cls, bb, inputs, attr, params):
        x, weight, bias, past = inputs[0], inputs[1], inputs[2], inputs[3]
        activation = _text(attr.get("activation", b"none"))
        if activation not in cls.ACTIVATIONS:
            raise UnsupportedForm(f"CausalConvWithState activation '{activation}' is not supported "
                             f"(expected one of {', '.join(cls.ACTIVATIONS)})")
        batch, channels, length = _shape(x)
        if len(_shape(weight)) != 3 or _shape(weight)[:2] != [channels, 1]:
            raise UnsupportedForm(f"CausalConvWithState weight shape {_shape(weight)} is not "
                             f"({channels}, 1, k)")
        k = _shape(weight)[2]
        if past is None and k > 1:
            past = relax.op.zeros((batch, channels, k - 1), _dtype(x))
        padded = x if k == 1 else bb.normalize(relax.op.concat([past, x], axis=2))

        y = bb.normalize(relax.op.nn.conv1d(padded, weight, groups=channels))
        if bias is not None:
            y = bb.normalize(relax.op.add(y, relax.op.reshape(bias, (1, channels, 1))))
        if activation != "none":
            y = _silu_float32(bb, y)
        state = bb.normalize(relax.op.strided_slice(padded, [2], [length], [length + k - 1]))
        return relax.Tuple([y, state])


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {
    "LinearAttention": LinearAttention,
    "CausalConvWithState": CausalConvWithState,
}
