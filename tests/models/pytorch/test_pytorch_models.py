"""PyTorch architectures of the model matrix (forge_fe.tools.matrix): random weights, built from code.

push: reduced sizes (same op mix, seconds each); nightly: released sizes. Every test writes
its record for `forge-fe report`; numerics are compared with torch's own outputs.
"""

from forge_fe import zoo
from forge_fe.tools import matrix
from forge_fe.tools.matrix import MatrixCase

def sized(tiny, full):
    return lambda size: tiny() if size == "push" else full()


# Models written out in forge_fe.zoo (the transformers ones are in test_transformers.py, built from
# configs with the library's defaults).
CASES = [
    MatrixCase("zoo_resnet", "pytorch", "CNN (ResNet-50 bottlenecks, forge_fe.zoo)", sized(zoo.resnet_tiny, zoo.resnet50),
               formats=("Float16_b", "Bfp8_b weights"), arch="resnet"),
    MatrixCase("zoo_mobilenet_v2", "pytorch", "CNN (depthwise, ReLU6, forge_fe.zoo)",
               sized(zoo.mobilenet_v2_tiny, zoo.mobilenet_v2), arch="mobilenet_v2"),
    MatrixCase("zoo_unet", "pytorch", "CNN (segmentation: transposed conv, skip concat)",
               sized(zoo.unet_tiny, zoo.unet), arch="unet"),
    MatrixCase("zoo_lstm", "pytorch", "recurrent (2-layer LSTM)", sized(zoo.lstm_tiny, zoo.lstm), arch="lstm"),
]

test_push, test_data_format, test_nightly = matrix.pytest_tests(CASES)
