"""TensorFlow/Keras architectures of the model matrix: keras.applications with weights=None,
keras-hub backbones built from their configs (random weights, called with a dict of named
inputs) and Keras models written from layers, compiled from keras.Model objects and from a
SavedModel directory exported in the test; compared with Keras' / TensorFlow's own outputs.

keras-hub is installed without its dependencies (the Makefile does it): its tensorflow-text
requirement would install the full `tensorflow` package beside tensorflow-cpu, and backbones
built from a config use neither tensorflow-text nor kagglehub. ResNet-50, EfficientNet-B0 and
DenseNet-121 are nightly only: at any input size their import (TFLite conversion) takes 20-40 s here.
"""
import os

import numpy as np
import pytest

from forge_fe.tools import matrix
from forge_fe.tools.matrix import MatrixCase

pytest.importorskip("tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _image(size, seed=0):
    return [np.random.default_rng(seed).standard_normal((1, size, size, 3)).astype("float32")]


def application(name, push_kwargs, push_image=32):
    """size -> (keras.applications.<name>(weights=None), image): reduced input and classes for push."""
    def build(size):
        import keras
        keras.utils.set_random_seed(0)
        cls = getattr(keras.applications, name)
        if size == "push":
            return cls(input_shape=(push_image, push_image, 3), weights=None, **push_kwargs), _image(push_image)
        return cls(weights=None), _image(224)
    return build


def transformer_encoder_model(size):
    """BERT-style encoder from keras.layers: token + position embeddings, post-norm MHA blocks, GELU MLP."""
    import keras
    from keras import layers
    keras.utils.set_random_seed(0)
    seq, vocab, d, heads, ff, n = (32, 500, 64, 4, 128, 2) if size == "push" else (128, 30522, 768, 12, 3072, 12)
    ids = keras.Input((seq,), dtype="int32", name="input_ids")
    x = layers.Embedding(vocab, d)(ids) + layers.Embedding(seq, d)(keras.ops.arange(seq)[None])
    x = layers.LayerNormalization(epsilon=1e-12)(x)
    for _ in range(n):
        x = layers.LayerNormalization(epsilon=1e-12)(x + layers.MultiHeadAttention(heads, d // heads)(x, x))
        x = layers.LayerNormalization(epsilon=1e-12)(x + layers.Dense(d)(layers.Dense(ff, activation="gelu")(x)))
    model = keras.Model(ids, x, name="transformer_encoder")
    return model, [np.random.default_rng(0).integers(0, vocab, (1, seq)).astype("int32")]


def transformer_encoder_saved_model(size):
    """The encoder exported with model.export() and compiled from the SavedModel directory."""
    import tempfile
    model, inputs = transformer_encoder_model(size)
    path = os.path.join(tempfile.mkdtemp(prefix="forge_fe_matrix_"), "encoder")
    model.export(path, verbose=False)
    return path, inputs


def lstm_classifier(size):
    import keras
    from keras import layers
    keras.utils.set_random_seed(0)
    seq, vocab, hidden = (16, 500, 32) if size == "push" else (128, 10000, 512)
    ids = keras.Input((seq,), dtype="int32")
    x = layers.LSTM(hidden, return_sequences=True)(layers.Embedding(vocab, hidden)(ids))
    model = keras.Model(ids, layers.Dense(10)(layers.LSTM(hidden)(x)), name="lstm_classifier")
    return model, [np.random.default_rng(0).integers(0, vocab, (1, seq)).astype("int32")]


def _keras_hub():
    return pytest.importorskip("keras_hub", reason="keras-hub: `pip install --no-deps keras-hub==0.32.0` (the Makefile does)")


def _token_inputs(seq, vocab, *names):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, (1, seq)).astype("int32")
    fill = {"token_ids": ids, "segment_ids": np.zeros((1, seq), "int32"),
            "padding_mask": np.concatenate([np.ones((1, seq - 3), "int32"), np.zeros((1, 3), "int32")], 1)}
    return [{n: fill[n] for n in names}]


def hub_bert(size):
    """keras_hub.models.BertBackbone from a config; push: 2 layers, d=64; nightly: BERT-base."""
    kh = _keras_hub()
    import keras
    keras.utils.set_random_seed(0)
    seq, vocab, d, heads, ff, n = (32, 500, 64, 4, 128, 2) if size == "push" else (128, 30522, 768, 12, 3072, 12)
    model = kh.models.BertBackbone(vocabulary_size=vocab, num_layers=n, num_heads=heads, hidden_dim=d,
                                   intermediate_dim=ff, max_sequence_length=seq)
    return model, _token_inputs(seq, vocab, "token_ids", "segment_ids", "padding_mask")


def hub_gpt2(size):
    """keras_hub.models.GPT2Backbone from a config; push: 2 layers, d=64; nightly: GPT-2 124M."""
    kh = _keras_hub()
    import keras
    keras.utils.set_random_seed(0)
    seq, vocab, d, heads, ff, n = (32, 500, 64, 4, 256, 2) if size == "push" else (128, 50257, 768, 12, 3072, 12)
    model = kh.models.GPT2Backbone(vocabulary_size=vocab, num_layers=n, num_heads=heads, hidden_dim=d,
                                   intermediate_dim=ff, max_sequence_length=seq)
    return model, _token_inputs(seq, vocab, "token_ids", "padding_mask")


def hub_vit(size):
    """keras_hub.models.ViTBackbone from a config; push: 32x32 image, 2 layers; nightly: ViT-B/16."""
    kh = _keras_hub()
    import keras
    keras.utils.set_random_seed(0)
    image, patch, d, heads, ff, n = (32, 8, 64, 4, 128, 2) if size == "push" else (224, 16, 768, 12, 3072, 12)
    model = kh.models.ViTBackbone(image_shape=(image, image, 3), patch_size=patch, num_layers=n, num_heads=heads,
                                  hidden_dim=d, mlp_dim=ff)
    return model, _image(image)


CASES = [
    MatrixCase("mobilenet_v2", "tensorflow", "CNN (keras.applications)",
               application("MobileNetV2", dict(alpha=0.35, classes=10))),
    MatrixCase("mobilenet_v3_small", "tensorflow", "CNN (keras.applications: hard-swish, squeeze-excite)",
               application("MobileNetV3Small", dict(alpha=0.75, classes=10, include_preprocessing=True))),
    MatrixCase("vgg16", "tensorflow", "CNN (keras.applications)",
               application("VGG16", dict(include_top=False, pooling="avg"))),
    MatrixCase("mobilenet", "tensorflow", "CNN (keras.applications MobileNet v1)",
               application("MobileNet", dict(alpha=0.25, classes=10))),
    MatrixCase("transformer_encoder", "tensorflow", "encoder (keras.layers, from a SavedModel)",
               transformer_encoder_saved_model),
    MatrixCase("lstm", "tensorflow", "recurrent (keras LSTM x2)", lstm_classifier),
    MatrixCase("hub_bert", "tensorflow", "encoder (keras-hub BertBackbone, dict inputs)", hub_bert),
    MatrixCase("hub_gpt2", "tensorflow", "decoder-only (keras-hub GPT2Backbone, dict inputs)", hub_gpt2),
    MatrixCase("hub_vit", "tensorflow", "vision transformer (keras-hub ViTBackbone)", hub_vit),
]
NIGHTLY_ONLY = [
    MatrixCase("resnet50", "tensorflow", "CNN (keras.applications)", application("ResNet50", dict(classes=10))),
    MatrixCase("efficientnet_b0", "tensorflow", "CNN (keras.applications: swish, squeeze-excite)",
               application("EfficientNetB0", dict(classes=10))),
    MatrixCase("densenet121", "tensorflow", "CNN (keras.applications: dense concat)",
               application("DenseNet121", dict(classes=10))),
]

# The architecture each counts as in the report (the same family built by transformers, timm or torchvision).
for _case in CASES + NIGHTLY_ONLY:
    _case.arch = {"mobilenet": "mobilenet_v1", "mobilenet_v3_small": "mobilenet_v3", "vgg16": "vgg", "hub_bert": "bert",
                  "hub_gpt2": "gpt2", "hub_vit": "vit", "resnet50": "resnet", "efficientnet_b0": "efficientnet",
                  "densenet121": "densenet"}.get(_case.name, _case.arch)


@pytest.mark.parametrize("case", matrix.pytest_params(CASES, "push"))
def test_push(case):
    matrix.check(case, "push")


@pytest.mark.parametrize("case", matrix.pytest_params(CASES + NIGHTLY_ONLY, "nightly"))
def test_nightly(case):
    matrix.check(case, "nightly")
