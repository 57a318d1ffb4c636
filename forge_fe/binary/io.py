"""Serialize `Binary` to and from the FlatBuffers file described by schema.fbs.

File layout: a size-prefixed `BinaryFile` envelope (identifier "FFTB", format
version, compiler version, schema hash, sha256 checksum, data segment size)
whose `payload` is a nested FlatBuffer holding the `Model`, then the data
segment with the constants' bytes at DATA_ALIGNMENT-aligned offsets. The reader
checks the envelope before it touches the payload, so every refusal says which
check failed.

The constants never enter a FlatBuffer: the writer streams each array from its
own buffer to the file (no copy of the weights in memory, no 2 GiB limit), and
the reader returns zero-copy, read-only numpy views of the file buffer.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
import json
import os
import re
import struct
from pathlib import Path
from typing import Any, Union

import flatbuffers
import ml_dtypes  # bfloat16, which numpy lacks
import numpy as np

from forge_fe.errors import BinaryFormatError, ForgeError

from .fb import BinaryFile as fbBinaryFile
from .fb import ConstTensor as fbConstTensor
from .fb import CpuSegment as fbCpuSegment
from .fb import DebugEntry as fbDebugEntry
from .fb import Grid as fbGrid
from .fb import IndexedConstant as fbIndexedConstant
from .fb import Model as fbModel
from .fb import NamedConstant as fbNamedConstant
from .fb import Op as fbOp
from .fb import Program as fbProgram
from .fb import Step as fbStep
from .fb import SystemDesc as fbSystemDesc
from .fb import TensorDesc as fbTensorDesc
from .fb import Version as fbVersion
from .fb.StepKind import StepKind
from .model import DTYPES, Binary, CpuSegment, Op, Program, Step, SystemDesc, TensorDesc

# Major: bump on any change old readers cannot read (they refuse the file).
# Minor: bump when only adding fields (old readers accept and ignore them).
FORMAT_VERSION = (2, 0)
FILE_IDENTIFIER = b"FFTB"
CONST_ALIGNMENT = 16    # [ubyte] vectors inside the FlatBuffer (CPU libraries, the payload)
DATA_ALIGNMENT = 64     # constants in the data segment: a cache line, more than any dtype needs
# The checksum hashes the data segment in blocks of this size, one thread per core (hashlib
# releases the GIL); writes go in pieces no larger, since one write() of a multi-GiB array may be
# cut short by the OS.
_BLOCK = 1 << 26

PathLike = Union[str, "os.PathLike[str]"]

_SCHEMA_PATH = Path(__file__).with_name("schema.fbs")


def _schema_hash(text: str) -> str:
    # Comments and layout are stripped so that editing a comment (or a CRLF
    # checkout) does not make every existing file unreadable.
    text = re.sub(r"//[^\n]*", "", text)
    text = " ".join(text.split())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


SCHEMA_HASH = _schema_hash(_SCHEMA_PATH.read_text(encoding="utf-8"))

# FlatBuffers' Python builder and uoffsets are limited to 2 GiB per buffer.
_MAX_BYTES = flatbuffers.Builder.MAX_BUFFER_SIZE


def _align(n: int, to: int = DATA_ALIGNMENT) -> int:
    return -(-n // to) * to


def _dtype_table() -> dict[str, np.dtype]:
    return {n: np.dtype(ml_dtypes.bfloat16) if n == "bfloat16" else np.dtype(n) for n in DTYPES}


_DTYPES = _dtype_table()
_STEP_KINDS = {"device": StepKind.Device, "cpu": StepKind.Cpu}
_STEP_KIND_NAMES = {v: k for k, v in _STEP_KINDS.items()}


# --------------------------------------------------------------------------- writing

class _Writer:
    """Builds the Model buffer. FlatBuffers builds back to front, so every child
    (string, vector, sub-table) is created before the table that refers to it."""

    def __init__(self, size_hint: int):
        self.b = flatbuffers.Builder(size_hint)
        self._consts: dict = {}
        # The data segment, in file order: (offset, the array's bytes as a uint8 view).
        self.data: list[tuple[int, np.ndarray]] = []
        self.data_bytes = 0

    # -- primitives

    def string(self, s: str) -> int:
        return self.b.CreateString(s)

    def ints(self, values, dtype) -> int:
        return self.b.CreateNumpyVector(np.asarray(list(values), dtype=dtype).reshape(-1))

    def offsets(self, offs: list[int]) -> int:
        self.b.StartVector(4, len(offs), 4)
        for off in reversed(offs):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def strings(self, items) -> int:
        return self.offsets([self.string(s) for s in items])

    def raw_bytes(self, data) -> int:
        """A [ubyte] vector whose data is CONST_ALIGNMENT-aligned in the file.

        Written like flatc's generated Make*VectorFromBytes: one memcpy into the
        builder. CreateNumpyVector would copy a uint8 array three times (it
        byteswaps every dtype whose str is not '<...', and uint8's is '|u1').
        """
        mv = memoryview(data).cast("B")
        n = mv.nbytes
        self.b.StartVector(1, n, CONST_ALIGNMENT)
        self.b.head -= n
        self.b.Bytes[self.b.head:self.b.head + n] = mv
        return self.b.EndVector()

    # -- tables

    def tensor_desc(self, t: TensorDesc) -> int:
        name, dtype = self.string(t.name), self.string(t.dtype)
        fmt, layout = self.string(t.data_format), self.string(t.layout)
        shape = self.ints(t.shape, np.int64)
        fbTensorDesc.Start(self.b)
        fbTensorDesc.AddName(self.b, name)
        fbTensorDesc.AddShape(self.b, shape)
        fbTensorDesc.AddDtype(self.b, dtype)
        fbTensorDesc.AddDataFormat(self.b, fmt)
        fbTensorDesc.AddLayout(self.b, layout)
        return fbTensorDesc.End(self.b)

    def const_tensor(self, value, what: str) -> int:
        # One array referenced from several places (an LM's programs share their weights) is written once.
        if id(value) in self._consts:
            return self._consts[id(value)][1]
        off = self._const_tensor(value, what)
        self._consts[id(value)] = (value, off)     # value kept alive so its id stays unique
        return off

    def _const_tensor(self, value, what: str) -> int:
        arr = np.asarray(value)
        if arr.dtype.name not in _DTYPES:
            raise ForgeError("binary", f"cannot serialize {what}: unsupported dtype {arr.dtype}",
                             f"supported dtypes: {', '.join(sorted(_DTYPES))}")
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)   # a view unless arr was strided
        offset = 0
        if raw.nbytes:      # an empty array takes no bytes (and no place past the segment's end)
            offset = _align(self.data_bytes)
            self.data.append((offset, raw))
            self.data_bytes = offset + raw.nbytes
        dtype, shape = self.string(arr.dtype.name), self.ints(arr.shape, np.int64)
        fbConstTensor.Start(self.b)
        fbConstTensor.AddDtype(self.b, dtype)
        fbConstTensor.AddShape(self.b, shape)
        fbConstTensor.AddOffset(self.b, offset)
        fbConstTensor.AddNbytes(self.b, raw.nbytes)
        return fbConstTensor.End(self.b)

    def op(self, op: Op, where: str) -> int:
        try:
            attrs = json.dumps(op.attrs, default=_json_default)
        except (TypeError, ValueError) as e:
            raise ForgeError("binary", f"attributes of op {op.name!r} ({where}, loc {op.loc!r}) "
                             f"are not JSON-serializable: {e}") from e
        name, attrs_s, loc = self.string(op.name), self.string(attrs), self.string(op.loc)
        ins, outs = self.ints(op.inputs, np.int32), self.ints(op.outputs, np.int32)
        fbOp.Start(self.b)
        fbOp.AddName(self.b, name)
        fbOp.AddInputs(self.b, ins)
        fbOp.AddOutputs(self.b, outs)
        fbOp.AddAttrsJson(self.b, attrs_s)
        fbOp.AddLoc(self.b, loc)
        return fbOp.End(self.b)

    def program(self, p: Program) -> int:
        consts = []
        for index, value in p.constants.items():
            v = self.const_tensor(value, f"constant {index} of program {p.name!r}")
            fbIndexedConstant.Start(self.b)
            fbIndexedConstant.AddIndex(self.b, int(index))
            fbIndexedConstant.AddValue(self.b, v)
            consts.append(fbIndexedConstant.End(self.b))
        consts_v = self.offsets(consts)
        ops_v = self.offsets([self.op(op, f"program {p.name!r} op {i}") for i, op in enumerate(p.ops)])
        tensors_v = self.offsets([self.tensor_desc(t) for t in p.tensors])
        name = self.string(p.name)
        ins, outs = self.ints(p.inputs, np.int32), self.ints(p.outputs, np.int32)
        fbProgram.Start(self.b)
        fbProgram.AddName(self.b, name)
        fbProgram.AddTensors(self.b, tensors_v)
        fbProgram.AddInputs(self.b, ins)
        fbProgram.AddOutputs(self.b, outs)
        fbProgram.AddOps(self.b, ops_v)
        fbProgram.AddConstants(self.b, consts_v)
        fbProgram.AddPrivate(self.b, bool(p.private))
        return fbProgram.End(self.b)

    def cpu_segment(self, s: CpuSegment) -> int:
        lib = self.raw_bytes(bytes(s.library))
        ins = self.offsets([self.tensor_desc(t) for t in s.inputs])
        outs = self.offsets([self.tensor_desc(t) for t in s.outputs])
        name, entry = self.string(s.name), self.string(s.entry)
        fbCpuSegment.Start(self.b)
        fbCpuSegment.AddName(self.b, name)
        fbCpuSegment.AddLibrary(self.b, lib)
        fbCpuSegment.AddInputs(self.b, ins)
        fbCpuSegment.AddOutputs(self.b, outs)
        fbCpuSegment.AddEntry(self.b, entry)
        return fbCpuSegment.End(self.b)

    def step(self, s: Step, i: int) -> int:
        if s.kind not in _STEP_KINDS:
            raise ForgeError("binary", f"plan step {i} has kind {s.kind!r}",
                             f"expected one of {sorted(_STEP_KINDS)}")
        ins, outs = self.strings(s.inputs), self.strings(s.outputs)
        fbStep.Start(self.b)
        fbStep.AddKind(self.b, _STEP_KINDS[s.kind])
        fbStep.AddIndex(self.b, int(s.index))
        fbStep.AddInputs(self.b, ins)
        fbStep.AddOutputs(self.b, outs)
        return fbStep.End(self.b)

    def system(self, d: SystemDesc) -> int:
        arch = self.string(d.arch)
        fbSystemDesc.Start(self.b)
        fbSystemDesc.AddArch(self.b, arch)
        # Structs are written inline, between Start and End of their table.
        fbSystemDesc.AddGrid(self.b, fbGrid.CreateGrid(self.b, int(d.grid[0]), int(d.grid[1])))
        fbSystemDesc.AddL1Size(self.b, int(d.l1_size))
        fbSystemDesc.AddDramSize(self.b, int(d.dram_size))
        fbSystemDesc.AddDramBandwidth(self.b, float(d.dram_bandwidth))
        fbSystemDesc.AddClockHz(self.b, float(d.clock_hz))
        return fbSystemDesc.End(self.b)

    def model(self, m: Binary) -> int:
        consts = []
        for name, value in m.constants.items():
            v = self.const_tensor(value, f"plan constant {name!r}")
            n = self.string(name)
            fbNamedConstant.Start(self.b)
            fbNamedConstant.AddName(self.b, n)
            fbNamedConstant.AddValue(self.b, v)
            consts.append(fbNamedConstant.End(self.b))
        consts_v = self.offsets(consts)
        programs_v = self.offsets([self.program(p) for p in m.programs])
        segments_v = self.offsets([self.cpu_segment(s) for s in m.cpu_segments])
        plan_v = self.offsets([self.step(s, i) for i, s in enumerate(m.plan)])
        inputs_v = self.offsets([self.tensor_desc(t) for t in m.inputs])
        outputs_v = self.strings(m.outputs)
        debug = []
        for key, value in m.debug.items():
            k, v = self.string(key), self.string(value)
            fbDebugEntry.Start(self.b)
            fbDebugEntry.AddKey(self.b, k)
            fbDebugEntry.AddValue(self.b, v)
            debug.append(fbDebugEntry.End(self.b))
        debug_v = self.offsets(debug)
        system = self.system(m.system)
        name, structure = self.string(m.model_name), self.string(m.output_structure)
        compute = self.string(json.dumps(m.compute_config, default=_json_default))
        mesh = self.string(json.dumps(m.mesh)) if m.mesh else None
        fbModel.Start(self.b)
        fbModel.AddModelName(self.b, name)
        fbModel.AddSystem(self.b, system)
        fbModel.AddPrograms(self.b, programs_v)
        fbModel.AddCpuSegments(self.b, segments_v)
        fbModel.AddPlan(self.b, plan_v)
        fbModel.AddInputs(self.b, inputs_v)
        fbModel.AddOutputs(self.b, outputs_v)
        fbModel.AddConstants(self.b, consts_v)
        fbModel.AddOutputStructure(self.b, structure)
        fbModel.AddDebug(self.b, debug_v)
        fbModel.AddComputeConfig(self.b, compute)
        if mesh is not None:
            fbModel.AddMesh(self.b, mesh)
        return fbModel.End(self.b)


def _json_default(obj):
    # Compiler attrs often carry numpy scalars/arrays; store them as plain JSON.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def _inline_bytes(binary: Binary) -> int:
    """What the FlatBuffer itself must hold: CPU libraries and debug sections (tables are small)."""
    return (sum(len(s.library) + CONST_ALIGNMENT for s in binary.cpu_segments)
            + sum(len(v.encode("utf-8")) for v in binary.debug.values()))


def _builder_view(b: flatbuffers.Builder) -> memoryview:
    # The finished buffer without the copy Builder.Output() makes.
    return memoryview(b.Bytes)[b.Head():]


def _segment_blocks(data: list[tuple[int, np.ndarray]]) -> list[list[memoryview]]:
    """The data segment's bytes (zero padding between constants), without joining them: a list of
    _BLOCK-sized blocks (the last one shorter), each the list of its pieces in order."""
    blocks: list[list[memoryview]] = []
    pos = 0
    for offset, raw in data:
        for buf in (memoryview(bytes(offset - pos)), memoryview(raw).cast("B")):
            while len(buf):
                if pos % _BLOCK == 0:
                    blocks.append([])
                n = min(len(buf), _BLOCK - pos % _BLOCK)
                blocks[-1].append(buf[:n])
                pos, buf = pos + n, buf[n:]
    return blocks


def compute_checksum(payload, blocks: list[list]) -> str:
    """sha256 hex of the payload bytes followed by the sha256 digests of the data segment's blocks.

    Block by block so that every core hashes: one sha256 runs at ~1.2 GB/s here, the time of
    writing the file."""
    def digest(pieces) -> bytes:
        h = hashlib.sha256()
        for piece in pieces:
            h.update(piece)
        return h.digest()
    total = hashlib.sha256(payload)
    if blocks:
        with ThreadPoolExecutor(min(len(blocks), os.cpu_count() or 1)) as pool:
            for d in pool.map(digest, blocks):
                total.update(d)
    return total.hexdigest()


def segment_blocks(segment: np.ndarray) -> list[list[np.ndarray]]:
    """A contiguous data segment (as read from a file) cut into checksum blocks."""
    return [[segment[at:at + _BLOCK]] for at in range(0, segment.size, _BLOCK)]


class _FileImage:
    """A .ttb file before it is written: the envelope's bytes and the data segment's blocks."""

    def __init__(self, head: memoryview, blocks: list[list[memoryview]]):
        self.head, self.blocks = head, blocks

    def chunks(self):
        yield self.head
        for block in self.blocks:
            yield from block


def _build(binary: Binary) -> _FileImage:
    inline = _inline_bytes(binary)
    too_big = ForgeError("binary", f"model {binary.model_name!r} has {inline / 2**30:.2f} GiB of CPU libraries "
                         "and debug sections; the FlatBuffer part of a binary is limited to 2 GiB "
                         "(constants are not: they live outside it)",
                         "compile without a dump directory (debug sections) or with fewer CPU-fallback ops")
    if inline >= _MAX_BYTES:
        raise too_big
    try:
        return _build_unchecked(binary, inline)
    except flatbuffers.builder.BuilderSizeError as e:
        raise too_big from e


def _build_unchecked(binary: Binary, inline: int) -> _FileImage:
    # Size the builders up front: growing doubles and copies the whole buffer.
    inner = _Writer(min(inline + (1 << 20), _MAX_BYTES))
    inner.b.Finish(inner.model(binary))
    payload = _builder_view(inner.b)

    blocks = _segment_blocks(inner.data)
    digest = compute_checksum(payload, blocks)
    outer = _Writer(min(len(payload) + 4096, _MAX_BYTES))
    payload_v = outer.raw_bytes(payload)
    data_bytes = inner.data_bytes
    del payload, inner  # free the Model buffer before the file image is taken
    cv = outer.string(binary.compiler_version)
    sh = outer.string(SCHEMA_HASH)
    ck = outer.string(digest)
    b = outer.b
    fbBinaryFile.Start(b)
    fbBinaryFile.AddFormatVersion(b, fbVersion.CreateVersion(b, *FORMAT_VERSION))
    fbBinaryFile.AddCompilerVersion(b, cv)
    fbBinaryFile.AddSchemaHash(b, sh)
    fbBinaryFile.AddChecksum(b, ck)
    fbBinaryFile.AddPayload(b, payload_v)
    fbBinaryFile.AddDataBytes(b, data_bytes)
    # Pad the envelope to a whole number of DATA_ALIGNMENT blocks (FlatBuffers pads the front of the
    # buffer to its largest alignment): the data segment follows with no gap, so the size prefix
    # and data_bytes must add up to the file's length exactly.
    b.minalign = max(b.minalign, DATA_ALIGNMENT)
    b.FinishSizePrefixed(fbBinaryFile.End(b), FILE_IDENTIFIER)
    return _FileImage(_builder_view(b), blocks)


def to_bytes(binary: Binary) -> bytes:
    """Serialize `binary` to the bytes of a .ttb file."""
    return b"".join(_build(binary).chunks())


def write(binary: Binary, path: PathLike) -> None:
    """Write `binary` to `path` atomically (a crash never leaves a half-written file).

    The constants go from their own buffers to the file: writing holds no copy of the weights."""
    path = Path(path)
    image = _build(binary)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            for chunk in image.chunks():
                f.write(chunk)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------- reading

def _fail(source: str, message: str, hint: str = "") -> BinaryFormatError:
    return BinaryFormatError(f"{source}: {message}", hint)


def _s(b) -> str:
    return b.decode("utf-8") if b is not None else ""


def _ints(arr) -> list[int]:
    # Generated *AsNumpy() accessors return 0, not an empty array, for absent vectors.
    return [] if isinstance(arr, int) else arr.tolist()


def _strs(table, getter: str) -> list[str]:
    get, n = getattr(table, getter), getattr(table, getter + "Length")()
    return [_s(get(i)) for i in range(n)]


def _items(table, getter: str) -> list:
    get, n = getattr(table, getter), getattr(table, getter + "Length")()
    return [get(i) for i in range(n)]


def _read_tensor_desc(t) -> TensorDesc:
    return TensorDesc(name=_s(t.Name()), shape=tuple(_ints(t.ShapeAsNumpy())), dtype=_s(t.Dtype()),
                      data_format=_s(t.DataFormat()), layout=_s(t.Layout()))


class _Constants:
    """Reads ConstTensor tables as read-only views of the data segment.

    A constant written once (an LM's programs share their weights) is read as one array."""

    def __init__(self, segment: np.ndarray, source: str):
        self.segment, self.source = segment, source
        self._seen: dict[int, np.ndarray] = {}

    def read(self, c, what: str) -> np.ndarray:
        arr = self._seen.get(c._tab.Pos)
        if arr is None:
            arr = self._seen[c._tab.Pos] = self._read(c, what)
        return arr

    def _read(self, c, what: str) -> np.ndarray:
        name = _s(c.Dtype())
        if name not in _DTYPES:
            raise _fail(self.source, f"{what} has unknown dtype {name!r}",
                        "the file is corrupt or newer than this forge_fe")
        dtype, shape = _DTYPES[name], tuple(_ints(c.ShapeAsNumpy()))
        offset, nbytes = c.Offset(), c.Nbytes()
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise _fail(self.source, f"{what} holds {nbytes} bytes but {name}{list(shape)} needs {expected}",
                        "the file is corrupt")
        if offset % DATA_ALIGNMENT or offset + nbytes > self.segment.size:
            raise _fail(self.source, f"{what} lies at bytes {offset}..{offset + nbytes} of a "
                        f"{self.segment.size}-byte data segment (aligned to {DATA_ALIGNMENT}): file is corrupt")
        arr = self.segment[offset:offset + nbytes].view(dtype).reshape(shape)
        # A view into the file buffer: constants are shared, never mutated.
        arr.flags.writeable = False
        return arr


def _read_program(p, consts: _Constants) -> Program:
    name = _s(p.Name())
    constants = {}
    for c in _items(p, "Constants"):
        constants[c.Index()] = consts.read(c.Value(), f"constant {c.Index()} of program {name!r}")
    ops = [Op(name=_s(o.Name()), inputs=_ints(o.InputsAsNumpy()), outputs=_ints(o.OutputsAsNumpy()),
              attrs=json.loads(_s(o.AttrsJson()) or "{}"), loc=_s(o.Loc()))
           for o in _items(p, "Ops")]
    return Program(name=name, tensors=[_read_tensor_desc(t) for t in _items(p, "Tensors")],
                   inputs=_ints(p.InputsAsNumpy()), outputs=_ints(p.OutputsAsNumpy()),
                   ops=ops, constants=constants, private=bool(p.Private()))


def _read_cpu_segment(s) -> CpuSegment:
    lib = s.LibraryAsNumpy()
    return CpuSegment(name=_s(s.Name()), library=b"" if isinstance(lib, int) else lib.tobytes(),
                      inputs=[_read_tensor_desc(t) for t in _items(s, "Inputs")],
                      outputs=[_read_tensor_desc(t) for t in _items(s, "Outputs")],
                      entry=_s(s.Entry()))


def _read_step(s, source: str) -> Step:
    kind = _STEP_KIND_NAMES.get(s.Kind())
    if kind is None:
        raise _fail(source, f"plan step has unknown kind {s.Kind()}", "the file is newer than this forge_fe")
    return Step(kind=kind, index=s.Index(), inputs=_strs(s, "Inputs"), outputs=_strs(s, "Outputs"))


def _read_system(d) -> SystemDesc:
    if d is None:
        return SystemDesc()
    grid = d.Grid()
    return SystemDesc(arch=_s(d.Arch()), grid=(grid.Rows(), grid.Cols()) if grid else SystemDesc().grid,
                      l1_size=d.L1Size(), dram_size=d.DramSize(),
                      dram_bandwidth=d.DramBandwidth(), clock_hz=d.ClockHz())


def _read_model(m, compiler_version: str, source: str, segment: np.ndarray) -> Binary:
    consts = _Constants(segment, source)
    return Binary(
        compiler_version=compiler_version,
        system=_read_system(m.System()),
        programs=[_read_program(p, consts) for p in _items(m, "Programs")],
        cpu_segments=[_read_cpu_segment(s) for s in _items(m, "CpuSegments")],
        plan=[_read_step(s, source) for s in _items(m, "Plan")],
        inputs=[_read_tensor_desc(t) for t in _items(m, "Inputs")],
        outputs=_strs(m, "Outputs"),
        constants={_s(c.Name()): consts.read(c.Value(), f"plan constant {_s(c.Name())!r}")
                   for c in _items(m, "Constants")},
        output_structure=_s(m.OutputStructure()),
        debug={_s(e.Key()): _s(e.Value()) for e in _items(m, "Debug")},
        model_name=_s(m.ModelName()),
        compute_config=json.loads(_s(m.ComputeConfig()) or "{}"),
        mesh=json.loads(_s(m.Mesh()) or "{}"),
    )


def _open_envelope(data, source: str) -> tuple[dict, Any, np.ndarray]:
    """Run every envelope check; return (header facts, the Model table, the data segment)."""
    n = len(data)
    if n < 12:
        raise _fail(source, f"only {n} bytes: not a forge_fe binary (or truncated)")
    ident = bytes(data[8:12])
    if ident != FILE_IDENTIFIER:
        raise _fail(source, f"not a forge_fe binary: file identifier is {ident!r}, expected {FILE_IDENTIFIER!r}",
                    "pass a .ttb file written by forge_fe (CompiledModel.save / forge_fe.binary.write)")
    head_end = 4 + struct.unpack_from("<I", data, 0)[0]
    truncated = ("the copy or download was incomplete; copy it again or recompile")
    if n < head_end:
        raise _fail(source, f"file is truncated: its header alone is {head_end} bytes, found {n}", truncated)
    if head_end % DATA_ALIGNMENT:
        raise _fail(source, f"file is corrupt: its header's size ({head_end} bytes) is not a multiple of "
                    f"{DATA_ALIGNMENT}, as every forge_fe {FORMAT_VERSION[0]}.x binary's is")
    try:
        root = fbBinaryFile.BinaryFile.GetRootAs(data, 4)
        v = root.FormatVersion()
        version = (v.Major(), v.Minor()) if v is not None else None
        compiler_version = _s(root.CompilerVersion())
        schema_hash = _s(root.SchemaHash())
        checksum = _s(root.Checksum())
        payload = root.PayloadAsNumpy()
        model = root.PayloadNestedRoot()
        data_bytes = root.DataBytes()
    except Exception as e:
        raise _fail(source, f"cannot decode the file header ({type(e).__name__}: {e}): file is corrupt") from e
    if version is None or isinstance(payload, int):
        raise _fail(source, "file header lacks a format version or payload: file is corrupt")

    ours = ".".join(map(str, FORMAT_VERSION))
    theirs = ".".join(map(str, version))
    if version[0] != FORMAT_VERSION[0]:
        raise _fail(source, f"incompatible format version {theirs} (written by forge_fe {compiler_version!r}); "
                    f"this forge_fe reads format {FORMAT_VERSION[0]}.x ({ours})",
                    "recompile the model with this forge_fe")
    # Same major and minor must mean the same schema; a differing minor only adds
    # fields, which FlatBuffers readers skip, so the hash cannot match there.
    if version[1] == FORMAT_VERSION[1] and schema_hash != SCHEMA_HASH:
        raise _fail(source, f"schema hash mismatch at format version {theirs}: file {schema_hash[:12]}..., "
                    f"this forge_fe {SCHEMA_HASH[:12]}... (written by forge_fe {compiler_version!r})",
                    "recompile the model with this forge_fe")
    data_start = head_end
    if n < data_start + data_bytes:
        raise _fail(source, f"file is truncated: its header says {data_start + data_bytes} bytes, found {n}",
                    truncated)
    if n > data_start + data_bytes:
        raise _fail(source, f"file is corrupt: {n - data_start - data_bytes} unexpected bytes after the end "
                    f"({data_start + data_bytes} bytes expected, found {n})")
    segment = np.frombuffer(data, np.uint8, count=data_bytes, offset=data_start)
    actual = compute_checksum(payload, segment_blocks(segment))
    if actual != checksum:
        raise _fail(source, f"checksum mismatch: file is corrupt (stored sha256 {checksum[:12]}..., "
                    f"computed {actual[:12]}...)", "copy the file again or recompile")
    header = {"format_version": theirs, "compiler_version": compiler_version, "schema_hash": schema_hash,
              "checksum": f"sha256:{checksum}", "file_bytes": n, "data_bytes": data_bytes}
    return header, model, segment


def _decode(data, source: str) -> tuple[dict, Binary]:
    from .validate import check_binary
    header, model, segment = _open_envelope(data, source)
    try:
        binary = _read_model(model, header["compiler_version"], source, segment)
    except BinaryFormatError:
        raise
    except Exception as e:
        raise _fail(source, f"cannot decode the model ({type(e).__name__}: {e})",
                    "the file passed its checksum, so it was written wrongly; please report it") from e
    return header, check_binary(binary, source)


def from_bytes(data: Union[bytes, bytearray, memoryview], *, _source: str = "<bytes>") -> Binary:
    """Decode a .ttb image. Constants are read-only views into `data`."""
    return _decode(data, _source)[1]


def _read_file(path: PathLike) -> bytearray:
    # bytearray (malloc'd, 16-byte aligned) keeps the constants' alignment in memory.
    with open(path, "rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        got = f.readinto(buf)
    return buf[:got] if got != len(buf) else buf


def read(path: PathLike) -> Binary:
    """Load a .ttb file. Raises BinaryFormatError naming `path` and the failed check."""
    return _decode(_read_file(path), str(path))[1]


# --------------------------------------------------------------------------- describe

def _tensor_summary(t: TensorDesc) -> dict:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
            "data_format": t.data_format, "layout": t.layout}


def describe(binary: Union[Binary, PathLike]) -> dict:
    """A JSON-serializable summary of a Binary or of a .ttb file (which adds file facts)."""
    header = {"format_version": ".".join(map(str, FORMAT_VERSION))}
    if not isinstance(binary, Binary):
        header, binary = _decode(_read_file(binary), str(binary))
    s = binary.system
    nbytes = lambda consts: int(sum(np.asarray(v).nbytes for v in consts.values()))  # noqa: E731
    names = {"device": [p.name for p in binary.programs], "cpu": [c.name for c in binary.cpu_segments]}

    def callee(step: Step) -> str:
        table = names.get(step.kind, [])
        return table[step.index] if 0 <= step.index < len(table) else f"<bad index {step.index}>"

    return {
        **header,
        "model_name": binary.model_name,
        "compiler_version": binary.compiler_version,
        "system": {"arch": s.arch, "grid": list(s.grid), "l1_size": s.l1_size, "dram_size": s.dram_size,
                   "dram_bandwidth": s.dram_bandwidth, "clock_hz": s.clock_hz},
        **({"mesh": binary.mesh} if binary.mesh else {}),
        "inputs": [_tensor_summary(t) for t in binary.inputs],
        "outputs": list(binary.outputs),
        "programs": [{"name": p.name, "private": p.private, "ops": len(p.ops), "tensors": len(p.tensors),
                      "inputs": len(p.inputs), "outputs": len(p.outputs),
                      "constants": len(p.constants), "const_bytes": nbytes(p.constants)}
                     for p in binary.programs],
        "cpu_segments": [{"name": c.name, "library_bytes": len(c.library), "entry": c.entry,
                          "inputs": len(c.inputs), "outputs": len(c.outputs)} for c in binary.cpu_segments],
        "plan": [{"kind": st.kind, "index": st.index, "callee": callee(st),
                  "inputs": list(st.inputs), "outputs": list(st.outputs)} for st in binary.plan],
        "plan_constants": len(binary.constants),
        "plan_const_bytes": nbytes(binary.constants),
        "debug": {k: len(v) for k, v in binary.debug.items()},
    }
