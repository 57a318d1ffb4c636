"""PyTorch architectures of the model matrix (forge_fe.tools.matrix): random weights, built from code.

push: reduced sizes (same op mix, seconds each); nightly: released sizes. Every test writes
its record for `forge-fe report`; numerics are compared with torch's own outputs.
"""
import pytest

from forge_fe import zoo
from forge_fe.tools import matrix
from forge_fe.tools.matrix import MatrixCase

def sized(tiny, full):
    return lambda size: tiny() if size == "push" else full()


CASES = [
    MatrixCase("resnet", "pytorch", "CNN (ResNet-50 bottlenecks)", sized(zoo.resnet_tiny, zoo.resnet50),
               formats=("Float16_b", "Bfp8_b weights")),
    MatrixCase("mobilenet_v2", "pytorch", "CNN (depthwise, ReLU6)", sized(zoo.mobilenet_v2_tiny, zoo.mobilenet_v2)),
    MatrixCase("unet", "pytorch", "CNN (segmentation: transposed conv, skip concat)",
               sized(zoo.unet_tiny, zoo.unet)),
    MatrixCase("convnext", "pytorch", "CNN (transformers ConvNeXt)", sized(zoo.convnext_tiny, zoo.convnext)),
    MatrixCase("bert", "pytorch", "encoder (transformers BERT)", sized(zoo.bert_tiny, zoo.bert_base),
               formats=("Float16_b", "Bfp8_b weights")),
    MatrixCase("gpt2", "pytorch", "decoder-only (transformers GPT-2)", sized(zoo.gpt2_tiny, zoo.gpt2)),
    MatrixCase("llama", "pytorch", "decoder-only (transformers Llama: RMSNorm, RoPE, GQA)",
               sized(zoo.llama_tiny, zoo.llama)),
    MatrixCase("t5", "pytorch", "encoder-decoder (transformers T5)", sized(zoo.t5_tiny, zoo.t5)),
    MatrixCase("vit", "pytorch", "vision transformer (transformers ViT)", sized(zoo.vit_tiny, zoo.vit),
               formats=("Float16_b", "Bfp8_b weights")),
    MatrixCase("whisper_encoder", "pytorch", "audio encoder (transformers Whisper)",
               sized(zoo.whisper_encoder_tiny, zoo.whisper_encoder)),
    MatrixCase("lstm", "pytorch", "recurrent (2-layer LSTM)", sized(zoo.lstm_tiny, zoo.lstm)),
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
