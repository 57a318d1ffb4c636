"""tvm_ext.frontend.from_onnx: real exported models against onnxruntime, each
importer fix on a minimal graph, and every user-facing error."""

from __future__ import annotations

import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tvm
from onnx import TensorProto as TP
from onnx import helper as oh
from onnx import numpy_helper as nh
from tvm import relax

from forge_fe.errors import FrontendError
from tvm_ext.frontend import from_onnx
from tvm_ext.frontend import onnx_converters

RTOL = ATOL = 1e-4

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def run_tvm(mod, params, feeds):
    mod = relax.transform.BindParams("main", params)(mod)
    ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(np.require(v, requirements='C')) for v in feeds.values()])

    def flat(o):
        if isinstance(o, tvm.runtime.Tensor):
            return [o.numpy()]
        return [x for item in o for x in flat(item)]

    return flat(out)


def run_ort(model, feeds):
    if not isinstance(model, (str, bytes)):
        model = model.SerializeToString()
    return ort.InferenceSession(model).run(None, feeds)


def check_against_ort(model, feeds, rtol=RTOL, atol=ATOL):
    """Import with the feeds' shapes/dtypes, run with TVM, compare with onnxruntime."""
    mod, params = from_onnx(
        model, {k: v.shape for k, v in feeds.items()}, {k: str(v.dtype) for k, v in feeds.items()}
    )
    got = run_tvm(mod, params, feeds)
    want = run_ort(model, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return mod, params


def make_model(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=(), **kw):
    graph = oh.make_graph(nodes, "g", inputs, outputs, list(initializers))
    opsets = [oh.make_opsetid("", opset)] + [oh.make_opsetid(d, v) for d, v in extra_opsets]
    model = oh.make_model(graph, opset_imports=opsets, ir_version=8, **kw)
    onnx.checker.check_model(model)
    return model


def vi(name, shape, elem=TP.FLOAT):
    return oh.make_tensor_value_info(name, elem, shape)


def const(name, value):
    return nh.from_array(np.asarray(value), name)


def assert_static(mod):
    main = mod["main"]
    assert not relax.analysis.defined_symbolic_vars(main), mod.script()
    for p in main.params:
        assert all(isinstance(d, tvm.tirx.IntImm) for d in p.ty.shape.values)


def n_prim_funcs(mod):
    return sum(1 for gv in mod.get_global_vars() if gv.name_hint != "main")


# --------------------------------------------------------------------------
# real models
# --------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def _bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        vocab_size=1000,
    )
    model = transformers.BertModel(cfg).eval()
    # fresh BERT has all-zero biases and all-one norms, which the exporter
    # deduplicates into one initializer; random values keep every weight distinct
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)

    class W(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, a, b):
            return self.m(input_ids=a, attention_mask=b).last_hidden_state

    return W(model).eval()


def _bert_feeds(batch=2, seq=16):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, (batch, seq)).astype("int64")
    mask = np.ones((batch, seq), "int64")
    mask[0, -5:] = 0  # padding in the first sequence exercises the mask path
    return {"input_ids": ids, "attention_mask": mask}


def _export(module, args, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), **kw)
    return str(path)


@pytest.fixture(scope="module")
def bert_module():
    return _bert()


@pytest.fixture(scope="module")
def bert_static(bert_module, tmp_path_factory):
    feeds = _bert_feeds()
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    path = tmp_path_factory.mktemp("bert") / "bert17.onnx"
    return _export(
        bert_module, args, path, input_names=list(feeds), opset_version=17, dynamo=False
    )


def test_bert_opset17_torchscript_exporter(bert_static):
    """The reported failure: ConstantOfShape with a 1-element value and a scalar shape."""
    feeds = _bert_feeds()
    shapes = {k: v.shape for k, v in feeds.items()}
    dtypes = {k: str(v.dtype) for k, v in feeds.items()}
    t0 = time.perf_counter()
    mod, params = from_onnx(bert_static, shapes, dtypes)
    elapsed = time.perf_counter() - t0
    print(f"tiny BERT import: {elapsed * 1000:.0f} ms")
    assert elapsed < 10

    main = mod["main"]
    assert [p.name for p in main.params[:2]] == ["input_ids", "attention_mask"]
    assert int(main.attrs["num_input"]) == 2
    weight_names = [p.name for p in main.params[2:]]
    assert weight_names == list(params)
    assert "m.embeddings.word_embeddings.weight" in params
    assert params["m.embeddings.word_embeddings.weight"].shape == (1000, 128)
    # values are the initializers' values, names are theirs minus TVM's "onnx::" strip
    inits = {
        t.name.removeprefix("onnx::"): nh.to_array(t) for t in onnx.load(bert_static).graph.initializer
    }
    for name, value in params.items():
        np.testing.assert_array_equal(value, inits[name])
    assert_static(mod)
    check_against_ort(bert_static, feeds)


def test_bert_dynamic_axes_become_static(bert_module, tmp_path):
    """Symbolic batch/seq dims are replaced by the sample shape; exercises the
    Equal/Range/Expand fixes (torch's expand(-1) and arange mask patterns)."""
    feeds = _bert_feeds(batch=3, seq=8)
    args = tuple(torch.from_numpy(v) for v in _bert_feeds().values())
    dyn = {0: "batch", 1: "seq"}
    path = _export(
        bert_module,
        args,
        tmp_path / "bert_dyn_axes.onnx",
        input_names=list(feeds),
        opset_version=17,
        dynamo=False,
        dynamic_axes={"input_ids": dyn, "attention_mask": dyn},
    )
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    mod, _ = check_against_ort(path, feeds)
    assert_static(mod)
    assert mod["main"].params[0].ty.shape.values[0] == 3


def test_bert_dynamo_exporter(bert_module):
    pytest.importorskip("onnxscript")
    feeds = _bert_feeds()
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            bert_module, args, input_names=list(feeds), opset_version=17, dynamo=True
        )
    model = program.model_proto
    mod, params = check_against_ort(model, feeds)
    assert_static(mod)
    # shape tensors / masks the dynamo exporter stores as int/bool initializers
    # are constants, not weights
    int_inits = [t.name for t in model.graph.initializer if t.data_type in (TP.INT64, TP.BOOL)]
    assert int_inits
    assert not set(int_inits) & set(params)
    assert all(v.dtype == np.float32 for v in params.values())


class _Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        nn = torch.nn
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(x + self.b2(self.c2(y)))


class _ResNetish(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        self.block = _Block(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    net = _ResNetish().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net


def _cnn_feeds(batch=1):
    return {"x": np.random.default_rng(1).standard_normal((batch, 3, 32, 32)).astype("float32")}


@pytest.mark.parametrize("opset", [17, 13])
def test_cnn(cnn, tmp_path, opset):
    feeds = _cnn_feeds()
    path = _export(
        cnn,
        (torch.from_numpy(feeds["x"]),),
        tmp_path / f"cnn{opset}.onnx",
        input_names=["x"],
        opset_version=opset,
        dynamo=False,
    )
    mod, params = check_against_ort(path, feeds)  # a path, not a ModelProto
    assert_static(mod)
    assert {"fc.weight", "fc.bias"} <= set(params)


def test_cnn_initializers_listed_as_graph_inputs(cnn, tmp_path):
    """Old exporters list every initializer in graph.input: they are weights."""
    feeds = _cnn_feeds(batch=2)
    path = _export(
        cnn,
        (torch.from_numpy(_cnn_feeds()["x"]),),
        tmp_path / "cnn_old.onnx",
        input_names=["x"],
        opset_version=11,
        dynamo=False,
        keep_initializers_as_inputs=True,
        do_constant_folding=False,
        dynamic_axes={"x": {0: "n"}},
    )
    graph = onnx.load(path).graph
    init_names = [t.name for t in graph.initializer]
    assert set(init_names) <= {i.name for i in graph.input}  # really the old layout

    mod, params = check_against_ort(path, feeds)
    main = mod["main"]
    assert int(main.attrs["num_input"]) == 1
    assert main.params[0].name == "x"
    assert len(main.params) == 1 + len(params)  # no weight appears twice
    assert sorted(params) == sorted(init_names)

    with pytest.raises(FrontendError, match="is a weight"):
        from_onnx(path, {"x": (2, 3, 32, 32), "fc.weight": (10, 8)}, {})


def test_cnn_dynamo_exporter(cnn):
    pytest.importorskip("onnxscript")
    feeds = _cnn_feeds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            cnn, (torch.from_numpy(feeds["x"]),), input_names=["x"], opset_version=18, dynamo=True
        )
    check_against_ort(program.model_proto, feeds)


# --------------------------------------------------------------------------
# recurrent ops (tvm_ext/frontend/onnx_rnn_converters.py): torch exports through forge_fe
# --------------------------------------------------------------------------


class _Recurrent(torch.nn.Module):
    """The recurrent layer's output sequence and final state(s), as separate outputs."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        y, state = self.rnn(x)
        return (y, *state) if isinstance(state, tuple) else (y, state)


@pytest.mark.parametrize(
    "name, make, shape",
    [
        ("lstm", lambda: torch.nn.LSTM(6, 8, num_layers=2, batch_first=True), (2, 5, 6)),
        ("gru", lambda: torch.nn.GRU(6, 8, bidirectional=True), (5, 2, 6)),
        ("rnn", lambda: torch.nn.RNN(6, 8, nonlinearity="tanh"), (5, 2, 6)),
    ],
)
def test_torch_recurrent_layer_compiles(name, make, shape, tmp_path):
    import forge_fe

    torch.manual_seed(0)
    module = _Recurrent(make()).eval()
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    path = _export(module, (torch.from_numpy(x),), tmp_path / f"{name}.onnx",
                   input_names=["x"], opset_version=17, dynamo=False)
    assert name.upper() in {n.op_type for n in onnx.load(path).graph.node}
    cm = forge_fe.compile(path, [x])
    forge_fe.verify([x], path, cm, pcc_min=0.999)


def _recurrent_node_model(op, direction="forward", lens=None, lens_input=False, **attrs):
    """One LSTM/GRU/RNN node (seq 4, batch 3, input 2, hidden 5) with bias, initial state and
    sequence_lens (an initializer, or a graph input with ``lens_input``)."""
    rng = np.random.default_rng(0)
    dirs, gates, hidden = (2 if direction == "bidirectional" else 1), {"LSTM": 4, "GRU": 3, "RNN": 1}[op], 5
    feeds = {"X": rng.standard_normal((4, 3, 2)).astype("float32"),
             "h0": rng.standard_normal((dirs, 3, hidden)).astype("float32")}
    inits = [const("W", rng.standard_normal((dirs, gates * hidden, 2)).astype("float32")),
             const("R", rng.standard_normal((dirs, gates * hidden, hidden)).astype("float32")),
             const("B", rng.standard_normal((dirs, 2 * gates * hidden)).astype("float32"))]
    inputs = [vi("X", [4, 3, 2]), vi("h0", [dirs, 3, hidden])]
    if lens_input:
        feeds["L"] = np.array(lens, "int32")
        inputs.append(vi("L", [3], TP.INT32))
    elif lens is not None:
        inits.append(const("L", np.array(lens, "int32")))
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = oh.make_node(op, ["X", "W", "R", "B", "L" if lens is not None else "", "h0"], outputs,
                        name=f"my_{op.lower()}", hidden_size=hidden, direction=direction, **attrs)
    shapes = {"Y": [4, dirs, 3, hidden], "Y_h": [dirs, 3, hidden], "Y_c": [dirs, 3, hidden]}
    model = make_model([node], inputs, [vi(o, shapes[o]) for o in outputs], inits)
    return model, feeds


@pytest.mark.parametrize(
    "op, direction, lens_input, attrs",
    [
        ("LSTM", "bidirectional", False, {}),
        ("GRU", "reverse", True, {"linear_before_reset": 1}),
        ("RNN", "bidirectional", True, {"activations": ["Relu", "HardSigmoid"], "clip": 2.0}),
    ],
)
def test_recurrent_sequence_lens_match_onnxruntime(op, direction, lens_input, attrs):
    """Per-batch lengths (one empty): zero Y past the end, the state stops at the last valid step,
    the reverse direction starts at each batch's own last step."""
    model, feeds = _recurrent_node_model(op, direction, lens=[2, 4, 0], lens_input=lens_input, **attrs)
    check_against_ort(model, feeds)


def test_recurrent_unsupported_activation_names_it():
    model, feeds = _recurrent_node_model("GRU", activations=["Sigmoid", "Gelu"])
    with pytest.raises(FrontendError) as info:
        from_onnx(model, {k: v.shape for k, v in feeds.items()}, {})
    first_line = str(info.value).splitlines()[0]
    assert "GRU node 'my_gru'" in first_line
    assert "activation 'Gelu' is not supported" in first_line


# --------------------------------------------------------------------------
# each fix on a minimal graph
# --------------------------------------------------------------------------


def test_fix_constant_of_shape_scalar_shape():
    """value is a 1-element tensor, requested shape is [] -> a scalar."""
    model = make_model(
        [
            oh.make_node("Constant", [], ["shape"], value=const("s", np.zeros((0,), "int64"))),
            oh.make_node("ConstantOfShape", ["shape"], ["one"], value=const("v", np.array([3], "int64"))),
            oh.make_node("Add", ["x", "one"], ["y"]),
        ],
        [vi("x", [2, 3], TP.INT64)],
        [vi("y", [2, 3], TP.INT64)],
    )
    check_against_ort(model, {"x": np.arange(6, dtype="int64").reshape(2, 3)})


def test_fix_constant_of_shape_from_shape():
    model = make_model(
        [
            oh.make_node("Shape", ["x"], ["s"]),
            oh.make_node("ConstantOfShape", ["s"], ["c"], value=const("v", np.array([2.5], "float32"))),
            oh.make_node("Mul", ["x", "c"], ["y"]),
        ],
        [vi("x", [2, 3])],
        [vi("y", [2, 3])],
    )
    check_against_ort(model, {"x": np.ones((2, 3), "float32")})


def test_fix_equal_shape_vs_constant_and_expand_to_shape():
    """torch's expand(-1, ...) pattern: Where(Equal(shape, -1), 1, shape) -> Expand."""
    model = make_model(
        [
            oh.make_node("Shape", ["y"], ["s"]),
            oh.make_node("Concat", ["neg", "s"], ["target"], axis=0),  # [-1, 4, 5]
            oh.make_node("Equal", ["target", "minus1"], ["is_neg"]),
            oh.make_node("Where", ["is_neg", "ones", "target"], ["fixed"]),  # [1, 4, 5]
            oh.make_node("Expand", ["x", "fixed"], ["out"]),
        ],
        [vi("x", [1, 1, 5]), vi("y", [4, 5])],
        [vi("out", [1, 4, 5])],
        [const("neg", np.array([-1])), const("minus1", np.array([-1, -1, -1])), const("ones", np.ones(3, "int64"))],
    )
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((1, 1, 5)).astype("float32"), "y": np.zeros((4, 5), "float32")}
    check_against_ort(model, feeds)


def test_fix_equal_shape_vs_constant_values():
    """TVM folds Equal(Shape(x), const) to all-False; the result must be [True, False, True]."""
    model = make_model(
        [oh.make_node("Shape", ["x"], ["s"]), oh.make_node("Equal", ["s", "c"], ["y"])],
        [vi("x", [2, 3, 4])],
        [vi("y", [3], TP.BOOL)],
        [const("c", np.array([2, -1, 4]))],
    )
    mod, _ = check_against_ort(model, {"x": np.zeros((2, 3, 4), "float32")})
    got = run_tvm(mod, {}, {"x": np.zeros((2, 3, 4), "float32")})[0]
    np.testing.assert_array_equal(got, [True, False, True])


def test_expand_to_shape_of_same_rank():
    model = make_model(
        [oh.make_node("Shape", ["y"], ["s"]), oh.make_node("Expand", ["x", "s"], ["out"])],
        [vi("x", [1, 5]), vi("y", [3, 5])],
        [vi("out", [3, 5])],
    )
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((1, 5)).astype("float32"), "y": np.zeros((3, 5), "float32")}
    mod, _ = check_against_ort(model, feeds)
    assert_static(mod)


def test_fix_range_over_shape_dims_is_static():
    model = make_model(
        [
            oh.make_node("Shape", ["x"], ["s"]),
            oh.make_node("Gather", ["s", "one"], ["n"], axis=0),
            oh.make_node("Range", ["zero", "n", "step"], ["r"]),
            oh.make_node("Cast", ["r"], ["rf"], to=TP.FLOAT),
            oh.make_node("Add", ["x", "rf"], ["y"]),
        ],
        [vi("x", [2, 5])],
        [vi("y", [2, 5])],
        [const("one", np.array(1)), const("zero", np.array(0)), const("step", np.array(1))],
    )
    mod, _ = check_against_ort(model, {"x": np.zeros((2, 5), "float32")})
    assert_static(mod)


def test_fix_shape_values_feeding_ordinary_ops():
    """Shape -> Mul / Tile / graph output: TVM refuses ShapeExpr inputs there."""
    model = make_model(
        [
            oh.make_node("Shape", ["x"], ["s"]),
            oh.make_node("Mul", ["s", "two"], ["doubled"]),
            oh.make_node("Tile", ["s", "reps"], ["tiled"]),
            oh.make_node("Shape", ["x"], ["s_out"]),
        ],
        [vi("x", [2, 3])],
        [vi("doubled", [2], TP.INT64), vi("tiled", [4], TP.INT64), vi("s_out", [2], TP.INT64)],
        [const("two", np.array([2])), const("reps", np.array([2]))],
    )
    check_against_ort(model, {"x": np.zeros((2, 3), "float32")})


def test_fix_int_initializers_are_constants_not_weights():
    """The dynamo exporter's layout: Expand/Reshape shapes and gather indices as initializers."""
    model = make_model(
        [
            oh.make_node("Expand", ["x", "shape"], ["e"]),
            oh.make_node("Reshape", ["e", "flat"], ["r"]),
            oh.make_node("Gather", ["r", "idx"], ["g"], axis=1),
            oh.make_node("Mul", ["g", "w"], ["y"]),
        ],
        [vi("x", [1, 4])],
        [vi("y", [3, 2])],
        [const("shape", np.array([3, 4])), const("flat", np.array([3, -1])), const("idx", np.array([0, 2])),
         const("w", np.array([1.5, -2.0], "float32"))],
    )
    mod, params = check_against_ort(model, {"x": np.arange(4, dtype="float32").reshape(1, 4)})
    assert list(params) == ["w"]
    assert [p.name for p in mod["main"].params] == ["x", "w"]
    assert_static(mod)


def test_fix_unused_weights_are_dropped():
    """Resize reads its float `scales` initializer as a constant; it is no weight."""
    model = make_model(
        [oh.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest"), oh.make_node("Mul", ["r", "w"], ["y"])],
        [vi("x", [1, 2, 4, 4])],
        [vi("y", [1, 2, 8, 8])],
        [const("scales", np.array([1, 1, 2, 2], "float32")), const("w", np.full((1, 2, 1, 1), 2.0, "float32"))],
    )
    mod, params = check_against_ort(model, {"x": np.random.default_rng(0).random((1, 2, 4, 4), dtype="float32")})
    assert list(params) == ["w"]
    assert len(mod["main"].params) == 2


@pytest.mark.parametrize(
    "case",
    ["clip6", "clip11", "clip13_max_only", "clip13_nan_min", "clip13_int", "clip13_runtime_bound"],
)
def test_fix_clip_is_a_relax_op(case):
    x = vi("x", [2, 8])
    feeds = {"x": np.linspace(-8, 8, 16, dtype="float32").reshape(2, 8)}
    inits, inputs, opset = [], [x], 13
    if case == "clip6":
        node, opset = oh.make_node("Clip", ["x"], ["y"], min=0.0, max=6.0), 6
    elif case == "clip11":
        node, opset = oh.make_node("Clip", ["x", "lo", "hi"], ["y"]), 11
        inits = [const("lo", np.float32(0)), const("hi", np.float32(6))]
    elif case == "clip13_max_only":
        node, inits = oh.make_node("Clip", ["x", "", "hi"], ["y"]), [const("hi", np.float32(0.5))]
    elif case == "clip13_nan_min":
        node = oh.make_node("Clip", ["x", "lo", "hi"], ["y"])
        inits = [const("lo", np.float32(np.nan)), const("hi", np.float32(0.5))]
    elif case == "clip13_int":
        node, inits = oh.make_node("Clip", ["x", "lo"], ["y"]), [const("lo", np.int64(3))]
        inputs = [vi("x", [2, 8], TP.INT64)]
        feeds = {"x": np.arange(-8, 8, dtype="int64").reshape(2, 8)}
    else:  # bound is a runtime input: maximum/minimum, still no call_tir
        node = oh.make_node("Clip", ["x", "lo"], ["y"])
        inputs = [x, vi("lo", [])]
        feeds["lo"] = np.array(-1.5, "float32")
    elem = inputs[0].type.tensor_type.elem_type
    model = make_model([node], inputs, [vi("y", [2, 8], elem)], inits, opset=opset)
    mod, _ = check_against_ort(model, feeds)
    assert n_prim_funcs(mod) == 0, mod.script()


@pytest.mark.parametrize(
    "opset,mode,pads,axes,out_shape",
    [
        (2, "constant", [0, 1, 0, 2], None, [2, 11]),
        (2, "reflect", [0, 1, 0, 2], None, [2, 11]),
        (13, "constant", [1, 1, 0, 2], None, [3, 11]),
        (13, "edge", [1, 1, 0, 2], None, [3, 11]),
        (18, "reflect", [1, 2], [1], [2, 11]),
        (19, "wrap", [1, 1, 0, 2], None, [3, 11]),
    ],
)
def test_fix_pad_is_a_relax_op(opset, mode, pads, axes, out_shape):
    if opset == 2:
        node = oh.make_node("Pad", ["x"], ["y"], pads=pads, mode=mode, value=1.5)
        inits = []
    else:
        ins = ["x", "p", "v" if mode == "constant" else ""] + (["a"] if axes else [])
        node = oh.make_node("Pad", ins, ["y"], mode=mode)
        inits = [const("p", np.array(pads))]
        if mode == "constant":
            inits.append(const("v", np.float32(2.0)))
        if axes:
            inits.append(const("a", np.array(axes)))
    model = make_model([node], [vi("x", [2, 8])], [vi("y", out_shape)], inits, opset=opset)
    feeds = {"x": np.arange(16, dtype="float32").reshape(2, 8)}
    mod, _ = check_against_ort(model, feeds)
    assert n_prim_funcs(mod) == 0, mod.script()


def test_fix_tile_is_a_relax_op_and_keeps_int64():
    model = make_model(
        [oh.make_node("Tile", ["x", "r"], ["y"]), oh.make_node("Tile", ["i", "r1"], ["j"])],
        [vi("x", [2, 3]), vi("i", [2], TP.INT64)],
        [vi("y", [4, 9]), vi("j", [4], TP.INT64)],
        [const("r", np.array([2, 3])), const("r1", np.array([2]))],
    )
    feeds = {"x": np.arange(6, dtype="float32").reshape(2, 3), "i": np.array([7, 8])}
    mod, _ = check_against_ort(model, feeds)
    assert n_prim_funcs(mod) == 0


def test_model_local_functions_are_inlined():
    fn = oh.make_function(
        "custom", "Swishish", ["a"], ["b"],
        [oh.make_node("Sigmoid", ["a"], ["s"]), oh.make_node("Mul", ["a", "s"], ["b"])],
        opset_imports=[oh.make_opsetid("", 17)],
    )  # fmt: skip
    model = make_model(
        [oh.make_node("Swishish", ["x"], ["y"], domain="custom")],
        [vi("x", [2, 3])],
        [vi("y", [2, 3])],
        functions=[fn],
        extra_opsets=[("custom", 1)],
    )
    check_against_ort(model, {"x": np.linspace(-3, 3, 6, dtype="float32").reshape(2, 3)})


def test_colliding_initializer_names_stay_distinct():
    """TVM strips "onnx::"; "onnx::w" and "w" must still be two weights."""
    model = make_model(
        [oh.make_node("Add", ["x", "onnx::w"], ["a"]), oh.make_node("Mul", ["a", "w"], ["y"])],
        [vi("x", [3])],
        [vi("y", [3])],
        [const("onnx::w", np.array([1, 2, 3], "float32")), const("w", np.array([4, 5, 6], "float32"))],
    )
    _, params = check_against_ort(model, {"x": np.ones(3, "float32")})
    assert sorted(params) == ["w", "w_1"]
    np.testing.assert_array_equal(params["w"], [4, 5, 6])
    np.testing.assert_array_equal(params["w_1"], [1, 2, 3])


def test_data_dependent_shapes_warn():
    model = make_model([oh.make_node("NonZero", ["x"], ["y"])], [vi("x", [2, 4])], [vi("y", [2, None], TP.INT64)])
    with pytest.warns(UserWarning, match="data-dependent shapes"):
        from_onnx(model, {"x": (2, 4)}, {"x": "float32"})


def test_importer_is_restored_and_caller_model_untouched():
    fe = onnx_converters._tvm_onnx
    before = (fe._get_convert_map, fe.ONNXGraphImporter.__dict__["_parse_graph_initializers"],
              fe.ONNXGraphImporter.__dict__["_parse_graph_input"])  # fmt: skip
    model = make_model([oh.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", [2])])
    assert model.graph.node[0].name == ""
    snapshot = model.SerializeToString()
    from_onnx(model, {"x": (2,)}, {})
    with pytest.raises(FrontendError):
        from_onnx(model, {"x": (3,)}, {})  # a failure path too
    after = (fe._get_convert_map, fe.ONNXGraphImporter.__dict__["_parse_graph_initializers"],
             fe.ONNXGraphImporter.__dict__["_parse_graph_input"])  # fmt: skip
    assert before == after
    assert model.SerializeToString() == snapshot


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def _two_input_model():
    return make_model(
        [oh.make_node("Add", ["a", "b"], ["y"])],
        [vi("a", ["n", 3]), vi("b", ["n", 3])],
        [vi("y", ["n", 3])],
    )


def test_error_path_does_not_exist(tmp_path):
    with pytest.raises(FrontendError, match="not found") as info:
        from_onnx(tmp_path / "nope.onnx", {}, {})
    assert info.value.stage == "import"


def test_error_not_an_onnx_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\x01this is not protobuf\xff" * 10)
    with pytest.raises(FrontendError, match="could not read ONNX model|malformed"):
        from_onnx(path, {}, {})


def test_error_wrong_model_type():
    with pytest.raises(FrontendError, match="ModelProto or a path"):
        from_onnx(42, {}, {})


def test_error_malformed_model_reports_checker_message():
    graph = oh.make_graph(
        [oh.make_node("Relu", ["ghost"], ["y"])], "g", [vi("x", [2])], [vi("y", [2])]
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(FrontendError, match="malformed ONNX model.*ghost"):
        from_onnx(model, {"x": (2,)}, {})


def test_error_unknown_input_name_lists_graph_inputs():
    with pytest.raises(FrontendError) as info:
        from_onnx(_two_input_model(), {"a": (2, 3), "b": (2, 3), "c": (1,)}, {})
    msg = str(info.value)
    assert "'c'" in msg and "'a', 'b'" in msg
    with pytest.raises(FrontendError, match="input_dtypes names 'zz'"):
        from_onnx(_two_input_model(), {"a": (2, 3), "b": (2, 3)}, {"zz": "float32"})


def test_error_missing_input():
    with pytest.raises(FrontendError, match="no shape given for ONNX graph inputs: 'b'"):
        from_onnx(_two_input_model(), {"a": (2, 3)}, {"a": "float32"})


def test_error_shape_and_dtype_mismatch():
    with pytest.raises(FrontendError, match="rank 2"):
        from_onnx(_two_input_model(), {"a": (2, 3, 1), "b": (2, 3)}, {})
    with pytest.raises(FrontendError, match=r"dims \[1\] differ"):
        from_onnx(_two_input_model(), {"a": (2, 4), "b": (2, 3)}, {})
    with pytest.raises(FrontendError, match="is float32 in the ONNX graph but input_dtypes gives int64"):
        from_onnx(_two_input_model(), {"a": (2, 3), "b": (2, 3)}, {"a": "int64"})
    with pytest.raises(FrontendError, match="not a tuple of non-negative ints"):
        from_onnx(_two_input_model(), {"a": (2, "n"), "b": (2, 3)}, {})


def test_error_all_unsupported_ops_listed_at_once_including_subgraphs():
    then_branch = oh.make_graph(
        [oh.make_node("Bernoulli", ["x"], ["t"])], "then", [], [vi("t", [2, 2])]
    )
    else_branch = oh.make_graph([oh.make_node("Det", ["x"], ["e0"]), oh.make_node("Identity", ["x"], ["e"])],
                                "else", [], [vi("e", [2, 2])])  # fmt: skip
    model = make_model(
        [
            oh.make_node("Det", ["x"], ["d"]),
            oh.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
            oh.make_node("Greater", ["s", "zero"], ["c"]),
            oh.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch),
        ],
        [vi("x", [2, 2])],
        [vi("y", [2, 2]), vi("d", [])],
        [const("zero", np.float32(0))],
    )
    with pytest.raises(FrontendError) as info:
        from_onnx(model, {"x": (2, 2)}, {})
    msg = str(info.value)
    assert "unsupported ONNX ops: Det (opset 17, 2 nodes), Bernoulli (opset 17)" in msg
    assert "hint:" in msg


def test_error_converter_crash_names_the_node(capsys):
    """A real TVM limitation: Reshape to a shape computed at run time."""
    model = make_model(
        [oh.make_node("Reshape", ["x", "shape"], ["y"], name="my_reshape")],
        [vi("x", [2, 6]), vi("shape", [2], TP.INT64)],
        [vi("y", [None, None])],
    )
    with pytest.raises(FrontendError) as info:
        from_onnx(model, {"x": (2, 6), "shape": (2,)}, {})
    msg = str(info.value)
    first_line = msg.splitlines()[0]
    assert "Reshape node 'my_reshape'" in first_line
    assert "Reshape requires the input new shape" in first_line
    assert "report" in msg and "opset" in msg.splitlines()[-1]
    assert isinstance(info.value.__cause__, Exception)
    assert "Error converting operator" not in capsys.readouterr().out  # TVM's print is swallowed


def test_error_converter_crash_in_unnamed_node(monkeypatch):
    class Broken(onnx_converters.OnnxOpConverter):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            raise RuntimeError("boom\nsecond line")

    monkeypatch.setitem(onnx_converters.FIXED_CONVERTERS, "Relu", Broken)
    model = make_model([oh.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", [2])])
    with pytest.raises(FrontendError, match=r"Relu node 'Relu_0'.*: RuntimeError: boom second line"):
        from_onnx(model, {"x": (2,)}, {})
