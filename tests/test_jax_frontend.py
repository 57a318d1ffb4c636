"""JAX frontend: JAX functions, Flax linen and nnx models through the whole pipeline, checked against
JAX itself (fp32, PCC >= 0.999 and allclose), with the spine's guarantees (dumps, binary, placement,
CPU fallback, output structure) and its errors."""

from __future__ import annotations

import functools
import os
import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

import forge_fe
from forge_fe import CompilerConfig
from forge_fe.errors import FrontendError

ROOT = pathlib.Path(__file__).resolve().parent.parent
# fp32 end to end: the emulated device and JAX differ by summation order only.
PCC, RTOL, ATOL = 0.999, 1e-3, 1e-4


def verify(model, inputs, cm):
    checks = forge_fe.verify(inputs, model, cm, pcc_min=PCC, rtol=RTOL, atol=ATOL)
    assert all(c.pcc >= PCC for c in checks)
    return checks


def device_share(cm) -> float:
    rows = cm.report.placement
    return sum(r["where"] == "device" for r in rows) / len(rows)


def weight_names(cm) -> set[str]:
    """Framework names of the compiled model's weights (Relax param name -> framework name)."""
    return set(cm.context.imported.weight_names.values())


def random_variables(module, x, seed):
    """Random Flax variables (no XLA compile of module.init): kernels ~ N(0, 1/fan_in), vectors and
    norm scales around 0 and 1, BatchNorm variances in [0.5, 1.5], so biases and stats are really tested."""
    rng = np.random.default_rng(seed)

    def fill(path, spec):
        name, shape = jax.tree_util.keystr(path), spec.shape
        if name.endswith("['var']"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:
            value = (1.0 if name.endswith("['scale']") else 0.0) + 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
        return jnp.asarray(value, dtype=spec.dtype)
    return jax.tree_util.tree_map_with_path(fill, jax.eval_shape(module.init, jax.random.PRNGKey(0), x))


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------


def mlp(params, x):
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return {"logits": h @ params["w2"] + params["b2"], "hidden": [h]}


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), padding="SAME")(x)
        x = nn.BatchNorm(use_running_average=True)(x)
        x = nn.relu(x)
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = nn.Conv(16, (3, 3), strides=(2, 2), feature_group_count=2)(x)
        x = nn.BatchNorm(use_running_average=True)(x)
        x = nn.avg_pool(nn.relu(x), (2, 2), strides=(1, 1))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


class EncoderBlock(nn.Module):
    heads: int = 4

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm()(x)
        h = nn.MultiHeadDotProductAttention(num_heads=self.heads)(h, h)
        x = x + h
        h = nn.Dense(64)(nn.LayerNorm()(x))
        return x + nn.Dense(x.shape[-1])(nn.gelu(h))


def rnn(params, xs):
    """An Elman RNN over time with lax.scan; returns every hidden state and the last one."""
    def step(h, x):
        h = jnp.tanh(x @ params["wx"] + h @ params["wh"] + params["b"])
        return h, h
    h0 = jnp.zeros((xs.shape[1], params["wh"].shape[0]), xs.dtype)
    last, hs = lax.scan(step, h0, xs)
    return hs, last


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(8, 16, rngs=rngs)
        self.l2 = nnx.Linear(16, 4, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


@pytest.fixture(scope="module")
def mlp_case():
    rng = np.random.default_rng(0)
    params = {"w1": rng.standard_normal((32, 64)).astype(np.float32) * 0.2, "b1": np.zeros(64, np.float32) + 0.1,
              "w2": rng.standard_normal((64, 10)).astype(np.float32) * 0.2, "b2": np.ones(10, np.float32)}
    params = jax.tree_util.tree_map(jnp.asarray, params)
    model = functools.partial(mlp, params)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    return model, x, forge_fe.compile(model, [x])


@pytest.fixture(scope="module")
def cnn_case(tmp_path_factory):
    x = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype(np.float32)
    module = CNN()
    model = functools.partial(module.apply, random_variables(module, x, 1))
    dump = tmp_path_factory.mktemp("cnn_dump")
    return model, x, forge_fe.compile(model, [x], compiler_cfg=CompilerConfig(dump_dir=str(dump))), dump


# --------------------------------------------------------------------------
# proof models
# --------------------------------------------------------------------------


def test_jax_mlp_matches_jax_and_runs_on_the_device(mlp_case):
    model, x, cm = mlp_case
    verify(model, [x], cm)
    out = cm(x)
    assert isinstance(out, dict) and list(out) == ["logits", "hidden"] and isinstance(out["hidden"], list)
    assert isinstance(out["logits"], np.ndarray) and out["logits"].shape == (4, 10)
    assert device_share(cm) == 1.0


def test_flax_cnn_with_batchnorm_and_pooling(cnn_case):
    model, x, cm, _ = cnn_case
    verify(model, [x], cm)
    on_device = {r["op"] for r in cm.report.placement if r["where"] == "device"}
    assert {"relax.nn.conv2d", "relax.nn.max_pool2d", "relax.nn.avg_pool2d"} <= on_device
    assert device_share(cm) == 1.0


def test_flax_nhwc_convs_gain_no_activation_transposes(cnn_case):
    # NHWC in, NHWC convs on the device: the only permutes left act on the (HWIO) kernels.
    _, _, cm, _ = cnn_case
    permutes = [line for line in cm.ttir.splitlines() if '"ttir.permute"' in line]
    assert all("3x3x" in line.split(":")[-1] for line in permutes), permutes


def test_flax_transformer_encoder_block():
    x = np.random.default_rng(2).standard_normal((2, 8, 32)).astype(np.float32)
    module = EncoderBlock()
    model = functools.partial(module.apply, random_variables(module, x, 2))
    cm = forge_fe.compile(model, [x])
    verify(model, [x], cm)
    assert device_share(cm) == 1.0


def test_lax_scan_rnn_is_unrolled_and_matches():
    rng = np.random.default_rng(3)
    params = {"wx": rng.standard_normal((8, 16)).astype(np.float32) * 0.3,
              "wh": rng.standard_normal((16, 16)).astype(np.float32) * 0.3,
              "b": rng.standard_normal(16).astype(np.float32) * 0.1}
    model = functools.partial(rnn, jax.tree_util.tree_map(jnp.asarray, params))
    xs = rng.standard_normal((6, 2, 8)).astype(np.float32)      # time-major
    cm = forge_fe.compile(model, [xs])
    verify(model, [xs], cm)
    hs, last = cm(xs)
    assert hs.shape == (6, 2, 16) and last.shape == (2, 16)
    assert device_share(cm) == 1.0


def test_flax_nnx_module_with_named_weights():
    model = NnxMLP(nnx.Rngs(0))
    x = np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32)
    cm = forge_fe.compile(model, [x])
    verify(model, [x], cm)
    assert weight_names(cm) == {"l1/kernel", "l1/bias", "l2/kernel", "l2/bias"}


# --------------------------------------------------------------------------
# the spine's guarantees
# --------------------------------------------------------------------------


def test_closed_over_arrays_become_named_weights(mlp_case, cnn_case):
    _, _, cm = mlp_case
    assert weight_names(cm) == {"w1", "b1", "w2", "b2"}
    _, _, cnn, _ = cnn_case
    names = weight_names(cnn)
    assert {"params/Conv_0/kernel", "batch_stats/BatchNorm_0/mean", "params/Dense_0/bias"} <= names


def test_every_stage_dumps_and_names_trace_to_flax_modules(cnn_case):
    _, _, _, dump = cnn_case
    files = set(os.listdir(dump))
    for artifact in ("01_relax_imported.py", "03_placement.txt", "12_ttir.mlir", "13_model.ttb",
                     "CNN_forge_module.py", "CNN_forge_module.safetensors"):
        assert artifact in files
    source = (dump / "CNN_forge_module.py").read_text()
    assert re.search(r"CNN_Conv_0_\w*conv", source) and "params/BatchNorm_0/scale" in source


@pytest.mark.parametrize("depth", [forge_fe.CompileDepth.IMPORT, forge_fe.CompileDepth.LOWER_TO_TTIR])
def test_compile_depth_stops_a_jax_model(mlp_case, depth):
    model, x, _ = mlp_case
    cm = forge_fe.compile(model, [x], compiler_cfg=CompilerConfig(compile_depth=depth))
    assert cm.report.stopped_after == depth.name.lower()
    with pytest.raises(forge_fe.errors.CompileStopped):
        cm(x)


def test_binary_round_trip(cnn_case, tmp_path):
    model, x, cm, _ = cnn_case
    cm.save(str(tmp_path / "cnn.ttb"))
    loaded = forge_fe.load(str(tmp_path / "cnn.ttb"))
    np.testing.assert_array_equal(loaded(x), cm(x))
    verify(model, [x], loaded)


def test_cpu_fallback_runs_forced_ops_on_the_host(mlp_case):
    model, x, _ = mlp_case
    cm = forge_fe.compile(model, [x], compiler_cfg=CompilerConfig(cpu_fallback_ops={"maximum"}))
    rows = {r["op"]: r for r in cm.report.placement}
    assert rows["relax.maximum"]["where"] == "cpu" and rows["relax.matmul"]["where"] == "device"
    verify(model, [x], cm)


def test_unused_inputs_and_weights_keep_the_call_signature():
    params = {"a": jnp.ones((3, 3)), "unused": jnp.ones(5), "b": jnp.full(3, 2.0)}
    model = functools.partial(lambda p, x, y: x @ p["a"] + p["b"], params)
    x = np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32)
    cm = forge_fe.compile(model, [x, x * 0])
    assert [name for name, _, _ in cm.context.imported.input_specs] == ["x", "y"]
    assert weight_names(cm) == {"a", "b"}
    verify(model, [x, x], cm)


def test_pytree_inputs_are_named_after_their_keys():
    """A callable of a dict batch (and a scalar): inputs named by key, the call takes the same pytree."""
    def model(batch, scale):
        return {"y": jnp.tanh(batch["x"] @ batch["w"]) * scale, "total": batch["x"].sum()}
    rng = np.random.default_rng(8)
    batch = {"x": rng.standard_normal((4, 8)).astype(np.float32), "w": rng.standard_normal((8, 3)).astype(np.float32)}
    cm = forge_fe.compile(model, [batch, np.float32(2.0)])
    assert [d.name for d in cm.binary.inputs] == ["x", "w", "input_1"]
    verify(model, [batch, np.float32(2.0)], cm)
    out = cm({"w": batch["w"], "x": batch["x"]}, np.float32(0.5))
    np.testing.assert_allclose(out["y"], np.asarray(model(batch, 0.5)["y"]), rtol=RTOL, atol=ATOL)


def test_integer_token_inputs_embedding_model():
    rng = np.random.default_rng(5)
    module = nn.Sequential([nn.Embed(100, 16), nn.Dense(8)])
    tokens = rng.integers(0, 100, (2, 7)).astype(np.int32)
    model = functools.partial(module.apply, random_variables(module, tokens, 5))
    cm = forge_fe.compile(model, [tokens])
    verify(model, [tokens], cm)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def test_callable_failing_on_its_sample_inputs():
    with pytest.raises(FrontendError, match="failed on its sample inputs"):
        forge_fe.compile(lambda x: x @ jnp.ones((3, 3)), [np.ones((2, 4), np.float32)])


def test_python_control_flow_on_values_is_explained():
    def f(x):
        return x * 2 if x.sum() > 0 else x
    with pytest.raises(FrontendError, match="jax could not trace the callable"):
        forge_fe.compile(f, [np.ones((2, 2), np.float32)])


def test_unsupported_op_is_named_with_its_source_line():
    with pytest.raises(FrontendError, match="unsupported StableHLO ops") as err:
        forge_fe.compile(lambda x: jnp.fft.fft(x).real, [np.ones((4, 8), np.float32)])
    msg = str(err.value)
    assert "stablehlo.fft" in msg and "stablehlo.real" in msg and "test_jax_frontend.py" in msg


# --------------------------------------------------------------------------
# docs
# --------------------------------------------------------------------------


def test_docs_examples_run():
    """Every python block of docs/frontend_jax.md runs, in order, in one namespace."""
    doc = (ROOT / "docs" / "frontend_jax.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/frontend_jax.md", "exec"), namespace)
