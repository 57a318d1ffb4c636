"""The model matrix's reports, written from its records (forge_fe.tools.matrix.ModelRecord):

- `markdown(recs)`: docs/model_matrix.md. Its first table counts the models per stage (passed, or the
  pipeline stage where they fail), then per framework, then one row per model and size.
- `html_report(recs)`: one self-contained page: the same counts, a table filterable by text,
  framework, size, status and stage, and SVG plots (compile time vs op count, device share, PCC,
  estimated latency by architecture). No plotting library, no network: inline SVG and a few lines of JS.
- `diff(old, new)`: the models whose status, PCC or compile time changed beyond noise.
"""
from __future__ import annotations

import html
import json
import math
import os

from forge_fe.tools.matrix import DATA_FORMATS, FAILURE_CLASS, SIZES, ModelRecord

STATUS_LABEL = {"pass": "pass", "fail": "**FAIL**", "xfail": "expected failure", "xpass": "**XPASS**"}
FRAMEWORK_COLOR = {"pytorch": "#e4572e", "onnx": "#4c72b0", "tensorflow": "#f2a541", "jax": "#2a9d8f",
                   "pytorch-generate": "#8e44ad"}
FORMAT_COLOR = {"Float32": "#333333", "Float16_b": "#4c72b0", "Bfp8_b weights": "#e4572e"}
# Stages in pipeline order, for the per-stage table ("verify" = compared with the framework: passed).
STAGE_ORDER = list(FAILURE_CLASS) + ["crash"]

COMMANDS = """\
| set | command | what |
|---|---|---|
| push | `python -m pytest -q -m push tests/models` (add `-n auto` for one worker per core) | reduced sizes of every model; part of the default `pytest` run |
| nightly | `python -m pytest -q -m nightly -n auto tests/models` | released sizes (not in the default run) |
| report | `forge-fe report` | rewrite this page and `docs/model_matrix.html` from the last run's records |
| run + report | `forge-fe report --run push` (or `--run nightly`; `-n auto` is the default) | run the set, then write the reports |
| merge | `forge-fe report --results host_a/ --results host_b/` | one report from several record directories |
| review | `forge-fe report --diff OLD_DIR NEW_DIR` | models whose status, PCC or compile time changed beyond noise |

Records are JSON files, one per model, size and data format, in `$FORGE_FE_MATRIX_OUT` (default
`<tmp>/forge_fe_matrix`). An expected failure is a strict `xfail` naming the stage that fails: when
the model starts passing, the test fails (XPASS) until the expectation is removed. See
[Sharded runs](#sharded-runs-across-hosts) for running the nightly set on several machines."""

ADDING = """\
## Adding a model

One entry in a list under tests/models (forge_fe.tools.matrix_builders makes it):

```python
hf("qwen3", DECODER, nightly=QWEN3_06B)                    # tests/models/pytorch/test_transformers.py
timm_model("ghostnet_050", arch="ghostnet")                # tests/models/pytorch/test_timm_torchvision.py
onnx_export(timm_model("dla34", arch="dla"), 11)           # tests/models/onnx/test_onnx_models.py
diffusers_model("AutoencoderKL", SMALL_VAE, SD_VAE, image(3, 32), name="autoencoder_kl")
lm_generation("llama")                                     # tests/models/pytorch/test_lm_generation.py
MatrixCase("my_net", "pytorch", "CNN", build)              # any size -> (model, inputs) function
```

An entry names the builder (the library's own constructor with its defaults: `AutoConfig.for_model`
+ `AutoModel.from_config`, `timm.create_model(pretrained=False)`, `torchvision.models.get_model(weights=None)`,
a diffusers config dict), the inputs (a kind's rule, or the entry's), the tolerances (`pcc_min`,
`rtol`, `atol`), the tiers (`tiers=("push", "nightly")`: reduced and released sizes), the data
formats compiled besides float32 (`formats=`), and a known failure as a strict expected failure
naming the stage and the reason (`xfail=("import", "why")`). `arch` is the architecture the entry
counts as: the same family from another library or at another opset counts once. A generation entry
(`lm_generation`, `MatrixCase(..., generate=N)`) compiles a causal LM with `forge_fe.compile_lm` and
checks N greedy tokens against the framework's `generate(do_sample=False)`."""

SHARDING = """\
## Sharded runs across hosts

The matrix tests are independent and each writes its own record, so pytest-xdist spreads them over
any number of workers: `-n auto` on one machine, remote workers for several. Every test carries
`xdist_group("<framework>:<model>")`, so with `--dist loadgroup` each model's sizes and data
formats run on one worker. Records travel back with the test reports and are written on the machine
that started the run (tests/models/conftest.py); a worker that crashes loses the row of the model it
was running, and xdist restarts it for the rest.

```bash
# on each worker host once: the same checkout and environment (make deps), reachable over ssh
export FORGE_FE_MATRIX_OUT=$PWD/matrix-records
python -m pytest -q -m nightly tests/models --dist loadgroup \\
    --tx 2*ssh=ci@host-a//python=/srv/forge_fe/.venv/bin/python//chdir=/srv/forge_fe \\
    --tx 2*ssh=ci@host-b//python=/srv/forge_fe/.venv/bin/python//chdir=/srv/forge_fe
forge-fe report --results matrix-records
```

`2*ssh=...` starts two workers on that host (one per core is the rule); `chdir` is the checkout
on the worker (give `--rsyncdir forge_fe --rsyncdir tvm_ext --rsyncdir tests` to copy the sources
instead). When hosts run their share separately (e.g. `-k pytorch` on one, `-k "not pytorch"` on
another), copy their record directories to one machine and merge them:
`forge-fe report --results records_a/ --results records_b/` (for a model recorded twice, the
newer record wins)."""


def _fmt(v, spec, none="-"):
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _min_pcc(r: ModelRecord):
    return min(r.pcc) if r.pcc else None


def _order(recs):
    fw = list(FRAMEWORK_COLOR)
    return sorted(recs, key=lambda r: (fw.index(r.framework) if r.framework in fw else 9, r.model))


def _stage(r: ModelRecord) -> str:
    """'pass' for a model compared with its framework, else the stage it failed at."""
    return "pass" if r.status in ("pass", "xpass") else (r.failing_stage or "none")


def architectures(recs) -> list[str]:
    """Distinct architectures among the records (sizes, opsets, data formats and frameworks of one count once)."""
    return sorted({r.arch or r.model for r in recs})


def stage_counts(recs) -> dict[str, dict[str, int]]:
    """{stage: {size: models}} over the Float32 records; stage 'pass' or the failing pipeline stage."""
    out = {}
    for r in recs:
        if r.data_format == "Float32":
            out.setdefault(_stage(r), {}).setdefault(r.size, 0)
            out[_stage(r)][r.size] += 1
    order = ["pass"] + STAGE_ORDER
    return dict(sorted(out.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def _stage_label(stage):
    if stage == "pass":
        return "passed (PCC and allclose against the framework)"
    cls = FAILURE_CLASS.get(stage, stage)
    return f"fails at `{stage}`" + (f" ({cls})" if cls != stage else "")


def _stage_table(recs) -> list[str]:
    sizes = [s for s in SIZES if any(r.size == s for r in recs)]
    lines = ["| stage | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for stage, by_size in stage_counts(recs).items():
        lines.append(f"| {_stage_label(stage)} | " + " | ".join(str(by_size.get(s, 0)) for s in sizes) + " |")
    base = [r for r in recs if r.data_format == "Float32"]
    lines.append("| **models** | " + " | ".join(str(sum(r.size == s for r in base)) for s in sizes) + " |")
    return lines


def _framework_table(rows) -> list[str]:
    lines = ["| framework | models | architectures | pass | expected failure | fail | xpass |", "|---|---|---|---|---|---|---|"]
    for fw in dict.fromkeys(r.framework for r in rows):
        sub = [r for r in rows if r.framework == fw]
        n = {s: sum(r.status == s for r in sub) for s in STATUS_LABEL}
        lines.append(f"| {fw} | {len(sub)} | {len(architectures(sub))} | {n['pass']} | {n['xfail']} | {n['fail']} | "
                     f"{n['xpass']} |")
    return lines


def _tokens_text(r: ModelRecord) -> str:
    """'32/32': new tokens equal to the framework's, from the first (generation rows), else '-'."""
    return "-" if r.new_tokens is None or r.tokens_equal is None else f"{r.tokens_equal}/{r.new_tokens}"


def _generation_table(recs) -> list[str]:
    rows = _order([r for r in recs if r.new_tokens is not None])
    if not rows:
        return []
    lines = ["## Generation (compile_lm)", "",
             "Prefill and decode programs over a static KV cache (`forge_fe.compile_lm`, docs/generation.md): "
             "the greedy tokens after an 8-token prompt, from the first, that equal transformers' "
             "`generate(do_sample=False)` (a float32 row passes when all do), the PCC of the first step's "
             "logits against the framework's forward, and the performance model's decode estimate per token.", "",
             "| model | size | format | status | new tokens equal | first-step logits PCC | compile s | ops "
             "(prefill + decode) | est. decode ms/token |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.model} | {r.size} | {r.data_format} | {STATUS_LABEL[r.status]} | {_tokens_text(r)} | "
                     f"{_fmt(_min_pcc(r), '.5f')} | {_fmt(r.compile_s, '.2f')} | {_fmt(r.op_count, 'd')} | "
                     f"{_fmt(None if r.est_latency_s is None else r.est_latency_s * 1e3, '.4f')} |")
    return lines + [""]


def _failing_stage_text(r):
    if not r.failing_stage:
        return "-"
    return r.failing_stage if r.failure_class == r.failing_stage else f"{r.failure_class} (`{r.failing_stage}`)"


def markdown(recs: list[ModelRecord], plots_dir: str | None = None) -> str:
    """The matrix as markdown; with `plots_dir` (relative to the page) the SVG plots are linked at the end."""
    base = [r for r in recs if r.data_format == "Float32"]
    archs = architectures(base)
    stamp = max((r.timestamp for r in base), default="-")
    lines = ["# Model matrix", "",
             "Generated by `forge-fe report` from the matrix tests' records (tests/models); do not edit by hand. "
             "Filterable table and plots: [model_matrix.html](model_matrix.html).", "",
             f"**{len(archs)} distinct architectures**, {len({(r.framework, r.model) for r in base})} models "
             f"(a model is one entry: an architecture built by one library, or exported at one opset), "
             f"last run {stamp}.", "",
             "## Models per stage", "",
             "Where each model stops: passed, or the pipeline stage that fails (every failure in the matrix "
             "is a strict expected failure naming that stage and the reason, listed under Failures).", ""]
    lines += _stage_table(base) + ["", "## Commands", "", COMMANDS, ""]
    for size in SIZES:
        rows = _order([r for r in base if r.size == size])
        if not rows:
            continue
        title = "Reduced sizes (push)" if size == "push" else "Released sizes (nightly)"
        lines += [f"## {title}", "", f"Last run: {max(r.timestamp for r in rows)}.", ""]
        lines += _framework_table(rows)
        lines += ["", "| model | framework | architecture | kind | status | failing stage | PCC (min) | compile s | "
                  "ops | device % | est. latency ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.model} | {r.framework} | {r.arch or r.model} | {r.kind} | {STATUS_LABEL[r.status]} | "
                         f"{_failing_stage_text(r)} | {_fmt(_min_pcc(r), '.5f')} | {_fmt(r.compile_s, '.2f')} | "
                         f"{_fmt(r.op_count, 'd')} | "
                         f"{_fmt(None if r.device_share is None else 100 * r.device_share, '.1f')} | "
                         f"{_fmt(None if r.est_latency_s is None else r.est_latency_s * 1e3, '.4f')} |")
        lines.append("")
    lines += _generation_table(recs)
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
        lines += ["## Failures", "", "The expected failure (the entry's stated stage and reason), then what the "
                  "run recorded.", ""]
        for r in failed:
            err = " ".join(r.error.split())[:300]
            why = f" expected: *{r.expected_failure}*;" if r.expected_failure else ""
            lines.append(f"- **{r.model}** ({r.framework}, {r.size}, {r.data_format}) {STATUS_LABEL[r.status]} "
                         f"at `{r.failing_stage}`:{why} {err}")
        lines.append("")
    lines += [ADDING, "", SHARDING, ""]
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


def _legend(body, x, y, colors):
    for i, (name, c) in enumerate(colors.items()):
        body.append(f'<circle cx="{x}" cy="{y + 16 * i}" r="4" fill="{c}"/>'
                    f'<text x="{x + 9}" y="{y + 4 + 16 * i}">{html.escape(name)}</text>')


def plot_compile_vs_ops(recs) -> str:
    """Scatter: compile seconds against op count, one dot per compiled model and size, colored by framework."""
    pts = [r for r in recs if r.data_format == "Float32" and r.compile_s is not None and r.op_count]
    W, H, L, B, T, R = 640, 400, 60, 50, 30, 130
    xmax = max([r.op_count for r in pts] + [1]) * 1.05
    ymax = max([r.compile_s for r in pts] + [0.1]) * 1.1
    sx = lambda v: L + (W - L - R) * v / xmax  # noqa: E731
    sy = lambda v: H - B - (H - B - T) * v / ymax  # noqa: E731
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
        body.append(f'<circle cx="{sx(r.op_count):.1f}" cy="{sy(r.compile_s):.1f}" r="{3 if r.size == "push" else 5}" '
                    f'fill="{c}" fill-opacity="0.7"><title>{html.escape(r.model)} ({r.framework}, {r.size}): '
                    f'{r.op_count} ops, {r.compile_s:.2f} s</title></circle>')
    _legend(body, W - R + 15, T + 10, FRAMEWORK_COLOR)
    body.append(f'<text x="{W - R + 6}" y="{T + 90}">small dot: push</text>'
                f'<text x="{W - R + 6}" y="{T + 104}">large dot: nightly</text>')
    return _svg(W, H, body, "Compile time vs op count")


def _bars(rows, label, title, scale_max=None, log=False, unit=""):
    """Horizontal bars, one per (name, framework, value) row; `log` spaces values by decades."""
    W, L, rowh, T = 720, 230, 14, 30
    H = T + rowh * len(rows) + 40
    width = W - L - 80
    vals = [v for _, _, v in rows if v]
    if log and vals:
        lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
        hi = max(hi, lo + 1)
        pos = lambda v: width * (math.log10(v) - lo) / (hi - lo)  # noqa: E731
        ticks = [(width * (d - lo) / (hi - lo), f"1e{d}") for d in range(lo, hi + 1)]
    else:
        top = scale_max or max(vals + [1e-9])
        pos = lambda v: width * v / top  # noqa: E731
        ticks = [(width * f, f"{f * top * (100 if unit == '%' else 1):.0f}{unit}") for f in (0, 0.25, 0.5, 0.75, 1)]
    body = [f'<line x1="{L}" y1="{T}" x2="{L}" y2="{T + rowh * len(rows)}" stroke="black"/>']
    for i, (name, fw, v) in enumerate(rows):
        y = T + i * rowh
        body.append(f'<text x="{L - 4}" y="{y + 11}" text-anchor="end">{html.escape(name)}</text>')
        if v is None:
            body.append(f'<text x="{L + 4}" y="{y + 11}" fill="#888">not compiled</text>')
            continue
        w = max(pos(v), 1.0)
        body.append(f'<rect x="{L}" y="{y + 2}" width="{w:.1f}" height="{rowh - 4}" fill="{FRAMEWORK_COLOR.get(fw, "gray")}">'
                    f'<title>{html.escape(name)} ({fw}): {html.escape(label(v))}</title></rect>'
                    f'<text x="{L + w + 4:.1f}" y="{y + 11}">{html.escape(label(v))}</text>')
    yb = T + rowh * len(rows)
    for x, text in ticks:
        body.append(f'<text x="{L + x:.1f}" y="{yb + 14}" text-anchor="middle">{text}</text>')
    return _svg(W, H, body, title)


def plot_device_share(recs) -> str:
    """Share of ops placed on the device, per model (push size)."""
    rows = [(f"{r.model}", r.framework, r.device_share) for r in
            _order([r for r in recs if r.data_format == "Float32" and r.size == "push"])]
    return _bars(rows, lambda v: f"{100 * v:.1f}%", "Share of ops on the device, by model (push)", 1.0,
                 unit="%")


def plot_latency_by_arch(recs) -> str:
    """The performance model's estimated latency per architecture, at the largest size it compiled at
    (nightly when recorded), log scale. Forward passes only: a generation row's estimate is per token."""
    best = {}
    for r in recs:
        if r.data_format != "Float32" or r.est_latency_s is None or r.new_tokens is not None:
            continue
        arch = r.arch or r.model
        if arch not in best or (r.size == "nightly" and best[arch].size != "nightly"):
            best[arch] = r
    rows = [(f"{arch} ({r.size})", r.framework, r.est_latency_s * 1e3) for arch, r in sorted(best.items())]
    return _bars(rows, lambda v: f"{v:.3g} ms", "Estimated device latency by architecture (wormhole_b0)",
                 log=True)


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
    sx = lambda n: L + scale * (n - lo) / (7.0 - lo)  # noqa: E731
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
         "pcc_by_format.svg": plot_pcc_by_format, "latency_by_arch.svg": plot_latency_by_arch}


# ---- HTML ---------------------------------------------------------------------------------------

_COLUMNS = ("model", "framework", "architecture", "kind", "size", "format", "status", "stage", "PCC (min)",
            "tokens equal", "compile s", "ops", "device %", "est. latency ms", "error")

# Filtering: every row carries data-* attributes; the controls hide rows that do not match and the
# counter says how many are shown. The page logs one line when it is ready (the browser test reads it).
_SCRIPT = """
const rows = Array.from(document.querySelectorAll('#models tbody tr'));
const controls = ['q', 'framework', 'size', 'status', 'stage'].map(id => document.getElementById(id));
function applyFilter() {
  const [q, fw, size, status, stage] = controls.map(c => c.value.toLowerCase());
  let shown = 0;
  for (const row of rows) {
    const d = row.dataset;
    const ok = (!q || row.textContent.toLowerCase().includes(q)) && (!fw || d.framework === fw) &&
      (!size || d.size === size) && (!status || d.status === status) && (!stage || d.stage === stage);
    row.hidden = !ok;
    if (ok) shown += 1;
  }
  document.getElementById('shown').textContent = shown + ' of ' + rows.length + ' rows';
}
controls.forEach(c => c.addEventListener('input', applyFilter));
// a link can carry a filter: model_matrix.html#status=xfail&framework=onnx
for (const [key, value] of new URLSearchParams(location.hash.slice(1))) {
  const c = document.getElementById(key);
  if (c) c.value = value;
}
applyFilter();
console.log('forge_fe matrix report ready: ' + rows.length + ' rows');
"""


def _select(name, values):
    opts = "".join(f'<option value="{html.escape(v.lower())}">{html.escape(v)}</option>' for v in values)
    return f'<label>{name} <select id="{name}"><option value="">all</option>{opts}</select></label> '


def _counts_html(recs) -> str:
    def table(lines):
        head, _, *body = lines
        cells = lambda line, tag: "".join(f"<{tag}>{html.escape(c.strip().strip('*').strip('`'))}</{tag}>"  # noqa: E731
                                          for c in line.strip("|").split("|"))
        return (f"<table><thead><tr>{cells(head, 'th')}</tr></thead><tbody>"
                + "".join(f"<tr>{cells(line, 'td')}</tr>" for line in body) + "</tbody></table>")
    base = [r for r in recs if r.data_format == "Float32"]
    parts = ["<h2>Models per stage</h2>", table(_stage_table(base)), "<h2>Per framework</h2>"]
    for size in SIZES:
        rows = [r for r in base if r.size == size]
        if rows:
            parts += [f"<h3>{size}</h3>", table(_framework_table(_order(rows)))]
    return "".join(parts)


def html_report(recs: list[ModelRecord], plots: dict[str, str]) -> str:
    """One self-contained page: counts, the filterable table of every record, the plots inline."""
    rows = []
    for r in _order(recs):
        stage = _stage(r)
        cells = (r.model, r.framework, r.arch or r.model, r.kind, r.size, r.data_format, r.status,
                 "-" if stage == "pass" else stage, _fmt(_min_pcc(r), ".5f"), _tokens_text(r), _fmt(r.compile_s, ".2f"),
                 _fmt(r.op_count, "d"), _fmt(None if r.device_share is None else 100 * r.device_share, ".1f"),
                 _fmt(None if r.est_latency_s is None else r.est_latency_s * 1e3, ".4f"),
                 " ".join((r.error or "").split())[:200])
        attrs = {"framework": r.framework, "size": r.size, "status": r.status, "stage": stage.lower()}
        rows.append("<tr " + " ".join(f'data-{k}="{html.escape(v.lower())}"' for k, v in attrs.items()) + ">"
                    + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    stages = list(stage_counts(recs))
    controls = ('<p><label>search <input id="q" type="search" placeholder="model, kind, error..."></label> '
                + _select("framework", sorted({r.framework for r in recs})) + _select("size", list(SIZES))
                + _select("status", list(STATUS_LABEL)) + _select("stage", stages)
                + '<span id="shown"></span></p>')
    archs = architectures([r for r in recs if r.data_format == "Float32"])
    figs = "".join(f"<figure>{svg}</figure>" for svg in plots.values())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>forge_fe model matrix</title>"
            "<style>body{font-family:sans-serif;margin:2em}figure{margin:1em 0}table{border-collapse:collapse;"
            "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
            "th{background:#eee;position:sticky;top:0}tr[data-status=fail] td,tr[data-status=xpass] td"
            "{background:#fdd}tr[data-status=xfail] td{background:#ffe}</style></head><body>"
            f"<h1>forge_fe model matrix</h1><p>{len(archs)} distinct architectures, {len(recs)} records. "
            "Hover a dot or bar for its numbers.</p>"
            f"{_counts_html(recs)}<h2>Models</h2>{controls}"
            f"<table id='models'><thead><tr>{''.join(f'<th>{c}</th>' for c in _COLUMNS)}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><h2>Plots</h2>{figs}"
            f"<script>{_SCRIPT}</script></body></html>\n")


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


# ---- diff ---------------------------------------------------------------------------------------

# Beyond noise: PCC is deterministic for a given build (random weights are seeded), so any drop past
# 1e-4 is a change; compile time on a shared machine varies by tens of percent, so only a change of
# more than 50% and more than 1 s is reported.
PCC_NOISE = 1e-4
COMPILE_RATIO = 1.5
COMPILE_ABS_S = 1.0
_RANK = {"pass": 0, "xpass": 1, "xfail": 2, "fail": 3}


def diff(old: list[ModelRecord], new: list[ModelRecord]) -> list[dict]:
    """Changes between two runs, per record key: {'key', 'what', 'old', 'new', 'regression'}."""
    before, after = {r.key: r for r in old}, {r.key: r for r in new}
    changes = []

    def add(key, what, a, b, regression):
        changes.append({"key": key, "what": what, "old": a, "new": b, "regression": regression})
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None or b is None:
            add(key, "added" if a is None else "removed", a and a.status, b and b.status, False)
            continue
        if a.status != b.status or a.failing_stage != b.failing_stage:
            add(key, "status", f"{a.status} {a.failing_stage or ''}".strip(), f"{b.status} {b.failing_stage or ''}".strip(),
                _RANK[b.status] > _RANK[a.status] or (b.status == a.status == "fail"))
        pa, pb = _min_pcc(a), _min_pcc(b)
        if pa is not None and pb is not None and abs(pa - pb) > PCC_NOISE:
            add(key, "PCC", round(pa, 6), round(pb, 6), pb < pa)
        ca, cb = a.compile_s, b.compile_s
        if ca and cb and abs(cb - ca) > COMPILE_ABS_S and max(ca, cb) / min(ca, cb) > COMPILE_RATIO:
            add(key, "compile s", round(ca, 2), round(cb, 2), cb > ca)
    return changes


def format_diff(changes: list[dict]) -> str:
    if not changes:
        return "no changes beyond noise"
    w = max(len(c["key"]) for c in changes)
    lines = [f"{'record':<{w}}  {'what':<9}  old -> new"]
    for c in changes:
        flag = "  REGRESSION" if c["regression"] else ""
        lines.append(f"{c['key']:<{w}}  {c['what']:<9}  {c['old']} -> {c['new']}{flag}")
    n = sum(c["regression"] for c in changes)
    lines.append(f"\n{len(changes)} changes, {n} regressions")
    return "\n".join(lines)


def diff_json(changes) -> str:
    return json.dumps(changes, indent=1, default=str)
