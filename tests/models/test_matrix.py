"""The matrix machinery itself: stage attribution, records, strict expected failures."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from forge_fe.tools import matrix
from forge_fe.tools.matrix import MatrixCase

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return torch.tanh(self.fc(x))


class PoolIndices(nn.Module):
    """Uses max_pool2d's indices, which the PyTorch frontend refuses at import (TVM would zero them)."""

    def forward(self, x):
        values, indices = nn.functional.max_pool2d(x, 2, return_indices=True)
        return values + indices.float()


@pytest.fixture(autouse=True)
def private_records(tmp_path, monkeypatch):
    """These tests' records must not land among the real matrix records."""
    monkeypatch.setenv("FORGE_FE_MATRIX_OUT", str(tmp_path))


def small(size):
    torch.manual_seed(0)
    return Small().eval(), [torch.randn(2, 8)]


def test_passing_model_record_has_every_metric():
    rec = matrix.run_case(MatrixCase("small", "pytorch", "MLP", small))
    assert rec.status == "pass" and rec.stage_reached == "verify" and rec.failing_stage is None
    assert rec.pcc[0] > 0.9999 and rec.allclose
    assert rec.compile_s > 0 and rec.op_count >= 2 and rec.device_ops == rec.op_count and rec.device_share == 1.0
    assert rec.est_latency_s > 0 and rec.segments == 1


def test_import_failure_is_attributed_and_expected_failures_match_the_stage():
    case = MatrixCase("pool", "pytorch", "op", lambda size: (PoolIndices(), [torch.randn(1, 2, 4, 4)]))
    rec = matrix.run_case(case)
    assert (rec.status, rec.failing_stage, rec.failure_class) == ("fail", "import", "import")
    assert rec.stage_reached == "build" and "max_pool2d" in rec.error and rec.compile_s is None
    case.xfail = {"push": ("import", "indices refused")}
    assert matrix.run_case(case).status == "xfail"
    case.xfail = {"push": ("partition", "wrong guess")}
    with pytest.raises(AssertionError, match="expected to fail at 'partition: wrong guess', but failed at 'import'"):
        matrix.check(case)


def test_failure_inside_a_stage_is_attributed_to_it(monkeypatch):
    """Whatever a stage raises is recorded against that stage, with the stages before it as reached."""
    from forge_fe.compiler import pipeline

    def broken_partition(ctx):
        raise RuntimeError("partitioner bug")
    monkeypatch.setattr(pipeline, "STAGES", [(d, n, broken_partition if n == "partition" else f)
                                             for d, n, f in pipeline.STAGES])
    rec = matrix.run_case(MatrixCase("small", "pytorch", "MLP", small))
    assert (rec.failing_stage, rec.failure_class, rec.stage_reached) == ("partition", "partition", "relax_passes")
    assert "partitioner bug" in rec.error


def test_wrong_result_and_build_failures(tmp_path):

    def other_weights(model, inputs):     # the framework's output of a differently initialised model
        torch.manual_seed(1)
        with torch.no_grad():
            return Small()(*inputs)
    wrong = MatrixCase("small", "pytorch", "MLP", small, reference=other_weights)
    with pytest.raises(matrix.MatrixFailure, match="wrong result"):
        matrix.check(wrong)
    rec, = matrix.read_records(str(tmp_path))
    assert (rec.failing_stage, rec.failure_class, rec.stage_reached) == ("verify", "wrong result", "runtime")
    assert rec.pcc[0] < 0.99 and rec.op_count > 0                       # metrics kept for the report

    def broken(size):
        raise ValueError("bad config")
    rec = matrix.run_case(MatrixCase("broken", "pytorch", "MLP", broken))
    assert (rec.failing_stage, rec.stage_reached) == ("build", "none") and "bad config" in rec.error


def test_reduced_data_format_checks_pcc_only():
    rec = matrix.run_case(MatrixCase("small", "pytorch", "MLP", small), data_format="Float16_b")
    assert rec.status == "pass" and rec.pcc_min == matrix.DATA_FORMATS["Float16_b"][1]
    assert 0.98 < rec.pcc[0] < 1.0                                       # bf16 rounding is visible


def test_strict_xfail_fails_when_the_model_starts_passing(tmp_path):
    test = tmp_path / "test_flip.py"
    test.write_text(f'''
import sys
sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})
import pytest
from forge_fe.tools import matrix
from test_matrix import small

CASES = [matrix.MatrixCase("small", "pytorch", "MLP", small, xfail={{"push": ("partition", "was broken")}})]

@pytest.mark.parametrize("case", matrix.pytest_params(CASES, "push"))
def test_push(case):
    matrix.check(case, "push")
''')
    env = {**os.environ, "PYTHONPATH": REPO, "FORGE_FE_MATRIX_OUT": str(tmp_path / "rec")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "push", str(test),
                           "--rootdir", str(tmp_path)], env=env, capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 1 and "XPASS(strict)" in proc.stdout, proc.stdout[-2000:]
    rec, = matrix.read_records(str(tmp_path / "rec"))
    assert rec.status == "xpass"


def test_entries_have_unique_records_and_name_real_stages():
    """Every matrix entry writes records under its own key, and each expected failure names a stage
    the runner can report (a typo would make the strict xfail fail for the wrong reason)."""
    import glob
    import importlib.util
    from forge_fe.compiler.pipeline import STAGES
    stages = {name for _, name, _ in STAGES} | set(matrix.FAILURE_CLASS)
    seen = {}
    for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*", "test_*.py"))):
        spec = importlib.util.spec_from_file_location(f"_entries_{len(seen)}_{os.path.basename(path)[:-3]}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except pytest.skip.Exception:              # a framework that is not installed
            continue
        for case in getattr(module, "CASES", []):
            key = (case.framework, case.name)
            assert key not in seen, f"{key} is defined in {path} and in {seen[key]}"
            seen[key] = path
            for size, (stage, why) in case.xfail.items():
                assert size in case.tiers and stage in stages and why, (case.name, size, stage)
    assert seen


def test_generation_case_checks_greedy_tokens_against_hf(monkeypatch):
    """A generation entry compiles with compile_lm and passes when every new greedy token is HF's; a
    token that differs fails at 'verify' with how many matched; a model compile_lm refuses fails at
    compile_lm's own stage."""
    from forge_fe.generation import runtime
    from forge_fe.tools.matrix_builders import lm_generation
    case = lm_generation("gpt2", new=8)
    rec = matrix.run_case(case)
    assert (rec.status, rec.stage_reached, rec.tokens_equal, rec.new_tokens) == ("pass", "verify", 8, 8)
    assert rec.pcc[0] > 0.9999 and rec.compile_s > 0 and rec.op_count > 0 and rec.est_latency_s > 0

    generate = runtime.CompiledLM.generate

    def sixth_token_off(self, ids, max_new_tokens=None, **options):
        out = generate(self, ids, max_new_tokens, **options)
        out[0, ids.shape[1] + 5] += 1
        return out
    monkeypatch.setattr(runtime.CompiledLM, "generate", sixth_token_off)
    rec = matrix.run_case(case)
    assert (rec.status, rec.failing_stage, rec.tokens_equal) == ("fail", "verify", 5) and "new token 5" in rec.error

    not_an_lm = MatrixCase("mlp", "pytorch-generate", "generation",
                           lambda size: (small(size)[0], [torch.ones(1, 4).long()]), generate=4)
    rec = matrix.run_case(not_an_lm)
    assert (rec.status, rec.failing_stage, rec.stage_reached) == ("fail", "compile_lm", "build")
    assert "causal LM" in rec.error
