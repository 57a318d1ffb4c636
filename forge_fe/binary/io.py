"""Serialize `Binary` to and from the FlatBuffers file described by schema.fbs.

File layout: a size-prefixed `BinaryFile` envelope (identifier "FFTB", format
version, compiler version, schema hash, sha256 checksum) whose `payload` is a
nested FlatBuffer holding the `Model`. The reader checks the envelope before it
touches the payload, so every refusal says which check failed.

Constant data is copied into the builder in one memcpy at 16-byte alignment and
read back as zero-copy, read-only numpy views of the file buffer (no Python
loops over elements either way).
"""
from __future__ import annotations

import hashlib
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
FORMAT_VERSION = (1, 2)
FILE_IDENTIFIER = b"FFTB"
CONST_ALIGNMENT = 16

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
        raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        data = self.raw_bytes(raw)
        dtype, shape = self.string(arr.dtype.name), self.ints(arr.shape, np.int64)
        fbConstTensor.Start(self.b)
        fbConstTensor.AddDtype(self.b, dtype)
        fbConstTensor.AddShape(self.b, shape)
        fbConstTensor.AddData(self.b, data)
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
        # Big blobs first: they sit at the end of the buffer, the tables in front.
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


def _blob_bytes(binary: Binary) -> int:
    arrays = list(binary.constants.values())
    for p in binary.programs:
        arrays.extend(p.constants.values())
    n = sum(np.asarray(a).nbytes + 2 * CONST_ALIGNMENT for a in arrays)
    n += sum(len(s.library) + CONST_ALIGNMENT for s in binary.cpu_segments)
    n += sum(len(v) for v in binary.debug.values())
    return n


def _builder_view(b: flatbuffers.Builder) -> memoryview:
    # The finished buffer without the copy Builder.Output() makes.
    return memoryview(b.Bytes)[b.Head():]


def _build(binary: Binary) -> memoryview:
    blobs = _blob_bytes(binary)
    too_big = ForgeError("binary", f"model {binary.model_name!r} has {blobs / 2**30:.2f} GiB of constants "
                         "and libraries; a FlatBuffers file is limited to 2 GiB",
                         "keep large weights out of the binary (e.g. fewer const-eval outputs)")
    if blobs >= _MAX_BYTES:
        raise too_big
    try:
        return _build_unchecked(binary, blobs)
    except flatbuffers.builder.BuilderSizeError as e:
        raise too_big from e


def _build_unchecked(binary: Binary, blobs: int) -> memoryview:
    # Size the builders up front: growing doubles and copies the whole buffer.
    inner = _Writer(min(blobs + (1 << 20), _MAX_BYTES))
    inner.b.Finish(inner.model(binary))
    payload = _builder_view(inner.b)

    checksum = hashlib.sha256(payload).hexdigest()
    outer = _Writer(min(len(payload) + 4096, _MAX_BYTES))
    payload_v = outer.raw_bytes(payload)
    del payload, inner  # free the Model buffer before the file image is taken
    cv = outer.string(binary.compiler_version)
    sh = outer.string(SCHEMA_HASH)
    ck = outer.string(checksum)
    b = outer.b
    fbBinaryFile.Start(b)
    fbBinaryFile.AddFormatVersion(b, fbVersion.CreateVersion(b, *FORMAT_VERSION))
    fbBinaryFile.AddCompilerVersion(b, cv)
    fbBinaryFile.AddSchemaHash(b, sh)
    fbBinaryFile.AddChecksum(b, ck)
    fbBinaryFile.AddPayload(b, payload_v)
    b.FinishSizePrefixed(fbBinaryFile.End(b), FILE_IDENTIFIER)
    return _builder_view(b)


def to_bytes(binary: Binary) -> bytes:
    """Serialize `binary` to the bytes of a .ttb file."""
    return bytes(_build(binary))


def write(binary: Binary, path: PathLike) -> None:
    """Write `binary` to `path` atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    data = _build(binary)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
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


def _read_const(c, source: str, what: str, shared: dict | None = None) -> np.ndarray:
    """`shared` maps a ConstTensor's position to its array: one written once is read as one array."""
    if shared is not None and c._tab.Pos in shared:
        return shared[c._tab.Pos]
    arr = _read_const_data(c, source, what)
    if shared is not None:
        shared[c._tab.Pos] = arr
    return arr


def _read_const_data(c, source: str, what: str) -> np.ndarray:
    name = _s(c.Dtype())
    if name not in _DTYPES:
        raise _fail(source, f"{what} has unknown dtype {name!r}", "the file is corrupt or newer than this forge_fe")
    dtype, shape = _DTYPES[name], tuple(_ints(c.ShapeAsNumpy()))
    data = c.DataAsNumpy()
    if isinstance(data, int):
        data = np.zeros(0, np.uint8)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if data.nbytes != expected:
        raise _fail(source, f"{what} holds {data.nbytes} bytes but {name}{list(shape)} needs {expected}",
                    "the file is corrupt")
    arr = data.view(dtype).reshape(shape)
    # A view into the file buffer: constants are shared, never mutated.
    arr.flags.writeable = False
    return arr


def _read_program(p, source: str, shared: dict | None = None) -> Program:
    name = _s(p.Name())
    constants = {}
    for c in _items(p, "Constants"):
        constants[c.Index()] = _read_const(c.Value(), source, f"constant {c.Index()} of program {name!r}", shared)
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


def _read_model(m, compiler_version: str, source: str) -> Binary:
    shared: dict = {}
    return Binary(
        compiler_version=compiler_version,
        system=_read_system(m.System()),
        programs=[_read_program(p, source, shared) for p in _items(m, "Programs")],
        cpu_segments=[_read_cpu_segment(s) for s in _items(m, "CpuSegments")],
        plan=[_read_step(s, source) for s in _items(m, "Plan")],
        inputs=[_read_tensor_desc(t) for t in _items(m, "Inputs")],
        outputs=_strs(m, "Outputs"),
        constants={_s(c.Name()): _read_const(c.Value(), source, f"plan constant {_s(c.Name())!r}", shared)
                   for c in _items(m, "Constants")},
        output_structure=_s(m.OutputStructure()),
        debug={_s(e.Key()): _s(e.Value()) for e in _items(m, "Debug")},
        model_name=_s(m.ModelName()),
        compute_config=json.loads(_s(m.ComputeConfig()) or "{}"),
        mesh=json.loads(_s(m.Mesh()) or "{}"),
    )


def _open_envelope(data, source: str) -> tuple[dict, Any]:
    """Run every envelope check; return (header facts, the Model table)."""
    n = len(data)
    if n < 12:
        raise _fail(source, f"only {n} bytes: not a forge_fe binary (or truncated)")
    ident = bytes(data[8:12])
    if ident != FILE_IDENTIFIER:
        raise _fail(source, f"not a forge_fe binary: file identifier is {ident!r}, expected {FILE_IDENTIFIER!r}",
                    "pass a .ttb file written by forge_fe (CompiledModel.save / forge_fe.binary.write)")
    size = struct.unpack_from("<I", data, 0)[0]
    if n - 4 < size:
        raise _fail(source, f"file is truncated: its header says {size + 4} bytes, found {n}",
                    "the copy or download was incomplete; copy it again or recompile")
    if n - 4 > size:
        raise _fail(source, f"file is corrupt: {n - 4 - size} unexpected bytes after the end "
                    f"({size + 4} bytes expected, found {n})")
    try:
        root = fbBinaryFile.BinaryFile.GetRootAs(data, 4)
        v = root.FormatVersion()
        version = (v.Major(), v.Minor()) if v is not None else None
        compiler_version = _s(root.CompilerVersion())
        schema_hash = _s(root.SchemaHash())
        checksum = _s(root.Checksum())
        payload = root.PayloadAsNumpy()
        model = root.PayloadNestedRoot()
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
    actual = hashlib.sha256(payload).hexdigest()
    if actual != checksum:
        raise _fail(source, f"checksum mismatch: file is corrupt (stored sha256 {checksum[:12]}..., "
                    f"computed {actual[:12]}...)", "copy the file again or recompile")
    header = {"format_version": theirs, "compiler_version": compiler_version, "schema_hash": schema_hash,
              "checksum": f"sha256:{checksum}", "file_bytes": n}
    return header, model


def _decode(data, source: str) -> tuple[dict, Binary]:
    from .validate import check_binary
    header, model = _open_envelope(data, source)
    try:
        binary = _read_model(model, header["compiler_version"], source)
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
