"""The model matrix: compile real architectures, record one result per model, write the reports.

A `MatrixCase` is a named model builder per size ("push": reduced sizes for every
push, "nightly": released sizes). `run_case` compiles it, runs it, compares the
outputs with the framework's own, and returns a `ModelRecord`: status, the stage
reached or the failing stage with its error, PCC per output, compile time, op
count, device share and the performance model's latency estimate. Tests under
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
    est_latency_s: float | None = None
    timestamp: str = ""

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


def run_case(case: MatrixCase, size: str = "push", data_format: str = "Float32") -> ModelRecord:
    """Build, compile, run and compare one model; never raises for a model failure (the record says)."""
    import forge_fe
    from forge_fe.errors import ForgeError
    from forge_fe.compiler.pipeline import STAGES

    cfg_args, pcc_min = DATA_FORMATS[data_format]
    pcc_min = case.pcc_min if data_format == "Float32" else pcc_min
    expected = case.xfail.get(size)
    rec = ModelRecord(case.name, case.framework, case.kind, size, data_format, "fail", "none", pcc_min=pcc_min,
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

    done = []
    t0 = time.perf_counter()
    try:
        cm = forge_fe.compile(model, inputs, module_name=case.name,
                              compiler_cfg=forge_fe.CompilerConfig(**cfg_args),
                              progress=lambda stage, secs: done.append(stage))
    except ForgeError as exc:
        rec.stage_reached = done[-1] if done else "build"
        return fail(exc.stage, _first_lines(exc))
    except Exception as exc:   # not wrapped by the pipeline: attribute it to the stage that was running
        rec.stage_reached = done[-1] if done else "build"
        names = [name for _, name, _ in STAGES]
        stage = names[len(done)] if len(done) < len(names) else "binary"
        return fail(stage, f"uncaught {type(exc).__name__}: {_first_lines(exc)}")
    rec.compile_s = time.perf_counter() - t0
    rec.stage_reached = done[-1]
    placement = cm.report.placement
    rec.op_count = len(placement)
    rec.device_ops = sum(p["where"] == "device" for p in placement)
    rec.cpu_ops = rec.op_count - rec.device_ops
    rec.device_share = rec.device_ops / rec.op_count if rec.op_count else None
    rec.segments = len(cm.report.segments)
    rec.est_latency_s = cm.report.perf.get("estimated_latency_s")

    try:
        ours = cm(*inputs)
    except ForgeError as exc:
        return fail("runtime", _first_lines(exc))
    except Exception as exc:
        return fail("runtime", f"uncaught {type(exc).__name__}: {_first_lines(exc)}")
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


# ---- records on disk -------------------------------------------------------------------------

def results_dir(path: str | None = None) -> str:
    return path or os.environ.get("FORGE_FE_MATRIX_OUT") or os.path.join(tempfile.gettempdir(), "forge_fe_matrix")


def write_record(rec: ModelRecord, out_dir: str | None = None) -> str:
    out_dir = results_dir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, rec.key + ".json")
    with open(path, "w") as f:
        json.dump(asdict(rec), f, indent=1)
    return path


def read_records(out_dir: str | None = None) -> list[ModelRecord]:
    recs = []
    for path in sorted(glob.glob(os.path.join(results_dir(out_dir), "*.json"))):
        with open(path) as f:
            recs.append(ModelRecord(**json.load(f)))
    return recs


# ---- pytest glue (tests/models) ------------------------------------------------------------

def check(case: MatrixCase, size: str = "push", data_format: str = "Float32") -> ModelRecord:
    """Run a case, write its record, and fail the test the way the record says.

    A failure is raised as MatrixFailure; an expected failure (strict xfail with
    raises=MatrixFailure) that fails at a *different* stage raises AssertionError
    instead, so pytest reports it as a real failure."""
    rec = run_case(case, size, data_format)
    write_record(rec)
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
        marks = [getattr(pytest.mark, size)]
        if size in case.xfail:
            stage, why = case.xfail[size]
            marks.append(pytest.mark.xfail(strict=True, raises=MatrixFailure, reason=f"{stage}: {why}"))
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def pytest_format_params(cases: list[MatrixCase]):
    """(case, data format) for the cases compiled at reduced data formats (push size)."""
    import pytest
    return [pytest.param(c, df, id=f"{c.name}-{df.replace(' ', '_')}", marks=[pytest.mark.push])
            for c in cases for df in c.formats]


# ---- reports -----------------------------------------------------------------------------------

STATUS_LABEL = {"pass": "pass", "fail": "**FAIL**", "xfail": "expected failure", "xpass": "**XPASS**"}
FRAMEWORK_COLOR = {"pytorch": "#e4572e", "onnx": "#4c72b0", "tensorflow": "#f2a541", "jax": "#2a9d8f"}
FORMAT_COLOR = {"Float32": "#333333", "Float16_b": "#4c72b0", "Bfp8_b weights": "#e4572e"}
COMMANDS = """\
| set | command | what |
|---|---|---|
| push | `python -m pytest -q -m push tests/models` | reduced sizes of every model; part of the default `pytest` run |
| nightly | `python -m pytest -q -m nightly tests/models` | released sizes (not in the default run) |
| report | `forge-fe report` | rewrite this page and `docs/model_matrix.html` from the last run's records |
| run + report | `forge-fe report --run push` (or `--run nightly`) | run the set, then write the reports |

Records are JSON files in `$FORGE_FE_MATRIX_OUT` (default `<tmp>/forge_fe_matrix`). An expected
failure is a strict `xfail` naming the stage that fails: when the model starts passing, the test
fails (XPASS) until the expectation is removed."""


def _fmt(v, spec, none="-"):
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _min_pcc(r: ModelRecord):
    return min(r.pcc) if r.pcc else None


def _order(recs):
    fw = list(FRAMEWORK_COLOR)
    return sorted(recs, key=lambda r: (fw.index(r.framework) if r.framework in fw else 9, r.model))


def markdown(recs: list[ModelRecord], plots_dir: str | None = None) -> str:
    """The matrix as markdown; with `plots_dir` (relative to the page) the SVG plots are linked at the end."""
    base = [r for r in recs if r.data_format == "Float32"]
    lines = ["# Model matrix", "",
             "Generated by `forge-fe report` from the matrix tests' records (tests/models); do not edit by hand. "
             "Plots: [model_matrix.html](model_matrix.html).", "", "## Commands", "", COMMANDS, ""]
    for size in SIZES:
        rows = _order([r for r in base if r.size == size])
        if not rows:
            continue
        title = "Reduced sizes (push)" if size == "push" else "Released sizes (nightly)"
        stamp = max(r.timestamp for r in rows)
        lines += [f"## {title}", "", f"Last run: {stamp}.", "",
                  "| framework | models | pass | expected failure | fail | xpass |", "|---|---|---|---|---|---|"]
        for fw in dict.fromkeys(r.framework for r in rows):
            sub = [r for r in rows if r.framework == fw]
            n = {s: sum(r.status == s for r in sub) for s in STATUS_LABEL}
            lines.append(f"| {fw} | {len(sub)} | {n['pass']} | {n['xfail']} | {n['fail']} | {n['xpass']} |")
        lines += ["", "| model | framework | architecture | status | failing stage | PCC (min) | compile s | ops | "
                  "device % | est. latency ms |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            stage = ("-" if not r.failing_stage else r.failing_stage if r.failure_class == r.failing_stage
                     else f"{r.failure_class} (`{r.failing_stage}`)")
            lines.append(f"| {r.model} | {r.framework} | {r.kind} | {STATUS_LABEL[r.status]} | {stage} | "
                         f"{_fmt(_min_pcc(r), '.5f')} | {_fmt(r.compile_s, '.2f')} | {_fmt(r.op_count, 'd')} | "
                         f"{_fmt(None if r.device_share is None else 100 * r.device_share, '.1f')} | "
                         f"{_fmt(None if r.est_latency_s is None else r.est_latency_s * 1e3, '.4f')} |")
        lines.append("")
    fmt_rows = _pcc_by_format(recs)
    if fmt_rows:
        dfs = list(DATA_FORMATS)
        lines += ["## PCC by data format (push sizes)", "",
                  "Minimum PCC over the outputs against the framework in float32; thresholds "
                  + ", ".join(f"{k} {v[1]}" for k, v in DATA_FORMATS.items()) + ".", "",
                  "| model | framework | " + " | ".join(dfs) + " |", "|---|---|" + "---|" * len(dfs)]
        for (model, fw), by_df in fmt_rows.items():
            lines.append(f"| {model} | {fw} | " + " | ".join(_fmt(by_df.get(d), ".5f") for d in dfs) + " |")
        lines.append("")
    failed = _order([r for r in recs if r.error])
    if failed:
        lines += ["## Failures", ""]
        for r in failed:
            err = " ".join(r.error.split())[:300]
            lines.append(f"- **{r.model}** ({r.framework}, {r.size}, {r.data_format}) {STATUS_LABEL[r.status]} "
                         f"at `{r.failing_stage}`: {err}")
        lines.append("")
    if plots_dir:
        lines += ["## Plots", ""] + [f"![{name[:-4].replace('_', ' ')}]({plots_dir}/{name})" for name in PLOTS] + [""]
    return "\n".join(lines)


def _pcc_by_format(recs):
    with_formats = {(r.model, r.framework) for r in recs if r.data_format != "Float32" and r.size == "push"}
    out = {}
    for r in _order(recs):
        if (r.model, r.framework) in with_formats and r.size == "push":
            out.setdefault((r.model, r.framework), {})[r.data_format] = _min_pcc(r)
    return out


# ---- SVG plots ---------------------------------------------------------------------------------

def _svg(width, height, body, title):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
            f'<title>{html.escape(title)}</title><rect width="100%" height="100%" fill="white"/>'
            f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
            f'{html.escape(title)}</text>{"".join(body)}</svg>\n')


def _ticks(lo, hi, n=5):
    step = (hi - lo) / n if hi > lo else 1
    return [lo + i * step for i in range(n + 1)]


def plot_compile_vs_ops(recs) -> str:
    """Scatter: compile seconds against op count, one dot per compiled model, colored by framework."""
    pts = [r for r in recs if r.data_format == "Float32" and r.compile_s is not None and r.op_count]
    W, H, L, B, T, R = 640, 400, 60, 50, 30, 130
    xmax = max([r.op_count for r in pts] + [1]) * 1.05
    ymax = max([r.compile_s for r in pts] + [0.1]) * 1.1
    sx = lambda v: L + (W - L - R) * v / xmax
    sy = lambda v: H - B - (H - B - T) * v / ymax
    body = [f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
            f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
            f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">ops (Relax calls placed)</text>',
            f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">'
            'compile time (s)</text>']
    for v in _ticks(0, xmax):
        body.append(f'<text x="{sx(v):.1f}" y="{H - B + 14}" text-anchor="middle">{v:.0f}</text>')
    for v in _ticks(0, ymax):
        body.append(f'<text x="{L - 4}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for r in pts:
        c = FRAMEWORK_COLOR.get(r.framework, "gray")
        body.append(f'<circle cx="{sx(r.op_count):.1f}" cy="{sy(r.compile_s):.1f}" r="4" fill="{c}" '
                    f'fill-opacity="0.8"><title>{html.escape(r.model)} ({r.framework}, {r.size}): {r.op_count} ops, '
                    f'{r.compile_s:.2f} s</title></circle>')
    for i, (fw, c) in enumerate(FRAMEWORK_COLOR.items()):
        body.append(f'<circle cx="{W - R + 15}" cy="{T + 10 + 16 * i}" r="4" fill="{c}"/>'
                    f'<text x="{W - R + 24}" y="{T + 14 + 16 * i}">{fw}</text>')
    return _svg(W, H, body, "Compile time vs op count")


def plot_device_share(recs) -> str:
    """Horizontal bars: share of ops placed on the device, per model (push size)."""
    rows = _order([r for r in recs if r.data_format == "Float32" and r.size == "push"])
    W, L, rowh, T = 640, 170, 16, 30
    H = T + rowh * len(rows) + 40
    scale = W - L - 60
    body = [f'<line x1="{L}" y1="{T}" x2="{L}" y2="{T + rowh * len(rows)}" stroke="black"/>']
    for i, r in enumerate(rows):
        y = T + i * rowh
        body.append(f'<text x="{L - 4}" y="{y + 12}" text-anchor="end">{html.escape(r.model)}</text>')
        if r.device_share is None:
            body.append(f'<text x="{L + 4}" y="{y + 12}" fill="#888">no compile ({html.escape(str(r.failure_class))})'
                        '</text>')
            continue
        c = FRAMEWORK_COLOR.get(r.framework, "gray")
        body.append(f'<rect x="{L}" y="{y + 2}" width="{scale * r.device_share:.1f}" height="{rowh - 4}" '
                    f'fill="{c}"><title>{r.device_ops} of {r.op_count} ops on the device</title></rect>'
                    f'<text x="{L + scale * r.device_share + 4:.1f}" y="{y + 12}">{100 * r.device_share:.1f}%</text>')
    yb = T + rowh * len(rows)
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        body.append(f'<text x="{L + scale * v:.1f}" y="{yb + 14}" text-anchor="middle">{int(100 * v)}%</text>')
    return _svg(W, H, body, "Share of ops on the device, by model")


def _nines(pcc: float) -> float:
    """-log10(1 - PCC), capped at 7: 0.99 -> 2, 0.9999 -> 4; spreads values that all look like 1.0."""
    return min(-math.log10(max(1.0 - pcc, 1e-7)), 7.0)


def plot_pcc_by_format(recs) -> str:
    """Dots per model and data format; x is PCC against the float32 framework output, on a scale of
    nines (-log10(1 - PCC)) so 0.999 and 0.99999 are far apart."""
    rows = _pcc_by_format(recs)
    W, L, rowh, T = 640, 170, 22, 30
    H = T + rowh * max(len(rows), 1) + 60
    vals = [_nines(v) for d in rows.values() for v in d.values() if v is not None and not math.isnan(v)]
    lo = max(0, math.floor(min(vals + [2.0])))
    scale = W - L - 40
    sx = lambda n: L + scale * (n - lo) / (7.0 - lo)
    body = [f'<line x1="{L}" y1="{T}" x2="{L}" y2="{T + rowh * len(rows)}" stroke="black"/>']
    for i, ((model, fw), by_df) in enumerate(rows.items()):
        y = T + i * rowh + rowh / 2
        body.append(f'<text x="{L - 4}" y="{y + 4}" text-anchor="end">{html.escape(model)} ({fw})</text>'
                    f'<line x1="{L}" y1="{y}" x2="{L + scale}" y2="{y}" stroke="#ddd"/>')
        for df, v in by_df.items():
            if v is None or math.isnan(v):
                continue
            body.append(f'<circle cx="{sx(max(_nines(v), lo)):.1f}" cy="{y}" r="5" '
                        f'fill="{FORMAT_COLOR.get(df, "gray")}" fill-opacity="0.8">'
                        f'<title>{html.escape(model)} {df}: PCC {v:.7f}</title></circle>')
    yb = T + rowh * len(rows)
    for n in range(lo, 8):
        label = "1.0" if n == 7 else ("0." + "9" * n if n else "0")
        body.append(f'<text x="{sx(n):.1f}" y="{yb + 14}" text-anchor="middle">{label}</text>')
    body.append(f'<text x="{L + scale / 2}" y="{yb + 28}" text-anchor="middle">PCC (log scale of 1 - PCC; '
                '1.0 means within 1e-7)</text>')
    for i, (df, c) in enumerate(FORMAT_COLOR.items()):
        body.append(f'<circle cx="{L + 10 + 150 * i}" cy="{yb + 46}" r="5" fill="{c}"/>'
                    f'<text x="{L + 20 + 150 * i}" y="{yb + 50}">{df}</text>')
    return _svg(W, H + 10, body, "PCC by data format")


PLOTS = {"compile_time_vs_ops.svg": plot_compile_vs_ops, "device_share.svg": plot_device_share,
         "pcc_by_format.svg": plot_pcc_by_format}


def html_report(recs: list[ModelRecord], plots: dict[str, str]) -> str:
    """One self-contained page: the plots inline, then the markdown tables as preformatted text."""
    figs = "".join(f"<figure>{svg}</figure>" for svg in plots.values())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>forge_fe model matrix</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}figure{margin:1em 0}"
            "pre{font-size:12px;overflow-x:auto;background:#f6f6f6;padding:1em}</style></head><body>"
            f"<h1>forge_fe model matrix</h1><p>{len(recs)} records. Hover a dot or bar for its numbers.</p>"
            f"{figs}<h2>Tables</h2><pre>{html.escape(markdown(recs))}</pre></body></html>\n")


def write_reports(recs: list[ModelRecord], md_path: str, html_path: str | None) -> list[str]:
    """Write the markdown table, the HTML page and its plots (as .svg files next to the page)."""
    written = []
    plot_dir = os.path.splitext(html_path)[0] + "_plots" if html_path else None
    md_dir = os.path.dirname(os.path.abspath(md_path))
    os.makedirs(md_dir, exist_ok=True)
    with open(md_path, "w") as f:
        f.write(markdown(recs, os.path.relpath(os.path.abspath(plot_dir), md_dir) if plot_dir else None))
    written.append(md_path)
    if html_path:
        plots = {name: fn(recs) for name, fn in PLOTS.items()}
        os.makedirs(plot_dir, exist_ok=True)
        for name, svg in plots.items():
            with open(os.path.join(plot_dir, name), "w") as f:
                f.write(svg)
            written.append(os.path.join(plot_dir, name))
        with open(html_path, "w") as f:
            f.write(html_report(recs, plots))
        written.append(html_path)
    return written
