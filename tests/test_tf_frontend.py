"""TensorFlow / Keras frontend (forge_fe/frontend/tf.py): every model kind, the proof models, NHWC, errors.

Numerics are checked against TensorFlow's own call on the same inputs (forge_fe.verify:
PCC >= 0.999 and allclose). One module-scoped compile per model keeps the run short.
"""
import os
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import forge_fe
from forge_fe.errors import ForgeError, FrontendError, InputError

PCC = 0.999


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def forward_permutes(cm) -> int:
    """ttir.permute ops in the programs that run per call (const-eval programs run once at load)."""
    funcs = re.split(r"\n\s*func\.func ", cm.ttir)
    return sum(f.count('"ttir.permute"') for f in funcs if re.match(r"@\w+_forward", f))


def device_share(cm) -> float:
    rows = cm.report.placement
    return sum(r["where"] == "device" for r in rows) / len(rows)


def compile_and_verify(model, inputs, **kw):
    cm = forge_fe.compile(model, inputs, **kw)
    checks = forge_fe.verify(inputs, model, cm, pcc_min=PCC)
    return cm, checks


# ---- a Keras CNN: NHWC end to end -------------------------------------------------------------

def small_cnn():
    keras.utils.set_random_seed(1)
    inp = keras.Input((32, 32, 3), batch_size=1, name="image")
    x = keras.layers.ZeroPadding2D(1, name="pad")(inp)
    x = keras.layers.Conv2D(8, 3, name="c1")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(4, name="fc")(x))
    # Non-trivial batch-norm statistics, so folding them is visible in the numbers.
    bn = model.get_layer("bn")
    bn.moving_mean.assign(rand(8, seed=2) * 0.1)
    bn.moving_variance.assign(np.abs(rand(8, seed=3)) + 0.5)
    return model


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    model, x = small_cnn(), rand(1, 32, 32, 3)
    dump = tmp_path_factory.mktemp("tf_cnn")
    cm, checks = compile_and_verify(model, [x], compiler_cfg=forge_fe.CompilerConfig(dump_dir=str(dump)))
    return model, x, cm, checks, dump


def test_keras_cnn_matches_tensorflow(cnn):
    model, x, cm, checks, _ = cnn
    assert checks[0].pcc >= PCC
    out = cm(x)
    assert isinstance(out, np.ndarray) and out.shape == (1, 4)
    np.testing.assert_allclose(out, model(x, training=False).numpy(), rtol=1e-4, atol=1e-5)


def test_keras_cnn_runs_nhwc_without_data_movement(cnn):
    _, _, cm, _, dump = cnn
    assert device_share(cm) == 1.0
    # Keras and the device are both NHWC: the only permutes turn HWIO kernels into OIHW, once, at load.
    assert forward_permutes(cm) == 0
    assert cm.ttir.count('"ttir.permute"') == 3          # one per conv kernel, in the const-eval program
    assert cm.ttir.count('"ttir.conv2d"') == 3 and "ttir.max_pool2d" in cm.ttir
    # ZeroPadding2D became the conv's own padding; no pad op is left anywhere.
    relax_after = (dump / "02_relax_passes.py").read_text()
    assert "R.nn.pad" not in relax_after and 'data_layout="NHWC"' in relax_after


def test_keras_cnn_weights_keep_keras_names(cnn):
    _, _, cm, _, dump = cnn
    imported = cm.context.imported
    assert {"c1/kernel", "c1/bias", "bn/gamma", "bn/moving_mean", "dw/kernel", "fc/kernel"} <= set(
        imported.weight_names.values())
    for relax_name, keras_name in imported.weight_names.items():
        if keras_name == "c1/kernel":
            assert imported.params[relax_name].shape == (3, 3, 3, 8)      # Keras' own HWIO value
    generated = next(dump.glob("*_forge_module.py")).read_text()
    assert 'self.get_parameter("c1/kernel")' in generated and "c1_conv2d" in generated
    assert imported.input_specs == [("image", (1, 32, 32, 3), "float32")]


def test_keras_cnn_every_stage_leaves_its_artifact(cnn):
    _, x, cm, _, dump = cnn
    names = set(os.listdir(dump))
    for artifact in ("01_relax_imported.py", "02_relax_passes.py", "03_placement.txt", "05_initial_graph.txt",
                     "10_pre_lowering.txt", "12_ttir.mlir", "13_model.ttb"):
        assert artifact in names
    assert "relax.nn.conv2d" in (dump / "03_placement.txt").read_text()
    loaded = forge_fe.load(str(dump / "13_model.ttb"))
    np.testing.assert_array_equal(loaded(x), cm(x))
    assert cm.report.framework == "tensorflow"


def test_keras_cnn_inputs_are_checked_at_call_time(cnn):
    _, _, cm, _, _ = cnn
    with pytest.raises(InputError, match=r"input 0 \('image'\) has shape \[1, 16, 16, 3\]"):
        cm(rand(1, 16, 16, 3))


# ---- the proof models ---------------------------------------------------------------------------

@pytest.mark.slow
def test_keras_resnet50():
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    x = rand(1, 64, 64, 3)
    cm, checks = compile_and_verify(model, [x])
    assert checks[0].pcc >= PCC
    assert device_share(cm) == 1.0 and len(cm.report.segments) == 1
    assert forward_permutes(cm) == 0
    assert cm.context.imported.weight_names.get("conv1_conv_kernel") == "conv1_conv/kernel"


def test_keras_mobilenet_v2():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.5,
                                           classifier_activation=None)
    x = rand(1, 64, 64, 3)
    cm, checks = compile_and_verify(model, [x])
    assert checks[0].pcc >= PCC
    assert device_share(cm) == 1.0 and forward_permutes(cm) == 0
    groups = [int(g) for g in re.findall(r"groups = (\d+) : i32", cm.ttir)]
    assert max(groups) > 1            # depthwise convolutions run on the device as grouped conv2d


def test_keras_attention_with_layer_norm():
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 32), batch_size=2)
    x = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, name="mha")(inp, inp)
    x = keras.layers.LayerNormalization(name="ln")(x + inp)
    x = keras.layers.Dense(64, activation="gelu", name="ff")(x)
    model = keras.Model(inp, keras.layers.Dense(32, name="out")(x))
    x = rand(2, 16, 32)
    cm, checks = compile_and_verify(model, [x])
    assert checks[0].pcc >= PCC
    assert device_share(cm) == 1.0
    assert {"mha/query/kernel", "ln/gamma"} <= set(cm.context.imported.weight_names.values())


def test_keras_lstm_unrolls_and_falls_back_where_the_device_lacks_an_op():
    keras.utils.set_random_seed(4)
    inp = keras.Input((10, 8), batch_size=1)
    x = keras.layers.LSTM(16, return_sequences=True, name="lstm")(inp)
    model = keras.Model(inp, keras.layers.Dense(4, name="fc")(x))
    x = rand(1, 10, 8)
    cm, checks = compile_and_verify(model, [x])
    assert checks[0].pcc >= PCC
    assert model.get_layer("lstm").unroll is False          # the user's model is left as it was
    rows = cm.report.placement
    assert device_share(cm) > 0.9
    assert {r["op"] for r in rows if r["where"] == "cpu"} <= {"relax.split"}


def test_custom_tf_function_matmul_reductions_concat_tile():
    w = tf.Variable(rand(8, 16, seed=5), name="w")

    @tf.function
    def custom(a, b):
        y = tf.matmul(a, w)
        s = tf.reduce_sum(y, axis=1, keepdims=True) + tf.reduce_max(b, axis=1, keepdims=True)
        c = tf.concat([y, tf.tile(s, [1, 4])], axis=1)
        return tf.nn.relu(c) * tf.reduce_mean(b) - tf.reduce_min(a)

    a, b = rand(4, 8, seed=6), rand(4, 5, seed=7)
    cm, checks = compile_and_verify(custom, [a, b])
    assert checks[0].pcc >= PCC
    assert device_share(cm) == 1.0
    assert [s[0] for s in cm.context.imported.input_specs] == ["a", "b"]
    assert "w" in cm.context.imported.weight_names.values()


# ---- every kind of TensorFlow model ------------------------------------------------------------

def test_keras_sequential():
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((12,), batch_size=3), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(5, activation="softmax")])
    x = rand(3, 12)
    _, checks = compile_and_verify(model, [x])
    assert checks[0].pcc >= PCC       # dropout is inference-mode (identity), as Keras' own call


def test_keras_functional_two_inputs_two_outputs():
    keras.utils.set_random_seed(10)
    a, b = keras.Input((5,), batch_size=2, name="a"), keras.Input((3,), batch_size=2, name="b")
    h = keras.layers.Dense(4, name="mix")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], [keras.layers.Dense(2, name="p")(h), keras.layers.Dense(1, name="q")(h)])
    xa, xb = rand(2, 5, seed=12), rand(2, 3, seed=13)
    cm, checks = compile_and_verify(model, [xa, xb])
    assert len(checks) == 2 and [s[0] for s in cm.context.imported.input_specs] == ["a", "b"]
    out = cm(xa, xb)
    assert isinstance(out, list) and [o.shape for o in out] == [(2, 2), (2, 1)]


def test_keras_model_called_with_a_dict_of_named_inputs(tmp_path):
    """keras-hub backbones take a dict: the compiled model takes the same dict (keys in any order),
    names its inputs after the keys, keeps that structure in the binary and names a missing key."""
    keras.utils.set_random_seed(11)
    ids = keras.Input((6,), batch_size=2, dtype="int32", name="token_ids")
    mask = keras.Input((6,), batch_size=2, dtype="int32", name="padding_mask")
    h = keras.layers.Embedding(20, 4)(ids) * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    model = keras.Model({"token_ids": ids, "padding_mask": mask}, keras.layers.Dense(3)(h))
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(0, 20, (2, 6)).astype("int32"),
         "padding_mask": np.array([[1] * 6, [1] * 4 + [0] * 2], "int32")}
    cm, checks = compile_and_verify(model, x)
    assert [d.name for d in cm.binary.inputs] == ["token_ids", "padding_mask"]
    reordered = {"padding_mask": x["padding_mask"], "token_ids": x["token_ids"]}
    np.testing.assert_allclose(cm(reordered), model(x).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="padding_mask"):
        cm({"token_ids": x["token_ids"]})
    cm.save(str(tmp_path / "m.ttb"))
    loaded = forge_fe.load(str(tmp_path / "m.ttb"))
    np.testing.assert_array_equal(loaded(x), cm(x))
    # forge-fe run: an .npz with one array per key
    from forge_fe.tools import cli
    np.savez(tmp_path / "x.npz", **x)
    assert cli.main(["--quiet", "run", str(tmp_path / "m.ttb"), "--inputs", str(tmp_path / "x.npz"),
                     "--output", str(tmp_path / "y.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["output0"], cm(x))
    # forge-fe compile of a builder returning (model, [dict]) saves one array per key
    (tmp_path / "dict_net.py").write_text(DICT_NET)
    assert cli.main(["--quiet", "compile", f"{tmp_path / 'dict_net.py'}:build", "-o", str(tmp_path / "c.ttb"),
                     "--save-inputs", str(tmp_path / "saved.npz")]) == 0
    assert sorted(np.load(tmp_path / "saved.npz").files) == ["padding_mask", "token_ids"]


DICT_NET = """
import keras, numpy as np
def build():
    ids = keras.Input((4,), batch_size=1, dtype="int32", name="token_ids")
    mask = keras.Input((4,), batch_size=1, dtype="int32", name="padding_mask")
    h = keras.layers.Embedding(10, 2)(ids) * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    model = keras.Model({"token_ids": ids, "padding_mask": mask}, h)
    return model, [{"padding_mask": np.ones((1, 4), "int32"), "token_ids": np.arange(4, dtype="int32")[None]}]
"""


class TwoHeads(keras.Model):
    """A subclassed model returning a dict whose key order is not sorted."""

    def __init__(self):
        super().__init__()
        self.body = keras.layers.Dense(8, activation="relu", name="body")
        self.z_head = keras.layers.Dense(3, name="z_head")
        self.a_head = keras.layers.Dense(2, name="a_head")

    def call(self, x):
        h = self.body(x)
        return {"z": self.z_head(h), "a": self.a_head(h), "mean": tf.reduce_mean(h, axis=1)}


def test_keras_subclassed_model_returns_its_dict():
    keras.utils.set_random_seed(7)
    model = TwoHeads()
    x = rand(2, 6)
    model(x)
    cm, _ = compile_and_verify(model, [x])
    out = cm(x)
    assert list(out) == ["z", "a", "mean"]
    assert [o.shape for o in out.values()] == [(2, 3), (2, 2), (2,)]
    for k, v in model(x).items():
        np.testing.assert_allclose(out[k], v.numpy(), rtol=1e-4, atol=1e-5)


class Scaler(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(rand(6, 4, seed=8), name="w")
        self.b = tf.Variable(rand(4, seed=9), name="b")

    @tf.function
    def __call__(self, x, y):
        h = tf.matmul(x, self.w) + self.b
        return h * tf.sigmoid(y), tf.reduce_sum(h, axis=0)


@pytest.fixture(scope="module")
def scaler_module():
    return Scaler(), [rand(3, 6, seed=10), rand(3, 4, seed=11)]


def test_tf_module_with_two_outputs(scaler_module):
    module, inputs = scaler_module
    cm, checks = compile_and_verify(module, inputs)
    assert len(checks) == 2
    out = cm(*inputs)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(3, 4), (4,)]


def test_saved_model_directory(scaler_module, tmp_path):
    module, inputs = scaler_module
    path = str(tmp_path / "scaler")
    spec = [tf.TensorSpec((3, 6), tf.float32), tf.TensorSpec((3, 4), tf.float32)]
    tf.saved_model.save(module, path, signatures=module.__call__.get_concrete_function(*spec))
    cm, _ = compile_and_verify(path, inputs)
    assert cm.report.model_name == "scaler"
    np.testing.assert_allclose(cm(*inputs)[0], module(*inputs)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_keras_export_saved_model_directory(tmp_path):
    keras.utils.set_random_seed(12)
    model = keras.Sequential([keras.Input((4,), batch_size=2), keras.layers.Dense(3, name="d")])
    path = str(tmp_path / "exported")
    model.export(path)                              # a SavedModel whose entry point is `serve`
    x = rand(2, 4, seed=17)
    cm, checks = compile_and_verify(path, [x])
    assert checks[0].pcc >= PCC
    np.testing.assert_allclose(cm(x), model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_cpu_fallback_ops_on_a_keras_model():
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((10,), batch_size=2), keras.layers.Dense(6),
                              keras.layers.Softmax(), keras.layers.Dense(3)])
    x = rand(2, 10)
    cm, _ = compile_and_verify(model, [x], compiler_cfg=forge_fe.CompilerConfig(cpu_fallback_ops={"softmax"}))
    rows = {r["op"]: r for r in cm.report.placement}
    assert rows["relax.nn.softmax"]["where"] == "cpu"
    assert [s.split(":")[0] for s in cm.report.segments] == ["device", "cpu", "device"]


# ---- the StableHLO road: fallback and on request -------------------------------------------------

def test_op_tflite_lacks_falls_back_to_stablehlo():
    @tf.function
    def erfinv(x):
        return tf.math.erfinv(x * 0.5) + 1.0

    x = np.random.default_rng(14).uniform(-1, 1, (3, 5)).astype("float32")
    cm, checks = compile_and_verify(erfinv, [x])      # tf.Erfinv has no TFLite builtin; XLA lowers it
    assert checks[0].pcc >= PCC and device_share(cm) == 1.0


@tf.function
def halve_four_times(x):
    def body(i, y):
        return i + 1, y * 0.5 + 1.0
    return tf.while_loop(lambda i, y: i < 4, body, [tf.constant(0), x])[1]


def test_while_loop_is_refused_by_tflite_and_unrolled_by_stablehlo(monkeypatch):
    x = rand(3, 3, seed=16)
    monkeypatch.setenv("FORGE_FE_TF_ROAD", "tflite")
    with pytest.raises(FrontendError, match=r"the TFLite model has control flow \(WHILE\)"):
        forge_fe.compile(halve_four_times, [x])
    monkeypatch.setenv("FORGE_FE_TF_ROAD", "auto")
    cm, checks = compile_and_verify(halve_four_times, [x])
    assert checks[0].pcc >= PCC and device_share(cm) == 1.0


def test_stablehlo_road_on_request(monkeypatch):
    keras.utils.set_random_seed(11)
    inp = keras.Input((6, 4), batch_size=1)
    x = keras.layers.LSTM(8, return_sequences=True, name="lstm")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, name="fc")(x))
    monkeypatch.setenv("FORGE_FE_TF_ROAD", "stablehlo")
    x = rand(1, 6, 4, seed=15)
    cm, checks = compile_and_verify(model, [x])
    assert checks[0].pcc >= PCC
    assert device_share(cm) == 1.0 and len(cm.report.segments) == 1
    assert {"lstm/lstm_cell/kernel", "fc/kernel"} <= set(cm.context.imported.weight_names.values())


# ---- clear errors --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dense_model():
    keras.utils.set_random_seed(9)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def test_wrong_sample_input_shape_is_named(dense_model):
    with pytest.raises(FrontendError, match=r"failed on its sample inputs \[\(\[1, 5\], 'float32'\)\]") as err:
        forge_fe.compile(dense_model, [rand(1, 5)])
    assert err.value.stage == "import" and "shapes" in err.value.hint


def test_wrong_sample_input_type_is_named(dense_model):
    with pytest.raises(FrontendError, match="sample input 0 is a str"):
        forge_fe.compile(dense_model, ["not an array"])


def test_tf_op_without_a_tflite_builtin_is_named():
    @tf.function
    def det(x):
        return tf.linalg.det(x) + 1.0

    with pytest.raises(FrontendError, match="TensorFlow ops with no TFLite builtin: tf.MatrixDeterminant; the "
                                            "StableHLO road failed too: XLA could not lower") as err:
        forge_fe.compile(det, [rand(3, 3)])
    assert "MatrixDeterminant" in str(err.value).split("StableHLO road")[1]


def test_tflite_op_tvm_cannot_import_is_named_and_falls_back(monkeypatch):
    from tensorflow.compiler.tf2xla.python import xla

    @tf.function
    def update(x, i):
        return xla.dynamic_update_slice(x, tf.ones((1, 2)), tf.stack([i, i]))

    inputs = [rand(4, 4, seed=18), np.array(1, "int32")]
    monkeypatch.setenv("FORGE_FE_TF_ROAD", "tflite")
    with pytest.raises(FrontendError, match="TFLite ops TVM's importer does not support: 'DYNAMIC_UPDATE_SLICE'"):
        forge_fe.compile(update, inputs)
    monkeypatch.setenv("FORGE_FE_TF_ROAD", "auto")         # XLA's dynamic_update_slice imports
    _, checks = compile_and_verify(update, inputs)
    assert checks[0].pcc >= PCC


def test_unreadable_saved_model_is_refused(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a saved model")
    with pytest.raises(ForgeError, match="is not a loadable SavedModel"):
        forge_fe.compile(str(tmp_path), [rand(1, 4)])


# ---- docs/frontend_tf.md's examples run as written ------------------------------------------

def test_doc_examples_run(tmp_path, monkeypatch):
    import pathlib
    doc = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "frontend_tf.md").read_text()
    section = doc[doc.index("## Example"):doc.index("## How a TensorFlow model reaches Relax")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "docs/frontend_tf.md", "exec"), namespace)   # noqa: S102 - the doc's own code
    assert (tmp_path / "out_tf" / "12_ttir.mlir").exists()
    assert namespace["checks"][0].pcc >= PCC
