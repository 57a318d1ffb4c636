"""One emitter for TTIR: it owns SSA naming, types, locations and attribute spelling.

Every op is recorded twice from the same call: as MLIR generic-form text (the
artifact engineers read and tt-mlir parses) and as a `binary.Op` record (what the
runtime executes). Because both come from one place they cannot drift apart.

Attribute values are small typed wrappers so each knows its MLIR spelling
(`array<i32: 1, 1>`, `-1 : si32`, ...) and its plain JSON value.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from forge_fe.binary import model as bm

# Device element types (DESIGN.md: i64 -> si32, f64 -> f32, i1 -> bf16).
# float16 and float64 values are carried exactly in f32 (a data-format override still applies).
_ELEM = {
    "float32": "f32", "float64": "f32", "float16": "f32", "bfloat16": "bf16",
    "int64": "si32", "int32": "si32", "int16": "si32", "int8": "si32", "uint8": "ui32",
    "bool": "bf16",
}
# The dtype a tensor of that element type has on the (emulated) device.
_DEVICE_DTYPE = {"f32": "float32", "bf16": "bfloat16", "si32": "int32", "ui32": "int32"}


def element_type(dtype: str, data_format=None) -> str:
    """TTIR element type of a tensor with this framework dtype and device data format."""
    elem = _ELEM.get(dtype)
    if elem is None:
        raise ValueError(f"dtype {dtype} has no device element type")
    if elem == "f32" and data_format is not None:
        return data_format.ttir_elem
    return elem


def device_dtype(dtype: str, data_format=None) -> str:
    return _DEVICE_DTYPE[element_type(dtype, data_format)]


def tensor_type(shape, elem: str) -> str:
    dims = "x".join(str(int(d)) for d in shape)
    return f"tensor<{dims}x{elem}>" if dims else f"tensor<{elem}>"


def _f32_literal(v: float) -> str:
    if math.isfinite(v):
        text = repr(float(np.float32(v)))
        return text if ("." in text or "e" in text) else text + ".0"
    # MLIR spells non-finite floats by their bit pattern.
    return "0x%08X" % struct.unpack("<I", struct.pack("<f", v))[0]


# ---- typed attribute values -------------------------------------------------------

@dataclass(frozen=True)
class Attr:
    value: object

    def mlir(self) -> str:
        raise NotImplementedError


class I32Array(Attr):      # dense array attribute
    def mlir(self):
        return "array<i32: " + ", ".join(str(int(v)) for v in self.value) + ">" if self.value else "array<i32>"


class I64Array(Attr):
    def mlir(self):
        return "array<i64: " + ", ".join(str(int(v)) for v in self.value) + ">" if self.value else "array<i64>"


class I32List(Attr):       # ArrayAttr of i32 (reshape shape, reduction dims)
    def mlir(self):
        return "[" + ", ".join(f"{int(v)} : i32" for v in self.value) + "]"


class SI32(Attr):
    def mlir(self):
        return f"{int(self.value)} : si32"


class I32(Attr):
    def mlir(self):
        return f"{int(self.value)} : i32"


class F32(Attr):
    def mlir(self):
        return f"{_f32_literal(self.value)} : f32"


class Bool(Attr):
    def mlir(self):
        return "true" if self.value else "false"


class Str(Attr):
    def mlir(self):
        return '"' + str(self.value).replace('"', '\\"') + '"'


class UI32(Attr):
    def mlir(self):
        return f"{int(self.value)} : ui32"


def ttcore_enum(kind: str):
    """An enum attribute of the ttcore dialect, e.g. ttcore_enum("reduce_type")("sum") spells
    `#ttcore.reduce_type<sum>` (tt-mlir include/ttmlir/Dialect/TTCore/IR/TTCoreOpsTypes.td)."""
    return type(f"TTCore_{kind}", (Attr,), {"mlir": lambda self: f"#ttcore.{kind}<{self.value}>"})


def _json_value(attr: Attr):
    v = attr.value
    if isinstance(v, (list, tuple)):
        return [x.item() if hasattr(x, "item") else x for x in v]
    return v.item() if hasattr(v, "item") else v


# ---- the emitter ------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    """An SSA value: its name in the text and its index in the program's tensor table."""
    ssa: str
    index: int
    shape: tuple[int, ...]
    elem: str


class Emitter:
    """Builds one TTIR function and the matching binary Program."""

    def __init__(self, func_name: str):
        self.func_name = func_name
        self.tensors: list[bm.TensorDesc] = []
        self.ops: list[bm.Op] = []
        self.args: list[tuple[Value, str]] = []      # (value, argument kind)
        self.constants: dict[int, np.ndarray] = {}
        self.results: list[Value] = []
        self._lines: list[str] = []
        self._next = 0
        self.loc = ""                                 # location stamped on emitted ops

    def _new_tensor(self, name, shape, elem, data_format) -> int:
        self.tensors.append(bm.TensorDesc(name=name, shape=tuple(int(d) for d in shape),
                                          dtype=_DEVICE_DTYPE[elem], data_format=data_format))
        return len(self.tensors) - 1

    def argument(self, name: str, shape, elem: str, kind: str = "input",
                 data_format: str = "Float32", value: np.ndarray | None = None) -> Value:
        """A function argument; `kind` is input, parameter or constant (ttcore.argument_type)."""
        idx = self._new_tensor(name, shape, elem, data_format)
        v = Value(f"%arg{len(self.args)}", idx, tuple(shape), elem)
        self.args.append((v, kind))
        if value is not None:
            self.constants[idx] = value
        return v

    def op(self, name: str, operands: list[Value], shape, elem: str, attrs: dict | None = None,
           data_format: str = "Float32") -> Value:
        attrs = attrs or {}
        idx = self._new_tensor(self.loc or name, shape, elem, data_format)
        result = Value(f"%{self._next}", idx, tuple(int(d) for d in shape), elem)
        self._next += 1
        props = ""
        if attrs:
            props = " <{" + ", ".join(f"{k} = {a.mlir()}" for k, a in attrs.items()) + "}>"
        in_types = ", ".join(tensor_type(o.shape, o.elem) for o in operands)
        loc = f' loc("{self.loc}")' if self.loc else ""
        self._lines.append(
            f'    {result.ssa} = "{name}"({", ".join(o.ssa for o in operands)}){props} : '
            f'({in_types}) -> {tensor_type(result.shape, elem)}{loc}')
        self.ops.append(bm.Op(name=name, inputs=[o.index for o in operands], outputs=[idx],
                              attrs={k: _json_value(a) for k, a in attrs.items()}, loc=self.loc))
        return result

    def ret(self, values: list[Value]):
        self.results = list(values)

    def text(self) -> str:
        arg_text = ", ".join(
            f"{v.ssa}: {tensor_type(v.shape, v.elem)} "
            f"{{ttcore.argument_type = #ttcore.argument_type<{kind}>}}" for v, kind in self.args)
        res_types = ", ".join(tensor_type(v.shape, v.elem) for v in self.results)
        lines = [f"  func.func @{self.func_name}({arg_text}) -> ({res_types}) {{"]
        lines += self._lines
        lines.append(f"    return {', '.join(v.ssa for v in self.results)} : {res_types}")
        lines.append("  }")
        return "\n".join(lines)

    def program(self, private: bool = False) -> bm.Program:
        return bm.Program(name=self.func_name, tensors=self.tensors,
                          inputs=[v.index for v, kind in self.args if v.index not in self.constants],
                          outputs=[v.index for v in self.results], ops=self.ops,
                          constants=self.constants, private=private)


def module_text(name: str, funcs: list[str], attributes: dict | None = None) -> str:
    """`attributes` are module attributes already spelled in MLIR (e.g. the mesh of a multi-chip program)."""
    attrs = f" attributes {{{', '.join(f'{k} = {v}' for k, v in attributes.items())}}}" if attributes else ""
    return f"module @{name}{attrs} {{\n" + "\n".join(funcs) + "\n}\n"
