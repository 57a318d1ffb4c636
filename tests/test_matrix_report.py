"""The model matrix reports: the per-stage table, the HTML page in a real headless browser (Debian's
chromium; checked by parsing where none is installed), `forge-fe report --diff` and merged record
directories."""
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from forge_fe.tools import cli, matrix, matrix_report


def record(model, status="pass", **kw):
    base = dict(model=model, framework="pytorch", kind="CNN", size="push", data_format="Float32", status=status,
                stage_reached="verify", pcc=[0.9999], compile_s=1.5, op_count=40, device_ops=38, cpu_ops=2,
                device_share=0.95, segments=3, est_latency_s=2e-5, timestamp="2026-01-01 00:00 UTC", arch=model)
    if status in ("fail", "xfail"):
        base.update(stage_reached="build", failing_stage="import", failure_class="import",
                    error="[forge_fe:import] TVM's PyTorch importer failed: fft", pcc=[], compile_s=None,
                    op_count=None, device_share=None, est_latency_s=None)
    base.update(kw)
    return matrix.ModelRecord(**base)


RECORDS = [record("resnet18", arch="resnet"), record("resnet50", arch="resnet", size="nightly", compile_s=9.0),
           record("bert", framework="onnx", est_latency_s=4e-4), record("fnet", "xfail", expected_failure="import: fft"),
           record("t5", failing_stage=None, size="nightly"), record("vit", "fail", failing_stage="verify",
                                                                    failure_class="wrong result", error="PCC 0.5")]


def test_first_table_counts_models_per_stage_and_architectures_count_once():
    text = matrix_report.markdown(RECORDS)
    first = text.index("|")
    assert text[first:].startswith("| stage | push | nightly |")
    assert "| passed (PCC and allclose against the framework) | 2 | 2 |" in text
    assert "| fails at `import` | 1 | 0 |" in text and "| fails at `verify` (wrong result) | 1 | 0 |" in text
    # resnet18 and resnet50 are one architecture
    assert "**5 distinct architectures**" in text
    assert "expected: *import: fft*" in text


def test_generation_rows_get_their_own_table_and_token_figures():
    """compile_lm rows (framework pytorch-generate) show the new tokens equal to HF generate beside the
    first-step PCC, count as the same architecture as the forward rows, and stay out of the forward
    latency plot (their estimate is per token)."""
    gen = [record("llama", framework="pytorch-generate", kind="greedy generation, 32 tokens", arch="llama",
                  new_tokens=32, tokens_equal=32, est_latency_s=7e-4),
           record("gpt2", "fail", framework="pytorch-generate", arch="gpt2", new_tokens=32, tokens_equal=5,
                  failing_stage="verify", failure_class="wrong result", stage_reached="runtime", pcc=[0.9999],
                  error="wrong result: new token 5 differs")]
    recs = [record("llama", kind="decoder-only", est_latency_s=3e-5)] + gen
    text = matrix_report.markdown(recs)
    table = text[text.index("## Generation (compile_lm)"):]
    assert "| llama | push | Float32 | pass | 32/32 | 0.99990 |" in table
    assert "| gpt2 | push | Float32 | **FAIL** | 5/32 | 0.99990 |" in table
    assert "| pytorch-generate | 2 | 2 | 1 | 0 | 1 | 0 |" in text and "**2 distinct architectures**" in text
    assert "## Generation" not in matrix_report.markdown(RECORDS)
    assert "llama (push)" not in matrix_report.plot_latency_by_arch(gen)
    assert "llama (push) (pytorch): 0.03 ms" in matrix_report.plot_latency_by_arch(recs)     # the forward row's
    page = matrix_report.html_report(recs, {})
    assert "<th>tokens equal</th>" in page and "<td>32/32</td>" in page and "<td>5/32</td>" in page


class _Page(HTMLParser):
    """Rows of the model table and the element ids (filter controls) of a report page."""

    def __init__(self):
        super().__init__()
        self.rows, self.ids, self._in_models = [], set(), False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.ids.add(a.get("id"))
        self._in_models |= a.get("id") == "models"
        if tag == "tr" and self._in_models and "data-status" in a:
            self.rows.append(a)


@pytest.fixture
def page(tmp_path):
    written = matrix_report.write_reports(RECORDS, str(tmp_path / "m.md"), str(tmp_path / "m.html"))
    assert sorted(os.listdir(tmp_path / "m_plots")) == sorted(matrix_report.PLOTS)
    assert len(written) == 2 + len(matrix_report.PLOTS)
    return tmp_path / "m.html"


def test_html_page_has_the_table_controls_and_plots(page):
    parsed = _Page()
    parsed.feed(page.read_text())
    assert len(parsed.rows) == len(RECORDS)
    assert {"q", "framework", "size", "status", "stage", "shown"} <= parsed.ids
    assert {r["data-stage"] for r in parsed.rows} == {"pass", "import", "verify"}
    svgs = re.findall(r"<svg.*?</svg>", page.read_text(), re.S)
    assert len(svgs) == len(matrix_report.PLOTS)
    for svg in svgs:
        ET.fromstring(svg)                                  # each plot is well-formed SVG


def _chromium(*args, timeout=180):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium on PATH (the parsing test covers the page's structure)")
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           *args], capture_output=True, text=True, timeout=timeout)


def test_html_page_renders_in_a_headless_browser_without_console_errors(page, tmp_path):
    shot = tmp_path / "shot.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert shot.exists() and shot.stat().st_size > 0, proc.stderr[-2000:]
    assert any(f"forge_fe matrix report ready: {len(RECORDS)} rows" in line for line in console), console
    assert not [line for line in console if "Uncaught" in line or "ERROR:CONSOLE" in line], console


def test_html_filter_runs_in_the_browser(page):
    """A filter in the URL (#status=xfail) is applied by the page's script: other rows are hidden."""
    proc = _chromium("--dump-dom", page.as_uri() + "#status=xfail")
    parsed = _Page()
    parsed.feed(proc.stdout)
    shown = [r for r in parsed.rows if "hidden" not in r]
    assert len(parsed.rows) == len(RECORDS) and [r["data-status"] for r in shown] == ["xfail"]


def test_diff_lists_changes_beyond_noise(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    for r in RECORDS:
        matrix.write_record(r, str(old))
    changed = {"resnet18": dict(compile_s=1.9),                               # noise: +0.4 s
               "bert": dict(pcc=[0.9990]),                                    # PCC drop
               "t5": dict(status="fail", failing_stage="runtime", stage_reached="binary"),
               "fnet": dict(status="xpass", failing_stage=None, error=None, pcc=[1.0]),
               "resnet50": dict(compile_s=20.0)}                              # 9 -> 20 s
    for r in RECORDS:
        matrix.write_record(record(r.model, **{**{k: getattr(r, k) for k in ("status", "size", "framework", "arch",
                                                                             "failing_stage", "failure_class", "error",
                                                                             "pcc", "compile_s")},
                                               **changed.get(r.model, {})}), str(new))
    changes = matrix_report.diff(matrix.read_records(str(old)), matrix.read_records(str(new)))
    got = {(c["key"].split("__")[1], c["what"]): c["regression"] for c in changes}
    assert got == {("bert", "PCC"): True, ("t5", "status"): True, ("fnet", "status"): False,
                   ("resnet50", "compile s"): True}
    assert cli.main(["report", "--diff", str(old), str(new)]) == cli.EXIT_MATRIX
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "resnet18" not in out and "4 changes, 3 regressions" in out
    assert cli.main(["report", "--diff", str(old), str(old), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_records_of_several_directories_merge_newest_first(tmp_path, capsys):
    a, b = tmp_path / "host_a", tmp_path / "host_b"
    matrix.write_record(record("resnet18"), str(a))
    matrix.write_record(record("bert", "xfail", timestamp="2026-01-01 00:00 UTC"), str(a))
    matrix.write_record(record("bert", timestamp="2026-01-02 00:00 UTC"), str(b))      # rerun on another host
    recs = matrix.read_records(str(a), str(b))
    assert [(r.model, r.status) for r in recs] == [("bert", "pass"), ("resnet18", "pass")]
    md = tmp_path / "m.md"
    assert cli.main(["report", "--results", str(a), "--results", str(b), "--md", str(md), "--html",
                     str(tmp_path / "m.html")]) == 0
    assert "2 records: 2 pass" in capsys.readouterr().out
