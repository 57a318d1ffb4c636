"""The forge-fe command line: every subcommand, its outputs checked against the framework, and its
exit codes for bad input (0 ok, 2 bad input, 3 compile failure, 6 matrix failures)."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import forge_fe
from forge_fe import zoo
from forge_fe.compiler.pipeline import STAGES
from forge_fe.tools import cli, matrix

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}

SMALL_NETS = '''
import torch
import torch.nn as nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x, scale):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3))) * scale


class PoolIndices(nn.Module):
    def forward(self, x):
        values, indices = nn.functional.max_pool2d(x, 2, return_indices=True)
        return values + indices.float()
'''


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(SMALL_NETS)
    return str(path)


def test_demo_writes_a_binary_that_read_and_run_understand(tmp_path, capsys):
    out = tmp_path / "m.ttb"
    assert cli.main(["--quiet", "demo", "--model", "resnet_tiny", "--iters", "1", "--df", "Float16_b",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PCC" in printed and "estimated device latency" in printed
    assert cli.main(["read", str(out), "--section", "perf", "--json"]) == 0
    perf = json.loads(capsys.readouterr().out)
    assert perf["estimated_latency_s"] > 0 and perf["ops"]
    assert cli.main(["read", str(out), "--section", "placement", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["where"] == "device"
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32))
    assert cli.main(["run", str(out), "--inputs", str(tmp_path / "x.npz"), "--output", str(tmp_path / "y.npz")]) == 0
    assert np.load(tmp_path / "y.npz")["output0"].shape == (1, 10)


def test_compile_builder_then_run_matches_torch(tmp_path, capsys):
    """module:attr builder -> binary + the sample inputs; `run` reproduces torch's outputs."""
    ttb, xs, ys = (str(tmp_path / n) for n in ("b.ttb", "x.npz", "y.npz"))
    assert cli.main(["compile", "forge_fe.zoo:bert_tiny", "-o", ttb, "--save-inputs", xs]) == 0
    out, err = capsys.readouterr()
    assert "binary written to" in out and f"{len(STAGES)}/{len(STAGES)} binary" in err          # per-stage progress on stderr
    assert cli.main(["--quiet", "run", ttb, "--inputs", xs, "--output", ys]) == 0
    model, _ = zoo.bert_tiny()
    feeds = np.load(xs)
    with torch.no_grad():
        want = model(*(torch.from_numpy(feeds[k]) for k in ("input_ids", "attention_mask")))
    got = np.load(ys)
    for i, w in enumerate(want):
        np.testing.assert_allclose(got[f"output{i}"], w.numpy(), rtol=1e-4, atol=1e-5)

    # every read section, as a table and as JSON
    for section in ("version", "system", "programs", "io", "ops", "placement", "perf"):
        assert cli.main(["read", ttb, "--section", section]) == 0
        table = capsys.readouterr().out
        assert cli.main(["read", ttb, "--section", section, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert table.strip() and data
    assert cli.main(["read", ttb, "--section", "io", "--json"]) == 0
    io = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in io["inputs"]] == ["input_ids", "attention_mask"]
    assert cli.main(["read", ttb, "--section", "mlir"]) == 0
    assert '"ttir.' in capsys.readouterr().out


def test_compile_object_with_shapes_flags_and_fallback(nets, tmp_path, capsys):
    """A model class from a .py file, inputs from --input-shape/--input-dtype, with --arch, --df and
    --cpu-fallback visible in the binary."""
    ttb = str(tmp_path / "s.ttb")
    args = ["--quiet", "compile", f"{nets}:Small", "-o", ttb, "--input-shape", "1x3x8x8", "--input-shape", "1x5",
            "--arch", "blackhole", "--df", "Float16_b", "--fidelity", "HiFi2", "--cpu-fallback", "relu", "--save-inputs",
            str(tmp_path / "x.npz")]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(["read", ttb, "--section", "placement", "--json"]) == 0
    where = {r["op"]: r["where"] for r in json.loads(capsys.readouterr().out)}
    assert where["relax.nn.relu"] == "cpu" and where["relax.nn.conv2d"] == "device"
    assert cli.main(["read", ttb, "--section", "system", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["system"]["arch"] == "blackhole"
    binary = forge_fe.load(ttb).binary
    assert binary.compute_config["math_fidelity"] == "HiFi2"
    forward = [p for p in binary.programs if not p.private][0]
    assert "Float16_b" in {t.data_format for t in forward.tensors}


KERAS_NET = """
import keras
keras.utils.set_random_seed(0)
inp = keras.Input((8,), name="features")
net = keras.Model(inp, keras.layers.Dense(4, activation="tanh")(keras.layers.Dense(16, activation="relu")(inp)))
"""


def test_compile_keras_object_and_saved_model_dir(tmp_path, capsys):
    """A functional Keras model declares its inputs (batch 1); its SavedModel compiles from the directory;
    `run` matches TensorFlow's own output of the SavedModel."""
    tf = pytest.importorskip("tensorflow")
    (tmp_path / "knets.py").write_text(KERAS_NET)
    assert cli.main(["--quiet", "compile", f"{tmp_path / 'knets.py'}:net", "-o", str(tmp_path / "k.ttb")]) == 0
    assert "binary written" in capsys.readouterr().out
    saved = str(tmp_path / "saved")
    sys.path.insert(0, str(tmp_path))
    try:
        import knets
        knets.net.export(saved, verbose=False)
    finally:
        sys.path.remove(str(tmp_path))
    ttb, xs, ys = (str(tmp_path / n) for n in ("s.ttb", "x.npz", "y.npz"))
    assert cli.main(["--quiet", "compile", saved, "-o", ttb, "--save-inputs", xs]) == 0
    assert cli.main(["--quiet", "run", ttb, "--inputs", xs, "--output", ys]) == 0
    x = np.load(xs)
    loaded = tf.saved_model.load(saved)
    want = loaded.serve(x[x.files[0]]).numpy()
    np.testing.assert_allclose(np.load(ys)["output0"], want, rtol=1e-5, atol=1e-6)
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert cli.main(["--quiet", "compile", str(tmp_path / "empty")]) == cli.EXIT_USAGE
    assert "without saved_model.pb" in capsys.readouterr().err


JAX_NET = """
import jax.numpy as jnp
import numpy as np

W = jnp.asarray(np.random.default_rng(0).standard_normal((8, 4)).astype("float32"))


def layer(x):
    return jnp.tanh(x @ W)
"""


def test_compile_jax_function_with_input_shape(tmp_path, capsys):
    """A JAX function from module:attr takes its input shape from --input-shape; `run` matches JAX."""
    pytest.importorskip("jax")
    (tmp_path / "jnets.py").write_text(JAX_NET)
    ttb, xs, ys = (str(tmp_path / n) for n in ("j.ttb", "x.npz", "y.npz"))
    assert cli.main(["--quiet", "compile", f"{tmp_path / 'jnets.py'}:layer", "--input-shape", "2x8", "-o", ttb,
                     "--save-inputs", xs]) == 0
    assert cli.main(["--quiet", "run", ttb, "--inputs", xs, "--output", ys]) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        import jnets
    finally:
        sys.path.remove(str(tmp_path))
    x = np.load(xs)
    np.testing.assert_allclose(np.load(ys)["output0"], np.asarray(jnets.layer(x[x.files[0]])), rtol=1e-5, atol=1e-6)


def test_onnx_symbolic_dims_need_shapes_and_compile_depth_stops(tmp_path, capsys):
    model, inputs = zoo.resnet_tiny()
    path = str(tmp_path / "r.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, tuple(inputs), path, input_names=["image"], dynamic_axes={"image": {0: "batch"}},
                          opset_version=17, dynamo=False)
    assert cli.main(["--quiet", "compile", path, "-o", str(tmp_path / "r.ttb")]) == cli.EXIT_USAGE
    assert "input 'image'" in capsys.readouterr().err
    dump = tmp_path / "dump"
    assert cli.main(["--quiet", "compile", path, "--input-shape", "image=2x3x32x32", "--compile-depth", "partition",
                     "--dump-dir", str(dump), "-o", str(tmp_path / "r.ttb")]) == 0
    assert "stopped after stage 'partition'" in capsys.readouterr().out
    assert (dump / "03_placement.txt").exists() and not (tmp_path / "r.ttb").exists()


@pytest.mark.parametrize("argv,code,message", [
    (["compile", "missing.onnx"], cli.EXIT_USAGE, "no such file"),
    (["compile", "not_a_model"], cli.EXIT_USAGE, "is not an .onnx file"),
    (["compile", "forge_fe.zoo:no_such_builder"], cli.EXIT_USAGE, "has no attribute 'no_such_builder'"),
    (["compile", "no_such_module_xyz:thing"], cli.EXIT_USAGE, "cannot import 'no_such_module_xyz'"),
    (["compile", "forge_fe.zoo:ResNet"], cli.EXIT_USAGE, "gives no sample inputs"),
    (["compile", "forge_fe.zoo:ResNet", "--input-shape", "1x3xQ"], cli.EXIT_USAGE, "is not a shape"),
    (["report", "--results", "{tmp}/empty"], cli.EXIT_USAGE, "no matrix records"),
    (["run", "{tmp}/none.ttb", "--inputs", "x.npz"], cli.EXIT_USAGE, "no such binary"),
    (["read", "{tmp}/none.ttb"], cli.EXIT_USAGE, "no such binary"),
])
def test_bad_input_exit_codes(argv, code, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(["--quiet"] + argv) == code
    err = capsys.readouterr().err
    assert err.startswith("[forge_fe:cli]") and message in err


def test_compile_failure_names_the_stage(nets, capsys):
    assert cli.main(["--quiet", "compile", f"{nets}:PoolIndices", "--input-shape", "1x2x4x4"]) == cli.EXIT_COMPILE
    err = capsys.readouterr().err
    assert "[forge_fe:import]" in err and "max_pool2d" in err


def test_run_rejects_wrong_inputs(tmp_path, capsys):
    ttb = str(tmp_path / "r.ttb")
    assert cli.main(["--quiet", "compile", "forge_fe.zoo:resnet_tiny", "-o", ttb]) == 0
    np.savez(tmp_path / "small.npz", x=np.zeros((1, 3, 16, 16), np.float32))
    capsys.readouterr()
    assert cli.main(["run", ttb, "--inputs", str(tmp_path / "small.npz")]) == cli.EXIT_USAGE
    assert "[forge_fe:runtime] input 0 ('x') has shape [1, 3, 16, 16]" in capsys.readouterr().err
    assert cli.main(["run", ttb, "--inputs", str(tmp_path / "none.npz")]) == cli.EXIT_USAGE
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    assert cli.main(["run", ttb, "--inputs", str(tmp_path / "two.npz")]) == cli.EXIT_USAGE
    assert "the binary takes 1 inputs ['x']" in capsys.readouterr().err


def test_bad_binary_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.ttb"
    bad.write_bytes(b"garbage" * 10)
    assert cli.main(["read", str(bad)]) == cli.EXIT_USAGE
    assert "[forge_fe:binary]" in capsys.readouterr().err


def _record(model, status, **kw):
    base = dict(model=model, framework="pytorch", kind="CNN", size="push", data_format="Float32", status=status,
                stage_reached="verify", pcc=[0.9999], compile_s=1.5, op_count=40, device_ops=38, cpu_ops=2,
                device_share=0.95, segments=3, est_latency_s=2e-5, timestamp="2026-01-01 00:00 UTC")
    base.update(kw)
    return matrix.ModelRecord(**base)


def test_report_writes_markdown_html_and_plots(tmp_path, capsys):
    results = tmp_path / "records"
    matrix.write_record(_record("net_a", "pass"), str(results))
    matrix.write_record(_record("net_a", "pass", data_format="Float16_b", pcc=[0.998]), str(results))
    matrix.write_record(_record("net_b", "xfail", stage_reached="relax_passes", failing_stage="partition",
                                failure_class="partition", error="[forge_fe:partition] cumsum", pcc=[],
                                compile_s=None, op_count=None, device_share=None), str(results))
    md, page = tmp_path / "m.md", tmp_path / "m.html"
    assert cli.main(["report", "--results", str(results), "--md", str(md), "--html", str(page)]) == 0
    text = md.read_text()
    row_a = next(line for line in text.splitlines() if line.startswith("| net_a |"))
    assert "| pass |" in row_a and "0.99990" in row_a and "95.0" in row_a
    row_b = next(line for line in text.splitlines() if line.startswith("| net_b |"))
    assert "expected failure" in row_b and "partition" in row_b
    assert "| net_a | pytorch | 0.99990 | 0.99800 | - |" in text          # PCC by data format
    html = page.read_text()
    assert html.count("<svg") == 4 and "net_a" in html
    assert sorted(os.listdir(tmp_path / "m_plots")) == ["compile_time_vs_ops.svg", "device_share.svg",
                                                        "latency_by_arch.svg", "pcc_by_format.svg"]
    matrix.write_record(_record("net_c", "fail", failing_stage="verify", failure_class="wrong result",
                                error="wrong result: output 0 PCC 0.5 < 0.99"), str(results))
    assert cli.main(["report", "--results", str(results), "--md", str(md), "--html", str(page)]) == cli.EXIT_MATRIX
    assert "FAIL: net_c" in capsys.readouterr().out


def test_report_run_executes_the_matrix(tmp_path):
    """`forge-fe report --run push -k ...` runs the selected matrix tests and reports their records."""
    md = tmp_path / "m.md"
    proc = subprocess.run([sys.executable, "-m", "forge_fe.tools.cli", "--quiet", "report", "--run", "push", "-k",
                           "onnx and mobilenet_v2 and not data_format", "--results", str(tmp_path / "rec"),
                           "--tests", os.path.join(REPO, "tests", "models"), "--md", str(md),
                           "--html", str(tmp_path / "m.html"), "--workers", "0"], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 records: 1 pass" in proc.stdout and "1 architectures" in proc.stdout
    assert "| mobilenet_v2 | onnx |" in md.read_text()


def test_help_lists_examples_and_usage_errors_exit_2(capsys):
    proc = subprocess.run([sys.executable, "-m", "forge_fe.tools.cli", "--help"], env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0 and "examples:" in proc.stdout and "exit codes:" in proc.stdout
    for sub in ("compile", "run", "read", "report"):
        with pytest.raises(SystemExit) as exc:
            cli.main([sub, "--help"])
        assert exc.value.code == 0 and "example" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["compile"])
    assert exc.value.code == cli.EXIT_USAGE and "MODEL" in capsys.readouterr().err


def test_log_level_and_quiet(nets, tmp_path, capsys, monkeypatch):
    args = ["compile", f"{nets}:Small", "--input-shape", "1x3x8x8", "--input-shape", "1x5", "-o", str(tmp_path / "s.ttb")]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "compiled in" in err and f"{len(STAGES)}/{len(STAGES)} binary" in err
    assert cli.main(["--quiet"] + args) == 0
    assert f"{len(STAGES)}/{len(STAGES)}" not in capsys.readouterr().err
    monkeypatch.setenv("FORGE_FE_LOG_LEVEL", "WARNING")
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "compiled in" not in err and f"{len(STAGES)}/{len(STAGES)} binary" in err
