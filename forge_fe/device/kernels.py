"""Kernels of the emulated device: one function per TTIR op, keyed by the op's name.

This table is the device's instruction set as the runtime sees it. Kernels are
written with torch because its CPU kernels (oneDNN convolutions, MKL/OpenBLAS
GEMM) are the fast path the emulator needs (see docs/kernels.md); TVM's untuned
llvm code is two orders of magnitude slower on convolutions.

Signature: ``kernel(inputs: list[torch.Tensor], attrs: dict) -> torch.Tensor``.
Attributes arrive as plain JSON values in TTIR spelling. The executor casts each
result to the dtype its tensor descriptor declares, so kernels may return any dtype.
"""
from __future__ import annotations

import os
import weakref

import torch
import torch.nn.functional as F

from forge_fe.device import parallel
from forge_fe.device.numerics import integer_division

KERNELS: dict = {}


def kernel(*names):
    def reg(fn):
        for n in names:
            KERNELS[n] = fn
        return fn
    return reg


def _unary(name, fn):
    KERNELS[f"ttir.{name}"] = lambda ins, a: fn(ins[0])


def _binary(name, fn):
    KERNELS[f"ttir.{name}"] = lambda ins, a: fn(ins[0], ins[1])


def _is_true(x):
    return x if x.dtype == torch.bool else x != 0


for _n, _f in {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "neg": torch.neg, "abs": torch.abs, "erf": torch.erf,
    "sin": torch.sin, "cos": torch.cos, "floor": torch.floor, "ceil": torch.ceil, "sign": torch.sign,
    "reciprocal": torch.reciprocal, "silu": F.silu,
    "logical_not": lambda x: torch.logical_not(_is_true(x)),
}.items():
    _unary(_n, _f)

for _n, _f in {
    "add": torch.add, "subtract": torch.sub, "multiply": torch.mul, "maximum": torch.maximum,
    "minimum": torch.minimum, "pow": lambda x, y: _pow(x, y),
    "div": lambda x, y: torch.div(x, y) if x.is_floating_point() else integer_division(x, y, "trunc"),
    "eq": torch.eq, "ne": torch.ne, "gt": torch.gt, "ge": torch.ge, "lt": torch.lt, "le": torch.le,
    "logical_and": lambda x, y: torch.logical_and(_is_true(x), _is_true(y)),
    "logical_or": lambda x, y: torch.logical_or(_is_true(x), _is_true(y)),
}.items():
    _binary(_n, _f)


def _pow(x, y):
    """A one-element float exponent (RMSNorm's x ** 2) goes to torch as a number: its square / sqrt /
    reciprocal fast paths, ~30x faster than the tensor-exponent kernel (1.5 ms on a 128x576 square)."""
    if y.numel() == 1 and y.dim() <= x.dim() and x.is_floating_point() and y.dtype == x.dtype:
        return torch.pow(x, y.item())
    return torch.pow(x, y)


@kernel("ttir.gelu")
def _gelu(ins, a):
    return F.gelu(ins[0], approximate=a.get("approximate", "none"))


@kernel("ttir.leaky_relu")
def _leaky_relu(ins, a):
    return F.leaky_relu(ins[0], a["parameter"])


@kernel("ttir.clamp_scalar")
def _clamp(ins, a):
    return torch.clamp(ins[0], a["min"], a["max"])


@kernel("ttir.typecast")
def _typecast(ins, a):
    return ins[0]            # the executor casts to the result descriptor's dtype


@kernel("ttir.where")
def _where(ins, a):
    return torch.where(_is_true(ins[0]), ins[1], ins[2])


# ---- data movement ------------------------------------------------------------------

@kernel("ttir.reshape")
def _reshape(ins, a):
    return ins[0].reshape(a["shape"])


@kernel("ttir.permute")
def _permute(ins, a):
    return ins[0].permute(a["permutation"])    # a view: no data moves until a consumer needs it


@kernel("ttir.transpose")
def _transpose(ins, a):
    return ins[0].transpose(a["dim0"], a["dim1"])


@kernel("ttir.concat")
def _concat(ins, a):
    return torch.cat(ins, a["dim"])


@kernel("ttir.slice_static")
def _slice(ins, a):
    return ins[0][tuple(slice(b, e, s) for b, e, s in zip(a["begins"], a["ends"], a["step"]))]


@kernel("ttir.broadcast")
def _broadcast(ins, a):
    x = ins[0]
    return x.expand([d * m for d, m in zip(x.shape, a["broadcast_dimensions"])])


@kernel("ttir.repeat")
def _repeat(ins, a):
    return ins[0].repeat(a["repeat_dimensions"])


# Kernels that write their operand 0 in place and return it (tt-mlir's cache ops update the cache).
IN_PLACE_OPS = {"ttir.fill_cache", "ttir.update_cache"}


@kernel("ttir.fill_cache")
def _fill_cache(ins, a):
    """Rows [0, n) of the cache's sequence dim (dim 2), in place: the executor only hands over a
    cache operand nothing reads afterwards (DeviceProgram's in-place rule)."""
    cache, new = ins
    cache.narrow(2, 0, new.shape[2]).copy_(new)
    return cache


@kernel("ttir.update_cache")
def _update_cache(ins, a):
    """One row of the cache's sequence dim at the run-time position ins[2], in place."""
    cache, new, pos = ins
    row = int(pos.reshape(-1)[0])
    if not 0 <= row < cache.shape[2]:
        raise IndexError(f"update_cache position {row} is outside the cache's {cache.shape[2]} rows")
    cache.select(2, row).copy_(new.select(2, 0))
    return cache


@kernel("ttir.embedding")
def _embedding(ins, a):
    idx, table = ins
    return F.embedding(idx.long(), table)


# ---- reductions ---------------------------------------------------------------------

def _reduce(fn):
    def run(ins, a):
        dims = a.get("dim_arg")
        x = ins[0]
        dims = list(range(x.dim())) if dims is None else dims
        return fn(x, dims, a.get("keep_dim", False)) if dims else x
    return run


KERNELS["ttir.sum"] = _reduce(lambda x, d, k: torch.sum(x, d, keepdim=k))
KERNELS["ttir.mean"] = _reduce(lambda x, d, k: torch.mean(x, d, keepdim=k))
KERNELS["ttir.max"] = _reduce(lambda x, d, k: torch.amax(x, d, keepdim=k))
KERNELS["ttir.min"] = _reduce(lambda x, d, k: torch.amin(x, d, keepdim=k))


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, d, keepdim=keep)
    return x


KERNELS["ttir.prod"] = _reduce(_prod)


# ---- matmul, conv, pool, norms ------------------------------------------------------

def _mm(ins, a):
    x, y = ins[0], ins[1]
    if a.get("transpose_a"):
        x = x.transpose(-1, -2)
    if a.get("transpose_b"):
        y = y.transpose(-1, -2)
    return x, y


# Below this many multiply-adds a GEMM runs whole: splitting costs a wake-up (~10-50 us).
SPLIT_MIN_MACS = 1 << 21


def _split_matmul(x, y, bias=None):
    """x @ y (+ bias) in pieces on the device's pool (forge_fe.device.parallel), or None when it runs
    whole: a 2-D y splits its output columns (each piece one GEMM over the full K, so every output
    element is the same single dot product as unsplit), a batched product its batch. Each piece
    writes its slice of one preallocated result."""
    pool = parallel.current()
    if pool is None or x.dtype != torch.float32 or y.dtype != torch.float32 or x.dim() < 2:
        return None
    k, n = y.shape[-2], y.shape[-1]
    m = x.numel() // k
    if m * k * n < SPLIT_MIN_MACS or (bias is not None and (bias.dim() > 1 or y.dim() != 2)):
        return None
    pieces = 2 * pool.threads
    if y.dim() == 2:
        pieces = min(pieces, n // 64)
        if pieces < 2:
            return None
        x2 = x.reshape(-1, k)
        out = torch.empty(x2.shape[0], n, dtype=x.dtype)
        bounds = [n * i // pieces for i in range(pieces + 1)]

        def piece(i):
            c0, c1 = bounds[i], bounds[i + 1]
            if bias is None:
                torch.mm(x2, y[:, c0:c1], out=out[:, c0:c1])
            else:
                torch.addmm(bias.expand(n)[c0:c1], x2, y[:, c0:c1], out=out[:, c0:c1])
        pool.run(pieces, piece)
        return out.reshape(*x.shape[:-1], n)
    if bias is not None:
        return None
    batch = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    xb = x.expand(*batch, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
    yb = y.expand(*batch, *y.shape[-2:]).reshape(-1, k, n)
    b = xb.shape[0]
    pieces = min(pieces, b)
    if pieces < 2:
        return None
    out = torch.empty(b, x.shape[-2], n, dtype=x.dtype)
    bounds = [b * i // pieces for i in range(pieces + 1)]
    pool.run(pieces, lambda i: torch.bmm(xb[bounds[i]:bounds[i + 1]], yb[bounds[i]:bounds[i + 1]],
                                         out=out[bounds[i]:bounds[i + 1]]))
    return out.reshape(*batch, x.shape[-2], n)


@kernel("ttir.matmul")
def _matmul(ins, a):
    x, y = _mm(ins, a)
    out = _split_matmul(x, y)
    return torch.matmul(x, y) if out is None else out


@kernel("ttir.linear")
def _linear(ins, a):
    x, y = _mm(ins, a)
    out = _split_matmul(x, y, ins[2] if len(ins) > 2 else None)
    if out is not None:
        return out
    if len(ins) > 2:
        bias = ins[2]
        if y.dim() == 2 and bias.dim() <= 1 and x.dim() >= 2:
            # One GEMM over the folded leading dims with the bias as its beta term: no second pass
            # over the result to add it (x @ y + b, the same sum the device computes).
            x2 = x.reshape(-1, x.shape[-1])
            return torch.addmm(bias.expand(y.shape[-1]), x2, y).reshape(*x.shape[:-1], y.shape[-1])
        return torch.matmul(x, y) + bias
    return torch.matmul(x, y)


# Products of a stable fp32 weight run as oneDNN's matmul (torch's `mkldnn._linear_pointwise`, what
# inductor's CPU backend calls). Measured on the 2-core AMD EPYC (AVX-512) CI machine, against MKL's
# `addmm` (the plain kernel) and onnxruntime's MLAS: at M = 128 oneDNN is 25-35% faster than MKL
# (MKL's packed GEMM gains nothing here) and, on a weight reordered into its blocked layout, level
# with MLAS on its prepacked weight; a one-row product (a decode step's GEMV, weights colder than L3)
# streams an [N, K] weight (torch's Linear layout, which the importers hand over as a transposed
# [K, N] view) at 15-27 GB/s where MKL reached 12-20 on its better layout (docs/kernels.md, item 5).
_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
# The layouts make_matmul copies weights into cost up to one more copy of the weights for the
# program's lifetime; a process that needs the memory more than the speed turns them off.
WEIGHT_COPIES = os.environ.get("FORGE_FE_WEIGHT_COPIES", "1") != "0"


#: Epilogues a stable-weight product runs as oneDNN post-ops: the op reading the product's result ->
#: (oneDNN's attribute, whether the op has a second operand, which arrives as the fused op's last input).
#: oneDNN applies them to the fp32 sum before it stores it, so the result is the unfused ops' within
#: float32 rounding, NaN and infinities alike (tests/test_perf_runtime.py).
EPILOGUES = {"ttir.gelu": ("gelu", False), "ttir.silu": ("swish", False),
             "ttir.add": ("add", True), "ttir.multiply": ("mul", True)}


def make_matmul(name: str, epilogue: str | None = None, approximate: str = "none"):
    """ttir.matmul / ttir.linear for one op whose weight (operand 1) is a constant or a const-eval
    result, the same tensor every call (and with `epilogue`, an op of EPILOGUES that reads its result:
    gelu of that `approximate`, silu, or an add / multiply with the last input): oneDNN's matmul, from
    the first call on, so every call sums in the same order.
    * A one-row product reads the weight as [N, K] row-major (no copy when it is that already; else
      copied once): oneDNN's GEMV streams a [K, N] one 20-50% slower.
    * A many-row product reads it reordered once into oneDNN's blocked layout (a copy), 5-25% faster
      than reading it as it is. A weight modified in place after that (training) is read as it is
      from then on, rather than reordered on every step.
    Either is made once per weight memory (`_shared`). A replaced weight is laid out anew. With
    FORGE_FE_WEIGHT_COPIES=0 every product reads the weight as it is (docs/kernels.md, item 5).
    Everything else runs as the plain kernels, the product and then its epilogue."""
    product = KERNELS[name]
    attr, binary = EPILOGUES[epilogue] if epilogue else ("none", False)
    after = KERNELS[epilogue] if epilogue else None
    state = {"raw": None, "version": None, "nk": None, "blocked": None}

    def plain(ins, a, other):
        y = product(ins, a)
        if after is None:
            return y
        return after([y, other], {}) if binary else after([y], {"approximate": approximate})

    def run(ins, a):
        other = ins[-1] if binary else None
        ins = ins[:-1] if binary else ins
        raw = ins[1]
        x, y = _mm(ins, a)
        bias = ins[2] if len(ins) > 2 else None
        if (not _ONEDNN_LINEAR or y.dim() != 2 or x.dim() < 2 or x.numel() == 0 or parallel.current() is not None
                or x.dtype != torch.float32 or y.dtype != torch.float32
                or (bias is not None and (tuple(bias.shape) != (y.shape[1],) or bias.dtype != torch.float32))
                or (binary and (other.shape != x.shape[:-1] + y.shape[1:] or other.dtype != torch.float32))):
            return plain(ins, a, other)
        w = weight(x, y, raw) if WEIGHT_COPIES else y.t()
        if binary:
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, w, bias, attr)
        return torch.ops.mkldnn._linear_pointwise(x, w, bias, attr, [], approximate if attr == "gelu" else "")

    def weight(x, y, raw):
        """The weight as this product reads it: [N, K] for one row, oneDNN's blocked layout for more."""
        if state["raw"] is not raw:
            state.update(raw=raw, version=raw._version, nk=None, blocked=None)
        elif state["version"] != raw._version:
            state.update(version=raw._version, nk=None, blocked=False if state["blocked"] is not None else None)
        if x.numel() == y.shape[0]:
            if state["nk"] is None:
                state["nk"] = _shared("nk", y, raw, lambda: y.t() if y.t().is_contiguous() else y.t().contiguous())
            return state["nk"]
        if state["blocked"] is None:
            m = x.numel() // y.shape[0]
            state["blocked"] = _shared("blocked", y, raw, lambda: torch.ops.mkldnn._reorder_linear_weight(y.t(), m))
        return state["blocked"] if state["blocked"] is not False else y.t()
    return run


# Weights laid out by the memory they view: an LM's prefill programs and its decode program read the
# same weights through views of their own, and each would otherwise make its own copy. An entry
# lives while the view that made it does, so the memory it names cannot have been freed and reused.
_PACKED: dict = {}


def _shared(kind: str, y: torch.Tensor, raw: torch.Tensor, make):
    """make(), made once per (kind, weight memory, version) (views share the version counter: a
    weight modified in place replaces its entry)."""
    key = (kind, y.data_ptr(), tuple(y.shape), tuple(y.stride()), y.dtype)
    hit = _PACKED.get(key)
    if hit is not None and hit[0]() is not None and hit[1] == raw._version:
        return hit[2]
    laid_out = make()
    def forget(ref, key=key, table=_PACKED):
        if table.get(key, (None,))[0] is ref:       # not an entry a later view has made since
            del table[key]
    _PACKED[key] = (weakref.ref(raw, forget), raw._version, laid_out)
    return laid_out


@kernel("ttir.softmax")
def _softmax(ins, a):
    return torch.softmax(ins[0], a["dimension"])


@kernel("ttir.layer_norm")
def _layer_norm(ins, a):
    w = ins[1] if len(ins) > 1 else None
    b = ins[2] if len(ins) > 2 else None
    return F.layer_norm(ins[0], a["normalized_shape"], w, b, a["epsilon"])


@kernel("ttir.rms_norm")
def _rms_norm(ins, a):
    """x * rsqrt(mean(x^2) + eps) * gamma in fp32, rounded to the result's data format once, at the
    end, as the device's rms_norm writes only its result (the decomposed form rounded x^2, the mean,
    the sum and the rsqrt to it too). torch's CPU rms_norm is a composite of ~12 calls; the six-call
    form with in-place statistics gave the same bits and measured no faster in a Llama forward."""
    return F.rms_norm(ins[0], a["normalized_shape"], ins[1] if len(ins) > 1 else None, a["epsilon"])



@kernel("ttir.rotary_embedding")
def _rotary_embedding(ins, a):
    """x * cos + [-x2, x1] * sin (halves of the last dim): one kernel instead of the seven ops of the
    decomposed form (two slices, neg, concat, two multiplies, add), rounded once at the end."""
    x, cos, sin = ins
    # x is usually a head-split view of a projection ([B, S, H, D] permuted to [B, H, S, D]): one
    # copy makes it and the result row-major, so the reshape that groups the heads is a view.
    x = x.contiguous()
    x1, x2 = x.chunk(2, dim=-1)
    return torch.addcmul(x * cos, torch.cat((-x2, x1), dim=-1), sin)

def _nchw(x):
    # NHWC tensor -> NCHW view with channels-last strides (what oneDNN runs fastest).
    return x.permute(0, 3, 1, 2)


def _nhwc(y):
    return y.permute(0, 2, 3, 1)


def _pad_asymmetric(x, padding, value=0.0):
    t, l, b, r = padding
    if (t, l) != (b, r):
        return F.pad(x, (l, r, t, b), value=value), (0, 0)
    return x, (t, l)


@kernel("ttir.conv2d")
def _conv2d(ins, a):
    x, pad = _pad_asymmetric(_nchw(ins[0]), a["padding"])
    b = ins[2].reshape(-1) if len(ins) > 2 else None
    return _nhwc(F.conv2d(x, ins[1], b, a["stride"], pad, a["dilation"], a["groups"]))


_MKLDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def make_conv2d(post_op: str = "none", add_input: bool = False):
    """A conv2d kernel instance for one op: oneDNN with its weight reordered once and
    cached (keyed by the weight tensor object, which const-eval results keep stable),
    optionally fused with what follows it on the device: `+ other` (residual add, the
    last input) and/or an elementwise post-op ("relu").

    The relu is applied by torch in place on oneDNN's result, not as oneDNN's relu
    post-op: that post-op turns NaN into 0 (and, after the add post-op, +inf into
    FLT_MAX), so a NaN input would come out finite. oneDNN's add post-op is IEEE-exact."""
    cache = {}

    def finish(y):
        return torch.relu_(y) if post_op == "relu" else y

    def run(ins, a):
        other = ins[-1] if add_input else None
        if add_input and other is None:
            raise RuntimeError("fused conv2d+add is missing its residual operand")
        conv_ins = ins[:-1] if add_input else ins
        x, pad = _pad_asymmetric(_nchw(conv_ins[0]), a["padding"])
        w = conv_ins[1]
        b = conv_ins[2].reshape(-1) if len(conv_ins) > 2 else None
        if not _MKLDNN or x.dtype != torch.float32 or (other is not None and other.dtype != torch.float32):
            y = _nhwc(F.conv2d(x, w, b, a["stride"], pad, a["dilation"], a["groups"]))
            return finish(y + other if other is not None else y)
        pool = parallel.current()
        out_shape = _nhwc_shape(x, w, a, pad)
        pieces = _conv_pieces(pool, x, w, a, out_shape)
        if cache.get("w") is not w or cache.get("shape") != tuple(x.shape) or cache.get("pieces") != pieces:
            # One reordered weight per output-channel piece, made once (the piece count follows the pool).
            bounds = [w.shape[0] * i // pieces for i in range(pieces + 1)]
            cache["parts"] = [(c0, c1, torch.ops.mkldnn._reorder_convolution_weight(
                w[c0:c1].contiguous(), list(pad), list(a["stride"]), list(a["dilation"]), a["groups"], list(x.shape)))
                for c0, c1 in zip(bounds, bounds[1:])]
            cache["w"], cache["shape"], cache["pieces"] = w, tuple(x.shape), pieces
        x = x.contiguous(memory_format=torch.channels_last)
        args = (list(pad), list(a["stride"]), list(a["dilation"]), a["groups"])
        if other is not None:
            other = _nchw(other.expand(out_shape))

        def piece(c0, c1, packed):
            bias = b[c0:c1] if b is not None else None
            if other is None:
                y = torch.ops.mkldnn._convolution_pointwise(x, packed, bias, *args, "none", [], "")
            else:
                y = torch.ops.mkldnn._convolution_pointwise.binary(
                    x, other[:, c0:c1].contiguous(memory_format=torch.channels_last), packed, bias, *args,
                    "add", None, None, [], "")
            return finish(y)
        if pieces == 1:
            return _nhwc(piece(*cache["parts"][0]))
        # Output-channel pieces (the device spreads a conv's output channels over its cores): each one
        # conv over the whole input, so every output element is the same sum as unsplit.
        ys = [None] * pieces
        pool.run(pieces, lambda i: ys.__setitem__(i, _nhwc(piece(*cache["parts"][i]))))
        return torch.cat(ys, dim=3)
    return run


def _conv_pieces(pool, x, w, a, out_shape) -> int:
    """How many output-channel pieces a conv runs as on the pool: 1 without a pool, for grouped convs
    and below SPLIT_MIN_MACS; pieces keep at least 32 channels."""
    if pool is None or a["groups"] != 1:
        return 1
    macs = out_shape[1] * out_shape[2] * w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]
    if macs < SPLIT_MIN_MACS:
        return 1
    return max(1, min(2 * pool.threads, w.shape[0] // 32))


def _nhwc_shape(x, w, a, pad):
    n, _, h, wd = x.shape
    kh, kw = w.shape[2:]
    oh = (h + 2 * pad[0] - a["dilation"][0] * (kh - 1) - 1) // a["stride"][0] + 1
    ow = (wd + 2 * pad[1] - a["dilation"][1] * (kw - 1) - 1) // a["stride"][1] + 1
    return (n, oh, ow, w.shape[0])


# ---- math fidelity ------------------------------------------------------------------

FIDELITY_OPS = {"ttir.matmul", "ttir.linear", "ttir.conv2d"}


def make_fidelity_kernel(name: str, fidelity, fp32_acc: bool):
    """matmul / linear / conv2d as the matrix engine computes them at `fidelity`: the sum of
    the mantissa-slice partial products that fidelity includes (forge_fe.device.numerics), with the
    result rounded to bf16 when fp32 accumulation is off (per K tile for matmul; once per
    output for conv, an approximation). Operands arrive already quantized to their formats."""
    from forge_fe.device import numerics
    from forge_fe.config import DataFormat

    def finish(y):
        return y if fp32_acc else numerics.round_bf16(y)

    if name == "ttir.conv2d":
        def conv(ins, a):
            x, pad = _pad_asymmetric(_nchw(ins[0]), a["padding"])
            # conv is bilinear, so the fidelity's partial products sum like matmul's
            y = sum(F.conv2d(xs, ws, None, a["stride"], pad, a["dilation"], a["groups"])
                    for xs, ws in numerics.fidelity_terms(x, ins[1], fidelity))
            if len(ins) > 2:
                y = y + ins[2].reshape(1, -1, 1, 1)
            return _nhwc(finish(y))
        return conv

    def mm(ins, a):
        # numerics.matmul also rounds the running sum per K tile when fp32 accumulation is off.
        x, y = _mm(ins, a)
        out = numerics.matmul(x, y, fidelity, fp32_acc, df=DataFormat.Float32)
        return finish(out + ins[2]) if len(ins) > 2 else out
    return mm


# The device rounds each op's result to its tensor's data format as it writes it, except for the
# activations its packer applies to the fp32 result first (TTNN's matmul and conv2d `activation`): a
# chain whose intermediate is rounded is fused only through these, so fusing never skips a rounding.
PACKER_ACTIVATIONS = {"ttir.relu", "ttir.gelu", "ttir.silu"}

# Kernels that keep per-op state (prepacked weights) are built per op by a factory.
FACTORIES = {"ttir.conv2d": lambda: make_conv2d()}
# ... and those that may only when operand 1 is the same tensor every call (a constant or a const-eval
# result: the program knows, see DeviceProgram), since their packing changes the order of the sums.
STABLE_WEIGHT_FACTORIES = {"ttir.matmul": lambda: make_matmul("ttir.matmul"),
                           "ttir.linear": lambda: make_matmul("ttir.linear")}
# Chains (producer, its sole reader, ...) run as one kernel. A binary op in a chain contributes its
# other operand as the fused kernel's last input. Each factory gets the chain's ops. A chain that
# starts with an op of STABLE_WEIGHT_FACTORIES is fused only when that op's weight is stable, and
# one whose intermediate result the device rounds to a data format only through PACKER_ACTIVATIONS
# (DeviceProgram._fuse). Fused, a product's epilogue costs no torch call of its own, and on this CPU
# every call after a product starts cold: a 16-element add takes 1.3 us alone, 5-8 us right after a
# product (docs/benchmarks.md, where the Llama's time goes).
FUSIONS = {
    ("ttir.conv2d", "ttir.relu"): lambda *ops: make_conv2d("relu"),
    ("ttir.conv2d", "ttir.add", "ttir.relu"): lambda *ops: make_conv2d("relu", add_input=True),
    ("ttir.conv2d", "ttir.add"): lambda *ops: make_conv2d("none", add_input=True),
    **{(product, after): (lambda op, then: make_matmul(op.name, then.name, then.attrs.get("approximate", "none")))
       for product in ("ttir.linear", "ttir.matmul") for after in EPILOGUES},
}


@kernel("ttir.max_pool2d")
def _max_pool2d(ins, a):
    x = _nchw(ins[0])
    x, pad = _pad_asymmetric(x, a["padding"], float("-inf"))
    return _nhwc(F.max_pool2d(x, a["kernel"], a["stride"], pad, a["dilation"], ceil_mode=a["ceil_mode"]))


@kernel("ttir.avg_pool2d")
def _avg_pool2d(ins, a):
    t, l, b, r = a["padding"]
    return _nhwc(F.avg_pool2d(_nchw(ins[0]), a["kernel"], a["stride"], (t, l), ceil_mode=a["ceil_mode"],
                              count_include_pad=a.get("count_include_pad", True)))


# ---- gradients (training; forge_fe/op/grad.py) --------------------------------------

@kernel("ttir.conv_transpose2d")
def _conv_transpose2d(ins, a):
    # NHWC input, weight (in, out/groups, kH, kW) as tt-mlir defines it.
    b = ins[2].reshape(-1) if len(ins) > 2 else None
    return _nhwc(F.conv_transpose2d(_nchw(ins[0]), ins[1], b, a["stride"], a["padding"], a["output_padding"],
                                    a["groups"], a["dilation"]))


@kernel("ttir.max_pool2d_grad")
def _max_pool2d_grad(ins, a):
    from forge_fe.op.grad import max_pool2d_grad_nchw
    return _nhwc(max_pool2d_grad_nchw(_nchw(ins[0]), _nchw(ins[1]), a))


@kernel("ttir.embedding_backward")
def _embedding_backward(ins, a):
    from forge_fe.op.grad import embedding_grad_golden
    idx, table, grad = ins
    return embedding_grad_golden(idx, grad, table.shape[0])
