"""TensorFlow/Keras architectures of the model matrix: keras.applications with weights=None and
Keras models written from layers, compiled from keras.Model objects and from a SavedModel
directory exported in the test; compared with Keras' / TensorFlow's own outputs.

keras-hub is not installed here (it would pull a second TensorFlow build), so the transformer
and recurrent models are written from keras.layers. ResNet-50, EfficientNet-B0 and DenseNet-121
are nightly only: at any input size their import (TFLite conversion) takes 20-40 s here.
"""
import os

import numpy as np
import pytest

from forge_fe import matrix
from forge_fe.matrix import MatrixCase

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
]
NIGHTLY_ONLY = [
    MatrixCase("resnet50", "tensorflow", "CNN (keras.applications)", application("ResNet50", dict(classes=10))),
    MatrixCase("efficientnet_b0", "tensorflow", "CNN (keras.applications: swish, squeeze-excite)",
               application("EfficientNetB0", dict(classes=10))),
    MatrixCase("densenet121", "tensorflow", "CNN (keras.applications: dense concat)",
               application("DenseNet121", dict(classes=10))),
]


@pytest.mark.parametrize("case", matrix.pytest_params(CASES, "push"))
def test_push(case):
    matrix.check(case, "push")


@pytest.mark.parametrize("case", matrix.pytest_params(CASES + NIGHTLY_ONLY, "nightly"))
def test_nightly(case):
    matrix.check(case, "nightly")
