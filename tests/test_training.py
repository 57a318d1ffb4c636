"""Training (issue 6): backward rules, autograd, forward/backward/optimizer programs, optimizers,
torch autograd integration. Every number is checked against torch's own autograd / torch.optim."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import forge_fe
from forge_fe.errors import ForgeError
from forge_fe.graph.graph import PARAMETER, Graph
from forge_fe.op import OPS
from forge_fe.passes import autograd
from forge_fe.passes.pre_lowering import equalize_ranks
from forge_fe.device.program import DeviceProgram
from forge_fe.compiler.lower_ttir import lower_graph

from test_ops import CASES, _sample, op_of


# ---- models -------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 5)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(torch.relu(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.fc = nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Linear(8, 5)

    def forward(self, x):
        y = F.max_pool2d(torch.relu(self.bn(self.conv1(x))), 2)
        return self.fc(torch.relu(self.conv2(y)).mean((2, 3)))


class TransformerBlock(nn.Module):
    """Embedding, pre-norm softmax attention (2 heads), gelu MLP, LM head."""

    def __init__(self, vocab=50, d=32, heads=2):
        super().__init__()
        self.heads = heads
        self.emb = nn.Embedding(vocab, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ff1, self.ff2, self.head = nn.Linear(d, 4 * d), nn.Linear(4 * d, d), nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.emb(ids)
        b, t, d = x.shape
        hd = d // self.heads
        h = self.ln1(x)
        q, k, v = (f(h).reshape(b, t, self.heads, hd).transpose(1, 2) for f in (self.q, self.k, self.v))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(b, t, d))
        x = x + self.ff2(F.gelu(self.ff1(self.ln2(x))))
        return self.head(x)


def _batches(shape, classes, n, seed):
    """n batches of a learnable task: noise around one fixed random prototype per class."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(classes, *shape[1:], generator=g)
    out = []
    for _ in range(n):
        y = torch.randint(0, classes, (shape[0],), generator=g)
        out.append((prototypes[y] + 2 * torch.randn(*shape, generator=g), y))
    return out


def pcc(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


def assert_grads_match(cm, ref):
    """Per parameter: PCC >= 0.99 and fp32-close. A gradient that is zero in exact math (a bias
    before batch norm or a softmax's key bias) is only compared by absolute error."""
    want = dict(ref.named_parameters())
    got = dict(cm.named_parameters())
    assert set(got) == set(want)
    # fp32 round-off in any gradient is about 1e-6 of the largest gradient it was summed with
    model_scale = max(float(w.grad.abs().max()) for w in want.values() if w.grad is not None)
    for name, p in got.items():
        w = want[name].grad
        if w is None:                 # unused by the outputs: no gradient, or zeros
            assert p.grad is None or not p.grad.any(), name
            continue
        assert p.grad is not None, f"no gradient for {name}"
        scale = float(w.abs().max())
        if scale > 1e-5 * max(model_scale, 1.0):     # below that it is round-off of an exact zero
            assert pcc(p.grad, w) >= 0.99, (name, pcc(p.grad, w))
        # fp32 device kernels vs torch: reassociation only, so errors are ~1e-6 of the gradient scale
        torch.testing.assert_close(p.grad, w, rtol=1e-3, atol=1e-5 + 1e-6 * max(scale, model_scale), msg=name)


# ---- each backward rule against torch autograd of the op's golden rule --------------

GRAD_CASES = {k: v for k, v in CASES.items() if k in {
    "relu", "sigmoid", "tanh", "exp", "neg", "abs", "erf", "sin", "cos", "silu", "log", "sqrt", "rsqrt",
    "reciprocal", "gelu", "leaky_relu", "clip", "add", "subtract", "multiply", "divide", "maximum", "minimum",
    "power", "where", "conv2d", "conv_transpose2d", "conv_transpose2d_symmetric", "max_pool2d", "global_avg_pool2d", "matmul", "linear", "softmax", "log_softmax",
    "layer_norm", "reshape", "permute", "concat", "broadcast", "take", "sum", "mean", "max", "min",
    "avg_pool2d", "rotary_embedding"}}
GRAD_CASES.update({
    "take_static_index": ([((2, 5, 4), "float32")], {"axis": 1, "index": 3}),
    "conv2d_depthwise": ([((2, 4, 8, 8), "float32"), ((4, 1, 3, 3), "float32")],
                         {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 4}),
    "avg_pool2d_padded": ([((2, 3, 9, 9), "float32")], {"kernel": [3, 3], "stride": [2, 2], "dilation": [1, 1],
                                                        "padding": [1, 1, 1, 1], "ceil_mode": False,
                                                        "count_include_pad": True}),
    "maximum_ties": ([((2, 3), "float32"), ((2, 3), "float32")], {}),
    "gelu_tanh": ([((2, 3, 4), "float32")], {"approximate": "tanh"}),
    "slice_unit_step": ([((4, 6), "float32")], {"begins": [1, 2], "ends": [3, 6], "steps": [1, 1]}),
    "conv2d_plain": ([((2, 3, 8, 8), "float32"), ((4, 3, 3, 3), "float32"), ((4,), "float32")],
                     {"stride": [2, 2], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}),
    "conv2d_asymmetric": ([((1, 2, 9, 9), "float32"), ((3, 2, 3, 3), "float32")],
                          {"stride": [2, 1], "padding": [1, 0, 2, 1], "dilation": [1, 2], "groups": 1}),
    "matmul_transpose_b": ([((2, 4, 5), "float32"), ((6, 5), "float32")], {"transpose_b": True}),
})


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_backward_rule_matches_torch_autograd(case, rng):
    op = op_of(case)
    specs, attrs = GRAD_CASES[case]
    positive = op.name in ("log", "sqrt", "rsqrt", "power", "reciprocal")
    values = [_sample(s, d, rng, positive) for s, d in specs]
    if case.endswith("_ties"):      # equal operands in every other column
        values[1][..., ::2] = values[0][..., ::2]
    g = Graph(f"grad_{case}")
    ins = [g.add_const(f"p{i}", v, kind=PARAMETER) if v.dtype == np.float32 else g.add_input(f"in{i}", v.shape, str(v.dtype))
           for i, v in enumerate(values)]
    g.outputs = [g.add_op(op, case, ins, attrs)]
    info = autograd.build_backward(g)
    equalize_ranks(g)
    g.toposort()
    prog, _ = lower_graph(g, "joint")
    gout = torch.from_numpy(_sample(g.outputs[0].shape, "float32", rng, False))
    feed = {n.name: torch.from_numpy(v) for n, v in zip(ins, values)}
    feed[info.grad_inputs[0].name] = gout
    got = DeviceProgram(prog).run([feed[n.name] for n in g.inputs])

    tensors = [torch.from_numpy(v).requires_grad_(v.dtype == np.float32) for v in values]
    op.golden(tensors, attrs).backward(gout)
    got_grads = dict(zip(info.grad_params, got[1:]))
    for n, t in zip(ins, tensors):
        if t.requires_grad:
            want = t.grad if t.grad is not None else torch.zeros_like(t)
            have = got_grads.get(n.name, torch.zeros_like(t))
            torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-5, msg=f"{case}: d/d{n.name}")


def test_every_trainable_op_family_has_a_backward_rule():
    """Ops whose outputs are floats and which models train through carry a rule; the ones
    without are listed here on purpose (boolean results, integer-only, or not yet differentiable)."""
    without = {n for n, o in OPS.items() if o.backward is None}
    assert without == {"equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
                       "logical_or", "logical_not", "bitwise_and",          # boolean results
                       "batch_norm",                                       # always decomposed first
                       "prod", "repeat",                                   # not differentiable yet
                       "conv2d_input_grad", "conv2d_weight_grad", "max_pool2d_grad", "embedding_grad",
                       "index_copy",                                       # KV-cache writes (generation)
                       # multi-chip ops, inserted by the sharding pass into forward programs (training on a
                       # mesh is refused)
                       "mesh_shard", "all_reduce", "all_gather", "reduce_scatter", "mesh_partition"}, \
        sorted(without)


# ---- whole models: gradients per parameter ------------------------------------------

@pytest.mark.parametrize("make, shape, classes", [
    (MLP, (8, 16), 5),
    (CNN, (4, 3, 16, 16), 5),          # conv, max pool, batch norm on batch statistics, global mean
    (TransformerBlock, (2, 8), 50),    # embedding, layer norm, softmax attention, gelu
], ids=["mlp", "cnn", "transformer"])
def test_gradients_match_torch_autograd(make, shape, classes):
    torch.manual_seed(0)
    model = make()
    ref = copy.deepcopy(model).train()
    if make is TransformerBlock:
        x = torch.randint(0, classes, shape)
        y = torch.randint(0, classes, shape)
        loss_fn = lambda out, t: F.cross_entropy(out.reshape(-1, classes), t.reshape(-1))  # noqa: E731
    else:
        x, y = _batches(shape, classes, 1, seed=1)[0]
        loss_fn = F.cross_entropy
    cm = forge_fe.compile(model, [x], training=True)
    out = cm(x)
    want_out = ref(x)
    torch.testing.assert_close(out, want_out, rtol=1e-4, atol=1e-5)   # train-mode forward (batch statistics)
    loss_fn(out, y).backward()
    loss_fn(want_out, y).backward()
    assert_grads_match(cm, ref)


@pytest.mark.parametrize("name", ["resnet_tiny", "vit_tiny", "convnext_tiny", "unet_tiny"])
def test_zoo_model_gradients_match_torch(name):
    """Residual ResNet with batch norm; HF ViT (attention, layer norm, gelu, the CLS-token select);
    HF ConvNeXt (depthwise convs, channels-last layer norm); UNet (transposed convs, skip concats)."""
    from forge_fe import zoo
    model, inputs = getattr(zoo, name)()
    ref = copy.deepcopy(model).train()
    cm = forge_fe.compile(model, inputs, training=True)
    first = lambda o: o if isinstance(o, torch.Tensor) else next(iter(o.values() if isinstance(o, dict) else o))  # noqa: E731
    out, want = first(cm(*inputs)), first(ref(*inputs))
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(want)
    (out * g).sum().backward()
    (want * g).sum().backward()
    assert_grads_match(cm, ref)


@pytest.mark.parametrize("make, shape", [(MLP, (8, 16)), (CNN, (2, 3, 16, 16))], ids=["mlp", "cnn"])
def test_gradients_flow_back_into_torch(make, shape):
    """A torch layer feeding the compiled model gets its gradients through the input gradient."""
    torch.manual_seed(0)
    model, pre = make(), nn.Linear(shape[-1], shape[-1])
    ref, ref_pre = copy.deepcopy(model).train(), copy.deepcopy(pre)
    x = torch.randn(*shape)
    cm = forge_fe.compile(model, [x], training=True)
    cm(pre(x)).square().sum().backward()
    ref(ref_pre(x)).square().sum().backward()
    torch.testing.assert_close(pre.weight.grad, ref_pre.weight.grad, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(pre.bias.grad, ref_pre.bias.grad, rtol=1e-3, atol=1e-4)


def test_input_gradient_that_cannot_be_computed_is_refused():
    class RepeatFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x.repeat(1, 2))   # repeat has no backward rule; fc still trains

    cm = forge_fe.compile(RepeatFirst(), [torch.ones(4, 2)], training=True)
    cm(torch.ones(4, 2)).sum().backward()                     # parameters train without input gradients
    assert all(p.grad is not None for p in cm.parameters())
    with pytest.raises(ForgeError, match=r"input 'x' requires a gradient, but an op .* has no backward rule"):
        cm(torch.ones(4, 2, requires_grad=True))


# ---- optimizer steps on the device --------------------------------------------------

OPTIMIZERS = {
    "sgd": (lambda: forge_fe.optim.SGD(learning_rate=0.05, momentum=0.9, weight_decay=1e-4),
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-4)),
    "adam": (lambda: forge_fe.optim.Adam(learning_rate=1e-2),
             lambda ps: torch.optim.Adam(ps, lr=1e-2)),
}


def _train(cm, opt, batches, loss_fn=F.cross_entropy):
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(cm(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("make, shape", [(MLP, (16, 16)), (CNN, (8, 3, 16, 16))], ids=["mlp", "cnn"])
def test_fifty_steps_match_torch(make, shape, opt_name):
    torch.manual_seed(0)
    model = make()
    ref = copy.deepcopy(model).train()
    mk, mk_torch = OPTIMIZERS[opt_name]
    opt = mk()
    cm = forge_fe.compile(model, [torch.zeros(shape)], training=True, optimizer=opt)
    batches = _batches(shape, 5, 50, seed=2)
    got = _train(cm, opt, batches)
    want = _train(ref, mk_torch(ref.parameters()), batches)
    rel = np.abs(np.array(got) - np.array(want)) / np.abs(np.array(want))
    assert rel.max() < 1e-3, (rel.argmax(), got[rel.argmax()], want[rel.argmax()])
    assert np.mean(want[-10:]) < np.mean(want[:10])          # the run actually trained
    for name, p in cm.state_dict().items():                  # and the weights followed torch's
        if name == "conv1.bias":   # feeds batch norm: its exact gradient is 0, Adam normalizes round-off noise
            continue
        torch.testing.assert_close(p, dict(ref.named_parameters())[name].detach(), rtol=1e-3, atol=1e-4)


def test_adamw_matches_torch():
    torch.manual_seed(0)
    model = MLP()
    ref = copy.deepcopy(model)
    opt = forge_fe.optim.AdamW(learning_rate=1e-2, weight_decay=0.1)
    cm = forge_fe.compile(model, [torch.zeros(16, 16)], training=True, optimizer=opt)
    batches = _batches((16, 16), 5, 10, seed=3)
    got = _train(cm, opt, batches)
    want = _train(ref, torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1), batches)
    np.testing.assert_allclose(got, want, rtol=1e-3)


@pytest.mark.parametrize("kwargs", [
    dict(kind="SGD", momentum=0.9, nesterov=True),
    dict(kind="SGD", momentum=0.5, dampening=0.3),
    dict(kind="Adam", betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
], ids=["sgd-nesterov", "sgd-dampening", "adam-l2"])
def test_optimizer_options_match_torch(kwargs):
    kwargs = dict(kwargs)
    kind = kwargs.pop("kind")
    torch.manual_seed(0)
    model = MLP()
    ref = copy.deepcopy(model)
    opt = getattr(forge_fe.optim, kind)(learning_rate=0.05, **kwargs)
    cm = forge_fe.compile(model, [torch.zeros(16, 16)], training=True, optimizer=opt)
    batches = _batches((16, 16), 5, 6, seed=6)
    got = _train(cm, opt, batches)
    want = _train(ref, getattr(torch.optim, kind)(ref.parameters(), lr=0.05, **kwargs), batches)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    for name, p in cm.state_dict().items():
        torch.testing.assert_close(p, dict(ref.named_parameters())[name].detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make, shape", [(MLP, (16, 16)), (CNN, (4, 3, 16, 16))], ids=["mlp", "cnn"])
def test_bfloat16_training_lowers_the_loss(make, shape):
    torch.manual_seed(0)
    opt = forge_fe.optim.Adam(learning_rate=1e-2)
    cfg = forge_fe.CompilerConfig(default_df_override=forge_fe.DataFormat.Float16_b)
    cm = forge_fe.compile(make(), [torch.zeros(shape)], training=True, optimizer=opt, compiler_cfg=cfg)
    assert "bf16" in cm.ttir
    x, y = _batches(shape, 5, 1, seed=4)[0]
    losses = _train(cm, opt, [(x, y)] * 30)
    assert losses[-1] < 0.5 * losses[0], losses


# ---- the binary, the runtime API and the errors ------------------------------------

@pytest.fixture(scope="module")
def trained_mlp():
    torch.manual_seed(0)
    model = MLP()
    opt = forge_fe.optim.SGD(learning_rate=0.1)
    cm = forge_fe.compile(model, [torch.zeros(8, 16)], training=True, optimizer=opt)
    return model, cm, opt


def test_binary_holds_forward_backward_and_optimizer_programs(trained_mlp, tmp_path):
    from forge_fe.tools import cli
    model, cm, opt = trained_mlp
    names = [p.name for p in cm.binary.programs]
    assert [n.split("_", 2)[-1] for n in names] == ["forward", "backward", "optimizer"]
    for n in names:
        assert f"func.func @{n}(" in cm.ttir
    # trainable parameters are program inputs (never folded by const-eval), tagged as parameters
    assert "#ttcore.argument_type<parameter>" in cm.ttir
    assert not any(p.private for p in cm.binary.programs)
    path = tmp_path / "mlp.ttb"
    cm.save(str(path))
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cli.main(["read", str(path), "--section", "programs"])
    for n in names:
        assert n in buf.getvalue()
    # a loaded training binary runs forward, backward and (with the same optimizer attached) its updates
    x = torch.randn(8, 16)
    loaded = forge_fe.load(str(path))
    loaded.load_state_dict(cm.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), cm(x))
    with pytest.raises(ForgeError, match="no optimizer program for"):
        forge_fe.optim.Adam(learning_rate=0.1).attach(loaded)
    opt2 = forge_fe.optim.SGD(learning_rate=0.5)          # a new learning rate is a run-time scalar
    opt2.attach(loaded)
    loaded(x).sum().backward()
    before = loaded.state_dict()
    opt2.step()
    for n, p in loaded.named_parameters():
        torch.testing.assert_close(p.detach(), before[n] - 0.5 * p.grad)


@pytest.mark.parametrize("make, shape", [(CNN, (2, 3, 16, 16)), (TransformerBlock, (2, 8))], ids=["cnn", "transformer"])
def test_training_ttir_parses_and_matches_the_programs(make, shape):
    """The three programs' TTIR (with conv_transpose2d, max_pool2d_grad, embedding_backward) is valid
    MLIR, and lists the ops the runtime executes."""
    from test_ttir import ops_of, parse
    torch.manual_seed(0)
    x = torch.randint(0, 50, shape) if make is TransformerBlock else torch.randn(*shape)
    cm = forge_fe.compile(make(), [x], training=True, optimizer=forge_fe.optim.Adam(learning_rate=1e-3))
    by_func = {}
    for func, op in ops_of(parse(cm.ttir)):
        if op.name != "func.return":
            by_func.setdefault(func.name.value, []).append(op.name)
    assert {p.name: [o.name for o in p.ops] for p in cm.binary.programs} == by_func
    grad_ops = {"ttir.conv_transpose2d", "ttir.max_pool2d_grad"} if make is CNN else {"ttir.embedding_backward"}
    assert grad_ops <= set(by_func["device_0_backward"])


def test_state_dict_round_trip_and_torch_names(trained_mlp):
    model, cm, opt = trained_mlp
    fresh = MLP()
    assert set(cm.state_dict()) == set(dict(fresh.named_parameters()))
    cm.load_state_dict(fresh.state_dict())
    x = torch.randn(8, 16)
    with torch.no_grad():
        torch.testing.assert_close(cm(x), fresh(x), rtol=1e-5, atol=1e-6)
    # one SGD step by the optimizer program moves every weight by -lr * grad, as torch does
    before = cm.state_dict()
    opt.zero_grad()
    cm(x).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in cm.named_parameters()}
    opt.step()
    for n, p in cm.state_dict().items():
        torch.testing.assert_close(p, before[n] - 0.1 * grads[n])
    with pytest.raises(ForgeError, match=r"'fc1.weight' has shape \[2, 2\]"):
        cm.load_state_dict({**cm.state_dict(), "fc1.weight": torch.zeros(2, 2)})
    with pytest.raises(ForgeError, match="missing parameters"):
        cm.load_state_dict({"fc1.weight": torch.zeros(32, 16)})


def test_consteval_never_folds_trainable_parameters():
    from forge_fe.passes.consteval import split_consteval
    g = Graph("g")
    x = g.add_input("x", (2, 3), "float32")
    w = g.add_const("w", np.ones((3, 3), np.float32), kind=PARAMETER)
    c = g.add_const("c", np.ones((3, 3), np.float32))
    wt = g.add_op(OPS["permute"], "wt", [w], {"perm": [1, 0]})          # reads a parameter: stays
    ct = g.add_op(OPS["permute"], "ct", [c], {"perm": [1, 0]})          # frozen constant: folds
    g.outputs = [g.add_op(OPS["matmul"], "y", [g.add_op(OPS["matmul"], "xw", [x, wt], {}), ct], {})]
    ce = split_consteval(g, frozen_only=True)
    assert [o.name for o in ce.outputs] == ["ct"]
    assert wt in g.nodes and w in g.nodes


def test_frozen_parameters_are_not_trained():
    torch.manual_seed(0)
    model = MLP()
    model.fc1.requires_grad_(False)                 # fine-tuning: the first layer is frozen
    ref = copy.deepcopy(model)
    opt = forge_fe.optim.SGD(learning_rate=0.1)
    cm = forge_fe.compile(model, [torch.zeros(8, 16)], training=True, optimizer=opt)
    assert set(cm.state_dict()) == {"fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}
    batches = _batches((8, 16), 5, 3, seed=5)
    got = _train(cm, opt, batches)
    want = _train(ref, torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.1), batches)
    np.testing.assert_allclose(got, want, rtol=1e-4)      # the frozen layer stayed put on both sides


def test_non_pytorch_models_are_refused_for_training():
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ForgeError, match=r"\[forge_fe:autograd\] training supports PyTorch models; this is a onnx"):
        forge_fe.compile(model, [np.ones((3, 4), np.float32)], training=True)


def test_op_without_backward_rule_is_named(monkeypatch):
    monkeypatch.setattr(OPS["tanh"], "backward", None)
    with pytest.raises(ForgeError, match=r"\[forge_fe:autograd\] ops without a backward rule: tanh \(node"):
        forge_fe.compile(MLP(), [torch.zeros(8, 16)], training=True)


def test_strided_slice_backward_is_refused_clearly():
    class Strided(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(x)[:, ::2]

    with pytest.raises(ForgeError, match=r"\[forge_fe:autograd\] backward rule of op 'slice' failed .*step > 1"):
        forge_fe.compile(Strided(), [torch.zeros(2, 8)], training=True)


def test_model_without_parameters_is_refused():
    class Scale(nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    with pytest.raises(ForgeError, match=r"\[forge_fe:autograd\] .*no trainable parameters"):
        forge_fe.compile(Scale(), [torch.zeros(2, 3)], training=True)


def test_cpu_fallback_in_training_is_refused():
    with pytest.raises(ForgeError, match=r"\[forge_fe:autograd\] training needs the whole model on the device.*relu"):
        forge_fe.compile(MLP(), [torch.zeros(8, 16)], training=True,
                         compiler_cfg=forge_fe.CompilerConfig(cpu_fallback_ops={"relu"}))


def test_optimizer_misuse_is_explained():
    with pytest.raises(ForgeError, match="not attached to a compiled model"):
        forge_fe.optim.SGD(learning_rate=0.1).step()
    with pytest.raises(ForgeError, match="positive learning_rate"):
        forge_fe.optim.Adam()
    with pytest.raises(ForgeError, match=r"optimizer= needs training=True"):
        forge_fe.compile(MLP(), [torch.zeros(8, 16)], optimizer=forge_fe.optim.SGD(learning_rate=0.1))


def test_docs_training_example_runs(capsys):
    """docs/training.md's example runs as written and prints the lines the doc quotes."""
    import pathlib
    import re
    doc = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "training.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", doc, re.S)
    code, quoted = blocks[0][1], blocks[1][1]
    exec(compile(code, "docs/training.md", "exec"), {"__name__": "docs_training"})
    printed = {line.strip() for line in capsys.readouterr().out.splitlines()}
    missing = [line.strip() for line in quoted.splitlines() if line.strip() and line.strip() not in printed]
    assert not missing, missing
