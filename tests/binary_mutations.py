"""Mutations of a saved .ttb file, for the corruption test (tests/test_binary_corruption.py).

A mutation is a small JSON-able dict, so a worker process can apply it by index:

* ``flip``: XOR one byte of the file with a mask (anywhere: envelope, payload, padding);
* ``truncate``: keep the first ``at`` bytes, for ``at`` at every section boundary (envelope
  fields, the payload, each program, CPU segment, plan step, constant and debug entry);
* ``size``: overwrite a length field with a wrong value (the file's size prefix, the payload
  vector's length, the data segment's size, a constant's offset and byte count);
* ``swap``: rebuild the binary with two programs / CPU segments exchanged, one program replaced
  by another, or two plan steps exchanged, and write it with a valid checksum;
* ``reflip``: XOR a payload byte outside constant data and CPU libraries, then recompute the
  checksum, so the reader's structural checks and the runtime see the damage.

`apply(data, m)` returns the mutated bytes.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np

from forge_fe import binary as binio
from forge_fe.binary.fb import BinaryFile as fbBinaryFile


def _vector(tab, slot: int):
    """(start, length) of the vector in vtable slot `slot` of a table (positions in its buffer)."""
    o = tab.Offset(slot)
    return (tab.Vector(o), tab.VectorLen(o)) if o else (None, 0)


def _scalar(tab, slot: int):
    """Position of a scalar field, or None when the writer left it out (it equals the default, 0)."""
    o = tab.Offset(slot)
    return tab.Pos + o if o else None


def data_start(data: bytes) -> int:
    return 4 + struct.unpack_from("<I", data, 0)[0]


def layout(data: bytes) -> dict:
    """Where things are in the file: section boundaries, length fields (position, width in bytes),
    payload and data regions."""
    root = fbBinaryFile.BinaryFile.GetRootAs(data, 4)
    payload_start, payload_len = _vector(root._tab, 12)
    model = root.PayloadNestedRoot()
    base = 0                                      # the nested root reads the file's buffer: positions are file offsets
    segment = data_start(data)
    bounds = {0, 4, 8, 12, root._tab.Pos, payload_start - 4, payload_start, payload_start + payload_len,
              segment, len(data)}
    for slot in (6, 8, 10):                       # compiler version, schema hash, checksum strings
        o = root._tab.Offset(slot)
        if o:
            bounds.add(root._tab.Indirect(o + root._tab.Pos))
    data_regions = [(segment, len(data))]        # the constants' bytes
    length_fields = [("file size prefix", 0, 4), ("payload length", payload_start - 4, 4)]
    if _scalar(root._tab, 14) is not None:
        length_fields.append(("data segment size", _scalar(root._tab, 14), 8))

    def const_tensor(c):
        offset = _scalar(c._tab, 8)
        if offset is not None:
            bounds.add(segment + c.Offset())
            length_fields.append(("constant offset", offset, 8))
        if _scalar(c._tab, 10) is not None:
            length_fields.append(("constant byte count", _scalar(c._tab, 10), 8))

    bounds.add(base + model._tab.Pos)
    for i in range(model.ProgramsLength()):
        p = model.Programs(i)
        bounds.add(base + p._tab.Pos)
        for k in range(p.ConstantsLength()):
            const_tensor(p.Constants(k).Value())
    for i in range(model.CpuSegmentsLength()):
        s = model.CpuSegments(i)
        bounds.add(base + s._tab.Pos)
        start, n = _vector(s._tab, 6)
        bounds.add(base + start)
        data_regions.append((base + start, base + start + n))
    for i in range(model.PlanLength()):
        bounds.add(base + model.Plan(i)._tab.Pos)
    for i in range(model.ConstantsLength()):
        const_tensor(model.Constants(i).Value())
    for i in range(model.DebugLength()):
        bounds.add(base + model.Debug(i)._tab.Pos)
    return {"bounds": sorted(b for b in bounds if 0 < b < len(data)), "length_fields": length_fields,
            "payload": (payload_start, payload_start + payload_len), "data_regions": sorted(data_regions)}


def mutations(data: bytes, total: int, n_reflips: int, seed: int = 0) -> list[dict]:
    """`total` mutations: every truncation, wrong size and swap, `n_reflips` re-checksummed flips,
    and plain flips for the rest."""
    rng = np.random.default_rng(seed)
    lay = layout(data)
    out = [{"kind": "truncate", "at": b} for b in lay["bounds"]]
    for what, at, width in lay["length_fields"][:8]:
        fmt = "<I" if width == 4 else "<Q"
        value, top = struct.unpack_from(fmt, data, at)[0], (1 << 8 * width) - 1
        for wrong in (value + 1, value - 1, value * 2 + 16, 0, top):
            out.append({"kind": "size", "what": what, "at": at, "width": width, "value": int(wrong) & top})
    b = binio.from_bytes(data)
    for i in range(len(b.programs)):
        for j in range(i + 1, len(b.programs)):
            out.append({"kind": "swap", "what": "programs", "i": i, "j": j})
            out.append({"kind": "swap", "what": "program_replaced", "i": i, "j": j})
    for i in range(len(b.cpu_segments)):
        for j in range(i + 1, len(b.cpu_segments)):
            out.append({"kind": "swap", "what": "cpu_segments", "i": i, "j": j})
    for i in range(len(b.plan) - 1):
        out.append({"kind": "swap", "what": "plan_steps", "i": i, "j": i + 1})
    for i, p in enumerate(b.programs):
        if len(p.ops) > 1:
            out.append({"kind": "swap", "what": "ops", "i": i, "j": 0})
    # re-checksummed flips: payload bytes that are neither constant values nor CPU libraries
    lo, hi = lay["payload"]
    data_bytes = np.zeros(len(data), bool)
    for s, e in lay["data_regions"]:
        data_bytes[s:e] = True
    structural = np.flatnonzero(~data_bytes[lo:hi]) + lo
    for at in rng.choice(structural, size=min(n_reflips, structural.size), replace=False):
        out.append({"kind": "reflip", "at": int(at), "mask": int(rng.integers(1, 256))})
    # flips: a third in the envelope and the first KiB (headers, vtables, offsets), the rest anywhere
    head = lay["payload"][0] + 1024
    for k in range(max(0, total - len(out))):
        at = int(rng.integers(0, head if k % 3 == 0 else len(data)))
        out.append({"kind": "flip", "at": at, "mask": int(rng.integers(1, 256))})
    return out


def _rechecksum(data: bytearray) -> bytes:
    root = fbBinaryFile.BinaryFile.GetRootAs(bytes(data), 4)
    start, n = _vector(root._tab, 12)
    o = root._tab.Offset(10)
    at = root._tab.Indirect(o + root._tab.Pos) + 4          # the checksum string's characters
    segment = np.frombuffer(bytes(data[data_start(data):]), np.uint8)
    digest = binio.io.compute_checksum(bytes(data[start:start + n]), binio.io.segment_blocks(segment)).encode()
    data[at:at + len(digest)] = digest
    return bytes(data)


def _swapped(data: bytes, m: dict) -> bytes:
    b = binio.from_bytes(data)
    i, j = m["i"], m["j"]
    if m["what"] == "programs":
        b.programs[i], b.programs[j] = b.programs[j], b.programs[i]
    elif m["what"] == "program_replaced":
        b.programs[i] = dataclasses.replace(b.programs[j], name=b.programs[i].name)
    elif m["what"] == "cpu_segments":
        b.cpu_segments[i], b.cpu_segments[j] = b.cpu_segments[j], b.cpu_segments[i]
    elif m["what"] == "plan_steps":
        b.plan[i], b.plan[j] = b.plan[j], b.plan[i]
    elif m["what"] == "ops":
        ops = b.programs[i].ops
        ops[0], ops[-1] = ops[-1], ops[0]
    return binio.to_bytes(b)


def apply(data: bytes, m: dict) -> bytes:
    kind = m["kind"]
    if kind == "truncate":
        return data[:m["at"]]
    if kind == "swap":
        return _swapped(data, m)
    out = bytearray(data)
    if kind in ("flip", "reflip"):
        out[m["at"]] ^= m["mask"]
        return _rechecksum(out) if kind == "reflip" else bytes(out)
    if kind == "size":
        struct.pack_into("<I" if m.get("width", 4) == 4 else "<Q", out, m["at"], m["value"])
        return bytes(out)
    raise ValueError(kind)
