"""ONNX normalizations and losses TVM 0.27 lacks or gets wrong: LayerNormalization's statistics
outputs, RMSNormalization, LpNormalization, BatchNormalization's training momentum, the losses
NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, and ReduceLogSumExp over infinities."""
from __future__ import annotations

from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import OnnxOpConverter, UnsupportedForm, _const, _const_ints, _dtype, _onnx_dtype_name, _shape


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


class BatchNormalization(_tvm_onnx.BatchNormalization):
    """Training-mode BatchNormalization whose running statistics use ONNX's momentum.

    ONNX: ``running = running * momentum + batch * (1 - momentum)``; TVM's ``batch_norm``
    (like torch) weights the *batch* statistic by ``momentum``, so it gets ``1 - momentum``."""

    @classmethod
    def _impl_v15(cls, bb, inputs, attr, params):
        if int(attr.get("training_mode", 0)):
            attr = dict(attr, momentum=1.0 - float(attr.get("momentum", 0.9)))
        return super()._impl_v15(bb, inputs, attr, params)


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


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
def _log_sum_exp(x, axes, keepdims: bool):
    """log(sum(exp(x - m))) + m, m the max with infinities replaced by 0 (as torch.logsumexp):
    with m = +-inf, x - m is NaN where the answer is +inf (or -inf for an all -inf slice)."""
    dt = _dtype(x)
    m = relax.op.max(x, axes, True)
    m = relax.op.where(relax.op.equal(relax.op.abs(m), _const(float("inf"), dt)), _const(0, dt), m)
    out = relax.op.add(relax.op.log(relax.op.sum(relax.op.exp(relax.op.subtract(x, m)), axes, True)), m)
    return out if keepdims else relax.op.squeeze(out, axes)


class ReduceLogSumExp(OnnxOpConverter):
    """ReduceLogSumExp that gives +inf for a slice holding +inf (onnxruntime), not NaN (TVM)."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        return _log_sum_exp(inputs[0], attr.get("axes", None), bool(attr.get("keepdims", 1)))

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        axes = None
        if len(inputs) > 1 and inputs[1] is not None:
            axes = _const_ints(inputs[1], params, "ReduceLogSumExp axes")
        if not axes and attr.get("noop_with_empty_axes", 0):
            return inputs[0]
        return _log_sum_exp(inputs[0], axes or None, bool(attr.get("keepdims", 1)))


CONVERTERS: dict[str, type] = {
    "LayerNormalization": LayerNormalization, "RMSNormalization": RMSNormalization,
    "LpNormalization": LpNormalization, "BatchNormalization": BatchNormalization,
    "NegativeLogLikelihoodLoss": NegativeLogLikelihoodLoss, "SoftmaxCrossEntropyLoss": SoftmaxCrossEntropyLoss,
    "ReduceLogSumExp": ReduceLogSumExp,
}
