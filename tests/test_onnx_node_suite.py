"""ONNX's backend node conformance suite (onnx.backend.test, 1884 cases with onnx 1.23) through forge_fe.

Every case is one test: its model runs through `forge_fe.onnx_backend.ForgeBackend` on each of
the case's data sets, and every output must match the suite's reference output (same shape and
dtype, then allclose with the case's own rtol/atol, as onnx's backend test runner checks; exact
equality for non-float data).

Cases listed in tests/onnx_node_expected_failures.txt are STRICT xfails: a listed case that starts
passing fails the run until its line is removed, and an unlisted case that fails is a regression.

The cases run in spawned worker processes (benchmarks/onnx_conformance.py's pool) with a per-case
timeout, so a segfault or a hang in one case is recorded as that case's failure and pytest goes on.
All selected cases run once, in the first test that needs a result; every test then reports its
own case.
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED_FAILURES = os.path.join(HERE, "onnx_node_expected_failures.txt")
HARNESS = os.path.join(os.path.dirname(HERE), "benchmarks", "onnx_conformance.py")
#: per case, seconds; the slowest passing case takes ~5 s alone on a loaded 2-core machine
CASE_TIMEOUT = 60.0
WORKERS = 2

# the first test runs the whole suite (in the module fixture): a larger budget than the default
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def _harness():
    # imported by name from its directory, so the spawned workers can import it too
    if os.path.dirname(HARNESS) not in sys.path:
        sys.path.insert(0, os.path.dirname(HARNESS))
    return importlib.import_module("onnx_conformance")


def read_expected_failures(path: str = EXPECTED_FAILURES) -> dict[str, str]:
    """case name -> "category: reason" from the list (blank lines and # comments skipped)."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, why = line.partition(" ")
            out[name] = why.strip()
    return out


def _case_names() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.loader import load_model_tests
        return sorted(c.name for c in load_model_tests(kind="node"))


EXPECTED = read_expected_failures()
NAMES = _case_names()


def _params():
    for name in NAMES:
        why = EXPECTED.get(name)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why is not None else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.fixture(scope="module")
def suite_results(request):
    """Run every selected case once in spawned workers; name -> result dict."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "callspec", None) and item.module is request.module]
    harness = _harness()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = {c.name: c for c in harness.load_cases() if c.name in set(selected)}
    results: dict[str, dict] = {}
    pool = harness.Pool(WORKERS, CASE_TIMEOUT)
    try:
        pool.map([(name, "forge", True, cases[name]) for name in selected],
                 lambda task, res: results.__setitem__(task[0], res))
    finally:
        pool.close()
    return results


def test_expected_failure_list_is_well_formed():
    """Every entry names a real case and says why: `<case> <category>: <reason>`."""
    categories = {"unsupported", "tvm-limitation", "not-implemented", "numerics", "runtime-dtype"}
    unknown = [n for n in EXPECTED if n not in set(NAMES)]
    assert not unknown, f"entries that are not node cases: {unknown[:10]}"
    bad = [n for n, why in EXPECTED.items() if why.partition(":")[0] not in categories or not why.partition(":")[2].strip()]
    assert not bad, f"entries without '<category>: <reason>' (categories {sorted(categories)}): {bad[:10]}"


@pytest.mark.parametrize("case", list(_params()))
def test_node_case(case, suite_results):
    res = suite_results[case]
    assert res["status"] == "pass", f"{res['status']}: {res['reason']}"


def test_failures_are_forge_errors(suite_results):
    """A case either passes or fails with a forge_fe error (or a numeric mismatch): never a raw
    exception, a crash or a hang."""
    raw = {n: r["reason"] for n, r in suite_results.items()
           if r["status"] in ("crash", "timeout") or (r["status"] == "error" and not r.get("forge_error"))}
    assert not raw, f"{len(raw)} cases failed outside forge_fe's errors: {dict(list(raw.items())[:5])}"
