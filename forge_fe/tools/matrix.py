"""The model matrix: compile real architectures, record one result per model, write the reports.

A `MatrixCase` is a named model builder per size ("push": reduced sizes for every
push, "nightly": released sizes). `run_case` compiles it, runs it, compares the
outputs with the framework's own, and returns a `ModelRecord`: status, the stage
reached or the failing stage with its error, PCC per output, compile time, op
count, device share and the performance model's latency estimate. A generation
case (`generate=N`: a transformers causal LM and a prompt) is compiled with
`forge_fe.compile_lm` instead, and its check is greedy generation: the N new
tokens must equal the framework's `generate(do_sample=False)`. Tests under
tests/models write one JSON record each (to $FORGE_FE_MATRIX_OUT); `forge-fe
report` reads them (or runs the tests first) and writes docs/model_matrix.md and
an HTML page with SVG plots (no plotting library needed).
"""
from __future__ import annotations

import datetime
import glob
import html
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

SIZES = ("push", "nightly")

# Pipeline stage (forge_fe.compiler.pipeline.STAGES, plus the runtime and the comparison) -> the
# failure class the matrix reports.
FAILURE_CLASS = {
    "build": "model build", "reference": "framework reference", "import": "import", "relax_passes": "tvm passes", "partition": "partition",
    **{s: "forge passes" for s in ("generate_forge_module", "initial_graph", "post_initial_graph", "consteval",
                                   "autograd", "post_autograd", "pre_lowering", "graph_split")},
    "lower_to_ttir": "TTIR lowering", "binary": "TTIR lowering", "runtime": "runtime", "verify": "wrong result",
}

# Data formats the matrix compiles at: label -> CompilerConfig arguments, and the PCC each must reach.
# Reduced formats round every tensor, so only correlation is checked for them (no allclose).
DATA_FORMATS = {
    "Float32": ({}, 0.99),
    "Float16_b": ({"default_df_override": "Float16_b"}, 0.98),
    "Bfp8_b weights": ({"default_df_override": "Float16_b", "df_overrides": {"weights": "Bfp8_b"}}, 0.97),
}


@dataclass
class MatrixCase:
    name: str
    framework: str                     # pytorch | onnx | tensorflow | jax
    kind: str                          # architecture family, for the report ("CNN", "encoder", ...)
    build: Callable[[str], tuple]      # size -> (model, sample_inputs)
    # size -> (pipeline stage expected to fail, why): a strict expected failure
    xfail: dict[str, tuple[str, str]] = field(default_factory=dict)
    formats: tuple[str, ...] = ()      # data formats compiled besides Float32 (push size)
    pcc_min: float = 0.99
    rtol: float = 1e-2
    atol: float = 1e-3
    reference: Callable | None = None  # (model, inputs) -> outputs, when the framework's call needs help
    arch: str = ""                     # the architecture (family) it counts as: sizes/opsets/frameworks count once
    tiers: tuple[str, ...] = SIZES     # the sizes it runs at ("push": reduced, "nightly": released)
    # > 0: a generation case: build gives (causal LM, [input_ids]); compile_lm + greedy generate of this
    # many new tokens, compared token for token with the framework's generate(do_sample=False)
    generate: int = 0

    def __post_init__(self):
        self.arch = self.arch or self.name
        if isinstance(self.xfail, tuple):     # (stage, why) for every size
            self.xfail = {size: self.xfail for size in self.tiers}


@dataclass
class ModelRecord:
    model: str
    framework: str
    kind: str
    size: str
    data_format: str
    status: str                        # pass | fail | xfail (expected failure) | xpass (unexpected pass)
    stage_reached: str                 # last stage that completed ("verify" when outputs were compared)
    failing_stage: str | None = None   # pipeline stage, "runtime" or "verify"
    failure_class: str | None = None   # FAILURE_CLASS of the failing stage
    error: str | None = None
    expected_failure: str | None = None
    pcc: list[float] = field(default_factory=list)
    pcc_min: float = 0.99
    allclose: bool | None = None
    compile_s: float | None = None
    op_count: int | None = None
    device_ops: int | None = None
    cpu_ops: int | None = None
    device_share: float | None = None
    segments: int | None = None
    est_latency_s: float | None = None       # generation cases: the decode program's, per token
    timestamp: str = ""
    arch: str = ""
    new_tokens: int | None = None            # generation cases: tokens generated ...
    tokens_equal: int | None = None          # ... and how many of them, from the first, equal the framework's

    @property
    def key(self) -> str:
        df = self.data_format.replace(" ", "_")
        return f"{self.framework}__{self.model}__{self.size}__{df}"


class MatrixFailure(Exception):
    """A matrix model failed to compile, run or match; the message names the stage."""


# ---- running one case ------------------------------------------------------------------------

def framework_outputs(model, inputs):
    """The framework's own outputs: forge_fe.verify's golden run (torch, ONNX via onnxruntime,
    TensorFlow), else the model called on the inputs (JAX callables)."""
    from forge_fe.errors import VerificationError
    from forge_fe.verify import golden_outputs
    try:
        return golden_outputs(model, inputs)
    except VerificationError:
        if not callable(model):
            raise
        return model(*inputs)


def compare(golden, ours, rtol, atol) -> tuple[list[float], bool]:
    """PCC per output (forge_fe.verify.pcc) and whether every output is allclose."""
    from forge_fe.frontend import structure
    from forge_fe.verify import _to_numpy, pcc
    g, _ = structure.flatten(golden)
    o, _ = structure.flatten(ours)
    if len(g) != len(o):
        raise MatrixFailure(f"framework returned {len(g)} outputs, compiled model {len(o)}")
    pccs, close = [], True
    for i, (a, b) in enumerate(zip(g, o)):
        a, b = _to_numpy(a).astype(np.float64), _to_numpy(b).astype(np.float64)
        if a.shape != b.shape:
            raise MatrixFailure(f"output {i}: shape {list(b.shape)} differs from the framework's {list(a.shape)}")
        pccs.append(pcc(a, b))
        close = close and bool(np.allclose(b, a, rtol=rtol, atol=atol, equal_nan=True))
    return pccs, close


def _first_lines(text: str, n: int = 3) -> str:
    return "\n".join(str(text).strip().splitlines()[:n])


def _running_stage(done: list[str]) -> str:
    """The pipeline stage that was running when a compile stopped, from the stages it reported done
    (compile_lm's programs report the pipeline's stages once each; the merge after them counts as 'binary')."""
    from forge_fe.compiler.pipeline import STAGES
    names = [name for _, name, _ in STAGES]
    if not done:
        return names[0]
    i = names.index(done[-1]) + 1
    return names[i] if i < len(names) else "binary"


def _compiled(rec: ModelRecord, fail: Callable, compile_fn: Callable):
    """compile_fn(progress) with the record's compile time and stage reached; (compiled, None), or
    (None, the failed record) with the failure attributed to the stage that raised."""
    from forge_fe.errors import ForgeError
    done = []
    t0 = time.perf_counter()
    try:
        compiled = compile_fn(lambda stage, secs: done.append(stage))
    except ForgeError as exc:
        rec.stage_reached = done[-1] if done else "build"
        return None, fail(exc.stage, _first_lines(exc))
    except Exception as exc:   # not wrapped by the pipeline: attribute it to the stage that was running
        rec.stage_reached = done[-1] if done else "build"
        return None, fail(_running_stage(done), f"uncaught {type(exc).__name__}: {_first_lines(exc)}")
    rec.compile_s = time.perf_counter() - t0
    rec.stage_reached = done[-1]
    return compiled, None


def _ran(fail: Callable, run: Callable):
    """run() -> (outputs, None), or (None, the record failed at 'runtime')."""
    from forge_fe.errors import ForgeError
    try:
        return run(), None
    except ForgeError as exc:
        return None, fail("runtime", _first_lines(exc))
    except Exception as exc:
        return None, fail("runtime", f"uncaught {type(exc).__name__}: {_first_lines(exc)}")


def run_case(case: MatrixCase, size: str = "push", data_format: str = "Float32") -> ModelRecord:
    """Build, compile, run and compare one model; never raises for a model failure (the record says)."""
    import forge_fe

    cfg_args, pcc_min = DATA_FORMATS[data_format]
    pcc_min = case.pcc_min if data_format == "Float32" else pcc_min
    expected = case.xfail.get(size)
    rec = ModelRecord(case.name, case.framework, case.kind, size, data_format, "fail", "none", pcc_min=pcc_min,
                      arch=case.arch,
                      expected_failure=f"{expected[0]}: {expected[1]}" if expected else None,
                      timestamp=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    def fail(stage, error):
        rec.failing_stage, rec.failure_class, rec.error = stage, FAILURE_CLASS.get(stage, stage), error
        rec.status = "xfail" if expected and expected[0] == stage else "fail"
        return rec

    try:
        model, inputs = case.build(size)
    except Exception as exc:   # the framework could not build the model: not a forge_fe stage
        return fail("build", f"{type(exc).__name__}: {_first_lines(exc)}")
    rec.stage_reached = "build"
    if case.generate:
        return _run_generation(case, rec, fail, model, inputs[0], cfg_args, data_format)

    cm, failed = _compiled(rec, fail, lambda progress: forge_fe.compile(
        model, inputs, module_name=case.name, compiler_cfg=forge_fe.CompilerConfig(**cfg_args), progress=progress))
    if failed:
        return failed
    placement = cm.report.placement
    rec.op_count = len(placement)
    rec.device_ops = sum(p["where"] == "device" for p in placement)
    rec.cpu_ops = rec.op_count - rec.device_ops
    rec.device_share = rec.device_ops / rec.op_count if rec.op_count else None
    rec.segments = len(cm.report.segments)
    rec.est_latency_s = cm.report.perf.get("estimated_latency_s")

    ours, failed = _ran(fail, lambda: cm(*inputs))
    if failed:
        return failed
    rec.stage_reached = "runtime"
    try:
        golden = (case.reference or framework_outputs)(model, inputs)
    except Exception as exc:   # the framework itself could not run the model: not a forge_fe stage
        return fail("reference", f"{type(exc).__name__}: {_first_lines(exc)}")
    try:
        rec.pcc, rec.allclose = compare(golden, ours, case.rtol, case.atol)
    except MatrixFailure as exc:
        return fail("verify", str(exc))
    bad_pcc = [i for i, p in enumerate(rec.pcc) if not p >= pcc_min]   # NaN PCC is bad
    if bad_pcc or (data_format == "Float32" and not rec.allclose):
        what = (f"output {bad_pcc[0]} PCC {rec.pcc[bad_pcc[0]]:.6f} < {pcc_min}" if bad_pcc
                else f"PCC ok but not allclose(rtol={case.rtol}, atol={case.atol})")
        return fail("verify", f"wrong result: {what}")
    rec.stage_reached = "verify"
    rec.status = "xpass" if expected else "pass"
    return rec


def _run_generation(case: MatrixCase, rec: ModelRecord, fail: Callable, model, input_ids, cfg_args: dict,
                    data_format: str) -> ModelRecord:
    """compile_lm (one prefill bucket of the prompt's length, a cache just long enough), greedy
    generation of case.generate tokens against the framework's generate(do_sample=False), and the
    first step's logits PCC against the framework's forward. Float32 passes when every new token is
    the framework's; reduced data formats on the logits PCC (their tokens are recorded, not required)."""
    import torch

    import forge_fe
    from forge_fe.verify import pcc
    new, prompt = case.generate, input_ids.shape[1]
    rec.new_tokens = new
    lm, failed = _compiled(rec, fail, lambda progress: forge_fe.compile_lm(
        model, max_cache_len=prompt + new, prefill_buckets=[prompt], compiler_cfg=forge_fe.CompilerConfig(**cfg_args),
        progress=progress))
    if failed:
        return failed
    programs = lm.report.programs.values()
    rec.op_count = sum(p["ops"] for p in programs)
    rec.device_ops = sum(p["device_ops"] for p in programs)
    rec.cpu_ops = rec.op_count - rec.device_ops
    rec.device_share = rec.device_ops / rec.op_count if rec.op_count else None
    rec.segments = sum(len(c.report.segments) for c in lm.programs.values())
    rec.est_latency_s = lm.report.programs["decode"]["estimated_s"]

    got, failed = _ran(fail, lambda: (lm.generate(input_ids, max_new_tokens=new), lm.logits(input_ids)[:, 0]))
    if failed:
        return failed
    ours, first_logits = got
    rec.stage_reached = "runtime"
    try:
        with torch.no_grad():
            want = model.generate(input_ids, max_new_tokens=new, do_sample=False)
            want_logits = model(input_ids).logits[:, -1]
    except Exception as exc:
        return fail("reference", f"{type(exc).__name__}: {_first_lines(exc)}")
    if ours.shape != want.shape:
        return fail("verify", f"generated {list(ours.shape)} tokens, the framework {list(want.shape)}")
    differ = (ours[0, prompt:] != want[0, prompt:]).nonzero()
    rec.tokens_equal = int(differ[0]) if len(differ) else new
    rec.pcc = [pcc(first_logits.numpy().astype(np.float64), want_logits.numpy().astype(np.float64))]
    if not rec.pcc[0] >= rec.pcc_min:
        return fail("verify", f"wrong result: first-step logits PCC {rec.pcc[0]:.6f} < {rec.pcc_min}")
    if data_format == "Float32" and rec.tokens_equal < new:
        return fail("verify", f"wrong result: new token {rec.tokens_equal} differs from the framework's greedy "
                              f"generate ({rec.tokens_equal} of {new} equal)")
    rec.stage_reached = "verify"
    rec.status = "xpass" if rec.expected_failure else "pass"
    return rec


# ---- records on disk -------------------------------------------------------------------------

def results_dir(path: str | None = None) -> str:
    return path or os.environ.get("FORGE_FE_MATRIX_OUT") or os.path.join(tempfile.gettempdir(), "forge_fe_matrix")


def write_record(rec: ModelRecord, out_dir: str | None = None) -> str:
    """One JSON file per model, size and data format, written atomically (a crash mid-write, or an xdist
    worker and its controller writing the same record, never leaves a torn file)."""
    out_dir = results_dir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, rec.key + ".json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(asdict(rec), f, indent=1)
    os.replace(tmp, path)
    return path


def read_records(*out_dirs: str | None) -> list[ModelRecord]:
    """The records of one or more result directories (e.g. one per host of a sharded run), merged: for
    a model, size and data format recorded in several, the latest timestamp wins."""
    by_key = {}
    for out_dir in out_dirs or (None,):
        for path in sorted(glob.glob(os.path.join(results_dir(out_dir), "*.json"))):
            with open(path) as f:
                data = json.load(f)
            rec = ModelRecord(**{k: v for k, v in data.items() if k in ModelRecord.__dataclass_fields__})
            if rec.key not in by_key or rec.timestamp >= by_key[rec.key].timestamp:
                by_key[rec.key] = rec
    return [by_key[k] for k in sorted(by_key)]


# ---- pytest glue (tests/models) ------------------------------------------------------------

_last_record: ModelRecord | None = None


def take_last_record() -> dict | None:
    """The record the last `check` wrote in this process, as a dict (once): tests/models/conftest.py
    attaches it to the test's report, which xdist sends from a remote worker to the controller."""
    global _last_record
    rec, _last_record = _last_record, None
    return asdict(rec) if rec else None


def check(case: MatrixCase, size: str = "push", data_format: str = "Float32") -> ModelRecord:
    """Run a case, write its record, and fail the test the way the record says.

    A failure is raised as MatrixFailure; an expected failure (strict xfail with
    raises=MatrixFailure) that fails at a *different* stage raises AssertionError
    instead, so pytest reports it as a real failure."""
    global _last_record
    rec = run_case(case, size, data_format)
    write_record(rec)
    _last_record = rec
    if rec.status in ("fail", "xfail"):
        if rec.expected_failure and rec.status == "fail":
            raise AssertionError(f"{case.name}: expected to fail at '{rec.expected_failure}', but failed at "
                                 f"'{rec.failing_stage}': {rec.error}")
        raise MatrixFailure(f"{case.name} [{rec.failure_class}: {rec.failing_stage}] {rec.error}")
    return rec


def pytest_params(cases: list[MatrixCase], size: str):
    """One pytest.param per case, marked push or nightly; expected failures are strict xfails."""
    import pytest
    params = []
    for case in cases:
        if size not in case.tiers:
            continue
        # --dist loadgroup keeps every size and data format of one model on one worker
        marks = [getattr(pytest.mark, size), pytest.mark.xdist_group(f"{case.framework}:{case.name}")]
        if size in case.xfail:
            stage, why = case.xfail[size]
            marks.append(pytest.mark.xfail(strict=True, raises=MatrixFailure, reason=f"{stage}: {why}"))
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def pytest_format_params(cases: list[MatrixCase]):
    """(case, data format) for the cases compiled at reduced data formats (push size)."""
    import pytest
    return [pytest.param(c, df, id=f"{c.name}-{df.replace(' ', '_')}",
                         marks=[pytest.mark.push, pytest.mark.xdist_group(f"{c.framework}:{c.name}")])
            for c in cases for df in c.formats]


def pytest_tests(cases: list[MatrixCase]):
    """The matrix tests of a list of entries: (test_push, test_data_format, test_nightly), to assign in a
    test module: `test_push, test_data_format, test_nightly = matrix.pytest_tests(CASES)`."""
    import pytest

    @pytest.mark.parametrize("case", pytest_params(cases, "push"))
    def test_push(case):
        check(case, "push")

    @pytest.mark.parametrize("case,data_format", pytest_format_params(cases))
    def test_data_format(case, data_format):
        check(case, "push", data_format)

    @pytest.mark.parametrize("case", pytest_params(cases, "nightly"))
    def test_nightly(case):
        check(case, "nightly")
    return test_push, test_data_format, test_nightly
