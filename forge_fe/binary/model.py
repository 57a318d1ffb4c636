"""In-memory form of a forge_fe binary (.ttb).

The compiler fills these dataclasses; `forge_fe.binary.write` serializes them to
the FlatBuffers file described by `schema.fbs`, and `forge_fe.binary.read` turns
a file back into them. The runtime only ever sees these objects, never the
compiler's graphs, so a loaded binary runs without the original model.

Value naming: every tensor that crosses a step boundary of the execution plan
(model inputs, plan constants, outputs of device programs and CPU segments) has
a unique string name. Inside a device program, tensors are numbered locally.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


#: element type names a binary may use (numpy spelling; bfloat16 is ml_dtypes')
DTYPES = ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
          "uint64", "uint32", "uint16", "uint8", "bool")


@dataclass
class TensorDesc:
    """A tensor as the device sees it."""
    name: str
    shape: tuple[int, ...]
    dtype: str                      # numpy-style name: float32, int32, int64, bool, bfloat16
    data_format: str = "Float32"    # forge_fe.DataFormat name (device storage format)
    layout: str = "row_major"       # "row_major" or "tile" (32x32)


@dataclass
class Op:
    """One TTIR-level device op: the runtime's unit of execution."""
    name: str                       # TTIR op name, e.g. "ttir.conv2d"
    inputs: list[int]               # indices into Program.tensors
    outputs: list[int]
    attrs: dict                     # JSON-serializable attributes (TTIR spelling)
    loc: str = ""                   # source location / forge node name


@dataclass
class Program:
    """A device program: a straight-line list of TTIR ops over numbered tensors."""
    name: str
    tensors: list[TensorDesc]
    inputs: list[int]               # tensor indices bound from the plan at call time
    outputs: list[int]
    ops: list[Op]
    constants: dict[int, np.ndarray] = field(default_factory=dict)  # tensor index -> value
    private: bool = False           # True for const-eval programs (run once at load)


@dataclass
class CpuSegment:
    """A host segment compiled by TVM (llvm); `library` is the exported shared object."""
    name: str
    library: bytes
    inputs: list[TensorDesc]
    outputs: list[TensorDesc]
    entry: str = "main"


@dataclass
class Step:
    """One step of the execution plan: run a device program or a CPU segment."""
    kind: str                       # "device" or "cpu"
    index: int                      # into Binary.programs or Binary.cpu_segments
    inputs: list[str]               # plan value names, in the callee's input order
    outputs: list[str]


@dataclass
class SystemDesc:
    arch: str = "wormhole_b0"
    grid: tuple[int, int] = (8, 8)
    l1_size: int = 1464 * 1024
    dram_size: int = 12 * 1024**3
    dram_bandwidth: float = 288e9
    clock_hz: float = 1.0e9


@dataclass
class Binary:
    """Everything a runtime needs to execute a compiled model."""
    compiler_version: str
    system: SystemDesc
    programs: list[Program]
    cpu_segments: list[CpuSegment]
    plan: list[Step]
    inputs: list[TensorDesc]        # model inputs, in call order
    outputs: list[str]              # plan value names of the flat model outputs
    constants: dict[str, np.ndarray] = field(default_factory=dict)  # plan-level constants (CPU weights)
    output_structure: str = ""      # JSON describing how flat outputs nest (see forge_fe.frontend.structure)
    debug: dict[str, str] = field(default_factory=dict)  # artifact name -> text (e.g. "ttir.mlir")
    model_name: str = "model"
    # How the device computes: {"math_fidelity": "HiFi4", "fp32_dest_acc_en": true}
    compute_config: dict = field(default_factory=dict)
    # The mesh the device programs run on (forge_fe.mesh.Mesh.to_json()); empty for one chip
    mesh: dict = field(default_factory=dict)
