"""ONNX architectures of the model matrix: torch models from forge_fe.zoo exported in the test
(TorchScript exporter at several opsets, and the dynamo exporter), compiled from the
onnx.ModelProto and compared with onnxruntime's outputs on the same file."""
import io
import warnings

import torch

from forge_fe import zoo
from forge_fe.tools import matrix
from forge_fe.tools.matrix import MatrixCase
from forge_fe.tools.matrix_builders import onnx_export, timm_model, torchvision_model


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


# timm / torchvision classification and segmentation models exported at several opsets (TorchScript
# exporter; the dynamo exporter at opset 18), each counted under its architecture.
CASES += [
    onnx_export(timm_model("resnet18", arch="resnet"), 11),
    onnx_export(timm_model("efficientnet_lite0", arch="efficientnet-lite"), 13),
    onnx_export(timm_model("ghostnet_050", arch="ghostnet"), 17),
    onnx_export(timm_model("regnety_002", arch="regnet"), 13),
    onnx_export(timm_model("repvgg_a0", arch="repvgg"), 17),
    onnx_export(timm_model("dla34", arch="dla"), 11),
    onnx_export(timm_model("convit_tiny", arch="convit", push=dict(img_size=32, patch_size=8, embed_dim=64, depth=2,
                                                                   num_heads=4)), 17),
    onnx_export(torchvision_model("squeezenet1_1", arch="squeezenet", push_image=64), 11),
    onnx_export(torchvision_model("shufflenet_v2_x0_5", arch="shufflenet_v2"), 13),
    onnx_export(torchvision_model("mobilenet_v3_small", arch="mobilenet_v3"), 18, dynamo=True),
    onnx_export(torchvision_model("efficientnet_b0", arch="efficientnet"), 18, dynamo=True),
    onnx_export(torchvision_model("swin_t", arch="swin", push_image=64), 17),
]

test_push, test_data_format, test_nightly = matrix.pytest_tests(CASES)
