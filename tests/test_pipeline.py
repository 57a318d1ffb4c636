"""The spine end to end on small PyTorch models: stages, dumps, fallback, errors, binary, generated module."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import forge_fe
from forge_fe import CompileDepth, CompilerConfig
from forge_fe.errors import BinaryFormatError, CompileStopped, ForgeError, FrontendError, InputError, VerificationError
from forge_fe.compiler.pipeline import STAGES
from forge_fe import zoo


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)
        self.bn.running_mean.normal_()
        self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = nn.functional.max_pool2d(y, 2).mean((2, 3))
        return torch.softmax(self.fc(y), -1)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return SmallCNN().eval(), [torch.randn(2, 3, 16, 16)]


@pytest.fixture(scope="module")
def compiled_cnn(cnn, tmp_path_factory):
    dump = tmp_path_factory.mktemp("dump")
    model, ins = cnn
    return forge_fe.compile(model, ins, compiler_cfg=CompilerConfig(dump_dir=str(dump))), dump


def test_torch_in_torch_out_and_matches_framework(cnn, compiled_cnn):
    model, ins = cnn
    cm, _ = compiled_cnn
    out = cm(*ins)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)
    checks = forge_fe.verify(ins, model, cm, pcc_min=0.999)
    assert checks[0].pcc >= 0.999 and checks[0].allclose


def test_numpy_inputs_give_numpy_outputs_for_onnx_style_call(cnn, compiled_cnn):
    model, ins = cnn
    cm, _ = compiled_cnn
    # torch models return torch even for numpy inputs (the framework's tensor type).
    assert isinstance(cm(ins[0].numpy()), torch.Tensor)


def test_every_stage_dumps_its_artifact(compiled_cnn):
    cm, dump = compiled_cnn
    files = set(os.listdir(dump))
    for name in ["01_relax_imported.py", "02_relax_passes.py", "03_partition.py", "03_placement.txt",
                 "05_initial_graph.txt", "06_post_initial_graph.txt", "07_consteval.txt", "10_pre_lowering.txt",
                 "11_graph_split.txt", "12_ttir.mlir", "13_model.ttb",
                 "SmallCNN_forge_module.py", "SmallCNN_forge_module.safetensors"]:
        assert name in files, name
    placement = (dump / "03_placement.txt").read_text()
    assert "relax.nn.conv2d" in placement and "device" in placement
    # batch norm folded into the conv: the forward TTIR has no batch-norm arithmetic left
    ttir = (dump / "12_ttir.mlir").read_text()
    forward = ttir[ttir.index("@device_0_forward"):]
    assert '"ttir.conv2d"' in forward and '"ttir.rsqrt"' not in forward and '"ttir.rsqrt"' in ttir


@pytest.mark.parametrize("depth,name", [(d, n) for d, n, _ in STAGES])
def test_compile_depth_stops_after_each_stage(cnn, depth, name):
    model, ins = cnn
    cm = forge_fe.compile(model, ins, compiler_cfg=CompilerConfig(compile_depth=depth))
    assert cm.report.stopped_after == name
    assert list(cm.report.timings) == [n for d, n, _ in STAGES if d <= depth]
    if depth == CompileDepth.BINARY:     # the last stage: the binary exists and runs
        assert cm(*ins).shape == (2, 5)
    else:
        with pytest.raises(CompileStopped, match=name):
            cm(*ins)


def test_cpu_fallback_in_the_middle_of_a_transformer_layer():
    model, ins = zoo.bert_tiny()
    cm = forge_fe.compile(model, ins, compiler_cfg=CompilerConfig(cpu_fallback_ops={"softmax"}))
    cpu_rows = [r for r in cm.report.placement if r["where"] == "cpu" and r["op"] == "relax.nn.softmax"]
    assert len(cpu_rows) == 2 and all("forced" in r["reason"] for r in cpu_rows)   # one per layer
    kinds = [s.split(":")[0] for s in cm.report.segments]
    assert kinds.count("cpu") >= 2 and kinds.count("device") >= 3
    forge_fe.verify(ins, model, cm, pcc_min=0.999)


def test_placement_report_lists_every_op_with_a_reason(compiled_cnn):
    cm, _ = compiled_cnn
    assert cm.report.placement, "empty placement report"
    for row in cm.report.placement:
        assert row["where"] in ("device", "cpu") and row["reason"] and row["op"].startswith("relax.")


def test_nested_output_structure_is_kept():
    class Nested(nn.Module):
        def forward(self, x):
            return {"sum": x.sum(-1), "pair": (x * 2, torch.relu(x))}

    x = torch.randn(3, 4)
    out = forge_fe.compile(Nested(), [x])(x)
    assert set(out) == {"sum", "pair"} and isinstance(out["pair"], tuple)
    torch.testing.assert_close(out["pair"][1], torch.relu(x))
    torch.testing.assert_close(out["sum"], x.sum(-1))


def test_wrong_inputs_at_call_time_are_named(compiled_cnn):
    cm, _ = compiled_cnn
    with pytest.raises(InputError, match=r"input 0 \('x'\) has shape \[1, 3, 16, 16\]"):
        cm(torch.randn(1, 3, 16, 16))
    with pytest.raises(InputError, match="dtype float64"):
        cm(torch.randn(2, 3, 16, 16, dtype=torch.float64))
    with pytest.raises(InputError, match="takes 1 inputs"):
        cm(torch.randn(2, 3, 16, 16), torch.randn(1))


def test_unsupported_model_object():
    with pytest.raises(FrontendError, match=r"\[forge_fe:import\] unsupported model object of type builtins.dict"):
        forge_fe.compile({"not": "a model"}, [np.zeros(3)])


def test_model_that_fails_on_its_sample_inputs():
    with pytest.raises(FrontendError, match="failed on its sample inputs"):
        forge_fe.compile(nn.Linear(4, 2), [torch.randn(3, 5)])


def test_verify_names_the_worst_output(cnn, compiled_cnn):
    model, ins = cnn
    cm, _ = compiled_cnn
    other = SmallCNN().eval()      # different random weights: a wrong result
    with pytest.raises(VerificationError, match=r"output 0 \(shape \[2, 5\]\).*PCC"):
        forge_fe.verify(ins, other, cm)


def test_binary_round_trip_in_a_fresh_process(cnn, compiled_cnn, tmp_path):
    model, ins = cnn
    cm, _ = compiled_cnn
    path = tmp_path / "cnn.ttb"
    cm.save(str(path))
    np.savez(tmp_path / "in.npz", x=ins[0].numpy())
    script = (
        "import sys, numpy as np, forge_fe\n"
        "cm = forge_fe.load(sys.argv[1])\n"
        "x = np.load(sys.argv[2])['x']\n"
        "np.save(sys.argv[3], np.asarray(cm(x)))\n")
    subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "in.npz"), str(tmp_path / "out.npy")],
                   check=True, timeout=300)
    got = np.load(tmp_path / "out.npy")
    with torch.no_grad():
        want = model(*ins).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_loaded_binary_keeps_the_placement_report(compiled_cnn, tmp_path):
    cm, _ = compiled_cnn
    cm.save(str(tmp_path / "m.ttb"))
    loaded = forge_fe.load(str(tmp_path / "m.ttb"))
    assert loaded.report.placement == cm.report.placement


def test_corrupt_binary_is_refused(compiled_cnn, tmp_path):
    cm, _ = compiled_cnn
    path = tmp_path / "m.ttb"
    cm.save(str(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BinaryFormatError, match="corrupt|checksum"):
        forge_fe.load(str(path))
    path.write_bytes(b"not a binary at all, just some text padding it out")
    with pytest.raises(BinaryFormatError):
        forge_fe.load(str(path))


def test_generated_module_runs_standalone_and_recompiles(cnn, compiled_cnn):
    model, ins = cnn
    cm, dump = compiled_cnn
    py = dump / "SmallCNN_forge_module.py"
    run = subprocess.run([sys.executable, str(py)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "output 0: shape (2, 5)" in run.stdout
    # Import the file, load its weights, and reproduce the framework's output eagerly.
    import importlib.util
    spec = importlib.util.spec_from_file_location("gen_smallcnn", py)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    (module,) = gen.load_all()
    with torch.no_grad():
        want = model(*ins)
    torch.testing.assert_close(module(*ins), want, rtol=1e-5, atol=1e-6)
    # ... and compile the generated module again with forge_fe.
    cm2 = forge_fe.compile(module, ins)
    torch.testing.assert_close(cm2(*ins), want, rtol=1e-5, atol=1e-6)


def test_generated_names_trace_to_the_torch_model(compiled_cnn):
    cm, dump = compiled_cnn
    src = (dump / "SmallCNN_forge_module.py").read_text()
    assert 'op.conv2d("conv_conv2d"' in src and 'self.get_parameter("conv.weight")' in src
    assert 'self.get_parameter("fc.weight")' in src
    assert 'loc("conv_conv2d' in (dump / "12_ttir.mlir").read_text()


def test_malformed_onnx_is_a_frontend_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.graph.node[0].input[0] = "missing"          # dangling edge: the checker rejects it
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(FrontendError, match=r"\[forge_fe:import\]"):
        forge_fe.compile(str(path), [np.zeros(2, np.float32)])
    with pytest.raises(FrontendError, match="does not exist"):
        forge_fe.compile(str(tmp_path / "nope.onnx"), [np.zeros(2, np.float32)])


def test_ops_neither_side_can_run_are_all_reported(cnn, monkeypatch):
    """If the host could not run an op either, compile stops at partition listing every such op."""
    from tvm_ext import partition
    monkeypatch.setattr(partition, "_cpu_can_run", lambda call: False)
    model, ins = cnn
    with pytest.raises(ForgeError, match=r"\[forge_fe:partition\] ops that neither the device nor the CPU") as err:
        forge_fe.compile(model, ins, compiler_cfg=CompilerConfig(cpu_fallback_ops={"softmax", "relu"}))
    assert "relax.nn.softmax" in str(err.value) and "relax.nn.relu" in str(err.value)


def test_max_pool_indices_are_refused_not_silently_zero():
    """TVM's importer turns max_pool2d's indices into zeros: forge_fe must refuse, not return them."""
    class PoolWithIndices(nn.Module):
        def forward(self, x):
            values, indices = nn.functional.max_pool2d(x, 2, return_indices=True)
            return values * 2, indices

    with pytest.raises(FrontendError, match="indices of max_pool2d"):
        forge_fe.compile(PoolWithIndices(), [torch.randn(1, 2, 8, 8)])


def test_second_output_of_a_multi_output_op_moves_it_to_the_cpu():
    """batch_norm on the device yields only its result; reading its mean output puts it on the CPU,
    together with the tuple plumbing that reads it."""
    from tvm import relax
    from tvm_ext.partition import partition
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 3, 4, 4), "float32"))
    stats = [relax.Var(n, relax.TensorType((3,), "float32")) for n in ("g", "b", "m", "v")]
    with bb.function("main", [x] + stats):
        with bb.dataflow():
            bn = bb.emit(relax.op.nn.batch_norm(x, *stats, axis=1, training=False))
            y = bb.emit(relax.TupleGetItem(bn, 0))
            mean = bb.emit(relax.TupleGetItem(bn, 1))
            out = bb.emit_output(relax.Tuple([bb.emit(relax.op.nn.relu(y)), mean]))
        bb.emit_func_output(out)
    part = partition(bb.get(), set())
    rows = {r.op: r for r in part.placements}
    assert rows["relax.nn.batch_norm"].where == "cpu" and "output 1" in rows["relax.nn.batch_norm"].reason
    assert [s.kind for s in part.segments] == ["cpu", "device"]     # relu stays on the device


def test_cumsum_of_a_mask_counts_in_int64_and_chunk_stays_on_the_device():
    """torch sums bool/integer tensors in int64 (TVM's importer kept bool, which does not build);
    torch.chunk becomes device slices instead of a CPU split."""
    class MaskedChunks(nn.Module):
        def forward(self, x):
            a, b = x.chunk(2, dim=-1)
            positions = (x > 0).cumsum(-1)          # int64 0..8 on a data-dependent mask
            return a * b, positions

    x = torch.randn(3, 8)
    model = MaskedChunks()
    cm = forge_fe.compile(model, [x])
    product, positions = cm(x)
    assert positions.dtype == torch.int64 and torch.equal(positions, (x > 0).cumsum(-1))
    forge_fe.verify([x], model, cm)
    placement = {r["op"]: r["where"] for r in cm.report.placement}
    assert "relax.split" not in placement and placement["relax.strided_slice"] == "device"


def test_advanced_indexing_with_negative_run_time_indices():
    """x[rows, cols] with model-input indices (CPU: TVM's index_tensor) counts negative indices from
    the end, as torch does (TVM's kernel alone reads out of bounds)."""
    class Pick(nn.Module):
        def forward(self, x, rows, cols):
            return x[rows, cols] * 2

    x, rows, cols = torch.randn(5, 3), torch.tensor([-1, 0, -5, 2]), torch.tensor([0, -1, 2, -3])
    cm = forge_fe.compile(Pick(), [x, rows, cols])
    assert any(r["op"] == "relax.index_tensor" for r in cm.report.placement)
    forge_fe.verify([x, rows, cols], Pick(), cm)


def test_bfloat16_values_cross_into_cpu_segments():
    """A bfloat16 tensor handed to a TVM CPU segment (numpy has no bf16: it goes through ml_dtypes)."""
    class Bf16(nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    x = torch.randn(4, 8).to(torch.bfloat16)
    cm = forge_fe.compile(Bf16(), [x], compiler_cfg=CompilerConfig(cpu_fallback_ops={"relu"}))
    assert {r["where"] for r in cm.report.placement if r["op"] == "relax.nn.relu"} == {"cpu"}
    out = cm(x)
    assert out.dtype == torch.bfloat16 and torch.equal(out, Bf16()(x))


def test_value_dependent_output_shapes_run_on_the_cpu(tmp_path):
    """ONNX Compress (nonzero + take): its output length depends on the condition's values, so it
    runs on the CPU while the static part stays on the device; each call gets its own length."""
    import onnx
    from onnx import TensorProto as T, helper as oh
    nodes = [oh.make_node("Relu", ["x"], ["r"]), oh.make_node("Compress", ["r", "keep"], ["y"], axis=0)]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", T.FLOAT, [4, 3]),
                                       oh.make_tensor_value_info("keep", T.BOOL, [4])],
                          [oh.make_tensor_value_info("y", T.FLOAT, ["n", 3])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 11)])
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    cm = forge_fe.compile(model, [x, np.array([1, 0, 1, 1], bool)])
    where = {r["op"]: r["where"] for r in cm.report.placement}
    assert where["relax.nn.relu"] == "device" and where["relax.nonzero"] == "cpu"
    cm.save(str(tmp_path / "c.ttb"))
    loaded = forge_fe.load(str(tmp_path / "c.ttb"))
    for keep in ([1, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]):
        keep = np.array(keep, bool)
        np.testing.assert_array_equal(loaded(x, keep), np.maximum(x, 0)[keep])
