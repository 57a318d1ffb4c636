"""forge_fe binaries (.ttb): the in-memory model and its FlatBuffers file format.

    from forge_fe import binary
    binary.write(b, "m.ttb"); b2 = binary.read("m.ttb"); print(binary.describe("m.ttb"))
"""
from forge_fe.errors import BinaryFormatError

from .io import FILE_IDENTIFIER, FORMAT_VERSION, describe, from_bytes, read, to_bytes, write
from .model import Binary, CpuSegment, Op, Program, Step, SystemDesc, TensorDesc

__all__ = [
    "Binary", "CpuSegment", "Op", "Program", "Step", "SystemDesc", "TensorDesc",
    "write", "read", "to_bytes", "from_bytes", "describe",
    "FORMAT_VERSION", "FILE_IDENTIFIER", "BinaryFormatError",
]
