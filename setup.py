"""forge_fe: a TVM-based frontend compiler for Tenstorrent-style NPUs (see README.md)."""
from setuptools import find_packages, setup

# Pins where behaviour depends on the exact version (TVM 0.27's Relax API, the CPU
# torch build that lies on the CI machine, the flatbuffers runtime the generated
# code was made with). Others are lower bounds.
CORE = [
    "apache-tvm==0.27.0.post1",
    "numpy>=1.26",
    "flatbuffers==25.12.19",
    "ml_dtypes>=0.5",
    "safetensors>=0.4",
    # The emulated device's kernels are torch CPU kernels (docs/kernels.md). 2.14.1 because
    # torchvision (timm's dependency, the model matrix) has no wheel that imports beside the
    # 2.13.0 CPU build; the 2.14.1 wheel runs on the CPU as well.
    "torch==2.14.1",
]
JAX = ["jax==0.10.2", "jaxlib==0.10.2"]   # jaxlib's MLIR bindings parse our TTIR (checked with 0.10.2)
EXTRAS = {
    # Model libraries of the matrix (docs/model_matrix.md); torchvision must match torch exactly.
    "torch": ["transformers>=5.0", "torchvision==0.29.1", "timm>=1.0.20", "diffusers>=0.35"],
    "onnx": ["onnx>=1.17", "onnxruntime>=1.20", "onnxscript>=0.5"],
    # TensorFlow's own pins (protobuf, ml_dtypes) agree with jax 0.10.2 and onnx 1.23 at these versions.
    "tf": ["tensorflow-cpu==2.21.0", "tflite==2.18.0"],
    "jax": JAX + ["flax>=0.12"],
    "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.6", "hypothesis>=6.100"] + JAX,
}
EXTRAS["all"] = sorted({p for k in ("torch", "onnx", "tf", "jax") for p in EXTRAS[k]})

setup(
    name="forge_fe",
    version="0.1.0",
    description="TVM-based frontend compiler for Tenstorrent-style NPUs with an emulated device runtime",
    python_requires=">=3.10",
    packages=find_packages(include=["forge_fe", "forge_fe.*", "tvm_ext", "tvm_ext.*"]),
    package_data={"forge_fe.binary": ["*.fbs"]},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["forge-fe=forge_fe.tools.cli:main"]},
)
