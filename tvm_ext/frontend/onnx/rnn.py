"""ONNX's recurrent ops LSTM, GRU and RNN (opsets 7/14/22), which TVM 0.27's Relax importer lacks.

Shapes are static in forge_fe, so every op is unrolled over the sequence into ordinary Relax ops
(matmul, add, multiply, sigmoid/tanh/relu, strided_slice, take, where, concat, reshape,
permute_dims) that the device can run.  Common to all three:

* ``X`` is [seq, batch, input] (``layout=1``: [batch, seq, input]); ``W`` [D, G*H, input],
  ``R`` [D, G*H, H], ``B`` [D, 2*G*H] = (Wb, Rb), D = 2 for ``bidirectional``, G gates.
* ``X @ W^T + Wb + Rb`` is one matmul over all steps (GRU's ``linear_before_reset`` keeps
  ``Rb_h`` apart); each step adds ``H_{t-1} @ R^T``.
* Outputs: ``Y`` [seq, D, batch, H] (layout 1: [batch, seq, D, H]), ``Y_h`` [D, batch, H]
  (layout 1: [batch, D, H]), LSTM also ``Y_c``; all are returned, the importer binds those asked for.
* ``sequence_lens`` (constant or run-time): at steps t >= len[b] the state of batch b stops
  updating and ``Y`` is 0, so ``Y_h`` is the state after b's last valid step.  The reverse
  direction starts at each batch's own last valid step (step k reads X[len[b] - 1 - k]), as
  onnxruntime does; ``Y`` is written back at the same positions.  A batch of length 0 ends
  in zero states (as onnxruntime), not its initial state.
* ``activations`` per direction (forward first), case-insensitive, from the spec's list;
  ``activation_alpha``/``activation_beta`` are consumed in order by the functions that take them
  as onnxruntime does; defaults are those of the ONNX ops of the same name (onnxruntime uses 0
  for Affine, ThresholdedRelu and ScaledTanh instead).  ``clip`` bounds every
  gate activation's input to [-clip, clip] (LSTM's ``h(C_t)`` is not clipped, as onnxruntime).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend as _tvm_onnx

from .common import OnnxOpConverter, UnsupportedForm, _const, _dtype, _shape, _text


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------


def _where_nonneg(x, dt, neg):
    return relax.op.where(relax.op.greater_equal(x, _const(0, dt)), x, neg)


def _softplus(x, dt):
    """log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), without overflow."""
    tail = relax.op.log(relax.op.add(_const(1, dt), relax.op.exp(relax.op.negative(relax.op.abs(x)))))
    return relax.op.add(relax.op.maximum(x, _const(0, dt)), tail)


def _hard_sigmoid(x, a, b, dt):
    lin = relax.op.add(relax.op.multiply(x, _const(a, dt)), _const(b, dt))
    return relax.op.clip(lin, relax.prim_value(0.0), relax.prim_value(1.0))


#: lower-case name -> (fn(x, alpha, beta, dtype), default alpha, default beta); a None default
#: means the function takes no such parameter
_ACTIVATIONS = {
    "sigmoid": (lambda x, a, b, dt: relax.op.sigmoid(x), None, None),
    "tanh": (lambda x, a, b, dt: relax.op.tanh(x), None, None),
    "relu": (lambda x, a, b, dt: relax.op.nn.relu(x), None, None),
    "affine": (lambda x, a, b, dt: relax.op.add(relax.op.multiply(x, _const(a, dt)), _const(b, dt)), 1.0, 0.0),
    "leakyrelu": (lambda x, a, b, dt: _where_nonneg(x, dt, relax.op.multiply(x, _const(a, dt))), 0.01, None),
    "thresholdedrelu": (lambda x, a, b, dt: relax.op.where(relax.op.greater_equal(x, _const(a, dt)), x,
                                                           _const(0, dt)), 1.0, None),
    "scaledtanh": (lambda x, a, b, dt: relax.op.multiply(_const(a, dt), relax.op.tanh(
        relax.op.multiply(x, _const(b, dt)))), 1.0, 1.0),
    "hardsigmoid": (_hard_sigmoid, 0.2, 0.5),
    "elu": (lambda x, a, b, dt: _where_nonneg(x, dt, relax.op.multiply(
        _const(a, dt), relax.op.subtract(relax.op.exp(x), _const(1, dt)))), 1.0, None),
    "softsign": (lambda x, a, b, dt: relax.op.divide(x, relax.op.add(_const(1, dt), relax.op.abs(x))), None, None),
    "softplus": (lambda x, a, b, dt: _softplus(x, dt), None, None),
}

_SPEC_NAMES = ("Sigmoid, Tanh, Relu, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, "
               "Softsign, Softplus")



def _activations(op: str, attr, defaults: tuple[str, ...], num_directions: int) -> list[list]:
    """Per direction, the op's activation functions as ``fn(bb, x) -> expr`` (clip applied first)."""
    names = [_text(n) for n in attr.get("activations", ())] or list(defaults) * num_directions
    per_dir = len(defaults)
    if len(names) != per_dir * num_directions:
        raise UnsupportedForm(f"{op} needs {per_dir * num_directions} activations ({per_dir} per direction), "
                         f"got {len(names)}: {names}")
    alphas = [float(a) for a in attr.get("activation_alpha", ())]
    betas = [float(b) for b in attr.get("activation_beta", ())]
    clip = attr.get("clip")
    fns = []
    for name in names:
        if name.lower() not in _ACTIVATIONS:
            raise UnsupportedForm(f"{op} activation '{name}' is not supported (supported: {_SPEC_NAMES})")
        fn, alpha, beta = _ACTIVATIONS[name.lower()]
        if alpha is not None and alphas:
            alpha = alphas.pop(0)
        if beta is not None and betas:
            beta = betas.pop(0)

        def apply(bb, x, clipped=True, fn=fn, alpha=alpha, beta=beta):
            x = bb.normalize(x)
            dt = _dtype(x)
            if clip is not None and clipped:
                bound = float(clip)
                x = bb.normalize(relax.op.clip(x, relax.prim_value(-bound), relax.prim_value(bound)))
            return bb.normalize(fn(x, alpha, beta, dt))

        fns.append(apply)
    return [fns[d * per_dir:(d + 1) * per_dir] for d in range(num_directions)]


# --------------------------------------------------------------------------
# The unrolled recurrence, shared by the three ops
# --------------------------------------------------------------------------


def _cols(bb, x, begin: int, end: int):
    """x[..., begin:end]"""
    return bb.normalize(relax.op.strided_slice(x, [len(_shape(x)) - 1], [begin], [end]))


def _row(bb, x, i: int):
    """x[i] (the leading axis dropped)."""
    shape = _shape(x)
    return bb.normalize(relax.op.reshape(relax.op.strided_slice(x, [0], [i], [i + 1]), shape[1:]))


def _direction_input(bb, x, d: int, layout: int):
    """Direction d of initial_h / initial_c as [batch, H]."""
    if layout:  # [batch, D, H]
        shape = _shape(x)
        return bb.normalize(relax.op.reshape(relax.op.strided_slice(x, [1], [d], [d + 1]),
                                             (shape[0], shape[2])))
    return _row(bb, x, d)


def _sequence_lens(bb, lens, params, seq: int):
    """None when every sequence is full length; else a numpy int64 array (constant) or an int64 expr."""
    if lens is None:
        return None
    value = _tvm_onnx.get_constant(lens, params)
    if isinstance(value, tvm.ir.GenericConst):
        array = value.value.numpy().reshape(-1).astype("int64")
        return None if (array >= seq).all() else np.minimum(array, seq)
    # clamped so that out-of-range lengths cannot index past the sequence
    return bb.normalize(relax.op.minimum(relax.op.astype(lens, "int64"), _const(seq, "int64")))


def _step_masks(bb, lens, seq: int, batch: int):
    """Per step t, a bool [batch, 1] mask ``t < len[b]`` (constants when lens is a constant)."""
    if isinstance(lens, np.ndarray):
        return [_const((t < lens).reshape(batch, 1), "bool") for t in range(seq)]
    col = bb.normalize(relax.op.reshape(lens, (batch, 1)))
    return [bb.normalize(relax.op.less(_const(t, "int64"), col)) for t in range(seq)]


def _nonempty_mask(bb, lens, batch: int):
    """A bool [batch, 1] mask ``len[b] > 0``; None when every length is (a constant) > 0."""
    if isinstance(lens, np.ndarray):
        return _const((lens > 0).reshape(batch, 1), "bool") if (lens == 0).any() else None
    return bb.normalize(relax.op.greater(relax.op.reshape(lens, (batch, 1)), _const(0, "int64")))


def _reverse_index(bb, lens, seq: int, batch: int):
    """Flat row indices into a [seq * batch, ...] tensor that reverse the first len[b] steps of
    every batch b (later steps stay): row k*batch + b reads step len[b]-1-k where k < len[b]."""
    k = np.arange(seq).reshape(seq, 1)
    b = np.arange(batch).reshape(1, batch)
    if isinstance(lens, np.ndarray):
        n = lens.reshape(1, batch)
        step = np.where(k < n, n - 1 - k, k)
        return _const((step * batch + b).reshape(-1), "int64")
    n = bb.normalize(relax.op.reshape(lens, (1, batch)))
    kc = _const(k, "int64")
    back = relax.op.subtract(relax.op.subtract(n, _const(1, "int64")), kc)
    step = relax.op.where(relax.op.less(kc, n), back, kc)
    flat = relax.op.add(relax.op.multiply(step, _const(batch, "int64")), _const(b, "int64"))
    return bb.normalize(relax.op.reshape(flat, (seq * batch,)))


def _reverse_steps(bb, x, index):
    """Apply :func:`_reverse_index` to a [seq, batch, F] tensor."""
    seq, batch, feat = _shape(x)
    flat = relax.op.reshape(x, (seq * batch, feat))
    return bb.normalize(relax.op.reshape(relax.op.take(flat, index, axis=0), (seq, batch, feat)))


class _Recurrent(OnnxOpConverter):
    """The unrolled recurrence; subclasses give the gate count, the default activations, the
    number of states (h, or h and c) and the cell (one step)."""

    GATES: int
    DEFAULT_ACTIVATIONS: tuple[str, ...]
    STATES = 1  # h; LSTM also carries c

    @classmethod
    def _impl_v7(cls, bb, inputs, attr, params):
        return cls._convert(bb, inputs, attr, params, layout=0)

    @classmethod
    def _impl_v14(cls, bb, inputs, attr, params):
        return cls._convert(bb, inputs, attr, params, layout=int(attr.get("layout", 0)))

    @classmethod
    def _setup(cls, bb, inputs, attr, d):
        """Per-direction weight slices the cell needs (sliced once, outside the step loop)."""
        return {}

    @classmethod
    def _input_bias(cls, bb, wb, rb, attr):
        """The bias folded into X @ W^T (both halves by default)."""
        return relax.op.add(wb, rb)

    @classmethod
    def _convert(cls, bb, inputs, attr, params, layout: int):
        op = cls.__name__
        x, w, r, b, lens = inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]
        initial = [inputs[5], inputs[6]][: cls.STATES]
        if layout:
            x = bb.normalize(relax.op.permute_dims(x, [1, 0, 2]))
        seq, batch, _ = _shape(x)
        dt = _dtype(x)
        num_dirs, _, hidden = _shape(r)
        direction = _text(attr.get("direction", b"forward"))
        expected = 2 if direction == "bidirectional" else 1
        if direction not in ("forward", "reverse", "bidirectional") or num_dirs != expected:
            raise UnsupportedForm(f"{op} direction '{direction}' with W for {num_dirs} direction(s)")
        if "hidden_size" in attr and int(attr["hidden_size"]) != hidden:
            raise UnsupportedForm(f"{op} hidden_size={attr['hidden_size']} but R has hidden size {hidden}")
        acts = _activations(op, attr, cls.DEFAULT_ACTIVATIONS, num_dirs)
        lens = _sequence_lens(bb, lens, params, seq)
        masks = _step_masks(bb, lens, seq, batch) if lens is not None else None
        nonempty = _nonempty_mask(bb, lens, batch) if lens is not None else None
        zeros = _const(np.zeros((batch, hidden)), dt)
        gh = cls.GATES * hidden

        ys, finals = [], [[] for _ in range(cls.STATES)]
        for d in range(num_dirs):
            reverse = direction == "reverse" or d == 1
            w_t = bb.normalize(relax.op.permute_dims(_row(bb, w, d)))  # [input, G*H]
            r_t = bb.normalize(relax.op.permute_dims(_row(bb, r, d)))  # [H, G*H]
            xw = bb.normalize(relax.op.matmul(x, w_t))  # [seq, batch, G*H]
            b_d = _row(bb, b, d) if b is not None else None
            if b_d is not None:
                bias = cls._input_bias(bb, _cols(bb, b_d, 0, gh), _cols(bb, b_d, gh, 2 * gh), attr)
                xw = bb.normalize(relax.op.add(xw, bias))
            ctx = cls._setup(bb, inputs, attr, d)
            ctx.update(r_t=r_t, b=b_d, acts=acts[d], hidden=hidden, attr=attr)
            states = [_direction_input(bb, s, d, layout) if s is not None else zeros for s in initial]

            # step order: a per-batch reversal of X when lengths differ, else plain reversed steps
            rev_index = None
            if reverse and lens is not None:
                rev_index = _reverse_index(bb, lens, seq, batch)
                xw = _reverse_steps(bb, xw, rev_index)
                order = list(range(seq))
            else:
                order = list(range(seq))[::-1] if reverse else list(range(seq))
            out = [None] * seq
            for k, t in enumerate(order):
                new = cls._cell(bb, _row(bb, xw, t), states, ctx)
                h = new[0]
                if masks is not None:
                    mask = masks[k]
                    new = [bb.normalize(relax.op.where(mask, n, s)) for n, s in zip(new, states)]
                    h = bb.normalize(relax.op.where(mask, h, zeros))
                states = new
                out[t] = bb.normalize(relax.op.reshape(h, (1, batch, hidden)))
            y = bb.normalize(relax.op.concat(out, axis=0))  # [seq, batch, H]
            if rev_index is not None:
                y = _reverse_steps(bb, y, rev_index)
            ys.append(bb.normalize(relax.op.reshape(y, (seq, 1, batch, hidden))))
            if nonempty is not None:  # an empty sequence ends in zeros, not the initial state
                states = [bb.normalize(relax.op.where(nonempty, s, zeros)) for s in states]
            for i, s in enumerate(states):
                finals[i].append(bb.normalize(relax.op.reshape(s, (1, batch, hidden))))

        y = ys[0] if num_dirs == 1 else bb.normalize(relax.op.concat(ys, axis=1))
        last = [f[0] if num_dirs == 1 else bb.normalize(relax.op.concat(f, axis=0)) for f in finals]
        if layout:
            y = bb.normalize(relax.op.permute_dims(y, [2, 0, 1, 3]))
            last = [bb.normalize(relax.op.permute_dims(s, [1, 0, 2])) for s in last]
        return relax.Tuple([y, *last])


# --------------------------------------------------------------------------
# The three ops
# --------------------------------------------------------------------------


class RNN(_Recurrent):
    """Simple RNN: ``H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb)`` (default f = Tanh)."""

    GATES = 1
    DEFAULT_ACTIVATIONS = ("Tanh",)

    @classmethod
    def _cell(cls, bb, xw, states, ctx):
        (h,) = states
        (f,) = ctx["acts"]
        return [f(bb, relax.op.add(xw, relax.op.matmul(h, ctx["r_t"])))]


class GRU(_Recurrent):
    """GRU, gates in order z (update), r (reset), h (hidden):

    * ``z = f(X W_z^T + H R_z^T + Wb_z + Rb_z)``, ``r = f(X W_r^T + H R_r^T + Wb_r + Rb_r)``
    * ``h~ = g(X W_h^T + (r * H) R_h^T + Rb_h + Wb_h)``, or with ``linear_before_reset``
      ``h~ = g(X W_h^T + r * (H R_h^T + Rb_h) + Wb_h)`` (Rb_h then cannot be folded into X W^T)
    * ``H_t = (1 - z) * h~ + z * H``

    Defaults f = Sigmoid, g = Tanh.
    """

    GATES = 3
    DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh")

    @classmethod
    def _input_bias(cls, bb, wb, rb, attr):
        if int(attr.get("linear_before_reset", 0)):
            hidden = _shape(wb)[0] // 3
            rb = relax.op.concat([_cols(bb, rb, 0, 2 * hidden), _const(np.zeros(hidden), _dtype(rb))], axis=0)
        return relax.op.add(wb, rb)

    @classmethod
    def _cell(cls, bb, xw, states, ctx):
        (h,) = states
        f, g = ctx["acts"]
        n, r_t = ctx["hidden"], ctx["r_t"]
        dt = _dtype(h)
        linear = int(ctx["attr"].get("linear_before_reset", 0))
        if linear:
            hr = bb.normalize(relax.op.matmul(h, r_t))  # all three gates at once
            hr_zr, hr_h = _cols(bb, hr, 0, 2 * n), _cols(bb, hr, 2 * n, 3 * n)
        else:
            hr_zr = bb.normalize(relax.op.matmul(h, _cols(bb, r_t, 0, 2 * n)))
        zr = bb.normalize(relax.op.add(_cols(bb, xw, 0, 2 * n), hr_zr))
        z = f(bb, _cols(bb, zr, 0, n))
        reset = f(bb, _cols(bb, zr, n, 2 * n))
        if linear:
            if ctx["b"] is not None:
                hr_h = relax.op.add(hr_h, _cols(bb, ctx["b"], 5 * n, 6 * n))
            rec = relax.op.multiply(reset, hr_h)
        else:
            rec = relax.op.matmul(relax.op.multiply(reset, h), _cols(bb, r_t, 2 * n, 3 * n))
        cand = g(bb, relax.op.add(_cols(bb, xw, 2 * n, 3 * n), rec))
        keep = relax.op.multiply(relax.op.subtract(_const(1, dt), z), cand)
        return [bb.normalize(relax.op.add(keep, relax.op.multiply(z, h)))]


class LSTM(_Recurrent):
    """LSTM, gates in order i (input), o (output), f (forget), c (cell); peepholes P in order i, o, f:

    * ``i = f(X W_i^T + H R_i^T + P_i * C + Wb_i + Rb_i)``
    * ``f = f(X W_f^T + H R_f^T + P_f * C + Wb_f + Rb_f)``, or ``1 - i`` with ``input_forget``
    * ``c~ = g(X W_c^T + H R_c^T + Wb_c + Rb_c)``, ``C_t = f * C + i * c~``
    * ``o = f(X W_o^T + H R_o^T + P_o * C_t + Wb_o + Rb_o)``, ``H_t = o * h(C_t)``

    Defaults f = Sigmoid, g = h = Tanh.  Third output ``Y_c`` (the last cell state).
    """

    GATES = 4
    DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")
    STATES = 2

    @classmethod
    def _setup(cls, bb, inputs, attr, d):
        p = inputs[7]
        if p is None:
            return {"peep": None}
        p_d = _row(bb, p, d)
        n = _shape(p_d)[0] // 3
        return {"peep": [_cols(bb, p_d, k * n, (k + 1) * n) for k in range(3)]}

    @classmethod
    def _cell(cls, bb, xw, states, ctx):
        h, c = states
        f_act, g_act, h_act = ctx["acts"]
        n, peep = ctx["hidden"], ctx["peep"]
        dt = _dtype(h)
        gates = bb.normalize(relax.op.add(xw, relax.op.matmul(h, ctx["r_t"])))
        gi, go, gf, gc = (_cols(bb, gates, k * n, (k + 1) * n) for k in range(4))
        if peep is not None:
            gi = relax.op.add(gi, relax.op.multiply(peep[0], c))
            gf = relax.op.add(gf, relax.op.multiply(peep[2], c))
        i = f_act(bb, gi)
        if int(ctx["attr"].get("input_forget", 0)):
            forget = bb.normalize(relax.op.subtract(_const(1, dt), i))
        else:
            forget = f_act(bb, gf)
        c_new = bb.normalize(relax.op.add(relax.op.multiply(forget, c), relax.op.multiply(i, g_act(bb, gc))))
        if peep is not None:
            go = relax.op.add(go, relax.op.multiply(peep[1], c_new))
        o = f_act(bb, go)
        # clip bounds the gates' inputs only, not C_t before h (as onnxruntime)
        return [bb.normalize(relax.op.multiply(o, h_act(bb, c_new, clipped=False))), c_new]


#: op_type -> converter class, merged over TVM's map by :mod:`.registry`
CONVERTERS: dict[str, type] = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
