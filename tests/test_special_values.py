"""Special values (NaN, +-inf, -0.0, subnormals, empty tensors, integer overflow, division by zero)
behave as the framework's own execution makes them behave, one test per family of ops.

Every comparison is against the framework run on the same inputs (torch eager here); see
tests/framework_compare.py for what "the same" means for NaN, infinities and signed zeros.
"""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import forge_fe
from forge_fe.errors import ForgeError
from forge_fe.device import kernels
from framework_compare import SPECIAL_F32, mismatch

NAN, INF = float("nan"), float("inf")


def compile_and_compare(model, inputs, names, signed_zeros=(), skip=None, calls=None):
    """Compile once for `inputs`, then compare every output with torch for `inputs` and each of `calls`."""
    cm = forge_fe.compile(model, inputs)
    bad = []
    for args in [inputs] + list(calls or []):
        with torch.no_grad():
            want = model(*args)
        got = cm(*args)
        want = want if isinstance(want, tuple) else (want,)
        got = got if isinstance(got, tuple) else (got,)
        assert len(got) == len(want) == len(names)
        for name, g, w in zip(names, got, want):
            if skip and name in skip:
                g, w = skip[name](g), skip[name](w)
            msg = mismatch(g, w, signed_zeros=name in signed_zeros)
            if msg:
                bad.append(f"{name}: {msg}")
    assert not bad, "\n".join(bad)
    return cm


# ---- conv / linear fusions: the starting bug ---------------------------------

class ConvReluLinear(nn.Module):
    """conv -> relu -> linear (the issue's model), plus conv+bn+relu and the residual conv+add+relu."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        z = torch.relu(self.bn(self.conv(x)))
        r = torch.relu(self.conv2(z) + z)
        return self.fc(y.flatten(1)), torch.relu(self.fc(r.flatten(1))), F.max_pool2d(r, 2), F.avg_pool2d(z, 2)


def test_nan_and_inf_propagate_through_conv_relu_and_linear():
    torch.manual_seed(0)
    model = ConvReluLinear().eval()
    x = torch.randn(1, 3, 6, 6)
    one_nan, one_inf = x.clone(), x.clone()
    one_nan[0, 1, 2, 3] = NAN
    one_inf[0, 0, 0, 0] = INF
    calls = [[torch.full_like(x, v)] for v in (NAN, INF, -INF)] + [[one_nan], [one_inf]]
    compile_and_compare(model, [x], ["linear", "linear_relu", "max_pool", "avg_pool"], calls=calls)


@pytest.mark.parametrize("post_op,add", [("relu", False), ("relu", True), ("none", True)])
def test_fused_conv_kernels_keep_nan_and_inf(post_op, add):
    """The oneDNN conv kernels with fused post-ops against torch's unfused ops (NHWC operands)."""
    x = torch.tensor([NAN, -5.0, -0.0, 3.0, INF, -INF, 1e-40]).reshape(1, 1, 1, 7).repeat(1, 4, 4, 1)
    w = torch.ones(7, 1, 1, 1)          # depthwise 1x1: each channel keeps its special value
    a = {"padding": [0, 0, 0, 0], "stride": [1, 1], "dilation": [1, 1], "groups": 7}
    ins = [x, w] + ([torch.zeros(1, 4, 4, 7)] if add else [])
    got = kernels.make_conv2d(post_op, add_input=add)(ins, a)
    want = x * 1.0 + (0.0 if add else 0.0)
    want = torch.relu(want) if post_op == "relu" else want
    assert mismatch(got, want) is None, mismatch(got, want)


# ---- elementwise ----------------------------------------------------------------------

class Unary(nn.Module):
    NAMES = ("relu sigmoid tanh exp log sqrt rsqrt neg abs erf sin cos floor ceil sign reciprocal silu gelu "
             "gelu_tanh leaky_relu clamp relu6 hardtanh softplus elu square hardsigmoid hardswish round trunc "
             "log1p expm1 isnan isinf nan_to_num reshape transpose concat slice").split()

    def forward(self, x):
        return (torch.relu(x), torch.sigmoid(x), torch.tanh(x), torch.exp(x), torch.log(x), torch.sqrt(x),
                torch.rsqrt(x), -x, torch.abs(x), torch.erf(x), torch.sin(x), torch.cos(x), torch.floor(x),
                torch.ceil(x), torch.sign(x), torch.reciprocal(x), F.silu(x), F.gelu(x), F.gelu(x, approximate="tanh"),
                F.leaky_relu(x, 0.1), torch.clamp(x, -1, 1), F.relu6(x), F.hardtanh(x), F.softplus(x), F.elu(x),
                torch.square(x), F.hardsigmoid(x), F.hardswish(x), torch.round(x), torch.trunc(x), torch.log1p(x),
                torch.expm1(x), torch.isnan(x), torch.isinf(x), torch.nan_to_num(x), x.reshape(4, 4), x.t(),
                torch.cat([x, x], 0), x[:, 1::3])


#: ops whose zero results carry a sign IEEE 754 defines (elsewhere a zero's sign follows the formula
#: each implementation picks, and torch and onnxruntime differ among themselves)
SIGN_EXACT = {"relu", "neg", "abs", "sqrt", "reciprocal", "reshape", "transpose", "concat", "slice", "floor",
              "ceil", "trunc", "round"}


def test_unary_ops_special_values():
    x = torch.from_numpy(SPECIAL_F32).reshape(1, 16)
    compile_and_compare(Unary(), [x], Unary.NAMES, signed_zeros=SIGN_EXACT)


class Binary(nn.Module):
    NAMES = "add sub mul div maximum minimum pow eq lt ge where remainder".split()

    def forward(self, a, b):
        return (a + b, a - b, a * b, a / b, torch.maximum(a, b), torch.minimum(a, b), torch.pow(a, b), a == b,
                a < b, a >= b, torch.where(a > b, a, b), torch.remainder(a, b))


def test_binary_ops_special_values_including_division_by_zero():
    """Every pair of special values (a 16 x 16 grid by broadcasting): inf - inf, 0 * inf, x / 0, 0 / 0 ..."""
    a = torch.from_numpy(SPECIAL_F32).reshape(16, 1)
    b = torch.from_numpy(SPECIAL_F32).reshape(1, 16)
    # torch's CPU remainder (a vectorized fmod) returns NaN for subnormal divisors and near FLT_MAX,
    # where the exact remainder is finite; forge_fe computes it exactly. Against torch, those rows
    # and columns are left out; against numpy's remainder (exact, same definition) nothing is.
    ordinary = torch.from_numpy(~((np.abs(SPECIAL_F32) > 0) & (np.abs(SPECIAL_F32) < 1.2e-38))
                                & (np.abs(SPECIAL_F32) < 1e38))
    cm = compile_and_compare(Binary(), [a, b], Binary.NAMES, signed_zeros={"mul", "div"},
                             skip={"remainder": lambda t: t[ordinary][:, ordinary]})
    with np.errstate(invalid="ignore"):
        exact = np.remainder(SPECIAL_F32.reshape(16, 1), SPECIAL_F32.reshape(1, 16))
    assert mismatch(cm(a, b)[-1], exact, rtol=0, atol=0) is None


# ---- reductions and normalizations ----------------------------------------------------

class Reductions(nn.Module):
    NAMES = "sum mean max argmax argmin softmax log_softmax var cumsum layer_norm".split()

    def forward(self, x):
        return (x.sum(1), x.mean(1), x.max(1).values, x.argmax(1), x.argmin(1), torch.softmax(x, 1),
                torch.log_softmax(x, 1), x.var(1), x.cumsum(1), F.layer_norm(x, (4,)))


def test_reductions_special_values():
    rows = torch.tensor([[1, 2, 3, 4], [NAN, 1, 2, 3], [2, 1, NAN, INF], [INF, 1, 2, 3], [INF, -INF, 1, 2],
                         [-INF, -1, -2, -3], [-0.0, -0.0, -0.0, -0.0], [1e-40, 1e-40, 0, 0], [5, 5, 5, 5],
                         [0, -200, 1, 2]])     # log_softmax -202: log(softmax) would underflow to -inf
    compile_and_compare(Reductions(), [rows], Reductions.NAMES)


# ---- the same families through ONNX, against onnxruntime ----------------------------

def onnx_model(nodes, inputs, outputs, opset=20):
    from onnx import TensorProto, helper
    types = {"f": TensorProto.FLOAT, "i": TensorProto.INT32, "b": TensorProto.BOOL}
    info = lambda n, t, s: helper.make_tensor_value_info(n, types[t], s)
    g = helper.make_graph(nodes, "special", [info(*i) for i in inputs], [info(*o) for o in outputs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def compare_with_onnxruntime(model, feeds, signed_zeros=()):
    import onnxruntime as ort
    golden = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    ours = forge_fe.compile(model, list(feeds.values()))(*feeds.values())
    ours = ours if isinstance(ours, tuple) else (ours,)
    bad = [f"{o.name}: {msg}" for o, g, w in zip(model.graph.output, ours, golden)
           if (msg := mismatch(g, w, signed_zeros=o.name in signed_zeros))]
    assert not bad, "\n".join(bad)


ONNX_UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Erf", "Sin", "Cos", "Floor", "Ceil",
              "Sign", "Reciprocal", "Softplus", "Elu", "Selu", "HardSigmoid", "HardSwish", "LeakyRelu", "Softsign",
              "ThresholdedRelu", "Gelu", "Round"]


def test_onnx_unary_and_binary_ops_special_values():
    """Sign(NaN) is NaN, ThresholdedRelu(NaN) is 0 and Gelu(inf) is inf in onnxruntime (torch differs
    on each): the ONNX converters follow onnxruntime."""
    from onnx import helper
    nodes = [helper.make_node(op, ["x"], [op]) for op in ONNX_UNARY]
    nodes += [helper.make_node(op, ["a", "b"], [op]) for op in ("Add", "Sub", "Mul", "Div", "Max", "Min")]
    nodes.append(helper.make_node("Mod", ["a", "b"], ["Mod"], fmod=1))
    outputs = [(op, "f", [1, 16]) for op in ONNX_UNARY] + [(op, "f", [16, 16]) for op in
                                                         ("Add", "Sub", "Mul", "Div", "Max", "Min", "Mod")]
    model = onnx_model(nodes, [("x", "f", [1, 16]), ("a", "f", [16, 1]), ("b", "f", [1, 16])], outputs)
    compare_with_onnxruntime(model, {"x": SPECIAL_F32.reshape(1, 16), "a": SPECIAL_F32.reshape(16, 1),
                                     "b": SPECIAL_F32.reshape(1, 16)}, signed_zeros={"Neg", "Abs", "Mul", "Div"})


def test_onnx_reductions_and_casts_special_values():
    """ReduceLogSumExp over +inf is +inf (not NaN), LogSoftmax far below the maximum stays finite,
    ArgMax picks the first NaN, float -> int32 Cast truncates (and stays on the device)."""
    from onnx import helper
    rows = np.array([[1, 2, 3, 4], [np.nan, 1, 2, 3], [np.inf, 1, 2, 3], [np.inf, -np.inf, 1, 2],
                     [-np.inf, -1, -2, -3], [-0.0, -0.0, -0.0, -0.0], [0, -200, 1, 2], [1e-40, 1e-40, 0, 0]],
                    np.float32)
    reduce_ops = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceLogSumExp", "ReduceL2"]
    nodes = [helper.make_node(op, ["x"], [op], axes=[1], keepdims=0) for op in reduce_ops[1:]]
    nodes.insert(0, helper.make_node("ReduceSum", ["x", "axes"], ["ReduceSum"], keepdims=0))
    nodes += [helper.make_node("Softmax", ["x"], ["Softmax"], axis=1),
              helper.make_node("LogSoftmax", ["x"], ["LogSoftmax"], axis=1),
              helper.make_node("ArgMax", ["x"], ["ArgMax"], axis=1, keepdims=0),
              helper.make_node("Cast", ["c"], ["Cast"], to=6)]
    from onnx import TensorProto, numpy_helper
    model = onnx_model(nodes, [("x", "f", [8, 4]), ("c", "f", [1, 8])],
                       [(op, "f", [8]) for op in reduce_ops] + [("Softmax", "f", [8, 4]), ("LogSoftmax", "f", [8, 4]),
                                                                ("ArgMax", "i", [8]), ("Cast", "i", [1, 8])], opset=13)
    model.graph.output[-2].type.tensor_type.elem_type = TensorProto.INT64
    model.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
    casts = np.array([[-2.7, -0.5, -0.0, 0.5, 2.9, 1e9, -1e9, 65536.5]], np.float32)
    compare_with_onnxruntime(model, {"x": rows, "c": casts})


# ---- empty tensors -------------------------------------------------------------------

class EmptyOps(nn.Module):
    def forward(self, x, y):
        return x + 1, torch.relu(x) * 2, x.sum(1), torch.cat([x, y], 0), x @ torch.ones(4, 3), x.mean(0)


def test_empty_tensors():
    """A zero-size dimension flows through eltwise, reductions, concat and matmul as in torch
    (mean over an empty dim is NaN, sum is 0)."""
    compile_and_compare(EmptyOps(), [torch.zeros(0, 4), torch.ones(2, 4)], "add relu sum cat matmul mean".split())


# ---- integers ------------------------------------------------------------------------

class IntArith(nn.Module):
    def forward(self, a, b):
        return a + b, a * b, a - b, -a, torch.abs(a), torch.maximum(a, b), a.sum(1)


def test_int32_overflow_wraps_like_torch():
    i32 = torch.iinfo(torch.int32)
    a = torch.tensor([[i32.max, i32.min, 7, -7, 0, 2 ** 20, -1]], dtype=torch.int32)
    b = torch.tensor([[1, -1, 2, 2, 3, 2 ** 12, 3]], dtype=torch.int32)
    compile_and_compare(IntArith(), [a, b], "add mul sub neg abs maximum sum".split())


class IntDivision(nn.Module):
    def forward(self, a, b):
        return (torch.div(a, b, rounding_mode="trunc"), torch.div(a, b, rounding_mode="floor"), a % b,
                torch.fmod(a, b))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_integer_division_by_zero_is_a_clean_error_and_int_min_by_minus_one_wraps(dtype):
    """torch and onnxruntime refuse an integer zero divisor; forge_fe too, with a forge_fe error,
    on the device (trunc division) and on the CPU (floor division, remainders), where the host's
    division instruction used to kill the process with SIGFPE. INT_MIN / -1 (which crashes torch
    itself) wraps to INT_MIN, as two's complement and numpy do."""
    a = torch.tensor([[9, 7, -7, -9]], dtype=dtype)
    b = torch.tensor([[2, 2, 2, -4]], dtype=dtype)
    cm = compile_and_compare(IntDivision(), [a, b], "trunc floor remainder fmod".split())
    for position in range(4):
        zero = b.clone()
        zero[0, position] = 0
        with pytest.raises(ForgeError, match="division by zero"):
            cm(a, zero)
    if dtype == torch.int64:
        return        # INT64_MIN does not reach the device: see test_int64_outside_int32_is_reported_and_refused
    lo = torch.iinfo(torch.int32).min
    a = np.array([[lo, 7, -7, lo]], dtype=np.int32)
    b = np.array([[-1, -1, 2, 1]], dtype=np.int32)
    with np.errstate(all="ignore"):      # numpy defines INT_MIN // -1 as INT_MIN (wraps), with a warning
        floor = np.floor_divide(a, b)
        trunc = np.where((np.fmod(a, b) != 0) & ((a < 0) != (b < 0)), floor + 1, floor)
        expected = trunc, floor, np.remainder(a, b), np.fmod(a, b)
    out = cm(torch.from_numpy(a), torch.from_numpy(b))
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got.numpy(), want)


class Square(nn.Module):
    def forward(self, a):
        return a * a + 1


def test_int64_outside_int32_is_reported_and_refused():
    """The device has no 64-bit integers (DESIGN.md: i64 -> si32). That deliberate difference is
    named in the compile report, the binary and verify's message; an int64 input that does not
    fit in int32 is refused instead of wrapping into a wrong result; values that fit are exact."""
    a = torch.tensor([[3, -40000, 2 ** 15]])
    cm = compile_and_compare(Square(), [a], ["square"])
    assert any("int64 is computed as int32" in n for n in cm.report.numerics_notes)
    assert "int64 is computed as int32" in cm.report.summary()
    with pytest.raises(ForgeError, match="outside the device's int32 range"):
        cm(torch.tensor([[3, 2 ** 40, 1]]))
    with pytest.raises(ForgeError, match="int64 is computed as int32"):   # wraps inside: verify says why
        forge_fe.verify([torch.tensor([[2 ** 30, 1, 1]])], Square(), cm)
