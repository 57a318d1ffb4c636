"""ONNX architectures of the model matrix: torch models from forge_fe.zoo exported in the test
(TorchScript exporter at several opsets, and the dynamo exporter), compiled from the
onnx.ModelProto and compared with onnxruntime's outputs on the same file."""
import io
import warnings

import pytest
import torch

from forge_fe import zoo
from forge_fe.tools import matrix
from forge_fe.tools.matrix import MatrixCase


def exported(builder_tiny, builder_full, opset, dynamo=False):
    """size -> (onnx.ModelProto, numpy inputs) exported from the zoo builder at `opset`."""
    def build(size):
        import onnx
        model, inputs = (builder_tiny if size == "push" else builder_full)()
        names = [f"input_{i}" for i in range(len(inputs))]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if dynamo:
                proto = torch.onnx.export(model, tuple(inputs), input_names=names, opset_version=opset,
                                          dynamo=True).model_proto
            else:
                buf = io.BytesIO()
                torch.onnx.export(model, tuple(inputs), buf, input_names=names, opset_version=opset, dynamo=False)
                proto = onnx.load_model_from_string(buf.getvalue())
        return proto, [x.numpy() for x in inputs]
    return build


CASES = [
    MatrixCase("resnet", "onnx", "CNN, opset 17", exported(zoo.resnet_tiny, zoo.resnet50, 17),
               formats=("Float16_b", "Bfp8_b weights")),
    MatrixCase("mobilenet_v2", "onnx", "CNN (depthwise), opset 13",
               exported(zoo.mobilenet_v2_tiny, zoo.mobilenet_v2, 13)),
    MatrixCase("unet", "onnx", "CNN (ConvTranspose, Concat), opset 11", exported(zoo.unet_tiny, zoo.unet, 11)),
    MatrixCase("convnext", "onnx", "CNN (transformers ConvNeXt), opset 16",
               exported(zoo.convnext_tiny, zoo.convnext, 16)),
    MatrixCase("bert", "onnx", "encoder (transformers BERT), opset 14", exported(zoo.bert_tiny, zoo.bert_base, 14)),
    MatrixCase("vit", "onnx", "vision transformer, dynamo exporter, opset 18",
               exported(zoo.vit_tiny, zoo.vit, 18, dynamo=True)),
    MatrixCase("whisper_encoder", "onnx", "audio encoder (transformers Whisper), opset 17",
               exported(zoo.whisper_encoder_tiny, zoo.whisper_encoder, 17)),
    MatrixCase("t5", "onnx", "encoder-decoder (transformers T5), opset 17", exported(zoo.t5_tiny, zoo.t5, 17)),
    MatrixCase("gpt2", "onnx", "decoder-only (transformers GPT-2), dynamo exporter, opset 18",
               exported(zoo.gpt2_tiny, zoo.gpt2, 18, dynamo=True)),
    MatrixCase("lstm", "onnx", "recurrent (2-layer LSTM: ONNX LSTM op), opset 12", exported(zoo.lstm_tiny, zoo.lstm, 12)),
]


@pytest.mark.parametrize("case", matrix.pytest_params(CASES, "push"))
def test_push(case):
    matrix.check(case, "push")


@pytest.mark.parametrize("case,data_format", matrix.pytest_format_params(CASES))
def test_data_format(case, data_format):
    matrix.check(case, "push", data_format)


@pytest.mark.parametrize("case", matrix.pytest_params(CASES, "nightly"))
def test_nightly(case):
    matrix.check(case, "nightly")
